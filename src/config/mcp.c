/*
 * mcp.c - the "mcp" section of config.json: the MCP servers gatehouse connects to, the tool
 * manager's limits, and the tokens of gatehouse's own /mcp endpoint.
 *
 * The field names are Bifrost's (client_configs, connection_type, stdio_config,
 * connection_string, tools_to_execute, tools_to_auto_execute, is_code_mode_client,
 * tool_manager_config), so that a Bifrost file's MCP section loads as it is. Semantics follow
 * Bifrost where it is explicit: tools_to_execute and tools_to_auto_execute are deny-by-default
 * (absent or [] = no tool, ["*"] = every tool), which gatehouse warns about when the list is
 * absent, because a silent "no tools" is the surprise users report.
 *
 * The walk is the one validate.c does for the rest of the file, with the same conventions:
 * every problem is recorded with its JSON path ("mcp.client_configs[2].headers.Authorization"),
 * the walk never stops at the first problem, JSON null counts as absent, and messages name
 * fields and environment variables but never a value (headers and tokens are credentials).
 * validate.c keeps its path helpers to itself, so this file has a small copy of them.
 *
 * Ownership: everything read is copied into the snapshot; config_mcp_free releases it.
 */
#include "config/config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/internal.h"
#include "util/alloc.h"
#include "util/buf.h"

#define MAX_CLIENT_NAME 64
#define MIN_TOKEN_LEN 16
#define MAX_TOOL_TIMEOUT_S 3600
#define MAX_AGENT_DEPTH 100
/* Code Mode limits: the bounds keep a typo from disabling a limit or starving every script; the
 * output's bound keeps a done frame (output, escaped, plus result) under the wire's 16 MiB. */
#define MIN_CM_WALL_MS 100
#define MAX_CM_WALL_MS 600000
#define MAX_CM_CPU_S 600
#define MIN_CM_MEMORY_MB 32
#define MAX_CM_MEMORY_MB 65536
#define MIN_CM_OUTPUT_BYTES 1024
#define MAX_CM_OUTPUT_BYTES (4 * 1024 * 1024)
/* Scripts running at once: each child may use memory_mb, and no cgroup bounds them together. */
#define MAX_CM_CONCURRENT 1024

typedef struct loader {
    config_report_t *report;
    buf_t path; /* JSON path of the value being read */
} loader_t;

/* ---- paths and problems (the conventions of validate.c) -------------------------------------- */

static size_t push_key(loader_t *ld, const char *key)
{
    size_t mark = ld->path.len;
    if (mark > 0)
        buf_appendc(&ld->path, '.');
    buf_appends(&ld->path, key);
    return mark;
}

static size_t push_index(loader_t *ld, size_t index)
{
    size_t mark = ld->path.len;
    buf_appendf(&ld->path, "[%zu]", index);
    return mark;
}

static void pop(loader_t *ld, size_t mark)
{
    if (ld->path.data == NULL)
        return;
    ld->path.len = mark;
    ld->path.data[mark] = '\0';
}

static void vproblem(loader_t *ld, const char *key, bool is_error, const char *fmt, va_list ap)
{
    size_t mark = key != NULL ? push_key(ld, key) : ld->path.len;
    buf_t msg = BUF_INIT;
    buf_vappendf(&msg, fmt, ap);
    config_report_addf(ld->report, is_error, buf_cstr(&ld->path), "%s", buf_cstr(&msg));
    buf_free(&msg);
    pop(ld, mark);
}

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

static bool in_list(const char *const *list, const char *name)
{
    for (; list != NULL && *list != NULL; list++) {
        if (strcmp(*list, name) == 0)
            return true;
    }
    return false;
}

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

/* ---- field sets ------------------------------------------------------------------------------ */

static const char *const mcp_used[] = {"client_configs", "tool_manager_config", "server", NULL};
static const char *const client_used[] = {"name",
                                          "connection_type",
                                          "stdio_config",
                                          "connection_string",
                                          "headers",
                                          "tools_to_execute",
                                          "tools_to_auto_execute",
                                          "is_code_mode_client",
                                          "auth_type",
                                          NULL};
