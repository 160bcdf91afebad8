/*
 * test_upstream.c - unit tests for the upstream HTTP client (src/http/upstream.c).
 *
 * A test server runs on its own thread and event loop, on 127.0.0.1 with ephemeral ports, for
 * the whole group. It has two faces:
 *   - an evhttp server for well-formed HTTP: JSON, errors, echo, chunked streams with delays,
 *     a stream that stalls and a request that never gets an answer; it counts the TCP
 *     connections it accepts, so connection reuse can be checked;
 *   - a raw TCP server that answers with canned bytes and closes, for what evhttp will not
 *     produce: a body cut short, an empty reply, non-HTTP, a 1xx interim response, folded
 *     headers and a gzip body.
 * Each test makes its own event_base and pool on the test thread and runs that loop until its
 * calls are done (with a generous safety limit), then checks what the callbacks recorded. Tests
 * that check that nothing happens (after a cancel) let the loop run a little longer and then
 * require that no callback ran; no test depends on how fast anything is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/upstream.h"
#include "util/alloc.h"
#include "util/buf.h"

#define SAFETY_MS 15000 /* a test whose calls are not done by then has failed */
#define QUIET_MS 300    /* how long "nothing more happens" is watched */

/* ---- the test server: state ------------------------------------------------------------------ */

/* A request the server keeps open: a timed stream, a stalled stream or an unanswered request. */
typedef struct held {
    struct evhttp_request *req;
    struct event *timer; /* stream ticks; NULL for stall and hang */
    int sent;            /* chunks sent so far */
    int total;           /* chunks to send */
    int delay_ms;        /* between chunks */
    bool started;        /* the chunked reply has started */
    struct held *prev;
    struct held *next;
} held_t;

/* A raw connection, kept on a list so that shutdown can free those still open. */
typedef struct raw_conn {
    struct bufferevent *bev;
    struct raw_conn *prev;
    struct raw_conn *next;
} raw_conn_t;

typedef struct server {
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *raw;
    int port;     /* evhttp */
    int raw_port; /* canned replies */
    pthread_t thread;
    atomic_int connections; /* TCP connections accepted by evhttp */
    held_t *held;           /* server thread only (and the main thread after join) */
    raw_conn_t *raw_conns;
} server_t;

static server_t srv;

static void held_link(held_t *h)
{
    h->prev = NULL;
    h->next = srv.held;
    if (srv.held != NULL)
        srv.held->prev = h;
    srv.held = h;
}

static void held_unlink_free(held_t *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        srv.held = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    if (h->timer != NULL)
        event_free(h->timer);
    free(h);
}

static int query_int(struct evhttp_request *req, const char *key, int dflt)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    int value = dflt;

    if (query == NULL || evhttp_parse_query_str(query, &params) != 0)
        return dflt;
    const char *v = evhttp_find_header(&params, key);
    if (v != NULL)
        value = atoi(v);
    evhttp_clear_headers(&params);
    return value;
}

/* ---- the test server: evhttp handlers -------------------------------------------------------- */

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body, strlen(body));
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

static void send_chunk(struct evhttp_request *req, int index)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "chunk-%03d\n", index);
    /* A no-op once the client has gone: evhttp then detaches the request from the dead
     * connection and leaves it to us to end. */
    evhttp_send_reply_chunk(req, out);
    evbuffer_free(out);
}

static void handle_json(struct evhttp_request *req, void *arg)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "X-Request-Id", "req-42");
    evhttp_add_header(h, "X-Padded", "   spaced value   ");
    reply_text(req, 200, "OK", "{\"ok\":true}");
}

static void handle_error(struct evhttp_request *req, void *arg)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "7");
    reply_text(req, 500, "Internal Server Error", "{\"error\":\"boom\"}");
}

/* Answers "METHOD|content-type|expect|x-test|body", "-" for an absent header. */
static void handle_echo(struct evhttp_request *req, void *arg)
{
    static const char *const methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE"};
    static const enum evhttp_cmd_type cmds[] = {EVHTTP_REQ_GET, EVHTTP_REQ_POST, EVHTTP_REQ_HEAD,
                                                EVHTTP_REQ_PUT, EVHTTP_REQ_DELETE};
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    const char *method = "?";

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (evhttp_request_get_command(req) == cmds[i])
            method = methods[i];

    const char *ct = evhttp_find_header(in, "Content-Type");
    const char *expect = evhttp_find_header(in, "Expect");
    const char *xtest = evhttp_find_header(in, "X-Test");
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "%s|%s|%s|%s|", method, ct ? ct : "-", expect ? expect : "-",
                        xtest ? xtest : "-");
    evbuffer_add_buffer(out, body);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void on_stream_tick(evutil_socket_t fd, short kind, void *arg)
{
    held_t *h = arg;

    if (h->sent < h->total) {
        send_chunk(h->req, h->sent++);
        struct timeval tv = {0, h->delay_ms * 1000};
        event_add(h->timer, &tv);
        return;
    }
    evhttp_send_reply_end(h->req); /* also frees a request whose client has gone */
    held_unlink_free(h);
}

