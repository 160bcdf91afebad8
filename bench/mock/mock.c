/*
 * mock.c - gatehouse-mock, the fake model provider the benchmark sends traffic to.
 *
 * It answers the OpenAI chat API (POST .../v1/chat/completions) and the Anthropic Messages API
 * (POST .../v1/messages), as JSON or as SSE when the request body says "stream": true. Every
 * answer is generated, never read from a model, so the only cost per request is HTTP handling
 * and a memcpy or two: the mock must never be what limits a benchmark.
 *
 * The shape of an answer is chosen by the request path, because gatehouse, nginx and Portkey
 * all let the operator set a base URL and then append the API path to it:
 *
 *   /p/size=10240,chunks=50,delay_ms=0,latency_ms=0/v1/chat/completions
 *
 *   size        bytes of generated assistant text in the answer (default 64)
 *   chunks      SSE content events the text is split into (default 10; streaming only)
 *   delay_ms    pause between two SSE events (default 0)
 *   latency_ms  pause before the answer (JSON) or before the first event (SSE) (default 0)
 *
 * Parameters may be left out or given in any order; a path without the /p/... prefix uses the
 * defaults. Usage: gatehouse-mock [--host H] [--port P] [--threads N]. Each thread runs its
 * own libevent loop and evhttp server on a socket bound with SO_REUSEPORT. GET /stats answers
 * the number of requests completed and streams cancelled by the client, summed over threads.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MOCK_MAX_SIZE (1024u * 1024) /* largest text an answer may carry (1 MiB) */
#define MOCK_MAX_CHUNKS 100000

typedef struct mock_params {
    size_t size;       /* bytes of assistant text */
    int chunks;        /* SSE content events */
    int delay_ms;      /* between events */
    int latency_ms;    /* before the answer or the first event */
} mock_params_t;

typedef enum mock_api { MOCK_OPENAI, MOCK_ANTHROPIC } mock_api_t;

/* One streamed answer in progress. Freed when the last event is sent or the client goes. */
typedef struct mock_stream {
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
    mock_params_t params;
    mock_api_t api;
    int next;          /* index of the next event to send; see stream_send_next */
    bool started;      /* reply head sent */
} mock_stream_t;

/* A JSON answer waiting out its latency_ms. */
typedef struct mock_delayed {
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
    struct evbuffer *body;
    const char *content_type;
} mock_delayed_t;

static atomic_ulong n_completed;
static atomic_ulong n_cancelled;

/* The text answers are cut from: printable ASCII that needs no JSON escaping. */
static char *lorem;
static const char lorem_seed[] = "The quick brown fox jumps over the lazy dog while the gateway "
                                 "relays every token it is given, in order and on time. ";

static void lorem_init(void)
{
    lorem = malloc(MOCK_MAX_SIZE);
    if (lorem == NULL) {
        fprintf(stderr, "gatehouse-mock: out of memory\n");
        exit(1);
    }
    size_t seed_len = sizeof(lorem_seed) - 1;
    for (size_t i = 0; i < MOCK_MAX_SIZE; i += seed_len) {
        size_t n = MOCK_MAX_SIZE - i < seed_len ? MOCK_MAX_SIZE - i : seed_len;
        memcpy(lorem + i, lorem_seed, n);
    }
}

/* ---- request parsing ------------------------------------------------------------------------ */

static long param_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    const char *p = text;
    while ((p = strstr(p, name)) != NULL) {
        bool at_start = p == text || p[-1] == ',' || p[-1] == '/';
        if (at_start && p[n] == '=')
            return strtol(p + n + 1, NULL, 10);
        p += n;
    }
    return -1;
}

