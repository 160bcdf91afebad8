/*
 * limiter.c - per-provider concurrency limits (see limiter.h).
 */
#include "gateway/limiter.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "util/alloc.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static limiter_t *registry;

limiter_t *limiter_get(const char *name, int concurrency, int buffer_size)
{
    pthread_mutex_lock(&registry_lock);

    limiter_t *l = registry;
    while (l != NULL && strcmp(l->name, name) != 0)
        l = l->next;
    if (l == NULL) {
        l = xcalloc(1, sizeof(*l));
        l->name = xstrdup(name);
        l->next = registry;
        registry = l;
    }
    __atomic_store_n(&l->concurrency, concurrency, __ATOMIC_RELAXED);
    __atomic_store_n(&l->buffer_size, buffer_size, __ATOMIC_RELAXED);

    pthread_mutex_unlock(&registry_lock);
    return l;
}

void limiter_registry_free(void)
{
    pthread_mutex_lock(&registry_lock);
    while (registry != NULL) {
        limiter_t *next = registry->next;
        free(registry->name);
        free(registry);
        registry = next;
    }
    pthread_mutex_unlock(&registry_lock);
}

bool limiter_try_acquire(limiter_t *l)
{
    int cur = __atomic_load_n(&l->inflight, __ATOMIC_RELAXED);
    int max = __atomic_load_n(&l->concurrency, __ATOMIC_RELAXED);
    while (cur < max) {
        if (__atomic_compare_exchange_n(&l->inflight, &cur, cur + 1, true, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
            return true;
    }
    return false;
}

void limiter_release(limiter_t *l)
{
    __atomic_sub_fetch(&l->inflight, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&l->waiting, __ATOMIC_SEQ_CST) > 0)
        gateway_workers_wake();
}

bool limiter_wait_begin(limiter_t *l)
{
    int cur = __atomic_load_n(&l->waiting, __ATOMIC_RELAXED);
    int max = __atomic_load_n(&l->buffer_size, __ATOMIC_RELAXED);
    while (cur < max) {
        if (__atomic_compare_exchange_n(&l->waiting, &cur, cur + 1, true, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED))
            return true;
    }
    return false;
}

void limiter_wait_force(limiter_t *l)
{
    __atomic_add_fetch(&l->waiting, 1, __ATOMIC_SEQ_CST);
}

void limiter_wait_end(limiter_t *l)
{
    __atomic_sub_fetch(&l->waiting, 1, __ATOMIC_SEQ_CST);
}
