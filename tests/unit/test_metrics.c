/*
 * test_metrics.c - Prometheus metrics: per-thread shards summed at scrape, histogram buckets,
 * label escaping and cutting, the series bound, and promtool's verdict on the exposition.
 *
 * Every test starts from metrics_reset_for_tests() and reads values back from the rendered
 * text, as Prometheus would, so the tests cover the recording and the rendering together.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "telemetry/metrics.h"
#include "util/alloc.h"

/* ---- reading the exposition ---------------------------------------------------------------- */

static char *render(void)
{
    buf_t b = BUF_INIT;
    metrics_render(&b);
    return buf_release(&b);
}

/* Calls fn on each line of text (without its newline). */
static void each_line(const char *text, void (*fn)(const char *line, size_t len, void *arg),
                      void *arg)
{
    while (*text) {
        const char *eol = strchr(text, '\n');
        size_t len = eol ? (size_t)(eol - text) : strlen(text);
        fn(text, len, arg);
        text += len + (eol ? 1 : 0);
    }
}

typedef struct sample_query {
    const char *series; /* name and labels, exactly as printed */
    int found;
    double value;
} sample_query_t;

static void sample_match(const char *line, size_t len, void *arg)
{
    sample_query_t *q = arg;
    size_t n = strlen(q->series);
    if (len > n && strncmp(line, q->series, n) == 0 && line[n] == ' ') {
        q->found++;
        q->value = strtod(line + n + 1, NULL);
    }
}

/* How many sample lines print exactly this series (0 or 1 in a valid exposition). */
static int sample_count(const char *text, const char *series)
{
    sample_query_t q = {series, 0, 0};
    each_line(text, sample_match, &q);
    return q.found;
}

/* The value of a series that must appear exactly once. */
static double sample(const char *text, const char *series)
{
    sample_query_t q = {series, 0, 0};
    each_line(text, sample_match, &q);
    if (q.found != 1)
        fail_msg("series %s printed %d times", series, q.found);
    return q.value;
}

typedef struct prefix_query {
    const char *prefix;
    int count;
    double total;
} prefix_query_t;

static void prefix_match(const char *line, size_t len, void *arg)
{
    prefix_query_t *q = arg;
    size_t n = strlen(q->prefix);
    if (len > n && strncmp(line, q->prefix, n) == 0) {
        q->count++;
        q->total += strtod(memchr(line, ' ', len), NULL);
    }
}

/* Sample lines starting with prefix (a family name and "{"), and the sum of their values. */
static int prefix_count(const char *text, const char *prefix, double *total)
{
    prefix_query_t q = {prefix, 0, 0};
    each_line(text, prefix_match, &q);
    if (total != NULL)
        *total = q.total;
    return q.count;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p != NULL; p = strstr(p + 1, line)) {
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    }
    return false;
}

static telemetry_request_t request(const char *provider, const char *model, int status)
{
    telemetry_request_t r = {0};
    r.id = "req-test";
    r.provider = provider;
    r.model = model;
    r.status = status;
    r.latency_s = 0.25;
    r.overhead_s = 0.00002;
    r.ttft_s = 0.125;
    r.dialect = "openai";
    r.method = "POST";
    r.path = "/v1/chat/completions";
    return r;
}

static int setup(void **state)
{
    metrics_reset_for_tests();
    return 0;
}

/* ---- several threads, summed --------------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 1000

static void *record_requests(void *arg)
{
    for (int i = 0; i < PER_THREAD; i++) {
        telemetry_request_t r = request("openai", i % 2 ? "gpt-4o" : "gpt-4o-mini", 200);
        r.tokens_in = 10;
        r.tokens_out = 5;
        r.tokens_cached = 2;
        r.retries = i % 4 == 0 ? 1 : 0;
        r.fallback_index = i % 10 == 0 ? 1 : 0;

        metrics_gauge_add(METRICS_ACTIVE_REQUESTS, 1);
        metrics_request(&r, 0.25);
        /* Two requests per thread are left in flight. */
        if (i >= 2)
            metrics_gauge_add(METRICS_ACTIVE_REQUESTS, -1);
        metrics_counter_add(METRICS_LOG_ROWS_WRITTEN, 1);
    }

    telemetry_request_t fail = request("anthropic", "claude-sonnet-4-5", 503);
    fail.error_type = "upstream_error";
    metrics_request(&fail, -1);
    metrics_gauge_add(METRICS_ACTIVE_STREAMS, 1);
    return NULL;
}

