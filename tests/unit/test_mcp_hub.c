/*
 * test_mcp_hub.c - unit tests for the tool hub (src/mcp/hub.c, hub_catalog.c, naming.c).
 *
 * Pure parts first: exposed names (sanitising, shortening, collisions, determinism) and
 * catalog building from hand-made client lists. Then the hub itself, as the gateway uses it:
 * a thread of its own, real MCP servers over stdio (@modelcontextprotocol/server-everything
 * from tests/node_modules, and tests/fixtures/mcp/hub_server.mjs, an SDK server whose tool
 * list changes on request), calls made from other threads with their own event loops. Without
 * tests/node_modules the server tests are skipped with a message.
 *
 * The test thread plays a worker: it has its own event_base (with a 20 ms ticker so that it
 * can poll the catalog) and subscribes to catalog changes on it. Every wait has a generous
 * safety limit; nothing depends on how fast a server is.
 *
 * Tests run with the repository root as working directory, as `make unit` does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcp/hub.h"
#include "mcp/hub_internal.h"
#include "mcp/jsonrpc.h"
#include "mcp/naming.h"
#include "util/alloc.h"
#include "util/log.h"

#define MODULES "tests/node_modules/@modelcontextprotocol/"
#define EVERYTHING MODULES "server-everything/dist/index.js"
#define HUB_SERVER "tests/fixtures/mcp/hub_server.mjs"
#define FAKE "tests/fixtures/mcp/fake_server.mjs"
#define SAFETY_MS 30000.0
#define TICK_MS 20

static const char *const pass_env[] = {"PATH", "HOME", NULL};
static const char *const all_tools[] = {"*", NULL};

/* ---- helpers -------------------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static bool have_servers(void)
{
    if (access(EVERYTHING, R_OK) == 0)
        return true;
    print_message("skipped: %s is missing; run `npm ci` in tests/ first\n", EVERYTHING);
    return false;
}

#define REQUIRE_SERVERS()                                                                          \
    do {                                                                                           \
        if (!have_servers())                                                                       \
            skip();                                                                                \
    } while (0)

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (j == NULL)
        fail_msg("bad test JSON: %s", err.text);
    return j;
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
            ppid != getpid() || st == 'Z')
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

/* ---- naming --------------------------------------------------------------------------------- */

static void check_assign(mcp_name_entry_t *e, size_t n, const char *const *want)
{
    mcp_naming_assign(e, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(e[i].exposed, want[i]);
        free(e[i].exposed);
        e[i].exposed = NULL;
    }
}

static void test_naming_plain_and_sanitized(void **state)
{
    char *s = mcp_naming_sanitize("everything", "echo");
    assert_string_equal(s, "everything-echo");
    free(s);
    s = mcp_naming_sanitize("my server", "read.file/v2");
    assert_string_equal(s, "my_server-read_file_v2");
    free(s);
    /* one '_' per UTF-8 character, not per byte */
    s = mcp_naming_sanitize("caf\xc3\xa9", "\xe2\x98\x83snow");
    assert_string_equal(s, "caf_-_snow");
    free(s);
    assert_true(mcp_naming_is_clean("fs", "read_file"));
    assert_false(mcp_naming_is_clean("fs", "read.file"));

    mcp_name_entry_t e[] = {{"everything", "echo", NULL}, {"my server", "read.file", NULL}};
    const char *const want[] = {"everything-echo", "my_server-read_file"};
    check_assign(e, 2, want);
}

static void test_naming_long(void **state)
{
    char tool[71];
    memset(tool, 'x', 70);
    tool[70] = '\0';
    char want[65];
    snprintf(want, sizeof(want), "srv-%.51s_fe6c03e8", tool); /* sha256("srv\0" + tool) */

    char *h = mcp_naming_hashed("srv", tool, 0);
    assert_string_equal(h, want);
    assert_int_equal(strlen(h), MCP_NAME_MAX);
    free(h);

    mcp_name_entry_t e[] = {{"srv", tool, NULL}};
    const char *const w[] = {want};
    check_assign(e, 1, w);

    /* exactly 64 characters is still fine */
    char tool60[61];
    memset(tool60, 'y', 60);
    tool60[60] = '\0';
    char plain[70];
    snprintf(plain, sizeof(plain), "srv-%s", tool60);
    mcp_name_entry_t e2[] = {{"srv", tool60, NULL}};
    const char *const w2[] = {plain};
    check_assign(e2, 1, w2);
}

