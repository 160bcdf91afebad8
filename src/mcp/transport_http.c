/*
 * transport_http.c - the Streamable HTTP transport (MCP 2025-03-26 and later): every message
 * is a POST to one endpoint; answers come back as a JSON body or as an SSE stream; a standing
 * GET stream carries what the server wants to say unasked (transport.h has the contract).
 *
 * Streams. Each HTTP exchange is one http_stream_t around one upstream call:
 *   POST    one message of ours. 202 (a notification or response was accepted), a JSON body
 *           (one message or a batch), or an SSE stream that may carry the server's requests
 *           and notifications before the answer to our request. A JSON body answering a
 *           POST that carried no request is ignored: it cannot hold an answer of ours.
 *   GET     the standing stream for server-initiated messages, opened once initialize has
 *           succeeded. 405 means the server has none, which is fine.
 *   RESUME  a GET with Last-Event-ID, replacing a POST's SSE stream that dropped before our
 *           answer came, so that the server can replay what we missed.
 * A stream that ends is moved to the dead list and freed from a later loop iteration (a
 * stream may be ended from inside its own callbacks, when the client abandons a request from
 * a progress callback); stop cancels every call and destroy frees every stream.
 *
 * Sessions. The server may assign an Mcp-Session-Id in the answer to initialize; it is sent
 * with every later request, along with MCP-Protocol-Version. A 404 to a request carrying the
 * session id means the server forgot the session: the connection is reported lost with
 * "reinitialize", and the client starts a new session at once. On stop, a session still
 * believed alive is ended with a DELETE, best effort (its answer is not waited for).
 *
 * Resumption. SSE events may carry ids. When the standing GET stream ends or drops, it is
 * reopened with the last id seen as Last-Event-ID, after the server's "retry" delay when it
 * gave one (else 1 s), doubled for every stream in a row that ended without delivering an
 * event, up to 30 s. A POST stream that drops before our answer is resumed the same way, a
 * few times; when it cannot be (no event id was given) the request fails with
 * MCP_ERR_TRANSPORT instead of waiting for its timeout.
 *
 * HTTP errors. A refused connection or a reset on a POST is the server being gone: the
 * connection is reported lost. An HTTP error status fails only the request that was posted
 * (with the server's own JSON-RPC error when its body carries one), so that, say, a 500 on
 * one tool call does not tear down the session; an error on initialize or on a ping still
 * ends the connection, through the client.
 */
#include "mcp/transport.h"

#include <ctype.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "http/upstream.h"
#include "mcp/jsonrpc.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/sse.h"

#define CONNECT_TIMEOUT_MS 10000L
#define NOTIFY_TIMEOUT_MS 30000L /* a POST that carries no request */
#define DELETE_TIMEOUT_MS 5000L
#define ERROR_BODY_MAX 65536 /* bytes of an error body kept to look for a JSON-RPC error */
#define GET_RETRY_DEFAULT_MS 1000L
#define GET_RETRY_MAX_MS 30000L
#define RESUME_DEFAULT_MS 100L
#define RESUME_MAX 5 /* resumptions of one request's stream */

typedef enum stream_kind {
    STREAM_POST,
    STREAM_GET,
    STREAM_RESUME,
} stream_kind_t;

typedef enum body_mode {
    BODY_IGNORE, /* 202, 405, or not looked at */
    BODY_JSON,   /* application/json: gathered, delivered at the end */
    BODY_SSE,    /* text/event-stream: each message event delivered as it comes */
    BODY_ERROR,  /* an error status: gathered (bounded) to look for a JSON-RPC error */
} body_mode_t;

typedef struct http_conn http_conn_t;

typedef struct http_stream {
    http_conn_t *hc;
    stream_kind_t kind;
    upstream_call_t *call; /* NULL when not running (waiting to resume, done, dead) */
    long long request_id;  /* the request this stream answers, or -1 */
    char *body;            /* POST body; owned, outlives the call */
    size_t body_len;
    body_mode_t mode;
    long status;
    buf_t data; /* JSON or error body */
    sse_parser_t sse;
    char *last_event_id; /* RESUME: the id to resume after; owned */
    int resumes;         /* RESUME: how many resumptions led here */
    struct event *delay; /* RESUME: waits for the retry delay */
    bool delivered;      /* at least one message came through this stream */
    bool dead;           /* ended; on hc->dead */
    TAILQ_ENTRY(http_stream) link;
} http_stream_t;

