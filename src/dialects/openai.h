/*
 * openai.h - the OpenAI chat dialect on the inbound side: error bodies, and the checks a
 * /v1/chat/completions body must pass before it becomes the canonical request.
 *
 * Error bodies have OpenAI's shape, which the official SDKs parse into their error classes:
 *   {"error": {"message": "...", "type": "invalid_request_error", "param": null, "code": null}}
 */
#ifndef GATEHOUSE_DIALECTS_OPENAI_H
#define GATEHOUSE_DIALECTS_OPENAI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Appends an OpenAI-shaped error body. param and code may be NULL (rendered as null). */
void dialect_openai_error(buf_t *out, const char *message, const char *type, const char *param,
                          const char *code);

/* The error type OpenAI uses for an HTTP status (400 -> invalid_request_error, 401 ->
 * authentication_error, 429 -> rate_limit_error, 5xx -> api_error, ...). */
const char *dialect_openai_error_type(int status);

/* A parsed and checked chat request. */
typedef struct dialect_chat_request {
    json_t *body;      /* the whole parsed body, owned */
    const char *model; /* borrowed from body */
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    json_t *fallbacks;  /* array of model strings, removed from body; owned, may be NULL */
} dialect_chat_request_t;

/* Result of dialect_openai_parse_chat: 0 on success, else an HTTP status (400) with message,
 * param and code filled in for the error body. */
typedef struct dialect_parse_error {
    int status;
    char message[512];
    const char *param; /* static string or NULL */
    const char *code;  /* static string or NULL */
} dialect_parse_error_t;

/* Parses and validates a chat completions body: JSON syntax (with line and column), model and
 * messages present and well-typed, each message with a known role, fallbacks an array of
 * strings. Gateway-only fields ("fallbacks") are removed from the body. */
int dialect_openai_parse_chat(const char *data, size_t len, dialect_chat_request_t *out,
                              dialect_parse_error_t *err);
void dialect_chat_request_free(dialect_chat_request_t *req);

#endif
