/*
 * validate.c - turning a parsed config.json tree into a snapshot, checking every field.
 *
 * The walk never stops at the first problem: a user fixing a file wants the whole list at
 * once. Each problem is recorded with the JSON path of the field it is about, built on the fly
 * in the loader's path buffer ("providers.openai.keys[1].weight"): each step pushes its segment
 * before looking at a field and pops it afterwards. A snapshot is returned only when no error
 * was recorded; warnings (unknown fields, Bifrost fields gatehouse does not use, optional keys
 * whose variable is unset) never stop a load.
 *
 * Field sets. Each object has a list of the fields gatehouse reads and a list of Bifrost fields
 * it accepts without using them. Anything else is an "unknown field" warning, so that a typo
 * ("max_retires") is visible but an old file still loads. A JSON null counts as an absent
 * field, because tools that write Bifrost configs from Go structs emit nulls for unset values.
 *
 * Secrets. Messages name fields and environment variables, never string values: a key may
 * sit in the wrong field, and a base URL may carry credentials in its user-info part.
 *
 * The snapshot is built in place (config_new, config_add_provider, config_add_key) and
 * released as a whole when the load fails, so no partial structure needs its own cleanup.
 */
#include "config/config.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define MAX_THREADS 1024     /* more worker threads than this is a typo, not a plan */
#define MAX_PROVIDER_NAME 64 /* the router copies "provider" out of "provider/model" */
#define MIB ((size_t)1024 * 1024)

typedef struct loader {
    config_report_t *report;
    buf_t path; /* JSON path of the value being read; "" at the root */
} loader_t;

/* ---- paths and problems ---------------------------------------------------------------------- */

/* Appends ".key" (or "key" at the root) and returns the length to pop back to. */
static size_t path_push_key(loader_t *ld, const char *key)
{
    size_t mark = ld->path.len;
    if (mark > 0)
        buf_appendc(&ld->path, '.');
    buf_appends(&ld->path, key);
    return mark;
}

static size_t path_push_index(loader_t *ld, size_t index)
{
    size_t mark = ld->path.len;
    buf_appendf(&ld->path, "[%zu]", index);
    return mark;
}

static void path_pop(loader_t *ld, size_t mark)
{
    /* buf.h has no truncate; cutting len and the terminator is all truncation means here. */
    if (ld->path.data == NULL)
        return;
    ld->path.len = mark;
    ld->path.data[mark] = '\0';
}

static void vproblem(loader_t *ld, const char *key, bool is_error, const char *fmt, va_list ap)
{
    size_t mark = key != NULL ? path_push_key(ld, key) : ld->path.len;
    buf_t msg = BUF_INIT;
    buf_vappendf(&msg, fmt, ap);
    config_report_addf(ld->report, is_error, buf_cstr(&ld->path), "%s", buf_cstr(&msg));
    buf_free(&msg);
    path_pop(ld, mark);
}

/* An error about the field key of the current object, or about the current value when key is
 * NULL. */
