/*
 * test_mcp_client.c - unit tests for the MCP client (src/mcp/client.c and its transports)
 * against real MCP servers from npm, run as child processes.
 *
 * Servers: @modelcontextprotocol/server-everything (stdio, Streamable HTTP and legacy SSE),
 * server-filesystem on a temporary folder and server-memory, all run with `node` from
 * tests/node_modules (no npx, no network); plus two scripted fixtures under
 * tests/fixtures/mcp/: fake_server.mjs (stdio, misbehaving on purpose) and http_server.mjs
 * (Streamable HTTP sessions and stream resumption on demand). What a server offers is read
 * from the server itself through a second path (the official SDK, in list_tools.mjs), not
 * copied into the test. Without tests/node_modules every test is skipped with a message.
 *
 * Each test makes its own event_base and upstream pool and runs the loop until what it waits
 * for has happened, with a generous safety limit; a 20 ms ticker runs along so that the tests
 * can also see that the loop never stalls. No test depends on how fast anything is, beyond
 * bounds many times what is needed.
 *
 * Tests run with the repository root as working directory, as `make unit` does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http/upstream.h"
#include "mcp/client.h"
#include "mcp/transport.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define MODULES "tests/node_modules/@modelcontextprotocol/"
#define EVERYTHING MODULES "server-everything/dist/index.js"
#define FILESYSTEM MODULES "server-filesystem/dist/index.js"
#define MEMORY MODULES "server-memory/dist/index.js"
#define FAKE "tests/fixtures/mcp/fake_server.mjs"
#define HTTP_FIXTURE "tests/fixtures/mcp/http_server.mjs"
#define LIST_TOOLS "tests/fixtures/mcp/list_tools.mjs"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

#define SAFETY_MS 20000 /* anything a test waits for must happen well within this */
#define TICK_MS 20
#define MAX_STATES 64

static const char *const pass_env[] = {"PATH", "HOME", NULL};

/* ---- time and processes ---------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static bool have_node_modules(void)
{
    if (access(EVERYTHING, R_OK) == 0)
        return true;
    print_message("skipped: %s is missing; run `npm ci` in tests/ first\n", EVERYTHING);
    return false;
}

#define REQUIRE_SERVERS()                                                                          \
    do {                                                                                           \
        if (!have_node_modules())                                                                  \
            skip();                                                                                \
    } while (0)

/* A free TCP port on 127.0.0.1 (bound and released; the server takes it right after). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* Starts a helper server (node ...) with PORT=port in its environment; waits until it accepts
 * connections. Its output goes to /dev/null, and it dies with the test process even when a
 * failed assertion skips stop_server. */
static pid_t start_server(const char *const argv[], int port)
{
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        setenv("PORT", port_text, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }

    double deadline = now_ms() + SAFETY_MS;
    while (!port_open(port) && now_ms() < deadline)
        usleep(50 * 1000);
    assert_true(port_open(port));
    return pid;
}

static void stop_server(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* The pid of a child of ours whose command line contains marker, or -1. */
static pid_t find_child(const char *marker)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;
    while (d != NULL && found < 0 && (e = readdir(d)) != NULL) {
        char path[300], stat[512], cmd[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t got = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[got] = '\0';
        const char *close_paren = strrchr(stat, ')');
        int ppid = 0;
        char st = 0;
        if (close_paren == NULL || sscanf(close_paren + 1, " %c %d", &st, &ppid) != 2 ||
            ppid != getpid())
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        got = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        for (size_t i = 0; i < got; i++)
            cmd[i] = cmd[i] == '\0' ? ' ' : cmd[i];
        cmd[got] = '\0';
        if (strstr(cmd, marker) != NULL)
            found = (pid_t)atoi(e->d_name);
    }
    if (d != NULL)
        closedir(d);
    return found;
}

/* Runs a command and returns its stdout (owned), for the SDK's second opinion. */
static char *run_capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    buf_t out = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        buf_append(&out, chunk, n);
    assert_int_equal(pclose(p), 0);
    return buf_release(&out);
}

/* ---- the harness: one loop, one pool, one client --------------------------------------------- */

typedef struct harness {
    struct event_base *base;
    upstream_pool_t *pool;
    mcp_client_t *c;
    struct event *ticker;
    long ticks;
    double last_tick;
    double max_gap_ms; /* the longest the loop went without running the ticker */
    mcp_client_state_t states[MAX_STATES];
    char reasons[MAX_STATES][256];
    int n_states;
    int notifications;
    bool free_on_ready; /* on_state frees the client when it becomes ready */
} harness_t;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    harness_t *h = arg;
    double t = now_ms();
    if (h->ticks > 0 && t - h->last_tick > h->max_gap_ms)
        h->max_gap_ms = t - h->last_tick;
    h->last_tick = t;
    h->ticks++;
}

static void on_state(void *arg, mcp_client_t *c, mcp_client_state_t state, const char *reason)
{
    harness_t *h = arg;
    if (h->n_states < MAX_STATES) {
        h->states[h->n_states] = state;
        snprintf(h->reasons[h->n_states], sizeof(h->reasons[0]), "%s", reason ? reason : "");
        h->n_states++;
    }
    if (state == MCP_STATE_READY && h->free_on_ready) {
        mcp_client_free(c);
        h->c = NULL;
    }
}

static void on_notification(void *arg, mcp_client_t *c, const char *method, const json_t *params)
{
    harness_t *h = arg;
    h->notifications++;
}

static void h_init(harness_t *h)
{
    memset(h, 0, sizeof(*h));
    h->base = event_base_new();
    h->pool = upstream_pool_new(h->base);
    h->ticker = event_new(h->base, -1, EV_PERSIST, on_tick, h);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(h->ticker, &tv);
}

static void h_client(harness_t *h, const mcp_client_opts_t *opts)
{
    static const mcp_client_handlers_t handlers = {on_state, on_notification};
    h->c = mcp_client_new(h->base, h->pool, opts, &handlers, h);
    mcp_client_start(h->c);
}

typedef bool (*pred_fn)(harness_t *h, void *arg);

