/*
 * test_server.c - unit tests for the inbound HTTP/1.1 server (src/http/server.c and
 * server_request.c).
 *
 * Each test runs a real server on 127.0.0.1, on an ephemeral port, in a background thread with
 * its own event_base, and talks to it with plain blocking sockets from the test thread, so what
 * is checked is the bytes a client sees. The test thread never touches the server's objects
 * directly: it runs small functions on the server thread (on_server) and waits for them, which
 * is also how the tests finish requests a handler chose to hold. Every socket read has a
 * five-second timeout, so a server that fails to answer fails the test instead of hanging it.
 *
 * The handler's behaviour is chosen by the request path (see test_handler).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "http/server.h"
#include "util/buf.h"

#define READ_TIMEOUT_S 5
#define WAIT_LIMIT_MS 5000

/* ---- the server under test ------------------------------------------------------------------ */

typedef struct fixture {
    struct event_base *base;
    http_server_t *srv;
    int port;
    pthread_t thread;
    bool running;
    /* Touched on the server thread only; the test reads them through on_server. */
    int handled;          /* handler calls */
    int close_calls;      /* on_close callbacks for held requests */
    http_request_t *held; /* a request /hold or /hold-stream keeps unanswered */
    bool held_streaming;  /* the held request started a stream */
    struct event *delay;  /* answers /delay later */
    http_request_t *delayed;
} fixture_t;

typedef struct snapshot {
    int handled;
    int close_calls;
    bool has_held;
    bool held_closed;
    size_t inflight;
} snapshot_t;

static const char *test_render_error(const char *path, int status, const char *message, buf_t *out)
{
    buf_appendf(out, "{\"error\":{\"status\":%d,\"path\":\"%s\",\"message\":\"%s\"}}", status, path,
                message);
    return "application/json";
}

static void on_held_close(http_request_t *req, void *arg)
{
    fixture_t *fx = arg;
    fx->close_calls++;
}

static void add_header_line(void *arg, const char *name, const char *value)
{
    buf_appendf(arg, "%s=[%s]\n", name, value);
}

static void respond_text(http_request_t *req, int status, const buf_t *b)
{
    http_respond(req, status, "text/plain", buf_cstr(b), b->len);
}

static void handle_echo(http_request_t *req)
{
    size_t len;
    const char *body = http_request_body(req, &len);
    const char *x = http_request_header(req, "x-test");
    buf_t out = BUF_INIT;
    buf_appendf(&out, "method=%s path=%s query=%s x-test=%s body=", http_request_method(req),
                http_request_path(req), http_request_query(req), x ? x : "(none)");
    buf_append(&out, body, len);
    http_response_header(req, "X-Echo", "1");
    respond_text(req, 200, &out);
    buf_free(&out);
}

static void handle_headers(http_request_t *req)
{
    buf_t out = BUF_INIT;
    http_request_each_header(req, add_header_line, &out);
    const char *a = http_request_header(req, "X-A");
    const char *missing = http_request_header(req, "X-Missing");
    buf_appendf(&out, "lookup=[%s] missing=%s\n", a ? a : "", missing ? "present" : "absent");
    buf_appendf(&out, "peer=%s closed=%d\n", http_request_peer(req), http_request_is_closed(req));
    respond_text(req, 200, &out);
    buf_free(&out);
}

/* 4 KiB that start with the query, so a client can tell the answers apart. */
static void handle_big(http_request_t *req)
{
    buf_t out = BUF_INIT;
    buf_appendf(&out, "%s;", http_request_query(req));
    while (out.len < 4096)
        buf_appendc(&out, (char)('a' + out.len % 26));
    respond_text(req, 200, &out);
    buf_free(&out);
}

static void handle_stream(http_request_t *req)
{
    http_stream_start(req, 200, "text/event-stream");
    http_stream_write(req, "data: one\n\n", 11);
    http_stream_write(req, "", 0); /* must not end the body */
    http_stream_write(req, "data: two\n\n", 11);
    http_stream_end(req);
}

