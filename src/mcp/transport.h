/*
 * transport.h - what the MCP client (client.c) and its three transports (transport_stdio.c,
 * transport_http.c, transport_sse.c) share, and nothing else sees.
 *
 * A transport carries JSON-RPC documents (one message or a batch, as text) between the client
 * and one server, and knows nothing of their meaning. One mcp_conn_t is one attempt at a
 * connection: the client makes a new one for every reconnect, so a transport never has to
 * reset itself.
 *
 * Calls from the client into a transport go through mcp_conn_ops_t. Calls back into the
 * client are the mcp_conn_* functions below, made only from the transport's own loop
 * callbacks, never from inside an ops function. Any of them may end the connection (the
 * client calls ops->stop from inside), so after each one the transport checks conn->stopped
 * and, when it is set, returns at once without touching anything but the conn itself. The
 * conn's memory stays valid until ops->destroy, which the client runs from a later loop
 * iteration for exactly that reason.
 *
 * Failures never come back from ops functions: a transport that cannot send reports it
 * through mcp_conn_failed from a loop callback (or mcp_conn_fail_soon from anywhere), so the
 * client never has to handle a connection dying in the middle of one of its own steps.
 */
#ifndef GATEHOUSE_MCP_TRANSPORT_H
#define GATEHOUSE_MCP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "mcp/client.h"

typedef struct mcp_conn mcp_conn_t;

typedef struct mcp_conn_ops {
    const char *name;    /* "stdio", "http", "sse": for logs */
    bool opens_at_start; /* messages can be sent as soon as start returns (stdio, Streamable
                          * HTTP); otherwise the transport calls mcp_conn_opened (legacy SSE,
                          * after the endpoint event) */
    /* Starts connecting. Returns false with reason filled when it failed at once (a command
     * that cannot be spawned); no callback follows then. */
    bool (*start)(mcp_conn_t *conn, char *reason, size_t cap);
    /* Sends one serialized document. request_id is the id of a request, or -1 for a
     * notification or a response; HTTP keeps it with the POST so that an HTTP error can fail
     * that request. */
    void (*send)(mcp_conn_t *conn, const char *text, size_t len, long long request_id);
    /* initialize succeeded: from now on Streamable HTTP sends MCP-Protocol-Version and opens
     * its GET stream. May be NULL. */
    void (*ready)(mcp_conn_t *conn, const char *protocol_version);
    /* The client stopped waiting for request_id (timeout or cancel); HTTP drops the response
     * stream it keeps open for it. May be NULL. */
    void (*abandon)(mcp_conn_t *conn, long long request_id);
    /* Ends all I/O at once and sets conn->stopped; no mcp_conn_* call follows. Safe from
     * inside the transport's own callbacks. A stdio child is handed to the reaper. */
    void (*stop)(mcp_conn_t *conn);
    /* Frees the conn. Called after stop, from a later loop iteration. */
    void (*destroy)(mcp_conn_t *conn);
} mcp_conn_ops_t;

/* The part every transport's connection struct starts with. The client fills it in. */
struct mcp_conn {
    const mcp_conn_ops_t *ops;
    mcp_client_t *client; /* the owner; not to be used once stopped */
    struct event_base *base;
    struct upstream_pool *pool;    /* http, sse */
    const mcp_client_opts_t *opts; /* the client's copy; valid until stop returns */
    const char *log_id;            /* "mcp:<name>" for log lines; valid until stop returns */
    long max_message_bytes;        /* resolved limit (opts' 0 replaced by the default) */
    bool stopped;                  /* set by stop; the transport checks it after callbacks */
};

mcp_conn_t *mcp_stdio_new(void);
mcp_conn_t *mcp_http_new(void);
mcp_conn_t *mcp_sse_new(void);

/* ---- into the client (client.c) -------------------------------------------------------------- */

/* The transport can carry messages now; the client sends initialize. Only for transports
 * that do not open at start. */
void mcp_conn_opened(mcp_conn_t *conn);
/* One document arrived (a message or a batch; not NUL-terminated). */
void mcp_conn_received(mcp_conn_t *conn, const char *text, size_t len);
/* The connection is lost. reason is for logs (no secrets); reinitialize asks for a new
 * session at once instead of after a backoff (the server forgot our session). */
void mcp_conn_failed(mcp_conn_t *conn, const char *reason, bool reinitialize);
/* The same, reported from a later loop iteration: for failures found inside an ops call. */
void mcp_conn_fail_soon(mcp_conn_t *conn, const char *reason);
/* The server refused the message carrying request_id without a JSON-RPC answer (an HTTP
 * error status); the request fails with MCP_ERR_TRANSPORT and reason. */
void mcp_conn_request_failed(mcp_conn_t *conn, long long request_id, const char *reason);
/* True while request_id still waits for its answer (a dropped HTTP stream must be resumed). */
bool mcp_conn_awaiting(mcp_conn_t *conn, long long request_id);

/* ---- shared helpers -------------------------------------------------------------------------- */

/* Resolves the legacy SSE "endpoint" event's URI reference against the stream's URL. Returns
 * a new string, or NULL when ref is empty, malformed or names another origin (a server must
 * not send our messages, and our headers, elsewhere). */
char *mcp_sse_resolve_url(const char *base, const char *ref);

/* Content-Type of a response is media_type (case-insensitive, parameters ignored). */
bool mcp_content_type_is(const char *content_type, const char *media_type);

#endif
