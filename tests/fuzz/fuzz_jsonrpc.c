/*
 * fuzz_jsonrpc.c - libFuzzer target for JSON-RPC parsing and classification
 * (src/mcp/jsonrpc.c), the first code that touches bytes from an MCP server or an MCP client.
 *
 * Each input is parsed as a document. Beyond "no crash, no leak, no undefined behaviour", it
 * checks invariants: a refused document leaves the batch empty; every message has a kind and,
 * when invalid, a reason; the fields a kind promises are there (a request has a method and a
 * usable id, an error a message); the -32600 answer to an invalid message is a valid error
 * response; and every document that parsed survives a round trip through jsonrpc_dump with
 * the same number of messages and the same kinds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/jsonrpc.h"
#include "util/alloc.h"

static void check_message(const jsonrpc_msg_t *m)
{
    switch (m->kind) {
    case JSONRPC_REQUEST:
        if (m->method == NULL || !jsonrpc_id_valid(m->id))
            abort();
        break;
    case JSONRPC_NOTIFICATION:
        if (m->method == NULL || m->id != NULL)
            abort();
        break;
    case JSONRPC_RESPONSE:
        if (m->result == NULL || !jsonrpc_id_valid(m->id))
            abort();
        break;
    case JSONRPC_ERROR:
        if (m->error_message == NULL || m->id == NULL)
            abort();
        break;
    case JSONRPC_INVALID: {
        if (m->invalid_reason == NULL)
            abort();
        json_t *answer = jsonrpc_error_for_invalid(m);
        jsonrpc_msg_t back;
        if (jsonrpc_classify(answer, &back) != JSONRPC_ERROR ||
            back.error_code != JSONRPC_INVALID_REQUEST)
            abort();
        json_decref(answer);
        break;
    }
    }
}

static void check_round_trip(const jsonrpc_batch_t *b)
{
    size_t len = 0;
    char *text = jsonrpc_dump(b->root, &len);
    if (text == NULL)
        abort(); /* jansson parsed it, so jansson can write it */
    jsonrpc_batch_t again;
    if (jsonrpc_parse(text, len, &again, NULL, 0) != 0 || again.count != b->count ||
        again.is_batch != b->is_batch)
        abort();
    for (size_t i = 0; i < b->count; i++) {
        if (again.msgs[i].kind != b->msgs[i].kind)
            abort();
    }
    jsonrpc_batch_free(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        alloc_init();
        ready = 1;
    }
    jsonrpc_batch_t b;
    char err[160];
    int rc = jsonrpc_parse((const char *)data, size, &b, err, sizeof(err));
    if (rc != 0) {
        if (b.root != NULL || b.msgs != NULL || b.count != 0 || err[0] == '\0')
            abort();
        if (rc != JSONRPC_PARSE_ERROR && rc != JSONRPC_INVALID_REQUEST)
            abort();
        return 0;
    }
    if (b.count == 0)
        abort();
    for (size_t i = 0; i < b.count; i++)
        check_message(&b.msgs[i]);
    check_round_trip(&b);
    jsonrpc_batch_free(&b);
    return 0;
}