TAILQ_HEAD(stream_list, http_stream);

struct http_conn {
    mcp_conn_t base;
    char *session_id;        /* the server's Mcp-Session-Id, or NULL */
    char *protocol_version;  /* sent as MCP-Protocol-Version once ready */
    struct stream_list live; /* running or waiting streams */
    struct stream_list dead; /* ended streams, freed by reap_ev */
    struct event *reap_ev;
    http_stream_t *get;      /* the standing GET stream, or NULL */
    struct event *get_timer; /* reopens it */
    char *get_last_id;       /* its last event id; owned */
    long get_retry_ms;       /* the server's retry, or -1 */
    int get_failures;        /* GET streams in a row that delivered nothing */
    bool get_off;            /* the server has no GET stream (405), or refused it */
    bool session_lost;       /* a 404 ended the session: no DELETE */
};

static void open_get(http_conn_t *hc);
static void start_resume(http_stream_t *s);

/* ---- helpers --------------------------------------------------------------------------------- */

bool mcp_content_type_is(const char *content_type, const char *media_type)
{
    if (content_type == NULL)
        return false;
    while (*content_type == ' ' || *content_type == '\t')
        content_type++;
    size_t n = strlen(media_type);
    if (strncasecmp(content_type, media_type, n) != 0)
        return false;
    char next = content_type[n];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

/* Values the server chose (session id, event id) go back into our headers: nothing that could
 * end a header line or smuggle another one. */
static bool header_safe(const char *v)
{
    if (v == NULL || v[0] == '\0' || strlen(v) > 1024)
        return false;
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (*p < 0x21 || *p > 0x7e)
            return false;
    }
    return true;
}

typedef struct header_set {
    char **v;
    size_t n;
} header_set_t;

static void hs_add(header_set_t *hs, const char *fmt, const char *value)
{
    buf_t b = BUF_INIT;
    buf_appendf(&b, fmt, value);
    hs->v = xrealloc(hs->v, (hs->n + 2) * sizeof(char *));
    hs->v[hs->n++] = buf_release(&b);
    hs->v[hs->n] = NULL;
}

static void hs_free(header_set_t *hs)
{
    for (size_t i = 0; i < hs->n; i++) {
        volatile char *p = hs->v[i]; /* the configured headers carry credentials */
        while (*p != '\0')
            *p++ = '\0';
        free(hs->v[i]);
    }
    free(hs->v);
}

static header_set_t headers_for(const http_conn_t *hc, const char *accept, bool json_body,
                                const char *last_event_id)
{
    header_set_t hs = {NULL, 0};
    for (const char *const *h = hc->base.opts->headers; h != NULL && *h != NULL; h++)
        hs_add(&hs, "%s", *h);
    if (accept != NULL)
        hs_add(&hs, "Accept: %s", accept);
    if (json_body)
        hs_add(&hs, "Content-Type: %s", "application/json");
    if (hc->protocol_version != NULL)
        hs_add(&hs, "MCP-Protocol-Version: %s", hc->protocol_version);
    if (hc->session_id != NULL)
        hs_add(&hs, "Mcp-Session-Id: %s", hc->session_id);
    if (last_event_id != NULL)
        hs_add(&hs, "Last-Event-ID: %s", last_event_id);
    if (hs.v == NULL)
        hs_add(&hs, "%s", "Accept: */*");
    return hs;
}

/* ---- stream lifetime ------------------------------------------------------------------------- */

static int on_sse_event(void *arg, const char *event, size_t event_len, const char *data,
                        size_t data_len);

static http_stream_t *stream_new(http_conn_t *hc, stream_kind_t kind, long long request_id)
{
    http_stream_t *s = xcalloc(1, sizeof(*s));
    s->hc = hc;
    s->kind = kind;
    s->request_id = request_id;
    buf_init(&s->data);
    sse_parser_init(&s->sse, on_sse_event, s);
    s->sse.max_event_bytes = (size_t)hc->base.max_message_bytes;
    TAILQ_INSERT_TAIL(&hc->live, s, link);
    return s;
}

static void stream_free(http_stream_t *s)
{
    if (s->call != NULL)
        upstream_cancel(s->call);
    if (s->delay != NULL)
        event_free(s->delay);
    free(s->body);
    free(s->last_event_id);
    buf_free(&s->data);
    sse_parser_free(&s->sse);
    free(s);
}

