/*
 * test_reqlog.c - unit tests for the request log (src/telemetry/reqlog_*.c).
 *
 * Every test gets a fresh directory under /tmp, starts the log there, and stops it and removes
 * the directory afterwards. Rows are written through the public API and made visible with
 * reqlog_flush; the writer's pause hook makes a full queue deterministic, and another SQLite
 * connection holding the write lock stands in for a disk that refuses writes. Counters are
 * read from the real metrics exposition, as deltas, since other tests in the binary move them.
 *
 * Tests may run as root, which ignores file permissions, so an "unwritable" data directory is
 * a path under a regular file rather than a chmod.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "telemetry/metrics.h"
#include "telemetry/reqlog.h"
#include "telemetry/reqlog_internal.h"
#include "util/buf.h"

#define DAY 86400.0

/* cmocka 1.1's float assertion compares floats; times and costs need doubles. */
#define assert_near(got, want, eps) near_impl((got), (want), (eps), __FILE__, __LINE__)

static void near_impl(double got, double want, double eps, const char *file, int line)
{
    if (fabs(got - want) <= eps)
        return;
    print_error("%.15g is not %.15g (within %g)\n", got, want, eps);
    _fail(file, line);
}

typedef struct fixture {
    char dir[64];
    char db[128];
    config_t cfg;
    double now; /* wall clock at setup; rows are placed relative to it */
} fixture_t;

/* ---- helpers --------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->logs_enabled = true;
    cfg->logs_content = true;
    cfg->logs_retention_days = 30;
    cfg->logs_content_retention_days = 7;
    cfg->logs_queue_size = 10000;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/gh-reqlog-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/gatehouse.db", f->dir);
    config_defaults(&f->cfg);
    f->now = (double)time(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    reqlog_stop();
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void start(fixture_t *f)
{
    assert_int_equal(reqlog_start(&f->cfg, f->dir), 0);
}

/* The value of a plain counter in the metrics exposition. */
static long counter(const char *name)
{
    buf_t out = BUF_INIT;
    metrics_render(&out);
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(buf_cstr(&out), key);
    long v = p != NULL ? strtol(p + strlen(key), NULL, 10) : -1;
    buf_free(&out);
    return v;
}

#define WRITTEN() counter("gatehouse_log_rows_written_total")
#define DROPPED() counter("gatehouse_log_rows_dropped_total")

static telemetry_request_t request(const char *id, double ts)
{
    telemetry_request_t r = {
        .id = id,
        .started_unix = ts,
        .latency_s = 0.5,
        .ttft_s = 0.125,
        .upstream_s = 0.25,
        .overhead_s = 0.002,
        .dialect = "openai",
        .method = "POST",
        .path = "/v1/chat/completions",
        .provider = "openai",
        .model = "gpt-4o",
        .key_name = "main",
        .status = 200,
        .tokens_in = 100,
        .tokens_out = 20,
        .tokens_cached = 10,
        .log_content = true,
    };
    return r;
}

static void submit_bodies(const char *id, double ts, const char *req_body, const char *resp_body)
{
    telemetry_request_t r = request(id, ts);
    r.request_body = req_body;
    r.request_len = req_body != NULL ? strlen(req_body) : 0;
    r.response_body = resp_body;
    r.response_len = resp_body != NULL ? strlen(resp_body) : 0;
    reqlog_submit(&r, 0.001);
}

static json_t *query(const reqlog_filter_t *flt)
{
    char err[256] = "";
    json_t *page = reqlog_query(flt, err, sizeof(err));
    if (page == NULL)
        fail_msg("reqlog_query failed: %s", err);
    return page;
}

/* The ids of a page's rows, comma-separated, in order. Caller frees. */
static char *ids_of(json_t *page)
{
    buf_t b = BUF_INIT;
    size_t i;
    json_t *row;
    json_array_foreach (json_object_get(page, "data"), i, row) {
        buf_appendf(&b, "%s%s", i ? "," : "", json_string_value(json_object_get(row, "id")));
    }
    return buf_release(&b);
}

static void assert_ids(const reqlog_filter_t *flt, const char *want)
{
    json_t *page = query(flt);
    char *got = ids_of(page);
    assert_string_equal(got, want);
    free(got);
    json_decref(page);
}

static json_t *get(const char *id)
{
    char err[256] = "";
    json_t *row = reqlog_get(id, err, sizeof(err));
    if (row == NULL)
        fail_msg("reqlog_get(%s) failed: %s", id, err);
    return row;
}