static void test_naming_collisions(void **state)
{
    /* the clean name keeps it; the one that was rewritten into it gets the hash */
    mcp_name_entry_t a[] = {{"a", "b.c", NULL}, {"a", "b_c", NULL}};
    const char *const wa[] = {"a-b_c_ad8a94ab", "a-b_c"};
    check_assign(a, 2, wa);
    mcp_name_entry_t a_rev[] = {{"a", "b_c", NULL}, {"a", "b.c", NULL}};
    const char *const wa_rev[] = {"a-b_c", "a-b_c_ad8a94ab"};
    check_assign(a_rev, 2, wa_rev);

    /* nobody clean: everyone hashed */
    mcp_name_entry_t b[] = {{"a", "b.c", NULL}, {"a", "b c", NULL}};
    const char *const wb[] = {"a-b_c_ad8a94ab", "a-b_c_fa1e0a6a"};
    check_assign(b, 2, wb);

    /* two clean names that meet through the separator: both hashed, and told apart */
    mcp_name_entry_t c[] = {{"a", "b-c", NULL}, {"a-b", "c", NULL}, {"z", "q", NULL}};
    const char *const wc[] = {"a-b-c_02654a5c", "a-b-c_695274f6", "z-q"};
    check_assign(c, 3, wc);
}

static void test_naming_salt(void **state)
{
    /* A clean tool that happens to be named like another's hashed name takes it; the hashed
     * one moves on to a salted hash, deterministically. */
    char *taken = mcp_naming_hashed("a", "b.c", 0); /* "a-b_c_ad8a94ab" */
    char *salted = mcp_naming_hashed("a", "b.c", 1);
    assert_string_not_equal(taken, salted);
    mcp_name_entry_t e[] = {{"a", "b.c", NULL}, {"a", "b_c", NULL}, {"a", taken + 2, NULL}};
    const char *const w[] = {salted, "a-b_c", taken};
    check_assign(e, 3, w);
    free(taken);
    free(salted);
}

static void test_naming_prompts_and_resources(void **state)
{
    char *p = mcp_naming_prompt("everything", "simple-prompt");
    assert_string_equal(p, "everything-simple-prompt");
    free(p);

    char *u = mcp_naming_resource_uri("fs", "file:///tmp/x.txt");
    assert_string_equal(u, "gatehouse://fs/file:///tmp/x.txt");
    char client[64];
    const char *orig = mcp_naming_parse_resource_uri(u, client, sizeof(client));
    assert_non_null(orig);
    assert_string_equal(orig, "file:///tmp/x.txt");
    assert_string_equal(client, "fs");
    free(u);
    assert_null(mcp_naming_parse_resource_uri("file:///x", client, sizeof(client)));
    assert_null(mcp_naming_parse_resource_uri("gatehouse://nouri", client, sizeof(client)));
    assert_null(mcp_naming_parse_resource_uri("gatehouse:///x", client, sizeof(client)));
    assert_null(mcp_naming_parse_resource_uri("gatehouse://abcdef/x", client, 4));

    json_t *item = parse("{\"uri\":\"demo://r/1\",\"name\":\"r1\",\"_meta\":{\"k\":1}}");
    json_t *ns = mcp_naming_resource_item("everything", item, "uri");
    json_t *want = parse("{\"uri\":\"gatehouse://everything/demo://r/1\",\"name\":\"r1\","
                         "\"_meta\":{\"k\":1,\"gatehouse/client\":\"everything\","
                         "\"gatehouse/uri\":\"demo://r/1\"}}");
    assert_true(json_equal(ns, want));
    json_decref(ns);
    json_decref(want);
    /* the server's object is not touched */
    assert_string_equal(json_string_value(json_object_get(item, "uri")), "demo://r/1");
    json_decref(item);

    json_t *prompt = parse("{\"name\":\"args-prompt\",\"arguments\":[{\"name\":\"city\"}]}");
    json_t *np = mcp_naming_prompt_item("everything", prompt);
    assert_string_equal(json_string_value(json_object_get(np, "name")), "everything-args-prompt");
    json_t *meta = json_object_get(np, "_meta");
    assert_string_equal(json_string_value(json_object_get(meta, "gatehouse/name")), "args-prompt");
    assert_true(json_equal(json_object_get(np, "arguments"), json_object_get(prompt, "arguments")));
    json_decref(np);
    json_decref(prompt);
    json_t *nameless = parse("{\"description\":\"no name\"}");
    assert_null(mcp_naming_prompt_item("x", nameless));
    json_decref(nameless);
}

/* ---- catalog building ----------------------------------------------------------------------- */

