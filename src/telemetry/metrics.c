/*
 * metrics.c - Prometheus metrics (see metrics.h): per-thread shards, summed at scrape.
 *
 * Shards. A thread's first record allocates its shard and pushes it on a global list under
 * registry_lock; from then on the thread finds it through a thread-local pointer and never
 * locks again. Shards outlive their threads (a counter must not go back when a thread exits)
 * and are freed only by metrics_reset_for_tests.
 *
 * Series. A shard keeps, per metric family, the label sets it has seen. Each label set is a
 * series_t, found by the owner through a small open-addressing index keyed by the label tuple,
 * and also pushed on a singly linked list that scrapes walk. The index is the owner's alone
 * (it moves when it grows); the list only ever gains a new head, published with a release
 * store after the series is fully built, so a scrape that loads the head with acquire sees
 * complete series and immutable label strings.
 *
 * Values. Only the owner thread writes a shard's numbers, so an increment is a relaxed load
 * and a relaxed store (no locked instruction on the hot path); scrapes read them with relaxed
 * loads. That keeps the scrape free of data races while costing the writer nothing. A scrape
 * may see a histogram's buckets and its sum a few observations apart; the _count it prints is
 * the sum of the buckets it read, so +Inf and _count always agree.
 *
 * Bound. Past METRICS_MAX_SERIES label sets in one family of one shard, every new label set
 * is folded into one series whose labels all read "other" (see docs/metrics.md).
 *
 * Scrape. metrics_render holds registry_lock (so no shard is added meanwhile), merges the
 * shards' series of each family in a scrape-local table, sorts them by label values so the
 * output is stable, and prints them.
 */
#include "telemetry/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/log.h"

#ifndef GATEHOUSE_VERSION
#define GATEHOUSE_VERSION "unknown"
#endif

#define MAX_LABELS 4
#define MAX_BUCKETS 16
#define FOLD_VALUE "other"
#define NONE_VALUE "none"

/* ---- families ------------------------------------------------------------------------------ */

typedef enum family_id {
    FAM_REQUESTS = 0,
    FAM_REQUEST_DURATION,
    FAM_UPSTREAM_DURATION,
    FAM_OVERHEAD,
    FAM_TTFT,
    FAM_INPUT_TOKENS,
    FAM_OUTPUT_TOKENS,
    FAM_CACHED_TOKENS,
    FAM_COST,
    FAM_RETRIES,
    FAM_FALLBACKS,
    FAM_TOOL_CALLS,
    FAM_TOOL_DURATION,
    FAM_CODE_MODE,
    FAM_CODE_MODE_DURATION,
    FAM_COUNT,
} family_id_t;

typedef struct family {
    const char *name; /* histograms: the base name, without _bucket etc. */
    const char *help;
    bool histogram; /* else a counter */
    int nlabels;
    const char *labels[MAX_LABELS]; /* label names, in tuple order */
    const double *bounds;           /* histogram upper bounds, ascending; +Inf is implied */
    int nbounds;
} family_t;

/* Whole requests: LLM answers take from a fraction of a second to minutes. */
static const double request_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,  2.5,
                                        5,    10,    20,   30,  60,   120, 300};
/* Gatehouse's own share of a request: it should stay in the tens of microseconds. */
static const double overhead_bounds[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
                                         0.001,   0.0025,   0.005,   0.01,   0.025,   0.05,
                                         0.1,     0.25,     0.5,     1};
static const double ttft_bounds[] = {0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
/* Tool calls and Code Mode runs: local stdio servers answer in milliseconds, remote ones and
 * scripts that call several tools take seconds. */
static const double tool_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,      2.5,   5,    10,    30,   60};

#define NBOUNDS(a) (sizeof(a) / sizeof(a[0]))
#define BOUNDS(a) a, (int)NBOUNDS(a)

/* Scrapes merge histograms into fixed arrays of MAX_BUCKETS + 1 counts. */
_Static_assert(NBOUNDS(request_bounds) <= MAX_BUCKETS, "request_bounds too long");
_Static_assert(NBOUNDS(overhead_bounds) <= MAX_BUCKETS, "overhead_bounds too long");
_Static_assert(NBOUNDS(ttft_bounds) <= MAX_BUCKETS, "ttft_bounds too long");
_Static_assert(NBOUNDS(tool_bounds) <= MAX_BUCKETS, "tool_bounds too long");

