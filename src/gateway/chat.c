/*
 * chat.c - POST /v1/chat/completions: the request pipeline and its attempt loop.
 *
 * One chat_t lives for one client request, on the worker thread that received it. Its states:
 *
 *   parse -> resolve targets (primary model, then each fallback)
 *     -> for each target: wait for a provider slot (limiter) -> attempt
 *        attempt: pick a key -> adapter builds the upstream request -> upstream call
 *          -> success: answer JSON, or relay the translated stream and end with [DONE]
 *          -> failure: classify (router_classify): give up, retry after a backoff (429 with
 *             another key; 401/403 never again with that key), or move to the next target
 *   -> no target left: answer with the last failure, in the OpenAI error shape
 *
 * A failure can be retried only while nothing of the current model turn has been sent to the
 * client. Once the first chunk of a stream has gone out, an upstream failure ends the stream
 * with an SSE error event, never with [DONE], so a client can always tell a complete answer
 * from a cut one.
 *
 * MCP (inject.h, agent.h): after parsing, the MCP tools the request may see are added to its
 * "tools". When some of them are auto-executable, an agent follows the request: each complete
 * model turn is shown to it, and when it runs the turn's tool calls, the request goes through
 * the whole attempt loop again (from the primary model) with the longer conversation. Usage
 * is summed over the turns.
 *
 * Ownership: the chat_t owns its parsed body, snapshot reference, upstream call, timer, limiter
 * slot or waiter, and the adapter's request and stream objects. chat_end finishes the HTTP
 * request and releases all of them, once. It writes the access line before it finishes the
 * HTTP request, because a finished request whose client has gone is freed at once.
 */
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dialects/openai.h"
#include "gateway/agent.h"
#include "gateway/handlers.h"
#include "gateway/inject.h"
#include "gateway/router.h"
#include "http/upstream.h"
#include "providers/provider.h"
#include "telemetry/metrics.h"
#include "telemetry/telemetry.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/redact.h"
#include "util/sse.h"

#define CHAT_MAX_TARGETS 16
#define CHAT_MAX_BODY (64u * 1024 * 1024)    /* upstream JSON bodies above this are refused */
#define CHAT_MAX_ERROR_BODY (64u * 1024)     /* error bodies are kept up to this for the message */
#define CHAT_MAX_LOGGED (1u * 1024 * 1024)   /* response text kept for the request log */
#define CHAT_MAX_AUDITED (64u * 1024 * 1024) /* upstream bytes kept for one audit record */

typedef struct chat {
    http_request_t *http;
    gateway_worker_t *worker;
    gateway_snapshot_t *snap;
    char rid[GATEWAY_REQUEST_ID_MAX];
    double started_at;
    dialect_chat_request_t req;

    router_target_t targets[CHAT_MAX_TARGETS];
    size_t n_targets;
    size_t cur;            /* index of the target being tried */
    int attempt;           /* attempts made on the current target */
    int retries;           /* retries over the whole request, for the headers and log */
    uint64_t keys_dropped; /* 401/403: bit i = key i is out for this target */
    uint64_t keys_rotated; /* 429: avoid key i on the next pick */
    int key_index;

    limiter_t *limiter;
    bool holds_slot;
    gateway_waiter_t *waiter;
    struct event *timer; /* backoff before a retry */

    const provider_ops_t *ops;
    provider_target_t ptarget;
    provider_http_t up_req;
    bool up_req_built;
    upstream_call_t *call;
    long status;        /* upstream HTTP status of the current attempt */
    long retry_after_s; /* the upstream's Retry-After in seconds, or -1 */
    buf_t body;         /* upstream JSON or error body */
    bool body_too_large;

    bool streaming_upstream; /* current attempt answered 2xx text/event-stream */
    provider_stream_t *stream;
    sse_parser_t sse;
    bool stream_done; /* the adapter saw its end marker */
    bool stream_failed;
    provider_error_t stream_err;
    bool client_streaming; /* headers and at least one chunk sent to the client */

    int fail_status; /* the last failure, answered when no target is left */
    char fail_msg[512];
    const char *fail_type;
    const char *fail_code;

    long tokens_in; /* over all model turns */
    long tokens_out;
    long tokens_cached;
    long base_in; /* the same, of the turns before the current one */
    long base_out;
    long base_cached;

    /* MCP: the tools added to the request, and agent mode when any of them auto-executes. */
    inject_tools_t tools;
    agent_t *agent;         /* NULL unless an auto-executable tool was added */
    agent_plan_t plan;      /* of the round of tool calls running */
    json_t *held_resp;      /* JSON answer waiting for its round (AGENT_RUN_SOME) */
    const json_t *prep_msg; /* the turn's message while agent_prepare works */
    json_t *prep_resp;      /* its JSON answer meanwhile (NULL in a stream) */
    bool turn_sent;         /* a chunk of the current model turn reached the client */

    /* Telemetry: timings, and what the request log and the audit trail keep. */
    double started_unix;   /* wall clock at arrival */
    double first_sent_at;  /* monotonic time the answer (or first chunk) went out; 0 */
    double upstream_s;     /* time in upstream exchanges, all attempts */
    double waited_s;       /* backoff sleeps and queueing for a provider slot */
    double wait_began;     /* monotonic start of the current wait */
    double attempt_unix;   /* wall clock at the start of the current attempt */
    bool log_content;      /* bodies go to the request log */
    bool audit;            /* upstream exchanges go to the audit trail */
    buf_t logged_response; /* the answer as the client got it, capped */
    buf_t audited_body;    /* raw upstream bytes of the current attempt, capped */
    bool finished;
} chat_t;