static void error_at(loader_t *ld, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void error_at(loader_t *ld, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(ld, key, true, fmt, ap);
    va_end(ap);
}

static void warn_at(loader_t *ld, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn_at(loader_t *ld, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vproblem(ld, key, false, fmt, ap);
    va_end(ap);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

/* ---- field sets ------------------------------------------------------------------------------ */

static bool in_list(const char *const *list, const char *name)
{
    for (; list != NULL && *list != NULL; list++) {
        if (strcmp(*list, name) == 0)
            return true;
    }
    return false;
}

/* Warns about every field of obj that is neither read by gatehouse (used) nor a Bifrost field
 * known to be safe to skip (ignored). */
static void check_fields(loader_t *ld, json_t *obj, const char *const *used,
                         const char *const *ignored)
{
    const char *key;
    json_t *value;
    json_object_foreach (obj, key, value) {
        if (in_list(used, key))
            continue;
        if (in_list(ignored, key))
            warn_at(ld, key, "Bifrost field not used by gatehouse; ignored");
        else
            warn_at(ld, key, "unknown field; ignored");
    }
}

static const char *const root_used[] = {"$schema", "server",  "client", "providers", "logs",
                                        "audit",   "metrics", "admin",  "mcp",       NULL};
static const char *const root_ignored[] = {
    "encryption_key", "governance", "guardrails_config",
    "config_store",   "logs_store", "vector_store",
    "plugins",        "framework",  "websocket",
    "cluster_config", NULL,
};

static const char *const server_used[] = {
    "host",
    "port",
    "threads",
    "max_request_body_bytes",
    "header_timeout_seconds",
    "idle_timeout_seconds",
    "shutdown_timeout_seconds",
    "log_level",
    NULL,
};

static const char *const client_used[] = {"drop_excess_requests", "max_request_body_size_mb",
                                          "enable_logging",       "disable_content_logging",
                                          "log_retention_days",   NULL};
static const char *const client_ignored[] = {
    "initial_pool_size",         "logging_headers",          "allowed_origins",
    "allowed_headers",           "prometheus_labels",        "enforce_governance_header",
    "enforce_auth_on_inference", "allow_direct_keys",        "disable_db_pings_in_health",
    "header_filter_config",      "enable_litellm_fallbacks", NULL,
};

static const char *const provider_used[] = {"keys", "network_config", "concurrency_and_buffer_size",
                                            "custom_provider_config", NULL};
static const char *const provider_ignored[] = {"send_back_raw_response", "send_back_raw_request",
                                               "store_raw_request_response", "proxy_config", NULL};

static const char *const network_used[] = {
    "base_url",
    "extra_headers",
    "max_retries",
    "retry_backoff_initial",
    "retry_backoff_max",
    "default_request_timeout_in_seconds",
    NULL,
};

static const char *const concurrency_used[] = {"concurrency", "buffer_size", NULL};

static const char *const logs_used[] = {
    "enabled", "content", "retention_days", "content_retention_days", "queue_size", "prices", NULL};
static const char *const audit_used[] = {"enabled", "content", NULL};
static const char *const metrics_used[] = {"enabled", NULL};
static const char *const admin_used[] = {"token", NULL};

static const char *const custom_used[] = {"base_provider_type", "is_key_less", NULL};
static const char *const custom_ignored[] = {"allowed_requests", "request_path_overrides", NULL};

static const char *const key_used[] = {"name", "value", "models", "weight", "optional", NULL};
static const char *const key_ignored[] = {
    "id", "azure_key_config", "vertex_key_config", "bedrock_key_config", "use_for_batch_api", NULL};

/* ---- typed readers --------------------------------------------------------------------------- */

/* obj[key], with JSON null treated as absent. */
static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static json_t *read_object(loader_t *ld, json_t *obj, const char *key)
{
    json_t *v = field(obj, key);
    if (v != NULL && !json_is_object(v)) {
        error_at(ld, key, "must be an object, got %s", type_name(v));
        return NULL;
    }
    return v;
}

static void range_error(loader_t *ld, const char *key, long long min, long long max, long long got)
{
    if (max == LLONG_MAX || max == INT_MAX)
        error_at(ld, key, "must be at least %lld, got %lld", min, got);
    else
        error_at(ld, key, "must be between %lld and %lld, got %lld", min, max, got);
}

/* Reads an integer in [min, max]. Leaves *out alone when the field is absent or wrong; returns
 * whether the field was present and valid. */
static bool read_ll(loader_t *ld, json_t *obj, const char *key, long long min, long long max,
                    long long *out)
{
    json_t *v = field(obj, key);
    if (v == NULL)
        return false;
    if (!json_is_integer(v)) {
        error_at(ld, key, "must be an integer, got %s", type_name(v));
        return false;
    }
    long long n = json_integer_value(v);
    if (n < min || n > max) {
        range_error(ld, key, min, max, n);
        return false;
    }
    *out = n;
    return true;
}

static bool read_int(loader_t *ld, json_t *obj, const char *key, int min, int max, int *out)
{
    long long n;
    if (!read_ll(ld, obj, key, min, max, &n))
        return false;
    *out = (int)n;
    return true;
}

static void read_bool(loader_t *ld, json_t *obj, const char *key, bool *out)
{
    json_t *v = field(obj, key);
    if (v == NULL)
        return;
    if (!json_is_boolean(v)) {
        error_at(ld, key, "must be true or false, got %s", type_name(v));
        return;
    }
    *out = json_is_true(v);
}

/* Reads a non-empty string without control characters; NULL when absent or invalid (the
 * latter reported). The string belongs to the tree. */
static const char *read_string(loader_t *ld, json_t *obj, const char *key)
{
    json_t *v = field(obj, key);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        error_at(ld, key, "must be a string, got %s", type_name(v));
        return NULL;
    }
    const char *s = json_string_value(v);
    if (s[0] == '\0') {
        error_at(ld, key, "must not be empty");
        return NULL;
    }
    if (config_has_control_chars(s)) {
        error_at(ld, key, "must not contain control characters");
        return NULL;
    }
    return s;
}

/* Replaces *dst (owned) with a copy of s when s is not NULL. */
static void set_string(char **dst, const char *s)
{
    if (s == NULL)
        return;
    free(*dst);
    *dst = xstrdup(s);
}

/* ---- server and client ----------------------------------------------------------------------- */

static void load_server(loader_t *ld, config_t *cfg, json_t *root)
{
    json_t *server = read_object(ld, root, "server");
    if (server == NULL)
        return;
    size_t mark = path_push_key(ld, "server");
    check_fields(ld, server, server_used, NULL);

    set_string(&cfg->host, read_string(ld, server, "host"));
    read_int(ld, server, "port", 0, 65535, &cfg->port);
    read_int(ld, server, "threads", 0, MAX_THREADS, &cfg->threads);

    long long body;
    if (read_ll(ld, server, "max_request_body_bytes", 1, LLONG_MAX, &body))
        cfg->max_body_bytes = (size_t)body;

    read_int(ld, server, "header_timeout_seconds", 1, INT_MAX, &cfg->header_timeout_s);
    read_int(ld, server, "idle_timeout_seconds", 1, INT_MAX, &cfg->idle_timeout_s);
    read_int(ld, server, "shutdown_timeout_seconds", 1, INT_MAX, &cfg->shutdown_timeout_s);

    const char *level = read_string(ld, server, "log_level");
    log_level_t parsed;
    if (level != NULL && !log_parse_level(level, &parsed))
        error_at(ld, "log_level", "must be one of debug, info, warn, error, crit");
    else
        set_string(&cfg->log_level, level);

    path_pop(ld, mark);
}

static void load_client(loader_t *ld, config_t *cfg, json_t *root)
{
    json_t *client = read_object(ld, root, "client");
    if (client == NULL)
        return;
    size_t mark = path_push_key(ld, "client");
    check_fields(ld, client, client_used, client_ignored);

    read_bool(ld, client, "drop_excess_requests", &cfg->drop_excess_requests);

    /* Bifrost's body limit, in MiB. gatehouse's own field is exact bytes and wins when both
     * are written; this one is honoured so that a Bifrost file keeps its limit. */
    long long mb;
    if (read_ll(ld, client, "max_request_body_size_mb", 1, 1024 * 1024, &mb)) {
        json_t *server = json_object_get(root, "server");
        if (field(server, "max_request_body_bytes") != NULL)
            warn_at(ld, "max_request_body_size_mb",
                    "ignored: server.max_request_body_bytes is also set and takes precedence");
        else
            cfg->max_body_bytes = (size_t)mb * MIB;
    }

    /* Bifrost's logging switches; the "logs" section, read after this, wins. */
    read_bool(ld, client, "enable_logging", &cfg->logs_enabled);
    bool no_content = !cfg->logs_content;
    read_bool(ld, client, "disable_content_logging", &no_content);
    cfg->logs_content = !no_content;
    read_int(ld, client, "log_retention_days", 1, 36500, &cfg->logs_retention_days);

    path_pop(ld, mark);
}

/* ---- telemetry: logs, audit, metrics, admin -------------------------------------------------- */

static void check_prices(loader_t *ld, json_t *prices)
{
    const char *model;
    json_t *entry;
    json_object_foreach (prices, model, entry) {
        size_t mark = path_push_key(ld, model);
        if (!json_is_object(entry)) {
            error_at(ld, NULL, "must be an object with input, output and cached_input prices");
            path_pop(ld, mark);
            continue;
        }
        const char *name;
        json_t *price;
        json_object_foreach (entry, name, price) {
            bool known = strcmp(name, "input") == 0 || strcmp(name, "output") == 0 ||
                         strcmp(name, "cached_input") == 0;
            if (!known)
                warn_at(ld, name, "unknown field; ignored");
            else if (!json_is_number(price) || json_number_value(price) < 0)
                error_at(ld, name, "must be a price in USD per million tokens (>= 0)");
        }
        path_pop(ld, mark);
    }
}

static void load_logs(loader_t *ld, config_t *cfg, json_t *root)
{
    json_t *logs = read_object(ld, root, "logs");
    if (logs == NULL)
        return;
    size_t mark = path_push_key(ld, "logs");
    check_fields(ld, logs, logs_used, NULL);

    read_bool(ld, logs, "enabled", &cfg->logs_enabled);
    read_bool(ld, logs, "content", &cfg->logs_content);
    read_int(ld, logs, "retention_days", 1, 36500, &cfg->logs_retention_days);
    read_int(ld, logs, "content_retention_days", 0, 36500, &cfg->logs_content_retention_days);
    read_int(ld, logs, "queue_size", 1, 10000000, &cfg->logs_queue_size);

    json_t *prices = read_object(ld, logs, "prices");
    if (prices != NULL) {
        size_t pm = path_push_key(ld, "prices");
        check_prices(ld, prices);
        path_pop(ld, pm);
        cfg->prices = json_incref(prices);
    }
    path_pop(ld, mark);
}

static void load_audit(loader_t *ld, config_t *cfg, json_t *root)
{
    json_t *audit = read_object(ld, root, "audit");
    if (audit == NULL)
        return;
    size_t mark = path_push_key(ld, "audit");
    check_fields(ld, audit, audit_used, NULL);
    read_bool(ld, audit, "enabled", &cfg->audit_enabled);
    read_bool(ld, audit, "content", &cfg->audit_content);
    path_pop(ld, mark);
}

static void load_metrics(loader_t *ld, config_t *cfg, json_t *root)
{
    json_t *metrics = read_object(ld, root, "metrics");
    if (metrics == NULL)
        return;
    size_t mark = path_push_key(ld, "metrics");
    check_fields(ld, metrics, metrics_used, NULL);
    read_bool(ld, metrics, "enabled", &cfg->metrics_enabled);
    path_pop(ld, mark);
}

/* admin.token: a literal, or "env.NAME". Messages name the variable, never the token. */
static void load_admin(loader_t *ld, config_t *cfg, json_t *root)
{
    json_t *admin = read_object(ld, root, "admin");
    if (admin == NULL)
        return;
    size_t mark = path_push_key(ld, "admin");
    check_fields(ld, admin, admin_used, NULL);

    const char *token = read_string(ld, admin, "token");
    if (token != NULL && strncmp(token, "env.", 4) == 0) {
        const char *env = getenv(token + 4);
        if (env == NULL || env[0] == '\0') {
            error_at(ld, "token", "environment variable %s is %s", token + 4,
                     env == NULL ? "not set" : "empty");
            token = NULL;
        } else {
            token = env;
        }
    }
    if (token != NULL && (strlen(token) < 16 || config_has_control_chars(token))) {
        error_at(ld, "token", "must be at least 16 characters without control characters");
        token = NULL;
    }
    set_string(&cfg->admin_token, token);
    path_pop(ld, mark);
}

/* ---- one provider: identity ------------------------------------------------------------------ */

typedef struct identity {
    config_family_t family;
    const char *base_url; /* the table's default, or NULL for a custom provider */
    const char *env_key;  /* for hints in messages; NULL for a custom provider */
    bool key_optional;
} identity_t;

static bool valid_provider_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > MAX_PROVIDER_NAME)
        return false;
    /* No '/' above all: models are addressed as "provider/model". */
    for (const char *c = name; *c != '\0'; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
        if (!ok)
            return false;
    }
    return true;
}

