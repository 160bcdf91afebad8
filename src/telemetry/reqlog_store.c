/*
 * reqlog_store.c - the request log's database, as the writer thread sees it (see
 * reqlog_internal.h; docs/request-log.md is the user's view of the schema).
 *
 * Opening checks before it trusts: PRAGMA quick_check runs first, so that a damaged file or a
 * file that is not a database stops the start with a message saying what to do, instead of
 * failing row after row later. Then the schema is migrated: PRAGMA user_version holds the
 * version, and each entry of `migrations` takes the database one version further inside its
 * own transaction, so that a crash mid-migration leaves the previous version intact.
 *
 * Settings, and why:
 *   auto_vacuum = INCREMENTAL  set before the first table exists (SQLite cannot change it
 *                              later without a full VACUUM), so that retention can return
 *                              freed pages to the file system a little at a time
 *   journal_mode = WAL         readers (the admin API) never block the writer, nor it them
 *   synchronous = NORMAL       with WAL, a commit survives a crash of gatehouse; a power loss
 *                              may lose the last transactions, which is fine for a log
 *   journal_size_limit         the WAL file shrinks back after a burst
 *
 * Rows carry an autoincrement `seq` as primary key and the request id as an indexed column: a
 * client may send the same x-request-id twice, and both requests must be kept. No column has
 * a constraint, so that a batch can fail only when the disk does.
 */
#include "telemetry/reqlog_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

/* Rows deleted or cleared per retention statement, so that one step stays short and queued
 * rows get written between steps. */
#define RETENTION_CHUNK 2000
#define WAL_SIZE_LIMIT (64 * 1024 * 1024)

/* migrations[v] takes the schema from version v to v + 1. */
static const char *const migrations[REQLOG_SCHEMA_VERSION] = {
    "CREATE TABLE requests ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT, ts REAL, caller TEXT, dialect TEXT, method TEXT, path TEXT,"
    " provider TEXT, model TEXT, key_name TEXT,"
    " fallback_index INTEGER, retries INTEGER, status INTEGER, stream INTEGER,"
    " error_type TEXT, error_message TEXT,"
    " latency_ms REAL, ttft_ms REAL, upstream_ms REAL, overhead_ms REAL,"
    " tokens_in INTEGER, tokens_out INTEGER, tokens_cached INTEGER, cost_usd REAL,"
    " request_body TEXT, response_body TEXT);"
    "CREATE INDEX requests_ts ON requests(ts);"
    /* ts last, so that a filtered page is read in order from the index instead of sorting
     * every matching row (status = 200 matches most of the log). */
    "CREATE INDEX requests_provider_model ON requests(provider, model, ts);"
    "CREATE INDEX requests_status ON requests(status, ts);"
    "CREATE INDEX requests_id ON requests(id);"
    /* Only rows that still hold bodies, so that clearing old bodies never rescans the rows
     * cleared in earlier runs. */
    "CREATE INDEX requests_ts_with_body ON requests(ts)"
    " WHERE request_body IS NOT NULL OR response_body IS NOT NULL;"
    "CREATE TABLE tool_calls ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " request_id TEXT, execution_id TEXT, source TEXT, mcp_client TEXT, tool TEXT,"
    " ts REAL, duration_ms REAL, ok INTEGER, error TEXT, arguments TEXT, result TEXT);"
    "CREATE INDEX tool_calls_request_id ON tool_calls(request_id);"
    "CREATE INDEX tool_calls_ts ON tool_calls(ts);"
    "CREATE INDEX tool_calls_ts_with_body ON tool_calls(ts)"
    " WHERE arguments IS NOT NULL OR result IS NOT NULL;",

    /* Version 2: every index costs the writer a B-tree insert per row, about 2% of a small
     * request's CPU each on a busy core (bench/logging/README.md). requests_status now holds
     * only the rows whose status is not 200: successful requests are most of the log, and a
     * status=200 page is read from requests_ts with few rows skipped, while the failures a
     * status filter looks for are the rare rows an index is for (reqlog_query.c adds the
     * "status <> 200" the planner needs to use it). */
    "DROP INDEX requests_status;"
    "CREATE INDEX requests_status ON requests(status, ts) WHERE status <> 200;",
};

