/*
 * upstream.h - outbound HTTP for one worker thread: libcurl's multi interface driven by the
 * worker's libevent loop.
 *
 * Each worker owns one upstream_pool (one CURLM, its connection cache and DNS cache). A call is
 * started with upstream_start and reports back through three callbacks, always on the pool's
 * thread and never from inside upstream_start itself:
 *
 *   on_head  once, when the status line and headers are complete
 *   on_body  zero or more times, as body bytes arrive (already de-chunked and decompressed)
 *   on_done  exactly once, when the transfer ends for any reason, unless the call was cancelled
 *
 * A callback may return non-zero (on_head, on_body) to abort the transfer; on_done then reports
 * UPSTREAM_ERR_ABORTED. upstream_cancel may be called at any time, also from inside a callback;
 * after it no callback runs and the call's memory is released by the pool.
 */
#ifndef GATEHOUSE_HTTP_UPSTREAM_H
#define GATEHOUSE_HTTP_UPSTREAM_H

#include <stddef.h>

struct event_base;

typedef struct upstream_pool upstream_pool_t;
typedef struct upstream_call upstream_call_t;

/* Fixed kinds of upstream failure, so every failure maps to one status and one log line. */
typedef enum upstream_err {
    UPSTREAM_OK = 0,           /* transfer completed; look at the HTTP status */
    UPSTREAM_ERR_TIMEOUT,      /* connect or total timeout */
    UPSTREAM_ERR_REFUSED,      /* connection refused or host unreachable */
    UPSTREAM_ERR_DNS,          /* name did not resolve */
    UPSTREAM_ERR_TLS,          /* TLS handshake or certificate failure */
    UPSTREAM_ERR_RESET,        /* connection reset or closed before the response was complete */
    UPSTREAM_ERR_BAD_RESPONSE, /* not valid HTTP */
    UPSTREAM_ERR_ABORTED,      /* a callback asked to stop */
    UPSTREAM_ERR_INTERNAL,     /* curl setup failed; a bug or out of resources */
} upstream_err_t;

const char *upstream_err_name(upstream_err_t err);

typedef struct upstream_result {
    upstream_err_t err;
    long status;         /* HTTP status, 0 when none was received */
    char message[256];   /* human-readable cause when err != UPSTREAM_OK */
    double connect_s;    /* seconds until connected */
    double first_byte_s; /* seconds until the first response byte */
    double total_s;      /* seconds for the whole transfer */
} upstream_result_t;

typedef struct upstream_callbacks {
    int (*on_head)(void *arg, upstream_call_t *call, long status);
    int (*on_body)(void *arg, upstream_call_t *call, const char *data, size_t len);
    void (*on_done)(void *arg, upstream_call_t *call, const upstream_result_t *result);
} upstream_callbacks_t;

typedef struct upstream_request {
    const char *method; /* "POST", "GET", ... */
    const char *url;
    const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;           /* may be NULL; not copied, must outlive the call */
    size_t body_len;
    long timeout_ms;         /* whole transfer; 0 = none */
    long connect_timeout_ms; /* 0 = curl's default */
    long idle_timeout_ms;    /* abort when no byte arrives for this long; 0 = none */
} upstream_request_t;

upstream_pool_t *upstream_pool_new(struct event_base *base);
/* Cancels every call still running, then frees the pool. */
void upstream_pool_free(upstream_pool_t *pool);
/* Number of calls in flight. */
size_t upstream_pool_active(const upstream_pool_t *pool);

/* Starts a call. Returns NULL only when curl could not be set up (then no callback runs). */
upstream_call_t *upstream_start(upstream_pool_t *pool, const upstream_request_t *req,
                                const upstream_callbacks_t *cb, void *arg);
void upstream_cancel(upstream_call_t *call);
/* A response header of the call, case-insensitive, or NULL. Valid from on_head on, until
 * on_done returns. */
const char *upstream_call_header(const upstream_call_t *call, const char *name);
/* Every header of the final response as "name: value" strings (names lowercased, values
 * trimmed, folded lines joined), NULL-terminated, in the order received; for the audit trail.
 * Never NULL. Valid from on_head on, until on_done returns. */
const char *const *upstream_call_headers(const upstream_call_t *call);

#endif