/* Runs the loop until pred holds or max_ms pass. Returns whether it held. */
static bool run_until(harness_t *h, pred_fn pred, void *arg, double max_ms)
{
    double deadline = now_ms() + max_ms;
    while (!pred(h, arg)) {
        if (now_ms() > deadline)
            return false;
        event_base_loop(h->base, EVLOOP_ONCE);
    }
    return true;
}

static bool never(harness_t *h, void *arg)
{
    return false;
}

static void run_for(harness_t *h, double ms)
{
    run_until(h, never, NULL, ms);
}

/* Frees the client, then lets the loop finish what is left (the reaper, a DELETE). */
static void h_done(harness_t *h)
{
    mcp_client_free(h->c);
    h->c = NULL;
    event_free(h->ticker);
    double deadline = now_ms() + 10000;
    while (now_ms() < deadline &&
           event_base_get_num_events(h->base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) > 0)
        event_base_loop(h->base, EVLOOP_ONCE);
    upstream_pool_free(h->pool);
    event_base_free(h->base);
}

static bool is_ready(harness_t *h, void *arg)
{
    return h->c != NULL && mcp_client_state(h->c) == MCP_STATE_READY;
}

static int count_state(const harness_t *h, mcp_client_state_t s)
{
    int n = 0;
    for (int i = 0; i < h->n_states; i++)
        n += h->states[i] == s;
    return n;
}

static bool down_seen(harness_t *h, void *arg)
{
    return count_state(h, MCP_STATE_DOWN) >= (int)(intptr_t)arg;
}

static const char *last_down_reason(const harness_t *h)
{
    for (int i = h->n_states - 1; i >= 0; i--) {
        if (h->states[i] == MCP_STATE_DOWN)
            return h->reasons[i];
    }
    return "";
}

static mcp_client_opts_t stdio_opts(const char *name, const char *const *args)
{
    mcp_client_opts_t o = {0};
    o.name = name;
    o.transport = MCP_TRANSPORT_STDIO;
    o.command = "node";
    o.args = args;
    o.env_names = pass_env;
    return o;
}

static void h_stdio(harness_t *h, const char *name, const char *const *args)
{
    h_init(h);
    mcp_client_opts_t o = stdio_opts(name, args);
    h_client(h, &o);
}

/* ---- calls ----------------------------------------------------------------------------------- */

typedef struct call {
    bool done;
    bool in_request; /* set around mcp_client_request: a callback inside it is a bug */
    bool sync_callback;
    json_t *result;
    int code;
    char message[512];
    int progress;
    double last_progress;
    double total;
} call_t;

static void on_response(void *arg, const json_t *result, const mcp_error_t *err)
{
    call_t *call = arg;
    assert_false(call->done);
    assert_true((result == NULL) != (err == NULL));
    call->sync_callback = call->in_request;
    call->done = true;
    if (result != NULL) {
        call->result = json_deep_copy(result);
    } else {
        call->code = err->code;
        snprintf(call->message, sizeof(call->message), "%s", err->message);
    }
}

static void on_call_progress(void *arg, const json_t *params)
{
    call_t *call = arg;
    call->progress++;
    call->last_progress = json_number_value(json_object_get(params, "progress"));
    call->total = json_number_value(json_object_get(params, "total"));
}

static bool call_done(harness_t *h, void *arg)
{
    return ((call_t *)arg)->done;
}

static void call_free(call_t *call)
{
    json_decref(call->result);
    memset(call, 0, sizeof(*call));
}

static mcp_pending_t *start_tool(harness_t *h, call_t *call, const char *tool, const char *args,
                                 long timeout_ms, bool progress)
{
    json_error_t jerr;
    json_t *params = json_object();
    json_object_set_new(params, "name", json_string(tool));
    json_object_set_new(params, "arguments", json_loads(args ? args : "{}", 0, &jerr));
    call->in_request = true;
    mcp_pending_t *p = mcp_client_request(h->c, "tools/call", params, timeout_ms, on_response,
                                          progress ? on_call_progress : NULL, call);
    call->in_request = false;
    return p;
}

/* Calls a tool and waits for the answer. */
static void call_tool(harness_t *h, call_t *call, const char *tool, const char *args)
{
    start_tool(h, call, tool, args, 0, false);
    assert_true(run_until(h, call_done, call, SAFETY_MS));
    assert_false(call->sync_callback);
}

/* The text of the first content item of a tools/call result. */
static const char *result_text(const call_t *call)
{
    json_t *content = json_object_get(call->result, "content");
    return json_string_value(json_object_get(json_array_get(content, 0), "text"));
}

static json_t *list_tools(harness_t *h)
{
    call_t call = {0};
    mcp_client_list_all(h->c, "tools/list", "tools", on_response, &call);
    assert_true(run_until(h, call_done, &call, SAFETY_MS));
    if (call.result == NULL)
        fail_msg("tools/list failed: %d %s", call.code, call.message);
    return call.result;
}

static bool has_tool(const json_t *tools, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach (tools, i, t) {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0)
            return true;
    }
    return false;
}

/* Compares the names of a listing with the SDK's listing of the same server, as sets. */
static void assert_same_tools(const json_t *tools, const char *sdk_json)
{
    json_error_t jerr;
    json_t *expected = json_loads(sdk_json, 0, &jerr);
    assert_non_null(expected);
    assert_true(json_array_size(expected) > 0);
    assert_int_equal(json_array_size(tools), json_array_size(expected));
    size_t i;
    json_t *name;
    json_array_foreach (expected, i, name) {
        if (!has_tool(tools, json_string_value(name)))
            fail_msg("the SDK lists %s, our client does not", json_string_value(name));
    }
    json_decref(expected);
}

/* ---- stdio against server-everything --------------------------------------------------------- */

static const char *const everything_stdio[] = {EVERYTHING, "stdio", NULL};

static void test_stdio_lists_tools_like_the_sdk(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_stdio(&h, "everything", everything_stdio);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    assert_int_equal(h.states[0], MCP_STATE_CONNECTING);
    assert_int_equal(h.states[1], MCP_STATE_READY);
    const char *version = mcp_client_protocol_version(h.c);
    assert_non_null(version);
    assert_true(strcmp(version, "2025-11-25") == 0 || strcmp(version, "2025-06-18") == 0 ||
                strcmp(version, "2025-03-26") == 0);
    assert_string_equal(json_string_value(json_object_get(mcp_client_server_info(h.c), "name")),
                        "mcp-servers/everything");
    assert_non_null(json_object_get(mcp_client_capabilities(h.c), "tools"));

    json_t *tools = list_tools(&h);
    char *sdk = run_capture("node " LIST_TOOLS " node " EVERYTHING " stdio");
    assert_same_tools(tools, sdk);
    assert_true(has_tool(tools, "echo"));
    assert_true(has_tool(tools, "get-sum"));
    free(sdk);
    json_decref(tools);
    h_done(&h);
}

