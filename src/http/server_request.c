/*
 * server_request.c - one HTTP message of the inbound server: building the request from
 * http-parser's callbacks, the request accessors and the response writers (contract in
 * server.h; the connection around it lives in server.c).
 *
 * Storage: the request is embedded in its connection and its buffers are reused by the next
 * request on a keep-alive connection, so a request in steady state allocates nothing. The
 * target is kept as sent and cut in place into path and query. Header names and values sit
 * NUL-terminated, one after another, in one buffer (req->hdrs) with an array of offsets
 * (offsets, not pointers, because the buffer moves as it grows). Lookup is a linear,
 * case-insensitive scan: requests carry a dozen or two headers, and a scan of one contiguous
 * buffer beats building a table for each request.
 *
 * Refusals inside the parser (413 before or while reading a body) pause the parser and leave
 * the answer to server.c once http_parser_execute has returned, so that no response is written
 * from inside the parser.
 *
 * Responses: the head is assembled in the connection's reusable buffer and added to the output
 * in one piece; the body follows as a second piece and the bufferevent sends both with one
 * writev. Writes to a request whose client is gone are dropped, but the request still has to
 * be finished by its owner (server.h's lifetime rule).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "http/server_internal.h"
#include "util/alloc.h"
#include "util/log.h"

/* ---- small helpers --------------------------------------------------------------------------- */

static void buf_append_uint(buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    buf_append(b, tmp + i, sizeof(tmp) - i);
}

/* "1a2f\r\n": the line that opens a chunk of len bytes. */
static void evbuffer_add_chunk_size(struct evbuffer *out, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[2 * sizeof(size_t) + 2];
    size_t i = sizeof(tmp) - 2;
    tmp[i] = '\r';
    tmp[i + 1] = '\n';
    do {
        tmp[--i] = hex[len & 0xf];
        len >>= 4;
    } while (len != 0);
    evbuffer_add(out, tmp + i, sizeof(tmp) - i);
}

static const char *status_reason(int status)
{
    const char *r = http_status_str((enum http_status)status);
    return r[0] == '<' ? "Unknown" : r;
}

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* The Date header line, formatted at most once a second per thread. The loop's cached time is
 * good enough for a header with one-second resolution and costs no system call. */
static const char *srv_date(http_server_t *srv)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct timeval tv;
    event_base_gettimeofday_cached(srv->base, &tv);
    if (tv.tv_sec == srv->date_sec && srv->date[0] != '\0')
        return srv->date;

    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(srv->date, sizeof(srv->date), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
             days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    srv->date_sec = tv.tv_sec;
    return srv->date;
}

/* ---- the request's storage ------------------------------------------------------------------- */

void http_req_reset(http_request_t *req)
{
    buf_reset(&req->url);
    buf_reset(&req->hdrs);
    buf_reset(&req->resp_hdrs);
    if (req->body.cap > HTTP_BODY_KEEP)
        buf_free(&req->body);
    buf_reset(&req->body);
    req->num_hdrs = 0;
    req->hdr_state = HDR_NONE;
    req->method = "";
    req->path = "";
    req->query = "";
    req->on_close = NULL;
    req->on_close_arg = NULL;
    req->url_split = false;
    req->keep_alive = false;
    req->is_http10 = false;
    req->no_body = false;
    req->is_streaming = false;
    req->is_chunked = false;
    req->is_closed = false;
}

void http_req_free(http_request_t *req)
{
    buf_free(&req->url);
    buf_free(&req->hdrs);
    buf_free(&req->body);
    buf_free(&req->resp_hdrs);
    free(req->hdr_refs);
    req->hdr_refs = NULL;
}

/* "/a?x=1" becomes "/a\0x=1". The absolute form ("http://host/a?x=1"), which servers must
 * accept, keeps only its path. An error response may want the path of a partial target. */
void http_req_split_url(http_request_t *req)
{
    if (req->url_split)
        return;
    req->url_split = true;
    buf_append(&req->url, "", 0); /* a NUL even when nothing arrived */

    char *s = req->url.data;
    char *scheme = (s[0] == '/' || s[0] == '*') ? NULL : strstr(s, "://");
    if (scheme != NULL)
        s = scheme + 3 + strcspn(scheme + 3, "/?#");
    char *hash = strchr(s, '#');
    if (hash != NULL)
        *hash = '\0';

    char *q = strchr(s, '?');
    req->query = "";
    if (q != NULL) {
        *q = '\0';
        req->query = q + 1;
    }
    req->path = (scheme != NULL && s[0] == '\0') ? "/" : s;
}

