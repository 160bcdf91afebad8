/*
 * transport_sse.c - the legacy HTTP+SSE transport (MCP 2024-11-05), still served by many
 * servers: one long GET event stream carries everything the server says, and our messages
 * are POSTed to an endpoint the stream names first (transport.h has the contract).
 *
 * Sequence: GET the configured URL with Accept: text/event-stream; the server's first event,
 * "endpoint", holds a URI reference for our POSTs (usually a path with a session query, such
 * as "/message?sessionId=..."), resolved against the stream's URL; then the connection is
 * open and the client sends initialize. Every "message" event is one JSON-RPC document. The
 * answers to our POSTs (202 Accepted, as a rule) carry nothing; an HTTP error status fails the
 * request that was posted.
 *
 * The endpoint must be on the stream's own origin: our headers (credentials) go with every
 * POST, and a server has no business sending them elsewhere.
 *
 * The stream has no resumption in this protocol: when it ends, the session is gone and the
 * connection is reported lost; the client reconnects with backoff.
 */
#include "mcp/transport.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "http/upstream.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/sse.h"

#define CONNECT_TIMEOUT_MS 10000L
#define POST_TIMEOUT_MS 30000L /* the POST is only accepted; its answer comes on the stream */

typedef struct sse_conn sse_conn_t;

typedef struct sse_post {
    sse_conn_t *sc;
    upstream_call_t *call;
    char *body; /* owned; outlives the call */
    long long request_id;
    long status;
    bool dead;
    TAILQ_ENTRY(sse_post) link;
} sse_post_t;

TAILQ_HEAD(post_list, sse_post);

struct sse_conn {
    mcp_conn_t base;
    upstream_call_t *stream; /* the GET event stream */
    sse_parser_t parser;
    char *post_url; /* from the endpoint event; NULL until then */
    struct post_list live;
    struct post_list dead; /* finished POSTs, freed by reap_ev */
    struct event *reap_ev;
};

/* ---- URL resolution -------------------------------------------------------------------------- */

