/*
 * mcp_endpoint.c - /mcp over Streamable HTTP: the HTTP side of gatehouse's MCP server
 * (contract in mcp_endpoint.h; the protocol in mcp/server.c; the user's page is
 * docs/mcp-server.md).
 *
 * A request goes through the same gates whatever its method: the Origin check and the bearer
 * token (see endpoint_admit), then the session (every request but initialize names one in
 * Mcp-Session-Id: missing is 400, unknown or expired is 404) and the MCP-Protocol-Version
 * header (unsupported is 400).
 *
 * POST. The body is parsed into messages (jsonrpc.h) and each request is answered from the
 * catalog snapshot at once, or forwarded through the hub (tools/call, resources/read,
 * prompts/get), or run here: when the request may use a Code Mode client's tools, /mcp serves
 * Code Mode's four meta-tools in their place (codemode/metatools.h; mcp/server.c lists them
 * as extra tools and hands their calls back), run like a forward but through
 * codemode_meta_call. When nothing was forwarded the answer goes out as JSON right away. Otherwise
 * a post_t waits for the hub's answers on this worker's loop; if they take longer than
 * SSE_AFTER_MS and the client accepts it, the answer turns into an SSE stream, so that each
 * response goes out as it arrives and a keep-alive comment flows while a slow tool runs
 * (proxies drop silent connections). A client that disconnects cancels its calls.
 *
 * GET. The session's stream of server-initiated messages. While a worker has at least one
 * such stream it subscribes to catalog changes (mcp_hub_subscribe on its own loop), compares
 * a digest of what a client can list (mcp_server_digest) and sends list_changed
 * notifications for what really changed. A session has one current stream: a newer GET takes
 * over and the older one ends at its next keep-alive.
 *
 * Threads. Each worker thread has a station: its waiting POSTs and open streams, its hub
 * subscription and a mailbox. Requests live and die on one thread, but a client's next POST
 * may land on another: notifications/cancelled for a call running elsewhere, or a DELETE of a
 * session whose stream is elsewhere, is posted as a letter to every other station, which
 * acts on it on its own thread. Stations are found through a thread-local pointer; the
 * global list is only for the letters and for mcp_endpoint_worker_free.
 *
 * Records. Every tools/call is a tool_calls row (source "mcp") and a tool-call metric, and a
 * POST that forwarded anything to a server is a requests row, as for the execute endpoint
 * (tool_log.h). Initialize, pings and lists are answered from memory and leave only their
 * access line, so that an IDE polling tools/list does not fill the request log.
 *
 * Lifetime (http/server.h): every path ends a request exactly once, writing the access line
 * first, since a finished request whose client has gone is freed at once.
 */
#include "gateway/mcp_endpoint.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "codemode/metatools.h"
#include "dialects/openai.h"
#include "gateway/handlers.h"
#include "gateway/inject.h"
#include "gateway/tool_log.h"
#include "mcp/filter.h"
#include "mcp/hub.h"
#include "mcp/jsonrpc.h"
#include "mcp/server.h"
#include "util/alloc.h"
#include "util/log.h"

#define SSE_AFTER_MS 1000 /* a POST still waiting for the hub this long becomes a stream */
#define KEEPALIVE_S                                                                                \
    15                         /* comment sent on quiet streams; also how soon a superseded stream \
                                * notices */
#define ERR_TRANSPORT (-32000) /* transport-level refusals, as the SDKs answer them */
#define ERR_NO_SESSION (-32001)
#define SID_LEN MCP_SERVER_SESSION_ID_LEN

typedef struct station station_t;
typedef struct post post_t;

/* One forwarded request of a POST. */
typedef struct call {
    post_t *post;
    size_t slot;                     /* the request's index in the POST */
    json_t *id;                      /* its JSON-RPC id; owned */
    mcp_server_forward_t fwd;        /* params handed to the hub (NULL after) */
    mcp_hub_call_t *hub;             /* while the hub works on it */
    codemode_meta_t meta;            /* a Code Mode meta-tool run here, or CODEMODE_META_NONE */
    codemode_meta_call_t *meta_call; /* while it runs */
    bool started;                    /* handed to the hub */
    bool answered;                   /* the hub answered, or the call was cancelled */
    double started_at;
    double started_unix;
    char *arguments; /* tools/call: the arguments as JSON text, kept for the request log when
                      * content may be logged; owned */
} call_t;

struct post {
    TAILQ_ENTRY(post) link;
    station_t *st;
    http_request_t *req;
    char rid[GATEWAY_REQUEST_ID_MAX];
    char session[SID_LEN + 1];
    double started_at;
    bool is_batch;
    bool sse_ok;      /* the client accepts an SSE answer */
    bool streaming;   /* the answer became an SSE stream */
    bool client_gone; /* the client disconnected first (logged as 499) */
    bool log_content; /* bodies, arguments and results may go to the request log */
    double started_unix;
    double first_sent_at; /* when the answer (or its stream) started; 0 before */
    double tools_s;       /* time the forwarded calls took, added up */
    size_t n_slots;       /* messages in the POST */
    json_t **replies;     /* per message: its response, or NULL (none yet, or none owed) */
    bool *sent;           /* streaming: response i has gone out */
    call_t *calls;        /* the forwards */
    size_t n_calls;
    codemode_bindings_t *codemode;  /* the code-mode tools this POST may use, or NULL */
    codemode_binding_level_t level; /* of Code Mode's stub tree */
    size_t waiting; /* forwards not answered yet, plus one until post_run has started
                     * them all, so that no callback finishes a half-built POST */
    struct event *timer;
};

