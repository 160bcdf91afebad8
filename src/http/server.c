/*
 * server.c - the inbound HTTP/1.1 server of one worker thread: listening, accepting and the
 * connection state machine (contract in server.h; the message itself is in server_request.c).
 *
 * One http_server per worker thread, on that thread's event_base. It accepts from its own
 * SO_REUSEPORT socket with an evconnlistener and gives each connection a bufferevent, an
 * http-parser and one timer. The state machine of a connection is described in
 * docs/internals/http-server.md; in short:
 *
 *   IDLE ----first byte----> READING ----complete request----> HANDLING
 *    ^                          |                                  |  \
 *    '----response finished-----+----------------------------------'   '-client gone-> DEAD
 *                               |                                  |
 *                               '--400/408/413--> CLOSING <--close-'
 *                                                    |
 *                                     flushed, after an error: LINGER
 *
 * Memory: a connection is one allocation that embeds its request (the request is the
 * connection's current message), so a request costs no allocation of its own; the buffers for
 * the URL, headers, body and response head are kept and reused by the next request on the same
 * keep-alive connection. Because the request lives inside the connection, a client that goes
 * away while the handler owns the request does not free the connection: the socket is closed,
 * the state becomes DEAD, and the memory goes when the owner finishes the request.
 *
 * Pipelining: the parser is paused when a request is complete and resumed only after its
 * response is finished, so responses leave in request order without any queue. Bytes that
 * arrive meanwhile wait in the bufferevent's input, which a read watermark bounds.
 *
 * Re-entrancy: the handler runs outside the parser (after http_parser_execute returned), and a
 * request finished from inside the handler lets the same parse loop go on with the next
 * pipelined request; a request finished later, from another callback, schedules a deferred
 * read callback instead, so the owner never finds the next request dispatched inside its own
 * http_respond call. Nothing here frees a connection synchronously except from a libevent
 * callback of that connection, from the last step of a DEAD request, or from http_server_free.
 *
 * Writing: the bufferevent's write event is armed only while output must wait for a later
 * loop turn (a stream's head and chunks, a 100 Continue, a response the socket could not take
 * whole, a connection closing). A finished response on a keep-alive connection, the common
 * case, is written at once from http_req_finish: arming and disarming the write event around
 * every response would cost two epoll_ctl calls and a loop turn of latency per request.
 *
 * Ownership: the server owns the listening socket from http_server_new on (also when that call
 * fails) and closes it on drain or free.
 */
#include "http/server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>

#include "util/alloc.h"
#include "util/log.h"

#define CONN_INPUT_HIGH (64 * 1024)   /* stop reading when this much input waits unparsed */
#define CONN_OUTPUT_HIGH (256 * 1024) /* start no pipelined request while this much is unsent */
#define CONN_LINGER_MS 2000           /* how long to discard input after an error response */
#define SRV_ACCEPT_RETRY_MS 100       /* pause after accept fails for lack of descriptors */

static void conn_parse(http_conn_t *c);
static void conn_free(http_conn_t *c);

/* ---- listening ------------------------------------------------------------------------------- */

static int listen_on(const struct addrinfo *ai, int backlog)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;

    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int http_listen(const char *host, int port, int backlog)
{
    if (port < 0 || port > 65535) {
        errno = EINVAL;
        return -1;
    }
    if (host != NULL && (host[0] == '\0' || strcmp(host, "*") == 0))
        host = NULL;

    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port_text[8];
    snprintf(port_text, sizeof(port_text), "%d", port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port_text, &hints, &res);
    if (rc != 0) {
        errno = rc == EAI_SYSTEM ? errno : EADDRNOTAVAIL;
        return -1;
    }

    /* "localhost" may resolve to ::1 and 127.0.0.1; the first that binds wins, the same one in
     * every worker since they resolve alike. */
    int fd = -1;
    int err = EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = listen_on(ai, backlog);
        if (fd < 0)
            err = errno;
    }
    freeaddrinfo(res);
    if (fd < 0)
        errno = err;
    return fd;
}

/* ---- timers and counting --------------------------------------------------------------------- */

