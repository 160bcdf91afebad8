/*
 * openai.c - the adapter for OpenAI chat completions and the whole OpenAI-compatible family
 * (groq, mistral, openrouter, xai, deepseek, cerebras, together, fireworks, ollama, vllm,
 * huggingface, ...: every provider of CONFIG_FAMILY_OPENAI).
 *
 * The canonical shape inside gatehouse is OpenAI's own, so this adapter is mostly a careful
 * pass-through: it is the hot path for the most common traffic, and it copies as little as it
 * can. The request body is assembled as a new top-level object that shares (by reference) every
 * value of the canonical request but the few it changes, then serialized straight into the
 * output buffer. Each streamed chunk is parsed once and handed on as the canonical chunk.
 *
 * Request (build_request):
 *   - URL: base_url + "/v1/chat/completions". Base URLs are configured without "/v1" (as in
 *     Bifrost); one whose path already names a version ("http://localhost:8000/v1" as people
 *     write for vLLM, or Gemini's ".../v1beta/openai") gets only "/chat/completions", so both
 *     spellings work and version-less compatible endpoints can be reached.
 *   - Headers: Content-Type, "Authorization: Bearer <key>" unless the key is "" (local servers),
 *     then the provider's extra_headers. An extra header named Authorization or Content-Type
 *     replaces ours rather than being sent twice.
 *   - Body: the canonical request with "model" set to the provider's model name and "stream" to
 *     the attempt's mode. When streaming, stream_options.include_usage is forced on: the gateway
 *     needs token counts for its logs and budgets whatever the client asked (whether the client
 *     sees the usage chunk is the gateway's business). When not streaming, stream_options is
 *     dropped, because OpenAI rejects it without "stream": true.
 *   - Canonical-only extensions are removed from assistant messages: "thinking_blocks" always
 *     (no OpenAI-compatible API knows it, and strict ones such as OpenAI, Groq and Mistral reject
 *     unknown message fields), "reasoning_content" for every provider except DeepSeek, whose
 *     thinking models require the reasoning of the current turn to be sent back with tool calls.
 *     Everything else passes through untouched, including provider-specific fields a client
 *     chose to send (OpenRouter's "provider", Groq's "reasoning_format", ...).
 *
 * Response (parse_response): the body already is a chat.completion; it is checked to be an
 * object with a "choices" array and returned as parsed. A 2xx body carrying an "error" object
 * instead (OpenRouter does this) is reported as that error.
 *
 * Errors (parse_error): OpenAI's {"error": {"message", "type", "code", "param"}}, and the shapes
 * seen in compatible servers: {"error": "text"}, {"message": ...} (Mistral), {"detail": ...}
 * (FastAPI-based servers such as vLLM and Hugging Face), a bare JSON string, or any non-JSON
 * text (a proxy's HTML page), which is trimmed, put on one line and bounded. An empty body gives
 * the status line. Messages are cut on a UTF-8 character boundary so they stay valid JSON text.
 *
 * Streams: every SSE data payload is a chat.completion.chunk, emitted as is; "[DONE]" ends the
 * stream. An event named "error" (Groq) or a payload carrying an "error" object (OpenRouter)
 * fails the stream with the upstream's message; malformed JSON fails it too. Empty payloads are
 * ignored (keep-alives). One fix keeps the gateway's accounting whole: Groq's older streams carry
 * usage only in "x_groq.usage", which is then copied to "usage".
 *
 * When is a stream complete? OpenAI ends every stream with "data: [DONE]"; a body that ends
 * before it was cut short. Some compatible servers, however, end the body right after the chunk
 * carrying finish_reason (and usage) without sending [DONE]. So the rule is: a stream is
 * complete when it saw [DONE], or when every choice that appeared in it received a non-null
 * finish_reason before the body ended. A stream that ends having seen no choice at all, or with
 * a choice still open, is reported as "upstream stream ended before [DONE]".
 *
 * Integers beyond 64 bits: some servers put a 64-bit unsigned "seed" in their choices (e.g.
 * 14836394043272784000), which jansson refuses. Such a body is parsed again with integers as
 * reals, and reals holding whole numbers that fit in 64 bits are turned back into integers, so
 * token counts stay integers and only the oversized value loses precision (a real written as
 * 1.0 in such a body also becomes 1; harmless, and only on this rare path).
 *
 * Not done here: the "reasoning" field that Groq, OpenRouter and Ollama put in deltas and
 * messages is passed on as is, not renamed to the canonical "reasoning_content"; an OpenAI
 * client sees what the provider sent.
 */
