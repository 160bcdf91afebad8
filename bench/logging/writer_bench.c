/*
 * writer_bench.c - what the request log's and the audit trail's writers cost per row, without
 * HTTP around them (bench/logging/README.md, "The writers alone").
 *
 * The HTTP benchmark (run.sh) measures the whole gateway on a busy machine, where a run varies
 * by a factor of two; this program feeds the same records straight to reqlog_submit and
 * audit_submit at a fixed rate from one thread, like a gateway worker at that load, and reads
 * the CPU time afterwards: the submitting thread's own (what a worker pays per request), the
 * rest of the process (the writer threads), and the context switches. Run it pinned to one core
 * (taskset -c 1) to see what the writers take from a worker that shares their core.
 *
 *   usage: writer-bench [--rows N] [--rate R] [--body small|medium] [--logs] [--audit]
 *                       [--random-ids] DIR
 *
 * DIR is the data directory (created if missing; a database or trail already in it grows). The
 * bodies are those of run.sh's scenarios: the small chat with the mock's 64-character answer,
 * or a 4 KiB prompt with a 4 KiB answer. Prints one line of JSON.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "config/config.h"
#include "telemetry/audit.h"
#include "telemetry/metrics.h"
#include "telemetry/reqlog.h"
#include "util/alloc.h"
#include "util/buf.h"

typedef struct options {
    long rows;
    double rate; /* rows a second */
    bool medium;
    bool logs;
    bool audit;
    bool random_ids;
    const char *dir;
} options_t;

/* The bodies and headers of one scenario, as the gateway would hand them over. */
typedef struct scenario {
    buf_t client_body;
    buf_t upstream_body;
    buf_t answer;
} scenario_t;

static const char *const req_headers[] = {
    "Content-Type: application/json", "Authorization: Bearer sk-bench-logging-not-a-secret", NULL};
static const char *const resp_headers[] = {"content-type: application/json",
                                           "date: Thu, 03 Dec 2026 20:26:26 GMT",
                                           "content-length: 332", NULL};

static void scenario_init(scenario_t *s, bool medium)
{
    const char *fox = "The quick brown fox jumps over the lazy dog while the gateway records. ";
    buf_t prompt = BUF_INIT;
    buf_t text = BUF_INIT;
    if (medium) {
        for (int i = 0; i < 4096; i++)
            buf_appendc(&prompt, 'A');
        while (text.len < 4096)
            buf_appends(&text, fox);
        text.len = 4096;
    } else {
        buf_appends(&prompt, "Say hello to the benchmark");
        buf_append(&text, fox, 64);
    }

    buf_init(&s->client_body);
    buf_init(&s->upstream_body);
    buf_init(&s->answer);
    buf_appendf(
        &s->client_body,
        "{\"model\":\"mock/gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
        buf_cstr(&prompt));
    buf_appendf(&s->upstream_body,
                "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],"
                "\"stream\":false}",
                buf_cstr(&prompt));
    buf_appendf(
        &s->answer,
        "{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion\",\"created\":1796329586,"
        "\"model\":\"mock-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
        "\"assistant\",\"content\":\"%.*s\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
        "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":17,\"total_tokens\":29}}",
        (int)text.len, text.data);
    buf_free(&prompt);
    buf_free(&text);
}

static void scenario_free(scenario_t *s)
{
    buf_free(&s->client_body);
    buf_free(&s->upstream_body);
    buf_free(&s->answer);
}

static double now_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(int who, long *switches)
{
    struct rusage ru;
    getrusage(who, &ru);
    if (switches != NULL)
        *switches = ru.ru_nvcsw + ru.ru_nivcsw;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Ids as the gateway makes them (gateway/worker.c): 12 hex digits of the wall clock in ms, then
 * 12 random ones, so that they sort by time. With --random-ids they are all random, like ids a
 * client sends in x-request-id: the request log's id index then takes a random page per row. */
static void make_id(char out[32], unsigned long long *state, bool random_ids)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    unsigned long long head =
        random_ids ? *state * 2654435761ULL : (unsigned long long)(now_s(CLOCK_REALTIME) * 1000.0);
    snprintf(out, 32, "req_%012llx%012llx", head & 0xffffffffffffULL, *state >> 16);
}

static void submit_one(const options_t *o, const scenario_t *s, const char *id, double wall)
{
    if (o->logs) {
        telemetry_request_t r = {
            .id = id,
            .started_unix = wall,
            .latency_s = 0.0021,
            .ttft_s = 0.0021,
            .upstream_s = 0.002,
            .overhead_s = 0.0001,
            .dialect = "openai",
            .method = "POST",
            .path = "/v1/chat/completions",
            .provider = "mock",
            .model = "gpt-4o-mini",
            .key_name = "bench",
            .status = 200,
            .tokens_in = 12,
            .tokens_out = 17,
            .log_content = true,
            .request_body = s->client_body.data,
            .request_len = s->client_body.len,
            .response_body = s->answer.data,
            .response_len = s->answer.len,
        };
        reqlog_submit(&r, 0.0000123);
    }
    if (o->audit) {
        telemetry_exchange_t x = {
            .request_id = id,
            .kind = "upstream",
            .target = "mock",
            .started_unix = wall,
            .method = "POST",
            .url = "http://127.0.0.1:18811/p/size=64/v1/chat/completions",
            .req_headers = req_headers,
            .req_body = s->upstream_body.data,
            .req_len = s->upstream_body.len,
            .status = 200,
            .resp_headers = resp_headers,
            .resp_body = s->answer.data,
            .resp_len = s->answer.len,
            .first_byte_s = 0.00224,
            .duration_s = 0.002263,
            .record_content = true,
            .audit = true,
        };
        audit_submit(&x);
    }
}

