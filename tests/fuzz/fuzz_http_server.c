/*
 * fuzz_http_server.c - libFuzzer target for the inbound HTTP server (src/http/server.c and
 * server_request.c): request parsing, pipelining, refusals and the connection state machine.
 *
 * Each input is the byte stream of one client connection to a real server on 127.0.0.1 that
 * runs on this thread's event loop. The client writes the input, shuts its write side and reads
 * until the server closes. Invariants checked after every input: the server closes the
 * connection (no hang), and afterwards holds no connection and counts no request in flight.
 * The handler answers at once, by path, with an echo, a stream or an error, so every response
 * writer is reached. Run: make fuzz && build/fuzz/fuzz_http_server -max_len=8192
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "http/server_internal.h"
#include "util/log.h"

#define MAX_INPUT 65536
#define MAX_SPINS 100000

static struct event_base *base;
static http_server_t *srv;
static int port;

static const char *render_error(const char *path, int status, const char *message, buf_t *out)
{
    buf_appendf(out, "{\"status\":%d,\"path\":\"%s\",\"message\":\"%s\"}", status, path, message);
    return "application/json";
}

static void handler(http_request_t *req, void *arg)
{
    const char *path = http_request_path(req);
    size_t len;
    const char *body = http_request_body(req, &len);
    if (strcmp(path, "/s") == 0) {
        http_stream_start(req, 200, "text/event-stream");
        http_stream_write(req, body, len);
        http_stream_write(req, http_request_query(req), strlen(http_request_query(req)));
        http_stream_end(req);
        return;
    }
    const char *v = http_request_header(req, "x-h");
    if (v != NULL)
        http_response_header(req, "X-H", v);
    http_respond(req, path[0] == '/' ? 200 : 404, "text/plain", body, len);
}

static void setup_once(void)
{
    log_set_level(LOG_LVL_CRIT);
    base = event_base_new();
    int fd = http_listen("127.0.0.1", 0, 128);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    if (base == NULL || fd < 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
        abort();
    port = ntohs(sa.sin_port);
    http_server_opts_t o = {
        .max_body_bytes = 1024,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 10000,
        .render_error = render_error,
    };
    srv = http_server_new(base, fd, &o, handler, NULL);
    if (srv == NULL)
        abort();
}

static int client_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        abort();
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Reads what the server sent; true once it closed the connection. */
static int client_drain(int fd)
{
    char tmp[16384];
    for (;;) {
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return 1;
        if (n < 0)
            return 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    if (base == NULL)
        setup_once();

    int fd = client_connect();
    size_t sent = 0;
    int closed = 0;
    for (int spins = 0; !closed; spins++) {
        if (spins > MAX_SPINS)
            abort(); /* the server never closed the connection */
        if (sent < size) {
            ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            if (sent == size)
                shutdown(fd, SHUT_WR);
        } else if (sent == 0) {
            shutdown(fd, SHUT_WR);
            sent = 1; /* an empty input: shut once */
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        closed = client_drain(fd);
    }
    close(fd);

    for (int spins = 0; srv->conns != NULL; spins++) {
        if (spins > MAX_SPINS)
            abort(); /* a connection outlived its socket */
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    if (http_server_inflight(srv) != 0)
        abort();
    return 0;
}