static void unknown_provider_error(loader_t *ld)
{
    buf_t names = BUF_INIT;
    for (const config_known_provider_t *k = config_known_providers(); k->name != NULL; k++)
        buf_appendf(&names, "%s%s", names.len > 0 ? ", " : "", k->name);
    error_at(ld, NULL,
             "unknown provider; known providers are %s. Any other name needs "
             "custom_provider_config.base_provider_type and network_config.base_url",
             buf_cstr(&names));
    buf_free(&names);
}

/* Reads custom_provider_config of a provider gatehouse does not know by name. */
static bool load_custom(loader_t *ld, json_t *custom, identity_t *id)
{
    size_t mark = path_push_key(ld, "custom_provider_config");
    check_fields(ld, custom, custom_used, custom_ignored);

    bool ok = true;
    const char *type = read_string(ld, custom, "base_provider_type");
    if (type == NULL) {
        if (field(custom, "base_provider_type") == NULL)
            error_at(ld, "base_provider_type", "required: \"openai\" or \"anthropic\"");
        ok = false;
    } else if (strcmp(type, "openai") == 0) {
        id->family = CONFIG_FAMILY_OPENAI;
    } else if (strcmp(type, "anthropic") == 0) {
        id->family = CONFIG_FAMILY_ANTHROPIC;
    } else {
        error_at(ld, "base_provider_type",
                 "must be \"openai\" or \"anthropic\"; gatehouse speaks no other family for "
                 "custom providers");
        ok = false;
    }
    read_bool(ld, custom, "is_key_less", &id->key_optional);

    path_pop(ld, mark);
    return ok;
}