/* /stream?n=N&ms=D: N chunks "chunk-000\n"..., one every D ms, then the end. */
static void handle_stream(struct evhttp_request *req, void *arg)
{
    held_t *h = xcalloc(1, sizeof(*h));
    h->req = req;
    h->total = query_int(req, "n", 5);
    h->delay_ms = query_int(req, "ms", 10);
    h->started = true;
    h->timer = evtimer_new(srv.base, on_stream_tick, h);
    held_link(h);

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/event-stream");
    evhttp_send_reply_start(req, 200, "OK");
    struct timeval tv = {0, h->delay_ms * 1000};
    event_add(h->timer, &tv);
}

/* /stall?n=N: N chunks at once, then silence with the connection open. */
static void handle_stall(struct evhttp_request *req, void *arg)
{
    held_t *h = xcalloc(1, sizeof(*h));
    h->req = req;
    h->started = true;
    held_link(h);

    evhttp_send_reply_start(req, 200, "OK");
    int n = query_int(req, "n", 2);
    for (int i = 0; i < n; i++)
        send_chunk(req, i);
}

/* /hang: reads the request and never answers. */
static void handle_hang(struct evhttp_request *req, void *arg)
{
    held_t *h = xcalloc(1, sizeof(*h));
    h->req = req;
    held_link(h);
}

static struct bufferevent *on_http_connection(struct event_base *base, void *arg)
{
    atomic_fetch_add(&srv.connections, 1);
    return NULL; /* evhttp makes its usual bufferevent */
}

/* ---- the test server: raw canned replies ----------------------------------------------------- */

static const unsigned char gzip_body[] = {
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x4b, 0x49, 0x4d, 0xce,
    0x4f, 0x49, 0x4d, 0x51, 0x48, 0xaa, 0x54, 0x48, 0x2e, 0x2d, 0xca, 0xd1, 0x51, 0xc8,
    0xcb, 0x2f, 0x01, 0x71, 0x4a, 0x32, 0x52, 0x15, 0x92, 0x13, 0x73, 0x72, 0x52, 0x8b,
    0xb8, 0x52, 0xa8, 0xa2, 0x04, 0x00, 0x69, 0x52, 0x7f, 0x2c, 0x69, 0x00, 0x00, 0x00};
#define GZIP_PLAIN                                                                                 \
    "decoded by curl, not by the caller\ndecoded by curl, not by the caller\n"                     \
    "decoded by curl, not by the caller\n"

typedef struct canned {
    const char *path;
    const char *reply; /* sent as is, then the connection is closed */
} canned_t;

