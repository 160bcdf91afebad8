/*
 * reqlog.h - the request log: one SQLite row per client request, and one per MCP tool call.
 *
 * Worker threads hand finished requests to reqlog_submit, which copies the record into a
 * bounded queue and returns; one writer thread drains the queue in batches (one transaction
 * per batch) into <data-dir>/gatehouse.db. A full queue drops the row and counts it
 * (METRICS_LOG_ROWS_DROPPED); a failing disk is reported once a minute and counted, never
 * surfaced to a client. The same thread applies retention once an hour: rows older than
 * logs.retention_days are deleted, bodies older than logs.content_retention_days are cleared,
 * and the database is vacuumed incrementally so that it stays bounded.
 *
 * Queries (the admin API) open their own read-only connection per calling thread; SQLite's
 * WAL mode lets them run while the writer writes.
 */
#ifndef GATEHOUSE_TELEMETRY_REQLOG_H
#define GATEHOUSE_TELEMETRY_REQLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "telemetry/telemetry.h"

/* Opens (creating or migrating) the database and starts the writer. A database that fails its
 * integrity check is reported with what to do, and -1 is returned. */
int reqlog_start(const config_t *cfg, const char *data_dir);
void reqlog_reconfigure(const config_t *cfg);
/* Writes what is queued, then stops the writer and closes the database. */
void reqlog_stop(void);

/* Queues one row; cost_usd < 0 when unknown. Never blocks. */
void reqlog_submit(const telemetry_request_t *r, double cost_usd);

/* One MCP tool execution (client call, agent mode or a Code Mode script). */
typedef struct reqlog_tool_call {
    const char *request_id;   /* the client request that led to it, or NULL */
    const char *execution_id; /* the Code Mode execution it ran in, or NULL */
    const char *source;       /* "client", "agent" or "code_mode" */
    const char *mcp_client;
    const char *tool;
    double started_unix;
    double duration_s;
    bool ok;
    const char *error;     /* NULL when ok */
    const char *arguments; /* JSON text; NULL when content logging is off */
    const char *result;    /* JSON text; NULL when content logging is off */
} reqlog_tool_call_t;

void reqlog_submit_tool(const reqlog_tool_call_t *t);

/* Filters of GET /api/logs; NULL or 0 means "any". */
typedef struct reqlog_filter {
    const char *provider;
    const char *model;
    int status;
    double since_unix;
    double until_unix;
    const char *q;      /* substring of the error message or, when kept, the bodies */
    int limit;          /* default 50, at most 1000 */
    const char *cursor; /* from the previous page's "next_cursor" */
} reqlog_filter_t;

/* {"data": [rows without bodies], "next_cursor": "..." or null}, or NULL with err filled. */
json_t *reqlog_query(const reqlog_filter_t *f, char *err, size_t err_cap);
/* One row with its bodies and tool calls, or NULL when unknown (err says why). */
json_t *reqlog_get(const char *id, char *err, size_t err_cap);

/* ---- for tests ------------------------------------------------------------------------------ */

/* Returns once every row queued before the call is committed (or dropped on a write error).
 * Never call it while the writer is paused. */
void reqlog_flush(void);
/* Flushes, then runs a whole retention pass on the writer thread as if the clock read now_unix,
 * and returns when it is done. */
void reqlog_run_retention(double now_unix);
/* Stops (true) or lets (false) the writer take rows from the queue, so that a test can fill the
 * queue deterministically. reqlog_stop releases a paused writer. */
void reqlog_pause_writer(bool paused);

#endif