static const char *str_field(json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

/* A number from the database, through a connection of the test's own. */
static long db_count(fixture_t *f, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long v = -1;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void write_file(const char *path, const void *data, size_t len, long offset)
{
    FILE *fp = fopen(path, offset < 0 ? "wb" : "r+b");
    assert_non_null(fp);
    if (offset >= 0)
        assert_int_equal(fseek(fp, offset, SEEK_SET), 0);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

/* ---- schema and files ------------------------------------------------------------------------ */

static void test_schema(void **state)
{
    fixture_t *f = *state;
    start(f);
    reqlog_stop();

    assert_int_equal(db_count(f, "PRAGMA user_version"), 2);
    assert_int_equal(db_count(f, "PRAGMA auto_vacuum"), 2); /* INCREMENTAL */
    assert_int_equal(db_count(f, "SELECT count(*) FROM pragma_journal_mode WHERE "
                                 "journal_mode = 'wal'"),
                     1);
    assert_int_equal(db_count(f, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                                 "name IN ('requests_ts', 'requests_provider_model', "
                                 "'requests_status', 'requests_id', 'tool_calls_request_id')"),
                     5);
    /* Version 2: the status index holds failures only. */
    assert_int_equal(db_count(f, "SELECT count(*) FROM sqlite_master WHERE name = "
                                 "'requests_status' AND sql LIKE '%WHERE status <> 200'"),
                     1);

    /* The log holds prompts: only the owner may read it. */
    struct stat sb;
    assert_int_equal(stat(f->db, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

/* Rows survive a restart, and a second start migrates nothing. */
static void test_reopen_keeps_rows(void **state)
{
    fixture_t *f = *state;
    start(f);
    submit_bodies("kept", f->now, "{\"a\": 1}", NULL);
    reqlog_flush();
    reqlog_stop();

    start(f);
    json_t *row = get("kept");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(row, "request_body"), "a")),
                     1);
    json_decref(row);
}

/* ---- writing from many threads ------------------------------------------------------------- */

#define THREADS 4
#define ROWS_PER_THREAD 100

typedef struct worker_arg {
    int n;
    double base;
} worker_arg_t;

static void *submitter(void *p)
{
    worker_arg_t *a = p;
    for (int i = 0; i < ROWS_PER_THREAD; i++) {
        char id[32];
        snprintf(id, sizeof(id), "t%d-%03d", a->n, i);
        telemetry_request_t r = request(id, a->base + i);
        reqlog_submit(&r, -1);
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture_t *f = *state;
    start(f);
    long written = WRITTEN();

    pthread_t th[THREADS];
    worker_arg_t args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_arg_t){t, f->now - 3600 + t * 0.25};
        assert_int_equal(pthread_create(&th[t], NULL, submitter, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    reqlog_flush();

    assert_int_equal(WRITTEN() - written, THREADS * ROWS_PER_THREAD);
    reqlog_filter_t flt = {.limit = 1000};
    json_t *page = query(&flt);
    json_t *data = json_object_get(page, "data");
    assert_int_equal(json_array_size(data), THREADS * ROWS_PER_THREAD);
    assert_true(json_is_null(json_object_get(page, "next_cursor")));

    /* Newest first, and every id exactly once. */
    int seen[THREADS][ROWS_PER_THREAD] = {{0}};
    double prev = 1e300;
    size_t i;
    json_t *row;
    json_array_foreach (data, i, row) {
        double ts = json_real_value(json_object_get(row, "ts"));
        assert_true(ts <= prev);
        prev = ts;
        int t, n;
        assert_int_equal(sscanf(str_field(row, "id"), "t%d-%d", &t, &n), 2);
        seen[t][n]++;
    }
    for (int t = 0; t < THREADS; t++) {
        for (int n = 0; n < ROWS_PER_THREAD; n++)
            assert_int_equal(seen[t][n], 1);
    }
    json_decref(page);
}

/* ---- filters ----------------------------------------------------------------------------------
 */

static void submit_varied(double base)
{
    struct {
        const char *id, *provider, *model, *error;
        int status;
        const char *req_body;
    } rows[] = {
        {"a", "openai", "gpt-4o", NULL, 200, "{\"messages\": \"hello world\"}"},
        {"b", "openai", "gpt-4o-mini", NULL, 200, "{\"messages\": \"discount 100% off\"}"},
        {"c", "anthropic", "claude-sonnet-4-5", "overloaded", 529, NULL},
        {"d", "anthropic", "claude-haiku-4-5", NULL, 200, "{\"messages\": \"a_b\"}"},
        {"e", "groq", "llama-3.3-70b-versatile", "rate limited (100%)", 429, NULL},
        {"f", "openai", "gpt-4o", NULL, 200, "{\"messages\": \"axb\"}"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        telemetry_request_t r = request(rows[i].id, base + (double)i * 10);
        r.provider = rows[i].provider;
        r.model = rows[i].model;
        r.status = rows[i].status;
        r.error_type = rows[i].error != NULL ? "upstream_error" : NULL;
        r.error_message = rows[i].error;
        r.request_body = rows[i].req_body;
        r.request_len = rows[i].req_body != NULL ? strlen(rows[i].req_body) : 0;
        r.response_body = i == 0 ? "data: {\"content\": \"the answer is 42\"}" : NULL;
        r.response_len = r.response_body != NULL ? strlen(r.response_body) : 0;
        reqlog_submit(&r, -1);
    }
    reqlog_flush();
}

static void test_filters(void **state)
{
    fixture_t *f = *state;
    start(f);
    double base = f->now - 3600;
    submit_varied(base);

    assert_ids(&(reqlog_filter_t){0}, "f,e,d,c,b,a");
    assert_ids(&(reqlog_filter_t){.provider = "openai"}, "f,b,a");
    assert_ids(&(reqlog_filter_t){.provider = "openai", .model = "gpt-4o"}, "f,a");
    assert_ids(&(reqlog_filter_t){.model = "claude-haiku-4-5"}, "d");
    assert_ids(&(reqlog_filter_t){.status = 200}, "f,d,b,a");
    assert_ids(&(reqlog_filter_t){.status = 429}, "e");
    /* since is inclusive, until exclusive. */
    assert_ids(&(reqlog_filter_t){.since_unix = base + 20}, "f,e,d,c");
    assert_ids(&(reqlog_filter_t){.until_unix = base + 20}, "b,a");
    assert_ids(&(reqlog_filter_t){.since_unix = base + 10, .until_unix = base + 40}, "d,c,b");
    assert_ids(&(reqlog_filter_t){.provider = "nosuch"}, "");
}

static void test_substring_search(void **state)
{
    fixture_t *f = *state;
    start(f);
    submit_varied(f->now - 3600);

    /* Error message, request body and response body are searched. */
    assert_ids(&(reqlog_filter_t){.q = "overloaded"}, "c");
    assert_ids(&(reqlog_filter_t){.q = "hello"}, "a");
    assert_ids(&(reqlog_filter_t){.q = "answer is 42"}, "a");
    /* LIKE's wildcards in q are plain characters. */
    assert_ids(&(reqlog_filter_t){.q = "100%"}, "e,b");
    assert_ids(&(reqlog_filter_t){.q = "0% off"}, "b");
    assert_ids(&(reqlog_filter_t){.q = "a_b"}, "d");
    assert_ids(&(reqlog_filter_t){.q = "%"}, "e,b");
    assert_ids(&(reqlog_filter_t){.q = "\\"}, "");
    /* Combined with the other filters. */
    assert_ids(&(reqlog_filter_t){.q = "100%", .provider = "groq"}, "e");
    /* ASCII case does not matter. */
    assert_ids(&(reqlog_filter_t){.q = "OVERLOADED"}, "c");
}

/* ---- pagination ------------------------------------------------------------------------------ */

#define PAGED_ROWS 125

/* Ten rows share each timestamp, so pages must break ties by insertion order. */
static void submit_paged(double base)
{
    for (int i = 0; i < PAGED_ROWS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%03d", i);
        telemetry_request_t r = request(id, base + (double)(i / 10));
        reqlog_submit(&r, -1);
    }
    reqlog_flush();
}

static void test_pagination(void **state)
{
    fixture_t *f = *state;
    start(f);
    double base = f->now - 3600;
    submit_paged(base);

    int seen[PAGED_ROWS] = {0};
    int expect = PAGED_ROWS - 1; /* newest first: p124, p123, ... */
    int pages = 0;
    char *cursor = NULL;
    for (;;) {
        reqlog_filter_t flt = {.limit = 50, .cursor = cursor};
        json_t *page = query(&flt);
        json_t *data = json_object_get(page, "data");
        size_t i;
        json_t *row;
        json_array_foreach (data, i, row) {
            int n;
            assert_int_equal(sscanf(str_field(row, "id"), "p%d", &n), 1);
            assert_int_equal(n, expect--);
            seen[n]++;
        }
        pages++;
        free(cursor);
        cursor = NULL;
        json_t *next = json_object_get(page, "next_cursor");
        assert_int_equal(json_array_size(data), pages < 3 ? 50 : 25);
        if (pages == 1) {
            /* Rows written between pages are newer: they never shift the next page. */
            telemetry_request_t r = request("late", f->now);
            reqlog_submit(&r, -1);
            reqlog_flush();
        }
        if (json_is_null(next)) {
            json_decref(page);
            break;
        }
        cursor = strdup(json_string_value(next));
        json_decref(page);
    }
    assert_int_equal(pages, 3);
    for (int n = 0; n < PAGED_ROWS; n++)
        assert_int_equal(seen[n], 1);
}

static void test_limits(void **state)
{
    fixture_t *f = *state;
    start(f);
    for (int i = 0; i < 1001; i++) {
        telemetry_request_t r = request("many", f->now - 3600 + i);
        reqlog_submit(&r, -1);
    }
    reqlog_flush();

    json_t *page = query(&(reqlog_filter_t){0});
    assert_int_equal(json_array_size(json_object_get(page, "data")), 50);
    assert_true(json_is_string(json_object_get(page, "next_cursor")));
    json_decref(page);

    page = query(&(reqlog_filter_t){.limit = 5000});
    assert_int_equal(json_array_size(json_object_get(page, "data")), 1000);
    assert_true(json_is_string(json_object_get(page, "next_cursor")));
    json_decref(page);

    page = query(&(reqlog_filter_t){.limit = 1001});
    assert_int_equal(json_array_size(json_object_get(page, "data")), 1000);
    json_decref(page);
}

static void test_bad_cursor(void **state)
{
    fixture_t *f = *state;
    start(f);
    submit_paged(f->now - 3600);

    const char *bad[] = {
        "zzz",
        "1:2",
        "0123456789abcdef0123456789abcdeg",  /* not hex */
        "0123456789ABCDEF0123456789ABCDEF",  /* not what we write */
        "0123456789abcdef0123456789abcdef0", /* too long */
        "7ff8000000000000000000000000000a",  /* ts is NaN */
        "41d9000000000000ffffffffffffffff",  /* seq negative */
        "41d90000000000000000000000000000",  /* seq 0 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        reqlog_filter_t flt = {.cursor = bad[i]};
        json_t *page = reqlog_query(&flt, err, sizeof(err));
        if (page != NULL)
            fail_msg("cursor %s was accepted", bad[i]);
        assert_non_null(strstr(err, "bad cursor"));
    }

    /* An empty cursor is the first page. */
    json_t *page = query(&(reqlog_filter_t){.cursor = ""});
    assert_int_equal(json_array_size(json_object_get(page, "data")), 50);
    json_decref(page);
}

/* ---- one request with its bodies and tool calls ---------------------------------------------- */

static void submit_tool(const char *request_id, const char *tool, double ts, bool ok)
{
    reqlog_tool_call_t t = {
        .request_id = request_id,
        .source = "agent",
        .mcp_client = "github",
        .tool = tool,
        .started_unix = ts,
        .duration_s = 0.042,
        .ok = ok,
        .error = ok ? NULL : "tool failed",
        .arguments = "{\"query\": \"bug\"}",
        .result = ok ? "[1, 2]" : NULL,
    };
    reqlog_submit_tool(&t);
}

/* A batch of request rows is inserted REQLOG_INSERT_ROWS at a time, with single inserts for
 * the rest and around tool rows: every row lands whole, with its own values, in submit order. */
static void test_grouped_inserts_keep_rows_and_order(void **state)
{
    fixture_t *f = *state;
    start(f);
    reqlog_pause_writer(true); /* one batch holds them all */
    int n = 2 * REQLOG_INSERT_ROWS + 5;
    for (int i = 0; i < n; i++) {
        char id[16];
        char body[32];
        snprintf(id, sizeof(id), "g%d", i);
        snprintf(body, sizeof(body), "{\"i\": %d}", i);
        telemetry_request_t r = request(id, f->now + i);
        r.status = 200 + i;
        r.request_body = body;
        r.request_len = strlen(body);
        reqlog_submit(&r, -1);
        if (i == 3)
            submit_tool(id, "between", f->now + i, true);
    }
    reqlog_pause_writer(false);
    reqlog_flush();

    assert_int_equal(db_count(f, "SELECT count(*) FROM requests"), n);
    /* seq follows submit order: no row has a seq below one submitted before it */
    assert_int_equal(db_count(f, "SELECT count(*) FROM requests a JOIN requests b ON"
                                 " a.ts < b.ts AND a.seq > b.seq"),
                     0);
    for (int i = 0; i < n; i += 7) {
        char id[16];
        snprintf(id, sizeof(id), "g%d", i);
        json_t *row = get(id);
        assert_int_equal(json_integer_value(json_object_get(row, "status")), 200 + i);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(row, "request_body"), "i")), i);
        assert_near(json_real_value(json_object_get(row, "ts")), f->now + i, 1e-3);
        json_decref(row);
    }
    assert_int_equal(db_count(f, "SELECT count(*) FROM tool_calls WHERE request_id = 'g3'"), 1);
}

static void test_get(void **state)
{
    fixture_t *f = *state;
    start(f);
    double ts = f->now - 60;
    telemetry_request_t r = request("req-1", ts);
    r.stream = true;
    r.ttft_s = -1;
    r.request_body = "{\"model\": \"openai/gpt-4o\", \"stream\": true}";
    r.request_len = strlen(r.request_body);
    r.response_body = "data: {\"a\":1}\ndata: [DONE]";
    r.response_len = strlen(r.response_body);
    reqlog_submit(&r, 0.0125);
    submit_tool("req-1", "search_issues", ts + 1, true);
    submit_tool("req-1", "get_issue", ts + 2, false);
    submit_tool("other", "get_issue", ts + 3, true);
    reqlog_flush();

    json_t *row = get("req-1");
    assert_string_equal(str_field(row, "provider"), "openai");
    assert_string_equal(str_field(row, "path"), "/v1/chat/completions");
    assert_int_equal(json_integer_value(json_object_get(row, "status")), 200);
    assert_true(json_is_true(json_object_get(row, "stream")));
    assert_true(json_is_null(json_object_get(row, "ttft_ms")));
    assert_true(json_is_null(json_object_get(row, "error_message")));
    assert_true(json_is_null(json_object_get(row, "caller")));
    assert_near(json_real_value(json_object_get(row, "latency_ms")), 500, 1e-6);
    assert_near(json_real_value(json_object_get(row, "cost_usd")), 0.0125, 1e-9);
    assert_int_equal(json_integer_value(json_object_get(row, "tokens_cached")), 10);

    /* A JSON body comes back as JSON, an SSE transcript as text. */
    json_t *body = json_object_get(row, "request_body");
    assert_true(json_is_object(body));
    assert_string_equal(str_field(body, "model"), "openai/gpt-4o");
    assert_string_equal(str_field(row, "response_body"), "data: {\"a\":1}\ndata: [DONE]");

    json_t *calls = json_object_get(row, "tool_calls");
    assert_int_equal(json_array_size(calls), 2);
    json_t *first = json_array_get(calls, 0);
    json_t *second = json_array_get(calls, 1);
    assert_string_equal(str_field(first, "tool"), "search_issues");
    assert_true(json_is_true(json_object_get(first, "ok")));
    assert_string_equal(str_field(json_object_get(first, "arguments"), "query"), "bug");
    assert_int_equal(json_array_size(json_object_get(first, "result")), 2);
    assert_near(json_real_value(json_object_get(first, "duration_ms")), 42, 1e-6);
    assert_string_equal(str_field(second, "tool"), "get_issue");
    assert_string_equal(str_field(second, "error"), "tool failed");
    assert_true(json_is_null(json_object_get(second, "result")));
    json_decref(row);

    /* Rows of the list carry no bodies. */
    json_t *page = query(&(reqlog_filter_t){0});
    json_t *listed = json_array_get(json_object_get(page, "data"), 0);
    assert_null(json_object_get(listed, "request_body"));
    assert_null(json_object_get(listed, "tool_calls"));
    json_decref(page);

    char err[256] = "";
    assert_null(reqlog_get("nosuch", err, sizeof(err)));
    assert_non_null(strstr(err, "nosuch"));
    assert_null(reqlog_get("", err, sizeof(err)));
}

/* A client may send the same x-request-id twice: both rows stay, get answers the newest. */
static void test_repeated_id(void **state)
{
    fixture_t *f = *state;
    start(f);
    telemetry_request_t r = request("dup", f->now - 100);
    r.status = 500;
    reqlog_submit(&r, -1);
    r.started_unix = f->now - 50;
    r.status = 201;
    reqlog_submit(&r, -1);
    r.started_unix = f->now - 50; /* same time: the later row wins */
    r.status = 202;
    reqlog_submit(&r, -1);
    reqlog_flush();

    assert_ids(&(reqlog_filter_t){0}, "dup,dup,dup");
    json_t *row = get("dup");
    assert_int_equal(json_integer_value(json_object_get(row, "status")), 202);
    json_decref(row);
}

static void test_content_off(void **state)
{
    fixture_t *f = *state;
    start(f);
    telemetry_request_t r = request("quiet", f->now);
    r.log_content = false;
    r.request_body = "{\"secret\": \"prompt\"}";
    r.request_len = strlen(r.request_body);
    reqlog_submit(&r, -1);
    reqlog_flush();

    json_t *row = get("quiet");
    assert_true(json_is_null(json_object_get(row, "request_body")));
    assert_true(json_is_null(json_object_get(row, "response_body")));
    json_decref(row);
    assert_int_equal(db_count(f, "SELECT count(*) FROM requests WHERE request_body IS NOT NULL"),
                     0);
}

/* content_retention_days = 0 keeps no body at all, tool arguments included. The rows are
 * dated a day ahead so that the start's retention pass cannot be what cleared them. */
static void test_content_retention_zero(void **state)
{
    fixture_t *f = *state;
    f->cfg.logs_content_retention_days = 0;
    start(f);
    submit_bodies("zero", f->now + DAY, "{\"x\": 1}", "{\"y\": 2}");
    submit_tool("zero", "t", f->now + DAY, true);
    reqlog_flush();

    json_t *row = get("zero");
    assert_true(json_is_null(json_object_get(row, "request_body")));
    json_t *call = json_array_get(json_object_get(row, "tool_calls"), 0);
    assert_true(json_is_null(json_object_get(call, "arguments")));
    json_decref(row);
}

static void test_truncation(void **state)
{
    fixture_t *f = *state;
    start(f);
    size_t len = 1024 * 1024 + 100;
    char *big = malloc(len + 1);
    big[0] = '{';
    memset(big + 1, 'x', len - 2);
    big[len - 1] = '}';
    big[len] = '\0';
    submit_bodies("big", f->now, big, "small");
    free(big);
    reqlog_flush();

    json_t *row = get("big");
    const char *body = str_field(row, "request_body"); /* no longer JSON: a string */
    assert_non_null(body);
    const char *marker = "\n[truncated by gatehouse: 1048576 of 1048676 bytes kept]";
    size_t n = strlen(body);
    assert_int_equal(n, 1048576 + strlen(marker));
    assert_string_equal(body + 1048576, marker);
    assert_string_equal(str_field(row, "response_body"), "small");
    json_decref(row);
}

static void test_invalid_utf8(void **state)
{
    fixture_t *f = *state;
    start(f);
    telemetry_request_t r = request("utf8", f->now);
    r.error_message = "bad \xff byte";
    r.status = 502;
    reqlog_submit(&r, -1);
    reqlog_flush();

    json_t *row = get("utf8");
    assert_string_equal(str_field(row, "error_message"), "bad \xEF\xBF\xBD byte");
    json_decref(row);
}

/* ---- retention ------------------------------------------------------------------------------- */

static void test_retention(void **state)
{
    fixture_t *f = *state;
    start(f);
    double now = f->now;
    submit_bodies("old", now - 40 * DAY, "{\"n\": 1}", "{\"n\": 1}");
    submit_tool("old", "t", now - 40 * DAY, true);
    submit_bodies("middle", now - 10 * DAY, "{\"n\": 2}", "{\"n\": 2}");
    submit_tool("middle", "t", now - 10 * DAY, true);
    submit_bodies("recent", now - 1 * DAY, "{\"n\": 3}", "{\"n\": 3}");
    reqlog_run_retention(now);

    char err[256];
    assert_null(reqlog_get("old", err, sizeof(err)));
    assert_int_equal(db_count(f, "SELECT count(*) FROM tool_calls WHERE request_id = 'old'"), 0);

    json_t *row = get("middle");
    assert_true(json_is_null(json_object_get(row, "request_body")));
    assert_true(json_is_null(json_object_get(row, "response_body")));
    json_t *call = json_array_get(json_object_get(row, "tool_calls"), 0);
    assert_non_null(call);
    assert_true(json_is_null(json_object_get(call, "arguments")));
    assert_true(json_is_null(json_object_get(call, "result")));
    json_decref(row);

    row = get("recent");
    assert_true(json_is_object(json_object_get(row, "request_body")));
    json_decref(row);

    /* The hook's clock is the one used: 25 days on, "middle" is 35 days old and goes, and
     * "recent" loses its bodies but stays. */
    reqlog_run_retention(now + 25 * DAY);
    row = get("recent");
    assert_true(json_is_null(json_object_get(row, "request_body")));
    json_decref(row);
    assert_ids(&(reqlog_filter_t){0}, "recent");
    assert_int_equal(db_count(f, "SELECT count(*) FROM tool_calls"), 0);
}

/* More rows than one retention chunk: the pass goes on until all are gone. */
static void test_retention_many(void **state)
{
    fixture_t *f = *state;
    start(f);
    for (int i = 0; i < 4500; i++) {
        telemetry_request_t r = request("bulk", f->now - 40 * DAY + i);
        reqlog_submit(&r, -1);
    }
    submit_bodies("keep", f->now, NULL, NULL);
    reqlog_run_retention(f->now);
    assert_int_equal(db_count(f, "SELECT count(*) FROM requests"), 1);
    assert_int_equal(db_count(f, "PRAGMA freelist_count"), 0);
}

/* Bodies of more rows than one chunk are all cleared, and rows too young keep theirs. */
static void test_content_retention_many(void **state)
{
    fixture_t *f = *state;
    start(f);
    for (int i = 0; i < 4500; i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%d", i);
        submit_bodies(id, f->now - 10 * DAY + i, "{\"q\": 1}", "{\"a\": 1}");
    }
    submit_bodies("young", f->now - DAY, "{\"q\": 2}", "{\"a\": 2}");
    reqlog_run_retention(f->now);
    assert_int_equal(db_count(f, "SELECT count(*) FROM requests"), 4501);
    assert_int_equal(db_count(f, "SELECT count(*) FROM requests WHERE request_body IS NOT NULL"),
                     1);
    assert_int_equal(db_count(f, "SELECT count(*) FROM requests WHERE id = 'young' AND "
                                 "response_body IS NOT NULL"),
                     1);
}

/* A status filter other than 200 reads the partial status index, not the whole log. */
static void test_status_filter_uses_the_index(void **state)
{
    fixture_t *f = *state;
    start(f);
    telemetry_request_t r = request("failed", f->now);
    r.status = 502;
    reqlog_submit(&r, -1);
    submit_bodies("fine", f->now + 1, NULL, NULL);
    reqlog_flush();
    assert_ids(&(reqlog_filter_t){.status = 502}, "failed");
    assert_ids(&(reqlog_filter_t){.status = 200}, "fine");

    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    /* the WHERE clause reqlog_query builds for status=502 */
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT seq FROM requests WHERE 1 = 1"
                                        " AND status = ? AND status <> 200"
                                        " ORDER BY ts DESC, seq DESC LIMIT 51",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_bind_int(st, 1, 502), SQLITE_OK);
    bool uses_index = false;
    while (sqlite3_step(st) == SQLITE_ROW)
        uses_index |= strstr((const char *)sqlite3_column_text(st, 3), "requests_status") != NULL;
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(uses_index);
}

/* A file of schema version 1 (as the first release wrote it) is migrated at start: its rows
 * stay, its status index becomes partial, and retention clears its old bodies. */
static void test_migrates_version_1(void **state)
{
    fixture_t *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    const char *v1 =
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL;"
        "CREATE TABLE requests (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " id TEXT, ts REAL, caller TEXT, dialect TEXT, method TEXT, path TEXT,"
        " provider TEXT, model TEXT, key_name TEXT,"
        " fallback_index INTEGER, retries INTEGER, status INTEGER, stream INTEGER,"
        " error_type TEXT, error_message TEXT,"
        " latency_ms REAL, ttft_ms REAL, upstream_ms REAL, overhead_ms REAL,"
        " tokens_in INTEGER, tokens_out INTEGER, tokens_cached INTEGER, cost_usd REAL,"
        " request_body TEXT, response_body TEXT);"
        "CREATE INDEX requests_ts ON requests(ts);"
        "CREATE INDEX requests_provider_model ON requests(provider, model, ts);"
        "CREATE INDEX requests_status ON requests(status, ts);"
        "CREATE INDEX requests_id ON requests(id);"
        "CREATE INDEX requests_ts_with_body ON requests(ts)"
        " WHERE request_body IS NOT NULL OR response_body IS NOT NULL;"
        "CREATE TABLE tool_calls (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " request_id TEXT, execution_id TEXT, source TEXT, mcp_client TEXT, tool TEXT,"
        " ts REAL, duration_ms REAL, ok INTEGER, error TEXT, arguments TEXT, result TEXT);"
        "CREATE INDEX tool_calls_request_id ON tool_calls(request_id);"
        "CREATE INDEX tool_calls_ts ON tool_calls(ts);"
        "CREATE INDEX tool_calls_ts_with_body ON tool_calls(ts)"
        " WHERE arguments IS NOT NULL OR result IS NOT NULL;"
        "PRAGMA user_version = 1;";
    assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
    char insert[256];
    snprintf(insert, sizeof(insert),
             "INSERT INTO requests (id, ts, status, request_body, response_body) VALUES"
             " ('old', %.3f, 200, 'q', 'a'), ('new', %.3f, 500, 'q', 'a')",
             f->now - 10 * DAY, f->now);
    assert_int_equal(sqlite3_exec(db, insert, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    start(f);
    reqlog_run_retention(f->now);
    assert_int_equal(db_count(f, "PRAGMA user_version"), 2);
    assert_int_equal(db_count(f, "SELECT count(*) FROM sqlite_master WHERE name = "
                                 "'requests_status' AND sql LIKE '%WHERE status <> 200'"),
                     1);
    assert_int_equal(db_count(f, "SELECT count(*) FROM requests WHERE request_body IS NULL"), 1);
    assert_ids(&(reqlog_filter_t){.status = 500}, "new");
    json_t *row = get("old");
    assert_true(json_is_null(json_object_get(row, "request_body")));
    json_decref(row);
}

/* ---- failures -------------------------------------------------------------------------------- */

static void test_queue_full(void **state)
{
    fixture_t *f = *state;
    f->cfg.logs_queue_size = 1;
    start(f);
    long dropped = DROPPED();
    long written = WRITTEN();

    reqlog_pause_writer(true);
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof(id), "q%d", i);
        telemetry_request_t r = request(id, f->now + i);
        reqlog_submit(&r, -1);
    }
    assert_int_equal(DROPPED() - dropped, 2);
    reqlog_pause_writer(false);
    reqlog_flush();

    assert_int_equal(WRITTEN() - written, 1);
    assert_ids(&(reqlog_filter_t){0}, "q0");
}

/* Rows queued when stop is called are written, even with a paused writer. */
static void test_stop_drains(void **state)
{
    fixture_t *f = *state;
    start(f);
    reqlog_pause_writer(true);
    submit_bodies("drained", f->now, NULL, NULL);
    reqlog_stop();
    assert_int_equal(db_count(f, "SELECT count(*) FROM requests WHERE id = 'drained'"), 1);
}

/* A write that fails (here: another connection holds the write lock past the busy timeout)
 * drops the batch and counts it; the next batch writes again. */
static void test_write_error_drops_and_recovers(void **state)
{
    fixture_t *f = *state;
    start(f);
    long dropped = DROPPED();
    long written = WRITTEN();

    sqlite3 *blocker = NULL;
    assert_int_equal(sqlite3_open(f->db, &blocker), SQLITE_OK);
    /* The writer may be busy with its start-up retention pass: wait for the lock. */
    sqlite3_busy_timeout(blocker, 10000);
    assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < 3; i++)
        submit_bodies("lost", f->now, NULL, NULL);
    reqlog_flush();
    assert_int_equal(DROPPED() - dropped, 3);
    assert_int_equal(WRITTEN() - written, 0);

    assert_int_equal(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    submit_bodies("back", f->now, NULL, NULL);
    submit_bodies("back", f->now, NULL, NULL);
    reqlog_flush();
    assert_int_equal(WRITTEN() - written, 2);
    assert_ids(&(reqlog_filter_t){0}, "back,back");
}

static void test_not_a_database(void **state)
{
    fixture_t *f = *state;
    const char garbage[] = "this is not an SQLite database, just some bytes that happen to be "
                           "here; gatehouse must refuse it and say what to do about it.";
    write_file(f->db, garbage, sizeof(garbage), -1);
    assert_int_equal(reqlog_start(&f->cfg, f->dir), -1);

    /* Nothing runs: queries say so and submits are ignored. */
    char err[256] = "";
    assert_null(reqlog_query(&(reqlog_filter_t){0}, err, sizeof(err)));
    assert_non_null(strstr(err, "off"));
    submit_bodies("ignored", f->now, NULL, NULL);
}

/* A database whose pages are damaged fails its quick_check. */
static void test_damaged_database(void **state)
{
    fixture_t *f = *state;
    start(f);
    for (int i = 0; i < 300; i++)
        submit_bodies("filler", f->now, "{\"padding\": \"................................\"}",
                      NULL);
    reqlog_stop();
    assert_true(db_count(f, "PRAGMA page_count") > 4);

    /* Overwrite the second and third pages (b-tree pages after the header page). */
    long page = db_count(f, "PRAGMA page_size");
    char *junk = malloc((size_t)page * 2);
    memset(junk, 0x5a, (size_t)page * 2);
    write_file(f->db, junk, (size_t)page * 2, page);
    free(junk);

    assert_int_equal(reqlog_start(&f->cfg, f->dir), -1);
}

static void test_newer_schema(void **state)
{
    fixture_t *f = *state;
    start(f);
    reqlog_stop();
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(reqlog_start(&f->cfg, f->dir), -1);
}

/* The data directory cannot hold a file: start fails and says why (decided: a log that cannot
 * be opened at start is a configuration error, not something to drop rows for silently). */
static void test_unusable_directory(void **state)
{
    fixture_t *f = *state;
    char file[128];
    char dir[160];
    snprintf(file, sizeof(file), "%s/plain-file", f->dir);
    write_file(file, "x", 1, -1);
    snprintf(dir, sizeof(dir), "%s/sub", file);
    assert_int_equal(reqlog_start(&f->cfg, dir), -1);

    snprintf(dir, sizeof(dir), "%s/does/not/exist", f->dir);
    assert_int_equal(reqlog_start(&f->cfg, dir), -1);
}

/* ---- switches and lifecycle ------------------------------------------------------------------ */

static void test_disabled_then_reloaded(void **state)
{
    fixture_t *f = *state;
    f->cfg.logs_enabled = false;
    assert_int_equal(reqlog_start(&f->cfg, f->dir), 0);
    submit_bodies("before", f->now, NULL, NULL);
    char err[256] = "";
    assert_null(reqlog_query(&(reqlog_filter_t){0}, err, sizeof(err)));
    assert_non_null(strstr(err, "off"));

    /* A reload that turns the log on starts the writer. */
    f->cfg.logs_enabled = true;
    reqlog_reconfigure(&f->cfg);
    submit_bodies("during", f->now, NULL, NULL);
    reqlog_flush();
    assert_ids(&(reqlog_filter_t){0}, "during");

    /* Turning it off stops taking rows; what was written stays readable. */
    f->cfg.logs_enabled = false;
    reqlog_reconfigure(&f->cfg);
    submit_bodies("after", f->now, NULL, NULL);
    reqlog_flush();
    assert_ids(&(reqlog_filter_t){0}, "during");
}

/* Each thread reads on its own connection, while the writer writes. */
static void *reader_thread(void *p)
{
    long *count = p;
    for (int i = 0; i < 20; i++) {
        char err[256] = "";
        json_t *page = reqlog_query(&(reqlog_filter_t){.limit = 1000}, err, sizeof(err));
        if (page == NULL) {
            *count = -1;
            return NULL;
        }
        *count = (long)json_array_size(json_object_get(page, "data"));
        json_decref(page);
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    fixture_t *f = *state;
    start(f);
    pthread_t th[2];
    long counts[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &counts[i]), 0);
    for (int i = 0; i < 200; i++)
        submit_bodies("r", f->now, NULL, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    reqlog_flush();

    for (int i = 0; i < 2; i++)
        assert_true(counts[i] >= 0 && counts[i] <= 200);
    long final = 0;
    reader_thread(&final);
    assert_int_equal(final, 200);
}

/* After a restart on another directory, this thread's reader follows to the new file. */
static void test_restart_other_directory(void **state)
{
    fixture_t *f = *state;
    start(f);
    submit_bodies("first-dir", f->now, NULL, NULL);
    reqlog_flush();
    assert_ids(&(reqlog_filter_t){0}, "first-dir");
    reqlog_stop();

    char other[128];
    snprintf(other, sizeof(other), "%s/other", f->dir);
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(reqlog_start(&f->cfg, other), 0);
    assert_ids(&(reqlog_filter_t){0}, "");
    reqlog_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_substring_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_retention_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_retention_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_filter_uses_the_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grouped_inserts_keep_rows_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_drops_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_then_reloaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_other_directory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
