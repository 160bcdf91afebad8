/*
 * test_audit.c - the audit trail: what is written (parsed back and compared with what was
 * submitted), the chain (verify names the record that was changed, deleted or moved), restarts
 * and crashes, rotation, dropping under load, secrets kept off the disk, and `audit show`.
 *
 * Each test gets its own data directory under /tmp and runs the real writer thread: start,
 * submit, stop (which drains the queue), then reads the files. Nothing depends on timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "telemetry/audit.h"
#include "telemetry/audit_internal.h"
#include "telemetry/metrics.h"
#include "util/alloc.h"
#include "util/buf.h"

#define KEY "sk-test-SECRET0123456789abcdefghijklmnopqrstuv"
#define XKEY "xk-other-SECRET-9876543210zyxwvutsrq"
#define QKEY "AIzaSECRET-query-0123456789abcdefghijklm"

typedef struct fixture {
    char data_dir[64];  /* what audit_start is given */
    char audit_dir[96]; /* where the files are */
    config_t cfg;
} fixture_t;

/* ---- set-up ---------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    fixture_t *fx = xcalloc(1, sizeof(*fx));
    snprintf(fx->data_dir, sizeof(fx->data_dir), "/tmp/gatehouse-audit-XXXXXX");
    assert_non_null(mkdtemp(fx->data_dir));
    snprintf(fx->audit_dir, sizeof(fx->audit_dir), "%s/audit", fx->data_dir);
    fx->cfg.audit_enabled = true;
    fx->cfg.audit_content = true;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    audit_limits_for_tests(0, 0);
    nftw(fx->data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* ---- building exchanges ---------------------------------------------------------------------- */

static const char *const plain_req_headers[] = {"Content-Type: application/json",
                                                "Authorization: Bearer " KEY, NULL};
static const char *const plain_resp_headers[] = {"content-type: application/json",
                                                 "x-request-id: up-1", NULL};

static telemetry_exchange_t exchange(const char *id, const char *req_body, const char *resp_body)
{
    telemetry_exchange_t x = {
        .request_id = id,
        .kind = "upstream",
        .target = "openai",
        .started_unix = 1767225600.25, /* 2026-01-01T00:00:00.250Z */
        .method = "POST",
        .url = "https://api.example.test/v1/chat/completions",
        .req_headers = plain_req_headers,
        .req_body = req_body,
        .req_len = strlen(req_body),
        .status = 200,
        .resp_headers = plain_resp_headers,
        .resp_body = resp_body,
        .resp_len = strlen(resp_body),
        .first_byte_s = 0.125,
        .duration_s = 1.5,
        .record_content = true,
        .audit = true,
    };
    return x;
}

/* Submits n exchanges with numbered bodies: {"n":0} ... */
static void submit_numbered(const char *id, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char req[64];
        char resp[64];
        snprintf(req, sizeof(req), "{\"n\":%d}", i);
        snprintf(resp, sizeof(resp), "{\"answer\":%d}", i);
        telemetry_exchange_t x = exchange(id, req, resp);
        audit_submit(&x);
    }
}

static void start(fixture_t *fx)
{
    assert_int_equal(audit_start(&fx->cfg, fx->data_dir), 0);
}

/* ---- reading back ---------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return buf_release(&b);
}

static void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static char *file_path(const fixture_t *fx, size_t index)
{
    audit_file_t *files;
    size_t n;
    assert_int_equal(audit_files_list(fx->audit_dir, &files, &n), 0);
    assert_true(index < n);
    buf_t b = BUF_INIT;
    buf_appendf(&b, "%s/%s", fx->audit_dir, files[index].name);
    audit_files_free(files, n);
    return buf_release(&b);
}

static size_t file_count(const fixture_t *fx)
{
    audit_file_t *files;
    size_t n;
    assert_int_equal(audit_files_list(fx->audit_dir, &files, &n), 0);
    audit_files_free(files, n);
    return n;
}

/* Every line of every file, in chain order, as a JSON array of strings. */
static json_t *all_lines(const fixture_t *fx)
{
    json_t *lines = json_array();
    for (size_t i = 0; i < file_count(fx); i++) {
        char *path = file_path(fx, i);
        size_t len;
        char *text = slurp(path, &len);
        for (char *p = text; p < text + len;) {
            char *nl = memchr(p, '\n', (size_t)(text + len - p));
            assert_non_null(nl);
            json_array_append_new(lines, json_stringn(p, (size_t)(nl - p)));
            p = nl + 1;
        }
        free(text);
        free(path);
    }
    return lines;
}

