/*
 * exec.c - the Code Mode executor: executions, their sockets and their tool calls (contract
 * in exec.h; the helper process is supervisor.c, the wire format docs/internals/sandbox.md).
 *
 * Threads. An execution is created on its caller's thread (a worker) and handed to the tool
 * hub's thread with mcp_hub_post; from then on everything about it - the run frame on the
 * helper's control socket, the execution socket, the wall-clock timer, the tool calls (made
 * with the hub's own loop as reply loop) - are events on the hub thread. The end is delivered
 * to the caller's loop with event_base_once, as the hub delivers tool results. So a worker
 * never waits on the sandbox, and the hub only ever reacts to readable sockets.
 *
 * An execution (codemode_exec_t) is shared by its caller and the hub, so it is reference
 * counted like a hub call: one reference for the caller's handle (dropped after its callback
 * ran, or by the cancel command), one for the hub's work (dropped by the delivery, or at the
 * end when the caller has cancelled). cancelled is set on the caller's thread, where delivery
 * also runs, so "the callback never runs after cancel" needs only that flag.
 *
 * The life of an execution on the hub thread:
 *
 *   WAITING   in the FIFO queue `waiting`, within its wall time: the helper is (re)starting
 *             (unless it failed to start several times in a row), or max_concurrent children
 *             run already. A child holds its place from the run frame until the helper reports
 *             its exit, even when its execution has ended before (done frame, timeout, cancel):
 *             until then the child still has its memory. launch_waiting starts the queue's
 *             head whenever a place frees up or the helper becomes ready
 *   RUNNING   the run frame went out with one end of a fresh socketpair; the child's call
 *             frames become hub calls whose results go back as return frames; it ends with the
 *             child's done (or analysis) frame, the wall-clock timer (kill, "timeout"), a frame
 *             over the size limit (kill, "limit"), the child's end without an answer (a signal:
 *             "limit"; anything else: "internal"), or the helper's loss ("internal")
 *   FINISHED  the outcome is built; tool calls still in flight are cancelled; the child is
 *             killed if the helper has not reported its exit; the caller gets the outcome
 *
 * Every tool call leaves a request-log row with source "code_mode" and the execution's id,
 * metrics_tool_call, and a record in the outcome; every execution metrics_code_mode.
 */
#include "codemode/exec.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codemode/bindings.h"
#include "codemode/exec_internal.h"
#include "mcp/hub.h"
#include "telemetry/metrics.h"
#include "telemetry/reqlog.h"
#include "util/alloc.h"
#include "util/log.h"

#define RID_MAX 64
#define XID_MAX 96
#define EXIT_GRACE_MS 2000L      /* between the child's end and the last of its bytes */
#define FRAME_SLACK (64L * 1024) /* room in a done frame for JSON escaping, result, error */
#define MAX_RECORDS 10000        /* tool calls per execution; more fail in the script */
#define GATEWAY_HINT_TIMEOUT                                                                       \
    "do less in one execution (fewer tool calls, smaller loops) or split the work into several"
#define GATEWAY_HINT_RETRY "run the script again; if it keeps failing, the gateway's log says why"
#define GATEWAY_HINT_BUSY                                                                          \
    "the gateway is busy with other scripts: try again in a moment, or do the work without"        \
    " Code Mode"

typedef enum exec_stage { ST_NEW, ST_WAITING, ST_RUNNING, ST_FINISHED } exec_stage_t;

typedef struct tool_call {
    codemode_exec_t *e;
    long seq;      /* the child's number for it */
    size_t record; /* index in e->records */
    mcp_hub_call_t *hub;
    char *client;    /* MCP client name */
    char *tool;      /* tool name on its server */
    char *arguments; /* JSON text for the request log, or NULL */
    double started_unix;
    TAILQ_ENTRY(tool_call) link;
} tool_call_t;

TAILQ_HEAD(tool_call_list, tool_call);

struct codemode_exec {
    int refs;      /* atomic: the caller's handle and the hub's work */
    int cancelled; /* atomic: set by codemode_exec_cancel */
    struct event_base *reply_base;
    bool analyze;
    codemode_done_fn done;
    codemode_analysis_fn analysis_done;
    void *arg;
    char *code;
    codemode_bindings_t *b; /* a reference, or NULL */
    codemode_limits_t lim;  /* resolved: no field <= 0 */
    char rid[RID_MAX];
    char xid[XID_MAX]; /* the execution's id in logs and request-log rows */
    bool log_content;
    double started; /* monotonic seconds */

    /* hub thread only */
    exec_stage_t stage;
    struct event_base *base;
    long id; /* the run frame's id, 0 before */
    struct bufferevent *bev;
    struct event *wall_ev;
    struct event *grace_ev;
    bool eof;
    bool exited;
    bool signaled;
    int exit_value;
    char exit_error[160]; /* the helper's reason for the exit, or "" */
    struct tool_call_list in_flight;
    TAILQ_ENTRY(codemode_exec) link;

