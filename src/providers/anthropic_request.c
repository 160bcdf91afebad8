/*
 * anthropic_request.c - canonical OpenAI chat request -> Anthropic Messages request.
 *
 * The canonical request (an OpenAI chat completions body) is walked once, message by message,
 * into a new Messages body. The differences that shape the code:
 *
 *   - Anthropic has no system role in the conversation: every system and developer message,
 *     wherever it stands, goes into the top-level "system" (a string when there is exactly one
 *     string message, else an array of text blocks in order).
 *   - Turns must alternate user / assistant, and tool results are user content. So tool
 *     messages become tool_result blocks of a user turn, and a turn of the same role as the one
 *     before it is merged into it (two tool results in a row become one user turn, as Anthropic
 *     requires for parallel tool calls). Content is always written as an array of blocks so that
 *     merging is a plain append.
 *   - An assistant turn is ordered thinking blocks, text, tool_use: Anthropic requires the
 *     signed thinking blocks of a tool-using turn to come back first and unchanged, and OpenAI's
 *     message shape cannot say where text stood among the tool calls anyway.
 *   - Tool call arguments are a JSON string in OpenAI and a JSON object in Anthropic; a string
 *     that does not parse to an object is the client's error and is reported, not guessed at.
 *     An empty string is read as {} because several clients send it for argument-less tools.
 *
 * Parameters:
 *   - max_tokens is required by Anthropic: max_completion_tokens, else max_tokens, else 4096.
 *   - reasoning_effort becomes extended thinking with a budget: minimal and low 1024 tokens (the
 *     smallest budget Anthropic accepts), medium 4096, high 16384; "none" asks for no thinking.
 *     The budget must stay below max_tokens: without an explicit max_tokens the answer gets the
 *     default 4096 on top of the budget; with one, the budget shrinks to fit, and a max_tokens
 *     too small for even 1024 thinking tokens is an error. An explicit "thinking" object (the
 *     Anthropic shape, passed through unchanged) wins over reasoning_effort; its budget_tokens
 *     is likewise added to the default when max_tokens is absent.
 *   - response_format json_schema becomes output_config.format {type: json_schema, schema}, the
 *     generally available structured-outputs field. json_object has no Anthropic equivalent
 *     (there is no schema-less JSON mode) and is an error rather than being dropped; "text" is
 *     the default and adds nothing.
 *   - n other than 1 is an error. Fields with no Anthropic meaning (logprobs, seed, penalties,
 *     stream_options, service_tier, ...) are not sent; Anthropic always reports usage.
 */
#include "providers/anthropic_internal.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/buf.h"

#define DEFAULT_MAX_TOKENS 4096
#define MIN_THINKING_BUDGET 1024
#define DEFAULT_BASE_URL "https://api.anthropic.com"

/* The request under construction. */
typedef struct req {
    json_t *messages;      /* Anthropic turns built so far; owned */
    json_t *system;        /* text blocks gathered from system/developer messages; owned */
    bool system_is_string; /* exactly one system message so far, and it was a plain string */
    provider_error_t *err;
} req_t;