static void run_threads(void *(*fn)(void *))
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fn, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
}

static void test_threads_sum(void **state)
{
    run_threads(record_requests);
    /* A gauge is a sum of per-thread deltas: this thread ends streams the others started. */
    metrics_gauge_add(METRICS_ACTIVE_STREAMS, -1);

    char *text = render();
    const int half = THREADS * PER_THREAD / 2;
    assert_true(sample(text, "gatehouse_requests_total{provider=\"openai\",model=\"gpt-4o\","
                             "status=\"200\",error_type=\"none\"}") == half);
    assert_true(sample(text, "gatehouse_requests_total{provider=\"openai\",model=\"gpt-4o-mini\","
                             "status=\"200\",error_type=\"none\"}") == half);
    assert_true(sample(text, "gatehouse_requests_total{provider=\"anthropic\","
                             "model=\"claude-sonnet-4-5\",status=\"503\","
                             "error_type=\"upstream_error\"}") == THREADS);
    assert_int_equal(prefix_count(text, "gatehouse_requests_total{", NULL), 3);

    assert_true(sample(text, "gatehouse_input_tokens_total{provider=\"openai\","
                             "model=\"gpt-4o\"}") == half * 10);
    assert_true(sample(text, "gatehouse_output_tokens_total{provider=\"openai\","
                             "model=\"gpt-4o\"}") == half * 5);
    assert_true(sample(text, "gatehouse_cached_input_tokens_total{provider=\"openai\","
                             "model=\"gpt-4o-mini\"}") == half * 2);
    assert_true(sample(text, "gatehouse_cost_usd_total{provider=\"openai\","
                             "model=\"gpt-4o\"}") == half * 0.25);
    /* The Anthropic failures had no price: no cost series for them. */
    assert_int_equal(prefix_count(text, "gatehouse_cost_usd_total{", NULL), 2);

    assert_true(sample(text, "gatehouse_retries_total{provider=\"openai\"}") ==
                THREADS * PER_THREAD / 4);
    assert_true(sample(text, "gatehouse_fallbacks_total{provider=\"openai\"}") ==
                THREADS * PER_THREAD / 10);
    assert_true(sample(text, "gatehouse_retries_total{provider=\"anthropic\"}") == 0);

    assert_true(sample(text, "gatehouse_request_duration_seconds_count{provider=\"openai\"}") ==
                THREADS * PER_THREAD);
    assert_true(sample(text, "gatehouse_request_duration_seconds_sum{provider=\"openai\"}") ==
                THREADS * PER_THREAD * 0.25);
    assert_true(sample(text, "gatehouse_overhead_seconds_count") == THREADS * (PER_THREAD + 1));

    assert_true(sample(text, "gatehouse_active_requests") == THREADS * 2);
    assert_true(sample(text, "gatehouse_active_streams") == THREADS - 1);
    assert_true(sample(text, "gatehouse_log_rows_written_total") == THREADS * PER_THREAD);
    assert_true(sample(text, "gatehouse_log_rows_dropped_total") == 0);
    free(text);
}

/* ---- scrapes while threads record ---------------------------------------------------------- */

static void *record_tool_calls(void *arg)
{
    for (int i = 0; i < PER_THREAD; i++)
        metrics_tool_call("github", "search_issues", i % 3 != 0, 0.02);
    return NULL;
}

