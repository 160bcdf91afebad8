/*
 * jsonrpc.c - JSON-RPC 2.0 parsing, classification and building (see jsonrpc.h).
 *
 * Classification follows the JSON-RPC 2.0 specification, narrowed where MCP narrows it: an
 * id is a string or an integer, never a real number, and never null in a request. The order
 * of the checks matters for the reason reported: shape first ("jsonrpc" member, object), then
 * the member that decides the kind ("method" for requests and notifications, "result" or
 * "error" for responses), then the details of that kind. A "params": null is read as absent,
 * because some peers write it for methods without parameters and nothing is lost by it.
 *
 * Parsing rejects duplicate object keys: two "id" members in one message would make the
 * answer ambiguous, and there is no honest way to pick one. Nesting depth is bounded by
 * jansson itself (JSON_PARSER_MAX_DEPTH), so a hostile peer cannot exhaust the stack.
 */
#include "mcp/jsonrpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

/* ---- ids ------------------------------------------------------------------------------------- */

bool jsonrpc_id_valid(const json_t *id)
{
    return id != NULL && (json_is_string(id) || json_is_integer(id));
}

bool jsonrpc_id_equal(const json_t *a, const json_t *b)
{
    if (a == NULL || b == NULL)
        return false;
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    if (json_is_string(a) && json_is_string(b))
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    return false;
}

/* ---- classification -------------------------------------------------------------------------- */

static jsonrpc_kind_t invalid(jsonrpc_msg_t *m, const char *reason)
{
    m->kind = JSONRPC_INVALID;
    m->invalid_reason = reason;
    return m->kind;
}

static jsonrpc_kind_t classify_call(jsonrpc_msg_t *m)
{
    json_t *method = json_object_get(m->json, "method");
    if (!json_is_string(method))
        return invalid(m, "\"method\" must be a string");
    if (json_object_get(m->json, "result") != NULL || json_object_get(m->json, "error") != NULL)
        return invalid(m, "a request cannot carry \"result\" or \"error\"");

    json_t *params = json_object_get(m->json, "params");
    if (json_is_null(params))
        params = NULL;
    if (params != NULL && !json_is_object(params) && !json_is_array(params))
        return invalid(m, "\"params\" must be an object or an array");

    json_t *id = json_object_get(m->json, "id");
    if (id != NULL && !jsonrpc_id_valid(id))
        return invalid(m, "a request id must be a string or an integer");

    m->method = json_string_value(method);
    m->params = params;
    m->kind = id != NULL ? JSONRPC_REQUEST : JSONRPC_NOTIFICATION;
    return m->kind;
}

static jsonrpc_kind_t classify_error(jsonrpc_msg_t *m, json_t *error)
{
    json_t *id = json_object_get(m->json, "id");
    if (id == NULL || (!json_is_null(id) && !jsonrpc_id_valid(id)))
        return invalid(m, "an error response needs an id: a string, an integer or null");
    m->id = id;
    if (!json_is_object(error))
        return invalid(m, "\"error\" must be an object");
    json_t *code = json_object_get(error, "code");
    json_t *message = json_object_get(error, "message");
    if (!json_is_integer(code) || json_integer_value(code) < -2147483647LL - 1 ||
        json_integer_value(code) > 2147483647LL)
        return invalid(m, "\"error.code\" must be an integer");
    if (!json_is_string(message))
        return invalid(m, "\"error.message\" must be a string");

    m->error_code = (int)json_integer_value(code);
    m->error_message = json_string_value(message);
    m->error_data = json_object_get(error, "data");
    m->kind = JSONRPC_ERROR;
    return m->kind;
}

static jsonrpc_kind_t classify_response(jsonrpc_msg_t *m)
{
    json_t *result = json_object_get(m->json, "result");
    json_t *error = json_object_get(m->json, "error");
    if (result != NULL && error != NULL)
        return invalid(m, "a response cannot carry both \"result\" and \"error\"");
    if (error != NULL)
        return classify_error(m, error);

    json_t *id = json_object_get(m->json, "id");
    if (!jsonrpc_id_valid(id))
        return invalid(m, "a response id must be a string or an integer");
    m->id = id;
    m->result = result;
    m->kind = JSONRPC_RESPONSE;
    return m->kind;
}

jsonrpc_kind_t jsonrpc_classify(json_t *json, jsonrpc_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    out->json = json;
    if (!json_is_object(json))
        return invalid(out, "a message must be a JSON object");

    /* Remembered before any other check, so that the -32600 answer can name the message. */
    json_t *id = json_object_get(json, "id");
    if (jsonrpc_id_valid(id))
        out->id = id;

    json_t *version = json_object_get(json, "jsonrpc");
    if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0)
        return invalid(out, "\"jsonrpc\" must be \"2.0\"");

    if (json_object_get(json, "method") != NULL)
        return classify_call(out);
    if (json_object_get(json, "result") != NULL || json_object_get(json, "error") != NULL)
        return classify_response(out);
    return invalid(out, "neither a request, a notification nor a response");
}

/* ---- parsing --------------------------------------------------------------------------------- */

