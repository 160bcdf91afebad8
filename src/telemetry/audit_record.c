/*
 * audit_record.c - one exchange becomes one audit line (see audit_internal.h).
 *
 * audit_submit copies the exchange on the worker thread (audit_entry_copy) and nothing more;
 * everything that costs CPU happens here, on the writer thread, when the line is made:
 *
 *   - secret request headers (redact_is_secret_header) keep their name and get their value's
 *     redacted form; "Bearer sk-..." keeps its scheme word;
 *   - the values of those headers, each word of them, and the values of secret-looking query
 *     parameters become the exchange's secrets, and every occurrence of a secret is scrubbed
 *     (redact_scrub) out of the URL, the other header values, both bodies and the error: a
 *     provider that echoes the key in an error body must not put it on disk;
 *   - bodies are {"text": ...} when they are UTF-8 without NUL bytes, {"base64": ...} otherwise,
 *     or {"sha256": ..., "bytes": N} when content recording is off (hash of the bytes as sent).
 *
 * Keys are set in a fixed order and jansson keeps insertion order, so two writers given the same
 * entry make the same bytes, and the hash chain is over exactly those bytes.
 */
#include "telemetry/audit_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/redact.h"

#define REDACTED_MAX 64   /* room for redact_secret's output */
#define MIN_SECRET_LEN 8  /* redact_scrub ignores shorter ones: they match ordinary words */
#define PARAM_NAME_MAX 64 /* query parameter names compared up to this length */

/* ---- copies ---------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static char *dup_bytes(const char *data, size_t len)
{
    if (data == NULL)
        return NULL;
    char *p = xmalloc(len + 1);
    memcpy(p, data, len);
    p[len] = '\0';
    return p;
}

static char **dup_headers(const char *const *headers)
{
    if (headers == NULL)
        return NULL;

    size_t n = 0;
    while (headers[n] != NULL)
        n++;
    char **copy = xmalloc((n + 1) * sizeof(*copy));
    for (size_t i = 0; i < n; i++)
        copy[i] = xstrdup(headers[i]);
    copy[n] = NULL;
    return copy;
}

static void free_headers(char **headers)
{
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        free(headers[i]);
    free(headers);
}

audit_entry_t *audit_entry_copy(const telemetry_exchange_t *x)
{
    audit_entry_t *e = xcalloc(1, sizeof(*e));
    e->request_id = dup_or_null(x->request_id);
    e->kind = dup_or_null(x->kind);
    e->target = dup_or_null(x->target);
    e->method = dup_or_null(x->method);
    e->url = dup_or_null(x->url);
    e->req_headers = dup_headers(x->req_headers);
    e->req_body = dup_bytes(x->req_body, x->req_len);
    e->req_len = x->req_body != NULL ? x->req_len : 0;
    e->status = x->status;
    e->resp_headers = dup_headers(x->resp_headers);
    e->resp_body = dup_bytes(x->resp_body, x->resp_len);
    e->resp_len = x->resp_body != NULL ? x->resp_len : 0;
    e->started_unix = x->started_unix;
    e->first_byte_s = x->first_byte_s;
    e->duration_s = x->duration_s;
    e->error = dup_or_null(x->error);
    e->record_content = x->record_content;
    e->bytes = e->req_len + e->resp_len;
    return e;
}

audit_entry_t *audit_entry_note(const char *kind, const char *text)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);

    audit_entry_t *e = xcalloc(1, sizeof(*e));
    e->kind = xstrdup(kind);
    e->error = xstrdup(text);
    e->started_unix = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    e->first_byte_s = -1;
    return e;
}

void audit_entry_free(audit_entry_t *e)
{
    if (e == NULL)
        return;
    free(e->request_id);
    free(e->kind);
    free(e->target);
    free(e->method);
    free(e->url);
    free_headers(e->req_headers);
    free(e->req_body);
    free_headers(e->resp_headers);
    free(e->resp_body);
    free(e->error);
    free(e);
}

/* ---- hashing and base64 ---------------------------------------------------------------------- */