/* Reads the parameters from a path such as /p/size=10,chunks=2/v1/chat/completions. */
static void parse_params(const char *path, mock_params_t *out)
{
    *out = (mock_params_t){.size = 64, .chunks = 10, .delay_ms = 0, .latency_ms = 0};
    const char *p = strstr(path, "/p/");
    if (p == NULL)
        return;
    char seg[256];
    const char *end = strchr(p + 3, '/');
    size_t len = end ? (size_t)(end - (p + 3)) : strlen(p + 3);
    if (len >= sizeof(seg))
        len = sizeof(seg) - 1;
    memcpy(seg, p + 3, len);
    seg[len] = '\0';

    long v;
    if ((v = param_value(seg, "size")) >= 0)
        out->size = (size_t)v < MOCK_MAX_SIZE ? (size_t)v : MOCK_MAX_SIZE;
    if ((v = param_value(seg, "chunks")) >= 1)
        out->chunks = v < MOCK_MAX_CHUNKS ? (int)v : MOCK_MAX_CHUNKS;
    if ((v = param_value(seg, "delay_ms")) >= 0)
        out->delay_ms = (int)v;
    if ((v = param_value(seg, "latency_ms")) >= 0)
        out->latency_ms = (int)v;
}

/* True when the JSON body has "stream": true at any depth; a cheap scan, not a parser, which
 * is enough for the bodies the benchmark and the gateways send. */
static bool body_wants_stream(struct evbuffer *body)
{
    size_t len = evbuffer_get_length(body);
    const char *text = (const char *)evbuffer_pullup(body, -1);
    const char *end = text + len;
    const char *p = text;
    while (p != NULL && p < end) {
        p = memmem(p, (size_t)(end - p), "\"stream\"", 8);
        if (p == NULL)
            return false;
        p += 8;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':'))
            p++;
        if (end - p >= 4 && memcmp(p, "true", 4) == 0)
            return true;
    }
    return false;
}

/* ---- JSON answers --------------------------------------------------------------------------- */

static void openai_json(struct evbuffer *out, const mock_params_t *prm)
{
    evbuffer_add_printf(out,
                        "{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion\",\"created\":%ld,"
                        "\"model\":\"mock-model\",\"choices\":[{\"index\":0,\"message\":"
                        "{\"role\":\"assistant\",\"content\":\"",
                        (long)time(NULL));
    evbuffer_add(out, lorem, prm->size);
    evbuffer_add_printf(out,
                        "\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":"
                        "{\"prompt_tokens\":12,\"completion_tokens\":%zu,\"total_tokens\":%zu}}",
                        prm->size / 4 + 1, prm->size / 4 + 13);
}

static void anthropic_json(struct evbuffer *out, const mock_params_t *prm)
{
    evbuffer_add_printf(out, "{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\","
                             "\"model\":\"mock-model\",\"content\":[{\"type\":\"text\",\"text\":\"");
    evbuffer_add(out, lorem, prm->size);
    evbuffer_add_printf(out,
                        "\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":"
                        "{\"input_tokens\":12,\"output_tokens\":%zu}}",
                        prm->size / 4 + 1);
}

static void send_json(struct evhttp_request *req, struct evbuffer *body, const char *type)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
    evhttp_send_reply(req, 200, "OK", body);
    atomic_fetch_add_explicit(&n_completed, 1, memory_order_relaxed);
}

static void delayed_free(mock_delayed_t *d)
{
    if (d->conn != NULL)
        evhttp_connection_set_closecb(d->conn, NULL, NULL);
    event_free(d->timer);
    evbuffer_free(d->body);
    free(d);
}

static void on_delayed_timer(evutil_socket_t fd, short what, void *arg)
{
    mock_delayed_t *d = arg;
    send_json(d->req, d->body, d->content_type);
    delayed_free(d);
}

static void on_delayed_close(struct evhttp_connection *conn, void *arg)
{
    mock_delayed_t *d = arg;
    d->conn = NULL;
    atomic_fetch_add_explicit(&n_cancelled, 1, memory_order_relaxed);
    delayed_free(d);
}

/* ---- SSE answers ---------------------------------------------------------------------------- */

/* The text of content event i of n: the size split as evenly as it goes. */
static void chunk_slice(const mock_params_t *prm, int i, const char **text, size_t *len)
{
    size_t n = (size_t)prm->chunks;
    size_t from = prm->size * (size_t)i / n;
    size_t to = prm->size * (size_t)(i + 1) / n;
    *text = lorem + from;
    *len = to - from;
}

