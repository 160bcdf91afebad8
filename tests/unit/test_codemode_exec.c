/*
 * test_codemode_exec.c - unit tests for the Code Mode executor (src/codemode/exec.c,
 * supervisor.c, frame.c, outcome.c).
 *
 * Pure parts first: framing, the CallToolResult -> return value conversion, and the fixed text
 * format the model reads. Then the executor as the gateway runs it: a real tool hub with
 * @modelcontextprotocol/server-everything as a code-mode client, and as the sandbox helper
 * tests/fixtures/codemode/fake_sandbox.py, a stand-in that speaks the helper's wire format
 * without confinement, so that these tests exercise the executor alone (the real helper and
 * its confinement have their own tests, and the end-to-end test runs the real one). Without
 * tests/node_modules the executor tests are skipped with a message.
 *
 * The test thread plays a worker: executions are started from it and their outcomes come back
 * on its own event loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codemode/bindings.h"
#include "codemode/exec.h"
#include "codemode/exec_internal.h"
#include "mcp/hub.h"
#include "util/alloc.h"
#include "util/log.h"

#define EVERYTHING "tests/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
#define FAKE_SANDBOX "tests/fixtures/codemode/fake_sandbox.py"
#define SAFETY_MS 30000.0
#define CONCURRENT 50

static const char *const pass_env[] = {"PATH", "HOME", NULL};
static const char *const all_tools[] = {"*", NULL};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
    if (j == NULL)
        fail_msg("bad test JSON: %s", err.text);
    return j;
}

/* ---- framing --------------------------------------------------------------------------------- */

static void test_frame_round_trip(void **state)
{
    json_t *obj = parse("{\"type\":\"call\",\"seq\":1,\"args\":{\"m\":\"h\\u00e9\"}}");
    size_t len;
    char *frame = codemode_frame_encode(obj, &len);
    assert_non_null(frame);
    assert_int_equal(len, 4 + (size_t)((unsigned char)frame[3]));
    assert_int_equal(frame[0], 0);

    /* byte by byte: MORE until the last byte, then the object */
    struct evbuffer *in = evbuffer_new();
    json_t *out = NULL;
    size_t got_len;
    char err[160];
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(codemode_frame_take(in, 1024, &out, &got_len, err, sizeof(err)),
                         CODEMODE_FRAME_MORE);
        evbuffer_add(in, frame + i, 1);
    }
    evbuffer_add(in, frame, len); /* and a second one behind it */
    assert_int_equal(codemode_frame_take(in, 1024, &out, &got_len, err, sizeof(err)),
                     CODEMODE_FRAME_OK);
    assert_true(json_equal(out, obj));
    json_decref(out);
    assert_int_equal(evbuffer_get_length(in), len);
    assert_int_equal(codemode_frame_take(in, 1024, &out, &got_len, err, sizeof(err)),
                     CODEMODE_FRAME_OK);
    json_decref(out);
    assert_int_equal(evbuffer_get_length(in), 0);

    /* over the reader's maximum: refused from the header alone */
    evbuffer_add(in, frame, 4);
    assert_int_equal(codemode_frame_take(in, len - 5, &out, &got_len, err, sizeof(err)),
                     CODEMODE_FRAME_TOO_LARGE);
    assert_int_equal(got_len, len - 4);
    assert_null(out);
    evbuffer_drain(in, 4);

    /* not an object */
    const char bad[] = {0, 0, 0, 3, '[', '1', ']'};
    evbuffer_add(in, bad, sizeof(bad));
    assert_int_equal(codemode_frame_take(in, 1024, &out, &got_len, err, sizeof(err)),
                     CODEMODE_FRAME_BAD);
    assert_non_null(strstr(err, "not a JSON object"));
    const char junk[] = {0, 0, 0, 2, '{', 'x'};
    evbuffer_add(in, junk, sizeof(junk));
    assert_int_equal(codemode_frame_take(in, 1024, &out, &got_len, err, sizeof(err)),
                     CODEMODE_FRAME_BAD);

    evbuffer_free(in);
    free(frame);
    json_decref(obj);
}

/* ---- CallToolResult -> return frame -----------------------------------------------------------
 */

