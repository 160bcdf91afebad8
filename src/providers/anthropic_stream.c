/*
 * anthropic_stream.c - Anthropic Messages SSE events -> canonical chat.completion.chunk objects.
 *
 * Anthropic streams a message as a small protocol of its own:
 *
 *   message_start                       id, model, prompt usage
 *   content_block_start  (index i)      a text, tool_use, thinking, ... block begins
 *   content_block_delta  (index i)  *   text_delta, input_json_delta, thinking_delta,
 *                                       signature_delta, citations_delta
 *   content_block_stop   (index i)
 *   ... more blocks ...
 *   message_delta                       stop_reason, final usage
 *   message_stop                        the end marker
 *
 * with ping events anywhere and an error event that ends the stream. The translator is a state
 * machine with one small function per event type (and per block and delta type); each event
 * turns into zero or more chunks right away, so nothing is buffered beyond the text of the
 * thinking block in progress.
 *
 * What the client sees:
 *   - message_start: the first chunk, delta {role: assistant, content: ""}.
 *   - text: delta.content.
 *   - tool_use: OpenAI numbers tool calls 0, 1, 2... among tool calls only, while Anthropic's
 *     block index counts every block, so each tool_use block gets the next tool call index at its
 *     start. Its first delta carries id, type and name with empty arguments (as OpenAI does);
 *     each input_json_delta then adds a piece of arguments under the same index.
 *   - thinking: thinking_delta -> delta.reasoning_content. When the block's signature arrives,
 *     delta.thinking_blocks carries the complete block (all its text and the signature), ready
 *     to be sent back on the next turn; a client that accumulates reasoning_content must not
 *     append that text a second time. redacted_thinking blocks go out whole at their start.
 *   - message_delta: a chunk with the finish_reason, then a usage chunk with empty choices (the
 *     shape OpenAI uses with stream_options.include_usage). Usage counts come from message_start
 *     and are overwritten by those message_delta repeats, which are the final totals.
 *   - server tool blocks (server_tool_use, *_tool_result, mcp_tool_use, compaction, ...) and
 *     their deltas are skipped, for the reasons given in anthropic_response.c.
 *
 * Broken streams are errors, never a quiet end: an error event, invalid JSON, events before
 * message_start, a delta for a block that never started or of the wrong kind, and a body that
 * ends before message_stop all return -1 with a message.
 */
#include "providers/anthropic_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/buf.h"

/* Anthropic numbers blocks from 0 in order; a message has a few dozen at most even with many
 * server tool calls. The bound keeps a hostile index from growing the table without limit. */
#define MAX_BLOCKS 4096

typedef enum block_kind {
    BLOCK_UNSEEN = 0, /* no content_block_start for this index yet */
    BLOCK_TEXT,
    BLOCK_TOOL_USE,
    BLOCK_THINKING,
    BLOCK_REDACTED_THINKING,
    BLOCK_SERVER, /* server tools, compaction, types unknown to us: skipped */
} block_kind_t;

typedef struct stream_block {
    block_kind_t kind;
    int tool_index; /* OpenAI tool call index, for BLOCK_TOOL_USE */
} stream_block_t;

struct provider_stream {
    provider_emit_fn emit;
    void *arg;
    char *id;               /* message id from message_start; owned */
    char *model;            /* the target's model until message_start names one; owned */
    json_int_t created;     /* seconds since the epoch, the same on every chunk */
    stream_block_t *blocks; /* indexed by Anthropic block index; owned */
    size_t n_blocks;
    int n_tool_calls; /* tool_use blocks seen so far */
    buf_t thinking;   /* text of the thinking block in progress */
    provider_anthropic_usage_t usage;
    bool started; /* message_start seen */
    bool stopped; /* message_stop seen */
};

typedef int (*event_fn)(provider_stream_t *s, const json_t *ev, provider_error_t *err);

static int protocol_error(provider_error_t *err, const char *what)
{
    provider_error_set(err, "api_error", "upstream stream protocol error: %s", what);
    return -1;
}

/* ---- chunks --------------------------------------------------------------------------------- */

static json_t *chunk_new(const provider_stream_t *s, json_t *choices)
{
    json_t *c = json_object();
    json_object_set_new(c, "id", json_string(s->id ? s->id : ""));
    json_object_set_new(c, "object", json_string("chat.completion.chunk"));
    json_object_set_new(c, "created", json_integer(s->created));
    json_object_set_new(c, "model", json_string(s->model ? s->model : ""));
    json_object_set_new(c, "choices", choices);
    return c;
}

