/*
 * limiter.h - per-provider concurrency limit and wait queue, shared by all worker threads.
 *
 * Bifrost's concurrency_and_buffer_size: at most `concurrency` requests are in flight to a
 * provider at once, across every thread; up to `buffer_size` more may wait for a slot. When the
 * buffer is full, a request is refused at once (429) if client.drop_excess_requests is set, and
 * waits like the others otherwise.
 *
 * Counters are atomics; nothing on this path takes a lock. Waiting requests stay on their own
 * worker thread: each worker keeps a FIFO of its waiters, and a release on any thread wakes
 * every worker that has waiters (gateway_workers_wake), which then admits its waiters in order
 * while slots last. A limiter outlives configuration reloads: it is found by provider name, and
 * a reload only changes its limits.
 */
#ifndef GATEHOUSE_GATEWAY_LIMITER_H
#define GATEHOUSE_GATEWAY_LIMITER_H

#include <stdbool.h>

typedef struct limiter {
    char *name;           /* provider name; owned */
    int inflight;         /* atomic: slots taken */
    int waiting;          /* atomic: requests queued for a slot */
    int concurrency;      /* atomic: current limit */
    int buffer_size;      /* atomic: current queue bound */
    struct limiter *next; /* registry list */
} limiter_t;

/* Finds or creates the process-wide limiter for a provider and sets its limits. */
limiter_t *limiter_get(const char *name, int concurrency, int buffer_size);
/* Frees every limiter; only at exit, after all workers stopped. */
void limiter_registry_free(void);

/* Takes a slot if one is free. */
bool limiter_try_acquire(limiter_t *l);
/* Returns a slot; wakes waiting workers when someone waits. */
void limiter_release(limiter_t *l);
/* Registers a waiter; returns false when the buffer is already full. The caller decides
 * whether to refuse (drop_excess_requests) or to wait anyway (limiter_wait_force). */
bool limiter_wait_begin(limiter_t *l);
void limiter_wait_force(limiter_t *l);
void limiter_wait_end(limiter_t *l);

#endif
