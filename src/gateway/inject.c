/*
 * inject.c - adds the MCP tools a chat request may see to its "tools" (see inject.h).
 *
 * Runs once per request on its worker thread, after the body is parsed and before the route is
 * chosen, so every attempt, retry and fallback sends the same tools. The catalog is an immutable
 * snapshot (hub.h); reading it needs no lock, only the reference this request keeps.
 *
 * Cost: a gateway without MCP clients pays one test of the configuration per request. With MCP,
 * the work is one pass over the catalog plus one JSON object per tool offered; the tool's
 * schema is shared with the catalog by reference, never copied, which is safe because neither
 * the catalog nor the request body ever changes a schema. Code Mode adds its bindings (names
 * only, no stub is generated until the model asks for one), shared between requests without
 * filter headers (built once per catalog: about 160 us for 517 tools), and four small
 * constant tools.
 */
#include "gateway/inject.h"

#include <string.h>

#include "mcp/filter.h"

static const char *header_of(void *arg, const char *name)
{
    return http_request_header(arg, name);
}

/* The names of the caller's own function tools, as a set. */
static json_t *caller_tool_names(const json_t *tools)
{
    json_t *names = json_object();
    size_t i;
    const json_t *tool;
    json_array_foreach (tools, i, tool) {
        const char *name =
            json_string_value(json_object_get(json_object_get(tool, "function"), "name"));
        if (name != NULL)
            json_object_set_new(names, name, json_true());
    }
    return names;
}

/* An OpenAI function tool for one catalog entry. The input schema is shared with the catalog;
 * a tool without one gets the empty object schema providers require. */
static json_t *function_tool(const mcp_tool_t *t)
{
    json_t *fn = json_object();
    json_object_set_new(fn, "name", json_string(t->exposed));
    const json_t *desc = json_object_get(t->def, "description");
    if (json_is_string(desc))
        json_object_set(fn, "description", (json_t *)desc);
    const json_t *schema = json_object_get(t->def, "inputSchema");
    if (json_is_object(schema))
        json_object_set(fn, "parameters", (json_t *)schema);
    else
        json_object_set_new(fn, "parameters",
                            json_pack("{s:s, s:{}}", "type", "object", "properties"));
    return json_pack("{s:s, s:o}", "type", "function", "function", fn);
}

/* Code Mode's meta-tools, after the classic tools, when the request may use a code-mode tool;
 * each one unless the caller has a tool of that name. */
static void add_meta_tools(const config_t *cfg, mcp_catalog_t *cat, const mcp_filter_t *f,
                           json_t *tools, inject_tools_t *out)
{
    codemode_bindings_t *b = codemode_bindings_get(cat, f);
    if (codemode_bindings_count(b) == 0) {
        codemode_bindings_release(b);
        return;
    }
    json_t *caller = caller_tool_names(tools);
    json_t *meta = codemode_meta_openai_tools();
    size_t i;
    json_t *tool;
    json_array_foreach (meta, i, tool) {
        const char *name = codemode_meta_name((codemode_meta_t)i);
        if (json_object_get(caller, name) != NULL)
            continue;
        json_array_append(tools, tool);
        out->meta_added |= 1u << i;
        out->n_added++;
        if (i != CODEMODE_META_EXECUTE)
            out->n_auto++;
    }
    json_decref(meta);
    json_decref(caller);
    if (out->meta_added == 0) {
        codemode_bindings_release(b);
        return;
    }
    out->codemode = b;
    out->codemode_level = inject_binding_level(cfg);
}

static bool offered(const mcp_tool_t *t, const mcp_filter_t *f, const json_t *caller)
{
    return t->available && t->executable && !t->code_mode && mcp_filter_allows_tool(f, t) &&
           json_object_get(caller, t->exposed) == NULL;
}

/* Appends the offered tools; returns how many. */
static size_t add_tools(const mcp_catalog_t *cat, const mcp_filter_t *f, json_t *tools,
                        inject_tools_t *out)
{
    json_t *caller = caller_tool_names(tools);
    for (size_t i = 0; i < cat->n_tools; i++) {
        const mcp_tool_t *t = &cat->tools[i];
        if (!offered(t, f, caller))
            continue;
        json_array_append_new(tools, function_tool(t));
        if (out->visible == NULL)
            out->visible = json_object();
        json_object_set_new(out->visible, t->exposed, json_true());
        out->n_added++;
        if (t->auto_execute)
            out->n_auto++;
    }
    json_decref(caller);
    return out->n_added;
}

void inject_mcp_tools(const config_t *cfg, const http_request_t *req, json_t *body,
                      inject_tools_t *out)
{
    *out = (inject_tools_t)INJECT_TOOLS_INIT;
    if (cfg->n_mcp_clients == 0)
        return;
    json_t *tools = json_object_get(body, "tools");
    if (tools != NULL && !json_is_array(tools))
        return;

    mcp_catalog_t *cat = mcp_hub_catalog();
    if (cat == NULL)
        return;
    mcp_filter_t filter = MCP_FILTER_INIT;
    mcp_filter_from_headers(&filter, header_of, (void *)req);

    bool created = tools == NULL;
    if (created)
        tools = json_array();
    add_tools(cat, &filter, tools, out);
    add_meta_tools(cfg, cat, &filter, tools, out);
    if (out->n_added > 0) {
        out->catalog = cat;
        if (created)
            json_object_set(body, "tools", tools);
    } else {
        mcp_catalog_release(cat);
    }
    if (created)
        json_decref(tools);
    mcp_filter_free(&filter);
}

codemode_meta_t inject_meta(const inject_tools_t *t, const char *name)
{
    codemode_meta_t kind = codemode_meta_kind(name);
    if (kind == CODEMODE_META_NONE || !(t->meta_added & (1u << kind)))
        return CODEMODE_META_NONE;
    return kind;
}

codemode_bindings_t *inject_codemode_bindings(mcp_catalog_t *cat, const http_request_t *req)
{
    if (cat == NULL)
        return NULL;
    mcp_filter_t filter = MCP_FILTER_INIT;
    mcp_filter_from_headers(&filter, header_of, (void *)req);
    codemode_bindings_t *b = codemode_bindings_get(cat, &filter);
    mcp_filter_free(&filter);
    if (codemode_bindings_count(b) == 0) {
        codemode_bindings_release(b);
        return NULL;
    }
    return b;
}

codemode_binding_level_t inject_binding_level(const config_t *cfg)
{
    return cfg->mcp_code_mode_binding == CONFIG_MCP_BINDING_TOOL ? CODEMODE_BINDING_TOOL
                                                                 : CODEMODE_BINDING_SERVER;
}

const mcp_tool_t *inject_lookup(const inject_tools_t *t, const char *exposed)
{
    if (t->catalog == NULL || exposed == NULL || json_object_get(t->visible, exposed) == NULL)
        return NULL;
    return mcp_catalog_find(t->catalog, exposed);
}

void inject_tools_release(inject_tools_t *t)
{
    if (t->catalog != NULL)
        mcp_catalog_release(t->catalog);
    codemode_bindings_release(t->codemode);
    json_decref(t->visible);
    *t = (inject_tools_t)INJECT_TOOLS_INIT;
}
