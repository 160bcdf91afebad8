/*
 * fuzz_openai_stream.c - libFuzzer target for the OpenAI-family stream translator
 * (src/providers/openai.c) behind the SSE parser, plus the adapter's body parsers.
 *
 * The input is an upstream body. It goes through sse.c into stream_event as the gateway would
 * feed it, every emitted chunk is serialized (as a dialect encoder would), and stream_finish
 * ends it. The same bytes are also given to parse_response and parse_error. Invariants beyond
 * memory safety: an error always carries a type and a message that is valid UTF-8 (it ends up
 * in a JSON error body), and stream_event returns only -1, 0, 1 or the emit value.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/provider.h"
#include "util/sse.h"

typedef struct fz {
    provider_stream_t *stream;
    provider_error_t err;
    int rc;
} fz_t;

static void check_error(const provider_error_t *err)
{
    if (err->type == NULL || err->message[0] == '\0')
        abort();
    json_t *s = json_string(err->message); /* NULL for invalid UTF-8 */
    if (s == NULL)
        abort();
    json_decref(s);
}

static int fz_emit(void *arg, json_t *chunk)
{
    char *text = json_dumps(chunk, JSON_COMPACT);
    if (text == NULL)
        abort();
    free(text);
    return 0;
}

static int fz_event(void *arg, const char *event, size_t event_len, const char *data,
                    size_t data_len)
{
    fz_t *f = arg;
    f->rc = provider_openai_ops.stream_event(f->stream, event, event_len, data, data_len, &f->err);
    if (f->rc < -1 || f->rc > 1)
        abort();
    if (f->rc == -1)
        check_error(&f->err);
    return f->rc;
}

static void fuzz_stream(const provider_target_t *t, const uint8_t *data, size_t len)
{
    fz_t f;
    memset(&f, 0, sizeof(f));
    f.stream = provider_openai_ops.stream_new(t, fz_emit, NULL);

    sse_parser_t p;
    sse_parser_init(&p, fz_event, &f);
    size_t half = len / 2;
    int rc = sse_parser_feed(&p, (const char *)data, half);
    if (rc == 0)
        rc = sse_parser_feed(&p, (const char *)data + half, len - half);
    sse_parser_finish(&p);
    sse_parser_free(&p);

    if (rc == 0 && provider_openai_ops.stream_finish(f.stream, &f.err) != 0)
        check_error(&f.err);
    provider_openai_ops.stream_free(f.stream);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    config_provider_t provider;
    memset(&provider, 0, sizeof(provider));
    provider.name = "openai";
    provider.base_url = "https://api.openai.com";
    provider_target_t t = {&provider, "gpt-4o-mini", "", true, "fuzz"};

    fuzz_stream(&t, data, len);

    provider_error_t err;
    memset(&err, 0, sizeof(err));
    json_t *out = provider_openai_ops.parse_response(&t, (const char *)data, len, &err);
    if (out == NULL)
        check_error(&err);
    json_decref(out);

    memset(&err, 0, sizeof(err));
    provider_openai_ops.parse_error(400 + (len % 200), (const char *)data, len, &err);
    check_error(&err);
    return 0;
}