static void *scrape_repeatedly(void *arg)
{
    volatile int *done = arg;
    double last = 0;
    while (!__atomic_load_n(done, __ATOMIC_ACQUIRE)) {
        char *text = render();
        double total = 0;
        prefix_count(text, "gatehouse_mcp_tool_call_duration_seconds_count{", &total);
        free(text);
        /* Counters seen by successive scrapes never go back, nor past what was recorded. */
        if (total < last || total > THREADS * PER_THREAD)
            return (void *)1;
        last = total;
    }
    return NULL;
}

static void test_scrape_while_recording(void **state)
{
    int done = 0;
    pthread_t scraper;
    assert_int_equal(pthread_create(&scraper, NULL, scrape_repeatedly, &done), 0);
    run_threads(record_tool_calls);
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    void *bad;
    assert_int_equal(pthread_join(scraper, &bad), 0);
    assert_null(bad);

    char *text = render();
    int calls = THREADS * PER_THREAD;
    int errors = THREADS * ((PER_THREAD + 2) / 3);
    assert_true(sample(text, "gatehouse_mcp_tool_calls_total{mcp_client=\"github\","
                             "tool=\"search_issues\",outcome=\"error\"}") == errors);
    assert_true(sample(text, "gatehouse_mcp_tool_calls_total{mcp_client=\"github\","
                             "tool=\"search_issues\",outcome=\"ok\"}") == calls - errors);
    assert_true(sample(text, "gatehouse_mcp_tool_call_duration_seconds_bucket{"
                             "mcp_client=\"github\",tool=\"search_issues\",le=\"0.01\"}") == 0);
    assert_true(sample(text,
                       "gatehouse_mcp_tool_call_duration_seconds_bucket{"
                       "mcp_client=\"github\",tool=\"search_issues\",le=\"0.025\"}") == calls);
    free(text);
}

/* ---- histograms ---------------------------------------------------------------------------- */

typedef struct cumulative_check {
    double prev; /* last bucket value of the current series */
    double inf;  /* its +Inf bucket */
    int series;  /* series whose +Inf bucket was seen */
    int counts;  /* _count lines that matched their +Inf bucket */
    bool ok;
} cumulative_check_t;

static void cumulative_line(const char *line, size_t len, void *arg)
{
    cumulative_check_t *c = arg;
    if (line[0] == '#')
        return;
    const char *sp = memchr(line, ' ', len);
    double v = strtod(sp, NULL);
    char head[512];
    snprintf(head, sizeof(head), "%.*s", (int)(sp - line), line);

    if (strstr(head, "_bucket{") != NULL) {
        if (v < c->prev)
            c->ok = false;
        c->prev = v;
        if (strstr(head, "le=\"+Inf\"") != NULL) {
            c->inf = v;
            c->prev = 0;
            c->series++;
        }
    } else if (strstr(head, "_seconds_count") != NULL) {
        if (v != c->inf)
            c->ok = false;
        c->counts++;
    }
}

static void test_histogram_buckets(void **state)
{
    const double seen[] = {0.01, 0.005, 0.3, 7, 1000};
    double sum = 0;
    for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
        telemetry_request_t r = request("groq", "llama-3.3-70b-versatile", 200);
        r.latency_s = seen[i];
        r.overhead_s = i == 0 ? 0.000005 : 0.00003;
        metrics_request(&r, 0);
        sum += seen[i];
    }

    char *text = render();
#define BUCKET(le) "gatehouse_request_duration_seconds_bucket{provider=\"groq\",le=\"" le "\"}"
    /* An observation equal to a bound counts in that bound's bucket (le = less or equal). */
    assert_true(sample(text, BUCKET("0.01")) == 2);
    assert_true(sample(text, BUCKET("0.25")) == 2);
    assert_true(sample(text, BUCKET("0.5")) == 3);
    assert_true(sample(text, BUCKET("5")) == 3);
    assert_true(sample(text, BUCKET("10")) == 4);
    assert_true(sample(text, BUCKET("300")) == 4);
    assert_true(sample(text, BUCKET("+Inf")) == 5);