/* Works out family, default URL and key policy. False when the provider cannot be used. */
static bool resolve_identity(loader_t *ld, const char *name, json_t *pj, identity_t *id)
{
    const config_known_provider_t *known = config_known_provider(name);
    json_t *custom = read_object(ld, pj, "custom_provider_config");

    if (known != NULL) {
        id->family = known->family;
        id->base_url = known->base_url;
        id->env_key = known->env_key;
        id->key_optional = known->key_optional;
        if (custom != NULL)
            warn_at(ld, "custom_provider_config", "ignored: %s is a built-in provider", name);
        return true;
    }

    memset(id, 0, sizeof(*id));
    if (custom == NULL) {
        if (field(pj, "custom_provider_config") == NULL)
            unknown_provider_error(ld);
        return false;
    }
    return load_custom(ld, custom, id);
}

/* ---- one provider: network and concurrency --------------------------------------------------- */

static bool valid_header_name(const char *name)
{
    if (name[0] == '\0')
        return false;
    /* RFC 9110 token characters. */
    for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++) {
        if (*c <= 0x20 || *c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *c) != NULL)
            return false;
    }
    return true;
}

static void load_extra_headers(loader_t *ld, config_provider_t *p, json_t *nc)
{
    json_t *headers = read_object(ld, nc, "extra_headers");
    if (headers == NULL)
        return;
    size_t mark = path_push_key(ld, "extra_headers");

    const char *name;
    json_t *value;
    json_object_foreach (headers, name, value) {
        if (!valid_header_name(name)) {
            error_at(ld, name, "is not a valid HTTP header name");
            continue;
        }
        if (!json_is_string(value)) {
            error_at(ld, name, "must be a string, got %s", type_name(value));
            continue;
        }
        if (config_has_control_chars(json_string_value(value))) {
            error_at(ld, name, "must not contain control characters");
            continue;
        }
        json_object_set_new(p->extra_headers, name, json_string(json_string_value(value)));
    }

    path_pop(ld, mark);
}

