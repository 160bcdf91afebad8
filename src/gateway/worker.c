/*
 * worker.c - worker threads, configuration snapshots, and the dispatcher that hands each
 * inbound request to its handler.
 *
 * Threads: the main thread runs the control loop (signals, reload, shutdown); N worker threads
 * each run an event loop with an inbound server and an upstream pool. libevent is initialised
 * for threads (evthread_use_pthreads) only so that the main thread can poke a worker's loop
 * (event_active, event_base_once) to drain it or wake its limiter waiters; requests themselves
 * never cross threads.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dialects/openai.h"
#include "gateway/handlers.h"
#include "gateway/mcp_endpoint.h"
#include "gateway/codemode_setup.h"
#include "gateway/mcp_setup.h"
#include "gateway/tool_execute.h"
#include "http/server.h"
#include "http/upstream.h"
#include "telemetry/telemetry.h"
#include "util/alloc.h"
#include "util/log.h"

struct gateway_waiter {
    TAILQ_ENTRY(gateway_waiter) link;
    limiter_t *limiter;
    void (*admitted)(void *arg);
    void *arg;
};

TAILQ_HEAD(waiter_list, gateway_waiter);

struct gateway_worker {
    int index;
    pthread_t thread;
    struct event_base *base;
    http_server_t *server;
    upstream_pool_t *upstream;
    int listen_fd;
    struct event *wake_ev;       /* activated from any thread: admit limiter waiters */
    struct event *recheck_ev;    /* periodic safety net while waiters exist */
    struct event *drain_ev;      /* activated by the main thread at shutdown */
    struct event *drain_poll_ev; /* checks whether in-flight requests are done */
    double drain_deadline;
    struct waiter_list waiters;
    uint64_t rng[2]; /* xorshift128+ state */
};

static pthread_mutex_t snapshot_lock = PTHREAD_MUTEX_INITIALIZER;
static gateway_snapshot_t *current_snapshot;
static gateway_worker_t *workers;
static int n_workers;
static gateway_opts_t gw_opts;
static struct event_base *control_base;

/* ---- snapshots ------------------------------------------------------------------------------ */

static gateway_snapshot_t *snapshot_new(config_t *cfg)
{
    gateway_snapshot_t *snap = xcalloc(1, sizeof(*snap));
    snap->refcount = 1;
    snap->cfg = cfg;
    snap->limiters = xcalloc(cfg->n_providers + 1, sizeof(limiter_t *));
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const config_provider_t *p = &cfg->providers[i];
        snap->limiters[i] = limiter_get(p->name, p->concurrency, p->buffer_size);
    }
    return snap;
}

gateway_snapshot_t *gateway_snapshot_acquire(void)
{
    pthread_mutex_lock(&snapshot_lock);
    gateway_snapshot_t *snap = current_snapshot;
    __atomic_add_fetch(&snap->refcount, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&snapshot_lock);
    return snap;
}