#include "providers/provider.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define OPENAI_PATH "/v1/chat/completions"
#define OPENAI_MAX_CHOICES 4096 /* choice indexes we track in a stream; OpenAI allows n <= 128 */
#define OPENAI_JSON_FLAGS (JSON_ALLOW_NUL | JSON_DECODE_ANY)

static const char openai_type_upstream[] = "upstream_error";

/* ---- JSON helpers ---------------------------------------------------------------------------- */

static bool openai_is_whole(const json_t *v)
{
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    return d >= -9.2e18 && d <= 9.2e18 && d == (double)(json_int_t)d;
}

/* After a parse with JSON_DECODE_INT_AS_REAL: whole numbers back to integers. */
static void openai_restore_integers(json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach (v, key, item) {
            if (openai_is_whole(item))
                json_object_set_new(v, key, json_integer((json_int_t)json_real_value(item)));
            else
                openai_restore_integers(item);
        }
    } else if (json_is_array(v)) {
        json_array_foreach (v, i, item) {
            if (openai_is_whole(item))
                json_array_set_new(v, i, json_integer((json_int_t)json_real_value(item)));
            else
                openai_restore_integers(item);
        }
    }
}

/* Parses an upstream body; see the file comment for the oversized-integer fallback. */
static json_t *openai_load(const char *data, size_t len, json_error_t *jerr)
{
    json_t *root = json_loadb(data, len, OPENAI_JSON_FLAGS, jerr);
    if (root != NULL || strstr(jerr->text, "too big") == NULL)
        return root;

    root = json_loadb(data, len, OPENAI_JSON_FLAGS | JSON_DECODE_INT_AS_REAL, jerr);
    if (root != NULL)
        openai_restore_integers(root);
    return root;
}

static int openai_dump_to_buf(const char *data, size_t size, void *arg)
{
    buf_append(arg, data, size);
    return 0;
}

/* ---- error messages -------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not valid. */
static size_t openai_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;

    /* The second byte's range excludes overlong forms, surrogates and code points > U+10FFFF. */
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;

    if (len > n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return len;
}

/* Appends text to a message buffer of cap bytes, never cutting a UTF-8 character. NUL bytes
 * (jansson allows "\u0000" with JSON_ALLOW_NUL) become '?' so they cannot end the message
 * early. With one_line, runs of whitespace become one space and other control bytes and
 * invalid UTF-8 become '?' (for raw bodies); otherwise the text is taken as valid UTF-8. */
static void openai_msg_append(char *out, size_t cap, size_t *pos, const char *text, size_t len,
                              bool one_line)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;

    while (i < len && *pos + 1 < cap) {
        size_t n = openai_utf8_seq(s + i, len - i);
        if (one_line && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) {
            if (*pos > 0 && out[*pos - 1] != ' ')
                out[(*pos)++] = ' ';
            i++;
            continue;
        }
        if (n == 0 || s[i] == '\0' || (one_line && s[i] < 0x20)) {
            out[(*pos)++] = '?';
            i += n ? n : 1;
            continue;
        }
        if (*pos + n >= cap)
            break;
        memcpy(out + *pos, s + i, n);
        *pos += n;
        i += n;
    }
    out[*pos] = '\0';
}

/* A parse failure. jansson's text quotes the offending input ("invalid token near '...'"),
 * which may be invalid UTF-8 or cut mid-character, so it goes through the raw-text filter. */
static void openai_json_error(provider_error_t *err, const char *what, const json_error_t *jerr)
{
    char where[64];
    size_t pos = 0;

    snprintf(where, sizeof(where), " (line %d, column %d)", jerr->line, jerr->column);
    err->type = openai_type_upstream;
    openai_msg_append(err->message, sizeof(err->message), &pos, what, strlen(what), false);
    openai_msg_append(err->message, sizeof(err->message), &pos, jerr->text, strlen(jerr->text),
                      true);
    openai_msg_append(err->message, sizeof(err->message), &pos, where, strlen(where), false);
}

/* Upstream error types we pass on; anything else is replaced by the type of the status. */
static const char *openai_known_type(const char *type)
{
    static const char *const known[] = {
        "invalid_request_error", "authentication_error", "permission_error",
        "not_found_error",       "rate_limit_error",     "api_error",
        "server_error",          "insufficient_quota",   "overloaded_error",
    };
    if (type == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(known[i], type) == 0)
            return known[i];
    }
    return NULL;
}