#undef BUCKET
    assert_true(sample(text, "gatehouse_request_duration_seconds_count{provider=\"groq\"}") == 5);
    /* The sum is printed so that it reads back as the very same double. */
    assert_true(sample(text, "gatehouse_request_duration_seconds_sum{provider=\"groq\"}") == sum);

    /* Overhead buckets start at 10 microseconds. */
    assert_true(sample(text, "gatehouse_overhead_seconds_bucket{le=\"1e-05\"}") == 1);
    assert_true(sample(text, "gatehouse_overhead_seconds_bucket{le=\"2.5e-05\"}") == 1);
    assert_true(sample(text, "gatehouse_overhead_seconds_bucket{le=\"5e-05\"}") == 5);
    assert_int_equal(prefix_count(text, "gatehouse_overhead_seconds_bucket{", NULL), 17);

    cumulative_check_t c = {0, 0, 0, 0, true};
    each_line(text, cumulative_line, &c);
    assert_true(c.ok);
    /* request duration, overhead and time to first token: one series each */
    assert_int_equal(c.series, 3);
    assert_int_equal(c.counts, 3);
    free(text);
}

static void test_skips_and_clamps(void **state)
{
    /* Rejected before routing: no provider, nothing answered, no price. */
    telemetry_request_t r = request(NULL, NULL, 400);
    r.error_type = "invalid_request_error";
    r.ttft_s = -1;
    r.latency_s = -0.5; /* a clock stepped back */
    metrics_request(&r, -1);

    char *text = render();
    assert_true(sample(text, "gatehouse_requests_total{provider=\"none\",model=\"none\","
                             "status=\"400\",error_type=\"invalid_request_error\"}") == 1);
    assert_int_equal(prefix_count(text, "gatehouse_time_to_first_token_seconds", NULL), 0);
    assert_int_equal(prefix_count(text, "gatehouse_input_tokens_total", NULL), 0);
    assert_int_equal(prefix_count(text, "gatehouse_cost_usd_total", NULL), 0);
    assert_int_equal(prefix_count(text, "gatehouse_retries_total", NULL), 0);
    assert_true(sample(text, "gatehouse_request_duration_seconds_bucket{provider=\"none\","
                             "le=\"0.01\"}") == 1);
    assert_true(sample(text, "gatehouse_request_duration_seconds_sum{provider=\"none\"}") == 0);
    free(text);
}

static void test_exchanges(void **state)
{
    const long statuses[] = {200, 201, 429, 503, 0};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        telemetry_exchange_t x = {0};
        x.kind = "upstream";
        x.target = "openai";
        x.status = statuses[i];
        x.duration_s = 0.5;
        metrics_exchange(&x);
    }
    telemetry_exchange_t mcp = {0};
    mcp.kind = "mcp";
    mcp.target = "github";
    mcp.status = 200;
    mcp.duration_s = 0.1;
    metrics_exchange(&mcp);

    char *text = render();
#define UP(cls)                                                                                    \
    "gatehouse_upstream_duration_seconds_count{provider=\"openai\",status_class=\"" cls "\"}"
    assert_true(sample(text, UP("2xx")) == 2);
    assert_true(sample(text, UP("4xx")) == 1);
    assert_true(sample(text, UP("5xx")) == 1);
    assert_true(sample(text, UP("no_response")) == 1);
#undef UP
    assert_int_equal(prefix_count(text, "gatehouse_upstream_duration_seconds_count{", NULL), 4);
    free(text);
}

/* ---- labels -------------------------------------------------------------------------------- */

static void test_label_escaping(void **state)
{
    metrics_tool_call("srv\"1", "path\\to\nx", true, 0.5);

    char *text = render();
    assert_true(sample(text, "gatehouse_mcp_tool_calls_total{mcp_client=\"srv\\\"1\","
                             "tool=\"path\\\\to\\nx\",outcome=\"ok\"}") == 1);
    /* A raw newline inside a value would have split the sample line in two. */
    assert_null(strstr(text, "path\\\\to\nx"));
    free(text);
}