void audit_sha256_hex(const void *data, size_t len, char out[AUDIT_HASH_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        /* Cannot happen with a working libcrypto; a hash of zeros breaks verify visibly. */
        memset(md, 0, sizeof(md));
        md_len = 32;
    }
    for (unsigned int i = 0; i < md_len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

char *audit_base64(const void *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    size_t done = 0;
    size_t used = 0;

    /* EVP_EncodeBlock takes an int length; pieces that are a multiple of 3 bytes encode to the
     * same text as the whole. */
    while (done < len) {
        size_t piece = len - done < (size_t)3 << 28 ? len - done : (size_t)3 << 28;
        used += (size_t)EVP_EncodeBlock((unsigned char *)out + used,
                                        (const unsigned char *)data + done, (int)piece);
        done += piece;
    }
    out[used] = '\0';
    return out;
}

int audit_unbase64(const char *text, char **out, size_t *out_len)
{
    size_t len = strlen(text);
    if (len % 4 != 0 || len > (size_t)1 << 30)
        return -1;

    unsigned char *bytes = xmalloc(len / 4 * 3 + 1);
    int n = EVP_DecodeBlock(bytes, (const unsigned char *)text, (int)len);
    if (n < 0) {
        free(bytes);
        return -1;
    }

    /* EVP_DecodeBlock counts the padding as zero bytes. */
    size_t got = (size_t)n;
    for (size_t i = len; i > 0 && text[i - 1] == '=' && got > 0; i--)
        got--;
    bytes[got] = '\0';
    *out = (char *)bytes;
    *out_len = got;
    return 0;
}

/* ---- secrets --------------------------------------------------------------------------------- */

typedef struct secrets {
    char **v;
    size_t n;
    size_t cap;
} secrets_t;

static void secrets_add(secrets_t *s, const char *value, size_t len)
{
    if (len < MIN_SECRET_LEN)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = xstrndup(value, len);
}

static void secrets_free(secrets_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* The value whole, and each word of it: "Bearer sk-..." is scrubbed as the key alone too, since
 * an error body quotes the key, not the header. */
static void secrets_add_value(secrets_t *s, const char *value)
{
    size_t len = strlen(value);
    secrets_add(s, value, len);

    size_t i = 0;
    while (i < len) {
        size_t word = strcspn(value + i, " \t,;");
        if (word < len)
            secrets_add(s, value + i, word);
        i += word + 1;
    }
}

/* Splits "Name: value" into the name (copied into name, cut to cap) and the value. */
static const char *header_split(const char *line, char *name, size_t cap)
{
    const char *colon = strchr(line, ':');
    size_t len = colon != NULL ? (size_t)(colon - line) : strlen(line);
    snprintf(name, cap, "%.*s", (int)len, line);

    if (colon == NULL)
        return "";
    return colon + 1 + strspn(colon + 1, " \t");
}

static void secrets_from_headers(secrets_t *s, char *const *headers)
{
    char name[256];
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        const char *value = header_split(headers[i], name, sizeof(name));
        if (redact_is_secret_header(name))
            secrets_add_value(s, value);
    }
}

/* Scrubs every secret out of a NUL-terminated string in place. Redacted forms are never longer
 * than the secrets they replace (redact.c), so the string only shrinks. */
static void scrub_string(char *text, const secrets_t *s)
{
    size_t cap = strlen(text) + 1;
    for (size_t i = 0; i < s->n; i++)
        redact_scrub(text, cap, s->v[i]);
}

/* Bytes may hold NULs, where redact_scrub would stop; a secret never spans one, so each piece
 * between NULs is scrubbed alone. Returns a new buffer (caller frees) and its length. */
static char *scrub_bytes(const char *data, size_t len, const secrets_t *s, size_t *out_len)
{
    buf_t out = BUF_INIT;
    buf_reserve(&out, len + 1);

    size_t at = 0;
    while (at <= len) {
        const char *nul = memchr(data + at, '\0', len - at);
        size_t piece = nul != NULL ? (size_t)(nul - (data + at)) : len - at;
        char *copy = xstrndup(data + at, piece);
        scrub_string(copy, s);
        buf_appends(&out, copy);
        free(copy);
        if (nul == NULL)
            break;
        buf_appendc(&out, '\0');
        at += piece + 1;
    }
    *out_len = out.len;
    return buf_release(&out);
}

/* ---- the URL --------------------------------------------------------------------------------- */

/* Query parameters that carry credentials: Gemini's ?key=, api_key, access_token, signed URLs'
 * X-Amz-Signature and X-Amz-Credential. Over-matching costs a redacted harmless value; missing
 * one costs a key on disk. */
static bool is_secret_param(const char *name, size_t len)
{
    static const char *const words[] = {"key",    "token",     "secret",     "password",
                                        "passwd", "signature", "credential", "auth"};
    char lower[PARAM_NAME_MAX + 1];
    size_t n = len < PARAM_NAME_MAX ? len : PARAM_NAME_MAX;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[n] = '\0';

    if (strcmp(lower, "sig") == 0)
        return true;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strstr(lower, words[i]) != NULL)
            return true;
    }
    return false;
}

