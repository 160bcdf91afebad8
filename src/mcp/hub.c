/*
 * hub.c - the tool hub: one thread that owns every MCP client, keeps the merged catalog in
 * sync, and runs tool calls for the other threads (contract in hub.h).
 *
 * Threads and ownership. The hub thread runs its own event_base and upstream pool; every
 * mcp_client_t, every list in progress and every call on the wire belongs to it. Other
 * threads reach it in three ways only:
 *
 *   commands  a mutex-protected queue (call, cancel, reconfigure, stop, post) and one event that
 *             any thread activates (event_active; libevent is set up for threads);
 *   catalog   an immutable, reference-counted snapshot behind a mutex (hub_catalog.c);
 *   results   event_base_once on the caller's own loop (thread-safe with evthread).
 *
 * A call (mcp_hub_call_t) is shared by its caller and the hub, so it is reference counted:
 * one reference for the caller's handle, one for the hub's work. The hub's reference moves to
 * the delivery event when the result is ready; the caller's ends when its callback has run,
 * or moves to a cancel command when it cancels. Cancelling happens on the caller's thread,
 * which is also where delivery happens, so "the callback never runs after mcp_hub_cancel
 * returns" needs no more than a flag set by cancel and read by the delivery on that same
 * thread; the flag is atomic because the hub reads it too, to skip sending a call already
 * cancelled. Whichever reference goes last frees the call, on either thread.
 *
 * The catalog. A client's lists are fetched when it becomes ready, when it says a list
 * changed (notifications/.../list_changed: at once; a change announced while a listing is
 * running fetches once more when it ends) and every resync interval. Any change of a list or
 * of a client's state schedules one rebuild on the next loop turn; the new snapshot replaces
 * the current one only when it differs, and then subscribers are woken on their own loops.
 * A client that goes down keeps its tools in the catalog with available = false.
 *
 * Metrics and request-log rows of tool calls are recorded by the callers (the execute endpoint,
 * agent mode, Code Mode), which know on whose behalf a call ran; the hub only logs failures.
 *
 * Stopping. Calls still in flight fail with MCP_ERR_UNAVAILABLE, clients are freed (stdio
 * servers get SIGTERM), and the thread keeps its loop running until the servers are reaped
 * and the last HTTP exchange (a session DELETE) is done, for at most STOP_GRACE_MS. Only then
 * is the upstream pool freed and the thread ended.
 */
#include "mcp/hub.h"

#include <assert.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "http/upstream.h"
#include "mcp/filter.h"
#include "mcp/hub_internal.h"
#include "mcp/jsonrpc.h"
#include "util/alloc.h"
#include "util/log.h"

#define DEFAULT_TOOL_TIMEOUT_MS 30000L
#define DEFAULT_RESYNC_MS (5L * 60 * 1000)
#define STOP_POLL_MS 20
#define STOP_GRACE_MS 5000L
#define RID_MAX 64

/* ---- types ---------------------------------------------------------------------------------- */

typedef enum call_stage {
    STAGE_QUEUED,   /* in the command queue */
    STAGE_SENT,     /* on its client's list, waiting for the answer */
    STAGE_FINISHED, /* answered, failed or cancelled; the hub is done with it */
} call_stage_t;

typedef struct hub_client hub_client_t;

struct mcp_hub_call {
    int refs;      /* atomic: the caller's handle and the hub's work */
    int cancelled; /* atomic: set by mcp_hub_cancel */
    struct event_base *reply_base;
    mcp_hub_done_fn cb;
    void *arg;
    char *client;
    char *tool; /* tools/call: the tool, for checks, logs and metrics; else NULL */
    char *method;
    json_t *params; /* owned until sent */
    char rid[RID_MAX];
    double started; /* monotonic seconds at queueing */

    /* hub thread only */
    call_stage_t stage;
    mcp_pending_t *pending;
    hub_client_t *owner;
    TAILQ_ENTRY(mcp_hub_call) link;

    /* the outcome: written by the hub before delivery, read on the reply thread after it */
    json_t *result;
    bool failed;
    mcp_error_t err; /* err.data owned */
    double duration_s;
};

TAILQ_HEAD(call_list, mcp_hub_call);

enum { LIST_TOOLS, LIST_RESOURCES, LIST_TEMPLATES, LIST_PROMPTS, LIST_KINDS };

static const struct {
    const char *method;
    const char *field;
    const char *capability; /* the server capability that says the list exists */
} list_kinds[LIST_KINDS] = {
    {"tools/list", "tools", "tools"},
    {"resources/list", "resources", "resources"},
    {"resources/templates/list", "resourceTemplates", "resources"},
    {"prompts/list", "prompts", "prompts"},
};

typedef struct list_slot {
    hub_client_t *hc;
    int kind;
    mcp_pending_t *pending; /* the listing in progress, or NULL */
    bool again;             /* a change was announced while it ran: list once more */
    json_t *items;          /* the last complete list, or NULL when never listed */
} list_slot_t;