static void test_catalog_build(void **state)
{
    json_t *fs_tools = parse("[{\"name\":\"read_file\",\"inputSchema\":{\"type\":\"object\"}},"
                             "{\"name\":\"write_file\"},{\"name\":\"list.dir\"},"
                             "{\"name\":\"read_file\",\"description\":\"duplicate\"},"
                             "{\"description\":\"no name\"}]");
    json_t *mem_tools = parse("[{\"name\":\"read_graph\"}]");
    json_t *mem_prompts = parse("[{\"name\":\"p\"}]");
    json_t *fs_res = parse("[{\"uri\":\"file:///a\",\"name\":\"a\"},{\"name\":\"no uri\"}]");
    const char *const fs_allow[] = {"read_*", "list.dir", NULL};
    const char *const fs_auto[] = {"read_file", NULL};
    const char *const none[] = {NULL};
    hub_catalog_src_t src[] = {
        {.name = "fs",
         .transport = MCP_TRANSPORT_STDIO,
         .state = MCP_STATE_READY,
         .tools_to_execute = fs_allow,
         .tools_to_auto_execute = fs_auto,
         .tools = fs_tools,
         .resources = fs_res},
        {.name = "memory",
         .transport = MCP_TRANSPORT_HTTP,
         .state = MCP_STATE_DOWN,
         .error = "connection refused",
         .tools_to_execute = all_tools,
         .tools_to_auto_execute = none,
         .code_mode = true,
         .tools = mem_tools,
         .prompts = mem_prompts},
        {.name = "never",
         .transport = MCP_TRANSPORT_SSE,
         .state = MCP_STATE_CONNECTING,
         .tools_to_execute = all_tools},
    };
    mcp_catalog_t *cat = hub_catalog_build(src, 3, 7);
    assert_int_equal(cat->version, 7);
    assert_int_equal(cat->n_tools, 3);
    /* sorted by exposed name; write_file is not executable, so it is not listed */
    assert_string_equal(cat->tools[0].exposed, "fs-list_dir");
    assert_string_equal(cat->tools[1].exposed, "fs-read_file");
    assert_string_equal(cat->tools[2].exposed, "memory-read_graph");

    const mcp_tool_t *t = mcp_catalog_find(cat, "fs-read_file");
    assert_non_null(t);
    assert_string_equal(t->client, "fs");
    assert_string_equal(t->name, "read_file");
    assert_true(t->available && t->executable && t->auto_execute && !t->code_mode);
    assert_null(json_object_get(t->def, "description")); /* the first definition is kept */
    assert_true(t->def == json_array_get(fs_tools, 0));  /* shared, not copied */

    t = mcp_catalog_find(cat, "fs-list_dir");
    assert_string_equal(t->name, "list.dir");
    assert_false(t->auto_execute);
    t = mcp_catalog_find(cat, "memory-read_graph");
    assert_false(t->available);
    assert_true(t->code_mode);
    assert_null(mcp_catalog_find(cat, "fs-write_file"));
    assert_null(mcp_catalog_find(cat, "nothing"));

    json_t *want_clients =
        parse("[{\"name\":\"fs\",\"state\":\"ready\",\"transport\":\"stdio\",\"tools\":2,"
              "\"error\":null},{\"name\":\"memory\",\"state\":\"down\",\"transport\":\"http\","
              "\"tools\":1,\"error\":\"connection refused\"},{\"name\":\"never\",\"state\":"
              "\"connecting\",\"transport\":\"sse\",\"tools\":0,\"error\":null}]");
    assert_true(json_equal(cat->clients, want_clients));
    json_decref(want_clients);
    assert_int_equal(json_array_size(cat->resources), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(cat->resources, 0), "uri")),
        "gatehouse://fs/file:///a");
    assert_int_equal(json_array_size(cat->prompts), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(cat->prompts, 0), "name")),
                        "memory-p");

    /* the same sources make the same catalog; a state change makes another */
    mcp_catalog_t *again = hub_catalog_build(src, 3, 8);
    assert_true(hub_catalog_same(cat, again));
    src[1].state = MCP_STATE_READY;
    mcp_catalog_t *changed = hub_catalog_build(src, 3, 9);
    assert_false(hub_catalog_same(cat, changed));
    assert_true(mcp_catalog_find(changed, "memory-read_graph")->available);

    /* the catalog keeps its definitions when the lists it came from are gone */
    json_decref(fs_tools);
    assert_string_equal(
        json_string_value(json_object_get(mcp_catalog_find(cat, "fs-read_file")->def, "name")),
        "read_file");
    mcp_catalog_release(cat);
    mcp_catalog_release(again);
    mcp_catalog_release(changed);
    json_decref(mem_tools);
    json_decref(mem_prompts);
    json_decref(fs_res);
}

/* ---- the running hub: the test thread's side ------------------------------------------------ */

typedef struct loop {
    struct event_base *base;
    struct event *ticker;
    mcp_hub_sub_t *sub;
    int changes; /* catalog notifications received */
} loop_t;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
}

static void on_change(void *arg)
{
    loop_t *l = arg;
    l->changes++;
}

static void loop_init(loop_t *l)
{
    memset(l, 0, sizeof(*l));
    l->base = event_base_new();
    l->ticker = event_new(l->base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, TICK_MS * 1000};
    event_add(l->ticker, &tv);
    l->sub = mcp_hub_subscribe(l->base, on_change, l);
    assert_non_null(l->sub);
}

static void loop_done(loop_t *l)
{
    mcp_hub_unsubscribe(l->sub);
    event_free(l->ticker);
    event_base_loop(l->base, EVLOOP_NONBLOCK);
    event_base_free(l->base);
}

typedef bool (*pred_fn)(void *arg);

