/*
 * test_sse.c - unit tests for the SSE parser (src/util/sse.c).
 *
 * Each test feeds a stream and compares the events that come out with the expected list. The
 * events are recorded as one string ("type|data" per event, events separated by "\n---\n") so
 * that a whole stream is checked with one comparison and a failure prints both sides. The last
 * tests replay every recorded SSE body of the shared cassettes in one piece, byte by byte and in
 * random splits, and require the same events each time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cassette.h"
#include "util/buf.h"
#include "util/sse.h"

/* ---- recording events ------------------------------------------------------------------------ */

typedef struct rec {
    buf_t out;      /* "type|data" per event, separated by "\n---\n" */
    size_t count;   /* events seen */
    size_t stop_at; /* return 7 from the callback on this event (1-based); 0 = never */
} rec_t;

static int rec_cb(void *arg, const char *event, size_t event_len, const char *data, size_t data_len)
{
    rec_t *r = arg;
    if (r->count > 0)
        buf_appends(&r->out, "\n---\n");
    buf_append(&r->out, event, event_len);
    buf_appendc(&r->out, '|');
    buf_append(&r->out, data, data_len);
    r->count++;
    return (r->stop_at != 0 && r->count == r->stop_at) ? 7 : 0;
}

/* Feeds text in pieces of at most `step` bytes (0 = all at once); returns finish's verdict. */
static bool feed_steps(rec_t *r, const char *text, size_t len, size_t step)
{
    sse_parser_t p;
    sse_parser_init(&p, rec_cb, r);
    buf_init(&r->out);
    r->count = 0;
    r->stop_at = 0;

    if (step == 0)
        step = len ? len : 1;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        assert_int_equal(sse_parser_feed(&p, text + off, n), 0);
    }
    bool clean = sse_parser_finish(&p);
    sse_parser_free(&p);
    return clean;
}

/* Feeds the stream whole and byte by byte; both must give `want` and the same verdict. */
static void check_stream(const char *text, const char *want, size_t n_events, bool want_clean)
{
    size_t steps[] = {0, 1, 2, 3};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        rec_t r;
        bool clean = feed_steps(&r, text, strlen(text), steps[i]);
        assert_string_equal(buf_cstr(&r.out), want);
        assert_int_equal(r.count, n_events);
        assert_int_equal(clean, want_clean);
        buf_free(&r.out);
    }
}

/* ---- the format's rules ---------------------------------------------------------------------- */

static void test_simple_events(void **state)
{
    check_stream("data: hello\n\ndata: world\n\n", "|hello\n---\n|world", 2, true);
}

static void test_line_endings(void **state)
{
    check_stream("data: a\r\n\r\ndata: b\r\rdata: c\n\n", "|a\n---\n|b\n---\n|c", 3, true);
    check_stream("data: x\r\ndata: y\r\n\r\n", "|x\ny", 1, true);
}