static int fail(provider_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(provider_error_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->type = "invalid_request_error";
    return -1;
}

/* json_dump_callback's sink: appends to a buf_t. */
static int dump_to_buf(const char *data, size_t size, void *arg)
{
    buf_append(arg, data, size);
    return 0;
}

static json_t *text_block(const char *text)
{
    json_t *b = json_object();
    json_object_set_new(b, "type", json_string("text"));
    json_object_set_new(b, "text", json_string(text));
    return b;
}

/* Appends blocks (stolen) as a turn of role, or to the last turn when it has the same role. */
static void append_turn(req_t *r, const char *role, json_t *blocks)
{
    size_t n = json_array_size(r->messages);
    json_t *last = n ? json_array_get(r->messages, n - 1) : NULL;
    const char *last_role = json_string_value(json_object_get(last, "role"));

    if (last_role != NULL && strcmp(last_role, role) == 0) {
        json_array_extend(json_object_get(last, "content"), blocks);
        json_decref(blocks);
        return;
    }

    json_t *turn = json_object();
    json_object_set_new(turn, "role", json_string(role));
    json_object_set_new(turn, "content", blocks);
    json_array_append_new(r->messages, turn);
}

/* Text parts of a content array -> text blocks. Used where only text makes sense (system,
 * tool results); what is the part's path, for the error. */
static json_t *text_parts(const json_t *content, const char *what, size_t idx,
                          provider_error_t *err)
{
    json_t *blocks = json_array();
    size_t i;
    json_t *part;

    json_array_foreach (content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *text = json_string_value(json_object_get(part, "text"));
        if (type == NULL || strcmp(type, "text") != 0 || text == NULL) {
            fail(err, "messages[%zu].content[%zu]: %s content must be text parts", idx, i, what);
            json_decref(blocks);
            return NULL;
        }
        json_array_append_new(blocks, text_block(text));
    }
    return blocks;
}

/* ---- system and developer messages ---------------------------------------------------------- */

static int convert_system(req_t *r, const json_t *msg, size_t idx)
{
    const json_t *content = json_object_get(msg, "content");
    bool was_empty = json_array_size(r->system) == 0;

    if (json_is_string(content)) {
        json_array_append_new(r->system, text_block(json_string_value(content)));
        r->system_is_string = was_empty;
        return 0;
    }
    if (!json_is_array(content))
        return fail(r->err, "messages[%zu]: system content must be a string or text parts", idx);

    json_t *blocks = text_parts(content, "system", idx, r->err);
    if (blocks == NULL)
        return -1;
    json_array_extend(r->system, blocks);
    json_decref(blocks);
    r->system_is_string = false;
    return 0;
}

/* ---- user messages -------------------------------------------------------------------------- */

/* "data:image/png;base64,AAAA" -> {"type":"base64","media_type":"image/png","data":"AAAA"}.
 * Anthropic takes only base64 data, so a data URL in another encoding is an error. */
static json_t *data_url_source(const char *url, size_t idx, size_t part, provider_error_t *err)
{
    const char *mime = url + strlen("data:");
    const char *comma = strchr(mime, ',');
    const char *semi = memchr(mime, ';', comma ? (size_t)(comma - mime) : 0);

    if (comma == NULL || semi == NULL || semi == mime ||
        strncmp(semi, ";base64,", strlen(";base64,")) != 0) {
        fail(err,
             "messages[%zu].content[%zu]: data URL must be of the form "
             "data:<media type>;base64,<data>",
             idx, part);
        return NULL;
    }

    json_t *src = json_object();
    json_object_set_new(src, "type", json_string("base64"));
    json_object_set_new(src, "media_type", json_stringn(mime, (size_t)(semi - mime)));
    json_object_set_new(src, "data", json_string(comma + 1));
    return src;
}

/* A URL as an Anthropic source: base64 for data: URLs, url for http(s). */
static json_t *url_source(const char *url, size_t idx, size_t part, provider_error_t *err)
{
    if (strncasecmp(url, "data:", 5) == 0)
        return data_url_source(url, idx, part, err);

    if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0) {
        fail(err, "messages[%zu].content[%zu]: only data: and http(s) URLs are supported", idx,
             part);
        return NULL;
    }
    json_t *src = json_object();
    json_object_set_new(src, "type", json_string("url"));
    json_object_set_new(src, "url", json_string(url));
    return src;
}

static json_t *source_block(const char *type, json_t *source)
{
    json_t *b = json_object();
    json_object_set_new(b, "type", json_string(type));
    json_object_set_new(b, "source", source);
    return b;
}

static json_t *image_part(const json_t *part, size_t idx, size_t i, provider_error_t *err)
{
    const json_t *image = json_object_get(part, "image_url");
    const char *url = json_is_string(image) ? json_string_value(image)
                                            : json_string_value(json_object_get(image, "url"));
    if (url == NULL) {
        fail(err, "messages[%zu].content[%zu]: image_url.url must be a string", idx, i);
        return NULL;
    }

    json_t *src = url_source(url, idx, i, err);
    return src ? source_block("image", src) : NULL;
}

/* OpenAI's file part carries a document as a data URL in file.file_data; Anthropic takes it as
 * a document block. Uploaded file ids belong to OpenAI's storage and cannot be sent here. */
