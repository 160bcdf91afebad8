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
 * The line is written straight into a buffer, keys in a fixed order, in the bytes json_dumps
 * would make of the same record (see "JSON pieces"), so two writers given the same entry make
 * the same bytes, and the hash chain is over exactly those bytes.
 */
#include "telemetry/audit_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
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

/* The copy is one allocation: the struct, then the header pointer arrays, then every string and
 * body. A worker thread pays one malloc per exchange instead of one per header and string, and
 * the writer one free. */

static size_t str_room(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

static size_t headers_count(const char *const *headers)
{
    size_t n = 0;
    while (headers != NULL && headers[n] != NULL)
        n++;
    return n;
}

static size_t headers_room(const char *const *headers)
{
    if (headers == NULL)
        return 0;
    size_t room = 0;
    for (size_t i = 0; headers[i] != NULL; i++)
        room += strlen(headers[i]) + 1;
    return room;
}

/* Copies s to *at (moving *at past it), or returns NULL for NULL. */
static char *pack_str(char **at, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *out = memcpy(*at, s, n);
    *at += n;
    return out;
}

/* len bytes and a NUL after them. */
static char *pack_bytes(char **at, const char *data, size_t len)
{
    if (data == NULL)
        return NULL;
    char *out = *at;
    memcpy(out, data, len);
    out[len] = '\0';
    *at += len + 1;
    return out;
}

static char **pack_headers(char ***slots, char **at, const char *const *headers)
{
    if (headers == NULL)
        return NULL;
    char **out = *slots;
    size_t n = headers_count(headers);
    for (size_t i = 0; i < n; i++)
        out[i] = pack_str(at, headers[i]);
    out[n] = NULL;
    *slots += n + 1;
    return out;
}

audit_entry_t *audit_entry_copy(const telemetry_exchange_t *x)
{
    size_t n_req = x->req_headers != NULL ? headers_count(x->req_headers) + 1 : 0;
    size_t n_resp = x->resp_headers != NULL ? headers_count(x->resp_headers) + 1 : 0;
    size_t req_len = x->req_body != NULL ? x->req_len : 0;
    size_t resp_len = x->resp_body != NULL ? x->resp_len : 0;
    size_t size =
        sizeof(audit_entry_t) + (n_req + n_resp) * sizeof(char *) + str_room(x->request_id) +
        str_room(x->kind) + str_room(x->target) + str_room(x->method) + str_room(x->url) +
        str_room(x->error) + headers_room(x->req_headers) + headers_room(x->resp_headers) +
        (x->req_body != NULL ? req_len + 1 : 0) + (x->resp_body != NULL ? resp_len + 1 : 0);

    audit_entry_t *e = xmalloc(size);
    memset(e, 0, sizeof(*e));
    char **slots = (char **)(e + 1);
    char *at = (char *)(slots + n_req + n_resp);

    e->req_headers = pack_headers(&slots, &at, x->req_headers);
    e->resp_headers = pack_headers(&slots, &at, x->resp_headers);
    e->request_id = pack_str(&at, x->request_id);
    e->kind = pack_str(&at, x->kind);
    e->target = pack_str(&at, x->target);
    e->method = pack_str(&at, x->method);
    e->url = pack_str(&at, x->url);
    e->error = pack_str(&at, x->error);
    e->req_body = pack_bytes(&at, x->req_body, req_len);
    e->req_len = req_len;
    e->resp_body = pack_bytes(&at, x->resp_body, resp_len);
    e->resp_len = resp_len;
    e->status = x->status;
    e->started_unix = x->started_unix;
    e->first_byte_s = x->first_byte_s;
    e->duration_s = x->duration_s;
    e->record_content = x->record_content;
    e->bytes = req_len + resp_len;
    return e;
}

audit_entry_t *audit_entry_note(const char *kind, const char *text)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);

    telemetry_exchange_t x = {
        .kind = kind,
        .error = text,
        .started_unix = (double)now.tv_sec + (double)now.tv_nsec / 1e9,
        .first_byte_s = -1,
    };
    return audit_entry_copy(&x);
}

