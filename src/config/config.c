/*
 * config.c - configuration snapshots: their lifetime, the problem report, reading a file, and
 * the snapshot built from environment variables alone.
 *
 * A snapshot is one allocation tree owned by the snapshot itself: every string, key and
 * provider below it is freed by the last config_release. Nothing in a snapshot changes after
 * it is built, so worker threads read it without locks; only the reference count is shared
 * mutable state, and it is updated with atomic builtins (the field is a plain int in the
 * public struct, so <stdatomic.h> types cannot be used on it).
 *
 * Turning a JSON tree into a snapshot is validate.c's job; the table of known providers is in
 * known_providers.c. This file also carries config_check_file (check.h), the engine of
 * `gatehouse check-config`, since it is a thin shell around loading and printing a report.
 */
#include "config/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/check.h"
#include "config/internal.h"
#include "util/alloc.h"
#include "util/buf.h"

/* ---- the problem report ---------------------------------------------------------------------- */

void config_report_init(config_report_t *r)
{
    r->items = NULL;
    r->count = 0;
    r->n_errors = 0;
}

void config_report_free(config_report_t *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free(r->items[i].path);
        free(r->items[i].message);
    }
    free(r->items);
    config_report_init(r);
}

void config_report_addf(config_report_t *r, bool is_error, const char *path, const char *fmt, ...)
{
    buf_t msg = BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    buf_vappendf(&msg, fmt, ap);
    va_end(ap);

    r->items = xrealloc(r->items, (r->count + 1) * sizeof(r->items[0]));
    config_problem_t *p = &r->items[r->count++];
    p->path = xstrdup(path != NULL && path[0] != '\0' ? path : CONFIG_ROOT_PATH);
    p->message = buf_release(&msg);
    p->is_error = is_error;
    if (is_error)
        r->n_errors++;
}

void config_report_print(const config_report_t *r, FILE *out)
{
    for (size_t i = 0; i < r->count; i++) {
        const config_problem_t *p = &r->items[i];
        fprintf(out, "%s: %s: %s\n", p->is_error ? "error" : "warning", p->path, p->message);
    }
}

/* ---- building and freeing snapshots ---------------------------------------------------------- */

config_t *config_new(const char *source)
{
    config_t *cfg = xcalloc(1, sizeof(*cfg));
    cfg->refcount = 1;
    cfg->source = xstrdup(source);
    cfg->host = xstrdup(CONFIG_DEFAULT_HOST);
    cfg->port = CONFIG_DEFAULT_PORT;
    cfg->threads = CONFIG_DEFAULT_THREADS;
    cfg->max_body_bytes = CONFIG_DEFAULT_MAX_BODY_BYTES;
    cfg->header_timeout_s = CONFIG_DEFAULT_HEADER_TIMEOUT_S;
    cfg->idle_timeout_s = CONFIG_DEFAULT_IDLE_TIMEOUT_S;
    cfg->shutdown_timeout_s = CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_S;
    cfg->log_level = xstrdup(CONFIG_DEFAULT_LOG_LEVEL);
    cfg->drop_excess_requests = false;
    cfg->logs_enabled = true;
    cfg->logs_content = true;
    cfg->logs_retention_days = CONFIG_DEFAULT_LOG_RETENTION_DAYS;
    cfg->logs_content_retention_days = CONFIG_DEFAULT_CONTENT_RETENTION_DAYS;
    cfg->logs_queue_size = CONFIG_DEFAULT_LOG_QUEUE_SIZE;
    cfg->audit_enabled = false;
    cfg->audit_content = true;
    cfg->metrics_enabled = true;
    return cfg;
}

config_provider_t *config_add_provider(config_t *cfg, const char *name, config_family_t family,
                                       const char *base_url)
{
    cfg->providers = xrealloc(cfg->providers, (cfg->n_providers + 1) * sizeof(cfg->providers[0]));
    config_provider_t *p = &cfg->providers[cfg->n_providers++];
    memset(p, 0, sizeof(*p));
    p->name = xstrdup(name);
    p->family = family;
    p->base_url = xstrdup(base_url);
    p->max_retries = CONFIG_DEFAULT_MAX_RETRIES;
    p->backoff_initial_ms = CONFIG_DEFAULT_BACKOFF_INITIAL_MS;
    p->backoff_max_ms = CONFIG_DEFAULT_BACKOFF_MAX_MS;
    p->timeout_s = CONFIG_DEFAULT_TIMEOUT_S;
    p->concurrency = CONFIG_DEFAULT_CONCURRENCY;
    p->buffer_size = CONFIG_DEFAULT_BUFFER_SIZE;
    /* Always an object, so that adapters can iterate it without a NULL check. */
    p->extra_headers = json_object();
    return p;
}

