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
 *     "mcp": {"client_configs": [...], "tool_manager_config": {...}, "server": {"tokens": []}},
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
    const char *name; /* "openai", "groq", ... */
    config_family_t family;
    const char *base_url; /* default base URL, without a trailing slash */
    const char *env_key;  /* environment variable holding the API key, or NULL */
    bool key_optional;    /* local servers (ollama, vllm) work without a key */
} config_known_provider_t;

/* Returns the known provider of that name, or NULL. */
const config_known_provider_t *config_known_provider(const char *name);
/* The table, terminated by an entry whose name is NULL. */
const config_known_provider_t *config_known_providers(void);

typedef struct config_key {
    char *name;      /* shown in logs and response headers; never the value */
    char *value;     /* the secret itself, after env. resolution; may be "" for keyless */
    char **models;   /* allow-list of model names (without the provider prefix) */
    size_t n_models; /* 0 = every model */
    double weight;   /* relative weight for the weighted choice, > 0 */
} config_key_t;

typedef struct config_provider {
    char *name; /* as written under "providers" */
    config_family_t family;
    char *base_url; /* no trailing slash */
    config_key_t *keys;
    size_t n_keys;
    int max_retries; /* retries after the first attempt, per model tried */
    int backoff_initial_ms;
    int backoff_max_ms;
    int timeout_s;         /* whole upstream request */
    int concurrency;       /* requests in flight to this provider, across all threads */
    int buffer_size;       /* requests allowed to wait for a slot */
    json_t *extra_headers; /* object of header name -> string value; owned */
} config_provider_t;

/* ---- MCP: the "mcp" section (parsed by config/mcp.c; docs/configuration.md) --------------- */

typedef enum config_mcp_connection {
    CONFIG_MCP_STDIO = 0, /* a child process speaking on stdin/stdout */
    CONFIG_MCP_HTTP,      /* Streamable HTTP */
    CONFIG_MCP_SSE,       /* the legacy HTTP+SSE transport */
} config_mcp_connection_t;

/* How Code Mode lays out its stub files: one per server, or one per tool. */
typedef enum config_mcp_binding {
    CONFIG_MCP_BINDING_SERVER = 0,
    CONFIG_MCP_BINDING_TOOL,
} config_mcp_binding_t;

/* One entry of mcp.client_configs. Every array is NULL-terminated and never NULL itself, so
 * that it can be handed to mcp_client_opts_t and the tool hub as it is. */
typedef struct config_mcp_client {
    char *name; /* letters, digits, '_' and '-'; unique */
    config_mcp_connection_t connection_type;
    char *command;                /* stdio: program to run; NULL otherwise */
    char **args;                  /* stdio: its arguments */
    char **envs;                  /* stdio: names of the variables passed through */
    char *url;                    /* http, sse: connection_string, env. resolved */
    char **headers;               /* http, sse: "Name: value" lines, env. resolved; may
                                   * hold credentials: never logged, wiped on free */
    char **tools_to_execute;      /* {"*"} = every tool; {} (also when absent) = none */
    char **tools_to_auto_execute; /* same syntax; never more than tools_to_execute */
    bool is_code_mode_client;
} config_mcp_client_t;

/* MCP defaults, for the docs and for code that finds a field at 0 (a snapshot built from the
 * environment alone has no "mcp" section). */
#define CONFIG_MCP_DEFAULT_TOOL_TIMEOUT_S 30
#define CONFIG_MCP_DEFAULT_MAX_AGENT_DEPTH 10

typedef struct config {
    int refcount; /* atomic; see config_retain */
    char *source; /* file path, or "environment" */

    char *host;
    int port;
    int threads; /* 0 = one per core */
    size_t max_body_bytes;
    int header_timeout_s;
    int idle_timeout_s;
    int shutdown_timeout_s;
    char *log_level; /* "info" unless set */

    bool drop_excess_requests; /* client.drop_excess_requests */

    config_provider_t *providers;
    size_t n_providers;

    /* Telemetry: "logs", "audit", "metrics" and "admin" (docs/configuration.md). */
    bool logs_enabled;               /* request and tool log in SQLite under the data dir */
    bool logs_content;               /* keep request and response bodies in the log */
    int logs_retention_days;         /* rows older than this are deleted */
    int logs_content_retention_days; /* bodies older than this are cleared, rows kept */
    int logs_queue_size;             /* rows waiting for the writer; past it rows are dropped */
    json_t *prices;                  /* logs.prices: overrides of the shipped price table,
                                      * {"provider/model": {"input", "output", "cached_input"}}
                                      * in USD per million tokens; owned, NULL when absent */
    bool audit_enabled;              /* record every upstream exchange, hash-chained */
    bool audit_content;              /* record body bytes (true) or only their SHA-256 */
    bool metrics_enabled;            /* serve GET /metrics */
    char *admin_token;               /* bearer token of the admin API (/api/...); NULL = off */

    /* ---- MCP: the "mcp" section (config/mcp.c). A field at 0 means its default. ---- */
    config_mcp_client_t *mcp_clients; /* mcp.client_configs, in file order */
    size_t n_mcp_clients;
    int mcp_tool_execution_timeout_s; /* per tool call; 0 = CONFIG_MCP_DEFAULT_TOOL_TIMEOUT_S */
    int mcp_max_agent_depth;          /* model rounds in agent mode; 0 = the default (10) */
    config_mcp_binding_t mcp_code_mode_binding; /* "server" (the default) or "tool" */
    /* tool_manager_config.code_mode_limits: each Code Mode execution's limits */
    int mcp_code_mode_wall_ms;        /* 0 = 30000 */
    int mcp_code_mode_cpu_s;          /* 0 = 10 */
    int mcp_code_mode_memory_mb;      /* 0 = 256 */
    int mcp_code_mode_output_bytes;   /* 0 = 1 MiB */
    int mcp_code_mode_max_concurrent; /* scripts in the sandbox at once, all requests; 0 = 16 */
    char **mcp_server_tokens;         /* bearer tokens of gatehouse's own /mcp, env. resolved,
                                       * NULL-terminated; NULL when none is configured */
    size_t n_mcp_server_tokens;
    /* ---- end of MCP ---- */
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

/* MCP (config/mcp.c). config_mcp_load reads root's "mcp" section into cfg, reporting every
 * problem with its JSON path; config_load_json calls it. config_mcp_free releases the MCP
 * fields and leaves them empty, so calling it twice is harmless. */
void config_mcp_load(json_t *root, config_t *cfg, config_report_t *report);
void config_mcp_free(config_t *cfg);

#endif
