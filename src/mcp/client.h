/*
 * client.h - one MCP client connection (stdio, Streamable HTTP or legacy SSE), driven by a
 * libevent loop.
 *
 * Every MCP connection of the gateway lives on the tool hub thread (DESIGN.md, "The tool
 * plane"); this module knows nothing of threads: it runs on the event_base it is given and
 * makes its HTTP requests through the upstream pool of that same loop.
 *
 * A client owns its connection's whole lifecycle: it starts the transport (spawning the stdio
 * server, or opening the HTTP session), runs `initialize` with protocol version negotiation
 * (2025-11-25, 2025-06-18, 2025-03-26), sends `notifications/initialized`, pings the server
 * now and then, and when anything fails (the process exits, the HTTP session is lost, a ping
 * times out, the server sends something that is not JSON-RPC) it tears the connection down,
 * reports the state change, and reconnects with exponential backoff until it is freed. A
 * request that times out fails alone (after notifications/cancelled): one slow tool call is
 * not a dead server. Requests made while the client is not ready fail at once with
 * MCP_ERR_UNAVAILABLE: a dead server never makes a caller wait.
 *
 * Callbacks run on the loop, never from inside the call that caused them; any callback may
 * call any function of this API, mcp_client_free included. docs/internals/mcp-client.md has
 * the state machine and the transports.
 */
#ifndef GATEHOUSE_MCP_CLIENT_H
#define GATEHOUSE_MCP_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct upstream_pool;

typedef struct mcp_client mcp_client_t;
typedef struct mcp_pending mcp_pending_t;

typedef enum mcp_transport {
    MCP_TRANSPORT_STDIO = 0,
    MCP_TRANSPORT_HTTP, /* Streamable HTTP */
    MCP_TRANSPORT_SSE,  /* the legacy HTTP+SSE transport (2024-11-05) */
} mcp_transport_t;

typedef struct mcp_client_opts {
    const char *name; /* the client's name in config and logs */
    mcp_transport_t transport;
    const char *command;          /* stdio: program to run (PATH is searched) */
    const char *const *args;      /* stdio: arguments, NULL-terminated; may be NULL */
    const char *const *env_names; /* stdio: environment variables passed through; nothing
                                   * else is inherited. NULL-terminated; may be NULL */
    const char *url;              /* http, sse: endpoint */
    const char *const *headers;   /* http, sse: "Name: value", NULL-terminated; may be NULL */
    long request_timeout_ms;      /* default timeout of a request; 0 = 30 s */
    long ping_interval_ms;        /* 0 = 30 s; a failed ping reconnects */
    long max_message_bytes;       /* 0 = 16 MiB; a larger message disconnects the server */
} mcp_client_opts_t;

typedef enum mcp_client_state {
    MCP_STATE_CONNECTING = 0, /* transport starting or initialize in progress */
    MCP_STATE_READY,          /* initialized; requests are accepted */
    MCP_STATE_DOWN,           /* failed; a reconnect is scheduled with backoff */
    MCP_STATE_CLOSED,         /* being freed; never reported through on_state */
} mcp_client_state_t;

/* Error codes beyond JSON-RPC's own (which are passed through as the server sent them). */
#define MCP_ERR_TIMEOUT (-32001)     /* no answer in time; notifications/cancelled was sent */
#define MCP_ERR_UNAVAILABLE (-32002) /* the client is not connected */
#define MCP_ERR_TRANSPORT (-32003)   /* the connection failed while the request was pending */

typedef struct mcp_error {
    int code;
    char message[512];
    json_t *data; /* the error's "data", or NULL; borrowed for the callback's duration */
} mcp_error_t;

typedef struct mcp_client_handlers {
    /* The connection changed state; reason says why (for logs), may be NULL. */
    void (*on_state)(void *arg, mcp_client_t *c, mcp_client_state_t state, const char *reason);
    /* A notification from the server (notifications/tools/list_changed, .../message, ...),
     * except progress notifications, which go to the request that asked for them. */
    void (*on_notification)(void *arg, mcp_client_t *c, const char *method, const json_t *params);
} mcp_client_handlers_t;

/* Exactly one of result and err is non-NULL. Both are borrowed for the call's duration. */
typedef void (*mcp_response_fn)(void *arg, const json_t *result, const mcp_error_t *err);
/* A notifications/progress for a request made with a progress callback. */
typedef void (*mcp_progress_fn)(void *arg, const json_t *params);

/* Copies the options. Nothing happens until mcp_client_start. */
mcp_client_t *mcp_client_new(struct event_base *base, struct upstream_pool *pool,
                             const mcp_client_opts_t *opts, const mcp_client_handlers_t *h,
                             void *arg);
void mcp_client_start(mcp_client_t *c);
/* Cancels pending requests (their callbacks are not called), closes the transport (a stdio
 * child gets SIGTERM, then SIGKILL after a grace period, and is reaped; a Streamable HTTP
 * session gets a DELETE), frees the client. The reaping and the DELETE finish on the loop, so
 * the loop should keep running a moment (up to the 2 s grace) before its base is freed. */
void mcp_client_free(mcp_client_t *c);

mcp_client_state_t mcp_client_state(const mcp_client_t *c);
const char *mcp_client_name(const mcp_client_t *c);
/* Negotiated version, server capabilities and serverInfo; NULL until ready. */
const char *mcp_client_protocol_version(const mcp_client_t *c);
const json_t *mcp_client_capabilities(const mcp_client_t *c);
const json_t *mcp_client_server_info(const mcp_client_t *c);

/* Sends a request. params is stolen (may be NULL). timeout_ms 0 = the client's default.
 * With on_progress, a progressToken is attached and the server's progress notifications for
 * it are delivered there. Returns a handle valid until the callback runs or it is cancelled. */
mcp_pending_t *mcp_client_request(mcp_client_t *c, const char *method, json_t *params,
                                  long timeout_ms, mcp_response_fn cb, mcp_progress_fn on_progress,
                                  void *arg);
/* Stops waiting: sends notifications/cancelled to the server; the callback never runs. */
void mcp_client_cancel(mcp_pending_t *p);

/* Fetches every page of a list method ("tools/list" with field "tools", "resources/list" /
 * "resources", "resources/templates/list" / "resourceTemplates", "prompts/list" / "prompts")
 * and answers with one JSON array of all items. */
mcp_pending_t *mcp_client_list_all(mcp_client_t *c, const char *method, const char *field,
                                   mcp_response_fn cb, void *arg);

#endif
