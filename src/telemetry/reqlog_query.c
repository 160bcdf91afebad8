/*
 * reqlog_query.c - reading the request log for the admin API (GET /api/logs, GET
 * /api/logs/{id}); see reqlog.h for the contract and docs/request-log.md for the parameters.
 *
 * Each calling thread gets its own read-only connection, opened on first use and kept in a
 * thread-specific slot (closed when the thread exits), so worker threads never share a
 * connection and never take a lock to query. WAL mode lets these readers run beside the
 * writer. A connection remembers the generation of the log it was opened on; after a restart
 * of the log (tests do that, with another directory) it is reopened on the new file.
 *
 * Pages are keyset-paginated on (ts DESC, seq DESC): the cursor is the last row's position,
 * not an offset, so rows written while a client pages through never shift a page, and a deep
 * page costs the same as the first. The cursor is 32 hex digits (the bits of ts, then seq); it
 * is opaque to clients and checked before use.
 *
 * A query runs on the calling thread, which for the admin API is a worker with an event loop;
 * a progress handler therefore stops any query after QUERY_TIME_LIMIT_S, so that a substring
 * search over a large log cannot stall the other requests of that worker for long.
 */
#include "telemetry/reqlog.h"

#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telemetry/reqlog_internal.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define LIMIT_DEFAULT 50
#define LIMIT_MAX 1000
#define QUERY_TIME_LIMIT_S 2.0
#define CURSOR_HEX 32

typedef enum col_type {
    COL_TEXT = 0,
    COL_INT,
    COL_REAL,
    COL_BOOL,
    COL_BODY, /* JSON text parsed back into JSON, or kept as a string */
} col_type_t;

typedef struct column {
    const char *name;
    col_type_t type;
} column_t;

/* What a row of GET /api/logs shows, in this order; bodies only in reqlog_get. */
static const column_t request_columns[] = {
    {"id", COL_TEXT},
    {"ts", COL_REAL},
    {"caller", COL_TEXT},
    {"dialect", COL_TEXT},
    {"method", COL_TEXT},
    {"path", COL_TEXT},
    {"provider", COL_TEXT},
    {"model", COL_TEXT},
    {"key_name", COL_TEXT},
    {"fallback_index", COL_INT},
    {"retries", COL_INT},
    {"status", COL_INT},
    {"stream", COL_BOOL},
    {"error_type", COL_TEXT},
    {"error_message", COL_TEXT},
    {"latency_ms", COL_REAL},
    {"ttft_ms", COL_REAL},
    {"upstream_ms", COL_REAL},
    {"overhead_ms", COL_REAL},
    {"tokens_in", COL_INT},
    {"tokens_out", COL_INT},
    {"tokens_cached", COL_INT},
    {"cost_usd", COL_REAL},
};

static const column_t body_columns[] = {
    {"request_body", COL_BODY},
    {"response_body", COL_BODY},
};

static const column_t tool_columns[] = {
    {"execution_id", COL_TEXT}, {"source", COL_TEXT}, {"mcp_client", COL_TEXT},
    {"tool", COL_TEXT},         {"ts", COL_REAL},     {"duration_ms", COL_REAL},
    {"ok", COL_BOOL},           {"error", COL_TEXT},  {"arguments", COL_BODY},
    {"result", COL_BODY},
};

#define N_COLS(a) (sizeof(a) / sizeof((a)[0]))

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ---- read connections, one per thread -------------------------------------------------------- */

typedef struct reader {
    sqlite3 *db;
    unsigned generation;
} reader_t;

static pthread_key_t reader_key;
static pthread_once_t reader_once = PTHREAD_ONCE_INIT;

static void reader_close_db(reader_t *r)
{
    if (r->db == NULL)
        return;
    int rc = sqlite3_close(r->db);
    if (rc != SQLITE_OK)
        log_crit(NULL, "request log: closing a read connection failed: %s", sqlite3_errstr(rc));
    r->db = NULL;
}

static void reader_destroy(void *p)
{
    reader_close_db(p);
    free(p);
}

static void reader_key_init(void)
{
    int rc = pthread_key_create(&reader_key, reader_destroy);
    if (rc != 0)
        log_crit(NULL, "request log: cannot create the reader key: %s", strerror(rc));
}

void reqlog_reader_close(void)
{
    pthread_once(&reader_once, reader_key_init);
    reader_t *r = pthread_getspecific(reader_key);
    if (r == NULL)
        return;
    reader_destroy(r);
    (void)pthread_setspecific(reader_key, NULL);
}