config_key_t *config_add_key(config_provider_t *p, const char *name, const char *value)
{
    p->keys = xrealloc(p->keys, (p->n_keys + 1) * sizeof(p->keys[0]));
    config_key_t *k = &p->keys[p->n_keys++];
    memset(k, 0, sizeof(*k));
    k->name = xstrdup(name);
    k->value = xstrdup(value);
    k->weight = 1.0;
    return k;
}

static void key_free(config_key_t *k)
{
    /* The value is a secret: wipe it before the memory goes back to the allocator, so that a
     * later core dump or heap read does not find old keys lying around. */
    if (k->value != NULL) {
        volatile char *v = k->value;
        while (*v != '\0')
            *v++ = '\0';
    }
    free(k->value);
    free(k->name);
    for (size_t i = 0; i < k->n_models; i++)
        free(k->models[i]);
    free(k->models);
}

static void provider_free(config_provider_t *p)
{
    for (size_t i = 0; i < p->n_keys; i++)
        key_free(&p->keys[i]);
    free(p->keys);
    free(p->name);
    free(p->base_url);
    json_decref(p->extra_headers);
}

void config_drop_last_provider(config_t *cfg)
{
    if (cfg->n_providers == 0)
        return;
    provider_free(&cfg->providers[--cfg->n_providers]);
}

static void config_free(config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_providers; i++)
        provider_free(&cfg->providers[i]);
    free(cfg->providers);
    free(cfg->source);
    free(cfg->host);
    free(cfg->log_level);
    json_decref(cfg->prices);
    if (cfg->admin_token != NULL) {
        volatile char *v = cfg->admin_token;
        while (*v != '\0')
            *v++ = '\0';
    }
    free(cfg->admin_token);
    config_mcp_free(cfg);
    free(cfg);
}

void config_retain(config_t *cfg)
{
    /* Relaxed is enough: whoever retains already holds a reference, so the snapshot cannot
     * go away under it. */
    __atomic_add_fetch(&cfg->refcount, 1, __ATOMIC_RELAXED);
}

void config_release(config_t *cfg)
{
    if (cfg == NULL)
        return;
    /* Acquire-release so that every thread's reads of the snapshot happen before the free. */
    if (__atomic_sub_fetch(&cfg->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(cfg);
}

/* ---- lookups --------------------------------------------------------------------------------- */

const config_provider_t *config_find_provider(const config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_providers; i++) {
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    }
    return NULL;
}

bool config_key_allows(const config_key_t *key, const char *model)
{
    if (key->n_models == 0)
        return true;
    if (model == NULL)
        return false;
    /* Whole-name comparison only: "gpt-4o" must not admit "gpt-4o-mini", nor the reverse. */
    for (size_t i = 0; i < key->n_models; i++) {
        if (strcmp(key->models[i], model) == 0)
            return true;
    }
    return false;
}

/* ---- small shared checks --------------------------------------------------------------------- */

bool config_has_control_chars(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c < 0x20 || *c == 0x7f)
            return true;
    }
    return false;
}

char *config_normalize_url(const char *url)
{
    size_t scheme;
    if (strncmp(url, "https://", 8) == 0)
        scheme = 8;
    else if (strncmp(url, "http://", 7) == 0)
        scheme = 7;
    else
        return NULL;

    if (config_has_control_chars(url) || strchr(url, ' ') != NULL)
        return NULL;

    size_t len = strlen(url);
    while (len > scheme && url[len - 1] == '/')
        len--;
    /* Something must be left after the scheme, and it must not start with a slash
     * ("http:///x" has no host). */
    if (len == scheme || url[scheme] == '/')
        return NULL;
    return xstrndup(url, len);
}

/* ---- reading a file -------------------------------------------------------------------------- */

/* Reads the whole file into out. On failure returns errno and leaves out empty. */
static int read_whole_file(const char *path, buf_t *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno;

    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(out, chunk, n);

    /* fopen succeeds on a directory; the read is what fails (EISDIR). */
    int err = ferror(f) ? (errno != 0 ? errno : EIO) : 0;
    fclose(f);
    if (err != 0)
        buf_free(out);
    return err;
}

