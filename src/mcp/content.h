/*
 * content.h - what a model sees of an MCP tool result: CallToolResult -> the OpenAI tool
 * message (Chat Completions) or the function_call_output item (Responses API).
 *
 * The content is one string, because that is what every provider accepts in a tool message
 * (OpenAI takes text parts too, others do not), and what the execute endpoint, agent mode and
 * Code Mode all pass on. The string is built from the result's content blocks in order, one
 * block per line group, joined with "\n":
 *
 *   text           its text, unchanged
 *   image          "[image: <mimeType>, <N> bytes]" (the pixels are not sent: a tool message
 *                  cannot carry an image part)
 *   audio          "[audio: <mimeType>, <N> bytes]"
 *   resource       embedded text: "[resource: <uri> (<mimeType>)]" then, on the next line, the
 *                  text; embedded blob: "[resource: <uri> (<mimeType>), <N> bytes]"
 *   resource_link  "[resource link: <name> <uri> (<mimeType>): <description>]", parts left out
 *                  when the server did not send them
 *   anything else  "[<type> content]"
 *
 * When no block is a text block and the result has structuredContent, its compact JSON is
 * added as the last part; when there is a text block, the server has already put the same data
 * there (the spec asks servers to), so it is not repeated. N is the decoded size of the base64
 * data.
 *
 * A result with "isError": true is a tool failure the model should see and react to, not a
 * gateway failure: the content is prefixed with "Error: " and *is_error is set, so that callers
 * can say so too (the execute endpoint answers 200 with the header x-gatehouse-tool-error:
 * true).
 */
#ifndef GATEHOUSE_MCP_CONTENT_H
#define GATEHOUSE_MCP_CONTENT_H

#include <jansson.h>
#include <stdbool.h>

#define MCP_CONTENT_ERROR_PREFIX "Error: "

/* The text of a CallToolResult as described above. Owned. is_error may be NULL. */
char *mcp_content_text(const json_t *call_result, bool *is_error);

/* {"role": "tool", "tool_call_id": tool_call_id, "content": text}. New reference. */
json_t *mcp_content_tool_message(const json_t *call_result, const char *tool_call_id,
                                 bool *is_error);

/* {"type": "function_call_output", "call_id": call_id, "output": text}. New reference. */
json_t *mcp_content_responses_output(const json_t *call_result, const char *call_id,
                                     bool *is_error);

/* The decoded size of base64 text (padding and whitespace not counted). */
size_t mcp_content_base64_size(const char *b64);

#endif