static void req_begin_header(http_request_t *req)
{
    if (req->num_hdrs == req->cap_hdrs) {
        req->cap_hdrs = req->cap_hdrs ? req->cap_hdrs * 2 : 16;
        req->hdr_refs = xrealloc(req->hdr_refs, req->cap_hdrs * sizeof(*req->hdr_refs));
    }
    req->hdr_refs[req->num_hdrs].name = (uint32_t)req->hdrs.len;
    req->hdr_refs[req->num_hdrs].value = 0;
    req->num_hdrs++;
    req->hdr_state = HDR_FIELD;
}

static void req_end_field(http_request_t *req)
{
    buf_appendc(&req->hdrs, '\0');
    req->hdr_refs[req->num_hdrs - 1].value = (uint32_t)req->hdrs.len;
    req->hdr_state = HDR_VALUE;
}

/* http-parser drops a value's leading blanks but keeps the trailing ones. */
static void req_end_value(http_request_t *req)
{
    size_t start = req->hdr_refs[req->num_hdrs - 1].value;
    buf_t *h = &req->hdrs;
    while (h->len > start && (h->data[h->len - 1] == ' ' || h->data[h->len - 1] == '\t'))
        h->len--;
    buf_appendc(h, '\0');
}

/* ---- http-parser callbacks ------------------------------------------------------------------- */

/* Pauses the parser so that server.c refuses the request once http_parser_execute returns. */
static int req_refuse(http_conn_t *c, int status, const char *message)
{
    c->reject_status = status;
    c->reject_msg = message;
    http_parser_pause(&c->parser, 1);
    return 0;
}

static int on_message_begin(http_parser *p)
{
    http_conn_t *c = p->data;
    http_req_reset(&c->req);
    http_conn_begin_request(c);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    buf_append(&c->req.url, at, len);
    return 0;
}

/* Names and values may come in several pieces when they straddle two reads. */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    http_request_t *req = &((http_conn_t *)p->data)->req;
    if (req->hdr_state == HDR_DONE) /* a trailer after a chunked body: not kept */
        return 0;

    if (req->hdr_state == HDR_VALUE)
        req_end_value(req);
    if (req->hdr_state != HDR_FIELD)
        req_begin_header(req);
    buf_append(&req->hdrs, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    http_request_t *req = &((http_conn_t *)p->data)->req;
    if (req->hdr_state == HDR_DONE)
        return 0;

    if (req->hdr_state == HDR_FIELD)
        req_end_field(req);
    buf_append(&req->hdrs, at, len);
    return 0;
}

