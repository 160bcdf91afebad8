/*
 * mcp_endpoint.h - /mcp: gatehouse as an MCP server over Streamable HTTP, for IDEs, agents and
 * the MCP SDKs (docs/mcp-server.md).
 *
 * The worker's dispatcher hands every request for /mcp to mcp_endpoint_handle, which owns it
 * from then on and finishes it exactly once (http/server.h):
 *
 *   POST    one JSON-RPC message or a batch; answered with JSON, or with an SSE stream when a
 *           forwarded call takes longer than a moment; 202 when it held no request
 *   GET     the session's stream of server-initiated messages (list_changed notifications)
 *   DELETE  ends the session
 *
 * The protocol itself (sessions, methods, version negotiation) is mcp/server.h; tool calls,
 * resource reads and prompt fetches run through the tool hub (mcp/hub.h) and come back on the
 * worker's own loop.
 */
#ifndef GATEHOUSE_GATEWAY_MCP_ENDPOINT_H
#define GATEHOUSE_GATEWAY_MCP_ENDPOINT_H

#include "gateway/gateway.h"
#include "http/server.h"

struct event_base;

/* Handles one request for /mcp (any method) on worker w. */
void mcp_endpoint_handle(http_request_t *req, gateway_worker_t *w, const char *request_id);

/* The worker is draining (its loop's thread, at the start of the drain): ends its GET streams,
 * which would otherwise hold the drain until its deadline, and refuses new ones with 503.
 * POSTs in flight finish normally. */
void mcp_endpoint_drain(struct event_base *base);
/* The worker's loop has stopped for good (before its server and base are freed): releases
 * what /mcp kept for that loop. Requests still held are left to http_server_free. */
void mcp_endpoint_worker_free(struct event_base *base);

#endif
