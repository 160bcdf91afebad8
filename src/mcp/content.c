/*
 * content.c - CallToolResult -> tool message text (the mapping is specified in content.h).
 *
 * One function per content block type, each appending its part to the output; the parts are
 * joined with newlines. Malformed blocks (a missing field, a wrong type) are described rather
 * than refused: a model is better served by "[image: ?, 0 bytes]" than by a failed call.
 */
#include "mcp/content.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static const char *str_or(const json_t *obj, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : fallback;
}

size_t mcp_content_base64_size(const char *b64)
{
    /* Every 4 characters carry 3 bytes; '=' padding carries none. */
    size_t chars = 0;
    for (const char *p = b64; p != NULL && *p != '\0'; p++) {
        if (*p != '=' && *p != '\n' && *p != '\r' && *p != ' ' && *p != '\t')
            chars++;
    }
    return chars * 3 / 4;
}

/* ---- one function per block type ------------------------------------------------------------ */

static void part_media(buf_t *out, const json_t *block, const char *kind)
{
    const char *data = str_or(block, "data", "");
    buf_appendf(out, "[%s: %s, %zu bytes]", kind, str_or(block, "mimeType", "?"),
                mcp_content_base64_size(data));
}

static void part_resource(buf_t *out, const json_t *block)
{
    const json_t *res = json_object_get(block, "resource");
    const char *uri = str_or(res, "uri", "?");
    const char *mime = str_or(res, "mimeType", NULL);
    const char *text = str_or(res, "text", NULL);
    const char *blob = str_or(res, "blob", NULL);

    buf_appendf(out, "[resource: %s", uri);
    if (mime != NULL)
        buf_appendf(out, " (%s)", mime);
    if (text == NULL)
        buf_appendf(out, ", %zu bytes", mcp_content_base64_size(blob));
    buf_appends(out, "]");
    if (text != NULL) {
        buf_appendc(out, '\n');
        buf_appends(out, text);
    }
}

static void part_resource_link(buf_t *out, const json_t *block)
{
    const char *name = str_or(block, "name", NULL);
    const char *mime = str_or(block, "mimeType", NULL);
    const char *desc = str_or(block, "description", NULL);

    buf_appends(out, "[resource link: ");
    if (name != NULL)
        buf_appendf(out, "%s ", name);
    buf_appends(out, str_or(block, "uri", "?"));
    if (mime != NULL)
        buf_appendf(out, " (%s)", mime);
    if (desc != NULL)
        buf_appendf(out, ": %s", desc);
    buf_appends(out, "]");
}

/* Appends one block's part. Returns true when it was a text block. */
static bool append_block(buf_t *out, const json_t *block)
{
    const char *type = str_or(block, "type", "?");
    if (strcmp(type, "text") == 0) {
        buf_appends(out, str_or(block, "text", ""));
        return true;
    }
    if (strcmp(type, "image") == 0)
        part_media(out, block, "image");
    else if (strcmp(type, "audio") == 0)
        part_media(out, block, "audio");
    else if (strcmp(type, "resource") == 0)
        part_resource(out, block);
    else if (strcmp(type, "resource_link") == 0)
        part_resource_link(out, block);
    else
        buf_appendf(out, "[%s content]", type);
    return false;
}

/* ---- the result ----------------------------------------------------------------------------- */

char *mcp_content_text(const json_t *call_result, bool *is_error)
{
    bool error = json_is_true(json_object_get(call_result, "isError"));
    if (is_error != NULL)
        *is_error = error;

    buf_t out = BUF_INIT;
    if (error)
        buf_appends(&out, MCP_CONTENT_ERROR_PREFIX);
    size_t start = out.len;

    bool saw_text = false;
    const json_t *content = json_object_get(call_result, "content");
    size_t i;
    const json_t *block;
    json_array_foreach (content, i, block) {
        if (out.len > start)
            buf_appendc(&out, '\n');
        saw_text |= append_block(&out, block);
    }

    const json_t *structured = json_object_get(call_result, "structuredContent");
    if (!saw_text && structured != NULL && !json_is_null(structured)) {
        char *text = json_dumps(structured, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text != NULL) {
            if (out.len > start)
                buf_appendc(&out, '\n');
            buf_appends(&out, text);
            free(text);
        }
    }
    return buf_release(&out);
}

json_t *mcp_content_tool_message(const json_t *call_result, const char *tool_call_id,
                                 bool *is_error)
{
    char *text = mcp_content_text(call_result, is_error);
    json_t *msg = json_object();
    json_object_set_new(msg, "role", json_string("tool"));
    json_object_set_new(msg, "tool_call_id", json_string(tool_call_id));
    json_object_set_new(msg, "content", json_string(text));
    free(text);
    return msg;
}

json_t *mcp_content_responses_output(const json_t *call_result, const char *call_id, bool *is_error)
{
    char *text = mcp_content_text(call_result, is_error);
    json_t *item = json_object();
    json_object_set_new(item, "type", json_string("function_call_output"));
    json_object_set_new(item, "call_id", json_string(call_id));
    json_object_set_new(item, "output", json_string(text));
    free(text);
    return item;
}
