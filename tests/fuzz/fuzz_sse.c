/*
 * fuzz_sse.c - libFuzzer target for the SSE parser (src/util/sse.c).
 *
 * Differential: the input is parsed once in one piece and once cut at points derived from the
 * input itself (including CR/LF boundaries and single bytes), with the same size limit; both
 * runs must deliver exactly the same events, return the same status and give the same verdict
 * at the end. Any difference, and any memory error under ASan, is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/sse.h"

typedef struct trace {
    buf_t events; /* length-prefixed event type and data of each event */
    size_t count;
} trace_t;

static int trace_cb(void *arg, const char *event, size_t event_len, const char *data,
                    size_t data_len)
{
    trace_t *t = arg;
    buf_append(&t->events, &event_len, sizeof(event_len));
    buf_append(&t->events, event, event_len);
    buf_append(&t->events, &data_len, sizeof(data_len));
    buf_append(&t->events, data, data_len);
    t->count++;
    return 0;
}

/* Parses data with pieces of the sizes the seed gives (0 = one piece). Returns the first
 * non-zero feed status, or 0; *clean gets finish's verdict when every feed succeeded. */
static int run(const uint8_t *data, size_t len, uint32_t seed, size_t limit, trace_t *t,
               bool *clean)
{
    sse_parser_t p;
    sse_parser_init(&p, trace_cb, t);
    p.max_event_bytes = limit;

    int rc = 0;
    size_t off = 0;
    while (off < len && rc == 0) {
        size_t n = len - off;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 17;
            if (n > len - off)
                n = len - off;
        }
        rc = sse_parser_feed(&p, (const char *)data + off, n);
        off += n;
    }
    *clean = rc == 0 ? sse_parser_finish(&p) : false;
    sse_parser_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 2)
        return 0;

    /* The first two bytes choose the split pattern and the size limit. */
    uint32_t seed = data[0] | 1u;
    size_t limit = data[1] < 128 ? (size_t)data[1] * 4 + 1 : 0;
    data += 2;
    len -= 2;

    trace_t whole = {BUF_INIT, 0}, split = {BUF_INIT, 0};
    bool clean_whole, clean_split;
    int rc_whole = run(data, len, 0, limit, &whole, &clean_whole);
    int rc_split = run(data, len, seed, limit, &split, &clean_split);

    if (rc_whole != rc_split || clean_whole != clean_split || whole.count != split.count ||
        whole.events.len != split.events.len ||
        (whole.events.len > 0 && memcmp(whole.events.data, split.events.data, whole.events.len)))
        abort();

    buf_free(&whole.events);
    buf_free(&split.events);
    return 0;
}