static int emit_chunk(provider_stream_t *s, json_t *chunk)
{
    int rc = s->emit(s->arg, chunk, NULL, 0); /* built here: no upstream text to relay */
    json_decref(chunk);
    return rc;
}

/* One chunk with a single choice; delta is stolen, finish may be NULL. */
static int emit_delta(provider_stream_t *s, json_t *delta, const char *finish)
{
    json_t *choice = json_object();
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "delta", delta);
    json_object_set_new(choice, "finish_reason", finish ? json_string(finish) : json_null());

    json_t *choices = json_array();
    json_array_append_new(choices, choice);
    return emit_chunk(s, chunk_new(s, choices));
}

static int emit_string_delta(provider_stream_t *s, const char *key, const char *value)
{
    json_t *delta = json_object();
    json_object_set_new(delta, key, json_string(value));
    return emit_delta(s, delta, NULL);
}

/* delta.tool_calls with one entry; fn (stolen) holds name and/or arguments. */
static int emit_tool_delta(provider_stream_t *s, int index, const char *id, json_t *fn)
{
    json_t *call = json_object();
    json_object_set_new(call, "index", json_integer(index));
    if (id != NULL) {
        json_object_set_new(call, "id", json_string(id));
        json_object_set_new(call, "type", json_string("function"));
    }
    json_object_set_new(call, "function", fn);

    json_t *calls = json_array();
    json_array_append_new(calls, call);
    json_t *delta = json_object();
    json_object_set_new(delta, "tool_calls", calls);
    return emit_delta(s, delta, NULL);
}

/* delta.thinking_blocks with one block (stolen). */
static int emit_thinking_block(provider_stream_t *s, json_t *block)
{
    json_t *blocks = json_array();
    json_array_append_new(blocks, block);
    json_t *delta = json_object();
    json_object_set_new(delta, "thinking_blocks", blocks);
    return emit_delta(s, delta, NULL);
}

/* ---- blocks --------------------------------------------------------------------------------- */

/* The block an event's "index" names, or NULL (err filled) when it is missing or out of range;
 * with grow, the table is extended to hold it. */
static stream_block_t *block_at(provider_stream_t *s, const json_t *ev, bool grow,
                                provider_error_t *err)
{
    json_t *index = json_object_get(ev, "index");

    if (!json_is_integer(index) || json_integer_value(index) < 0 ||
        json_integer_value(index) >= MAX_BLOCKS) {
        protocol_error(err, "content block event without a valid index");
        return NULL;
    }

    size_t i = (size_t)json_integer_value(index);
    if (i >= s->n_blocks && grow) {
        s->blocks = xrealloc(s->blocks, (i + 1) * sizeof(*s->blocks));
        memset(s->blocks + s->n_blocks, 0, (i + 1 - s->n_blocks) * sizeof(*s->blocks));
        s->n_blocks = i + 1;
    }
    if (i >= s->n_blocks || (!grow && s->blocks[i].kind == BLOCK_UNSEEN)) {
        protocol_error(err, "content block delta for a block that never started");
        return NULL;
    }
    return &s->blocks[i];
}

static int start_text(provider_stream_t *s, stream_block_t *b, const json_t *cb)
{
    const char *text = json_string_value(json_object_get(cb, "text"));

    b->kind = BLOCK_TEXT;
    if (text == NULL || text[0] == '\0')
        return 0;
    return emit_string_delta(s, "content", text);
}

static int start_tool_use(provider_stream_t *s, stream_block_t *b, const json_t *cb)
{
    const char *id = json_string_value(json_object_get(cb, "id"));
    const char *name = json_string_value(json_object_get(cb, "name"));

    b->kind = BLOCK_TOOL_USE;
    b->tool_index = s->n_tool_calls++;

    json_t *fn = json_object();
    json_object_set_new(fn, "name", json_string(name ? name : ""));
    json_object_set_new(fn, "arguments", json_string(""));
    return emit_tool_delta(s, b->tool_index, id ? id : "", fn);
}

static int start_thinking(provider_stream_t *s, stream_block_t *b, const json_t *cb)
{
    const char *thinking = json_string_value(json_object_get(cb, "thinking"));

    b->kind = BLOCK_THINKING;
    buf_reset(&s->thinking);
    if (thinking == NULL || thinking[0] == '\0')
        return 0;
    buf_appends(&s->thinking, thinking);
    return emit_string_delta(s, "reasoning_content", thinking);
}

static int start_redacted_thinking(provider_stream_t *s, stream_block_t *b, const json_t *cb)
{
    const char *data = json_string_value(json_object_get(cb, "data"));

    b->kind = BLOCK_REDACTED_THINKING;
    json_t *tb = json_object();
    json_object_set_new(tb, "type", json_string("redacted_thinking"));
    json_object_set_new(tb, "data", json_string(data ? data : ""));
    return emit_thinking_block(s, tb);
}

