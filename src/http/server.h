/*
 * server.h - the inbound HTTP/1.1 server of one worker thread.
 *
 * Each worker thread runs one http_server on its own libevent loop, accepting from its own
 * listening socket; all workers' sockets are bound to the same address with SO_REUSEPORT, so
 * the kernel spreads connections across threads and nothing is shared between them.
 *
 * Connections are parsed with http-parser (libhttp-parser). We use it rather than libevent's
 * evhttp because evhttp 2.1 answers oversized bodies and parse errors itself, with an HTML page,
 * before the application sees the request; gatehouse must answer those in the caller's dialect
 * (see http_server_opts.render_error).
 *
 * Lifetime rule: the server calls the handler once per complete request. The handler (or
 * whoever it hands the request to) must finish the request exactly once, with http_respond or
 * http_stream_end, even if the client has gone away in the meantime; until then the request
 * stays valid. When the client disconnects before the response is finished, the close callback
 * (http_request_on_close) runs so the owner can cancel its upstream work; writes after that are
 * silently dropped. Requests on one keep-alive connection are answered in order.
 */
#ifndef GATEHOUSE_HTTP_SERVER_H
#define GATEHOUSE_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct event_base;

typedef struct http_server http_server_t;
typedef struct http_request http_request_t;

typedef void (*http_handler_fn)(http_request_t *req, void *arg);

/* Renders the body of an error the server itself produces (413 body too large, 400 bad HTTP,
 * 408 header timeout, 503 shutting down) in the dialect the path implies. Appends the body to
 * out and returns its content type. */
typedef const char *(*http_render_error_fn)(const char *path, int status, const char *message,
                                            buf_t *out);

typedef struct http_server_opts {
    size_t max_body_bytes; /* request bodies above this get 413 */
    int header_timeout_ms; /* time allowed to receive a request's head and body */
    int idle_timeout_ms;   /* keep-alive connection with no request in progress */
    http_render_error_fn render_error;
} http_server_opts_t;

/* Creates a listening socket bound with SO_REUSEPORT. Returns the fd or -1 (errno set). */
int http_listen(const char *host, int port, int backlog);

http_server_t *http_server_new(struct event_base *base, int listen_fd,
                               const http_server_opts_t *opts, http_handler_fn handler, void *arg);
/* Stops accepting new connections and closes idle keep-alive connections; requests in
 * progress go on. Connections close after their current response. */
void http_server_drain(http_server_t *srv);
/* Requests received and not yet finished. */
size_t http_server_inflight(const http_server_t *srv);
/* Closes every connection at once and frees the server. Unfinished requests are freed too:
 * call only after their owners are gone. */
void http_server_free(http_server_t *srv);

/* ---- the request ---------------------------------------------------------------------------- */

const char *http_request_method(const http_request_t *req); /* "GET", "POST", ... */
const char *http_request_path(const http_request_t *req);   /* without the query string */
const char *http_request_query(const http_request_t *req);  /* after '?', or "" */
/* A request header, case-insensitive; NULL when absent. */
const char *http_request_header(const http_request_t *req, const char *name);
/* Calls fn for each request header in order. */
void http_request_each_header(const http_request_t *req,
                              void (*fn)(void *arg, const char *name, const char *value),
                              void *arg);
const char *http_request_body(const http_request_t *req, size_t *len);
/* The peer's address as text. */
const char *http_request_peer(const http_request_t *req);
/* True once the client has disconnected. */
bool http_request_is_closed(const http_request_t *req);
/* The server that received the request. */
http_server_t *http_request_server(const http_request_t *req);

/* Registers a callback run once if the client disconnects before the request is finished. */
void http_request_on_close(http_request_t *req, void (*cb)(http_request_t *req, void *arg),
                           void *arg);

/* ---- the response --------------------------------------------------------------------------- */

/* Adds a response header. Call before http_respond or http_stream_start. */
void http_response_header(http_request_t *req, const char *name, const char *value);
/* Sends a complete response and finishes the request. */
void http_respond(http_request_t *req, int status, const char *content_type, const char *body,
                  size_t len);
/* Starts a chunked response (SSE or other streaming). */
void http_stream_start(http_request_t *req, int status, const char *content_type);
/* Sends one chunk. Returns the bytes now waiting in the connection's output buffer (for
 * back-pressure), or 0 when the client is gone. */
size_t http_stream_write(http_request_t *req, const char *data, size_t len);
/* Ends the chunked response and finishes the request. */
void http_stream_end(http_request_t *req);

#endif