static void test_stdio_calls_echo_and_sum(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_stdio(&h, "everything", everything_stdio);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    call_t call = {0};
    call_tool(&h, &call, "echo", "{\"message\": \"hello gatehouse\"}");
    assert_non_null(call.result);
    assert_string_equal(result_text(&call), "Echo: hello gatehouse");
    call_free(&call);

    call_tool(&h, &call, "get-sum", "{\"a\": 2, \"b\": 40}");
    assert_string_equal(result_text(&call), "The sum of 2 and 40 is 42.");
    call_free(&call);

    /* A JSON-RPC error from the server is passed through as the server sent it. */
    call_tool(&h, &call, "no-such-tool", "{}");
    if (call.result != NULL) /* MCP puts unknown tools in isError results or in errors */
        assert_true(json_is_true(json_object_get(call.result, "isError")));
    else
        assert_true(call.code != MCP_ERR_TRANSPORT && call.code != MCP_ERR_TIMEOUT);
    call_free(&call);
    h_done(&h);
}

static void test_stdio_progress_is_delivered(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_stdio(&h, "everything", everything_stdio);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    call_t call = {0};
    start_tool(&h, &call, "trigger-long-running-operation", "{\"duration\": 1, \"steps\": 4}", 0,
               true);
    assert_true(run_until(&h, call_done, &call, SAFETY_MS));
    assert_non_null(call.result);
    assert_int_equal(call.progress, 4);
    assert_true(call.last_progress == 4.0);
    assert_true(call.total == 4.0);
    assert_non_null(strstr(result_text(&call), "Long running operation completed"));
    call_free(&call);
    h_done(&h);
}

static void test_stdio_timeout_fails_the_call_only(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_stdio(&h, "everything", everything_stdio);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    call_t call = {0};
    start_tool(&h, &call, "trigger-long-running-operation", "{\"duration\": 10, \"steps\": 2}", 300,
               false);
    assert_true(run_until(&h, call_done, &call, SAFETY_MS));
    assert_int_equal(call.code, MCP_ERR_TIMEOUT);
    assert_null(call.result);
    call_free(&call);

    /* One slow call is not a dead server: the connection stays and serves the next call. */
    assert_int_equal(mcp_client_state(h.c), MCP_STATE_READY);
    call_tool(&h, &call, "echo", "{\"message\": \"still here\"}");
    assert_string_equal(result_text(&call), "Echo: still here");
    assert_int_equal(count_state(&h, MCP_STATE_DOWN), 0);
    call_free(&call);
    h_done(&h);
}

static bool child_appears(harness_t *h, void *arg)
{
    return find_child((const char *)arg) > 0;
}

static bool ready_again(harness_t *h, void *arg)
{
    return count_state(h, MCP_STATE_READY) >= 2 && is_ready(h, NULL);
}

static void test_stdio_killed_server_fails_pending_and_reconnects(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_stdio(&h, "everything", everything_stdio);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    pid_t pid = find_child("server-everything");
    assert_true(pid > 0);

    call_t call = {0};
    start_tool(&h, &call, "trigger-long-running-operation", "{\"duration\": 30, \"steps\": 3}", 0,
               false);
    run_for(&h, 200);
    assert_false(call.done);
    assert_int_equal(kill(pid, SIGKILL), 0);

    assert_true(run_until(&h, call_done, &call, SAFETY_MS));
    assert_int_equal(call.code, MCP_ERR_TRANSPORT);
    assert_non_null(strstr(call.message, "signal 9"));
    assert_true(run_until(&h, ready_again, NULL, SAFETY_MS));
    /* CONNECTING, READY, DOWN, CONNECTING, READY */
    assert_int_equal(h.n_states, 5);
    assert_int_equal(h.states[2], MCP_STATE_DOWN);
    assert_non_null(strstr(h.reasons[2], "killed by signal 9"));
    assert_int_equal(h.states[3], MCP_STATE_CONNECTING);
    /* The dead child was reaped, not left a zombie. */
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
    call_free(&call);

    call_tool(&h, &call, "echo", "{\"message\": \"back\"}");
    assert_string_equal(result_text(&call), "Echo: back");
    call_free(&call);
    h_done(&h);
}

/* ---- the scripted stdio server --------------------------------------------------------------- */

static void h_fake(harness_t *h, const char *mode, const char *arg, long max_message)
{
    const char *args[] = {FAKE, mode, arg, NULL};
    h_init(h);
    mcp_client_opts_t o = stdio_opts("fake", args);
    o.max_message_bytes = max_message;
    h_client(h, &o);
}

/* The messages the fake server received, from its "received" tool. */
static json_t *fake_received(harness_t *h)
{
    call_t call = {0};
    call_tool(h, &call, "received", "{}");
    json_error_t jerr;
    json_t *got = json_loads(result_text(&call), 0, &jerr);
    assert_non_null(got);
    call_free(&call);
    return got;
}

static json_t *find_method(json_t *received, const char *method, int nth)
{
    size_t i;
    json_t *m;
    json_array_foreach (received, i, m) {
        const char *name = json_string_value(json_object_get(m, "method"));
        if (name != NULL && strcmp(name, method) == 0 && nth-- == 0)
            return m;
    }
    return NULL;
}

