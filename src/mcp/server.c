/*
 * server.c - the protocol side of the /mcp server: version negotiation, the methods answered
 * from the catalog, the forwards to upstream servers and the change digest (contract in
 * server.h), and the small checks of the HTTP transport (auth, Origin, Accept). The session
 * table lives in server_session.c.
 *
 * Every answer is built from the catalog snapshot the caller holds for the duration of one
 * POST. Nothing here keeps a reference into the snapshot: items are deep-copied into the
 * response, because a snapshot's trees are shared by every worker thread and jansson's
 * reference counts are not theirs to touch.
 *
 * Pagination: the lists are served in pages of ctx->page_size items with an opaque cursor
 * ("o" and the offset of the next item). Pages are cut from the snapshot current at each
 * request, so a list that changes between pages may repeat or skip an item; the client gets
 * a list_changed notification for that change and lists again, as the specification intends.
 */
#include "mcp/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mcp/filter.h"
#include "mcp/naming.h"
#include "util/alloc.h"
#include "util/buf.h"

#ifndef GATEHOUSE_VERSION
#define GATEHOUSE_VERSION "0.0.0"
#endif

#define DEFAULT_PAGE_SIZE 100
#define MCP_ERR_RESOURCE_NOT_FOUND (-32002) /* the specification's code for resources/read */

/* Newest first: the answer to a client asking for a version we do not speak is the first. */
static const char *const supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

/* ---- protocol versions ---------------------------------------------------------------------- */

bool mcp_server_version_supported(const char *version)
{
    for (size_t i = 0; version != NULL && supported_versions[i] != NULL; i++) {
        if (strcmp(version, supported_versions[i]) == 0)
            return true;
    }
    return false;
}

const char *mcp_server_negotiate_version(const char *requested)
{
    for (size_t i = 0; requested != NULL && supported_versions[i] != NULL; i++) {
        if (strcmp(requested, supported_versions[i]) == 0)
            return supported_versions[i];
    }
    return supported_versions[0];
}

/* ---- small helpers -------------------------------------------------------------------------- */

static json_t *invalid_params(const json_t *id, const char *fmt, const char *arg)
{
    char msg[300];
    snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
    return jsonrpc_error(id, JSONRPC_INVALID_PARAMS, msg, NULL);
}

static void reply(mcp_server_outcome_t *out, json_t *response)
{
    out->kind = MCP_SERVER_REPLY;
    out->reply = response;
}

/* A string member of params, or NULL (params may be NULL or not an object). */
static const char *param_string(const json_t *params, const char *name)
{
    return json_string_value(json_object_get(params, name));
}

/* Tools a /mcp client may see: allowed by tools_to_execute, of a connected client, not
 * served through Code Mode (its clients get meta-tools there instead; not listed here yet). */
static bool tool_visible(const mcp_tool_t *t)
{
    return t->executable && t->available && !t->code_mode;
}

/* The same, narrowed by the request's filter headers (filter.h). */
static bool tool_allowed(const mcp_server_ctx_t *ctx, const mcp_tool_t *t)
{
    return tool_visible(t) && (ctx->filter == NULL || mcp_filter_allows_tool(ctx->filter, t));
}

/* A resource, template or prompt item's client may be seen under the request's filter. */
static bool item_allowed(const mcp_server_ctx_t *ctx, const json_t *item)
{
    if (ctx->filter == NULL)
        return true;
    const char *client =
        json_string_value(json_object_get(json_object_get(item, "_meta"), "gatehouse/client"));
    return client != NULL && mcp_filter_allows_client(ctx->filter, client);
}

/* The client's own view of a tool: the server's definition under its exposed name. */
static json_t *tool_listing(const mcp_tool_t *t)
{
    json_t *def = json_is_object(t->def) ? json_deep_copy(t->def) : json_object();
    json_object_set_new(def, "name", json_string(t->exposed));
    if (!json_is_object(json_object_get(def, "inputSchema")))
        json_object_set_new(def, "inputSchema", json_pack("{s:s}", "type", "object"));
    return def;
}

