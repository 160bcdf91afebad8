/*
 * audit_verify.c - `gatehouse audit verify` and `gatehouse audit show` (contract in audit.h).
 *
 * verify reads every file in chain order, line by line, and checks three things per record:
 * the line is a JSON record, its seq is one more than the previous record's, and its prev is the
 * SHA-256 of the previous line's bytes. It reports the first problem only: after a break,
 * everything that follows is suspect anyway.
 *
 * A broken link alone cannot tell which side changed: when record 7 was edited, it is record
 * 8's prev that no longer matches. So verify looks one record further before it speaks: if
 * record 9 still links to record 8, then 8 is intact and 7 is the one that changed, and 7 is
 * named; otherwise the mismatch is reported where it was seen. A seq that jumps is treated the
 * same way, to tell a deleted record (the missing seq never comes) from two swapped ones (it
 * comes next). The last record cannot be checked against anything after it; docs/audit.md says
 * how to anchor it (verify prints its hash).
 *
 * Both commands accept the audit directory itself or the data directory above it.
 */
#include "telemetry/audit.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/audit_internal.h"
#include "util/alloc.h"
#include "util/buf.h"

/* Where a record is: its file (a path kept alive for the whole run), line and seq. */
typedef struct where {
    const char *file;
    unsigned long line;
    uint64_t seq;
} where_t;

typedef enum pending {
    PEND_NONE = 0,
    PEND_PREV, /* `at`'s prev is not the hash of `before`: which one changed? */
    PEND_JUMP, /* `at`'s seq skips some: deleted, or moved further down? */
} pending_t;

typedef struct verifier {
    FILE *out;
    uint64_t records;
    bool have_last;
    where_t last; /* the last record that passed */
    char last_hash[AUDIT_HASH_HEX];
    pending_t pending;
    where_t before; /* PEND_PREV: the record `at` should link to */
    where_t at;     /* the record where the doubt arose */
    char at_hash[AUDIT_HASH_HEX];
    uint64_t expected; /* PEND_JUMP: the seq that should have come at `at` */
} verifier_t;

/* ---- the directory --------------------------------------------------------------------------- */

/* Lists dir, or dir/audit when dir holds no audit file but that does. *used is the directory
 * the files are in (caller frees). Returns -1 when dir cannot be read. */
static int open_dir(const char *dir, char **used, audit_file_t **files, size_t *n)
{
    if (audit_files_list(dir, files, n) != 0)
        return -1;
    *used = xstrdup(dir);
    if (*n > 0)
        return 0;

    buf_t sub = BUF_INIT;
    buf_appendf(&sub, "%s/audit", dir);
    audit_file_t *sub_files = NULL;
    size_t sub_n = 0;
    if (audit_files_list(buf_cstr(&sub), &sub_files, &sub_n) == 0 && sub_n > 0) {
        audit_files_free(*files, *n);
        free(*used);
        *files = sub_files;
        *n = sub_n;
        *used = buf_release(&sub);
        return 0;
    }
    audit_files_free(sub_files, sub_n);
    buf_free(&sub);
    return 0;
}

static char *file_path(const char *dir, const char *name)
{
    buf_t b = BUF_INIT;
    buf_appendf(&b, "%s/%s", dir, name);
    return buf_release(&b);
}

/* ---- verify ---------------------------------------------------------------------------------- */