void gateway_snapshot_release(gateway_snapshot_t *snap)
{
    if (snap == NULL || __atomic_sub_fetch(&snap->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    config_release(snap->cfg);
    free(snap->limiters);
    free(snap);
}

limiter_t *gateway_snapshot_limiter(const gateway_snapshot_t *snap, const config_provider_t *p)
{
    return snap->limiters[p - snap->cfg->providers];
}

static void snapshot_install(config_t *cfg)
{
    gateway_snapshot_t *snap = snapshot_new(cfg);
    pthread_mutex_lock(&snapshot_lock);
    gateway_snapshot_t *old = current_snapshot;
    current_snapshot = snap;
    pthread_mutex_unlock(&snapshot_lock);
    gateway_snapshot_release(old);
}

/* ---- worker services ------------------------------------------------------------------------ */

struct event_base *gateway_worker_base(gateway_worker_t *w)
{
    return w->base;
}

struct upstream_pool *gateway_worker_upstream(gateway_worker_t *w)
{
    return w->upstream;
}

/* xorshift128+: fast, and good enough for load spreading, jitter and request ids (nothing
 * here needs to be unpredictable). */
static uint64_t worker_random_u64(gateway_worker_t *w)
{
    uint64_t s1 = w->rng[0];
    const uint64_t s0 = w->rng[1];
    w->rng[0] = s0;
    s1 ^= s1 << 23;
    w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return w->rng[1] + s0;
}

double gateway_worker_random(gateway_worker_t *w)
{
    return (double)(worker_random_u64(w) >> 11) / 9007199254740992.0; /* 2^53 */
}

double gateway_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double gateway_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

gateway_waiter_t *gateway_worker_wait(gateway_worker_t *w, limiter_t *l,
                                      void (*admitted)(void *arg), void *arg)
{
    gateway_waiter_t *waiter = xcalloc(1, sizeof(*waiter));
    waiter->limiter = l;
    waiter->admitted = admitted;
    waiter->arg = arg;
    TAILQ_INSERT_TAIL(&w->waiters, waiter, link);

    /* A slot may have been released between the caller's failed attempt and the registration
     * above; look again on the next loop turn, and keep looking now and then as a safety net
     * against wake-ups lost in that window. */
    event_active(w->wake_ev, EV_READ, 0);
    struct timeval tv = {0, 20 * 1000};
    event_add(w->recheck_ev, &tv);
    return waiter;
}

void gateway_worker_cancel_wait(gateway_worker_t *w, gateway_waiter_t *waiter)
{
    TAILQ_REMOVE(&w->waiters, waiter, link);
    free(waiter);
}

static void admit_waiters(gateway_worker_t *w)
{
    gateway_waiter_t *waiter = TAILQ_FIRST(&w->waiters);
    while (waiter != NULL) {
        gateway_waiter_t *next = TAILQ_NEXT(waiter, link);
        if (limiter_try_acquire(waiter->limiter)) {
            TAILQ_REMOVE(&w->waiters, waiter, link);
            void (*admitted)(void *) = waiter->admitted;
            void *arg = waiter->arg;
            free(waiter);
            admitted(arg);
        }
        waiter = next;
    }
    if (TAILQ_EMPTY(&w->waiters))
        event_del(w->recheck_ev);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    admit_waiters(arg);
}

void gateway_workers_wake(void)
{
    for (int i = 0; i < n_workers; i++)
        event_active(workers[i].wake_ev, EV_READ, 0);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static bool request_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= GATEWAY_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

static void make_request_id(gateway_worker_t *w, const http_request_t *req, char *out)
{
    const char *given = http_request_header(req, "x-request-id");
    if (given != NULL && request_id_ok(given)) {
        snprintf(out, GATEWAY_REQUEST_ID_MAX, "%s", given);
        return;
    }
    /* The first 12 hex digits are the wall clock in milliseconds, so that ids made here sort
     * by time: the request log's id index then grows at its end, like its ts index, instead of
     * taking a write at a random page for every row (which cost the log more than everything
     * else together; bench/logging/README.md). 48 random bits keep ids made in the same
     * millisecond apart. */
    uint64_t ms = (uint64_t)(gateway_wall_now() * 1000.0);
    uint64_t r = worker_random_u64(w);
    snprintf(out, GATEWAY_REQUEST_ID_MAX, "req_%012llx%012llx",
             (unsigned long long)(ms & 0xffffffffffffULL), (unsigned long long)(r >> 16));
}

static void respond_health(http_request_t *req, const char *rid, double started_at)
{
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"version\":\"%s\",\"providers\":%zu}",
                     GATEHOUSE_VERSION, snap->cfg->n_providers);
    gateway_snapshot_release(snap);

    gateway_access_log(req, rid, 200, NULL, started_at, 0, 0);
    http_response_header(req, "x-request-id", rid);
    http_respond(req, 200, "application/json", body, (size_t)n);
}

static void dispatch(http_request_t *req, void *arg)
{
    gateway_worker_t *w = arg;
    char rid[GATEWAY_REQUEST_ID_MAX];
    double started_at = gateway_now();
    make_request_id(w, req, rid);

    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool is_post = strcmp(method, "POST") == 0;

    if (strcmp(path, "/v1/chat/completions") == 0 || strcmp(path, "/chat/completions") == 0) {
        if (is_post)
            chat_handle(req, w, rid);
        else
            gateway_respond_error(req, rid, 405, "use POST for /v1/chat/completions", NULL,
                                  "method_not_allowed");
        return;
    }
    if (is_get && (strcmp(path, "/v1/models") == 0 || strcmp(path, "/models") == 0)) {
        gateway_access_log(req, rid, 200, NULL, started_at, 0, 0);
        models_handle(req, w, rid);
        return;
    }
    if (strcmp(path, "/mcp") == 0) {
        mcp_endpoint_handle(req, w, rid);
        return;
    }
    if (strcmp(path, TOOL_EXECUTE_PATH) == 0) {
        if (is_post)
            tool_execute_handle(req, w, rid);
        else
            gateway_respond_error(req, rid, 405, "use POST for " TOOL_EXECUTE_PATH, NULL,
                                  "method_not_allowed");
        return;
    }
    if (is_get && strcmp(path, "/health") == 0) {
        respond_health(req, rid, started_at);
        return;
    }
    if (is_get && strcmp(path, "/metrics") == 0) {
        metrics_handle(req, w, rid);
        return;
    }
    if (is_get && strncmp(path, "/api/", 5) == 0) {
        admin_handle(req, w, rid);
        return;
    }

    char msg[300];
    snprintf(msg, sizeof(msg), "no route for %s %.200s", method, path);
    gateway_respond_error(req, rid, 404, msg, NULL, "not_found");
}

static const char *render_error(const char *path, int status, const char *message, buf_t *out)
{
    dialect_openai_error(out, message, dialect_openai_error_type(status), NULL, NULL);
    return "application/json";
}

/* ---- worker threads ------------------------------------------------------------------------- */

static void on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
    gateway_worker_t *w = arg;
    size_t left = http_server_inflight(w->server);
    if (left == 0 || gateway_now() >= w->drain_deadline) {
        if (left > 0)
            log_warn(NULL,
                     "worker %d: shutdown deadline passed with %zu requests in flight;"
                     " closing them",
                     w->index, left);
        event_base_loopbreak(w->base);
        return;
    }
    struct timeval tv = {0, 50 * 1000};
    event_add(w->drain_poll_ev, &tv);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    gateway_worker_t *w = arg;
    /* Long-lived /mcp GET streams would hold the drain until its deadline: end them first. */
    mcp_endpoint_drain(w->base);
    http_server_drain(w->server);
    on_drain_poll(-1, 0, w);
}

static void *worker_main(void *arg)
{
    gateway_worker_t *w = arg;
    /* Named, so that top -H, perf and bench/logging can tell the threads apart. */
    (void)pthread_setname_np(pthread_self(), "gh-worker");
    event_base_dispatch(w->base);
    return NULL;
}

static int worker_init(gateway_worker_t *w, int index, const config_t *cfg, const char *host,
                       int port)
{
    w->index = index;
    TAILQ_INIT(&w->waiters);
    if (getrandom(w->rng, sizeof(w->rng), 0) != (ssize_t)sizeof(w->rng)) {
        w->rng[0] = (uint64_t)time(NULL) ^ ((uint64_t)index << 32);
        w->rng[1] = (uint64_t)getpid() * 2654435761u + 1;
    }

    w->listen_fd = http_listen(host, port, 1024);
    if (w->listen_fd < 0) {
        log_crit(NULL, "cannot listen on %s:%d: %s; not starting", host, port, strerror(errno));
        return -1;
    }

    w->base = event_base_new();
    w->upstream = upstream_pool_new(w->base);
    http_server_opts_t so = {
        .max_body_bytes = cfg->max_body_bytes,
        .header_timeout_ms = cfg->header_timeout_s * 1000,
        .idle_timeout_ms = cfg->idle_timeout_s * 1000,
        .render_error = render_error,
    };
    w->server = http_server_new(w->base, w->listen_fd, &so, dispatch, w);
    w->wake_ev = event_new(w->base, -1, 0, on_wake, w);
    w->recheck_ev = event_new(w->base, -1, EV_PERSIST, on_wake, w);
    w->drain_ev = event_new(w->base, -1, 0, on_drain, w);
    w->drain_poll_ev = evtimer_new(w->base, on_drain_poll, w);
    if (w->base == NULL || w->upstream == NULL || w->server == NULL) {
        log_crit(NULL, "cannot set up worker %d; not starting", index);
        return -1;
    }
    return 0;
}

static void worker_free(gateway_worker_t *w)
{
    gateway_waiter_t *waiter;
    while ((waiter = TAILQ_FIRST(&w->waiters)) != NULL) {
        TAILQ_REMOVE(&w->waiters, waiter, link);
        free(waiter);
    }
    /* The /mcp endpoint's hub subscriptions point at requests of this server: drop them
     * before the requests go. */
    if (w->base)
        mcp_endpoint_worker_free(w->base);
    if (w->server)
        http_server_free(w->server);
    if (w->upstream)
        upstream_pool_free(w->upstream);
    if (w->wake_ev)
        event_free(w->wake_ev);
    if (w->recheck_ev)
        event_free(w->recheck_ev);
    if (w->drain_ev)
        event_free(w->drain_ev);
    if (w->drain_poll_ev)
        event_free(w->drain_poll_ev);
    if (w->base) {
        /* Freed bufferevents finish their teardown in deferred callbacks; give them one last
         * turn of the loop so that nothing is left behind. */
        event_base_loop(w->base, EVLOOP_NONBLOCK);
        event_base_free(w->base);
    }
}

static int thread_count(const config_t *cfg)
{
    if (gw_opts.threads > 0)
        return gw_opts.threads;
    if (cfg->threads > 0)
        return cfg->threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

static void ensure_data_dir(const char *dir)
{
    if (dir == NULL || mkdir(dir, 0700) == 0 || errno == EEXIST)
        return;
    log_warn(NULL, "cannot create data directory %s: %s; features that keep data will fail", dir,
             strerror(errno));
}

int gateway_start(config_t *cfg, const gateway_opts_t *opts)
{
    gw_opts = *opts;
    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN);
    ensure_data_dir(opts->data_dir);
    if (telemetry_start(cfg, opts->data_dir) != 0) {
        log_crit(NULL,
                 "cannot start the request log or audit trail under %s (reason above);"
                 " not starting",
                 opts->data_dir);
        config_release(cfg);
        return -1;
    }
    snapshot_install(cfg);
    mcp_setup_start(cfg);
    codemode_setup_start(cfg);

    const char *host = opts->host ? opts->host : cfg->host;
    int port = opts->port >= 0 ? opts->port : cfg->port;
    n_workers = thread_count(cfg);
    workers = xcalloc((size_t)n_workers, sizeof(*workers));

    for (int i = 0; i < n_workers; i++) {
        if (worker_init(&workers[i], i, cfg, host, port) != 0)
            return -1;
    }
    for (int i = 0; i < n_workers; i++)
        pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);

    log_info(NULL, "gatehouse %s listening on %s:%d with %d worker threads, %zu providers (%s)",
             GATEHOUSE_VERSION, host, port, n_workers, cfg->n_providers, cfg->source);
    return 0;
}