static const canned_t canned[] = {
    {"/cut", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"},
    {"/cut-chunked",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n3\r\nab"},
    {"/empty", ""},
    {"/garbage", "SSH-2.0-OpenSSH_9.2\r\nnot http at all\r\n\r\n"},
    {"/interim", "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n"
                 "X-Folded: first\r\n   second  \r\n\r\nok"},
};

static void raw_close(raw_conn_t *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv.raw_conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

static void on_raw_written(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        raw_close(arg);
}

static void on_raw_event(struct bufferevent *bev, short what, void *arg)
{
    raw_close(arg);
}

static void raw_send(raw_conn_t *c, const char *path)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (strcmp(path, "/gzip") == 0) {
        evbuffer_add_printf(out,
                            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                            "Content-Length: %zu\r\n\r\n",
                            sizeof(gzip_body));
        evbuffer_add(out, gzip_body, sizeof(gzip_body));
    }
    for (size_t i = 0; i < sizeof(canned) / sizeof(canned[0]); i++)
        if (strcmp(path, canned[i].path) == 0)
            evbuffer_add(out, canned[i].reply, strlen(canned[i].reply));

    if (evbuffer_get_length(out) == 0) {
        raw_close(c);
        return;
    }
    bufferevent_setcb(c->bev, NULL, on_raw_written, on_raw_event, c);
}

/* Waits for the whole request head, drains it (closing with unread bytes would make the kernel
 * send a reset instead of our bytes), and answers by path. */
static void on_raw_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    if (evbuffer_search(in, "\r\n\r\n", 4, NULL).pos < 0)
        return;

    char *line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
    char path[128] = "";
    if (line != NULL)
        sscanf(line, "%*s %127s", path);
    free(line);
    evbuffer_drain(in, evbuffer_get_length(in));
    raw_send(arg, path);
}

static void on_raw_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int len, void *arg)
{
    raw_conn_t *c = xcalloc(1, sizeof(*c));
    c->bev = bufferevent_socket_new(srv.base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->next = srv.raw_conns;
    if (srv.raw_conns != NULL)
        srv.raw_conns->prev = c;
    srv.raw_conns = c;
    bufferevent_setcb(c->bev, on_raw_read, NULL, on_raw_event, c);
    bufferevent_enable(c->bev, EV_READ);
}

/* ---- the test server: life cycle ------------------------------------------------------------- */

static int listen_local(int backlog, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (backlog > 0)
        assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    evutil_make_socket_nonblocking(fd);
    return fd;
}

static void *server_main(void *arg)
{
    event_base_dispatch(srv.base);
    return NULL;
}

static int server_start(void **state)
{
    int fd;

    /* A client that goes away makes the server's next write fail with EPIPE, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    srv.base = event_base_new();
    srv.http = evhttp_new(srv.base);
    evhttp_set_bevcb(srv.http, on_http_connection, NULL);
    evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_cb(srv.http, "/json", handle_json, NULL);
    evhttp_set_cb(srv.http, "/error", handle_error, NULL);
    evhttp_set_cb(srv.http, "/echo", handle_echo, NULL);
    evhttp_set_cb(srv.http, "/stream", handle_stream, NULL);
    evhttp_set_cb(srv.http, "/stall", handle_stall, NULL);
    evhttp_set_cb(srv.http, "/hang", handle_hang, NULL);

    /* Own socket with a deep backlog, so 200 simultaneous connects are all accepted. */
    fd = listen_local(1024, &srv.port);
    assert_int_equal(evhttp_accept_socket(srv.http, fd), 0);

    fd = listen_local(1024, &srv.raw_port);
    srv.raw = evconnlistener_new(srv.base, on_raw_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    assert_non_null(srv.raw);

    assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
    return 0;
}

/* Ends every request still held (which frees it) before evhttp goes, so nothing leaks. */
static int server_stop(void **state)
{
    event_base_loopbreak(srv.base);
    pthread_join(srv.thread, NULL);

    while (srv.held != NULL) {
        held_t *h = srv.held;
        if (h->started)
            evhttp_send_reply_end(h->req);
        else
            evhttp_send_reply(h->req, 503, "Shutting Down", NULL);
        held_unlink_free(h);
    }
    while (srv.raw_conns != NULL)
        raw_close(srv.raw_conns);

    evconnlistener_free(srv.raw);
    evhttp_free(srv.http);
    event_base_free(srv.base);
    libevent_global_shutdown();
    return 0;
}

/* ---- the client side: a pool per test and a recorder per call -------------------------------- */

typedef struct fixture {
    struct event_base *base;
    upstream_pool_t *pool;
    int left; /* calls whose on_done is still due; the loop stops at 0 */
} fixture_t;

#define MAX_WANT 4

typedef struct rec {
    fixture_t *fx;
    upstream_call_t *call;
    int n_head;
    int n_body;
    int n_done;
    long head_status;
    buf_t body;
    upstream_result_t res;
    const char *want[MAX_WANT]; /* header names looked up in on_head */
    char got[MAX_WANT][64];     /* their values, "(null)" when absent */
    char all[512];              /* upstream_call_headers in on_done, one per line */
    bool abort_in_head;
    bool cancel_in_head;
    int abort_at_body;       /* return non-zero on this body piece (1-based) */
    int cancel_at_body;      /* cancel this call on this body piece (1-based) */
    upstream_call_t *victim; /* cancelled from the first on_body */
    bool cancel_in_done;
    const char *start_in_body; /* path of a call started from the first on_body */
    struct rec *child;         /* its recorder */
    struct rec *next_in_chain; /* started from on_done, for sequential calls */
} rec_t;

static upstream_call_t *start_call(rec_t *r, const upstream_request_t *req);

/* One due call less (done or cancelled); the loop stops when none is left. */
static void call_settled(fixture_t *fx)
{
    if (--fx->left == 0)
        event_base_loopexit(fx->base, NULL);
}

static int rec_on_head(void *arg, upstream_call_t *call, long status)
{
    rec_t *r = arg;
    assert_ptr_equal(call, r->call);
    r->n_head++;
    r->head_status = status;

    for (int i = 0; i < MAX_WANT && r->want[i] != NULL; i++) {
        const char *v = upstream_call_header(call, r->want[i]);
        snprintf(r->got[i], sizeof(r->got[i]), "%s", v != NULL ? v : "(null)");
    }
    if (r->cancel_in_head) {
        upstream_cancel(call);
        call_settled(r->fx);
        return 0;
    }
    return r->abort_in_head ? 1 : 0;
}

static void url_for(char *out, size_t cap, int port, const char *path)
{
    snprintf(out, cap, "http://127.0.0.1:%d%s", port, path);
}

static int rec_on_body(void *arg, upstream_call_t *call, const char *data, size_t len)
{
    rec_t *r = arg;
    assert_ptr_equal(call, r->call);
    r->n_body++;
    buf_append(&r->body, data, len);

    if (r->n_body == 1 && r->victim != NULL) {
        upstream_cancel(r->victim);
        call_settled(r->fx);
    }
    if (r->n_body == 1 && r->start_in_body != NULL) {
        char url[128];
        url_for(url, sizeof(url), srv.port, r->start_in_body);
        upstream_request_t req = {.method = "GET", .url = url, .timeout_ms = SAFETY_MS};
        r->fx->left++;
        assert_non_null(start_call(r->child, &req));
    }
    if (r->n_body == r->cancel_at_body) {
        upstream_cancel(call);
        call_settled(r->fx);
        return 0;
    }
    return r->n_body == r->abort_at_body ? 1 : 0;
}

static void rec_on_done(void *arg, upstream_call_t *call, const upstream_result_t *res)
{
    rec_t *r = arg;
    assert_ptr_equal(call, r->call);
    r->n_done++;
    r->res = *res;

    size_t used = 0;
    for (const char *const *h = upstream_call_headers(call); *h != NULL; h++)
        used += (size_t)snprintf(r->all + used, sizeof(r->all) - used, "%s\n", *h);

    if (r->cancel_in_done)
        upstream_cancel(call); /* allowed, and a no-op: the call is ending anyway */
    if (r->next_in_chain != NULL) {
        upstream_request_t req = {.method = "GET", .timeout_ms = SAFETY_MS};
        char url[128];
        url_for(url, sizeof(url), srv.port, "/json");
        req.url = url;
        r->fx->left++;
        assert_non_null(start_call(r->next_in_chain, &req));
    }
    call_settled(r->fx);
}

static const upstream_callbacks_t rec_cbs = {rec_on_head, rec_on_body, rec_on_done};

static void rec_init(rec_t *r, fixture_t *fx)
{
    memset(r, 0, sizeof(*r));
    r->fx = fx;
    buf_init(&r->body);
}

static upstream_call_t *start_call(rec_t *r, const upstream_request_t *req)
{
    r->call = upstream_start(r->fx->pool, req, &rec_cbs, r);
    return r->call;
}

/* GET on the evhttp server (raw = false) or the raw one; counts one more call due. */
static upstream_call_t *get(rec_t *r, bool raw, const char *path, long timeout_ms, long idle_ms)
{
    char url[128];
    url_for(url, sizeof(url), raw ? srv.raw_port : srv.port, path);
    upstream_request_t req = {
        .method = "GET", .url = url, .timeout_ms = timeout_ms, .idle_timeout_ms = idle_ms};
    r->fx->left++;
    upstream_call_t *call = start_call(r, &req);
    assert_non_null(call);
    return call;
}

static bool timed_out;

static void on_safety(evutil_socket_t fd, short kind, void *arg)
{
    timed_out = true;
    event_base_loopexit(arg, NULL);
}

/* Runs the loop until every due on_done has run; fails the test after SAFETY_MS. */
static void run(fixture_t *fx)
{
    struct timeval tv = {SAFETY_MS / 1000, 0};
    struct event *safety = evtimer_new(fx->base, on_safety, fx->base);

    timed_out = false;
    evtimer_add(safety, &tv);
    if (fx->left > 0)
        event_base_dispatch(fx->base);
    event_free(safety);
    assert_false(timed_out);
    assert_int_equal(fx->left, 0);
}

/* Runs the loop for ms, whatever happens: for checking that nothing does. */
static void run_for(fixture_t *fx, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(fx->base, &tv);
    event_base_dispatch(fx->base);
}

static int fixture_setup(void **state)
{
    fixture_t *fx = xcalloc(1, sizeof(*fx));
    fx->base = event_base_new();
    assert_non_null(fx->base);
    fx->pool = upstream_pool_new(fx->base);
    assert_non_null(fx->pool);
    *state = fx;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture_t *fx = *state;
    upstream_pool_free(fx->pool);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* ---- plain responses ------------------------------------------------------------------------- */

static void test_json_ok(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);
    r.want[0] = "Content-Type";
    r.want[1] = "x-request-id";
    r.want[2] = "X-PADDED";
    r.want[3] = "x-missing";

    get(&r, false, "/json", SAFETY_MS, 0);
    assert_int_equal(upstream_pool_active(fx->pool), 1);
    run(fx);

    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.head_status, 200);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_int_equal(r.res.status, 200);
    assert_string_equal(r.res.message, "");
    assert_string_equal(buf_cstr(&r.body), "{\"ok\":true}");
    assert_string_equal(r.got[0], "application/json");
    assert_string_equal(r.got[1], "req-42");
    assert_string_equal(r.got[2], "spaced value");
    assert_string_equal(r.got[3], "(null)");
    assert_true(r.res.total_s > 0.0);
    assert_true(r.res.connect_s <= r.res.first_byte_s);
    assert_true(r.res.first_byte_s <= r.res.total_s);
    assert_int_equal(upstream_pool_active(fx->pool), 0);
    buf_free(&r.body);
}

static void test_status_500_is_a_completed_transfer(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);
    r.want[0] = "retry-after";

    get(&r, false, "/error", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_int_equal(r.res.status, 500);
    assert_int_equal(r.head_status, 500);
    assert_string_equal(r.got[0], "7");
    assert_string_equal(buf_cstr(&r.body), "{\"error\":\"boom\"}");
    buf_free(&r.body);
}

static void test_post_sends_body_and_headers(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    char url[128];
    const char *headers[] = {"Content-Type: application/json", "X-Test: hello", NULL};
    const char body[] = "{\"a\":1}";
    url_for(url, sizeof(url), srv.port, "/echo");
    upstream_request_t req = {.method = "POST",
                              .url = url,
                              .headers = headers,
                              .body = body,
                              .body_len = strlen(body),
                              .timeout_ms = SAFETY_MS};

    rec_init(&r, fx);
    fx->left++;
    assert_non_null(start_call(&r, &req));
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_string_equal(buf_cstr(&r.body), "POST|application/json|-|hello|{\"a\":1}");
    buf_free(&r.body);
}

/* curl asks for "Expect: 100-continue" before a body over 1 MiB, which costs a round trip (or
 * a one-second wait on servers that ignore it); the pool turns that off. */
#define BIG_BODY (1536 * 1024)

static void test_big_post_does_not_wait_for_100_continue(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    char url[128];
    const char *headers[] = {"Content-Type: text/plain", NULL};
    char *body = xmalloc(BIG_BODY);
    memset(body, 'b', BIG_BODY);
    url_for(url, sizeof(url), srv.port, "/echo");
    upstream_request_t req = {.method = "POST",
                              .url = url,
                              .headers = headers,
                              .body = body,
                              .body_len = BIG_BODY,
                              .timeout_ms = SAFETY_MS};

    rec_init(&r, fx);
    fx->left++;
    assert_non_null(start_call(&r, &req));
    run(fx);

    const char *prefix = "POST|text/plain|-|-|";
    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_int_equal(r.body.len, strlen(prefix) + BIG_BODY);
    assert_memory_equal(r.body.data, prefix, strlen(prefix));
    assert_memory_equal(r.body.data + strlen(prefix), body, BIG_BODY);
    buf_free(&r.body);
    free(body);
}

static void test_body_without_content_type_gets_none(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    char url[128];
    url_for(url, sizeof(url), srv.port, "/echo");
    upstream_request_t req = {
        .method = "PUT", .url = url, .body = "xyz", .body_len = 3, .timeout_ms = SAFETY_MS};

    rec_init(&r, fx);
    fx->left++;
    assert_non_null(start_call(&r, &req));
    run(fx);

    /* curl would have sent application/x-www-form-urlencoded. */
    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_string_equal(buf_cstr(&r.body), "PUT|-|-|-|xyz");
    buf_free(&r.body);
}

/* Each method goes out as asked, with or without a body. */
static void test_methods(void **state)
{
    static const struct {
        const char *method;
        const char *body; /* NULL = none */
        const char *want; /* the echo */
    } cases[] = {
        {"GET", NULL, "GET|-|-|-|"},       {"GET", "q=1", "GET|-|-|-|q=1"},
        {"DELETE", NULL, "DELETE|-|-|-|"}, {"POST", NULL, "POST|-|-|-|"},
        {NULL, NULL, "GET|-|-|-|"},
    };
    fixture_t *fx = *state;
    char url[128];
    url_for(url, sizeof(url), srv.port, "/echo");

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rec_t r;
        upstream_request_t req = {.method = cases[i].method,
                                  .url = url,
                                  .body = cases[i].body,
                                  .body_len = cases[i].body ? strlen(cases[i].body) : 0,
                                  .timeout_ms = SAFETY_MS};
        rec_init(&r, fx);
        fx->left++;
        assert_non_null(start_call(&r, &req));
        run(fx);

        assert_int_equal(r.res.err, UPSTREAM_OK);
        assert_string_equal(buf_cstr(&r.body), cases[i].want);
        buf_free(&r.body);
    }
}