struct hub_client {
    struct hub *hub;
    mcp_hub_client_spec_t spec; /* owned copy (spec_copy) */
    mcp_client_t *client;
    mcp_client_state_t state;
    char error[256]; /* why it went down last */
    list_slot_t lists[LIST_KINDS];
    struct call_list calls; /* sent and not answered */
};

/* Owned copy of mcp_hub_opts_t. */
typedef struct hub_config {
    mcp_hub_client_spec_t *clients;
    size_t n_clients;
    long tool_timeout_ms;
    long resync_ms;
} hub_config_t;

typedef enum cmd_kind { CMD_CALL, CMD_CANCEL, CMD_RECONFIGURE, CMD_STOP, CMD_POST } cmd_kind_t;

typedef struct cmd {
    cmd_kind_t kind;
    mcp_hub_call_t *call; /* CMD_CALL, CMD_CANCEL: holds a reference */
    hub_config_t *config; /* CMD_RECONFIGURE: owned */
    void (*post_fn)(struct event_base *base, void *arg); /* CMD_POST */
    void *post_arg;
    TAILQ_ENTRY(cmd) link;
} cmd_t;

TAILQ_HEAD(cmd_list, cmd);

typedef struct hub {
    pthread_t thread;
    struct event_base *base;
    upstream_pool_t *pool;
    struct event *wake_ev;    /* activated by any thread: commands are queued */
    struct event *rebuild_ev; /* activated on the hub thread: the catalog may have changed */
    struct event *resync_ev;  /* periodic listing of every ready client */
    struct event *stop_ev;    /* polls for the end of the stop */
    struct cmd_list queue;    /* under hub_lock */
    bool stopping;            /* under hub_lock: no command is accepted any more */

    hub_client_t **clients; /* hub thread only */
    size_t n_clients;
    long tool_timeout_ms;
    long resync_ms;
    double stop_deadline;
} hub_t;

struct mcp_hub_sub {
    struct event *ev; /* on the subscriber's base */
    void (*on_change)(void *arg);
    void *arg;
    TAILQ_ENTRY(mcp_hub_sub) link;
};

TAILQ_HEAD(sub_list, mcp_hub_sub);

static pthread_mutex_t hub_lock = PTHREAD_MUTEX_INITIALIZER;
static hub_t *the_hub; /* under hub_lock; set from start to the end of stop */

static pthread_mutex_t cat_lock = PTHREAD_MUTEX_INITIALIZER;
static mcp_catalog_t *cat_current; /* under cat_lock; NULL until first asked for */
static uint64_t cat_version;       /* under cat_lock */

static pthread_mutex_t subs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sub_list subs = TAILQ_HEAD_INITIALIZER(subs);