static void set_err(char *err, size_t cap, const char *text)
{
    if (err != NULL && cap > 0)
        snprintf(err, cap, "%s", text);
}

/* jansson's message may end in "near '<token>'", a piece of the input; the input may hold a
 * secret (a token echoed by a broken server), so that part is cut before anyone logs it. */
static void parse_error(char *err, size_t cap, const json_error_t *jerr)
{
    if (err == NULL || cap == 0)
        return;
    char text[JSON_ERROR_TEXT_LENGTH];
    snprintf(text, sizeof(text), "%s", jerr->text);
    char *near = strstr(text, " near ");
    if (near != NULL)
        *near = '\0';
    snprintf(err, cap, "not JSON: %s (line %d, column %d)", text, jerr->line, jerr->column);
}

static void batch_classify(jsonrpc_batch_t *out)
{
    if (!out->is_batch) {
        out->msgs = xcalloc(1, sizeof(out->msgs[0]));
        out->count = 1;
        jsonrpc_classify(out->root, &out->msgs[0]);
        return;
    }
    out->count = json_array_size(out->root);
    out->msgs = xcalloc(out->count, sizeof(out->msgs[0]));
    for (size_t i = 0; i < out->count; i++)
        jsonrpc_classify(json_array_get(out->root, i), &out->msgs[i]);
}

int jsonrpc_parse(const char *text, size_t len, jsonrpc_batch_t *out, char *err, size_t errcap)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        parse_error(err, errcap, &jerr);
        return JSONRPC_PARSE_ERROR;
    }
    if (json_is_array(root) && json_array_size(root) == 0) {
        set_err(err, errcap, "an empty batch");
        json_decref(root);
        return JSONRPC_INVALID_REQUEST;
    }
    if (!json_is_object(root) && !json_is_array(root)) {
        set_err(err, errcap, "neither a message nor a batch");
        json_decref(root);
        return JSONRPC_INVALID_REQUEST;
    }

    out->root = root;
    out->is_batch = json_is_array(root);
    batch_classify(out);
    return 0;
}

void jsonrpc_batch_free(jsonrpc_batch_t *b)
{
    free(b->msgs);
    json_decref(b->root);
    memset(b, 0, sizeof(*b));
}

/* ---- building -------------------------------------------------------------------------------- */

static json_t *envelope(void)
{
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    return m;
}

json_t *jsonrpc_request(json_t *id, const char *method, json_t *params)
{
    json_t *m = envelope();
    json_object_set_new(m, "id", id);
    json_object_set_new(m, "method", json_string(method));
    if (params != NULL)
        json_object_set_new(m, "params", params);
    return m;
}

json_t *jsonrpc_notification(const char *method, json_t *params)
{
    json_t *m = envelope();
    json_object_set_new(m, "method", json_string(method));
    if (params != NULL)
        json_object_set_new(m, "params", params);
    return m;
}

json_t *jsonrpc_result(const json_t *id, json_t *result)
{
    json_t *m = envelope();
    json_object_set_new(m, "id", json_deep_copy(id));
    json_object_set_new(m, "result", result != NULL ? result : json_object());
    return m;
}

json_t *jsonrpc_error(const json_t *id, int code, const char *message, json_t *data)
{
    json_t *error = json_object();
    json_object_set_new(error, "code", json_integer(code));
    json_object_set_new(error, "message",
                        json_string(message != NULL ? message : jsonrpc_error_text(code)));
    if (data != NULL)
        json_object_set_new(error, "data", data);

    json_t *m = envelope();
    json_object_set_new(m, "id", id != NULL ? json_deep_copy(id) : json_null());
    json_object_set_new(m, "error", error);
    return m;
}

json_t *jsonrpc_error_for_invalid(const jsonrpc_msg_t *m)
{
    char text[160];
    snprintf(text, sizeof(text), "Invalid Request: %s",
             m->invalid_reason != NULL ? m->invalid_reason : "not JSON-RPC 2.0");
    return jsonrpc_error(jsonrpc_id_valid(m->id) ? m->id : NULL, JSONRPC_INVALID_REQUEST, text,
                         NULL);
}

const char *jsonrpc_error_text(int code)
{
    switch (code) {
    case JSONRPC_PARSE_ERROR:
        return "Parse error";
    case JSONRPC_INVALID_REQUEST:
        return "Invalid Request";
    case JSONRPC_METHOD_NOT_FOUND:
        return "Method not found";
    case JSONRPC_INVALID_PARAMS:
        return "Invalid params";
    case JSONRPC_INTERNAL_ERROR:
        return "Internal error";
    }
    if (code >= -32099 && code <= -32000)
        return "Server error";
    return "Error";
}

const char *jsonrpc_kind_name(jsonrpc_kind_t kind)
{
    switch (kind) {
    case JSONRPC_REQUEST:
        return "request";
    case JSONRPC_NOTIFICATION:
        return "notification";
    case JSONRPC_RESPONSE:
        return "response";
    case JSONRPC_ERROR:
        return "error response";
    case JSONRPC_INVALID:
        break;
    }
    return "invalid message";
}

char *jsonrpc_dump(const json_t *msg, size_t *len)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (text != NULL && len != NULL)
        *len = strlen(text);
    return text;
}