/* The return frame for a result given as JSON text (or NULL with hub_error). */
static json_t *ret(const char *result, const char *hub_error, char **error)
{
    json_t *r = result != NULL ? parse(result) : NULL;
    json_t *frame = codemode_return_frame(7, r, hub_error, error);
    json_decref(r);
    assert_string_equal(json_string_value(json_object_get(frame, "type")), "return");
    assert_int_equal(json_integer_value(json_object_get(frame, "seq")), 7);
    return frame;
}

static void assert_value(const char *result, const char *want_json)
{
    char *error;
    json_t *frame = ret(result, NULL, &error);
    assert_null(error);
    assert_true(json_is_true(json_object_get(frame, "ok")));
    json_t *want = parse(want_json);
    char *got = json_dumps(json_object_get(frame, "value"), JSON_ENCODE_ANY | JSON_COMPACT);
    if (!json_equal(json_object_get(frame, "value"), want))
        fail_msg("value %s, want %s", got, want_json);
    free(got);
    json_decref(want);
    json_decref(frame);
}

static void assert_error(const char *result, const char *hub_error, const char *want)
{
    char *error;
    json_t *frame = ret(result, hub_error, &error);
    assert_false(json_is_true(json_object_get(frame, "ok")));
    assert_null(json_object_get(frame, "value"));
    assert_string_equal(json_string_value(json_object_get(frame, "error")), want);
    assert_string_equal(error, want);
    free(error);
    json_decref(frame);
}

static void test_return_values(void **state)
{
    /* structuredContent wins over the text */
    assert_value("{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":1}\"}],"
                 "\"structuredContent\":{\"a\":1,\"b\":[true]}}",
                 "{\"a\":1,\"b\":[true]}");
    /* text that is JSON is parsed, whatever its type */
    assert_value("{\"content\":[{\"type\":\"text\",\"text\":\"[1, 2, 3]\"}]}", "[1,2,3]");
    assert_value("{\"content\":[{\"type\":\"text\",\"text\":\"42\"}]}", "42");
    assert_value("{\"content\":[{\"type\":\"text\",\"text\":\" {\\\"k\\\": \\\"v\\\"} \"}]}",
                 "{\"k\":\"v\"}");
    /* other text is a string; several parts are joined by a newline */
    assert_value("{\"content\":[{\"type\":\"text\",\"text\":\"Echo: hi\"}]}", "\"Echo: hi\"");
    assert_value("{\"content\":[{\"type\":\"text\",\"text\":\"one\"},"
                 "{\"type\":\"text\",\"text\":\"two\"}]}",
                 "\"one\\ntwo\"");
    /* no content at all: an empty string */
    assert_value("{\"content\":[]}", "\"\"");
    /* an image is described, not passed */
    assert_value(
        "{\"content\":[{\"type\":\"image\",\"mimeType\":\"image/png\",\"data\":\"AAAA\"}]}",
        "\"[image: image/png, 3 bytes]\"");
}

static void test_return_errors(void **state)
{
    assert_error("{\"isError\":true,\"content\":[{\"type\":\"text\",\"text\":\"no such file\"}]}",
                 NULL, "no such file");
    /* an error's structuredContent is no value: its text (content.h) is the message */
    assert_error("{\"isError\":true,\"content\":[],\"structuredContent\":{\"x\":1}}", NULL,
                 "{\"x\":1}");
    assert_error("{\"isError\":true,\"content\":[]}", NULL, "the tool reported an error");
    assert_error(NULL, "MCP client everything is not connected",
                 "MCP client everything is not connected");
    assert_error(NULL, NULL, "the tool call failed");
}

/* ---- the text the model reads ---------------------------------------------------------------- */