static const char *const client_ignored[] = {"client_id",       "is_ping_available",
                                             "tool_pricing",    "tool_sync_interval",
                                             "oauth_config_id", NULL};
static const char *const stdio_used[] = {"command", "args", "envs", NULL};
static const char *const manager_used[] = {"tool_execution_timeout", "max_agent_depth",
                                           "code_mode_binding_level", "code_mode_limits", NULL};
static const char *const limits_used[] = {"wall_ms",      "cpu_s",          "memory_mb",
                                          "output_bytes", "max_concurrent", NULL};
static const char *const server_used[] = {"tokens", NULL};

/* Headers that the transports set themselves; a configured value would contradict them. */
static const char *const reserved_headers[] = {
    "accept",         "content-type",  "content-length",       "host", "transfer-encoding",
    "mcp-session-id", "last-event-id", "mcp-protocol-version", NULL};

/* ---- typed readers --------------------------------------------------------------------------- */

static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static bool has_control_chars(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return true;
    }
    return false;
}

/* A non-empty string without control characters, or NULL (reported when present). */
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
    if (has_control_chars(s)) {
        error_at(ld, key, "must not contain control characters");
        return NULL;
    }
    return s;
}

static void read_int(loader_t *ld, json_t *obj, const char *key, int min, int max, int *out)
{
    json_t *v = field(obj, key);
    if (v == NULL)
        return;
    if (!json_is_integer(v)) {
        error_at(ld, key, "must be an integer, got %s", type_name(v));
        return;
    }
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) {
        error_at(ld, key, "must be between %d and %d, got %lld", min, max, (long long)n);
        return;
    }
    *out = (int)n;
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

/* Resolves "env.NAME" (the value of key in the current object); other strings are returned as
 * they are. NULL when the variable is unset or empty, reported. Never names the value. */
static const char *resolve(loader_t *ld, const char *key, const char *s)
{
    if (strncmp(s, "env.", 4) != 0)
        return s;
    const char *var = s + 4;
    if (var[0] == '\0') {
        error_at(ld, key, "\"env.\" must be followed by the name of an environment variable");
        return NULL;
    }
    const char *env = getenv(var);
    if (env == NULL || env[0] == '\0') {
        error_at(ld, key, "environment variable %s is %s", var, env == NULL ? "not set" : "empty");
        return NULL;
    }
    if (has_control_chars(env)) {
        error_at(ld, key,
                 "environment variable %s contains a control character (a stray "
                 "newline?)",
                 var);
        return NULL;
    }
    return env;
}

/* ---- string arrays --------------------------------------------------------------------------- */

typedef struct strv {
    char **v; /* NULL-terminated once finished */
    size_t n;
} strv_t;

static void strv_add(strv_t *s, const char *value)
{
    s->v = xrealloc(s->v, (s->n + 2) * sizeof(char *));
    s->v[s->n++] = xstrdup(value);
    s->v[s->n] = NULL;
}

/* Never NULL: an empty list is {NULL}. */
static char **strv_finish(strv_t *s)
{
    if (s->v == NULL)
        s->v = xcalloc(1, sizeof(char *));
    return s->v;
}

static void strv_free(char **v, bool wipe)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        if (wipe) {
            volatile char *p = v[i];
            while (*p != '\0')
                *p++ = '\0';
        }
        free(v[i]);
    }
    free(v);
}

/* Reads an array of strings with check(value) deciding each (NULL = fine, else the message).
 * Returns false when the field is absent. */
static bool read_strings(loader_t *ld, json_t *obj, const char *key,
                         const char *(*check)(const char *), strv_t *out)
{
    json_t *arr = field(obj, key);
    if (arr == NULL)
        return false;
    if (!json_is_array(arr)) {
        error_at(ld, key, "must be an array of strings, got %s", type_name(arr));
        return true;
    }
    size_t mark = push_key(ld, key);
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v) {
        size_t im = push_index(ld, i);
        const char *why = json_is_string(v) ? check(json_string_value(v)) : "must be a string";
        if (why != NULL)
            error_at(ld, NULL, "%s", why);
        else
            strv_add(out, json_string_value(v));
        pop(ld, im);
    }
    pop(ld, mark);
    return true;
}

