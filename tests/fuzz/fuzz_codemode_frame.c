/*
 * fuzz_codemode_frame.c - libFuzzer target: arbitrary bytes as what a Code Mode script's
 * process sends the gateway on its execution socket (src/codemode/frame.c, outcome.c).
 *
 * The child runs model-written code, so its bytes are untrusted. They are fed to the frame
 * reader in pieces whose sizes come from the first input byte; every object read is taken as
 * a done frame (status check, outcome fields, the fixed text for the model, which must start
 * with "status: " and be one NUL-terminated string) and as a tool's CallToolResult (the
 * return frame built from it must encode). The reader must never hand out an object for a
 * frame over its maximum.
 *
 * Build: make fuzz (or build/fuzz/fuzz_codemode_frame); run with a corpus directory, e.g.
 *   build/fuzz/fuzz_codemode_frame -max_total_time=60 corpus/
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codemode/exec.h"
#include "codemode/exec_internal.h"

#define FRAME_MAX 65536

static void check_object(json_t *obj, long output_bytes)
{
    const char *status = codemode_done_status(obj);
    codemode_outcome_t o = {.status = status != NULL ? status : "internal"};
    char *output = NULL;
    codemode_outcome_from_done(obj, output_bytes, &o, &output);
    if (strlen(o.output) > (size_t)output_bytes)
        abort();
    char *text = codemode_outcome_format(&o);
    if (text == NULL || strncmp(text, "status: ", 8) != 0)
        abort();
    free(text);
    free(output);

    char *error = NULL;
    json_t *frame = codemode_return_frame(1, obj, NULL, &error);
    size_t len;
    char *bytes = codemode_frame_encode(frame, &len);
    if (bytes == NULL && len < FRAME_MAX)
        abort();
    free(bytes);
    free(error);
    json_decref(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t piece = (size_t)data[0] % 64 + 1;
    long output_bytes = (long)data[1] * 16;
    data += 2;
    size -= 2;

    struct evbuffer *in = evbuffer_new();
    for (size_t off = 0; off < size; off += piece) {
        evbuffer_add(in, data + off, off + piece > size ? size - off : piece);
        for (;;) {
            json_t *obj;
            size_t len = 0;
            char err[160];
            codemode_frame_rc_t rc =
                codemode_frame_take(in, FRAME_MAX, &obj, &len, err, sizeof(err));
            if (rc == CODEMODE_FRAME_OK) {
                if (len > FRAME_MAX)
                    abort();
                check_object(obj, output_bytes);
                json_decref(obj);
                continue;
            }
            if (rc == CODEMODE_FRAME_TOO_LARGE || rc == CODEMODE_FRAME_BAD)
                evbuffer_drain(in, evbuffer_get_length(in)); /* the gateway closes here */
            break;
        }
    }
    evbuffer_free(in);
    return 0;
}