/* Sleeps until row i is due at the rate, in steps of 16 rows (as requests arrive in bursts on
 * an event loop). */
static void pace(const options_t *o, long i, double t0)
{
    if (i % 16 != 0)
        return;
    double due = t0 + (double)i / o->rate;
    double left = due - now_s(CLOCK_MONOTONIC);
    if (left <= 0)
        return;
    struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
    nanosleep(&ts, NULL);
}

/* A field of /proc/self/io: bytes the process read or wrote through system calls. */
static long long proc_io(const char *field)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long long v = 0;
    size_t n = strlen(field);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atoll(line + n + 1);
    }
    if (f != NULL)
        fclose(f);
    return v;
}

/* The value of a counter in the metrics exposition. */
static long counter(const char *name)
{
    buf_t out = BUF_INIT;
    metrics_render(&out);
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(buf_cstr(&out), key);
    long v = p != NULL ? strtol(p + strlen(key), NULL, 10) : 0;
    buf_free(&out);
    return v;
}

static int parse_args(int argc, char **argv, options_t *o)
{
    *o = (options_t){.rows = 100000, .rate = 10000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--rows") == 0 && i + 1 < argc)
            o->rows = atol(argv[++i]);
        else if (strcmp(a, "--rate") == 0 && i + 1 < argc)
            o->rate = atof(argv[++i]);
        else if (strcmp(a, "--body") == 0 && i + 1 < argc)
            o->medium = strcmp(argv[++i], "medium") == 0;
        else if (strcmp(a, "--logs") == 0)
            o->logs = true;
        else if (strcmp(a, "--audit") == 0)
            o->audit = true;
        else if (strcmp(a, "--random-ids") == 0)
            o->random_ids = true;
        else if (a[0] != '-' && o->dir == NULL)
            o->dir = a;
        else
            return -1;
    }
    return o->dir != NULL && o->rows > 0 && o->rate > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: writer-bench [--rows N] [--rate R] [--body small|medium] "
                        "[--logs] [--audit] [--random-ids] DIR\n");
        return 2;
    }
    alloc_init();
    if (mkdir(o.dir, 0700) != 0 && errno != EEXIST) {
        perror(o.dir);
        return 1;
    }

    config_t cfg = {.logs_enabled = o.logs,
                    .logs_content = true,
                    .logs_retention_days = 30,
                    .logs_content_retention_days = 7,
                    .logs_queue_size = 10000,
                    .audit_enabled = o.audit,
                    .audit_content = true};
    if (reqlog_start(&cfg, o.dir) != 0 || audit_start(&cfg, o.dir) != 0)
        return 1;

    scenario_t s;
    scenario_init(&s, o.medium);
    unsigned long long rng = 0x9E3779B97F4A7C15ULL ^ (unsigned long long)time(NULL);
    long sw0, own0, own1, sw1;
    long long wchar0 = proc_io("wchar");
    long long rchar0 = proc_io("rchar");
    double all0 = cpu_s(RUSAGE_SELF, &sw0);
    double sub0 = cpu_s(RUSAGE_THREAD, &own0);
    double t0 = now_s(CLOCK_MONOTONIC);
    for (long i = 0; i < o.rows; i++) {
        char id[32];
        make_id(id, &rng, o.random_ids);
        pace(&o, i, t0);
        submit_one(&o, &s, id, now_s(CLOCK_REALTIME));
    }
    double sub1 = cpu_s(RUSAGE_THREAD, &own1);
    double wall = now_s(CLOCK_MONOTONIC) - t0;
    reqlog_stop();
    audit_stop();
    double all1 = cpu_s(RUSAGE_SELF, &sw1);
    double wrote_kb = (double)(proc_io("wchar") - wchar0) / 1024.0 / (double)o.rows;
    double read_kb = (double)(proc_io("rchar") - rchar0) / 1024.0 / (double)o.rows;

    double submit_us = (sub1 - sub0) * 1e6 / (double)o.rows;
    double writers_us = ((all1 - all0) - (sub1 - sub0)) * 1e6 / (double)o.rows;
    printf("{\"rows\":%ld,\"rate\":%.0f,\"achieved\":%.0f,\"body\":\"%s\",\"logs\":%s,"
           "\"audit\":%s,\"submit_us\":%.2f,\"writers_us\":%.2f,\"switches_per_row\":%.3f,"
           "\"written_kib_per_row\":%.2f,\"read_kib_per_row\":%.2f,"
           "\"log_written\":%ld,\"log_dropped\":%ld,\"audit_written\":%ld,\"audit_dropped\":%ld}\n",
           o.rows, o.rate, (double)o.rows / wall, o.medium ? "medium" : "small",
           o.logs ? "true" : "false", o.audit ? "true" : "false", submit_us, writers_us,
           (double)((sw1 - sw0) - (own1 - own0)) / (double)o.rows, wrote_kb, read_kb,
           counter("gatehouse_log_rows_written_total"), counter("gatehouse_log_rows_dropped_total"),
           counter("gatehouse_audit_records_written_total"),
           counter("gatehouse_audit_records_dropped_total"));
    scenario_free(&s);
    return 0;
}