void http_conn_arm(http_conn_t *c, int ms)
{
    if (ms <= 0) {
        evtimer_del(c->timer);
        return;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* A request counts as in flight from its first byte, so that a drain waits for a request that
 * was being received when it began, not only for those already with the handler. */
void http_conn_begin_request(http_conn_t *c)
{
    c->state = CONN_READING;
    c->is_counted = true;
    c->srv->inflight++;
    http_conn_arm(c, c->srv->opts.header_timeout_ms);
}

static void req_uncount(http_conn_t *c)
{
    if (c->is_counted) {
        c->is_counted = false;
        c->srv->inflight--;
    }
}

/* ---- the connection: writing ----------------------------------------------------------------- */

void http_conn_want_write(http_conn_t *c)
{
    bufferevent_enable(c->bev, EV_WRITE);
}

/* Writes the queued output now; whatever the socket does not take (or an error, which the
 * bufferevent then reports through conn_event_cb) is left to the write event. A socket
 * bufferevent keeps the front of its output frozen so that only its own write callback drains
 * it; we unfreeze it for the one write, as that callback does. */
static void conn_write_now(http_conn_t *c)
{
    struct evbuffer *out = http_conn_output(c);
    if (evbuffer_get_length(out) == 0)
        return;
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    if (n < 0 || evbuffer_get_length(out) > 0)
        http_conn_want_write(c);
    else
        bufferevent_disable(c->bev, EV_WRITE); /* a stream may have left it armed */
}

/* ---- the connection: finishing and closing --------------------------------------------------- */

/* Moves to CLOSING: no more requests are read, and the connection closes once the output is
 * flushed. Never frees synchronously, so callers may go on touching the connection. */
static void conn_close_after_flush(http_conn_t *c)
{
    http_conn_want_write(c); /* the write callback closes once the output is flushed */
    c->state = CONN_CLOSING;
    c->close_after = true;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));

    /* A client that stops reading must not hold the connection for ever. bufferevent's write
     * timeout restarts with every write that makes progress, so a slow reader of a large
     * response is not cut off; it reports through conn_event_cb. */
    evtimer_del(c->timer);
    int ms = c->srv->opts.idle_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, NULL, ms > 0 ? &tv : NULL);

    if (evbuffer_get_length(http_conn_output(c)) == 0)
        bufferevent_trigger(c->bev, EV_WRITE,
                            BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* Answers a request the server refuses itself (400, 408, 413, 431) in the caller's dialect,
 * then closes. Input that may still come is discarded first (LINGER), because closing a socket
 * with unread data makes the kernel send a reset that can destroy the response in flight. */
static void conn_reject(http_conn_t *c, int status, const char *message)
{
    http_server_t *srv = c->srv;
    http_request_t *req = &c->req;
    if (c->state == CONN_IDLE) /* bad bytes before a request began: forget the last one */
        http_req_reset(req);
    http_req_split_url(req);
    log_info(NULL, "http: %d for %s %.200s from %s: %s; closing", status,
             req->method[0] ? req->method : "-", req->path[0] ? req->path : "-", c->peer, message);

    buf_t body = BUF_INIT;
    const char *ctype = NULL;
    if (srv->opts.render_error != NULL)
        ctype = srv->opts.render_error(req->path, status, message, &body);
    if (ctype == NULL) {
        ctype = "text/plain";
        buf_reset(&body);
        buf_appends(&body, message);
    }

    req_uncount(c);
    buf_reset(&req->resp_hdrs);
    c->close_after = true;
    c->linger = true;
    http_conn_send_head(c, status, ctype, FRAME_LENGTH, body.len);
    if (!req->no_body)
        evbuffer_add(http_conn_output(c), body.data, body.len);
    buf_free(&body);
    conn_close_after_flush(c);
}

void http_req_finish(http_request_t *req)
{
    http_conn_t *c = req->conn;
    req_uncount(c);
    req->on_close = NULL;
    req->is_streaming = false;
    if (c->state == CONN_DEAD) {
        conn_free(c);
        return;
    }
    if (c->close_after || c->srv->draining) {
        conn_close_after_flush(c);
        return;
    }

    c->state = CONN_IDLE;
    conn_write_now(c);
    http_conn_arm(c, c->srv->opts.idle_timeout_ms);
    /* Inside conn_parse the loop goes on by itself; otherwise wake it for pipelined bytes. */
    if (!c->in_parse && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* ---- the connection: reading ----------------------------------------------------------------- */

static void conn_dispatch(http_conn_t *c)
{
    log_debug(NULL, "http: %s %.200s from %s", c->req.method, c->req.path, c->peer);
    c->srv->handler(&c->req, c->srv->handler_arg);
}

/* Handles the parser's stop after one execute: a complete request, a refusal or bad HTTP.
 * Returns false when parsing must stop. */
static bool conn_after_execute(http_conn_t *c)
{
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (err == HPE_OK)
        return true;
    if (err == HPE_HEADER_OVERFLOW) {
        conn_reject(c, 431, "request headers too large");
        return false;
    }
    if (err != HPE_PAUSED) {
        conn_reject(c, 400, http_errno_description(err));
        return false;
    }

    http_parser_pause(&c->parser, 0);
    if (c->reject_status != 0) {
        conn_reject(c, c->reject_status, c->reject_msg);
        return false;
    }
    conn_dispatch(c);
    return true;
}

static bool conn_wants_parse(http_conn_t *c)
{
    if (c->state == CONN_READING)
        return true;
    /* Back-pressure for pipelining: a client that sends requests without reading responses
     * gets no new ones started until it reads; the write callback resumes. */
    return c->state == CONN_IDLE && evbuffer_get_length(http_conn_output(c)) < CONN_OUTPUT_HIGH;
}

/* Feeds buffered input to the parser block by block, straight from the evbuffer's memory. A
 * handler that answers at once lets the loop go on with the next pipelined request. */
static void conn_parse(http_conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->in_parse = true;
    while (conn_wants_parse(c) && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t n =
            http_parser_execute(&c->parser, &http_req_parser_settings, v.iov_base, v.iov_len);
        evbuffer_drain(in, n);
        if (n == 0 && HTTP_PARSER_ERRNO(&c->parser) == HPE_OK) {
            /* Cannot happen with http-parser 2.x; looping on the same bytes would hang. */
            log_crit(NULL, "http: parser consumed nothing from %s; closing", c->peer);
            conn_reject(c, 400, "request could not be parsed");
            break;
        }
        if (!conn_after_execute(c))
            break;
    }
    c->in_parse = false;
}

/* The client went away while the owner holds its request: close the socket now, tell the owner
 * once, and keep the request until the owner finishes it. */
static void conn_abort_request(http_conn_t *c)
{
    http_request_t *req = &c->req;
    log_info(NULL, "http: client %s closed the connection during %s %.200s; cancelling", c->peer,
             req->method, req->path);
    c->state = CONN_DEAD;
    req->is_closed = true;
    evtimer_del(c->timer);
    bufferevent_free(c->bev);
    c->bev = NULL;

    void (*cb)(http_request_t *, void *) = req->on_close;
    req->on_close = NULL;
    if (cb != NULL)
        cb(req, req->on_close_arg); /* may finish the request and free c: nothing after this */
}

/* The response is flushed and the connection is to close. */
static void conn_on_flushed(http_conn_t *c)
{
    if (!c->linger || c->saw_eof) {
        conn_free(c);
        return;
    }

    c->state = CONN_LINGER;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    http_conn_arm(c, CONN_LINGER_MS);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    http_conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    switch (c->state) {
    case CONN_IDLE:
    case CONN_READING:
        conn_parse(c);
        break;
    case CONN_CLOSING:
    case CONN_LINGER:
        evbuffer_drain(in, evbuffer_get_length(in));
        break;
    case CONN_HANDLING: /* pipelined bytes wait for the response; EOF comes as an event */
    case CONN_DEAD:
        break;
    }
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    http_conn_t *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
        return;

    if (c->state != CONN_CLOSING && c->state != CONN_LINGER)
        bufferevent_disable(bev, EV_WRITE); /* flushed: nothing waits for the socket */
    if (c->state == CONN_CLOSING)
        conn_on_flushed(c);
    else if (c->state == CONN_IDLE && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
        conn_parse(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    http_conn_t *c = arg;
    if (what & BEV_EVENT_EOF)
        c->saw_eof = true;
    if (what & BEV_EVENT_ERROR)
        log_debug(NULL, "http: connection from %s failed: %s", c->peer,
                  evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));

    if (what & BEV_EVENT_TIMEOUT) { /* only CLOSING sets one: the client does not read */
        conn_free(c);
        return;
    }

    switch (c->state) {
    case CONN_HANDLING:
        conn_abort_request(c);
        break;
    case CONN_CLOSING:
    case CONN_IDLE:
        /* A client that only shut its write side may still read what we queued for it. */
        if ((what & BEV_EVENT_ERROR) || evbuffer_get_length(http_conn_output(c)) == 0)
            conn_free(c);
        else if (c->state == CONN_IDLE)
            conn_close_after_flush(c);
        break;
    case CONN_READING: /* the client gave up mid-request; nobody is waiting for an answer */
    case CONN_LINGER:
        conn_free(c);
        break;
    case CONN_DEAD:
        break;
    }
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    http_conn_t *c = arg;
    switch (c->state) {
    case CONN_READING:
        conn_reject(c, 408, "request not received in time");
        break;
    case CONN_IDLE:
        log_debug(NULL, "http: idle connection from %s timed out; closing", c->peer);
        conn_free(c);
        break;
    case CONN_LINGER:
        conn_free(c);
        break;
    case CONN_CLOSING:
    case CONN_HANDLING:
    case CONN_DEAD:
        log_crit(NULL, "http: connection timer fired in a state without one; ignored");
        break;
    }
}

/* ---- the connection: life and death ---------------------------------------------------------- */

static void conn_format_peer(http_conn_t *c, const struct sockaddr *sa)
{
    const void *addr = NULL;
    if (sa->sa_family == AF_INET)
        addr = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        addr = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (addr == NULL || inet_ntop(sa->sa_family, addr, c->peer, sizeof(c->peer)) == NULL)
        snprintf(c->peer, sizeof(c->peer), "unknown");
}

static http_conn_t *conn_new(http_server_t *srv, evutil_socket_t fd, const struct sockaddr *sa)
{
    http_conn_t *c = xcalloc(1, sizeof(*c));
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(srv->base, conn_timer_cb, c);
    if (c->bev == NULL || c->timer == NULL) {
        if (c->bev != NULL)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->timer != NULL)
            event_free(c->timer);
        free(c);
        return NULL;
    }

    c->srv = srv;
    c->req.conn = c;
    http_req_reset(&c->req);
    conn_format_peer(c, sa);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->state = CONN_IDLE;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_INPUT_HIGH);
    /* EV_WRITE (on by default in a new bufferevent) only while output waits: see "Writing" */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    http_conn_arm(c, srv->opts.idle_timeout_ms);

    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    return c;
}

static void conn_free(http_conn_t *c)
{
    http_server_t *srv = c->srv;
    req_uncount(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;

    if (c->bev != NULL)
        bufferevent_free(c->bev);
    event_free(c->timer);
    http_req_free(&c->req);
    buf_free(&c->out);
    free(c);
}

/* ---- the server ------------------------------------------------------------------------------ */

static void srv_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int socklen, void *arg)
{
    http_server_t *srv = arg;
    /* Responses are written whole; Nagle would only delay the last segment of each. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    http_conn_t *c = conn_new(srv, fd, sa);
    if (c == NULL) {
        log_crit(NULL, "http: cannot set up an accepted connection; closed it");
        return;
    }
    log_debug(NULL, "http: connection from %s", c->peer);
}

/* accept failed for a reason other than a vanished client: usually no descriptors left. The
 * listening socket stays readable, so accepting pauses briefly instead of spinning. */
static void srv_accept_error_cb(struct evconnlistener *l, void *arg)
{
    http_server_t *srv = arg;
    int err = EVUTIL_SOCKET_ERROR();
    log_crit(NULL, "http: accept failed: %s; pausing accepts for %d ms",
             evutil_socket_error_to_string(err), SRV_ACCEPT_RETRY_MS);
    evconnlistener_disable(l);
    struct timeval tv = {0, SRV_ACCEPT_RETRY_MS * 1000};
    evtimer_add(srv->accept_retry, &tv);
}

static void srv_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    http_server_t *srv = arg;
    if (srv->listener != NULL)
        evconnlistener_enable(srv->listener);
}

http_server_t *http_server_new(struct event_base *base, int listen_fd,
                               const http_server_opts_t *opts, http_handler_fn handler, void *arg)
{
    if (listen_fd < 0) {
        log_crit(NULL, "http: no listening socket given; no server");
        return NULL;
    }

    http_server_t *srv = xcalloc(1, sizeof(*srv));
    srv->base = base;
    srv->opts = *opts;
    srv->handler = handler;
    srv->handler_arg = arg;
    srv->accept_retry = evtimer_new(base, srv_accept_retry_cb, srv);

    evutil_make_socket_nonblocking(listen_fd);
    srv->listener = evconnlistener_new(base, srv_accept_cb, srv,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
    if (srv->listener == NULL || srv->accept_retry == NULL) {
        log_crit(NULL, "http: cannot set up the listener: %s", strerror(errno));
        if (srv->listener == NULL)
            close(listen_fd);
        http_server_free(srv);
        return NULL;
    }
    evconnlistener_set_error_cb(srv->listener, srv_accept_error_cb);
    return srv;
}

static void srv_stop_accepting(http_server_t *srv)
{
    if (srv->listener != NULL)
        evconnlistener_free(srv->listener); /* closes the socket */
    srv->listener = NULL;
    if (srv->accept_retry != NULL)
        evtimer_del(srv->accept_retry);
}

void http_server_drain(http_server_t *srv)
{
    if (srv->draining)
        return;
    srv->draining = true;
    srv_stop_accepting(srv);

    /* Busy connections see draining when their response finishes. */
    for (http_conn_t *c = srv->conns; c != NULL; c = c->next) {
        if (c->state == CONN_IDLE)
            conn_close_after_flush(c);
    }
}

size_t http_server_inflight(const http_server_t *srv)
{
    return srv->inflight;
}

void http_server_free(http_server_t *srv)
{
    if (srv == NULL)
        return;
    srv_stop_accepting(srv);
    if (srv->accept_retry != NULL)
        event_free(srv->accept_retry);
    while (srv->conns != NULL)
        conn_free(srv->conns);
    free(srv);
}