static json_t *parse(json_t *lines, size_t i)
{
    json_t *line = json_array_get(lines, i);
    assert_non_null(line);
    json_t *o = json_loadb(json_string_value(line), json_string_length(line), 0, NULL);
    assert_non_null(o);
    return o;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int md_len = 0;
    assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL), 1);
    for (unsigned int i = 0; i < md_len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Runs verify and returns its exit status; *text gets what it printed (caller frees). */
static int verify(const char *dir, char **text)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    int rc = audit_verify(dir, f);
    fclose(f);
    *text = out;
    return rc;
}

static void assert_intact(const fixture_t *fx, const char *summary)
{
    char *text;
    int rc = verify(fx->audit_dir, &text);
    if (rc != 0 || strstr(text, summary) == NULL)
        fail_msg("verify: %s", text);
    free(text);
}

static void assert_broken(const fixture_t *fx, const char *where_and_why)
{
    char *text;
    int rc = verify(fx->audit_dir, &text);
    if (rc != 1 || strstr(text, where_and_why) == NULL)
        fail_msg("expected '%s', verify said (%d): %s", where_and_why, rc, text);
    free(text);
}

static const char *body_text(json_t *record, const char *key)
{
    return json_string_value(json_object_get(json_object_get(record, key), "text"));
}

static long long counter(const char *name)
{
    buf_t out = BUF_INIT;
    metrics_render(&out);
    const char *p = strstr(buf_cstr(&out), name);
    long long v = 0;
    while (p != NULL && (p == out.data || p[-1] != '\n'))
        p = strstr(p + 1, name); /* the sample line, not the # HELP line */
    if (p != NULL)
        v = atoll(p + strlen(name) + 1);
    buf_free(&out);
    return v;
}

/* ---- what is written ------------------------------------------------------------------------- */

static void test_record_holds_what_was_submitted(void **state)
{
    fixture_t *fx = *state;
    static const char binary[] = {'a', '\0', 'b', (char)0xff, 'c'};
    start(fx);
    telemetry_exchange_t x = exchange("req-1", "{\"model\":\"gpt\"}", "{\"id\":\"chatcmpl-1\"}");
    audit_submit(&x);
    x.request_id = "req-2";
    x.req_body = binary;
    x.req_len = sizeof(binary);
    x.status = 0;
    x.resp_headers = NULL;
    x.resp_body = NULL;
    x.resp_len = 0;
    x.first_byte_s = -1;
    x.error = "connection refused";
    audit_submit(&x);
    audit_stop();

    assert_intact(fx, "audit: 2 records in 1 files, chain intact");
    json_t *lines = all_lines(fx);
    assert_int_equal(json_array_size(lines), 2);

    json_t *r = parse(lines, 0);
    static const char *const keys[] = {"seq",         "prev",         "ts",         "request_id",
                                       "kind",        "target",       "method",     "url",
                                       "req_headers", "req_body",     "status",     "resp_headers",
                                       "resp_body",   "first_byte_s", "duration_s", "error"};
    size_t k = 0;
    const char *key;
    json_t *value;
    json_object_foreach (r, key, value) {
        assert_true(k < sizeof(keys) / sizeof(keys[0]));
        assert_string_equal(key, keys[k++]);
    }
    assert_int_equal(k, sizeof(keys) / sizeof(keys[0]));

    assert_int_equal(json_integer_value(json_object_get(r, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(r, "prev")),
                        "0000000000000000000000000000000000000000000000000000000000000000");
    assert_string_equal(json_string_value(json_object_get(r, "ts")), "2026-01-01T00:00:00.250Z");
    assert_string_equal(json_string_value(json_object_get(r, "request_id")), "req-1");
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "upstream");
    assert_string_equal(json_string_value(json_object_get(r, "target")), "openai");
    assert_string_equal(json_string_value(json_object_get(r, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(r, "url")),
                        "https://api.example.test/v1/chat/completions");
    assert_string_equal(body_text(r, "req_body"), "{\"model\":\"gpt\"}");
    assert_string_equal(body_text(r, "resp_body"), "{\"id\":\"chatcmpl-1\"}");
    assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
    assert_true(json_real_value(json_object_get(r, "first_byte_s")) == 0.125);
    assert_true(json_real_value(json_object_get(r, "duration_s")) == 1.5);
    assert_true(json_is_null(json_object_get(r, "error")));

    json_t *h = json_object_get(r, "req_headers");
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 0), 0)), "Content-Type");
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 0), 1)),
                        "application/json");
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 1), 1)),
                        "Bearer sk-t...(46)");
    h = json_object_get(r, "resp_headers");
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 1), 0)), "x-request-id");
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 1), 1)), "up-1");
    json_decref(r);

    /* The second: binary body as base64 of exactly the bytes sent, no response. */
    r = parse(lines, 1);
    char hex[65];
    json_t *first = json_array_get(lines, 0);
    sha256_hex(json_string_value(first), json_string_length(first), hex);
    assert_string_equal(json_string_value(json_object_get(r, "prev")), hex);
    assert_int_equal(json_integer_value(json_object_get(r, "seq")), 2);
    const char *b64 = json_string_value(json_object_get(json_object_get(r, "req_body"), "base64"));
    assert_non_null(b64);
    char *bytes;
    size_t len;
    assert_int_equal(audit_unbase64(b64, &bytes, &len), 0);
    assert_int_equal(len, sizeof(binary));
    assert_memory_equal(bytes, binary, sizeof(binary));
    free(bytes);
    assert_int_equal(json_integer_value(json_object_get(r, "status")), 0);
    assert_int_equal(json_array_size(json_object_get(r, "resp_headers")), 0);
    assert_true(json_is_null(json_object_get(r, "resp_body")));
    assert_true(json_real_value(json_object_get(r, "first_byte_s")) == -1.0);
    assert_string_equal(json_string_value(json_object_get(r, "error")), "connection refused");
    json_decref(r);
    json_decref(lines);
}