static void begin_target(chat_t *c);
static void scrub_keys(const chat_t *c, char *text, size_t cap);
static void start_attempt(chat_t *c);
static void attempt_failed(chat_t *c, long status);

/* ---- ending the request --------------------------------------------------------------------- */

static void release_slot(chat_t *c)
{
    if (c->waiter != NULL) {
        gateway_worker_cancel_wait(c->worker, c->waiter);
        limiter_wait_end(c->limiter);
        c->waiter = NULL;
    }
    if (c->holds_slot) {
        limiter_release(c->limiter);
        c->holds_slot = false;
    }
}

static void attempt_reset(chat_t *c)
{
    if (c->call != NULL) {
        upstream_cancel(c->call);
        c->call = NULL;
    }
    if (c->stream != NULL) {
        c->ops->stream_free(c->stream);
        c->stream = NULL;
        sse_parser_free(&c->sse);
    }
    if (c->up_req_built) {
        provider_http_free(&c->up_req);
        c->up_req_built = false;
    }
    buf_reset(&c->body);
    buf_reset(&c->audited_body);
    c->status = 0;
    c->body_too_large = false;
    c->streaming_upstream = false;
    c->stream_done = false;
    c->stream_failed = false;
}

static void chat_free(chat_t *c)
{
    attempt_reset(c);
    release_slot(c);
    if (c->timer != NULL)
        event_free(c->timer);
    buf_free(&c->body);
    buf_free(&c->logged_response);
    buf_free(&c->audited_body);
    agent_free(c->agent);
    inject_tools_release(&c->tools);
    json_decref(c->held_resp);
    json_decref(c->prep_resp);
    dialect_chat_request_free(&c->req);
    gateway_snapshot_release(c->snap);
    free(c);
}

static const char *current_model_name(const chat_t *c, char *out, size_t cap)
{
    if (c->n_targets == 0)
        return c->req.model;
    const router_target_t *t = &c->targets[c->cur < c->n_targets ? c->cur : c->n_targets - 1];
    snprintf(out, cap, "%s/%s", t->provider->name, t->model);
    return out;
}

/* Keeps (part of) what the client gets, for the request log. */
static void log_response(chat_t *c, const char *text, size_t len)
{
    if (!c->log_content || c->logged_response.len >= CHAT_MAX_LOGGED)
        return;
    size_t room = CHAT_MAX_LOGGED - c->logged_response.len;
    buf_append(&c->logged_response, text, len < room ? len : room);
}

/* The same for one SSE data line: the log keeps the lines joined by newlines. */
static void log_data_line(chat_t *c, const char *text, size_t len)
{
    if (c->logged_response.len > 0)
        log_response(c, "\n", 1);
    log_response(c, text, len);
}

/* The request's record for the request log and the metrics. */
static void report_request(chat_t *c, int status)
{
    double latency = gateway_now() - c->started_at;
    double overhead = latency - c->upstream_s - c->waited_s;
    /* After the last fallback failed, cur points past the end: the record is about the target
     * that failed last. */
    const router_target_t *t = NULL;
    size_t last = c->cur < c->n_targets ? c->cur : c->n_targets - 1;
    if (c->n_targets > 0)
        t = &c->targets[last];
    size_t body_len = 0;
    const char *body = http_request_body(c->http, &body_len);
    /* A provider may echo its key in an answer; the log keeps no key. */
    if (c->logged_response.data != NULL) {
        scrub_keys(c, c->logged_response.data, c->logged_response.cap);
        c->logged_response.len = strlen(c->logged_response.data);
    }

    telemetry_request_t r = {
        .id = c->rid,
        .started_unix = c->started_unix,
        .latency_s = latency,
        .ttft_s = c->first_sent_at > 0 ? c->first_sent_at - c->started_at : -1,
        .upstream_s = c->upstream_s,
        .overhead_s = overhead > 0 ? overhead : 0,
        .dialect = "openai",
        .method = http_request_method(c->http),
        .path = http_request_path(c->http),
        .provider = t ? t->provider->name : NULL,
        .model = t ? t->model : NULL,
        .key_name = t && c->key_index >= 0 ? t->provider->keys[c->key_index].name : NULL,
        .fallback_index = t ? (int)last : 0,
        .retries = c->retries,
        .status = status,
        .stream = c->req.stream,
        .error_type = status >= 400 ? (c->fail_type ? c->fail_type : "api_error") : NULL,
        .error_message = status >= 400 && c->fail_msg[0] ? c->fail_msg : NULL,
        .tokens_in = c->tokens_in,
        .tokens_out = c->tokens_out,
        .tokens_cached = c->tokens_cached,
        .log_content = c->log_content,
        .request_body = c->log_content ? body : NULL,
        .request_len = c->log_content ? body_len : 0,
        .response_body = c->log_content ? buf_cstr(&c->logged_response) : NULL,
        .response_len = c->log_content ? c->logged_response.len : 0,
    };
    telemetry_request_done(c->snap->cfg, &r);
}

/* Writes the access line and the request's record, finishes the HTTP request (ends the stream
 * when one was started, else answers with status and body) and frees everything. */