void audit_entry_free(audit_entry_t *e)
{
    free(e);
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

/* ---- hashing and base64 ---------------------------------------------------------------------- */

static const char hex_lower[] = "0123456789abcdef";

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Fetched once: EVP_Digest with EVP_sha256() looks the algorithm up again at every call, which
 * cost as much as hashing a short line. An EVP_MD may be shared by threads. */
static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void audit_sha256_hex(const void *data, size_t len, char out[AUDIT_HASH_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    pthread_once(&sha256_once, sha256_fetch);
    const EVP_MD *type = sha256_md != NULL ? sha256_md : EVP_sha256();
    if (EVP_Digest(data, len, md, &md_len, type, NULL) != 1 || md_len != 32) {
        /* Cannot happen with a working libcrypto; a hash of zeros breaks verify visibly. */
        memset(md, 0, sizeof(md));
        md_len = 32;
    }
    for (unsigned int i = 0; i < md_len; i++) {
        out[2 * i] = hex_lower[md[i] >> 4];
        out[2 * i + 1] = hex_lower[md[i] & 0xF];
    }
    out[2 * md_len] = '\0';
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
    if (len >= cap)
        len = cap - 1;
    memcpy(name, line, len);
    name[len] = '\0';

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

/* The line is written straight into a buffer, in the exact bytes jansson's json_dumps(JSON_COMPACT
 * | JSON_REAL_PRECISION(9)) made of the same record when the line was built as a jansson object
 * (what older gatehouse versions wrote, and what audit verify and show parse): compact
 * separators, strings escaped as jansson escapes them, reals as "%.9g" with jansson's touch-ups.
 * Building an object tree and dumping it cost the writer more than everything else it does per
 * record (bench/logging/README.md); test_audit checks that every line is jansson's canonical
 * form of itself. */

/* Length of the valid UTF-8 sequence at p (jansson's rules: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0 when there is none. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t v;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        n = 2;
        v = c & 0x1F;
    } else if (c < 0xF0) {
        n = 3;
        v = c & 0x0F;
    } else if (c < 0xF5) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
        (n == 4 && v < 0x10000))
        return 0;
    return n;
}

/* Cuts out back to `mark` (what a failed attempt appended). */
static void buf_cut(buf_t *out, size_t mark)
{
    out->len = mark;
    if (out->data != NULL)
        out->data[mark] = '\0';
}

static void put_escape(buf_t *out, unsigned char c)
{
    char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"':
    case '\\':
        esc[1] = (char)c;
        break;
    case '\b':
        esc[1] = 'b';
        break;
    case '\f':
        esc[1] = 'f';
        break;
    case '\n':
        esc[1] = 'n';
        break;
    case '\r':
        esc[1] = 'r';
        break;
    case '\t':
        esc[1] = 't';
        break;
    default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = "0123456789ABCDEF"[c >> 4];
        esc[5] = "0123456789ABCDEF"[c & 0xF];
        n = 6;
    }
    buf_append(out, esc, n);
}

/* True when none of the eight bytes needs a second look: all ASCII, none below 0x20, no '"'
 * and no '\' (the usual "has a byte less than / equal to" bit tricks; a false alarm only
 * sends the eight bytes down the slow path). */
static bool plain8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t highs = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"');
    uint64_t backslash = w ^ (ones * '\\');
    uint64_t odd = (w & highs) | ((w - ones * 0x20) & ~w & highs) |
                   ((quote - ones) & ~quote & highs) | ((backslash - ones) & ~backslash & highs);
    return odd == 0;
}

/* Appends the bytes as a JSON string, as jansson writes one: '"' and '\' escaped, control
 * characters as \b \f \n \r \t or \u00XX (upper-case hex), everything else (UTF-8 included)
 * as it is. Returns false, having appended nothing, when the bytes are not UTF-8 (jansson's
 * rules) or hold a NUL: they cannot be a JSON string. One pass, eight bytes at a time while
 * they are plain ASCII, since bodies mostly are. */
static bool put_string(buf_t *out, const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t mark = out->len;
    buf_reserve(out, len + 2);
    buf_appendc(out, '"');

    size_t run = 0; /* start of the bytes not yet appended */
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        if (len - i >= 8 && (memcpy(&w, p + i, 8), plain8(w))) {
            i += 8;
            continue;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (n == 0) {
                buf_cut(out, mark);
                return false;
            }
            i += n;
            continue;
        }
        if (c == 0) {
            buf_cut(out, mark);
            return false;
        }
        if (c < 0x20 || c == '"' || c == '\\') {
            buf_append(out, data + run, i - run);
            put_escape(out, c);
            run = i + 1;
        }
        i++;
    }
    buf_append(out, data + run, len - run);
    buf_appendc(out, '"');
    return true;
}