static const char *openai_status_type(long status)
{
    switch (status) {
    case 400:
    case 413:
    case 422:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
    }
}

static const char *openai_status_text(long status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

/* Appends a JSON value as message text: strings as they are, anything else serialized. */
static void openai_msg_value(provider_error_t *err, size_t *pos, const json_t *v)
{
    if (json_is_string(v)) {
        openai_msg_append(err->message, sizeof(err->message), pos, json_string_value(v),
                          json_string_length(v), false);
        return;
    }

    char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (dump != NULL) {
        openai_msg_append(err->message, sizeof(err->message), pos, dump, strlen(dump), false);
        free(dump);
    }
}

/* FastAPI's {"detail": [{"loc": [...], "msg": "..."}]}: the first item's msg is the news. */
static const json_t *openai_detail_message(const json_t *detail)
{
    if (json_is_array(detail) && json_array_size(detail) > 0) {
        const json_t *msg = json_object_get(json_array_get(detail, 0), "msg");
        if (json_is_string(msg))
            return msg;
    }
    return detail;
}

/* Fills err from an error object {"message", "type", "code", ...}. OpenRouter wraps the real
 * cause in metadata.raw; it is appended because "Provider returned error" alone helps no one. */
static void openai_error_object(const json_t *e, const char *fallback_type, provider_error_t *err)
{
    size_t pos = 0;
    const json_t *message = json_object_get(e, "message");

    err->message[0] = '\0';
    if (message != NULL && !json_is_null(message))
        openai_msg_value(err, &pos, message);
    else
        openai_msg_value(err, &pos, e);

    const json_t *raw = json_object_get(json_object_get(e, "metadata"), "raw");
    if (json_is_string(raw) && json_string_length(raw) > 0) {
        openai_msg_append(err->message, sizeof(err->message), &pos, ": ", 2, false);
        openai_msg_value(err, &pos, raw);
    }

    const char *type = openai_known_type(json_string_value(json_object_get(e, "type")));
    err->type = type ? type : fallback_type;
}

/* Fills err from a parsed error body. Returns false when the body has no recognisable
 * message, so that the caller falls back to the raw text. */
static bool openai_error_from_json(const json_t *root, const char *fallback_type,
                                   provider_error_t *err)
{
    size_t pos = 0;
    const json_t *v;

    err->message[0] = '\0';
    err->type = fallback_type;
    if (json_is_string(root) && json_string_length(root) > 0) {
        openai_msg_value(err, &pos, root);
        return true;
    }
    if (!json_is_object(root))
        return false;

    v = json_object_get(root, "error");
    if (json_is_object(v)) {
        openai_error_object(v, fallback_type, err);
        return err->message[0] != '\0';
    }
    if (json_is_string(v) && json_string_length(v) > 0) {
        openai_msg_value(err, &pos, v);
        return true;
    }

    v = json_object_get(root, "message");
    if (v != NULL && !json_is_null(v)) {
        openai_error_object(root, fallback_type, err);
        return err->message[0] != '\0';
    }

    v = json_object_get(root, "detail");
    if (v != NULL && !json_is_null(v)) {
        openai_msg_value(err, &pos, openai_detail_message(v));
        return err->message[0] != '\0';
    }
    return false;
}

static void openai_parse_error(long status, const char *body, size_t len, provider_error_t *err)
{
    const char *type = openai_status_type(status);

    if (body != NULL && len > 0) {
        json_error_t jerr;
        json_t *root = openai_load(body, len, &jerr);
        bool found = root != NULL && openai_error_from_json(root, type, err);
        json_decref(root);
        if (found)
            return;

        size_t pos = 0;
        err->type = type;
        openai_msg_append(err->message, sizeof(err->message), &pos, body, len, true);
        while (pos > 0 && err->message[pos - 1] == ' ')
            err->message[--pos] = '\0';
        if (pos > 0)
            return;
    }

    provider_error_set(err, type, "upstream returned HTTP %ld %s", status,
                       openai_status_text(status));
}

/* ---- request --------------------------------------------------------------------------------- */

/* True when the provider wants "reasoning_content" back on assistant messages. */
static bool openai_keeps_reasoning(const config_provider_t *p)
{
    return p != NULL && p->name != NULL && strcmp(p->name, "deepseek") == 0;
}

static bool openai_message_needs_strip(const json_t *m, bool keep_reasoning)
{
    if (json_object_get(m, "thinking_blocks") != NULL)
        return true;
    return !keep_reasoning && json_object_get(m, "reasoning_content") != NULL;
}

/* The messages array with canonical-only fields removed. Untouched messages are shared with
 * the canonical request; when nothing needs removing the canonical array itself is returned.
 * Returns a new reference. */
static json_t *openai_messages(json_t *messages, bool keep_reasoning)
{
    size_t i;
    json_t *m;
    bool any = false;

    json_array_foreach (messages, i, m) {
        if (json_is_object(m) && openai_message_needs_strip(m, keep_reasoning)) {
            any = true;
            break;
        }
    }
    if (!any)
        return json_incref(messages);

    json_t *out = json_array();
    json_array_foreach (messages, i, m) {
        if (!json_is_object(m) || !openai_message_needs_strip(m, keep_reasoning)) {
            json_array_append(out, m);
            continue;
        }
        json_t *copy = json_copy(m); /* shallow: the values stay shared */
        json_object_del(copy, "thinking_blocks");
        if (!keep_reasoning)
            json_object_del(copy, "reasoning_content");
        json_array_append_new(out, copy);
    }
    return out;
}

/* The client's stream_options plus include_usage: true. */
static json_t *openai_stream_options(json_t *client)
{
    json_t *opts = json_is_object(client) ? json_copy(client) : json_object();
    json_object_set_new(opts, "include_usage", json_true());
    return opts;
}

/* The upstream body as a new object sharing the canonical request's values. */
static json_t *openai_upstream_body(const provider_target_t *t, const json_t *canonical)
{
    json_t *src = (json_t *)canonical; /* jansson's API is not const-aware; nothing is changed */
    json_t *body = json_object();
    const char *key;
    json_t *value;

    json_object_foreach (src, key, value) {
        if (strcmp(key, "model") == 0)
            json_object_set_new(body, key, json_string(t->model));
        else if (strcmp(key, "stream") == 0)
            json_object_set_new(body, key, json_boolean(t->stream));
        else if (strcmp(key, "stream_options") == 0) {
            if (t->stream)
                json_object_set_new(body, key, openai_stream_options(value));
        } else if (strcmp(key, "messages") == 0)
            json_object_set_new(body, key,
                                openai_messages(value, openai_keeps_reasoning(t->provider)));
        else
            json_object_set(body, key, value);
    }

    /* Keys the canonical request did not carry. */
    if (json_object_get(body, "model") == NULL)
        json_object_set_new(body, "model", json_string(t->model));
    if (json_object_get(body, "stream") == NULL)
        json_object_set_new(body, "stream", json_boolean(t->stream));
    if (t->stream && json_object_get(body, "stream_options") == NULL)
        json_object_set_new(body, "stream_options", openai_stream_options(NULL));
    return body;
}

/* True for a path segment that names an API version: "v1", "v2", "v1beta", "v1alpha1". */
static bool openai_is_version_segment(const char *seg, size_t len)
{
    if (len < 2 || seg[0] != 'v' || seg[1] < '0' || seg[1] > '9')
        return false;
    for (size_t i = 2; i < len; i++) {
        char c = seg[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return true;
}

/* True when the path of the URL (after scheme and host) has a version segment. */
static bool openai_has_version(const char *base, size_t len)
{
    const char *scheme = strstr(base, "://");
    const char *p = scheme != NULL && (size_t)(scheme - base) < len ? scheme + 3 : base;
    const char *end = base + len;
    p = memchr(p, '/', (size_t)(end - p));

    while (p != NULL && p < end) {
        const char *seg = p + 1;
        const char *next = memchr(seg, '/', (size_t)(end - seg));
        size_t seg_len = (size_t)((next ? next : end) - seg);
        if (openai_is_version_segment(seg, seg_len))
            return true;
        p = next;
    }
    return false;
}

/* Base URLs normally stop before the version ("https://api.groq.com/openai"); one that already
 * names a version ("http://localhost:8000/v1", Gemini's ".../v1beta/openai") gets only
 * "/chat/completions". */
static char *openai_url(const char *base)
{
    size_t len = strlen(base);
    while (len > 0 && base[len - 1] == '/')
        len--;

    buf_t url = BUF_INIT;
    buf_append(&url, base, len);
    buf_appends(&url, openai_has_version(base, len) ? "/chat/completions" : OPENAI_PATH);
    return buf_release(&url);
}

static bool openai_has_header(const json_t *extra, const char *name)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)extra, key, value) {
        if (strcasecmp(key, name) == 0)
            return true;
    }
    return false;
}

