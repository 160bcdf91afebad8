/*
 * test_anthropic.c - unit tests for the Anthropic Messages adapter (src/providers/anthropic*.c).
 *
 * Two sources of truth:
 *   - our own fixtures (tests/fixtures/anthropic/), written from Anthropic's documented formats,
 *     with the expected canonical values spelled out in the tests, so the suite stands alone;
 *   - the recorded exchanges in the shared cassettes (anthropic/ and the Anthropic runs of
 *     tool_choice_matrix/), when present. For those, the test computes what the client should
 *     see straight from the recording (text, tool calls, thinking, finish reason, usage) with
 *     its own small reader, and compares it with what the adapter produced. Streams go through
 *     the real SSE parser (src/util/sse.c) into the adapter; the expectations come from a naive
 *     split of the recorded text, so the two paths share no code.
 *
 * Both sides are reduced to one "summary" object, {content, reasoning, tool_calls: [{id, name,
 * arguments}], thinking_blocks, finish_reason, usage}, so that one json_equal checks a whole
 * answer and a failure prints both sides.
 *
 * Requests are checked the other way round: a recorded Messages request is turned back into
 * the canonical OpenAI request a client would have sent, build_request translates it, and the
 * result must equal the recorded body. Two normalizations are applied to the recording, both
 * meaning-preserving: tool_result blocks lose "is_error": false (OpenAI tool messages cannot
 * say it, and false is Anthropic's default), and string user content becomes one text block
 * (the adapter always writes block arrays). Recordings that use what OpenAI's shape cannot
 * express (server tools, cache_control, citations, ...) are counted as not comparable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cassette.h"
#include "config/config.h"
#include "providers/provider.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/sse.h"

#define FIXTURES "tests/fixtures/anthropic/"

static const provider_ops_t *ops = &provider_anthropic_ops;

/* ---- small helpers -------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        print_error("cannot open %s\n", path);
        fail();
    }
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return buf_release(&b);
}

static json_t *load_json(const char *path)
{
    json_error_t jerr;
    json_t *v = json_load_file(path, 0, &jerr);
    if (v == NULL) {
        print_error("%s: %s\n", path, jerr.text);
        fail();
    }
    return v;
}

/* Fails with both trees printed when they differ. */
static void assert_json_equal(const json_t *got, const json_t *want, const char *where)
{
    if (json_equal((json_t *)got, (json_t *)want))
        return;
    char *g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *w = json_dumps(want, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    print_error("%s: mismatch\n--- got:\n%.6000s\n--- want:\n%.6000s\n", where, g ? g : "(null)",
                w ? w : "(null)");
    free(g);
    free(w);
    fail();
}

static config_provider_t test_provider = {
    .name = (char *)"anthropic",
    .family = CONFIG_FAMILY_ANTHROPIC,
    .base_url = (char *)"https://api.anthropic.com",
};

static provider_target_t target(const char *model, bool stream)
{
    provider_target_t t = {&test_provider, model, "sk-ant-test", stream, "req-test"};
    return t;
}

/* A value by a path such as "choices[0].delta.content", or NULL. */
static json_t *jpath(const json_t *root, const char *path)
{
    const json_t *v = root;
    char key[128];

    while (*path != '\0' && v != NULL) {
        size_t n = strcspn(path, ".[");
        if (n > 0) {
            snprintf(key, sizeof(key), "%.*s", (int)n, path);
            v = json_object_get(v, key);
            path += n;
        }
        if (*path == '[') {
            char *end;
            v = json_array_get(v, strtoul(path + 1, &end, 10));
            path = *end == ']' ? end + 1 : end;
        }
        if (*path == '.')
            path++;
    }
    return (json_t *)v;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static json_t *str_or_null(const buf_t *b, bool has)
{
    return has ? json_stringn(buf_cstr(b), b->len) : json_null();
}

/* ---- independent expectations --------------------------------------------------------------- */

static const char *expected_finish(const char *stop_reason)
{
    static const char *const map[][2] = {
        {"end_turn", "stop"},
        {"stop_sequence", "stop"},
        {"pause_turn", "stop"},
        {"max_tokens", "length"},
        {"tool_use", "tool_calls"},
        {"refusal", "content_filter"},
        {"model_context_window_exceeded", "length"},
    };
    for (size_t i = 0; stop_reason && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(stop_reason, map[i][0]) == 0)
            return map[i][1];
    }
    return "stop";
}

static json_int_t int_field(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/* The canonical usage for Anthropic counts, computed the way the contract states it. */
static json_t *expected_usage(json_int_t in, json_int_t out, json_int_t cache_read,
                              json_int_t cache_write)
{
    json_int_t prompt = in + cache_read + cache_write;
    return json_pack("{s:I, s:I, s:I, s:{s:I}, s:I}", "prompt_tokens", prompt, "completion_tokens",
                     out, "total_tokens", prompt + out, "prompt_tokens_details", "cached_tokens",
                     cache_read, "cache_creation_input_tokens", cache_write);
}

static json_t *summary_new(void)
{
    return json_pack("{s:n, s:n, s:[], s:[], s:n, s:n}", "content", "reasoning", "tool_calls",
                     "thinking_blocks", "finish_reason", "usage");
}

static json_t *tool_summary(const char *id, const char *name, const char *args)
{
    return json_pack("{s:s, s:s, s:s}", "id", id ? id : "", "name", name ? name : "", "arguments",
                     args ? args : "");
}

/* What a recorded Messages JSON response must become. */
static json_t *expected_from_message(const json_t *msg)
{
    json_t *sum = summary_new();
    buf_t text = BUF_INIT, reasoning = BUF_INIT;
    bool has_text = false, has_reasoning = false;
    size_t i;
    json_t *b;

    json_array_foreach (json_object_get(msg, "content"), i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (strcmp(type, "text") == 0) {
            buf_appends(&text, json_string_value(json_object_get(b, "text")));
            has_text = true;
        } else if (strcmp(type, "tool_use") == 0) {
            char *args = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
            json_array_append_new(json_object_get(sum, "tool_calls"),
                                  tool_summary(json_string_value(json_object_get(b, "id")),
                                               json_string_value(json_object_get(b, "name")),
                                               args));
            free(args);
        } else if (strcmp(type, "thinking") == 0) {
            buf_appends(&reasoning, json_string_value(json_object_get(b, "thinking")));
            has_reasoning = true;
            json_array_append_new(json_object_get(sum, "thinking_blocks"), json_deep_copy(b));
        } else if (strcmp(type, "redacted_thinking") == 0) {
            json_array_append_new(json_object_get(sum, "thinking_blocks"), json_deep_copy(b));
        }
    }

    const json_t *u = json_object_get(msg, "usage");
    json_object_set_new(sum, "content", str_or_null(&text, has_text));
    json_object_set_new(sum, "reasoning", str_or_null(&reasoning, has_reasoning));
    json_object_set_new(
        sum, "finish_reason",
        json_string(expected_finish(json_string_value(json_object_get(msg, "stop_reason")))));
    json_object_set_new(sum, "usage",
                        expected_usage(int_field(u, "input_tokens"), int_field(u, "output_tokens"),
                                       int_field(u, "cache_read_input_tokens"),
                                       int_field(u, "cache_creation_input_tokens")));
    buf_free(&text);
    buf_free(&reasoning);
    return sum;
}

/* The adapter's chat.completion reduced to a summary. */
static json_t *summary_from_completion(const json_t *completion)
{
    json_t *sum = summary_new();
    const json_t *choice = json_array_get(json_object_get(completion, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    size_t i;
    json_t *tc;

    json_object_set(sum, "content", json_object_get(msg, "content"));
    if (json_object_get(msg, "reasoning_content"))
        json_object_set(sum, "reasoning", json_object_get(msg, "reasoning_content"));
    json_array_foreach (json_object_get(msg, "tool_calls"), i, tc) {
        const json_t *fn = json_object_get(tc, "function");
        assert_string_equal(json_string_value(json_object_get(tc, "type")), "function");
        json_array_append_new(json_object_get(sum, "tool_calls"),
                              tool_summary(json_string_value(json_object_get(tc, "id")),
                                           json_string_value(json_object_get(fn, "name")),
                                           json_string_value(json_object_get(fn, "arguments"))));
    }
    if (json_object_get(msg, "thinking_blocks"))
        json_object_set(sum, "thinking_blocks", json_object_get(msg, "thinking_blocks"));
    json_object_set(sum, "finish_reason", json_object_get(choice, "finish_reason"));
    json_object_set(sum, "usage", json_object_get(completion, "usage"));
    return sum;
}

/* One recorded block of a stream, as the expectation reader tracks it. */
typedef struct exp_block {
    char type[64];
    char *id, *name;
    buf_t text; /* text, partial_json or thinking, concatenated */
    char *signature;
    char *data;
} exp_block_t;

typedef struct exp_stream {
    exp_block_t blocks[512]; /* indexed by Anthropic block index */
    size_t n_blocks;
    int order[512]; /* block indexes in start order */
    size_t n_order;
    char *id, *model;
    json_int_t usage[4]; /* input, output, cache read, cache write */
    char *stop_reason;
    bool saw_stop;
} exp_stream_t;

static void exp_usage(exp_stream_t *e, const json_t *u)
{
    static const char *const keys[] = {"input_tokens", "output_tokens", "cache_read_input_tokens",
                                       "cache_creation_input_tokens"};
    for (size_t i = 0; i < 4; i++) {
        if (json_is_integer(json_object_get(u, keys[i])))
            e->usage[i] = int_field(u, keys[i]);
    }
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void exp_event(exp_stream_t *e, const json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_int_t index = int_field(ev, "index");
    assert_true(index >= 0 && index < 512);
    exp_block_t *b = &e->blocks[index];

    if (strcmp(type, "message_start") == 0) {
        const json_t *m = json_object_get(ev, "message");
        e->id = dup_or_null(json_string_value(json_object_get(m, "id")));
        e->model = dup_or_null(json_string_value(json_object_get(m, "model")));
        exp_usage(e, json_object_get(m, "usage"));
    } else if (strcmp(type, "content_block_start") == 0) {
        const json_t *cb = json_object_get(ev, "content_block");
        snprintf(b->type, sizeof(b->type), "%s", json_string_value(json_object_get(cb, "type")));
        b->id = dup_or_null(json_string_value(json_object_get(cb, "id")));
        b->name = dup_or_null(json_string_value(json_object_get(cb, "name")));
        b->data = dup_or_null(json_string_value(json_object_get(cb, "data")));
        e->order[e->n_order++] = (int)index;
        if ((size_t)index + 1 > e->n_blocks)
            e->n_blocks = (size_t)index + 1;
    } else if (strcmp(type, "content_block_delta") == 0) {
        const json_t *d = json_object_get(ev, "delta");
        const char *dt = json_string_value(json_object_get(d, "type"));
        if (strcmp(dt, "text_delta") == 0)
            buf_appends(&b->text, json_string_value(json_object_get(d, "text")));
        else if (strcmp(dt, "input_json_delta") == 0)
            buf_appends(&b->text, json_string_value(json_object_get(d, "partial_json")));
        else if (strcmp(dt, "thinking_delta") == 0)
            buf_appends(&b->text, json_string_value(json_object_get(d, "thinking")));
        else if (strcmp(dt, "signature_delta") == 0)
            b->signature = dup_or_null(json_string_value(json_object_get(d, "signature")));
    } else if (strcmp(type, "message_delta") == 0) {
        free(e->stop_reason);
        e->stop_reason = dup_or_null(
            json_string_value(json_object_get(json_object_get(ev, "delta"), "stop_reason")));
        exp_usage(e, json_object_get(ev, "usage"));
    } else if (strcmp(type, "message_stop") == 0) {
        e->saw_stop = true;
    }
}

/* Reads a recorded stream the naive way: every "data:" line is one event's JSON. Enough for
 * Anthropic's own framing (one data line per event), and independent of src/util/sse.c. */
static void exp_read(exp_stream_t *e, const char *text)
{
    char *copy = xstrdup(text);
    char *save = NULL;
    for (char *ev = strtok_r(copy, "\n", &save); ev; ev = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ev, "data:", 5) != 0)
            continue;
        json_error_t jerr;
        json_t *v = json_loads(ev + 5, 0, &jerr);
        if (v == NULL) {
            print_error("recorded event is not JSON: %s\n", jerr.text);
            fail();
        }
        exp_event(e, v);
        json_decref(v);
    }
    free(copy);
}

static void exp_free(exp_stream_t *e)
{
    for (size_t i = 0; i < e->n_blocks; i++) {
        free(e->blocks[i].id);
        free(e->blocks[i].name);
        free(e->blocks[i].signature);
        free(e->blocks[i].data);
        buf_free(&e->blocks[i].text);
    }
    free(e->id);
    free(e->model);
    free(e->stop_reason);
    free(e);
}

static json_t *exp_summary(const exp_stream_t *e)
{
    json_t *sum = summary_new();
    buf_t text = BUF_INIT, reasoning = BUF_INIT;

    for (size_t k = 0; k < e->n_order; k++) {
        const exp_block_t *b = &e->blocks[e->order[k]];
        if (strcmp(b->type, "text") == 0) {
            buf_append(&text, buf_cstr(&b->text), b->text.len);
        } else if (strcmp(b->type, "tool_use") == 0) {
            json_array_append_new(json_object_get(sum, "tool_calls"),
                                  tool_summary(b->id, b->name, buf_cstr(&b->text)));
        } else if (strcmp(b->type, "thinking") == 0) {
            buf_append(&reasoning, buf_cstr(&b->text), b->text.len);
            if (b->signature)
                json_array_append_new(json_object_get(sum, "thinking_blocks"),
                                      json_pack("{s:s, s:s, s:s}", "type", "thinking", "thinking",
                                                buf_cstr(&b->text), "signature", b->signature));
        } else if (strcmp(b->type, "redacted_thinking") == 0) {
            json_array_append_new(json_object_get(sum, "thinking_blocks"),
                                  json_pack("{s:s, s:s}", "type", "redacted_thinking", "data",
                                            b->data ? b->data : ""));
        }
    }

    json_object_set_new(sum, "content", str_or_null(&text, text.len > 0));
    json_object_set_new(sum, "reasoning", str_or_null(&reasoning, reasoning.len > 0));
    json_object_set_new(sum, "finish_reason", json_string(expected_finish(e->stop_reason)));
    json_object_set_new(sum, "usage",
                        expected_usage(e->usage[0], e->usage[1], e->usage[2], e->usage[3]));
    buf_free(&text);
    buf_free(&reasoning);
    return sum;
}

/* ---- running a stream through sse.c and the adapter ----------------------------------------- */

typedef struct run {
    provider_stream_t *s;
    json_t *chunks;   /* a copy of every chunk emitted */
    int event_rc;     /* the first non-zero stream_event result */
    int finish_rc;    /* stream_finish's result */
    int feed_rc;      /* sse_parser_feed's last result */
    size_t emit_stop; /* emit returns 9 on this chunk (1-based); 0 = never */
    provider_error_t err;
} run_t;

static int collect_chunk(void *arg, json_t *chunk, const char *raw, size_t raw_len)
{
    run_t *r = arg;
    assert_null(raw); /* every chunk is a translation: there is no upstream text to relay */
    assert_int_equal(raw_len, 0);
    json_array_append_new(r->chunks, json_deep_copy(chunk));
    return r->emit_stop && json_array_size(r->chunks) == r->emit_stop ? 9 : 0;
}

static int feed_event(void *arg, const char *event, size_t event_len, const char *data,
                      size_t data_len)
{
    run_t *r = arg;
    int rc = ops->stream_event(r->s, event, event_len, data, data_len, &r->err);
    if (rc != 0 && r->event_rc == 0)
        r->event_rc = rc;
    return rc;
}

/* Feeds bytes in pieces of at most step bytes (0 = all at once), then finishes the stream. */
static void run_stream(run_t *r, const char *bytes, size_t len, size_t step, size_t emit_stop)
{
    provider_target_t t = target("claude-test", true);
    memset(r, 0, sizeof(*r));
    r->chunks = json_array();
    r->emit_stop = emit_stop;
    r->s = ops->stream_new(&t, collect_chunk, r);

    sse_parser_t p;
    sse_parser_init(&p, feed_event, r);
    if (step == 0)
        step = len ? len : 1;
    for (size_t off = 0; off < len && r->feed_rc == 0; off += step) {
        size_t n = len - off < step ? len - off : step;
        r->feed_rc = sse_parser_feed(&p, bytes + off, n);
    }
    sse_parser_finish(&p);
    sse_parser_free(&p);

    provider_error_t ferr = {"", NULL};
    r->finish_rc = ops->stream_finish(r->s, &ferr);
    if (r->event_rc == 0)
        r->err = ferr;
    ops->stream_free(r->s);
    r->s = NULL;
}

static void run_free(run_t *r)
{
    json_decref(r->chunks);
}

/* Checks the envelope of every chunk; the usage chunk, when there is one, comes last. */
static void check_chunks(const json_t *chunks, const char *id, const char *model)
{
    size_t i;
    json_t *c;

    assert_true(json_array_size(chunks) > 0);
    const json_t *first = json_array_get(chunks, 0);
    const json_t *delta0 =
        json_object_get(json_array_get(json_object_get(first, "choices"), 0), "delta");
    assert_string_equal(json_string_value(json_object_get(delta0, "role")), "assistant");

    json_array_foreach (chunks, i, c) {
        assert_string_equal(json_string_value(json_object_get(c, "object")),
                            "chat.completion.chunk");
        assert_string_equal(json_string_value(json_object_get(c, "id")), id);
        assert_string_equal(json_string_value(json_object_get(c, "model")), model);
        assert_true(json_integer_value(json_object_get(c, "created")) > 1600000000);
        const json_t *choices = json_object_get(c, "choices");
        if (json_array_size(choices) == 0) {
            assert_non_null(json_object_get(c, "usage"));
            assert_int_equal(i, json_array_size(chunks) - 1);
            continue;
        }
        assert_int_equal(json_array_size(choices), 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(choices, 0), "index")),
                         0);
    }
}

static void acc_tool_delta(json_t *calls, const json_t *tc)
{
    size_t index = (size_t)json_integer_value(json_object_get(tc, "index"));
    const json_t *fn = json_object_get(tc, "function");

    /* OpenAI tool call indexes are dense and start at 0: a new one is the next one. */
    assert_true(index <= json_array_size(calls));
    if (index == json_array_size(calls)) {
        assert_non_null(json_object_get(tc, "id"));
        assert_string_equal(json_string_value(json_object_get(tc, "type")), "function");
        json_array_append_new(calls,
                              tool_summary(json_string_value(json_object_get(tc, "id")),
                                           json_string_value(json_object_get(fn, "name")), ""));
    } else {
        assert_null(json_object_get(tc, "id"));
    }

    json_t *call = json_array_get(calls, index);
    const char *piece = json_string_value(json_object_get(fn, "arguments"));
    if (piece != NULL) {
        buf_t args = BUF_INIT;
        buf_appends(&args, json_string_value(json_object_get(call, "arguments")));
        buf_appends(&args, piece);
        json_object_set_new(call, "arguments", json_string(buf_cstr(&args)));
        buf_free(&args);
    }
}

/* What a client accumulating the chunks ends up with. */
static json_t *summary_from_chunks(const json_t *chunks)
{
    json_t *sum = summary_new();
    buf_t text = BUF_INIT, reasoning = BUF_INIT;
    size_t i, k;
    json_t *c, *item;

    json_array_foreach (chunks, i, c) {
        if (json_object_get(c, "usage"))
            json_object_set(sum, "usage", json_object_get(c, "usage"));
        const json_t *choice = json_array_get(json_object_get(c, "choices"), 0);
        const json_t *delta = json_object_get(choice, "delta");
        const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
        if (finish != NULL)
            json_object_set_new(sum, "finish_reason", json_string(finish));

        buf_appends(&text, or_empty(json_string_value(json_object_get(delta, "content"))));
        buf_appends(&reasoning,
                    or_empty(json_string_value(json_object_get(delta, "reasoning_content"))));
        json_array_foreach (json_object_get(delta, "tool_calls"), k, item) {
            acc_tool_delta(json_object_get(sum, "tool_calls"), item);
        }
        if (json_object_get(delta, "thinking_blocks") != NULL)
            json_array_extend(json_object_get(sum, "thinking_blocks"),
                              json_object_get(delta, "thinking_blocks"));
    }
    json_object_set_new(sum, "content", str_or_null(&text, text.len > 0));
    json_object_set_new(sum, "reasoning", str_or_null(&reasoning, reasoning.len > 0));
    buf_free(&text);
    buf_free(&reasoning);
    return sum;
}

/* ---- own fixtures: responses ---------------------------------------------------------------- */

static void test_fixture_json_response(void **state)
{
    size_t len;
    char *body = read_file(FIXTURES "response_tool_use.json", &len);
    provider_target_t t = target("claude-sonnet-4-5", false);
    provider_error_t err = {"", NULL};

    json_t *c = ops->parse_response(&t, body, len, &err);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "id")), "msg_fixture_01");
    assert_string_equal(json_string_value(json_object_get(c, "object")), "chat.completion");
    assert_string_equal(json_string_value(json_object_get(c, "model")),
                        "claude-sonnet-4-5-20250929");
    assert_true(json_integer_value(json_object_get(c, "created")) > 1600000000);

    const json_t *choice = json_array_get(json_object_get(c, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    assert_int_equal(json_array_size(json_object_get(c, "choices")), 1);
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    /* The server tool blocks between the two text blocks are skipped. */
    assert_string_equal(json_string_value(json_object_get(msg, "content")),
                        "Let me check both cities. One moment.");
    assert_string_equal(json_string_value(json_object_get(msg, "reasoning_content")),
                        "The user wants the weather in two cities.");
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "tool_calls");

    json_t *want_tb = json_pack("[{s:s, s:s, s:s}, {s:s, s:s}]", "type", "thinking", "thinking",
                                "The user wants the weather in two cities.", "signature",
                                "sig-abc==", "type", "redacted_thinking", "data", "ENCRYPTED==");
    assert_json_equal(json_object_get(msg, "thinking_blocks"), want_tb, "thinking_blocks");
    json_decref(want_tb);

    /* Arguments keep the model's key order and raw UTF-8. */
    const json_t *calls = json_object_get(msg, "tool_calls");
    assert_int_equal(json_array_size(calls), 2);
    const json_t *a = json_array_get(calls, 0), *b = json_array_get(calls, 1);
    assert_string_equal(json_string_value(json_object_get(a, "id")), "toolu_A");
    assert_string_equal(json_string_value(json_object_get(a, "type")), "function");
    assert_string_equal(json_string_value(jpath(a, "function.name")), "get_weather");
    assert_string_equal(json_string_value(jpath(a, "function.arguments")),
                        "{\"city\":\"Paris\",\"units\":\"celsius\",\"days\":[1,2]}");
    assert_string_equal(json_string_value(json_object_get(b, "id")), "toolu_B");
    assert_string_equal(json_string_value(jpath(b, "function.arguments")),
                        "{\"zone\":\"Europe/Z\xc3\xbcrich\",\"city\":\"Z\xc3\xbcrich\","
                        "\"nested\":{\"b\":1,\"a\":null}}");

    json_t *want_usage = expected_usage(100, 42, 300, 20);
    assert_int_equal(json_integer_value(jpath(c, "usage.prompt_tokens")), 420);
    assert_int_equal(json_integer_value(jpath(c, "usage.total_tokens")), 462);
    assert_json_equal(json_object_get(c, "usage"), want_usage, "usage");
    json_decref(want_usage);

    json_decref(c);
    free(body);
}