/* ---- pagination ----------------------------------------------------------------------------- */

/* Reads params.cursor into *offset (0 when absent). False for a cursor we never issued. */
static bool cursor_offset(const json_t *params, size_t *offset)
{
    json_t *cursor = json_object_get(params, "cursor");
    *offset = 0;
    if (cursor == NULL || json_is_null(cursor))
        return true;
    const char *text = json_string_value(cursor);
    if (text == NULL || text[0] != 'o' || text[1] < '0' || text[1] > '9' || strlen(text) > 12)
        return false;
    char *end;
    unsigned long long v = strtoull(text + 1, &end, 10);
    if (*end != '\0')
        return false;
    *offset = (size_t)v;
    return true;
}

/* Adds nextCursor to result: the next page starts at offset next. */
static void set_next_cursor(json_t *result, size_t next)
{
    char cursor[32];
    snprintf(cursor, sizeof(cursor), "o%zu", next);
    json_object_set_new(result, "nextCursor", json_string(cursor));
}

static size_t page_size(const mcp_server_ctx_t *ctx)
{
    return ctx->page_size > 0 ? ctx->page_size : DEFAULT_PAGE_SIZE;
}

/* One page of a catalog array (resources, templates, prompts) under field. The offset counts
 * the items the request may see. */
static json_t *array_page(const mcp_server_ctx_t *ctx, const json_t *items, size_t offset,
                          const char *field)
{
    size_t n = json_array_size(items);
    size_t seen = 0;
    size_t i = 0;
    json_t *list = json_array();
    for (; i < n && json_array_size(list) < page_size(ctx); i++) {
        const json_t *item = json_array_get(items, i);
        if (item_allowed(ctx, item) && seen++ >= offset)
            json_array_append_new(list, json_deep_copy(item));
    }

    bool more = false;
    for (; i < n && !more; i++)
        more = item_allowed(ctx, json_array_get(items, i));
    json_t *result = json_object();
    json_object_set_new(result, field, list);
    if (more)
        set_next_cursor(result, offset + json_array_size(list));
    return result;
}

/* ---- initialize and ping -------------------------------------------------------------------- */

static json_t *capabilities(void)
{
    return json_pack("{s:{s:b}, s:{s:b}, s:{s:b}}", "tools", "listChanged", 1, "resources",
                     "listChanged", 1, "prompts", "listChanged", 1);
}

json_t *mcp_server_initialize(const jsonrpc_msg_t *msg, const char **version, const char **client)
{
    const char *requested = param_string(msg->params, "protocolVersion");
    const char *name = param_string(json_object_get(msg->params, "clientInfo"), "name");
    if (version != NULL)
        *version = NULL;
    if (client != NULL)
        *client = name ? name : "";
    if (requested == NULL)
        return invalid_params(msg->id, "initialize needs params.protocolVersion%s", NULL);

    const char *v = mcp_server_negotiate_version(requested);
    if (version != NULL)
        *version = v;
    json_t *result = json_pack(
        "{s:s, s:o, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", v, "capabilities", capabilities(),
        "serverInfo", "name", "gatehouse", "title", "gatehouse MCP gateway", "version",
        GATEHOUSE_VERSION, "instructions",
        "The tools, resources and prompts of every MCP server behind this gateway. Tool and "
        "prompt names are \"<server>-<name>\"; resource URIs are "
        "\"gatehouse://<server>/<original URI>\".");
    return jsonrpc_result(msg->id, result);
}

/* ---- tools ---------------------------------------------------------------------------------- */

/* The listing of visible tool k: the extra tools first, then the catalog's allowed tools.
 * *i is the catalog position to resume from. NULL past the end. */
static json_t *next_listing(const mcp_server_ctx_t *ctx, size_t k, size_t *i)
{
    size_t n_extra = json_array_size(ctx->extra_tools);
    if (k < n_extra)
        return json_deep_copy(json_array_get(ctx->extra_tools, k));
    const mcp_catalog_t *cat = ctx->cat;
    for (; cat != NULL && *i < cat->n_tools; (*i)++) {
        if (tool_allowed(ctx, &cat->tools[*i]))
            return tool_listing(&cat->tools[(*i)++]);
    }
    return NULL;
}

