/*
 * hub.h - the tool hub: the one thread that owns every MCP client connection and the merged
 * tool catalog, and runs tool calls for the worker threads.
 *
 * DESIGN.md, "The tool plane": MCP connections are shared by all workers, so they live on one
 * hub thread with its own event loop and upstream pool. Worker threads never touch a client:
 * they read the catalog (an immutable, reference-counted snapshot, swapped whenever a server's
 * tools change) and queue calls, whose results come back on the caller's own event loop. A
 * slow or dead server delays only the calls made to it: calls time out
 * (tool_timeout_ms), the client reconnects with backoff, and its tools are marked unavailable
 * in the catalog meanwhile.
 *
 * Names: each tool is exposed as "<client>-<tool>". Providers accept at most 64 characters of
 * [A-Za-z0-9_-] (OpenAI's rule, the strictest); any other character becomes '_', and a name
 * that is still too long, or that collides with another after that, is shortened
 * deterministically to a prefix plus 8 hex digits of the SHA-256 of the full name. The catalog
 * maps exposed names back to (client, tool).
 *
 * This module knows nothing of configuration files or of the gateway: the gateway turns its
 * configuration into mcp_hub_opts_t.
 */
#ifndef GATEHOUSE_MCP_HUB_H
#define GATEHOUSE_MCP_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcp/client.h"

struct event_base;

/* ---- configuration -------------------------------------------------------------------------- */

typedef struct mcp_hub_client_spec {
    mcp_client_opts_t conn;                   /* how to connect (client.h) */
    const char *const *tools_to_execute;      /* NULL-terminated; {"*"} = all; {} = none */
    const char *const *tools_to_auto_execute; /* same syntax; a subset of the above */
    bool is_code_mode;                        /* tools served through Code Mode instead */
} mcp_hub_client_spec_t;

typedef struct mcp_hub_opts {
    const mcp_hub_client_spec_t *clients;
    size_t n_clients;
    long tool_timeout_ms;    /* per tool call; 0 = 30 s */
    long resync_interval_ms; /* periodic tools/list of every client; 0 = 5 minutes */
} mcp_hub_opts_t;

/* Starts the hub thread and connects every client (the options are copied). Returns 0 or -1.
 * Connecting happens in the background: start never waits for a server. */
int mcp_hub_start(const mcp_hub_opts_t *opts);
/* Applies new options: clients added connect, clients removed close, clients whose connection
 * changed reconnect, others keep their connection and only get their new tool lists. */
void mcp_hub_reconfigure(const mcp_hub_opts_t *opts);
/* Closes every client (stdio servers are terminated) and stops the thread. */
void mcp_hub_stop(void);

/* ---- the catalog ---------------------------------------------------------------------------- */

typedef struct mcp_tool {
    const char *client;  /* MCP client name */
    const char *name;    /* the tool's name on its server */
    const char *exposed; /* the name models and /mcp clients see */
    const json_t *def;   /* the server's tool object: name, description, inputSchema, ... */
    bool available;      /* the client is connected */
    bool executable;     /* allowed by tools_to_execute */
    bool auto_execute;   /* allowed by tools_to_auto_execute */
    bool code_mode;      /* the client is a Code Mode client */
} mcp_tool_t;

typedef struct mcp_catalog {
    int refcount;      /* atomic */
    uint64_t version;  /* increases with every change */
    mcp_tool_t *tools; /* executable tools of every client, sorted by exposed name */
    size_t n_tools;
    json_t *resources; /* array; each with "uri" namespaced as described in server docs */
    json_t *templates; /* resource templates, namespaced the same way */
    json_t *prompts;   /* array; "name" namespaced "<client>-<prompt>" */
    json_t *clients;   /* [{"name", "state", "transport", "tools": N, "error"}] for /health */
} mcp_catalog_t;

/* The current catalog, with a reference the caller releases. Any thread. */
mcp_catalog_t *mcp_hub_catalog(void);
void mcp_catalog_release(mcp_catalog_t *cat);
/* A tool by exposed name, or NULL. */
const mcp_tool_t *mcp_catalog_find(const mcp_catalog_t *cat, const char *exposed);

/* Runs on_change on base's thread whenever the catalog version changes (the /mcp server sends
 * notifications/tools/list_changed from it). Returns a handle for mcp_hub_unsubscribe, which
 * must be called from base's thread. */
typedef struct mcp_hub_sub mcp_hub_sub_t;
mcp_hub_sub_t *mcp_hub_subscribe(struct event_base *base, void (*on_change)(void *arg), void *arg);
void mcp_hub_unsubscribe(mcp_hub_sub_t *sub);

/* ---- calls ---------------------------------------------------------------------------------- */

typedef struct mcp_hub_result {
    const json_t *result;   /* the JSON-RPC result (for tools/call: CallToolResult), or NULL */
    const mcp_error_t *err; /* set when result is NULL: timeout, unavailable, JSON-RPC error */
    double duration_s;
} mcp_hub_result_t;

typedef void (*mcp_hub_done_fn)(void *arg, const mcp_hub_result_t *res);
typedef struct mcp_hub_call mcp_hub_call_t;

/* Queues tools/call of tool on client with arguments (stolen; an object or NULL). The callback
 * runs on reply_base's thread, exactly once, unless cancelled. request_id is for the logs. */
mcp_hub_call_t *mcp_hub_call_tool(struct event_base *reply_base, const char *client,
                                  const char *tool, json_t *arguments, const char *request_id,
                                  mcp_hub_done_fn cb, void *arg);
/* Any other request to one client (resources/read, prompts/get, ...); params stolen. */
mcp_hub_call_t *mcp_hub_request(struct event_base *reply_base, const char *client,
                                const char *method, json_t *params, const char *request_id,
                                mcp_hub_done_fn cb, void *arg);
/* From reply_base's thread: the callback will not run; the server gets
 * notifications/cancelled if the call was already sent. */
void mcp_hub_cancel(mcp_hub_call_t *call);

/* ---- work of other modules on the hub thread ------------------------------------------------ */

/* Runs fn(base, arg) on the hub thread, base being the hub's event loop, after the commands
 * queued before it. For the modules above mcp/ whose work DESIGN.md puts on the tool plane
 * (Code Mode's executor: its sockets and timers are events on base); mcp/ knows nothing of
 * them. Events fn adds to base must be gone before mcp_hub_stop. Returns 0, or -1 when the
 * hub is not running or is stopping: fn will not run. Any thread. */
int mcp_hub_post(void (*fn)(struct event_base *base, void *arg), void *arg);

#endif