static void mark_dirty(hub_t *h);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval ms_tv(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* ---- owned copies of the options ------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static const char *const *strv_dup(const char *const *v)
{
    if (v == NULL)
        return NULL;
    size_t n = 0;
    while (v[n] != NULL)
        n++;
    char **out = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return (const char *const *)out;
}

/* Frees a list made by strv_dup; wipe clears the strings first (headers carry credentials). */
static void strv_free(const char *const *v, bool wipe)
{
    if (v == NULL)
        return;
    for (size_t i = 0; v[i] != NULL; i++) {
        char *s = (char *)v[i];
        if (wipe) {
            volatile char *p = s;
            while (*p != '\0')
                *p++ = '\0';
        }
        free(s);
    }
    free((void *)v);
}

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static bool strv_eq(const char *const *a, const char *const *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    size_t i = 0;
    for (; a[i] != NULL && b[i] != NULL; i++) {
        if (strcmp(a[i], b[i]) != 0)
            return false;
    }
    return a[i] == b[i];
}

static void spec_copy(mcp_hub_client_spec_t *dst, const mcp_hub_client_spec_t *src)
{
    *dst = *src;
    dst->conn.name = dup_or_null(src->conn.name);
    dst->conn.command = dup_or_null(src->conn.command);
    dst->conn.args = strv_dup(src->conn.args);
    dst->conn.env_names = strv_dup(src->conn.env_names);
    dst->conn.url = dup_or_null(src->conn.url);
    dst->conn.headers = strv_dup(src->conn.headers);
    dst->tools_to_execute = strv_dup(src->tools_to_execute);
    dst->tools_to_auto_execute = strv_dup(src->tools_to_auto_execute);
}

static void spec_free(mcp_hub_client_spec_t *s)
{
    free((char *)s->conn.name);
    free((char *)s->conn.command);
    strv_free(s->conn.args, false);
    strv_free(s->conn.env_names, false);
    free((char *)s->conn.url);
    strv_free(s->conn.headers, true);
    strv_free(s->tools_to_execute, false);
    strv_free(s->tools_to_auto_execute, false);
    memset(s, 0, sizeof(*s));
}

/* True when both describe the same connection: the client can stay connected. */
static bool conn_same(const mcp_client_opts_t *a, const mcp_client_opts_t *b)
{
    return str_eq(a->name, b->name) && a->transport == b->transport &&
           str_eq(a->command, b->command) && strv_eq(a->args, b->args) &&
           strv_eq(a->env_names, b->env_names) && str_eq(a->url, b->url) &&
           strv_eq(a->headers, b->headers) && a->request_timeout_ms == b->request_timeout_ms &&
           a->ping_interval_ms == b->ping_interval_ms &&
           a->max_message_bytes == b->max_message_bytes;
}

static hub_config_t *config_copy(const mcp_hub_opts_t *o)
{
    hub_config_t *c = xcalloc(1, sizeof(*c));
    c->clients = xcalloc(o->n_clients + 1, sizeof(mcp_hub_client_spec_t));
    c->n_clients = o->n_clients;
    for (size_t i = 0; i < o->n_clients; i++)
        spec_copy(&c->clients[i], &o->clients[i]);
    c->tool_timeout_ms = o->tool_timeout_ms > 0 ? o->tool_timeout_ms : DEFAULT_TOOL_TIMEOUT_MS;
    c->resync_ms = o->resync_interval_ms > 0 ? o->resync_interval_ms : DEFAULT_RESYNC_MS;
    return c;
}

static void config_free(hub_config_t *c)
{
    for (size_t i = 0; i < c->n_clients; i++)
        spec_free(&c->clients[i]);
    free(c->clients);
    free(c);
}

/* ---- calls: the shared object --------------------------------------------------------------- */

static mcp_hub_call_t *call_new(struct event_base *reply_base, const char *client, const char *tool,
                                const char *method, json_t *params, const char *request_id,
                                mcp_hub_done_fn cb, void *arg)
{
    mcp_hub_call_t *call = xcalloc(1, sizeof(*call));
    call->refs = 2;
    call->reply_base = reply_base;
    call->cb = cb;
    call->arg = arg;
    call->client = xstrdup(client != NULL ? client : "");
    call->tool = dup_or_null(tool);
    call->method = xstrdup(method);
    call->params = params;
    snprintf(call->rid, sizeof(call->rid), "%s", request_id != NULL ? request_id : "");
    call->started = now_s();
    call->stage = STAGE_QUEUED;
    return call;
}

static void call_unref(mcp_hub_call_t *call)
{
    if (__atomic_sub_fetch(&call->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    free(call->client);
    free(call->tool);
    free(call->method);
    json_decref(call->params);
    json_decref(call->result);
    json_decref(call->err.data);
    free(call);
}

static const char *call_rid(const mcp_hub_call_t *call)
{
    return call->rid[0] != '\0' ? call->rid : NULL;
}

static bool call_cancelled(const mcp_hub_call_t *call)
{
    return __atomic_load_n(&call->cancelled, __ATOMIC_ACQUIRE) != 0;
}

/* On the reply thread. Holds the delivery's reference (the hub's, passed on). */
static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    mcp_hub_call_t *call = arg;
    if (!call_cancelled(call)) {
        mcp_hub_result_t res = {
            .result = call->failed ? NULL : call->result,
            .err = call->failed ? &call->err : NULL,
            .duration_s = call->duration_s,
        };
        call->cb(call->arg, &res);
        call_unref(call); /* the caller's handle ends with its callback */
    }
    call_unref(call);
}

/* Hands the call's outcome to its caller's loop; the hub's reference goes with it. Any thread
 * (also the caller's, when the hub is not running). */
static void deliver(mcp_hub_call_t *call)
{
    struct timeval now = {0, 0};
    if (event_base_once(call->reply_base, -1, EV_TIMEOUT, on_deliver, call, &now) != 0) {
        log_crit(call_rid(call),
                 "cannot schedule the result of %s on the caller's loop; the"
                 " caller will not hear of it",
                 call->method);
        call_unref(call);
    }
}

static void set_error(mcp_hub_call_t *call, int code, const char *fmt, va_list ap)
{
    call->failed = true;
    call->err.code = code;
    vsnprintf(call->err.message, sizeof(call->err.message), fmt, ap);
}

/* Fails a call that never reached the hub thread (the hub is not running). */
static void call_reject(mcp_hub_call_t *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_reject(mcp_hub_call_t *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error(call, code, fmt, ap);
    va_end(ap);
    call->stage = STAGE_FINISHED;
    deliver(call);
}

/* ---- calls: the hub's side ------------------------------------------------------------------ */

static void log_outcome(const mcp_hub_call_t *call)
{
    const char *what = call->tool != NULL ? call->tool : call->method;
    double ms = call->duration_s * 1000.0;
    if (call->failed) {
        log_warn(call_rid(call),
                 "%s %s of MCP client %s failed after %.0f ms: %s (code %d);"
                 " the caller gets the error",
                 call->tool != NULL ? "tool" : "request", what, call->client, ms, call->err.message,
                 call->err.code);
        return;
    }
    bool is_error = json_is_true(json_object_get(call->result, "isError"));
    log_debug(call_rid(call), "%s of MCP client %s answered in %.0f ms%s", what, call->client, ms,
              is_error ? " with a tool error" : "");
}

/* Records the outcome (result borrowed, or err) and delivers it. Hub thread. */
static void call_finish(mcp_hub_call_t *call, const json_t *result, const mcp_error_t *err)
{
    call->stage = STAGE_FINISHED;
    call->duration_s = now_s() - call->started;
    if (result != NULL) {
        call->result = json_incref((json_t *)result);
    } else {
        call->failed = true;
        call->err = *err;
        call->err.data = json_incref(err->data);
    }
    log_outcome(call);
    deliver(call);
}

static void call_fail(mcp_hub_call_t *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void call_fail(mcp_hub_call_t *call, int code, const char *fmt, ...)
{
    mcp_error_t err = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof(err.message), fmt, ap);
    va_end(ap);
    call_finish(call, NULL, &err);
}

static void on_call_done(void *arg, const json_t *result, const mcp_error_t *err)
{
    mcp_hub_call_t *call = arg;
    call->pending = NULL;
    TAILQ_REMOVE(&call->owner->calls, call, link);
    call->owner = NULL;
    call_finish(call, result, err);
}

static hub_client_t *find_client(hub_t *h, const char *name)
{
    for (size_t i = 0; i < h->n_clients; i++) {
        if (h->clients[i] != NULL && strcmp(h->clients[i]->spec.conn.name, name) == 0)
            return h->clients[i];
    }
    return NULL;
}

static void run_call(hub_t *h, mcp_hub_call_t *call)
{
    if (call_cancelled(call)) {
        call->stage = STAGE_FINISHED;
        call_unref(call);
        return;
    }
    hub_client_t *hc = find_client(h, call->client);
    if (hc == NULL) {
        call_fail(call, MCP_ERR_UNAVAILABLE, "no MCP client named %s is configured", call->client);
        return;
    }
    if (call->tool != NULL && !mcp_filter_list_allows(hc->spec.tools_to_execute, call->tool)) {
        call_fail(call, JSONRPC_INVALID_PARAMS,
                  "tool %s of MCP client %s is not allowed by its tools_to_execute", call->tool,
                  call->client);
        return;
    }

    json_t *params = call->params;
    call->params = NULL;
    call->stage = STAGE_SENT;
    call->owner = hc;
    TAILQ_INSERT_TAIL(&hc->calls, call, link);
    call->pending = mcp_client_request(hc->client, call->method, params, h->tool_timeout_ms,
                                       on_call_done, NULL, call);
}

static void run_cancel(mcp_hub_call_t *call)
{
    if (call->stage == STAGE_SENT) {
        mcp_client_cancel(call->pending);
        call->pending = NULL;
        TAILQ_REMOVE(&call->owner->calls, call, link);
        call->owner = NULL;
        call->stage = STAGE_FINISHED;
        log_info(call_rid(call),
                 "%s of MCP client %s cancelled by its caller after %.0f ms;"
                 " the server was told",
                 call->tool != NULL ? call->tool : call->method, call->client,
                 (now_s() - call->started) * 1000.0);
        call_unref(call); /* the hub's: nothing will be delivered */
    }
    call_unref(call); /* the cancel command's */
}

/* Fails every call waiting on hc (its connection is about to go). */
static void fail_client_calls(hub_client_t *hc, const char *why)
{
    mcp_hub_call_t *call;
    while ((call = TAILQ_FIRST(&hc->calls)) != NULL) {
        TAILQ_REMOVE(&hc->calls, call, link);
        mcp_client_cancel(call->pending);
        call->pending = NULL;
        call->owner = NULL;
        call_fail(call, MCP_ERR_UNAVAILABLE, "MCP client %s %s", call->client, why);
    }
}

/* ---- clients and their lists ---------------------------------------------------------------- */

static void start_list(hub_client_t *hc, int kind);

static void on_list_done(void *arg, const json_t *result, const mcp_error_t *err)
{
    list_slot_t *slot = arg;
    hub_client_t *hc = slot->hc;
    slot->pending = NULL;
    if (result != NULL) {
        json_decref(slot->items);
        slot->items = json_incref((json_t *)result);
        mark_dirty(hc->hub);
    } else if (err->code == JSONRPC_METHOD_NOT_FOUND) {
        /* Some servers declare "resources" without templates: an empty list, not a failure
         * to report at every resync. */
        log_debug(NULL, "MCP client %s has no %s: %s", hc->spec.conn.name,
                  list_kinds[slot->kind].method, err->message);
        json_decref(slot->items);
        slot->items = json_array();
        mark_dirty(hc->hub);
    } else {
        log_msg(hc->state == MCP_STATE_READY ? LOG_LVL_WARN : LOG_LVL_INFO, NULL,
                "listing %s of MCP client %s failed: %s; the previous list stays",
                list_kinds[slot->kind].field, hc->spec.conn.name, err->message);
    }
    if (slot->again) {
        slot->again = false;
        start_list(hc, slot->kind);
    }
}

static void start_list(hub_client_t *hc, int kind)
{
    list_slot_t *slot = &hc->lists[kind];
    if (hc->state != MCP_STATE_READY)
        return;
    if (slot->pending != NULL) {
        slot->again = true;
        return;
    }
    slot->pending = mcp_client_list_all(hc->client, list_kinds[kind].method, list_kinds[kind].field,
                                        on_list_done, slot);
}

/* Lists everything the server says it has; what it lacks is an empty list. */
static void sync_all(hub_client_t *hc)
{
    if (hc->state != MCP_STATE_READY)
        return;
    const json_t *caps = mcp_client_capabilities(hc->client);
    for (int k = 0; k < LIST_KINDS; k++) {
        if (json_object_get(caps, list_kinds[k].capability) != NULL) {
            start_list(hc, k);
        } else if (hc->lists[k].items == NULL || json_array_size(hc->lists[k].items) > 0) {
            json_decref(hc->lists[k].items);
            hc->lists[k].items = json_array();
            mark_dirty(hc->hub);
        }
    }
}

static void on_client_state(void *arg, mcp_client_t *c, mcp_client_state_t state,
                            const char *reason)
{
    hub_client_t *hc = arg;
    hc->state = state;
    if (state == MCP_STATE_READY) {
        hc->error[0] = '\0';
        sync_all(hc);
    } else if (reason != NULL) {
        snprintf(hc->error, sizeof(hc->error), "%s", reason);
    }
    mark_dirty(hc->hub);
}

static void on_client_notification(void *arg, mcp_client_t *c, const char *method,
                                   const json_t *params)
{
    hub_client_t *hc = arg;
    int kinds[2] = {-1, -1};
    if (strcmp(method, "notifications/tools/list_changed") == 0) {
        kinds[0] = LIST_TOOLS;
    } else if (strcmp(method, "notifications/resources/list_changed") == 0) {
        kinds[0] = LIST_RESOURCES;
        kinds[1] = LIST_TEMPLATES;
    } else if (strcmp(method, "notifications/prompts/list_changed") == 0) {
        kinds[0] = LIST_PROMPTS;
    } else {
        log_debug(NULL, "MCP client %s: notification %s ignored", hc->spec.conn.name, method);
        return;
    }
    log_info(NULL, "MCP client %s: %s; listing again", hc->spec.conn.name, method);
    for (int i = 0; i < 2 && kinds[i] >= 0; i++)
        start_list(hc, kinds[i]);
}

/* Makes a client from spec (moved in: spec is left empty) and starts connecting it. */
static hub_client_t *client_new(hub_t *h, mcp_hub_client_spec_t *spec)
{
    static const mcp_client_handlers_t handlers = {on_client_state, on_client_notification};
    hub_client_t *hc = xcalloc(1, sizeof(*hc));
    hc->hub = h;
    hc->spec = *spec;
    memset(spec, 0, sizeof(*spec));
    hc->state = MCP_STATE_CONNECTING;
    TAILQ_INIT(&hc->calls);
    for (int k = 0; k < LIST_KINDS; k++)
        hc->lists[k] = (list_slot_t){.hc = hc, .kind = k};
    hc->client = mcp_client_new(h->base, h->pool, &hc->spec.conn, &handlers, hc);
    mcp_client_start(hc->client);
    log_info(NULL, "MCP client %s (%s) added; connecting", hc->spec.conn.name,
             hub_transport_name(hc->spec.conn.transport));
    return hc;
}

static void client_free(hub_client_t *hc, const char *why)
{
    log_info(NULL, "MCP client %s %s; closing its connection", hc->spec.conn.name, why);
    fail_client_calls(hc, why);
    /* mcp_client_free cancels the listings without calling back. */
    mcp_client_free(hc->client);
    for (int k = 0; k < LIST_KINDS; k++)
        json_decref(hc->lists[k].items);
    spec_free(&hc->spec);
    free(hc);
}

/* ---- the catalog ---------------------------------------------------------------------------- */

static void notify_subscribers(void)
{
    pthread_mutex_lock(&subs_lock);
    mcp_hub_sub_t *sub;
    TAILQ_FOREACH (sub, &subs, link)
        event_active(sub->ev, EV_READ, 0);
    pthread_mutex_unlock(&subs_lock);
}

static void log_catalog(const mcp_catalog_t *cat)
{
    size_t available = 0;
    for (size_t i = 0; i < cat->n_tools; i++)
        available += cat->tools[i].available;
    log_info(NULL,
             "MCP catalog version %llu: %zu tools (%zu available) from %zu clients,"
             " %zu resources, %zu prompts",
             (unsigned long long)cat->version, cat->n_tools, available,
             json_array_size(cat->clients), json_array_size(cat->resources),
             json_array_size(cat->prompts));
}

/* Makes cat (taken) the current catalog unless it equals the current one. Any thread. */
static void catalog_install(mcp_catalog_t *cat)
{
    pthread_mutex_lock(&cat_lock);
    mcp_catalog_t *old = cat_current;
    if (old != NULL && hub_catalog_same(old, cat)) {
        pthread_mutex_unlock(&cat_lock);
        mcp_catalog_release(cat);
        return;
    }
    cat->version = ++cat_version;
    cat_current = cat;
    pthread_mutex_unlock(&cat_lock);

    log_catalog(cat);
    mcp_catalog_release(old);
    notify_subscribers();
}

static void on_rebuild(evutil_socket_t fd, short what, void *arg)
{
    hub_t *h = arg;
    hub_catalog_src_t *src = xcalloc(h->n_clients + 1, sizeof(*src));
    for (size_t i = 0; i < h->n_clients; i++) {
        const hub_client_t *hc = h->clients[i];
        src[i] = (hub_catalog_src_t){
            .name = hc->spec.conn.name,
            .transport = hc->spec.conn.transport,
            .state = hc->state,
            .error = hc->error[0] != '\0' ? hc->error : NULL,
            .tools_to_execute = hc->spec.tools_to_execute,
            .tools_to_auto_execute = hc->spec.tools_to_auto_execute,
            .code_mode = hc->spec.is_code_mode,
            .tools = hc->lists[LIST_TOOLS].items,
            .resources = hc->lists[LIST_RESOURCES].items,
            .templates = hc->lists[LIST_TEMPLATES].items,
            .prompts = hc->lists[LIST_PROMPTS].items,
        };
    }
    mcp_catalog_t *cat = hub_catalog_build(src, h->n_clients, 0);
    free(src);
    catalog_install(cat);
}

static void mark_dirty(hub_t *h)
{
    event_active(h->rebuild_ev, EV_READ, 0);
}

static void on_resync(evutil_socket_t fd, short what, void *arg)
{
    hub_t *h = arg;
    for (size_t i = 0; i < h->n_clients; i++)
        sync_all(h->clients[i]);
}

mcp_catalog_t *mcp_hub_catalog(void)
{
    pthread_mutex_lock(&cat_lock);
    if (cat_current == NULL)
        cat_current = hub_catalog_empty(cat_version);
    mcp_catalog_t *cat = cat_current;
    __atomic_add_fetch(&cat->refcount, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&cat_lock);
    return cat;
}

/* ---- subscribers ---------------------------------------------------------------------------- */

static void on_sub_event(evutil_socket_t fd, short what, void *arg)
{
    mcp_hub_sub_t *sub = arg;
    sub->on_change(sub->arg);
}

mcp_hub_sub_t *mcp_hub_subscribe(struct event_base *base, void (*on_change)(void *arg), void *arg)
{
    mcp_hub_sub_t *sub = xcalloc(1, sizeof(*sub));
    sub->on_change = on_change;
    sub->arg = arg;
    sub->ev = event_new(base, -1, 0, on_sub_event, sub);
    if (sub->ev == NULL) {
        free(sub);
        return NULL;
    }
    pthread_mutex_lock(&subs_lock);
    TAILQ_INSERT_TAIL(&subs, sub, link);
    pthread_mutex_unlock(&subs_lock);
    return sub;
}

void mcp_hub_unsubscribe(mcp_hub_sub_t *sub)
{
    if (sub == NULL)
        return;
    /* Once off the list under the lock, no thread activates the event any more; freeing it
     * on its own base's thread also drops an activation still pending. */
    pthread_mutex_lock(&subs_lock);
    TAILQ_REMOVE(&subs, sub, link);
    pthread_mutex_unlock(&subs_lock);
    event_free(sub->ev);
    free(sub);
}

/* ---- configuration on the hub thread -------------------------------------------------------- */

/* Takes the client of that name out of the current array (its slot becomes NULL). */
static hub_client_t *take_client(hub_t *h, const char *name)
{
    for (size_t i = 0; i < h->n_clients; i++) {
        hub_client_t *hc = h->clients[i];
        if (hc != NULL && strcmp(hc->spec.conn.name, name) == 0) {
            h->clients[i] = NULL;
            return hc;
        }
    }
    return NULL;
}

/* The client for spec: the running one when its connection is unchanged (it gets the new tool
 * lists), else a new one. spec is moved out. */
static hub_client_t *client_for(hub_t *h, mcp_hub_client_spec_t *spec)
{
    hub_client_t *hc = take_client(h, spec->conn.name);
    if (hc != NULL && conn_same(&hc->spec.conn, &spec->conn)) {
        spec_free(&hc->spec);
        hc->spec = *spec;
        memset(spec, 0, sizeof(*spec));
        return hc;
    }
    if (hc != NULL)
        client_free(hc, "changed its connection settings");
    return client_new(h, spec);
}

static bool in_list(hub_client_t **list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i]->spec.conn.name, name) == 0)
            return true;
    }
    return false;
}