static json_t *tools_list(const mcp_server_ctx_t *ctx, const jsonrpc_msg_t *msg)
{
    size_t offset;
    if (!cursor_offset(msg->params, &offset))
        return invalid_params(msg->id, "invalid cursor%s", NULL);

    size_t limit = page_size(ctx);
    json_t *list = json_array();
    size_t i = 0; /* catalog position */
    size_t k = 0; /* visible tools seen */
    json_t *t;
    while (json_array_size(list) < limit && (t = next_listing(ctx, k, &i)) != NULL) {
        if (k++ >= offset)
            json_array_append_new(list, t);
        else
            json_decref(t);
    }

    /* Another page only when a tool the client may see remains past this one. */
    json_t *more = json_array_size(list) == limit ? next_listing(ctx, k, &i) : NULL;
    json_t *result = json_object();
    json_object_set_new(result, "tools", list);
    if (more != NULL)
        set_next_cursor(result, offset + json_array_size(list));
    json_decref(more);
    return jsonrpc_result(msg->id, result);
}

/* An extra tool of that name, or NULL. */
static const json_t *find_extra(const mcp_server_ctx_t *ctx, const char *name)
{
    size_t i;
    const json_t *t;
    json_array_foreach (ctx->extra_tools, i, t) {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return t;
    }
    return NULL;
}

json_t *mcp_server_text_result(const json_t *id, const char *text, bool is_error)
{
    json_t *result = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                               text != NULL ? text : "", "isError", is_error);
    if (result == NULL) /* not UTF-8 */
        result = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                           "the answer was not valid UTF-8", "isError", true);
    return jsonrpc_result(id, result);
}

/* A tool the request may call: executable, not Code Mode's, and allowed by the request's
 * filter. A tool whose client is down still counts: the hub answers at once that it is
 * unavailable, which says more than "unknown tool", and what a name means does not change
 * while a server reconnects. */
static bool tool_callable(const mcp_server_ctx_t *ctx, const mcp_tool_t *t)
{
    bool filtered_out = ctx->filter != NULL && !mcp_filter_allows_tool(ctx->filter, t);
    return t->executable && !t->code_mode && !filtered_out;
}

static const mcp_tool_t *find_tool(const mcp_catalog_t *cat, const char *exposed)
{
    for (size_t i = 0; cat != NULL && i < cat->n_tools; i++) {
        if (strcmp(cat->tools[i].exposed, exposed) == 0)
            return &cat->tools[i];
    }
    return NULL;
}

/* How many callable tools have bare_name as their name on their server; *first receives the
 * first of them (NULL when none). */
static size_t count_bare(const mcp_server_ctx_t *ctx, const char *bare_name,
                         const mcp_tool_t **first)
{
    size_t n = 0;
    *first = NULL;
    for (size_t i = 0; ctx->cat != NULL && i < ctx->cat->n_tools; i++) {
        const mcp_tool_t *t = &ctx->cat->tools[i];
        if (strcmp(t->name, bare_name) != 0 || !tool_callable(ctx, t))
            continue;
        if (n++ == 0)
            *first = t;
    }
    return n;
}

/* -32602 for a bare name that several servers serve: names the exposed names to use instead,
 * so that the client (or the model behind it) can pick one. */
static json_t *ambiguous_tool(const mcp_server_ctx_t *ctx, const json_t *id, const char *bare_name)
{
    buf_t msg;
    buf_init(&msg);
    buf_appendf(&msg, "Ambiguous tool name: %s is a tool of several servers; call it as one of",
                bare_name);
    const char *sep = " ";
    for (size_t i = 0; i < ctx->cat->n_tools; i++) {
        const mcp_tool_t *t = &ctx->cat->tools[i];
        if (strcmp(t->name, bare_name) == 0 && tool_callable(ctx, t)) {
            buf_appendf(&msg, "%s%s", sep, t->exposed);
            sep = ", ";
        }
    }
    json_t *response = jsonrpc_error(id, JSONRPC_INVALID_PARAMS, buf_cstr(&msg), NULL);
    buf_free(&msg);
    return response;
}

