/*
 * config.h - the gateway's configuration: an immutable, reference-counted snapshot.
 *
 * A snapshot is built from a JSON file (config_load_file) or, when no file is given, from the
 * usual environment variables (config_from_env). Nothing changes a snapshot after it is built:
 * SIGHUP builds a new one and swaps a pointer, and every request holds a reference to the
 * snapshot it started with (config_retain / config_release), so a reload never drops or
 * confuses a request in flight.
 *
 * The file format follows Bifrost's config.json wherever a feature matches, so that a Bifrost
 * user's file works for what both support:
 *
 *   {
 *     "client": {"drop_excess_requests": false},
 *     "providers": {
 *       "openai": {
 *         "keys": [{"name": "main", "value": "env.OPENAI_API_KEY", "models": [], "weight": 1}],
 *         "network_config": {"base_url": "...", "max_retries": 2,
 *                            "retry_backoff_initial": 500, "retry_backoff_max": 5000,
 *                            "default_request_timeout_in_seconds": 60, "extra_headers": {}},
 *         "concurrency_and_buffer_size": {"concurrency": 100, "buffer_size": 1000},
 *         "custom_provider_config": {"base_provider_type": "openai"}
 *       }
 *     },
 *     "server": {"host": "0.0.0.0", "port": 8080, "threads": 0, "max_request_body_bytes": ...,
 *                "header_timeout_seconds": 30, "idle_timeout_seconds": 60,
 *                "shutdown_timeout_seconds": 30, "log_level": "info"}
 *   }
 *
 * Values of the form "env.NAME" are read from the environment when the file is loaded.
 * retry_backoff_* are milliseconds, as in Bifrost. Unknown fields are warnings that name the
 * field's JSON path; wrong types, missing keys, bad URLs and unknown providers are errors.
 * docs/configuration.md is the user's reference.
 */
#ifndef GATEHOUSE_CONFIG_CONFIG_H
#define GATEHOUSE_CONFIG_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* How a provider's wire protocol is spoken; the adapters live in providers/. */
typedef enum config_family {
    CONFIG_FAMILY_OPENAI = 0, /* OpenAI chat completions and every compatible API */
    CONFIG_FAMILY_ANTHROPIC,  /* Anthropic Messages */
} config_family_t;

/* A provider gatehouse knows by name, with its defaults. */
typedef struct config_known_provider {
    const char *name;        /* "openai", "groq", ... */
    config_family_t family;
    const char *base_url;    /* default base URL, without a trailing slash */
    const char *env_key;     /* environment variable holding the API key, or NULL */
    bool key_optional;       /* local servers (ollama, vllm) work without a key */
} config_known_provider_t;

/* Returns the known provider of that name, or NULL. */
const config_known_provider_t *config_known_provider(const char *name);
/* The table, terminated by an entry whose name is NULL. */
const config_known_provider_t *config_known_providers(void);

typedef struct config_key {
    char *name;          /* shown in logs and response headers; never the value */
    char *value;         /* the secret itself, after env. resolution; may be "" for keyless */
    char **models;       /* allow-list of model names (without the provider prefix) */
    size_t n_models;     /* 0 = every model */
    double weight;       /* relative weight for the weighted choice, > 0 */
} config_key_t;

typedef struct config_provider {
    char *name;                 /* as written under "providers" */
    config_family_t family;
    char *base_url;             /* no trailing slash */
    config_key_t *keys;
    size_t n_keys;
    int max_retries;            /* retries after the first attempt, per model tried */
    int backoff_initial_ms;
    int backoff_max_ms;
    int timeout_s;              /* whole upstream request */
    int concurrency;            /* requests in flight to this provider, across all threads */
    int buffer_size;            /* requests allowed to wait for a slot */
    json_t *extra_headers;      /* object of header name -> string value; owned */
} config_provider_t;

typedef struct config {
    int refcount;                 /* atomic; see config_retain */
    char *source;                 /* file path, or "environment" */

    char *host;
    int port;
    int threads;                  /* 0 = one per core */
    size_t max_body_bytes;
    int header_timeout_s;
    int idle_timeout_s;
    int shutdown_timeout_s;
    char *log_level;              /* "info" unless set */

    bool drop_excess_requests;    /* client.drop_excess_requests */

    config_provider_t *providers;
    size_t n_providers;

    /* Telemetry: "logs", "audit", "metrics" and "admin" (docs/configuration.md). */
    bool logs_enabled;                /* request and tool log in SQLite under the data dir */
    bool logs_content;                /* keep request and response bodies in the log */
    int logs_retention_days;          /* rows older than this are deleted */
    int logs_content_retention_days;  /* bodies older than this are cleared, rows kept */
    int logs_queue_size;              /* rows waiting for the writer; past it rows are dropped */
    json_t *prices;                   /* logs.prices: overrides of the shipped price table,
                                       * {"provider/model": {"input", "output", "cached_input"}}
                                       * in USD per million tokens; owned, NULL when absent */
    bool audit_enabled;               /* record every upstream exchange, hash-chained */
    bool audit_content;               /* record body bytes (true) or only their SHA-256 */
    bool metrics_enabled;             /* serve GET /metrics */
    char *admin_token;                /* bearer token of the admin API (/api/...); NULL = off */
} config_t;

/* Problems found while loading; each names the JSON path it is about ("providers.openai.keys[0]
 * .value"). Warnings do not stop a load; errors do. */
typedef struct config_problem {
    char *path;
    char *message;
    bool is_error;
} config_problem_t;

typedef struct config_report {
    config_problem_t *items;
    size_t count;
    size_t n_errors;
} config_report_t;

void config_report_init(config_report_t *r);
void config_report_free(config_report_t *r);
/* Prints every problem, one per line ("error: providers.x.keys[0].value: ..."). */
void config_report_print(const config_report_t *r, FILE *out);

/* Loads and validates a file. Returns a snapshot with refcount 1, or NULL when the report has
 * errors. The report receives warnings in both cases. */
config_t *config_load_file(const char *path, config_report_t *report);
/* The same from a parsed tree (tests use it); source names where it came from. */
config_t *config_load_json(json_t *root, const char *source, config_report_t *report);
/* Builds a snapshot from OPENAI_API_KEY, ANTHROPIC_API_KEY, GROQ_API_KEY, ... One provider per
 * variable that is set. Never fails; may hold no provider at all. */
config_t *config_from_env(config_report_t *report);

void config_retain(config_t *cfg);
void config_release(config_t *cfg);

const config_provider_t *config_find_provider(const config_t *cfg, const char *name);
/* True when the key's allow-list permits the model (model without provider prefix). */
bool config_key_allows(const config_key_t *key, const char *model);

#endif
