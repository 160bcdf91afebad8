/*
 * frame.c - the sandbox wire format's framing (docs/internals/sandbox.md): every message is a
 * 4-byte big-endian length, then that many bytes of UTF-8 JSON holding one object.
 *
 * The reading side is defensive: the bytes come from the helper and from the child that runs
 * the model's script, neither of which the gateway trusts. A length over the reader's maximum
 * is reported before anything is buffered for it, so a hostile child cannot make the gateway
 * hold more than max bytes of one frame.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codemode/exec_internal.h"
#include "util/alloc.h"

codemode_frame_rc_t codemode_frame_take(struct evbuffer *in, size_t max, json_t **out,
                                        size_t *len_out, char *err, size_t err_cap)
{
    *out = NULL;
    unsigned char hdr[4];
    if (evbuffer_copyout(in, hdr, 4) < 4)
        return CODEMODE_FRAME_MORE;
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    *len_out = len;
    if (len > max || len > CODEMODE_FRAME_MAX) {
        snprintf(err, err_cap, "a frame of %u bytes is over the limit of %zu", len,
                 max < CODEMODE_FRAME_MAX ? max : (size_t)CODEMODE_FRAME_MAX);
        return CODEMODE_FRAME_TOO_LARGE;
    }
    if (evbuffer_get_length(in) < 4 + (size_t)len)
        return CODEMODE_FRAME_MORE;

    evbuffer_drain(in, 4);
    const char *data = (const char *)evbuffer_pullup(in, len);
    json_error_t jerr;
    json_t *obj = json_loadb(data != NULL ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
    evbuffer_drain(in, len);
    if (obj == NULL || !json_is_object(obj)) {
        snprintf(err, err_cap, "a frame of %u bytes is not a JSON object%s%s", len,
                 obj == NULL ? ": " : "", obj == NULL ? jerr.text : "");
        json_decref(obj);
        return CODEMODE_FRAME_BAD;
    }
    *out = obj;
    return CODEMODE_FRAME_OK;
}

char *codemode_frame_encode(const json_t *obj, size_t *len_out)
{
    char *json = json_dumps(obj, JSON_COMPACT);
    if (json == NULL)
        return NULL;
    size_t n = strlen(json);
    if (n > CODEMODE_FRAME_MAX) {
        free(json);
        return NULL;
    }
    char *frame = xmalloc(4 + n);
    frame[0] = (char)(n >> 24);
    frame[1] = (char)(n >> 16);
    frame[2] = (char)(n >> 8);
    frame[3] = (char)n;
    memcpy(frame + 4, json, n);
    free(json);
    *len_out = 4 + n;
    return frame;
}