static int open_reader(reader_t *r, const char *path, char *err, size_t cap)
{
    int rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(r->db, REQLOG_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK) {
        set_err(err, cap, "cannot open the request log: %s",
                r->db != NULL ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
        reader_close_db(r);
        return -1;
    }
    return 0;
}

/* The calling thread's connection to the running log, opened (or reopened) as needed. */
static sqlite3 *reader_get(char *err, size_t cap)
{
    char *path;
    unsigned generation;
    if (!reqlog_current_db(&path, &generation)) {
        set_err(err, cap, "%s", "the request log is off");
        return NULL;
    }

    pthread_once(&reader_once, reader_key_init);
    reader_t *r = pthread_getspecific(reader_key);
    if (r == NULL) {
        r = xcalloc(1, sizeof(*r));
        if (pthread_setspecific(reader_key, r) != 0) {
            free(r);
            free(path);
            set_err(err, cap, "%s", "cannot keep a read connection for this thread");
            return NULL;
        }
    }
    if (r->db != NULL && r->generation != generation)
        reader_close_db(r);
    if (r->db == NULL && open_reader(r, path, err, cap) == 0)
        r->generation = generation;
    free(path);
    return r->db;
}

/* ---- time limit ------------------------------------------------------------------------------ */

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SQLite calls this every few thousand steps; a non-zero answer interrupts the statement. */
static int past_deadline(void *arg)
{
    return mono_now() > *(const double *)arg;
}

/* ---- text and JSON -------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when invalid. Overlong forms,
 * surrogates and code points past U+10FFFF are invalid, as jansson sees them. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;

    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (len > n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    }
    return len;
}

/* A JSON string of the text. Stored text is whatever the client or provider sent, which may
 * not be UTF-8; invalid bytes become U+FFFD rather than failing the whole answer. */
static json_t *text_json(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j != NULL)
        return j;

    buf_t b = BUF_INIT;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(u + i, n - i);
        if (len == 0) {
            buf_appends(&b, "\xEF\xBF\xBD");
            i++;
        } else {
            buf_append(&b, s + i, len);
            i += len;
        }
    }
    j = json_stringn(buf_cstr(&b), b.len);
    buf_free(&b);
    return j != NULL ? j : json_string("");
}

/* A body that is a JSON object or array comes back as JSON; anything else (SSE text, a cut
 * body, plain text) as a string. */
static json_t *body_json(const char *s, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb(s, n, 0, &jerr);
    return j != NULL ? j : text_json(s, n);
}

static json_t *column_json(sqlite3_stmt *st, int i, col_type_t type)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();

    switch (type) {
    case COL_INT:
        return json_integer(sqlite3_column_int64(st, i));
    case COL_REAL:
        return json_real(sqlite3_column_double(st, i));
    case COL_BOOL:
        return json_boolean(sqlite3_column_int(st, i) != 0);
    case COL_TEXT:
    case COL_BODY:
        break;
    }
    const char *s = (const char *)sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    if (s == NULL)
        return json_null();
    return type == COL_BODY ? body_json(s, n) : text_json(s, n);
}

/* Adds columns [first, first + n) of the statement to obj under the names of cols. */
static void columns_to_json(json_t *obj, sqlite3_stmt *st, int first, const column_t *cols,
                            size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_object_set_new(obj, cols[i].name, column_json(st, first + (int)i, cols[i].type));
}

static void select_list(buf_t *sql, const column_t *cols, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_appendf(sql, ", %s", cols[i].name);
}

/* ---- cursors -------------------------------------------------------------------------------- */

typedef struct cursor {
    double ts;
    int64_t seq;
} cursor_t;

static void cursor_encode(const cursor_t *c, char out[CURSOR_HEX + 1])
{
    uint64_t bits;
    memcpy(&bits, &c->ts, sizeof(bits));
    snprintf(out, CURSOR_HEX + 1, "%016llx%016llx", (unsigned long long)bits,
             (unsigned long long)c->seq);
}

