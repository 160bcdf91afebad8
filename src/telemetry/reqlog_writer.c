/*
 * reqlog_writer.c - the request log's queue and writer thread (see reqlog.h, and
 * reqlog_internal.h for how the parts fit).
 *
 * Worker threads call reqlog_submit: it copies the record into one allocation (struct, strings
 * and bodies together), then takes the queue lock only to link that pointer in. The queue is
 * bounded by logs.queue_size; a full queue drops the row and counts it, because a slow disk
 * must never slow a request down.
 *
 * The writer thread sleeps on a condition variable. It wakes when a batch is full (256 rows),
 * when the oldest queued row has waited 200 ms since the last write, when someone flushes, and
 * when retention is due. Each batch is one transaction, which is what makes SQLite fast here: a
 * commit costs about the same for one row as for hundreds.
 *
 * A batch that fails (full disk, I/O error, a read-only file, a lock held too long by another
 * process) is rolled back and its rows are counted as dropped; the next batch tries again. The
 * error is logged at most once a minute, with the number of rows lost since the previous line,
 * and once more when writing works again, so that an outage shows as two lines, not thousands.
 *
 * Retention runs on this thread at start and then every hour, one chunk at a time, with the
 * queue served between chunks so that deleting a month of rows does not stall the log.
 */
#include "telemetry/reqlog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telemetry/metrics.h"
#include "telemetry/reqlog_internal.h"
#include "util/alloc.h"
#include "util/log.h"

#define BATCH_ROWS 256
#define FLUSH_INTERVAL_S 0.2
#define RETENTION_INTERVAL_S 3600.0
#define REPORT_INTERVAL_S 60.0
/* Room for the marker appended to a cut body, NUL included. */
#define TRUNC_MARKER_MAX 96

/* Shared between worker threads, the writer and the main thread; every field under `lock`
 * unless it says otherwise. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the writer sleeps here */
    pthread_cond_t done; /* reqlog_flush and reqlog_run_retention sleep here */

    bool running;  /* a writer thread exists (from start to the end of stop) */
    bool stopping; /* stop asked: drain the queue, then exit */
    bool enabled;  /* logs.enabled of the current configuration */
    bool paused;   /* test hook: the writer takes no rows */
    pthread_t thread;
    unsigned generation; /* bumped at every start, so readers reopen the right file */
    char *path;          /* <data_dir>/gatehouse.db while running; owned */
    char *data_dir;      /* remembered for a reload that turns the log on; owned */

    reqlog_row_t *head; /* oldest queued row */
    reqlog_row_t *tail;
    size_t count;
    size_t cap;                   /* logs.queue_size */
    unsigned long long accepted;  /* rows ever queued */
    unsigned long long processed; /* rows ever written or dropped by the writer */
    int flush_waiters;

    int keep_days;    /* logs.retention_days */
    int content_days; /* logs.content_retention_days */

    unsigned long retention_asked; /* reqlog_run_retention tickets */
    unsigned long retention_done;
    double retention_now;

    double full_reported_at; /* monotonic time of the last "queue full" line */
    long full_unreported;    /* rows dropped on a full queue since that line */
} q = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Read without the lock on the submit fast path, so that a disabled log costs no copy. */
static atomic_bool accepting;
static atomic_bool keep_bodies;

static pthread_once_t conds_once = PTHREAD_ONCE_INIT;

/* The writer thread's own state; nothing else touches it. */
typedef struct writer {
    reqlog_store_t store;
    double last_write;     /* monotonic */
    bool retention_active; /* a pass is in progress, one chunk per loop */
    double retention_wall; /* the clock of that pass */
    double retention_next; /* monotonic time of the next pass */
    bool failing;          /* the last batch failed */
    long lost_unreported;  /* rows lost since the last error line */
    long lost_in_outage;   /* rows lost since writing last worked */
    double reported_at;    /* monotonic time of the last error line; < 0: never */
} writer_t;