static int on_block_start(provider_stream_t *s, const json_t *ev, provider_error_t *err)
{
    static const struct {
        const char *type;
        int (*start)(provider_stream_t *s, stream_block_t *b, const json_t *cb);
    } starts[] = {
        {"text", start_text},
        {"tool_use", start_tool_use},
        {"thinking", start_thinking},
        {"redacted_thinking", start_redacted_thinking},
    };
    const json_t *cb = json_object_get(ev, "content_block");
    const char *type = json_string_value(json_object_get(cb, "type"));

    stream_block_t *b = block_at(s, ev, true, err);
    if (b == NULL)
        return -1;
    if (b->kind != BLOCK_UNSEEN)
        return protocol_error(err, "content block started twice");

    for (size_t i = 0; type && i < sizeof(starts) / sizeof(starts[0]); i++) {
        if (strcmp(type, starts[i].type) == 0)
            return starts[i].start(s, b, cb);
    }
    b->kind = BLOCK_SERVER;
    return 0;
}

/* ---- deltas --------------------------------------------------------------------------------- */

static int delta_text(provider_stream_t *s, stream_block_t *b, const json_t *d)
{
    const char *text = json_string_value(json_object_get(d, "text"));
    if (text == NULL || text[0] == '\0')
        return 0;
    return emit_string_delta(s, "content", text);
}

static int delta_input_json(provider_stream_t *s, stream_block_t *b, const json_t *d)
{
    const char *partial = json_string_value(json_object_get(d, "partial_json"));
    if (partial == NULL || partial[0] == '\0')
        return 0;

    json_t *fn = json_object();
    json_object_set_new(fn, "arguments", json_string(partial));
    return emit_tool_delta(s, b->tool_index, NULL, fn);
}

static int delta_thinking(provider_stream_t *s, stream_block_t *b, const json_t *d)
{
    const char *thinking = json_string_value(json_object_get(d, "thinking"));
    if (thinking == NULL || thinking[0] == '\0')
        return 0;
    buf_appends(&s->thinking, thinking);
    return emit_string_delta(s, "reasoning_content", thinking);
}

static int delta_signature(provider_stream_t *s, stream_block_t *b, const json_t *d)
{
    const char *signature = json_string_value(json_object_get(d, "signature"));

    json_t *tb = json_object();
    json_object_set_new(tb, "type", json_string("thinking"));
    json_object_set_new(tb, "thinking", json_stringn(buf_cstr(&s->thinking), s->thinking.len));
    json_object_set_new(tb, "signature", json_string(signature ? signature : ""));
    return emit_thinking_block(s, tb);
}

static int on_block_delta(provider_stream_t *s, const json_t *ev, provider_error_t *err)
{
    static const struct {
        const char *type;
        block_kind_t kind; /* the only kind of block this delta may belong to */
        int (*apply)(provider_stream_t *s, stream_block_t *b, const json_t *d);
    } deltas[] = {
        {"text_delta", BLOCK_TEXT, delta_text},
        {"input_json_delta", BLOCK_TOOL_USE, delta_input_json},
        {"thinking_delta", BLOCK_THINKING, delta_thinking},
        {"signature_delta", BLOCK_THINKING, delta_signature},
    };
    const json_t *d = json_object_get(ev, "delta");
    const char *type = json_string_value(json_object_get(d, "type"));

    stream_block_t *b = block_at(s, ev, false, err);
    if (b == NULL)
        return -1;
    if (b->kind == BLOCK_SERVER)
        return 0;

    for (size_t i = 0; type && i < sizeof(deltas) / sizeof(deltas[0]); i++) {
        if (strcmp(type, deltas[i].type) != 0)
            continue;
        if (b->kind != deltas[i].kind)
            return protocol_error(err, "content block delta does not fit its block's type");
        return deltas[i].apply(s, b, d);
    }
    /* citations_delta and delta types newer than this adapter carry nothing a chat completion
     * can hold. */
    return 0;
}

static int on_block_stop(provider_stream_t *s, const json_t *ev, provider_error_t *err)
{
    return 0;
}

/* ---- message events ------------------------------------------------------------------------- */

static void replace_string(char **field, const char *value)
{
    if (value == NULL)
        return;
    free(*field);
    *field = xstrdup(value);
}

