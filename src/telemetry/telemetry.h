/*
 * telemetry.h - what the request path tells the observers: the request log (reqlog.c), the
 * audit trail (audit.c) and the metrics (metrics.c).
 *
 * The request path fills these records on its worker thread and hands them over at the end of
 * a request or an upstream exchange. Every observer copies what it keeps and returns at once:
 * the log and the audit trail queue the copy for their own writer thread, metrics bump
 * per-thread counters. None of them may block, and none of them can fail a request: when a
 * writer falls behind or its disk fails, it counts what it dropped and says so in the log at
 * most once a minute.
 *
 * Pointers in the records are borrowed for the duration of the call.
 */
#ifndef GATEHOUSE_TELEMETRY_TELEMETRY_H
#define GATEHOUSE_TELEMETRY_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config/config.h"
#include "util/buf.h"

/* One finished client request. */
typedef struct telemetry_request {
    const char *id;       /* request id */
    double started_unix;  /* wall clock at arrival, seconds since the epoch */
    double latency_s;     /* arrival to last byte sent */
    double ttft_s;        /* arrival to first token sent (streams), or to the answer
                           * (JSON); -1 when nothing was answered */
    double upstream_s;    /* time spent in upstream exchanges, all attempts together */
    double overhead_s;    /* time spent in gatehouse itself: latency minus upstream
                           * time, backoff sleeps and queueing for a provider slot */
    const char *caller;   /* virtual key or caller name; NULL until governance exists */
    const char *dialect;  /* inbound dialect: "openai" */
    const char *method;   /* "POST" */
    const char *path;     /* "/v1/chat/completions" */
    const char *provider; /* provider that answered or failed last; NULL when none */
    const char *model;    /* the provider's model name; NULL when none */
    const char *key_name; /* name of the key used last; NULL when none */
    int fallback_index;   /* 0 = primary model */
    int retries;          /* retries across all targets */
    int status;           /* HTTP status sent to the client (499: client went away) */
    bool stream;
    const char *error_type;    /* NULL on success */
    const char *error_message; /* NULL on success; keys already scrubbed */
    long tokens_in;            /* prompt tokens, cached ones included */
    long tokens_out;
    long tokens_cached;       /* prompt tokens read from the provider's cache */
    bool log_content;         /* global switch and per-request header both allow bodies */
    const char *request_body; /* as received; NULL when !log_content */
    size_t request_len;
    const char *response_body; /* JSON answer, or the SSE data lines sent, joined by "\n";
                                * NULL when !log_content */
    size_t response_len;
} telemetry_request_t;

/* One upstream exchange (one attempt), exactly as sent and received. */
typedef struct telemetry_exchange {
    const char *request_id;
    const char *kind;   /* "upstream" (providers) or "mcp" (tool calls) */
    const char *target; /* provider or MCP client name */
    double started_unix;
    const char *method;
    const char *url;
    const char *const *req_headers; /* "Name: value", NULL-terminated; secrets NOT redacted:
                                     * the observer must redact (util/redact.h) */
    const char *req_body;
    size_t req_len;
    long status;                     /* 0 when no response arrived */
    const char *const *resp_headers; /* "name: value", NULL-terminated; may be NULL */
    const char *resp_body;           /* raw bytes as received (SSE text for streams) */
    size_t resp_len;
    double first_byte_s; /* -1 when no byte arrived */
    double duration_s;
    const char *error;   /* transport error, or NULL */
    bool record_content; /* bodies (true) or their SHA-256 only */
    bool audit;          /* goes to the audit trail (global switch or the
                          * request's opt-in); metrics see every exchange */
} telemetry_exchange_t;

/* ---- lifecycle (main thread) ---------------------------------------------------------------- */

/* Starts the writer threads the configuration asks for, under data_dir. Returns 0, or -1 after
 * logging why (for example a corrupted database, with what to do about it). */
int telemetry_start(const config_t *cfg, const char *data_dir);
/* Applies a reloaded configuration (retention, switches). */
void telemetry_reconfigure(const config_t *cfg);
/* Flushes what is queued and stops the writers. */
void telemetry_stop(void);

/* ---- events (worker threads) ---------------------------------------------------------------- */

/* cfg is the snapshot the request ran with (prices, switches). */
void telemetry_request_done(const config_t *cfg, const telemetry_request_t *r);
void telemetry_exchange_done(const telemetry_exchange_t *x);

#endif