/* ---- control: reload and stop --------------------------------------------------------------- */

/* The listener and the per-connection limits are set up when the workers start; a reload
 * cannot change them. Say so rather than pretend. */
static void warn_restart_only(const config_t *old, const config_t *cfg)
{
    const char *changed = NULL;
    if (strcmp(old->host, cfg->host) != 0)
        changed = "server.host";
    else if (old->port != cfg->port)
        changed = "server.port";
    else if (old->threads != cfg->threads)
        changed = "server.threads";
    else if (old->max_body_bytes != cfg->max_body_bytes)
        changed = "server.max_request_body_bytes";
    else if (old->header_timeout_s != cfg->header_timeout_s)
        changed = "server.header_timeout_seconds";
    else if (old->idle_timeout_s != cfg->idle_timeout_s)
        changed = "server.idle_timeout_seconds";
    if (changed != NULL)
        log_warn(NULL,
                 "%s changed in %s; the server settings take effect after a restart, the"
                 " rest of the file now",
                 changed, gw_opts.config_path);
}

int gateway_reload(void)
{
    if (gw_opts.config_path == NULL) {
        log_warn(NULL, "reload requested but configuration comes from the environment;"
                       " nothing to reload");
        return -1;
    }

    config_report_t report;
    config_report_init(&report);
    config_t *cfg = config_load_file(gw_opts.config_path, &report);
    for (size_t i = 0; i < report.count; i++) {
        config_problem_t *p = &report.items[i];
        log_msg(p->is_error ? LOG_LVL_ERROR : LOG_LVL_WARN, NULL, "config %s: %s: %s",
                gw_opts.config_path, p->path, p->message);
    }
    config_report_free(&report);

    if (cfg == NULL) {
        log_error(NULL, "reload of %s rejected; the running configuration stays",
                  gw_opts.config_path);
        return -1;
    }
    warn_restart_only(current_snapshot->cfg, cfg);
    log_level_t level;
    if (cfg->log_level && log_parse_level(cfg->log_level, &level))
        log_set_level(level);
    telemetry_reconfigure(cfg);
    mcp_setup_reload(cfg);
    codemode_setup_reload(cfg);
    snapshot_install(cfg);
    log_info(NULL, "configuration reloaded from %s: %zu providers", gw_opts.config_path,
             cfg->n_providers);
    return 0;
}