    /* the outcome: written on the hub thread before delivery, read on the caller's after */
    codemode_call_record_t *records; /* strings owned */
    size_t n_records, cap_records;
    json_t *reply;        /* the child's done or analysis frame, or NULL */
    const char *status;   /* a literal or a string of reply */
    char *message;        /* set when the gateway made the outcome */
    const char *err_type; /* literal, or of reply */
    const char *hint;     /* literal, or of reply */
    char *output;         /* owned; never NULL once finished */
    codemode_outcome_t o;
};

TAILQ_HEAD(exec_list, codemode_exec);

static struct exec_list waiting = TAILQ_HEAD_INITIALIZER(waiting); /* hub thread; FIFO */
static struct exec_list running = TAILQ_HEAD_INITIALIZER(running); /* hub thread */
static long next_run_id;                                           /* hub thread */
static unsigned long next_xid;                                     /* atomic */

/* The cap on children at once (atomic; codemode_set_max_concurrent) and who holds a place: runs
 * sent to the helper whose exit it has not reported. The ids of those whose execution ended
 * first are kept in `lingering` to find them when their exit comes. Hub thread. */
static long max_concurrent = CODEMODE_DEFAULT_MAX_CONCURRENT;
static size_t n_children;
static long *lingering;
static size_t n_lingering, cap_lingering;
static bool queue_reported; /* the cap's log line was written since the queue was last empty */

static pthread_mutex_t defaults_lock = PTHREAD_MUTEX_INITIALIZER;
static codemode_limits_t defaults = {CODEMODE_DEFAULT_WALL_MS, CODEMODE_DEFAULT_CPU_S,
                                     CODEMODE_DEFAULT_MEMORY_MB, CODEMODE_DEFAULT_OUTPUT_BYTES};
static bool started; /* main thread only */

static void end_execution(codemode_exec_t *e);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the execution object -------------------------------------------------------------------- */

static void exec_free(codemode_exec_t *e)
{
    for (size_t i = 0; i < e->n_records; i++) {
        free((char *)e->records[i].server_py);
        free((char *)e->records[i].tool_py);
        free((char *)e->records[i].error);
    }
    free(e->records);
    json_decref(e->reply);
    free(e->message);
    free(e->output);
    free(e->code);
    codemode_bindings_release(e->b);
    free(e);
}

static void exec_unref(codemode_exec_t *e)
{
    if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
        exec_free(e);
}

/* A reference held across a callback that may end the execution: the delivery, on another
 * thread, could otherwise free it while the callback still reads it. */
static void exec_ref(codemode_exec_t *e)
{
    __atomic_add_fetch(&e->refs, 1, __ATOMIC_ACQ_REL);
}

static bool is_cancelled(const codemode_exec_t *e)
{
    return __atomic_load_n(&e->cancelled, __ATOMIC_ACQUIRE) != 0;
}

static void resolve_limits(codemode_limits_t *out, const codemode_limits_t *lim)
{
    pthread_mutex_lock(&defaults_lock);
    *out = defaults;
    pthread_mutex_unlock(&defaults_lock);
    if (lim == NULL)
        return;
    if (lim->wall_ms > 0)
        out->wall_ms = lim->wall_ms;
    if (lim->cpu_s > 0)
        out->cpu_s = lim->cpu_s;
    if (lim->memory_mb > 0)
        out->memory_mb = lim->memory_mb;
    if (lim->output_bytes > 0)
        out->output_bytes = lim->output_bytes;
}

static codemode_exec_t *exec_new(struct event_base *reply_base, const char *code,
                                 codemode_bindings_t *b, const codemode_limits_t *lim,
                                 const char *request_id, void *arg)
{
    codemode_exec_t *e = xcalloc(1, sizeof(*e));
    e->refs = 2;
    e->reply_base = reply_base;
    e->arg = arg;
    e->code = xstrdup(code != NULL ? code : "");
    e->b = b != NULL ? codemode_bindings_ref(b) : NULL;
    resolve_limits(&e->lim, lim);
    snprintf(e->rid, sizeof(e->rid), "%s", request_id != NULL ? request_id : "");
    unsigned long n = __atomic_add_fetch(&next_xid, 1, __ATOMIC_RELAXED);
    snprintf(e->xid, sizeof(e->xid), "%s%scm%lu", e->rid, e->rid[0] != '\0' ? "." : "", n);
    e->started = now_s();
    TAILQ_INIT(&e->in_flight);
    return e;
}

