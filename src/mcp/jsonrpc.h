/*
 * jsonrpc.h - JSON-RPC 2.0 messages as MCP uses them: parsing, classifying, building.
 *
 * MCP speaks JSON-RPC 2.0 over every transport. This module knows the message shapes and
 * nothing about transports or MCP methods, so that both sides of gatehouse use it: the MCP
 * client (client.c, talking to servers) and the /mcp server (talking to clients).
 *
 * A document (one line of stdio, one HTTP body, one SSE event) holds one message or a batch
 * (an array of messages). jsonrpc_parse turns the text into a jsonrpc_batch_t whose messages
 * are classified as request, notification, success response or error response; a message
 * that is valid JSON but not valid JSON-RPC is kept as JSONRPC_INVALID with the reason, so a
 * server can answer it with -32600 and a client can decide to drop the connection.
 *
 * Ids are strings or integers (MCP forbids null ids in requests and real numbers anywhere);
 * an error response may carry a null id when the peer could not read ours.
 *
 * The builders return new jansson trees with a reference count of 1.
 */
#ifndef GATEHOUSE_MCP_JSONRPC_H
#define GATEHOUSE_MCP_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The standard error codes. */
#define JSONRPC_PARSE_ERROR (-32700)      /* not JSON */
#define JSONRPC_INVALID_REQUEST (-32600)  /* JSON, but not a valid JSON-RPC message */
#define JSONRPC_METHOD_NOT_FOUND (-32601) /* no such method here */
#define JSONRPC_INVALID_PARAMS (-32602)   /* the method's params are wrong */
#define JSONRPC_INTERNAL_ERROR (-32603)   /* the receiver failed */

typedef enum jsonrpc_kind {
    JSONRPC_INVALID = 0,  /* JSON, but not JSON-RPC 2.0; see invalid_reason */
    JSONRPC_REQUEST,      /* method and id: an answer is owed */
    JSONRPC_NOTIFICATION, /* method, no id: no answer */
    JSONRPC_RESPONSE,     /* id and result */
    JSONRPC_ERROR,        /* id (possibly null) and error */
} jsonrpc_kind_t;

/* One classified message. Every pointer is borrowed from the tree it was classified from. */
typedef struct jsonrpc_msg {
    jsonrpc_kind_t kind;
    json_t *json;               /* the message object (or whatever value it was) */
    json_t *id;                 /* request, response: string or integer; error: the same or
                                 * JSON null; invalid: the id when a usable one was present
                                 * (so the -32600 answer can carry it), else NULL */
    const char *method;         /* request, notification */
    json_t *params;             /* request, notification: object or array, NULL when absent */
    json_t *result;             /* response: any value */
    int error_code;             /* error */
    const char *error_message;  /* error */
    json_t *error_data;         /* error: the optional "data", or NULL */
    const char *invalid_reason; /* invalid: a static phrase saying what is wrong */
} jsonrpc_msg_t;

/* A parsed document: one message, or the messages of a batch in order. */
typedef struct jsonrpc_batch {
    json_t *root;        /* the parsed document; owned */
    bool is_batch;       /* the document was an array */
    jsonrpc_msg_t *msgs; /* owned array of count messages */
    size_t count;
} jsonrpc_batch_t;

/* Classifies one JSON value (borrowed; out points into it). Returns out->kind. */
jsonrpc_kind_t jsonrpc_classify(json_t *json, jsonrpc_msg_t *out);

/* Parses a document of len bytes (no NUL needed). Returns 0 with *out filled (free it with
 * jsonrpc_batch_free), JSONRPC_PARSE_ERROR when the text is not JSON, or
 * JSONRPC_INVALID_REQUEST when the document is an empty array or neither an object nor an
 * array. On failure *out is left empty and err (may be NULL) says why, without quoting the
 * input. A single invalid message inside a valid document is not a failure: it is classified
 * JSONRPC_INVALID. */
int jsonrpc_parse(const char *text, size_t len, jsonrpc_batch_t *out, char *err, size_t errcap);
void jsonrpc_batch_free(jsonrpc_batch_t *b);

/* A usable id: a string or an integer. */
bool jsonrpc_id_valid(const json_t *id);
/* Same type and value; two NULLs are not equal. */
bool jsonrpc_id_equal(const json_t *a, const json_t *b);

/* {"jsonrpc":"2.0","id":id,"method":method,"params":params}. id and params are stolen;
 * params may be NULL (no params member). */
json_t *jsonrpc_request(json_t *id, const char *method, json_t *params);
/* {"jsonrpc":"2.0","method":method,"params":params}. params is stolen and may be NULL. */
json_t *jsonrpc_notification(const char *method, json_t *params);
/* {"jsonrpc":"2.0","id":id,"result":result}. id is copied; result is stolen (NULL = {}). */
json_t *jsonrpc_result(const json_t *id, json_t *result);
/* {"jsonrpc":"2.0","id":id,"error":{"code","message","data"}}. id is copied (NULL = null);
 * message NULL = the standard text of code; data is stolen and may be NULL. */
json_t *jsonrpc_error(const json_t *id, int code, const char *message, json_t *data);
/* The answer owed to an invalid message: -32600 with the reason, carrying its id if usable. */
json_t *jsonrpc_error_for_invalid(const jsonrpc_msg_t *m);

/* "Parse error", "Invalid Request", "Method not found", "Invalid params", "Internal error",
 * or "Server error" for the implementation-defined range -32099..-32000, else "Error". */
const char *jsonrpc_error_text(int code);
/* "request", "notification", ... for logs. */
const char *jsonrpc_kind_name(jsonrpc_kind_t kind);

/* Compact serialization without a trailing newline (JSON strings never hold a raw newline,
 * so the text fits newline-delimited framing as is). Returns a string the caller frees, or
 * NULL when jansson cannot encode the tree (invalid UTF-8 in a string). *len may be NULL. */
char *jsonrpc_dump(const json_t *msg, size_t *len);

#endif