static const char *check_any(const char *s)
{
    return NULL;
}

static const char *check_env_name(const char *s)
{
    bool ok = s[0] != '\0' && !(s[0] >= '0' && s[0] <= '9');
    for (const char *c = s; ok && *c != '\0'; c++)
        ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
             *c == '_';
    return ok ? NULL : "must be the name of an environment variable (letters, digits, '_')";
}

static const char *check_tool_name(const char *s)
{
    if (s[0] == '\0' || has_control_chars(s))
        return "must be a tool name, or \"*\" for every tool";
    return NULL;
}

/* ---- one client: identity, transport --------------------------------------------------------- */

static bool valid_client_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > MAX_CLIENT_NAME)
        return false;
    for (const char *c = name; *c != '\0'; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || *c == '_';
        if (!ok)
            return false;
    }
    return true;
}

static void load_name(loader_t *ld, const config_t *cfg, json_t *cj, config_mcp_client_t *c)
{
    const char *name = read_string(ld, cj, "name");
    if (name == NULL) {
        if (field(cj, "name") == NULL)
            error_at(ld, "name", "required: the client's name (letters, digits, '_', '-')");
        return;
    }
    if (!valid_client_name(name)) {
        error_at(ld, "name",
                 "must be 1 to %d letters, digits, '_' or '-' (it prefixes the "
                 "client's tool names)",
                 MAX_CLIENT_NAME);
        return;
    }
    for (size_t i = 0; i < cfg->n_mcp_clients; i++) {
        if (cfg->mcp_clients[i].name != NULL && strcmp(cfg->mcp_clients[i].name, name) == 0) {
            error_at(ld, "name", "another MCP client is already named \"%s\"", name);
            return;
        }
    }
    c->name = xstrdup(name);
}

static bool load_connection_type(loader_t *ld, json_t *cj, config_mcp_client_t *c)
{
    const char *type = read_string(ld, cj, "connection_type");
    if (type == NULL) {
        if (field(cj, "connection_type") == NULL)
            error_at(ld, "connection_type", "required: \"stdio\", \"http\" or \"sse\"");
        return false;
    }
    if (strcmp(type, "stdio") == 0)
        c->connection_type = CONFIG_MCP_STDIO;
    else if (strcmp(type, "http") == 0)
        c->connection_type = CONFIG_MCP_HTTP;
    else if (strcmp(type, "sse") == 0)
        c->connection_type = CONFIG_MCP_SSE;
    else {
        error_at(ld, "connection_type",
                 "must be \"stdio\", \"http\" (Streamable HTTP) or \"sse\"; gatehouse has no "
                 "other transport");
        return false;
    }
    return true;
}

static void load_stdio(loader_t *ld, json_t *cj, config_mcp_client_t *c)
{
    json_t *sc = field(cj, "stdio_config");
    if (sc == NULL || !json_is_object(sc)) {
        error_at(ld, "stdio_config",
                 sc == NULL ? "required for a stdio client: {\"command\": "
                              "..., \"args\": [...], \"envs\": [...]}"
                            : "must be an object");
        return;
    }
    size_t mark = push_key(ld, "stdio_config");
    check_fields(ld, sc, stdio_used, NULL);

    const char *command = read_string(ld, sc, "command");
    if (command != NULL)
        c->command = xstrdup(command);
    else if (field(sc, "command") == NULL)
        error_at(ld, "command", "required: the program that runs the server");

    strv_t args = {NULL, 0}, envs = {NULL, 0};
    read_strings(ld, sc, "args", check_any, &args);
    read_strings(ld, sc, "envs", check_env_name, &envs);
    c->args = strv_finish(&args);
    c->envs = strv_finish(&envs);

    /* Nothing of the gateway's environment is inherited; a server started through npx, uvx
     * or a shell script fails in confusing ways without PATH. */
    if (command != NULL && strchr(command, '/') == NULL &&
        !in_list((const char *const *)c->envs, "PATH"))
        warn_at(ld, "envs",
                "the server gets no PATH (only the variables listed here are passed "
                "on); servers started through npx or uvx need \"PATH\" and \"HOME\"");
    for (size_t i = 0; c->envs[i] != NULL; i++) {
        if (getenv(c->envs[i]) == NULL)
            warn_at(ld, "envs", "environment variable %s is not set; the server will not see it",
                    c->envs[i]);
    }
    pop(ld, mark);
}