static const char insert_request_head[] =
    "INSERT INTO requests (id, ts, caller, dialect, method, path, provider, model, key_name,"
    " fallback_index, retries, status, stream, error_type, error_message, latency_ms, ttft_ms,"
    " upstream_ms, overhead_ms, tokens_in, tokens_out, tokens_cached, cost_usd, request_body,"
    " response_body) VALUES ";
/* One row's values: 25 parameters. */
static const char insert_request_values[] =
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

static const char insert_tool_sql[] =
    "INSERT INTO tool_calls (request_id, execution_id, source, mcp_client, tool, ts,"
    " duration_ms, ok, error, arguments, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* Each statement handles one chunk: ?1 is the cutoff (seconds since the epoch), ?2 the chunk. */
static const char *const retention_delete_sql[] = {
    "DELETE FROM requests WHERE seq IN (SELECT seq FROM requests WHERE ts < ?1 LIMIT ?2)",
    "DELETE FROM tool_calls WHERE seq IN (SELECT seq FROM tool_calls WHERE ts < ?1 LIMIT ?2)",
};

static const char *const retention_clear_sql[] = {
    "UPDATE requests SET request_body = NULL, response_body = NULL WHERE seq IN"
    " (SELECT seq FROM requests WHERE ts < ?1"
    " AND (request_body IS NOT NULL OR response_body IS NOT NULL) LIMIT ?2)",
    "UPDATE tool_calls SET arguments = NULL, result = NULL WHERE seq IN"
    " (SELECT seq FROM tool_calls WHERE ts < ?1"
    " AND (arguments IS NOT NULL OR result IS NOT NULL) LIMIT ?2)",
};

/* ---- small helpers -------------------------------------------------------------------------- */

static void set_err(char *err, size_t cap, const char *msg)
{
    if (cap > 0)
        snprintf(err, cap, "%s", msg != NULL ? msg : "unknown error");
}

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t cap)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        set_err(err, cap, msg != NULL ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

/* Runs a statement that answers one row and copies its first column as text into out. */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t cap, char *err,
                      size_t err_cap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *v = sqlite3_column_text(st, 0);
            snprintf(out, cap, "%s", v != NULL ? (const char *)v : "");
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            out[0] = '\0';
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        set_err(err, err_cap, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

/* ---- opening -------------------------------------------------------------------------------- */

/* SQLite creates files with 0644; the log holds prompts and answers, so the file is created
 * first with 0600. The -wal and -shm files take the same mode from it. */
static int precreate(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static void report_cannot_open(const char *path, const char *why)
{
    log_crit(NULL,
             "request log: cannot open %s: %s; check that the data directory exists and is "
             "writable, or set logs.enabled to false",
             path, why);
}

static void report_corrupt(const char *path, const char *why)
{
    log_crit(NULL,
             "request log: %s is damaged or not a gatehouse database (%s); move %s aside or "
             "delete it, with its -wal and -shm files; gatehouse will create a new one",
             path, why, path);
}

static bool is_corruption(int rc)
{
    int primary = rc & 0xff;
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

/* quick_check's findings come as one text with a line per problem; the log wants one line. */
static void one_line(char *s)
{
    for (char *p = s; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    }
    if (strlen(s) > 200)
        strcpy(s + 197, "...");
}

/* PRAGMA quick_check answers "ok" on a sound file and one row per problem otherwise; a file
 * that is not a database fails before the first row. */
static int check_integrity(reqlog_store_t *s)
{
    char result[512];
    char err[256];
    int rc = query_text(s->db, "PRAGMA quick_check", result, sizeof(result), err, sizeof(err));
    if (rc != SQLITE_OK) {
        if (is_corruption(rc))
            report_corrupt(s->path, err);
        else
            report_cannot_open(s->path, err);
        return -1;
    }
    if (strcmp(result, "ok") != 0) {
        one_line(result);
        report_corrupt(s->path, result);
        return -1;
    }
    return 0;
}

static int schema_version(reqlog_store_t *s, int *version)
{
    char text[32];
    char err[256];
    if (query_text(s->db, "PRAGMA user_version", text, sizeof(text), err, sizeof(err)) !=
        SQLITE_OK) {
        report_cannot_open(s->path, err);
        return -1;
    }
    *version = atoi(text);
    return 0;
}

static int migrate_one(reqlog_store_t *s, int from)
{
    char err[256];
    char bump[64];
    snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", from + 1);

    int rc = exec_sql(s->db, "BEGIN IMMEDIATE", err, sizeof(err));
    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, migrations[from], err, sizeof(err));
    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, bump, err, sizeof(err));
    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, "COMMIT", err, sizeof(err));
    if (rc == SQLITE_OK)
        return 0;

    if (!sqlite3_get_autocommit(s->db))
        (void)exec_sql(s->db, "ROLLBACK", NULL, 0);
    log_crit(NULL, "request log: cannot create the schema (version %d) in %s: %s", from + 1,
             s->path, err);
    return -1;
}

static int migrate(reqlog_store_t *s)
{
    int version;
    if (schema_version(s, &version) != 0)
        return -1;
    if (version > REQLOG_SCHEMA_VERSION) {
        log_crit(NULL,
                 "request log: %s has schema version %d, newer than this gatehouse knows (%d); "
                 "run the newer gatehouse, or move the file aside to start a new log",
                 s->path, version, REQLOG_SCHEMA_VERSION);
        return -1;
    }
    for (int v = version < 0 ? 0 : version; v < REQLOG_SCHEMA_VERSION; v++) {
        if (migrate_one(s, v) != 0)
            return -1;
    }
    return 0;
}

/* auto_vacuum first: it only takes effect while the file has no table yet. */
static int configure(reqlog_store_t *s)
{
    char err[256];
    char mode[32];
    char limit[64];
    snprintf(limit, sizeof(limit), "PRAGMA journal_size_limit = %d", WAL_SIZE_LIMIT);

    int rc = exec_sql(s->db, "PRAGMA auto_vacuum = INCREMENTAL", err, sizeof(err));
    if (rc == SQLITE_OK)
        rc = query_text(s->db, "PRAGMA journal_mode = WAL", mode, sizeof(mode), err, sizeof(err));
    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, "PRAGMA synchronous = NORMAL", err, sizeof(err));
    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, limit, err, sizeof(err));
    if (rc != SQLITE_OK) {
        report_cannot_open(s->path, err);
        return -1;
    }

    /* Some file systems (network mounts) cannot hold WAL's shared memory; the log still works
     * in rollback mode, but a long admin query then delays the writer. */
    if (strcmp(mode, "wal") != 0)
        log_warn(NULL,
                 "request log: %s stays in journal mode %s (WAL refused); queries may "
                 "delay writes",
                 s->path, mode);
    return 0;
}

