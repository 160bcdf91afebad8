/*
 * anthropic_response.c - Anthropic Messages JSON response -> canonical chat.completion.
 *
 * A Messages response is a list of content blocks; a chat completion has one message with a
 * few fixed fields. The blocks are folded into that message in order:
 *   text              appended to content (null when the answer has no text at all)
 *   tool_use          a tool_calls entry; arguments is the input object serialized compactly
 *                     with its key order kept, so that a client sees the same bytes the model
 *                     produced
 *   thinking          its text appended to reasoning_content, and the whole block (with its
 *                     signature) to thinking_blocks, which a client must send back with the
 *                     next turn of a tool-using conversation
 *   redacted_thinking to thinking_blocks only: its data is encrypted and has no readable text
 *
 * Server-side tool blocks (server_tool_use, web_search_tool_result, code execution results,
 * mcp_tool_use, ...) and compaction blocks are skipped: Anthropic ran those tools itself, the
 * client can neither execute nor answer them, and the model's text after them already carries
 * what it learned. OpenAI's message shape has no place that would keep them meaningful.
 */
#include "providers/anthropic_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"

/* The message being assembled from the blocks. */
typedef struct folded {
    buf_t text;
    bool has_text;
    buf_t reasoning;
    bool has_reasoning;
    json_t *thinking_blocks; /* owned */
    json_t *tool_calls;      /* owned */
} folded_t;

static void fold_text(folded_t *f, const json_t *block)
{
    const char *text = json_string_value(json_object_get(block, "text"));
    if (text == NULL)
        return;
    buf_appends(&f->text, text);
    f->has_text = true;
}

static void fold_tool_use(folded_t *f, const json_t *block)
{
    const json_t *input = json_object_get(block, "input");
    char *args = json_is_object(input) ? json_dumps(input, JSON_COMPACT) : NULL;
    const char *id = json_string_value(json_object_get(block, "id"));
    const char *name = json_string_value(json_object_get(block, "name"));

    json_t *fn = json_object();
    json_object_set_new(fn, "name", json_string(name ? name : ""));
    json_object_set_new(fn, "arguments", json_string(args ? args : "{}"));
    free(args);

    json_t *call = json_object();
    json_object_set_new(call, "id", json_string(id ? id : ""));
    json_object_set_new(call, "type", json_string("function"));
    json_object_set_new(call, "function", fn);
    json_array_append_new(f->tool_calls, call);
}

static void fold_thinking(folded_t *f, const json_t *block)
{
    const char *thinking = json_string_value(json_object_get(block, "thinking"));
    const char *signature = json_string_value(json_object_get(block, "signature"));

    if (thinking != NULL) {
        buf_appends(&f->reasoning, thinking);
        f->has_reasoning = true;
    }

    json_t *tb = json_object();
    json_object_set_new(tb, "type", json_string("thinking"));
    json_object_set_new(tb, "thinking", json_string(thinking ? thinking : ""));
    json_object_set_new(tb, "signature", json_string(signature ? signature : ""));
    json_array_append_new(f->thinking_blocks, tb);
}

static void fold_redacted_thinking(folded_t *f, const json_t *block)
{
    const char *data = json_string_value(json_object_get(block, "data"));

    json_t *tb = json_object();
    json_object_set_new(tb, "type", json_string("redacted_thinking"));
    json_object_set_new(tb, "data", json_string(data ? data : ""));
    json_array_append_new(f->thinking_blocks, tb);
}

static void fold_block(folded_t *f, const json_t *block)
{
    static const struct {
        const char *type;
        void (*fold)(folded_t *f, const json_t *block);
    } handlers[] = {
        {"text", fold_text},
        {"tool_use", fold_tool_use},
        {"thinking", fold_thinking},
        {"redacted_thinking", fold_redacted_thinking},
    };
    const char *type = json_string_value(json_object_get(block, "type"));

    for (size_t i = 0; type && i < sizeof(handlers) / sizeof(handlers[0]); i++) {
        if (strcmp(type, handlers[i].type) == 0) {
            handlers[i].fold(f, block);
            return;
        }
    }
    /* Server tool and compaction blocks: skipped on purpose (see the top of the file). */
}

static json_t *folded_message(folded_t *f)
{
    json_t *msg = json_object();

    json_object_set_new(msg, "role", json_string("assistant"));
    json_object_set_new(msg, "content",
                        f->has_text ? json_stringn(buf_cstr(&f->text), f->text.len) : json_null());
    if (f->has_reasoning)
        json_object_set_new(msg, "reasoning_content",
                            json_stringn(buf_cstr(&f->reasoning), f->reasoning.len));
    if (json_array_size(f->thinking_blocks) > 0)
        json_object_set(msg, "thinking_blocks", f->thinking_blocks);
    if (json_array_size(f->tool_calls) > 0)
        json_object_set(msg, "tool_calls", f->tool_calls);
    return msg;
}

static void folded_free(folded_t *f)
{
    buf_free(&f->text);
    buf_free(&f->reasoning);
    json_decref(f->thinking_blocks);
    json_decref(f->tool_calls);
}

static json_t *completion_from(const provider_target_t *t, const json_t *root,
                               const json_t *content)
{
    folded_t f = {BUF_INIT, false, BUF_INIT, false, json_array(), json_array()};
    size_t i;
    json_t *block;

    json_array_foreach (content, i, block) {
        fold_block(&f, block);
    }

    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "message", folded_message(&f));
    const char *stop = json_string_value(json_object_get(root, "stop_reason"));
    json_object_set_new(choice, "finish_reason",
                        json_string(provider_anthropic_finish_reason(stop)));
    json_object_set_new(choice, "logprobs", json_null());
    folded_free(&f);

    json_t *choices = json_array();
    json_array_append_new(choices, choice);

    provider_anthropic_usage_t usage = {0, 0, 0, 0};
    provider_anthropic_usage_update(&usage, json_object_get(root, "usage"));

    const char *id = json_string_value(json_object_get(root, "id"));
    const char *model = json_string_value(json_object_get(root, "model"));
    json_t *out = json_object();
    json_object_set_new(out, "id", json_string(id ? id : ""));
    json_object_set_new(out, "object", json_string("chat.completion"));
    json_object_set_new(out, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(out, "model", json_string(model ? model : t->model ? t->model : ""));
    json_object_set_new(out, "choices", choices);
    json_object_set_new(out, "usage", provider_anthropic_usage_json(&usage));
    return out;
}

json_t *provider_anthropic_parse_response(const provider_target_t *t, const char *body, size_t len,
                                          provider_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);

    if (!json_is_object(root)) {
        provider_error_set(err, "api_error", "upstream sent an invalid Messages response: %s",
                           root ? "not a JSON object" : jerr.text);
        json_decref(root);
        return NULL;
    }

    /* A 2xx that carries an error body is still an error; say what Anthropic said. */
    const char *type = json_string_value(json_object_get(root, "type"));
    if (type != NULL && strcmp(type, "error") == 0 &&
        provider_anthropic_error_from_json(json_object_get(root, "error"), 0, err) == 0) {
        json_decref(root);
        return NULL;
    }

    const json_t *content = json_object_get(root, "content");
    if (!json_is_array(content)) {
        provider_error_set(err, "api_error",
                           "upstream sent a Messages response without a content array");
        json_decref(root);
        return NULL;
    }

    json_t *out = completion_from(t, root, content);
    json_decref(root);
    return out;
}