static int broken(verifier_t *v, const where_t *w, bool seq_known, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int broken(verifier_t *v, const where_t *w, bool seq_known, const char *fmt, ...)
{
    char seq[32];
    if (seq_known)
        snprintf(seq, sizeof(seq), "%llu", (unsigned long long)w->seq);
    else
        snprintf(seq, sizeof(seq), "?");

    fprintf(v->out, "audit: broken at %s:%lu (seq %s): ", w->file, w->line, seq);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(v->out, fmt, ap);
    va_end(ap);
    fputc('\n', v->out);
    return 1;
}

/* Tells a doubt left open, when nothing (or nothing sound) follows to settle it. */
static int tell_pending(verifier_t *v)
{
    if (v->pending == PEND_PREV)
        return broken(v, &v->at, true,
                      "prev does not match the hash of seq %llu (that record or this one was"
                      " changed, or a record between them deleted)",
                      (unsigned long long)v->before.seq);
    return broken(v, &v->at, true, "seq jumps from %llu to %llu (record deleted)",
                  (unsigned long long)v->expected - 1, (unsigned long long)v->at.seq);
}

/* The record after the doubtful one settles the doubt. Returns 1 (always broken). */
static int settle(verifier_t *v, uint64_t seq, const char *prev)
{
    if (v->pending == PEND_PREV && seq == v->at.seq + 1 && strcmp(prev, v->at_hash) == 0)
        return broken(v, &v->before, true,
                      "record changed: its hash is not the prev stored in seq %llu, and the"
                      " records after it are intact",
                      (unsigned long long)v->at.seq);
    if (v->pending == PEND_JUMP && seq == v->expected)
        return broken(v, &v->at, true,
                      "seq jumps from %llu to %llu and seq %llu follows (records swapped or"
                      " moved)",
                      (unsigned long long)v->expected - 1, (unsigned long long)v->at.seq,
                      (unsigned long long)seq);
    return tell_pending(v);
}

/* seq and prev of a parsed line; false when the line is not a record. */
static bool record_fields(json_t *o, uint64_t *seq, const char **prev)
{
    json_t *s = json_object_get(o, "seq");
    *prev = json_string_value(json_object_get(o, "prev"));
    if (!json_is_integer(s) || json_integer_value(s) < 1 || *prev == NULL ||
        strlen(*prev) != AUDIT_HASH_HEX - 1)
        return false;
    *seq = (uint64_t)json_integer_value(s);
    return true;
}

/* Checks seq and prev against the record before; may open a doubt instead of failing. */
static int check_link(verifier_t *v, const where_t *w, const char *prev, const char *hash)
{
    static const char zeros[AUDIT_HASH_HEX] =
        "0000000000000000000000000000000000000000000000000000000000000000";

    if (!v->have_last && w->seq != 1)
        return broken(v, w, true,
                      "the first record has seq %llu, not 1 (earlier records or"
                      " files missing)",
                      (unsigned long long)w->seq);
    if (!v->have_last && strcmp(prev, zeros) != 0)
        return broken(v, w, true,
                      "the first record's prev is not 64 zeros (earlier records or"
                      " files missing)");
    if (v->have_last && w->seq <= v->last.seq)
        return broken(v, w, true, "seq goes back from %llu to %llu (record duplicated or moved)",
                      (unsigned long long)v->last.seq, (unsigned long long)w->seq);

    if (v->have_last && w->seq != v->last.seq + 1) {
        v->pending = PEND_JUMP;
        v->expected = v->last.seq + 1;
    } else if (v->have_last && strcmp(prev, v->last_hash) != 0) {
        v->pending = PEND_PREV;
        v->before = v->last;
    }
    if (v->pending != PEND_NONE) {
        v->at = *w;
        memcpy(v->at_hash, hash, AUDIT_HASH_HEX);
    }
    return 0;
}

static int check_line(verifier_t *v, where_t *w, const char *line, size_t len, bool complete)
{
    if (!complete) {
        if (v->pending != PEND_NONE)
            return tell_pending(v);
        return broken(v, w, false,
                      "the last line has no newline: the writer stopped while"
                      " writing it (its next start cuts it and writes a recovery record)");
    }

    json_t *o = json_loadb(line, len, 0, NULL);
    uint64_t seq = 0;
    const char *prev = NULL;
    int rc = 0;
    if (o == NULL || !record_fields(o, &seq, &prev)) {
        rc = v->pending != PEND_NONE ? tell_pending(v)
                                     : broken(v, w, false,
                                              o == NULL ? "not valid JSON (after seq %llu)"
                                                        : "not an audit record (after seq %llu)",
                                              (unsigned long long)v->last.seq);
        json_decref(o);
        return rc;
    }
    if (v->pending != PEND_NONE) {
        rc = settle(v, seq, prev);
        json_decref(o);
        return rc;
    }

    char hash[AUDIT_HASH_HEX];
    audit_sha256_hex(line, len, hash);
    w->seq = seq;
    rc = check_link(v, w, prev, hash);
    json_decref(o);
    if (rc != 0)
        return rc;

    v->records++;
    v->have_last = true;
    v->last = *w;
    memcpy(v->last_hash, hash, AUDIT_HASH_HEX);
    return 0;
}

/* Returns 0 when the file is sound so far, 1 when broken (reported), 2 when unreadable. */
static int verify_file(verifier_t *v, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(v->out, "audit: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    where_t w = {.file = path, .line = 0};
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        w.line++;
        bool complete = line[n - 1] == '\n';
        rc = check_line(v, &w, line, (size_t)n - (complete ? 1 : 0), complete);
    }
    if (rc == 0 && ferror(f)) {
        fprintf(v->out, "audit: cannot read %s: %s\n", path, strerror(errno));
        rc = 2;
    }
    free(line);
    fclose(f);
    return rc;
}

int audit_verify(const char *dir, FILE *out)
{
    char *used;
    audit_file_t *files;
    size_t n;
    if (open_dir(dir, &used, &files, &n) != 0) {
        fprintf(out, "audit: cannot read %s: %s\n", dir, strerror(errno));
        return 2;
    }
    if (n == 0) {
        fprintf(out, "audit: no audit files (audit-*.jsonl) in %s\n", dir);
        free(used);
        return 2;
    }

    verifier_t v = {.out = out};
    char **paths = xcalloc(n, sizeof(*paths));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        paths[i] = file_path(used, files[i].name);
        rc = verify_file(&v, paths[i]);
    }
    if (rc == 0 && v.pending != PEND_NONE)
        rc = tell_pending(&v);
    if (rc == 0) {
        fprintf(out, "audit: %llu records in %zu files, chain intact\n",
                (unsigned long long)v.records, n);
        if (v.have_last)
            fprintf(out, "audit: last record seq %llu, sha256 %s\n", (unsigned long long)v.last.seq,
                    v.last_hash);
    }

    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    audit_files_free(files, n);
    free(used);
    return rc;
}