static void handle_inject(http_request_t *req)
{
    http_response_header(req, "X-Bad", "a\r\nX-Injected: yes");
    http_response_header(req, "X-Bad\r\nName", "b");
    http_response_header(req, "X-Good", "kept");
    http_respond(req, 200, "text/plain", "ok", 2);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
    fixture_t *fx = arg;
    http_request_t *req = fx->delayed;
    fx->delayed = NULL;
    http_respond(req, 200, "text/plain", "delayed", 7);
}

static void test_handler(http_request_t *req, void *arg)
{
    fixture_t *fx = arg;
    const char *path = http_request_path(req);
    fx->handled++;
    if (http_request_server(req) != fx->srv) {
        http_respond(req, 500, "text/plain", "wrong server", 12);
        return;
    }

    if (strcmp(path, "/echo") == 0) {
        handle_echo(req);
    } else if (strcmp(path, "/headers") == 0) {
        handle_headers(req);
    } else if (strcmp(path, "/big") == 0) {
        handle_big(req);
    } else if (strcmp(path, "/stream") == 0) {
        handle_stream(req);
    } else if (strcmp(path, "/inject") == 0) {
        handle_inject(req);
    } else if (strcmp(path, "/delay") == 0) {
        fx->delayed = req;
        struct timeval tv = {0, 50 * 1000};
        evtimer_add(fx->delay, &tv);
    } else if (strcmp(path, "/hold") == 0 || strcmp(path, "/hold-stream") == 0) {
        fx->held = req;
        fx->held_streaming = strcmp(path, "/hold-stream") == 0;
        http_request_on_close(req, on_held_close, fx);
        if (fx->held_streaming) {
            http_stream_start(req, 200, "text/event-stream");
            http_stream_write(req, "data: first\n\n", 13);
        }
    } else {
        http_respond(req, 404, "text/plain", "no such path", 12);
    }
}

/* ---- running functions on the server thread ------------------------------------------------- */

typedef struct call {
    void (*fn)(fixture_t *fx, void *arg);
    fixture_t *fx;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} call_t;