static json_t *file_part(const json_t *part, size_t idx, size_t i, provider_error_t *err)
{
    const char *data =
        json_string_value(json_object_get(json_object_get(part, "file"), "file_data"));
    if (data == NULL || strncasecmp(data, "data:", 5) != 0) {
        fail(err,
             "messages[%zu].content[%zu]: file parts must carry file_data as a data URL "
             "(file ids cannot be sent to Anthropic)",
             idx, i);
        return NULL;
    }

    json_t *src = data_url_source(data, idx, i, err);
    return src ? source_block("document", src) : NULL;
}

static json_t *user_part(const json_t *part, size_t idx, size_t i, provider_error_t *err)
{
    const char *type = json_string_value(json_object_get(part, "type"));

    if (type == NULL) {
        fail(err, "messages[%zu].content[%zu]: content part without a type", idx, i);
        return NULL;
    }
    if (strcmp(type, "text") == 0) {
        const char *text = json_string_value(json_object_get(part, "text"));
        if (text == NULL)
            fail(err, "messages[%zu].content[%zu]: text part without text", idx, i);
        return text ? text_block(text) : NULL;
    }
    if (strcmp(type, "image_url") == 0)
        return image_part(part, idx, i, err);
    if (strcmp(type, "file") == 0)
        return file_part(part, idx, i, err);

    fail(err, "messages[%zu].content[%zu]: content part type '%s' is not supported by Anthropic",
         idx, i, type);
    return NULL;
}

static int convert_user(req_t *r, const json_t *msg, size_t idx)
{
    const json_t *content = json_object_get(msg, "content");

    if (json_is_string(content)) {
        json_t *blocks = json_array();
        json_array_append_new(blocks, text_block(json_string_value(content)));
        append_turn(r, "user", blocks);
        return 0;
    }
    if (!json_is_array(content))
        return fail(r->err, "messages[%zu]: user content must be a string or an array", idx);

    json_t *blocks = json_array();
    size_t i;
    json_t *part;
    json_array_foreach (content, i, part) {
        json_t *block = user_part(part, idx, i, r->err);
        if (block == NULL) {
            json_decref(blocks);
            return -1;
        }
        json_array_append_new(blocks, block);
    }
    append_turn(r, "user", blocks);
    return 0;
}

/* ---- assistant messages --------------------------------------------------------------------- */

static json_t *thinking_block(const json_t *tb, size_t idx, size_t i, provider_error_t *err)
{
    const char *type = json_string_value(json_object_get(tb, "type"));

    if (type != NULL && strcmp(type, "thinking") == 0) {
        const char *thinking = json_string_value(json_object_get(tb, "thinking"));
        const char *signature = json_string_value(json_object_get(tb, "signature"));
        if (thinking == NULL || signature == NULL) {
            fail(err, "messages[%zu].thinking_blocks[%zu]: thinking and signature missing", idx, i);
            return NULL;
        }
        json_t *b = json_object();
        json_object_set_new(b, "type", json_string("thinking"));
        json_object_set_new(b, "thinking", json_string(thinking));
        json_object_set_new(b, "signature", json_string(signature));
        return b;
    }
    if (type != NULL && strcmp(type, "redacted_thinking") == 0) {
        const char *data = json_string_value(json_object_get(tb, "data"));
        if (data == NULL) {
            fail(err, "messages[%zu].thinking_blocks[%zu]: data must be a string", idx, i);
            return NULL;
        }
        json_t *b = json_object();
        json_object_set_new(b, "type", json_string("redacted_thinking"));
        json_object_set_new(b, "data", json_string(data));
        return b;
    }
    fail(err, "messages[%zu].thinking_blocks[%zu]: type must be thinking or redacted_thinking", idx,
         i);
    return NULL;
}

static int add_thinking_blocks(json_t *blocks, const json_t *msg, size_t idx, provider_error_t *err)
{
    const json_t *list = json_object_get(msg, "thinking_blocks");
    size_t i;
    json_t *tb;

    if (list == NULL || json_is_null(list))
        return 0;
    if (!json_is_array(list))
        return fail(err, "messages[%zu]: thinking_blocks must be an array", idx);

    json_array_foreach (list, i, tb) {
        json_t *b = thinking_block(tb, idx, i, err);
        if (b == NULL)
            return -1;
        json_array_append_new(blocks, b);
    }
    return 0;
}