/* Sets a gateway-made outcome (the child's own outcome is in e->reply). */
static void set_outcome(codemode_exec_t *e, const char *status, const char *err_type,
                        const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set_outcome(codemode_exec_t *e, const char *status, const char *err_type,
                        const char *hint, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_decref(e->reply);
    e->reply = NULL;
    e->status = status;
    e->err_type = err_type;
    e->hint = hint;
    free(e->message);
    e->message = xstrdup(msg);
}

/* The gateway ends an execution itself. */
static void fail(codemode_exec_t *e, const char *status, const char *err_type, const char *hint,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail(codemode_exec_t *e, const char *status, const char *err_type, const char *hint,
                 const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_outcome(e, status, err_type, hint, "%s", msg);
    end_execution(e);
}

/* ---- delivery (the caller's thread) ---------------------------------------------------------- */

static void deliver_analysis(codemode_exec_t *e)
{
    codemode_analysis_t a = {.error_message = e->message};
    const json_t *r = e->reply;
    if (r == NULL) {
        a.failed = true;
        e->analysis_done(e->arg, &a);
        return;
    }
    a.syntax_ok = json_is_true(json_object_get(r, "syntax_ok"));
    a.dynamic = json_is_true(json_object_get(r, "dynamic"));
    const json_t *err = json_object_get(r, "error");
    a.error_message = json_string_value(json_object_get(err, "message"));
    json_int_t line = json_integer_value(json_object_get(err, "line"));
    a.error_line = line > 0 && line < 1000000000 ? (int)line : 0;

    const json_t *calls = json_object_get(r, "calls");
    size_t n = json_array_size(calls);
    const char **servers = xcalloc(n + 1, sizeof(char *));
    const char **tools = xcalloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *pair = json_array_get(calls, i);
        const char *srv = json_string_value(json_array_get(pair, 0));
        const char *tool = json_string_value(json_array_get(pair, 1));
        if (srv == NULL || tool == NULL) {
            a.dynamic = true; /* a malformed entry is a call we cannot vouch for */
            continue;
        }
        servers[k] = srv;
        tools[k] = tool;
        k++;
    }
    a.servers_py = servers;
    a.tools_py = tools;
    a.n_calls = k;
    e->analysis_done(e->arg, &a);
    free(servers);
    free(tools);
}

static void deliver(evutil_socket_t fd, short what, void *arg)
{
    codemode_exec_t *e = arg;
    if (!is_cancelled(e)) {
        if (e->analyze)
            deliver_analysis(e);
        else
            e->done(e->arg, &e->o);
        exec_unref(e); /* the caller's */
    }
    exec_unref(e); /* the hub's */
}

static void schedule_delivery(codemode_exec_t *e)
{
    if (event_base_once(e->reply_base, -1, EV_TIMEOUT, deliver, e, NULL) != 0) {
        log_crit(e->rid,
                 "code mode execution %s: cannot deliver its outcome; the request will"
                 " not get an answer",
                 e->xid);
        exec_unref(e);
    }
}

/* ---- the end --------------------------------------------------------------------------------- */

/* Fills e->o from e->reply (the child's done frame) or the gateway's outcome. */
static void build_outcome(codemode_exec_t *e)
{
    codemode_outcome_t *o = &e->o;
    if (e->reply != NULL && !e->analyze) {
        codemode_outcome_from_done(e->reply, e->lim.output_bytes, o, &e->output);
    } else {
        e->output = xstrdup("");
        o->error_type = e->err_type;
        o->error_message = e->message;
        o->hint = e->hint;
    }
    o->status = e->status;
    if (strcmp(o->status, "ok") != 0 && o->error_message == NULL)
        o->error_message = "(the sandbox gave no message)";
    o->output = e->output;
    o->calls = e->records;
    o->n_calls = e->n_records;
    o->duration_s = now_s() - e->started;
}

static void record_finish(codemode_exec_t *e, size_t i, double duration_s, const char *error)
{
    codemode_call_record_t *r = &e->records[i];
    r->duration_s = duration_s;
    r->ok = error == NULL;
    r->error = error != NULL ? xstrdup(error) : NULL;
}

/* The request-log row and metrics of one tool call that reached the hub. */
static void log_tool_call(codemode_exec_t *e, const tool_call_t *tc, const json_t *result,
                          double duration_s, const char *error)
{
    char *result_text = e->log_content && result != NULL ? json_dumps(result, JSON_COMPACT) : NULL;
    /* A tool's own error text (isError) is part of its result: kept only with the content, as
     * the execute endpoint does (gateway/tool_log.c). */
    if (error != NULL && result != NULL && !e->log_content)
        error = "the tool reported an error (isError)";
    reqlog_tool_call_t row = {
        .request_id = e->rid[0] != '\0' ? e->rid : NULL,
        .execution_id = e->xid,
        .source = "code_mode",
        .mcp_client = tc->client,
        .tool = tc->tool,
        .started_unix = tc->started_unix,
        .duration_s = duration_s,
        .ok = error == NULL,
        .error = error,
        .arguments = e->log_content ? tc->arguments : NULL,
        .result = result_text,
    };
    reqlog_submit_tool(&row);
    metrics_tool_call(tc->client, tc->tool, error == NULL, duration_s);
    free(result_text);
}

static void tool_call_free(tool_call_t *tc)
{
    free(tc->client);
    free(tc->tool);
    free(tc->arguments);
    free(tc);
}

/* Tool calls still in flight when the execution ends: cancelled, recorded as such. */
static void cancel_tool_calls(codemode_exec_t *e)
{
    tool_call_t *tc;
    while ((tc = TAILQ_FIRST(&e->in_flight)) != NULL) {
        TAILQ_REMOVE(&e->in_flight, tc, link);
        mcp_hub_cancel(tc->hub);
        const char *why = "cancelled: the execution ended first";
        double duration = wall_now() - tc->started_unix;
        record_finish(e, tc->record, duration, why);
        log_tool_call(e, tc, NULL, duration, why);
        tool_call_free(tc);
    }
}

static void send_kill(codemode_exec_t *e)
{
    json_t *kill_frame = json_pack("{s:s, s:I}", "op", "kill", "id", (json_int_t)e->id);
    cm_sup_send(kill_frame, -1); /* without a helper there is nothing left to kill */
    json_decref(kill_frame);
}

static void log_end(const codemode_exec_t *e)
{
    const codemode_outcome_t *o = &e->o;
    const char *what = e->analyze ? "analysis" : "execution";
    if (strcmp(o->status, "ok") == 0) {
        log_debug(e->rid, "code mode %s %s finished in %.3f s with %zu tool calls", what, e->xid,
                  o->duration_s, o->n_calls);
        return;
    }
    log_info(e->rid, "code mode %s %s ended with status %s in %.3f s after %zu tool calls: %s%s%s",
             what, e->xid, o->status, o->duration_s, o->n_calls,
             o->error_type != NULL ? o->error_type : "", o->error_type != NULL ? ": " : "",
             o->error_message != NULL ? o->error_message : "");
}

/* ---- places in the sandbox (max_concurrent) -------------------------------------------------- */

static void keep_lingering(long id)
{
    if (n_lingering == cap_lingering) {
        cap_lingering = cap_lingering ? cap_lingering * 2 : 16;
        lingering = xrealloc(lingering, cap_lingering * sizeof(*lingering));
    }
    lingering[n_lingering++] = id;
}

/* Whether id was lingering; it no longer is. */
static bool forget_lingering(long id)
{
    for (size_t i = 0; i < n_lingering; i++) {
        if (lingering[i] != id)
            continue;
        lingering[i] = lingering[--n_lingering];
        return true;
    }
    return false;
}

/* The helper reported a child's exit, or is gone with all its children. */
static void release_place(void)
{
    if (n_children > 0)
        n_children--;
}

static void release_all_places(void)
{
    n_children = 0;
    n_lingering = 0;
}

static void launch(codemode_exec_t *e);

/* Starts executions from the head of the queue while the helper is ready and a place is free. */
static void launch_waiting(void)
{
    size_t cap = (size_t)__atomic_load_n(&max_concurrent, __ATOMIC_RELAXED);
    codemode_exec_t *e;
    while (cm_sup_ready() && n_children < cap && (e = TAILQ_FIRST(&waiting)) != NULL) {
        TAILQ_REMOVE(&waiting, e, link);
        e->stage = ST_NEW;
        launch(e);
    }
    if (TAILQ_EMPTY(&waiting)) {
        queue_reported = false;
    } else if (cm_sup_ready() && !queue_reported) {
        queue_reported = true;
        e = TAILQ_FIRST(&waiting);
        log_info(e->rid,
                 "code mode: %zu scripts run in the sandbox, the limit (max_concurrent); %s and"
                 " later ones wait in a queue within their wall-clock limit",
                 n_children, e->xid);
    }
}

static void end_execution(codemode_exec_t *e)
{
    if (e->stage == ST_WAITING)
        TAILQ_REMOVE(&waiting, e, link);
    else if (e->stage == ST_RUNNING)
        TAILQ_REMOVE(&running, e, link);
    bool was_running = e->stage == ST_RUNNING;
    e->stage = ST_FINISHED;

    if (e->wall_ev != NULL)
        event_free(e->wall_ev);
    if (e->grace_ev != NULL)
        event_free(e->grace_ev);
    e->wall_ev = e->grace_ev = NULL;
    if (e->bev != NULL)
        bufferevent_free(e->bev);
    e->bev = NULL;
    if (was_running && !e->exited) {
        send_kill(e);
        keep_lingering(e->id);
    }
    cancel_tool_calls(e);

    if (e->analyze && e->reply != NULL)
        e->status = json_is_true(json_object_get(e->reply, "syntax_ok")) ? "ok" : "syntax";
    build_outcome(e);
    if (!e->analyze) /* a script whose request went away is no failure of the script's */
        metrics_code_mode(is_cancelled(e) ? "cancelled" : e->o.status, e->o.duration_s);
    log_end(e);

    if (is_cancelled(e))
        exec_unref(e); /* the hub's; the caller's goes with the cancel command */
    else
        schedule_delivery(e);
}

/* ---- the child's frames ---------------------------------------------------------------------- */

static void write_frame(codemode_exec_t *e, const json_t *frame)
{
    size_t len;
    char *data = codemode_frame_encode(frame, &len);
    if (data == NULL) {
        /* Only a result over the wire format's 16 MiB gets here: tell the script instead. */
        json_t *small = json_pack("{s:s, s:O, s:b, s:s}", "type", "return", "seq",
                                  json_object_get(frame, "seq"), "ok", 0, "error",
                                  "the tool's result is too large for the sandbox (over 16 MiB)");
        data = codemode_frame_encode(small, &len);
        json_decref(small);
    }
    if (data != NULL && e->bev != NULL)
        bufferevent_write(e->bev, data, len);
    free(data);
}

static size_t add_record(codemode_exec_t *e, const char *server_py, const char *tool_py)
{
    if (e->n_records == e->cap_records) {
        e->cap_records = e->cap_records ? e->cap_records * 2 : 8;
        e->records = xrealloc(e->records, e->cap_records * sizeof(*e->records));
    }
    codemode_call_record_t *r = &e->records[e->n_records];
    memset(r, 0, sizeof(*r));
    r->server_py = xstrndup(server_py, strnlen(server_py, 100)); /* names the child chose */
    r->tool_py = xstrndup(tool_py, strnlen(tool_py, 100));
    return e->n_records++;
}

static void answer_call_error(codemode_exec_t *e, long seq, size_t record, const char *error)
{
    json_t *frame = json_pack("{s:s, s:I, s:b, s:s}", "type", "return", "seq", (json_int_t)seq,
                              "ok", 0, "error", error);
    write_frame(e, frame);
    json_decref(frame);
    if (record != (size_t)-1)
        record_finish(e, record, 0.0, error);
}

static void on_tool_done(void *arg, const mcp_hub_result_t *res)
{
    tool_call_t *tc = arg;
    codemode_exec_t *e = tc->e;
    TAILQ_REMOVE(&e->in_flight, tc, link);

    char *error;
    json_t *frame =
        codemode_return_frame(tc->seq, res->result, res->err ? res->err->message : NULL, &error);
    write_frame(e, frame);
    json_decref(frame);
    record_finish(e, tc->record, res->duration_s, error);
    log_tool_call(e, tc, res->result, res->duration_s, error);
    free(error);
    tool_call_free(tc);
}

static void on_call(codemode_exec_t *e, const json_t *msg)
{
    const json_t *seq_v = json_object_get(msg, "seq");
    const char *server = json_string_value(json_object_get(msg, "server"));
    const char *tool = json_string_value(json_object_get(msg, "tool"));
    const json_t *args = json_object_get(msg, "args");
    if (!json_is_integer(seq_v) || server == NULL || tool == NULL) {
        fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
             "the sandbox sent a tool call without seq, server or tool");
        return;
    }
    long seq = (long)json_integer_value(seq_v);
    if (e->n_records >= MAX_RECORDS) {
        answer_call_error(e, seq, (size_t)-1, "too many tool calls in one execution");
        return;
    }
    size_t record = add_record(e, server, tool);
    const codemode_server_binding_t *srv = NULL;
    const codemode_tool_binding_t *tb =
        e->b != NULL ? codemode_bindings_find(e->b, server, tool, &srv) : NULL;
    if (tb == NULL || srv == NULL) {
        char err[300];
        snprintf(err, sizeof(err),
                 "no tool %.100s.%.100s: the servers and tools are the files of listToolFiles",
                 server, tool);
        answer_call_error(e, seq, record, err);
        return;
    }
    if (args != NULL && !json_is_null(args) && !json_is_object(args)) {
        answer_call_error(e, seq, record, "a tool's arguments must be keyword arguments");
        return;
    }

    tool_call_t *tc = xcalloc(1, sizeof(*tc));
    tc->e = e;
    tc->seq = seq;
    tc->record = record;
    tc->client = xstrdup(srv->client);
    tc->tool = xstrdup(tb->tool);
    tc->started_unix = wall_now();
    json_t *arguments = json_is_object(args) ? json_deep_copy(args) : json_object();
    if (e->log_content)
        tc->arguments = json_dumps(arguments, JSON_COMPACT);
    TAILQ_INSERT_TAIL(&e->in_flight, tc, link);
    log_debug(e->rid, "code mode execution %s calls %s.%s (tool %s of MCP client %s)", e->xid,
              server, tool, tc->tool, tc->client);
    tc->hub = mcp_hub_call_tool(e->base, tc->client, tc->tool, arguments, e->rid, on_tool_done, tc);
}