static void test_initialize_is_what_the_spec_asks(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "normal", NULL, 0);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    assert_string_equal(mcp_client_protocol_version(h.c), "2025-06-18");

    json_t *got = fake_received(&h);
    json_t *init = find_method(got, "initialize", 0);
    assert_non_null(init);
    json_t *params = json_object_get(init, "params");
    assert_string_equal(json_string_value(json_object_get(params, "protocolVersion")),
                        "2025-11-25");
    assert_int_equal(json_object_size(json_object_get(params, "capabilities")), 0);
    json_t *info = json_object_get(params, "clientInfo");
    assert_string_equal(json_string_value(json_object_get(info, "name")), "gatehouse");
    assert_string_equal(json_string_value(json_object_get(info, "version")), GATEHOUSE_VERSION);
    assert_true(json_is_integer(json_object_get(init, "id")));
    /* initialized follows initialize, before anything else */
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 1), "method")),
                        "notifications/initialized");
    json_decref(got);
    h_done(&h);
}

static void test_pagination_collects_every_page(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "normal", NULL, 0);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    json_t *tools = list_tools(&h);
    assert_int_equal(json_array_size(tools), 7);
    const char *names[] = {"echo", "slow", "received", "tool3", "tool4", "tool5", "tool6"};
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(tools, i), "name")),
                            names[i]);
    json_decref(tools);

    json_t *got = fake_received(&h);
    json_t *p1 = find_method(got, "tools/list", 0), *p2 = find_method(got, "tools/list", 1),
           *p3 = find_method(got, "tools/list", 2);
    assert_non_null(p3);
    assert_null(find_method(got, "tools/list", 3));
    assert_null(json_object_get(json_object_get(p1, "params"), "cursor"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(p2, "params"), "cursor")),
                        "c3");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p3, "params"), "cursor")),
                        "c6");
    json_decref(got);
    h_done(&h);
}

static void test_timeout_sends_cancelled(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "normal", NULL, 0);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    call_t call = {0};
    start_tool(&h, &call, "slow", "{}", 200, false);
    assert_true(run_until(&h, call_done, &call, SAFETY_MS));
    assert_int_equal(call.code, MCP_ERR_TIMEOUT);
    assert_non_null(strstr(call.message, "200 ms"));

    json_t *got = fake_received(&h);
    json_t *slow = find_method(got, "tools/call", 0);
    json_t *cancelled = find_method(got, "notifications/cancelled", 0);
    assert_non_null(cancelled);
    json_t *params = json_object_get(cancelled, "params");
    assert_int_equal(json_integer_value(json_object_get(params, "requestId")),
                     json_integer_value(json_object_get(slow, "id")));
    assert_non_null(strstr(json_string_value(json_object_get(params, "reason")), "timed out"));
    json_decref(got);
    call_free(&call);
    h_done(&h);
}

static void test_cancel_sends_cancelled_and_stays_silent(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "normal", NULL, 0);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    call_t call = {0};
    mcp_pending_t *p = start_tool(&h, &call, "slow", "{}", 0, false);
    run_for(&h, 100);
    mcp_client_cancel(p);
    run_for(&h, 200);
    assert_false(call.done);

    json_t *got = fake_received(&h);
    json_t *cancelled = find_method(got, "notifications/cancelled", 0);
    assert_non_null(cancelled);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(cancelled, "params"), "requestId")),
        json_integer_value(json_object_get(find_method(got, "tools/call", 0), "id")));
    json_decref(got);
    h_done(&h);
}

static void test_server_requests_are_answered(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "ask", NULL, 0);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    run_for(&h, 200);

    json_t *got = fake_received(&h);
    json_t *ping = NULL, *roots = NULL;
    size_t i;
    json_t *m;
    json_array_foreach (got, i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id != NULL && strcmp(id, "s1") == 0)
            ping = m;
        if (id != NULL && strcmp(id, "s2") == 0)
            roots = m;
    }
    assert_non_null(ping);
    assert_true(json_is_object(json_object_get(ping, "result")));
    assert_int_equal(json_object_size(json_object_get(ping, "result")), 0);
    assert_non_null(roots);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(roots, "error"), "code")),
                     -32601);
    assert_int_equal(mcp_client_state(h.c), MCP_STATE_READY);
    json_decref(got);
    h_done(&h);
}

static void test_unknown_id_is_only_a_warning(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "unknown-id", NULL, 0);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    call_t call = {0};
    call_tool(&h, &call, "echo", "{\"message\": \"fine\"}");
    assert_string_equal(result_text(&call), "Echo: fine");
    assert_int_equal(count_state(&h, MCP_STATE_DOWN), 0);
    call_free(&call);
    h_done(&h);
}

static void h_fake_pinged(harness_t *h, const char *mode)
{
    const char *args[] = {FAKE, mode, NULL};
    h_init(h);
    mcp_client_opts_t o = stdio_opts("fake", args);
    o.ping_interval_ms = 100;
    o.request_timeout_ms = 300;
    h_client(h, &o);
}

static void test_pings_keep_a_live_server(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake_pinged(&h, "normal");
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    run_for(&h, 800);
    json_t *got = fake_received(&h);
    assert_non_null(find_method(got, "ping", 2)); /* at least three pings in 0.8 s */
    assert_true(json_is_integer(json_object_get(find_method(got, "ping", 0), "id")));
    assert_int_equal(count_state(&h, MCP_STATE_DOWN), 0);
    json_decref(got);
    h_done(&h);
}

static void test_lost_ping_reconnects(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake_pinged(&h, "no-pong");
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    assert_true(run_until(&h, ready_again, NULL, SAFETY_MS));
    assert_int_equal(h.states[2], MCP_STATE_DOWN);
    assert_non_null(strstr(h.reasons[2], "ping failed"));
    assert_non_null(strstr(h.reasons[2], "no answer"));
    h_done(&h);
}

/* A server in mode is disconnected with a reason containing want, and never becomes ready. */
static void expect_disconnect(const char *mode, const char *arg, long max_message, const char *want)
{
    harness_t h;
    h_fake(&h, mode, arg, max_message);
    assert_true(run_until(&h, down_seen, (void *)(intptr_t)1, SAFETY_MS));
    if (strstr(last_down_reason(&h), want) == NULL)
        fail_msg("mode %s: reason \"%s\" lacks \"%s\"", mode, last_down_reason(&h), want);
    assert_int_equal(count_state(&h, MCP_STATE_READY), 0);
    assert_int_equal(mcp_client_state(h.c), MCP_STATE_DOWN);

    /* Requests meanwhile fail at once, asynchronously. */
    call_t call = {0};
    start_tool(&h, &call, "echo", "{}", 0, false);
    assert_false(call.done);
    assert_true(run_until(&h, call_done, &call, 1000));
    assert_false(call.sync_callback);
    assert_int_equal(call.code, MCP_ERR_UNAVAILABLE);
    h_done(&h);
}

