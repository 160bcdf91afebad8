/*
 * server_internal.h - what the two halves of the inbound HTTP server share. Not for other
 * modules: they use server.h.
 *
 * server.c owns connections: listening, accepting, the connection state machine, timers,
 * pipelining and closing. server_request.c owns the message: the http-parser callbacks that
 * build a request, the request accessors and the response writers. A connection embeds its
 * current request, so both files see both structs.
 */
#ifndef GATEHOUSE_HTTP_SERVER_INTERNAL_H
#define GATEHOUSE_HTTP_SERVER_INTERNAL_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <http_parser.h>

#include "http/server.h"
#include "util/buf.h"

#define HTTP_BODY_KEEP (64 * 1024) /* body capacity a connection keeps between requests */

typedef enum http_conn_state {
    CONN_IDLE,     /* waiting for the first byte of a request; idle timer armed */
    CONN_READING,  /* a request has begun; header timer armed */
    CONN_HANDLING, /* the request is with its owner; parser paused; no timer */
    CONN_CLOSING,  /* last response queued; close once it is flushed */
    CONN_LINGER,   /* write side shut after an error response; discard input until EOF */
    CONN_DEAD,     /* socket closed while the owner holds the request; freed when finished */
} http_conn_state_t;

/* Which header callback of http-parser came last, to join split names and values. */
typedef enum http_hdr_state { HDR_NONE, HDR_FIELD, HDR_VALUE, HDR_DONE } http_hdr_state_t;

typedef enum http_framing {
    FRAME_LENGTH,      /* Content-Length */
    FRAME_CHUNKED,     /* Transfer-Encoding: chunked */
    FRAME_UNTIL_CLOSE, /* an HTTP/1.0 stream: the close ends the body */
    FRAME_NONE,        /* 1xx, 204, 304: no body at all */
} http_framing_t;

typedef struct http_conn http_conn_t;

typedef struct http_hdr_ref {
    uint32_t name;  /* offset of the NUL-terminated name in req->hdrs */
    uint32_t value; /* offset of the NUL-terminated value in req->hdrs */
} http_hdr_ref_t;

struct http_request {
    http_conn_t *conn;  /* the connection that embeds this request */
    const char *method; /* static string from http-parser */
    buf_t url;          /* request target as sent; cut in place into path and query */
    const char *path;   /* into url (or a literal), valid once url_split */
    const char *query;  /* into url, or "" */
    buf_t hdrs;         /* name\0value\0 for every header, in order */
    http_hdr_ref_t *hdr_refs;
    size_t num_hdrs;
    size_t cap_hdrs;
    http_hdr_state_t hdr_state;
    buf_t body;
    buf_t resp_hdrs; /* "Name: value\r\n" lines added by the owner */
    void (*on_close)(http_request_t *req, void *arg);
    void *on_close_arg;
    bool url_split;
    bool keep_alive; /* the client allows another request on this connection */
    bool is_http10;
    bool no_body;      /* HEAD, or a status without a body: body bytes are not sent */
    bool is_streaming; /* http_stream_start was called */
    bool is_chunked;   /* the stream uses chunked framing */
    bool is_closed;    /* the client disconnected before the response was finished */
};

struct http_conn {
    http_server_t *srv;
    http_conn_t *prev;
    http_conn_t *next;
    struct bufferevent *bev; /* owns the socket; NULL once DEAD */
    struct event *timer;     /* idle, header or linger timeout, by state */
    http_parser parser;
    http_conn_state_t state;
    int reject_status;      /* set by a parser callback that paused to refuse the request */
    const char *reject_msg; /* static text for that refusal */
    bool is_counted;        /* the current request is counted in srv->inflight */
    bool in_parse;          /* inside the parse loop: a finished request needs no wake-up */
    bool close_after;       /* close once the current response is flushed */
    bool linger;            /* drain input before closing (error responses) */
    bool saw_eof;           /* the client shut its write side */
    char peer[INET6_ADDRSTRLEN];
    buf_t out; /* response head being assembled */
    http_request_t req;
};

struct http_server {
    struct event_base *base;
    struct evconnlistener *listener; /* owns the listening socket; NULL once draining */
    struct event *accept_retry;      /* re-enables accepting after EMFILE and the like */
    http_server_opts_t opts;
    http_handler_fn handler;
    void *handler_arg;
    http_conn_t *conns; /* every connection, DEAD ones included */
    size_t inflight;    /* requests from their first byte until finished */
    bool draining;
    time_t date_sec; /* second that date was formatted for */
    char date[48];   /* "Date: ...\r\n" */
};

static inline struct evbuffer *http_conn_output(http_conn_t *c)
{
    return bufferevent_get_output(c->bev);
}

/* ---- server.c -------------------------------------------------------------------------------- */

/* Arms the connection's one timer; ms <= 0 disarms it. */
void http_conn_arm(http_conn_t *c, int ms);
/* The first byte of a request arrived: READING, counted, header timer armed. */
void http_conn_begin_request(http_conn_t *c);
/* The owner finished the request: free a DEAD connection, close or wait for the next one. */
void http_req_finish(http_request_t *req);
/* Output was queued that must go out on a later loop turn (a stream's head and chunks, an
 * interim 100 Continue): arm the bufferevent's write event. Whole responses are written at
 * once by http_req_finish instead (see "Writing" in server.c). */
void http_conn_want_write(http_conn_t *c);

/* ---- server_request.c ------------------------------------------------------------------------ */

extern const http_parser_settings http_req_parser_settings;

/* Forgets the previous request on the connection, keeping the allocations for the next. */
void http_req_reset(http_request_t *req);
void http_req_free(http_request_t *req);
/* Cuts the target into path and query; idempotent, and safe on a partial target. */
void http_req_split_url(http_request_t *req);
/* Writes a response's status line and headers; decides Connection: close. */
void http_conn_send_head(http_conn_t *c, int status, const char *content_type, http_framing_t fr,
                         size_t len);

#endif