static bool req_expects_continue(const http_request_t *req, const http_parser *p)
{
    const char *expect = http_request_header(req, "Expect");
    if (expect == NULL || strcasecmp(expect, "100-continue") != 0 || req->is_http10)
        return false;
    return (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
}

static int on_headers_complete(http_parser *p)
{
    http_conn_t *c = p->data;
    http_request_t *req = &c->req;
    if (req->hdr_state == HDR_FIELD)
        req_end_field(req);
    if (req->hdr_state == HDR_VALUE)
        req_end_value(req);
    req->hdr_state = HDR_DONE;
    http_req_split_url(req);
    req->method = http_method_str((enum http_method)p->method);
    req->no_body = p->method == HTTP_HEAD;
    req->is_http10 = p->http_major < 1 || (p->http_major == 1 && p->http_minor == 0);

    /* Refused before a byte of the body is read: the client need not even send it. */
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    if (has_length && p->content_length > c->srv->opts.max_body_bytes)
        return req_refuse(c, 413, "request body too large");

    if (has_length)
        buf_reserve(&req->body, (size_t)p->content_length);
    if (req_expects_continue(req, p)) {
        evbuffer_add(http_conn_output(c), "HTTP/1.1 100 Continue\r\n\r\n", 25);
        http_conn_want_write(c);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    http_request_t *req = &c->req;
    /* Only a chunked body gets here too large: a Content-Length was checked above. The body
     * never exceeds the limit, so the subtraction cannot wrap. */
    if (len > c->srv->opts.max_body_bytes - req->body.len)
        return req_refuse(c, 413, "request body too large");

    buf_append(&req->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_conn_t *c = p->data;
    /* CONNECT would turn the connection into a tunnel; whatever the handler answers, the bytes
     * after it are not HTTP, so the connection ends with this request. */
    c->req.keep_alive = http_should_keep_alive(p) && p->method != HTTP_CONNECT;
    c->state = CONN_HANDLING;
    http_conn_arm(c, 0);
    http_parser_pause(p, 1); /* resumed when the response is finished: pipelining in order */
    return 0;
}

const http_parser_settings http_req_parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the request: accessors ------------------------------------------------------------------ */

const char *http_request_method(const http_request_t *req)
{
    return req->method;
}

const char *http_request_path(const http_request_t *req)
{
    return req->path;
}

const char *http_request_query(const http_request_t *req)
{
    return req->query;
}

const char *http_request_header(const http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->num_hdrs; i++) {
        if (strcasecmp(req->hdrs.data + req->hdr_refs[i].name, name) == 0)
            return req->hdrs.data + req->hdr_refs[i].value;
    }
    return NULL;
}

void http_request_each_header(const http_request_t *req,
                              void (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    for (size_t i = 0; i < req->num_hdrs; i++)
        fn(arg, req->hdrs.data + req->hdr_refs[i].name, req->hdrs.data + req->hdr_refs[i].value);
}

const char *http_request_body(const http_request_t *req, size_t *len)
{
    if (len != NULL)
        *len = req->body.len;
    return buf_cstr(&req->body);
}

const char *http_request_peer(const http_request_t *req)
{
    return req->conn->peer;
}

bool http_request_is_closed(const http_request_t *req)
{
    return req->is_closed;
}

http_server_t *http_request_server(const http_request_t *req)
{
    return req->conn->srv;
}

/* Registering after the disconnect was reported has no effect: check http_request_is_closed.
 * A handler that registers before it returns cannot miss the disconnect, because only the
 * event loop notices one. */
void http_request_on_close(http_request_t *req, void (*cb)(http_request_t *req, void *arg),
                           void *arg)
{
    req->on_close = cb;
    req->on_close_arg = arg;
}

/* ---- the response ---------------------------------------------------------------------------- */

/* The owner's headers come after ours; the framing headers are always ours. */
void http_conn_send_head(http_conn_t *c, int status, const char *content_type, http_framing_t fr,
                         size_t len)
{
    http_request_t *req = &c->req;
    buf_t *h = &c->out;
    buf_reset(h);
    buf_appends(h, "HTTP/1.1 ");
    buf_append_uint(h, (uint64_t)status);
    buf_appendc(h, ' ');
    buf_appends(h, status_reason(status));
    buf_appends(h, "\r\n");
    buf_appends(h, srv_date(c->srv));

    if (content_type != NULL && fr != FRAME_NONE) {
        buf_appends(h, "Content-Type: ");
        buf_appends(h, content_type);
        buf_appends(h, "\r\n");
    }
    if (fr == FRAME_LENGTH) {
        buf_appends(h, "Content-Length: ");
        buf_append_uint(h, len);
        buf_appends(h, "\r\n");
    }
    if (fr == FRAME_CHUNKED)
        buf_appends(h, "Transfer-Encoding: chunked\r\n");
    buf_append(h, req->resp_hdrs.data, req->resp_hdrs.len);

    c->close_after = c->close_after || !req->keep_alive || c->srv->draining;
    if (c->close_after)
        buf_appends(h, "Connection: close\r\n");
    else if (req->is_http10)
        buf_appends(h, "Connection: keep-alive\r\n");
    buf_appends(h, "\r\n");
    evbuffer_add(http_conn_output(c), h->data, h->len);
}

/* The owner may answer only a request it holds; anything else is a bug in the caller. */
static bool req_is_open(const http_request_t *req, const char *what)
{
    http_conn_state_t st = req->conn->state;
    if (st == CONN_HANDLING || st == CONN_DEAD)
        return true;
    log_crit(NULL, "http: %s on a finished request; ignored", what);
    return false;
}

void http_response_header(http_request_t *req, const char *name, const char *value)
{
    if (!req_is_open(req, "http_response_header"))
        return;
    if (req->is_streaming) {
        log_crit(NULL, "http: response header %.100s added after the head was sent; ignored", name);
        return;
    }
    /* A line break would let a value inject headers of its own, or end the head early. */
    if (name[0] == '\0' || strpbrk(name, "\r\n: \t") != NULL || strpbrk(value, "\r\n") != NULL) {
        log_warn(NULL, "http: response header with a bad name or a line break dropped");
        return;
    }

    buf_appends(&req->resp_hdrs, name);
    buf_appends(&req->resp_hdrs, ": ");
    buf_appends(&req->resp_hdrs, value);
    buf_appends(&req->resp_hdrs, "\r\n");
}

void http_respond(http_request_t *req, int status, const char *content_type, const char *body,
                  size_t len)
{
    if (!req_is_open(req, "http_respond"))
        return;
    if (req->is_streaming) {
        log_crit(NULL, "http: http_respond on a streaming response; ending the stream instead");
        http_stream_end(req);
        return;
    }

    http_conn_t *c = req->conn;
    if (c->state == CONN_HANDLING) {
        bool has_body = status_has_body(status);
        http_conn_send_head(c, status, content_type, has_body ? FRAME_LENGTH : FRAME_NONE, len);
        if (has_body && !req->no_body && len > 0)
            evbuffer_add(http_conn_output(c), body, len);
    }
    http_req_finish(req);
}

void http_stream_start(http_request_t *req, int status, const char *content_type)
{
    if (!req_is_open(req, "http_stream_start"))
        return;
    if (req->is_streaming) {
        log_crit(NULL, "http: http_stream_start called twice; ignored");
        return;
    }

    http_conn_t *c = req->conn;
    req->is_streaming = true;
    if (c->state != CONN_HANDLING)
        return;

    /* HTTP/1.0 knows no chunked framing: the body ends when the connection does. */
    http_framing_t fr = req->is_http10 ? FRAME_UNTIL_CLOSE : FRAME_CHUNKED;
    if (!status_has_body(status)) {
        fr = FRAME_NONE;
        req->no_body = true;
    }
    req->is_chunked = fr == FRAME_CHUNKED;
    if (fr == FRAME_UNTIL_CLOSE)
        c->close_after = true;
    /* Proxies in front of us (nginx) must pass events on as they come. */
    if (content_type != NULL && strncasecmp(content_type, "text/event-stream", 17) == 0)
        buf_appends(&req->resp_hdrs, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    http_conn_send_head(c, status, content_type, fr, 0);
    http_conn_want_write(c);
}

size_t http_stream_write(http_request_t *req, const char *data, size_t len)
{
    if (!req_is_open(req, "http_stream_write"))
        return 0;
    if (!req->is_streaming) {
        log_crit(NULL, "http: http_stream_write before http_stream_start; ignored");
        return 0;
    }
    if (req->conn->state != CONN_HANDLING)
        return 0;

    struct evbuffer *out = http_conn_output(req->conn);
    /* An empty chunk would end the body, so an empty write sends nothing. */
    if (len > 0 && !req->no_body) {
        if (req->is_chunked)
            evbuffer_add_chunk_size(out, len);
        evbuffer_add(out, data, len);
        if (req->is_chunked)
            evbuffer_add(out, "\r\n", 2);
        /* Chunks added in the same loop turn leave together in one write. */
        http_conn_want_write(req->conn);
    }
    return evbuffer_get_length(out);
}

void http_stream_end(http_request_t *req)
{
    if (!req_is_open(req, "http_stream_end"))
        return;
    if (!req->is_streaming) {
        log_crit(NULL, "http: http_stream_end without http_stream_start; answering 500");
        http_respond(req, 500, "text/plain", "stream never started\n", 21);
        return;
    }

    if (req->conn->state == CONN_HANDLING && req->is_chunked && !req->no_body)
        evbuffer_add(http_conn_output(req->conn), "0\r\n\r\n", 5);
    http_req_finish(req);
}