static void test_garbage_disconnects(void **state)
{
    REQUIRE_SERVERS();
    expect_disconnect("garbage", NULL, 0, "not JSON");
    expect_disconnect("not-jsonrpc", NULL, 0, "not JSON-RPC");
    expect_disconnect("huge", "200000", 65536, "limit");
    expect_disconnect("bad-version", NULL, 0, "1999-01-01");
}

static void test_requests_before_ready_fail_async(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "normal", NULL, 0);
    call_t call = {0};
    start_tool(&h, &call, "echo", "{}", 0, false);
    assert_false(call.done);
    assert_true(run_until(&h, call_done, &call, SAFETY_MS));
    assert_false(call.sync_callback);
    assert_int_equal(call.code, MCP_ERR_UNAVAILABLE);
    h_done(&h);
}

/* ---- process lifetime ------------------------------------------------------------------------ */

static void test_server_that_exits_keeps_backing_off(void **state)
{
    REQUIRE_SERVERS();
    const char *args[] = {"-e", "process.exit(3)", NULL};
    harness_t h;
    h_stdio(&h, "exits", args);
    double start = now_ms();
    assert_true(run_until(&h, down_seen, (void *)(intptr_t)3, SAFETY_MS));
    double elapsed = now_ms() - start;

    assert_non_null(strstr(h.reasons[1], "exited with status 3"));
    assert_int_equal(count_state(&h, MCP_STATE_READY), 0);
    /* Backoff between attempts: at least 0.25 + 0.5 s before the third attempt ended. */
    assert_true(elapsed > 700);
    /* The loop kept running all along. */
    assert_true(h.max_gap_ms < 1000);
    assert_true(h.ticks > (long)(elapsed / TICK_MS / 4));
    h_done(&h);
}

/* Runs the client on a server with args until it has been down n times, with the log (at level)
 * going to a file; returns the log's text (owned). */
static char *log_of_exits(const char *const *args, int n, log_level_t level)
{
    char log_path[] = "/tmp/gatehouse-exits-XXXXXX";
    int log_fd = mkstemp(log_path);
    int saved_err = dup(2);
    dup2(log_fd, 2);
    log_level_t saved_level = log_get_level();
    log_set_level(level);

    harness_t h;
    h_stdio(&h, "sayswhy", args);
    bool down = run_until(&h, down_seen, (void *)(intptr_t)n, SAFETY_MS);
    h_done(&h);

    log_set_level(saved_level);
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    assert_true(down);

    FILE *f = fdopen(log_fd, "r");
    rewind(f);
    buf_t text = BUF_INIT;
    char line[1024];
    while (fgets(line, sizeof(line), f) != NULL)
        buf_appends(&text, line);
    fclose(f);
    unlink(log_path);
    return buf_release(&text);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* A server that ends before it is ready: its last stderr line (its reason, usually) is logged
 * as a warning at the default level, once per attempt; blank lines and an unfinished last line
 * are handled. A server that was ready keeps its stderr to debug level. */
static void test_server_that_exits_at_start_says_why(void **state)
{
    REQUIRE_SERVERS();
    const char *args[] = {"-e",
                          "console.error('starting'); console.error('no such folder: /srv/x');"
                          " process.stderr.write('\\n  \\n'); process.exit(3)",
                          NULL};
    char *log = log_of_exits(args, 2, LOG_LVL_INFO);
    assert_int_equal(count_of(log, "MCP server ended before it was ready (server exited with "
                                   "status 3); its last line on stderr: no such folder: /srv/x\n"),
                     2);
    assert_null(strstr(log, "starting"));
    free(log);

    const char *unfinished[] = {"-e", "process.stderr.write('cut short'); process.exit(4)", NULL};
    log = log_of_exits(unfinished, 1, LOG_LVL_INFO);
    assert_non_null(strstr(log, "its last line on stderr: cut short\n"));
    free(log);

    const char *silent[] = {"-e", "process.exit(5)", NULL};
    log = log_of_exits(silent, 1, LOG_LVL_INFO);
    assert_null(strstr(log, "last line on stderr"));
    assert_non_null(strstr(log, "server exited with status 5"));
    free(log);
}

static void test_missing_command_backs_off(void **state)
{
    harness_t h;
    h_init(&h);
    mcp_client_opts_t o = stdio_opts("missing", NULL);
    o.command = "gatehouse-no-such-command-anywhere";
    h_client(&h, &o);
    assert_true(run_until(&h, down_seen, (void *)(intptr_t)2, SAFETY_MS));
    assert_non_null(strstr(h.reasons[1], "cannot start"));
    h_done(&h);
}

static bool no_such_process(harness_t *h, void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;
    return kill(pid, 0) != 0 && errno == ESRCH;
}

static void test_free_kills_a_stubborn_server(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "ignore-term", NULL, 0);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    pid_t pid = find_child(FAKE);
    assert_true(pid > 0);

    call_t call = {0};
    start_tool(&h, &call, "slow", "{}", 0, false);
    run_for(&h, 100);
    double start = now_ms();
    mcp_client_free(h.c);
    h.c = NULL;
    /* SIGTERM is ignored; SIGKILL follows after the grace period, then the reaper. */
    assert_true(run_until(&h, no_such_process, (void *)(intptr_t)pid, SAFETY_MS));
    assert_true(now_ms() - start > 1500);
    assert_false(call.done); /* a freed client calls nobody back */
    h_done(&h);
}

static void test_free_from_inside_a_callback(void **state)
{
    REQUIRE_SERVERS();
    harness_t h;
    h_fake(&h, "normal", NULL, 0);
    h.free_on_ready = true;
    assert_true(run_until(&h, child_appears, (void *)FAKE, SAFETY_MS));
    pid_t pid = find_child(FAKE);
    bool freed = false;
    double deadline = now_ms() + SAFETY_MS;
    while (!freed && now_ms() < deadline) {
        event_base_loop(h.base, EVLOOP_ONCE);
        freed = h.c == NULL;
    }
    assert_true(freed);
    assert_true(run_until(&h, no_such_process, (void *)(intptr_t)pid, SAFETY_MS));
    h_done(&h);
}