static void test_crlf_split_across_feeds(void **state)
{
    /* The LF of a CRLF arrives in the next chunk; it must not count as a blank line, or the
     * event would be dispatched before its second data line. */
    rec_t r = {.stop_at = 0};
    buf_init(&r.out);
    sse_parser_t p;
    sse_parser_init(&p, rec_cb, &r);

    assert_int_equal(sse_parser_feed(&p, "data: one\r", 10), 0);
    assert_int_equal(sse_parser_feed(&p, "\ndata: two\r", 11), 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(sse_parser_feed(&p, "\n\r", 2), 0);
    assert_int_equal(r.count, 1);
    assert_int_equal(sse_parser_feed(&p, "\n", 1), 0);
    assert_string_equal(buf_cstr(&r.out), "|one\ntwo");
    assert_int_equal(r.count, 1);
    assert_true(sse_parser_finish(&p));

    sse_parser_free(&p);
    buf_free(&r.out);
}

static void test_bom(void **state)
{
    check_stream("\xEF\xBB\xBF"
                 "data: x\n\n",
                 "|x", 1, true);
    /* Only the first BOM is removed; a second one makes the first line's field name unknown. */
    check_stream("\xEF\xBB\xBF\xEF\xBB\xBF"
                 "data: x\n\ndata: y\n\n",
                 "|y", 1, true);
    /* A BOM on a later line is not special. */
    check_stream("data: a\n\n\xEF\xBB\xBF"
                 "data: b\n\n",
                 "|a", 1, true);
}

static void test_comments_and_unknown_fields(void **state)
{
    check_stream(": keep-alive\n\n: ping\ndata: x\nfoo: bar\n\n", "|x", 1, true);
    /* A comment alone between two blank lines dispatches nothing. */
    check_stream(":\n\n", "", 0, true);
}

static void test_multiline_data(void **state)
{
    check_stream("data: a\ndata:b\ndata:  c\ndata\n\n", "|a\nb\n c\n", 1, true);
    /* "data" with no colon is a data line with an empty value. */
    check_stream("data\n\n", "|", 1, true);
    check_stream("data:\n\n", "|", 1, true);
}

static void test_event_type(void **state)
{
    check_stream("event: ping\ndata: {}\n\nevent:delta\nevent: final\ndata: 1\n\ndata: 2\n\n",
                 "ping|{}\n---\nfinal|1\n---\n|2", 3, true);
    /* An event without data is not dispatched, and its type does not leak into the next. */
    check_stream("event: lone\n\ndata: z\n\n", "|z", 1, true);
}

static void test_only_one_space_stripped(void **state)
{
    check_stream("data:   three\n\n", "|  three", 1, true);
    check_stream("data:\tx\n\n", "|\tx", 1, true);
}

static void test_unfinished_stream(void **state)
{
    rec_t r;
    assert_false(feed_steps(&r, "data: a\n\ndata: b\n", 17, 0));
    assert_string_equal(buf_cstr(&r.out), "|a");
    buf_free(&r.out);

    assert_false(feed_steps(&r, "data: a\n\ndata: b", 16, 0));
    assert_int_equal(r.count, 1);
    buf_free(&r.out);

    assert_true(feed_steps(&r, "data: a\n\nevent: x\n", 18, 0));
    assert_int_equal(r.count, 1);
    buf_free(&r.out);
}

static void test_id_and_retry(void **state)
{
    rec_t r = {.stop_at = 0};
    buf_init(&r.out);
    sse_parser_t p;
    sse_parser_init(&p, rec_cb, &r);
    assert_null(p.last_event_id);
    assert_int_equal(p.retry_ms, -1);

    const char *s = "id: 42\nretry: 1500\ndata: x\n\nretry: 12x\nid\ndata: y\n\n";
    assert_int_equal(sse_parser_feed(&p, s, strlen(s)), 0);
    assert_int_equal(r.count, 2);
    assert_string_equal(p.last_event_id, "");
    assert_int_equal(p.retry_ms, 1500);

    const char nul_id[] = "id: a\0b\ndata: z\n\n";
    assert_int_equal(sse_parser_feed(&p, nul_id, sizeof(nul_id) - 1), 0);
    assert_string_equal(p.last_event_id, "");

    assert_int_equal(sse_parser_feed(&p, "id: 7\n\n", 7), 0);
    assert_string_equal(p.last_event_id, "7");

    sse_parser_free(&p);
    buf_free(&r.out);
}

static void test_nul_in_data(void **state)
{
    rec_t r = {.stop_at = 0};
    buf_init(&r.out);
    sse_parser_t p;
    sse_parser_init(&p, rec_cb, &r);

    const char s[] = "data: a\0b\n\n";
    assert_int_equal(sse_parser_feed(&p, s, sizeof(s) - 1), 0);
    assert_int_equal(r.out.len, 4);
    assert_memory_equal(r.out.data, "|a\0b", 4);

    sse_parser_free(&p);
    buf_free(&r.out);
}

static void test_callback_stops_feed(void **state)
{
    rec_t r = {.stop_at = 2};
    buf_init(&r.out);
    sse_parser_t p;
    sse_parser_init(&p, rec_cb, &r);

    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(sse_parser_feed(&p, s, strlen(s)), 7);
    assert_int_equal(r.count, 2);
    assert_string_equal(buf_cstr(&r.out), "|1\n---\n|2");

    sse_parser_free(&p);
    buf_free(&r.out);
}

static void test_size_limit(void **state)
{
    rec_t r = {.stop_at = 0};
    buf_init(&r.out);
    sse_parser_t p;
    sse_parser_init(&p, rec_cb, &r);
    p.max_event_bytes = 32;

    /* Within the limit, an event goes through. */
    assert_int_equal(sse_parser_feed(&p, "data: 0123456789\n\n", 18), 0);
    assert_int_equal(r.count, 1);

    /* A long line without terminator is refused before it is buffered whole. */
    char big[64];
    memset(big, 'x', sizeof(big));
    memcpy(big, "data: ", 6);
    assert_int_equal(sse_parser_feed(&p, big, 20), 0);
    assert_int_equal(sse_parser_feed(&p, big + 20, 20), SSE_TOO_LARGE);
    sse_parser_free(&p);

    /* Many data lines that together pass the limit are refused too. */
    sse_parser_init(&p, rec_cb, &r);
    p.max_event_bytes = 32;
    const char *s = "data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n";
    assert_int_equal(sse_parser_feed(&p, s, strlen(s)), SSE_TOO_LARGE);
    assert_int_equal(r.count, 1);

    sse_parser_free(&p);
    buf_free(&r.out);
}

/* ---- recorded streams ------------------------------------------------------------------------ */

/* Deterministic pseudo-random numbers, so a failure can be reproduced. */
static uint32_t rng_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static bool feed_random(rec_t *r, const char *text, size_t len, uint32_t seed)
{
    sse_parser_t p;
    sse_parser_init(&p, rec_cb, r);
    buf_init(&r->out);
    r->count = 0;
    r->stop_at = 0;

    uint32_t s = seed ? seed : 1;
    size_t off = 0;
    while (off < len) {
        size_t n = 1 + rng_next(&s) % 97;
        if (n > len - off)
            n = len - off;
        assert_int_equal(sse_parser_feed(&p, text + off, n), 0);
        off += n;
    }
    bool clean = sse_parser_finish(&p);
    sse_parser_free(&p);
    return clean;
}

/* Checks one body: whole, byte by byte and in random splits give the same events. */
static void check_recorded_body(const char *text, size_t len, const char *where)
{
    rec_t whole, bytes, split;
    bool clean = feed_steps(&whole, text, len, 0);
    bool clean_bytes = feed_steps(&bytes, text, len, 1);
    if (strcmp(buf_cstr(&whole.out), buf_cstr(&bytes.out)) != 0 || clean != clean_bytes)
        fail_msg("%s: byte-by-byte feed differs from one feed", where);

    for (uint32_t seed = 1; seed <= 8; seed++) {
        bool clean_split = feed_random(&split, text, len, seed * 2654435761u);
        if (strcmp(buf_cstr(&whole.out), buf_cstr(&split.out)) != 0 || clean != clean_split)
            fail_msg("%s: split feed (seed %u) differs from one feed", where, seed);
        buf_free(&split.out);
    }

    /* A recorded stream holds at least one event, and one data line per "data:" we can see. */
    if (whole.count == 0 && strstr(text, "data:") != NULL)
        fail_msg("%s: no event parsed from a body that has data lines", where);
    buf_free(&whole.out);
    buf_free(&bytes.out);
}

typedef struct sse_walk {
    size_t bodies;
    size_t files;
} sse_walk_t;

static void sse_visit(const cassette_t *c, const json_t *ix, void *arg)
{
    sse_walk_t *w = arg;
    const json_t *headers = cassette_response_headers(ix);
    const char *ctype = cassette_header(headers, "content-type");
    if (ctype == NULL || strstr(ctype, "text/event-stream") == NULL)
        return;

    size_t len = 0;
    const char *text = cassette_response_text(ix, &len);
    if (text == NULL)
        return;

    char where[512];
    snprintf(where, sizeof(where), "%s", c->path);
    check_recorded_body(text, len, where);
    w->bodies++;
}

static void test_recorded_streams(void **state)
{
    char dir[4096];
    if (!cassette_dir(dir, sizeof(dir))) {
        print_message("sse: cassettes not found (set GATEHOUSE_SHARED_DIR); skipping\n");
        skip();
    }

    sse_walk_t w = {0, 0};
    w.files = cassette_walk(dir, NULL, sse_visit, &w);
    print_message("sse: checked %zu recorded SSE bodies from %zu cassettes\n", w.bodies, w.files);
    assert_true(w.files > 0);
    assert_true(w.bodies > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_events),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_crlf_split_across_feeds),
        cmocka_unit_test(test_bom),
        cmocka_unit_test(test_comments_and_unknown_fields),
        cmocka_unit_test(test_multiline_data),
        cmocka_unit_test(test_event_type),
        cmocka_unit_test(test_only_one_space_stripped),
        cmocka_unit_test(test_unfinished_stream),
        cmocka_unit_test(test_id_and_retry),
        cmocka_unit_test(test_nul_in_data),
        cmocka_unit_test(test_callback_stops_feed),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_recorded_streams),
    };
    return cmocka_run_group_tests_name("sse", tests, NULL, NULL);
}
