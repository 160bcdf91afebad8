/*
 * bindings.h - how a Code Mode script names MCP tools: each code-mode client is one object,
 * each of its tools one method (`result = everything.echo(message="hi")`).
 *
 * The same bindings serve the stubs the model reads (stubs.c), the servers announced to the
 * sandbox and the tool calls it reports back (exec.c), so a name a stub shows is exactly the
 * name that works at run time.
 *
 * Python names. MCP names may hold characters Python does not allow in an identifier, so each
 * one is mapped (codemode_py_ident): every character outside [A-Za-z0-9_] becomes '_' (one per
 * byte), a leading digit gets a '_' prefix, an empty name becomes "_", and a Python keyword or
 * a name the sandbox itself defines for the script (`result`, `ToolError`) gets a '_' suffix:
 * "my-server" -> "my_server", "2fa" -> "_2fa", "import" -> "import_". Within one scope (the
 * servers, or the tools of one server) names that map to the same identifier are told apart:
 * a name that needed no mapping keeps its identifier, the others, in sorted order of their MCP
 * names, get the first free of "_2", "_3", ... appended. The result depends only on the set of
 * names, never on catalog order.
 *
 * A bindings object is immutable once built and reference-counted, so a worker can build it
 * for one request and hand it to the tool hub thread for an execution.
 */
#ifndef GATEHOUSE_CODEMODE_BINDINGS_H
#define GATEHOUSE_CODEMODE_BINDINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "mcp/filter.h"
#include "mcp/hub.h"

/* One tool as a script sees it: a method of its server's object. */
typedef struct codemode_tool_binding {
    const char *py;      /* method name: a Python identifier (owned by the bindings) */
    const char *tool;    /* the tool's name on its MCP server (catalog string) */
    const mcp_tool_t *t; /* catalog entry (valid while the bindings hold the catalog) */
} codemode_tool_binding_t;

/* One code-mode client as a script sees it: an object named py with one method per tool. */
typedef struct codemode_server_binding {
    const char *py;                 /* object name: a Python identifier (owned) */
    const char *client;             /* MCP client name (catalog string) */
    codemode_tool_binding_t *tools; /* sorted by MCP tool name */
    size_t n_tools;                 /* at least 1: servers without tools are left out */
} codemode_server_binding_t;

typedef struct codemode_bindings codemode_bindings_t; /* refcounted, immutable once built */

/* The code-mode tools of cat that are executable, available and allowed by filter (NULL = no
 * request restriction), grouped by client; servers sorted by client name, tools by tool name.
 * Takes its own reference to cat. Never NULL; may hold no server. */
codemode_bindings_t *codemode_bindings_build(mcp_catalog_t *cat, const mcp_filter_t *filter);
/* The same, shared: when filter restricts nothing (NULL or open), the bindings of the last
 * catalog asked for are kept and handed out again (a reference each), so that requests
 * without filter headers do not build them anew; others are built as by
 * codemode_bindings_build. Any thread. */
codemode_bindings_t *codemode_bindings_get(mcp_catalog_t *cat, const mcp_filter_t *filter);
/* Drops the shared bindings (and so their catalog reference); before the tool hub stops. */
void codemode_bindings_cache_clear(void);
/* Another reference; any thread. Returns b. */
codemode_bindings_t *codemode_bindings_ref(codemode_bindings_t *b);
/* Drops a reference; the last one frees the bindings and releases the catalog. NULL is fine. */
void codemode_bindings_release(codemode_bindings_t *b);

/* Servers, in order. */
size_t codemode_bindings_count(const codemode_bindings_t *b);
const codemode_server_binding_t *codemode_bindings_server(const codemode_bindings_t *b, size_t i);
/* Total number of tools over every server. */
size_t codemode_bindings_tool_count(const codemode_bindings_t *b);

/* Lookup by Python names, as the sandbox reports a call. NULL if unknown; *server (when not
 * NULL) is set to the tool's server. */
const codemode_tool_binding_t *codemode_bindings_find(const codemode_bindings_t *b,
                                                      const char *server_py, const char *tool_py,
                                                      const codemode_server_binding_t **server);
/* Lookup by MCP names (client name, tool name on its server). NULL if not bound. */
const codemode_tool_binding_t *codemode_bindings_find_mcp(const codemode_bindings_t *b,
                                                          const char *client, const char *tool,
                                                          const codemode_server_binding_t **server);
/* A server by Python name or client name (either matches). NULL if unknown. */
const codemode_server_binding_t *codemode_bindings_find_server(const codemode_bindings_t *b,
                                                               const char *name);

/* A Python identifier for one MCP name, before collisions are resolved (see above). Owned. */
char *codemode_py_ident(const char *name);
/* True when name is a reserved Python keyword ("class", "None"; soft keywords such as
 * "match" are valid identifiers and do not count). */
bool codemode_py_is_keyword(const char *name);

#endif