/* ---- floods ---------------------------------------------------------------------------------- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    }
    if (f != NULL)
        fclose(f);
    return kib;
}

static bool notified(harness_t *h, void *arg)
{
    return h->notifications >= (int)(intptr_t)arg;
}

static void test_flood_neither_blocks_nor_bloats(void **state)
{
    REQUIRE_SERVERS();
    /* Debug logging on, into a file, to count what the stderr flood turned into. */
    char log_path[] = "/tmp/gatehouse-flood-XXXXXX";
    int log_fd = mkstemp(log_path);
    int saved_err = dup(2);
    dup2(log_fd, 2);
    log_level_t saved_level = log_get_level();
    log_set_level(LOG_LVL_DEBUG);

    harness_t h;
    h_fake(&h, "flood", "48", 0);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    long rss_before = rss_kib();
    double start = now_ms();

    /* While the flood runs, a request still gets through. */
    call_t call = {0};
    assert_true(run_until(&h, notified, (void *)(intptr_t)1000, SAFETY_MS));
    call_tool(&h, &call, "echo", "{\"message\": \"through the flood\"}");
    assert_string_equal(result_text(&call), "Echo: through the flood");
    call_free(&call);

    /* 48 MiB of 1087-byte notifications: 46303 of them. */
    assert_true(run_until(&h, notified, (void *)(intptr_t)46303, 60000));
    double elapsed = now_ms() - start;
    long growth = rss_kib() - rss_before;

    log_set_level(saved_level);
    dup2(saved_err, 2);
    close(saved_err);

    assert_true(h.max_gap_ms < 2000);
    /* Far below the 48 MiB that went through. Not under AddressSanitizer: its quarantine
     * keeps freed memory resident on purpose, so RSS says nothing about our buffers there. */
    if (!UNDER_ASAN)
        assert_true(growth < 64 * 1024);
    assert_int_equal(mcp_client_state(h.c), MCP_STATE_READY);

    /* The stderr flood (as many lines as stdout) became at most a few log lines a second. */
    FILE *f = fdopen(log_fd, "r");
    rewind(f);
    char line[1024];
    long shown = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        shown += strstr(line, "server stderr: stderr noise") != NULL;
    fclose(f);
    unlink(log_path);
    assert_true(shown > 0);
    assert_true(shown <= 20 * (long)(elapsed / 1000 + 2));
    h_done(&h);
}

/* ---- other npm servers ----------------------------------------------------------------------- */

static void test_filesystem_server(void **state)
{
    REQUIRE_SERVERS();
    char dir[] = "/tmp/gatehouse-fs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[300];
    snprintf(file, sizeof(file), "%s/greeting.txt", dir);
    FILE *f = fopen(file, "w");
    fputs("hello from the test\n", f);
    fclose(f);

    const char *args[] = {FILESYSTEM, dir, NULL};
    harness_t h;
    h_stdio(&h, "fs", args);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    json_t *tools = list_tools(&h);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "node " LIST_TOOLS " node " FILESYSTEM " %s", dir);
    char *sdk = run_capture(cmd);
    assert_same_tools(tools, sdk);
    free(sdk);
    json_decref(tools);

    call_t call = {0};
    char call_args[400];
    snprintf(call_args, sizeof(call_args), "{\"path\": \"%s\"}", file);
    call_tool(&h, &call, "read_text_file", call_args);
    assert_non_null(call.result);
    assert_string_equal(result_text(&call), "hello from the test\n");
    call_free(&call);
    h_done(&h);
    unlink(file);
    rmdir(dir);
}

static void test_memory_server(void **state)
{
    REQUIRE_SERVERS();
    char dir[] = "/tmp/gatehouse-mem-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof(path), "%s/memory.jsonl", dir);
    setenv("MEMORY_FILE_PATH", path, 1);

    harness_t h;
    h_init(&h);
    const char *args[] = {MEMORY, NULL};
    const char *env[] = {"PATH", "HOME", "MEMORY_FILE_PATH", NULL};
    mcp_client_opts_t o = stdio_opts("memory", args);
    o.env_names = env;
    h_client(&h, &o);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    call_t call = {0};
    call_tool(&h, &call, "create_entities",
              "{\"entities\": [{\"name\": \"gatehouse\", \"entityType\": \"gateway\", "
              "\"observations\": [\"written in C\"]}]}");
    assert_non_null(call.result);
    call_free(&call);
    call_tool(&h, &call, "read_graph", "{}");
    assert_non_null(strstr(result_text(&call), "written in C"));
    call_free(&call);
    h_done(&h);

    /* The server only saw the variables it was given: it wrote where we told it to. */
    assert_int_equal(access(path, R_OK), 0);
    unlink(path);
    rmdir(dir);
    unsetenv("MEMORY_FILE_PATH");
}

static void test_environment_is_only_what_is_named(void **state)
{
    REQUIRE_SERVERS();
    setenv("GATEHOUSE_TEST_SECRET", "must-not-leak", 1);
    harness_t h;
    h_stdio(&h, "everything", everything_stdio);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    call_t call = {0};
    call_tool(&h, &call, "get-env", "{}");
    const char *env = result_text(&call);
    assert_non_null(env);
    assert_non_null(strstr(env, "PATH"));
    assert_null(strstr(env, "GATEHOUSE_TEST_SECRET"));
    assert_null(strstr(env, "must-not-leak"));
    call_free(&call);
    h_done(&h);
    unsetenv("GATEHOUSE_TEST_SECRET");
}

/* ---- Streamable HTTP and legacy SSE against server-everything -------------------------------- */

static void h_url(harness_t *h, mcp_transport_t t, const char *url)
{
    h_init(h);
    mcp_client_opts_t o = {0};
    o.name = t == MCP_TRANSPORT_HTTP ? "http" : "sse";
    o.transport = t;
    o.url = url;
    h_client(h, &o);
}

