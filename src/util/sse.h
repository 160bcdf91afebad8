/*
 * sse.h - incremental parser for Server-Sent Events (the WHATWG event-stream format).
 *
 * Upstream providers stream their answers as SSE. Bytes arrive in arbitrary pieces (a network
 * read may end in the middle of a line, or of a UTF-8 sequence); the parser keeps what it needs
 * between calls and invokes the callback once per complete event, i.e. at each blank line that
 * follows at least one data line. Lines end with LF, CR or CRLF, a leading BOM is skipped,
 * comments (":...") are ignored, several "data:" lines are joined with LF, and an event that is
 * not finished by a blank line when the stream ends is reported by sse_parser_finish as
 * incomplete rather than delivered.
 *
 * The parser copies nothing it does not have to keep; the event and data pointers given to the
 * callback are valid only during the call. It never reads past the bytes it was given, and it
 * bounds what it buffers (max_event_bytes) so that a hostile upstream cannot grow it forever.
 */
#ifndef GATEHOUSE_UTIL_SSE_H
#define GATEHOUSE_UTIL_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Called once per complete event. event is "" when the event had no "event:" field (the
 * default type, "message"). Return 0 to go on, non-zero to stop: sse_parser_feed then returns
 * that value at once. */
typedef int (*sse_event_cb)(void *arg, const char *event, size_t event_len, const char *data,
                            size_t data_len);

typedef struct sse_parser {
    sse_event_cb cb;
    void *arg;
    buf_t line;             /* the current, not yet terminated line */
    buf_t event;            /* value of the last "event:" field of the current event */
    buf_t data;             /* "data:" values joined with LF */
    bool has_data;          /* at least one data line since the last dispatch */
    bool saw_cr;            /* last byte was CR: a following LF belongs to the same line end */
    bool bom_checked;       /* the first bytes were checked for a UTF-8 BOM */
    size_t max_event_bytes; /* limit on line + data; 0 means the default (16 MiB) */
    char *last_event_id;    /* value of the last "id:" field, or NULL; owned */
    long retry_ms;          /* value of the last valid "retry:" field, or -1 */
} sse_parser_t;

#define SSE_TOO_LARGE (-1000) /* returned by sse_parser_feed when an event exceeds the limit */

void sse_parser_init(sse_parser_t *p, sse_event_cb cb, void *arg);
/* Feeds bytes. Returns 0, the callback's non-zero value, or SSE_TOO_LARGE. */
int sse_parser_feed(sse_parser_t *p, const char *bytes, size_t len);
/* Call at end of stream. Returns true when the stream ended cleanly, false when an event or a
 * line was left unfinished. Delivers nothing. */
bool sse_parser_finish(sse_parser_t *p);
void sse_parser_free(sse_parser_t *p);

#endif