static void test_format_ok(void **state)
{
    codemode_call_record_t calls[] = {
        {.server_py = "everything", .tool_py = "echo", .duration_s = 0.0123, .ok = true},
        {.server_py = "everything", .tool_py = "get_sum", .duration_s = 0.0004, .ok = true},
    };
    json_t *result = parse("{\"sum\":3,\"echo\":\"Echo: hi\"}");
    codemode_outcome_t o = {
        .status = "ok",
        .output = "hello\nstatus: not a field\n",
        .result = result,
        .calls = calls,
        .n_calls = 2,
        .duration_s = 0.0415,
    };
    char *text = codemode_outcome_format(&o);
    assert_string_equal(text, "status: ok (42ms)\n"
                              "tool calls: 2\n"
                              "  1. everything.echo 12ms ok\n"
                              "  2. everything.get_sum 0.4ms ok\n"
                              "result: {\"sum\":3,\"echo\":\"Echo: hi\"}\n"
                              "output:\n"
                              "hello\n"
                              "status: not a field\n");
    free(text);
    json_decref(result);

    codemode_outcome_t empty = {.status = "ok", .output = "", .duration_s = 0.002};
    text = codemode_outcome_format(&empty);
    assert_string_equal(text, "status: ok (2.0ms)\n"
                              "tool calls: 0\n"
                              "result: (not set)\n"
                              "output: (none)\n");
    free(text);
}

static void test_format_failure(void **state)
{
    codemode_call_record_t calls[] = {
        {.server_py = "fs",
         .tool_py = "read_file",
         .duration_s = 0.25,
         .ok = false,
         .error = "ENOENT: no such file\nor directory"},
    };
    codemode_outcome_t o = {
        .status = "tool",
        .output = "partial",
        .output_truncated = true,
        .error_type = "ToolError",
        .error_message = "ENOENT: no such file\n  (while opening)",
        .error_line = 3,
        .hint = "catch ToolError to go on without the file",
        .calls = calls,
        .n_calls = 1,
        .duration_s = 1.5,
    };
    char *text = codemode_outcome_format(&o);
    assert_string_equal(text, "status: tool (1500ms)\n"
                              "error: ToolError: ENOENT: no such file   (while opening) (line 3)\n"
                              "hint: catch ToolError to go on without the file\n"
                              "tool calls: 1\n"
                              "  1. fs.read_file 250ms error: ENOENT: no such file or directory\n"
                              "result: (not set)\n"
                              "output (cut at the limit):\n"
                              "partial\n");
    free(text);

    codemode_outcome_t t = {.status = "timeout",
                            .output = "",
                            .error_type = "TimeoutError",
                            .error_message = "over 30000 ms",
                            .duration_s = 30.0};
    text = codemode_outcome_format(&t);
    assert_string_equal(text, "status: timeout (30000ms)\n"
                              "error: TimeoutError: over 30000 ms\n"
                              "tool calls: 0\n"
                              "result: (not set)\n"
                              "output: (none)\n");
    free(text);
}

/* ---- done frame -> outcome ------------------------------------------------------------------- */

static void test_outcome_from_done(void **state)
{
    json_t *done =
        parse("{\"type\":\"done\",\"status\":\"runtime\",\"output\":\"ab\u00e9cd\","
              "\"output_truncated\":false,\"result\":[1],\"error\":{\"type\":\"KeyError\","
              "\"message\":\"'x'\",\"line\":4,\"hint\":\"check the key\"}}");
    assert_string_equal(codemode_done_status(done), "runtime");
    codemode_outcome_t o = {0};
    char *output;
    /* a limit inside the two bytes of the e-acute cuts before it, and says so */
    codemode_outcome_from_done(done, 3, &o, &output);
    assert_string_equal(o.output, "ab");
    assert_true(o.output_truncated);
    assert_int_equal(json_integer_value(json_array_get(o.result, 0)), 1);
    assert_string_equal(o.error_type, "KeyError");
    assert_string_equal(o.error_message, "'x'");
    assert_int_equal(o.error_line, 4);
    assert_string_equal(o.hint, "check the key");
    free(output);
    json_decref(done);

    /* whatever shape the child sends, nothing is invented */
    done = parse("{\"status\":\"bogus\",\"output\":5,\"result\":null,\"error\":{\"line\":-3}}");
    assert_null(codemode_done_status(done));
    memset(&o, 0, sizeof(o));
    codemode_outcome_from_done(done, 1024, &o, &output);
    assert_string_equal(o.output, "");
    assert_false(o.output_truncated);
    assert_null(o.result);
    assert_null(o.error_message);
    assert_int_equal(o.error_line, 0);
    free(output);
    json_decref(done);
}

