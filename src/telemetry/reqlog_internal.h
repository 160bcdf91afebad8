/*
 * reqlog_internal.h - what the three parts of the request log share (see reqlog.h).
 *
 *   reqlog_writer.c  the queue, the writer thread, start/stop/reconfigure and the test hooks
 *   reqlog_store.c   the SQLite side of the writer: opening, checking and migrating the
 *                    database, inserting a batch, retention
 *   reqlog_query.c   the admin API's reads, on one read-only connection per calling thread
 *
 * Only the writer thread touches a reqlog_store_t. Rows are built by reqlog_submit on worker
 * threads as one allocation each (the struct and every string it points to), handed to the
 * writer through the queue, and freed by the writer once written or dropped.
 */
#ifndef GATEHOUSE_TELEMETRY_REQLOG_INTERNAL_H
#define GATEHOUSE_TELEMETRY_REQLOG_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#define REQLOG_DB_NAME "gatehouse.db"
/* PRAGMA user_version of the newest schema this build knows (reqlog_store.c, migrations). */
#define REQLOG_SCHEMA_VERSION 2
/* Bodies, tool arguments and results longer than this are cut, with a marker appended. */
#define REQLOG_BODY_MAX (1024 * 1024)
/* Request rows inserted by one statement when a batch has that many in a row. */
#define REQLOG_INSERT_ROWS 64
/* How long a writer or reader waits for a lock held by another connection, in ms. */
#define REQLOG_BUSY_TIMEOUT_MS 1000

typedef enum reqlog_row_kind {
    REQLOG_ROW_REQUEST = 0,
    REQLOG_ROW_TOOL,
} reqlog_row_kind_t;

/* A client request, as stored: times in milliseconds, NULL strings stored as NULL. */
typedef struct reqlog_request_row {
    const char *id;
    double ts; /* seconds since the epoch */
    const char *caller;
    const char *dialect;
    const char *method;
    const char *path;
    const char *provider;
    const char *model;
    const char *key_name;
    int fallback_index;
    int retries;
    int status;
    bool stream;
    const char *error_type;
    const char *error_message;
    double latency_ms;
    double ttft_ms; /* < 0: nothing was answered (stored as NULL) */
    double upstream_ms;
    double overhead_ms;
    long tokens_in; /* < 0: unknown (stored as NULL) */
    long tokens_out;
    long tokens_cached;
    double cost_usd;          /* < 0: unknown price (stored as NULL) */
    const char *request_body; /* NULL when bodies are not kept */
    size_t request_len;
    const char *response_body;
    size_t response_len;
} reqlog_request_row_t;

/* An MCP tool call, as stored. */
typedef struct reqlog_tool_row {
    const char *request_id;
    const char *execution_id;
    const char *source;
    const char *mcp_client;
    const char *tool;
    double ts;
    double duration_ms;
    bool ok;
    const char *error;
    const char *arguments; /* NULL when bodies are not kept */
    size_t arguments_len;
    const char *result;
    size_t result_len;
} reqlog_tool_row_t;

/* One queued row; its strings live in the same allocation, after the struct. */
typedef struct reqlog_row {
    struct reqlog_row *next; /* queue link, owned by the queue */
    reqlog_row_kind_t kind;
    union {
        reqlog_request_row_t req;
        reqlog_tool_row_t tool;
    } u;
} reqlog_row_t;

/* The writer's connection and its prepared statements. Writer thread only. */
typedef struct reqlog_store {
    sqlite3 *db;
    sqlite3_stmt *insert_request;  /* one request row */
    sqlite3_stmt *insert_requests; /* REQLOG_INSERT_ROWS request rows at once */
    sqlite3_stmt *insert_tool;
    char *path; /* <data_dir>/gatehouse.db; owned */
} reqlog_store_t;

/* Opens (creating, checking and migrating) the database at path. Returns 0, or -1 after
 * logging what is wrong and what to do about it; s is then closed. */
int reqlog_store_open(reqlog_store_t *s, const char *path);
void reqlog_store_close(reqlog_store_t *s);

/* Inserts every row of the list in one transaction. Returns SQLITE_OK, or the SQLite error that
 * rolled the whole batch back (err then says what happened). */
int reqlog_store_write(reqlog_store_t *s, const reqlog_row_t *rows, char *err, size_t err_cap);

/* Deletes up to one chunk of rows older than keep_days and clears up to one chunk of bodies
 * older than content_days, as seen at now_unix; sets *more when a chunk was full, so that the
 * writer can write queued rows before the next step. Returns SQLITE_OK or the error. */
int reqlog_store_retention_step(reqlog_store_t *s, double now_unix, int keep_days, int content_days,
                                bool *more, char *err, size_t err_cap);
/* Gives the pages freed by retention back to the file system and refreshes query statistics. */
int reqlog_store_vacuum(reqlog_store_t *s, char *err, size_t err_cap);

/* The path of the open database and its generation (bumped at every start), or false when the
 * log is not running. The path is a copy the caller frees. Any thread. */
bool reqlog_current_db(char **path, unsigned *generation);
/* Closes the calling thread's read connection, if it has one (reqlog_query.c). */
void reqlog_reader_close(void);

#endif