/* INSERT INTO requests ... VALUES (...), (...), ... with `rows` rows of values. */
static int prepare_insert(reqlog_store_t *s, int rows, sqlite3_stmt **st)
{
    buf_t sql = BUF_INIT;
    buf_appends(&sql, insert_request_head);
    for (int i = 0; i < rows; i++) {
        buf_appends(&sql, i > 0 ? ", " : "");
        buf_appends(&sql, insert_request_values);
    }
    int rc = sqlite3_prepare_v3(s->db, buf_cstr(&sql), -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    buf_free(&sql);
    return rc;
}

static int prepare(reqlog_store_t *s)
{
    int rc = prepare_insert(s, 1, &s->insert_request);
    if (rc == SQLITE_OK)
        rc = prepare_insert(s, REQLOG_INSERT_ROWS, &s->insert_requests);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v3(s->db, insert_tool_sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &s->insert_tool, NULL);
    if (rc != SQLITE_OK) {
        log_crit(NULL, "request log: cannot prepare the inserts on %s: %s", s->path,
                 sqlite3_errmsg(s->db));
        return -1;
    }
    return 0;
}

/* SQLite counts every allocation in global statistics, under a global mutex, unless told not
 * to; gatehouse never reads them, and the lock and unlock around each of the writer's many
 * small allocations were about 5% of its time. The setting is only accepted before SQLite is
 * initialised (the first open); later it fails harmlessly. */
static void sqlite_setup(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int reqlog_store_open(reqlog_store_t *s, const char *path)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    memset(s, 0, sizeof(*s));
    s->path = xstrdup(path);

    if (precreate(path) != 0) {
        report_cannot_open(path, strerror(errno));
        reqlog_store_close(s);
        return -1;
    }

    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        report_cannot_open(path, s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        reqlog_store_close(s);
        return -1;
    }

    /* Another process on the same data directory (a second gatehouse) may hold the write lock
     * for a moment; wait a little instead of failing at once. */
    rc = sqlite3_busy_timeout(s->db, REQLOG_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK || check_integrity(s) != 0 || configure(s) != 0 || migrate(s) != 0 ||
        prepare(s) != 0) {
        reqlog_store_close(s);
        return -1;
    }
    return 0;
}

void reqlog_store_close(reqlog_store_t *s)
{
    sqlite3_finalize(s->insert_request);
    sqlite3_finalize(s->insert_requests);
    sqlite3_finalize(s->insert_tool);
    if (s->db != NULL) {
        /* With every statement finalized, close cannot be busy; a failure here would mean a
         * leaked statement, which is a bug worth a loud line. */
        int rc = sqlite3_close(s->db);
        if (rc != SQLITE_OK)
            log_crit(NULL, "request log: closing %s failed: %s", s->path, sqlite3_errstr(rc));
    }
    free(s->path);
    memset(s, 0, sizeof(*s));
}

/* ---- writing -------------------------------------------------------------------------------- */

/* Binds parameters left to right and keeps the first error, so that an insert reads as a list
 * of its columns. Strings are bound SQLITE_STATIC: the row outlives the statement's use, and
 * the bindings are cleared right after the step. */
typedef struct binder {
    sqlite3_stmt *st;
    int col;
    int rc;
} binder_t;

static void bind_text(binder_t *b, const char *s)
{
    int col = ++b->col;
    if (b->rc == SQLITE_OK)
        b->rc = s != NULL ? sqlite3_bind_text(b->st, col, s, -1, SQLITE_STATIC)
                          : sqlite3_bind_null(b->st, col);
}

static void bind_textn(binder_t *b, const char *s, size_t len)
{
    int col = ++b->col;
    if (b->rc == SQLITE_OK)
        b->rc = s != NULL ? sqlite3_bind_text64(b->st, col, s, len, SQLITE_STATIC, SQLITE_UTF8)
                          : sqlite3_bind_null(b->st, col);
}

static void bind_int(binder_t *b, long v)
{
    int col = ++b->col;
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_int64(b->st, col, v);
}

/* A negative value means "unknown" and is stored as NULL. */
static void bind_opt_int(binder_t *b, long v)
{
    int col = ++b->col;
    if (b->rc == SQLITE_OK)
        b->rc = v >= 0 ? sqlite3_bind_int64(b->st, col, v) : sqlite3_bind_null(b->st, col);
}

static void bind_real(binder_t *b, double v)
{
    int col = ++b->col;
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_double(b->st, col, v);
}

static void bind_opt_real(binder_t *b, double v)
{
    int col = ++b->col;
    if (b->rc == SQLITE_OK)
        b->rc = v >= 0 ? sqlite3_bind_double(b->st, col, v) : sqlite3_bind_null(b->st, col);
}

static void bind_request(binder_t *b, const reqlog_request_row_t *r)
{
    bind_text(b, r->id);
    bind_real(b, r->ts);
    bind_text(b, r->caller);
    bind_text(b, r->dialect);
    bind_text(b, r->method);
    bind_text(b, r->path);
    bind_text(b, r->provider);
    bind_text(b, r->model);
    bind_text(b, r->key_name);
    bind_int(b, r->fallback_index);
    bind_int(b, r->retries);
    bind_int(b, r->status);
    bind_int(b, r->stream ? 1 : 0);
    bind_text(b, r->error_type);
    bind_text(b, r->error_message);
    bind_real(b, r->latency_ms);
    bind_opt_real(b, r->ttft_ms);
    bind_real(b, r->upstream_ms);
    bind_real(b, r->overhead_ms);
    bind_opt_int(b, r->tokens_in);
    bind_opt_int(b, r->tokens_out);
    bind_opt_int(b, r->tokens_cached);
    bind_opt_real(b, r->cost_usd);
    bind_textn(b, r->request_body, r->request_len);
    bind_textn(b, r->response_body, r->response_len);
}

static void bind_tool(binder_t *b, const reqlog_tool_row_t *t)
{
    bind_text(b, t->request_id);
    bind_text(b, t->execution_id);
    bind_text(b, t->source);
    bind_text(b, t->mcp_client);
    bind_text(b, t->tool);
    bind_real(b, t->ts);
    bind_real(b, t->duration_ms);
    bind_int(b, t->ok ? 1 : 0);
    bind_text(b, t->error);
    bind_textn(b, t->arguments, t->arguments_len);
    bind_textn(b, t->result, t->result_len);
}

/* Steps a bound insert, then clears it for the next use. */
static int run_insert(sqlite3_stmt *st, int rc)
{
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    /* reset repeats the step's error, which rc already holds; clear_bindings cannot fail. */
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
    return rc;
}

/* True when `row` starts REQLOG_INSERT_ROWS request rows in a row. */
static bool full_group(const reqlog_row_t *row)
{
    int n = 0;
    for (; row != NULL && row->kind == REQLOG_ROW_REQUEST && n < REQLOG_INSERT_ROWS;
         row = row->next)
        n++;
    return n == REQLOG_INSERT_ROWS;
}

/* Inserts REQLOG_INSERT_ROWS request rows with one statement and moves *row past them. Per
 * statement SQLite starts and ends a statement transaction and reads and writes the
 * AUTOINCREMENT counter; spread over many rows, that work almost disappears. */
static int insert_group(reqlog_store_t *s, const reqlog_row_t **row)
{
    binder_t b = {s->insert_requests, 0, SQLITE_OK};
    for (int i = 0; i < REQLOG_INSERT_ROWS; i++, *row = (*row)->next)
        bind_request(&b, &(*row)->u.req);
    return run_insert(s->insert_requests, b.rc);
}

static int insert_row(reqlog_store_t *s, const reqlog_row_t *row)
{
    sqlite3_stmt *st = row->kind == REQLOG_ROW_REQUEST ? s->insert_request : s->insert_tool;
    binder_t b = {st, 0, SQLITE_OK};
    if (row->kind == REQLOG_ROW_REQUEST)
        bind_request(&b, &row->u.req);
    else
        bind_tool(&b, &row->u.tool);

    return run_insert(st, b.rc);
}

int reqlog_store_write(reqlog_store_t *s, const reqlog_row_t *rows, char *err, size_t err_cap)
{
    int rc = exec_sql(s->db, "BEGIN IMMEDIATE", err, err_cap);

    const reqlog_row_t *row = rows;
    while (rc == SQLITE_OK && row != NULL) {
        if (full_group(row)) {
            rc = insert_group(s, &row);
        } else {
            rc = insert_row(s, row);
            row = row->next;
        }
        if (rc != SQLITE_OK)
            set_err(err, err_cap, sqlite3_errmsg(s->db));
    }

    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, "COMMIT", err, err_cap);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db)) {
        char rb_err[256];
        if (exec_sql(s->db, "ROLLBACK", rb_err, sizeof(rb_err)) != SQLITE_OK)
            log_crit(NULL, "request log: rollback on %s failed: %s", s->path, rb_err);
    }
    return rc;
}

