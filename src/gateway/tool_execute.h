/*
 * tool_execute.h - POST /v1/mcp/tool/execute: runs one tool call, as a model asked for it, on
 * the MCP server that offers the tool, and answers with the message to send back to the model.
 *
 * Body: an OpenAI tool call, {"id", "type": "function", "function": {"name", "arguments"}},
 * where name is the tool's exposed name (hub.h) and arguments a JSON object, as a string (as
 * models produce it) or as an object. With ?format=responses the body is a Responses API item,
 * {"type": "function_call", "call_id", "name", "arguments"}, and so is the answer.
 *
 * Answer: 200 with {"role": "tool", "tool_call_id", "content"} (or {"type":
 * "function_call_output", "call_id", "output"}), content mapped as mcp/content.h says; a tool
 * that reports a failure (isError) is still a 200, with x-gatehouse-tool-error: true. Gateway
 * failures use the OpenAI error shape: 400 malformed body or arguments, 403 tool filtered out
 * by the request's x-gatehouse-mcp-include-* headers, 404 unknown tool, 502 the server
 * answered with a JSON-RPC error (its message is passed on) or the connection broke, 503 the
 * server is not connected, 504 no answer within the tool timeout. docs/mcp.md is the user's
 * reference.
 */
#ifndef GATEHOUSE_GATEWAY_TOOL_EXECUTE_H
#define GATEHOUSE_GATEWAY_TOOL_EXECUTE_H

#include "gateway/gateway.h"
#include "http/server.h"

#define TOOL_EXECUTE_PATH "/v1/mcp/tool/execute"

/* Owns req and finishes it exactly once (handlers.h). */
void tool_execute_handle(http_request_t *req, gateway_worker_t *w, const char *request_id);

#endif