static void test_head_request_has_no_body(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    char url[128];
    url_for(url, sizeof(url), srv.port, "/json");
    upstream_request_t req = {.method = "HEAD", .url = url, .timeout_ms = SAFETY_MS};

    rec_init(&r, fx);
    fx->left++;
    assert_non_null(start_call(&r, &req));
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_int_equal(r.res.status, 200);
    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.n_body, 0);
}

static void test_interim_response_is_skipped(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);
    r.want[0] = "x-interim";
    r.want[1] = "x-final";
    r.want[2] = "x-folded";

    get(&r, true, "/interim", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.head_status, 200);
    assert_string_equal(r.got[0], "(null)");
    assert_string_equal(r.got[1], "yes");
    assert_string_equal(r.got[2], "first second");
    assert_string_equal(buf_cstr(&r.body), "ok");
    buf_free(&r.body);
}

/* The whole list, for the audit trail: the final response only, in order, folded lines
 * joined, names lowercased. */
static void test_all_headers_of_the_final_response(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, true, "/interim", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_string_equal(r.all, "content-length: 2\nx-final: yes\nx-folded: first second\n");
    buf_free(&r.body);
}

/* A recycled call must not show the headers of the request before it. */
static void test_all_headers_are_per_call(void **state)
{
    fixture_t *fx = *state;
    rec_t a, b;
    rec_init(&a, fx);
    rec_init(&b, fx);

    get(&a, false, "/json", SAFETY_MS, 0);
    run(fx);
    get(&b, false, "/error", SAFETY_MS, 0);
    run(fx);

    assert_non_null(strstr(a.all, "content-type: application/json\n"));
    assert_non_null(strstr(a.all, "x-padded: spaced value\n"));
    assert_non_null(strstr(b.all, "retry-after: 7\n"));
    assert_null(strstr(b.all, "x-request-id"));
    buf_free(&a.body);
    buf_free(&b.body);
}