typedef struct stream {
    TAILQ_ENTRY(stream) link;
    station_t *st;
    http_request_t *req;
    char rid[GATEWAY_REQUEST_ID_MAX];
    char session[SID_LEN + 1];
    uint64_t gen; /* the session's stream generation this stream holds */
    double started_at;
    struct event *keepalive;
} stream_t;

typedef enum letter_kind {
    LETTER_CANCEL,        /* notifications/cancelled for (session, id) */
    LETTER_SESSION_ENDED, /* the session was deleted: end its stream */
} letter_kind_t;

typedef struct letter {
    struct letter *next;
    letter_kind_t kind;
    char session[SID_LEN + 1];
    json_t *id; /* cancel: the request id; owned */
} letter_t;

struct station {
    struct event_base *base;
    TAILQ_HEAD(, post) posts;
    TAILQ_HEAD(, stream) streams;
    mcp_hub_sub_t *sub;         /* while streams is not empty */
    mcp_server_digest_t digest; /* what the streams were last told about */
    bool in_change;             /* inside on_catalog_change: unsubscribe after, not during */
    bool draining;
    pthread_mutex_t mail_lock;
    letter_t *mail;        /* under mail_lock */
    struct event *mail_ev; /* activated by senders from any thread */
};

static pthread_mutex_t stations_lock = PTHREAD_MUTEX_INITIALIZER;
static station_t **stations;
static size_t n_stations;
static _Thread_local station_t *my_station;

static void post_maybe_done(post_t *p);
static bool cancel_local(station_t *st, const char *session, const json_t *id);
static void end_session_streams(station_t *st, const char *session);

/* ---- answering ------------------------------------------------------------------------------ */

static void respond(http_request_t *req, const char *rid, double started_at, int status,
                    const char *content_type, const char *body, size_t len)
{
    gateway_access_log(req, rid, status, NULL, started_at, 0, 0);
    http_response_header(req, "x-request-id", rid);
    http_respond(req, status, content_type, body, len);
}

/* Answers with one JSON-RPC document (stolen). */
static void respond_json(http_request_t *req, const char *rid, double started_at, int status,
                         json_t *doc)
{
    size_t len = 0;
    char *text = jsonrpc_dump(doc, &len);
    json_decref(doc);
    if (text == NULL) {
        log_crit(rid, "mcp: an answer could not be encoded as JSON; answering 500");
        respond(req, rid, started_at, 500, "application/json", "", 0);
        return;
    }
    respond(req, rid, started_at, status, "application/json", text, len);
    free(text);
}

/* A refusal before any message was looked at: HTTP status plus a JSON-RPC error with id
 * null, the shape the SDKs expect. The client caused it, so it is logged at info. */
static void refuse(http_request_t *req, const char *rid, double started_at, int status, int code,
                   const char *message)
{
    log_info(rid, "mcp: %s /mcp answered %d: %s", http_request_method(req), status, message);
    respond_json(req, rid, started_at, status, jsonrpc_error(NULL, code, message, NULL));
}

/* One SSE event carrying a JSON-RPC message. Returns false when the client is gone. */
static bool sse_send(http_request_t *req, const json_t *msg)
{
    size_t len = 0;
    char *text = jsonrpc_dump(msg, &len);
    if (text == NULL)
        return true; /* cannot happen for trees we built; skipping is all we could do */
    buf_t ev = BUF_INIT;
    buf_appends(&ev, "event: message\ndata: ");
    buf_append(&ev, text, len);
    buf_appends(&ev, "\n\n");
    size_t queued = http_stream_write(req, ev.data, ev.len);
    buf_free(&ev);
    free(text);
    return queued > 0;
}

static void sse_start(http_request_t *req, const char *rid)
{
    http_response_header(req, "x-request-id", rid); /* the server adds the no-cache headers */
    http_stream_start(req, 200, "text/event-stream");
}

/* ---- stations ------------------------------------------------------------------------------- */

static void on_mail(evutil_socket_t fd, short what, void *arg)
{
    station_t *st = arg;
    pthread_mutex_lock(&st->mail_lock);
    letter_t *l = st->mail;
    st->mail = NULL;
    pthread_mutex_unlock(&st->mail_lock);

    while (l != NULL) {
        letter_t *next = l->next;
        if (l->kind == LETTER_CANCEL)
            cancel_local(st, l->session, l->id);
        else
            end_session_streams(st, l->session);
        json_decref(l->id);
        free(l);
        l = next;
    }
}