/* One frame from the child. Returns false when the execution has ended. */
static bool on_child_frame(codemode_exec_t *e, json_t *msg)
{
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (type != NULL && strcmp(type, "call") == 0 && !e->analyze) {
        on_call(e, msg);
        return e->stage != ST_FINISHED;
    }
    bool done = type != NULL && strcmp(type, "done") == 0 && !e->analyze;
    bool analysis = type != NULL && strcmp(type, "analysis") == 0 && e->analyze;
    if (done) {
        const char *status = codemode_done_status(msg);
        if (status == NULL) {
            fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
                 "the sandbox answered an unknown status");
            return false;
        }
        e->status = status;
    }
    if (done || analysis) {
        e->reply = json_incref(msg);
        end_execution(e);
        return false;
    }
    fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
         "the sandbox sent an unexpected message (type %.40s)", type != NULL ? type : "none");
    return false;
}

static size_t frame_max(const codemode_exec_t *e)
{
    /* The child cuts its output at output_bytes; JSON may escape it (at most 6 bytes for one
     * control character, 2 for a line break) and the result travels too. */
    double max = 3.0 * (double)e->lim.output_bytes + (double)FRAME_SLACK;
    return max > CODEMODE_FRAME_MAX ? CODEMODE_FRAME_MAX : (size_t)max;
}