static void load_base_url(loader_t *ld, config_provider_t *p, json_t *nc)
{
    const char *url = read_string(ld, nc, "base_url");
    if (url == NULL)
        return;
    char *norm = config_normalize_url(url);
    if (norm == NULL) {
        error_at(ld, "base_url", "must start with http:// or https:// and name a host");
        return;
    }
    free(p->base_url);
    p->base_url = norm;
}

static void load_network(loader_t *ld, config_provider_t *p, json_t *pj)
{
    json_t *nc = read_object(ld, pj, "network_config");
    if (nc == NULL)
        return;
    size_t mark = path_push_key(ld, "network_config");
    check_fields(ld, nc, network_used, NULL);

    load_base_url(ld, p, nc);
    load_extra_headers(ld, p, nc);
    read_int(ld, nc, "max_retries", 0, INT_MAX, &p->max_retries);
    bool got_initial =
        read_int(ld, nc, "retry_backoff_initial", 0, INT_MAX, &p->backoff_initial_ms);
    bool got_max = read_int(ld, nc, "retry_backoff_max", 0, INT_MAX, &p->backoff_max_ms);
    read_int(ld, nc, "default_request_timeout_in_seconds", 1, INT_MAX, &p->timeout_s);

    /* Checked against the value in force, default or not: a lone initial of 8000 contradicts
     * the default maximum just as much as a written one. */
    if ((got_initial || got_max) && p->backoff_initial_ms > p->backoff_max_ms)
        error_at(ld, "retry_backoff_initial",
                 "must not exceed retry_backoff_max (%d ms), got %d ms", p->backoff_max_ms,
                 p->backoff_initial_ms);

    path_pop(ld, mark);
}

