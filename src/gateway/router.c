/*
 * router.c - routing decisions (see router.h).
 */
#include "gateway/router.h"

#include <stdio.h>
#include <string.h>

router_status_t router_resolve(const config_t *cfg, const char *name, router_target_t *out,
                               char *message, size_t message_cap)
{
    const char *slash = strchr(name, '/');
    if (slash == NULL || slash == name || slash[1] == '\0') {
        snprintf(message, message_cap,
                 "model '%s' must be named provider/model, e.g. openai/gpt-4o-mini", name);
        return ROUTER_BAD_NAME;
    }

    char provider[128];
    size_t plen = (size_t)(slash - name);
    if (plen >= sizeof(provider) || strlen(slash + 1) >= sizeof(out->model)) {
        snprintf(message, message_cap, "model name is too long");
        return ROUTER_BAD_NAME;
    }
    memcpy(provider, name, plen);
    provider[plen] = '\0';

    out->provider = config_find_provider(cfg, provider);
    if (out->provider == NULL) {
        snprintf(message, message_cap, "provider '%s' is not configured on this gateway", provider);
        return ROUTER_UNKNOWN_PROVIDER;
    }
    snprintf(out->model, sizeof(out->model), "%s", slash + 1);

    for (size_t i = 0; i < out->provider->n_keys; i++) {
        if (config_key_allows(&out->provider->keys[i], out->model))
            return ROUTER_OK;
    }
    snprintf(message, message_cap, "model '%s' is not allowed by any key of provider '%s'",
             out->model, provider);
    return ROUTER_MODEL_NOT_ALLOWED;
}

int router_pick_key(const config_provider_t *p, const char *model, uint64_t excluded, double r)
{
    double total = 0;
    size_t n = p->n_keys < ROUTER_MAX_KEYS ? p->n_keys : ROUTER_MAX_KEYS;

    for (size_t i = 0; i < n; i++) {
        if (!(excluded & (UINT64_C(1) << i)) && config_key_allows(&p->keys[i], model))
            total += p->keys[i].weight;
    }
    if (total <= 0)
        return -1;

    /* Walk the eligible keys until the running weight passes r * total; the last eligible key
     * catches rounding at the top end. */
    double target = r * total;
    double run = 0;
    int last = -1;
    for (size_t i = 0; i < n; i++) {
        if ((excluded & (UINT64_C(1) << i)) || !config_key_allows(&p->keys[i], model))
            continue;
        run += p->keys[i].weight;
        last = (int)i;
        if (target < run)
            return (int)i;
    }
    return last;
}

long router_backoff_ms(int attempt, int initial_ms, int max_ms, long retry_after_s, double r)
{
    long delay = initial_ms > 0 ? initial_ms : 1;
    for (int i = 1; i < attempt && delay < max_ms; i++)
        delay *= 2;
    if (delay > max_ms)
        delay = max_ms;

    long jittered = delay / 2 + (long)((double)(delay - delay / 2) * r);

    if (retry_after_s > 0) {
        long wanted = retry_after_s * 1000;
        if (wanted > jittered)
            jittered = wanted < max_ms ? wanted : max_ms;
    }
    return jittered;
}

router_verdict_t router_classify(long status)
{
    if (status == 0 || status >= 500 || status == 408 || status == 409)
        return ROUTER_RETRY;
    if (status == 429)
        return ROUTER_ROTATE_KEY;
    if (status == 401 || status == 403)
        return ROUTER_DROP_KEY;
    return ROUTER_FINAL;
}
