/*
 * client.c - one MCP client connection: lifecycle, requests, timeouts, pings, reconnects and
 * pagination (contract in client.h; the picture in docs/internals/mcp-client.md).
 *
 * The connection state machine, one function per state:
 *
 *   IDLE --start--> STARTING --transport open--> INITIALIZING --initialize ok--> READY
 *                      ^                               |                          |
 *                      |            (any failure: spawn, transport, garbage,      |
 *                      |             initialize error, ping timeout)              |
 *                      +------ backoff timer ------ BACKOFF <---------------------+
 *
 * STARTING and INITIALIZING are reported as MCP_STATE_CONNECTING, BACKOFF as MCP_STATE_DOWN.
 * Each connection attempt gets a fresh transport object (mcp_conn_t) and a new generation
 * number; internal requests (initialize, ping, the pages of a listing) remember the
 * generation they were sent on, so that an answer or failure that arrives after its
 * connection was replaced is recognised and ignored.
 *
 * Requests. A request is an mcp_pending_t. While it waits for its answer it sits on the
 * waiting list with its own timeout timer; when it ends for any reason (answer, error,
 * timeout, lost connection, client not ready) it moves to the done list, and one deferred
 * event delivers the done list in order. Every callback therefore runs from that one place on
 * the loop, never from inside mcp_client_request or a transport's I/O, and a callback that
 * cancels other requests or makes new ones cannot upset an iteration in progress. The list
 * operations (mcp_client_list_all) are pendings of their own that are never on the wire:
 * they send one page request at a time and collect the items.
 *
 * Re-entrancy. User callbacks may call anything, mcp_client_free included. Every entry point
 * from the loop holds the client (busy count); mcp_client_free inside a callback tears
 * everything down at once but leaves the struct itself for the outermost entry point to
 * free, and every step after a callback checks c->freeing before touching anything. A
 * transport is never freed from inside its own callbacks either: it is stopped at once and
 * destroyed from a later loop iteration (transport.h).
 *
 * What counts as a broken server: a document that is not JSON, a message that is not
 * JSON-RPC, a message larger than max_message_bytes, an initialize answer with a protocol
 * version we do not speak, and a ping without an answer. An answer to an id we never used is
 * only logged. Requests from the server are answered: ping with {}, anything else with
 * -32601, because gatehouse declares no client capability (no roots, sampling, elicitation).
 */
#include "mcp/client.h"

#include <assert.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "mcp/jsonrpc.h"
#include "mcp/transport.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#ifndef GATEHOUSE_VERSION
#define GATEHOUSE_VERSION "0.0.0"
#endif

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_PING_MS 30000L
#define DEFAULT_MAX_MESSAGE (16L * 1024 * 1024)
#define BACKOFF_INITIAL_MS 500L
#define BACKOFF_MAX_MS 30000L
#define LIST_MAX_PAGES 10000 /* a server that pages forever is broken, not big */
#define PROTOCOL_LATEST "2025-11-25"
#define PROTOCOL_LEGACY_SSE "2024-11-05" /* the version of the HTTP+SSE transport */

/* Versions we accept in the server's initialize answer, newest first. */
static const char *const accepted_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

/* ---- types ----------------------------------------------------------------------------------- */

typedef enum phase {
    PHASE_IDLE,         /* made, not started */
    PHASE_STARTING,     /* transport starting (legacy SSE: waiting for the endpoint) */
    PHASE_INITIALIZING, /* initialize sent */
    PHASE_READY,        /* requests accepted */
    PHASE_BACKOFF,      /* down; the connect timer is armed */
    PHASE_CLOSED,       /* being freed */
} phase_t;

typedef enum pending_state {
    PENDING_NEW,        /* being set up; on no list */
    PENDING_WAITING,    /* on the wire, on c->waiting, timer armed */
    PENDING_LIST,       /* a list_all operation, on c->lists */
    PENDING_DONE,       /* finished, on c->done, waiting for delivery */
    PENDING_DELIVERING, /* its completion is running; on no list */
} pending_state_t;

typedef void (*complete_fn)(mcp_pending_t *p);

struct mcp_pending {
    mcp_client_t *c;
    pending_state_t state;
    long long id;         /* JSON-RPC id; 0 until sent */
    unsigned gen;         /* connection generation it was sent on */
    char *method;         /* owned; for logs and list pages */
    long timeout_ms;      /* this request's timeout */
    complete_fn complete; /* runs at delivery: the user's callback or an internal step */
    mcp_response_fn cb;   /* user callback, or NULL */
    mcp_progress_fn on_progress;
    void *arg;
    struct event *timer; /* timeout; created when sent */
    json_t *result;      /* owned once finished without error */
    bool failed;         /* finished with err */
    mcp_error_t err;     /* err.data owned */
    /* list_all operations and their pages */
    char *field;          /* the result's array member ("tools") */
    json_t *items;        /* collected so far; owned */
    char *cursor;         /* the last cursor asked for; owned */
    int pages;            /* pages fetched */
    mcp_pending_t *page;  /* the page request in flight, or NULL */
    mcp_pending_t *owner; /* of a page: the list operation */
    TAILQ_ENTRY(mcp_pending) link;
};

TAILQ_HEAD(pending_list, mcp_pending);

