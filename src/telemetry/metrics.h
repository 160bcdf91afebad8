/*
 * metrics.h - Prometheus metrics: counters and histograms kept per thread, summed at scrape.
 *
 * Every thread that records (workers, writer threads, later the tool hub) writes only to its
 * own shard, found through a thread-local pointer and registered once in a global list; a
 * scrape walks the list and adds the shards up. Recording therefore never takes a lock and
 * never contends; a scrape reads counters that may be a few increments behind, which
 * Prometheus tolerates by design.
 *
 * Label values (provider, model, status, error type, MCP client and tool) come from a small
 * bounded set per shard; past METRICS_MAX_SERIES distinct label sets, new ones are folded into
 * an "other" series so that a client sending random model names cannot grow memory forever.
 */
#ifndef GATEHOUSE_TELEMETRY_METRICS_H
#define GATEHOUSE_TELEMETRY_METRICS_H

#include "telemetry/telemetry.h"
#include "util/buf.h"

#define METRICS_MAX_SERIES 2048
/* Label values longer than this many bytes are cut (at a UTF-8 character boundary), so that a
 * megabyte model name costs a bounded amount of memory per series. */
#define METRICS_MAX_LABEL_LEN 128

typedef enum metrics_gauge {
    METRICS_ACTIVE_REQUESTS = 0, /* client requests in progress */
    METRICS_ACTIVE_STREAMS,      /* of those, streams whose first chunk was sent */
    METRICS_GAUGE_COUNT,
} metrics_gauge_t;

typedef enum metrics_counter {
    METRICS_LOG_ROWS_WRITTEN = 0, /* request log rows committed */
    METRICS_LOG_ROWS_DROPPED,     /* request log rows lost (queue full, disk error) */
    METRICS_AUDIT_RECORDS_WRITTEN,
    METRICS_AUDIT_RECORDS_DROPPED,
    METRICS_COUNTER_COUNT,
} metrics_counter_t;

/* A finished client request: requests by provider, model, status and error type; latency,
 * gateway overhead and time-to-first-token histograms; tokens in and out; cost in USD; retries;
 * fallbacks. cost_usd < 0 when the price is unknown. */
void metrics_request(const telemetry_request_t *r, double cost_usd);
/* One upstream exchange: upstream latency histogram by provider and status class. Exchanges of
 * kind "mcp" are left out: tool calls have their own families (metrics_tool_call). */
void metrics_exchange(const telemetry_exchange_t *x);
/* One MCP tool call: calls by MCP client, tool and outcome ("ok" or "error"); latency histogram
 * by MCP client and tool. */
void metrics_tool_call(const char *mcp_client, const char *tool, bool ok, double duration_s);
/* One Code Mode execution: executions by outcome (the executor's word: "ok", "error",
 * "timeout", ...); latency histogram over all executions. */
void metrics_code_mode(const char *outcome, double duration_s);
void metrics_gauge_add(metrics_gauge_t g, long delta);
void metrics_counter_add(metrics_counter_t c, long delta);

/* Appends the whole exposition (text format 0.0.4) to out. Any thread. */
void metrics_render(buf_t *out);

/* Frees every shard and starts again from zero. Unit tests only: no thread may be recording or
 * rendering meanwhile (threads that recorded before get a fresh shard on their next record). */
void metrics_reset_for_tests(void);

#endif