typedef struct producer {
    const char *id;
    int n;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    submit_numbered(p->id, 0, p->n);
    return NULL;
}

/* Two threads at once: every exchange once, each thread's in its own order, one chain. */
static void test_two_threads(void **state)
{
    fixture_t *fx = *state;
    start(fx);
    producer_t a = {"thread-a", 300};
    producer_t b = {"thread-b", 300};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, produce, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, produce, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    audit_stop();

    assert_intact(fx, "audit: 600 records in 1 files, chain intact");
    json_t *lines = all_lines(fx);
    int next_a = 0;
    int next_b = 0;
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *r = parse(lines, i);
        int *next = strcmp(json_string_value(json_object_get(r, "request_id")), "thread-a") == 0
                        ? &next_a
                        : &next_b;
        char want[32];
        snprintf(want, sizeof(want), "{\"n\":%d}", (*next)++);
        assert_string_equal(body_text(r, "req_body"), want);
        assert_int_equal(json_integer_value(json_object_get(r, "seq")), (json_int_t)i + 1);
        json_decref(r);
    }
    assert_int_equal(next_a, 300);
    assert_int_equal(next_b, 300);
    json_decref(lines);
}

/* An exchange not meant for the trail leaves no record. */
static void test_exchange_without_audit_flag_is_not_recorded(void **state)
{
    fixture_t *fx = *state;
    start(fx);
    telemetry_exchange_t x = exchange("req-1", "{}", "{}");
    x.audit = false;
    audit_submit(&x);
    audit_stop();

    assert_intact(fx, "audit: 0 records in 1 files, chain intact");
}

/* With the global switch off the writer still runs (a request may opt in), but touches the
 * disk only when a record comes. */
static void test_switch_off_opens_the_directory_on_the_first_record(void **state)
{
    fixture_t *fx = *state;
    fx->cfg.audit_enabled = false;
    start(fx);
    struct stat st;
    assert_int_not_equal(stat(fx->audit_dir, &st), 0);
    submit_numbered("opt-in", 0, 1);
    audit_stop();

    assert_intact(fx, "audit: 1 records in 1 files, chain intact");
}

/* ---- the chain ------------------------------------------------------------------------------- */

/* Five records; returns the file's bytes for the tests that damage it. */
static char *five_records(fixture_t *fx, char **path, size_t *len)
{
    start(fx);
    submit_numbered("req-1", 0, 5);
    audit_stop();
    assert_intact(fx, "audit: 5 records in 1 files, chain intact");
    *path = file_path(fx, 0);
    return slurp(*path, len);
}