struct mcp_client {
    struct event_base *base;
    struct upstream_pool *pool;
    mcp_client_opts_t opts; /* deep copy; the strings and arrays below own its memory */
    char *name;
    char *command;
    char **args;
    char **env_names;
    char *url;
    char **headers;  /* may carry credentials: never logged */
    char log_id[80]; /* "mcp:<name>" */
    mcp_client_handlers_t h;
    void *arg;

    phase_t phase;
    mcp_conn_t *conn;  /* the current attempt's transport, or NULL */
    unsigned gen;      /* bumped for every connection attempt and every loss */
    int attempts;      /* failed attempts since the last READY: the backoff step */
    uint64_t rng;      /* jitter */
    long long next_id; /* last request id used */

    char *protocol_version; /* negotiated; NULL unless ready */
    json_t *capabilities;   /* the server's; NULL unless ready */
    json_t *server_info;

    struct pending_list waiting;
    struct pending_list done;
    struct pending_list lists;

    struct event *connect_ev; /* start and backoff */
    struct event *ping_ev;
    struct event *deliver_ev; /* delivers c->done */
    struct event *fail_ev;    /* mcp_conn_fail_soon */
    mcp_conn_t *fail_conn;    /* the conn a deferred failure is about */
    char fail_reason[256];

    int busy;     /* entry points on the stack */
    bool freeing; /* mcp_client_free was called; the struct goes when busy is 0 */
};

static void conn_lost(mcp_client_t *c, const char *reason, bool reinitialize);
static void enter_connecting(mcp_client_t *c);

/* ---- small helpers --------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static char **strv_dup(const char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    char **out = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

static void strv_free(char **v, bool wipe)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        if (wipe) {
            volatile char *p = v[i];
            while (*p != '\0')
                *p++ = '\0';
        }
        free(v[i]);
    }
    free(v);
}

/* Copies text from a server for a log line: at most cap-1 bytes, control characters as '?',
 * so that a hostile name cannot forge log lines. */
static const char *printable(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; s != NULL && *s != '\0' && n + 1 < cap; s++)
        out[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[n] = '\0';
    return out;
}

static uint64_t rng_next(mcp_client_t *c)
{
    /* xorshift64*: jitter needs spread, not secrecy. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

static long backoff_delay(mcp_client_t *c)
{
    long step = BACKOFF_INITIAL_MS;
    for (int i = 0; i < c->attempts && step < BACKOFF_MAX_MS; i++)
        step *= 2;
    if (step > BACKOFF_MAX_MS)
        step = BACKOFF_MAX_MS;
    c->attempts++;
    /* "Equal jitter": half the step for sure, the other half at random, so that many clients
     * cut off together (the hub restarting a shared server) do not come back in lockstep. */
    long half = step / 2;
    return half + (long)(rng_next(c) % (uint64_t)(half + 1));
}