static void test_parse_response_errors(void **state)
{
    provider_target_t t = target("claude", false);
    provider_error_t err = {"", NULL};
    static const struct {
        const char *body;
        const char *want;
    } cases[] = {
        {"{not json", "invalid Messages response"},
        {"[1,2]", "not a JSON object"},
        {"{\"id\":\"x\",\"type\":\"message\"}", "without a content array"},
        {"{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}", "boom"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err.message[0] = '\0';
        assert_null(ops->parse_response(&t, cases[i].body, strlen(cases[i].body), &err));
        if (strstr(err.message, cases[i].want) == NULL) {
            print_error("case %zu: message '%s' lacks '%s'\n", i, err.message, cases[i].want);
            fail();
        }
        assert_string_equal(err.type, "api_error");
    }

    /* No text, no stop reason, odd blocks: content null, "stop", nothing invented. */
    const char *bare = "{\"id\":\"m\",\"model\":\"c\",\"content\":[{\"type\":\"compaction\"},"
                       "{\"type\":\"future_block\",\"x\":1}],\"stop_reason\":null}";
    json_t *c = ops->parse_response(&t, bare, strlen(bare), &err);
    assert_non_null(c);
    const json_t *choice = jpath(c, "choices[0]");
    assert_true(json_is_null(jpath(choice, "message.content")));
    assert_null(jpath(choice, "message.tool_calls"));
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "stop");
    assert_int_equal(json_integer_value(jpath(c, "usage.total_tokens")), 0);
    json_decref(c);
}