static void openai_headers(const provider_target_t *t, provider_http_t *out)
{
    const json_t *extra = t->provider->extra_headers;

    if (!openai_has_header(extra, "Content-Type"))
        provider_http_add_header(out, "Content-Type", "application/json");

    if (t->api_key != NULL && t->api_key[0] != '\0' && !openai_has_header(extra, "Authorization")) {
        buf_t auth = BUF_INIT;
        buf_appendf(&auth, "Bearer %s", t->api_key);
        provider_http_add_header(out, "Authorization", buf_cstr(&auth));
        buf_free(&auth);
    }

    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)extra, key, value) {
        if (json_is_string(value))
            provider_http_add_header(out, key, json_string_value(value));
    }
}

/* out must have been set up with provider_http_init; the caller frees it in every case. */
static int openai_build_request(const provider_target_t *t, const json_t *canonical,
                                provider_http_t *out, provider_error_t *err)
{
    if (!json_is_object(canonical)) {
        provider_error_set(err, "invalid_request_error", "the request body is not an object");
        return -1;
    }

    free(out->url);
    out->url = openai_url(t->provider->base_url ? t->provider->base_url : "");
    openai_headers(t, out);

    json_t *body = openai_upstream_body(t, canonical);
    buf_reset(&out->body);
    int rc = json_dump_callback(body, openai_dump_to_buf, &out->body, JSON_COMPACT);
    json_decref(body);
    if (rc != 0) {
        provider_error_set(err, "invalid_request_error", "the request could not be serialized");
        return -1;
    }
    return 0;
}