void gateway_stop(void)
{
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    double deadline = gateway_now() + snap->cfg->shutdown_timeout_s;
    gateway_snapshot_release(snap);

    for (int i = 0; i < n_workers; i++) {
        workers[i].drain_deadline = deadline;
        event_active(workers[i].drain_ev, EV_READ, 0);
    }
    for (int i = 0; i < n_workers; i++)
        pthread_join(workers[i].thread, NULL);
    /* The hub goes after the workers have drained (their requests may wait for tool calls)
     * and before their loops are freed (a result still in flight is delivered to one). Code
     * Mode's executions are events on the hub's loop, so they go first. */
    codemode_setup_stop();
    mcp_setup_stop();
    for (int i = 0; i < n_workers; i++)
        worker_free(&workers[i]);
    free(workers);
    workers = NULL;
    n_workers = 0;

    telemetry_stop();
    gateway_snapshot_release(current_snapshot);
    current_snapshot = NULL;
    limiter_registry_free();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (sig == SIGHUP) {
        log_info(NULL, "SIGHUP received; reloading configuration");
        gateway_reload();
        return;
    }
    log_info(NULL, "%s received; draining requests in flight, then stopping",
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(control_base);
}

int gateway_run(void)
{
    control_base = event_base_new();
    struct event *hup = evsignal_new(control_base, SIGHUP, on_signal, NULL);
    struct event *term = evsignal_new(control_base, SIGTERM, on_signal, NULL);
    struct event *intr = evsignal_new(control_base, SIGINT, on_signal, NULL);
    event_add(hup, NULL);
    event_add(term, NULL);
    event_add(intr, NULL);

    event_base_dispatch(control_base);

    gateway_stop();
    event_free(hup);
    event_free(term);
    event_free(intr);
    event_base_free(control_base);
    log_info(NULL, "gatehouse stopped");
    return 0;
}
