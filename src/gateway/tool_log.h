/*
 * tool_log.h - what a tool call run for a client leaves behind in the request log and the
 * metrics, the same whichever way it came in: POST /v1/mcp/tool/execute (source "client") and
 * tools/call on gatehouse's own /mcp (source "mcp"). Agent mode records its own calls (agent.c,
 * source "agent") because its request row is the chat request's.
 *
 * Each call is one tool_calls row and one sample of gatehouse_mcp_tool_calls_total and
 * gatehouse_mcp_tool_call_duration_seconds. The HTTP request that carried the calls is one
 * requests row (path /v1/mcp/tool/execute or /mcp, no provider or model), so that it shows in
 * GET /api/logs and GET /api/logs/{id} lists its calls. These requests are not counted in
 * gatehouse_requests_total, whose labels are about models: their calls have their own families.
 */
#ifndef GATEHOUSE_GATEWAY_TOOL_LOG_H
#define GATEHOUSE_GATEWAY_TOOL_LOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "http/server.h"

/* Characters of a tool's own error text (isError) kept in its row. */
#define TOOL_LOG_MAX_ERROR 1024

/* True when the request's bodies, tool arguments and results may be logged: logs.content is on
 * and the request did not send x-gatehouse-log-content: false (or 0). */
bool tool_log_content_allowed(const http_request_t *req);

typedef struct tool_log_call {
    const char *request_id;
    const char *source;     /* "client" or "mcp" */
    const char *mcp_client; /* the hub's client name */
    const char *tool;       /* the tool's name on its server */
    double started_unix;
    double duration_s;
    const json_t *result;  /* the CallToolResult, or NULL when the call failed */
    const char *error;     /* why the call failed (no result), or NULL */
    const char *arguments; /* JSON text as sent to the server, or NULL */
    bool log_content;      /* arguments, result and the tool's error text may be logged */
} tool_log_call_t;

/* One tool call: its row and its metrics. A result with isError is not ok; its error text is
 * the tool's own words only when content may be logged, since they are part of the result. */
void tool_log_call(const tool_log_call_t *c);

typedef struct tool_log_request {
    const http_request_t *http; /* method, path and body */
    const char *request_id;
    const char *dialect;       /* "openai" (execute) or "mcp" */
    double started_unix;       /* wall clock at arrival */
    double latency_s;          /* arrival to the answer */
    double ttft_s;             /* arrival to the first byte of the answer; -1 when none went out */
    double upstream_s;         /* time the tool calls took */
    int status;                /* HTTP status sent; 499 when the client left */
    bool stream;               /* the answer was an SSE stream */
    const char *error_type;    /* NULL on success */
    const char *error_message; /* NULL on success */
    bool log_content;
    const char *response_body; /* the answer sent, or NULL */
    size_t response_len;
} tool_log_request_t;

/* The requests row of an HTTP request that ran tool calls. */
void tool_log_request(const tool_log_request_t *r);

#endif