static void load_concurrency(loader_t *ld, config_provider_t *p, json_t *pj)
{
    json_t *cb = read_object(ld, pj, "concurrency_and_buffer_size");
    if (cb == NULL)
        return;
    size_t mark = path_push_key(ld, "concurrency_and_buffer_size");
    check_fields(ld, cb, concurrency_used, NULL);

    read_int(ld, cb, "concurrency", 1, INT_MAX, &p->concurrency);
    read_int(ld, cb, "buffer_size", 0, INT_MAX, &p->buffer_size);

    path_pop(ld, mark);
}

/* ---- one provider: keys ---------------------------------------------------------------------- */

typedef enum key_result {
    KEY_ADDED,
    KEY_DROPPED, /* optional, and its variable is unset: a warning, not an error */
    KEY_INVALID,
} key_result_t;

/* A key's "models" list, as read: owned strings, or n == 0 for "every model". */
typedef struct model_list {
    char **items;
    size_t n;
} model_list_t;

static void model_list_free(model_list_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->items[i]);
    free(m->items);
    m->items = NULL;
    m->n = 0;
}

/* One entry of "models": strips this provider's own prefix ("openai/gpt-4o" -> "gpt-4o").
 * Only its own: "meta-llama/Llama-3-8b" on together is a model name with a slash in it. */
static const char *strip_own_prefix(const char *model, const char *provider)
{
    size_t plen = strlen(provider);
    if (strncmp(model, provider, plen) == 0 && model[plen] == '/')
        return model + plen + 1;
    return model;
}

static bool read_models(loader_t *ld, json_t *kj, const char *provider, model_list_t *out)
{
    json_t *models = field(kj, "models");
    if (models == NULL)
        return true;
    if (!json_is_array(models)) {
        error_at(ld, "models", "must be an array of model names, got %s", type_name(models));
        return false;
    }

    bool ok = true, every = false;
    size_t mark = path_push_key(ld, "models");
    out->items = xcalloc(json_array_size(models), sizeof(char *));
    size_t i;
    json_t *m;
    json_array_foreach (models, i, m) {
        size_t im = path_push_index(ld, i);
        const char *name =
            json_is_string(m) ? strip_own_prefix(json_string_value(m), provider) : NULL;
        if (name == NULL || name[0] == '\0' || config_has_control_chars(name)) {
            error_at(ld, NULL, "must be a non-empty model name");
            ok = false;
        } else if (strcmp(name, "*") == 0) {
            every = true; /* Bifrost's spelling of "every model" */
        } else {
            out->items[out->n++] = xstrdup(name);
        }
        path_pop(ld, im);
    }
    path_pop(ld, mark);

    if (every || !ok)
        model_list_free(out);
    return ok;
}

static bool read_weight(loader_t *ld, json_t *kj, double *out)
{
    json_t *w = field(kj, "weight");
    if (w == NULL)
        return true;
    if (!json_is_number(w)) {
        error_at(ld, "weight", "must be a number, got %s", type_name(w));
        return false;
    }
    double v = json_number_value(w);
    if (!(v > 0) || !isfinite(v)) {
        error_at(ld, "weight", "must be greater than 0, got %g", v);
        return false;
    }
    *out = v;
    return true;
}

typedef enum value_result {
    VALUE_OK,
    VALUE_UNSET_OPTIONAL,
    VALUE_BAD,
} value_result_t;

/* Resolves "env.NAME" from the environment. Messages name the variable, never its content. */
static value_result_t resolve_env(loader_t *ld, const char *var, bool optional, const char **out)
{
    if (var[0] == '\0') {
        error_at(ld, "value", "\"env.\" must be followed by the name of an environment variable");
        return VALUE_BAD;
    }
    const char *env = getenv(var);
    const char *state = env == NULL ? "not set" : "empty";
    if (env == NULL || env[0] == '\0') {
        if (optional) {
            warn_at(ld, "value", "environment variable %s is %s; this optional key is skipped", var,
                    state);
            return VALUE_UNSET_OPTIONAL;
        }
        error_at(ld, "value", "environment variable %s is %s", var, state);
        return VALUE_BAD;
    }
    if (config_has_control_chars(env)) {
        error_at(ld, "value",
                 "environment variable %s contains a control character (a stray newline?)", var);
        return VALUE_BAD;
    }
    *out = env;
    return VALUE_OK;
}

