/*
 * fuzz_anthropic_stream.c - libFuzzer target: arbitrary bytes as an Anthropic SSE body.
 *
 * The bytes go through the real SSE parser into the Anthropic stream translator, in pieces
 * whose sizes come from the first input byte, so that events split across reads are covered
 * too. Every chunk the translator emits must serialize to JSON (a chunk jansson cannot write
 * would reach the client as nothing at all), and stream_finish must agree with what the events
 * said: complete only after message_stop. The same bytes are also offered to parse_response
 * and parse_error, whose input is just as much the upstream's to choose.
 *
 * Build: make fuzz (or build/fuzz/fuzz_anthropic_stream); run with a corpus directory, e.g.
 *   build/fuzz/fuzz_anthropic_stream -max_total_time=60 corpus/ tests/fixtures/anthropic/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/provider.h"
#include "util/sse.h"

typedef struct fuzz_run {
    provider_stream_t *s;
    int event_rc; /* the first non-zero stream_event result */
} fuzz_run_t;

static int check_chunk(void *arg, json_t *chunk)
{
    char *text = json_dumps(chunk, JSON_COMPACT);
    if (text == NULL || json_object_get(chunk, "choices") == NULL)
        abort();
    free(text);
    return 0;
}

static int on_event(void *arg, const char *event, size_t event_len, const char *data,
                    size_t data_len)
{
    fuzz_run_t *r = arg;
    provider_error_t err = {"", NULL};
    int rc = provider_anthropic_ops.stream_event(r->s, event, event_len, data, data_len, &err);

    /* An error must say what went wrong. */
    if (rc == -1 && (err.type == NULL || err.message[0] == '\0'))
        abort();
    if (rc != 0 && r->event_rc == 0)
        r->event_rc = rc;
    return rc;
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
    static config_provider_t provider = {.name = (char *)"anthropic",
                                         .family = CONFIG_FAMILY_ANTHROPIC,
                                         .base_url = (char *)"https://api.anthropic.com"};
    provider_target_t t = {&provider, "claude-fuzz", "", true, "fuzz"};
    size_t step = size > 0 ? (size_t)data[0] % 64 + 1 : 1;
    fuzz_run_t r = {NULL, 0};

    r.s = provider_anthropic_ops.stream_new(&t, check_chunk, &r);
    sse_parser_t p;
    sse_parser_init(&p, on_event, &r);
    p.max_event_bytes = 1 << 20;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (sse_parser_feed(&p, (const char *)data + off, n) != 0)
            break;
    }
    sse_parser_finish(&p);
    sse_parser_free(&p);

    provider_error_t err = {"", NULL};
    int finish = provider_anthropic_ops.stream_finish(r.s, &err);
    if ((finish == 0) != (r.event_rc == 1))
        abort();
    provider_anthropic_ops.stream_free(r.s);
}

static void fuzz_bodies(const uint8_t *data, size_t size)
{
    static config_provider_t provider = {.name = (char *)"anthropic",
                                         .family = CONFIG_FAMILY_ANTHROPIC};
    provider_target_t t = {&provider, "claude-fuzz", "", false, "fuzz"};
    provider_error_t err = {"", NULL};

    json_t *c = provider_anthropic_ops.parse_response(&t, (const char *)data, size, &err);
    if (c != NULL) {
        char *text = json_dumps(c, JSON_COMPACT);
        if (text == NULL)
            abort();
        free(text);
        json_decref(c);
    }

    provider_anthropic_ops.parse_error(500, (const char *)data, size, &err);
    json_t *msg = json_string(err.message);
    if (msg == NULL)
        abort();
    json_decref(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_stream(data, size);
    fuzz_bodies(data, size);
    return 0;
}