static void chat_end(chat_t *c, int status, const char *content_type, const char *body, size_t len)
{
    char model[300];
    c->finished = true;
    if (!c->client_streaming && body != NULL) {
        if (c->first_sent_at == 0)
            c->first_sent_at = gateway_now();
        log_response(c, body, len);
    }
    gateway_access_log(c->http, c->rid, status, current_model_name(c, model, sizeof(model)),
                       c->started_at, c->tokens_in, c->tokens_out);
    report_request(c, status);

    metrics_gauge_add(METRICS_ACTIVE_REQUESTS, -1);
    if (c->client_streaming) {
        metrics_gauge_add(METRICS_ACTIVE_STREAMS, -1);
        http_stream_end(c->http);
    } else {
        http_respond(c->http, status, content_type, body, len);
    }
    chat_free(c);
}

static void add_route_headers(chat_t *c)
{
    const router_target_t *t = &c->targets[c->cur];
    char index[16];
    char retries[16];
    snprintf(index, sizeof(index), "%zu", c->cur);
    snprintf(retries, sizeof(retries), "%d", c->retries);

    http_response_header(c->http, "x-request-id", c->rid);
    http_response_header(c->http, "x-gatehouse-provider", t->provider->name);
    http_response_header(c->http, "x-gatehouse-model", t->model);
    if (c->key_index >= 0)
        http_response_header(c->http, "x-gatehouse-key", t->provider->keys[c->key_index].name);
    http_response_header(c->http, "x-gatehouse-fallback-index", index);
    http_response_header(c->http, "x-gatehouse-retries", retries);
}

static void write_sse_data(chat_t *c, const char *json, size_t len);
static void add_agent_headers(chat_t *c, agent_plan_t plan);

/* Answers with an OpenAI-shaped error and ends the request. When the stream to the client has
 * already begun (an agent's later turn), the error is its last event. */
static void fail_request(chat_t *c, int status, const char *message, const char *type,
                         const char *param, const char *code)
{
    buf_t body = BUF_INIT;
    type = type ? type : dialect_openai_error_type(status);
    dialect_openai_error(&body, message, type, param, code);
    /* The log row and the metrics carry the error the client got. */
    if (message != c->fail_msg)
        snprintf(c->fail_msg, sizeof(c->fail_msg), "%s", message);
    c->fail_type = type;
    if (c->client_streaming) {
        write_sse_data(c, body.data, body.len);
        chat_end(c, status, NULL, NULL, 0);
    } else {
        http_response_header(c->http, "x-request-id", c->rid);
        add_agent_headers(c, AGENT_FINAL);
        chat_end(c, status, "application/json", body.data, body.len);
    }
    buf_free(&body);
}

/* Answers with the last recorded failure: nothing more will be tried. */
static void respond_failure(chat_t *c)
{
    if (c->n_targets > 1)
        log_warn(c->rid, "all %zu models failed; answering %d: %s", c->n_targets, c->fail_status,
                 c->fail_msg);
    else
        log_warn(c->rid, "request failed with %d: %s", c->fail_status, c->fail_msg);

    fail_request(c, c->fail_status, c->fail_msg, c->fail_type, NULL, c->fail_code);
}

/* Upstream messages may quote the key they were sent; no key of the provider may reach a log
 * line or the client. */
static void scrub_keys(const chat_t *c, char *text, size_t cap)
{
    if (c->n_targets == 0)
        return;
    const config_provider_t *p = c->targets[c->cur < c->n_targets ? c->cur : 0].provider;
    for (size_t i = 0; i < p->n_keys; i++)
        redact_scrub(text, cap, p->keys[i].value);
}