/* Assistant text: a string or text (and refusal) parts. Empty text is left out because
 * Anthropic rejects empty text blocks. */
static int add_assistant_text(json_t *blocks, const json_t *msg, size_t idx, provider_error_t *err)
{
    const json_t *content = json_object_get(msg, "content");
    size_t i;
    json_t *part;

    if (content == NULL || json_is_null(content))
        return 0;
    if (json_is_string(content)) {
        if (json_string_length(content) > 0)
            json_array_append_new(blocks, text_block(json_string_value(content)));
        return 0;
    }
    if (!json_is_array(content))
        return fail(err, "messages[%zu]: assistant content must be a string or an array", idx);

    json_array_foreach (content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *key = type && strcmp(type, "refusal") == 0 ? "refusal" : "text";
        const char *text = json_string_value(json_object_get(part, key));
        if (type == NULL || (strcmp(type, "text") != 0 && strcmp(type, "refusal") != 0) ||
            text == NULL)
            return fail(err, "messages[%zu].content[%zu]: assistant content must be text parts",
                        idx, i);
        if (text[0] != '\0')
            json_array_append_new(blocks, text_block(text));
    }
    return 0;
}

/* The arguments string -> the input object. */
static json_t *tool_input(const char *args, size_t idx, size_t i, provider_error_t *err)
{
    size_t skip = strspn(args, " \t\r\n");
    if (args[skip] == '\0')
        return json_object();

    json_error_t jerr;
    json_t *input = json_loads(args, 0, &jerr);
    if (input == NULL) {
        fail(err, "messages[%zu].tool_calls[%zu].function.arguments is not valid JSON: %s", idx, i,
             jerr.text);
        return NULL;
    }
    if (!json_is_object(input)) {
        json_decref(input);
        fail(err, "messages[%zu].tool_calls[%zu].function.arguments must be a JSON object", idx, i);
        return NULL;
    }
    return input;
}

static json_t *tool_use_block(const json_t *tc, size_t idx, size_t i, provider_error_t *err)
{
    const char *type = json_string_value(json_object_get(tc, "type"));
    const json_t *fn = json_object_get(tc, "function");
    const char *id = json_string_value(json_object_get(tc, "id"));
    const char *name = json_string_value(json_object_get(fn, "name"));
    const char *args = json_string_value(json_object_get(fn, "arguments"));

    if (type != NULL && strcmp(type, "function") != 0) {
        fail(err, "messages[%zu].tool_calls[%zu]: tool call type '%s' is not supported", idx, i,
             type);
        return NULL;
    }
    if (id == NULL || name == NULL) {
        fail(err, "messages[%zu].tool_calls[%zu]: id and function.name must be strings", idx, i);
        return NULL;
    }

    json_t *input = tool_input(args ? args : "", idx, i, err);
    if (input == NULL)
        return NULL;

    json_t *b = json_object();
    json_object_set_new(b, "type", json_string("tool_use"));
    json_object_set_new(b, "id", json_string(id));
    json_object_set_new(b, "name", json_string(name));
    json_object_set_new(b, "input", input);
    return b;
}

static int add_tool_calls(json_t *blocks, const json_t *msg, size_t idx, provider_error_t *err)
{
    const json_t *calls = json_object_get(msg, "tool_calls");
    size_t i;
    json_t *tc;

    if (calls == NULL || json_is_null(calls))
        return 0;
    if (!json_is_array(calls))
        return fail(err, "messages[%zu]: tool_calls must be an array", idx);

    json_array_foreach (calls, i, tc) {
        json_t *b = tool_use_block(tc, idx, i, err);
        if (b == NULL)
            return -1;
        json_array_append_new(blocks, b);
    }
    return 0;
}

static int convert_assistant(req_t *r, const json_t *msg, size_t idx)
{
    json_t *blocks = json_array();

    if (add_thinking_blocks(blocks, msg, idx, r->err) != 0 ||
        add_assistant_text(blocks, msg, idx, r->err) != 0 ||
        add_tool_calls(blocks, msg, idx, r->err) != 0) {
        json_decref(blocks);
        return -1;
    }

    /* An assistant message with nothing to say (content "" and no calls) has no Anthropic
     * form; leaving it out lets its neighbours merge instead of failing the request. */
    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return 0;
    }
    append_turn(r, "assistant", blocks);
    return 0;
}