static char *nth_line(char *text, int n)
{
    char *p = text;
    for (int i = 1; i < n; i++)
        p = strchr(p, '\n') + 1;
    return p;
}

static void test_changed_byte_names_the_record(void **state)
{
    fixture_t *fx = *state;
    char *path;
    size_t len;
    char *text = five_records(fx, &path, &len);

    /* {"n":2} becomes {"n":7}: still valid JSON, only the hash tells. */
    char *hit = strstr(nth_line(text, 3), "{\\\"n\\\":2}");
    assert_non_null(hit);
    hit[strlen("{\\\"n\\\":")] = '7';
    spit(path, text, len);

    char want[256];
    snprintf(want, sizeof(want), "audit: broken at %s:3 (seq 3): record changed", path);
    assert_broken(fx, want);
    free(text);
    free(path);
}

static void test_changed_last_link_is_reported_where_seen(void **state)
{
    fixture_t *fx = *state;
    char *path;
    size_t len;
    char *text = five_records(fx, &path, &len);

    /* Record 4 changed: record 5 no longer links, and nothing after it can tell who changed. */
    char *hit = strstr(nth_line(text, 4), "{\\\"n\\\":3}");
    hit[strlen("{\\\"n\\\":")] = '8';
    spit(path, text, len);

    char want[256];
    snprintf(want, sizeof(want),
             "audit: broken at %s:5 (seq 5): prev does not match the hash of seq 4", path);
    assert_broken(fx, want);
    free(text);
    free(path);
}

static void test_deleted_line_is_named(void **state)
{
    fixture_t *fx = *state;
    char *path;
    size_t len;
    char *text = five_records(fx, &path, &len);

    char *third = nth_line(text, 3);
    char *fourth = nth_line(text, 4);
    memmove(third, fourth, (size_t)(text + len - fourth));
    spit(path, text, len - (size_t)(fourth - third));

    char want[256];
    snprintf(want, sizeof(want),
             "audit: broken at %s:3 (seq 4): seq jumps from 2 to 4 (record deleted)", path);
    assert_broken(fx, want);
    free(text);
    free(path);
}

static void test_swapped_lines_are_named(void **state)
{
    fixture_t *fx = *state;
    char *path;
    size_t len;
    char *text = five_records(fx, &path, &len);

    char *second = nth_line(text, 2);
    char *third = nth_line(text, 3);
    char *fourth = nth_line(text, 4);
    buf_t swapped = BUF_INIT;
    buf_append(&swapped, text, (size_t)(second - text));
    buf_append(&swapped, third, (size_t)(fourth - third));
    buf_append(&swapped, second, (size_t)(third - second));
    buf_append(&swapped, fourth, (size_t)(text + len - fourth));
    spit(path, swapped.data, swapped.len);

    char want[256];
    snprintf(want, sizeof(want),
             "audit: broken at %s:2 (seq 3): seq jumps from 1 to 3 and seq 2 follows", path);
    assert_broken(fx, want);
    buf_free(&swapped);
    free(text);
    free(path);
}

static void test_garbage_line_is_not_valid_json(void **state)
{
    fixture_t *fx = *state;
    char *path;
    size_t len;
    char *text = five_records(fx, &path, &len);

    nth_line(text, 2)[0] = 'X';
    spit(path, text, len);

    char want[256];
    snprintf(want, sizeof(want), "audit: broken at %s:2 (seq ?): not valid JSON (after seq 1)",
             path);
    assert_broken(fx, want);
    free(text);
    free(path);
}

/* A crash mid-record: verify says so; the next start cuts the torn bytes, notes the cut in a
 * recovery record and continues the chain from the last complete record. */