static void test_gzip_body_is_decoded(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, true, "/gzip", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_string_equal(buf_cstr(&r.body), GZIP_PLAIN);
    buf_free(&r.body);
}

/* ---- streams and timeouts -------------------------------------------------------------------- */

static void expect_chunks(const rec_t *r, int n)
{
    buf_t want = BUF_INIT;
    for (int i = 0; i < n; i++)
        buf_appendf(&want, "chunk-%03d\n", i);
    assert_string_equal(buf_cstr(&r->body), buf_cstr(&want));
    buf_free(&want);
}

static void test_stream_arrives_whole_and_in_order(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, false, "/stream?n=20&ms=10", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_int_equal(r.res.status, 200);
    assert_true(r.n_body >= 2); /* the delays keep the chunks apart */
    expect_chunks(&r, 20);
    buf_free(&r.body);
}

static void test_idle_timeout_catches_a_stalled_stream(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, false, "/stall?n=2", SAFETY_MS, 300);
    run(fx);

    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res.err, UPSTREAM_ERR_TIMEOUT);
    assert_int_equal(r.res.status, 200);
    assert_non_null(strstr(r.res.message, "idle timeout"));
    expect_chunks(&r, 2);
    buf_free(&r.body);
}

static void test_idle_timeout_is_reset_by_data(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    /* Ten chunks 60 ms apart take longer than the 300 ms idle limit, but no gap does. */
    get(&r, false, "/stream?n=10&ms=60", SAFETY_MS, 300);
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_OK);
    expect_chunks(&r, 10);
    buf_free(&r.body);
}