/* ---- tool results --------------------------------------------------------------------------- */

static int convert_tool(req_t *r, const json_t *msg, size_t idx)
{
    const char *id = json_string_value(json_object_get(msg, "tool_call_id"));
    const json_t *content = json_object_get(msg, "content");
    json_t *result_content = NULL;

    if (id == NULL)
        return fail(r->err, "messages[%zu]: tool message without tool_call_id", idx);

    if (json_is_string(content)) {
        result_content = json_copy((json_t *)content);
    } else if (json_is_array(content)) {
        result_content = text_parts(content, "tool", idx, r->err);
        if (result_content == NULL)
            return -1;
    } else if (content != NULL && !json_is_null(content)) {
        return fail(r->err, "messages[%zu]: tool content must be a string or text parts", idx);
    }

    json_t *b = json_object();
    json_object_set_new(b, "type", json_string("tool_result"));
    json_object_set_new(b, "tool_use_id", json_string(id));
    if (result_content != NULL)
        json_object_set_new(b, "content", result_content);

    json_t *blocks = json_array();
    json_array_append_new(blocks, b);
    append_turn(r, "user", blocks);
    return 0;
}

/* ---- the conversation ----------------------------------------------------------------------- */

static int convert_message(req_t *r, const json_t *msg, size_t idx)
{
    const char *role = json_string_value(json_object_get(msg, "role"));

    if (role == NULL)
        return fail(r->err, "messages[%zu]: role must be a string", idx);
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
        return convert_system(r, msg, idx);
    if (strcmp(role, "user") == 0)
        return convert_user(r, msg, idx);
    if (strcmp(role, "assistant") == 0)
        return convert_assistant(r, msg, idx);
    if (strcmp(role, "tool") == 0)
        return convert_tool(r, msg, idx);

    /* The legacy "function" role names no call id, so its result cannot be tied to a tool_use
     * block. */
    return fail(r->err, "messages[%zu]: role '%s' is not supported by Anthropic", idx, role);
}

static int convert_messages(req_t *r, const json_t *canonical, json_t *body)
{
    const json_t *messages = json_object_get(canonical, "messages");
    size_t i;
    json_t *msg;

    if (!json_is_array(messages))
        return fail(r->err, "'messages' must be an array");

    json_array_foreach (messages, i, msg) {
        if (!json_is_object(msg))
            return fail(r->err, "messages[%zu] must be an object", i);
        if (convert_message(r, msg, i) != 0)
            return -1;
    }

    if (json_array_size(r->system) == 1 && r->system_is_string) {
        json_t *only = json_array_get(r->system, 0);
        json_object_set(body, "system", json_object_get(only, "text"));
    } else if (json_array_size(r->system) > 0) {
        json_object_set(body, "system", r->system);
    }
    json_object_set(body, "messages", r->messages);
    return 0;
}

/* ---- tools ---------------------------------------------------------------------------------- */

static json_t *convert_tool_def(const json_t *tool, size_t i, provider_error_t *err)
{
    const char *type = json_string_value(json_object_get(tool, "type"));
    const json_t *fn = json_object_get(tool, "function");
    const char *name = json_string_value(json_object_get(fn, "name"));

    if (type == NULL || strcmp(type, "function") != 0) {
        fail(err, "tools[%zu]: only function tools are supported by Anthropic", i);
        return NULL;
    }
    if (name == NULL) {
        fail(err, "tools[%zu]: function.name must be a string", i);
        return NULL;
    }

    json_t *out = json_object();
    json_object_set_new(out, "name", json_string(name));
    json_t *desc = json_object_get(fn, "description");
    if (json_is_string(desc))
        json_object_set(out, "description", desc);

    /* Anthropic requires a schema; OpenAI lets a function without parameters stand for one that
     * takes none. */
    json_t *params = json_object_get(fn, "parameters");
    if (json_is_object(params)) {
        json_object_set_new(out, "input_schema", json_deep_copy(params));
    } else {
        json_t *schema = json_object();
        json_object_set_new(schema, "type", json_string("object"));
        json_object_set_new(schema, "properties", json_object());
        json_object_set_new(out, "input_schema", schema);
    }

    json_t *strict = json_object_get(fn, "strict");
    if (json_is_boolean(strict))
        json_object_set(out, "strict", strict);
    return out;
}

