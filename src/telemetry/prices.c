/*
 * prices.c - the shipped price table and the cost of a request (see prices.h).
 *
 * The table holds list prices in USD per million tokens, as the providers' public pricing
 * pages showed them in November 2025 (openai.com/api/pricing, anthropic.com/pricing,
 * groq.com/pricing, mistral.ai/pricing, api-docs.deepseek.com/quick_start/pricing). Providers
 * change prices, add models and retire others without notice; logs.prices in the configuration
 * corrects or extends this table without a new build, and docs/request-log.md says so.
 *
 * What the table does not model: batch and flex discounts, long-context surcharges (Claude
 * Sonnet above 200k tokens), Anthropic's cache writes (1.25x input), audio and image tokens.
 * A cost is therefore an estimate of the list price of the text tokens, good for dashboards
 * and budgets, not an invoice.
 *
 * Versioned model names are matched by the longest table entry that is a prefix of the name
 * and ends at a boundary ('-', ':', '@' or the end), so "gpt-4o-2024-08-06" costs what "gpt-4o"
 * costs, "gpt-4o-mini" finds its own, cheaper entry, and "gpt-4o" never matches "gpt-4".
 */
#include "telemetry/prices.h"

#include <stdio.h>
#include <string.h>

/* A negative cached price means the provider publishes none: cached tokens cost input. */
#define NO_CACHE_PRICE -1.0

typedef struct price_row {
    const char *provider;
    const char *model; /* prefix of the provider's model names */
    double input;
    double output;
    double cached_input;
} price_row_t;

static const price_row_t shipped[] = {
    /* OpenAI */
    {"openai", "gpt-5", 1.25, 10.00, 0.125},
    {"openai", "gpt-5-mini", 0.25, 2.00, 0.025},
    {"openai", "gpt-5-nano", 0.05, 0.40, 0.005},
    {"openai", "gpt-5-pro", 15.00, 120.00, NO_CACHE_PRICE},
    {"openai", "gpt-5.1", 1.25, 10.00, 0.125},
    {"openai", "gpt-5.1-codex-mini", 0.25, 2.00, 0.025},
    {"openai", "gpt-4.1", 2.00, 8.00, 0.50},
    {"openai", "gpt-4.1-mini", 0.40, 1.60, 0.10},
    {"openai", "gpt-4.1-nano", 0.10, 0.40, 0.025},
    {"openai", "gpt-4o", 2.50, 10.00, 1.25},
    {"openai", "gpt-4o-2024-05-13", 5.00, 15.00, NO_CACHE_PRICE},
    {"openai", "gpt-4o-mini", 0.15, 0.60, 0.075},
    {"openai", "chatgpt-4o-latest", 5.00, 15.00, NO_CACHE_PRICE},
    {"openai", "o1", 15.00, 60.00, 7.50},
    {"openai", "o1-mini", 1.10, 4.40, 0.55},
    {"openai", "o1-pro", 150.00, 600.00, NO_CACHE_PRICE},
    {"openai", "o3", 2.00, 8.00, 0.50},
    {"openai", "o3-mini", 1.10, 4.40, 0.55},
    {"openai", "o3-pro", 20.00, 80.00, NO_CACHE_PRICE},
    {"openai", "o3-deep-research", 10.00, 40.00, 2.50},
    {"openai", "o4-mini", 1.10, 4.40, 0.275},
    {"openai", "o4-mini-deep-research", 2.00, 8.00, 0.50},
    {"openai", "codex-mini-latest", 1.50, 6.00, 0.375},
    {"openai", "gpt-4-turbo", 10.00, 30.00, NO_CACHE_PRICE},
    {"openai", "gpt-4", 30.00, 60.00, NO_CACHE_PRICE},
    {"openai", "gpt-4-32k", 60.00, 120.00, NO_CACHE_PRICE},
    {"openai", "gpt-3.5-turbo", 0.50, 1.50, NO_CACHE_PRICE},
    {"openai", "gpt-3.5-turbo-instruct", 1.50, 2.00, NO_CACHE_PRICE},

    /* Anthropic: cached_input is the cache-read price (0.1x input). */
    {"anthropic", "claude-opus-4-5", 5.00, 25.00, 0.50},
    {"anthropic", "claude-opus-4-1", 15.00, 75.00, 1.50},
    {"anthropic", "claude-opus-4", 15.00, 75.00, 1.50},
    {"anthropic", "claude-sonnet-4-5", 3.00, 15.00, 0.30},
    {"anthropic", "claude-sonnet-4", 3.00, 15.00, 0.30},
    {"anthropic", "claude-haiku-4-5", 1.00, 5.00, 0.10},
    {"anthropic", "claude-3-7-sonnet", 3.00, 15.00, 0.30},
    {"anthropic", "claude-3-5-sonnet", 3.00, 15.00, 0.30},
    {"anthropic", "claude-3-5-haiku", 0.80, 4.00, 0.08},
    {"anthropic", "claude-3-opus", 15.00, 75.00, 1.50},
    {"anthropic", "claude-3-sonnet", 3.00, 15.00, 0.30},
    {"anthropic", "claude-3-haiku", 0.25, 1.25, 0.03},

    /* Groq */
    {"groq", "llama-3.3-70b-versatile", 0.59, 0.79, NO_CACHE_PRICE},
    {"groq", "llama-3.1-8b-instant", 0.05, 0.08, NO_CACHE_PRICE},
    {"groq", "meta-llama/llama-4-scout-17b-16e-instruct", 0.11, 0.34, NO_CACHE_PRICE},
    {"groq", "meta-llama/llama-4-maverick-17b-128e-instruct", 0.20, 0.60, NO_CACHE_PRICE},
    {"groq", "meta-llama/llama-guard-4-12b", 0.20, 0.20, NO_CACHE_PRICE},
    {"groq", "openai/gpt-oss-120b", 0.15, 0.75, NO_CACHE_PRICE},
    {"groq", "openai/gpt-oss-20b", 0.10, 0.50, NO_CACHE_PRICE},
    {"groq", "qwen/qwen3-32b", 0.29, 0.59, NO_CACHE_PRICE},
    {"groq", "moonshotai/kimi-k2-instruct", 1.00, 3.00, NO_CACHE_PRICE},
    {"groq", "deepseek-r1-distill-llama-70b", 0.75, 0.99, NO_CACHE_PRICE},
    {"groq", "gemma2-9b-it", 0.20, 0.20, NO_CACHE_PRICE},

    /* Mistral: the "-latest" aliases and dated versions match these prefixes. */
    {"mistral", "mistral-large", 2.00, 6.00, NO_CACHE_PRICE},
    {"mistral", "mistral-medium", 0.40, 2.00, NO_CACHE_PRICE},
    {"mistral", "mistral-small", 0.10, 0.30, NO_CACHE_PRICE},
    {"mistral", "mistral-saba", 0.20, 0.60, NO_CACHE_PRICE},
    {"mistral", "magistral-medium", 2.00, 5.00, NO_CACHE_PRICE},
    {"mistral", "magistral-small", 0.50, 1.50, NO_CACHE_PRICE},
    {"mistral", "codestral", 0.30, 0.90, NO_CACHE_PRICE},
    {"mistral", "devstral-medium", 0.40, 2.00, NO_CACHE_PRICE},
    {"mistral", "devstral-small", 0.10, 0.30, NO_CACHE_PRICE},
    {"mistral", "ministral-8b", 0.10, 0.10, NO_CACHE_PRICE},
    {"mistral", "ministral-3b", 0.04, 0.04, NO_CACHE_PRICE},
    {"mistral", "pixtral-large", 2.00, 6.00, NO_CACHE_PRICE},
    {"mistral", "pixtral-12b", 0.15, 0.15, NO_CACHE_PRICE},
    {"mistral", "open-mistral-nemo", 0.15, 0.15, NO_CACHE_PRICE},

    /* DeepSeek: V3.2 prices (September 2025); cached_input is the cache-hit price. */
    {"deepseek", "deepseek-chat", 0.28, 0.42, 0.028},
    {"deepseek", "deepseek-reasoner", 0.28, 0.42, 0.028},
};