static void read_frames(codemode_exec_t *e, struct evbuffer *in)
{
    for (;;) {
        json_t *msg;
        size_t len;
        char err[160];
        codemode_frame_rc_t rc =
            codemode_frame_take(in, frame_max(e), &msg, &len, err, sizeof(err));
        if (rc == CODEMODE_FRAME_MORE)
            return;
        if (rc == CODEMODE_FRAME_TOO_LARGE) {
            fail(e, "limit", "OutputLimitError", "print less, or return a smaller result",
                 "the script sent %zu bytes at once, over the limit of %zu (its output limit is "
                 "%ld bytes); it was stopped",
                 len, frame_max(e), e->lim.output_bytes);
            return;
        }
        if (rc == CODEMODE_FRAME_BAD) {
            fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
                 "the sandbox broke the protocol: %s", err);
            return;
        }
        bool more = on_child_frame(e, msg);
        json_decref(msg);
        if (!more)
            return;
    }
}

static void on_child_read(struct bufferevent *bev, void *arg)
{
    codemode_exec_t *e = arg;
    exec_ref(e);
    read_frames(e, bufferevent_get_input(bev));
    exec_unref(e);
}

/* The child is gone without a done frame: why, from what the helper told. */
static void finish_from_exit(codemode_exec_t *e)
{
    if (e->exited && e->signaled) {
        int sig = e->exit_value;
        if (sig == SIGSYS)
            fail(e, "limit", "SandboxViolation",
                 "the sandbox has no files, network or processes: use only the tools",
                 "the script tried a system call the sandbox does not allow and was stopped");
        else
            fail(e, "limit", "ResourceLimitError",
                 "use less memory or CPU: smaller data, fewer loop iterations",
                 "the script was stopped by signal %d (%s): it went over its CPU time (%ld s),"
                 " memory (%ld MiB) or process limit",
                 sig, strsignal(sig), e->lim.cpu_s, e->lim.memory_mb);
        return;
    }
    if (e->exited)
        fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
             "the sandbox child exited with code %d without an answer%s%s", e->exit_value,
             e->exit_error[0] != '\0' ? ": " : "", e->exit_error);
    else
        fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
             "the sandbox child closed its socket without an answer");
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    finish_from_exit(arg);
}