static bool run_until(loop_t *l, pred_fn pred, void *arg, double max_ms)
{
    double deadline = now_ms() + max_ms;
    while (!pred(arg)) {
        if (now_ms() > deadline)
            return false;
        event_base_loop(l->base, EVLOOP_ONCE);
    }
    return true;
}

static bool never(void *arg)
{
    return false;
}

static void run_for(loop_t *l, double ms)
{
    run_until(l, never, NULL, ms);
}

/* -1: not in the catalog; 0: listed, unavailable; 1: available. */
static int tool_state(const char *exposed)
{
    mcp_catalog_t *cat = mcp_hub_catalog();
    const mcp_tool_t *t = mcp_catalog_find(cat, exposed);
    int st = t == NULL ? -1 : t->available ? 1 : 0;
    mcp_catalog_release(cat);
    return st;
}

static bool is_available(void *arg)
{
    return tool_state(arg) == 1;
}

static bool is_unavailable(void *arg)
{
    return tool_state(arg) == 0;
}

static bool is_absent(void *arg)
{
    return tool_state(arg) == -1;
}

/* The outcome of one call, as its callback saw it. */
typedef struct outcome {
    int calls;
    bool failed;
    int code;
    char message[512];
    char *text;      /* first text block of the result, owned */
    bool is_error;   /* the result's isError */
    double duration; /* as reported */
    pthread_t thread;
} outcome_t;

static void on_done(void *arg, const mcp_hub_result_t *res)
{
    outcome_t *o = arg;
    o->calls++;
    o->thread = pthread_self();
    o->duration = res->duration_s;
    if (res->err != NULL) {
        o->failed = true;
        o->code = res->err->code;
        snprintf(o->message, sizeof(o->message), "%s", res->err->message);
        return;
    }
    json_t *first = json_array_get(json_object_get(res->result, "content"), 0);
    const char *text = json_string_value(json_object_get(first, "text"));
    o->text = text != NULL ? xstrdup(text) : NULL;
    o->is_error = json_is_true(json_object_get(res->result, "isError"));
}

static bool is_done(void *arg)
{
    return ((outcome_t *)arg)->calls > 0;
}

static void outcome_free(outcome_t *o)
{
    free(o->text);
    o->text = NULL;
}

/* Calls a tool from the test thread and waits for the answer. */
static void call_and_wait(loop_t *l, const char *client, const char *tool, const char *args,
                          outcome_t *o)
{
    memset(o, 0, sizeof(*o));
    json_t *a = args != NULL ? parse(args) : NULL;
    mcp_hub_call_t *call = mcp_hub_call_tool(l->base, client, tool, a, "test-req", on_done, o);
    assert_non_null(call);
    assert_int_equal(o->calls, 0); /* never from inside the call */
    assert_true(run_until(l, is_done, o, SAFETY_MS));
    run_for(l, 50); /* a second callback would show up here */
    assert_int_equal(o->calls, 1);
}

/* ---- the running hub: options --------------------------------------------------------------- */

typedef struct spec_store {
    const char *args[6];
    mcp_hub_client_spec_t spec;
} spec_store_t;

static void everything_spec(spec_store_t *s, const char *name, const char *marker,
                            const char *const *allow)
{
    memset(s, 0, sizeof(*s));
    s->args[0] = EVERYTHING;
    s->args[1] = "stdio";
    s->args[2] = marker; /* ignored by the server; lets the test find the process */
    s->spec.conn = (mcp_client_opts_t){.name = name,
                                       .transport = MCP_TRANSPORT_STDIO,
                                       .command = "node",
                                       .args = s->args,
                                       .env_names = pass_env};
    s->spec.tools_to_execute = allow;
    s->spec.tools_to_auto_execute = allow;
}

static void hub_server_spec(spec_store_t *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->args[0] = HUB_SERVER;
    s->spec.conn = (mcp_client_opts_t){.name = name,
                                       .transport = MCP_TRANSPORT_STDIO,
                                       .command = "node",
                                       .args = s->args,
                                       .env_names = pass_env};
    s->spec.tools_to_execute = all_tools;
}

/* The client tests' scripted server: "slow" is never answered, "received" lists what the
 * server got, tool3 answers with a JSON-RPC error. */
static void fake_spec(spec_store_t *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->args[0] = FAKE;
    s->args[1] = "normal";
    s->spec.conn = (mcp_client_opts_t){.name = name,
                                       .transport = MCP_TRANSPORT_STDIO,
                                       .command = "node",
                                       .args = s->args,
                                       .env_names = pass_env};
    s->spec.tools_to_execute = all_tools;
}

static void start_hub(const mcp_hub_client_spec_t *specs, size_t n, long timeout_ms)
{
    mcp_hub_opts_t opts = {.clients = specs, .n_clients = n, .tool_timeout_ms = timeout_ms};
    assert_int_equal(mcp_hub_start(&opts), 0);
}

/* ---- the running hub: tests ----------------------------------------------------------------- */

typedef struct thread_call {
    outcome_t o;
    pthread_t self;
    bool finished_in_time;
} thread_call_t;

