/*
 * tool_execute.c - POST /v1/mcp/tool/execute (contract in tool_execute.h).
 *
 * One exec_t lives for one request, on the worker that received it:
 *
 *   parse the body (chat or Responses shape) and the arguments
 *     -> look the exposed name up in the catalog; check the request's filter headers and the
 *        client's state
 *     -> queue the call on the tool hub; the answer comes back on this worker's loop
 *     -> map the CallToolResult (mcp/content.h) or the error to the answer
 *
 * Code Mode's meta-tools (listToolFiles, readToolFile, getToolDocs, executeToolCode) are
 * accepted by name too, so that a client in agent mode can run the executeToolCode calls
 * gatehouse left to it (docs/code-mode.md): the request's filter headers decide which
 * code-mode tools the meta-tools see, and the answer is the meta-tool's text, a failed script
 * or a wrong call being a tool error (200, x-gatehouse-tool-error: true).
 *
 * The request is finished exactly once, by exec_end, which writes the access line first: a
 * finished request whose client has gone is freed at once. When the client disconnects while
 * the call runs, the hub call is cancelled (the server gets notifications/cancelled and our
 * callback is guaranteed not to run) and the request ends with 499.
 */
#include "gateway/tool_execute.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codemode/metatools.h"
#include "dialects/openai.h"
#include "gateway/handlers.h"
#include "gateway/inject.h"
#include "mcp/content.h"
#include "mcp/filter.h"
#include "gateway/tool_log.h"
#include "mcp/hub.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

typedef struct exec {
    http_request_t *http;
    gateway_worker_t *worker;
    char rid[GATEWAY_REQUEST_ID_MAX];
    double started_at;
    bool responses;         /* ?format=responses: Responses API shapes in and out */
    char *call_id;          /* the tool call's id (chat "id", Responses "call_id") */
    char *exposed;          /* the tool's exposed name */
    char *client;           /* its MCP client */
    char *tool;             /* its name on the server */
    char *arguments;        /* as sent (JSON text) for the request log, or NULL */
    bool log_content;       /* arguments and result go to the request log */
    double started_unix;    /* wall clock at arrival */
    double call_s;          /* how long the tool call took, for the request's row */
    const char *error_type; /* the error answered, for the request's row; NULL on 200 */
    char error_message[512];
    mcp_hub_call_t *call;            /* while the hub runs it */
    codemode_binding_level_t level;  /* Code Mode's stub tree, from the configuration */
    codemode_meta_t meta;            /* the meta-tool asked for, or CODEMODE_META_NONE */
    codemode_meta_call_t *meta_call; /* while it runs */
} exec_t;

/* A failure found while reading the request: status, message and the error's param and code. */
typedef struct exec_error {
    int status;
    char message[512];
    const char *param;
    const char *code;
} exec_error_t;