static void check_everything_over(mcp_transport_t t, const char *mode, const char *path)
{
    int port = free_port();
    const char *argv[] = {"node", EVERYTHING, mode, NULL};
    pid_t server = start_server(argv, port);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);

    harness_t h;
    h_url(&h, t, url);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    json_t *tools = list_tools(&h);
    char *sdk = run_capture("node " LIST_TOOLS " node " EVERYTHING " stdio");
    assert_same_tools(tools, sdk);
    free(sdk);
    json_decref(tools);

    call_t call = {0};
    call_tool(&h, &call, "echo", "{\"message\": \"over the wire\"}");
    assert_string_equal(result_text(&call), "Echo: over the wire");
    call_free(&call);

    start_tool(&h, &call, "trigger-long-running-operation", "{\"duration\": 1, \"steps\": 2}", 0,
               true);
    assert_true(run_until(&h, call_done, &call, SAFETY_MS));
    assert_non_null(call.result);
    assert_int_equal(call.progress, 2);
    call_free(&call);

    start_tool(&h, &call, "trigger-long-running-operation", "{\"duration\": 10, \"steps\": 2}", 300,
               false);
    assert_true(run_until(&h, call_done, &call, SAFETY_MS));
    assert_int_equal(call.code, MCP_ERR_TIMEOUT);
    call_free(&call);
    call_tool(&h, &call, "echo", "{\"message\": \"after timeout\"}");
    assert_string_equal(result_text(&call), "Echo: after timeout");
    call_free(&call);
    assert_int_equal(count_state(&h, MCP_STATE_DOWN), 0);

    h_done(&h);
    stop_server(server);
}

static void test_http_everything(void **state)
{
    REQUIRE_SERVERS();
    check_everything_over(MCP_TRANSPORT_HTTP, "streamableHttp", "/mcp");
}

static void test_sse_everything(void **state)
{
    REQUIRE_SERVERS();
    check_everything_over(MCP_TRANSPORT_SSE, "sse", "/sse");
}

static void test_http_refused_backs_off(void **state)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", free_port());
    harness_t h;
    h_url(&h, MCP_TRANSPORT_HTTP, url);
    assert_true(run_until(&h, down_seen, (void *)(intptr_t)2, SAFETY_MS));
    assert_non_null(strstr(last_down_reason(&h), "refused"));
    h_done(&h);

    h_url(&h, MCP_TRANSPORT_SSE, url);
    assert_true(run_until(&h, down_seen, (void *)(intptr_t)1, SAFETY_MS));
    assert_non_null(strstr(last_down_reason(&h), "refused"));
    h_done(&h);
}

/* ---- Streamable HTTP against the scripted server --------------------------------------------- */

typedef struct fixture_http {
    pid_t pid;
    char url[128];
} fixture_http_t;

/* mode: NULL, or an option of the fixture ("json-notify"). */
static fixture_http_t fixture_http_start(const char *mode)
{
    fixture_http_t f;
    int port = free_port();
    char port_arg[16];
    snprintf(port_arg, sizeof(port_arg), "%d", port);
    const char *argv[] = {"node", HTTP_FIXTURE, port_arg, mode, NULL};
    f.pid = start_server(argv, port);
    snprintf(f.url, sizeof(f.url), "http://127.0.0.1:%d/mcp", port);
    return f;
}

/* The fixture's stats, through a client of its own. */
static json_t *fixture_stats(const char *url)
{
    harness_t h;
    h_url(&h, MCP_TRANSPORT_HTTP, url);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));
    call_t call = {0};
    call_tool(&h, &call, "stats", "{}");
    json_error_t jerr;
    json_t *stats = json_loads(result_text(&call), 0, &jerr);
    assert_non_null(stats);
    call_free(&call);
    h_done(&h);
    return stats;
}

static void test_http_session_lost_reinitializes(void **state)
{
    REQUIRE_SERVERS();
    fixture_http_t f = fixture_http_start(NULL);
    harness_t h;
    h_url(&h, MCP_TRANSPORT_HTTP, f.url);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    call_t call = {0};
    call_tool(&h, &call, "forget", "{}");
    assert_string_equal(result_text(&call), "forgotten");
    call_free(&call);

    /* The next request meets a 404: it fails, and a new session starts at once. */
    call_tool(&h, &call, "echo", "{\"message\": \"x\"}");
    assert_int_equal(call.code, MCP_ERR_TRANSPORT);
    call_free(&call);
    assert_true(run_until(&h, ready_again, NULL, SAFETY_MS));
    assert_non_null(strstr(last_down_reason(&h), "404"));
    call_tool(&h, &call, "echo", "{\"message\": \"new session\"}");
    assert_string_equal(result_text(&call), "Echo: new session");
    call_free(&call);
    h_done(&h);

    json_t *stats = fixture_stats(f.url);
    /* ours twice, plus the stats client */
    assert_int_equal(json_integer_value(json_object_get(stats, "initializes")), 3);
    /* every request after initialize carried the negotiated version */
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(stats, "versions"), i, v) {
        assert_true(json_is_string(v));
        assert_string_equal(json_string_value(v), "2025-06-18");
    }
    /* the GET stream was tried after each initialize and met 405 */
    assert_true(json_integer_value(json_object_get(stats, "gets")) >= 2);
    /* the freed client ended its session */
    assert_true(json_integer_value(json_object_get(stats, "deletes")) >= 1);
    json_decref(stats);
    stop_server(f.pid);
}

static void test_http_dropped_stream_resumes(void **state)
{
    REQUIRE_SERVERS();
    fixture_http_t f = fixture_http_start(NULL);
    harness_t h;
    h_url(&h, MCP_TRANSPORT_HTTP, f.url);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    call_t call = {0};
    call_tool(&h, &call, "echo_drop", "{\"message\": \"resumed\"}");
    assert_non_null(call.result);
    assert_string_equal(result_text(&call), "Echo: resumed");
    assert_true(h.notifications >= 1); /* the event before the drop was delivered */
    call_free(&call);

    /* A 500 fails that request only. */
    call_tool(&h, &call, "fail500", "{}");
    assert_int_equal(call.code, MCP_ERR_TRANSPORT);
    assert_non_null(strstr(call.message, "HTTP 500"));
    call_free(&call);
    assert_int_equal(count_state(&h, MCP_STATE_DOWN), 0);
    h_done(&h);

    json_t *stats = fixture_stats(f.url);
    json_t *resumes = json_object_get(stats, "resumes");
    assert_int_equal(json_array_size(resumes), 1);
    assert_non_null(strstr(json_string_value(json_array_get(resumes, 0)), "-1"));
    json_decref(stats);
    stop_server(f.pid);
}