/* One "name=value" of the query: secret values are redacted and remembered for scrubbing. */
static void url_param(buf_t *out, const char *param, size_t len, secrets_t *s)
{
    const char *eq = memchr(param, '=', len);
    if (eq == NULL || eq + 1 == param + len || !is_secret_param(param, (size_t)(eq - param))) {
        buf_append(out, param, len);
        return;
    }

    size_t vlen = (size_t)(param + len - (eq + 1));
    char *value = xstrndup(eq + 1, vlen);
    char shown[REDACTED_MAX];
    redact_secret(value, shown, sizeof(shown));
    secrets_add(s, value, vlen);
    free(value);

    buf_append(out, param, (size_t)(eq + 1 - param));
    buf_appends(out, shown);
}

/* The URL with secret query values redacted (caller frees). */
static char *url_redact(const char *url, secrets_t *s)
{
    const char *query = strchr(url, '?');
    if (query == NULL)
        return xstrdup(url);

    buf_t out = BUF_INIT;
    buf_append(&out, url, (size_t)(query + 1 - url));

    const char *p = query + 1;
    const char *end = p + strcspn(p, "#");
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        url_param(&out, p, (size_t)(stop - p), s);
        if (amp == NULL)
            break;
        buf_appendc(&out, '&');
        p = amp + 1;
    }
    buf_appends(&out, end);
    return buf_release(&out);
}

/* ---- JSON pieces ----------------------------------------------------------------------------- */

/* A string when the bytes are UTF-8 without NUL (jansson checks), else {"base64": ...}. */
static json_t *json_text(const char *data, size_t len, bool *is_text)
{
    json_t *s = memchr(data, '\0', len) == NULL ? json_stringn(data, len) : NULL;
    *is_text = s != NULL;
    if (s != NULL)
        return s;

    char *b64 = audit_base64(data, len);
    json_t *o = json_pack("{s:s}", "base64", b64);
    free(b64);
    return o;
}

static json_t *json_str(const char *s)
{
    bool is_text;
    return s != NULL ? json_text(s, strlen(s), &is_text) : json_null();
}

static json_t *json_body(const char *data, size_t len, bool content, const secrets_t *s)
{
    if (data == NULL)
        return json_null();

    if (!content) {
        char hex[AUDIT_HASH_HEX];
        audit_sha256_hex(data, len, hex);
        return json_pack("{s:s, s:I}", "sha256", hex, "bytes", (json_int_t)len);
    }

    size_t clean_len = len;
    char *clean = s->n > 0 ? scrub_bytes(data, len, s, &clean_len) : NULL;
    bool is_text;
    json_t *v = json_text(clean != NULL ? clean : data, clean_len, &is_text);
    free(clean);
    return is_text ? json_pack("{s:o}", "text", v) : v;
}

/* "Bearer sk-..." keeps its scheme word, so a reader still sees how the call authenticated. */
static void redact_header_value(const char *value, char *out, size_t cap)
{
    const char *space = strchr(value, ' ');
    if (space == NULL || space[1] == '\0') {
        redact_secret(value, out, cap);
        return;
    }

    char shown[REDACTED_MAX];
    redact_secret(space + 1, shown, sizeof(shown));
    snprintf(out, cap, "%.*s %s", (int)(space - value), value, shown);
}