static void start_grace(codemode_exec_t *e)
{
    if (e->grace_ev == NULL)
        e->grace_ev = evtimer_new(e->base, on_grace, e);
    struct timeval tv = {EXIT_GRACE_MS / 1000, (EXIT_GRACE_MS % 1000) * 1000};
    event_add(e->grace_ev, &tv);
}

static void on_child_event(struct bufferevent *bev, short what, void *arg)
{
    codemode_exec_t *e = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    e->eof = true;
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    if (e->exited)
        finish_from_exit(e);
    else
        start_grace(e);
}

/* ---- starting -------------------------------------------------------------------------------- */

static json_t *servers_json(const codemode_bindings_t *b)
{
    json_t *servers = json_object();
    size_t n = b != NULL ? codemode_bindings_count(b) : 0;
    for (size_t i = 0; i < n; i++) {
        const codemode_server_binding_t *s = codemode_bindings_server(b, i);
        json_t *tools = json_array();
        for (size_t k = 0; k < s->n_tools; k++)
            json_array_append_new(tools, json_string(s->tools[k].py));
        json_object_set_new(servers, s->py, tools);
    }
    return servers;
}

static void launch(codemode_exec_t *e)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
             "cannot create the execution's socket: %s", strerror(errno));
        return;
    }
    e->id = ++next_run_id;
    json_t *frame = json_pack("{s:s, s:I, s:s, s:s, s:o, s:{s:I, s:I, s:I}}", "op", "run", "id",
                              (json_int_t)e->id, "mode", e->analyze ? "analyze" : "exec", "code",
                              e->code, "servers", servers_json(e->b), "limits", "cpu_s",
                              (json_int_t)e->lim.cpu_s, "memory_mb", (json_int_t)e->lim.memory_mb,
                              "output_bytes", (json_int_t)e->lim.output_bytes);
    int rc = frame != NULL ? cm_sup_send(frame, sv[1]) : (close(sv[1]), -1);
    json_decref(frame);
    if (rc != 0) {
        close(sv[0]);
        fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
             frame != NULL ? "the sandbox is not ready" : "the script is not valid UTF-8");
        return;
    }
    n_children++; /* until the helper reports the exit, even if the execution ends first */

    evutil_make_socket_nonblocking(sv[0]);
    e->bev = bufferevent_socket_new(e->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    if (e->bev == NULL) {
        close(sv[0]);
        send_kill(e); /* the run went out: its child holds a place until its exit is reported */
        keep_lingering(e->id);
        fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY, "cannot watch the execution");
        return;
    }
    bufferevent_setcb(e->bev, on_child_read, NULL, on_child_event, e);
    bufferevent_enable(e->bev, EV_READ);
    e->stage = ST_RUNNING;
    TAILQ_INSERT_TAIL(&running, e, link);
    log_debug(e->rid, "code mode %s %s sent to the sandbox as run %ld",
              e->analyze ? "analysis" : "execution", e->xid, e->id);
}