static value_result_t read_value(loader_t *ld, json_t *kj, bool optional, bool key_optional,
                                 const char **out)
{
    json_t *v = field(kj, "value");
    if (v == NULL) {
        error_at(ld, "value", "required: the API key, or \"env.NAME\" to read it from NAME");
        return VALUE_BAD;
    }
    if (!json_is_string(v)) {
        error_at(ld, "value", "must be a string, got %s", type_name(v));
        return VALUE_BAD;
    }

    const char *s = json_string_value(v);
    if (strncmp(s, "env.", 4) == 0)
        return resolve_env(ld, s + 4, optional, out);

    if (s[0] == '\0' && !key_optional) {
        error_at(ld, "value", "must not be empty: this provider needs an API key");
        return VALUE_BAD;
    }
    if (config_has_control_chars(s)) {
        error_at(ld, "value", "contains a control character (a stray newline?)");
        return VALUE_BAD;
    }
    *out = s;
    return VALUE_OK;
}

/* Reads keys[index] and appends it to p when it is valid and usable. */
static key_result_t load_key(loader_t *ld, config_provider_t *p, size_t index, json_t *kj,
                             bool key_optional)
{
    if (!json_is_object(kj)) {
        error_at(ld, NULL, "must be an object, got %s", type_name(kj));
        return KEY_INVALID;
    }
    check_fields(ld, kj, key_used, key_ignored);

    bool optional = false;
    double weight = 1.0;
    model_list_t models = {NULL, 0};
    const char *value = NULL;
    size_t errors_before = ld->report->n_errors;

    read_bool(ld, kj, "optional", &optional);
    const char *name = read_string(ld, kj, "name");
    read_weight(ld, kj, &weight);
    read_models(ld, kj, p->name, &models);
    value_result_t vr = read_value(ld, kj, optional, key_optional, &value);

    bool clean = ld->report->n_errors == errors_before;
    if (!clean || vr != VALUE_OK) {
        model_list_free(&models);
        return clean && vr == VALUE_UNSET_OPTIONAL ? KEY_DROPPED : KEY_INVALID;
    }

    buf_t default_name = BUF_INIT;
    if (name == NULL)
        buf_appendf(&default_name, "%s-key-%zu", p->name, index);
    config_key_t *k = config_add_key(p, name != NULL ? name : buf_cstr(&default_name), value);
    buf_free(&default_name);
    k->weight = weight;
    k->models = models.items; /* ownership moves to the key */
    k->n_models = models.n;
    return KEY_ADDED;
}

static void add_keyless(config_provider_t *p)
{
    buf_t name = BUF_INIT;
    buf_appendf(&name, "%s-nokey", p->name);
    config_add_key(p, buf_cstr(&name), "");
    buf_free(&name);
}

/* Names show up in logs and response headers; two keys sharing one cannot be told apart. */
static void warn_duplicate_names(loader_t *ld, const config_provider_t *p)
{
    for (size_t i = 0; i < p->n_keys; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->keys[i].name, p->keys[j].name) == 0) {
                warn_at(ld, "keys", "two keys are named \"%s\"; logs will not tell them apart",
                        p->keys[i].name);
                break;
            }
        }
    }
}

static void missing_keys_error(loader_t *ld, const config_provider_t *p, const identity_t *id,
                               const char *what)
{
    if (id->env_key != NULL)
        error_at(ld, "keys", "%s: %s needs at least one key, e.g. [{\"value\": \"env.%s\"}]", what,
                 p->name, id->env_key);
    else
        error_at(ld, "keys",
                 "%s: %s needs at least one key, or custom_provider_config.is_key_less: true", what,
                 p->name);
}

/* Reads "keys". Returns false when the provider must be left out: every key was optional and
 * none of their variables is set, which the user asked to be a warning. */