/* Over plain HTTP/1.1 a second call to the same host gets its own connection at once, rather
 * than waiting to learn whether the first (hanging) one could multiplex. */
static void test_hanging_call_does_not_block_the_host(void **state)
{
    fixture_t *fx = *state;
    rec_t hang;
    rec_t json;
    rec_init(&hang, fx);
    rec_init(&json, fx);

    get(&hang, false, "/hang", SAFETY_MS, 0);
    get(&json, false, "/json", SAFETY_MS, 0);
    fx->left--; /* run until the /json call is done */
    run(fx);

    assert_int_equal(json.res.err, UPSTREAM_OK);
    assert_int_equal(hang.n_head + hang.n_body + hang.n_done, 0);
    assert_int_equal(upstream_pool_active(fx->pool), 1);
    buf_free(&json.body);
}

static void test_total_timeout(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, false, "/hang", 300, 0);
    run(fx);

    assert_int_equal(r.n_head, 0);
    assert_int_equal(r.res.err, UPSTREAM_ERR_TIMEOUT);
    assert_int_equal(r.res.status, 0);
    assert_non_null(strstr(r.res.message, "timed out"));
}

/* ---- broken peers ---------------------------------------------------------------------------- */

static void test_close_mid_body_is_reset(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, true, "/cut", SAFETY_MS, 0);
    run(fx);

    /* curl: CURLE_PARTIAL_FILE, "transfer closed with 93 bytes remaining to read". */
    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.res.err, UPSTREAM_ERR_RESET);
    assert_int_equal(r.res.status, 200);
    assert_non_null(strstr(r.res.message, "93 bytes remaining"));
    assert_string_equal(buf_cstr(&r.body), "partial");
    buf_free(&r.body);
}

static void test_close_mid_chunk_is_reset(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, true, "/cut-chunked", SAFETY_MS, 0);
    run(fx);

    /* curl: CURLE_PARTIAL_FILE, "transfer closed with outstanding read data remaining". */
    assert_int_equal(r.res.err, UPSTREAM_ERR_RESET);
    assert_int_equal(r.res.status, 200);
    assert_non_null(strstr(r.res.message, "outstanding read data"));
    assert_string_equal(buf_cstr(&r.body), "partialab");
    buf_free(&r.body);
}

static void test_empty_reply_is_reset(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, true, "/empty", SAFETY_MS, 0);
    run(fx);

    /* curl: CURLE_GOT_NOTHING. */
    assert_int_equal(r.n_head, 0);
    assert_int_equal(r.res.err, UPSTREAM_ERR_RESET);
    assert_int_equal(r.res.status, 0);
    assert_non_null(strstr(r.res.message, "Empty reply"));
}

static void test_non_http_reply_is_bad_response(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);

    get(&r, true, "/garbage", SAFETY_MS, 0);
    run(fx);

    /* curl: CURLE_UNSUPPORTED_PROTOCOL, "Received HTTP/0.9 when not allowed". */
    assert_int_equal(r.n_head, 0);
    assert_int_equal(r.res.err, UPSTREAM_ERR_BAD_RESPONSE);
    assert_non_null(strstr(r.res.message, "HTTP/0.9"));
}

static void test_connection_refused(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    char path[64];
    int port;
    int fd = listen_local(0, &port); /* bound but not listening: connect is refused */

    rec_init(&r, fx);
    char url[128];
    url_for(url, sizeof(url), port, "/json");
    upstream_request_t req = {.method = "GET", .url = url, .timeout_ms = SAFETY_MS};
    fx->left++;
    assert_non_null(start_call(&r, &req));
    run(fx);
    close(fd);

    snprintf(path, sizeof(path), "port %d", port);
    assert_int_equal(r.n_head, 0);
    assert_int_equal(r.res.err, UPSTREAM_ERR_REFUSED);
    assert_int_equal(r.res.status, 0);
    assert_non_null(strstr(r.res.message, path));
}