/* ---- clocks --------------------------------------------------------------------------------- */

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_now(void)
{
    return clock_seconds(CLOCK_MONOTONIC);
}

static double wall_now(void)
{
    return clock_seconds(CLOCK_REALTIME);
}

/* The writer's timed waits use the monotonic clock, so that a wall-clock jump neither stalls
 * the log nor makes it spin. */
static void conds_init(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q.wake, &attr);
    pthread_cond_init(&q.done, &attr);
    pthread_condattr_destroy(&attr);
}

static void wait_until(pthread_cond_t *c, double mono_deadline)
{
    struct timespec ts;
    ts.tv_sec = (time_t)mono_deadline;
    ts.tv_nsec = (long)((mono_deadline - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
    pthread_cond_timedwait(c, &q.lock, &ts);
}

/* ---- copying a record into one allocation -----------------------------------------------------
 */

static size_t str_size(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

static size_t body_size(const char *s, size_t len)
{
    if (s == NULL)
        return 0;
    return len > REQLOG_BODY_MAX ? REQLOG_BODY_MAX + TRUNC_MARKER_MAX : len + 1;
}

static const char *pack_str(char **p, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *out = memcpy(*p, s, n);
    *p += n;
    return out;
}

/* Copies a body, cutting it at REQLOG_BODY_MAX bytes (never inside a UTF-8 character) and
 * appending a marker that says how much was kept, so a reader knows the text is not whole. */
static const char *pack_body(char **p, const char *s, size_t len, size_t *out_len)
{
    *out_len = 0;
    if (s == NULL)
        return NULL;

    char *out = *p;
    size_t keep = len;
    if (len > REQLOG_BODY_MAX) {
        keep = REQLOG_BODY_MAX;
        for (int i = 0; i < 3 && keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80; i++)
            keep--;
    }
    memcpy(out, s, keep);
    size_t total = keep;
    if (keep < len) {
        int m = snprintf(out + keep, TRUNC_MARKER_MAX,
                         "\n[truncated by gatehouse: %zu of %zu bytes kept]", keep, len);
        total += m > 0 && m < TRUNC_MARKER_MAX ? (size_t)m : 0;
    }
    out[total] = '\0';

    *p += body_size(s, len);
    *out_len = total;
    return out;
}

static reqlog_row_t *request_row_new(const telemetry_request_t *r, double cost_usd, bool bodies)
{
    const char *req_body = bodies ? r->request_body : NULL;
    const char *resp_body = bodies ? r->response_body : NULL;
    const char *id = r->id != NULL ? r->id : "";

    size_t size = sizeof(reqlog_row_t) + str_size(id) + str_size(r->caller) + str_size(r->dialect) +
                  str_size(r->method) + str_size(r->path) + str_size(r->provider) +
                  str_size(r->model) + str_size(r->key_name) + str_size(r->error_type) +
                  str_size(r->error_message) + body_size(req_body, r->request_len) +
                  body_size(resp_body, r->response_len);
    reqlog_row_t *row = xcalloc(1, size);
    char *p = (char *)(row + 1);
    reqlog_request_row_t *o = &row->u.req;

    row->kind = REQLOG_ROW_REQUEST;
    o->id = pack_str(&p, id);
    o->ts = r->started_unix;
    o->caller = pack_str(&p, r->caller);
    o->dialect = pack_str(&p, r->dialect);
    o->method = pack_str(&p, r->method);
    o->path = pack_str(&p, r->path);
    o->provider = pack_str(&p, r->provider);
    o->model = pack_str(&p, r->model);
    o->key_name = pack_str(&p, r->key_name);
    o->fallback_index = r->fallback_index;
    o->retries = r->retries;
    o->status = r->status;
    o->stream = r->stream;
    o->error_type = pack_str(&p, r->error_type);
    o->error_message = pack_str(&p, r->error_message);
    o->latency_ms = r->latency_s * 1000.0;
    o->ttft_ms = r->ttft_s >= 0 ? r->ttft_s * 1000.0 : -1;
    o->upstream_ms = r->upstream_s * 1000.0;
    o->overhead_ms = r->overhead_s * 1000.0;
    o->tokens_in = r->tokens_in;
    o->tokens_out = r->tokens_out;
    o->tokens_cached = r->tokens_cached;
    o->cost_usd = cost_usd;
    o->request_body = pack_body(&p, req_body, r->request_len, &o->request_len);
    o->response_body = pack_body(&p, resp_body, r->response_len, &o->response_len);
    return row;
}

static reqlog_row_t *tool_row_new(const reqlog_tool_call_t *t, bool bodies)
{
    const char *args = bodies ? t->arguments : NULL;
    const char *result = bodies ? t->result : NULL;
    size_t args_len = args != NULL ? strlen(args) : 0;
    size_t result_len = result != NULL ? strlen(result) : 0;

    size_t size = sizeof(reqlog_row_t) + str_size(t->request_id) + str_size(t->execution_id) +
                  str_size(t->source) + str_size(t->mcp_client) + str_size(t->tool) +
                  str_size(t->error) + body_size(args, args_len) + body_size(result, result_len);
    reqlog_row_t *row = xcalloc(1, size);
    char *p = (char *)(row + 1);
    reqlog_tool_row_t *o = &row->u.tool;

    row->kind = REQLOG_ROW_TOOL;
    o->request_id = pack_str(&p, t->request_id);
    o->execution_id = pack_str(&p, t->execution_id);
    o->source = pack_str(&p, t->source);
    o->mcp_client = pack_str(&p, t->mcp_client);
    o->tool = pack_str(&p, t->tool);
    o->ts = t->started_unix;
    o->duration_ms = t->duration_s * 1000.0;
    o->ok = t->ok;
    o->error = pack_str(&p, t->error);
    o->arguments = pack_body(&p, args, args_len, &o->arguments_len);
    o->result = pack_body(&p, result, result_len, &o->result_len);
    return row;
}

static void rows_free(reqlog_row_t *row)
{
    while (row != NULL) {
        reqlog_row_t *next = row->next;
        free(row);
        row = next;
    }
}

/* ---- the queue (worker threads) ------------------------------------------------------------- */

/* Links the row in, or drops it. The writer is woken for the first row (it may be sleeping
 * until the next retention) and for a full batch; rows in between only wait for the timer. */
static void enqueue(reqlog_row_t *row)
{
    bool dropped = false;
    long report = 0;

    pthread_mutex_lock(&q.lock);
    if (!q.running || !q.enabled) {
        pthread_mutex_unlock(&q.lock);
        free(row);
        return;
    }
    if (q.stopping) {
        /* Raced with reqlog_stop: the writer may already be gone. */
        dropped = true;
    } else if (q.count >= q.cap) {
        dropped = true;
        q.full_unreported++;
        double now = mono_now();
        if (q.full_reported_at == 0 || now - q.full_reported_at >= REPORT_INTERVAL_S) {
            report = q.full_unreported;
            q.full_unreported = 0;
            q.full_reported_at = now;
        }
    } else {
        if (q.tail != NULL)
            q.tail->next = row;
        else
            q.head = row;
        q.tail = row;
        q.count++;
        q.accepted++;
        if (q.count == 1 || q.count == BATCH_ROWS)
            pthread_cond_signal(&q.wake);
    }
    pthread_mutex_unlock(&q.lock);

    if (!dropped)
        return;
    free(row);
    metrics_counter_add(METRICS_LOG_ROWS_DROPPED, 1);
    if (report > 0)
        log_warn(NULL,
                 "request log: queue full, dropped %ld rows; the writer cannot keep up with "
                 "the traffic (raise logs.queue_size or check the disk)",
                 report);
}

void reqlog_submit(const telemetry_request_t *r, double cost_usd)
{
    if (!atomic_load_explicit(&accepting, memory_order_relaxed))
        return;
    bool bodies = r->log_content && atomic_load_explicit(&keep_bodies, memory_order_relaxed);
    enqueue(request_row_new(r, cost_usd, bodies));
}

void reqlog_submit_tool(const reqlog_tool_call_t *t)
{
    if (!atomic_load_explicit(&accepting, memory_order_relaxed))
        return;
    enqueue(tool_row_new(t, atomic_load_explicit(&keep_bodies, memory_order_relaxed)));
}

/* ---- the writer thread ---------------------------------------------------------------------- */

static void report_loss(writer_t *w, size_t n, const char *err)
{
    double now = mono_now();
    w->failing = true;
    w->lost_unreported += (long)n;
    w->lost_in_outage += (long)n;
    if (w->reported_at >= 0 && now - w->reported_at < REPORT_INTERVAL_S)
        return;
    log_error(NULL, "request log: cannot write %ld rows to %s: %s; dropping them, will retry",
              w->lost_unreported, w->store.path, err);
    w->lost_unreported = 0;
    w->reported_at = now;
}

static void report_recovery(writer_t *w)
{
    if (!w->failing)
        return;
    log_warn(NULL, "request log: writing to %s again; %ld rows were lost while it failed",
             w->store.path, w->lost_in_outage);
    w->failing = false;
    w->lost_unreported = 0;
    w->lost_in_outage = 0;
}

static void write_batch(writer_t *w, reqlog_row_t *batch, size_t n)
{
    if (n == 0)
        return;

    char err[256] = "";
    int rc = reqlog_store_write(&w->store, batch, err, sizeof(err));
    if (rc == SQLITE_OK) {
        metrics_counter_add(METRICS_LOG_ROWS_WRITTEN, (long)n);
        report_recovery(w);
    } else {
        metrics_counter_add(METRICS_LOG_ROWS_DROPPED, (long)n);
        report_loss(w, n, err);
    }
    rows_free(batch);
    w->last_write = mono_now();
}

/* One retention chunk; the pass ends (and the freed pages go back to the file system) when no
 * statement found a full chunk. Failures are logged and the pass is retried at the next hour:
 * retention is housekeeping, and a full disk is already being reported by the writes. */
static bool retention_step(writer_t *w, double wall, int keep_days, int content_days)
{
    char err[256] = "";
    bool more = false;
    int rc = reqlog_store_retention_step(&w->store, wall, keep_days, content_days, &more, err,
                                         sizeof(err));
    if (rc == SQLITE_OK && !more)
        rc = reqlog_store_vacuum(&w->store, err, sizeof(err));
    if (rc != SQLITE_OK) {
        log_error(NULL, "request log: retention on %s failed: %s; will retry in an hour",
                  w->store.path, err);
        return false;
    }
    return more;
}

static void retention_tick(writer_t *w, int keep_days, int content_days)
{
    if (!w->retention_active) {
        if (mono_now() < w->retention_next)
            return;
        w->retention_active = true;
        w->retention_wall = wall_now();
    }
    if (!retention_step(w, w->retention_wall, keep_days, content_days)) {
        w->retention_active = false;
        w->retention_next = mono_now() + RETENTION_INTERVAL_S;
    }
}

static bool rows_due(const writer_t *w, double now)
{
    if (q.paused && !q.stopping)
        return false;
    if (q.count == 0)
        return false;
    return q.stopping || q.count >= BATCH_ROWS || q.flush_waiters > 0 ||
           now >= w->last_write + FLUSH_INTERVAL_S;
}

/* Called and returns with the lock held, once there is something to do. */
static void writer_wait(const writer_t *w)
{
    for (;;) {
        double now = mono_now();
        if (q.stopping || q.retention_asked != q.retention_done || rows_due(w, now))
            return;
        if (w->retention_active || now >= w->retention_next)
            return;

        double deadline = w->retention_next;
        if (q.count > 0 && !q.paused && w->last_write + FLUSH_INTERVAL_S < deadline)
            deadline = w->last_write + FLUSH_INTERVAL_S;
        wait_until(&q.wake, deadline);
    }
}

/* Detaches up to BATCH_ROWS rows from the head of the queue. */
static reqlog_row_t *take_batch(size_t *n)
{
    *n = 0;
    if (q.head == NULL || (q.paused && !q.stopping))
        return NULL;

    reqlog_row_t *first = q.head;
    reqlog_row_t *last = first;
    *n = 1;
    while (*n < BATCH_ROWS && last->next != NULL) {
        last = last->next;
        (*n)++;
    }
    q.head = last->next;
    if (q.head == NULL)
        q.tail = NULL;
    last->next = NULL;
    q.count -= *n;
    return first;
}

/* A retention run asked for by a test: the whole pass, with the test's clock. */
static void retention_full(writer_t *w, double wall, int keep_days, int content_days)
{
    while (retention_step(w, wall, keep_days, content_days))
        ;
}

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    /* Named, so that top -H, perf and bench/logging can tell the threads apart. */
    (void)pthread_setname_np(pthread_self(), "gh-reqlog");

    pthread_mutex_lock(&q.lock);
    for (;;) {
        writer_wait(w);
        if (q.stopping && q.count == 0)
            break;

        size_t n;
        reqlog_row_t *batch = take_batch(&n);
        unsigned long ticket = q.retention_asked;
        bool asked = ticket != q.retention_done;
        double asked_now = q.retention_now;
        int keep_days = q.keep_days;
        int content_days = q.content_days;
        pthread_mutex_unlock(&q.lock);

        write_batch(w, batch, n);
        if (asked)
            retention_full(w, asked_now, keep_days, content_days);
        else
            retention_tick(w, keep_days, content_days);

        pthread_mutex_lock(&q.lock);
        q.processed += n;
        if (asked)
            q.retention_done = ticket;
        pthread_cond_broadcast(&q.done);
    }
    pthread_mutex_unlock(&q.lock);

    reqlog_store_close(&w->store);
    free(w);
    return NULL;
}

/* ---- lifecycle (main thread) ---------------------------------------------------------------- */

/* Called with the lock held. */
static void settings_apply(const config_t *cfg)
{
    q.enabled = cfg->logs_enabled;
    q.cap = cfg->logs_queue_size > 0 ? (size_t)cfg->logs_queue_size : 1;
    q.keep_days = cfg->logs_retention_days;
    q.content_days = cfg->logs_content_retention_days;
    /* Bodies kept for zero days would still sit on disk until the next retention pass; not
     * storing them at all is what the setting means. */
    atomic_store(&keep_bodies, cfg->logs_content_retention_days > 0);
    atomic_store(&accepting, q.running && q.enabled && !q.stopping);
}

static char *db_path(const char *data_dir)
{
    size_t n = strlen(data_dir) + sizeof("/" REQLOG_DB_NAME);
    char *path = xmalloc(n);
    snprintf(path, n, "%s/%s", data_dir, REQLOG_DB_NAME);
    return path;
}

/* Opens the database on the calling thread (so that a damaged file stops the start with a
 * clear message) and hands it to a new writer thread. */
static int writer_launch(void)
{
    pthread_mutex_lock(&q.lock);
    char *path = db_path(q.data_dir);
    pthread_mutex_unlock(&q.lock);

    writer_t *w = xcalloc(1, sizeof(*w));
    w->reported_at = -1;
    w->last_write = mono_now();
    if (reqlog_store_open(&w->store, path) != 0) {
        free(w);
        free(path);
        return -1;
    }

    pthread_mutex_lock(&q.lock);
    q.running = true;
    q.stopping = false;
    q.generation++;
    q.path = path;
    int rc = pthread_create(&q.thread, NULL, writer_main, w);
    if (rc != 0) {
        q.running = false;
        q.path = NULL;
    }
    atomic_store(&accepting, q.running && q.enabled);
    pthread_mutex_unlock(&q.lock);

    if (rc != 0) {
        log_crit(NULL, "request log: cannot start the writer thread: %s", strerror(rc));
        reqlog_store_close(&w->store);
        free(w);
        free(path);
        return -1;
    }
    log_info(NULL, "request log: writing to %s", path);
    return 0;
}

int reqlog_start(const config_t *cfg, const char *data_dir)
{
    pthread_once(&conds_once, conds_init);

    pthread_mutex_lock(&q.lock);
    bool already = q.running;
    if (!already) {
        free(q.data_dir);
        q.data_dir = xstrdup(data_dir);
        settings_apply(cfg);
    }
    pthread_mutex_unlock(&q.lock);

    if (already) {
        log_crit(NULL, "request log: started twice; keeping the running writer");
        return -1;
    }
    if (!cfg->logs_enabled) {
        log_info(NULL, "request log: off (logs.enabled is false)");
        return 0;
    }
    return writer_launch();
}

/* A reload may change retention, the queue size and the switches. Turning the log on starts
 * the writer; turning it off stops taking rows but keeps the writer, so that the admin API can
 * still read the rows already written. */
void reqlog_reconfigure(const config_t *cfg)
{
    pthread_mutex_lock(&q.lock);
    settings_apply(cfg);
    bool launch = cfg->logs_enabled && !q.running && q.data_dir != NULL;
    pthread_mutex_unlock(&q.lock);

    if (launch && writer_launch() != 0)
        log_error(NULL, "request log: stays off after the reload");
}

void reqlog_stop(void)
{
    pthread_once(&conds_once, conds_init);

    pthread_mutex_lock(&q.lock);
    bool running = q.running;
    if (running) {
        q.stopping = true;
        q.paused = false;
        atomic_store(&accepting, false);
        pthread_cond_signal(&q.wake);
    }
    pthread_mutex_unlock(&q.lock);

    if (running)
        pthread_join(q.thread, NULL);

    pthread_mutex_lock(&q.lock);
    q.running = false;
    q.stopping = false;
    q.paused = false;
    free(q.path);
    q.path = NULL;
    free(q.data_dir);
    q.data_dir = NULL;
    pthread_cond_broadcast(&q.done);
    pthread_mutex_unlock(&q.lock);

    reqlog_reader_close();
}

bool reqlog_current_db(char **path, unsigned *generation)
{
    pthread_mutex_lock(&q.lock);
    bool ok = q.running && q.path != NULL;
    if (ok) {
        *path = xstrdup(q.path);
        *generation = q.generation;
    }
    pthread_mutex_unlock(&q.lock);
    return ok;
}

/* ---- test hooks ----------------------------------------------------------------------------- */

void reqlog_flush(void)
{
    pthread_once(&conds_once, conds_init);
    pthread_mutex_lock(&q.lock);
    unsigned long long target = q.accepted;
    q.flush_waiters++;
    pthread_cond_signal(&q.wake);
    while (q.running && q.processed < target)
        pthread_cond_wait(&q.done, &q.lock);
    q.flush_waiters--;
    pthread_mutex_unlock(&q.lock);
}

void reqlog_run_retention(double now_unix)
{
    pthread_once(&conds_once, conds_init);
    reqlog_flush();

    pthread_mutex_lock(&q.lock);
    if (q.running) {
        unsigned long ticket = ++q.retention_asked;
        q.retention_now = now_unix;
        pthread_cond_signal(&q.wake);
        while (q.running && q.retention_done < ticket)
            pthread_cond_wait(&q.done, &q.lock);
    }
    pthread_mutex_unlock(&q.lock);
}

void reqlog_pause_writer(bool paused)
{
    pthread_once(&conds_once, conds_init);
    pthread_mutex_lock(&q.lock);
    q.paused = paused;
    pthread_cond_signal(&q.wake);
    pthread_mutex_unlock(&q.lock);
}