static void apply_config(hub_t *h, hub_config_t *cfg)
{
    h->tool_timeout_ms = cfg->tool_timeout_ms;
    h->resync_ms = cfg->resync_ms;

    hub_client_t **next = xcalloc(cfg->n_clients + 1, sizeof(hub_client_t *));
    size_t n_next = 0;
    for (size_t i = 0; i < cfg->n_clients; i++) {
        mcp_hub_client_spec_t *spec = &cfg->clients[i];
        if (spec->conn.name == NULL || in_list(next, n_next, spec->conn.name)) {
            log_warn(NULL,
                     "MCP client %s is configured twice (or has no name); the first"
                     " one is used",
                     spec->conn.name ? spec->conn.name : "(unnamed)");
            continue;
        }
        next[n_next++] = client_for(h, spec);
    }
    for (size_t i = 0; i < h->n_clients; i++) {
        if (h->clients[i] != NULL)
            client_free(h->clients[i], "was removed from the configuration");
    }
    free(h->clients);
    h->clients = next;
    h->n_clients = n_next;
    config_free(cfg);

    struct timeval tv = ms_tv(h->resync_ms);
    event_add(h->resync_ev, &tv);
    mark_dirty(h);
}

/* ---- stopping on the hub thread ------------------------------------------------------------- */