/*
 * OpenAI events: 0 = role, 1..chunks = content, chunks+1 = finish_reason, chunks+2 = usage,
 * chunks+3 = [DONE]. Anthropic events: 0 = message_start + content_block_start,
 * 1..chunks = content_block_delta, chunks+1 = content_block_stop + message_delta +
 * message_stop. Returns false when the event written was the last.
 */
static bool openai_event(struct evbuffer *out, const mock_params_t *prm, int i)
{
    static const char head[] = "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\","
                               "\"created\":1700000000,\"model\":\"mock-model\",\"choices\":[";
    if (i == prm->chunks + 3) {
        evbuffer_add(out, "data: [DONE]\n\n", 14);
        return false;
    }
    evbuffer_add(out, head, sizeof(head) - 1);
    if (i == 0) {
        evbuffer_add_printf(out, "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                                 "\"finish_reason\":null}]}\n\n");
    } else if (i <= prm->chunks) {
        const char *text;
        size_t len;
        chunk_slice(prm, i - 1, &text, &len);
        evbuffer_add_printf(out, "{\"index\":0,\"delta\":{\"content\":\"");
        evbuffer_add(out, text, len);
        evbuffer_add_printf(out, "\"},\"finish_reason\":null}]}\n\n");
    } else if (i == prm->chunks + 1) {
        evbuffer_add_printf(out, "{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    } else {
        evbuffer_add_printf(out, "],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":%zu,"
                                 "\"total_tokens\":%zu}}\n\n",
                            prm->size / 4 + 1, prm->size / 4 + 13);
    }
    return true;
}

static bool anthropic_event(struct evbuffer *out, const mock_params_t *prm, int i)
{
    if (i == 0) {
        evbuffer_add_printf(out,
                            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
                            "{\"id\":\"msg_mock\",\"type\":\"message\",\"role\":\"assistant\","
                            "\"model\":\"mock-model\",\"content\":[],\"stop_reason\":null,"
                            "\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
                            "\"output_tokens\":1}}}\n\n"
                            "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                            "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
        return true;
    }
    if (i <= prm->chunks) {
        const char *text;
        size_t len;
        chunk_slice(prm, i - 1, &text, &len);
        evbuffer_add_printf(out, "event: content_block_delta\ndata: {\"type\":"
                                 "\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                                 "\"text_delta\",\"text\":\"");
        evbuffer_add(out, text, len);
        evbuffer_add(out, "\"}}\n\n", 5);
        return true;
    }
    evbuffer_add_printf(out,
                        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                        "\"index\":0}\n\n"
                        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
                        "{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":"
                        "{\"output_tokens\":%zu}}\n\n"
                        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                        prm->size / 4 + 1);
    return false;
}

static void stream_free(mock_stream_t *s)
{
    if (s->conn != NULL)
        evhttp_connection_set_closecb(s->conn, NULL, NULL);
    event_free(s->timer);
    free(s);
}

static void on_stream_close(struct evhttp_connection *conn, void *arg)
{
    mock_stream_t *s = arg;
    s->conn = NULL;
    atomic_fetch_add_explicit(&n_cancelled, 1, memory_order_relaxed);
    stream_free(s);
}

/* Sends the next event (all remaining ones at once when there is no delay). */
static void on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
    mock_stream_t *s = arg;
    if (!s->started) {
        struct evkeyvalq *h = evhttp_request_get_output_headers(s->req);
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evhttp_add_header(h, "Cache-Control", "no-cache");
        evhttp_send_reply_start(s->req, 200, "OK");
        s->started = true;
    }

    struct evbuffer *out = evbuffer_new();
    bool more;
    do {
        more = s->api == MOCK_OPENAI ? openai_event(out, &s->params, s->next)
                                     : anthropic_event(out, &s->params, s->next);
        s->next++;
    } while (more && s->params.delay_ms == 0);
    evhttp_send_reply_chunk(s->req, out);
    evbuffer_free(out);

    if (!more) {
        evhttp_send_reply_end(s->req);
        atomic_fetch_add_explicit(&n_completed, 1, memory_order_relaxed);
        stream_free(s);
        return;
    }
    struct timeval tv = {s->params.delay_ms / 1000, (s->params.delay_ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

static void start_stream(struct evhttp_request *req, const mock_params_t *prm, mock_api_t api)
{
    struct event_base *base = evhttp_connection_get_base(evhttp_request_get_connection(req));
    mock_stream_t *s = calloc(1, sizeof(*s));
    s->req = req;
    s->conn = evhttp_request_get_connection(req);
    s->params = *prm;
    s->api = api;
    s->timer = evtimer_new(base, on_stream_timer, s);
    evhttp_connection_set_closecb(s->conn, on_stream_close, s);

    if (prm->latency_ms == 0) {
        on_stream_timer(-1, 0, s);
        return;
    }
    struct timeval tv = {prm->latency_ms / 1000, (prm->latency_ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* ---- routing -------------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static void send_stats(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "{\"completed\":%lu,\"cancelled\":%lu}\n",
                        atomic_load(&n_completed), atomic_load(&n_cancelled));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL)
        path = "/";
    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET && strcmp(path, "/stats") == 0) {
        send_stats(req);
        return;
    }

    mock_api_t api;
    if (ends_with(path, "/chat/completions"))
        api = MOCK_OPENAI;
    else if (ends_with(path, "/messages"))
        api = MOCK_ANTHROPIC;
    else {
        evhttp_send_error(req, 404, "no such mock endpoint");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_send_error(req, 405, "use POST");
        return;
    }

    mock_params_t prm;
    parse_params(path, &prm);
    if (body_wants_stream(evhttp_request_get_input_buffer(req))) {
        start_stream(req, &prm, api);
        return;
    }

    struct evbuffer *body = evbuffer_new();
    if (api == MOCK_OPENAI)
        openai_json(body, &prm);
    else
        anthropic_json(body, &prm);
    if (prm.latency_ms == 0) {
        send_json(req, body, "application/json");
        evbuffer_free(body);
        return;
    }

    struct event_base *base = evhttp_connection_get_base(evhttp_request_get_connection(req));
    mock_delayed_t *d = calloc(1, sizeof(*d));
    d->req = req;
    d->conn = evhttp_request_get_connection(req);
    d->body = body;
    d->content_type = "application/json";
    d->timer = evtimer_new(base, on_delayed_timer, d);
    evhttp_connection_set_closecb(d->conn, on_delayed_close, d);
    struct timeval tv = {prm.latency_ms / 1000, (prm.latency_ms % 1000) * 1000};
    evtimer_add(d->timer, &tv);
}

/* ---- start-up ------------------------------------------------------------------------------- */

static int listen_reuseport(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct mock_thread {
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
} mock_thread_t;

static void *thread_main(void *arg)
{
    mock_thread_t *t = arg;
    event_base_dispatch(t->base);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 9001;
    int threads = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gatehouse-mock [--host H] [--port P] [--threads N]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "gatehouse-mock: --threads must be 1..64\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    lorem_init();
    mock_thread_t *ts = calloc((size_t)threads, sizeof(*ts));
    for (int i = 0; i < threads; i++) {
        int fd = listen_reuseport(host, port);
        if (fd < 0) {
            fprintf(stderr, "gatehouse-mock: cannot listen on %s:%d: %s\n", host, port,
                    strerror(errno));
            return 1;
        }
        ts[i].base = event_base_new();
        ts[i].http = evhttp_new(ts[i].base);
        evhttp_set_gencb(ts[i].http, on_request, NULL);
        evhttp_set_max_body_size(ts[i].http, 64 * 1024 * 1024);
        evhttp_set_timeout(ts[i].http, 600);
        if (evhttp_accept_socket(ts[i].http, fd) != 0) {
            fprintf(stderr, "gatehouse-mock: evhttp_accept_socket failed\n");
            return 1;
        }
    }
    for (int i = 0; i < threads; i++)
        pthread_create(&ts[i].thread, NULL, thread_main, &ts[i]);
    fprintf(stderr, "gatehouse-mock listening on %s:%d with %d threads\n", host, port, threads);
    for (int i = 0; i < threads; i++)
        pthread_join(ts[i].thread, NULL);
    return 0;
}