static void test_fixture_error_bodies(void **state)
{
    size_t len;
    char *body = read_file(FIXTURES "error_overloaded.json", &len);
    provider_error_t err = {"", NULL};

    ops->parse_error(529, body, len, &err);
    assert_string_equal(err.message, "Overloaded");
    assert_string_equal(err.type, "api_error");
    free(body);

    const char *bad_key = "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                          "\"message\":\"invalid x-api-key\"}}";
    ops->parse_error(401, bad_key, strlen(bad_key), &err);
    assert_string_equal(err.message, "invalid x-api-key");
    assert_string_equal(err.type, "authentication_error");

    const char *limit = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                        "\"message\":\"slow down\"}}";
    ops->parse_error(429, limit, strlen(limit), &err);
    assert_string_equal(err.type, "rate_limit_error");

    /* Not Anthropic's shape: the raw text, typed by status. */
    const char *html = "<html>502 Bad Gateway</html>";
    ops->parse_error(502, html, strlen(html), &err);
    assert_string_equal(err.message, html);
    assert_string_equal(err.type, "api_error");

    const char *other = "{\"message\":\"no error object\"}";
    ops->parse_error(400, other, strlen(other), &err);
    assert_string_equal(err.message, other);
    assert_string_equal(err.type, "invalid_request_error");

    ops->parse_error(503, "", 0, &err);
    assert_string_equal(err.message, "upstream returned HTTP status 503");

    /* Invalid UTF-8 and NUL never reach the message; a long body is cut on a character. */
    const char raw[] = {'a', '\xff', 'b', '\0', 'c', '\xc3'};
    ops->parse_error(500, raw, sizeof(raw), &err);
    assert_string_equal(err.message, "a?b?c?");

    buf_t big = BUF_INIT;
    for (int i = 0; i < 400; i++)
        buf_appends(&big, "\xc3\xa9");
    ops->parse_error(500, big.data, big.len, &err);
    assert_int_equal(strlen(err.message), 510);
    json_t *as_json = json_string(err.message);
    assert_non_null(as_json);
    json_decref(as_json);
    buf_free(&big);
}