/* ---- show ------------------------------------------------------------------------------------ */

/* Bytes worth showing as text: no control characters other than line breaks and tabs. A body
 * in another encoding (Latin-1) is shown as it is; a terminal copes with that better than a
 * reader copes with base64. */
static bool is_printable(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static void show_text(FILE *out, const char *data, size_t len)
{
    fwrite(data, 1, len, out);
    if (len == 0 || data[len - 1] != '\n')
        fputc('\n', out);
}

static void show_base64(FILE *out, const char *b64)
{
    char *bytes;
    size_t len;
    if (audit_unbase64(b64, &bytes, &len) != 0) {
        fprintf(out, "(base64 that does not decode: %s)\n", b64);
        return;
    }
    if (is_printable(bytes, len))
        show_text(out, bytes, len);
    else
        fprintf(out, "(%zu bytes, not text; base64: %s)\n", len, b64);
    free(bytes);
}

static void show_body(FILE *out, const char *title, json_t *body)
{
    fprintf(out, "%s:\n", title);
    json_t *text = json_object_get(body, "text");
    json_t *b64 = json_object_get(body, "base64");
    json_t *sha = json_object_get(body, "sha256");

    if (json_is_string(text))
        show_text(out, json_string_value(text), json_string_length(text));
    else if (json_is_string(b64))
        show_base64(out, json_string_value(b64));
    else if (json_is_string(sha))
        fprintf(out, "(content not recorded: %lld bytes, sha256 %s)\n",
                (long long)json_integer_value(json_object_get(body, "bytes")),
                json_string_value(sha));
    else
        fprintf(out, "(none)\n");
}

static void show_headers(FILE *out, const char *title, json_t *headers)
{
    fprintf(out, "%s:\n", title);
    size_t i;
    json_t *h;
    json_array_foreach (headers, i, h) {
        json_t *value = json_array_get(h, 1);
        const char *b64 = json_string_value(json_object_get(value, "base64"));
        if (b64 != NULL)
            fprintf(out, "  %s: (base64) %s\n", json_string_value(json_array_get(h, 0)), b64);
        else
            fprintf(out, "  %s: %s\n", json_string_value(json_array_get(h, 0)),
                    json_string_value(value));
    }
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "-";
}

static void show_record(FILE *out, json_t *o, const char *file, unsigned long line)
{
    fprintf(out, "== seq %lld, %s, %s to %s (%s:%lu)\n",
            (long long)json_integer_value(json_object_get(o, "seq")), str(o, "ts"), str(o, "kind"),
            str(o, "target"), file, line);
    fprintf(out, "%s %s\n", str(o, "method"), str(o, "url"));
    fprintf(out, "status %lld, first byte after %.3f s, done after %.3f s\n",
            (long long)json_integer_value(json_object_get(o, "status")),
            json_number_value(json_object_get(o, "first_byte_s")),
            json_number_value(json_object_get(o, "duration_s")));
    if (json_is_string(json_object_get(o, "error")))
        fprintf(out, "error: %s\n", str(o, "error"));
    show_headers(out, "request headers", json_object_get(o, "req_headers"));
    show_body(out, "request body", json_object_get(o, "req_body"));
    show_headers(out, "response headers", json_object_get(o, "resp_headers"));
    show_body(out, "response body", json_object_get(o, "resp_body"));
    fputc('\n', out);
}

/* Prints the file's records of request_id; returns how many, or -1 when unreadable. */
static long show_file(FILE *out, const char *path, const char *name, const char *request_id)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned long lineno = 0;
    long found = 0;
    size_t id_len = strlen(request_id);
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        /* Most lines are someone else's: skip them without parsing. */
        if (memmem(line, (size_t)n, request_id, id_len) == NULL)
            continue;
        json_t *o = json_loadb(line, (size_t)n, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "request_id"));
        if (id != NULL && strcmp(id, request_id) == 0) {
            show_record(out, o, name, lineno);
            found++;
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return found;
}

int audit_show(const char *dir, const char *request_id, FILE *out)
{
    char *used;
    audit_file_t *files;
    size_t n;
    if (open_dir(dir, &used, &files, &n) != 0) {
        fprintf(out, "audit: cannot read %s: %s\n", dir, strerror(errno));
        return 2;
    }

    long total = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *path = file_path(used, files[i].name);
        long found = show_file(out, path, files[i].name, request_id);
        if (found < 0) {
            fprintf(out, "audit: cannot read %s: %s\n", path, strerror(errno));
            rc = 2;
        }
        total += found > 0 ? found : 0;
        free(path);
    }
    if (rc == 0 && total == 0) {
        fprintf(out, "audit: no exchange of request %s in %s\n", request_id, used);
        rc = 1;
    }

    audit_files_free(files, n);
    free(used);
    return rc;
}
