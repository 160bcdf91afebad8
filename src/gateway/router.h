/*
 * router.h - the pure decisions of routing: which provider and model a name means, which key
 * an attempt uses, how long to wait before a retry, and which failures are worth another try.
 *
 * Nothing here does I/O or keeps state between requests, so every rule can be unit-tested on
 * its own; gateway/chat.c strings these decisions together into the attempt loop.
 */
#ifndef GATEHOUSE_GATEWAY_ROUTER_H
#define GATEHOUSE_GATEWAY_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define ROUTER_MAX_KEYS 64 /* keys per provider that a request can tell apart */

/* A "provider/model" name resolved against a snapshot. */
typedef struct router_target {
    const config_provider_t *provider;
    char model[256]; /* the provider's model name, without the prefix */
} router_target_t;

typedef enum router_status {
    ROUTER_OK = 0,
    ROUTER_BAD_NAME,          /* no "provider/" prefix, or empty parts */
    ROUTER_UNKNOWN_PROVIDER,  /* prefix names no configured provider */
    ROUTER_MODEL_NOT_ALLOWED, /* no key of the provider allows the model */
} router_status_t;

/* Resolves name against cfg. On failure, message explains it for the client. */
router_status_t router_resolve(const config_t *cfg, const char *name, router_target_t *out,
                               char *message, size_t message_cap);

/* Picks a key for the model by weight among keys that allow it and are not in excluded
 * (bit i = key i). r is a uniform random number in [0, 1). Returns the key index or -1. */
int router_pick_key(const config_provider_t *p, const char *model, uint64_t excluded, double r);

/* Delay before retry number attempt (1 = first retry): exponential from initial_ms, capped at
 * max_ms, with "full jitter" in [delay/2, delay] taken from r in [0, 1). A Retry-After from the
 * upstream (seconds, or -1) is honoured when it is longer, up to max_ms. */
long router_backoff_ms(int attempt, int initial_ms, int max_ms, long retry_after_s, double r);

/* How an upstream failure is handled. */
typedef enum router_verdict {
    ROUTER_FINAL,      /* return it to the client; no retry, no fallback (e.g. 400) */
    ROUTER_RETRY,      /* retry with backoff, then fall back */
    ROUTER_ROTATE_KEY, /* 429: retry with another key when there is one */
    ROUTER_DROP_KEY,   /* 401/403: never use this key again for this request */
} router_verdict_t;

/* status is the upstream HTTP status, or 0 for a network-level failure. */
router_verdict_t router_classify(long status);

#endif
