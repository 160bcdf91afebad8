/*
 * anthropic_internal.h - private interface between the parts of the Anthropic Messages adapter.
 *
 * The adapter is split by direction so that each file can be read whole:
 *   anthropic.c           the ops table, upstream error bodies, and the mappings both
 *                         directions of the response path share (stop reason, usage, error type)
 *   anthropic_request.c   canonical OpenAI chat request -> Messages request
 *   anthropic_response.c  Messages JSON response -> chat.completion
 *   anthropic_stream.c    Messages SSE events -> chat.completion.chunk objects
 *
 * Nothing outside src/providers/anthropic*.c includes this header; the rest of gatehouse sees
 * only provider_anthropic_ops (provider.h).
 */
#ifndef GATEHOUSE_PROVIDERS_ANTHROPIC_INTERNAL_H
#define GATEHOUSE_PROVIDERS_ANTHROPIC_INTERNAL_H

#include <jansson.h>

#include "providers/provider.h"

/* The API version every request names. Anthropic freezes the wire format per version, so a
 * newer one is a deliberate change here, not something a deployment picks up by accident. A
 * provider's extra_headers may still name another version (or a beta) explicitly. */
#define PROVIDER_ANTHROPIC_VERSION "2023-06-01"

/* Anthropic's token counts, as read from a "usage" object. input_tokens counts only the part
 * of the prompt that was neither read from nor written to the prompt cache. */
typedef struct provider_anthropic_usage {
    json_int_t input_tokens;
    json_int_t output_tokens;
    json_int_t cache_read_input_tokens;
    json_int_t cache_creation_input_tokens;
} provider_anthropic_usage_t;

/* Overwrites the fields that usage (an Anthropic "usage" object, or NULL) carries as integers
 * and leaves the others alone: a stream's message_delta repeats only some of the counts that
 * message_start gave. */
void provider_anthropic_usage_update(provider_anthropic_usage_t *u, const json_t *usage);

/* The canonical usage object: prompt_tokens counts the whole prompt (uncached + cache read +
 * cache write) as OpenAI does, prompt_tokens_details.cached_tokens the cache reads, and
 * cache_creation_input_tokens the cache writes. New reference. */
json_t *provider_anthropic_usage_json(const provider_anthropic_usage_t *u);

/* Anthropic stop_reason (may be NULL) -> OpenAI finish_reason (static string). */
const char *provider_anthropic_finish_reason(const char *stop_reason);

/* Anthropic error type ("overloaded_error", may be NULL) -> OpenAI error type (static string);
 * status picks the type when the Anthropic one is missing or unknown (0 = unknown status). */
const char *provider_anthropic_error_type(const char *anthropic_type, long status);

/* Fills err from an Anthropic error object {"type": "...", "message": "..."}. Returns 0, or -1
 * when error is not such an object (err untouched). */
int provider_anthropic_error_from_json(const json_t *error, long status, provider_error_t *err);

int provider_anthropic_build_request(const provider_target_t *t, const json_t *canonical,
                                     provider_http_t *out, provider_error_t *err);

json_t *provider_anthropic_parse_response(const provider_target_t *t, const char *body, size_t len,
                                          provider_error_t *err);

provider_stream_t *provider_anthropic_stream_new(const provider_target_t *t, provider_emit_fn emit,
                                                 void *arg);
int provider_anthropic_stream_event(provider_stream_t *s, const char *event, size_t event_len,
                                    const char *data, size_t data_len, provider_error_t *err);
int provider_anthropic_stream_finish(provider_stream_t *s, provider_error_t *err);
void provider_anthropic_stream_free(provider_stream_t *s);

#endif