static void put_base64(buf_t *out, const char *data, size_t len)
{
    char *b64 = audit_base64(data, len);
    buf_appends(out, "{\"base64\":\"");
    buf_appends(out, b64); /* base64 needs no escaping */
    buf_appends(out, "\"}");
    free(b64);
}

/* A string when the bytes are UTF-8 without NUL, else {"base64": ...}. Returns whether it was
 * a string. */
static bool put_text(buf_t *out, const char *data, size_t len)
{
    if (put_string(out, data, len))
        return true;
    put_base64(out, data, len);
    return false;
}

static void put_str(buf_t *out, const char *s)
{
    if (s == NULL)
        buf_appends(out, "null");
    else
        put_text(out, s, strlen(s));
}

static void put_uint(buf_t *out, unsigned long long v)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    buf_reserve(out, n);
    while (n > 0)
        buf_appendc(out, digits[--n]);
}

static void put_int(buf_t *out, long long v)
{
    if (v < 0) {
        buf_appendc(out, '-');
        put_uint(out, 0ULL - (unsigned long long)v);
    } else {
        put_uint(out, (unsigned long long)v);
    }
}

/* jansson's real: "%.9g", ".0" added when the text would read as an integer, and the exponent
 * without '+' and leading zeros ("1e-05" -> "1e-5"). Returns false for NaN and infinities,
 * which jansson cannot hold. */
static bool format_real(char *text, size_t cap, double v)
{
    if (!isfinite(v))
        return false;
    int n = snprintf(text, cap, "%.9g", v);
    if (n <= 0 || (size_t)n + 3 > cap)
        return false;
    if (strchr(text, '.') == NULL && strchr(text, 'e') == NULL)
        memcpy(text + n, ".0", 3);

    char *e = strchr(text, 'e');
    if (e != NULL) {
        char *from = e + 1;
        char *to = e + 1;
        if (*from == '-') {
            from++;
            to++;
        } else if (*from == '+') {
            from++;
        }
        while (*from == '0' && from[1] != '\0')
            from++;
        memmove(to, from, strlen(from) + 1);
    }
    return true;
}

/* ,"key": - every key but the first ("seq", written with the brace) follows a comma. */
static void put_key(buf_t *out, const char *key)
{
    buf_appends(out, ",\"");
    buf_appends(out, key);
    buf_appends(out, "\":");
}

/* A key whose real value jansson could not hold (NaN, infinity) was left out; it still is. */
static void put_real_field(buf_t *out, const char *key, double v)
{
    char text[48];
    if (!format_real(text, sizeof(text), v))
        return;
    put_key(out, key);
    buf_appends(out, text);
}

/* True when some secret occurs in the bytes (which may hold NULs: a secret never does, so each
 * piece between NULs is searched alone). The bytes are followed by a NUL (audit_entry_copy),
 * so strstr, much faster than memmem for short needles, can do the search. */
static bool has_secret(const char *data, size_t len, const secrets_t *s)
{
    for (size_t at = 0; at <= len && s->n > 0;) {
        for (size_t i = 0; i < s->n; i++) {
            if (strstr(data + at, s->v[i]) != NULL)
                return true;
        }
        const char *nul = memchr(data + at, '\0', len - at);
        if (nul == NULL)
            break;
        at = (size_t)(nul - data) + 1;
    }
    return false;
}

static void put_body(buf_t *out, const char *data, size_t len, bool content, const secrets_t *s)
{
    if (data == NULL) {
        buf_appends(out, "null");
        return;
    }

    if (!content) {
        char hex[AUDIT_HASH_HEX];
        audit_sha256_hex(data, len, hex);
        buf_appends(out, "{\"sha256\":\"");
        buf_append(out, hex, AUDIT_HASH_HEX - 1);
        buf_appends(out, "\",\"bytes\":");
        put_uint(out, len);
        buf_appendc(out, '}');
        return;
    }

    /* Most bodies hold no secret: they are written from the entry, without a scrubbed copy. */
    size_t clean_len = len;
    char *clean = has_secret(data, len, s) ? scrub_bytes(data, len, s, &clean_len) : NULL;
    const char *text = clean != NULL ? clean : data;
    size_t mark = out->len;
    buf_appends(out, "{\"text\":");
    if (put_string(out, text, clean_len)) {
        buf_appendc(out, '}');
    } else {
        buf_cut(out, mark);
        put_base64(out, text, clean_len);
    }
    free(clean);
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

/* [["Name", "value"], ...]: secret headers redacted, the others scrubbed of every secret. */
static void put_headers(buf_t *out, char *const *headers, const secrets_t *s)
{
    char name[256];
    buf_appendc(out, '[');
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        const char *value = header_split(headers[i], name, sizeof(name));
        buf_appends(out, i > 0 ? ",[" : "[");
        put_str(out, name);
        buf_appendc(out, ',');
        if (redact_is_secret_header(name)) {
            char shown[2 * REDACTED_MAX];
            redact_header_value(value, shown, sizeof(shown));
            put_str(out, shown);
        } else if (has_secret(value, strlen(value), s)) {
            char *clean = xstrdup(value);
            scrub_string(clean, s);
            put_str(out, clean);
            free(clean);
        } else {
            put_str(out, value);
        }
        buf_appendc(out, ']');
    }
    buf_appendc(out, ']');
}