static int convert_tools(const json_t *canonical, json_t *body, provider_error_t *err)
{
    const json_t *tools = json_object_get(canonical, "tools");
    size_t i;
    json_t *tool;

    if (tools == NULL || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return fail(err, "'tools' must be an array");
    if (json_array_size(tools) == 0)
        return 0;

    json_t *out = json_array();
    json_array_foreach (tools, i, tool) {
        json_t *t = convert_tool_def(tool, i, err);
        if (t == NULL) {
            json_decref(out);
            return -1;
        }
        json_array_append_new(out, t);
    }
    json_object_set_new(body, "tools", out);
    return 0;
}

static json_t *tool_choice_of_type(const char *type)
{
    json_t *tc = json_object();
    json_object_set_new(tc, "type", json_string(type));
    return tc;
}

static json_t *convert_tool_choice_value(const json_t *choice, provider_error_t *err)
{
    static const struct {
        const char *openai;
        const char *anthropic;
    } modes[] = {{"auto", "auto"}, {"required", "any"}, {"none", "none"}};

    if (json_is_string(choice)) {
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
            if (strcmp(json_string_value(choice), modes[i].openai) == 0)
                return tool_choice_of_type(modes[i].anthropic);
        }
        fail(err, "tool_choice '%s' is not supported", json_string_value(choice));
        return NULL;
    }

    const char *type = json_string_value(json_object_get(choice, "type"));
    const char *name =
        json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
    if (type == NULL || strcmp(type, "function") != 0 || name == NULL) {
        fail(err, "tool_choice must be auto, required, none or "
                  "{\"type\":\"function\",\"function\":{\"name\":...}}");
        return NULL;
    }
    json_t *tc = tool_choice_of_type("tool");
    json_object_set_new(tc, "name", json_string(name));
    return tc;
}

/* tool_choice, with parallel_tool_calls: false folded in as disable_parallel_tool_use (which
 * Anthropic keeps inside tool_choice, and which means nothing when tools are off). */
static int convert_tool_choice(const json_t *canonical, json_t *body, provider_error_t *err)
{
    const json_t *choice = json_object_get(canonical, "tool_choice");
    json_t *tc = NULL;

    if (choice != NULL && !json_is_null(choice)) {
        tc = convert_tool_choice_value(choice, err);
        if (tc == NULL)
            return -1;
    }

    if (json_is_false(json_object_get(canonical, "parallel_tool_calls")) &&
        json_object_get(body, "tools") != NULL) {
        if (tc == NULL)
            tc = tool_choice_of_type("auto");
        if (strcmp(json_string_value(json_object_get(tc, "type")), "none") != 0)
            json_object_set_new(tc, "disable_parallel_tool_use", json_true());
    }

    if (tc != NULL)
        json_object_set_new(body, "tool_choice", tc);
    return 0;
}

/* ---- sampling and output parameters --------------------------------------------------------- */

/* Copies a number field when present; null means absent. */
static int copy_number(const json_t *canonical, const char *from, json_t *body, const char *to,
                       provider_error_t *err)
{
    json_t *v = json_object_get(canonical, from);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return fail(err, "'%s' must be a number", from);
    json_object_set(body, to, v);
    return 0;
}

/* The max_tokens the client asked for, or 0 when it did not say. */
static int requested_max_tokens(const json_t *canonical, json_int_t *out, provider_error_t *err)
{
    static const char *const keys[] = {"max_completion_tokens", "max_tokens"};

    *out = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(canonical, keys[i]);
        if (v == NULL || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            return fail(err, "'%s' must be a positive integer", keys[i]);
        *out = json_integer_value(v);
        return 0;
    }
    return 0;
}

/* reasoning_effort -> thinking budget in tokens; 0 for "none"; -1 for an unknown level. */
static json_int_t effort_budget(const char *effort)
{
    static const struct {
        const char *level;
        json_int_t budget;
    } levels[] = {
        {"none", 0}, {"minimal", 1024}, {"low", 1024}, {"medium", 4096}, {"high", 16384},
    };

    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(effort, levels[i].level) == 0)
            return levels[i].budget;
    }
    return -1;
}