static void on_stop_poll(evutil_socket_t fd, short what, void *arg)
{
    hub_t *h = arg;
    bool late = now_s() >= h->stop_deadline;
    if (h->pool != NULL && (late || upstream_pool_active(h->pool) == 0)) {
        upstream_pool_free(h->pool);
        h->pool = NULL;
    }
    int left = event_base_get_num_events(h->base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
    if (h->pool == NULL && (left == 0 || late)) {
        if (late && left > 0)
            log_warn(NULL,
                     "MCP hub: %d events still pending %ld ms after stop (a server"
                     " process not reaped?); stopping anyway",
                     left, STOP_GRACE_MS);
        event_base_loopbreak(h->base);
        return;
    }
    struct timeval tv = ms_tv(STOP_POLL_MS);
    evtimer_add(h->stop_ev, &tv);
}

static void begin_stop(hub_t *h)
{
    for (size_t i = 0; i < h->n_clients; i++)
        client_free(h->clients[i], "is stopping with the gateway");
    free(h->clients);
    h->clients = NULL;
    h->n_clients = 0;
    event_del(h->resync_ev);
    h->stop_deadline = now_s() + STOP_GRACE_MS / 1000.0;
    on_stop_poll(-1, 0, h);
}

/* ---- the command queue ---------------------------------------------------------------------- */

/* Queues a command unless the hub is stopping or gone. Returns false when it was not queued
 * (the command is then still the caller's). Any thread. */
static bool push_cmd(cmd_t *cmd)
{
    pthread_mutex_lock(&hub_lock);
    hub_t *h = the_hub;
    bool ok = h != NULL && !h->stopping;
    if (ok) {
        TAILQ_INSERT_TAIL(&h->queue, cmd, link);
        if (cmd->kind == CMD_STOP)
            h->stopping = true;
        event_active(h->wake_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&hub_lock);
    return ok;
}

static cmd_t *cmd_new(cmd_kind_t kind, mcp_hub_call_t *call, hub_config_t *config)
{
    cmd_t *cmd = xcalloc(1, sizeof(*cmd));
    cmd->kind = kind;
    cmd->call = call;
    cmd->config = config;
    return cmd;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    hub_t *h = arg;
    for (;;) {
        pthread_mutex_lock(&hub_lock);
        cmd_t *cmd = TAILQ_FIRST(&h->queue);
        if (cmd != NULL)
            TAILQ_REMOVE(&h->queue, cmd, link);
        pthread_mutex_unlock(&hub_lock);
        if (cmd == NULL)
            return;

        switch (cmd->kind) {
        case CMD_CALL:
            run_call(h, cmd->call);
            break;
        case CMD_CANCEL:
            run_cancel(cmd->call);
            break;
        case CMD_RECONFIGURE:
            apply_config(h, cmd->config);
            break;
        case CMD_STOP:
            begin_stop(h);
            break;
        case CMD_POST:
            cmd->post_fn(h->base, cmd->post_arg);
            break;
        }
        free(cmd);
    }
}

/* ---- public API: lifecycle ------------------------------------------------------------------ */

static void *hub_main(void *arg)
{
    hub_t *h = arg;
    event_base_loop(h->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void hub_free(hub_t *h)
{
    cmd_t *cmd;
    while ((cmd = TAILQ_FIRST(&h->queue)) != NULL) {
        TAILQ_REMOVE(&h->queue, cmd, link);
        if (cmd->config != NULL)
            config_free(cmd->config);
        free(cmd);
    }
    if (h->pool != NULL)
        upstream_pool_free(h->pool);
    if (h->wake_ev != NULL)
        event_free(h->wake_ev);
    if (h->rebuild_ev != NULL)
        event_free(h->rebuild_ev);
    if (h->resync_ev != NULL)
        event_free(h->resync_ev);
    if (h->stop_ev != NULL)
        event_free(h->stop_ev);
    if (h->base != NULL)
        event_base_free(h->base);
    free(h);
}

static hub_t *hub_new(void)
{
    /* The hub's base must be made after threads are enabled, or other threads could not
     * wake it; the gateway enables them already, and doing it twice is harmless. */
    evthread_use_pthreads();
    hub_t *h = xcalloc(1, sizeof(*h));
    TAILQ_INIT(&h->queue);
    h->base = event_base_new();
    if (h->base == NULL) {
        hub_free(h);
        return NULL;
    }
    h->pool = upstream_pool_new(h->base);
    h->wake_ev = event_new(h->base, -1, 0, on_wake, h);
    h->rebuild_ev = event_new(h->base, -1, 0, on_rebuild, h);
    h->resync_ev = event_new(h->base, -1, EV_PERSIST, on_resync, h);
    h->stop_ev = evtimer_new(h->base, on_stop_poll, h);
    if (h->pool == NULL || h->wake_ev == NULL || h->rebuild_ev == NULL || h->resync_ev == NULL ||
        h->stop_ev == NULL) {
        hub_free(h);
        return NULL;
    }
    return h;
}

int mcp_hub_start(const mcp_hub_opts_t *opts)
{
    hub_t *h = hub_new();
    if (h == NULL) {
        log_crit(NULL, "cannot set up the MCP tool hub's event loop; MCP is off");
        return -1;
    }
    /* The first configuration is applied on the hub thread like any later one. */
    cmd_t *first = cmd_new(CMD_RECONFIGURE, NULL, config_copy(opts));
    TAILQ_INSERT_TAIL(&h->queue, first, link);
    event_active(h->wake_ev, EV_READ, 0);

    pthread_mutex_lock(&hub_lock);
    if (the_hub != NULL) {
        pthread_mutex_unlock(&hub_lock);
        log_crit(NULL, "the MCP tool hub is already running; not starting another");
        hub_free(h);
        return -1;
    }
    if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
        pthread_mutex_unlock(&hub_lock);
        log_crit(NULL, "cannot start the MCP tool hub thread; MCP is off");
        hub_free(h);
        return -1;
    }
    the_hub = h;
    pthread_mutex_unlock(&hub_lock);
    log_info(NULL, "MCP tool hub started with %zu clients", opts->n_clients);
    return 0;
}

void mcp_hub_reconfigure(const mcp_hub_opts_t *opts)
{
    hub_config_t *cfg = config_copy(opts);
    cmd_t *cmd = cmd_new(CMD_RECONFIGURE, NULL, cfg);
    if (!push_cmd(cmd)) {
        log_warn(NULL, "MCP tool hub is not running; new MCP configuration ignored");
        config_free(cfg);
        free(cmd);
    }
}

void mcp_hub_stop(void)
{
    pthread_mutex_lock(&hub_lock);
    hub_t *h = the_hub;
    pthread_mutex_unlock(&hub_lock);
    cmd_t *cmd = cmd_new(CMD_STOP, NULL, NULL);
    if (h == NULL || !push_cmd(cmd)) {
        free(cmd);
        return;
    }
    pthread_join(h->thread, NULL);

    pthread_mutex_lock(&hub_lock);
    the_hub = NULL;
    pthread_mutex_unlock(&hub_lock);
    hub_free(h);

    pthread_mutex_lock(&cat_lock);
    uint64_t version = cat_version;
    pthread_mutex_unlock(&cat_lock);
    catalog_install(hub_catalog_empty(version));
    log_info(NULL, "MCP tool hub stopped");
}

int mcp_hub_post(void (*fn)(struct event_base *base, void *arg), void *arg)
{
    cmd_t *cmd = cmd_new(CMD_POST, NULL, NULL);
    cmd->post_fn = fn;
    cmd->post_arg = arg;
    if (!push_cmd(cmd)) {
        free(cmd);
        return -1;
    }
    return 0;
}

/* ---- public API: calls ---------------------------------------------------------------------- */

static mcp_hub_call_t *submit(mcp_hub_call_t *call)
{
    cmd_t *cmd = cmd_new(CMD_CALL, call, NULL);
    if (!push_cmd(cmd)) {
        free(cmd);
        call_reject(call, MCP_ERR_UNAVAILABLE, "the MCP tool hub is not running");
    }
    return call;
}

mcp_hub_call_t *mcp_hub_call_tool(struct event_base *reply_base, const char *client,
                                  const char *tool, json_t *arguments, const char *request_id,
                                  mcp_hub_done_fn cb, void *arg)
{
    assert(reply_base != NULL && cb != NULL && tool != NULL);
    json_t *params = json_object();
    json_object_set_new(params, "name", json_string(tool));
    json_object_set_new(params, "arguments", arguments != NULL ? arguments : json_object());
    return submit(call_new(reply_base, client, tool, "tools/call", params, request_id, cb, arg));
}

mcp_hub_call_t *mcp_hub_request(struct event_base *reply_base, const char *client,
                                const char *method, json_t *params, const char *request_id,
                                mcp_hub_done_fn cb, void *arg)
{
    assert(reply_base != NULL && cb != NULL && method != NULL);
    return submit(call_new(reply_base, client, NULL, method, params, request_id, cb, arg));
}

void mcp_hub_cancel(mcp_hub_call_t *call)
{
    if (call == NULL)
        return;
    __atomic_store_n(&call->cancelled, 1, __ATOMIC_RELEASE);
    /* The caller's reference goes to the cancel command, so that the hub can still reach the
     * call to tell the server; without a hub there is nobody to tell. */
    cmd_t *cmd = cmd_new(CMD_CANCEL, call, NULL);
    if (!push_cmd(cmd)) {
        free(cmd);
        call_unref(call);
    }
}