/* ---- own fixtures: streams ------------------------------------------------------------------ */

static void test_fixture_stream(void **state)
{
    size_t len;
    char *sse = read_file(FIXTURES "stream_text_thinking_tools.sse", &len);
    size_t steps[] = {0, 1, 17};

    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        run_t r;
        run_stream(&r, sse, len, steps[k], 0);
        assert_int_equal(r.event_rc, 1);
        assert_int_equal(r.finish_rc, 0);
        check_chunks(r.chunks, "msg_stream_01", "claude-sonnet-4-5-20250929");

        json_t *got = summary_from_chunks(r.chunks);
        json_t *want = json_pack(
            "{s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}], s:[{s:s, s:s, s:s}], s:s, s:o}",
            "content", "Checking the weather.", "reasoning", "Two cities, two calls.", "tool_calls",
            "id", "toolu_P", "name", "get_weather", "arguments", "{\"city\": \"Paris\"}", "id",
            "toolu_L", "name", "get_time", "arguments", "{\"city\": \"London\"}", "thinking_blocks",
            "type", "thinking", "thinking", "Two cities, two calls.", "signature", "c2lnbmF0dXJl",
            "finish_reason", "tool_calls", "usage", expected_usage(50, 77, 200, 5));
        assert_json_equal(got, want, "fixture stream");
        json_decref(got);
        json_decref(want);

        /* The tool calls are numbered 0 and 1 although their blocks are 3 and 4, and their
         * first delta carries id, type and name with empty arguments. */
        const json_t *c;
        size_t i;
        size_t headers = 0;
        json_array_foreach (r.chunks, i, c) {
            const json_t *call = jpath(c, "choices[0].delta.tool_calls[0]");
            if (call == NULL || json_object_get(call, "id") == NULL)
                continue;
            assert_int_equal(json_integer_value(json_object_get(call, "index")), headers);
            assert_string_equal(json_string_value(jpath(call, "function.arguments")), "");
            headers++;
        }
        assert_int_equal(headers, 2);

        /* Last two chunks: the finish reason, then usage with empty choices. */
        size_t n = json_array_size(r.chunks);
        const json_t *fin = json_array_get(r.chunks, n - 2);
        const json_t *fin_choice = json_array_get(json_object_get(fin, "choices"), 0);
        assert_string_equal(json_string_value(json_object_get(fin_choice, "finish_reason")),
                            "tool_calls");
        assert_int_equal(json_object_size(json_object_get(fin_choice, "delta")), 0);
        assert_int_equal(
            json_array_size(json_object_get(json_array_get(r.chunks, n - 1), "choices")), 0);
        run_free(&r);
    }
    free(sse);
}

static void test_fixture_stream_cut(void **state)
{
    size_t len;
    char *sse = read_file(FIXTURES "stream_cut.sse", &len);
    run_t r;

    run_stream(&r, sse, len, 0, 0);
    assert_int_equal(r.event_rc, 0);
    assert_int_equal(r.finish_rc, -1);
    assert_string_equal(r.err.message, "upstream stream ended before message_stop");
    assert_string_equal(r.err.type, "api_error");

    json_t *got = summary_from_chunks(r.chunks);
    assert_string_equal(json_string_value(json_object_get(got, "content")), "Half an ans");
    assert_true(json_is_null(json_object_get(got, "finish_reason")));
    assert_true(json_is_null(json_object_get(got, "usage")));
    json_decref(got);
    run_free(&r);
    free(sse);
}

static void test_fixture_stream_error(void **state)
{
    size_t len;
    char *sse = read_file(FIXTURES "stream_error.sse", &len);
    run_t r;

    run_stream(&r, sse, len, 0, 0);
    assert_int_equal(r.event_rc, -1);
    assert_string_equal(r.err.message, "Overloaded");
    assert_string_equal(r.err.type, "api_error");
    assert_int_equal(r.feed_rc, -1);
    assert_int_equal(r.finish_rc, -1);
    /* role chunk + "Hello" */
    assert_int_equal(json_array_size(r.chunks), 2);
    run_free(&r);
    free(sse);
}

/* Feeds events one by one to a fresh translator; returns the last result. */
static int feed_events(const char *const *events, size_t n, run_t *r)
{
    provider_target_t t = target("claude-test", true);
    memset(r, 0, sizeof(*r));
    r->chunks = json_array();
    r->s = ops->stream_new(&t, collect_chunk, r);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ops->stream_event(r->s, "", 0, events[i], strlen(events[i]), &r->err);
    ops->stream_free(r->s);
    return rc;
}

#define START                                                                                      \
    "{\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"c\",\"usage\":{}}}"
#define TEXT0 "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\"}}"

