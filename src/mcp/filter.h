/*
 * filter.h - which MCP tools one request may see and run.
 *
 * Three inputs decide, and a tool must pass all of them (Bifrost's stacking rule):
 *
 *   1. the client's tools_to_execute in the configuration (the catalog already holds only the
 *      tools it allows; mcp_tool_t.executable says so);
 *   2. the request's headers, x-gatehouse-mcp-include-clients and
 *      x-gatehouse-mcp-include-tools (Bifrost's x-bf-mcp-include-clients and
 *      x-bf-mcp-include-tools are read as well; when both spellings are sent, both apply);
 *   3. later, the virtual key's grants: they come in as one more restriction through
 *      mcp_filter_restrict_clients / mcp_filter_restrict_tools (the extension point), so that
 *      nothing else changes when virtual keys arrive.
 *
 * Header syntax: a comma-separated list of patterns; spaces around items are ignored and empty
 * items are dropped. A pattern is a glob: '*' matches any run of characters (also none), '?'
 * one character, everything else itself, case-sensitively. An absent header restricts
 * nothing; a header that is present but lists nothing ("" or " , ") allows nothing, as in
 * Bifrost.
 *
 * A client pattern is matched against the client's name. A tool pattern matches a tool when it
 * matches any of: the exposed name ("github-search_issues", possibly shortened, see hub.h),
 * "<client>-<tool>" and "<client>/<tool>" with the server's own tool name, or the bare tool
 * name ("search_issues", in every client). So "github-*" selects every tool of github, and
 * "read_*" every tool whose own name starts with "read_", whichever server offers it.
 *
 * Everything here is a pure function of its inputs: no I/O, no global state.
 */
#ifndef GATEHOUSE_MCP_FILTER_H
#define GATEHOUSE_MCP_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "mcp/hub.h"

#define MCP_FILTER_HEADER_CLIENTS "x-gatehouse-mcp-include-clients"
#define MCP_FILTER_HEADER_TOOLS "x-gatehouse-mcp-include-tools"
#define MCP_FILTER_HEADER_BF_CLIENTS "x-bf-mcp-include-clients"
#define MCP_FILTER_HEADER_BF_TOOLS "x-bf-mcp-include-tools"

/* Restrictions of each kind a filter can hold: two header spellings plus the virtual key's,
 * with room to spare. */
#define MCP_FILTER_MAX_RESTRICTIONS 4

/* One allow-list: NULL-terminated patterns (an empty list allows nothing). */
typedef struct mcp_filter_list {
    char **patterns; /* owned */
} mcp_filter_list_t;

typedef struct mcp_filter {
    mcp_filter_list_t clients[MCP_FILTER_MAX_RESTRICTIONS]; /* a client must pass each one */
    size_t n_clients;
    mcp_filter_list_t tools[MCP_FILTER_MAX_RESTRICTIONS]; /* a tool must pass each one */
    size_t n_tools;
} mcp_filter_t;

#define MCP_FILTER_INIT                                                                            \
    {                                                                                              \
        0                                                                                          \
    }

/* True when name matches the glob pattern ('*' and '?'). */
bool mcp_filter_glob(const char *pattern, const char *name);
/* True when name matches a pattern of the NULL-terminated list. NULL or empty: false. Used for
 * tools_to_execute and tools_to_auto_execute ({"*"} = all, {} = none). */
bool mcp_filter_list_allows(const char *const *patterns, const char *name);

/* Adds a restriction from a header value or any comma list; value NULL adds nothing (absent
 * header). Returns -1 when the filter already holds MCP_FILTER_MAX_RESTRICTIONS of that kind
 * (nothing is added then), else 0. */
int mcp_filter_restrict_clients(mcp_filter_t *f, const char *value);
int mcp_filter_restrict_tools(mcp_filter_t *f, const char *value);

/* Reads the four headers through get(arg, name), which returns a header's value or NULL. */
void mcp_filter_from_headers(mcp_filter_t *f, const char *(*get)(void *arg, const char *name),
                             void *arg);
void mcp_filter_free(mcp_filter_t *f);

/* True when the filter restricts nothing (no restriction was added). */
bool mcp_filter_is_open(const mcp_filter_t *f);
/* The client restrictions alone. */
bool mcp_filter_allows_client(const mcp_filter_t *f, const char *client);
/* The tool by its parts: client restrictions, then tool restrictions on the names above. */
bool mcp_filter_allows(const mcp_filter_t *f, const char *client, const char *tool,
                       const char *exposed);
/* A catalog tool: executable (tools_to_execute) and allowed by every restriction. */
bool mcp_filter_allows_tool(const mcp_filter_t *f, const mcp_tool_t *t);

#endif