static void call_cb(evutil_socket_t fd, short what, void *arg)
{
    call_t *c = arg;
    c->fn(c->fx, c->arg);
    pthread_mutex_lock(&c->mu);
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_server(fixture_t *fx, void (*fn)(fixture_t *fx, void *arg), void *arg)
{
    call_t c = {.fn = fn, .fx = fx, .arg = arg, .done = false};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    struct timeval now = {0, 0};
    assert_int_equal(event_base_once(fx->base, -1, EV_TIMEOUT, call_cb, &c, &now), 0);
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
}

static void take_snapshot(fixture_t *fx, void *arg)
{
    snapshot_t *s = arg;
    s->handled = fx->handled;
    s->close_calls = fx->close_calls;
    s->has_held = fx->held != NULL;
    s->held_closed = fx->held != NULL && http_request_is_closed(fx->held);
    s->inflight = http_server_inflight(fx->srv);
}

static snapshot_t snap(fixture_t *fx)
{
    snapshot_t s;
    on_server(fx, take_snapshot, &s);
    return s;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls the server until pred holds or WAIT_LIMIT_MS pass; returns the last snapshot. */
static snapshot_t wait_for(fixture_t *fx, bool (*pred)(const snapshot_t *s))
{
    snapshot_t s = snap(fx);
    for (int waited = 0; !pred(&s) && waited < WAIT_LIMIT_MS; waited += 5) {
        sleep_ms(5);
        s = snap(fx);
    }
    return s;
}

static bool has_held(const snapshot_t *s)
{
    return s->has_held;
}

static int closes_wanted; /* for closes_reached; set by the test thread before polling */

static bool closes_reached(const snapshot_t *s)
{
    return s->close_calls >= closes_wanted;
}

static void respond_held(fixture_t *fx, void *arg)
{
    http_request_t *req = fx->held;
    fx->held = NULL;
    if (fx->held_streaming)
        http_stream_end(req);
    else
        http_respond(req, 200, "text/plain", "released", 8);
}

static void *server_main(void *arg)
{
    fixture_t *fx = arg;
    event_base_loop(fx->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static http_server_opts_t default_opts(void)
{
    http_server_opts_t o = {
        .max_body_bytes = 1024,
        .header_timeout_ms = 3000,
        .idle_timeout_ms = 3000,
        .render_error = test_render_error,
    };
    return o;
}

/* Starts a server on port (0 = any free port). */
static void fx_start_on(fixture_t *fx, const http_server_opts_t *opts, int port)
{
    fx->base = event_base_new();
    assert_non_null(fx->base);
    int fd = http_listen("127.0.0.1", port, 64);
    assert_true(fd >= 0);
    fx->port = bound_port(fd);
    fx->delay = evtimer_new(fx->base, on_delay, fx);
    fx->srv = http_server_new(fx->base, fd, opts, test_handler, fx);
    assert_non_null(fx->srv);
    assert_int_equal(pthread_create(&fx->thread, NULL, server_main, fx), 0);
    fx->running = true;
}

static void fx_start(fixture_t *fx, const http_server_opts_t *opts)
{
    fx_start_on(fx, opts, 0);
}

static void stop_server(fixture_t *fx, void *arg)
{
    if (fx->held != NULL)
        respond_held(fx, NULL);
    if (fx->delayed != NULL)
        http_respond(fx->delayed, 200, "text/plain", "", 0);
    fx->delayed = NULL;
    http_server_free(fx->srv);
    fx->srv = NULL;
    event_base_loopbreak(fx->base);
}

static void fx_stop(fixture_t *fx)
{
    if (!fx->running)
        return;
    fx->running = false;
    on_server(fx, stop_server, NULL);
    pthread_join(fx->thread, NULL);
    event_free(fx->delay);
    event_base_free(fx->base);
}

static int setup(void **state)
{
    *state = calloc(1, sizeof(fixture_t));
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    fx_stop(fx);
    free(fx);
    return 0;
}

/* ---- a small blocking HTTP client ----------------------------------------------------------- */

typedef struct client {
    int fd;
    buf_t in; /* received and not yet consumed */
} client_t;

typedef struct response {
    int status;
    buf_t head; /* status line and headers, without the blank line */
    buf_t body; /* de-chunked */
    bool chunked;
} response_t;

static int try_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    struct timeval tv = {READ_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static void cli_open(client_t *c, int port)
{
    c->fd = try_connect(port);
    assert_true(c->fd >= 0);
    buf_init(&c->in);
}

static void cli_close(client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
}

static void cli_send_n(client_t *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void cli_send(client_t *c, const char *s)
{
    cli_send_n(c, s, strlen(s));
}

/* Reads once more into c->in: >0 bytes, 0 on EOF, -1 on error or timeout. */
static ssize_t cli_fill(client_t *c)
{
    char tmp[16384];
    ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
    if (n > 0)
        buf_append(&c->in, tmp, (size_t)n);
    return n;
}

static void cli_consume(client_t *c, size_t n)
{
    memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
    c->in.data[c->in.len] = '\0';
}

/* Waits until c->in holds at least n bytes; false on EOF or timeout first. */
static bool cli_need(client_t *c, size_t n)
{
    while (c->in.len < n) {
        if (cli_fill(c) <= 0)
            return false;
    }
    return true;
}

/* Returns the offset just past the first CRLF at or after from, waiting for it. */
static bool cli_line(client_t *c, size_t from, size_t *end)
{
    for (;;) {
        char *nl = c->in.len > from ? strstr(c->in.data + from, "\r\n") : NULL;
        if (nl != NULL) {
            *end = (size_t)(nl - c->in.data) + 2;
            return true;
        }
        if (cli_fill(c) <= 0)
            return false;
    }
}

static const char *find_header(const buf_t *head, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *line = strstr(head->data, "\r\n");
    while (line != NULL) {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = strcspn(v, "\r\n");
            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return out;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

/* The test's own chunked decoder: size line, data, CRLF, until the 0 chunk. */
static bool cli_read_chunked(client_t *c, buf_t *body)
{
    for (;;) {
        size_t end;
        if (!cli_line(c, 0, &end))
            return false;
        char *stop = NULL;
        unsigned long size = strtoul(c->in.data, &stop, 16);
        if (stop == c->in.data || *stop != '\r')
            return false;
        cli_consume(c, end);
        if (!cli_need(c, size + 2) || memcmp(c->in.data + size, "\r\n", 2) != 0)
            return false;
        buf_append(body, c->in.data, size);
        cli_consume(c, size + 2);
        if (size == 0)
            return true;
    }
}

/* Reads one response (a 1xx too, as its own response). head_request: no body follows. */
static bool cli_read_response_ex(client_t *c, response_t *r, bool head_request)
{
    buf_init(&r->head);
    buf_init(&r->body);
    r->status = 0;
    r->chunked = false;

    char *end;
    while ((end = c->in.len ? strstr(c->in.data, "\r\n\r\n") : NULL) == NULL) {
        if (cli_fill(c) <= 0)
            return false;
    }
    size_t head_len = (size_t)(end - c->in.data);
    buf_append(&r->head, c->in.data, head_len);
    cli_consume(c, head_len + 4);
    if (sscanf(r->head.data, "HTTP/1.1 %d", &r->status) != 1)
        return false;
    if (r->status < 200 || head_request || r->status == 204 || r->status == 304)
        return true;

    char v[64];
    if (find_header(&r->head, "Transfer-Encoding", v, sizeof(v)) != NULL) {
        r->chunked = strcmp(v, "chunked") == 0;
        return r->chunked && cli_read_chunked(c, &r->body);
    }
    if (find_header(&r->head, "Content-Length", v, sizeof(v)) != NULL) {
        size_t n = strtoul(v, NULL, 10);
        if (!cli_need(c, n))
            return false;
        buf_append(&r->body, c->in.data, n);
        cli_consume(c, n);
        return true;
    }
    /* No framing: the body runs to the close. */
    while (cli_fill(c) > 0) {
    }
    buf_append(&r->body, c->in.data, c->in.len);
    cli_consume(c, c->in.len);
    return true;
}

static bool cli_read_response(client_t *c, response_t *r)
{
    return cli_read_response_ex(c, r, false);
}

static void resp_free(response_t *r)
{
    buf_free(&r->head);
    buf_free(&r->body);
}

/* True when the server closes the connection and sends nothing more first. */
static bool cli_eof_clean(client_t *c)
{
    ssize_t n;
    while ((n = cli_fill(c)) > 0) {
    }
    return n == 0 && c->in.len == 0;
}

static void assert_header(const response_t *r, const char *name, const char *want)
{
    char v[256];
    const char *got = find_header(&r->head, name, v, sizeof(v));
    if (want == NULL) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
}

/* Sends one request on a fresh connection and reads the answer. */
static void one_shot(fixture_t *fx, client_t *c, response_t *r, const char *request)
{
    cli_open(c, fx->port);
    cli_send(c, request);
    assert_true(cli_read_response(c, r));
}

/* ---- tests: requests and keep-alive --------------------------------------------------------- */

static void test_get_and_post(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "GET /echo?a=1&b=2 HTTP/1.1\r\nHost: t\r\nX-Test: hi\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query=a=1&b=2 x-test=hi body=");
    assert_header(&r, "Content-Type", "text/plain");
    assert_header(&r, "Content-Length", "51");
    assert_header(&r, "X-Echo", "1");
    assert_header(&r, "Connection", NULL);
    char date[64];
    assert_non_null(find_header(&r.head, "Date", date, sizeof(date)));
    assert_int_equal(strlen(date), 29); /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    assert_string_equal(date + 26, "GMT");
    assert_true(strncmp(r.head.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
    resp_free(&r);

    cli_send(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
    assert_true(cli_read_response(&c, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_cstr(&r.body),
                        "method=POST path=/echo query= x-test=(none) body=hello world");
    resp_free(&r);

    cli_send(&c, "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(cli_read_response(&c, &r));
    assert_int_equal(r.status, 404);
    assert_true(strncmp(r.head.data, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    resp_free(&r);
    cli_close(&c);
    assert_int_equal(snap(fx).handled, 3);
}

static void test_keepalive_two_requests(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_header(&r, "Connection", NULL);
    resp_free(&r);

    cli_send(&c, "GET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query=n=2 x-test=(none) body=");
    resp_free(&r);
    cli_close(&c);
}

static void test_pipelining_in_order(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    /* The first answer comes from a timer, the others at once: order must still hold. */
    client_t c;
    cli_open(&c, fx->port);
    cli_send(&c, "GET /delay HTTP/1.1\r\nHost: t\r\n\r\n"
                 "POST /echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /echo?n=3 HTTP/1.1\r\nHost: t\r\n\r\n");
    response_t r;
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body), "delayed");
    resp_free(&r);
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body),
                        "method=POST path=/echo query=n=2 x-test=(none) body=abc");
    resp_free(&r);
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query=n=3 x-test=(none) body=");
    resp_free(&r);
    cli_close(&c);
}

/* Many pipelined requests in one write, more than the input watermark, with responses that add
 * up to far more than the output limit before the client reads any: the server must stop and
 * resume as the client reads, and answer all of them in order. */
static void test_pipelining_many(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    enum { N = 2000 };
    buf_t all = BUF_INIT;
    for (int i = 0; i < N; i++)
        buf_appendf(&all, "GET /big?i=%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    assert_true(all.len > 64 * 1024);
    client_t c;
    cli_open(&c, fx->port);
    cli_send_n(&c, all.data, all.len);
    buf_free(&all);

    char want[128];
    for (int i = 0; i < N; i++) {
        response_t r;
        assert_true(cli_read_response(&c, &r));
        int n = snprintf(want, sizeof(want), "i=%d;", i);
        assert_int_equal(r.body.len, 4096);
        assert_memory_equal(r.body.data, want, (size_t)n);
        resp_free(&r);
    }
    cli_close(&c);
    assert_int_equal(snap(fx).handled, N);
}

static void test_http10_closes(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "GET /echo HTTP/1.0\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_header(&r, "Connection", "close");
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);

    /* HTTP/1.0 with keep-alive asked for keeps the connection, and says so. */
    one_shot(fx, &c, &r, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_header(&r, "Connection", "keep-alive");
    resp_free(&r);
    cli_send(&c, "GET /echo?again HTTP/1.0\r\n\r\n");
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query=again x-test=(none) body=");
    assert_header(&r, "Connection", "close");
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);
}

static void test_connection_close_header(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    /* The request after the closing one is never answered. */
    client_t c;
    response_t r;
    one_shot(fx, &c, &r,
             "GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
             "GET /echo?ignored HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_header(&r, "Connection", "close");
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);
    assert_int_equal(snap(fx).handled, 1);
}

static void test_headers_and_target(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r,
             "GET /headers HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nx-spaced:   padded value  \r\n"
             "X-Empty:\r\nX-Last: part\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_cstr(&r.body), "Host=[t]\nX-A=[1]\nx-spaced=[padded value]\n"
                                           "X-Empty=[]\nX-Last=[part]\n"
                                           "lookup=[1] missing=absent\n"
                                           "peer=127.0.0.1 closed=0\n");
    resp_free(&r);

    /* Absolute form: only the path and query count; a fragment is dropped. */
    cli_send(&c, "GET http://example.com/echo?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query=x=1 x-test=(none) body=");
    resp_free(&r);
    cli_close(&c);
}

/* We never switch protocols: an Upgrade request is plain HTTP and the connection goes on; a
 * CONNECT is answered and ends the connection, since a tunnel would follow. */
static void test_upgrade_and_connect(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r,
             "GET /echo?up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
             "GET /echo?after HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query=up x-test=(none) body=");
    resp_free(&r);
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query=after x-test=(none) body=");
    resp_free(&r);
    cli_close(&c);

    one_shot(fx, &c, &r, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_int_equal(r.status, 404);
    assert_header(&r, "Connection", "close");
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);
}

static void test_head_request(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    cli_open(&c, fx->port);
    cli_send(&c, "HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    response_t r;
    assert_true(cli_read_response_ex(&c, &r, true));
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Length", "49");
    resp_free(&r);

    /* No body bytes were sent: the next response starts right away. */
    cli_send(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(cli_read_response(&c, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query= x-test=(none) body=");
    resp_free(&r);
    cli_close(&c);
}

static void test_response_header_injection(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "GET /inject HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_header(&r, "X-Good", "kept");
    assert_header(&r, "X-Bad", NULL);
    assert_header(&r, "X-Injected", NULL);
    assert_string_equal(buf_cstr(&r.body), "ok");
    resp_free(&r);
    cli_close(&c);
}

/* ---- tests: limits and errors --------------------------------------------------------------- */

static void test_413_content_length(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    o.max_body_bytes = 100;
    fx_start(fx, &o);

    /* Only the head is sent: the answer may not wait for the body. */
    client_t c;
    response_t r;
    one_shot(fx, &c, &r,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
    assert_int_equal(r.status, 413);
    assert_header(&r, "Content-Type", "application/json");
    assert_header(&r, "Connection", "close");
    assert_string_equal(buf_cstr(&r.body),
                        "{\"error\":{\"status\":413,\"path\":\"/v1/chat/completions\","
                        "\"message\":\"request body too large\"}}");
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);

    /* Exactly at the limit is fine. */
    buf_t req = BUF_INIT;
    buf_appends(&req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
    for (int i = 0; i < 100; i++)
        buf_appendc(&req, 'a' + i % 26);
    one_shot(fx, &c, &r, buf_cstr(&req));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cli_close(&c);
    buf_free(&req);

    snapshot_t s = snap(fx);
    assert_int_equal(s.handled, 1);
    assert_int_equal(s.inflight, 0);
}

static void test_expect_continue(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    o.max_body_bytes = 100;
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r,
             "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_int_equal(r.status, 100);
    assert_string_equal(buf_cstr(&r.head), "HTTP/1.1 100 Continue");
    resp_free(&r);
    cli_send(&c, "abcde");
    assert_true(cli_read_response(&c, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_cstr(&r.body),
                        "method=POST path=/echo query= x-test=(none) body=abcde");
    resp_free(&r);
    cli_close(&c);

    /* Too large: 413 straight away, no 100 first. */
    one_shot(
        fx, &c, &r,
        "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n");
    assert_int_equal(r.status, 413);
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);
}

static void test_413_chunked(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    o.max_body_bytes = 100;
    fx_start(fx, &o);

    /* Within the limit, a chunked body arrives whole (and a trailer is ignored). */
    client_t c;
    response_t r;
    one_shot(fx, &c, &r,
             "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_cstr(&r.body),
                        "method=POST path=/echo query= x-test=(none) body=hello world");
    resp_free(&r);
    cli_close(&c);

    /* Two chunks of 60 bytes: the second crosses the limit. */
    char chunk[61];
    memset(chunk, 'x', 60);
    chunk[60] = '\0';
    buf_t req = BUF_INIT;
    buf_appendf(&req,
                "POST /v1/messages HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3c\r\n%s\r\n3c\r\n%s\r\n",
                chunk, chunk);
    one_shot(fx, &c, &r, buf_cstr(&req));
    buf_free(&req);
    assert_int_equal(r.status, 413);
    assert_string_equal(buf_cstr(&r.body), "{\"error\":{\"status\":413,\"path\":\"/v1/messages\","
                                           "\"message\":\"request body too large\"}}");
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);

    snapshot_t s = snap(fx);
    assert_int_equal(s.handled, 1);
    assert_int_equal(s.inflight, 0);
}

static void test_400_garbage(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "\x16\x03\x01 this is not http\r\n\r\n");
    assert_int_equal(r.status, 400);
    assert_header(&r, "Content-Type", "application/json");
    assert_header(&r, "Connection", "close");
    assert_non_null(strstr(buf_cstr(&r.body), "\"status\":400"));
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);

    /* A good request first, then a broken one on the same connection. */
    one_shot(fx, &c, &r, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cli_send(&c, "GET /echo HTTP/1.1\r\nBad Header\r\n\r\n");
    assert_true(cli_read_response(&c, &r));
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(buf_cstr(&r.body), "\"path\":\"/echo\""));
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);
    assert_int_equal(snap(fx).inflight, 0);
}

static void test_431_huge_headers(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    buf_t req = BUF_INIT;
    buf_appends(&req, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: ");
    for (int i = 0; i < 100 * 1024; i++)
        buf_appendc(&req, 'b');
    buf_appends(&req, "\r\n\r\n");
    client_t c;
    response_t r;
    one_shot(fx, &c, &r, buf_cstr(&req));
    buf_free(&req);
    assert_int_equal(r.status, 431);
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);
    assert_int_equal(snap(fx).handled, 0);
}

static void test_408_header_timeout(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    o.header_timeout_ms = 100;
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "GET /echo HTTP/1.1\r\nHost: t\r\n");
    assert_int_equal(r.status, 408);
    assert_string_equal(buf_cstr(&r.body), "{\"error\":{\"status\":408,\"path\":\"/echo\","
                                           "\"message\":\"request not received in time\"}}");
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);

    /* A body that stops short is timed out the same way. */
    one_shot(fx, &c, &r, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    assert_int_equal(r.status, 408);
    assert_true(cli_eof_clean(&c));
    resp_free(&r);
    cli_close(&c);

    snapshot_t s = snap(fx);
    assert_int_equal(s.handled, 0);
    assert_int_equal(s.inflight, 0);
}

static void test_idle_close(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    o.idle_timeout_ms = 100;
    fx_start(fx, &o);

    /* After a response, then without any request at all: closed silently. */
    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_true(cli_eof_clean(&c));
    cli_close(&c);

    cli_open(&c, fx->port);
    assert_true(cli_eof_clean(&c));
    cli_close(&c);
}

/* ---- tests: streaming and disconnects ------------------------------------------------------- */

static void test_stream_chunked(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_true(r.chunked);
    assert_header(&r, "Content-Type", "text/event-stream");
    assert_header(&r, "Cache-Control", "no-cache");
    assert_header(&r, "X-Accel-Buffering", "no");
    assert_header(&r, "Content-Length", NULL);
    assert_string_equal(buf_cstr(&r.body), "data: one\n\ndata: two\n\n");
    resp_free(&r);

    /* The connection carries on after a stream. */
    cli_send(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(cli_read_response(&c, &r));
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cli_close(&c);

    /* HTTP/1.0 has no chunks: the body is raw and ends with the connection. */
    one_shot(fx, &c, &r, "GET /stream HTTP/1.0\r\n\r\n");
    assert_false(r.chunked);
    assert_header(&r, "Transfer-Encoding", NULL);
    assert_header(&r, "Connection", "close");
    assert_string_equal(buf_cstr(&r.body), "data: one\n\ndata: two\n\n");
    resp_free(&r);
    cli_close(&c);
}

static void finish_closed_request(fixture_t *fx, void *arg)
{
    size_t *written = arg;
    http_request_t *req = fx->held;
    fx->held = NULL;
    if (fx->held_streaming) {
        *written = http_stream_write(req, "data: late\n\n", 12);
        http_stream_end(req);
    } else {
        http_response_header(req, "X-Late", "1");
        http_respond(req, 200, "text/plain", "too late", 8);
    }
}

static void check_disconnect(fixture_t *fx, const char *request, bool streaming)
{
    client_t c;
    cli_open(&c, fx->port);
    cli_send(&c, request);
    snapshot_t s = wait_for(fx, has_held);
    assert_true(s.has_held);
    assert_int_equal(s.inflight, 1);
    /* A streaming owner has sent its head and first event; wait until they are here. */
    while (streaming && strstr(buf_cstr(&c.in), "data: first\n\n\r\n") == NULL)
        assert_true(cli_fill(&c) > 0);
    cli_close(&c);

    closes_wanted = s.close_calls + 1;
    s = wait_for(fx, closes_reached);
    assert_int_equal(s.close_calls, closes_wanted);
    assert_true(s.held_closed);
    assert_int_equal(s.inflight, 1); /* still the owner's until it finishes */

    size_t written = 99;
    on_server(fx, finish_closed_request, &written);
    if (streaming)
        assert_int_equal(written, 0);
    s = snap(fx);
    assert_int_equal(s.close_calls, closes_wanted); /* once, not again on finishing */
    assert_int_equal(s.inflight, 0);
    assert_false(s.has_held);
}

static void test_disconnect_during_handler(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    check_disconnect(fx, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n", false);
    check_disconnect(fx, "GET /hold-stream HTTP/1.1\r\nHost: t\r\n\r\n", true);

    /* The server still serves. */
    client_t c;
    response_t r;
    one_shot(fx, &c, &r, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cli_close(&c);
    assert_int_equal(snap(fx).close_calls, 2);
}

static void test_held_request_answered_later(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);

    client_t c;
    cli_open(&c, fx->port);
    cli_send(&c, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\nGET /echo?next HTTP/1.1\r\nHost: t\r\n\r\n");
    snapshot_t s = wait_for(fx, has_held);
    assert_true(s.has_held);
    assert_int_equal(s.inflight, 1);
    assert_int_equal(s.handled, 1); /* the pipelined request waits its turn */

    on_server(fx, respond_held, NULL);
    response_t r;
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body), "released");
    resp_free(&r);
    assert_true(cli_read_response(&c, &r));
    assert_string_equal(buf_cstr(&r.body), "method=GET path=/echo query=next x-test=(none) body=");
    resp_free(&r);
    cli_close(&c);

    s = snap(fx);
    assert_int_equal(s.close_calls, 0);
    assert_int_equal(s.inflight, 0);
}

/* ---- tests: drain and listening ------------------------------------------------------------- */

static void drain_server(fixture_t *fx, void *arg)
{
    http_server_drain(fx->srv);
}

static void test_drain(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    o.idle_timeout_ms = 60000; /* past the client's read timeout: only the drain can close */
    fx_start(fx, &o);

    client_t idle, busy;
    response_t r;
    one_shot(fx, &idle, &r, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cli_open(&busy, fx->port);
    cli_send(&busy, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(wait_for(fx, has_held).has_held);

    on_server(fx, drain_server, NULL);
    assert_true(cli_eof_clean(&idle)); /* idle keep-alive: closed at once */
    cli_close(&idle);
    assert_int_equal(try_connect(fx->port), -ECONNREFUSED);
    assert_int_equal(snap(fx).inflight, 1);

    on_server(fx, respond_held, NULL);
    assert_true(cli_read_response(&busy, &r));
    assert_string_equal(buf_cstr(&r.body), "released");
    assert_header(&r, "Connection", "close");
    assert_true(cli_eof_clean(&busy));
    resp_free(&r);
    cli_close(&busy);
    assert_int_equal(snap(fx).inflight, 0);
}

static void test_listen_reuseport(void **state)
{
    int a = http_listen("127.0.0.1", 0, 16);
    assert_true(a >= 0);
    int port = bound_port(a);
    int b = http_listen("127.0.0.1", port, 16);
    assert_true(b >= 0);
    assert_int_equal(bound_port(b), port);
    close(a);
    close(b);

    int any = http_listen("0.0.0.0", 0, 16);
    assert_true(any >= 0);
    close(any);
    int local = http_listen("localhost", 0, 16);
    assert_true(local >= 0);
    close(local);
    int v6 = http_listen("::1", 0, 16);
    if (v6 >= 0) /* hosts without IPv6 loopback fail here, which is fine */
        close(v6);
    else
        assert_true(errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT);

    /* Not an address of this host (TEST-NET-1), and a port out of range. */
    errno = 0;
    assert_int_equal(http_listen("192.0.2.1", 0, 16), -1);
    assert_int_equal(errno, EADDRNOTAVAIL);
    assert_int_equal(http_listen("127.0.0.1", 70000, 16), -1);
    assert_int_equal(errno, EINVAL);
}

/* Two servers, each on its own thread and loop, share one port and both answer. */
static void test_two_servers_one_port(void **state)
{
    fixture_t *fx = *state;
    http_server_opts_t o = default_opts();
    fx_start(fx, &o);
    fixture_t *other = calloc(1, sizeof(*other));
    assert_non_null(other);
    fx_start_on(other, &o, fx->port);
    assert_int_equal(other->port, fx->port);

    enum { N = 32 };
    for (int i = 0; i < N; i++) {
        client_t c;
        response_t r;
        one_shot(fx, &c, &r, "GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_int_equal(r.status, 200);
        resp_free(&r);
        cli_close(&c);
    }
    int total = snap(fx).handled + snap(other).handled;
    fx_stop(other);
    free(other);
    assert_int_equal(total, N);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_and_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_two_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_and_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_and_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_header_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_431_huge_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_408_header_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_during_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_request_answered_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test(test_listen_reuseport),
        cmocka_unit_test_setup_teardown(test_two_servers_one_port, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