static const family_t families[FAM_COUNT] = {
    [FAM_REQUESTS] = {"gatehouse_requests_total",
                      "Client requests finished, by provider, model, HTTP status sent and error "
                      "type.",
                      false,
                      4,
                      {"provider", "model", "status", "error_type"},
                      NULL,
                      0},
    [FAM_REQUEST_DURATION] = {"gatehouse_request_duration_seconds",
                              "Client request latency, arrival to last byte sent, by provider.",
                              true,
                              1,
                              {"provider"},
                              BOUNDS(request_bounds)},
    [FAM_UPSTREAM_DURATION] = {"gatehouse_upstream_duration_seconds",
                               "Upstream exchange latency (one attempt), by provider and status "
                               "class.",
                               true,
                               2,
                               {"provider", "status_class"},
                               BOUNDS(request_bounds)},
    [FAM_OVERHEAD] = {"gatehouse_overhead_seconds",
                      "Time a request spent in gatehouse itself: latency minus upstream time, "
                      "backoff and queueing.",
                      true,
                      0,
                      {NULL},
                      BOUNDS(overhead_bounds)},
    [FAM_TTFT] = {"gatehouse_time_to_first_token_seconds",
                  "Arrival to first token sent (streams) or to the answer (JSON), by provider.",
                  true,
                  1,
                  {"provider"},
                  BOUNDS(ttft_bounds)},
    [FAM_INPUT_TOKENS] = {"gatehouse_input_tokens_total",
                          "Prompt tokens, cached ones included, by provider and model.",
                          false,
                          2,
                          {"provider", "model"},
                          NULL,
                          0},
    [FAM_OUTPUT_TOKENS] = {"gatehouse_output_tokens_total",
                           "Completion tokens, by provider and model.",
                           false,
                           2,
                           {"provider", "model"},
                           NULL,
                           0},
    [FAM_CACHED_TOKENS] = {"gatehouse_cached_input_tokens_total",
                           "Prompt tokens read from the provider's cache, by provider and model.",
                           false,
                           2,
                           {"provider", "model"},
                           NULL,
                           0},
    [FAM_COST] = {"gatehouse_cost_usd_total",
                  "Cost of requests with a known price, in US dollars, by provider and model.",
                  false,
                  2,
                  {"provider", "model"},
                  NULL,
                  0},
    [FAM_RETRIES] = {"gatehouse_retries_total",
                     "Retries made before the final answer, by provider that answered last.",
                     false,
                     1,
                     {"provider"},
                     NULL,
                     0},
    [FAM_FALLBACKS] = {"gatehouse_fallbacks_total",
                       "Requests answered (or failed last) by a fallback model, by its provider.",
                       false,
                       1,
                       {"provider"},
                       NULL,
                       0},
    [FAM_TOOL_CALLS] = {"gatehouse_mcp_tool_calls_total",
                        "MCP tool calls, by MCP client, tool and outcome.",
                        false,
                        3,
                        {"mcp_client", "tool", "outcome"},
                        NULL,
                        0},
    [FAM_TOOL_DURATION] = {"gatehouse_mcp_tool_call_duration_seconds",
                           "MCP tool call latency, by MCP client and tool.",
                           true,
                           2,
                           {"mcp_client", "tool"},
                           BOUNDS(tool_bounds)},
    [FAM_CODE_MODE] = {"gatehouse_code_mode_executions_total",
                       "Code Mode script executions, by outcome.",
                       false,
                       1,
                       {"outcome"},
                       NULL,
                       0},
    [FAM_CODE_MODE_DURATION] = {"gatehouse_code_mode_execution_duration_seconds",
                                "Code Mode script execution latency.",
                                true,
                                0,
                                {NULL},
                                BOUNDS(tool_bounds)},
};

typedef struct plain_desc {
    const char *name;
    const char *help;
} plain_desc_t;

static const plain_desc_t gauge_descs[METRICS_GAUGE_COUNT] = {
    [METRICS_ACTIVE_REQUESTS] = {"gatehouse_active_requests", "Client requests in progress."},
    [METRICS_ACTIVE_STREAMS] = {"gatehouse_active_streams",
                                "Streamed responses in progress whose first chunk was sent."},
};