/* A worker of its own: its own loop, a call, the answer on that loop. */
static void *caller_thread(void *arg)
{
    thread_call_t *tc = arg;
    tc->self = pthread_self();
    struct event_base *base = event_base_new();
    json_t *args = json_pack("{s:s}", "message", "from another thread");
    mcp_hub_call_tool(base, "everything", "echo", args, "thread-req", on_done, &tc->o);
    double deadline = now_ms() + SAFETY_MS;
    struct timeval tick = {0, TICK_MS * 1000};
    while (tc->o.calls == 0 && now_ms() < deadline) {
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
    }
    tc->finished_in_time = tc->o.calls == 1;
    event_base_free(base);
    return NULL;
}

static bool catalog_has_resources(void *arg)
{
    mcp_catalog_t *cat = mcp_hub_catalog();
    bool ok = json_array_size(cat->resources) > 0 && json_array_size(cat->prompts) > 0;
    mcp_catalog_release(cat);
    return ok;
}

static void test_hub_everything(void **state)
{
    REQUIRE_SERVERS();
    loop_t l;
    loop_init(&l);
    spec_store_t s;
    everything_spec(&s, "everything", "hub-test-basic", all_tools);
    start_hub(&s.spec, 1, 0);

    assert_true(run_until(&l, is_available, "everything-echo", SAFETY_MS));
    assert_true(run_until(&l, catalog_has_resources, NULL, SAFETY_MS));
    assert_true(l.changes > 0);

    mcp_catalog_t *cat = mcp_hub_catalog();
    assert_true(cat->version > 0);
    const mcp_tool_t *echo = mcp_catalog_find(cat, "everything-echo");
    assert_string_equal(echo->client, "everything");
    assert_string_equal(echo->name, "echo");
    assert_string_equal(json_string_value(json_object_get(echo->def, "name")), "echo");
    assert_true(json_is_object(json_object_get(echo->def, "inputSchema")));
    assert_true(echo->executable && echo->auto_execute && !echo->code_mode);
    assert_non_null(mcp_catalog_find(cat, "everything-get-sum"));
    /* the client's entry for /health */
    json_t *c0 = json_array_get(cat->clients, 0);
    assert_string_equal(json_string_value(json_object_get(c0, "state")), "ready");
    assert_int_equal(json_integer_value(json_object_get(c0, "tools")), (json_int_t)cat->n_tools);
    /* resources and prompts, namespaced */
    const char *uri = json_string_value(json_object_get(json_array_get(cat->resources, 0), "uri"));
    assert_true(strncmp(uri, "gatehouse://everything/", 23) == 0);
    bool simple = false;
    size_t i;
    json_t *p;
    json_array_foreach (cat->prompts, i, p)
        simple |=
            strcmp(json_string_value(json_object_get(p, "name")), "everything-simple-prompt") == 0;
    assert_true(simple);
    mcp_catalog_release(cat);

    /* a call from the test thread */
    outcome_t o;
    call_and_wait(&l, "everything", "echo", "{\"message\":\"hello hub\"}", &o);
    assert_false(o.failed);
    assert_string_equal(o.text, "Echo: hello hub");
    assert_true(pthread_equal(o.thread, pthread_self()));
    assert_true(o.duration >= 0 && o.duration < SAFETY_MS / 1000);
    outcome_free(&o);

    /* a call from another thread, answered on that thread's loop */
    thread_call_t tc;
    memset(&tc, 0, sizeof(tc));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, caller_thread, &tc), 0);
    pthread_join(th, NULL);
    assert_true(tc.finished_in_time);
    assert_false(tc.o.failed);
    assert_string_equal(tc.o.text, "Echo: from another thread");
    assert_true(pthread_equal(tc.o.thread, tc.self));
    outcome_free(&tc.o);

    /* a generic request: prompts/get */
    memset(&o, 0, sizeof(o));
    json_t *params = json_pack("{s:s}", "name", "simple-prompt");
    mcp_hub_request(l.base, "everything", "prompts/get", params, NULL, on_done, &o);
    assert_true(run_until(&l, is_done, &o, SAFETY_MS));
    assert_false(o.failed);
    outcome_free(&o);

    mcp_hub_stop();
    /* after stop the catalog is empty, and subscribers heard of it */
    int before = l.changes;
    run_for(&l, 100);
    assert_true(l.changes > before);
    assert_int_equal(tool_state("everything-echo"), -1);
    loop_done(&l);
}