static void on_wall(evutil_socket_t fd, short what, void *arg)
{
    codemode_exec_t *e = arg;
    if (e->stage == ST_WAITING && cm_sup_ready()) {
        fail(e, "timeout", "TimeoutError", GATEWAY_HINT_BUSY,
             "the script waited its whole wall-clock limit of %ld ms for a place in the sandbox"
             " (at most %ld scripts run at once) and did not start",
             e->lim.wall_ms, __atomic_load_n(&max_concurrent, __ATOMIC_RELAXED));
        return;
    }
    if (e->stage == ST_WAITING) {
        const char *reason;
        cm_sup_worth_waiting(&reason);
        fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
             "the sandbox was not ready within the wall-clock limit (%ld ms): %s", e->lim.wall_ms,
             reason);
        return;
    }
    fail(e, "timeout", "TimeoutError", GATEWAY_HINT_TIMEOUT,
         "the script ran longer than its wall-clock limit of %ld ms and was stopped",
         e->lim.wall_ms);
}

static void start_on_hub(struct event_base *base, void *arg)
{
    codemode_exec_t *e = arg;
    e->base = base;
    if (is_cancelled(e)) {
        e->stage = ST_FINISHED;
        exec_unref(e); /* the hub's */
        return;
    }
    e->wall_ev = evtimer_new(base, on_wall, e);
    struct timeval tv = {e->lim.wall_ms / 1000, (e->lim.wall_ms % 1000) * 1000};
    event_add(e->wall_ev, &tv);

    const char *reason;
    if (cm_sup_ready() || cm_sup_worth_waiting(&reason)) {
        e->stage = ST_WAITING; /* behind those waiting already: first come, first run */
        TAILQ_INSERT_TAIL(&waiting, e, link);
        launch_waiting();
    } else {
        fail(e, "internal", "SandboxError", "Code Mode cannot run scripts now; say so to the user",
             "the sandbox is not available: %s", reason);
    }
}

static void cancel_on_hub(struct event_base *base, void *arg)
{
    codemode_exec_t *e = arg;
    if (e->stage != ST_FINISHED) {
        set_outcome(e, "internal", "Cancelled", NULL, "the request ended before the script did");
        end_execution(e);
    }
    exec_unref(e); /* the caller's */
}

/* ---- the supervisor's news (hub thread) ------------------------------------------------------ */

void cm_exec_on_ready(void)
{
    launch_waiting();
}

static codemode_exec_t *find_running(long id)
{
    codemode_exec_t *e;
    TAILQ_FOREACH (e, &running, link) {
        if (e->id == id)
            return e;
    }
    return NULL;
}

void cm_exec_on_started(long id, long pid)
{
    codemode_exec_t *e = find_running(id);
    if (e != NULL)
        log_debug(e->rid, "code mode execution %s runs as sandbox process %ld", e->xid, pid);
}

void cm_exec_on_exited(long id, bool signaled, int code_or_signal, const char *error)
{
    codemode_exec_t *e = find_running(id);
    if (e == NULL) {
        if (forget_lingering(id)) { /* it ended already (done frame, timeout, cancel) */
            release_place();
            launch_waiting();
        }
        return;
    }
    if (!e->exited)
        release_place();
    e->exited = true;
    e->signaled = signaled;
    e->exit_value = code_or_signal;
    snprintf(e->exit_error, sizeof(e->exit_error), "%s", error != NULL ? error : "");
    if (e->eof)
        finish_from_exit(e);
    else
        start_grace(e); /* its last frames may still be on the way */
    launch_waiting();
}

void cm_exec_on_lost(const char *reason)
{
    codemode_exec_t *e;
    while ((e = TAILQ_FIRST(&running)) != NULL) {
        e->exited = true; /* nobody is left to kill it */
        fail(e, "internal", "SandboxError", GATEWAY_HINT_RETRY,
             "the sandbox stopped during the execution (%s); it is being restarted", reason);
    }
    release_all_places(); /* the children die with the helper */
    const char *why;
    if (cm_sup_worth_waiting(&why))
        return;
    while ((e = TAILQ_FIRST(&waiting)) != NULL)
        fail(e, "internal", "SandboxError", "Code Mode cannot run scripts now; say so to the user",
             "the sandbox is not available: %s", why);
}