#define N_SHIPPED (sizeof(shipped) / sizeof(shipped[0]))

/* True when prefix is model itself or model continues past it with a separator, so that a
 * dated or tagged version of a model finds it but a different model sharing letters does not. */
static bool matches_at_boundary(const char *model, const char *prefix, size_t len)
{
    if (strncmp(model, prefix, len) != 0)
        return false;
    char next = model[len];
    return next == '\0' || next == '-' || next == ':' || next == '@';
}

static const price_row_t *shipped_find(const char *provider, const char *model)
{
    const price_row_t *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < N_SHIPPED; i++) {
        const price_row_t *row = &shipped[i];
        size_t len = strlen(row->model);
        if (strcmp(row->provider, provider) != 0 || len <= best_len)
            continue;
        if (matches_at_boundary(model, row->model, len)) {
            best = row;
            best_len = len;
        }
    }
    return best;
}

static double number_or(json_t *obj, const char *name, double fallback)
{
    json_t *v = json_object_get(obj, name);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

/* An override replaces the shipped entry as a whole, so that what the operator wrote is what is
 * charged: a missing input or output price is 0, a missing cached price is the input price. */
static bool override_find(const config_t *cfg, const char *provider, const char *model,
                          prices_entry_t *out)
{
    if (cfg == NULL || !json_is_object(cfg->prices))
        return false;

    char key[512];
    int n = snprintf(key, sizeof(key), "%s/%s", provider, model);
    if (n < 0 || (size_t)n >= sizeof(key))
        return false;

    json_t *entry = json_object_get(cfg->prices, key);
    if (!json_is_object(entry))
        return false;

    out->input = number_or(entry, "input", 0);
    out->output = number_or(entry, "output", 0);
    out->cached_input = number_or(entry, "cached_input", out->input);
    return true;
}

bool prices_find(const config_t *cfg, const char *provider, const char *model, prices_entry_t *out)
{
    if (provider == NULL || model == NULL)
        return false;

    if (override_find(cfg, provider, model, out))
        return true;

    const price_row_t *row = shipped_find(provider, model);
    if (row == NULL)
        return false;
    out->input = row->input;
    out->output = row->output;
    out->cached_input = row->cached_input < 0 ? row->input : row->cached_input;
    return true;
}

double prices_cost(const config_t *cfg, const char *provider, const char *model, long tokens_in,
                   long tokens_out, long tokens_cached)
{
    prices_entry_t p;
    if (!prices_find(cfg, provider, model, &p))
        return -1;

    /* Providers report odd numbers now and then (a negative count, more cached tokens than
     * prompt tokens); clamp them instead of producing a negative cost. */
    double in = tokens_in > 0 ? (double)tokens_in : 0;
    double out = tokens_out > 0 ? (double)tokens_out : 0;
    double cached = tokens_cached > 0 ? (double)tokens_cached : 0;
    if (cached > in)
        cached = in;

    return ((in - cached) * p.input + cached * p.cached_input + out * p.output) / 1e6;
}
