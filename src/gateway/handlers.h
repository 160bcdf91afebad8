/*
 * handlers.h - the HTTP endpoints, as called by the worker's dispatcher (worker.c).
 *
 * Each handler owns the request it is given and finishes it exactly once (see http/server.h).
 */
#ifndef GATEHOUSE_GATEWAY_HANDLERS_H
#define GATEHOUSE_GATEWAY_HANDLERS_H

#include <stddef.h>

#include "gateway/gateway.h"
#include "http/server.h"

#define GATEWAY_REQUEST_ID_MAX 64

/* POST /v1/chat/completions */
void chat_handle(http_request_t *req, gateway_worker_t *w, const char *request_id);
/* GET /v1/models */
void models_handle(http_request_t *req, gateway_worker_t *w, const char *request_id);
/* GET /metrics */
void metrics_handle(http_request_t *req, gateway_worker_t *w, const char *request_id);
/* /api/...: the admin API, behind admin.token */
void admin_handle(http_request_t *req, gateway_worker_t *w, const char *request_id);

/* Answers with an OpenAI-shaped error and writes the access line. */
void gateway_respond_error(http_request_t *req, const char *request_id, int status,
                           const char *message, const char *param, const char *code);

/* Writes the access line of a finished request. model may be NULL; started_at < 0 when the
 * start time is not known. */
void gateway_access_log(const http_request_t *req, const char *request_id, int status,
                        const char *model, double started_at, long tokens_in, long tokens_out);

/* Monotonic seconds. */
double gateway_now(void);
/* Wall-clock seconds since the epoch. */
double gateway_wall_now(void);

#endif