static void test_message_never_shows_header_values(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    /* The scheme is the "secret", so that curl's own message quotes it. */
    const char *headers[] = {"Authorization: Bearer sksecret123", NULL};
    upstream_request_t req = {.method = "GET",
                              .url = "sksecret123://example.invalid/",
                              .headers = headers,
                              .timeout_ms = SAFETY_MS};

    rec_init(&r, fx);
    fx->left++;
    assert_non_null(start_call(&r, &req));
    run(fx);

    assert_int_equal(r.res.err, UPSTREAM_ERR_INTERNAL);
    assert_null(strstr(r.res.message, "sksecret123"));
    assert_non_null(strstr(r.res.message, "\"***\""));
}

/* ---- aborting and cancelling ----------------------------------------------------------------- */

static void test_abort_from_on_head(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);
    r.abort_in_head = true;

    get(&r, false, "/stream?n=20&ms=10", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.n_body, 0);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res.err, UPSTREAM_ERR_ABORTED);
    assert_int_equal(r.res.status, 200);
}

static void test_abort_from_on_body(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);
    r.abort_at_body = 1;

    get(&r, false, "/stream?n=20&ms=10", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(r.n_body, 1);
    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res.err, UPSTREAM_ERR_ABORTED);
    assert_string_equal(r.res.message, "a callback stopped the transfer");
    buf_free(&r.body);
}

/* After a cancel the pool must still work: one more call on it completes normally. */
static void expect_pool_still_works(fixture_t *fx)
{
    rec_t r;
    rec_init(&r, fx);
    get(&r, false, "/json", SAFETY_MS, 0);
    run(fx);
    assert_int_equal(r.res.err, UPSTREAM_OK);
    assert_string_equal(buf_cstr(&r.body), "{\"ok\":true}");
    buf_free(&r.body);
}

static void test_cancel_from_on_body(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);
    r.cancel_at_body = 1;

    get(&r, false, "/stream?n=50&ms=20", SAFETY_MS, 0);
    run(fx);
    assert_int_equal(upstream_pool_active(fx->pool), 0);
    run_for(fx, QUIET_MS);

    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.n_body, 1);
    assert_int_equal(r.n_done, 0);
    expect_pool_still_works(fx);
    buf_free(&r.body);
}

static void test_cancel_from_on_head(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);
    r.cancel_in_head = true;

    get(&r, false, "/stream?n=50&ms=20", SAFETY_MS, 0);
    run(fx);
    run_for(fx, QUIET_MS);

    assert_int_equal(r.n_head, 1);
    assert_int_equal(r.n_body, 0);
    assert_int_equal(r.n_done, 0);
    expect_pool_still_works(fx);
}

static void test_cancel_another_call_from_on_body(void **state)
{
    fixture_t *fx = *state;
    rec_t a;
    rec_t b;
    rec_init(&a, fx);
    rec_init(&b, fx);

    a.victim = get(&b, false, "/hang", SAFETY_MS, 0);
    get(&a, false, "/stream?n=5&ms=10", SAFETY_MS, 0);
    run(fx);
    run_for(fx, QUIET_MS);

    assert_int_equal(a.res.err, UPSTREAM_OK);
    expect_chunks(&a, 5);
    assert_int_equal(b.n_head + b.n_body + b.n_done, 0);
    assert_int_equal(upstream_pool_active(fx->pool), 0);
    buf_free(&a.body);
}