static struct timeval ms_to_tv(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static long request_timeout(const mcp_client_t *c)
{
    return c->opts.request_timeout_ms > 0 ? c->opts.request_timeout_ms : DEFAULT_TIMEOUT_MS;
}

static long ping_interval(const mcp_client_t *c)
{
    return c->opts.ping_interval_ms > 0 ? c->opts.ping_interval_ms : DEFAULT_PING_MS;
}

static long max_message(const mcp_client_t *c)
{
    return c->opts.max_message_bytes > 0 ? c->opts.max_message_bytes : DEFAULT_MAX_MESSAGE;
}

static mcp_client_state_t public_state(phase_t phase)
{
    switch (phase) {
    case PHASE_IDLE:
    case PHASE_STARTING:
    case PHASE_INITIALIZING:
        return MCP_STATE_CONNECTING;
    case PHASE_READY:
        return MCP_STATE_READY;
    case PHASE_BACKOFF:
        return MCP_STATE_DOWN;
    case PHASE_CLOSED:
        break;
    }
    return MCP_STATE_CLOSED;
}

/* ---- holding the client across callbacks ----------------------------------------------------- */

static void client_destroy(mcp_client_t *c);

static void hold(mcp_client_t *c)
{
    c->busy++;
}

/* Ends an entry point. Frees the client when it was freed meanwhile and this is the outermost
 * entry point. */
static void release(mcp_client_t *c)
{
    assert(c->busy > 0);
    if (--c->busy == 0 && c->freeing)
        client_destroy(c);
}

/* Reports a state change. Returns false when the callback freed the client. */
static bool notify_state(mcp_client_t *c, mcp_client_state_t state, const char *reason)
{
    if (c->h.on_state != NULL)
        c->h.on_state(c->arg, c, state, reason);
    return !c->freeing;
}

/* ---- pendings -------------------------------------------------------------------------------- */

static mcp_pending_t *pending_new(mcp_client_t *c, complete_fn complete, mcp_response_fn cb,
                                  void *arg)
{
    mcp_pending_t *p = xcalloc(1, sizeof(*p));
    p->c = c;
    p->state = PENDING_NEW;
    p->complete = complete;
    p->cb = cb;
    p->arg = arg;
    return p;
}

static void pending_free(mcp_pending_t *p)
{
    if (p->timer != NULL)
        event_free(p->timer);
    json_decref(p->result);
    json_decref(p->err.data);
    json_decref(p->items);
    free(p->method);
    free(p->field);
    free(p->cursor);
    free(p);
}

static struct pending_list *pending_home(mcp_client_t *c, pending_state_t state)
{
    switch (state) {
    case PENDING_WAITING:
        return &c->waiting;
    case PENDING_LIST:
        return &c->lists;
    case PENDING_DONE:
        return &c->done;
    case PENDING_NEW:
    case PENDING_DELIVERING:
        break;
    }
    return NULL;
}

static void pending_unlink(mcp_pending_t *p)
{
    struct pending_list *home = pending_home(p->c, p->state);
    if (home != NULL)
        TAILQ_REMOVE(home, p, link);
    if (p->timer != NULL)
        evtimer_del(p->timer);
    p->state = PENDING_NEW;
}

/* Ends a pending with a result (stolen) or an error, and queues it for delivery. */
static void pending_finish(mcp_pending_t *p, json_t *result, int code, const char *message,
                           json_t *data)
{
    mcp_client_t *c = p->c;
    pending_unlink(p);
    if (result != NULL) {
        p->result = result;
    } else {
        p->failed = true;
        p->err.code = code;
        snprintf(p->err.message, sizeof(p->err.message), "%s", message != NULL ? message : "");
        p->err.data = data;
    }
    p->state = PENDING_DONE;
    TAILQ_INSERT_TAIL(&c->done, p, link);
    event_active(c->deliver_ev, EV_TIMEOUT, 0);
}

static void pending_failf(mcp_pending_t *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void pending_failf(mcp_pending_t *p, int code, const char *fmt, ...)
{
    char message[sizeof(p->err.message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    pending_finish(p, NULL, code, message, NULL);
}

static mcp_pending_t *find_waiting(mcp_client_t *c, long long id)
{
    mcp_pending_t *p;
    TAILQ_FOREACH (p, &c->waiting, link) {
        if (p->id == id)
            return p;
    }
    return NULL;
}

static void free_list(struct pending_list *list)
{
    mcp_pending_t *p;
    while ((p = TAILQ_FIRST(list)) != NULL) {
        TAILQ_REMOVE(list, p, link);
        pending_free(p);
    }
}

static void deliver_user(mcp_pending_t *p)
{
    if (p->cb == NULL)
        return;
    if (p->failed)
        p->cb(p->arg, NULL, &p->err);
    else
        p->cb(p->arg, p->result, NULL);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    mcp_client_t *c = arg;
    mcp_pending_t *p;
    hold(c);
    while (!c->freeing && (p = TAILQ_FIRST(&c->done)) != NULL) {
        TAILQ_REMOVE(&c->done, p, link);
        p->state = PENDING_DELIVERING;
        p->complete(p);
        pending_free(p);
    }
    release(c);
}

/* ---- sending --------------------------------------------------------------------------------- */

/* Serializes msg (consumed) and hands it to the transport. Returns false when it could not be
 * encoded (a string that is not UTF-8); nothing was sent then. */
static bool send_json(mcp_client_t *c, json_t *msg, long long request_id)
{
    size_t len = 0;
    char *text = msg != NULL ? jsonrpc_dump(msg, &len) : NULL;
    json_decref(msg);
    if (text == NULL)
        return false;
    if (log_enabled(LOG_LVL_DEBUG))
        log_debug(c->log_id, "send %zu bytes%s", len, request_id > 0 ? " (request)" : "");
    c->conn->ops->send(c->conn, text, len, request_id);
    free(text);
    return true;
}

static void send_cancelled(mcp_client_t *c, const mcp_pending_t *p, const char *reason)
{
    if (c->conn == NULL || p->gen != c->gen || p->id <= 0)
        return;
    json_t *params = json_object();
    json_object_set_new(params, "requestId", json_integer(p->id));
    json_object_set_new(params, "reason", json_string(reason));
    send_json(c, jsonrpc_notification("notifications/cancelled", params), -1);
    if (c->conn->ops->abandon != NULL)
        c->conn->ops->abandon(c->conn, p->id);
}

static void on_request_timeout(evutil_socket_t fd, short what, void *arg)
{
    mcp_pending_t *p = arg;
    mcp_client_t *c = p->c;
    hold(c);
    log_warn(c->log_id, "request %s (id %lld) got no answer within %ld ms; cancelling it",
             p->method, p->id, p->timeout_ms);
    /* The spec forbids cancelling initialize; a connection whose initialize times out is
     * dropped as a whole anyway. */
    if (strcmp(p->method, "initialize") != 0) {
        char reason[64];
        snprintf(reason, sizeof(reason), "timed out after %ld ms", p->timeout_ms);
        send_cancelled(c, p, reason);
    }
    pending_failf(p, MCP_ERR_TIMEOUT, "no answer from MCP server %s to %s within %ld ms", c->name,
                  p->method, p->timeout_ms);
    release(c);
}

/* The progress token is the request id: unique per connection, and already what the answer
 * is matched by. */
static json_t *attach_progress(mcp_pending_t *p, json_t *params)
{
    if (params == NULL)
        params = json_object();
    if (!json_is_object(params)) {
        p->on_progress = NULL; /* array params have no _meta; progress cannot be asked for */
        return params;
    }
    json_t *meta = json_object_get(params, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(params, "_meta", meta);
    }
    json_object_set_new(meta, "progressToken", json_integer(p->id));
    return params;
}

/* Puts p on the wire: an id, the timer, the waiting list. params is stolen. */
static void send_request(mcp_client_t *c, mcp_pending_t *p, const char *method, json_t *params,
                         long timeout_ms)
{
    p->id = ++c->next_id;
    p->gen = c->gen;
    p->timeout_ms = timeout_ms > 0 ? timeout_ms : request_timeout(c);
    if (p->method == NULL)
        p->method = xstrdup(method);
    if (p->on_progress != NULL)
        params = attach_progress(p, params);

    p->state = PENDING_WAITING;
    TAILQ_INSERT_TAIL(&c->waiting, p, link);
    p->timer = evtimer_new(c->base, on_request_timeout, p);
    struct timeval tv = ms_to_tv(p->timeout_ms);
    evtimer_add(p->timer, &tv);

    if (!send_json(c, jsonrpc_request(json_integer(p->id), method, params), p->id))
        pending_failf(p, JSONRPC_INTERNAL_ERROR, "%s: the params cannot be encoded as JSON",
                      method);
}

/* ---- the connection state machine: STARTING ------------------------------------------------- */

static mcp_conn_t *conn_new(mcp_client_t *c)
{
    mcp_conn_t *conn;
    switch (c->opts.transport) {
    case MCP_TRANSPORT_HTTP:
        conn = mcp_http_new();
        break;
    case MCP_TRANSPORT_SSE:
        conn = mcp_sse_new();
        break;
    case MCP_TRANSPORT_STDIO:
    default:
        conn = mcp_stdio_new();
        break;
    }
    conn->client = c;
    conn->base = c->base;
    conn->pool = c->pool;
    conn->opts = &c->opts;
    conn->log_id = c->log_id;
    conn->max_message_bytes = max_message(c);
    return conn;
}

static void on_conn_destroy(evutil_socket_t fd, short what, void *arg)
{
    mcp_conn_t *conn = arg;
    conn->ops->destroy(conn);
}

/* Stops the current transport now and frees it from a later loop iteration: we may be inside
 * one of its callbacks. */
static void drop_conn(mcp_client_t *c)
{
    mcp_conn_t *conn = c->conn;
    if (conn == NULL)
        return;
    c->conn = NULL;
    if (c->fail_conn == conn)
        c->fail_conn = NULL; /* its address may come back for the next conn */
    conn->ops->stop(conn);
    conn->client = NULL;
    if (event_base_once(c->base, -1, EV_TIMEOUT, on_conn_destroy, conn, NULL) != 0)
        log_crit(c->log_id, "cannot schedule the release of a closed transport; it leaks");
}

static void enter_initializing(mcp_client_t *c);

static void enter_connecting(mcp_client_t *c)
{
    c->phase = PHASE_STARTING;
    c->gen++;
    c->conn = conn_new(c);
    log_debug(c->log_id, "connecting over %s (attempt %d)", c->conn->ops->name, c->attempts + 1);
    if (!notify_state(c, MCP_STATE_CONNECTING, NULL))
        return;

    char reason[256] = "";
    if (!c->conn->ops->start(c->conn, reason, sizeof(reason))) {
        conn_lost(c, reason, false);
        return;
    }
    if (c->conn->ops->opens_at_start)
        enter_initializing(c);
}

static void on_connect_timer(evutil_socket_t fd, short what, void *arg)
{
    mcp_client_t *c = arg;
    hold(c);
    if (c->phase == PHASE_IDLE || c->phase == PHASE_BACKOFF)
        enter_connecting(c);
    release(c);
}

/* ---- INITIALIZING ---------------------------------------------------------------------------- */

static void on_init_done(mcp_pending_t *p);

static void enter_initializing(mcp_client_t *c)
{
    c->phase = PHASE_INITIALIZING;

    json_t *info = json_object();
    json_object_set_new(info, "name", json_string("gatehouse"));
    json_object_set_new(info, "version", json_string(GATEHOUSE_VERSION));
    json_t *params = json_object();
    json_object_set_new(params, "protocolVersion", json_string(PROTOCOL_LATEST));
    /* No capability at all: gatehouse offers servers no roots, sampling or elicitation. */
    json_object_set_new(params, "capabilities", json_object());
    json_object_set_new(params, "clientInfo", info);

    mcp_pending_t *p = pending_new(c, on_init_done, NULL, c);
    send_request(c, p, "initialize", params, 0);
}

static bool version_accepted(const mcp_client_t *c, const char *version)
{
    for (const char *const *v = accepted_versions; *v != NULL; v++) {
        if (strcmp(*v, version) == 0)
            return true;
    }
    return c->opts.transport == MCP_TRANSPORT_SSE && strcmp(version, PROTOCOL_LEGACY_SSE) == 0;
}

/* Checks the initialize answer. Returns NULL when it is acceptable, else why not. */
static const char *check_init_result(const mcp_client_t *c, const json_t *result, char *why,
                                     size_t cap)
{
    const json_t *version = json_object_get(result, "protocolVersion");
    if (!json_is_string(version))
        return "the initialize answer has no protocolVersion";
    if (!version_accepted(c, json_string_value(version))) {
        char shown[40];
        snprintf(why, cap,
                 "the server speaks MCP protocol version \"%s\", which gatehouse does not "
                 "(it speaks 2025-11-25, 2025-06-18 and 2025-03-26)",
                 printable(json_string_value(version), shown, sizeof(shown)));
        return why;
    }
    const json_t *caps = json_object_get(result, "capabilities");
    if (caps != NULL && !json_is_object(caps))
        return "the initialize answer's capabilities is not an object";
    return NULL;
}

static void enter_ready(mcp_client_t *c);

static void on_init_done(mcp_pending_t *p)
{
    mcp_client_t *c = p->c;
    if (p->gen != c->gen || c->phase != PHASE_INITIALIZING)
        return; /* a connection that is gone already */

    char why[sizeof(p->err.message) + 40];
    if (p->failed) {
        snprintf(why, sizeof(why), "initialize failed: %s (%d)", p->err.message, p->err.code);
        conn_lost(c, why, false);
        return;
    }
    const char *bad = check_init_result(c, p->result, why, sizeof(why));
    if (bad != NULL) {
        conn_lost(c, bad, false);
        return;
    }

    json_t *caps = json_object_get(p->result, "capabilities");
    json_t *info = json_object_get(p->result, "serverInfo");
    c->protocol_version = xstrdup(json_string_value(json_object_get(p->result, "protocolVersion")));
    c->capabilities = caps != NULL ? json_deep_copy(caps) : json_object();
    c->server_info = json_is_object(info) ? json_deep_copy(info) : json_object();

    /* The transport learns the version first: Streamable HTTP must send it with every
     * request after initialize, notifications/initialized included. */
    if (c->conn->ops->ready != NULL)
        c->conn->ops->ready(c->conn, c->protocol_version);
    send_json(c, jsonrpc_notification("notifications/initialized", NULL), -1);
    enter_ready(c);
}

/* ---- READY ----------------------------------------------------------------------------------- */

static void arm_ping(mcp_client_t *c)
{
    struct timeval tv = ms_to_tv(ping_interval(c));
    evtimer_add(c->ping_ev, &tv);
}

static void enter_ready(mcp_client_t *c)
{
    char name[64], version[32];
    c->phase = PHASE_READY;
    c->attempts = 0;
    log_info(
        c->log_id, "connected to MCP server %s %s over %s, protocol %s; ready",
        printable(json_string_value(json_object_get(c->server_info, "name")), name, sizeof(name)),
        printable(json_string_value(json_object_get(c->server_info, "version")), version,
                  sizeof(version)),
        c->conn->ops->name, c->protocol_version);
    arm_ping(c);
    notify_state(c, MCP_STATE_READY, NULL);
}

static void on_ping_done(mcp_pending_t *p)
{
    mcp_client_t *c = p->c;
    if (p->gen != c->gen || c->phase != PHASE_READY)
        return;
    /* Any JSON-RPC answer, even an error, proves the server alive; only our own failure
     * codes mean it is not. */
    if (p->failed && (p->err.code == MCP_ERR_TIMEOUT || p->err.code == MCP_ERR_TRANSPORT ||
                      p->err.code == MCP_ERR_UNAVAILABLE)) {
        char why[sizeof(p->err.message) + 16];
        snprintf(why, sizeof(why), "ping failed: %s", p->err.message);
        conn_lost(c, why, false);
        return;
    }
    arm_ping(c);
}

static void on_ping_timer(evutil_socket_t fd, short what, void *arg)
{
    mcp_client_t *c = arg;
    hold(c);
    if (c->phase == PHASE_READY) {
        /* The ping's own timeout never exceeds the interval, so pings never pile up. */
        long timeout =
            request_timeout(c) < ping_interval(c) ? request_timeout(c) : ping_interval(c);
        send_request(c, pending_new(c, on_ping_done, NULL, c), "ping", NULL, timeout);
    }
    release(c);
}

/* ---- BACKOFF --------------------------------------------------------------------------------- */

static void fail_waiting(mcp_client_t *c, const char *reason)
{
    mcp_pending_t *p;
    while ((p = TAILQ_FIRST(&c->waiting)) != NULL)
        pending_failf(p, MCP_ERR_TRANSPORT, "connection to MCP server %s lost: %s", c->name,
                      reason);
}

static void forget_session(mcp_client_t *c)
{
    free(c->protocol_version);
    c->protocol_version = NULL;
    json_decref(c->capabilities);
    c->capabilities = NULL;
    json_decref(c->server_info);
    c->server_info = NULL;
}

static void enter_backoff(mcp_client_t *c, const char *reason, long delay_ms)
{
    c->phase = PHASE_BACKOFF;
    struct timeval tv = ms_to_tv(delay_ms);
    evtimer_add(c->connect_ev, &tv);
    notify_state(c, MCP_STATE_DOWN, reason);
}

/* Any failure of the current connection ends up here. */
static void conn_lost(mcp_client_t *c, const char *reason, bool reinitialize)
{
    if (c->phase == PHASE_CLOSED || c->phase == PHASE_BACKOFF || c->freeing)
        return;
    bool was_ready = c->phase == PHASE_READY;
    /* A server that forgot our session gets a new one at once, but only after a session that
     * worked: one that 404s every new session must not be hammered. */
    long delay = reinitialize && was_ready ? 0 : backoff_delay(c);
    log_error(c->log_id, "MCP server %s: %s; pending requests fail, reconnecting in %ld ms",
              c->name, reason, delay);

    drop_conn(c);
    c->gen++;
    evtimer_del(c->ping_ev);
    forget_session(c);
    fail_waiting(c, reason);
    enter_backoff(c, reason, delay);
}

/* ---- messages from the server ---------------------------------------------------------------- */

static void on_answer(mcp_client_t *c, const jsonrpc_msg_t *m)
{
    char text[200];
    if (!json_is_integer(m->id)) {
        if (m->kind == JSONRPC_ERROR && json_is_null(m->id))
            log_error(c->log_id, "MCP server %s could not read one of our messages: %s (%d)",
                      c->name, printable(m->error_message, text, sizeof(text)), m->error_code);
        else
            log_warn(c->log_id, "MCP server %s answered an id we never used; ignored", c->name);
        return;
    }

    long long id = (long long)json_integer_value(m->id);
    mcp_pending_t *p = find_waiting(c, id);
    if (p == NULL) {
        if (id > 0 && id <= c->next_id)
            log_debug(c->log_id, "late answer to request %lld (timed out or cancelled); ignored",
                      id);
        else
            log_warn(c->log_id, "MCP server %s answered unknown request id %lld; ignored", c->name,
                     id);
        return;
    }
    if (m->kind == JSONRPC_RESPONSE)
        pending_finish(p, json_incref(m->result), 0, NULL, NULL);
    else
        pending_finish(p, NULL, m->error_code, m->error_message, json_incref(m->error_data));
}

static void on_server_request(mcp_client_t *c, const jsonrpc_msg_t *m)
{
    char method[64];
    if (strcmp(m->method, "ping") == 0) {
        send_json(c, jsonrpc_result(m->id, json_object()), -1);
        return;
    }
    printable(m->method, method, sizeof(method));
    log_debug(c->log_id, "server asked for %s, which gatehouse does not offer; answered -32601",
              method);
    char text[128];
    snprintf(text, sizeof(text), "Method not found: gatehouse does not offer %s", method);
    send_json(c, jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, text, NULL), -1);
}

static void route_progress(mcp_client_t *c, json_t *params)
{
    json_t *token = json_object_get(params, "progressToken");
    mcp_pending_t *p = json_is_integer(token) ? find_waiting(c, json_integer_value(token)) : NULL;
    if (p == NULL || p->on_progress == NULL) {
        log_debug(c->log_id, "progress for a request no longer waiting; ignored");
        return;
    }
    p->on_progress(p->arg, params);
}

static void on_server_notification(mcp_client_t *c, const jsonrpc_msg_t *m)
{
    if (strcmp(m->method, "notifications/progress") == 0) {
        route_progress(c, m->params);
        return;
    }
    if (strcmp(m->method, "notifications/cancelled") == 0)
        return; /* we answer server requests at once; there is nothing to cancel */
    if (c->h.on_notification != NULL)
        c->h.on_notification(c->arg, c, m->method, m->params);
}

static void handle_message(mcp_client_t *c, const jsonrpc_msg_t *m)
{
    char why[200];
    switch (m->kind) {
    case JSONRPC_INVALID:
        snprintf(why, sizeof(why), "sent a message that is not JSON-RPC 2.0 (%s)",
                 m->invalid_reason);
        conn_lost(c, why, false);
        return;
    case JSONRPC_RESPONSE:
    case JSONRPC_ERROR:
        on_answer(c, m);
        return;
    case JSONRPC_REQUEST:
        on_server_request(c, m);
        return;
    case JSONRPC_NOTIFICATION:
        on_server_notification(c, m);
        return;
    }
}

static void dispatch(mcp_client_t *c, mcp_conn_t *conn, const char *text, size_t len)
{
    char err[160], why[200];
    jsonrpc_batch_t batch;
    if (jsonrpc_parse(text, len, &batch, err, sizeof(err)) != 0) {
        snprintf(why, sizeof(why), "sent garbage: %s", err);
        conn_lost(c, why, false);
        return;
    }
    for (size_t i = 0; i < batch.count; i++) {
        handle_message(c, &batch.msgs[i]);
        if (c->conn != conn || c->freeing)
            break; /* the message ended the connection, or a callback freed the client */
    }
    jsonrpc_batch_free(&batch);
}

/* ---- the transport's calls into the client (transport.h) ------------------------------------- */

static mcp_client_t *conn_owner(mcp_conn_t *conn)
{
    mcp_client_t *c = conn->client;
    return c != NULL && c->conn == conn && !c->freeing ? c : NULL;
}

void mcp_conn_opened(mcp_conn_t *conn)
{
    mcp_client_t *c = conn_owner(conn);
    if (c == NULL || c->phase != PHASE_STARTING)
        return;
    hold(c);
    enter_initializing(c);
    release(c);
}

void mcp_conn_received(mcp_conn_t *conn, const char *text, size_t len)
{
    mcp_client_t *c = conn_owner(conn);
    if (c == NULL)
        return;
    hold(c);
    if (len > (size_t)max_message(c)) {
        char why[128];
        snprintf(why, sizeof(why), "sent a message of %zu bytes, over the limit of %ld", len,
                 max_message(c));
        conn_lost(c, why, false);
    } else {
        dispatch(c, conn, text, len);
    }
    release(c);
}

void mcp_conn_failed(mcp_conn_t *conn, const char *reason, bool reinitialize)
{
    mcp_client_t *c = conn_owner(conn);
    if (c == NULL)
        return;
    hold(c);
    conn_lost(c, reason, reinitialize);
    release(c);
}

static void on_fail_soon(evutil_socket_t fd, short what, void *arg)
{
    mcp_client_t *c = arg;
    mcp_conn_t *conn = c->fail_conn;
    c->fail_conn = NULL;
    if (conn == NULL || conn != c->conn)
        return;
    hold(c);
    conn_lost(c, c->fail_reason, false);
    release(c);
}

void mcp_conn_fail_soon(mcp_conn_t *conn, const char *reason)
{
    mcp_client_t *c = conn_owner(conn);
    if (c == NULL || c->fail_conn != NULL)
        return; /* a failure is already on its way */
    c->fail_conn = conn;
    snprintf(c->fail_reason, sizeof(c->fail_reason), "%s", reason);
    event_active(c->fail_ev, EV_TIMEOUT, 0);
}

void mcp_conn_request_failed(mcp_conn_t *conn, long long request_id, const char *reason)
{
    mcp_client_t *c = conn_owner(conn);
    mcp_pending_t *p = c != NULL ? find_waiting(c, request_id) : NULL;
    if (p == NULL)
        return;
    hold(c);
    log_error(c->log_id, "MCP server %s refused request %s (id %lld): %s; the request fails",
              c->name, p->method, request_id, reason);
    pending_failf(p, MCP_ERR_TRANSPORT, "MCP server %s refused %s: %s", c->name, p->method, reason);
    release(c);
}

bool mcp_conn_awaiting(mcp_conn_t *conn, long long request_id)
{
    mcp_client_t *c = conn_owner(conn);
    return c != NULL && find_waiting(c, request_id) != NULL;
}

/* ---- public API: lifetime -------------------------------------------------------------------- */

static void copy_opts(mcp_client_t *c, const mcp_client_opts_t *o)
{
    c->name = xstrdup(o->name != NULL ? o->name : "unnamed");
    c->command = dup_or_null(o->command);
    c->args = strv_dup(o->args);
    c->env_names = strv_dup(o->env_names);
    c->url = dup_or_null(o->url);
    c->headers = strv_dup(o->headers);

    c->opts = *o;
    c->opts.name = c->name;
    c->opts.command = c->command;
    c->opts.args = (const char *const *)c->args;
    c->opts.env_names = (const char *const *)c->env_names;
    c->opts.url = c->url;
    c->opts.headers = (const char *const *)c->headers;
}

mcp_client_t *mcp_client_new(struct event_base *base, struct upstream_pool *pool,
                             const mcp_client_opts_t *opts, const mcp_client_handlers_t *h,
                             void *arg)
{
    mcp_client_t *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->pool = pool;
    copy_opts(c, opts);
    snprintf(c->log_id, sizeof(c->log_id), "mcp:%s", c->name);
    if (h != NULL)
        c->h = *h;
    c->arg = arg;
    c->phase = PHASE_IDLE;
    c->rng = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)c << 16) ^ (uint64_t)getpid();
    if (c->rng == 0)
        c->rng = 0x9e3779b97f4a7c15ULL;

    TAILQ_INIT(&c->waiting);
    TAILQ_INIT(&c->done);
    TAILQ_INIT(&c->lists);
    c->connect_ev = evtimer_new(base, on_connect_timer, c);
    c->ping_ev = evtimer_new(base, on_ping_timer, c);
    c->deliver_ev = event_new(base, -1, 0, on_deliver, c);
    c->fail_ev = event_new(base, -1, 0, on_fail_soon, c);
    return c;
}

void mcp_client_start(mcp_client_t *c)
{
    if (c->phase != PHASE_IDLE || evtimer_pending(c->connect_ev, NULL))
        return;
    /* From the loop, not from here: the first on_state must not run inside this call. */
    struct timeval now = {0, 0};
    evtimer_add(c->connect_ev, &now);
}

static void client_destroy(mcp_client_t *c)
{
    event_free(c->connect_ev);
    event_free(c->ping_ev);
    event_free(c->deliver_ev);
    event_free(c->fail_ev);
    forget_session(c);
    free(c->name);
    free(c->command);
    strv_free(c->args, false);
    strv_free(c->env_names, false);
    free(c->url);
    strv_free(c->headers, true); /* credentials: wiped before the memory is reused */
    free(c);
}

void mcp_client_free(mcp_client_t *c)
{
    if (c == NULL || c->freeing)
        return;
    c->freeing = true;
    c->phase = PHASE_CLOSED;
    log_debug(c->log_id, "client closed");

    drop_conn(c);
    evtimer_del(c->connect_ev);
    evtimer_del(c->ping_ev);
    event_del(c->deliver_ev);
    event_del(c->fail_ev);
    free_list(&c->waiting);
    free_list(&c->done);
    free_list(&c->lists);

    if (c->busy == 0)
        client_destroy(c);
}

/* ---- public API: state ----------------------------------------------------------------------- */

mcp_client_state_t mcp_client_state(const mcp_client_t *c)
{
    return public_state(c->phase);
}

const char *mcp_client_name(const mcp_client_t *c)
{
    return c->name;
}

const char *mcp_client_protocol_version(const mcp_client_t *c)
{
    return c->phase == PHASE_READY ? c->protocol_version : NULL;
}

const json_t *mcp_client_capabilities(const mcp_client_t *c)
{
    return c->phase == PHASE_READY ? c->capabilities : NULL;
}

const json_t *mcp_client_server_info(const mcp_client_t *c)
{
    return c->phase == PHASE_READY ? c->server_info : NULL;
}

/* ---- public API: requests -------------------------------------------------------------------- */

mcp_pending_t *mcp_client_request(mcp_client_t *c, const char *method, json_t *params,
                                  long timeout_ms, mcp_response_fn cb, mcp_progress_fn on_progress,
                                  void *arg)
{
    mcp_pending_t *p = pending_new(c, deliver_user, cb, arg);
    p->on_progress = on_progress;
    p->method = xstrdup(method);
    if (c->phase != PHASE_READY || c->freeing) {
        json_decref(params);
        pending_failf(p, MCP_ERR_UNAVAILABLE, "MCP server %s is not connected", c->name);
        return p;
    }
    send_request(c, p, method, params, timeout_ms);
    return p;
}

static void cancel_page(mcp_pending_t *outer);

void mcp_client_cancel(mcp_pending_t *p)
{
    if (p == NULL)
        return;
    switch (p->state) {
    case PENDING_WAITING:
        send_cancelled(p->c, p, "cancelled by the client");
        break;
    case PENDING_LIST:
        cancel_page(p);
        break;
    case PENDING_DELIVERING:
        return; /* its callback is running; it goes when that returns */
    case PENDING_NEW:
    case PENDING_DONE:
        break;
    }
    pending_unlink(p);
    pending_free(p);
}

/* ---- public API: listings -------------------------------------------------------------------- */

static void cancel_page(mcp_pending_t *outer)
{
    mcp_pending_t *page = outer->page;
    outer->page = NULL;
    if (page != NULL)
        mcp_client_cancel(page);
}

static void on_page_done(mcp_pending_t *page);

static void list_next_page(mcp_client_t *c, mcp_pending_t *outer)
{
    mcp_pending_t *page = pending_new(c, on_page_done, NULL, NULL);
    page->owner = outer;
    page->method = xstrdup(outer->method);
    outer->page = page;

    json_t *params = NULL;
    if (outer->cursor != NULL) {
        params = json_object();
        json_object_set_new(params, "cursor", json_string(outer->cursor));
    }
    if (c->phase != PHASE_READY) {
        json_decref(params);
        pending_failf(page, MCP_ERR_UNAVAILABLE, "MCP server %s is not connected", c->name);
        return;
    }
    send_request(c, page, outer->method, params, 0);
}

static void list_fail(mcp_pending_t *outer, int code, const char *message, json_t *data)
{
    json_decref(outer->items);
    outer->items = NULL;
    pending_finish(outer, NULL, code, message, data);
}

/* One page came back: collect its items, then ask for the next or deliver the whole list. */
static void on_page_done(mcp_pending_t *page)
{
    mcp_pending_t *outer = page->owner;
    mcp_client_t *c = page->c;
    char why[200];
    outer->page = NULL;
    if (page->failed) {
        list_fail(outer, page->err.code, page->err.message, json_incref(page->err.data));
        return;
    }

    json_t *items = json_object_get(page->result, outer->field);
    json_t *next = json_object_get(page->result, "nextCursor");
    if (!json_is_array(items) || (next != NULL && !json_is_null(next) && !json_is_string(next))) {
        snprintf(why, sizeof(why), "MCP server %s answered %s without a valid \"%s\" array",
                 c->name, outer->method, outer->field);
        list_fail(outer, JSONRPC_INTERNAL_ERROR, why, NULL);
        return;
    }
    json_array_extend(outer->items, items);
    outer->pages++;

    if (!json_is_string(next) || json_string_length(next) == 0) {
        json_t *all = outer->items;
        outer->items = NULL;
        pending_finish(outer, all, 0, NULL, NULL);
        return;
    }
    if (outer->pages >= LIST_MAX_PAGES ||
        (outer->cursor != NULL && strcmp(outer->cursor, json_string_value(next)) == 0)) {
        snprintf(why, sizeof(why),
                 "MCP server %s keeps paging %s (a repeated cursor, or over %d "
                 "pages)",
                 c->name, outer->method, LIST_MAX_PAGES);
        list_fail(outer, JSONRPC_INTERNAL_ERROR, why, NULL);
        return;
    }
    free(outer->cursor);
    outer->cursor = xstrdup(json_string_value(next));
    list_next_page(c, outer);
}

mcp_pending_t *mcp_client_list_all(mcp_client_t *c, const char *method, const char *field,
                                   mcp_response_fn cb, void *arg)
{
    mcp_pending_t *outer = pending_new(c, deliver_user, cb, arg);
    outer->method = xstrdup(method);
    outer->field = xstrdup(field);
    outer->items = json_array();
    outer->state = PENDING_LIST;
    TAILQ_INSERT_TAIL(&c->lists, outer, link);
    list_next_page(c, outer);
    return outer;
}