/* ---- public API ------------------------------------------------------------------------------ */

typedef struct sup_start_args {
    char *path;
} sup_start_args_t;

static void sup_start_on_hub(struct event_base *base, void *arg)
{
    sup_start_args_t *a = arg;
    cm_sup_start(base, a->path);
    free(a->path);
    free(a);
}

void codemode_set_defaults(const codemode_limits_t *d)
{
    codemode_limits_t next = {CODEMODE_DEFAULT_WALL_MS, CODEMODE_DEFAULT_CPU_S,
                              CODEMODE_DEFAULT_MEMORY_MB, CODEMODE_DEFAULT_OUTPUT_BYTES};
    if (d != NULL) {
        next.wall_ms = d->wall_ms > 0 ? d->wall_ms : next.wall_ms;
        next.cpu_s = d->cpu_s > 0 ? d->cpu_s : next.cpu_s;
        next.memory_mb = d->memory_mb > 0 ? d->memory_mb : next.memory_mb;
        next.output_bytes = d->output_bytes > 0 ? d->output_bytes : next.output_bytes;
    }
    pthread_mutex_lock(&defaults_lock);
    defaults = next;
    pthread_mutex_unlock(&defaults_lock);
}

static void launch_waiting_on_hub(struct event_base *base, void *arg)
{
    launch_waiting();
}

void codemode_set_max_concurrent(long n)
{
    long next = n > 0 ? n : CODEMODE_DEFAULT_MAX_CONCURRENT;
    long before = __atomic_exchange_n(&max_concurrent, next, __ATOMIC_RELAXED);
    if (next > before && started)
        mcp_hub_post(launch_waiting_on_hub, NULL); /* no hub: nothing waits */
}

int codemode_start(const char *sandbox_path, const codemode_limits_t *d)
{
    codemode_set_defaults(d);
    if (started)
        return 0;
    sup_start_args_t *a = xcalloc(1, sizeof(*a));
    a->path = xstrdup(sandbox_path);
    if (mcp_hub_post(sup_start_on_hub, a) != 0) {
        free(a->path);
        free(a);
        log_error(NULL, "sandbox: the tool hub does not run, so Code Mode cannot start");
        return -1;
    }
    started = true;
    return 0;
}

typedef struct stop_sync {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} stop_sync_t;

static void stop_on_hub(struct event_base *base, void *arg)
{
    stop_sync_t *sync = arg;
    codemode_exec_t *e;
    while ((e = TAILQ_FIRST(&running)) != NULL)
        fail(e, "internal", "SandboxError", NULL, "gatehouse is stopping");
    while ((e = TAILQ_FIRST(&waiting)) != NULL)
        fail(e, "internal", "SandboxError", NULL, "gatehouse is stopping");
    cm_sup_stop();
    release_all_places();
    free(lingering);
    lingering = NULL;
    cap_lingering = 0;
    pthread_mutex_lock(&sync->lock);
    sync->done = true;
    pthread_cond_signal(&sync->cond);
    pthread_mutex_unlock(&sync->lock);
}

void codemode_stop(void)
{
    if (!started)
        return;
    started = false;
    stop_sync_t sync = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    if (mcp_hub_post(stop_on_hub, &sync) != 0)
        return; /* no hub: its loop and everything on it are gone already */
    pthread_mutex_lock(&sync.lock);
    while (!sync.done)
        pthread_cond_wait(&sync.cond, &sync.lock);
    pthread_mutex_unlock(&sync.lock);
}

static codemode_exec_t *submit(codemode_exec_t *e)
{
    if (mcp_hub_post(start_on_hub, e) != 0) {
        set_outcome(e, "internal", "SandboxError", NULL,
                    "the tool hub does not run, so Code Mode cannot run scripts");
        e->stage = ST_FINISHED;
        build_outcome(e);
        schedule_delivery(e);
    }
    return e;
}

codemode_exec_t *codemode_exec_start(struct event_base *reply_base, const char *code,
                                     codemode_bindings_t *b, const codemode_limits_t *lim,
                                     const char *request_id, bool log_content,
                                     codemode_done_fn done, void *arg)
{
    codemode_exec_t *e = exec_new(reply_base, code, b, lim, request_id, arg);
    e->done = done;
    e->log_content = log_content;
    return submit(e);
}

codemode_exec_t *codemode_analyze_start(struct event_base *reply_base, const char *code,
                                        codemode_bindings_t *b, const char *request_id,
                                        codemode_analysis_fn done, void *arg)
{
    codemode_exec_t *e = exec_new(reply_base, code, b, NULL, request_id, arg);
    e->analyze = true;
    e->analysis_done = done;
    return submit(e);
}

void codemode_exec_cancel(codemode_exec_t *e)
{
    if (e == NULL)
        return;
    __atomic_store_n(&e->cancelled, 1, __ATOMIC_RELEASE);
    if (mcp_hub_post(cancel_on_hub, e) != 0)
        exec_unref(e); /* no hub: nothing runs there to stop */
}
