/*
 * admin.c - the operator endpoints: GET /metrics (open, as Prometheus scrapes it) and the
 * admin API under /api/ (bearer token from admin.token): GET /api/logs and /api/logs/{id}.
 *
 * Log queries run on the worker thread that received them, on that thread's own read-only
 * SQLite connection (see telemetry/reqlog.h); they take milliseconds and are rare, so they do
 * not get a thread of their own.
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/handlers.h"
#include "telemetry/metrics.h"
#include "telemetry/reqlog.h"

static void respond_json(http_request_t *req, const char *rid, int status, json_t *body)
{
    /* 15 significant digits print a logged 0.7 as 0.7, not 0.69999999999999996. */
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
    http_response_header(req, "x-request-id", rid);
    http_respond(req, status, "application/json", text, strlen(text));
    gateway_access_log(req, rid, status, NULL, -1, 0, 0);
    free(text);
}

void metrics_handle(http_request_t *req, gateway_worker_t *w, const char *request_id)
{
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    bool enabled = snap->cfg->metrics_enabled;
    gateway_snapshot_release(snap);
    if (!enabled) {
        gateway_respond_error(req, request_id, 404, "metrics are disabled (metrics.enabled)", NULL,
                              "not_found");
        return;
    }

    buf_t out = BUF_INIT;
    metrics_render(&out);
    http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", buf_cstr(&out), out.len);
    buf_free(&out);
}

/* Checks "Authorization: Bearer <admin.token>" in constant time. Answers and returns false
 * when the caller may not go on. */
static bool admin_authorized(http_request_t *req, const char *rid)
{
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    const char *token = snap->cfg->admin_token;
    const char *auth = http_request_header(req, "authorization");
    bool ok = false;

    if (token == NULL) {
        gateway_snapshot_release(snap);
        gateway_respond_error(req, rid, 403, "the admin API is disabled: set admin.token", NULL,
                              "admin_disabled");
        return false;
    }
    if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0) {
        size_t n = strlen(token);
        ok = strlen(auth + 7) == n && CRYPTO_memcmp(auth + 7, token, n) == 0;
    }
    gateway_snapshot_release(snap);

    if (!ok)
        gateway_respond_error(req, rid, 401,
                              "a valid admin token is required"
                              " (Authorization: Bearer ...)",
                              NULL, "invalid_admin_token");
    return ok;
}

/* The value of name in a query string, decoded into out; false when absent. */
static bool query_param(const char *query, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t o = 0;
            for (size_t i = nlen + 1; i < len && o + 1 < cap; i++) {
                char ch = p[i];
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%' && i + 2 < len && isxdigit((unsigned char)p[i + 1]) &&
                           isxdigit((unsigned char)p[i + 2])) {
                    char hex[3] = {p[i + 1], p[i + 2], 0};
                    ch = (char)strtol(hex, NULL, 16);
                    i += 2;
                }
                out[o++] = ch;
            }
            out[o] = '\0';
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* The request log reports errors as text that starts with fixed phrases (reqlog.h). */
static int reqlog_error_status(const char *err)
{
    if (strncmp(err, "bad cursor", 10) == 0)
        return 400;
    if (strncmp(err, "no request with id", 18) == 0)
        return 404;
    if (strncmp(err, "the request log is off", 22) == 0)
        return 503;
    if (strncmp(err, "the query took longer", 21) == 0)
        return 504;
    return 500;
}

static double parse_time(const char *text)
{
    char *end;
    double v = strtod(text, &end);
    return *end == '\0' ? v : -1;
}

static void logs_list(http_request_t *req, const char *rid)
{
    const char *q = http_request_query(req);
    char provider[128], model[256], status[16], since[32], until[32], text[256], limit[16],
        cursor[128];
    reqlog_filter_t f = {0};

    if (query_param(q, "provider", provider, sizeof(provider)))
        f.provider = provider;
    if (query_param(q, "model", model, sizeof(model)))
        f.model = model;
    if (query_param(q, "status", status, sizeof(status)))
        f.status = atoi(status);
    if (query_param(q, "since", since, sizeof(since)))
        f.since_unix = parse_time(since);
    if (query_param(q, "until", until, sizeof(until)))
        f.until_unix = parse_time(until);
    if (query_param(q, "q", text, sizeof(text)))
        f.q = text;
    if (query_param(q, "limit", limit, sizeof(limit)))
        f.limit = atoi(limit);
    if (query_param(q, "cursor", cursor, sizeof(cursor)))
        f.cursor = cursor;
    if (f.since_unix < 0 || f.until_unix < 0) {
        gateway_respond_error(req, rid, 400, "since and until are unix times in seconds", NULL,
                              "invalid_value");
        return;
    }

    char err[256] = "";
    json_t *page = reqlog_query(&f, err, sizeof(err));
    if (page == NULL) {
        gateway_respond_error(req, rid, reqlog_error_status(err), err, NULL, "log_query_failed");
        return;
    }
    respond_json(req, rid, 200, page);
    json_decref(page);
}

void admin_handle(http_request_t *req, gateway_worker_t *w, const char *request_id)
{
    if (!admin_authorized(req, request_id))
        return;

    const char *path = http_request_path(req);
    if (strcmp(path, "/api/logs") == 0) {
        logs_list(req, request_id);
        return;
    }
    if (strncmp(path, "/api/logs/", 10) == 0 && path[10] != '\0') {
        char err[256] = "";
        json_t *row = reqlog_get(path + 10, err, sizeof(err));
        if (row == NULL) {
            gateway_respond_error(req, request_id, err[0] ? reqlog_error_status(err) : 404,
                                  err[0] ? err : "no such request", NULL, "log_query_failed");
            return;
        }
        respond_json(req, request_id, 200, row);
        json_decref(row);
        return;
    }
    gateway_respond_error(req, request_id, 404, "no such admin endpoint", NULL, "not_found");
}