static void test_stream_protocol_errors(void **state)
{
    static const struct {
        const char *events[3];
        const char *want;
    } cases[] = {
        {{TEXT0}, "before message_start"},
        {{START, START}, "second message_start"},
        {{START, "{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\","
                 "\"text\":\"x\"}}"},
         "never started"},
        {{START, TEXT0,
          "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
          "\"partial_json\":\"{\"}}"},
         "does not fit"},
        {{START, TEXT0, TEXT0}, "started twice"},
        {{START, "{\"type\":\"content_block_start\",\"index\":99999,\"content_block\":{}}"},
         "valid index"},
        {{START, "{\"type\":\"content_block_start\",\"index\":-1,\"content_block\":{}}"},
         "valid index"},
        {{START, "{\"type\":\"content_block_delta\",\"index\":\"0\"}"}, "valid index"},
        {{"not json"}, "invalid stream event"},
        {{"[]"}, "not a JSON object"},
        {{"{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"hold\"}}"},
         "hold"},
        {{"{\"type\":\"error\"}"}, "without a message"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = 0;
        while (n < 3 && cases[i].events[n] != NULL)
            n++;
        run_t r;
        int rc = feed_events(cases[i].events, n, &r);
        if (rc != -1 || strstr(r.err.message, cases[i].want) == NULL) {
            print_error("case %zu: rc %d, message '%s', want '%s'\n", i, rc, r.err.message,
                        cases[i].want);
            fail();
        }
        run_free(&r);
    }
}

static void test_stream_tolerates_the_unknown(void **state)
{
    /* Pings, unknown events, unknown delta types and server blocks pass without chunks;
     * events after message_stop change nothing. */
    const char *events[] = {
        "{\"type\":\"ping\"}",
        START,
        "{\"type\":\"some_future_event\",\"x\":1}",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"mcp_tool_"
        "use\"}}",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
        "\"partial_json\":\"{}\"}}",
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\","
        "\"text\":\"Hi\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"citations_delta\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
        "\"text\":\"!\"}}",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"},\"usage\":{}}",
        "{\"type\":\"message_stop\"}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\","
        "\"text\":\"late\"}}",
    };
    run_t r;
    provider_target_t t = target("claude-test", true);
    provider_error_t err = {"", NULL};
    memset(&r, 0, sizeof(r));
    r.chunks = json_array();
    r.s = ops->stream_new(&t, collect_chunk, &r);

    int want[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        assert_int_equal(ops->stream_event(r.s, "", 0, events[i], strlen(events[i]), &err),
                         want[i]);
    assert_int_equal(ops->stream_finish(r.s, &err), 0);
    ops->stream_free(r.s);

    json_t *got = summary_from_chunks(r.chunks);
    assert_string_equal(json_string_value(json_object_get(got, "content")), "Hi!");
    assert_string_equal(json_string_value(json_object_get(got, "finish_reason")), "content_filter");
    assert_int_equal(json_array_size(json_object_get(got, "tool_calls")), 0);
    /* role, "Hi", "!", finish, usage */
    assert_int_equal(json_array_size(r.chunks), 5);
    json_decref(got);
    run_free(&r);
}

static void test_stream_emit_stops(void **state)
{
    size_t len;
    char *sse = read_file(FIXTURES "stream_text_thinking_tools.sse", &len);
    run_t r;

    /* The consumer says stop on the third chunk: its value comes back and nothing follows. */
    run_stream(&r, sse, len, 0, 3);
    assert_int_equal(r.event_rc, 9);
    assert_int_equal(json_array_size(r.chunks), 3);
    assert_int_equal(r.finish_rc, -1);
    run_free(&r);
    free(sse);
}

static void test_stream_redacted_thinking(void **state)
{
    const char *events[] = {
        START,
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
        "\"redacted_thinking\",\"data\":\"RUQ=\"}}",
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"thinking\","
        "\"thinking\":\"pre\"}}",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"signature_delta\","
        "\"signature\":\"s\"}}",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"}}",
    };
    run_t r;
    assert_int_equal(feed_events(events, sizeof(events) / sizeof(events[0]), &r), 0);

    json_t *got = summary_from_chunks(r.chunks);
    json_t *want = json_pack("[{s:s, s:s}, {s:s, s:s, s:s}]", "type", "redacted_thinking", "data",
                             "RUQ=", "type", "thinking", "thinking", "pre", "signature", "s");
    assert_json_equal(json_object_get(got, "thinking_blocks"), want, "redacted");
    assert_string_equal(json_string_value(json_object_get(got, "reasoning")), "pre");
    assert_string_equal(json_string_value(json_object_get(got, "finish_reason")), "length");
    /* message_start gave an empty usage and message_delta none: zeros, not garbage. */
    assert_int_equal(json_integer_value(jpath(got, "usage.total_tokens")), 0);
    json_decref(want);
    json_decref(got);
    run_free(&r);
}

/* ---- own fixtures: requests ----------------------------------------------------------------- */

static json_t *build(const json_t *canonical, provider_target_t *t, provider_http_t *http,
                     provider_error_t *err)
{
    provider_http_init(http);
    if (ops->build_request(t, canonical, http, err) != 0)
        return NULL;
    json_error_t jerr;
    json_t *body = json_loadb(http->body.data, http->body.len, 0, &jerr);
    assert_non_null(body);
    return body;
}

static bool has_header_line(const provider_http_t *h, const char *line)
{
    for (size_t i = 0; i < h->n_headers; i++) {
        if (strcmp(h->headers[i], line) == 0)
            return true;
    }
    return false;
}

static void test_fixture_build_request(void **state)
{
    json_t *canonical = load_json(FIXTURES "request_canonical.json");
    json_t *want = load_json(FIXTURES "request_expected.json");
    provider_target_t t = target("claude-sonnet-4-5", true);
    provider_http_t http;
    provider_error_t err = {"", NULL};

    json_t *body = build(canonical, &t, &http, &err);
    if (body == NULL) {
        print_error("build_request: %s\n", err.message);
        fail();
    }
    assert_json_equal(body, want, "request fixture");
    assert_string_equal(http.url, "https://api.anthropic.com/v1/messages");
    assert_int_equal(http.n_headers, 3);
    assert_true(has_header_line(&http, "content-type: application/json"));
    assert_true(has_header_line(&http, "x-api-key: sk-ant-test"));
    assert_true(has_header_line(&http, "anthropic-version: 2023-06-01"));
    assert_null(http.headers[http.n_headers]);
    provider_http_free(&http);
    json_decref(body);

    /* No key: no x-api-key. Extra headers are added, and one naming the version replaces ours. */
    config_provider_t p = test_provider;
    p.base_url = (char *)"http://localhost:9999/anthropic";
    p.extra_headers = json_pack("{s:s, s:s}", "anthropic-beta", "output-128k-2025-02-19",
                                "Anthropic-Version", "2099-01-01");
    t.provider = &p;
    t.api_key = "";
    body = build(canonical, &t, &http, &err);
    assert_non_null(body);
    assert_string_equal(http.url, "http://localhost:9999/anthropic/v1/messages");
    assert_int_equal(http.n_headers, 3);
    assert_true(has_header_line(&http, "anthropic-beta: output-128k-2025-02-19"));
    assert_true(has_header_line(&http, "Anthropic-Version: 2099-01-01"));
    assert_false(has_header_line(&http, "anthropic-version: 2023-06-01"));
    provider_http_free(&http);
    json_decref(body);
    json_decref(p.extra_headers);

    json_decref(canonical);
    json_decref(want);
}

/* Builds from a canonical request given as JSON text; returns the body or NULL (err filled). */
static json_t *build_text(const char *canonical_text, provider_error_t *err)
{
    json_error_t jerr;
    json_t *canonical = json_loads(canonical_text, 0, &jerr);
    if (canonical == NULL) {
        print_error("bad test JSON: %s: %s\n", jerr.text, canonical_text);
        fail();
    }
    provider_target_t t = target("claude-x", false);
    provider_http_t http;
    json_t *body = build(canonical, &t, &http, err);
    provider_http_free(&http);
    json_decref(canonical);
    return body;
}

#define MSGS_ITEM "{\"role\":\"user\",\"content\":\"hi\"}"
#define MSGS "\"messages\":[" MSGS_ITEM "]"
#define TOOL "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}"

static void test_build_request_errors(void **state)
{
    static const struct {
        const char *canonical;
        const char *want;
    } cases[] = {
        {"{\"messages\":{}}", "'messages' must be an array"},
        {"{\"messages\":[{\"content\":\"x\"}]}", "role must be a string"},
        {"{\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}",
         "role 'function' is not supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\","
         "\"input_audio\":{}}]}]}",
         "content part type 'input_audio' is not supported"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"ftp://x/y.png\"}}]}]}",
         "only data: and http(s) URLs"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":{\"url\":\"data:image/png,abc\"}}]}]}",
         "data:<media type>;base64,<data>"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\","
         "\"file\":{\"file_id\":\"file-1\"}}]}]}",
         "file ids cannot be sent"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{nope\"}}]}]}",
         "arguments is not valid JSON"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
         "must be a JSON object"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"type\":\"function\","
         "\"function\":{\"name\":\"f\"}}]}]}",
         "id and function.name"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\",\"thinking_blocks\":"
         "[{\"type\":\"thinking\",\"thinking\":\"t\"}]}]}",
         "signature missing"},
        {"{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "without tool_call_id"},
        {"{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"t\",\"content\":[{\"type\":"
         "\"image_url\"}]}]}",
         "tool content must be text parts"},
        {"{\"messages\":[{\"role\":\"system\",\"content\":5}]}", "system content"},
        {"{" MSGS ",\"response_format\":{\"type\":\"json_object\"}}",
         "response_format 'json_object' is not supported"},
        {"{" MSGS ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}}",
         "json_schema.schema must be an object"},
        {"{" MSGS ",\"n\":2}", "'n' other than 1"},
        {"{" MSGS ",\"tool_choice\":\"sometimes\"}", "tool_choice 'sometimes'"},
        {"{" MSGS ",\"tool_choice\":{\"type\":\"allowed_tools\"}}", "tool_choice must be"},
        {"{" MSGS ",\"tools\":[{\"type\":\"custom\",\"custom\":{\"name\":\"x\"}}]}",
         "only function tools"},
        {"{" MSGS ",\"max_tokens\":0}", "'max_tokens' must be a positive integer"},
        {"{" MSGS ",\"temperature\":\"hot\"}", "'temperature' must be a number"},
        {"{" MSGS ",\"stop\":[1]}", "'stop' must be a string"},
        {"{" MSGS ",\"reasoning_effort\":\"extreme\"}", "reasoning_effort 'extreme'"},
        {"{" MSGS ",\"reasoning_effort\":\"high\",\"max_tokens\":1000}", "no room for thinking"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        provider_error_t err = {"", NULL};
        json_t *body = build_text(cases[i].canonical, &err);
        if (body != NULL || strstr(err.message, cases[i].want) == NULL) {
            print_error("case %zu: message '%s', want '%s'\n", i, err.message, cases[i].want);
            json_decref(body);
            fail();
        }
        assert_string_equal(err.type, "invalid_request_error");
    }
}

static void test_build_request_thinking_budget(void **state)
{
    static const struct {
        const char *extra;
        json_int_t max_tokens;
        json_int_t budget; /* 0 = no thinking */
    } cases[] = {
        {"", 4096, 0},
        {",\"max_tokens\":100", 100, 0},
        {",\"max_tokens\":100,\"max_completion_tokens\":200", 200, 0},
        {",\"reasoning_effort\":\"none\"", 4096, 0},
        {",\"reasoning_effort\":\"minimal\"", 1024 + 4096, 1024},
        {",\"reasoning_effort\":\"low\"", 1024 + 4096, 1024},
        {",\"reasoning_effort\":\"medium\"", 4096 + 4096, 4096},
        {",\"reasoning_effort\":\"high\"", 16384 + 4096, 16384},
        {",\"reasoning_effort\":\"high\",\"max_completion_tokens\":30000", 30000, 16384},
        {",\"reasoning_effort\":\"high\",\"max_completion_tokens\":8000", 8000, 7999},
        {",\"reasoning_effort\":\"low\",\"max_tokens\":1025", 1025, 1024},
        {",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2000}", 6096, 2000},
        {",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2000},\"max_tokens\":3000,"
         "\"reasoning_effort\":\"high\"",
         3000, 2000},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "{" MSGS "%s}", cases[i].extra);
        provider_error_t err = {"", NULL};
        json_t *body = build_text(text, &err);
        if (body == NULL) {
            print_error("case %zu: %s\n", i, err.message);
            fail();
        }
        assert_int_equal(json_integer_value(json_object_get(body, "max_tokens")),
                         cases[i].max_tokens);
        const json_t *th = json_object_get(body, "thinking");
        if (cases[i].budget == 0) {
            assert_null(th);
        } else {
            assert_string_equal(json_string_value(json_object_get(th, "type")), "enabled");
            assert_int_equal(json_integer_value(json_object_get(th, "budget_tokens")),
                             cases[i].budget);
        }
        json_decref(body);
    }
}

static void test_build_request_shapes(void **state)
{
    static const struct {
        const char *canonical;
        const char *path; /* a field of the built body */
        const char *want; /* its compact JSON */
    } cases[] = {
        /* one string system message stays a string; parts make an array */
        {"{\"messages\":[{\"role\":\"system\",\"content\":\"S\"}," MSGS_ITEM "]}", "system",
         "\"S\""},
        {"{\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"D\"}]}"
         "," MSGS_ITEM "]}",
         "system", "[{\"type\":\"text\",\"text\":\"D\"}]"},
        {"{\"messages\":[" MSGS_ITEM ",{\"role\":\"system\",\"content\":\"late\"}]}", "system",
         "\"late\""},
        {"{" MSGS ",\"stop\":[\"a\",\"b\"]}", "stop_sequences", "[\"a\",\"b\"]"},
        {"{" MSGS ",\"stop\":[]}", "stop_sequences", "null"},
        {"{" MSGS ",\"tools\":[" TOOL "],\"tool_choice\":\"auto\"}", "tool_choice",
         "{\"type\":\"auto\"}"},
        {"{" MSGS ",\"tools\":[" TOOL "],\"tool_choice\":\"required\"}", "tool_choice",
         "{\"type\":\"any\"}"},
        {"{" MSGS ",\"tools\":[" TOOL "],\"tool_choice\":\"none\"}", "tool_choice",
         "{\"type\":\"none\"}"},
        {"{" MSGS ",\"tools\":[" TOOL "],\"tool_choice\":\"none\",\"parallel_tool_calls\":false}",
         "tool_choice", "{\"type\":\"none\"}"},
        {"{" MSGS ",\"tools\":[" TOOL "],\"parallel_tool_calls\":false}", "tool_choice",
         "{\"type\":\"auto\",\"disable_parallel_tool_use\":true}"},
        {"{" MSGS ",\"tools\":[" TOOL "],\"tool_choice\":\"required\","
         "\"parallel_tool_calls\":false}",
         "tool_choice", "{\"type\":\"any\",\"disable_parallel_tool_use\":true}"},
        {"{" MSGS ",\"parallel_tool_calls\":false}", "tool_choice", "null"},
        {"{" MSGS ",\"tools\":[]}", "tools", "null"},
        {"{" MSGS ",\"response_format\":{\"type\":\"text\"}}", "output_config", "null"},
        {"{" MSGS ",\"top_k\":5,\"seed\":1,\"logprobs\":true}", "top_k", "5"},
        {"{" MSGS ",\"n\":1}", "model", "\"claude-x\""},
        {"{" MSGS "}", "stream", "false"},
        /* consecutive user turns merge; empty assistant turns vanish */
        {"{\"messages\":[" MSGS_ITEM ",{\"role\":\"assistant\",\"content\":null},"
         "{\"role\":\"user\",\"content\":\"again\"}]}",
         "messages",
         "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
         "{\"type\":\"text\",\"text\":\"again\"}]}]"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\","
         "\"refusal\":\"no\"}]}]}",
         "messages",
         "[{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"no\"}]}]"},
        {"{\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"t\",\"content\":null}]}", "messages",
         "[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
         "\"tool_use_id\":\"t\"}]}]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
         "\"image_url\":\"HTTPS://x/y.gif\"}]}]}",
         "messages",
         "[{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"url\","
         "\"url\":\"HTTPS://x/y.gif\"}}]}]"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        provider_error_t err = {"", NULL};
        json_t *body = build_text(cases[i].canonical, &err);
        if (body == NULL) {
            print_error("case %zu: %s\n", i, err.message);
            fail();
        }
        json_t *field = json_object_get(body, cases[i].path);
        char *got = field ? json_dumps(field, JSON_COMPACT | JSON_ENCODE_ANY) : xstrdup("null");
        if (strcmp(got, cases[i].want) != 0) {
            print_error("case %zu: %s = %s, want %s\n", i, cases[i].path, got, cases[i].want);
            fail();
        }
        free(got);
        json_decref(body);
    }
}

/* ---- cassettes: recorded request -> canonical request (the test's own inverse) --------------- */

static bool only_keys(const json_t *obj, const char *const *keys)
{
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)obj, key, v) {
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = strcmp(key, keys[i]) == 0;
        if (!known)
            return false;
    }
    return true;
}

static const char *block_type(const json_t *b)
{
    const char *t = json_string_value(json_object_get(b, "type"));
    return t ? t : "";
}

/* A text block with nothing but its text. */
static bool plain_text(const json_t *b)
{
    static const char *const keys[] = {"type", "text", NULL};
    return strcmp(block_type(b), "text") == 0 && only_keys(b, keys);
}

static json_t *inv_source_part(const json_t *b)
{
    static const char *const keys[] = {"type", "source", NULL};
    const json_t *src = json_object_get(b, "source");
    const char *st = block_type(src);
    bool image = strcmp(block_type(b), "image") == 0;

    if (!only_keys(b, keys))
        return NULL;
    if (image && strcmp(st, "url") == 0)
        return json_pack("{s:s, s:{s:O}}", "type", "image_url", "image_url", "url",
                         json_object_get(src, "url"));
    if (strcmp(st, "base64") != 0)
        return NULL;

    char *url = NULL;
    if (asprintf(&url, "data:%s;base64,%s", json_string_value(json_object_get(src, "media_type")),
                 json_string_value(json_object_get(src, "data"))) < 0)
        return NULL;
    json_t *part = image ? json_pack("{s:s, s:{s:s}}", "type", "image_url", "image_url", "url", url)
                         : json_pack("{s:s, s:{s:s}}", "type", "file", "file", "file_data", url);
    free(url);
    return part;
}

static json_t *inv_tool_message(const json_t *b)
{
    static const char *const keys[] = {"type", "tool_use_id", "content", "is_error", NULL};
    json_t *content = json_object_get(b, "content");
    size_t i;
    json_t *part;

    if (!only_keys(b, keys) || json_is_true(json_object_get(b, "is_error")))
        return NULL;
    json_array_foreach (content, i, part) {
        if (!plain_text(part))
            return NULL;
    }
    json_t *msg =
        json_pack("{s:s, s:O}", "role", "tool", "tool_call_id", json_object_get(b, "tool_use_id"));
    if (content != NULL)
        json_object_set(msg, "content", content);
    return msg;
}

static bool inv_user(const json_t *m, json_t *out)
{
    const json_t *content = json_object_get(m, "content");
    json_t *parts = json_array();
    size_t i;
    json_t *b;

    json_array_foreach (content, i, b) {
        const char *type = block_type(b);
        json_t *item = NULL;
        if (strcmp(type, "tool_result") == 0 && json_array_size(parts) == 0)
            item = inv_tool_message(b);
        else if (plain_text(b))
            item = json_pack("{s:s, s:O}", "type", "text", "text", json_object_get(b, "text"));
        else if (strcmp(type, "image") == 0 || strcmp(type, "document") == 0)
            item = inv_source_part(b);
        if (item == NULL) {
            json_decref(parts);
            return false;
        }
        json_array_append_new(strcmp(type, "tool_result") == 0 ? out : parts, item);
    }

    const json_t *only = json_array_size(parts) == 1 ? json_array_get(parts, 0) : NULL;
    if (only != NULL && strcmp(block_type(only), "text") == 0)
        json_array_append_new(
            out, json_pack("{s:s, s:O}", "role", "user", "content", json_object_get(only, "text")));
    else if (json_array_size(parts) > 0)
        json_array_append_new(out, json_pack("{s:s, s:O}", "role", "user", "content", parts));
    json_decref(parts);
    return true;
}

/* Thinking, then text, then tool_use: the only order OpenAI's assistant message can say. */
static bool inv_assistant(const json_t *m, json_t *out)
{
    static const char *const tool_keys[] = {"type", "id", "name", "input", NULL};
    static const char *const thinking_keys[] = {"type", "thinking", "signature", NULL};
    static const char *const redacted_keys[] = {"type", "data", NULL};
    json_t *msg = json_pack("{s:s, s:[], s:[], s:[]}", "role", "assistant", "thinking_blocks",
                            "content", "tool_calls");
    int stage = 0; /* 0 thinking, 1 text, 2 tool_use */
    size_t i;
    json_t *b;
    bool ok = true;

    json_array_foreach (json_object_get(m, "content"), i, b) {
        const char *type = block_type(b);
        if ((strcmp(type, "thinking") == 0 && only_keys(b, thinking_keys)) ||
            (strcmp(type, "redacted_thinking") == 0 && only_keys(b, redacted_keys))) {
            ok = ok && stage == 0;
            json_array_append(json_object_get(msg, "thinking_blocks"), b);
        } else if (plain_text(b) && json_string_length(json_object_get(b, "text")) > 0) {
            ok = ok && stage <= 1;
            stage = 1;
            json_array_append(json_object_get(msg, "content"), b);
        } else if (strcmp(type, "tool_use") == 0 && only_keys(b, tool_keys)) {
            stage = 2;
            char *args = json_dumps(json_object_get(b, "input"), JSON_COMPACT);
            json_array_append_new(json_object_get(msg, "tool_calls"),
                                  json_pack("{s:O, s:s, s:{s:O, s:s}}", "id",
                                            json_object_get(b, "id"), "type", "function",
                                            "function", "name", json_object_get(b, "name"),
                                            "arguments", args));
            free(args);
        } else {
            ok = false;
        }
    }

    /* Use the shapes a client would: a string for one text block, no empty lists. */
    json_t *content = json_object_get(msg, "content");
    if (json_array_size(content) == 1)
        json_object_set(msg, "content", json_object_get(json_array_get(content, 0), "text"));
    else if (json_array_size(content) == 0)
        json_object_set_new(msg, "content", json_null());
    if (json_array_size(json_object_get(msg, "thinking_blocks")) == 0)
        json_object_del(msg, "thinking_blocks");
    if (json_array_size(json_object_get(msg, "tool_calls")) == 0)
        json_object_del(msg, "tool_calls");

    if (ok)
        json_array_append(out, msg);
    json_decref(msg);
    return ok;
}

static bool inv_system(const json_t *system, json_t *out)
{
    size_t i;
    json_t *b;

    if (system == NULL)
        return true;
    if (json_is_string(system)) {
        json_array_append_new(out, json_pack("{s:s, s:O}", "role", "system", "content", system));
        return true;
    }
    json_array_foreach (system, i, b) {
        if (!plain_text(b))
            return false;
    }
    json_array_append_new(out, json_pack("{s:s, s:O}", "role", "system", "content", system));
    return true;
}

static bool inv_messages(const json_t *body, json_t *canonical)
{
    json_t *out = json_array();
    const char *last_role = "";
    size_t i;
    json_t *m;
    bool ok = inv_system(json_object_get(body, "system"), out);

    json_array_foreach (json_object_get(body, "messages"), i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        /* Consecutive turns of one role would be merged by the adapter: not comparable. */
        if (!ok || !json_is_array(json_object_get(m, "content")) || strcmp(role, last_role) == 0)
            ok = false;
        else if (strcmp(role, "user") == 0)
            ok = inv_user(m, out);
        else
            ok = inv_assistant(m, out);
        last_role = role;
    }
    json_object_set_new(canonical, "messages", out);
    return ok;
}

static bool inv_tools(const json_t *body, json_t *canonical)
{
    static const char *const keys[] = {"name", "description", "input_schema", "strict", NULL};
    const json_t *tools = json_object_get(body, "tools");
    size_t i;
    json_t *tool;

    if (tools == NULL)
        return true;
    json_t *out = json_array();
    json_array_foreach (tools, i, tool) {
        if (!only_keys(tool, keys) || json_object_get(tool, "input_schema") == NULL) {
            json_decref(out);
            return false;
        }
        json_t *fn = json_pack("{s:O, s:O}", "name", json_object_get(tool, "name"), "parameters",
                               json_object_get(tool, "input_schema"));
        if (json_object_get(tool, "description"))
            json_object_set(fn, "description", json_object_get(tool, "description"));
        if (json_object_get(tool, "strict"))
            json_object_set(fn, "strict", json_object_get(tool, "strict"));
        json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    json_object_set_new(canonical, "tools", out);
    return true;
}

static bool inv_tool_choice(const json_t *body, json_t *canonical)
{
    static const char *const keys[] = {"type", "name", "disable_parallel_tool_use", NULL};
    const json_t *tc = json_object_get(body, "tool_choice");
    const char *type = block_type(tc);

    if (tc == NULL)
        return true;
    if (!only_keys(tc, keys))
        return false;
    if (strcmp(type, "auto") == 0)
        json_object_set_new(canonical, "tool_choice", json_string("auto"));
    else if (strcmp(type, "any") == 0)
        json_object_set_new(canonical, "tool_choice", json_string("required"));
    else if (strcmp(type, "none") == 0)
        json_object_set_new(canonical, "tool_choice", json_string("none"));
    else if (strcmp(type, "tool") == 0)
        json_object_set_new(canonical, "tool_choice",
                            json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name",
                                      json_object_get(tc, "name")));
    else
        return false;
    if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")))
        json_object_set_new(canonical, "parallel_tool_calls", json_false());
    return true;
}

/* The canonical request a client would have sent for this recorded body, or NULL when the
 * recording uses something OpenAI's shape cannot express. */
static json_t *canonical_from_anthropic(const json_t *body)
{
    static const char *const keys[] = {"model",       "max_tokens", "messages",    "system",
                                       "stream",      "tools",      "tool_choice", "thinking",
                                       "temperature", "top_p",      "top_k",       "stop_sequences",
                                       "metadata",    NULL};
    static const char *const meta_keys[] = {"user_id", NULL};
    static const char *const copied[][2] = {
        {"model", "model"},         {"max_tokens", "max_tokens"},
        {"thinking", "thinking"},   {"temperature", "temperature"},
        {"top_p", "top_p"},         {"top_k", "top_k"},
        {"stop_sequences", "stop"}, {"stream", "stream"}};

    if (!only_keys(body, keys) || !only_keys(json_object_get(body, "metadata"), meta_keys))
        return NULL;

    json_t *canonical = json_object();
    for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
        json_t *v = json_object_get(body, copied[i][0]);
        if (v != NULL)
            json_object_set(canonical, copied[i][1], v);
    }
    json_t *user = json_object_get(json_object_get(body, "metadata"), "user_id");
    if (user != NULL)
        json_object_set(canonical, "user", user);

    if (!inv_messages(body, canonical) || !inv_tools(body, canonical) ||
        !inv_tool_choice(body, canonical)) {
        json_decref(canonical);
        return NULL;
    }
    return canonical;
}