static void test_torn_last_line_is_cut_and_noted(void **state)
{
    fixture_t *fx = *state;
    char *path;
    size_t len;
    char *text = five_records(fx, &path, &len);
    spit(path, text, len - 10);

    char want[256];
    snprintf(want, sizeof(want), "audit: broken at %s:5 (seq ?): the last line has no newline",
             path);
    assert_broken(fx, want);

    start(fx);
    submit_numbered("after", 0, 1);
    audit_stop();
    assert_intact(fx, "audit: 6 records in 1 files, chain intact");

    json_t *lines = all_lines(fx);
    json_t *r = parse(lines, 4);
    assert_string_equal(json_string_value(json_object_get(r, "kind")), "recovery");
    assert_int_equal(json_integer_value(json_object_get(r, "seq")), 5);
    const char *why = json_string_value(json_object_get(r, "error"));
    assert_non_null(strstr(why, "cut "));
    char cut[64];
    snprintf(cut, sizeof(cut), "cut %zu bytes", strlen(nth_line(text, 5)) - 10);
    assert_non_null(strstr(why, cut));
    json_decref(r);
    r = parse(lines, 5);
    assert_string_equal(json_string_value(json_object_get(r, "request_id")), "after");
    json_decref(r);
    json_decref(lines);
    free(text);
    free(path);
}

/* A damaged last record is not a crash: the writer refuses rather than fork the chain. */
static void test_damaged_last_record_refuses_to_start(void **state)
{
    fixture_t *fx = *state;
    char *path;
    size_t len;
    char *text = five_records(fx, &path, &len);
    buf_t b = BUF_INIT;
    buf_append(&b, text, len);
    buf_appends(&b, "not a record\n");
    spit(path, b.data, b.len);

    assert_int_equal(audit_start(&fx->cfg, fx->data_dir), -1);
    buf_free(&b);
    free(text);
    free(path);
}

static void test_restart_continues_the_chain(void **state)
{
    fixture_t *fx = *state;
    start(fx);
    submit_numbered("first-run", 0, 3);
    audit_stop();
    start(fx);
    submit_numbered("second-run", 0, 2);
    audit_stop();

    assert_intact(fx, "audit: 5 records in 1 files, chain intact");
    json_t *lines = all_lines(fx);
    json_t *r = parse(lines, 3);
    assert_int_equal(json_integer_value(json_object_get(r, "seq")), 4);
    assert_string_equal(json_string_value(json_object_get(r, "request_id")), "second-run");
    json_decref(r);
    json_decref(lines);
}

/* Small files: the chain runs across them, each file's first record linking to the last
 * record of the one before, and verify follows it; a restart continues in the newest. */
static void test_rotation_keeps_the_chain(void **state)
{
    fixture_t *fx = *state;
    audit_limits_for_tests(4096, 0);
    start(fx);
    submit_numbered("rot", 0, 30);
    audit_stop();
    start(fx);
    submit_numbered("rot", 30, 5);
    audit_stop();

    size_t n = file_count(fx);
    assert_true(n >= 3);
    char summary[96];
    snprintf(summary, sizeof(summary), "audit: 35 records in %zu files, chain intact", n);
    assert_intact(fx, summary);

    for (size_t i = 0; i + 1 < n; i++) {
        size_t len;
        char *path = file_path(fx, i);
        char *text = slurp(path, &len);
        assert_true(len <= 4096);
        assert_true(len > 0 && text[len - 1] == '\n');
        text[len - 1] = '\0';
        char *last = strrchr(text, '\n');
        last = last != NULL ? last + 1 : text;
        char hex[65];
        sha256_hex(last, strlen(last), hex);

        char *next_path = file_path(fx, i + 1);
        char *next = slurp(next_path, &len);
        json_t *o = json_loadb(next, (size_t)(strchr(next, '\n') - next), 0, NULL);
        assert_string_equal(json_string_value(json_object_get(o, "prev")), hex);
        json_decref(o);
        free(next);
        free(next_path);
        free(text);
        free(path);
    }

    /* A record taken out of the second file is found there. */
    char *path = file_path(fx, 1);
    size_t len;
    char *text = slurp(path, &len);
    char *second = strchr(text, '\n') + 1;
    spit(path, second, len - (size_t)(second - text));
    char want[256];
    snprintf(want, sizeof(want), "audit: broken at %s:1", path);
    assert_broken(fx, want);
    free(text);
    free(path);
}

/* A queue of one entry against a burst: exchanges are dropped, and the trail says how many in
 * gap records, so recorded + announced == submitted; the metric agrees. */