/* The tool a tools/call names: by its exposed name, or else by its bare name on its server
 * when exactly one callable tool has that name (a convenience for clients written against a
 * single server). An exposed name never falls back to a bare one. NULL with *response set
 * (-32602) when there is no such tool or the bare name is ambiguous. */
static const mcp_tool_t *resolve_tool(const mcp_server_ctx_t *ctx, const json_t *id,
                                      const char *name, json_t **response)
{
    *response = NULL;
    const mcp_tool_t *t = find_tool(ctx->cat, name);
    if (t != NULL && tool_callable(ctx, t))
        return t;
    if (t != NULL) {
        *response = invalid_params(id, "Unknown tool: %s", name);
        return NULL;
    }

    size_t n = count_bare(ctx, name, &t);
    if (n == 1)
        return t;
    *response =
        n == 0 ? invalid_params(id, "Unknown tool: %s", name) : ambiguous_tool(ctx, id, name);
    return NULL;
}

static void tools_call(const mcp_server_ctx_t *ctx, const jsonrpc_msg_t *msg,
                       mcp_server_outcome_t *out)
{
    const char *name = param_string(msg->params, "name");
    json_t *args = json_object_get(msg->params, "arguments");
    if (name == NULL) {
        reply(out, invalid_params(msg->id, "tools/call needs params.name%s", NULL));
        return;
    }
    if (args != NULL && !json_is_object(args) && !json_is_null(args)) {
        reply(out, invalid_params(msg->id, "params.arguments of %s must be an object", name));
        return;
    }

    if (find_extra(ctx, name) != NULL) {
        out->kind = MCP_SERVER_LOCAL;
        out->fwd.method = xstrdup("tools/call");
        out->fwd.tool = xstrdup(name);
        out->fwd.params = json_is_object(args) ? json_deep_copy(args) : NULL;
        out->fwd.exposed = xstrdup(name);
        return;
    }

    /* A tool that is not listed here (not executable, Code Mode's, filtered out) is unknown
     * to /mcp, by either of its names. */
    json_t *error;
    const mcp_tool_t *t = resolve_tool(ctx, msg->id, name, &error);
    if (t == NULL) {
        reply(out, error);
        return;
    }
    out->kind = MCP_SERVER_FORWARD;
    out->fwd.client = xstrdup(t->client);
    out->fwd.method = xstrdup("tools/call");
    out->fwd.tool = xstrdup(t->name);
    out->fwd.params = json_is_object(args) ? json_deep_copy(args) : NULL;
    out->fwd.exposed = xstrdup(name);
}

/* ---- resources ------------------------------------------------------------------------------ */

static json_t *resources_list(const mcp_server_ctx_t *ctx, const jsonrpc_msg_t *msg, bool templates)
{
    size_t offset;
    if (!cursor_offset(msg->params, &offset))
        return invalid_params(msg->id, "invalid cursor%s", NULL);
    const json_t *items = NULL;
    if (ctx->cat != NULL)
        items = templates ? ctx->cat->templates : ctx->cat->resources;
    json_t *result = array_page(ctx, items, offset, templates ? "resourceTemplates" : "resources");
    return jsonrpc_result(msg->id, result);
}

/* True when the catalog knows a client of that name (connected or not). */
static bool client_known(const mcp_catalog_t *cat, const char *client)
{
    size_t i;
    json_t *c;
    if (cat == NULL)
        return false;
    json_array_foreach (cat->clients, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        if (name != NULL && strcmp(name, client) == 0)
            return true;
    }
    return false;
}

static json_t *resource_not_found(const json_t *id, const char *uri)
{
    return jsonrpc_error(id, MCP_ERR_RESOURCE_NOT_FOUND, "Resource not found",
                         json_pack("{s:s}", "uri", uri));
}