/* The recorded body with the two normalizations described at the top of the file. */
static json_t *normalized_recording(const json_t *body)
{
    json_t *want = json_deep_copy(body);
    size_t i, k;
    json_t *m, *b;

    json_array_foreach (json_object_get(want, "messages"), i, m) {
        json_t *content = json_object_get(m, "content");
        if (json_is_string(content))
            json_object_set_new(m, "content",
                                json_pack("[{s:s, s:O}]", "type", "text", "text", content));
        json_array_foreach (json_object_get(m, "content"), k, b) {
            if (json_is_false(json_object_get(b, "is_error")))
                json_object_del(b, "is_error");
        }
    }
    if (json_object_get(want, "stream") == NULL)
        json_object_set_new(want, "stream", json_false());
    return want;
}

/* ---- cassettes: the walk -------------------------------------------------------------------- */

/* Every interaction of these recordings must be comparable and compared. */
static const char *const required_request_cassettes[] = {
    "test_anthropic_tool_output",
    "test_multiple_parallel_tool_calls",
    "test_tool_choice_matrix[auto-anthropic]",
    "test_tool_choice_matrix[none_with_output-anthropic]",
    "test_tool_choice_matrix[required-anthropic]",
    NULL,
};

typedef struct walk {
    size_t files;        /* files with at least one checked interaction */
    size_t interactions; /* interactions checked */
    size_t json, sse, errors, requests, not_comparable;
    char last_file[4096]; /* the walker reuses its path buffer: compare by value */
    json_t *per_name;     /* name -> [interactions, requests compared] */
} walk_t;

