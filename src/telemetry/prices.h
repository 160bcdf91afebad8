/*
 * prices.h - what a request cost: token counts times the model's price.
 *
 * gatehouse ships a table of list prices (USD per million tokens) for the common models of
 * OpenAI, Anthropic, Groq, Mistral and DeepSeek; logs.prices in the configuration overrides
 * or extends it per "provider/model". The request path calls prices_cost once per finished
 * request and hands the result to the request log and the metrics. Prices change: the shipped
 * table is dated in prices.c, and the configuration is the way to correct it.
 */
#ifndef GATEHOUSE_TELEMETRY_PRICES_H
#define GATEHOUSE_TELEMETRY_PRICES_H

#include <stdbool.h>

#include "config/config.h"

/* One model's price, USD per million tokens. */
typedef struct prices_entry {
    double input;        /* prompt tokens not read from the provider's cache */
    double output;       /* completion tokens, reasoning included */
    double cached_input; /* prompt tokens read from the provider's cache */
} prices_entry_t;

/* Finds the price of provider/model: the exact "provider/model" key of cfg->prices first
 * (cfg may be NULL), then the shipped entry of that provider whose model name is the longest
 * prefix of model ending at a boundary ("gpt-4o-2024-08-06" -> "gpt-4o"). Returns false when
 * neither knows the model. */
bool prices_find(const config_t *cfg, const char *provider, const char *model, prices_entry_t *out);

/* Cost in USD of one request, or -1 when the price is unknown. tokens_in counts cached tokens
 * too: cost = (in - cached) * input + cached * cached_input + out * output. */
double prices_cost(const config_t *cfg, const char *provider, const char *model, long tokens_in,
                   long tokens_out, long tokens_cached);

#endif