static void test_cancel_from_on_done_is_harmless(void **state)
{
    fixture_t *fx = *state;
    rec_t r;
    rec_init(&r, fx);
    r.cancel_in_done = true;

    get(&r, false, "/json", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(r.n_done, 1);
    assert_int_equal(r.res.err, UPSTREAM_OK);
    expect_pool_still_works(fx);
    buf_free(&r.body);
}

static void test_cancel_before_any_byte(void **state)
{
    fixture_t *fx = *state;
    rec_t hang;
    rec_t json;
    rec_init(&hang, fx);
    rec_init(&json, fx);

    upstream_cancel(get(&json, false, "/json", SAFETY_MS, 0)); /* not even connected yet */
    fx->left--;
    get(&hang, false, "/hang", SAFETY_MS, 0);
    run_for(fx, 100); /* connected, request sent, nothing back */
    upstream_cancel(hang.call);
    fx->left--;
    assert_int_equal(upstream_pool_active(fx->pool), 0);
    run_for(fx, QUIET_MS);

    assert_int_equal(json.n_head + json.n_body + json.n_done, 0);
    assert_int_equal(hang.n_head + hang.n_body + hang.n_done, 0);
    expect_pool_still_works(fx);
}

static void test_start_from_on_body(void **state)
{
    fixture_t *fx = *state;
    rec_t parent;
    rec_t child;
    rec_init(&parent, fx);
    rec_init(&child, fx);
    parent.start_in_body = "/json";
    parent.child = &child;

    get(&parent, false, "/stream?n=3&ms=10", SAFETY_MS, 0);
    run(fx);

    assert_int_equal(parent.res.err, UPSTREAM_OK);
    assert_int_equal(child.n_done, 1);
    assert_int_equal(child.res.err, UPSTREAM_OK);
    assert_string_equal(buf_cstr(&child.body), "{\"ok\":true}");
    buf_free(&parent.body);
    buf_free(&child.body);
}

static void test_pool_free_cancels_calls_in_flight(void **state)
{
    fixture_t *fx = *state;
    rec_t r[4];
    for (int i = 0; i < 4; i++)
        rec_init(&r[i], fx);

    get(&r[0], false, "/hang", SAFETY_MS, 0);
    get(&r[1], false, "/hang", SAFETY_MS, 1000);
    get(&r[2], false, "/stream?n=50&ms=20", SAFETY_MS, 0);
    get(&r[3], false, "/json", SAFETY_MS, 0);
    upstream_pool_free(fx->pool);
    fx->pool = NULL;
    run_for(fx, QUIET_MS);

    for (int i = 0; i < 4; i++)
        assert_int_equal(r[i].n_head + r[i].n_body + r[i].n_done, 0);
}

/* ---- load and reuse -------------------------------------------------------------------------- */

#define N_CONCURRENT 200

static void test_many_concurrent_calls(void **state)
{
    fixture_t *fx = *state;
    rec_t *r = xcalloc(N_CONCURRENT, sizeof(*r));

    for (int i = 0; i < N_CONCURRENT; i++) {
        rec_init(&r[i], fx);
        get(&r[i], false, i % 4 == 0 ? "/stream?n=3&ms=5" : "/json", SAFETY_MS, 0);
    }
    assert_int_equal(upstream_pool_active(fx->pool), N_CONCURRENT);
    run(fx);

    for (int i = 0; i < N_CONCURRENT; i++) {
        assert_int_equal(r[i].n_done, 1);
        assert_int_equal(r[i].res.err, UPSTREAM_OK);
        assert_int_equal(r[i].res.status, 200);
        if (i % 4 == 0)
            expect_chunks(&r[i], 3);
        else
            assert_string_equal(buf_cstr(&r[i].body), "{\"ok\":true}");
        buf_free(&r[i].body);
    }
    assert_int_equal(upstream_pool_active(fx->pool), 0);
    free(r);
}

#define N_SEQUENTIAL 20

static void test_sequential_calls_reuse_one_connection(void **state)
{
    fixture_t *fx = *state;
    rec_t r[N_SEQUENTIAL];

    for (int i = 0; i < N_SEQUENTIAL; i++) {
        rec_init(&r[i], fx);
        r[i].next_in_chain = i + 1 < N_SEQUENTIAL ? &r[i + 1] : NULL;
    }
    int before = atomic_load(&srv.connections);
    get(&r[0], false, "/json", SAFETY_MS, 0);
    run(fx);

    for (int i = 0; i < N_SEQUENTIAL; i++) {
        assert_int_equal(r[i].res.err, UPSTREAM_OK);
        assert_string_equal(buf_cstr(&r[i].body), "{\"ok\":true}");
        buf_free(&r[i].body);
    }
    assert_int_equal(atomic_load(&srv.connections) - before, 1);
}

static void test_err_names(void **state)
{
    assert_string_equal(upstream_err_name(UPSTREAM_OK), "ok");
    assert_string_equal(upstream_err_name(UPSTREAM_ERR_TIMEOUT), "timeout");
    assert_string_equal(upstream_err_name(UPSTREAM_ERR_REFUSED), "refused");
    assert_string_equal(upstream_err_name(UPSTREAM_ERR_DNS), "dns");
    assert_string_equal(upstream_err_name(UPSTREAM_ERR_TLS), "tls");
    assert_string_equal(upstream_err_name(UPSTREAM_ERR_RESET), "reset");
    assert_string_equal(upstream_err_name(UPSTREAM_ERR_BAD_RESPONSE), "bad_response");
    assert_string_equal(upstream_err_name(UPSTREAM_ERR_ABORTED), "aborted");
    assert_string_equal(upstream_err_name(UPSTREAM_ERR_INTERNAL), "internal");
}

#define T(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_json_ok),
        T(test_status_500_is_a_completed_transfer),
        T(test_post_sends_body_and_headers),
        T(test_big_post_does_not_wait_for_100_continue),
        T(test_body_without_content_type_gets_none),
        T(test_methods),
        T(test_head_request_has_no_body),
        T(test_interim_response_is_skipped),
        T(test_all_headers_of_the_final_response),
        T(test_all_headers_are_per_call),
        T(test_gzip_body_is_decoded),
        T(test_stream_arrives_whole_and_in_order),
        T(test_idle_timeout_catches_a_stalled_stream),
        T(test_idle_timeout_is_reset_by_data),
        T(test_hanging_call_does_not_block_the_host),
        T(test_total_timeout),
        T(test_close_mid_body_is_reset),
        T(test_close_mid_chunk_is_reset),
        T(test_empty_reply_is_reset),
        T(test_non_http_reply_is_bad_response),
        T(test_connection_refused),
        T(test_message_never_shows_header_values),
        T(test_abort_from_on_head),
        T(test_abort_from_on_body),
        T(test_cancel_from_on_body),
        T(test_cancel_from_on_head),
        T(test_cancel_another_call_from_on_body),
        T(test_cancel_from_on_done_is_harmless),
        T(test_cancel_before_any_byte),
        T(test_start_from_on_body),
        T(test_pool_free_cancels_calls_in_flight),
        T(test_many_concurrent_calls),
        T(test_sequential_calls_reuse_one_connection),
        cmocka_unit_test(test_err_names),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
