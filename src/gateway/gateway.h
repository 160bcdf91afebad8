/*
 * gateway.h - the running gateway: configuration snapshots, worker threads, and the request
 * handlers they dispatch to.
 *
 * main.c loads the configuration, calls gateway_start, and then runs the control loop on the
 * main thread (signals: SIGHUP reloads, SIGTERM/SIGINT drain and stop). Each worker thread owns
 * an event loop, an inbound HTTP server on the shared port (SO_REUSEPORT) and an upstream pool;
 * a request lives and dies on the thread that accepted it.
 *
 * A snapshot pairs an immutable config with the per-provider limiters it uses. Requests take a
 * reference at their start (gateway_snapshot_acquire) and keep it to the end, so a reload never
 * changes a request in flight.
 */
#ifndef GATEHOUSE_GATEWAY_GATEWAY_H
#define GATEHOUSE_GATEWAY_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "gateway/limiter.h"

struct event_base;
struct http_server;
struct upstream_pool;

typedef struct gateway_snapshot {
    int refcount;         /* atomic */
    config_t *cfg;        /* owned reference */
    limiter_t **limiters; /* parallel to cfg->providers; limiters themselves are global */
} gateway_snapshot_t;

gateway_snapshot_t *gateway_snapshot_acquire(void);
void gateway_snapshot_release(gateway_snapshot_t *snap);
/* The limiter of a provider of this snapshot. */
limiter_t *gateway_snapshot_limiter(const gateway_snapshot_t *snap, const config_provider_t *p);

typedef struct gateway_worker gateway_worker_t;

/* What a worker offers to the handlers running on it. */
struct event_base *gateway_worker_base(gateway_worker_t *w);
struct upstream_pool *gateway_worker_upstream(gateway_worker_t *w);
/* A uniform random number in [0, 1) from the worker's own generator. */
double gateway_worker_random(gateway_worker_t *w);

/* Limiter waiters: a request that waits for a provider slot registers a callback on its
 * worker; it runs on that worker when a slot may be free. Returns a handle to cancel. */
typedef struct gateway_waiter gateway_waiter_t;
gateway_waiter_t *gateway_worker_wait(gateway_worker_t *w, limiter_t *l,
                                      void (*admitted)(void *arg), void *arg);
void gateway_worker_cancel_wait(gateway_worker_t *w, gateway_waiter_t *waiter);
/* Wakes every worker with waiters (any thread). */
void gateway_workers_wake(void);

typedef struct gateway_opts {
    const char *config_path; /* NULL: configuration from the environment */
    const char *host;        /* overrides, or NULL */
    int port;                /* -1: from config */
    int threads;             /* -1: from config */
    const char *data_dir;
} gateway_opts_t;

/* Starts the workers with cfg (takes the reference). Returns 0, or -1 after logging why. */
int gateway_start(config_t *cfg, const gateway_opts_t *opts);
/* Reloads the configuration file; keeps the old one when the new one is invalid. */
int gateway_reload(void);
/* Stops accepting, waits up to the shutdown timeout for requests in flight, stops workers. */
void gateway_stop(void);
/* Runs the main thread's control loop until a stop signal. Returns the exit status. */
int gateway_run(void);

#endif
