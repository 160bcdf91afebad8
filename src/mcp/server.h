/*
 * server.h - the protocol side of gatehouse's own MCP server (/mcp): sessions, version
 * negotiation, method dispatch over the hub's catalog, and the small checks of the
 * Streamable HTTP transport (auth, Origin, Accept).
 *
 * This module speaks MCP and knows nothing of HTTP connections or threads; the glue that does
 * (gateway/mcp_endpoint.c) parses each POST with jsonrpc.h, asks this module what to answer,
 * and runs through the hub (hub.h) what needs a server: tools/call, resources/read and
 * prompts/get come back from mcp_server_request as a forward (which client, which method,
 * which params), and mcp_server_forward_reply turns the hub's answer into the response owed
 * to the client. Everything else (initialize, ping, the list methods) is answered at once
 * from the catalog snapshot the caller holds, which keeps this module testable without a
 * socket or a hub thread.
 *
 * What /mcp serves is the hub's merged catalog, minus what is not for it: tools that are not
 * executable (tools_to_execute), tools of clients that are down, and tools of Code Mode
 * clients, which reach models through Code Mode's meta-tools instead. Those the gateway passes
 * in as "extra tools" (mcp_server_ctx_t): listed first, and their calls handed back to the
 * caller to run (MCP_SERVER_LOCAL), so that this module needs to know nothing of Code Mode. Names
 * are the hub's exposed names ("<client>-<tool>"); tools/call also takes a tool's bare name on
 * its server when exactly one tool the request may call has it (-32602 naming the exposed
 * names when several do). Resources and prompts carry the hub's namespacing too, and are
 * mapped back to their client before forwarding.
 *
 * Sessions live in one process-wide table behind a mutex, because one client's POSTs may
 * arrive on different connections and so on different worker threads. A session holds only
 * what later requests need: its negotiated protocol version and when it was last used.
 * Idle sessions expire; when the table is full the least recently used one is dropped.
 */
#ifndef GATEHOUSE_MCP_SERVER_H
#define GATEHOUSE_MCP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcp/hub.h"
#include "mcp/jsonrpc.h"

/* ---- protocol versions ---------------------------------------------------------------------- */

#define MCP_SERVER_PROTOCOL_LATEST "2025-11-25"

/* True for a version this server speaks: 2025-11-25, 2025-06-18, 2025-03-26. */
bool mcp_server_version_supported(const char *version);
/* The version to answer an initialize with: the client's when supported, else our latest.
 * Returns a static string. */
const char *mcp_server_negotiate_version(const char *requested);

/* ---- sessions ------------------------------------------------------------------------------- */

#define MCP_SERVER_SESSION_ID_LEN 32 /* hex digits of 128 random bits */

typedef struct mcp_server_session {
    char id[MCP_SERVER_SESSION_ID_LEN + 1];
    char version[16]; /* negotiated protocol version */
    char client[64];  /* clientInfo.name, for logs; "" when not given */
    bool initialized; /* notifications/initialized was received */
} mcp_server_session_t;

/* Idle time after which a session is forgotten (0 = 1 hour) and how many sessions are kept
 * (0 = 10000). Any thread; applies from the next table operation on. */
void mcp_server_sessions_configure(double idle_timeout_s, size_t max_sessions);
/* Creates a session and copies it to out. now is monotonic seconds. Returns 0, or -1 when no
 * random id could be made (the kernel refused getrandom). */
int mcp_server_session_create(const char *version, const char *client, double now,
                              mcp_server_session_t *out);
/* Finds a live session, marks it used at now and copies it to out (may be NULL). False when
 * the id is unknown, was deleted or has expired. */
bool mcp_server_session_touch(const char *id, double now, mcp_server_session_t *out);
/* Records notifications/initialized. */
void mcp_server_session_mark_initialized(const char *id);
/* A new GET stream of the session takes over from the one before (a session has one stream
 * for server-initiated messages, so that each message goes out once). Returns the stream's
 * generation, never 0, or 0 when the session is unknown. */
uint64_t mcp_server_session_claim_stream(const char *id);
/* True while gen is the session's current stream (the session lives and no newer stream
 * claimed it). */
bool mcp_server_session_stream_current(const char *id, uint64_t gen);
/* Ends a session; false when there was none. */
bool mcp_server_session_delete(const char *id);
size_t mcp_server_session_count(void);
/* Forgets every session (tests, shutdown). */
void mcp_server_sessions_clear(void);

/* ---- dispatch ------------------------------------------------------------------------------- */