static void check_json_interaction(const json_t *ix, const char *where)
{
    size_t len = 0;
    char *body = cassette_body_bytes(ix, &len);
    provider_target_t t = target("claude-x", false);
    provider_error_t err = {"", NULL};
    const json_t *recorded = cassette_response_json(ix);

    json_t *c = ops->parse_response(&t, body, len, &err);
    if (c == NULL) {
        print_error("%s: parse_response: %s\n", where, err.message);
        fail();
    }
    assert_string_equal(json_string_value(json_object_get(c, "id")),
                        json_string_value(json_object_get(recorded, "id")));
    assert_string_equal(json_string_value(json_object_get(c, "model")),
                        json_string_value(json_object_get(recorded, "model")));

    json_t *got = summary_from_completion(c);
    json_t *want = expected_from_message(recorded);
    assert_json_equal(got, want, where);
    json_decref(got);
    json_decref(want);
    json_decref(c);
    free(body);
}

static void check_sse_interaction(const json_t *ix, const char *where)
{
    size_t len = 0;
    const char *text = cassette_response_text(ix, &len);
    exp_stream_t *e = xcalloc(1, sizeof(*e));
    exp_read(e, text);
    assert_true(e->saw_stop);
    json_t *want = exp_summary(e);

    /* All at once, and in awkward pieces: the same answer. */
    size_t steps[] = {0, 13};
    for (size_t k = 0; k < 2; k++) {
        run_t r;
        run_stream(&r, text, len, steps[k], 0);
        if (r.event_rc != 1 || r.finish_rc != 0) {
            print_error("%s: event rc %d, finish rc %d: %s\n", where, r.event_rc, r.finish_rc,
                        r.err.message);
            fail();
        }
        check_chunks(r.chunks, e->id, e->model);
        json_t *got = summary_from_chunks(r.chunks);
        assert_json_equal(got, want, where);
        json_decref(got);
        run_free(&r);
    }
    json_decref(want);
    exp_free(e);
}