static void test_hub_errors(void **state)
{
    REQUIRE_SERVERS();
    loop_t l;
    loop_init(&l);
    outcome_t o;

    /* no hub at all */
    call_and_wait(&l, "everything", "echo", "{}", &o);
    assert_true(o.failed);
    assert_int_equal(o.code, MCP_ERR_UNAVAILABLE);

    const char *const only_echo[] = {"echo", NULL};
    spec_store_t s;
    everything_spec(&s, "everything", "hub-test-errors", only_echo);
    start_hub(&s.spec, 1, 0);
    assert_true(run_until(&l, is_available, "everything-echo", SAFETY_MS));
    assert_int_equal(tool_state("everything-get-sum"), -1); /* not executable: not listed */

    call_and_wait(&l, "nobody", "echo", "{}", &o);
    assert_true(o.failed);
    assert_int_equal(o.code, MCP_ERR_UNAVAILABLE);
    assert_non_null(strstr(o.message, "nobody"));

    call_and_wait(&l, "everything", "get-sum", "{\"a\":1,\"b\":2}", &o);
    assert_true(o.failed);
    assert_int_equal(o.code, JSONRPC_INVALID_PARAMS);
    assert_non_null(strstr(o.message, "tools_to_execute"));

    /* the server's verdict on bad arguments is a tool result with isError, passed on */
    call_and_wait(&l, "everything", "echo", "{\"message\":42}", &o);
    assert_false(o.failed);
    assert_true(o.is_error);
    assert_non_null(strstr(o.text, "Input validation error"));
    outcome_free(&o);

    mcp_hub_stop();
    loop_done(&l);
}

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
    mcp_hub_cancel(arg);
}

static void test_hub_cancel_and_timeout(void **state)
{
    REQUIRE_SERVERS();
    loop_t l;
    loop_init(&l);
    spec_store_t s;
    everything_spec(&s, "everything", "hub-test-cancel", all_tools);
    start_hub(&s.spec, 1, 1000);
    assert_true(run_until(&l, is_available, "everything-echo", SAFETY_MS));

    /* cancelled at once, before the hub could even send it */
    outcome_t o1;
    memset(&o1, 0, sizeof(o1));
    mcp_hub_call_t *c1 = mcp_hub_call_tool(l.base, "everything", "echo",
                                           json_pack("{s:s}", "message", "x"), NULL, on_done, &o1);
    mcp_hub_cancel(c1);

    /* cancelled while the server works on it */
    outcome_t o2;
    memset(&o2, 0, sizeof(o2));
    mcp_hub_call_t *c2 =
        mcp_hub_call_tool(l.base, "everything", "trigger-long-running-operation",
                          json_pack("{s:i,s:i}", "duration", 3, "steps", 3), NULL, on_done, &o2);
    struct event *t = evtimer_new(l.base, on_cancel_timer, c2);
    struct timeval tv = {0, 200 * 1000};
    evtimer_add(t, &tv);
    run_for(&l, 1500); /* past the timeout the call would have hit */
    event_free(t);
    assert_int_equal(o1.calls, 0);
    assert_int_equal(o2.calls, 0);

    /* the tool runs 3 s, the hub waits 1 s */
    outcome_t o3;
    double t0 = now_ms();
    call_and_wait(&l, "everything", "trigger-long-running-operation",
                  "{\"duration\":3,\"steps\":3}", &o3);
    double took = now_ms() - t0;
    assert_true(o3.failed);
    assert_int_equal(o3.code, MCP_ERR_TIMEOUT);
    assert_true(took >= 900 && took < 2900);
    assert_true(o3.duration >= 0.9 && o3.duration < 2.9);

    /* the connection is still good afterwards */
    outcome_t o4;
    call_and_wait(&l, "everything", "echo", "{\"message\":\"still here\"}", &o4);
    assert_false(o4.failed);
    assert_string_equal(o4.text, "Echo: still here");
    outcome_free(&o4);

    /* a call in flight when the hub stops fails, and is answered exactly once */
    outcome_t o5;
    memset(&o5, 0, sizeof(o5));
    mcp_hub_call_tool(l.base, "everything", "trigger-long-running-operation",
                      json_pack("{s:i,s:i}", "duration", 3, "steps", 3), NULL, on_done, &o5);
    run_for(&l, 100);
    mcp_hub_stop();
    assert_true(run_until(&l, is_done, &o5, SAFETY_MS));
    run_for(&l, 50);
    assert_int_equal(o5.calls, 1);
    assert_true(o5.failed);
    assert_int_equal(o5.code, MCP_ERR_UNAVAILABLE);
    loop_done(&l);
}