static bool valid_url(const char *url)
{
    size_t scheme = strncasecmp(url, "http://", 7) == 0    ? 7
                    : strncasecmp(url, "https://", 8) == 0 ? 8
                                                           : 0;
    if (scheme == 0 || url[scheme] == '\0' || strchr("/?#", url[scheme]) != NULL)
        return false;
    for (const unsigned char *p = (const unsigned char *)url; *p != '\0'; p++) {
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

static bool valid_header_name(const char *name)
{
    if (name[0] == '\0')
        return false;
    for (const unsigned char *c = (const unsigned char *)name; *c != '\0'; c++) {
        if (*c <= 0x20 || *c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *c) != NULL)
            return false;
    }
    return true;
}

static void load_header(loader_t *ld, const char *name, json_t *value, strv_t *out)
{
    char lower[128];
    size_t n = 0;
    for (; name[n] != '\0' && n + 1 < sizeof(lower); n++)
        lower[n] = (char)((name[n] >= 'A' && name[n] <= 'Z') ? name[n] + 32 : name[n]);
    lower[n] = '\0';

    if (!valid_header_name(name)) {
        error_at(ld, name, "is not a valid HTTP header name");
    } else if (in_list(reserved_headers, lower)) {
        error_at(ld, name, "is set by gatehouse's MCP transport itself; remove it");
    } else if (!json_is_string(value)) {
        error_at(ld, name, "must be a string, got %s", type_name(value));
    } else if (has_control_chars(json_string_value(value))) {
        error_at(ld, name, "must not contain control characters");
    } else {
        const char *v = resolve(ld, name, json_string_value(value));
        if (v == NULL)
            return;
        buf_t line = BUF_INIT;
        buf_appendf(&line, "%s: %s", name, v);
        strv_add(out, buf_cstr(&line));
        volatile char *p = line.data; /* a credential, most likely */
        while (p != NULL && *p != '\0')
            *p++ = '\0';
        buf_free(&line);
    }
}

static void load_headers(loader_t *ld, json_t *cj, config_mcp_client_t *c)
{
    strv_t lines = {NULL, 0};
    json_t *headers = field(cj, "headers");
    if (headers != NULL && !json_is_object(headers)) {
        error_at(ld, "headers", "must be an object of header names and values, got %s",
                 type_name(headers));
    } else if (headers != NULL) {
        size_t mark = push_key(ld, "headers");
        const char *name;
        json_t *value;
        json_object_foreach (headers, name, value)
            load_header(ld, name, value, &lines);
        pop(ld, mark);
    }
    c->headers = strv_finish(&lines);
}

static void load_remote(loader_t *ld, json_t *cj, config_mcp_client_t *c)
{
    const char *written = read_string(ld, cj, "connection_string");
    if (written == NULL) {
        if (field(cj, "connection_string") == NULL)
            error_at(ld, "connection_string",
                     "required for an http or sse client: the server's URL, or \"env.NAME\"");
    } else {
        const char *url = resolve(ld, "connection_string", written);
        if (url != NULL && !valid_url(url))
            error_at(ld, "connection_string", "must be an http:// or https:// URL with a host%s",
                     url != written ? " (the value of the environment variable)" : "");
        else if (url != NULL)
            c->url = xstrdup(url);
    }
    load_headers(ld, cj, c);
}

/* Fields that belong to the other kind of transport are ignored, visibly. */
static void warn_misplaced(loader_t *ld, json_t *cj, const config_mcp_client_t *c)
{
    bool stdio = c->connection_type == CONFIG_MCP_STDIO;
    if (stdio && field(cj, "connection_string") != NULL)
        warn_at(ld, "connection_string", "ignored: a stdio client runs a command");
    if (stdio && field(cj, "headers") != NULL)
        warn_at(ld, "headers", "ignored: a stdio client sends no HTTP headers");
    if (!stdio && field(cj, "stdio_config") != NULL)
        warn_at(ld, "stdio_config", "ignored: an %s client connects to connection_string",
                c->connection_type == CONFIG_MCP_HTTP ? "http" : "sse");
}

static void load_auth_type(loader_t *ld, json_t *cj)
{
    const char *auth = read_string(ld, cj, "auth_type");
    if (auth != NULL && strcmp(auth, "headers") != 0 && strcmp(auth, "none") != 0)
        warn_at(ld, "auth_type",
                "gatehouse authenticates to MCP servers only with the "
                "configured headers; this client connects without OAuth");
}

/* ---- one client: tool lists ------------------------------------------------------------------ */

static bool is_all(char *const *v)
{
    return v != NULL && v[0] != NULL && strcmp(v[0], "*") == 0 && v[1] == NULL;
}

/* Reads a tool list: ["*"] collapses to {"*"}, duplicates go. Returns false when absent. */
static bool load_tool_list(loader_t *ld, json_t *cj, const char *key, char ***out)
{
    strv_t raw = {NULL, 0}, list = {NULL, 0};
    bool present = read_strings(ld, cj, key, check_tool_name, &raw);
    bool star = in_list((const char *const *)raw.v, "*");
    if (star && raw.n > 1)
        warn_at(ld, key, "\"*\" already allows every tool; the other names change nothing");
    if (star)
        strv_add(&list, "*");
    for (size_t i = 0; !star && i < raw.n; i++) {
        if (!in_list((const char *const *)list.v, raw.v[i]))
            strv_add(&list, raw.v[i]);
    }
    strv_free(raw.v, false);
    *out = strv_finish(&list);
    return present;
}

/* tools_to_auto_execute may only name executable tools; the rest is dropped with a warning. */
static void restrict_auto(loader_t *ld, config_mcp_client_t *c)
{
    char **exec = c->tools_to_execute, **autox = c->tools_to_auto_execute;
    if (is_all(exec) || autox[0] == NULL)
        return;
    if (is_all(autox)) {
        warn_at(ld, "tools_to_auto_execute",
                "[\"*\"] auto-executes only what tools_to_execute allows");
        strv_free(autox, false);
        strv_t copy = {NULL, 0};
        for (size_t i = 0; exec[i] != NULL; i++)
            strv_add(&copy, exec[i]);
        c->tools_to_auto_execute = strv_finish(&copy);
        return;
    }
    strv_t kept = {NULL, 0};
    for (size_t i = 0; autox[i] != NULL; i++) {
        if (in_list((const char *const *)exec, autox[i]))
            strv_add(&kept, autox[i]);
        else
            warn_at(ld, "tools_to_auto_execute",
                    "\"%s\" is not in tools_to_execute, so it can never run; ignored", autox[i]);
    }
    strv_free(autox, false);
    c->tools_to_auto_execute = strv_finish(&kept);
}

static void load_tools(loader_t *ld, json_t *cj, config_mcp_client_t *c)
{
    if (!load_tool_list(ld, cj, "tools_to_execute", &c->tools_to_execute))
        warn_at(ld, "tools_to_execute",
                "absent: no tool of this client is offered (deny by "
                "default, as in Bifrost); write [\"*\"] for every tool");
    load_tool_list(ld, cj, "tools_to_auto_execute", &c->tools_to_auto_execute);
    restrict_auto(ld, c);
}

/* ---- clients --------------------------------------------------------------------------------- */

static void client_free(config_mcp_client_t *c)
{
    free(c->name);
    free(c->command);
    strv_free(c->args, false);
    strv_free(c->envs, false);
    free(c->url);
    strv_free(c->headers, true);
    strv_free(c->tools_to_execute, false);
    strv_free(c->tools_to_auto_execute, false);
    memset(c, 0, sizeof(*c));
}

/* Arrays a client's transport did not fill stay valid, empty lists. */
static void fill_empty(config_mcp_client_t *c)
{
    char ***lists[] = {&c->args, &c->envs, &c->headers, &c->tools_to_execute,
                       &c->tools_to_auto_execute};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        if (*lists[i] == NULL)
            *lists[i] = xcalloc(1, sizeof(char *));
    }
}