static json_t *thinking_enabled(json_int_t budget)
{
    json_t *th = json_object();
    json_object_set_new(th, "type", json_string("enabled"));
    json_object_set_new(th, "budget_tokens", json_integer(budget));
    return th;
}

/* The thinking budget and the object to send for it. An explicit "thinking" object is the
 * client's own Anthropic setting and goes as it is; reasoning_effort is translated. Returns the
 * budget (0 when there is none), or -1 with err filled. */
static json_int_t convert_thinking(const json_t *canonical, json_t *body, bool *explicit_out,
                                   provider_error_t *err)
{
    const json_t *thinking = json_object_get(canonical, "thinking");
    const json_t *effort = json_object_get(canonical, "reasoning_effort");

    *explicit_out = false;
    if (json_is_object(thinking)) {
        json_t *budget = json_object_get(thinking, "budget_tokens");
        json_object_set_new(body, "thinking", json_deep_copy(thinking));
        *explicit_out = true;
        return json_is_integer(budget) && json_integer_value(budget) > 0
                   ? json_integer_value(budget)
                   : 0;
    }
    if (thinking != NULL && !json_is_null(thinking))
        return fail(err, "'thinking' must be an object");

    if (effort == NULL || json_is_null(effort))
        return 0;
    if (!json_is_string(effort))
        return fail(err, "'reasoning_effort' must be a string");

    json_int_t budget = effort_budget(json_string_value(effort));
    if (budget < 0)
        return fail(err, "reasoning_effort '%s' is not one of none, minimal, low, medium, high",
                    json_string_value(effort));
    return budget;
}

/* max_tokens and thinking, which constrain each other (see the top of the file). */
static int convert_budget(const json_t *canonical, json_t *body, provider_error_t *err)
{
    json_int_t max_tokens;
    bool is_explicit;

    if (requested_max_tokens(canonical, &max_tokens, err) != 0)
        return -1;
    json_int_t budget = convert_thinking(canonical, body, &is_explicit, err);
    if (budget < 0)
        return -1;

    /* Without a max_tokens of its own, the answer gets the default on top of the thinking. */
    if (max_tokens == 0)
        max_tokens = budget + DEFAULT_MAX_TOKENS;

    if (!is_explicit && budget > 0) {
        if (budget >= max_tokens && max_tokens - 1 < MIN_THINKING_BUDGET)
            return fail(err,
                        "max_tokens %lld leaves no room for thinking (reasoning_effort "
                        "needs more than %d)",
                        (long long)max_tokens, MIN_THINKING_BUDGET);
        if (budget >= max_tokens)
            budget = max_tokens - 1;
        json_object_set_new(body, "thinking", thinking_enabled(budget));
    }

    json_object_set_new(body, "max_tokens", json_integer(max_tokens));
    return 0;
}

static int convert_stop(const json_t *canonical, json_t *body, provider_error_t *err)
{
    const json_t *stop = json_object_get(canonical, "stop");
    size_t i;
    json_t *s;

    if (stop == NULL || json_is_null(stop))
        return 0;
    if (json_is_string(stop)) {
        json_t *list = json_array();
        json_array_append(list, (json_t *)stop);
        json_object_set_new(body, "stop_sequences", list);
        return 0;
    }
    if (!json_is_array(stop))
        return fail(err, "'stop' must be a string or an array of strings");

    json_array_foreach (stop, i, s) {
        if (!json_is_string(s))
            return fail(err, "'stop' must be a string or an array of strings");
    }
    if (json_array_size(stop) > 0)
        json_object_set_new(body, "stop_sequences", json_copy((json_t *)stop));
    return 0;
}