/* The server really hears of a cancellation, and its JSON-RPC errors come back unchanged. */
static void test_hub_server_told(void **state)
{
    REQUIRE_SERVERS();
    loop_t l;
    loop_init(&l);
    spec_store_t s;
    fake_spec(&s, "fake");
    start_hub(&s.spec, 1, 0);
    assert_true(run_until(&l, is_available, "fake-slow", SAFETY_MS));

    outcome_t o1;
    memset(&o1, 0, sizeof(o1));
    mcp_hub_call_t *c = mcp_hub_call_tool(l.base, "fake", "slow", NULL, NULL, on_done, &o1);
    run_for(&l, 200);
    mcp_hub_cancel(c);
    run_for(&l, 200);
    assert_int_equal(o1.calls, 0);

    outcome_t o;
    call_and_wait(&l, "fake", "received", NULL, &o);
    assert_false(o.failed);
    json_t *got = parse(o.text);
    json_int_t slow_id = -1;
    bool told = false;
    size_t i;
    json_t *m;
    json_array_foreach (got, i, m) {
        const char *method = json_string_value(json_object_get(m, "method"));
        json_t *params = json_object_get(m, "params");
        if (method != NULL && strcmp(method, "tools/call") == 0 &&
            strcmp(json_string_value(json_object_get(params, "name")), "slow") == 0)
            slow_id = json_integer_value(json_object_get(m, "id"));
        if (method != NULL && strcmp(method, "notifications/cancelled") == 0)
            told = json_integer_value(json_object_get(params, "requestId")) == slow_id;
    }
    assert_true(slow_id > 0);
    assert_true(told);
    json_decref(got);
    outcome_free(&o);

    call_and_wait(&l, "fake", "tool3", "{}", &o);
    assert_true(o.failed);
    assert_int_equal(o.code, -32602);
    assert_string_equal(o.message, "no tool tool3");

    mcp_hub_stop();
    loop_done(&l);
}

static void test_hub_list_changed(void **state)
{
    REQUIRE_SERVERS();
    loop_t l;
    loop_init(&l);
    spec_store_t s;
    hub_server_spec(&s, "hub");
    /* a resync interval far beyond the test: only list_changed can bring the change */
    mcp_hub_opts_t opts = {.clients = &s.spec, .n_clients = 1, .resync_interval_ms = 3600000};
    assert_int_equal(mcp_hub_start(&opts), 0);
    assert_true(run_until(&l, is_available, "hub-hello", SAFETY_MS));

    /* names the providers would refuse, renamed; and found back */
    assert_int_equal(tool_state("hub-dotted_name"), 1);
    char long_name[80];
    memset(long_name, 'x', 70);
    long_name[70] = '\0';
    char exposed[80];
    snprintf(exposed, sizeof(exposed), "hub-%.51s_a3964b40", long_name);
    mcp_catalog_t *cat = mcp_hub_catalog();
    const mcp_tool_t *t = mcp_catalog_find(cat, exposed);
    assert_non_null(t);
    assert_string_equal(t->name, long_name);
    uint64_t v1 = cat->version;
    mcp_catalog_release(cat);
    assert_int_equal(tool_state("hub-fresh"), -1);

    outcome_t o;
    int before = l.changes;
    call_and_wait(&l, "hub", "add_tool", "{\"name\":\"fresh\"}", &o);
    assert_string_equal(o.text, "added fresh");
    outcome_free(&o);
    assert_true(run_until(&l, is_available, "hub-fresh", SAFETY_MS));
    run_for(&l, 50);
    assert_true(l.changes > before);
    cat = mcp_hub_catalog();
    assert_true(cat->version > v1);
    mcp_catalog_release(cat);

    call_and_wait(&l, "hub", "fresh", NULL, &o);
    assert_string_equal(o.text, "I am fresh");
    outcome_free(&o);

    call_and_wait(&l, "hub", "remove_tool", "{\"name\":\"fresh\"}", &o);
    outcome_free(&o);
    assert_true(run_until(&l, is_absent, "hub-fresh", SAFETY_MS));

    mcp_hub_stop();
    loop_done(&l);
}

static void test_hub_server_killed(void **state)
{
    REQUIRE_SERVERS();
    loop_t l;
    loop_init(&l);
    spec_store_t s;
    everything_spec(&s, "everything", "hub-test-kill", all_tools);
    start_hub(&s.spec, 1, 0);
    assert_true(run_until(&l, is_available, "everything-echo", SAFETY_MS));

    pid_t pid = find_child("hub-test-kill");
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);

    /* listed but unavailable while down; then back after the reconnect */
    assert_true(run_until(&l, is_unavailable, "everything-echo", SAFETY_MS));
    mcp_catalog_t *cat = mcp_hub_catalog();
    json_t *c0 = json_array_get(cat->clients, 0);
    assert_string_not_equal(json_string_value(json_object_get(c0, "state")), "ready");
    mcp_catalog_release(cat);
    assert_true(run_until(&l, is_available, "everything-echo", SAFETY_MS));

    pid_t pid2 = find_child("hub-test-kill");
    assert_true(pid2 > 0 && pid2 != pid);
    outcome_t o;
    call_and_wait(&l, "everything", "echo", "{\"message\":\"back\"}", &o);
    assert_false(o.failed);
    assert_string_equal(o.text, "Echo: back");
    outcome_free(&o);

    mcp_hub_stop();
    loop_done(&l);
}

static bool tool_executable_count(void *arg)
{
    mcp_catalog_t *cat = mcp_hub_catalog();
    bool ok = cat->n_tools > *(size_t *)arg;
    mcp_catalog_release(cat);
    return ok;
}