/* Ends a stream; may run inside its own callbacks, so the memory goes later. */
static void stream_kill(http_stream_t *s)
{
    http_conn_t *hc = s->hc;
    if (s->dead)
        return;
    if (s->call != NULL)
        upstream_cancel(s->call);
    s->call = NULL;
    if (s->delay != NULL)
        event_del(s->delay);
    if (hc->get == s)
        hc->get = NULL;
    s->dead = true;
    TAILQ_REMOVE(&hc->live, s, link);
    TAILQ_INSERT_TAIL(&hc->dead, s, link);
    event_active(hc->reap_ev, EV_TIMEOUT, 0);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    http_conn_t *hc = arg;
    http_stream_t *s;
    while ((s = TAILQ_FIRST(&hc->dead)) != NULL) {
        TAILQ_REMOVE(&hc->dead, s, link);
        stream_free(s);
    }
}

static bool gone(const http_stream_t *s)
{
    return s->hc->base.stopped || s->dead;
}

/* ---- upstream callbacks ---------------------------------------------------------------------- */

static int on_sse_event(void *arg, const char *event, size_t event_len, const char *data,
                        size_t data_len)
{
    http_stream_t *s = arg;
    bool is_message = event_len == 0 || (event_len == 7 && memcmp(event, "message", 7) == 0);
    if (!is_message || data_len == 0)
        return 0; /* other event types, and the empty events servers send to prime an id */
    s->delivered = true;
    mcp_conn_received(&s->hc->base, data, data_len);
    return gone(s) ? 1 : 0;
}

static void capture_session(http_stream_t *s)
{
    http_conn_t *hc = s->hc;
    const char *sid = upstream_call_header(s->call, "mcp-session-id");
    if (sid == NULL || hc->session_id != NULL)
        return;
    if (!header_safe(sid)) {
        log_warn(hc->base.log_id, "server sent an unusable Mcp-Session-Id; going on without it");
        return;
    }
    hc->session_id = xstrdup(sid);
}

static body_mode_t mode_for(http_stream_t *s, long status)
{
    const char *ct = upstream_call_header(s->call, "content-type");
    if (status == 202 || status == 204 || (s->kind != STREAM_POST && status == 405))
        return BODY_IGNORE;
    if (status < 200 || status >= 300)
        return BODY_ERROR;
    if (mcp_content_type_is(ct, "text/event-stream"))
        return BODY_SSE;
    if (s->kind != STREAM_POST)
        return BODY_ERROR;
    /* The transport asks for 202 to a POST that carried a notification or a response. Some
     * servers answer 200 with a JSON body instead (the conformance suite's initialize scenario
     * sends {"jsonrpc":"2.0","result":{}}, no id): nothing in it can be an answer of ours, so
     * it is dropped unread rather than taken for a broken server. */
    if (s->request_id < 0) {
        log_debug(s->hc->base.log_id,
                  "server answered a notification with HTTP %ld and a body; ignoring the body",
                  status);
        return BODY_IGNORE;
    }
    return BODY_JSON;
}

static int on_head(void *arg, upstream_call_t *call, long status)
{
    http_stream_t *s = arg;
    http_conn_t *hc = s->hc;
    s->status = status;
    if (s->kind == STREAM_POST)
        capture_session(s);

    if (status == 404 && hc->session_id != NULL) {
        hc->session_lost = true;
        mcp_conn_failed(&hc->base, "the server no longer knows our session (HTTP 404)", true);
        return 1;
    }
    s->mode = mode_for(s, status);
    if (s->kind == STREAM_GET && status == 405) {
        log_debug(hc->base.log_id, "server offers no stream for unasked messages (HTTP 405)");
        hc->get_off = true;
    }
    return 0;
}

static int on_body(void *arg, upstream_call_t *call, const char *data, size_t len)
{
    http_stream_t *s = arg;
    long limit = s->hc->base.max_message_bytes;
    switch (s->mode) {
    case BODY_SSE: {
        int rc = sse_parser_feed(&s->sse, data, len);
        if (rc == SSE_TOO_LARGE)
            mcp_conn_failed(&s->hc->base, "sent an event over the message limit", false);
        return rc != 0 ? 1 : 0;
    }
    case BODY_JSON:
        if (s->data.len + len > (size_t)limit) {
            mcp_conn_failed(&s->hc->base, "sent a body over the message limit", false);
            return 1;
        }
        buf_append(&s->data, data, len);
        return 0;
    case BODY_ERROR:
        if (s->data.len < ERROR_BODY_MAX)
            buf_append(&s->data, data,
                       len < ERROR_BODY_MAX - s->data.len ? len : ERROR_BODY_MAX - s->data.len);
        return 0;
    case BODY_IGNORE:
        break;
    }
    return 0;
}

