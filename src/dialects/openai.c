/*
 * openai.c - the inbound OpenAI chat dialect (see openai.h).
 */
#include "dialects/openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

void dialect_openai_error(buf_t *out, const char *message, const char *type, const char *param,
                          const char *code)
{
    json_t *err = json_object();
    json_object_set_new(err, "message", json_string(message ? message : ""));
    json_object_set_new(err, "type", json_string(type ? type : "api_error"));
    json_object_set_new(err, "param", string_or_null(param));
    json_object_set_new(err, "code", string_or_null(code));

    json_t *root = json_object();
    json_object_set_new(root, "error", err);
    char *text = json_dumps(root, JSON_COMPACT);
    buf_appends(out, text);
    free(text);
    json_decref(root);
}

const char *dialect_openai_error_type(int status)
{
    switch (status) {
    case 400:
    case 404:
    case 413:
    case 422:
        return "invalid_request_error";
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
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static int fail(dialect_parse_error_t *err, const char *param, const char *code, const char *msg)
{
    err->status = 400;
    err->param = param;
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);
    return 400;
}

static int check_messages(json_t *messages, dialect_parse_error_t *err)
{
    static const char *const roles[] = {"system",    "developer", "user",
                                        "assistant", "tool",      "function"};

    if (!json_is_array(messages))
        return fail(err, "messages", "invalid_type", "'messages' must be an array");
    if (json_array_size(messages) == 0)
        return fail(err, "messages", "invalid_value", "'messages' must not be empty");

    size_t i;
    json_t *msg;
    json_array_foreach (messages, i, msg) {
        char what[128];
        if (!json_is_object(msg)) {
            snprintf(what, sizeof(what), "'messages[%zu]' must be an object", i);
            return fail(err, "messages", "invalid_type", what);
        }
        const char *role = json_string_value(json_object_get(msg, "role"));
        bool known = false;
        for (size_t r = 0; role && r < sizeof(roles) / sizeof(roles[0]); r++)
            known = known || strcmp(role, roles[r]) == 0;
        if (!known) {
            snprintf(what, sizeof(what),
                     "'messages[%zu].role' must be one of system, developer,"
                     " user, assistant, tool",
                     i);
            return fail(err, "messages", "invalid_value", what);
        }
    }
    return 0;
}

static int take_fallbacks(json_t *body, dialect_chat_request_t *out, dialect_parse_error_t *err)
{
    json_t *fb = json_object_get(body, "fallbacks");
    if (fb == NULL || json_is_null(fb)) {
        json_object_del(body, "fallbacks");
        return 0;
    }
    if (!json_is_array(fb))
        return fail(err, "fallbacks", "invalid_type", "'fallbacks' must be an array of models");

    size_t i;
    json_t *m;
    json_array_foreach (fb, i, m) {
        if (!json_is_string(m) || json_string_length(m) == 0)
            return fail(err, "fallbacks", "invalid_type",
                        "'fallbacks' must be an array of non-empty model names");
    }
    out->fallbacks = json_incref(fb);
    json_object_del(body, "fallbacks");
    return 0;
}

int dialect_openai_parse_chat(const char *data, size_t len, dialect_chat_request_t *out,
                              dialect_parse_error_t *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));

    json_error_t jerr;
    json_t *body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        err->status = 400;
        err->code = "invalid_json";
        snprintf(err->message, sizeof(err->message),
                 "request body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return 400;
    }
    out->body = body;

    if (!json_is_object(body))
        return fail(err, NULL, "invalid_type", "request body must be a JSON object");

    json_t *model = json_object_get(body, "model");
    if (model == NULL)
        return fail(err, "model", "missing_required_parameter", "'model' is required");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return fail(err, "model", "invalid_type", "'model' must be a non-empty string");
    out->model = json_string_value(model);

    json_t *messages = json_object_get(body, "messages");
    if (messages == NULL)
        return fail(err, "messages", "missing_required_parameter", "'messages' is required");
    if (check_messages(messages, err) != 0)
        return err->status;

    json_t *stream = json_object_get(body, "stream");
    if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream))
        return fail(err, "stream", "invalid_type", "'stream' must be a boolean");
    out->stream = json_is_true(stream);

    json_t *opts = json_object_get(body, "stream_options");
    out->include_usage = json_is_true(json_object_get(opts, "include_usage"));

    return take_fallbacks(body, out, err);
}

void dialect_chat_request_free(dialect_chat_request_t *req)
{
    json_decref(req->body);
    json_decref(req->fallbacks);
    memset(req, 0, sizeof(*req));
}