static void test_drops_are_counted_and_noted(void **state)
{
    fixture_t *fx = *state;
    long long dropped_before = counter("gatehouse_audit_records_dropped_total");
    audit_limits_for_tests(0, 1);
    start(fx);
    submit_numbered("burst", 0, 500);
    audit_stop();

    json_t *lines = all_lines(fx);
    long long recorded = 0;
    long long announced = 0;
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *r = parse(lines, i);
        const char *kind = json_string_value(json_object_get(r, "kind"));
        if (strcmp(kind, "gap") == 0)
            announced += atoll(json_string_value(json_object_get(r, "error")));
        else
            recorded++;
        json_decref(r);
    }
    assert_int_equal(recorded + announced, 500);
    assert_int_equal(counter("gatehouse_audit_records_dropped_total") - dropped_before, announced);
    char *text;
    assert_int_equal(verify(fx->audit_dir, &text), 0);
    free(text);
    json_decref(lines);
}

/* ---- secrets and content --------------------------------------------------------------------- */

static bool file_holds(const char *path, const char *needle)
{
    size_t len;
    char *text = slurp(path, &len);
    bool found = memmem(text, len, needle, strlen(needle)) != NULL;
    free(text);
    return found;
}

static const char *secret_search_key;
static int secret_hits;

static int search_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag == FTW_F && file_holds(path, secret_search_key))
        secret_hits++;
    return 0;
}

static void test_no_secret_reaches_the_disk(void **state)
{
    fixture_t *fx = *state;
    static const char *const req_headers[] = {"Authorization: Bearer " KEY, "x-api-key: " XKEY,
                                              "Content-Type: application/json", NULL};
    static const char *const resp_headers[] = {"x-echo: key was " KEY, NULL};
    static const char binary_echo[] = "\xff\xfe raw " KEY " and " XKEY;

    start(fx);
    telemetry_exchange_t x =
        exchange("req-secret", "{\"api_key\":\"" KEY "\",\"k\":\"" XKEY "\"}",
                 "{\"error\":{\"message\":\"Incorrect API key provided: " KEY "\"}}");
    x.req_headers = req_headers;
    x.resp_headers = resp_headers;
    x.url = "https://api.example.test/v1/models/m:generateContent?alt=sse&key=" QKEY "&n=1";
    x.error = "upstream said " KEY " is wrong";
    audit_submit(&x);
    x.req_body = binary_echo;
    x.req_len = sizeof(binary_echo) - 1;
    x.resp_body = "echo of the query key " QKEY;
    x.resp_len = strlen(x.resp_body);
    audit_submit(&x);
    audit_stop();
    assert_intact(fx, "audit: 2 records in 1 files, chain intact");

    static const char *const secrets[] = {KEY, XKEY, QKEY, "SECRET"};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        secret_search_key = secrets[i];
        secret_hits = 0;
        assert_int_equal(nftw(fx->data_dir, search_entry, 16, FTW_PHYS), 0);
        if (secret_hits != 0)
            fail_msg("%s found in %d files", secrets[i], secret_hits);
    }

    /* What remains is useful: redacted forms, the other parameters, the scrubbed texts. */
    json_t *lines = all_lines(fx);
    json_t *r = parse(lines, 0);
    assert_string_equal(json_string_value(json_object_get(r, "url")),
                        "https://api.example.test/v1/models/m:generateContent?alt=sse"
                        "&key=AIza...(40)&n=1");
    json_t *h = json_object_get(r, "req_headers");
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 0), 1)),
                        "Bearer sk-t...(46)");
    assert_string_equal(json_string_value(json_array_get(json_array_get(h, 1), 1)), "xk-o...(36)");
    assert_string_equal(body_text(r, "resp_body"),
                        "{\"error\":{\"message\":\"Incorrect API key provided: sk-t...(46)\"}}");
    assert_string_equal(json_string_value(json_object_get(r, "error")),
                        "upstream said sk-t...(46) is wrong");
    json_decref(r);

    /* The binary body was scrubbed before it was encoded. */
    r = parse(lines, 1);
    char *bytes;
    size_t len;
    const char *b64 = json_string_value(json_object_get(json_object_get(r, "req_body"), "base64"));
    assert_int_equal(audit_unbase64(b64, &bytes, &len), 0);
    assert_int_equal(len, strlen("\xff\xfe raw sk-t...(46) and xk-o...(36)"));
    assert_memory_equal(bytes, "\xff\xfe raw sk-t...(46) and xk-o...(36)", len);
    free(bytes);
    assert_string_equal(body_text(r, "resp_body"), "echo of the query key AIza...(40)");
    json_decref(r);
    json_decref(lines);
}