/* ---- the end of a stream --------------------------------------------------------------------- */

/* The error body holds a JSON-RPC message (the SDKs answer a bad session with one). */
static bool is_jsonrpc(const buf_t *body)
{
    jsonrpc_batch_t b;
    if (body->len == 0 || jsonrpc_parse(body->data, body->len, &b, NULL, 0) != 0)
        return false;
    bool ok = true;
    for (size_t i = 0; i < b.count; i++)
        ok = ok && b.msgs[i].kind != JSONRPC_INVALID;
    jsonrpc_batch_free(&b);
    return ok;
}

static void http_error(http_stream_t *s)
{
    http_conn_t *hc = s->hc;
    const char *hint = "";
    if (s->status == 401 || s->status == 403)
        hint = " (check the credentials in headers)";
    else if (s->status == 404 || s->status == 405)
        hint = " (is this URL the server's MCP endpoint? it often ends in /mcp)";
    char reason[128];
    snprintf(reason, sizeof(reason), "HTTP %ld%s", s->status, hint);
    if (s->request_id < 0) {
        log_warn(hc->base.log_id, "server refused a notification or response: %s", reason);
        return;
    }
    if (is_jsonrpc(&s->data)) {
        mcp_conn_received(&hc->base, s->data.data, s->data.len);
        if (gone(s))
            return;
    }
    mcp_conn_request_failed(&hc->base, s->request_id, reason);
}

static bool awaiting(http_stream_t *s)
{
    return s->request_id >= 0 && mcp_conn_awaiting(&s->hc->base, s->request_id);
}

/* A stream that should have carried our answer ended without it. */
static void answer_missing(http_stream_t *s, const char *how)
{
    int resumes = s->kind == STREAM_RESUME ? s->resumes : 0;
    if (s->sse.last_event_id != NULL && header_safe(s->sse.last_event_id) && resumes < RESUME_MAX) {
        start_resume(s);
        return;
    }
    char reason[160];
    snprintf(reason, sizeof(reason), "the server's stream %s before the answer", how);
    mcp_conn_request_failed(&s->hc->base, s->request_id, reason);
}

static void post_done(http_stream_t *s, const upstream_result_t *res)
{
    http_conn_t *hc = s->hc;
    char reason[400];
    if (res->err != UPSTREAM_OK) {
        if (s->mode == BODY_SSE && awaiting(s) && res->err == UPSTREAM_ERR_RESET) {
            answer_missing(s, "dropped");
            return;
        }
        snprintf(reason, sizeof(reason), "POST failed: %s: %s", upstream_err_name(res->err),
                 res->message);
        mcp_conn_failed(&hc->base, reason, false);
        return;
    }
    switch (s->mode) {
    case BODY_JSON:
        if (s->data.len > 0)
            mcp_conn_received(&hc->base, s->data.data, s->data.len);
        if (!gone(s) && awaiting(s))
            mcp_conn_request_failed(&hc->base, s->request_id, "the JSON body held no answer");
        return;
    case BODY_SSE:
        if (awaiting(s))
            answer_missing(s, "ended");
        return;
    case BODY_ERROR:
        http_error(s);
        return;
    case BODY_IGNORE:
        return;
    }
}

static void resume_done(http_stream_t *s, const upstream_result_t *res)
{
    if (!awaiting(s))
        return;
    if (s->mode == BODY_SSE && (res->err == UPSTREAM_OK || res->err == UPSTREAM_ERR_RESET)) {
        answer_missing(s, res->err == UPSTREAM_OK ? "ended" : "dropped");
        return;
    }
    char reason[300];
    if (res->err != UPSTREAM_OK)
        snprintf(reason, sizeof(reason), "resuming the stream failed: %s: %s",
                 upstream_err_name(res->err), res->message);
    else
        snprintf(reason, sizeof(reason), "resuming the stream failed: HTTP %ld", s->status);
    mcp_conn_request_failed(&s->hc->base, s->request_id, reason);
}