typedef struct mcp_server_ctx {
    const mcp_catalog_t *cat;        /* the snapshot to answer from; NULL = nothing connected */
    const struct mcp_filter *filter; /* the request's x-gatehouse-mcp-include-* headers
                                      * (filter.h), or NULL for no restriction */
    size_t page_size;                /* items per list page; 0 = 100 */
    const json_t *extra_tools;       /* MCP tool objects the caller serves itself, listed
                                      * before the catalog's; NULL = none */
} mcp_server_ctx_t;

typedef enum mcp_server_outcome_kind {
    MCP_SERVER_REPLY = 0, /* reply holds the response */
    MCP_SERVER_FORWARD,   /* run fwd through the hub, then mcp_server_forward_reply */
    MCP_SERVER_LOCAL,     /* tools/call of an extra tool: fwd.tool and fwd.params say which
                           * and with what; the caller answers (mcp_server_text_result) */
} mcp_server_outcome_kind_t;

/* A request to pass on to one upstream client. */
typedef struct mcp_server_forward {
    char *client;   /* owned: the hub's client name */
    char *method;   /* owned: "tools/call", "resources/read" or "prompts/get" */
    char *tool;     /* owned; tools/call only: the tool's name on its server */
    json_t *params; /* owned; tools/call: the arguments (object or NULL); otherwise the
                     * params as the upstream must see them (names and URIs mapped back) */
    char *exposed;  /* owned: the name or URI the client used, for logs and for mapping the
                     * answer back */
} mcp_server_forward_t;

typedef struct mcp_server_outcome {
    mcp_server_outcome_kind_t kind;
    json_t *reply;            /* MCP_SERVER_REPLY: a full JSON-RPC response; owned */
    mcp_server_forward_t fwd; /* MCP_SERVER_FORWARD */
} mcp_server_outcome_t;

/* Answers initialize: the result with the negotiated version, our capabilities and
 * serverInfo. *version (may be NULL) receives the negotiated version (static string) and
 * *client the clientInfo.name or "" (borrowed from msg). Returns the JSON-RPC response; a
 * malformed initialize gets -32602 and *version NULL. */
json_t *mcp_server_initialize(const jsonrpc_msg_t *msg, const char **version, const char **client);
/* Handles one request other than initialize (msg->kind must be JSONRPC_REQUEST). out must be
 * released with mcp_server_outcome_free. */
void mcp_server_request(const mcp_server_ctx_t *ctx, const jsonrpc_msg_t *msg,
                        mcp_server_outcome_t *out);
void mcp_server_outcome_free(mcp_server_outcome_t *out);
/* The response to a forwarded request, from the hub's answer: exactly one of result and err
 * is set. A tools/call result goes back as the server sent it (isError included); an error is
 * passed through with its code, message and data; resources/read contents get their URIs
 * namespaced again. */
json_t *mcp_server_forward_reply(const json_t *id, const mcp_server_forward_t *fwd,
                                 const json_t *result, const mcp_error_t *err);

/* A CallToolResult of one text block, as a JSON-RPC response: what the caller answers for an
 * extra tool. */
json_t *mcp_server_text_result(const json_t *id, const char *text, bool is_error);

/* ---- change notifications ------------------------------------------------------------------- */

/* A fingerprint of what a client can list, so that a catalog change (any change bumps the
 * version) notifies only about the lists that really changed. */
typedef struct mcp_server_digest {
    uint64_t tools;
    uint64_t resources; /* resources and resource templates */
    uint64_t prompts;
} mcp_server_digest_t;

void mcp_server_digest(const mcp_catalog_t *cat, mcp_server_digest_t *out);
/* The notifications owed for a change from old to now: an array (possibly empty) of
 * notifications/tools/list_changed, .../resources/list_changed, .../prompts/list_changed. */
json_t *mcp_server_changes(const mcp_server_digest_t *old, const mcp_server_digest_t *now);

/* ---- transport checks ----------------------------------------------------------------------- */

/* "Authorization: Bearer <token>" against the configured tokens, in constant time with
 * respect to every token's content and length. False when authorization is NULL. */
bool mcp_server_token_ok(const char *authorization, const char *const *tokens, size_t n_tokens);
/* The peer address (as http_request_peer gives it) is 127.0.0.0/8, ::1 or ::ffff:127.x. */
bool mcp_server_peer_is_loopback(const char *peer);
/* The Origin header is absent (not a browser) or names a page on this machine (localhost,
 * 127.x, [::1]). The endpoint refuses other origins unless a token is required anyway: with
 * DNS rebinding, a remote page can reach a server that trusts loopback peers. */
bool mcp_server_origin_ok(const char *origin);
/* What the Accept header allows: JSON responses, SSE responses. An absent header or a
 * wildcard allows both. */
void mcp_server_accepts(const char *accept, bool *json, bool *sse);

#endif