static void test_content_off_records_hashes(void **state)
{
    fixture_t *fx = *state;
    const char *req = "{\"messages\":[{\"role\":\"user\",\"content\":\"private words\"}]}";
    const char *resp = "{\"choices\":[{\"message\":{\"content\":\"private answer\"}}]}";
    start(fx);
    telemetry_exchange_t x = exchange("req-1", req, resp);
    x.record_content = false;
    audit_submit(&x);
    audit_stop();

    json_t *lines = all_lines(fx);
    json_t *r = parse(lines, 0);
    char hex[65];
    sha256_hex(req, strlen(req), hex);
    json_t *body = json_object_get(r, "req_body");
    assert_string_equal(json_string_value(json_object_get(body, "sha256")), hex);
    assert_int_equal(json_integer_value(json_object_get(body, "bytes")), strlen(req));
    assert_null(json_object_get(body, "text"));
    sha256_hex(resp, strlen(resp), hex);
    body = json_object_get(r, "resp_body");
    assert_string_equal(json_string_value(json_object_get(body, "sha256")), hex);
    assert_int_equal(json_integer_value(json_object_get(body, "bytes")), strlen(resp));
    json_decref(r);
    json_decref(lines);

    char *path = file_path(fx, 0);
    assert_false(file_holds(path, "private"));
    free(path);
}

/* ---- the line's bytes ------------------------------------------------------------------------ */

/* The writer makes its lines by hand; they must be what json_dumps would make of the same record
 * (older versions did exactly that, and verify, show and other tools parse them with jansson):
 * parsed and dumped again with the same flags, every line gives back its own bytes. */
static void assert_canonical(const char *line, size_t len)
{
    json_error_t err;
    json_t *o = json_loadb(line, len, 0, &err);
    if (o == NULL)
        fail_msg("not JSON (%s): %.*s", err.text, (int)len, line);
    char *again = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    assert_non_null(again);
    if (strlen(again) != len || memcmp(again, line, len) != 0)
        fail_msg("not jansson's form:\n  made %.*s\n  want %s", (int)len, line, again);
    free(again);
    json_decref(o);
}

static json_t *line_of(const telemetry_exchange_t *x, uint64_t seq)
{
    audit_entry_t *e = audit_entry_copy(x);
    size_t len = 0;
    char *line = audit_entry_line(
        e, seq, "0000000000000000000000000000000000000000000000000000000000000000", &len);
    assert_non_null(line);
    assert_int_equal(strlen(line), len);
    assert_canonical(line, len);
    json_t *o = json_loadb(line, len, 0, NULL);
    free(line);
    audit_entry_free(e);
    return o;
}

static void test_lines_are_jansson_canonical(void **state)
{
    static const char text[] = "quote \" backslash \\ slash / tab \t nl \n cr \r bs \b ff \f"
                               " ctl \x01\x1f del \x7f \xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80";
    static const char bad_utf8[] = "ok \xc3\x28 then \xed\xa0\x80 surrogate \xc0\xaf overlong";
    static const char with_nul[] = "before\0after";
    static const char *const odd_headers[] = {"X-Weird: a\x80z", "X-Ctl: \"tab\"\there",
                                              "Authorization: Bearer " KEY, NULL};
    static const double reals[] = {0.125,    4.5e-05,           -1,     3.0,
                                   0.1,      123456789.123,     1e-300, 1e21,
                                   2.5e+100, 0.000123456789123, 7e-10};

    telemetry_exchange_t x = exchange("req-\"1\"", text, bad_utf8);
    x.resp_headers = odd_headers;
    x.error = "upstream said \"no\"\n";
    json_t *r = line_of(&x, 1);
    assert_string_equal(body_text(r, "req_body"), text);
    assert_non_null(json_object_get(json_object_get(r, "resp_body"), "base64"));
    assert_string_equal(json_string_value(json_object_get(r, "error")), x.error);
    json_decref(r);

    x = exchange(NULL, "", "");
    x.resp_body = with_nul;
    x.resp_len = sizeof(with_nul) - 1;
    x.status = -5;
    x.url = NULL;
    for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
        x.first_byte_s = reals[i];
        x.duration_s = reals[sizeof(reals) / sizeof(reals[0]) - 1 - i];
        r = line_of(&x, 1000 + i);
        assert_true(json_is_null(json_object_get(r, "request_id")));
        assert_int_equal(json_integer_value(json_object_get(r, "status")), -5);
        assert_float_equal(json_real_value(json_object_get(r, "first_byte_s")), reals[i],
                           fabs(reals[i]) * 1e-8);
        json_decref(r);
    }

    x.record_content = false;
    r = line_of(&x, 99);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "resp_body"), "bytes")),
                     sizeof(with_nul) - 1);
    json_decref(r);
    (void)state;
}