static void record_failure(chat_t *c, int status, const char *type, const char *code,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void record_failure(chat_t *c, int status, const char *type, const char *code,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
    va_end(ap);
    scrub_keys(c, c->fail_msg, sizeof(c->fail_msg));
    c->fail_status = status;
    c->fail_type = type;
    c->fail_code = code;
}

/* ---- streaming to the client ---------------------------------------------------------------- */

static void client_stream_begin(chat_t *c)
{
    add_route_headers(c);
    http_stream_start(c->http, 200, "text/event-stream");
    c->client_streaming = true;
    c->first_sent_at = gateway_now();
    metrics_gauge_add(METRICS_ACTIVE_STREAMS, 1);
}

static void write_sse_data(chat_t *c, const char *json, size_t len)
{
    buf_t out = BUF_INIT;
    buf_reserve(&out, len + 8);
    buf_append(&out, "data: ", 6);
    buf_append(&out, json, len);
    buf_append(&out, "\n\n", 2);
    http_stream_write(c->http, out.data, out.len);
    buf_free(&out);

    log_data_line(c, json, len);
}

static void note_usage(chat_t *c, const json_t *usage)
{
    json_t *in = json_object_get(usage, "prompt_tokens");
    json_t *out = json_object_get(usage, "completion_tokens");
    json_t *cached =
        json_object_get(json_object_get(usage, "prompt_tokens_details"), "cached_tokens");
    if (json_is_integer(in))
        c->tokens_in = c->base_in + (long)json_integer_value(in);
    if (json_is_integer(out))
        c->tokens_out = c->base_out + (long)json_integer_value(out);
    if (json_is_integer(cached))
        c->tokens_cached = c->base_cached + (long)json_integer_value(cached);
}

/* json_dump_callback's sink: appends to a buf_t. Serializing into the buffer that goes out
 * saves json_dumps' own buffer, its copy and a strlen per chunk or answer. */
static int dump_to_buf(const char *data, size_t size, void *arg)
{
    buf_append(arg, data, size);
    return 0;
}

/* Writes one chunk (or agent event) as an SSE data line, starting the stream if needed. */
static int write_chunk(chat_t *c, const json_t *chunk)
{
    if (!c->client_streaming)
        client_stream_begin(c);
    buf_t out = BUF_INIT;
    buf_reserve(&out, 512);
    buf_append(&out, "data: ", 6);
    if (json_dump_callback(chunk, dump_to_buf, &out, JSON_COMPACT) != 0) {
        buf_free(&out);
        return -1;
    }
    size_t json_len = out.len - 6;
    buf_append(&out, "\n\n", 2);
    http_stream_write(c->http, out.data, out.len);
    log_data_line(c, out.data + 6, json_len);
    buf_free(&out);
    return 0;
}

/* True when an upstream event's text can go out as one SSE data line: a multi-line event
 * would come out as several data lines, which a client joins with newlines. */
static bool one_line(const char *text, size_t len)
{
    return memchr(text, '\n', len) == NULL && memchr(text, '\r', len) == NULL;
}

/* One canonical chunk from the adapter. The upstream is always asked for usage (the gateway
 * needs it); the client gets it only when it asked with stream_options.include_usage. A chunk
 * that goes out unchanged goes out as the upstream's own text (raw), when the adapter gave it:
 * serializing the chunk again would cost about as much as parsing it did. */
static int on_chunk(void *arg, json_t *chunk, const char *raw, size_t raw_len)
{
    chat_t *c = arg;
    json_t *usage = json_object_get(chunk, "usage");

    if (json_is_object(usage))
        note_usage(c, usage);
    if (c->agent != NULL) {
        raw = NULL; /* the agent keeps and rebuilds what it is shown */
        if (!agent_stream_chunk(c->agent, chunk))
            return 0; /* held until the turn ends */
    } else if (json_is_object(usage)) {
        if (!c->req.include_usage) {
            if (json_array_size(json_object_get(chunk, "choices")) == 0)
                return 0;
            json_object_del(chunk, "usage");
            raw = NULL;
        }
    } else if (usage != NULL && !c->req.include_usage) {
        json_object_del(chunk, "usage");
        raw = NULL;
    }
    c->turn_sent = true;
    if (raw != NULL && one_line(raw, raw_len)) {
        if (!c->client_streaming)
            client_stream_begin(c);
        write_sse_data(c, raw, raw_len);
        return 0;
    }
    return write_chunk(c, chunk);
}

/* Ends a stream that broke after the client saw part of it: an error event, no [DONE]. */
static void stream_fail_to_client(chat_t *c, char *message, size_t cap)
{
    scrub_keys(c, message, cap);
    log_error(c->rid,
              "upstream stream from %s failed after the response started: %s;"
              " ending the client stream with an error event",
              c->targets[c->cur].provider->name, message);

    buf_t body = BUF_INIT;
    dialect_openai_error(&body, message, "upstream_error", NULL, "stream_interrupted");
    write_sse_data(c, body.data, body.len);
    buf_free(&body);
    chat_end(c, 502, NULL, NULL, 0);
}

static void stream_done(chat_t *c)
{
    if (!c->client_streaming)
        client_stream_begin(c); /* an empty but complete stream is still a stream */
    static const char done[] = "data: [DONE]\n\n";
    http_stream_write(c->http, done, sizeof(done) - 1);
    log_data_line(c, "[DONE]", 6);
    chat_end(c, 200, NULL, NULL, 0);
}

static void agent_turn_end(chat_t *c, const json_t *msg, json_t *resp);

static void stream_succeeded(chat_t *c)
{
    if (c->agent != NULL)
        agent_turn_end(c, agent_stream_message(c->agent), NULL);
    else
        stream_done(c);
}

/* ---- agent mode (agent.h) ------------------------------------------------------------------- */

/* JSON answers say how many model turns ran and whether the depth limit stopped the loop;
 * streams say it in their last agent event instead, since their headers leave first. */
static void add_agent_headers(chat_t *c, agent_plan_t plan)
{
    if (c->agent == NULL || c->req.stream)
        return;
    char steps[16];
    snprintf(steps, sizeof(steps), "%d", agent_turns(c->agent));
    http_response_header(c->http, "x-gatehouse-agent-steps", steps);
    if (plan == AGENT_LIMIT)
        http_response_header(c->http, "x-gatehouse-agent-depth-limit-reached", "true");
}

/* The usage the client gets: the upstream's own for a single turn, else the sum of every
 * turn. New reference, or NULL when the upstream sent none. */
static json_t *client_usage(const chat_t *c, const json_t *last)
{
    if (last == NULL || agent_turns(c->agent) <= 1)
        return json_deep_copy(last);
    return agent_usage_json(c->tokens_in, c->tokens_out, c->tokens_cached);
}

/* Sends the final JSON answer (resp is consumed). */
static void answer_json(chat_t *c, json_t *resp, agent_plan_t plan)
{
    if (c->agent != NULL) {
        agent_finish_json(c->agent, resp, plan);
        json_t *usage = client_usage(c, json_object_get(resp, "usage"));
        if (usage != NULL)
            json_object_set_new(resp, "usage", usage);
    }
    buf_t text = BUF_INIT;
    buf_reserve(&text, 512); /* below 1 KiB: a larger malloc makes glibc consolidate */
    int rc = json_dump_callback(resp, dump_to_buf, &text, JSON_COMPACT);
    json_decref(resp);
    if (rc != 0) {
        buf_free(&text);
        fail_request(c, 500, "gatehouse could not serialize the answer", "api_error", NULL, NULL);
        return;
    }
    add_route_headers(c);
    add_agent_headers(c, plan);
    chat_end(c, 200, "application/json", text.data, text.len);
    buf_free(&text);
}

/* Sends the upstream's JSON body as the answer: the adapter returned it unchanged and nothing
 * here changes it (no agent), so serializing resp (consumed) again would only cost time. */
static void answer_body(chat_t *c, json_t *resp)
{
    json_decref(resp);
    add_route_headers(c);
    chat_end(c, 200, "application/json", c->body.data, c->body.len);
}

/* Writes a chunk made for the client (consumed). */
static void write_own_chunk(chat_t *c, json_t *chunk)
{
    write_chunk(c, chunk);
    json_decref(chunk);
}

/* Ends an agent's stream: the held tool calls and finish reason, the summary event, the usage
 * when the client asked for it, and [DONE]. */
static void stream_finish_agent(chat_t *c, agent_plan_t plan)
{
    json_t *usage = c->req.include_usage ? client_usage(c, agent_stream_usage(c->agent)) : NULL;
    json_t *out = agent_stream_tail(c->agent, plan, usage);
    size_t i;
    json_t *chunk;
    json_array_foreach (out, i, chunk)
        write_chunk(c, chunk);
    json_decref(out);
    stream_done(c);
}

/* The next model call of the loop: the whole attempt loop again, from the primary model. */
static void next_turn(chat_t *c)
{
    c->base_in = c->tokens_in;
    c->base_out = c->tokens_out;
    c->base_cached = c->tokens_cached;
    c->turn_sent = false;
    c->cur = 0;
    begin_target(c);
}

static void on_round_done(void *arg)
{
    chat_t *c = arg;
    if (c->req.stream)
        write_own_chunk(c, agent_event_results(c->agent));
    if (c->plan == AGENT_RUN_ALL) {
        next_turn(c);
    } else if (c->req.stream) {
        stream_finish_agent(c, AGENT_RUN_SOME);
    } else {
        json_t *resp = c->held_resp;
        c->held_resp = NULL;
        answer_json(c, resp, AGENT_RUN_SOME);
    }
}

/* A complete and prepared model turn: the agent runs its calls (without holding the provider's
 * slot meanwhile), or the answer ends here. resp is the JSON answer (consumed), or NULL in a
 * stream. */
static void agent_turn_plan(chat_t *c, const json_t *msg, json_t *resp)
{
    agent_plan_t plan = msg != NULL ? agent_plan(c->agent, msg) : AGENT_FINAL;
    if (plan == AGENT_FINAL || plan == AGENT_LIMIT) {
        if (resp != NULL)
            answer_json(c, resp, plan);
        else
            stream_finish_agent(c, plan);
        return;
    }
    c->plan = plan;
    attempt_reset(c);
    release_slot(c);
    agent_run(c->agent, msg, on_round_done, c); /* copies msg */
    if (plan == AGENT_RUN_SOME)
        c->held_resp = resp;
    else
        json_decref(resp);
    if (resp == NULL)
        write_own_chunk(c, agent_event_calls(c->agent));
}

static void on_turn_prepared(void *arg)
{
    chat_t *c = arg;
    const json_t *msg = c->prep_msg;
    json_t *resp = c->prep_resp;
    c->prep_msg = NULL;
    c->prep_resp = NULL;
    agent_turn_plan(c, msg, resp);
}

/* A complete model turn, with its assistant message. Code Mode scripts are analysed first
 * (agent_prepare), without holding the provider's slot. */
static void agent_turn_end(chat_t *c, const json_t *msg, json_t *resp)
{
    if (msg != NULL && agent_prepare(c->agent, msg, on_turn_prepared, c)) {
        release_slot(c);
        c->prep_msg = msg;
        c->prep_resp = resp;
        return;
    }
    agent_turn_plan(c, msg, resp);
}

/* ---- upstream callbacks --------------------------------------------------------------------- */

static int on_sse_event(void *arg, const char *event, size_t event_len, const char *data,
                        size_t data_len)
{
    chat_t *c = arg;
    int rc = c->ops->stream_event(c->stream, event, event_len, data, data_len, &c->stream_err);
    if (rc == 1) {
        c->stream_done = true;
        return 0;
    }
    if (rc != 0) {
        if (rc == -1)
            c->stream_failed = true;
        return rc;
    }
    return 0;
}

static bool is_event_stream(upstream_call_t *call)
{
    const char *ct = upstream_call_header(call, "content-type");
    return ct != NULL && strncasecmp(ct, "text/event-stream", 17) == 0;
}

static int on_head(void *arg, upstream_call_t *call, long status)
{
    chat_t *c = arg;
    c->status = status;

    if (status >= 200 && status < 300 && c->req.stream && is_event_stream(call)) {
        c->streaming_upstream = true;
        c->stream = c->ops->stream_new(&c->ptarget, on_chunk, c);
        sse_parser_init(&c->sse, on_sse_event, c);
    }
    return 0;
}

static int on_body(void *arg, upstream_call_t *call, const char *data, size_t len)
{
    chat_t *c = arg;

    if (c->audit && c->audited_body.len < CHAT_MAX_AUDITED) {
        size_t room = CHAT_MAX_AUDITED - c->audited_body.len;
        buf_append(&c->audited_body, data, len < room ? len : room);
    }

    if (c->streaming_upstream) {
        int rc = sse_parser_feed(&c->sse, data, len);
        if (rc == SSE_TOO_LARGE) {
            c->stream_failed = true;
            provider_error_set(&c->stream_err, "upstream_error",
                               "upstream sent an oversized stream event");
        }
        return rc;
    }

    size_t limit = c->status >= 400 ? CHAT_MAX_ERROR_BODY : CHAT_MAX_BODY;
    if (c->body.len + len > limit) {
        if (c->status >= 400) {
            buf_append(&c->body, data, limit - c->body.len);
            return 0; /* keep the start of the message, ignore the rest */
        }
        c->body_too_large = true;
        return 1;
    }
    buf_append(&c->body, data, len);
    return 0;
}

static void finish_stream(chat_t *c, const upstream_result_t *res)
{
    provider_error_t err = {{0}, "upstream_error"};

    if (c->stream_failed) {
        err = c->stream_err;
    } else if (res->err != UPSTREAM_OK) {
        provider_error_set(&err, "upstream_error", "upstream stream broke: %s (%s)",
                           upstream_err_name(res->err), res->message);
    } else if (c->ops->stream_finish(c->stream, &err) == 0) {
        stream_succeeded(c);
        return;
    }

    if (c->turn_sent) {
        stream_fail_to_client(c, err.message, sizeof(err.message));
        return;
    }
    /* Nothing of this turn reached the client yet: this attempt failed like any other and may
     * be retried. */
    record_failure(c, 502, "upstream_error", "stream_interrupted", "%s", err.message);
    attempt_failed(c, 502);
}

static void finish_json(chat_t *c)
{
    provider_error_t err = {{0}, "upstream_error"};
    json_t *resp =
        c->ops->parse_response(&c->ptarget, c->body.data ? c->body.data : "", c->body.len, &err);
    if (resp == NULL) {
        record_failure(c, 502, "upstream_error", "bad_upstream_response",
                       "upstream %s answered with a body gatehouse cannot read: %s",
                       c->targets[c->cur].provider->name, err.message);
        respond_failure(c);
        return;
    }
    note_usage(c, json_object_get(resp, "usage"));
    if (c->agent != NULL)
        agent_turn_end(c, agent_response_message(resp), resp);
    else if (c->ops->response_is_body)
        answer_body(c, resp);
    else
        answer_json(c, resp, AGENT_FINAL);
}

/* One attempt's exchange, for the metrics and (when asked) the audit trail. The response
 * headers are valid only during on_done, which is where this runs. */
static void report_exchange(chat_t *c, upstream_call_t *call, const upstream_result_t *res)
{
    telemetry_exchange_t x = {
        .request_id = c->rid,
        .kind = "upstream",
        .target = c->targets[c->cur].provider->name,
        .started_unix = c->attempt_unix,
        .method = "POST",
        .url = c->up_req.url,
        .req_headers = (const char *const *)c->up_req.headers,
        .req_body = c->up_req.body.data,
        .req_len = c->up_req.body.len,
        .status = res->status,
        /* Only the audit trail keeps them; listing them costs a few thousand instructions. */
        .resp_headers = c->audit ? upstream_call_headers(call) : NULL,
        .resp_body = c->audited_body.data,
        .resp_len = c->audited_body.len,
        .first_byte_s = res->status > 0 ? res->first_byte_s : -1,
        .duration_s = res->total_s,
        .error = res->err != UPSTREAM_OK ? res->message : NULL,
        .record_content = c->snap->cfg->audit_content,
        .audit = c->audit,
    };
    telemetry_exchange_done(&x);
    buf_reset(&c->audited_body);
}

static void on_done(void *arg, upstream_call_t *call, const upstream_result_t *res)
{
    chat_t *c = arg;
    c->upstream_s += res->total_s;
    report_exchange(c, call, res);
    c->call = NULL;

    if (c->streaming_upstream) {
        finish_stream(c, res);
        return;
    }

    c->retry_after_s = -1;
    if (c->body_too_large) {
        record_failure(c, 502, "upstream_error", "upstream_body_too_large",
                       "upstream response exceeds %u bytes", CHAT_MAX_BODY);
        attempt_reset(c);
        release_slot(c);
        respond_failure(c);
        return;
    }
    if (res->err != UPSTREAM_OK) {
        bool timeout = res->err == UPSTREAM_ERR_TIMEOUT;
        record_failure(c, timeout ? 504 : 502, "upstream_error",
                       timeout ? "upstream_timeout" : "upstream_unreachable",
                       "upstream %s failed: %s (%s)", c->targets[c->cur].provider->name,
                       upstream_err_name(res->err), res->message);
        attempt_failed(c, 0);
        return;
    }

    if (c->status >= 400) {
        const char *ra = upstream_call_header(call, "retry-after");
        c->retry_after_s = ra ? strtol(ra, NULL, 10) : -1;
        provider_error_t err = {{0}, NULL};
        c->ops->parse_error(c->status, c->body.data ? c->body.data : "", c->body.len, &err);
        record_failure(c, (int)c->status, err.type, NULL, "%s", err.message);
        attempt_failed(c, c->status);
        return;
    }

    if (c->req.stream) {
        /* A 2xx that is not an event stream, for a streaming request: most likely an error
         * object some providers send with 200. */
        record_failure(c, 502, "upstream_error", "bad_upstream_response",
                       "upstream %s answered a streaming request without an event stream",
                       c->targets[c->cur].provider->name);
        attempt_failed(c, 502);
        return;
    }
    finish_json(c);
}

static const upstream_callbacks_t upstream_cbs = {on_head, on_body, on_done};

/* ---- the attempt loop ----------------------------------------------------------------------- */

static void next_target(chat_t *c)
{
    attempt_reset(c);
    release_slot(c);
    c->cur++;
    if (c->cur >= c->n_targets) {
        respond_failure(c);
        return;
    }
    log_warn(c->rid, "falling back to %s/%s (fallback %zu of %zu) after: %s",
             c->targets[c->cur].provider->name, c->targets[c->cur].model, c->cur, c->n_targets - 1,
             c->fail_msg);
    begin_target(c);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    chat_t *c = arg;
    c->waited_s += gateway_now() - c->wait_began;
    start_attempt(c);
}

static void schedule_retry(chat_t *c)
{
    const config_provider_t *p = c->targets[c->cur].provider;
    long delay = router_backoff_ms(c->attempt, p->backoff_initial_ms, p->backoff_max_ms,
                                   c->retry_after_s, gateway_worker_random(c->worker));
    log_warn(c->rid, "attempt %d on %s/%s failed (%d: %s); retrying in %ld ms", c->attempt, p->name,
             c->targets[c->cur].model, c->fail_status, c->fail_msg, delay);

    c->retries++;
    if (c->timer == NULL)
        c->timer = evtimer_new(gateway_worker_base(c->worker), on_retry_timer, c);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    c->wait_began = gateway_now();
    evtimer_add(c->timer, &tv);
}

static void attempt_failed(chat_t *c, long status)
{
    const config_provider_t *p = c->targets[c->cur].provider;
    uint64_t bit = c->key_index >= 0 ? UINT64_C(1) << c->key_index : 0;
    attempt_reset(c);

    switch (router_classify(status)) {
    case ROUTER_FINAL:
        release_slot(c);
        respond_failure(c);
        return;

    case ROUTER_DROP_KEY:
        c->keys_dropped |= bit;
        log_warn(c->rid, "key %s of %s was rejected (%ld); not using it again for this request",
                 p->keys[c->key_index].name, p->name, status);
        if (router_pick_key(p, c->targets[c->cur].model, c->keys_dropped, 0.5) >= 0) {
            c->retries++;
            start_attempt(c);
        } else {
            next_target(c);
        }
        return;

    case ROUTER_ROTATE_KEY:
        c->keys_rotated |= bit;
        /* a 429 is retried like a 5xx, with another key when there is one */
        /* fall through */
    case ROUTER_RETRY:
        if (c->attempt > p->max_retries) {
            next_target(c);
            return;
        }
        schedule_retry(c);
        return;
    }
}

static int pick_key(chat_t *c)
{
    const router_target_t *t = &c->targets[c->cur];
    double r = gateway_worker_random(c->worker);
    int idx = router_pick_key(t->provider, t->model, c->keys_dropped | c->keys_rotated, r);
    if (idx < 0 && c->keys_rotated != 0) {
        /* Every remaining key hit a rate limit; after the backoff, any of them may do. */
        c->keys_rotated = 0;
        idx = router_pick_key(t->provider, t->model, c->keys_dropped, r);
    }
    return idx;
}

static void start_attempt(chat_t *c)
{
    const router_target_t *t = &c->targets[c->cur];
    c->attempt++;
    c->key_index = pick_key(c);
    if (c->key_index < 0) {
        if (c->keys_dropped != 0)
            record_failure(c, 401, "authentication_error", "invalid_api_key",
                           "every key of provider '%s' was rejected by the provider",
                           t->provider->name);
        else
            record_failure(c, 503, "api_error", "no_usable_key",
                           "provider '%s' has no usable key for model '%s'", t->provider->name,
                           t->model);
        next_target(c);
        return;
    }

    if (c->agent != NULL)
        agent_stream_next_turn(c->agent); /* what a failed attempt held is void */
    c->ops = provider_ops_for(t->provider);
    c->ptarget = (provider_target_t){
        .provider = t->provider,
        .model = t->model,
        .api_key = t->provider->keys[c->key_index].value,
        .stream = c->req.stream,
        .request_id = c->rid,
    };

    provider_error_t err = {{0}, NULL};
    provider_http_init(&c->up_req);
    c->up_req_built = true;
    if (c->ops->build_request(&c->ptarget, c->req.body, &c->up_req, &err) != 0) {
        record_failure(c, 400, err.type ? err.type : "invalid_request_error", NULL, "%s",
                       err.message);
        release_slot(c);
        respond_failure(c);
        return;
    }

    long timeout_ms = (long)t->provider->timeout_s * 1000;
    upstream_request_t ureq = {
        .method = "POST",
        .url = c->up_req.url,
        .headers = (const char *const *)c->up_req.headers,
        .body = c->up_req.body.data,
        .body_len = c->up_req.body.len,
        /* A stream may last long; what must not happen is a long silence. */
        .timeout_ms = c->req.stream ? 0 : timeout_ms,
        .idle_timeout_ms = c->req.stream ? timeout_ms : 0,
        .connect_timeout_ms = 10000,
    };
    log_debug(c->rid, "attempt %d: %s/%s with key %s", c->attempt, t->provider->name, t->model,
              t->provider->keys[c->key_index].name);

    c->attempt_unix = gateway_wall_now();
    c->call = upstream_start(gateway_worker_upstream(c->worker), &ureq, &upstream_cbs, c);
    if (c->call == NULL) {
        record_failure(c, 502, "api_error", "upstream_setup_failed",
                       "could not start the upstream request to %s", t->provider->name);
        attempt_failed(c, 0);
    }
}

static void on_admitted(void *arg)
{
    chat_t *c = arg;
    c->waiter = NULL;
    c->waited_s += gateway_now() - c->wait_began;
    limiter_wait_end(c->limiter);
    c->holds_slot = true;
    start_attempt(c);
}

/* Takes a slot of the target's provider, or queues for one. */
static void begin_target(chat_t *c)
{
    const config_provider_t *p = c->targets[c->cur].provider;
    c->attempt = 0;
    c->keys_dropped = 0;
    c->keys_rotated = 0;
    c->key_index = -1;
    c->limiter = gateway_snapshot_limiter(c->snap, p);

    if (limiter_try_acquire(c->limiter)) {
        c->holds_slot = true;
        start_attempt(c);
        return;
    }
    if (!limiter_wait_begin(c->limiter)) {
        if (c->snap->cfg->drop_excess_requests) {
            record_failure(c, 429, "rate_limit_error", "provider_queue_full",
                           "provider '%s' is at its concurrency limit (%d) and its queue (%d) is"
                           " full",
                           p->name, p->concurrency, p->buffer_size);
            next_target(c);
            return;
        }
        limiter_wait_force(c->limiter);
    }
    log_debug(c->rid, "waiting for a slot of provider %s", p->name);
    c->wait_began = gateway_now();
    c->waiter = gateway_worker_wait(c->worker, c->limiter, on_admitted, c);
}

/* ---- entry ---------------------------------------------------------------------------------- */

static void on_client_close(http_request_t *req, void *arg)
{
    chat_t *c = arg;
    log_info(c->rid, "client disconnected; cancelling the upstream request");

    attempt_reset(c);
    if (c->timer != NULL)
        evtimer_del(c->timer);
    chat_end(c, 499, "text/plain", "", 0);
}

/* Resolves the model and its fallbacks. Returns 0, or the status of the error it answered
 * (the request is then ended). */
static int resolve_targets(chat_t *c)
{
    size_t n_fb = c->req.fallbacks ? json_array_size(c->req.fallbacks) : 0;
    if (n_fb + 1 > CHAT_MAX_TARGETS) {
        fail_request(c, 400, "too many fallbacks (at most 15)", NULL, "fallbacks", "invalid_value");
        return 400;
    }

    for (size_t i = 0; i <= n_fb; i++) {
        const char *name =
            i == 0 ? c->req.model : json_string_value(json_array_get(c->req.fallbacks, i - 1));
        char msg[512];
        router_status_t st = router_resolve(c->snap->cfg, name, &c->targets[i], msg, sizeof(msg));
        if (st == ROUTER_OK)
            continue;

        bool not_found = st == ROUTER_MODEL_NOT_ALLOWED;
        log_info(c->rid, "rejected chat request: %s", msg);
        fail_request(c, not_found ? 404 : 400, msg, NULL, i == 0 ? "model" : "fallbacks",
                     not_found ? "model_not_found" : "invalid_model");
        return not_found ? 404 : 400;
    }
    c->n_targets = n_fb + 1;
    return 0;
}

/* True when a header's value means the given boolean ("true"/"1", "false"/"0"). */
static bool header_is(const char *value, const char *boolean)
{
    if (value == NULL)
        return false;
    bool want = strcmp(boolean, "true") == 0;
    return strcasecmp(value, boolean) == 0 || strcmp(value, want ? "1" : "0") == 0;
}

/* Adds the request's MCP tools; an agent follows the request when any of them auto-executes. */
static void setup_mcp(chat_t *c)
{
    inject_mcp_tools(c->snap->cfg, c->http, c->req.body, &c->tools);
    agent_opts_t o = {
        .base = gateway_worker_base(c->worker),
        .request_id = c->rid,
        .tools = &c->tools,
        .body = c->req.body,
        .max_depth = c->snap->cfg->mcp_max_agent_depth,
        .log_content = c->log_content,
    };
    c->agent = agent_new(&o);
}

void chat_handle(http_request_t *req, gateway_worker_t *w, const char *request_id)
{
    chat_t *c = xcalloc(1, sizeof(*c));
    c->http = req;
    c->worker = w;
    c->started_at = gateway_now();
    c->started_unix = gateway_wall_now();
    c->key_index = -1;
    snprintf(c->rid, sizeof(c->rid), "%s", request_id);
    c->snap = gateway_snapshot_acquire();
    metrics_gauge_add(METRICS_ACTIVE_REQUESTS, 1);

    /* Content goes to the log unless switched off globally or by this request; with the log
     * off there is nothing to keep it for (and no copy of the answer to make). The audit
     * trail records when the configuration says so or the request opts in. */
    const char *no_content = http_request_header(req, "x-gatehouse-log-content");
    c->log_content =
        c->snap->cfg->logs_enabled && c->snap->cfg->logs_content && !header_is(no_content, "false");
    c->audit = c->snap->cfg->audit_enabled ||
               header_is(http_request_header(req, "x-gatehouse-audit"), "true");

    size_t len;
    const char *body = http_request_body(req, &len);
    dialect_parse_error_t perr;
    if (dialect_openai_parse_chat(body, len, &c->req, &perr) != 0) {
        log_info(c->rid, "rejected chat request: %s", perr.message);
        fail_request(c, perr.status, perr.message, "invalid_request_error", perr.param, perr.code);
        return;
    }
    if (resolve_targets(c) != 0)
        return;
    setup_mcp(c);

    http_request_on_close(req, on_client_close, c);
    begin_target(c);
}