static void resources_read(const mcp_server_ctx_t *ctx, const jsonrpc_msg_t *msg,
                           mcp_server_outcome_t *out)
{
    const char *uri = param_string(msg->params, "uri");
    if (uri == NULL) {
        reply(out, invalid_params(msg->id, "resources/read needs params.uri%s", NULL));
        return;
    }

    /* The URI names its client (naming.h), which also covers URIs made from a template. */
    char client[256];
    const char *original = mcp_naming_parse_resource_uri(uri, client, sizeof(client));
    bool filtered_out = ctx->filter != NULL && !mcp_filter_allows_client(ctx->filter, client);
    if (original == NULL || *original == '\0' || !client_known(ctx->cat, client) || filtered_out) {
        reply(out, resource_not_found(msg->id, uri));
        return;
    }
    json_t *params = json_deep_copy(msg->params);
    json_object_set_new(params, "uri", json_string(original));
    out->kind = MCP_SERVER_FORWARD;
    out->fwd.client = xstrdup(client);
    out->fwd.method = xstrdup("resources/read");
    out->fwd.params = params;
    out->fwd.exposed = xstrdup(uri);
}

/* ---- prompts -------------------------------------------------------------------------------- */

static json_t *prompts_list(const mcp_server_ctx_t *ctx, const jsonrpc_msg_t *msg)
{
    size_t offset;
    if (!cursor_offset(msg->params, &offset))
        return invalid_params(msg->id, "invalid cursor%s", NULL);
    json_t *result = array_page(ctx, ctx->cat ? ctx->cat->prompts : NULL, offset, "prompts");
    return jsonrpc_result(msg->id, result);
}

/* A prompt of the catalog by exposed name, or NULL. */
static const json_t *find_prompt(const mcp_catalog_t *cat, const char *exposed)
{
    size_t i;
    json_t *p;
    if (cat == NULL)
        return NULL;
    json_array_foreach (cat->prompts, i, p) {
        const char *name = json_string_value(json_object_get(p, "name"));
        if (name != NULL && strcmp(name, exposed) == 0)
            return p;
    }
    return NULL;
}