/* ---- response -------------------------------------------------------------------------------- */

static json_t *openai_parse_response(const provider_target_t *t, const char *body, size_t len,
                                     provider_error_t *err)
{
    json_error_t jerr;
    json_t *root = openai_load(body, len, &jerr);
    if (root == NULL) {
        openai_json_error(err, "upstream response is not valid JSON: ", &jerr);
        return NULL;
    }

    if (json_is_array(json_object_get(root, "choices")))
        return root;

    const json_t *e = json_object_get(root, "error");
    if (e != NULL && !json_is_null(e) && openai_error_from_json(root, openai_type_upstream, err))
        err->type = openai_type_upstream;
    else
        provider_error_set(err, openai_type_upstream,
                           "upstream response is not a chat completion (no \"choices\" array)");
    json_decref(root);
    return NULL;
}

/* ---- streaming ------------------------------------------------------------------------------- */

enum { OPENAI_CHOICE_SEEN = 1, OPENAI_CHOICE_FINISHED = 2 };

typedef struct openai_stream {
    provider_emit_fn emit;
    void *arg;
    char request_id[64]; /* for log lines; copied, the target may not outlive the stream */
    bool done;           /* [DONE] arrived */
    uint8_t *choices;    /* OPENAI_CHOICE_* flags by choice index; owned */
    size_t n_choices;    /* entries in choices */
} openai_stream_t;

static provider_stream_t *openai_stream_new(const provider_target_t *t, provider_emit_fn emit,
                                            void *arg)
{
    openai_stream_t *s = xcalloc(1, sizeof(*s));
    s->emit = emit;
    s->arg = arg;
    snprintf(s->request_id, sizeof(s->request_id), "%s", t->request_id ? t->request_id : "");
    return (provider_stream_t *)s;
}

static void openai_stream_free(provider_stream_t *ps)
{
    openai_stream_t *s = (openai_stream_t *)ps;
    if (s == NULL)
        return;
    free(s->choices);
    free(s);
}

/* Records which choices appeared and which got a finish_reason. Returns -1 on an index that
 * is not a small non-negative integer. */
static int openai_track_choices(openai_stream_t *s, const json_t *choices, provider_error_t *err)
{
    size_t i;
    json_t *c;

    json_array_foreach (choices, i, c) {
        json_t *index = json_object_get(c, "index");
        json_int_t idx = index != NULL ? json_integer_value(index) : (json_int_t)i;
        if ((index != NULL && !json_is_integer(index)) || idx < 0 || idx >= OPENAI_MAX_CHOICES) {
            provider_error_set(err, openai_type_upstream,
                               "upstream stream chunk has an invalid choice index");
            return -1;
        }

        if ((size_t)idx >= s->n_choices) {
            size_t n = (size_t)idx + 1;
            s->choices = xrealloc(s->choices, n);
            memset(s->choices + s->n_choices, 0, n - s->n_choices);
            s->n_choices = n;
        }
        s->choices[idx] |= OPENAI_CHOICE_SEEN;
        if (json_is_string(json_object_get(c, "finish_reason")))
            s->choices[idx] |= OPENAI_CHOICE_FINISHED;
    }
    return 0;
}