static const plain_desc_t counter_descs[METRICS_COUNTER_COUNT] = {
    [METRICS_LOG_ROWS_WRITTEN] = {"gatehouse_log_rows_written_total",
                                  "Request log rows committed."},
    [METRICS_LOG_ROWS_DROPPED] = {"gatehouse_log_rows_dropped_total",
                                  "Request log rows lost (queue full or write error)."},
    [METRICS_AUDIT_RECORDS_WRITTEN] = {"gatehouse_audit_records_written_total",
                                       "Audit records committed."},
    [METRICS_AUDIT_RECORDS_DROPPED] = {"gatehouse_audit_records_dropped_total",
                                       "Audit records lost (queue full or write error)."},
};

/* ---- shards -------------------------------------------------------------------------------- */

typedef struct series {
    struct series *next;      /* older series of the same family and shard; immutable once
                               * the series is published */
    uint64_t hash;            /* of the label tuple */
    char *labels[MAX_LABELS]; /* owned, normalised values; NULL past the family's nlabels */
    double value;             /* counter total, or histogram sum; owner writes, relaxed */
    uint64_t buckets[];       /* histograms: observations per bucket, not cumulative; the last
                               * one counts observations above the highest bound */
} series_t;

typedef struct shard_family {
    series_t *head;   /* newest series; release store by the owner, acquire load by scrapes */
    series_t **slots; /* open-addressing index over the series; owner only */
    size_t cap;       /* slots allocated, a power of two (0 before the first series) */
    size_t used;      /* series in this family, the folded "other" one included */
} shard_family_t;

typedef struct shard {
    struct shard *next; /* registry list; guarded by registry_lock */
    shard_family_t fams[FAM_COUNT];
    long gauges[METRICS_GAUGE_COUNT];     /* this thread's net delta; owner writes, relaxed */
    long counters[METRICS_COUNTER_COUNT]; /* owner writes, relaxed */
} shard_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static shard_t *registry;
/* Bumped by metrics_reset_for_tests so that threads drop their freed shard. */
static unsigned registry_gen;

static _Thread_local shard_t *tls_shard;
static _Thread_local unsigned tls_gen;

static shard_t *shard_get(void)
{
    unsigned gen = __atomic_load_n(&registry_gen, __ATOMIC_ACQUIRE);
    if (tls_shard != NULL && tls_gen == gen)
        return tls_shard;

    shard_t *s = xcalloc(1, sizeof(*s));

    pthread_mutex_lock(&registry_lock);
    s->next = registry;
    registry = s;
    tls_gen = registry_gen;
    pthread_mutex_unlock(&registry_lock);

    tls_shard = s;
    return s;
}

/* Owner-only increments: a relaxed load and store, readable by scrapes without a race. */
static void add_f64(double *p, double d)
{
    double cur;
    __atomic_load(p, &cur, __ATOMIC_RELAXED);
    cur += d;
    __atomic_store(p, &cur, __ATOMIC_RELAXED);
}

static void add_u64(uint64_t *p, uint64_t d)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
}

static void add_long(long *p, long d)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + d, __ATOMIC_RELAXED);
}

/* ---- label sets ---------------------------------------------------------------------------- */

typedef struct labelset {
    const char *v[MAX_LABELS];                       /* normalised values */
    char cut[MAX_LABELS][METRICS_MAX_LABEL_LEN + 1]; /* storage for values that were cut */
} labelset_t;

/* NULL and "" become "none" (an empty label value means "no label" to Prometheus); long values
 * are cut before the character that would cross METRICS_MAX_LABEL_LEN, keeping valid UTF-8. */
static const char *label_norm(const char *v, char *cut)
{
    if (v == NULL || v[0] == '\0')
        return NONE_VALUE;

    size_t n = strnlen(v, METRICS_MAX_LABEL_LEN + 1);
    if (n <= METRICS_MAX_LABEL_LEN)
        return v;

    n = METRICS_MAX_LABEL_LEN;
    while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80)
        n--;
    memcpy(cut, v, n);
    cut[n] = '\0';
    return cut;
}

static void labelset_fill(labelset_t *ls, int n, const char *const *values)
{
    for (int i = 0; i < MAX_LABELS; i++)
        ls->v[i] = i < n ? label_norm(values[i], ls->cut[i]) : NULL;
}

static void labelset_fold(labelset_t *ls, int n)
{
    for (int i = 0; i < n; i++)
        ls->v[i] = FOLD_VALUE;
}

/* FNV-1a over the values, each followed by 0xff (a byte UTF-8 never uses). */
static uint64_t labels_hash(const char *const *v, int n)
{
    uint64_t h = 14695981039346656037ULL;
    for (int i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static bool labels_equal(const char *const *a, const char *const *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(a[i], b[i]) != 0)
            return false;
    }
    return true;
}