static bool load_keys(loader_t *ld, config_provider_t *p, json_t *pj, const identity_t *id)
{
    json_t *keys = field(pj, "keys");
    if (keys != NULL && !json_is_array(keys)) {
        error_at(ld, "keys", "must be an array, got %s", type_name(keys));
        return true;
    }
    if (keys == NULL || json_array_size(keys) == 0) {
        if (id->key_optional)
            add_keyless(p);
        else
            missing_keys_error(ld, p, id, keys == NULL ? "required" : "is empty");
        return true;
    }

    size_t dropped = 0, invalid = 0;
    size_t mark = path_push_key(ld, "keys");
    size_t i;
    json_t *kj;
    json_array_foreach (keys, i, kj) {
        size_t im = path_push_index(ld, i);
        key_result_t r = load_key(ld, p, i, kj, id->key_optional);
        dropped += r == KEY_DROPPED;
        invalid += r == KEY_INVALID;
        path_pop(ld, im);
    }
    path_pop(ld, mark);

    if (p->n_keys > 0) {
        warn_duplicate_names(ld, p);
        return true;
    }
    if (invalid > 0)
        return true; /* already an error; the load fails anyway */
    if (id->key_optional) {
        add_keyless(p);
        return true;
    }
    warn_at(ld, NULL, "skipped: every key is optional and none of their variables is set");
    return false;
}

/* ---- providers ------------------------------------------------------------------------------- */

static void load_provider(loader_t *ld, config_t *cfg, const char *name, json_t *pj)
{
    if (!json_is_object(pj)) {
        error_at(ld, NULL, "must be an object, got %s", type_name(pj));
        return;
    }
    if (!valid_provider_name(name)) {
        error_at(ld, NULL, "a provider name holds only letters, digits, '-' and '_' (at most %d)",
                 MAX_PROVIDER_NAME);
        return;
    }
    check_fields(ld, pj, provider_used, provider_ignored);

    identity_t id;
    if (!resolve_identity(ld, name, pj, &id))
        return;

    /* The provider is added at once and filled in place; p stays valid because nothing else is
     * added to cfg until this function returns. */
    config_provider_t *p =
        config_add_provider(cfg, name, id.family, id.base_url ? id.base_url : "");
    load_network(ld, p, pj);
    /* Only when base_url was left out: a written but invalid one has its own error. */
    json_t *nc = field(pj, "network_config");
    if (p->base_url[0] == '\0' && field(json_is_object(nc) ? nc : NULL, "base_url") == NULL)
        error_at(ld, "network_config.base_url", "required for a custom provider");
    load_concurrency(ld, p, pj);
    if (!load_keys(ld, p, pj, &id))
        config_drop_last_provider(cfg);
}

static void load_providers(loader_t *ld, config_t *cfg, json_t *root)
{
    json_t *providers = read_object(ld, root, "providers");
    if (providers == NULL)
        return;
    size_t mark = path_push_key(ld, "providers");

    const char *name;
    json_t *pj;
    json_object_foreach (providers, name, pj) {
        size_t pm = path_push_key(ld, name);
        load_provider(ld, cfg, name, pj);
        path_pop(ld, pm);
    }

    path_pop(ld, mark);
}

/* ---- entry point ----------------------------------------------------------------------------- */

config_t *config_load_json(json_t *root, const char *source, config_report_t *report)
{
    if (!json_is_object(root)) {
        config_report_addf(report, true, CONFIG_ROOT_PATH, "must be a JSON object, got %s",
                           root != NULL ? type_name(root) : "nothing");
        return NULL;
    }

    loader_t ld = {report, BUF_INIT};
    size_t errors_before = report->n_errors;
    config_t *cfg = config_new(source != NULL ? source : "json");

    check_fields(&ld, root, root_used, root_ignored);
    load_server(&ld, cfg, root);
    load_client(&ld, cfg, root);
    load_logs(&ld, cfg, root);
    load_audit(&ld, cfg, root);
    load_metrics(&ld, cfg, root);
    load_admin(&ld, cfg, root);
    load_providers(&ld, cfg, root);
    config_mcp_load(root, cfg, report);
    buf_free(&ld.path);

    if (report->n_errors != errors_before) {
        config_release(cfg);
        return NULL;
    }
    if (cfg->n_providers == 0)
        config_report_addf(report, false, "providers",
                           "no provider is configured; every model request will fail");
    return cfg;
}
