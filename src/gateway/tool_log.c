/*
 * tool_log.c - the request-log rows and metrics of tool calls run for a client (contract in
 * tool_log.h). Rows go straight to the request log's queue (reqlog.h), which drops them when the
 * log is off; nothing here can fail or slow a request.
 */
#include "gateway/tool_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/gateway.h"
#include "mcp/content.h"
#include "telemetry/metrics.h"
#include "telemetry/reqlog.h"

bool tool_log_content_allowed(const http_request_t *req)
{
    gateway_snapshot_t *snap = gateway_snapshot_acquire();
    bool allowed = snap->cfg->logs_content;
    gateway_snapshot_release(snap);

    const char *opt_out = http_request_header(req, "x-gatehouse-log-content");
    if (opt_out != NULL && (strcasecmp(opt_out, "false") == 0 || strcmp(opt_out, "0") == 0))
        allowed = false;
    return allowed;
}

void tool_log_call(const tool_log_call_t *c)
{
    bool tool_error = c->result != NULL && json_is_true(json_object_get(c->result, "isError"));
    bool ok = c->error == NULL && c->result != NULL && !tool_error;

    char tool_text[TOOL_LOG_MAX_ERROR + 1] = "the tool reported an error (isError)";
    const char *error = c->error;
    if (tool_error) {
        if (c->log_content) {
            char *text = mcp_content_text(c->result, NULL);
            snprintf(tool_text, sizeof(tool_text), "%s", text);
            free(text);
        }
        error = tool_text;
    } else if (!ok && error == NULL) {
        error = "no result";
    }

    char *result_text =
        c->log_content && c->result != NULL ? json_dumps(c->result, JSON_COMPACT) : NULL;
    reqlog_tool_call_t row = {
        .request_id = c->request_id,
        .source = c->source,
        .mcp_client = c->mcp_client,
        .tool = c->tool,
        .started_unix = c->started_unix,
        .duration_s = c->duration_s,
        .ok = ok,
        .error = ok ? NULL : error,
        .arguments = c->log_content ? c->arguments : NULL,
        .result = result_text,
    };
    reqlog_submit_tool(&row);
    metrics_tool_call(c->mcp_client, c->tool, ok, c->duration_s);
    free(result_text);
}

void tool_log_request(const tool_log_request_t *r)
{
    size_t body_len = 0;
    const char *body = http_request_body(r->http, &body_len);
    double overhead = r->latency_s - r->upstream_s;
    telemetry_request_t row = {
        .id = r->request_id,
        .started_unix = r->started_unix,
        .latency_s = r->latency_s,
        .ttft_s = r->ttft_s,
        .upstream_s = r->upstream_s,
        .overhead_s = overhead > 0 ? overhead : 0,
        .dialect = r->dialect,
        .method = http_request_method(r->http),
        .path = http_request_path(r->http),
        .status = r->status,
        .stream = r->stream,
        .error_type = r->error_type,
        .error_message = r->error_message,
        .log_content = r->log_content,
        .request_body = r->log_content ? body : NULL,
        .request_len = r->log_content ? body_len : 0,
        .response_body = r->log_content ? r->response_body : NULL,
        .response_len = r->log_content && r->response_body != NULL ? r->response_len : 0,
    };
    reqlog_submit(&row, -1);
}