/* ---- the per-shard index ------------------------------------------------------------------- */

static series_t *index_find(const shard_family_t *sf, int n, const char *const *v, uint64_t h)
{
    if (sf->cap == 0)
        return NULL;

    size_t mask = sf->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        series_t *s = sf->slots[i];
        if (s == NULL)
            return NULL;
        if (s->hash == h && labels_equal((const char *const *)s->labels, v, n))
            return s;
    }
}

static void index_put(series_t **slots, size_t cap, series_t *s)
{
    size_t mask = cap - 1;
    size_t i = s->hash & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = s;
}

/* Keeps the index at most half full, so probes stay short and always end on an empty slot. */
static void index_grow(shard_family_t *sf)
{
    if ((sf->used + 1) * 2 <= sf->cap)
        return;

    size_t cap = sf->cap ? sf->cap * 2 : 16;
    series_t **slots = xcalloc(cap, sizeof(*slots));
    for (size_t i = 0; i < sf->cap; i++) {
        if (sf->slots[i] != NULL)
            index_put(slots, cap, sf->slots[i]);
    }
    free(sf->slots);
    sf->slots = slots;
    sf->cap = cap;
}

static series_t *series_new(const family_t *f, const char *const *v, uint64_t h)
{
    size_t nb = f->histogram ? (size_t)f->nbounds + 1 : 0;
    series_t *s = xcalloc(1, sizeof(*s) + nb * sizeof(uint64_t));
    s->hash = h;
    for (int i = 0; i < f->nlabels; i++)
        s->labels[i] = xstrdup(v[i]);
    return s;
}

static series_t *series_add(shard_family_t *sf, const family_t *f, const char *const *v, uint64_t h)
{
    series_t *s = series_new(f, v, h);

    index_grow(sf);
    index_put(sf->slots, sf->cap, s);
    sf->used++;

    /* Publication: a scrape that sees the new head sees the whole series. */
    s->next = sf->head;
    __atomic_store_n(&sf->head, s, __ATOMIC_RELEASE);
    return s;
}

/* The series for these label values in the calling thread's shard, created on first use. */
static series_t *series_get(family_id_t id, const char *const *values)
{
    const family_t *f = &families[id];
    shard_family_t *sf = &shard_get()->fams[id];

    labelset_t ls;
    labelset_fill(&ls, f->nlabels, values);
    uint64_t h = labels_hash(ls.v, f->nlabels);
    series_t *s = index_find(sf, f->nlabels, ls.v, h);
    if (s != NULL)
        return s;

    if (sf->used >= METRICS_MAX_SERIES) {
        labelset_fold(&ls, f->nlabels);
        h = labels_hash(ls.v, f->nlabels);
        s = index_find(sf, f->nlabels, ls.v, h);
        if (s != NULL)
            return s;
    }
    return series_add(sf, f, ls.v, h);
}

/* ---- recording ----------------------------------------------------------------------------- */

static void counter_add(family_id_t id, const char *const *values, double delta)
{
    if (isnan(delta))
        return;
    add_f64(&series_get(id, values)->value, delta);
}

/* Negative durations (a clock stepped back) count as zero, so _sum never decreases. */
static void histogram_observe(family_id_t id, const char *const *values, double v)
{
    if (isnan(v))
        return;
    if (v < 0)
        v = 0;

    const family_t *f = &families[id];
    series_t *s = series_get(id, values);
    int b = 0;
    while (b < f->nbounds && v > f->bounds[b])
        b++;
    add_u64(&s->buckets[b], 1);
    add_f64(&s->value, v);
}

static void request_provider_metrics(const telemetry_request_t *r, double cost_usd)
{
    const char *pm[] = {r->provider, r->model};
    counter_add(FAM_INPUT_TOKENS, pm, r->tokens_in > 0 ? (double)r->tokens_in : 0);
    counter_add(FAM_OUTPUT_TOKENS, pm, r->tokens_out > 0 ? (double)r->tokens_out : 0);
    counter_add(FAM_CACHED_TOKENS, pm, r->tokens_cached > 0 ? (double)r->tokens_cached : 0);
    if (cost_usd >= 0)
        counter_add(FAM_COST, pm, cost_usd);

    /* Added even when zero, so the series exist from the first request and rate() over them
     * starts at once instead of at the first retry. */
    const char *p[] = {r->provider};
    counter_add(FAM_RETRIES, p, r->retries > 0 ? r->retries : 0);
    counter_add(FAM_FALLBACKS, p, r->fallback_index > 0 ? 1 : 0);
}