/* jansson's messages end with "near '<text>'", quoting the offending input. In a config file
 * that text can be a key pasted without quotes, so it is cut off; line and column are enough
 * to find the spot. */
static void report_syntax_error(config_report_t *r, const char *path, const json_error_t *err)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    snprintf(text, sizeof(text), "%s", err->text);
    char *near = strstr(text, " near '");
    if (near != NULL)
        *near = '\0';
    config_report_addf(r, true, path, "invalid JSON at line %d, column %d: %s", err->line,
                       err->column, text);
}

config_t *config_load_path(const char *path, config_report_t *report, bool *unreadable)
{
    buf_t text = BUF_INIT;
    if (unreadable != NULL)
        *unreadable = false;

    int err = read_whole_file(path, &text);
    if (err != 0) {
        config_report_addf(report, true, path, "cannot read the file: %s", strerror(err));
        if (unreadable != NULL)
            *unreadable = true;
        return NULL;
    }

    json_error_t jerr;
    json_t *root = json_loadb(buf_cstr(&text), text.len, JSON_REJECT_DUPLICATES, &jerr);
    buf_free(&text);
    if (root == NULL) {
        report_syntax_error(report, path, &jerr);
        return NULL;
    }

    config_t *cfg = config_load_json(root, path, report);
    json_decref(root);
    return cfg;
}

config_t *config_load_file(const char *path, config_report_t *report)
{
    return config_load_path(path, report, NULL);
}

/* ---- the environment-only snapshot ------------------------------------------------------------
 */

/* "openai" -> "OPENAI_BASE_URL". Returns false when the name does not fit (never for the
 * table's names). */
static bool base_url_var(const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    if (n + sizeof("_BASE_URL") > cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        out[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    memcpy(out + n, "_BASE_URL", sizeof("_BASE_URL"));
    return true;
}

/* The base URL to use for a known provider: <NAME>_BASE_URL when it is set and valid, the
 * table's default otherwise. Returns an owned string. */
static char *env_base_url(const config_known_provider_t *k, const char *var, config_report_t *r)
{
    const char *url = getenv(var);
    if (url == NULL || url[0] == '\0')
        return xstrdup(k->base_url);

    char *norm = config_normalize_url(url);
    if (norm == NULL) {
        config_report_addf(r, false, var,
                           "must start with http:// or https:// and name a host; using the "
                           "default %s",
                           k->base_url);
        return xstrdup(k->base_url);
    }
    return norm;
}

static void env_add_provider(config_t *cfg, const config_known_provider_t *k, config_report_t *r)
{
    char var[96];
    if (!base_url_var(k->name, var, sizeof(var)))
        return;

    const char *key = getenv(k->env_key);
    bool has_key = key != NULL && key[0] != '\0';
    const char *url = getenv(var);
    bool has_url = url != NULL && url[0] != '\0';

    /* A local server needs no key, so pointing gatehouse at it is enough to enable it. */
    if (!has_key && !(k->key_optional && has_url))
        return;

    if (has_key && config_has_control_chars(key)) {
        config_report_addf(r, false, k->env_key,
                           "contains a control character (a stray newline?); %s is not enabled",
                           k->name);
        return;
    }

    char *base = env_base_url(k, var, r);
    config_provider_t *p = config_add_provider(cfg, k->name, k->family, base);
    free(base);

    buf_t name = BUF_INIT;
    buf_appendf(&name, "%s-%s", k->name, has_key ? "env" : "nokey");
    config_add_key(p, buf_cstr(&name), has_key ? key : "");
    buf_free(&name);
}

config_t *config_from_env(config_report_t *report)
{
    config_t *cfg = config_new("environment");
    for (const config_known_provider_t *k = config_known_providers(); k->name != NULL; k++)
        env_add_provider(cfg, k, report);
    return cfg;
}

/* ---- check-config ---------------------------------------------------------------------------- */

int config_check_file(const char *path, FILE *out)
{
    config_report_t report;
    config_report_init(&report);

    bool unreadable = false;
    config_t *cfg = config_load_path(path, &report, &unreadable);
    config_report_print(&report, out);
    config_report_free(&report);

    if (cfg == NULL)
        return unreadable ? 2 : 1;

    size_t n_keys = 0;
    for (size_t i = 0; i < cfg->n_providers; i++)
        n_keys += cfg->providers[i].n_keys;
    fprintf(out, "ok: %zu providers, %zu keys\n", cfg->n_providers, n_keys);
    config_release(cfg);
    return 0;
}
