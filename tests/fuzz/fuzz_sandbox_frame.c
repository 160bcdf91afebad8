/*
 * fuzz_sandbox_frame.c - libFuzzer target: arbitrary bytes as a control or execution socket
 * stream of the sandbox wire format (src/sandbox/frame.c).
 *
 * The bytes are fed in pieces whose sizes come from the first input byte, once freely and once
 * the way the zygote reads (never more than sandbox_frame_reader_wanted), and both ways must
 * yield the same frames in the same order; every frame must be within the size limit and
 * NUL-terminated; and a reader that failed must stay failed.
 *
 * Build: make fuzz (or build/fuzz/fuzz_sandbox_frame); run e.g.
 *   build/fuzz/fuzz_sandbox_frame -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/frame.h"

typedef struct digest {
    size_t frames;
    uint64_t hash; /* FNV-1a over every frame's length and bytes */
    int failed;
} digest_t;

static void add(digest_t *d, const char *body, size_t len)
{
    if (len > SANDBOX_FRAME_MAX || body[len] != '\0')
        abort();
    d->frames++;
    d->hash = (d->hash ^ len) * 1099511628211ULL;
    for (size_t i = 0; i < len; i++)
        d->hash = (d->hash ^ (unsigned char)body[i]) * 1099511628211ULL;
}

static void drain(sandbox_frame_reader_t *r, digest_t *d)
{
    const char *body;
    size_t len;
    sandbox_frame_result_t rc;
    while ((rc = sandbox_frame_reader_next(r, &body, &len)) == SANDBOX_FRAME_READY)
        add(d, body, len);
    if (rc == SANDBOX_FRAME_ERROR) {
        d->failed = 1;
        if (sandbox_frame_reader_next(r, &body, &len) != SANDBOX_FRAME_ERROR)
            abort();
    }
}

static digest_t feed_freely(const uint8_t *data, size_t size, size_t piece)
{
    digest_t d = {0, 14695981039346656037ULL, 0};
    sandbox_frame_reader_t r;
    sandbox_frame_reader_init(&r);
    for (size_t at = 0; at < size && !d.failed; at += piece) {
        size_t n = size - at < piece ? size - at : piece;
        if (sandbox_frame_reader_feed(&r, data + at, n) != 0)
            abort();
        drain(&r, &d);
    }
    sandbox_frame_reader_free(&r);
    return d;
}

static digest_t feed_as_zygote(const uint8_t *data, size_t size, size_t piece)
{
    digest_t d = {0, 14695981039346656037ULL, 0};
    sandbox_frame_reader_t r;
    sandbox_frame_reader_init(&r);
    size_t at = 0;
    while (at < size && !d.failed) {
        size_t want = sandbox_frame_reader_wanted(&r);
        if (want == 0)
            abort(); /* a reader that has not failed always wants a byte */
        size_t n = want < piece ? want : piece;
        if (n > size - at)
            n = size - at;
        if (sandbox_frame_reader_feed(&r, data + at, n) != 0)
            abort();
        at += n;
        drain(&r, &d);
    }
    sandbox_frame_reader_free(&r);
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    digest_t a = feed_freely(data, size, piece);
    digest_t b = feed_as_zygote(data, size, piece);
    if (a.frames != b.frames || a.hash != b.hash || a.failed != b.failed)
        abort();
    return 0;
}