/* Length of "scheme://authority" at the start of url, or 0 when it is not http(s). */
static size_t origin_length(const char *url)
{
    size_t scheme;
    if (strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else
        return 0;
    size_t host = strcspn(url + scheme, "/?#");
    return host > 0 ? scheme + host : 0;
}

static bool same_origin(const char *a, const char *b)
{
    size_t la = origin_length(a), lb = origin_length(b);
    return la > 0 && la == lb && strncasecmp(a, b, la) == 0;
}

static bool usable_ref(const char *ref)
{
    if (ref == NULL || ref[0] == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *)ref; *p != '\0'; p++) {
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

char *mcp_sse_resolve_url(const char *base, const char *ref)
{
    size_t origin = base != NULL ? origin_length(base) : 0;
    if (origin == 0 || !usable_ref(ref))
        return NULL;

    buf_t out = BUF_INIT;
    if (origin_length(ref) > 0) {
        buf_appends(&out, ref);
    } else if (ref[0] == '/' && ref[1] == '/') {
        buf_append(&out, base, (size_t)(strstr(base, "://") - base) + 1); /* "http:" */
        buf_appends(&out, ref);
    } else if (ref[0] == '/') {
        buf_append(&out, base, origin);
        buf_appends(&out, ref);
    } else {
        /* Relative: against the base's path, without its query and fragment. */
        size_t path_len = strcspn(base + origin, "?#");
        if (ref[0] != '?') {
            const char *path = base + origin;
            size_t dir = 0;
            for (size_t i = 0; i < path_len; i++)
                dir = path[i] == '/' ? i + 1 : dir;
            path_len = dir;
        }
        buf_append(&out, base, origin);
        if (path_len == 0)
            buf_appendc(&out, '/');
        buf_append(&out, base + origin, path_len);
        buf_appends(&out, ref);
    }

    char *url = buf_release(&out);
    if (!same_origin(base, url)) {
        free(url);
        return NULL;
    }
    return url;
}

/* ---- POSTs ----------------------------------------------------------------------------------- */

static void post_kill(sse_post_t *p)
{
    sse_conn_t *sc = p->sc;
    if (p->dead)
        return;
    if (p->call != NULL)
        upstream_cancel(p->call);
    p->call = NULL;
    p->dead = true;
    TAILQ_REMOVE(&sc->live, p, link);
    TAILQ_INSERT_TAIL(&sc->dead, p, link);
    event_active(sc->reap_ev, EV_TIMEOUT, 0);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    sse_conn_t *sc = arg;
    sse_post_t *p;
    while ((p = TAILQ_FIRST(&sc->dead)) != NULL) {
        TAILQ_REMOVE(&sc->dead, p, link);
        free(p->body);
        free(p);
    }
}

static int post_head(void *arg, upstream_call_t *call, long status)
{
    sse_post_t *p = arg;
    p->status = status;
    return 0;
}

static int post_body(void *arg, upstream_call_t *call, const char *data, size_t len)
{
    return 0; /* the answer comes on the stream; the body of a 202 says nothing */
}

static void post_done(void *arg, upstream_call_t *call, const upstream_result_t *res)
{
    sse_post_t *p = arg;
    sse_conn_t *sc = p->sc;
    char reason[400];
    p->call = NULL;
    if (res->err != UPSTREAM_OK) {
        snprintf(reason, sizeof(reason), "POST to the endpoint failed: %s: %s",
                 upstream_err_name(res->err), res->message);
        mcp_conn_failed(&sc->base, reason, false);
    } else if (p->status >= 400 && p->request_id >= 0) {
        snprintf(reason, sizeof(reason), "HTTP %ld", p->status);
        mcp_conn_request_failed(&sc->base, p->request_id, reason);
    } else if (p->status >= 400) {
        log_warn(sc->base.log_id, "server refused a notification or response: HTTP %ld", p->status);
    }
    post_kill(p);
}

static const upstream_callbacks_t post_callbacks = {post_head, post_body, post_done};

static void sse_send(mcp_conn_t *conn, const char *text, size_t len, long long request_id)
{
    sse_conn_t *sc = (sse_conn_t *)conn;
    if (conn->stopped || sc->post_url == NULL)
        return;
    sse_post_t *p = xcalloc(1, sizeof(*p));
    p->sc = sc;
    p->body = xstrndup(text, len);
    p->request_id = request_id;
    TAILQ_INSERT_TAIL(&sc->live, p, link);

    size_t n = 0;
    while (conn->opts->headers != NULL && conn->opts->headers[n] != NULL)
        n++;
    const char **headers = xcalloc(n + 2, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        headers[i] = conn->opts->headers[i];
    headers[n] = "Content-Type: application/json";
    upstream_request_t req = {
        .method = "POST",
        .url = sc->post_url,
        .headers = headers,
        .body = p->body,
        .body_len = len,
        .timeout_ms = POST_TIMEOUT_MS,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
    };
    p->call = upstream_start(conn->pool, &req, &post_callbacks, p);
    free(headers);
    if (p->call == NULL) {
        post_kill(p);
        mcp_conn_fail_soon(conn, "cannot start an HTTP request (curl setup failed)");
    }
}

/* ---- the event stream ------------------------------------------------------------------------ */

static void on_endpoint(sse_conn_t *sc, const char *data, size_t len)
{
    if (sc->post_url != NULL) {
        log_warn(sc->base.log_id, "server named a second endpoint; keeping the first");
        return;
    }
    char *ref = xstrndup(data, len);
    sc->post_url = mcp_sse_resolve_url(sc->base.opts->url, ref);
    free(ref);
    if (sc->post_url == NULL) {
        mcp_conn_failed(&sc->base, "the endpoint event names no usable URL on the stream's origin",
                        false);
        return;
    }
    mcp_conn_opened(&sc->base);
}

static int on_event(void *arg, const char *event, size_t event_len, const char *data,
                    size_t data_len)
{
    sse_conn_t *sc = arg;
    if (event_len == 8 && memcmp(event, "endpoint", 8) == 0)
        on_endpoint(sc, data, data_len);
    else if ((event_len == 0 || (event_len == 7 && memcmp(event, "message", 7) == 0)) &&
             data_len > 0)
        mcp_conn_received(&sc->base, data, data_len);
    return sc->base.stopped ? 1 : 0;
}

static int stream_head(void *arg, upstream_call_t *call, long status)
{
    sse_conn_t *sc = arg;
    char reason[96];
    if (status != 200) {
        snprintf(reason, sizeof(reason), "the event stream was refused: HTTP %ld%s", status,
                 status == 401 || status == 403 ? " (check the credentials in headers)" : "");
        mcp_conn_failed(&sc->base, reason, false);
        return 1;
    }
    if (!mcp_content_type_is(upstream_call_header(call, "content-type"), "text/event-stream")) {
        mcp_conn_failed(&sc->base, "the event stream is not text/event-stream", false);
        return 1;
    }
    return 0;
}

static int stream_body(void *arg, upstream_call_t *call, const char *data, size_t len)
{
    sse_conn_t *sc = arg;
    int rc = sse_parser_feed(&sc->parser, data, len);
    if (rc == SSE_TOO_LARGE)
        mcp_conn_failed(&sc->base, "sent an event over the message limit", false);
    return rc != 0 ? 1 : 0;
}

static void stream_done(void *arg, upstream_call_t *call, const upstream_result_t *res)
{
    sse_conn_t *sc = arg;
    char reason[400];
    sc->stream = NULL;
    if (res->err != UPSTREAM_OK)
        snprintf(reason, sizeof(reason), "the event stream failed: %s: %s",
                 upstream_err_name(res->err), res->message);
    else
        snprintf(reason, sizeof(reason), "the server ended the event stream");
    mcp_conn_failed(&sc->base, reason, false);
}

static const upstream_callbacks_t stream_callbacks = {stream_head, stream_body, stream_done};

/* ---- ops ------------------------------------------------------------------------------------- */

static bool sse_start(mcp_conn_t *conn, char *reason, size_t cap)
{
    sse_conn_t *sc = (sse_conn_t *)conn;
    sc->reap_ev = event_new(conn->base, -1, 0, on_reap, sc);
    sc->parser.max_event_bytes = (size_t)conn->max_message_bytes;
    if (conn->opts->url == NULL || origin_length(conn->opts->url) == 0 || conn->pool == NULL) {
        snprintf(reason, cap, "no http(s) URL to connect to");
        return false;
    }

    size_t n = 0;
    while (conn->opts->headers != NULL && conn->opts->headers[n] != NULL)
        n++;
    const char **headers = xcalloc(n + 2, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        headers[i] = conn->opts->headers[i];
    headers[n] = "Accept: text/event-stream";
    upstream_request_t req = {
        .method = "GET",
        .url = conn->opts->url,
        .headers = headers,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
    };
    sc->stream = upstream_start(conn->pool, &req, &stream_callbacks, sc);
    free(headers);
    if (sc->stream == NULL) {
        snprintf(reason, cap, "cannot start an HTTP request (curl setup failed)");
        return false;
    }
    return true;
}

static void sse_stop(mcp_conn_t *conn)
{
    sse_conn_t *sc = (sse_conn_t *)conn;
    if (conn->stopped)
        return;
    conn->stopped = true;
    if (sc->stream != NULL)
        upstream_cancel(sc->stream);
    sc->stream = NULL;
    sse_post_t *p;
    while ((p = TAILQ_FIRST(&sc->live)) != NULL)
        post_kill(p);
}

static void sse_destroy(mcp_conn_t *conn)
{
    sse_conn_t *sc = (sse_conn_t *)conn;
    on_reap(-1, 0, sc);
    if (sc->reap_ev != NULL)
        event_free(sc->reap_ev);
    sse_parser_free(&sc->parser);
    free(sc->post_url);
    free(sc);
}

static const mcp_conn_ops_t sse_ops = {
    .name = "sse",
    .opens_at_start = false,
    .start = sse_start,
    .send = sse_send,
    .ready = NULL,
    .abandon = NULL,
    .stop = sse_stop,
    .destroy = sse_destroy,
};

mcp_conn_t *mcp_sse_new(void)
{
    sse_conn_t *sc = xcalloc(1, sizeof(*sc));
    sc->base.ops = &sse_ops;
    sse_parser_init(&sc->parser, on_event, sc);
    TAILQ_INIT(&sc->live);
    TAILQ_INIT(&sc->dead);
    return &sc->base;
}
