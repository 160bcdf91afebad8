/*
 * fuzz_chat_request.c - libFuzzer target: untrusted bytes as a /v1/chat/completions body.
 *
 * The parser must answer every input with either a checked request or a 400 and a message,
 * without reading out of bounds or leaking.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dialects/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dialect_chat_request_t req;
    dialect_parse_error_t err;
    int status = dialect_openai_parse_chat((const char *)data, size, &req, &err);
    if (status != 0 && (status != 400 || err.message[0] == '\0'))
        __builtin_trap();
    if (status == 0 && (req.model == NULL || req.body == NULL))
        __builtin_trap();
    dialect_chat_request_free(&req);
    return 0;
}