/* A server that answers notifications/initialized with 200 and a JSON body (no id) instead of
 * 202, as the conformance suite's initialize scenario does: the body is ignored, the session
 * goes on. */
static void test_http_json_body_to_a_notification_is_ignored(void **state)
{
    REQUIRE_SERVERS();
    fixture_http_t f = fixture_http_start("json-notify");
    harness_t h;
    h_url(&h, MCP_TRANSPORT_HTTP, f.url);
    assert_true(run_until(&h, is_ready, NULL, SAFETY_MS));

    /* notifications/initialized went out with ready; give its answer time to arrive. */
    run_for(&h, 500);
    call_t call = {0};
    call_tool(&h, &call, "echo", "{\"message\": \"still here\"}");
    assert_string_equal(result_text(&call), "Echo: still here");
    call_free(&call);
    assert_int_equal(count_state(&h, MCP_STATE_DOWN), 0);
    h_done(&h);

    json_t *stats = fixture_stats(f.url);
    /* ours, and the stats client's */
    assert_int_equal(json_integer_value(json_object_get(stats, "jsonNotifies")), 2);
    assert_int_equal(json_integer_value(json_object_get(stats, "initializes")), 2);
    json_decref(stats);
    stop_server(f.pid);
}

/* ---- pieces ---------------------------------------------------------------------------------- */

static void expect_url(const char *base, const char *ref, const char *want)
{
    char *got = mcp_sse_resolve_url(base, ref);
    if (want == NULL) {
        if (got != NULL)
            fail_msg("%s + %s: expected no URL, got %s", base, ref, got);
        return;
    }
    if (got == NULL)
        fail_msg("%s + %s: expected %s, got nothing", base, ref, want);
    assert_string_equal(got, want);
    free(got);
}

static void test_sse_endpoint_resolution(void **state)
{
    const char *base = "http://127.0.0.1:3001/mcp/sse?token=1";
    expect_url(base, "/message?sessionId=abc", "http://127.0.0.1:3001/message?sessionId=abc");
    expect_url(base, "message?sessionId=abc", "http://127.0.0.1:3001/mcp/message?sessionId=abc");
    expect_url(base, "?sessionId=abc", "http://127.0.0.1:3001/mcp/sse?sessionId=abc");
    expect_url(base, "http://127.0.0.1:3001/m", "http://127.0.0.1:3001/m");
    expect_url(base, "//127.0.0.1:3001/m", "http://127.0.0.1:3001/m");
    expect_url("https://Example.com", "post", "https://Example.com/post");
    /* another origin, or nothing usable */
    expect_url(base, "http://evil.example/collect", NULL);
    expect_url(base, "//evil.example/collect", NULL);
    expect_url(base, "https://127.0.0.1:3001/m", NULL);
    expect_url(base, "", NULL);
    expect_url(base, "/with space", NULL);
    expect_url(base, "/line\nbreak", NULL);
    expect_url("ftp://host/x", "/y", NULL);
}

static void test_content_type_matching(void **state)
{
    assert_true(mcp_content_type_is("text/event-stream", "text/event-stream"));
    assert_true(mcp_content_type_is(" Text/Event-Stream; charset=utf-8", "text/event-stream"));
    assert_false(mcp_content_type_is("text/event-streams", "text/event-stream"));
    assert_false(mcp_content_type_is(NULL, "application/json"));
    assert_true(mcp_content_type_is("application/json", "application/json"));
}

int main(void)
{
    alloc_init();
    signal(SIGPIPE, SIG_IGN);
    const char *level = getenv("GATEHOUSE_TEST_LOG");
    log_level_t lvl;
    log_set_level(level != NULL && log_parse_level(level, &lvl) ? lvl : LOG_LVL_CRIT);
    if (getenv("GATEHOUSE_TEST_FILTER") != NULL) /* e.g. "*http*" */
        cmocka_set_test_filter(getenv("GATEHOUSE_TEST_FILTER"));

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_endpoint_resolution),
        cmocka_unit_test(test_content_type_matching),
        cmocka_unit_test(test_stdio_lists_tools_like_the_sdk),
        cmocka_unit_test(test_stdio_calls_echo_and_sum),
        cmocka_unit_test(test_stdio_progress_is_delivered),
        cmocka_unit_test(test_stdio_timeout_fails_the_call_only),
        cmocka_unit_test(test_stdio_killed_server_fails_pending_and_reconnects),
        cmocka_unit_test(test_initialize_is_what_the_spec_asks),
        cmocka_unit_test(test_pagination_collects_every_page),
        cmocka_unit_test(test_timeout_sends_cancelled),
        cmocka_unit_test(test_cancel_sends_cancelled_and_stays_silent),
        cmocka_unit_test(test_server_requests_are_answered),
        cmocka_unit_test(test_unknown_id_is_only_a_warning),
        cmocka_unit_test(test_garbage_disconnects),
        cmocka_unit_test(test_pings_keep_a_live_server),
        cmocka_unit_test(test_lost_ping_reconnects),
        cmocka_unit_test(test_requests_before_ready_fail_async),
        cmocka_unit_test(test_server_that_exits_keeps_backing_off),
        cmocka_unit_test(test_server_that_exits_at_start_says_why),
        cmocka_unit_test(test_missing_command_backs_off),
        cmocka_unit_test(test_free_kills_a_stubborn_server),
        cmocka_unit_test(test_free_from_inside_a_callback),
        cmocka_unit_test(test_flood_neither_blocks_nor_bloats),
        cmocka_unit_test(test_filesystem_server),
        cmocka_unit_test(test_memory_server),
        cmocka_unit_test(test_environment_is_only_what_is_named),
        cmocka_unit_test(test_http_everything),
        cmocka_unit_test(test_sse_everything),
        cmocka_unit_test(test_http_refused_backs_off),
        cmocka_unit_test(test_http_session_lost_reinitializes),
        cmocka_unit_test(test_http_dropped_stream_resumes),
        cmocka_unit_test(test_http_json_body_to_a_notification_is_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