static void schedule_get(http_conn_t *hc)
{
    long step = hc->get_retry_ms >= 0 ? hc->get_retry_ms : GET_RETRY_DEFAULT_MS;
    for (int i = 0; i < hc->get_failures && step < GET_RETRY_MAX_MS; i++)
        step *= 2;
    if (step > GET_RETRY_MAX_MS)
        step = GET_RETRY_MAX_MS;
    struct timeval tv = {step / 1000, (step % 1000) * 1000};
    evtimer_add(hc->get_timer, &tv);
}

static void get_done(http_stream_t *s, const upstream_result_t *res)
{
    http_conn_t *hc = s->hc;
    if (s->sse.last_event_id != NULL && header_safe(s->sse.last_event_id)) {
        free(hc->get_last_id);
        hc->get_last_id = xstrdup(s->sse.last_event_id);
    }
    if (s->sse.retry_ms >= 0)
        hc->get_retry_ms = s->sse.retry_ms;
    if (hc->get_off)
        return;
    if (s->mode == BODY_ERROR && res->err == UPSTREAM_OK) {
        log_warn(hc->base.log_id,
                 "server refused the stream for unasked messages (HTTP %ld); "
                 "going on without it",
                 s->status);
        hc->get_off = true;
        return;
    }
    hc->get_failures = s->delivered ? 0 : hc->get_failures + 1;
    log_debug(hc->base.log_id, "stream for unasked messages ended (%s); reopening",
              upstream_err_name(res->err));
    schedule_get(hc);
}

static void on_done(void *arg, upstream_call_t *call, const upstream_result_t *res)
{
    http_stream_t *s = arg;
    s->call = NULL; /* upstream recycles it after this returns */
    if (s->mode == BODY_SSE && res->err == UPSTREAM_OK && !sse_parser_finish(&s->sse))
        log_debug(s->hc->base.log_id, "server's event stream ended inside an event");
    switch (s->kind) {
    case STREAM_POST:
        post_done(s, res);
        break;
    case STREAM_GET:
        get_done(s, res);
        break;
    case STREAM_RESUME:
        resume_done(s, res);
        break;
    }
    stream_kill(s);
}

static const upstream_callbacks_t stream_callbacks = {on_head, on_body, on_done};

/* ---- starting streams ------------------------------------------------------------------------ */

static void stream_start(http_stream_t *s, const char *method, const char *accept,
                         const char *last_event_id)
{
    http_conn_t *hc = s->hc;
    bool post = strcmp(method, "POST") == 0;
    header_set_t hs = headers_for(hc, accept, post, last_event_id);
    upstream_request_t req = {
        .method = method,
        .url = hc->base.opts->url,
        .headers = (const char *const *)hs.v,
        .body = s->body,
        .body_len = s->body_len,
        .timeout_ms = post && s->request_id < 0 ? NOTIFY_TIMEOUT_MS : 0,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .idle_timeout_ms = 0,
    };
    s->call = upstream_start(hc->base.pool, &req, &stream_callbacks, s);
    hs_free(&hs);
    if (s->call == NULL) {
        stream_kill(s);
        mcp_conn_fail_soon(&hc->base, "cannot start an HTTP request (curl setup failed)");
    }
}

static void on_resume_delay(evutil_socket_t fd, short what, void *arg)
{
    http_stream_t *s = arg;
    stream_start(s, "GET", "text/event-stream", s->last_event_id);
}

/* Replaces the dropped stream old with a GET that resumes after its last event. */
static void start_resume(http_stream_t *old)
{
    http_conn_t *hc = old->hc;
    http_stream_t *s = stream_new(hc, STREAM_RESUME, old->request_id);
    s->resumes = (old->kind == STREAM_RESUME ? old->resumes : 0) + 1;
    s->last_event_id = xstrdup(old->sse.last_event_id);
    long ms = old->sse.retry_ms >= 0 ? old->sse.retry_ms : RESUME_DEFAULT_MS;
    log_debug(hc->base.log_id, "stream for request %lld dropped; resuming in %ld ms",
              old->request_id, ms);
    s->delay = evtimer_new(hc->base.base, on_resume_delay, s);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->delay, &tv);
}

static void open_get(http_conn_t *hc)
{
    if (hc->base.stopped || hc->get_off || hc->get != NULL)
        return;
    hc->get = stream_new(hc, STREAM_GET, -1);
    stream_start(hc->get, "GET", "text/event-stream", hc->get_last_id);
}