static void test_hub_reconfigure(void **state)
{
    REQUIRE_SERVERS();
    loop_t l;
    loop_init(&l);
    const char *const only_echo[] = {"echo", NULL};
    spec_store_t s;
    everything_spec(&s, "everything", "hub-test-reconf", only_echo);
    start_hub(&s.spec, 1, 0);
    assert_true(run_until(&l, is_available, "everything-echo", SAFETY_MS));
    mcp_catalog_t *cat = mcp_hub_catalog();
    assert_int_equal(cat->n_tools, 1);
    mcp_catalog_release(cat);
    pid_t pid = find_child("hub-test-reconf");
    assert_true(pid > 0);

    /* new tool lists only: the same server process stays */
    s.spec.tools_to_execute = all_tools;
    mcp_hub_opts_t opts = {.clients = &s.spec, .n_clients = 1};
    mcp_hub_reconfigure(&opts);
    size_t one = 1;
    assert_true(run_until(&l, tool_executable_count, &one, SAFETY_MS));
    assert_int_equal(tool_state("everything-get-sum"), 1);
    assert_int_equal(find_child("hub-test-reconf"), pid);

    /* a second client added, under another name */
    spec_store_t s2;
    hub_server_spec(&s2, "hub");
    mcp_hub_client_spec_t both[2] = {s.spec, s2.spec};
    opts = (mcp_hub_opts_t){.clients = both, .n_clients = 2};
    mcp_hub_reconfigure(&opts);
    assert_true(run_until(&l, is_available, "hub-hello", SAFETY_MS));
    assert_int_equal(find_child("hub-test-reconf"), pid);

    /* the first removed: its tools leave the catalog and its process ends */
    opts = (mcp_hub_opts_t){.clients = &s2.spec, .n_clients = 1};
    mcp_hub_reconfigure(&opts);
    assert_true(run_until(&l, is_absent, "everything-echo", SAFETY_MS));
    double deadline = now_ms() + SAFETY_MS;
    while (find_child("hub-test-reconf") > 0 && now_ms() < deadline)
        run_for(&l, 50);
    assert_int_equal(find_child("hub-test-reconf"), -1);
    assert_int_equal(tool_state("hub-hello"), 1);

    mcp_hub_stop();
    loop_done(&l);
}

typedef struct posted {
    int runs;                /* atomic */
    struct event_base *base; /* what the hub passed */
    pthread_t thread;        /* where it ran */
} posted_t;

static void on_posted(struct event_base *base, void *arg)
{
    posted_t *p = arg;
    p->base = base;
    p->thread = pthread_self();
    __atomic_add_fetch(&p->runs, 1, __ATOMIC_RELEASE);
}

/* mcp_hub_post runs work on the hub thread with the hub's loop, and refuses without a hub. */
static void test_hub_post(void **state)
{
    posted_t p = {0};
    assert_int_equal(mcp_hub_post(on_posted, &p), -1);

    start_hub(NULL, 0, 0);
    assert_int_equal(mcp_hub_post(on_posted, &p), 0);
    assert_int_equal(mcp_hub_post(on_posted, &p), 0);
    double deadline = now_ms() + SAFETY_MS;
    while (__atomic_load_n(&p.runs, __ATOMIC_ACQUIRE) < 2 && now_ms() < deadline)
        usleep(1000);
    assert_int_equal(__atomic_load_n(&p.runs, __ATOMIC_ACQUIRE), 2);
    assert_non_null(p.base);
    assert_false(pthread_equal(p.thread, pthread_self()));
    mcp_hub_stop();

    assert_int_equal(mcp_hub_post(on_posted, &p), -1);
    assert_int_equal(p.runs, 2);
}

static int setup(void **state)
{
    evthread_use_pthreads();
    log_set_level(LOG_LVL_WARN);
    return 0;
}

/* A failed test leaves its hub running; the next test needs it gone. */
static int teardown(void **state)
{
    mcp_hub_stop();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naming_plain_and_sanitized),
        cmocka_unit_test(test_naming_long),
        cmocka_unit_test(test_naming_collisions),
        cmocka_unit_test(test_naming_salt),
        cmocka_unit_test(test_naming_prompts_and_resources),
        cmocka_unit_test(test_catalog_build),
        cmocka_unit_test_teardown(test_hub_everything, teardown),
        cmocka_unit_test_teardown(test_hub_errors, teardown),
        cmocka_unit_test_teardown(test_hub_cancel_and_timeout, teardown),
        cmocka_unit_test_teardown(test_hub_server_told, teardown),
        cmocka_unit_test_teardown(test_hub_list_changed, teardown),
        cmocka_unit_test_teardown(test_hub_server_killed, teardown),
        cmocka_unit_test_teardown(test_hub_reconfigure, teardown),
        cmocka_unit_test_teardown(test_hub_post, teardown),
    };
    /* As the gateway does (worker.c): a stdio server that exits while the hub writes to it must
     * be a failed write, not a SIGPIPE that ends the test run (seen once as exit status 141). */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("mcp_hub", tests, setup, NULL);
}