static int set_error(exec_error_t *err, int status, const char *param, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int set_error(exec_error_t *err, int status, const char *param, const char *code,
                     const char *fmt, ...)
{
    err->status = status;
    err->param = param;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return status;
}

/* ---- ending the request --------------------------------------------------------------------- */

static void exec_free(exec_t *e)
{
    free(e->call_id);
    free(e->exposed);
    free(e->client);
    free(e->tool);
    free(e->arguments);
    free(e);
}

/* The request's row in the request log (tool_log.h); its tool call has a row of its own. */
static void report_request(exec_t *e, int status, const char *body, size_t len)
{
    double latency = gateway_now() - e->started_at;
    tool_log_request_t r = {
        .http = e->http,
        .request_id = e->rid,
        .dialect = "openai",
        .started_unix = e->started_unix,
        .latency_s = latency,
        .ttft_s = status == 499 ? -1 : latency,
        .upstream_s = e->call_s,
        .status = status,
        .error_type = e->error_type,
        .error_message = e->error_type != NULL ? e->error_message : NULL,
        .log_content = e->log_content,
        .response_body = body,
        .response_len = len,
    };
    tool_log_request(&r);
}

/* Writes the access line and the request's row, answers and frees everything. */
static void exec_end(exec_t *e, int status, const char *body, size_t len, bool tool_error)
{
    gateway_access_log(e->http, e->rid, status, NULL, e->started_at, 0, 0);
    report_request(e, status, body, len);
    http_response_header(e->http, "x-request-id", e->rid);
    if (e->client != NULL)
        http_response_header(e->http, "x-gatehouse-mcp-client", e->client);
    if (status == 200)
        http_response_header(e->http, "x-gatehouse-tool-error", tool_error ? "true" : "false");
    http_respond(e->http, status, "application/json", body, len);
    exec_free(e);
}

static void exec_fail(exec_t *e, const exec_error_t *err)
{
    log_info(e->rid, "tool execution %s answered %d: %s", e->exposed ? e->exposed : "-",
             err->status, err->message);
    e->error_type = dialect_openai_error_type(err->status);
    snprintf(e->error_message, sizeof(e->error_message), "%s", err->message);
    buf_t body = BUF_INIT;
    dialect_openai_error(&body, err->message, dialect_openai_error_type(err->status), err->param,
                         err->code);
    exec_end(e, err->status, body.data, body.len, false);
    buf_free(&body);
}

/* ---- reading the request -------------------------------------------------------------------- */

/* True when the query string asks for the Responses shapes; sets err for an unknown format. */
static int read_format(exec_t *e, exec_error_t *err)
{
    const char *q = http_request_query(e->http);
    while (q != NULL && *q != '\0') {
        const char *end = strchr(q, '&');
        size_t n = end != NULL ? (size_t)(end - q) : strlen(q);
        if (n >= 7 && strncmp(q, "format=", 7) == 0) {
            const char *v = q + 7;
            size_t vn = n - 7;
            if (vn == 9 && strncmp(v, "responses", 9) == 0)
                e->responses = true;
            else if (!(vn == 4 && strncmp(v, "chat", 4) == 0))
                return set_error(err, 400, "format", "invalid_value",
                                 "unknown format %.*s: use format=chat or format=responses",
                                 (int)(vn > 40 ? 40 : vn), v);
        }
        q = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

/* Turns "arguments" (absent, a JSON string of an object, or an object) into an object (new
 * reference in *out). */
static int read_arguments(const json_t *v, const char *param, json_t **out, exec_error_t *err)
{
    if (v == NULL || json_is_null(v)) {
        *out = json_object();
        return 0;
    }
    if (json_is_object(v)) {
        *out = json_incref((json_t *)v);
        return 0;
    }
    if (!json_is_string(v))
        return set_error(err, 400, param, "invalid_type",
                         "%s must be a JSON object, as a string or an object", param);

    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    if (i == len) { /* models send "" for a tool without parameters */
        *out = json_object();
        return 0;
    }
    json_error_t jerr;
    json_t *parsed = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
    if (parsed == NULL)
        return set_error(err, 400, param, "invalid_json",
                         "%s is not valid JSON (line %d, column %d): %s", param, jerr.line,
                         jerr.column, jerr.text);
    if (!json_is_object(parsed)) {
        json_decref(parsed);
        return set_error(err, 400, param, "invalid_type", "%s must encode a JSON object", param);
    }
    *out = parsed;
    return 0;
}

static const char *str_field(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL && *s != '\0' ? s : NULL;
}

/* Reads the tool call from the body; sets e->call_id and e->exposed and *args. */
static int read_call(exec_t *e, const json_t *root, json_t **args, exec_error_t *err)
{
    if (!json_is_object(root))
        return set_error(err, 400, NULL, "invalid_type", "the body must be a JSON object");

    const char *want_type = e->responses ? "function_call" : "function";
    const json_t *type = json_object_get(root, "type");
    if (type != NULL && !(json_is_string(type) && strcmp(json_string_value(type), want_type) == 0))
        return set_error(err, 400, "type", "invalid_value", "type must be \"%s\"", want_type);

    const char *id_field = e->responses ? "call_id" : "id";
    const char *id = str_field(root, id_field);
    if (id == NULL)
        return set_error(err, 400, id_field, "missing_field", "%s is required (a non-empty string)",
                         id_field);

    const json_t *fn = root;
    const char *name_param = "name";
    const char *args_param = "arguments";
    if (!e->responses) {
        fn = json_object_get(root, "function");
        name_param = "function.name";
        args_param = "function.arguments";
        if (!json_is_object(fn))
            return set_error(err, 400, "function", "missing_field",
                             "function is required: {\"name\", \"arguments\"}");
    }
    const char *name = str_field(fn, "name");
    if (name == NULL)
        return set_error(err, 400, name_param, "missing_field",
                         "%s is required (the tool's exposed name)", name_param);

    e->call_id = xstrdup(id);
    e->exposed = xstrdup(name);
    return read_arguments(json_object_get(fn, "arguments"), args_param, args, err);
}

static const char *header_of(void *arg, const char *name)
{
    return http_request_header(arg, name);
}

/* Finds the tool and checks that this request may run it now; sets e->client and e->tool. */
static int resolve_tool(exec_t *e, exec_error_t *err)
{
    mcp_catalog_t *cat = mcp_hub_catalog();
    const mcp_tool_t *t = mcp_catalog_find(cat, e->exposed);
    mcp_filter_t filter = MCP_FILTER_INIT;
    mcp_filter_from_headers(&filter, header_of, e->http);
    const char *param = e->responses ? "name" : "function.name";
    int rc = 0;
    if (t == NULL) {
        rc = set_error(err, 404, param, "tool_not_found", "no MCP tool named %.200s", e->exposed);
    } else if (!mcp_filter_allows_tool(&filter, t)) {
        rc = set_error(err, 403, param, "tool_not_allowed",
                       "tool %.200s is not allowed by this request's MCP filter headers",
                       e->exposed);
    } else if (!t->available) {
        rc = set_error(err, 503, NULL, "mcp_client_unavailable",
                       "MCP client %.200s is not connected; tool %.200s cannot run now", t->client,
                       e->exposed);
    }
    if (t != NULL) {
        e->client = xstrdup(t->client);
        e->tool = xstrdup(t->name);
    }
    mcp_filter_free(&filter);
    mcp_catalog_release(cat);
    return rc;
}

/* ---- what the call leaves behind ------------------------------------------------------------- */

/* The tool call's metrics and request-log row (source "client"); result or error, not both. */
static void record_call(exec_t *e, const json_t *result, const char *error, double duration_s)
{
    e->call_s = duration_s;
    tool_log_call_t row = {
        .request_id = e->rid,
        .source = "client",
        .mcp_client = e->client,
        .tool = e->tool,
        .started_unix = e->started_unix,
        .duration_s = duration_s,
        .result = result,
        .error = error,
        .arguments = e->arguments,
        .log_content = e->log_content,
    };
    tool_log_call(&row);
}

/* ---- the answer ----------------------------------------------------------------------------- */

static void answer_error(exec_t *e, const mcp_error_t *me)
{
    exec_error_t err;
    switch (me->code) {
    case MCP_ERR_TIMEOUT:
        set_error(&err, 504, NULL, "mcp_tool_timeout", "%s", me->message);
        break;
    case MCP_ERR_UNAVAILABLE:
        set_error(&err, 503, NULL, "mcp_client_unavailable", "%s", me->message);
        break;
    case MCP_ERR_TRANSPORT:
        set_error(&err, 502, NULL, "mcp_transport_error", "%s", me->message);
        break;
    default:
        set_error(&err, 502, NULL, "mcp_server_error",
                  "MCP server %.100s answered tool %.100s with error %d: %.250s", e->client,
                  e->tool, me->code, me->message);
        break;
    }
    exec_fail(e, &err);
}

static void on_done(void *arg, const mcp_hub_result_t *res)
{
    exec_t *e = arg;
    e->call = NULL;
    record_call(e, res->result, res->err != NULL ? res->err->message : NULL, res->duration_s);
    if (res->err != NULL) {
        answer_error(e, res->err);
        return;
    }
    bool is_error = false;
    json_t *msg = e->responses ? mcp_content_responses_output(res->result, e->call_id, &is_error)
                               : mcp_content_tool_message(res->result, e->call_id, &is_error);
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (is_error)
        log_info(e->rid, "tool %s reported an error; passed on as its result", e->exposed);
    exec_end(e, 200, body, strlen(body), is_error);
    free(body);
}

static void on_client_close(http_request_t *req, void *arg)
{
    exec_t *e = arg;
    log_info(e->rid, "client disconnected; cancelling tool call %s", e->exposed);
    mcp_hub_cancel(e->call);
    record_call(e, NULL, "cancelled: the client disconnected", gateway_now() - e->started_at);
    e->call = NULL;
    e->error_type = dialect_openai_error_type(499);
    snprintf(e->error_message, sizeof(e->error_message), "the client disconnected");
    exec_end(e, 499, "", 0, false);
}

/* ---- Code Mode's meta-tools ------------------------------------------------------------------ */

static void on_meta_done(void *arg, const char *text, bool is_error)
{
    exec_t *e = arg;
    e->meta_call = NULL;
    json_t *msg = e->responses ? json_pack("{s:s, s:s, s:s}", "type", "function_call_output",
                                           "call_id", e->call_id, "output", text)
                               : json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id",
                                           e->call_id, "content", text);
    if (msg == NULL) {
        exec_error_t err;
        set_error(&err, 500, NULL, "internal_error", "%s answered text that is not UTF-8",
                  e->exposed);
        exec_fail(e, &err);
        return;
    }
    char *body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    log_info(e->rid, "%s answered in %.0f ms%s", e->exposed,
             (gateway_now() - e->started_at) * 1000.0, is_error ? " (an error for the model)" : "");
    exec_end(e, 200, body, strlen(body), is_error);
    free(body);
}

static void on_meta_close(http_request_t *req, void *arg)
{
    exec_t *e = arg;
    log_info(e->rid, "client disconnected; cancelling %s", e->exposed);
    codemode_meta_cancel(e->meta_call);
    e->meta_call = NULL;
    exec_end(e, 499, "", 0, false);
}

/* The state of client name in the catalog's client list, or NULL; *error its last error. */
static const char *client_state(const mcp_catalog_t *cat, const char *name, const char **error)
{
    size_t i;
    const json_t *c;
    *error = NULL;
    json_array_foreach (cat != NULL ? cat->clients : NULL, i, c) {
        const char *cname = json_string_value(json_object_get(c, "name"));
        if (cname == NULL || strcmp(cname, name) != 0)
            continue;
        *error = json_string_value(json_object_get(c, "error"));
        return json_string_value(json_object_get(c, "state"));
    }
    return NULL;
}

/* Why a request has no code-mode tool, for the error a user reads first: no code-mode client
 * configured, one not connected (with its state and last error), or all filtered out. */
static void why_no_codemode(const mcp_catalog_t *cat, buf_t *out)
{
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    const config_t *cfg = snap->cfg;
    size_t n_code_mode = 0, n_down = 0;
    for (size_t i = 0; i < cfg->n_mcp_clients; i++) {
        const config_mcp_client_t *c = &cfg->mcp_clients[i];
        if (!c->is_code_mode_client)
            continue;
        n_code_mode++;
        const char *error;
        const char *state = client_state(cat, c->name, &error);
        if (state != NULL && strcmp(state, "ready") == 0)
            continue;
        buf_appendf(out, "%sMCP client %s is not connected (%s%s%s)", n_down++ > 0 ? "; " : "",
                    c->name, state != NULL ? state : "unknown",
                    error != NULL ? "; last error: " : "", error != NULL ? error : "");
    }
    gateway_snapshot_release(snap);
    if (n_code_mode == 0)
        buf_appends(out, "no MCP client of the configuration has \"is_code_mode_client\": true");
    else if (n_down > 0)
        buf_appends(out, "; gatehouse's log says why");
    else
        buf_appends(out, "the code-mode MCP clients are connected, but their tools_to_execute or "
                         "this request's x-gatehouse-mcp-include-clients / -tools headers leave "
                         "none of their tools");
}

/* Runs a meta-tool with the code-mode tools this request may use (args stolen). */
static int start_meta(exec_t *e, json_t *args, exec_error_t *err)
{
    mcp_catalog_t *cat = mcp_hub_catalog();
    codemode_bindings_t *b = inject_codemode_bindings(cat, e->http);
    if (b == NULL) {
        buf_t why = BUF_INIT;
        why_no_codemode(cat, &why);
        if (cat != NULL)
            mcp_catalog_release(cat);
        json_decref(args);
        set_error(err, 404, e->responses ? "name" : "function.name", "tool_not_found",
                  "%s: no Code Mode tool is available to this request: %s", e->exposed,
                  buf_cstr(&why));
        buf_free(&why);
        return err->status;
    }
    if (cat != NULL)
        mcp_catalog_release(cat);
    codemode_meta_opts_t o = {
        .bindings = b,
        .level = e->level,
        .request_id = e->rid,
        .log_content = e->log_content,
    };
    log_debug(e->rid, "running Code Mode's %s", e->exposed);
    e->meta_call =
        codemode_meta_call(gateway_worker_base(e->worker), e->meta, args, &o, on_meta_done, e);
    codemode_bindings_release(b); /* an execution holds its own reference */
    json_decref(args);
    http_request_on_close(e->http, on_meta_close, e);
    return 0;
}

/* ---- entry ---------------------------------------------------------------------------------- */

static int start(exec_t *e, exec_error_t *err)
{
    if (read_format(e, err) != 0)
        return err->status;

    size_t len;
    const char *body = http_request_body(e->http, &len);
    json_error_t jerr;
    json_t *root = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return set_error(err, 400, NULL, "invalid_json",
                         "the body is not valid JSON (line %d, column %d): %s", jerr.line,
                         jerr.column, jerr.text);

    json_t *args = NULL;
    int rc = read_call(e, root, &args, err);
    json_decref(root);
    if (rc == 0 && (e->meta = codemode_meta_kind(e->exposed)) != CODEMODE_META_NONE)
        return start_meta(e, args, err);
    if (rc == 0)
        rc = resolve_tool(e, err);
    if (rc != 0) {
        json_decref(args);
        return rc;
    }

    log_debug(e->rid, "running tool %s (%s of MCP client %s)", e->exposed, e->tool, e->client);
    if (e->log_content)
        e->arguments = json_dumps(args, JSON_COMPACT);
    e->call = mcp_hub_call_tool(gateway_worker_base(e->worker), e->client, e->tool, args, e->rid,
                                on_done, e);
    http_request_on_close(e->http, on_client_close, e);
    return 0;
}

void tool_execute_handle(http_request_t *req, gateway_worker_t *w, const char *request_id)
{
    exec_t *e = xcalloc(1, sizeof(*e));
    e->meta = CODEMODE_META_NONE;
    e->http = req;
    e->worker = w;
    e->started_at = gateway_now();
    e->started_unix = gateway_wall_now();
    snprintf(e->rid, sizeof(e->rid), "%s", request_id);

    /* Arguments and results go to the request log under the same switches as chat bodies. */
    e->log_content = tool_log_content_allowed(req);
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    e->level = inject_binding_level(snap->cfg);
    gateway_snapshot_release(snap);

    exec_error_t err;
    if (start(e, &err) != 0)
        exec_fail(e, &err);
}