/* This thread's station, made on the first /mcp request the worker sees. */
static station_t *station_of(gateway_worker_t *w)
{
    struct event_base *base = gateway_worker_base(w);
    if (my_station != NULL && my_station->base == base)
        return my_station;

    station_t *st = xcalloc(1, sizeof(*st));
    st->base = base;
    TAILQ_INIT(&st->posts);
    TAILQ_INIT(&st->streams);
    pthread_mutex_init(&st->mail_lock, NULL);
    st->mail_ev = event_new(base, -1, 0, on_mail, st);

    pthread_mutex_lock(&stations_lock);
    stations = xrealloc(stations, (n_stations + 1) * sizeof(*stations));
    stations[n_stations++] = st;
    pthread_mutex_unlock(&stations_lock);
    my_station = st;
    return st;
}

/* Posts a copy of the letter to every station but from. */
static void broadcast(const station_t *from, letter_kind_t kind, const char *session,
                      const json_t *id)
{
    pthread_mutex_lock(&stations_lock);
    for (size_t i = 0; i < n_stations; i++) {
        station_t *st = stations[i];
        if (st == from)
            continue;
        letter_t *l = xcalloc(1, sizeof(*l));
        l->kind = kind;
        snprintf(l->session, sizeof(l->session), "%s", session);
        l->id = id ? json_deep_copy(id) : NULL;

        pthread_mutex_lock(&st->mail_lock);
        l->next = st->mail;
        st->mail = l;
        pthread_mutex_unlock(&st->mail_lock);
        event_active(st->mail_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&stations_lock);
}

/* ---- the gates ------------------------------------------------------------------------------ */

/* The tokens /mcp requires (mcp.server.tokens); none configured leaves /mcp open to loopback
 * peers only. */
static const char *const *required_tokens(const config_t *cfg, size_t *n)
{
    *n = cfg->mcp_server_tokens != NULL ? cfg->n_mcp_server_tokens : 0;
    return (const char *const *)cfg->mcp_server_tokens;
}

/* Origin and bearer token. Answers and returns false when the request may not go on. */
static bool endpoint_admit(http_request_t *req, const char *rid, double started_at)
{
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    size_t n_tokens;
    const char *const *tokens = required_tokens(snap->cfg, &n_tokens);
    bool token_ok =
        mcp_server_token_ok(http_request_header(req, "authorization"), tokens, n_tokens);
    gateway_snapshot_release(snap);

    if (n_tokens > 0 && !token_ok) {
        log_info(rid, "mcp: %s /mcp answered 401: missing or wrong bearer token",
                 http_request_method(req));
        http_response_header(req, "www-authenticate", "Bearer realm=\"gatehouse-mcp\"");
        respond_json(req, rid, started_at, 401,
                     jsonrpc_error(NULL, ERR_TRANSPORT,
                                   "a valid token is required (Authorization: Bearer ...)", NULL));
        return false;
    }
    if (n_tokens == 0 && !mcp_server_peer_is_loopback(http_request_peer(req))) {
        refuse(req, rid, started_at, 403, ERR_TRANSPORT,
               "/mcp without mcp.server.tokens answers loopback clients only");
        return false;
    }
    /* With tokens, a page from elsewhere must hold one; without, only local pages may call,
     * which is what stops DNS rebinding from reaching an open loopback server. */
    if (n_tokens == 0 && !mcp_server_origin_ok(http_request_header(req, "origin"))) {
        refuse(req, rid, started_at, 403, ERR_TRANSPORT, "Origin not allowed");
        return false;
    }
    return true;
}

/* Mcp-Session-Id and MCP-Protocol-Version of a request after initialize. Fills s, or answers
 * and returns false. */
static bool endpoint_session(http_request_t *req, const char *rid, double started_at,
                             mcp_server_session_t *s)
{
    const char *id = http_request_header(req, "mcp-session-id");
    if (id == NULL) {
        refuse(req, rid, started_at, 400, ERR_TRANSPORT,
               "Bad Request: Mcp-Session-Id header is required (send initialize first)");
        return false;
    }
    if (!mcp_server_session_touch(id, gateway_now(), s)) {
        refuse(req, rid, started_at, 404, ERR_NO_SESSION, "Session not found");
        return false;
    }
    /* Without the header the session's negotiated version applies (the specification's
     * 2025-03-26 fallback is for servers that cannot tell). */
    const char *version = http_request_header(req, "mcp-protocol-version");
    if (version != NULL && !mcp_server_version_supported(version)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Bad Request: unsupported MCP-Protocol-Version %.40s", version);
        refuse(req, rid, started_at, 400, ERR_TRANSPORT, msg);
        return false;
    }
    return true;
}

/* ---- POST: calls ---------------------------------------------------------------------------- */

static void call_log(const call_t *c, const mcp_hub_result_t *res)
{
    const char *what = c->fwd.exposed ? c->fwd.exposed : "-";
    double ms = (gateway_now() - c->started_at) * 1000.0;
    if (res->result != NULL)
        log_info(c->post->rid, "mcp: %s %s via %s answered in %.0f ms", c->fwd.method, what,
                 c->fwd.client, ms);
    else
        log_info(c->post->rid, "mcp: %s %s via %s failed in %.0f ms: %d %s", c->fwd.method, what,
                 c->fwd.client, ms, res->err ? res->err->code : 0,
                 res->err ? res->err->message : "");
}

/* A tools/call's row and metrics (tool_log.h); other forwards are not tool calls, and neither
 * are Code Mode's meta-tools (the executor records the tool calls a script makes). */
static void call_record(const call_t *c, const json_t *result, const char *error)
{
    if (c->fwd.tool == NULL || c->meta != CODEMODE_META_NONE)
        return;
    post_t *p = c->post;
    tool_log_call_t row = {
        .request_id = p->rid,
        .source = "mcp",
        .mcp_client = c->fwd.client,
        .tool = c->fwd.tool,
        .started_unix = c->started_unix,
        .duration_s = gateway_now() - c->started_at,
        .result = result,
        .error = error,
        .arguments = c->arguments,
        .log_content = p->log_content,
    };
    tool_log_call(&row);
}

static void on_hub_done(void *arg, const mcp_hub_result_t *res)
{
    call_t *c = arg;
    post_t *p = c->post;
    c->hub = NULL;
    c->answered = true;
    call_log(c, res);
    call_record(c, res->result, res->err != NULL ? res->err->message : NULL);
    p->tools_s += gateway_now() - c->started_at;
    p->replies[c->slot] = mcp_server_forward_reply(c->id, &c->fwd, res->result, res->err);
    p->waiting--;
    post_maybe_done(p);
}

static void on_meta_done(void *arg, const char *text, bool is_error)
{
    call_t *c = arg;
    post_t *p = c->post;
    c->meta_call = NULL;
    c->answered = true;
    log_info(p->rid, "mcp: tools/call %s (Code Mode) answered in %.0f ms%s", c->fwd.exposed,
             (gateway_now() - c->started_at) * 1000.0, is_error ? " with an error" : "");
    p->replies[c->slot] = mcp_server_text_result(c->id, text, is_error);
    p->waiting--;
    post_maybe_done(p);
}

/* Runs one of Code Mode's meta-tools here; it answers from the loop, never at once. */
static void call_start_meta(post_t *p, call_t *c)
{
    codemode_meta_opts_t o = {
        .bindings = p->codemode,
        .level = p->level,
        .request_id = p->rid,
        .log_content = p->log_content,
    };
    c->started_at = gateway_now();
    c->started = true;
    p->waiting++;
    c->meta_call = codemode_meta_call(p->st->base, c->meta, c->fwd.params, &o, on_meta_done, c);
}

/* Hands one forward to the hub. Failures to queue are answered at once. */
static void call_start(post_t *p, call_t *c)
{
    if (c->meta != CODEMODE_META_NONE) {
        call_start_meta(p, c);
        return;
    }
    mcp_server_forward_t *f = &c->fwd;
    json_t *params = f->params;
    f->params = NULL; /* the hub takes it */
    c->started_at = gateway_now();
    c->started_unix = gateway_wall_now();
    if (p->log_content && f->tool != NULL)
        c->arguments = params != NULL ? json_dumps(params, JSON_COMPACT) : xstrdup("{}");
    p->waiting++;

    c->started = true;
    mcp_hub_call_t *h;
    if (strcmp(f->method, "tools/call") == 0)
        h = mcp_hub_call_tool(p->st->base, f->client, f->tool, params, p->rid, on_hub_done, c);
    else
        h = mcp_hub_request(p->st->base, f->client, f->method, params, p->rid, on_hub_done, c);
    if (!c->answered)
        c->hub = h;
    if (h == NULL && !c->answered) {
        mcp_error_t err = {.code = MCP_ERR_UNAVAILABLE};
        snprintf(err.message, sizeof(err.message), "the tool hub is not running");
        mcp_hub_result_t res = {.err = &err};
        on_hub_done(c, &res);
    }
}

/* Stops waiting for one call: the hub drops it and no response is owed (notifications/
 * cancelled), or the client is gone; why says which, for the call's row. A call not started
 * yet (cancelled in its own batch) is simply never started. */
static void call_cancel(call_t *c, const char *why)
{
    if (c->answered)
        return;
    c->answered = true;
    if (!c->started)
        return;
    if (c->hub != NULL)
        mcp_hub_cancel(c->hub);
    c->hub = NULL;
    call_record(c, NULL, why);
    c->post->tools_s += gateway_now() - c->started_at;
    codemode_meta_cancel(c->meta_call);
    c->meta_call = NULL;
    c->post->waiting--;
}

/* ---- POST: the answer ----------------------------------------------------------------------- */

static void post_free(post_t *p)
{
    TAILQ_REMOVE(&p->st->posts, p, link);
    for (size_t i = 0; i < p->n_calls; i++) {
        call_cancel(&p->calls[i], "cancelled: gatehouse is shutting down");
        json_decref(p->calls[i].id);
        free(p->calls[i].arguments);
        mcp_server_outcome_t o = {.fwd = p->calls[i].fwd};
        mcp_server_outcome_free(&o);
    }
    for (size_t i = 0; i < p->n_slots; i++)
        json_decref(p->replies[i]);
    if (p->timer != NULL)
        event_free(p->timer);
    codemode_bindings_release(p->codemode);
    free(p->calls);
    free(p->replies);
    free(p->sent);
    free(p);
}

/* The responses not yet sent, in order: one object, or an array for a batch. NULL when no
 * response is owed (every request was cancelled). */
static json_t *collect_replies(post_t *p)
{
    json_t *all = json_array();
    for (size_t i = 0; i < p->n_slots; i++) {
        if (p->replies[i] != NULL && !p->sent[i])
            json_array_append(all, p->replies[i]);
    }
    if (json_array_size(all) == 0) {
        json_decref(all);
        return NULL;
    }
    if (p->is_batch)
        return all;
    json_t *one = json_incref(json_array_get(all, 0));
    json_decref(all);
    return one;
}

/* Writes the responses that arrived since the last call, on a stream. */
static void post_flush_stream(post_t *p)
{
    for (size_t i = 0; i < p->n_slots; i++) {
        if (p->replies[i] != NULL && !p->sent[i]) {
            sse_send(p->req, p->replies[i]);
            p->sent[i] = true;
        }
    }
}

/* Every response of the POST, sent or not, as the log keeps it: one object, or an array for a
 * batch. Owned; NULL when no response was owed. */
static char *logged_replies(const post_t *p, size_t *len)
{
    json_t *all = json_array();
    for (size_t i = 0; i < p->n_slots; i++) {
        if (p->replies[i] != NULL)
            json_array_append(all, p->replies[i]);
    }
    char *text = NULL;
    if (json_array_size(all) > 0)
        text = jsonrpc_dump(p->is_batch ? all : json_array_get(all, 0), len);
    json_decref(all);
    return text;
}

/* The POST's requests row, when it forwarded anything (see "Records" above). */
static void post_record(const post_t *p, int status)
{
    if (p->n_calls == 0)
        return;
    size_t len = 0;
    char *body = p->log_content && status != 499 ? logged_replies(p, &len) : NULL;
    double now = gateway_now();
    tool_log_request_t r = {
        .http = p->req,
        .request_id = p->rid,
        .dialect = "mcp",
        .started_unix = p->started_unix,
        .latency_s = now - p->started_at,
        .ttft_s = p->first_sent_at > 0 ? p->first_sent_at - p->started_at
                  : status == 499      ? -1
                                       : now - p->started_at,
        .upstream_s = p->tools_s,
        .status = status,
        .stream = p->streaming,
        .error_type = status == 499 ? dialect_openai_error_type(499) : NULL,
        .error_message = status == 499 ? "the client disconnected" : NULL,
        .log_content = p->log_content,
        .response_body = body,
        .response_len = len,
    };
    tool_log_request(&r);
    free(body);
}

static void post_finish(post_t *p)
{
    int status = p->client_gone ? 499 : 200;
    if (p->streaming) {
        post_flush_stream(p);
        post_record(p, status);
        gateway_access_log(p->req, p->rid, status, NULL, p->started_at, 0, 0);
        http_stream_end(p->req);
    } else {
        json_t *doc = collect_replies(p);
        if (doc == NULL && !p->client_gone)
            status = 202; /* every request was cancelled: no response is owed */
        post_record(p, status);
        if (doc != NULL)
            respond_json(p->req, p->rid, p->started_at, status, doc);
        else
            respond(p->req, p->rid, p->started_at, status, "application/json", "", 0);
    }
    post_free(p);
}

static void post_maybe_done(post_t *p)
{
    if (p->waiting > 0) {
        if (p->streaming)
            post_flush_stream(p);
        return;
    }
    post_finish(p);
}

/* The first tick turns a slow answer into a stream; later ticks keep it alive. */
static void on_post_timer(evutil_socket_t fd, short what, void *arg)
{
    post_t *p = arg;
    if (!p->streaming) {
        p->streaming = true;
        p->first_sent_at = gateway_now();
        sse_start(p->req, p->rid);
        log_debug(p->rid, "mcp: answer still waiting after %d ms; streaming it", SSE_AFTER_MS);
        post_flush_stream(p);
    } else {
        http_stream_write(p->req, ": keep-alive\n\n", 14);
    }
    struct timeval tv = {KEEPALIVE_S, 0};
    event_add(p->timer, &tv);
}

static void on_post_close(http_request_t *req, void *arg)
{
    post_t *p = arg;
    log_info(p->rid, "mcp: client left before its answer; cancelling %zu call(s)", p->waiting);
    p->client_gone = true;
    for (size_t i = 0; i < p->n_calls; i++)
        call_cancel(&p->calls[i], "cancelled: the client disconnected");
    post_finish(p);
}

/* ---- POST: notifications -------------------------------------------------------------------- */

/* Cancels (session, id) if it waits on this station. True when found. */
static bool cancel_local(station_t *st, const char *session, const json_t *id)
{
    post_t *p;
    TAILQ_FOREACH (p, &st->posts, link) {
        if (strcmp(p->session, session) != 0)
            continue;
        for (size_t i = 0; i < p->n_calls; i++) {
            call_t *c = &p->calls[i];
            if (!c->answered && jsonrpc_id_equal(c->id, id)) {
                log_info(p->rid, "mcp: %s %s cancelled by the client", c->fwd.method,
                         c->fwd.exposed);
                call_cancel(c, "cancelled by the client (notifications/cancelled)");
                post_maybe_done(p);
                return true;
            }
        }
    }
    return false;
}

static void on_notification(station_t *st, const mcp_server_session_t *s, const jsonrpc_msg_t *m)
{
    if (strcmp(m->method, "notifications/initialized") == 0) {
        mcp_server_session_mark_initialized(s->id);
        return;
    }
    if (strcmp(m->method, "notifications/cancelled") == 0) {
        json_t *id = json_object_get(m->params, "requestId");
        if (jsonrpc_id_valid(id) && !cancel_local(st, s->id, id))
            broadcast(st, LETTER_CANCEL, s->id, id); /* running on another worker, or done */
    }
    /* Anything else (progress, roots/list_changed, ...) needs nothing from a gateway. */
}

/* ---- POST ----------------------------------------------------------------------------------- */

static const char *filter_header(void *arg, const char *name)
{
    return http_request_header(arg, name);
}

static post_t *post_new(station_t *st, http_request_t *req, const char *rid, double started_at,
                        const mcp_server_session_t *s, const jsonrpc_batch_t *b)
{
    post_t *p = xcalloc(1, sizeof(*p));
    p->st = st;
    p->req = req;
    snprintf(p->rid, sizeof(p->rid), "%s", rid);
    snprintf(p->session, sizeof(p->session), "%s", s->id);
    p->started_at = started_at;
    p->started_unix = gateway_wall_now() - (gateway_now() - started_at);
    p->log_content = tool_log_content_allowed(req);
    p->is_batch = b->is_batch;
    p->n_slots = b->count;
    p->replies = xcalloc(b->count, sizeof(json_t *));
    p->sent = xcalloc(b->count, sizeof(bool));
    p->calls = xcalloc(b->count, sizeof(call_t));
    p->waiting = 1; /* the hold, released by post_run */
    bool json_ok;
    mcp_server_accepts(http_request_header(req, "accept"), &json_ok, &p->sse_ok);
    TAILQ_INSERT_TAIL(&st->posts, p, link);
    return p;
}

/* Answers or forwards every message. */
static void post_dispatch(post_t *p, const mcp_server_session_t *s, const jsonrpc_batch_t *b)
{
    mcp_filter_t filter = MCP_FILTER_INIT;
    mcp_filter_from_headers(&filter, filter_header, p->req);
    mcp_catalog_t *cat = mcp_hub_catalog();
    mcp_server_ctx_t ctx = {.cat = cat, .filter = mcp_filter_is_open(&filter) ? NULL : &filter};

    /* Code Mode: its meta-tools in place of the code-mode clients' tools. */
    p->codemode = inject_codemode_bindings(cat, p->req);
    json_t *meta = p->codemode != NULL ? codemode_meta_mcp_tools() : NULL;
    ctx.extra_tools = meta;
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    p->level = inject_binding_level(snap->cfg);
    gateway_snapshot_release(snap);

    for (size_t i = 0; i < b->count; i++) {
        const jsonrpc_msg_t *m = &b->msgs[i];
        if (m->kind == JSONRPC_NOTIFICATION) {
            on_notification(p->st, s, m);
        } else if (m->kind == JSONRPC_INVALID) {
            p->replies[i] = jsonrpc_error_for_invalid(m);
        } else if (m->kind == JSONRPC_REQUEST) {
            mcp_server_outcome_t o;
            mcp_server_request(&ctx, m, &o);
            if (o.kind == MCP_SERVER_REPLY) {
                p->replies[i] = o.reply;
                o.reply = NULL;
                mcp_server_outcome_free(&o);
                continue;
            }
            call_t *c = &p->calls[p->n_calls++];
            *c = (call_t){.post = p, .slot = i, .id = json_deep_copy(m->id), .fwd = o.fwd};
            c->meta =
                o.kind == MCP_SERVER_LOCAL ? codemode_meta_kind(o.fwd.tool) : CODEMODE_META_NONE;
        }
        /* Responses: we never send requests to /mcp clients, so there is nothing to match. */
    }
    json_decref(meta);
    if (cat != NULL)
        mcp_catalog_release(cat);
    mcp_filter_free(&filter);
}

/* Starts the calls once every message is read, so that a callback never meets a half-built
 * POST, then answers at once or waits. */
static void post_run(post_t *p)
{
    for (size_t i = 0; i < p->n_calls; i++) {
        if (!p->calls[i].answered)
            call_start(p, &p->calls[i]);
    }
    if (--p->waiting == 0) {
        post_finish(p);
        return;
    }
    p->timer = evtimer_new(p->st->base, on_post_timer, p);
    struct timeval tv = {SSE_AFTER_MS / 1000, (SSE_AFTER_MS % 1000) * 1000};
    if (p->sse_ok)
        event_add(p->timer, &tv);
    http_request_on_close(p->req, on_post_close, p);
}

/* initialize: a new session, whatever the request carried. */
static void post_initialize(http_request_t *req, const char *rid, double started_at,
                            const jsonrpc_msg_t *m)
{
    const char *version;
    const char *client;
    json_t *answer = mcp_server_initialize(m, &version, &client);
    if (version == NULL) {
        respond_json(req, rid, started_at, 200, answer);
        return;
    }
    mcp_server_session_t s;
    if (mcp_server_session_create(version, client, gateway_now(), &s) != 0) {
        json_decref(answer);
        log_crit(rid, "mcp: getrandom failed; cannot open a session");
        refuse(req, rid, started_at, 500, JSONRPC_INTERNAL_ERROR, "cannot create a session");
        return;
    }
    log_info(rid, "mcp: session %.8s... opened for %s (protocol %s)", s.id,
             client[0] ? client : "an unnamed client", version);
    http_response_header(req, "mcp-session-id", s.id);
    respond_json(req, rid, started_at, 200, answer);
}

/* Finds initialize in a document: its index, -1 when absent. */
static long find_initialize(const jsonrpc_batch_t *b)
{
    for (size_t i = 0; i < b->count; i++) {
        const jsonrpc_msg_t *m = &b->msgs[i];
        if (m->kind == JSONRPC_REQUEST && strcmp(m->method, "initialize") == 0)
            return (long)i;
    }
    return -1;
}

static bool content_type_json(const char *ct)
{
    if (ct == NULL)
        return true; /* lenient: the body decides */
    size_t n = strcspn(ct, "; \t");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static void handle_post(station_t *st, http_request_t *req, const char *rid, double started_at)
{
    if (!content_type_json(http_request_header(req, "content-type"))) {
        refuse(req, rid, started_at, 415, ERR_TRANSPORT,
               "Unsupported Media Type: Content-Type must be application/json");
        return;
    }
    size_t len;
    const char *body = http_request_body(req, &len);
    jsonrpc_batch_t b;
    char why[200];
    int rc = jsonrpc_parse(body, len, &b, why, sizeof(why));
    if (rc != 0) {
        refuse(req, rid, started_at, 400, rc, rc == JSONRPC_PARSE_ERROR ? "Parse error" : why);
        return;
    }

    long init = find_initialize(&b);
    if (init >= 0 && b.count == 1) {
        post_initialize(req, rid, started_at, &b.msgs[0]);
    } else if (init >= 0) {
        refuse(req, rid, started_at, 400, JSONRPC_INVALID_REQUEST,
               "Invalid Request: initialize must be sent alone");
    } else {
        mcp_server_session_t s;
        if (endpoint_session(req, rid, started_at, &s)) {
            post_t *p = post_new(st, req, rid, started_at, &s, &b);
            post_dispatch(p, &s, &b);
            post_run(p);
        }
    }
    jsonrpc_batch_free(&b);
}

/* ---- GET: the session's stream -------------------------------------------------------------- */

static void stream_free(stream_t *s)
{
    station_t *st = s->st;
    TAILQ_REMOVE(&st->streams, s, link);
    event_free(s->keepalive);
    free(s);
    if (TAILQ_EMPTY(&st->streams) && st->sub != NULL && !st->in_change) {
        mcp_hub_unsubscribe(st->sub);
        st->sub = NULL;
    }
}

static void stream_end(stream_t *s, const char *why)
{
    log_info(s->rid, "mcp: stream of session %.8s... ends: %s", s->session, why);
    gateway_access_log(s->req, s->rid, 200, NULL, s->started_at, 0, 0);
    http_stream_end(s->req);
    stream_free(s);
}

static void end_session_streams(station_t *st, const char *session)
{
    stream_t *s = TAILQ_FIRST(&st->streams);
    while (s != NULL) {
        stream_t *next = TAILQ_NEXT(s, link);
        if (strcmp(s->session, session) == 0)
            stream_end(s, "session deleted");
        s = next;
    }
}

/* The catalog changed: tell every current stream what changed for it. */
static void on_catalog_change(void *arg)
{
    station_t *st = arg;
    mcp_catalog_t *cat = mcp_hub_catalog();
    mcp_server_digest_t now;
    mcp_server_digest(cat, &now);
    if (cat != NULL)
        mcp_catalog_release(cat);
    json_t *notes = mcp_server_changes(&st->digest, &now);
    st->digest = now;

    st->in_change = true;
    stream_t *s = TAILQ_FIRST(&st->streams);
    while (s != NULL) {
        stream_t *next = TAILQ_NEXT(s, link);
        if (!mcp_server_session_stream_current(s->session, s->gen)) {
            stream_end(s, "superseded or expired");
        } else {
            for (size_t i = 0; i < json_array_size(notes); i++)
                sse_send(s->req, json_array_get(notes, i));
        }
        s = next;
    }
    st->in_change = false;
    json_decref(notes);
    if (TAILQ_EMPTY(&st->streams) && st->sub != NULL) {
        mcp_hub_unsubscribe(st->sub);
        st->sub = NULL;
    }
}

static void on_stream_keepalive(evutil_socket_t fd, short what, void *arg)
{
    stream_t *s = arg;
    /* The stream keeps its session alive; a newer stream or a deleted session ends it. */
    if (!mcp_server_session_stream_current(s->session, s->gen) ||
        !mcp_server_session_touch(s->session, gateway_now(), NULL)) {
        stream_end(s, "superseded or expired");
        return;
    }
    http_stream_write(s->req, ": keep-alive\n\n", 14);
}

static void on_stream_close(http_request_t *req, void *arg)
{
    stream_t *s = arg;
    log_debug(s->rid, "mcp: client closed the stream of session %.8s...", s->session);
    gateway_access_log(s->req, s->rid, 200, NULL, s->started_at, 0, 0);
    http_stream_end(s->req);
    stream_free(s);
}

static void subscribe(station_t *st)
{
    if (st->sub != NULL)
        return;
    mcp_catalog_t *cat = mcp_hub_catalog();
    mcp_server_digest(cat, &st->digest);
    if (cat != NULL)
        mcp_catalog_release(cat);
    st->sub = mcp_hub_subscribe(st->base, on_catalog_change, st);
}

static void handle_get(station_t *st, http_request_t *req, const char *rid, double started_at)
{
    bool json_ok, sse_ok;
    mcp_server_accepts(http_request_header(req, "accept"), &json_ok, &sse_ok);
    mcp_server_session_t sess;
    if (!sse_ok) {
        refuse(req, rid, started_at, 406, ERR_TRANSPORT,
               "Not Acceptable: the GET stream is text/event-stream");
        return;
    }
    if (!endpoint_session(req, rid, started_at, &sess))
        return;
    if (st->draining) {
        refuse(req, rid, started_at, 503, ERR_TRANSPORT, "shutting down");
        return;
    }

    stream_t *s = xcalloc(1, sizeof(*s));
    s->st = st;
    s->req = req;
    snprintf(s->rid, sizeof(s->rid), "%s", rid);
    snprintf(s->session, sizeof(s->session), "%s", sess.id);
    s->gen = mcp_server_session_claim_stream(sess.id);
    s->started_at = started_at;
    s->keepalive = event_new(st->base, -1, EV_PERSIST, on_stream_keepalive, s);
    TAILQ_INSERT_TAIL(&st->streams, s, link);
    subscribe(st);

    struct timeval tv = {KEEPALIVE_S, 0};
    event_add(s->keepalive, &tv);
    http_request_on_close(req, on_stream_close, s);
    sse_start(req, rid);
    /* A comment at once, so that the client sees the stream open before any event. */
    http_stream_write(req, ": gatehouse mcp stream\n\n", 24);
    log_info(rid, "mcp: stream of session %.8s... open", sess.id);
}

/* ---- DELETE --------------------------------------------------------------------------------- */

static void handle_delete(station_t *st, http_request_t *req, const char *rid, double started_at)
{
    mcp_server_session_t s;
    if (!endpoint_session(req, rid, started_at, &s))
        return;
    mcp_server_session_delete(s.id);
    log_info(rid, "mcp: session %.8s... ended by the client", s.id);
    end_session_streams(st, s.id);
    broadcast(st, LETTER_SESSION_ENDED, s.id, NULL);
    respond(req, rid, started_at, 200, "application/json", "", 0);
}

/* ---- entry points --------------------------------------------------------------------------- */

void mcp_endpoint_handle(http_request_t *req, gateway_worker_t *w, const char *request_id)
{
    double started_at = gateway_now();
    station_t *st = station_of(w);
    const char *method = http_request_method(req);

    if (!endpoint_admit(req, request_id, started_at))
        return;
    if (strcmp(method, "POST") == 0) {
        handle_post(st, req, request_id, started_at);
    } else if (strcmp(method, "GET") == 0) {
        handle_get(st, req, request_id, started_at);
    } else if (strcmp(method, "DELETE") == 0) {
        handle_delete(st, req, request_id, started_at);
    } else {
        http_response_header(req, "allow", "GET, POST, DELETE");
        refuse(req, request_id, started_at, 405, ERR_TRANSPORT,
               "Method Not Allowed: /mcp takes POST, GET and DELETE");
    }
}

/* The station of base, or NULL. */
static station_t *station_find(struct event_base *base, bool remove)
{
    station_t *found = NULL;
    pthread_mutex_lock(&stations_lock);
    for (size_t i = 0; i < n_stations && found == NULL; i++) {
        if (stations[i]->base != base)
            continue;
        found = stations[i];
        if (remove)
            stations[i] = stations[--n_stations];
    }
    pthread_mutex_unlock(&stations_lock);
    return found;
}

void mcp_endpoint_drain(struct event_base *base)
{
    station_t *st = station_find(base, false);
    if (st == NULL)
        return;
    st->draining = true;
    while (!TAILQ_EMPTY(&st->streams))
        stream_end(TAILQ_FIRST(&st->streams), "gatehouse is shutting down");
}

void mcp_endpoint_worker_free(struct event_base *base)
{
    station_t *st = station_find(base, true);
    if (st == NULL)
        return;
    /* What is left past the drain deadline: drop our side; the server frees the requests. */
    while (!TAILQ_EMPTY(&st->posts))
        post_free(TAILQ_FIRST(&st->posts));
    while (!TAILQ_EMPTY(&st->streams))
        stream_free(TAILQ_FIRST(&st->streams));
    letter_t *l = st->mail;
    while (l != NULL) {
        letter_t *next = l->next;
        json_decref(l->id);
        free(l);
        l = next;
    }
    event_free(st->mail_ev);
    pthread_mutex_destroy(&st->mail_lock);
    if (my_station == st)
        my_station = NULL;
    free(st);
}