void metrics_request(const telemetry_request_t *r, double cost_usd)
{
    char status[16];
    snprintf(status, sizeof(status), "%d", r->status);
    const char *req[] = {r->provider, r->model, status, r->error_type};
    counter_add(FAM_REQUESTS, req, 1);

    const char *p[] = {r->provider};
    histogram_observe(FAM_REQUEST_DURATION, p, r->latency_s);
    histogram_observe(FAM_OVERHEAD, NULL, r->overhead_s);
    if (r->ttft_s >= 0)
        histogram_observe(FAM_TTFT, p, r->ttft_s);

    /* Tokens, cost, retries and fallbacks belong to requests that reached a provider. */
    if (r->provider != NULL)
        request_provider_metrics(r, cost_usd);
}

static const char *status_class(long status)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    if (status < 100 || status > 599)
        return "no_response";
    return classes[status / 100 - 1];
}

void metrics_exchange(const telemetry_exchange_t *x)
{
    if (x->kind != NULL && strcmp(x->kind, "mcp") == 0)
        return;

    const char *v[] = {x->target, status_class(x->status)};
    histogram_observe(FAM_UPSTREAM_DURATION, v, x->duration_s);
}

void metrics_tool_call(const char *mcp_client, const char *tool, bool ok, double duration_s)
{
    const char *calls[] = {mcp_client, tool, ok ? "ok" : "error"};
    counter_add(FAM_TOOL_CALLS, calls, 1);

    const char *v[] = {mcp_client, tool};
    histogram_observe(FAM_TOOL_DURATION, v, duration_s);
}

void metrics_code_mode(const char *outcome, double duration_s)
{
    const char *v[] = {outcome};
    counter_add(FAM_CODE_MODE, v, 1);
    histogram_observe(FAM_CODE_MODE_DURATION, NULL, duration_s);
}

void metrics_gauge_add(metrics_gauge_t g, long delta)
{
    if ((unsigned)g >= METRICS_GAUGE_COUNT)
        return;
    add_long(&shard_get()->gauges[g], delta);
}

void metrics_counter_add(metrics_counter_t c, long delta)
{
    /* A counter never goes down; a negative delta is a caller bug, not a value. */
    if ((unsigned)c >= METRICS_COUNTER_COUNT || delta < 0)
        return;
    add_long(&shard_get()->counters[c], delta);
}

/* ---- scrape: merging the shards ------------------------------------------------------------ */

typedef struct merged {
    const char *labels[MAX_LABELS]; /* borrowed from a shard's series (immutable, never freed
                                     * while registry_lock is held) */
    uint64_t hash;
    double value;
    uint64_t buckets[MAX_BUCKETS + 1];
} merged_t;

typedef struct merge_table {
    merged_t **slots; /* open addressing */
    size_t cap;       /* power of two */
    size_t used;
} merge_table_t;