static void put_digits(char *at, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        at[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* RFC 3339 in UTC with milliseconds: sorts as text, reads at a glance. */
static void put_ts(buf_t *out, double unix_s)
{
    time_t sec = (time_t)unix_s;
    int ms = (int)((unix_s - (double)sec) * 1000.0);
    if (ms < 0 || ms > 999)
        ms = 0;

    struct tm tm;
    gmtime_r(&sec, &tm);
    if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        /* Not a time gatehouse can see; strftime's form, so the line stays what it was. */
        char text[64];
        size_t n = strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(text + n, sizeof(text) - n, ".%03dZ", ms);
        put_str(out, text);
        return;
    }
    char text[] = "\"0000-00-00T00:00:00.000Z\"";
    put_digits(text + 1, (unsigned)(tm.tm_year + 1900), 4);
    put_digits(text + 6, (unsigned)(tm.tm_mon + 1), 2);
    put_digits(text + 9, (unsigned)tm.tm_mday, 2);
    put_digits(text + 12, (unsigned)tm.tm_hour, 2);
    put_digits(text + 15, (unsigned)tm.tm_min, 2);
    put_digits(text + 18, (unsigned)tm.tm_sec, 2);
    put_digits(text + 21, (unsigned)ms, 3);
    buf_append(out, text, sizeof(text) - 1);
}

/* ---- the line -------------------------------------------------------------------------------- */

static void put_record(buf_t *out, const audit_entry_t *e, uint64_t seq, const char *prev,
                       secrets_t *s)
{
    /* The URL's secret parameters join the header secrets before anything is scrubbed. */
    char *url = e->url != NULL ? url_redact(e->url, s) : NULL;
    if (url != NULL)
        scrub_string(url, s);
    char *error = dup_or_null(e->error);
    if (error != NULL)
        scrub_string(error, s);

    buf_appends(out, "{\"seq\":");
    put_uint(out, seq);
    put_key(out, "prev");
    put_str(out, prev);
    put_key(out, "ts");
    put_ts(out, e->started_unix);
    put_key(out, "request_id");
    put_str(out, e->request_id);
    put_key(out, "kind");
    put_str(out, e->kind);
    put_key(out, "target");
    put_str(out, e->target);
    put_key(out, "method");
    put_str(out, e->method);
    put_key(out, "url");
    put_str(out, url);
    put_key(out, "req_headers");
    put_headers(out, e->req_headers, s);
    put_key(out, "req_body");
    put_body(out, e->req_body, e->req_len, e->record_content, s);
    put_key(out, "status");
    put_int(out, e->status);
    put_key(out, "resp_headers");
    put_headers(out, e->resp_headers, s);
    put_key(out, "resp_body");
    put_body(out, e->resp_body, e->resp_len, e->record_content, s);
    put_real_field(out, "first_byte_s", e->first_byte_s);
    put_real_field(out, "duration_s", e->duration_s);
    put_key(out, "error");
    put_str(out, error);
    buf_appendc(out, '}');

    free(url);
    free(error);
}

int audit_entry_format(const audit_entry_t *e, uint64_t seq, const char *prev, buf_t *out)
{
    secrets_t s = {0};
    secrets_from_headers(&s, e->req_headers);
    put_record(out, e, seq, prev, &s);
    secrets_free(&s);
    return 0;
}

char *audit_entry_line(const audit_entry_t *e, uint64_t seq, const char *prev, size_t *len)
{
    buf_t out = BUF_INIT;
    audit_entry_format(e, seq, prev, &out);
    *len = out.len;
    return buf_release(&out);
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