/* An in-stream error, as {"error": {...}} or {"error": "text"}. */
static int openai_stream_error(const json_t *root, provider_error_t *err)
{
    if (!openai_error_from_json(root, openai_type_upstream, err))
        provider_error_set(err, openai_type_upstream, "upstream stream reported an error");
    return -1;
}

static bool openai_is_blank(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n')
            return false;
    }
    return true;
}

static bool openai_is_done(const char *data, size_t len)
{
    while (len > 0 && (data[len - 1] == ' ' || data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    return len == 6 && memcmp(data, "[DONE]", 6) == 0;
}

/* One parsed chunk: check it, fix usage, emit it, with the event's text when it is unchanged
 * (data, len). */
static int openai_stream_chunk(openai_stream_t *s, json_t *chunk, const char *data, size_t len,
                               provider_error_t *err)
{
    if (!json_is_object(chunk)) {
        provider_error_set(err, openai_type_upstream, "upstream stream chunk is not an object");
        return -1;
    }

    const json_t *e = json_object_get(chunk, "error");
    if (e != NULL && !json_is_null(e))
        return openai_stream_error(chunk, err);

    const json_t *choices = json_object_get(chunk, "choices");
    if (json_is_array(choices) && openai_track_choices(s, choices, err) != 0)
        return -1;

    if (json_object_get(chunk, "usage") == NULL || json_is_null(json_object_get(chunk, "usage"))) {
        json_t *groq_usage = json_object_get(json_object_get(chunk, "x_groq"), "usage");
        if (json_is_object(groq_usage)) {
            json_object_set(chunk, "usage", groq_usage);
            data = NULL; /* the text no longer says what the chunk says */
            len = 0;
        }
    }

    return s->emit(s->arg, chunk, data, len);
}

static int openai_stream_event(provider_stream_t *ps, const char *event, size_t event_len,
                               const char *data, size_t data_len, provider_error_t *err)
{
    openai_stream_t *s = (openai_stream_t *)ps;
    bool is_error_event = event_len == 5 && memcmp(event, "error", 5) == 0;

    if (s->done)
        return 1;
    if (!is_error_event && openai_is_blank(data, data_len))
        return 0;
    if (!is_error_event && openai_is_done(data, data_len)) {
        s->done = true;
        return 1;
    }

    json_error_t jerr;
    json_t *chunk = openai_load(data, data_len, &jerr);
    if (chunk == NULL) {
        if (is_error_event)
            openai_parse_error(500, data, data_len, err); /* a text payload is the message */
        else
            openai_json_error(err, "malformed JSON in upstream stream: ", &jerr);
        return -1;
    }

    int rc = is_error_event ? openai_stream_error(chunk, err)
                            : openai_stream_chunk(s, chunk, data, data_len, err);
    json_decref(chunk);
    return rc;
}

/* See the file comment: [DONE], or every choice finished, makes a complete stream. */
static bool openai_all_finished(const openai_stream_t *s)
{
    bool any = false;
    for (size_t i = 0; i < s->n_choices; i++) {
        if (!(s->choices[i] & OPENAI_CHOICE_SEEN))
            continue;
        if (!(s->choices[i] & OPENAI_CHOICE_FINISHED))
            return false;
        any = true;
    }
    return any;
}

static int openai_stream_finish(provider_stream_t *ps, provider_error_t *err)
{
    openai_stream_t *s = (openai_stream_t *)ps;

    if (s->done)
        return 0;
    if (openai_all_finished(s)) {
        log_debug(s->request_id[0] ? s->request_id : NULL,
                  "openai stream ended without [DONE] after every choice finished; complete");
        return 0;
    }
    provider_error_set(err, openai_type_upstream, "upstream stream ended before [DONE]");
    return -1;
}

const provider_ops_t provider_openai_ops = {
    .family_name = "openai",
    .response_is_body = true, /* openai_parse_response returns the body's JSON as it is */
    .build_request = openai_build_request,
    .parse_response = openai_parse_response,
    .parse_error = openai_parse_error,
    .stream_new = openai_stream_new,
    .stream_event = openai_stream_event,
    .stream_finish = openai_stream_finish,
    .stream_free = openai_stream_free,
};