/* ---- retention ------------------------------------------------------------------------------ */

/* Runs one chunked statement with the cutoff; *full is set when it hit the chunk size. */
static int run_chunk(reqlog_store_t *s, const char *sql, double cutoff, bool *full, char *err,
                     size_t err_cap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 1, cutoff);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 2, RETENTION_CHUNK);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_OK && sqlite3_changes(s->db) >= RETENTION_CHUNK)
        *full = true;
    if (rc != SQLITE_OK)
        set_err(err, err_cap, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc;
}

int reqlog_store_retention_step(reqlog_store_t *s, double now_unix, int keep_days, int content_days,
                                bool *more, char *err, size_t err_cap)
{
    double keep_cutoff = now_unix - (double)keep_days * 86400.0;
    double content_cutoff = now_unix - (double)content_days * 86400.0;
    int rc = SQLITE_OK;
    *more = false;

    for (size_t i = 0; rc == SQLITE_OK && i < 2; i++)
        rc = run_chunk(s, retention_delete_sql[i], keep_cutoff, more, err, err_cap);
    for (size_t i = 0; rc == SQLITE_OK && i < 2; i++)
        rc = run_chunk(s, retention_clear_sql[i], content_cutoff, more, err, err_cap);
    return rc;
}

/* After a pass the table has changed shape; PRAGMA optimize refreshes the planner's statistics
 * when it judges them stale, which keeps filtered queries on the right index. */
int reqlog_store_vacuum(reqlog_store_t *s, char *err, size_t err_cap)
{
    int rc = exec_sql(s->db, "PRAGMA incremental_vacuum", err, err_cap);
    if (rc == SQLITE_OK)
        rc = exec_sql(s->db, "PRAGMA optimize", err, err_cap);
    return rc;
}