static void test_label_cut_and_none(void **state)
{
    /* "a" and 100 two-byte characters: the cut at 128 bytes would split a character, so the
     * value keeps "a" and 63 of them (127 bytes). */
    char model[256] = "a";
    for (int i = 0; i < 100; i++)
        strcat(model, "\xc3\xa9");
    char want[256] = "a";
    for (int i = 0; i < 63; i++)
        strcat(want, "\xc3\xa9");

    telemetry_request_t r = request("openai", model, 200);
    r.error_type = "";
    metrics_request(&r, 1.5);

    char series[512];
    snprintf(series, sizeof(series), "gatehouse_cost_usd_total{provider=\"openai\",model=\"%s\"}",
             want);
    char *text = render();
    assert_true(sample(text, series) == 1.5);
    snprintf(series, sizeof(series),
             "gatehouse_requests_total{provider=\"openai\",model=\"%s\",status=\"200\","
             "error_type=\"none\"}",
             want);
    assert_true(sample(text, series) == 1);
    free(text);
}

static void test_overflow_folds_into_other(void **state)
{
    char outcome[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 10; i++) {
        snprintf(outcome, sizeof(outcome), "o%d", i);
        metrics_code_mode(outcome, 0.1);
    }
    /* A label set seen before the bound keeps its own series. */
    metrics_code_mode("o5", 0.1);

    char *text = render();
    double total = 0;
    assert_int_equal(prefix_count(text, "gatehouse_code_mode_executions_total{", &total),
                     METRICS_MAX_SERIES + 1);
    assert_true(total == METRICS_MAX_SERIES + 11);
    assert_true(sample(text, "gatehouse_code_mode_executions_total{outcome=\"other\"}") == 10);
    assert_true(sample(text, "gatehouse_code_mode_executions_total{outcome=\"o5\"}") == 2);
    snprintf(outcome, sizeof(outcome), "{outcome=\"o%d\"}", METRICS_MAX_SERIES - 1);
    char series[96];
    snprintf(series, sizeof(series), "gatehouse_code_mode_executions_total%s", outcome);
    assert_int_equal(sample_count(text, series), 1);
    snprintf(series, sizeof(series), "gatehouse_code_mode_executions_total{outcome=\"o%d\"}",
             METRICS_MAX_SERIES);
    assert_int_equal(sample_count(text, series), 0);
    assert_true(sample(text, "gatehouse_code_mode_execution_duration_seconds_count") ==
                METRICS_MAX_SERIES + 11);
    free(text);
}

/* ---- the empty exposition, process metrics, reset ------------------------------------------ */

static void test_empty_families_and_process(void **state)
{
    static const char *const families[] = {
        "gatehouse_requests_total counter",
        "gatehouse_request_duration_seconds histogram",
        "gatehouse_upstream_duration_seconds histogram",
        "gatehouse_overhead_seconds histogram",
        "gatehouse_time_to_first_token_seconds histogram",
        "gatehouse_input_tokens_total counter",
        "gatehouse_output_tokens_total counter",
        "gatehouse_cached_input_tokens_total counter",
        "gatehouse_cost_usd_total counter",
        "gatehouse_retries_total counter",
        "gatehouse_fallbacks_total counter",
        "gatehouse_mcp_tool_calls_total counter",
        "gatehouse_mcp_tool_call_duration_seconds histogram",
        "gatehouse_code_mode_executions_total counter",
        "gatehouse_code_mode_execution_duration_seconds histogram",
        "gatehouse_active_requests gauge",
        "gatehouse_active_streams gauge",
        "gatehouse_log_rows_written_total counter",
        "gatehouse_log_rows_dropped_total counter",
        "gatehouse_audit_records_written_total counter",
        "gatehouse_audit_records_dropped_total counter",
        "gatehouse_build_info gauge",
        "process_start_time_seconds gauge",
        "process_resident_memory_bytes gauge",
    };

    char *text = render();
    char line[128];
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(line, sizeof(line), "# TYPE %s", families[i]);
        assert_true(has_line(text, line));
        snprintf(line, sizeof(line), "# HELP %.*s ", (int)strcspn(families[i], " "), families[i]);
        assert_non_null(strstr(text, line));
    }
    assert_int_equal(prefix_count(text, "gatehouse_mcp_tool_calls_total{", NULL), 0);
    assert_int_equal(prefix_count(text, "gatehouse_code_mode_execution_duration_seconds_", NULL),
                     0);
    assert_true(sample(text, "gatehouse_audit_records_dropped_total") == 0);
    assert_true(has_line(text, "gatehouse_build_info{version=\"" GATEHOUSE_VERSION "\"} 1"));

    /* This test process started before now, and after the year 2020. */
    double start = sample(text, "process_start_time_seconds");
    assert_true(start > 1577836800.0);
    assert_true(start <= (double)time(NULL) + 1);
    assert_true(sample(text, "process_resident_memory_bytes") > 0);
    free(text);
}

