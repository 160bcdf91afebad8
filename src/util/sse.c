/*
 * sse.c - incremental Server-Sent Events parser (see sse.h for the contract).
 *
 * The parser follows the WHATWG "event stream interpretation" steps. Bytes are cut into lines
 * at LF, CR or CRLF; each complete line is interpreted at once, so the only state kept between
 * feeds is the unfinished line, the event being assembled (its type and its data) and whether
 * the last byte seen was a CR (a CRLF may be split across two network reads, and the LF must
 * then not count as a second, empty line, which would dispatch the event too early).
 *
 * Copies: a line that lies whole inside one fed chunk is interpreted straight from the caller's
 * bytes; only a line cut by a chunk boundary is gathered in p->line. Data values are copied once
 * into p->data because the blank line that dispatches them may arrive in a later chunk.
 *
 * The UTF-8 BOM can only precede the very first line, so it is removed from that line when the
 * line is complete (this handles a BOM split across chunks without extra state).
 *
 * Size limit: the unfinished line plus the data gathered so far may not exceed
 * max_event_bytes. When they would, the parser drops what it holds and returns SSE_TOO_LARGE;
 * the stream cannot be resynchronised after that and the caller must stop feeding.
 */
#include "util/sse.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define SSE_DEFAULT_MAX_EVENT_BYTES ((size_t)16 * 1024 * 1024)

static const char sse_bom[3] = {'\xEF', '\xBB', '\xBF'};

void sse_parser_init(sse_parser_t *p, sse_event_cb cb, void *arg)
{
    p->cb = cb;
    p->arg = arg;
    buf_init(&p->line);
    buf_init(&p->event);
    buf_init(&p->data);
    p->has_data = false;
    p->saw_cr = false;
    p->bom_checked = false;
    p->max_event_bytes = 0;
    p->last_event_id = NULL;
    p->retry_ms = -1;
}

void sse_parser_free(sse_parser_t *p)
{
    buf_free(&p->line);
    buf_free(&p->event);
    buf_free(&p->data);
    free(p->last_event_id);
    p->last_event_id = NULL;
}

static size_t sse_limit(const sse_parser_t *p)
{
    return p->max_event_bytes ? p->max_event_bytes : SSE_DEFAULT_MAX_EVENT_BYTES;
}

/* Forgets the event being assembled (after a dispatch, or a blank line without data). */
static void sse_reset_event(sse_parser_t *p)
{
    buf_reset(&p->event);
    buf_reset(&p->data);
    p->has_data = false;
}

/* A blank line: deliver the event if it has data. The spec's trailing LF is never added (the
 * LF goes between values), so there is nothing to strip. */
static int sse_dispatch(sse_parser_t *p)
{
    if (!p->has_data) {
        sse_reset_event(p);
        return 0;
    }

    int rc = p->cb(p->arg, buf_cstr(&p->event), p->event.len, buf_cstr(&p->data), p->data.len);
    sse_reset_event(p);
    return rc;
}

/* "retry:" counts only when the value is all ASCII digits; anything else is ignored. */
static void sse_set_retry(sse_parser_t *p, const char *value, size_t len)
{
    if (len == 0)
        return;

    long ms = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return;
        if (ms > (LONG_MAX - 9) / 10)
            return;
        ms = ms * 10 + (value[i] - '0');
    }
    p->retry_ms = ms;
}

/* "id:" values containing NUL are ignored, as the spec says. */
static void sse_set_id(sse_parser_t *p, const char *value, size_t len)
{
    if (memchr(value, '\0', len) != NULL)
        return;

    free(p->last_event_id);
    p->last_event_id = xstrndup(value, len);
}

static void sse_field(sse_parser_t *p, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    if (name_len == 4 && memcmp(name, "data", 4) == 0) {
        if (p->has_data)
            buf_appendc(&p->data, '\n');
        buf_append(&p->data, value, value_len);
        p->has_data = true;
    } else if (name_len == 5 && memcmp(name, "event", 5) == 0) {
        buf_reset(&p->event);
        buf_append(&p->event, value, value_len);
    } else if (name_len == 2 && memcmp(name, "id", 2) == 0) {
        sse_set_id(p, value, value_len);
    } else if (name_len == 5 && memcmp(name, "retry", 5) == 0) {
        sse_set_retry(p, value, value_len);
    }
    /* Unknown fields are ignored. */
}

/* Interprets one complete line (without its terminator). */
static int sse_line(sse_parser_t *p, const char *line, size_t len)
{
    if (!p->bom_checked) {
        p->bom_checked = true;
        if (len >= 3 && memcmp(line, sse_bom, 3) == 0) {
            line += 3;
            len -= 3;
        }
    }

    if (len == 0)
        return sse_dispatch(p);
    if (line[0] == ':')
        return 0;

    const char *colon = memchr(line, ':', len);
    if (colon == NULL) {
        sse_field(p, line, len, "", 0);
        return 0;
    }

    size_t name_len = (size_t)(colon - line);
    const char *value = colon + 1;
    size_t value_len = len - name_len - 1;
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    sse_field(p, line, name_len, value, value_len);
    return 0;
}

/* Index of the first CR or LF in bytes[from, len), or len. */
static size_t sse_find_eol(const char *bytes, size_t from, size_t len)
{
    for (size_t i = from; i < len; i++) {
        if (bytes[i] == '\n' || bytes[i] == '\r')
            return i;
    }
    return len;
}

static int sse_too_large(sse_parser_t *p)
{
    buf_free(&p->line);
    buf_free(&p->data);
    buf_reset(&p->event);
    p->has_data = false;
    return SSE_TOO_LARGE;
}

/* Keeps the unterminated tail of a chunk for the next feed. */
static int sse_keep_partial(sse_parser_t *p, const char *bytes, size_t len)
{
    if (p->line.len + len + p->data.len > sse_limit(p))
        return sse_too_large(p);

    buf_append(&p->line, bytes, len);
    return 0;
}

int sse_parser_feed(sse_parser_t *p, const char *bytes, size_t len)
{
    size_t i = 0;

    /* The LF of a CRLF whose CR ended the previous chunk. */
    if (len > 0 && p->saw_cr) {
        p->saw_cr = false;
        if (bytes[0] == '\n')
            i = 1;
    }

    while (i < len) {
        size_t end = sse_find_eol(bytes, i, len);
        if (end == len)
            return sse_keep_partial(p, bytes + i, len - i);

        const char *line = bytes + i;
        size_t line_len = end - i;
        if (p->line.len > 0) {
            buf_append(&p->line, line, line_len);
            line = p->line.data;
            line_len = p->line.len;
        }
        if (line_len + p->data.len > sse_limit(p))
            return sse_too_large(p);

        int rc = sse_line(p, line, line_len);
        buf_reset(&p->line);

        if (bytes[end] == '\r') {
            if (end + 1 == len)
                p->saw_cr = true;
            else if (bytes[end + 1] == '\n')
                end++;
        }
        i = end + 1;
        if (rc != 0)
            return rc;
    }
    return 0;
}

bool sse_parser_finish(sse_parser_t *p)
{
    bool clean = p->line.len == 0 && !p->has_data;

    buf_reset(&p->line);
    sse_reset_event(p);
    p->saw_cr = false;
    return clean;
}