static const char *expected_error_type(const char *anthropic_type)
{
    static const char *const map[][2] = {
        {"invalid_request_error", "invalid_request_error"},
        {"authentication_error", "authentication_error"},
        {"permission_error", "permission_error"},
        {"not_found_error", "invalid_request_error"},
        {"rate_limit_error", "rate_limit_error"},
        {"api_error", "api_error"},
        {"overloaded_error", "api_error"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(anthropic_type, map[i][0]) == 0)
            return map[i][1];
    }
    return "?";
}

static void check_error_interaction(const json_t *ix, const char *where)
{
    size_t len = 0;
    char *body = cassette_body_bytes(ix, &len);
    const json_t *error = json_object_get(cassette_response_json(ix), "error");
    provider_error_t err = {"", NULL};

    ops->parse_error(cassette_response_status(ix), body, len, &err);
    assert_non_null(error);
    assert_string_equal(err.message, json_string_value(json_object_get(error, "message")));
    assert_string_equal(err.type,
                        expected_error_type(json_string_value(json_object_get(error, "type"))));
    free(body);
}

/* Returns true when the request was comparable (and then it matched). */
static bool check_request(const json_t *ix, const char *where)
{
    const json_t *recorded = cassette_request_json(ix);
    json_t *canonical = canonical_from_anthropic(recorded);
    if (canonical == NULL)
        return false;

    provider_target_t t = target(json_string_value(json_object_get(recorded, "model")),
                                 json_is_true(json_object_get(recorded, "stream")));
    provider_http_t http;
    provider_error_t err = {"", NULL};
    json_t *got = build(canonical, &t, &http, &err);
    if (got == NULL) {
        print_error("%s: build_request: %s\n", where, err.message);
        fail();
    }
    json_t *want = normalized_recording(recorded);
    assert_json_equal(got, want, where);
    assert_string_equal(http.url, "https://api.anthropic.com/v1/messages");

    provider_http_free(&http);
    json_decref(want);
    json_decref(got);
    json_decref(canonical);
    return true;
}

static void count_for_name(walk_t *w, const char *name, bool compared)
{
    json_t *entry = json_object_get(w->per_name, name);
    if (entry == NULL) {
        entry = json_pack("[i, i]", 0, 0);
        json_object_set_new(w->per_name, name, entry);
    }
    json_array_set_new(entry, 0, json_integer(json_integer_value(json_array_get(entry, 0)) + 1));
    if (compared)
        json_array_set_new(entry, 1,
                           json_integer(json_integer_value(json_array_get(entry, 1)) + 1));
}

static void visit(const cassette_t *c, const json_t *ix, void *arg)
{
    walk_t *w = arg;
    char where[1024];
    long status = cassette_response_status(ix);

    if (c->name == NULL ||
        (strcmp(c->group, "tool_choice_matrix") == 0 && strstr(c->name, "anthropic") == NULL))
        return;
    if (!cassette_uri_ends_with(ix, "/v1/messages"))
        return;
    snprintf(where, sizeof(where), "%s #%zu", c->name, w->interactions);

    if (status >= 200 && status < 300 && cassette_response_json(ix) != NULL) {
        check_json_interaction(ix, where);
        w->json++;
    } else if (status >= 200 && status < 300 && cassette_response_text(ix, NULL) != NULL) {
        check_sse_interaction(ix, where);
        w->sse++;
    } else if (status >= 400) {
        check_error_interaction(ix, where);
        w->errors++;
    } else {
        return;
    }

    bool compared = cassette_request_json(ix) != NULL && check_request(ix, where);
    if (compared)
        w->requests++;
    else
        w->not_comparable++;
    if (!compared && getenv("ANTHROPIC_TEST_VERBOSE"))
        print_message("not comparable: %s\n", where);
    count_for_name(w, c->name, compared);

    w->interactions++;
    if (strcmp(w->last_file, c->path) != 0) {
        w->files++;
        snprintf(w->last_file, sizeof(w->last_file), "%s", c->path);
    }
}

static void test_cassettes(void **state)
{
    char dir[4096];
    if (!cassette_dir(dir, sizeof(dir))) {
        print_message("anthropic: cassettes not found (set GATEHOUSE_SHARED_DIR); skipping\n");
        skip();
    }

    walk_t w = {0};
    w.per_name = json_object();
    cassette_walk(dir, "anthropic", visit, &w);
    cassette_walk(dir, "tool_choice_matrix", visit, &w);
    print_message("anthropic: checked %zu interactions from %zu cassettes: %zu JSON, %zu SSE, "
                  "%zu errors; %zu requests rebuilt and equal, %zu not expressible in OpenAI's "
                  "shape\n",
                  w.interactions, w.files, w.json, w.sse, w.errors, w.requests, w.not_comparable);
    assert_true(w.files > 0);
    assert_true(w.json > 0);
    assert_true(w.sse > 0);
    assert_true(w.requests > 0);

    for (size_t i = 0; required_request_cassettes[i]; i++) {
        const json_t *entry = json_object_get(w.per_name, required_request_cassettes[i]);
        json_int_t total = json_integer_value(json_array_get(entry, 0));
        json_int_t compared = json_integer_value(json_array_get(entry, 1));
        if (total == 0 || compared != total) {
            print_error("%s: %lld of %lld requests compared\n", required_request_cassettes[i],
                        (long long)compared, (long long)total);
            fail();
        }
    }
    json_decref(w.per_name);
}

int main(void)
{
    alloc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_json_response),
        cmocka_unit_test(test_parse_response_errors),
        cmocka_unit_test(test_fixture_error_bodies),
        cmocka_unit_test(test_fixture_stream),
        cmocka_unit_test(test_fixture_stream_cut),
        cmocka_unit_test(test_fixture_stream_error),
        cmocka_unit_test(test_stream_protocol_errors),
        cmocka_unit_test(test_stream_tolerates_the_unknown),
        cmocka_unit_test(test_stream_emit_stops),
        cmocka_unit_test(test_stream_redacted_thinking),
        cmocka_unit_test(test_fixture_build_request),
        cmocka_unit_test(test_build_request_errors),
        cmocka_unit_test(test_build_request_thinking_budget),
        cmocka_unit_test(test_build_request_shapes),
        cmocka_unit_test(test_cassettes),
    };
    return cmocka_run_group_tests_name("anthropic", tests, NULL, NULL);
}