static int on_message_start(provider_stream_t *s, const json_t *ev, provider_error_t *err)
{
    const json_t *msg = json_object_get(ev, "message");

    if (s->started)
        return protocol_error(err, "second message_start");
    if (!json_is_object(msg))
        return protocol_error(err, "message_start without a message");

    s->started = true;
    replace_string(&s->id, json_string_value(json_object_get(msg, "id")));
    replace_string(&s->model, json_string_value(json_object_get(msg, "model")));
    provider_anthropic_usage_update(&s->usage, json_object_get(msg, "usage"));

    json_t *delta = json_object();
    json_object_set_new(delta, "role", json_string("assistant"));
    json_object_set_new(delta, "content", json_string(""));
    return emit_delta(s, delta, NULL);
}

static int on_message_delta(provider_stream_t *s, const json_t *ev, provider_error_t *err)
{
    const char *stop =
        json_string_value(json_object_get(json_object_get(ev, "delta"), "stop_reason"));
    provider_anthropic_usage_update(&s->usage, json_object_get(ev, "usage"));

    int rc = emit_delta(s, json_object(), provider_anthropic_finish_reason(stop));
    if (rc != 0)
        return rc;

    json_t *chunk = chunk_new(s, json_array());
    json_object_set_new(chunk, "usage", provider_anthropic_usage_json(&s->usage));
    return emit_chunk(s, chunk);
}

static int on_message_stop(provider_stream_t *s, const json_t *ev, provider_error_t *err)
{
    s->stopped = true;
    return 1;
}

static int on_ping(provider_stream_t *s, const json_t *ev, provider_error_t *err)
{
    return 0;
}

static int on_error(provider_stream_t *s, const json_t *ev, provider_error_t *err)
{
    if (provider_anthropic_error_from_json(json_object_get(ev, "error"), 0, err) != 0)
        provider_error_set(err, "api_error", "upstream sent an error event without a message");
    return -1;
}

/* ---- the translator ------------------------------------------------------------------------- */

static event_fn event_handler(const char *type, bool *needs_start)
{
    static const struct {
        const char *type;
        event_fn fn;
        bool needs_start; /* only valid after message_start */
    } events[] = {
        {"message_start", on_message_start, false},
        {"content_block_start", on_block_start, true},
        {"content_block_delta", on_block_delta, true},
        {"content_block_stop", on_block_stop, true},
        {"message_delta", on_message_delta, true},
        {"message_stop", on_message_stop, true},
        {"ping", on_ping, false},
        {"error", on_error, false},
    };

    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        if (strcmp(type, events[i].type) == 0) {
            *needs_start = events[i].needs_start;
            return events[i].fn;
        }
    }
    return NULL;
}

provider_stream_t *provider_anthropic_stream_new(const provider_target_t *t, provider_emit_fn emit,
                                                 void *arg)
{
    provider_stream_t *s = xcalloc(1, sizeof(*s));
    s->emit = emit;
    s->arg = arg;
    s->model = xstrdup(t && t->model ? t->model : "");
    s->created = (json_int_t)time(NULL);
    buf_init(&s->thinking);
    return s;
}

/* The event's type: the "type" field of its data, which Anthropic always sets and which the
 * event name only repeats; the name is the fallback. */
static char *event_type(const json_t *ev, const char *event, size_t event_len)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    return type ? xstrdup(type) : xstrndup(event, event_len);
}

int provider_anthropic_stream_event(provider_stream_t *s, const char *event, size_t event_len,
                                    const char *data, size_t data_len, provider_error_t *err)
{
    if (s->stopped)
        return 1;

    json_error_t jerr;
    json_t *ev = json_loadb(data, data_len, 0, &jerr);
    if (!json_is_object(ev)) {
        provider_error_set(err, "api_error", "upstream sent an invalid stream event: %s",
                           ev ? "not a JSON object" : jerr.text);
        json_decref(ev);
        return -1;
    }

    char *type = event_type(ev, event ? event : "", event ? event_len : 0);
    bool needs_start = false;
    event_fn fn = event_handler(type, &needs_start);
    int rc = 0;

    /* Event types newer than this adapter are ignored, as Anthropic's versioning asks. */
    if (fn != NULL && needs_start && !s->started)
        rc = protocol_error(err, "content before message_start");
    else if (fn != NULL)
        rc = fn(s, ev, err);

    free(type);
    json_decref(ev);
    return rc;
}

int provider_anthropic_stream_finish(provider_stream_t *s, provider_error_t *err)
{
    if (s->stopped)
        return 0;
    provider_error_set(err, "api_error", "upstream stream ended before message_stop");
    return -1;
}

void provider_anthropic_stream_free(provider_stream_t *s)
{
    if (s == NULL)
        return;
    free(s->id);
    free(s->model);
    free(s->blocks);
    buf_free(&s->thinking);
    free(s);
}