static void load_client(loader_t *ld, config_t *cfg, json_t *cj)
{
    if (!json_is_object(cj)) {
        error_at(ld, NULL, "must be an object, got %s", type_name(cj));
        return;
    }
    check_fields(ld, cj, client_used, client_ignored);

    config_mcp_client_t c;
    memset(&c, 0, sizeof(c));
    load_name(ld, cfg, cj, &c);
    if (load_connection_type(ld, cj, &c)) {
        if (c.connection_type == CONFIG_MCP_STDIO)
            load_stdio(ld, cj, &c);
        else
            load_remote(ld, cj, &c);
        warn_misplaced(ld, cj, &c);
    }
    load_auth_type(ld, cj);
    load_tools(ld, cj, &c);
    read_bool(ld, cj, "is_code_mode_client", &c.is_code_mode_client);
    fill_empty(&c);

    /* Kept even when something was wrong (the load fails then anyway), so that the duplicate
     * name check sees every name. */
    cfg->mcp_clients =
        xrealloc(cfg->mcp_clients, (cfg->n_mcp_clients + 1) * sizeof(cfg->mcp_clients[0]));
    cfg->mcp_clients[cfg->n_mcp_clients++] = c;
}

static void load_clients(loader_t *ld, config_t *cfg, json_t *mcp)
{
    json_t *list = field(mcp, "client_configs");
    if (list == NULL)
        return;
    if (!json_is_array(list)) {
        error_at(ld, "client_configs", "must be an array of MCP clients, got %s", type_name(list));
        return;
    }
    size_t mark = push_key(ld, "client_configs");
    size_t i;
    json_t *cj;
    json_array_foreach (list, i, cj) {
        size_t im = push_index(ld, i);
        load_client(ld, cfg, cj);
        pop(ld, im);
    }
    pop(ld, mark);
}