static void test_reset_starts_from_zero(void **state)
{
    metrics_counter_add(METRICS_AUDIT_RECORDS_WRITTEN, 3);
    metrics_counter_add(METRICS_AUDIT_RECORDS_WRITTEN, -2); /* ignored: counters only grow */
    char *text = render();
    assert_true(sample(text, "gatehouse_audit_records_written_total") == 3);
    free(text);

    metrics_reset_for_tests();
    metrics_counter_add(METRICS_AUDIT_RECORDS_WRITTEN, 1);
    text = render();
    assert_true(sample(text, "gatehouse_audit_records_written_total") == 1);
    free(text);
}

/* ---- promtool ------------------------------------------------------------------------------ */

static void record_everything(void)
{
    telemetry_request_t r = request("openai", "gpt-4o \"quoted\"\nline\\", 200);
    r.tokens_in = 100;
    r.tokens_out = 20;
    metrics_request(&r, 0.001);
    telemetry_request_t fail = request("anthropic", "claude-haiku-4-5", 429);
    fail.error_type = "rate_limit_error";
    fail.retries = 2;
    fail.fallback_index = 1;
    metrics_request(&fail, -1);

    telemetry_exchange_t x = {0};
    x.kind = "upstream";
    x.target = "openai";
    x.status = 200;
    x.duration_s = 0.2;
    metrics_exchange(&x);

    metrics_tool_call("fs", "read_file", false, 0.003);
    metrics_code_mode("timeout", 30);
    metrics_gauge_add(METRICS_ACTIVE_REQUESTS, 1);
    metrics_counter_add(METRICS_LOG_ROWS_DROPPED, 4);
}

static void test_promtool_accepts(void **state)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not found (Debian package prometheus): skipping the check\n");
        skip();
    }

    record_everything();
    char *text = render();
    char path[] = "/tmp/gatehouse-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    free(text);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char complaints[4096];
    size_t n = fread(complaints, 1, sizeof(complaints) - 1, p);
    complaints[n] = '\0';
    int status = pclose(p);
    unlink(path);

    if (status != 0 || n != 0)
        fail_msg("promtool check metrics: status %d, said: %s", status, complaints);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_threads_sum, setup),
        cmocka_unit_test_setup(test_scrape_while_recording, setup),
        cmocka_unit_test_setup(test_histogram_buckets, setup),
        cmocka_unit_test_setup(test_skips_and_clamps, setup),
        cmocka_unit_test_setup(test_exchanges, setup),
        cmocka_unit_test_setup(test_label_escaping, setup),
        cmocka_unit_test_setup(test_label_cut_and_none, setup),
        cmocka_unit_test_setup(test_overflow_folds_into_other, setup),
        cmocka_unit_test_setup(test_empty_families_and_process, setup),
        cmocka_unit_test_setup(test_reset_starts_from_zero, setup),
        cmocka_unit_test_setup(test_promtool_accepts, setup),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