static int convert_response_format(const json_t *canonical, json_t *body, provider_error_t *err)
{
    const json_t *rf = json_object_get(canonical, "response_format");
    if (rf == NULL || json_is_null(rf))
        return 0;

    const char *type = json_string_value(json_object_get(rf, "type"));
    if (type != NULL && strcmp(type, "text") == 0)
        return 0;
    if (type == NULL || strcmp(type, "json_schema") != 0)
        return fail(err, "response_format '%s' is not supported by Anthropic; use json_schema",
                    type ? type : "?");

    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    if (!json_is_object(schema))
        return fail(err, "response_format.json_schema.schema must be an object");

    json_t *format = json_object();
    json_object_set_new(format, "type", json_string("json_schema"));
    json_object_set_new(format, "schema", json_deep_copy(schema));
    json_t *output_config = json_object();
    json_object_set_new(output_config, "format", format);
    json_object_set_new(body, "output_config", output_config);
    return 0;
}

static int convert_params(const json_t *canonical, json_t *body, provider_error_t *err)
{
    json_t *n = json_object_get(canonical, "n");
    if (n != NULL && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1))
        return fail(err, "'n' other than 1 is not supported by Anthropic");

    if (convert_budget(canonical, body, err) != 0 ||
        copy_number(canonical, "temperature", body, "temperature", err) != 0 ||
        copy_number(canonical, "top_p", body, "top_p", err) != 0 ||
        copy_number(canonical, "top_k", body, "top_k", err) != 0 ||
        convert_stop(canonical, body, err) != 0 ||
        convert_response_format(canonical, body, err) != 0)
        return -1;

    const char *user = json_string_value(json_object_get(canonical, "user"));
    if (user != NULL) {
        json_t *meta = json_object();
        json_object_set_new(meta, "user_id", json_string(user));
        json_object_set_new(body, "metadata", meta);
    }
    return 0;
}

/* ---- the HTTP request ----------------------------------------------------------------------- */

static bool has_header(const json_t *headers, const char *name)
{
    const char *key;
    json_t *v;

    json_object_foreach ((json_t *)headers, key, v) {
        if (strcasecmp(key, name) == 0)
            return true;
    }
    return false;
}

static void add_headers(const provider_target_t *t, provider_http_t *out)
{
    const json_t *extra = t->provider ? t->provider->extra_headers : NULL;
    const char *key;
    json_t *v;

    provider_http_add_header(out, "content-type", "application/json");
    if (t->api_key != NULL && t->api_key[0] != '\0')
        provider_http_add_header(out, "x-api-key", t->api_key);
    if (!has_header(extra, "anthropic-version"))
        provider_http_add_header(out, "anthropic-version", PROVIDER_ANTHROPIC_VERSION);

    json_object_foreach ((json_t *)extra, key, v) {
        if (json_is_string(v))
            provider_http_add_header(out, key, json_string_value(v));
    }
}

static char *messages_url(const provider_target_t *t)
{
    const char *base =
        t->provider && t->provider->base_url ? t->provider->base_url : DEFAULT_BASE_URL;
    buf_t url = BUF_INIT;
    buf_appendf(&url, "%s/v1/messages", base);
    return buf_release(&url);
}

static json_t *build_body(const provider_target_t *t, const json_t *canonical,
                          provider_error_t *err)
{
    req_t r = {json_array(), json_array(), false, err};
    json_t *body = json_object();
    int rc = 0;

    json_object_set_new(body, "model", json_string(t->model ? t->model : ""));
    if (convert_params(canonical, body, err) != 0 || convert_messages(&r, canonical, body) != 0 ||
        convert_tools(canonical, body, err) != 0 || convert_tool_choice(canonical, body, err) != 0)
        rc = -1;
    json_object_set_new(body, "stream", json_boolean(t->stream));

    json_decref(r.messages);
    json_decref(r.system);
    if (rc != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

int provider_anthropic_build_request(const provider_target_t *t, const json_t *canonical,
                                     provider_http_t *out, provider_error_t *err)
{
    if (!json_is_object(canonical))
        return fail(err, "the request body must be a JSON object");

    json_t *body = build_body(t, canonical, err);
    if (body == NULL)
        return -1;

    /* Straight into the body buffer: json_dumps would build the text, copy it and free it. */
    int rc = json_dump_callback(body, dump_to_buf, &out->body, JSON_COMPACT);
    json_decref(body);
    if (rc != 0)
        return fail(err, "the request could not be serialized");

    out->url = messages_url(t);
    add_headers(t, out);
    return 0;
}