static void on_get_timer(evutil_socket_t fd, short what, void *arg)
{
    open_get(arg);
}

/* ---- ops ------------------------------------------------------------------------------------- */

static bool http_start(mcp_conn_t *conn, char *reason, size_t cap)
{
    http_conn_t *hc = (http_conn_t *)conn;
    hc->reap_ev = event_new(conn->base, -1, 0, on_reap, hc);
    hc->get_timer = evtimer_new(conn->base, on_get_timer, hc);
    if (conn->opts->url == NULL || conn->opts->url[0] == '\0') {
        snprintf(reason, cap, "no URL to connect to");
        return false;
    }
    if (conn->pool == NULL) {
        snprintf(reason, cap, "no HTTP client pool was given");
        return false;
    }
    return true; /* nothing to open: the first POST (initialize) is the connection */
}

static void http_send(mcp_conn_t *conn, const char *text, size_t len, long long request_id)
{
    http_conn_t *hc = (http_conn_t *)conn;
    if (conn->stopped)
        return;
    http_stream_t *s = stream_new(hc, STREAM_POST, request_id);
    s->body = xstrndup(text, len);
    s->body_len = len;
    stream_start(s, "POST", "application/json, text/event-stream", NULL);
}

static void http_ready(mcp_conn_t *conn, const char *protocol_version)
{
    http_conn_t *hc = (http_conn_t *)conn;
    free(hc->protocol_version);
    hc->protocol_version = xstrdup(protocol_version);
    open_get(hc);
}

static void http_abandon(mcp_conn_t *conn, long long request_id)
{
    http_conn_t *hc = (http_conn_t *)conn;
    http_stream_t *s, *next;
    for (s = TAILQ_FIRST(&hc->live); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->request_id == request_id)
            stream_kill(s);
    }
}

static int ignore_head(void *arg, upstream_call_t *call, long status)
{
    return 0;
}

static int ignore_body(void *arg, upstream_call_t *call, const char *data, size_t len)
{
    return 0;
}

static void ignore_done(void *arg, upstream_call_t *call, const upstream_result_t *res)
{
}

/* Ends the session on the server, best effort: nobody waits for the answer. */
static void delete_session(http_conn_t *hc)
{
    static const upstream_callbacks_t cb = {ignore_head, ignore_body, ignore_done};
    header_set_t hs = headers_for(hc, NULL, false, NULL);
    upstream_request_t req = {
        .method = "DELETE",
        .url = hc->base.opts->url,
        .headers = (const char *const *)hs.v,
        .timeout_ms = DELETE_TIMEOUT_MS,
        .connect_timeout_ms = DELETE_TIMEOUT_MS,
    };
    upstream_start(hc->base.pool, &req, &cb, NULL);
    hs_free(&hs);
}

static void http_stop(mcp_conn_t *conn)
{
    http_conn_t *hc = (http_conn_t *)conn;
    if (conn->stopped)
        return;
    conn->stopped = true;
    if (hc->get_timer != NULL)
        evtimer_del(hc->get_timer);
    http_stream_t *s;
    while ((s = TAILQ_FIRST(&hc->live)) != NULL)
        stream_kill(s);
    if (hc->session_id != NULL && !hc->session_lost)
        delete_session(hc);
}

static void http_destroy(mcp_conn_t *conn)
{
    http_conn_t *hc = (http_conn_t *)conn;
    on_reap(-1, 0, hc);
    if (hc->reap_ev != NULL)
        event_free(hc->reap_ev);
    if (hc->get_timer != NULL)
        event_free(hc->get_timer);
    free(hc->session_id);
    free(hc->protocol_version);
    free(hc->get_last_id);
    free(hc);
}

static const mcp_conn_ops_t http_ops = {
    .name = "http",
    .opens_at_start = true,
    .start = http_start,
    .send = http_send,
    .ready = http_ready,
    .abandon = http_abandon,
    .stop = http_stop,
    .destroy = http_destroy,
};

mcp_conn_t *mcp_http_new(void)
{
    http_conn_t *hc = xcalloc(1, sizeof(*hc));
    hc->base.ops = &http_ops;
    hc->get_retry_ms = -1;
    TAILQ_INIT(&hc->live);
    TAILQ_INIT(&hc->dead);
    return &hc->base;
}
