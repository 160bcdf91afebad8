/*
 * provider.h - the contract every outbound provider adapter fulfils.
 *
 * Inside gatehouse there is one canonical shape: the OpenAI chat completions request, response
 * and stream chunk, held as jansson trees. An adapter translates the canonical request into its
 * provider's HTTP request, and the provider's response (a JSON body, or a stream of SSE events)
 * back into canonical form. The gateway never looks at a provider's own shapes.
 *
 * Canonical extensions beyond OpenAI's documented fields, shared by all adapters:
 *   - assistant messages and stream deltas may carry "reasoning_content" (thinking text) and
 *     "thinking_blocks" ([{"type":"thinking","thinking":"...","signature":"..."}] or
 *     [{"type":"redacted_thinking","data":"..."}]) so that a provider's reasoning survives a
 *     round trip through the client;
 *   - usage may carry "prompt_tokens_details": {"cached_tokens": N} and
 *     "cache_creation_input_tokens": N.
 *
 * Streams: the adapter's stream object receives each SSE event the upstream sends and calls
 * emit with zero or more canonical chunks (chat.completion.chunk objects). It must tell a
 * finished stream from a broken one: stream_finish returns an error when the upstream stopped
 * before its end marker ([DONE], message_stop), so the gateway can send an error event instead
 * of a clean end. An "error" event inside the stream is reported the same way.
 */
#ifndef GATEHOUSE_PROVIDERS_PROVIDER_H
#define GATEHOUSE_PROVIDERS_PROVIDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "util/buf.h"

/* What the adapter needs to know about the target of one attempt. */
typedef struct provider_target {
    const config_provider_t *provider;
    const char *model;   /* the provider's own model name, without "provider/" */
    const char *api_key; /* the chosen key's value; may be "" */
    bool stream;
    const char *request_id;
} provider_target_t;

/* The HTTP request an adapter builds. Everything is owned; free with provider_http_free. */
typedef struct provider_http {
    char *url;
    char **headers; /* "Name: value", NULL-terminated */
    size_t n_headers;
    buf_t body;
} provider_http_t;

void provider_http_init(provider_http_t *h);
void provider_http_add_header(provider_http_t *h, const char *name, const char *value);
void provider_http_free(provider_http_t *h);

/* An error an adapter reports: a message for the client, and an OpenAI error type. */
typedef struct provider_error {
    char message[512];
    const char *type; /* "invalid_request_error", "api_error", ... (static string) */
} provider_error_t;

void provider_error_set(provider_error_t *err, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Receives one canonical chunk (borrowed; copy or serialize it before returning). raw, when not
 * NULL, is the upstream event's own JSON text (raw_len bytes) that chunk was parsed from, left
 * unchanged: a gateway that does not change chunk either may send raw instead of serializing
 * chunk again, which costs about as much as parsing it. NULL when the adapter built the chunk
 * or changed it. Return 0 to go on, non-zero to stop the stream. */
typedef int (*provider_emit_fn)(void *arg, json_t *chunk, const char *raw, size_t raw_len);

typedef struct provider_stream provider_stream_t;

typedef struct provider_ops {
    const char *family_name; /* "openai", "anthropic" */
    /* True when parse_response returns the upstream body's own JSON, unchanged: a gateway that
     * does not change the answer either may send the body as it came. */
    bool response_is_body;

    /* Canonical request -> upstream HTTP request. Returns 0, or -1 with err filled (a request
     * the provider cannot express, e.g. an unsupported content part). */
    int (*build_request)(const provider_target_t *t, const json_t *canonical, provider_http_t *out,
                         provider_error_t *err);

    /* Upstream JSON body (status 2xx) -> canonical chat.completion, or NULL with err. */
    json_t *(*parse_response)(const provider_target_t *t, const char *body, size_t len,
                              provider_error_t *err);

    /* Upstream error body (status >= 400) -> message and type for the client. Never fails:
     * falls back to the raw body or the status text. */
    void (*parse_error)(long status, const char *body, size_t len, provider_error_t *err);

    /* Streaming: a new translator for one upstream stream. */
    provider_stream_t *(*stream_new)(const provider_target_t *t, provider_emit_fn emit, void *arg);
    /* One SSE event. Returns 0 to go on, 1 when the stream reached its end marker, -1 on a
     * protocol or in-stream error (err filled), or emit's non-zero value. */
    int (*stream_event)(provider_stream_t *s, const char *event, size_t event_len, const char *data,
                        size_t data_len, provider_error_t *err);
    /* The upstream body ended. Returns 0 when the stream was complete, -1 (err filled) when it
     * was cut short. May emit final chunks. */
    int (*stream_finish)(provider_stream_t *s, provider_error_t *err);
    void (*stream_free)(provider_stream_t *s);
} provider_ops_t;

extern const provider_ops_t provider_openai_ops;
extern const provider_ops_t provider_anthropic_ops;

/* The adapter for a configured provider. */
const provider_ops_t *provider_ops_for(const config_provider_t *p);

#endif