static bool hex16(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

static bool cursor_decode(const char *s, cursor_t *c)
{
    uint64_t bits, seq;
    if (strlen(s) != CURSOR_HEX || !hex16(s, &bits) || !hex16(s + 16, &seq))
        return false;
    memcpy(&c->ts, &bits, sizeof(c->ts));
    c->seq = (int64_t)seq;
    return isfinite(c->ts) && c->seq > 0;
}

/* ---- GET /api/logs -------------------------------------------------------------------------- */

/* The WHERE clause's parameters, bound in the order they were added. */
typedef struct param {
    enum { P_TEXT, P_REAL, P_INT } type;
    const char *text;
    double real;
    int64_t i;
} param_t;

typedef struct where {
    buf_t sql;
    param_t params[12];
    int n;
} where_t;

static void add_text(where_t *w, const char *cond, const char *v)
{
    buf_appends(&w->sql, cond);
    w->params[w->n++] = (param_t){.type = P_TEXT, .text = v};
}

static void add_real(where_t *w, const char *cond, double v)
{
    buf_appends(&w->sql, cond);
    w->params[w->n++] = (param_t){.type = P_REAL, .real = v};
}

static void add_int(where_t *w, const char *cond, int64_t v)
{
    buf_appends(&w->sql, cond);
    w->params[w->n++] = (param_t){.type = P_INT, .i = v};
}

/* "%<q with %, _ and \ escaped>%" for LIKE ... ESCAPE '\'. */
static char *like_pattern(const char *q)
{
    buf_t b = BUF_INIT;
    buf_appendc(&b, '%');
    for (const char *p = q; *p != '\0'; p++) {
        if (*p == '%' || *p == '_' || *p == '\\')
            buf_appendc(&b, '\\');
        buf_appendc(&b, *p);
    }
    buf_appendc(&b, '%');
    return buf_release(&b);
}

static void build_where(where_t *w, const reqlog_filter_t *f, const char *pattern,
                        const cursor_t *cur)
{
    buf_appends(&w->sql, " WHERE 1 = 1");
    if (f->provider != NULL && f->provider[0] != '\0')
        add_text(w, " AND provider = ?", f->provider);
    if (f->model != NULL && f->model[0] != '\0')
        add_text(w, " AND model = ?", f->model);
    if (f->status != 0)
        add_int(w, " AND status = ?", f->status);
    /* requests_status holds only the rows whose status is not 200 (reqlog_store.c); the
     * planner uses it when the query says so in these very words. */
    if (f->status != 0 && f->status != 200)
        buf_appends(&w->sql, " AND status <> 200");
    if (f->since_unix > 0)
        add_real(w, " AND ts >= ?", f->since_unix);
    if (f->until_unix > 0)
        add_real(w, " AND ts < ?", f->until_unix);
    if (pattern != NULL) {
        add_text(w, " AND (error_message LIKE ? ESCAPE '\\'", pattern);
        add_text(w, " OR request_body LIKE ? ESCAPE '\\'", pattern);
        add_text(w, " OR response_body LIKE ? ESCAPE '\\')", pattern);
    }
    if (cur != NULL) {
        add_real(w, " AND (ts < ?", cur->ts);
        add_real(w, " OR (ts = ?", cur->ts);
        add_int(w, " AND seq < ?))", cur->seq);
    }
}

static int bind_params(sqlite3_stmt *st, const where_t *w)
{
    int rc = SQLITE_OK;
    for (int i = 0; rc == SQLITE_OK && i < w->n; i++) {
        const param_t *p = &w->params[i];
        if (p->type == P_TEXT)
            rc = sqlite3_bind_text(st, i + 1, p->text, -1, SQLITE_STATIC);
        else if (p->type == P_REAL)
            rc = sqlite3_bind_double(st, i + 1, p->real);
        else
            rc = sqlite3_bind_int64(st, i + 1, p->i);
    }
    return rc;
}

static void query_failed(sqlite3 *db, int rc, char *err, size_t cap)
{
    if (rc == SQLITE_INTERRUPT)
        set_err(err, cap,
                "the query took longer than %.0f s; narrow it with since, until, provider or "
                "model",
                QUERY_TIME_LIMIT_S);
    else
        set_err(err, cap, "request log query failed: %s", sqlite3_errmsg(db));
}

/* Steps through at most limit rows into data; a row beyond them means there is a next page,
 * whose cursor is the position of the last row kept. */
static int collect_rows(sqlite3_stmt *st, int limit, json_t *data, json_t **next)
{
    cursor_t last = {0, 0};
    int count = 0;
    int rc;

    *next = json_null();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == limit) {
            char text[CURSOR_HEX + 1];
            cursor_encode(&last, text);
            json_decref(*next);
            *next = json_string(text);
            break;
        }
        json_t *row = json_object();
        columns_to_json(row, st, 1, request_columns, N_COLS(request_columns));
        json_array_append_new(data, row);
        last.seq = sqlite3_column_int64(st, 0);
        last.ts = sqlite3_column_double(st, 2);
        count++;
    }
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static json_t *run_query(sqlite3 *db, const where_t *w, int limit, char *err, size_t cap)
{
    buf_t sql = BUF_INIT;
    buf_appends(&sql, "SELECT seq");
    select_list(&sql, request_columns, N_COLS(request_columns));
    buf_appendf(&sql, " FROM requests%s ORDER BY ts DESC, seq DESC LIMIT %d", buf_cstr(&w->sql),
                limit + 1);

    double deadline = mono_now() + QUERY_TIME_LIMIT_S;
    sqlite3_progress_handler(db, 10000, past_deadline, &deadline);

    sqlite3_stmt *st = NULL;
    json_t *data = json_array();
    json_t *next = NULL;
    int rc = sqlite3_prepare_v2(db, buf_cstr(&sql), -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = bind_params(st, w);
    if (rc == SQLITE_OK)
        rc = collect_rows(st, limit, data, &next);
    if (rc != SQLITE_OK)
        query_failed(db, rc, err, cap);

    sqlite3_finalize(st);
    sqlite3_progress_handler(db, 0, NULL, NULL);
    buf_free(&sql);
    if (rc != SQLITE_OK) {
        json_decref(data);
        json_decref(next);
        return NULL;
    }
    return json_pack("{s:o, s:o}", "data", data, "next_cursor", next);
}

json_t *reqlog_query(const reqlog_filter_t *f, char *err, size_t err_cap)
{
    int limit = f->limit <= 0 ? LIMIT_DEFAULT : f->limit > LIMIT_MAX ? LIMIT_MAX : f->limit;
    cursor_t cur;
    bool has_cursor = f->cursor != NULL && f->cursor[0] != '\0';
    if (has_cursor && !cursor_decode(f->cursor, &cur)) {
        set_err(err, err_cap, "%s", "bad cursor: pass the next_cursor of the previous page as is");
        return NULL;
    }

    sqlite3 *db = reader_get(err, err_cap);
    if (db == NULL)
        return NULL;

    char *pattern = f->q != NULL && f->q[0] != '\0' ? like_pattern(f->q) : NULL;
    where_t w = {.sql = BUF_INIT};
    build_where(&w, f, pattern, has_cursor ? &cur : NULL);

    json_t *out = run_query(db, &w, limit, err, err_cap);
    buf_free(&w.sql);
    free(pattern);
    return out;
}

/* ---- GET /api/logs/{id} --------------------------------------------------------------------- */

/* The tool calls made for a request id, oldest first. */
static int tool_calls_of(sqlite3 *db, const char *id, json_t *out)
{
    buf_t sql = BUF_INIT;
    buf_appends(&sql, "SELECT seq");
    select_list(&sql, tool_columns, N_COLS(tool_columns));
    buf_appends(&sql, " FROM tool_calls WHERE request_id = ? ORDER BY ts, seq");

    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, buf_cstr(&sql), -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *call = json_object();
        columns_to_json(call, st, 1, tool_columns, N_COLS(tool_columns));
        json_array_append_new(out, call);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    buf_free(&sql);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The newest row with that id (a client may reuse an x-request-id), bodies included. */
static int request_by_id(sqlite3 *db, const char *id, json_t **out)
{
    buf_t sql = BUF_INIT;
    buf_appends(&sql, "SELECT seq");
    select_list(&sql, request_columns, N_COLS(request_columns));
    select_list(&sql, body_columns, N_COLS(body_columns));
    buf_appends(&sql, " FROM requests WHERE id = ? ORDER BY ts DESC, seq DESC LIMIT 1");

    sqlite3_stmt *st = NULL;
    *out = NULL;
    int rc = sqlite3_prepare_v2(db, buf_cstr(&sql), -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = json_object();
        int first = 1 + (int)N_COLS(request_columns);
        columns_to_json(*out, st, 1, request_columns, N_COLS(request_columns));
        columns_to_json(*out, st, first, body_columns, N_COLS(body_columns));
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    buf_free(&sql);
    return rc;
}

json_t *reqlog_get(const char *id, char *err, size_t err_cap)
{
    if (id == NULL || id[0] == '\0') {
        set_err(err, err_cap, "%s", "no request id given");
        return NULL;
    }
    sqlite3 *db = reader_get(err, err_cap);
    if (db == NULL)
        return NULL;

    json_t *row = NULL;
    json_t *calls = json_array();
    int rc = request_by_id(db, id, &row);
    if (rc == SQLITE_OK && row != NULL)
        rc = tool_calls_of(db, id, calls);

    if (rc != SQLITE_OK) {
        query_failed(db, rc, err, err_cap);
        json_decref(row);
        json_decref(calls);
        return NULL;
    }
    if (row == NULL) {
        set_err(err, err_cap, "no request with id %s in the log", id);
        json_decref(calls);
        return NULL;
    }
    json_object_set_new(row, "tool_calls", calls);
    return row;
}
