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
 * The request keeps the catalog it was given for its whole life, so the agent loop (agent.h)
 * maps the names the model calls back to the same tools, even if a server's list changes
 * meanwhile.
 */
#ifndef GATEHOUSE_GATEWAY_INJECT_H
#define GATEHOUSE_GATEWAY_INJECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "http/server.h"
#include "mcp/hub.h"

typedef struct inject_tools {
    mcp_catalog_t *catalog; /* reference held for the request, or NULL when none was added */
    json_t *visible;        /* exposed name -> true for every tool added; owned, or NULL */
    size_t n_added;
    size_t n_auto; /* how many of those gatehouse may run itself (agent mode) */
} inject_tools_t;

#define INJECT_TOOLS_INIT                                                                          \
    {                                                                                              \
        NULL, NULL, 0, 0                                                                           \
    }

/* Adds the MCP tools this request may see to body's "tools" (created when absent). Does
 * nothing, at the cost of one test, when the configuration has no MCP client; nothing either
 * when the body's "tools" is not an array (the provider will answer that mistake). */
void inject_mcp_tools(const config_t *cfg, const http_request_t *req, json_t *body,
                      inject_tools_t *out);

/* The catalog entry behind an exposed name, when this request was given that tool. */
const mcp_tool_t *inject_lookup(const inject_tools_t *t, const char *exposed);

void inject_tools_release(inject_tools_t *t);

#endif