/* ---- tool manager and /mcp server ------------------------------------------------------------ */

static void load_code_mode_limits(loader_t *ld, config_t *cfg, json_t *tm)
{
    json_t *lim = field(tm, "code_mode_limits");
    if (lim == NULL)
        return;
    if (!json_is_object(lim)) {
        error_at(ld, "code_mode_limits", "must be an object, got %s", type_name(lim));
        return;
    }
    size_t mark = push_key(ld, "code_mode_limits");
    check_fields(ld, lim, limits_used, NULL);
    read_int(ld, lim, "wall_ms", MIN_CM_WALL_MS, MAX_CM_WALL_MS, &cfg->mcp_code_mode_wall_ms);
    read_int(ld, lim, "cpu_s", 1, MAX_CM_CPU_S, &cfg->mcp_code_mode_cpu_s);
    read_int(ld, lim, "memory_mb", MIN_CM_MEMORY_MB, MAX_CM_MEMORY_MB,
             &cfg->mcp_code_mode_memory_mb);
    read_int(ld, lim, "output_bytes", MIN_CM_OUTPUT_BYTES, MAX_CM_OUTPUT_BYTES,
             &cfg->mcp_code_mode_output_bytes);
    read_int(ld, lim, "max_concurrent", 1, MAX_CM_CONCURRENT, &cfg->mcp_code_mode_max_concurrent);
    pop(ld, mark);
}