static void prompts_get(const mcp_server_ctx_t *ctx, const jsonrpc_msg_t *msg,
                        mcp_server_outcome_t *out)
{
    const char *name = param_string(msg->params, "name");
    if (name == NULL) {
        reply(out, invalid_params(msg->id, "prompts/get needs params.name%s", NULL));
        return;
    }
    const json_t *p = find_prompt(ctx->cat, name);
    json_t *meta = json_object_get(p, "_meta");
    const char *client = param_string(meta, "gatehouse/client");
    const char *original = param_string(meta, "gatehouse/name");
    if (client == NULL || original == NULL || !item_allowed(ctx, p)) {
        reply(out, invalid_params(msg->id, "Unknown prompt: %s", name));
        return;
    }

    json_t *params = json_deep_copy(msg->params);
    json_object_set_new(params, "name", json_string(original));
    out->kind = MCP_SERVER_FORWARD;
    out->fwd.client = xstrdup(client);
    out->fwd.method = xstrdup("prompts/get");
    out->fwd.params = params;
    out->fwd.exposed = xstrdup(name);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

void mcp_server_request(const mcp_server_ctx_t *ctx, const jsonrpc_msg_t *msg,
                        mcp_server_outcome_t *out)
{
    const char *m = msg->method;
    memset(out, 0, sizeof(*out));

    if (msg->params != NULL && !json_is_object(msg->params))
        reply(out, invalid_params(msg->id, "params of %s must be an object", m));
    else if (strcmp(m, "ping") == 0)
        reply(out, jsonrpc_result(msg->id, NULL));
    else if (strcmp(m, "tools/list") == 0)
        reply(out, tools_list(ctx, msg));
    else if (strcmp(m, "tools/call") == 0)
        tools_call(ctx, msg, out);
    else if (strcmp(m, "resources/list") == 0)
        reply(out, resources_list(ctx, msg, false));
    else if (strcmp(m, "resources/templates/list") == 0)
        reply(out, resources_list(ctx, msg, true));
    else if (strcmp(m, "resources/read") == 0)
        resources_read(ctx, msg, out);
    else if (strcmp(m, "prompts/list") == 0)
        reply(out, prompts_list(ctx, msg));
    else if (strcmp(m, "prompts/get") == 0)
        prompts_get(ctx, msg, out);
    else if (strcmp(m, "initialize") == 0)
        reply(out,
              jsonrpc_error(msg->id, JSONRPC_INVALID_REQUEST,
                            "initialize opens a session; send it without Mcp-Session-Id", NULL));
    else
        reply(out, jsonrpc_error(msg->id, JSONRPC_METHOD_NOT_FOUND, NULL,
                                 json_pack("{s:s}", "method", m)));
}

void mcp_server_outcome_free(mcp_server_outcome_t *out)
{
    json_decref(out->reply);
    free(out->fwd.client);
    free(out->fwd.method);
    free(out->fwd.tool);
    json_decref(out->fwd.params);
    free(out->fwd.exposed);
    memset(out, 0, sizeof(*out));
}

/* resources/read answers with the upstream's URIs; the client asked with ours. Contents whose
 * URI is the one asked for get the client's URI back, others (a server may return several
 * contents, e.g. a folder's files) are namespaced the same way. */
static void namespace_contents(json_t *result, const char *client)
{
    size_t i;
    json_t *item;
    json_array_foreach (json_object_get(result, "contents"), i, item) {
        const char *uri = json_string_value(json_object_get(item, "uri"));
        if (uri == NULL)
            continue;
        char *mine = mcp_naming_resource_uri(client, uri);
        json_object_set_new(item, "uri", json_string(mine));
        free(mine);
    }
}

json_t *mcp_server_forward_reply(const json_t *id, const mcp_server_forward_t *fwd,
                                 const json_t *result, const mcp_error_t *err)
{
    if (result == NULL) {
        json_t *data = err && err->data ? json_deep_copy(err->data) : NULL;
        int code = err ? err->code : JSONRPC_INTERNAL_ERROR;
        return jsonrpc_error(id, code, err && err->message[0] ? err->message : NULL, data);
    }
    json_t *copy = json_deep_copy(result);
    if (strcmp(fwd->method, "resources/read") == 0)
        namespace_contents(copy, fwd->client);
    return jsonrpc_result(id, copy);
}

/* ---- change digest -------------------------------------------------------------------------- */

/* FNV-1a, 64 bits: a fingerprint, not a defence; nobody gains by forging a collision. */
static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_json(uint64_t h, const json_t *v)
{
    if (v == NULL)
        return fnv1a(h, "-", 1);
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (text == NULL)
        return fnv1a(h, "?", 1);
    h = fnv1a(h, text, strlen(text));
    free(text);
    return h;
}

void mcp_server_digest(const mcp_catalog_t *cat, mcp_server_digest_t *out)
{
    const uint64_t seed = 14695981039346656037ull;
    out->tools = seed;
    out->resources = seed;
    out->prompts = seed;
    if (cat == NULL)
        return;

    /* The tools as listed, so that a change a /mcp client cannot see (a Code Mode client's
     * tool, say) notifies nobody. Whether any Code Mode tool is there counts, though: the
     * gateway lists its extra tools (Code Mode's meta-tools) only then. */
    bool code_mode = false;
    for (size_t i = 0; i < cat->n_tools; i++) {
        const mcp_tool_t *c = &cat->tools[i];
        code_mode |= c->code_mode && c->executable && c->available;
    }
    if (code_mode)
        out->tools = fnv1a(out->tools, "code mode", 9);
    for (size_t i = 0; i < cat->n_tools; i++) {
        if (!tool_visible(&cat->tools[i]))
            continue;
        json_t *t = tool_listing(&cat->tools[i]);
        out->tools = hash_json(out->tools, t);
        json_decref(t);
    }
    out->resources = hash_json(hash_json(out->resources, cat->resources), cat->templates);
    out->prompts = hash_json(out->prompts, cat->prompts);
}

json_t *mcp_server_changes(const mcp_server_digest_t *old, const mcp_server_digest_t *now)
{
    json_t *out = json_array();
    if (old->tools != now->tools)
        json_array_append_new(out, jsonrpc_notification("notifications/tools/list_changed", NULL));
    if (old->resources != now->resources)
        json_array_append_new(out,
                              jsonrpc_notification("notifications/resources/list_changed", NULL));
    if (old->prompts != now->prompts)
        json_array_append_new(out,
                              jsonrpc_notification("notifications/prompts/list_changed", NULL));
    return out;
}

/* ---- transport checks ----------------------------------------------------------------------- */

bool mcp_server_token_ok(const char *authorization, const char *const *tokens, size_t n_tokens)
{
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;

    /* Comparing SHA-256 digests keeps the time independent of where the first differing byte
     * is and of the tokens' lengths; every token is compared, match or not. */
    unsigned char want[SHA256_DIGEST_LENGTH];
    unsigned char got[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)given, strlen(given), got);
    int match = 0;
    for (size_t i = 0; i < n_tokens; i++) {
        if (tokens[i] == NULL || tokens[i][0] == '\0')
            continue; /* an empty token would let "Bearer " in */
        SHA256((const unsigned char *)tokens[i], strlen(tokens[i]), want);
        match |= CRYPTO_memcmp(want, got, sizeof(got)) == 0;
    }
    return match != 0;
}