/* ---- show and the exit statuses -------------------------------------------------------------- */

static int show(const char *dir, const char *id, char **text)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    int rc = audit_show(dir, id, f);
    fclose(f);
    *text = out;
    return rc;
}

static void test_show_prints_the_exchanges_of_one_request(void **state)
{
    fixture_t *fx = *state;
    start(fx);
    telemetry_exchange_t x = exchange("req-A", "{\"first\":1}", "{\"answer\":\"one\"}");
    audit_submit(&x);
    x = exchange("req-B", "{\"other\":1}", "{\"answer\":\"other\"}");
    audit_submit(&x);
    x = exchange("req-A", "caf\xe9 au lait", "bin");
    x.resp_body = "bin\0\x02";
    x.resp_len = 5;
    x.status = 503;
    audit_submit(&x);
    audit_stop();

    char *text;
    assert_int_equal(show(fx->data_dir, "req-A", &text), 0);
    const char *first = strstr(text, "== seq 1, 2026-01-01T00:00:00.250Z, upstream to openai");
    const char *second = strstr(text, "== seq 3, ");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    assert_null(strstr(text, "== seq 2"));
    assert_null(strstr(text, "other"));
    assert_non_null(strstr(text, "POST https://api.example.test/v1/chat/completions\n"));
    assert_non_null(strstr(text, "status 200, first byte after 0.125 s, done after 1.500 s\n"));
    assert_non_null(strstr(text, "status 503"));
    assert_non_null(strstr(text, "  Authorization: Bearer sk-t...(46)\n"));
    assert_non_null(strstr(text, "request body:\n{\"first\":1}\n"));
    assert_non_null(strstr(text, "response body:\n{\"answer\":\"one\"}\n"));
    assert_non_null(strstr(text, "request body:\ncaf\xe9 au lait\n"));
    assert_non_null(strstr(text, "response body:\n(5 bytes, not text; base64: YmluAAI=)\n"));
    free(text);

    assert_int_equal(show(fx->audit_dir, "req-none", &text), 1);
    assert_non_null(strstr(text, "audit: no exchange of request req-none"));
    free(text);
}

static void test_verify_exit_statuses(void **state)
{
    fixture_t *fx = *state;
    char *text;
    assert_int_equal(verify("/nonexistent/gatehouse-audit", &text), 2);
    assert_non_null(strstr(text, "audit: cannot read /nonexistent/gatehouse-audit"));
    free(text);
    assert_int_equal(verify(fx->data_dir, &text), 2);
    assert_non_null(strstr(text, "no audit files"));
    free(text);

    start(fx);
    submit_numbered("req-1", 0, 2);
    audit_stop();
    /* The data directory works as well as the audit directory under it. */
    assert_int_equal(verify(fx->data_dir, &text), 0);
    assert_non_null(strstr(text, "audit: 2 records in 1 files, chain intact\n"
                                 "audit: last record seq 2, sha256 "));
    free(text);
}

static int group_teardown(void **state)
{
    metrics_reset_for_tests();
    return 0;
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    alloc_init();
    const struct CMUnitTest tests[] = {
        T(test_record_holds_what_was_submitted),
        T(test_two_threads),
        T(test_exchange_without_audit_flag_is_not_recorded),
        T(test_switch_off_opens_the_directory_on_the_first_record),
        T(test_changed_byte_names_the_record),
        T(test_changed_last_link_is_reported_where_seen),
        T(test_deleted_line_is_named),
        T(test_swapped_lines_are_named),
        T(test_garbage_line_is_not_valid_json),
        T(test_torn_last_line_is_cut_and_noted),
        T(test_damaged_last_record_refuses_to_start),
        T(test_restart_continues_the_chain),
        T(test_rotation_keeps_the_chain),
        T(test_drops_are_counted_and_noted),
        T(test_no_secret_reaches_the_disk),
        T(test_content_off_records_hashes),
        T(test_lines_are_jansson_canonical),
        T(test_show_prints_the_exchanges_of_one_request),
        T(test_verify_exit_statuses),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