static void load_manager(loader_t *ld, config_t *cfg, json_t *mcp)
{
    json_t *tm = field(mcp, "tool_manager_config");
    if (tm == NULL)
        return;
    if (!json_is_object(tm)) {
        error_at(ld, "tool_manager_config", "must be an object, got %s", type_name(tm));
        return;
    }
    size_t mark = push_key(ld, "tool_manager_config");
    check_fields(ld, tm, manager_used, NULL);
    read_int(ld, tm, "tool_execution_timeout", 1, MAX_TOOL_TIMEOUT_S,
             &cfg->mcp_tool_execution_timeout_s);
    read_int(ld, tm, "max_agent_depth", 1, MAX_AGENT_DEPTH, &cfg->mcp_max_agent_depth);

    const char *binding = read_string(ld, tm, "code_mode_binding_level");
    if (binding != NULL && strcmp(binding, "server") == 0)
        cfg->mcp_code_mode_binding = CONFIG_MCP_BINDING_SERVER;
    else if (binding != NULL && strcmp(binding, "tool") == 0)
        cfg->mcp_code_mode_binding = CONFIG_MCP_BINDING_TOOL;
    else if (binding != NULL)
        error_at(ld, "code_mode_binding_level", "must be \"server\" or \"tool\"");
    load_code_mode_limits(ld, cfg, tm);
    pop(ld, mark);
}

static void load_token(loader_t *ld, json_t *v, strv_t *out)
{
    if (!json_is_string(v) || json_string_length(v) == 0) {
        error_at(ld, NULL, "must be a token string, or \"env.NAME\"");
        return;
    }
    const char *token = resolve(ld, NULL, json_string_value(v));
    if (token == NULL)
        return;
    if (strlen(token) < MIN_TOKEN_LEN || has_control_chars(token)) {
        error_at(ld, NULL, "must be at least %d characters without control characters",
                 MIN_TOKEN_LEN);
        return;
    }
    strv_add(out, token);
}

static void load_server(loader_t *ld, config_t *cfg, json_t *mcp)
{
    json_t *server = field(mcp, "server");
    if (server == NULL)
        return;
    if (!json_is_object(server)) {
        error_at(ld, "server", "must be an object, got %s", type_name(server));
        return;
    }
    size_t mark = push_key(ld, "server");
    check_fields(ld, server, server_used, NULL);

    json_t *tokens = field(server, "tokens");
    strv_t list = {NULL, 0};
    if (tokens != NULL && !json_is_array(tokens)) {
        error_at(ld, "tokens", "must be an array of bearer tokens, got %s", type_name(tokens));
    } else if (tokens != NULL) {
        size_t tm = push_key(ld, "tokens");
        size_t i;
        json_t *v;
        json_array_foreach (tokens, i, v) {
            size_t im = push_index(ld, i);
            load_token(ld, v, &list);
            pop(ld, im);
        }
        pop(ld, tm);
    }
    cfg->mcp_server_tokens = list.v; /* NULL when none */
    cfg->n_mcp_server_tokens = list.n;
    pop(ld, mark);
}

/* ---- entry points ---------------------------------------------------------------------------- */

void config_mcp_load(json_t *root, config_t *cfg, config_report_t *report)
{
    cfg->mcp_tool_execution_timeout_s = CONFIG_MCP_DEFAULT_TOOL_TIMEOUT_S;
    cfg->mcp_max_agent_depth = CONFIG_MCP_DEFAULT_MAX_AGENT_DEPTH;
    cfg->mcp_code_mode_binding = CONFIG_MCP_BINDING_SERVER;

    loader_t ld = {report, BUF_INIT};
    json_t *mcp = field(root, "mcp");
    if (mcp != NULL && !json_is_object(mcp)) {
        error_at(&ld, "mcp", "must be an object, got %s", type_name(mcp));
    } else if (mcp != NULL) {
        size_t mark = push_key(&ld, "mcp");
        check_fields(&ld, mcp, mcp_used, NULL);
        load_clients(&ld, cfg, mcp);
        load_manager(&ld, cfg, mcp);
        load_server(&ld, cfg, mcp);
        pop(&ld, mark);
    }
    buf_free(&ld.path);
}

void config_mcp_free(config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_mcp_clients; i++)
        client_free(&cfg->mcp_clients[i]);
    free(cfg->mcp_clients);
    cfg->mcp_clients = NULL;
    cfg->n_mcp_clients = 0;
    strv_free(cfg->mcp_server_tokens, true);
    cfg->mcp_server_tokens = NULL;
    cfg->n_mcp_server_tokens = 0;
}