static merged_t *merge_slot(merge_table_t *t, const series_t *s, int n)
{
    if ((t->used + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        merged_t **slots = xcalloc(cap, sizeof(*slots));
        for (size_t i = 0; i < t->cap; i++) {
            merged_t *m = t->slots[i];
            if (m == NULL)
                continue;
            size_t j = m->hash & (cap - 1);
            while (slots[j] != NULL)
                j = (j + 1) & (cap - 1);
            slots[j] = m;
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }

    size_t mask = t->cap - 1;
    size_t i = s->hash & mask;
    for (; t->slots[i] != NULL; i = (i + 1) & mask) {
        merged_t *m = t->slots[i];
        if (m->hash == s->hash && labels_equal(m->labels, (const char *const *)s->labels, n))
            return m;
    }
    merged_t *m = xcalloc(1, sizeof(*m));
    memcpy(m->labels, s->labels, sizeof(m->labels));
    m->hash = s->hash;
    t->slots[i] = m;
    t->used++;
    return m;
}

static void merge_series(merged_t *m, const family_t *f, const series_t *s)
{
    double v;
    __atomic_load(&s->value, &v, __ATOMIC_RELAXED);
    m->value += v;
    if (!f->histogram)
        return;
    for (int b = 0; b <= f->nbounds; b++)
        m->buckets[b] += __atomic_load_n(&s->buckets[b], __ATOMIC_RELAXED);
}

static int merged_cmp(const void *pa, const void *pb)
{
    const merged_t *a = *(merged_t *const *)pa;
    const merged_t *b = *(merged_t *const *)pb;
    for (int i = 0; i < MAX_LABELS && a->labels[i] != NULL; i++) {
        int c = strcmp(a->labels[i], b->labels[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

/* Merges one family over every shard; returns the merged series sorted by label values (the
 * caller frees each and the array). Called with registry_lock held. */
static merged_t **family_merge(family_id_t id, size_t *count)
{
    const family_t *f = &families[id];
    merge_table_t t = {NULL, 0, 0};

    for (shard_t *sh = registry; sh != NULL; sh = sh->next) {
        const series_t *s = __atomic_load_n(&sh->fams[id].head, __ATOMIC_ACQUIRE);
        for (; s != NULL; s = s->next)
            merge_series(merge_slot(&t, s, f->nlabels), f, s);
    }

    merged_t **list = xcalloc(t.used ? t.used : 1, sizeof(*list));
    size_t n = 0;
    for (size_t i = 0; i < t.cap; i++) {
        if (t.slots[i] != NULL)
            list[n++] = t.slots[i];
    }
    free(t.slots);
    qsort(list, n, sizeof(*list), merged_cmp);
    *count = n;
    return list;
}

/* ---- scrape: text exposition --------------------------------------------------------------- */

/* The shortest of %.15g and %.17g that reads back as the same double; tmp holds 32 bytes. */
static const char *format_double(char *tmp, double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    snprintf(tmp, 32, "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, 32, "%.17g", v);
    return tmp;
}

static void append_double(buf_t *out, double v)
{
    char tmp[32];
    buf_appends(out, format_double(tmp, v));
}

/* Label values escape backslash, double quote and newline, as the text format requires. */
static void append_escaped(buf_t *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_appends(out, "\\\\");
        else if (*s == '"')
            buf_appends(out, "\\\"");
        else if (*s == '\n')
            buf_appends(out, "\\n");
        else
            buf_appendc(out, *s);
    }
}

/* Appends "name{l1="v1",...,le="x"}" without the value; le may be NULL. No braces when there
 * are no labels at all. */
static void append_sample_name(buf_t *out, const char *name, const char *suffix, const family_t *f,
                               const merged_t *m, const char *le)
{
    buf_appends(out, name);
    buf_appends(out, suffix);
    if (f->nlabels == 0 && le == NULL)
        return;

    buf_appendc(out, '{');
    for (int i = 0; i < f->nlabels; i++) {
        buf_appendf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        append_escaped(out, m->labels[i]);
        buf_appendc(out, '"');
    }
    if (le != NULL)
        buf_appendf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    buf_appendc(out, '}');
}

static void render_header(buf_t *out, const char *name, const char *help, const char *type)
{
    buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_histogram(buf_t *out, const family_t *f, const merged_t *m)
{
    uint64_t cumulative = 0;
    char tmp[32];
    for (int b = 0; b <= f->nbounds; b++) {
        cumulative += m->buckets[b];
        const char *le = b < f->nbounds ? format_double(tmp, f->bounds[b]) : "+Inf";
        append_sample_name(out, f->name, "_bucket", f, m, le);
        buf_appendf(out, " %" PRIu64 "\n", cumulative);
    }

    append_sample_name(out, f->name, "_sum", f, m, NULL);
    buf_appendc(out, ' ');
    append_double(out, m->value);
    buf_appendc(out, '\n');

    append_sample_name(out, f->name, "_count", f, m, NULL);
    buf_appendf(out, " %" PRIu64 "\n", cumulative);
}

static void render_family(buf_t *out, family_id_t id)
{
    const family_t *f = &families[id];
    render_header(out, f->name, f->help, f->histogram ? "histogram" : "counter");

    size_t n;
    merged_t **list = family_merge(id, &n);
    for (size_t i = 0; i < n; i++) {
        if (f->histogram) {
            render_histogram(out, f, list[i]);
        } else {
            append_sample_name(out, f->name, "", f, list[i], NULL);
            buf_appendc(out, ' ');
            append_double(out, list[i]->value);
            buf_appendc(out, '\n');
        }
        free(list[i]);
    }
    free(list);
}

/* Gauges and plain counters: one value per shard, summed. Called with registry_lock held. */
static void render_plain(buf_t *out)
{
    for (int g = 0; g < METRICS_GAUGE_COUNT; g++) {
        long sum = 0;
        for (shard_t *sh = registry; sh != NULL; sh = sh->next)
            sum += __atomic_load_n(&sh->gauges[g], __ATOMIC_RELAXED);
        render_header(out, gauge_descs[g].name, gauge_descs[g].help, "gauge");
        buf_appendf(out, "%s %ld\n", gauge_descs[g].name, sum);
    }
    for (int c = 0; c < METRICS_COUNTER_COUNT; c++) {
        long sum = 0;
        for (shard_t *sh = registry; sh != NULL; sh = sh->next)
            sum += __atomic_load_n(&sh->counters[c], __ATOMIC_RELAXED);
        render_header(out, counter_descs[c].name, counter_descs[c].help, "counter");
        buf_appendf(out, "%s %ld\n", counter_descs[c].name, sum);
    }
}

/* ---- process metrics ----------------------------------------------------------------------- */

static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static double start_time;

/* Boot time (btime in /proc/stat) plus the process's start in clock ticks after boot (field
 * 22 of /proc/self/stat), as every Prometheus client library computes it. */
static bool proc_start_time(double *out)
{
    char line[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return false;
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    /* The command name (field 2) may hold spaces and parentheses: count from the last ')'. */
    char *p = got ? strrchr(line, ')') : NULL;
    if (p == NULL)
        return false;
    unsigned long long ticks;
    if (sscanf(p + 2,
               "%*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
               "%*s %llu",
               &ticks) != 1)
        return false;

    f = fopen("/proc/stat", "r");
    if (f == NULL)
        return false;
    unsigned long long btime = 0;
    got = false;
    while (!got && fgets(line, sizeof(line), f) != NULL)
        got = sscanf(line, "btime %llu", &btime) == 1;
    fclose(f);

    long hz = sysconf(_SC_CLK_TCK);
    if (!got || hz <= 0)
        return false;
    *out = (double)btime + (double)ticks / (double)hz;
    return true;
}

static void start_time_init(void)
{
    if (proc_start_time(&start_time))
        return;
    log_warn(NULL, "metrics: cannot read the process start time from /proc; "
                   "process_start_time_seconds reports the first scrape instead");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size from /proc/self/statm (second field, in pages); -1 when unreadable. */
static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    unsigned long size, resident;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (n != 2 || page <= 0)
        return -1;
    return (double)resident * (double)page;
}

static void render_process(buf_t *out)
{
    render_header(out, "gatehouse_build_info", "Build information; the value is always 1.",
                  "gauge");
    buf_appends(out, "gatehouse_build_info{version=\"");
    append_escaped(out, GATEHOUSE_VERSION);
    buf_appends(out, "\"} 1\n");

    pthread_once(&start_once, start_time_init);
    render_header(out, "process_start_time_seconds",
                  "Start time of the process since the Unix epoch, in seconds.", "gauge");
    buf_appends(out, "process_start_time_seconds ");
    append_double(out, start_time);
    buf_appendc(out, '\n');

    render_header(out, "process_resident_memory_bytes", "Resident memory size, in bytes.", "gauge");
    double rss = resident_bytes();
    if (rss >= 0) {
        buf_appends(out, "process_resident_memory_bytes ");
        append_double(out, rss);
        buf_appendc(out, '\n');
    }
}

void metrics_render(buf_t *out)
{
    pthread_mutex_lock(&registry_lock);
    for (int id = 0; id < FAM_COUNT; id++)
        render_family(out, (family_id_t)id);
    render_plain(out);
    pthread_mutex_unlock(&registry_lock);

    render_process(out);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void shard_free(shard_t *sh)
{
    for (int id = 0; id < FAM_COUNT; id++) {
        series_t *s = sh->fams[id].head;
        while (s != NULL) {
            series_t *next = s->next;
            for (int i = 0; i < MAX_LABELS; i++)
                free(s->labels[i]);
            free(s);
            s = next;
        }
        free(sh->fams[id].slots);
    }
    free(sh);
}

void metrics_reset_for_tests(void)
{
    pthread_mutex_lock(&registry_lock);
    while (registry != NULL) {
        shard_t *next = registry->next;
        shard_free(registry);
        registry = next;
    }
    __atomic_store_n(&registry_gen, registry_gen + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&registry_lock);

    tls_shard = NULL;
}
