/*
 * anthropic.c - the Anthropic Messages adapter: its ops table, upstream error bodies, and the
 * mappings that the JSON and the streaming response paths share.
 *
 * The translation itself lives in anthropic_request.c, anthropic_response.c and
 * anthropic_stream.c (see anthropic_internal.h for who does what). This file holds what must
 * not drift apart between a JSON answer and a streamed one: how a stop_reason becomes a
 * finish_reason, how Anthropic's four token counts become OpenAI's usage, and how an Anthropic
 * error type becomes an OpenAI one.
 *
 * Mapping choices, with reasons:
 *   - stop_reason end_turn and stop_sequence -> "stop"; max_tokens and
 *     model_context_window_exceeded -> "length"; tool_use -> "tool_calls"; refusal ->
 *     "content_filter". pause_turn (a server tool such as web search paused a long turn) ->
 *     "stop": OpenAI has no "continue me" reason, and the text so far is a complete answer as far
 *     as the client can tell; a client that wants the rest sends the conversation again.
 *   - Anthropic's input_tokens excludes cached prompt tokens, OpenAI's prompt_tokens includes
 *     them, so prompt_tokens = input + cache read + cache write, and the cache counts are kept
 *     in the canonical extensions so that cost accounting can price them apart.
 */
#include "providers/anthropic_internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"

/* ---- shared mappings ------------------------------------------------------------------------ */

static void usage_take(json_int_t *field, const json_t *usage, const char *key)
{
    json_t *v = json_object_get(usage, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        *field = json_integer_value(v);
}

void provider_anthropic_usage_update(provider_anthropic_usage_t *u, const json_t *usage)
{
    if (!json_is_object(usage))
        return;
    usage_take(&u->input_tokens, usage, "input_tokens");
    usage_take(&u->output_tokens, usage, "output_tokens");
    usage_take(&u->cache_read_input_tokens, usage, "cache_read_input_tokens");
    usage_take(&u->cache_creation_input_tokens, usage, "cache_creation_input_tokens");
}

json_t *provider_anthropic_usage_json(const provider_anthropic_usage_t *u)
{
    json_int_t prompt =
        u->input_tokens + u->cache_read_input_tokens + u->cache_creation_input_tokens;

    json_t *details = json_object();
    json_object_set_new(details, "cached_tokens", json_integer(u->cache_read_input_tokens));

    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(prompt));
    json_object_set_new(usage, "completion_tokens", json_integer(u->output_tokens));
    json_object_set_new(usage, "total_tokens", json_integer(prompt + u->output_tokens));
    json_object_set_new(usage, "prompt_tokens_details", details);
    json_object_set_new(usage, "cache_creation_input_tokens",
                        json_integer(u->cache_creation_input_tokens));
    return usage;
}

const char *provider_anthropic_finish_reason(const char *stop_reason)
{
    static const struct {
        const char *anthropic;
        const char *openai;
    } map[] = {
        {"end_turn", "stop"},
        {"stop_sequence", "stop"},
        {"pause_turn", "stop"},
        {"max_tokens", "length"},
        {"model_context_window_exceeded", "length"},
        {"tool_use", "tool_calls"},
        {"refusal", "content_filter"},
    };

    for (size_t i = 0; stop_reason && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(stop_reason, map[i].anthropic) == 0)
            return map[i].openai;
    }
    /* A reason this adapter does not know yet ended the turn normally as far as we can tell;
     * "stop" keeps the client's own loop going rather than failing a finished answer. */
    return "stop";
}

static const char *status_error_type(long status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 408:
    case 504:
        return "timeout_error";
    case 429:
        return "rate_limit_error";
    default:
        if (status >= 500 || status == 0)
            return "api_error";
        return "invalid_request_error";
    }
}

const char *provider_anthropic_error_type(const char *anthropic_type, long status)
{
    static const struct {
        const char *anthropic;
        const char *openai;
    } map[] = {
        {"invalid_request_error", "invalid_request_error"},
        {"not_found_error", "invalid_request_error"},
        {"request_too_large", "invalid_request_error"},
        {"authentication_error", "authentication_error"},
        {"permission_error", "permission_error"},
        {"billing_error", "insufficient_quota"},
        {"rate_limit_error", "rate_limit_error"},
        {"timeout_error", "timeout_error"},
        {"api_error", "api_error"},
        {"overloaded_error", "api_error"},
    };

    for (size_t i = 0; anthropic_type && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(anthropic_type, map[i].anthropic) == 0)
            return map[i].openai;
    }
    return status_error_type(status);
}

int provider_anthropic_error_from_json(const json_t *error, long status, provider_error_t *err)
{
    const char *message = json_string_value(json_object_get(error, "message"));
    if (message == NULL)
        return -1;

    const char *type = json_string_value(json_object_get(error, "type"));
    provider_error_set(err, provider_anthropic_error_type(type, status), "%s", message);
    return 0;
}

/* ---- upstream error bodies ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when it is not one. The checks
 * are the ones jansson's json_string applies (no overlongs, no surrogates, nothing past
 * U+10FFFF), so that a message we copy from a raw body can always become a JSON string later. */
static size_t utf8_sequence(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;

    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Copies a raw body into err->message: valid UTF-8 only (other bytes become '?'), never
 * cutting a character in two when the body is longer than the message. */
static void error_set_raw(provider_error_t *err, const char *type, const char *body, size_t len)
{
    const unsigned char *p = (const unsigned char *)body;
    size_t out = 0;
    size_t room = sizeof(err->message) - 1;

    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(p + i, len - i);
        size_t take = n ? n : 1;
        if (out + take > room)
            break;
        if (n == 0 || p[i] == '\0')
            err->message[out] = '?';
        else
            memcpy(err->message + out, p + i, n);
        out += take;
        i += take;
    }
    err->message[out] = '\0';
    err->type = type;
}

/* Anthropic's error body is {"type":"error","error":{"type":"overloaded_error","message":...}}.
 * Anything else (a proxy's HTML page, an empty 502) is passed on as text, so that the client
 * sees what the upstream said rather than a guess. */
static void anthropic_parse_error(long status, const char *body, size_t len, provider_error_t *err)
{
    json_t *root = body != NULL ? json_loadb(body, len, 0, NULL) : NULL;
    int rc =
        root ? provider_anthropic_error_from_json(json_object_get(root, "error"), status, err) : -1;
    json_decref(root);
    if (rc == 0)
        return;

    if (body != NULL && len > 0)
        error_set_raw(err, status_error_type(status), body, len);
    else
        provider_error_set(err, status_error_type(status), "upstream returned HTTP status %ld",
                           status);
}

const provider_ops_t provider_anthropic_ops = {
    .family_name = "anthropic",
    .response_is_body = false, /* the answer is translated */
    .build_request = provider_anthropic_build_request,
    .parse_response = provider_anthropic_parse_response,
    .parse_error = anthropic_parse_error,
    .stream_new = provider_anthropic_stream_new,
    .stream_event = provider_anthropic_stream_event,
    .stream_finish = provider_anthropic_stream_finish,
    .stream_free = provider_anthropic_stream_free,
};