static json_t *json_headers(char *const *headers, const secrets_t *s)
{
    json_t *arr = json_array();
    char name[256];

    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        const char *value = header_split(headers[i], name, sizeof(name));
        char *shown;
        if (redact_is_secret_header(name)) {
            shown = xmalloc(2 * REDACTED_MAX);
            redact_header_value(value, shown, 2 * REDACTED_MAX);
        } else {
            shown = xstrdup(value);
            scrub_string(shown, s);
        }
        json_array_append_new(arr, json_pack("[o, o]", json_str(name), json_str(shown)));
        free(shown);
    }
    return arr;
}

/* RFC 3339 in UTC with milliseconds: sorts as text, reads at a glance. */
static json_t *json_ts(double unix_s)
{
    time_t sec = (time_t)unix_s;
    int ms = (int)((unix_s - (double)sec) * 1000.0);
    if (ms < 0 || ms > 999)
        ms = 0;

    struct tm tm;
    char text[48];
    gmtime_r(&sec, &tm);
    size_t n = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof(text) - n, ".%03dZ", ms);
    return json_string(text);
}

/* ---- the line -------------------------------------------------------------------------------- */

static json_t *record_json(const audit_entry_t *e, uint64_t seq, const char *prev, secrets_t *s)
{
    /* The URL's secret parameters join the header secrets before anything is scrubbed. */
    char *url = e->url != NULL ? url_redact(e->url, s) : NULL;
    if (url != NULL)
        scrub_string(url, s);
    char *error = dup_or_null(e->error);
    if (error != NULL)
        scrub_string(error, s);

    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "prev", json_string(prev));
    json_object_set_new(o, "ts", json_ts(e->started_unix));
    json_object_set_new(o, "request_id", json_str(e->request_id));
    json_object_set_new(o, "kind", json_str(e->kind));
    json_object_set_new(o, "target", json_str(e->target));
    json_object_set_new(o, "method", json_str(e->method));
    json_object_set_new(o, "url", json_str(url));
    json_object_set_new(o, "req_headers", json_headers(e->req_headers, s));
    json_object_set_new(o, "req_body", json_body(e->req_body, e->req_len, e->record_content, s));
    json_object_set_new(o, "status", json_integer(e->status));
    json_object_set_new(o, "resp_headers", json_headers(e->resp_headers, s));
    json_object_set_new(o, "resp_body", json_body(e->resp_body, e->resp_len, e->record_content, s));
    json_object_set_new(o, "first_byte_s", json_real(e->first_byte_s));
    json_object_set_new(o, "duration_s", json_real(e->duration_s));
    json_object_set_new(o, "error", json_str(error));

    free(url);
    free(error);
    return o;
}

char *audit_entry_line(const audit_entry_t *e, uint64_t seq, const char *prev, size_t *len)
{
    secrets_t s = {0};
    secrets_from_headers(&s, e->req_headers);

    json_t *o = record_json(e, seq, prev, &s);
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    secrets_free(&s);

    if (line != NULL)
        *len = strlen(line);
    return line;
}

/* ---- the files ------------------------------------------------------------------------------- */

/* "audit-" 8 digits "-" digits ".jsonl", nothing else: a stray editor backup is not part of the
 * chain. */
static bool parse_name(const char *name, unsigned long *number)
{
    if (strncmp(name, "audit-", 6) != 0)
        return false;
    for (int i = 6; i < 14; i++) {
        if (!isdigit((unsigned char)name[i]))
            return false;
    }
    if (name[14] != '-' || !isdigit((unsigned char)name[15]))
        return false;

    char *end;
    errno = 0;
    *number = strtoul(name + 15, &end, 10);
    return errno == 0 && strcmp(end, ".jsonl") == 0;
}

static int file_cmp(const void *a, const void *b)
{
    const audit_file_t *fa = a;
    const audit_file_t *fb = b;
    if (fa->number != fb->number)
        return fa->number < fb->number ? -1 : 1;
    return strcmp(fa->name, fb->name);
}

int audit_files_list(const char *dir, audit_file_t **files, size_t *n)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;

    audit_file_t *v = NULL;
    size_t count = 0;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long number;
        if (!parse_name(de->d_name, &number))
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        v[count].name = xstrdup(de->d_name);
        v[count].number = number;
        count++;
    }
    closedir(d);

    if (count > 0)
        qsort(v, count, sizeof(*v), file_cmp);
    *files = v;
    *n = count;
    return 0;
}

void audit_files_free(audit_file_t *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].name);
    free(files);
}