bool mcp_server_peer_is_loopback(const char *peer)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (peer == NULL)
        return false;
    if (inet_pton(AF_INET, peer, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, peer, &a6) != 1)
        return false;
    if (IN6_IS_ADDR_LOOPBACK(&a6))
        return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

/* The host of "host", "host:port", "[v6]" or "[v6]:port" into out; false when too long. */
static bool host_only(const char *hostport, size_t len, char *out, size_t cap)
{
    const char *end = hostport + len;
    if (len > 0 && hostport[0] == '[') {
        const char *close = memchr(hostport, ']', len);
        end = close ? close + 1 : end;
    } else {
        const char *colon = memchr(hostport, ':', len);
        end = colon ? colon : end;
    }
    size_t n = (size_t)(end - hostport);
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, hostport, n);
    out[n] = '\0';
    return true;
}

static bool host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    return strncmp(host, "127.", 4) == 0 && mcp_server_peer_is_loopback(host);
}

bool mcp_server_origin_ok(const char *origin)
{
    if (origin == NULL)
        return true; /* not a browser: browsers send Origin with every POST and cross-site GET */
    const char *sep = strstr(origin, "://");
    if (sep == NULL)
        return false; /* "null" (sandboxed pages, file://) and anything unparsable */
    const char *hostport = sep + 3;
    size_t len = strcspn(hostport, "/");

    /* A page on this machine. A page from anywhere else is refused even when its Host header
     * matches: under DNS rebinding, evil.example resolves to 127.0.0.1 and Host and Origin
     * agree, so only the origin's name itself tells. */
    char name[256];
    return host_only(hostport, len, name, sizeof(name)) && host_is_loopback(name);
}

/* One media range of an Accept header: "type/subtype" before any parameter, trimmed. */
static void accept_range(const char *item, size_t len, bool *json, bool *sse)
{
    while (len > 0 && (*item == ' ' || *item == '\t'))
        item++, len--;
    size_t n = 0;
    while (n < len && item[n] != ';' && item[n] != ' ' && item[n] != '\t')
        n++;
    bool any = n == 3 && strncmp(item, "*/*", 3) == 0;
    if (any || (n == 16 && strncasecmp(item, "application/json", 16) == 0) ||
        (n == 13 && strncasecmp(item, "application/*", 13) == 0))
        *json = true;
    if (any || (n == 17 && strncasecmp(item, "text/event-stream", 17) == 0) ||
        (n == 6 && strncasecmp(item, "text/*", 6) == 0))
        *sse = true;
}

void mcp_server_accepts(const char *accept, bool *json, bool *sse)
{
    *json = accept == NULL;
    *sse = accept == NULL;
    for (const char *p = accept; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ",");
        accept_range(p, len, json, sse);
        p += len;
        if (*p == ',')
            p++;
    }
}
