/*
 * respond.c - answers that every endpoint shares: OpenAI-shaped errors and the access line.
 */
#include <stdio.h>
#include <string.h>

#include "dialects/openai.h"
#include "gateway/handlers.h"
#include "util/log.h"

void gateway_respond_error(http_request_t *req, const char *request_id, int status,
                           const char *message, const char *param, const char *code)
{
    /* Log first: once answered, a request whose client has gone may be freed. */
    log_info(request_id, "%s %s answered %d: %s", http_request_method(req), http_request_path(req),
             status, message);
    gateway_access_log(req, request_id, status, NULL, -1, 0, 0);

    buf_t body = BUF_INIT;
    dialect_openai_error(&body, message, dialect_openai_error_type(status), param, code);
    http_response_header(req, "x-request-id", request_id);
    http_respond(req, status, "application/json", body.data, body.len);
    buf_free(&body);
}

void gateway_access_log(const http_request_t *req, const char *request_id, int status,
                        const char *model, double started_at, long tokens_in, long tokens_out)
{
    char line[1024];
    double ms = started_at >= 0 ? (gateway_now() - started_at) * 1000.0 : 0.0;
    snprintf(line, sizeof(line),
             "access [%s] %s %s %d model=%s latency_ms=%.1f tokens_in=%ld"
             " tokens_out=%ld peer=%s",
             request_id, http_request_method(req), http_request_path(req), status,
             model ? model : "-", ms, tokens_in, tokens_out, http_request_peer(req));
    log_line(line);
}