/* ---- the executor: a hub, server-everything, the fake helper ----------------------------------
 */

typedef struct got {
    int n;
    char status[32];
    char *output;
    char *result; /* compact JSON or NULL */
    char *message;
    char *error_type;
    int line;
    size_t n_calls;
    bool calls_ok;
    double duration_s;
} got_t;

static void got_free(got_t *g)
{
    free(g->output);
    free(g->result);
    free(g->message);
    free(g->error_type);
    memset(g, 0, sizeof(*g));
}

static void on_outcome(void *arg, const codemode_outcome_t *o)
{
    got_t *g = arg;
    g->n++;
    snprintf(g->status, sizeof(g->status), "%s", o->status);
    g->output = xstrdup(o->output);
    g->result = o->result != NULL ? json_dumps(o->result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    g->message = o->error_message != NULL ? xstrdup(o->error_message) : NULL;
    g->error_type = o->error_type != NULL ? xstrdup(o->error_type) : NULL;
    g->line = o->error_line;
    g->n_calls = o->n_calls;
    g->calls_ok = true;
    for (size_t i = 0; i < o->n_calls; i++)
        g->calls_ok = g->calls_ok && o->calls[i].ok;
    g->duration_s = o->duration_s;
}

typedef struct world {
    struct event_base *base;
    codemode_bindings_t *b;
    const char *args[3];
    mcp_hub_client_spec_t spec;
} world_t;

static world_t w;

static bool have_world(void)
{
    if (access(EVERYTHING, R_OK) == 0)
        return true;
    print_message("skipped: %s is missing; run `npm ci` in tests/ first\n", EVERYTHING);
    return false;
}

static void run_for(double ms)
{
    struct timeval tv = {(long)(ms / 1000), (long)((long)ms % 1000) * 1000};
    event_base_loopexit(w.base, &tv);
    event_base_dispatch(w.base);
}

static bool wait_for(const int *counter, int want, double limit_ms)
{
    double deadline = now_ms() + limit_ms;
    while (*counter < want && now_ms() < deadline)
        run_for(10);
    return *counter >= want;
}

static int bindings_ready(void)
{
    mcp_catalog_t *cat = mcp_hub_catalog();
    codemode_bindings_t *b = codemode_bindings_build(cat, NULL);
    mcp_catalog_release(cat);
    const codemode_tool_binding_t *t = codemode_bindings_find(b, "everything", "echo", NULL);
    bool ok = t != NULL && t->t->available;
    if (ok)
        w.b = b;
    else
        codemode_bindings_release(b);
    return ok;
}

static int world_setup(void **state)
{
    if (access(EVERYTHING, R_OK) != 0)
        return 0;
    w.base = event_base_new();
    w.args[0] = EVERYTHING;
    w.args[1] = "stdio";
    w.spec.conn = (mcp_client_opts_t){.name = "everything",
                                      .transport = MCP_TRANSPORT_STDIO,
                                      .command = "node",
                                      .args = w.args,
                                      .env_names = pass_env};
    w.spec.tools_to_execute = all_tools;
    w.spec.tools_to_auto_execute = all_tools;
    w.spec.is_code_mode = true;
    mcp_hub_opts_t opts = {.clients = &w.spec, .n_clients = 1};
    if (mcp_hub_start(&opts) != 0)
        return -1;
    double deadline = now_ms() + SAFETY_MS;
    while (!bindings_ready() && now_ms() < deadline)
        run_for(20);
    if (w.b == NULL)
        return -1;
    codemode_limits_t lim = {.wall_ms = 10000};
    /* CODEMODE_TEST_SANDBOX=build/gatehouse-sandbox runs them against the real helper; three
     * expect the stand-in's ways (an unknown tool reaches the gateway, a large print is cut
     * rather than refused, a script can make the helper die) and fail there by design. */
    const char *helper = getenv("CODEMODE_TEST_SANDBOX");
    return codemode_start(helper != NULL ? helper : FAKE_SANDBOX, &lim);
}

static int world_teardown(void **state)
{
    if (w.base == NULL)
        return 0;
    codemode_stop();
    codemode_bindings_release(w.b);
    mcp_hub_stop();
    event_base_free(w.base);
    return 0;
}

static void run_script(const char *code, const codemode_limits_t *lim, got_t *g)
{
    memset(g, 0, sizeof(*g));
    codemode_exec_start(w.base, code, w.b, lim, "test-req", true, on_outcome, g);
    assert_true(wait_for(&g->n, 1, SAFETY_MS));
    assert_int_equal(g->n, 1);
}

static void test_exec_basic(void **state)
{
    if (!have_world())
        skip();
    got_t g;
    run_script("print('hi', 1)\n"
               "e = everything.echo(message='hello')\n"
               "s = everything.get_sum(a=2, b=3)\n"
               "result = {'echo': e, 'sum': s}\n",
               NULL, &g);
    assert_string_equal(g.status, "ok");
    assert_string_equal(g.output, "hi 1\n");
    assert_non_null(g.result);
    assert_non_null(strstr(g.result, "\"echo\":\"Echo: hello\""));
    assert_non_null(strstr(g.result, "5"));
    assert_int_equal(g.n_calls, 2);
    assert_true(g.calls_ok);
    got_free(&g);

    /* errors of the script itself come back with their line */
    run_script("x = 1\ny = x / 0\n", NULL, &g);
    assert_string_equal(g.status, "runtime");
    assert_string_equal(g.error_type, "ZeroDivisionError");
    assert_int_equal(g.line, 2);
    got_free(&g);

    /* an unknown tool raises in the script, with the valid names' source in the message */
    run_script("everything.no_such_tool()\n", NULL, &g);
    assert_string_equal(g.status, "tool");
    assert_non_null(strstr(g.message, "no tool everything.no_such_tool"));
    assert_int_equal(g.n_calls, 1);
    assert_false(g.calls_ok);
    got_free(&g);

    /* a failing tool can be caught */
    run_script("try:\n    everything.nothing_here()\nexcept ToolError as e:\n"
               "    result = 'caught'\n",
               NULL, &g);
    assert_string_equal(g.status, "ok");
    assert_string_equal(g.result, "\"caught\"");
    got_free(&g);
}

/* 50 executions at once, each with its own tool calls: every one gets its own answers. */
static void test_exec_concurrent(void **state)
{
    if (!have_world())
        skip();
    static got_t g[CONCURRENT];
    char code[CONCURRENT][256];
    for (int i = 0; i < CONCURRENT; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        snprintf(code[i], sizeof(code[i]),
                 "a = everything.echo(message='run %d')\n"
                 "b = everything.get_sum(a=%d, b=1000)\n"
                 "print(a)\nresult = [a, b]\n",
                 i, i);
        codemode_exec_start(w.base, code[i], w.b, NULL, "test-conc", false, on_outcome, &g[i]);
    }
    double deadline = now_ms() + 60000;
    int done = 0;
    while (done < CONCURRENT && now_ms() < deadline) {
        run_for(20);
        done = 0;
        for (int i = 0; i < CONCURRENT; i++)
            done += g[i].n;
    }
    assert_int_equal(done, CONCURRENT);
    for (int i = 0; i < CONCURRENT; i++) {
        char want[128];
        assert_string_equal(g[i].status, "ok");
        snprintf(want, sizeof(want), "[\"Echo: run %d\",", i);
        if (strncmp(g[i].result, want, strlen(want)) != 0)
            fail_msg("execution %d: result %s", i, g[i].result);
        snprintf(want, sizeof(want), "%d", i + 1000);
        assert_non_null(strstr(g[i].result, want));
        snprintf(want, sizeof(want), "Echo: run %d\n", i);
        assert_string_equal(g[i].output, want);
        assert_int_equal(g[i].n_calls, 2);
        assert_true(g[i].calls_ok);
        got_free(&g[i]);
    }
}

static void test_exec_timeout(void **state)
{
    if (!have_world())
        skip();
    codemode_limits_t lim = {.wall_ms = 700};
    got_t g;
    double t0 = now_ms();
    run_script("while True:\n    pass\n", &lim, &g);
    double took = now_ms() - t0;
    assert_string_equal(g.status, "timeout");
    assert_non_null(strstr(g.message, "700 ms"));
    assert_true(took >= 650 && took < 3000);
    got_free(&g);

    /* the helper is unharmed */
    run_script("result = 1 + 1\n", NULL, &g);
    assert_string_equal(g.status, "ok");
    assert_string_equal(g.result, "2");
    got_free(&g);
}

/* A done frame over the output limit plus slack is refused and the child killed. */
static void test_exec_output_limit(void **state)
{
    if (!have_world())
        skip();
    codemode_limits_t lim = {.output_bytes = 1024};
    got_t g;
    /* the fake helper cuts print() output itself; a result is not cut, so it trips the frame
     * limit (3 * 1024 + 64 KiB) */
    run_script("print('x' * 5000)\n", &lim, &g);
    assert_string_equal(g.status, "ok");
    assert_int_equal(strlen(g.output), 1024);
    got_free(&g);
    run_script("result = 'y' * 200000\n", &lim, &g);
    assert_string_equal(g.status, "limit");
    assert_non_null(strstr(g.message, "over the limit"));
    got_free(&g);
}

static void on_never(void *arg, const codemode_outcome_t *o)
{
    fail_msg("a cancelled execution's callback ran");
}

static void test_exec_cancel(void **state)
{
    if (!have_world())
        skip();
    codemode_exec_t *e = codemode_exec_start(w.base, "while True:\n    pass\n", w.b, NULL,
                                             "test-cancel", false, on_never, NULL);
    run_for(300);
    codemode_exec_cancel(e);
    run_for(300);

    got_t g;
    run_script("result = 'after'\n", NULL, &g);
    assert_string_equal(g.status, "ok");
    got_free(&g);
}

/* The helper dies during an execution: that execution fails cleanly, the next one works once
 * the helper has been restarted. */
static void test_exec_helper_dies(void **state)
{
    if (!have_world())
        skip();
    got_t g;
    run_script("#fake:die\nresult = 1\n", NULL, &g);
    assert_string_equal(g.status, "internal");
    assert_non_null(strstr(g.message, "the sandbox stopped during the execution"));
    got_free(&g);

    run_script("result = everything.echo(message='back')\n", NULL, &g);
    assert_string_equal(g.status, "ok");
    assert_string_equal(g.result, "\"Echo: back\"");
    got_free(&g);
}

/* The numbers of a result that is a JSON array of numbers. */
static double result_number(const got_t *g, size_t i)
{
    json_t *r = parse(g->result);
    double v = json_number_value(json_array_get(r, i));
    assert_true(json_is_number(json_array_get(r, i)));
    json_decref(r);
    return v;
}

#define QUEUED 5

/* max_concurrent 2 and five scripts at once, each sleeping 0.3 s around a tool call: the fake
 * helper never runs more than two children (fake_siblings: the others it runs when it forks one),
 * all five finish, the later ones start only when a place frees up, first come first run. */
static void test_exec_max_concurrent(void **state)
{
    if (!have_world())
        skip();
    codemode_set_max_concurrent(2);
    static got_t g[QUEUED];
    char code[QUEUED][256];
    double t0 = now_ms();
    for (int i = 0; i < QUEUED; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        snprintf(code[i], sizeof(code[i]),
                 "import time\n"
                 "start = time.monotonic()\n"
                 "e = everything.echo(message='q%d')\n"
                 "time.sleep(0.3)\n"
                 "result = [fake_siblings, start, e]\n",
                 i);
        codemode_exec_start(w.base, code[i], w.b, NULL, "test-cap", false, on_outcome, &g[i]);
    }
    int done = 0;
    double deadline = now_ms() + SAFETY_MS;
    while (done < QUEUED && now_ms() < deadline) {
        run_for(20);
        done = 0;
        for (int i = 0; i < QUEUED; i++)
            done += g[i].n;
    }
    double took = now_ms() - t0;
    codemode_set_max_concurrent(0);
    assert_int_equal(done, QUEUED);

    double start[QUEUED];
    int most_siblings = 0;
    for (int i = 0; i < QUEUED; i++) {
        assert_string_equal(g[i].status, "ok");
        char echo[32];
        snprintf(echo, sizeof(echo), "\"Echo: q%d\"]", i);
        assert_non_null(strstr(g[i].result, echo));
        int siblings = (int)result_number(&g[i], 0);
        if (siblings > 1)
            fail_msg("execution %d started beside %d others, over max_concurrent 2", i, siblings);
        most_siblings = siblings > most_siblings ? siblings : most_siblings;
        start[i] = result_number(&g[i], 1);
        got_free(&g[i]);
    }
    assert_int_equal(most_siblings, 1); /* two did run at once */
    /* three rounds of 0.3 s: 0 and 1, then 2 and 3 as those end, then 4 */
    assert_true(took >= 900);
    for (int i = 2; i < QUEUED; i++)
        assert_true(start[i] - start[0] >= 0.25 && start[i] - start[1] >= 0.25);
    assert_true(start[4] - start[2] >= 0.25 || start[4] - start[3] >= 0.25);
}

/* A queued script's wall time runs while it waits: with max_concurrent 1 behind a 1 s script,
 * one with a 400 ms limit times out without starting; a cancelled one leaves the queue and never
 * runs; one queued after them runs once the first ends. */
static void test_exec_queue_timeout_cancel(void **state)
{
    if (!have_world())
        skip();
    char marker[64];
    snprintf(marker, sizeof(marker), "/tmp/gatehouse-test-cancelled-%d", (int)getpid());
    unlink(marker);
    codemode_set_max_concurrent(1);
    got_t first = {0}, late = {0}, last = {0};
    codemode_exec_start(w.base, "import time\ntime.sleep(1.0)\nresult = 'first'\n", w.b, NULL,
                        "test-queue", false, on_outcome, &first);
    codemode_limits_t short_wall = {.wall_ms = 400};
    double t0 = now_ms();
    codemode_exec_start(w.base, "result = 'late'\n", w.b, &short_wall, "test-queue", false,
                        on_outcome, &late);
    char cancelled_code[160];
    snprintf(cancelled_code, sizeof(cancelled_code), "open('%s', 'w').close()\n", marker);
    codemode_exec_t *cancelled =
        codemode_exec_start(w.base, cancelled_code, w.b, NULL, "test-queue", false, on_never, NULL);
    codemode_exec_start(w.base, "result = fake_siblings\n", w.b, NULL, "test-queue", false,
                        on_outcome, &last);
    run_for(100);
    codemode_exec_cancel(cancelled);

    assert_true(wait_for(&late.n, 1, SAFETY_MS));
    double late_ms = now_ms() - t0;
    assert_true(wait_for(&last.n, 1, SAFETY_MS));
    codemode_set_max_concurrent(0);
    assert_true(wait_for(&first.n, 1, SAFETY_MS));

    assert_string_equal(late.status, "timeout");
    assert_non_null(strstr(late.message, "did not start"));
    assert_non_null(strstr(late.message, "at most 1 scripts"));
    assert_true(late_ms >= 350 && late_ms < 900);
    assert_string_equal(first.status, "ok");
    assert_string_equal(first.result, "\"first\"");
    assert_string_equal(last.status, "ok");
    assert_string_equal(last.result, "0"); /* it ran alone, after the first */
    assert_int_not_equal(access(marker, F_OK), 0);
    got_free(&first);
    got_free(&late);
    got_free(&last);
}

typedef struct analysis_got {
    int n;
    bool failed, syntax_ok, dynamic;
    int line;
    char calls[512]; /* "srv.tool," for each call */
} analysis_got_t;

static void on_analysis(void *arg, const codemode_analysis_t *a)
{
    analysis_got_t *g = arg;
    g->n++;
    g->failed = a->failed;
    g->syntax_ok = a->syntax_ok;
    g->dynamic = a->dynamic;
    g->line = a->error_line;
    g->calls[0] = '\0';
    for (size_t i = 0; i < a->n_calls; i++) {
        size_t len = strlen(g->calls);
        snprintf(g->calls + len, sizeof(g->calls) - len, "%s.%s,", a->servers_py[i],
                 a->tools_py[i]);
    }
}

static void analyze(const char *code, analysis_got_t *g)
{
    memset(g, 0, sizeof(*g));
    codemode_analyze_start(w.base, code, w.b, "test-analyze", on_analysis, g);
    assert_true(wait_for(&g->n, 1, SAFETY_MS));
}

/* The analysis lists a script's server.tool calls without running them. */
static void test_analyze(void **state)
{
    if (!have_world())
        skip();
    analysis_got_t g;
    analyze("a = everything.echo(message='x')\nif a:\n    everything.get_sum(a=1, b=2)\n", &g);
    assert_false(g.failed);
    assert_true(g.syntax_ok);
    assert_false(g.dynamic);
    assert_non_null(strstr(g.calls, "everything.echo,"));
    assert_non_null(strstr(g.calls, "everything.get_sum,"));

    analyze("f = getattr(everything, 'echo')\nf(message='x')\n", &g);
    assert_false(g.failed);
    assert_true(g.dynamic);

    analyze("def f(:\n", &g);
    assert_false(g.failed);
    assert_false(g.syntax_ok);
    assert_int_equal(g.line, 1);
}

/* A helper alive but hung: found out by the missing "started" (10 s), killed and replaced. */
static void test_exec_helper_hangs(void **state)
{
    if (!have_world())
        skip();
    codemode_limits_t lim = {.wall_ms = 20000};
    got_t g;
    double t0 = now_ms();
    run_script("#fake:hang\nresult = 1\n", &lim, &g);
    double took = now_ms() - t0;
    assert_string_equal(g.status, "internal");
    assert_non_null(strstr(g.message, "it is hung"));
    assert_true(took >= 9000 && took < 15000);
    got_free(&g);

    run_script("result = 'alive'\n", NULL, &g);
    assert_string_equal(g.status, "ok");
    got_free(&g);
}

static void on_analysis_never(void *arg, const codemode_analysis_t *a)
{
    int *n = arg;
    (*n)++;
    assert_true(a->failed);
    assert_non_null(a->error_message);
}

/* Without a hub nothing can run: the answer says so, on the caller's loop. */
static void test_no_hub(void **state)
{
    struct event_base *base = event_base_new();
    struct event_base *saved = w.base;
    w.base = base;
    got_t g = {0};
    codemode_exec_start(base, "result = 1", NULL, NULL, "no-hub", false, on_outcome, &g);
    assert_int_equal(g.n, 0); /* never from inside the call */
    assert_true(wait_for(&g.n, 1, 1000));
    assert_string_equal(g.status, "internal");
    assert_non_null(strstr(g.message, "tool hub does not run"));
    got_free(&g);
    int n = 0;
    codemode_analyze_start(base, "x = 1", NULL, "no-hub", on_analysis_never, &n);
    assert_true(wait_for(&n, 1, 1000));
    w.base = saved;
    event_base_free(base);
}

int main(void)
{
    evthread_use_pthreads();
    signal(SIGPIPE, SIG_IGN);
    log_set_level(getenv("TEST_LOG_INFO") != NULL ? LOG_LVL_INFO : LOG_LVL_WARN);
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(test_frame_round_trip), cmocka_unit_test(test_return_values),
        cmocka_unit_test(test_return_errors),    cmocka_unit_test(test_format_ok),
        cmocka_unit_test(test_format_failure),   cmocka_unit_test(test_outcome_from_done),
        cmocka_unit_test(test_no_hub),
    };
    const struct CMUnitTest running[] = {
        cmocka_unit_test(test_exec_basic),
        cmocka_unit_test(test_exec_concurrent),
        cmocka_unit_test(test_exec_timeout),
        cmocka_unit_test(test_exec_output_limit),
        cmocka_unit_test(test_exec_cancel),
        cmocka_unit_test(test_exec_max_concurrent),
        cmocka_unit_test(test_exec_queue_timeout_cancel),
        cmocka_unit_test(test_analyze),
        cmocka_unit_test(test_exec_helper_dies),
        cmocka_unit_test(test_exec_helper_hangs),
    };
    int failed = cmocka_run_group_tests_name("codemode_exec", pure, NULL, NULL);
    failed +=
        cmocka_run_group_tests_name("codemode_exec_running", running, world_setup, world_teardown);
    return failed;
}
