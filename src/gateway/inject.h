/*
 * inject.h - MCP tools in chat requests: which tools of the merged catalog a request sees, added
 * to its "tools" as OpenAI function tools.
 *
 * A tool is offered when its client is connected, is not a Code Mode client (those are served
 * through Code Mode's meta-tools instead), the tool passes the request's filter (mcp/filter.h:
 * tools_to_execute, the include headers, later the virtual key), and the caller's own "tools"
 * has no function of the same name: the caller's definition always wins, and gatehouse never
 * runs a tool the model only knows by the caller's definition.
 *
 * Code Mode clients (is_code_mode_client) are not offered tool by tool: when the request may
 * use at least one of their tools (same rules: connected, executable, allowed by the request's
 * filter), it gets Code Mode's four meta-tools instead (codemode/metatools.h), after the
 * classic tools of the other clients. A caller tool of the same name as a meta-tool wins, as
 * for any tool.
 *
 * The request keeps the catalog it was given for its whole life, and the Code Mode bindings
 * built from it, so the agent loop (agent.h) maps the names the model calls back to the same
 * tools, even if a server's list changes meanwhile.
 */
#ifndef GATEHOUSE_GATEWAY_INJECT_H
#define GATEHOUSE_GATEWAY_INJECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "codemode/bindings.h"
#include "codemode/metatools.h"
#include "codemode/stubs.h"
#include "config/config.h"
#include "http/server.h"
#include "mcp/hub.h"

typedef struct inject_tools {
    mcp_catalog_t *catalog; /* reference held for the request, or NULL when none was added */
    json_t *visible;        /* exposed name -> true for every tool added; owned, or NULL */
    size_t n_added;
    size_t n_auto; /* how many of those gatehouse may run itself (agent mode); the three
                    * reading meta-tools count, executeToolCode does not (it depends) */
    codemode_bindings_t *codemode;           /* reference, when the meta-tools were added */
    codemode_binding_level_t codemode_level; /* of the stub tree */
    unsigned meta_added;                     /* bit (1 << codemode_meta_t) per meta-tool added */
} inject_tools_t;

#define INJECT_TOOLS_INIT                                                                          \
    {                                                                                              \
        NULL, NULL, 0, 0, NULL, CODEMODE_BINDING_SERVER, 0                                         \
    }

/* Adds the MCP tools this request may see to body's "tools" (created when absent). Does
 * nothing, at the cost of one test, when the configuration has no MCP client; nothing either
 * when the body's "tools" is not an array (the provider will answer that mistake). */
void inject_mcp_tools(const config_t *cfg, const http_request_t *req, json_t *body,
                      inject_tools_t *out);

/* The meta-tool of that name, when this request was given it; else CODEMODE_META_NONE. */
codemode_meta_t inject_meta(const inject_tools_t *t, const char *name);

/* The Code Mode bindings a request with these headers may use (a reference), or NULL when it
 * may use no code-mode tool. cat is the catalog to build them from. Shared with the execute
 * endpoint and /mcp, so that every door applies the same filter. */
codemode_bindings_t *inject_codemode_bindings(mcp_catalog_t *cat, const http_request_t *req);
/* The configured binding level, as Code Mode names it. */
codemode_binding_level_t inject_binding_level(const config_t *cfg);

/* The catalog entry behind an exposed name, when this request was given that tool. */
const mcp_tool_t *inject_lookup(const inject_tools_t *t, const char *exposed);

void inject_tools_release(inject_tools_t *t);

#endif
