/*
 * test_agent.c - unit tests for agent mode's decisions and shapes (src/gateway/agent.c), on a
 * hand-made catalog and no running hub: how a turn is classified, what a round appends to the
 * conversation (calls to a hub that is not running come back as "Error: ..." tool results, on
 * the event loop, never from inside agent_run), the depth limit, the JSON summary of a mixed
 * turn, and a streamed turn rebuilt from its deltas with the right chunks held back.
 *
 * The end-to-end behaviour with real MCP servers and a scripted model is in
 * tests/e2e/agent.test.mjs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/agent.h"
#include "mcp/content.h"

/* ---- a catalog of three tools, sorted by exposed name as the hub sorts it ------------------- */

static mcp_tool_t tools[] = {
    {.client = "everything",
     .name = "echo",
     .exposed = "everything-echo",
     .available = true,
     .executable = true,
     .auto_execute = true},
    {.client = "everything",
     .name = "get-sum",
     .exposed = "everything-get-sum",
     .available = true,
     .executable = true,
     .auto_execute = false},
    {.client = "memory",
     .name = "read_graph",
     .exposed = "memory-read_graph",
     .available = true,
     .executable = true,
     .auto_execute = true},
};

static mcp_catalog_t catalog = {.refcount = 1, .tools = tools, .n_tools = 3};

typedef struct fixture {
    struct event_base *base;
    inject_tools_t tools;
    json_t *body;
    agent_t *agent;
    int done_calls;
} fixture_t;

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (j == NULL)
        fail_msg("bad test JSON: %s (%s)", err.text, text);
    return j;
}

/* An agent over the catalog; the request was given the tools named in visible. */
static void setup_with(fixture_t *f, const char *const *visible, int max_depth)
{
    memset(f, 0, sizeof(*f));
    f->base = event_base_new();
    f->tools.catalog = &catalog;
    f->tools.visible = json_object();
    for (size_t i = 0; visible[i] != NULL; i++) {
        json_object_set_new(f->tools.visible, visible[i], json_true());
        f->tools.n_added++;
        f->tools.n_auto += mcp_catalog_find(&catalog, visible[i])->auto_execute;
    }
    f->body = parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    agent_opts_t o = {
        .base = f->base,
        .request_id = "test-agent",
        .tools = &f->tools,
        .body = f->body,
        .max_depth = max_depth,
    };
    f->agent = agent_new(&o);
    assert_non_null(f->agent);
}

static const char *const all_three[] = {"everything-echo", "everything-get-sum",
                                        "memory-read_graph", NULL};

static int setup(void **state)
{
    fixture_t *f = malloc(sizeof(*f));
    setup_with(f, all_three, 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    agent_free(f->agent);
    json_decref(f->tools.visible);
    json_decref(f->body);
    event_base_free(f->base);
    free(f);
    return 0;
}

static json_t *assistant(const char *calls_json)
{
    char text[2048];
    snprintf(text, sizeof(text), "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":%s}",
             calls_json);
    return parse(text);
}

#define CALL(id, name, args)                                                                       \
    "{\"id\":\"" id "\",\"type\":\"function\",\"function\":{\"name\":\"" name                      \
    "\",\"arguments\":\"" args "\"}}"

static void on_done(void *arg)
{
    ((fixture_t *)arg)->done_calls++;
}

/* ---- planning ------------------------------------------------------------------------------- */

static void test_plan(void **state)
{
    fixture_t *f = *state;
    json_t *m;

    m = parse("{\"role\":\"assistant\",\"content\":\"plain text\"}");
    assert_int_equal(agent_plan(f->agent, m), AGENT_FINAL);
    json_decref(m);

    m = assistant("[" CALL("c1", "get_weather", "{}") "]"); /* the caller's own tool */
    assert_int_equal(agent_plan(f->agent, m), AGENT_FINAL);
    json_decref(m);

    m = assistant("[" CALL("c1", "everything-get-sum", "{}") "]"); /* MCP, not auto */
    assert_int_equal(agent_plan(f->agent, m), AGENT_FINAL);
    json_decref(m);

    m = assistant(
        "[" CALL("c1", "everything-echo", "{}") "," CALL("c2", "memory-read_graph", "{}") "]");
    assert_int_equal(agent_plan(f->agent, m), AGENT_RUN_ALL);
    json_decref(m);

    m = assistant("[" CALL("c1", "everything-echo", "{}") "," CALL("c2", "get_weather", "{}") "]");
    assert_int_equal(agent_plan(f->agent, m), AGENT_RUN_SOME);
    json_decref(m);

    /* only function calls run */
    m = parse("{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"custom\","
              "\"function\":{\"name\":\"everything-echo\",\"arguments\":\"{}\"}}]}");
    assert_int_equal(agent_plan(f->agent, m), AGENT_FINAL);
    json_decref(m);

    assert_int_equal(agent_turns(f->agent), 6);
}

/* A tool the request was not given is never run, even when the catalog auto-executes it. */
static void test_plan_only_visible_tools(void **state)
{
    static const char *const only_echo[] = {"everything-echo", NULL};
    fixture_t *f = malloc(sizeof(*f));
    setup_with(f, only_echo, 2);
    json_t *m = assistant("[" CALL("c1", "memory-read_graph", "{}") "]");
    assert_int_equal(agent_plan(f->agent, m), AGENT_FINAL);
    json_decref(m);
    void *s = f;
    teardown(&s);
}

/* No auto-executable tool, or several choices: no agent at all. */
static void test_no_agent(void **state)
{
    static const char *const only_sum[] = {"everything-get-sum", NULL};
    fixture_t f;
    memset(&f, 0, sizeof(f));
    f.tools.catalog = &catalog;
    f.tools.visible = json_object();
    json_object_set_new(f.tools.visible, only_sum[0], json_true());
    f.tools.n_added = 1;
    json_t *body = parse("{\"messages\":[],\"n\":1}");
    agent_opts_t o = {.tools = &f.tools, .body = body};
    assert_null(agent_new(&o));

    f.tools.n_auto = 1;
    json_object_set_new(body, "n", json_integer(2));
    assert_null(agent_new(&o));
    json_decref(body);
    json_decref(f.tools.visible);
}

/* ---- rounds --------------------------------------------------------------------------------- */

static void test_round_without_hub(void **state)
{
    fixture_t *f = *state;
    json_t *m = assistant("[" CALL("c1", "everything-echo", "{\\\"message\\\":\\\"x\\\"}") "," CALL(
        "c2", "everything-get-sum", "{}") "," CALL("c3", "memory-read_graph", "[1]") "]");
    assert_int_equal(agent_plan(f->agent, m), AGENT_RUN_SOME);
    agent_run(f->agent, m, on_done, f);
    assert_int_equal(f->done_calls, 0); /* never from inside agent_run */
    event_base_loop(f->base, 0);        /* runs until nothing is pending */
    assert_int_equal(f->done_calls, 1);

    /* the assistant message with all its calls, then one result per auto call, in order */
    json_t *conv = json_object_get(f->body, "messages");
    assert_int_equal(json_array_size(conv), 4);
    json_t *a = json_array_get(conv, 1);
    assert_string_equal(json_string_value(json_object_get(a, "role")), "assistant");
    assert_true(json_equal(json_object_get(a, "tool_calls"), json_object_get(m, "tool_calls")));
    json_t *r1 = json_array_get(conv, 2);
    json_t *r2 = json_array_get(conv, 3);
    assert_string_equal(json_string_value(json_object_get(r1, "tool_call_id")), "c1");
    assert_string_equal(json_string_value(json_object_get(r2, "tool_call_id")), "c3");
    const char *t1 = json_string_value(json_object_get(r1, "content"));
    const char *t2 = json_string_value(json_object_get(r2, "content"));
    assert_true(strncmp(t1, MCP_CONTENT_ERROR_PREFIX, strlen(MCP_CONTENT_ERROR_PREFIX)) == 0);
    assert_non_null(strstr(t1, "not running"));
    assert_string_equal(t2, "Error: the arguments are not a JSON object");

    /* the JSON answer of a mixed turn: the client's calls only, and the summary */
    json_t *resp = json_pack("{s:[{s:i, s:O, s:s}]}", "choices", "index", 0, "message", m,
                             "finish_reason", "tool_calls");
    agent_finish_json(f->agent, resp, AGENT_RUN_SOME);
    json_t *left = json_object_get(agent_response_message(resp), "tool_calls");
    assert_int_equal(json_array_size(left), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(left, 0), "id")), "c2");
    json_t *summary = json_object_get(resp, "gatehouse_agent");
    assert_int_equal(json_integer_value(json_object_get(summary, "steps")), 1);
    assert_true(json_is_false(json_object_get(summary, "depth_limit_reached")));
    json_t *messages = json_object_get(summary, "messages");
    assert_int_equal(json_array_size(messages), 3);
    assert_true(json_equal(json_array_get(messages, 0), a));
    json_decref(resp);
    json_decref(m);
}

static void test_depth_limit(void **state)
{
    fixture_t *f = *state; /* max_depth 2 */
    json_t *m = assistant("[" CALL("c1", "everything-echo", "{}") "]");
    for (int round = 0; round < 2; round++) {
        assert_int_equal(agent_plan(f->agent, m), AGENT_RUN_ALL);
        agent_run(f->agent, m, on_done, f);
        event_base_loop(f->base, 0);
    }
    assert_int_equal(f->done_calls, 2);
    assert_int_equal(agent_plan(f->agent, m), AGENT_LIMIT);

    json_t *resp = json_pack("{s:[{s:O}]}", "choices", "message", m);
    agent_finish_json(f->agent, resp, AGENT_LIMIT);
    json_t *summary = json_object_get(resp, "gatehouse_agent");
    assert_true(json_is_true(json_object_get(summary, "depth_limit_reached")));
    assert_int_equal(json_integer_value(json_object_get(summary, "steps")), 3);
    /* two rounds of (assistant, tool), then the last turn as is */
    assert_int_equal(json_array_size(json_object_get(summary, "messages")), 5);
    assert_true(json_equal(json_object_get(agent_response_message(resp), "tool_calls"),
                           json_object_get(m, "tool_calls")));
    json_decref(resp);
    json_decref(m);
}

/* ---- streams -------------------------------------------------------------------------------- */

static bool feed(fixture_t *f, const char *chunk_json, json_t **out)
{
    json_t *c = parse(chunk_json);
    bool forward = agent_stream_chunk(f->agent, c);
    if (out != NULL)
        *out = c;
    else
        json_decref(c);
    return forward;
}

#define CHUNK(choices)                                                                             \
    "{\"id\":\"s1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","                         \
    "\"choices\":" choices "}"

static void test_stream_turn(void **state)
{
    fixture_t *f = *state;
    json_t *c;

    assert_true(feed(f,
                     CHUNK("[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                           "\"finish_reason\":null}]"),
                     NULL));
    assert_true(feed(f, CHUNK("[{\"index\":0,\"delta\":{\"content\":\"Hi \"}}]"), NULL));
    /* tool-call deltas are held: the chunk has nothing left for the client */
    assert_false(feed(f,
                      CHUNK("[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
                            "\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get_"
                            "weather\",\"arguments\":\"\"}}]}}]"),
                      &c));
    assert_null(json_object_get(
        json_object_get(json_array_get(json_object_get(c, "choices"), 0), "delta"), "tool_calls"));
    json_decref(c);
    assert_false(feed(f,
                      CHUNK("[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                            "\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]"),
                      NULL));
    assert_false(feed(f,
                      CHUNK("[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
                            "\"function\":{\"arguments\":\"\\\"Oslo\\\"}\"}}]}}]"),
                      NULL));
    /* the finish reason of a turn with calls is held too, and so is usage */
    assert_false(
        feed(f, CHUNK("[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]"), NULL));
    assert_false(feed(f,
                      "{\"id\":\"s1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
                      "\"completion_tokens\":4,\"total_tokens\":7}}",
                      NULL));

    const json_t *msg = agent_stream_message(f->agent);
    json_t *want = parse("{\"role\":\"assistant\",\"content\":\"Hi \",\"tool_calls\":[{\"id\":"
                         "\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                         "\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]}");
    assert_true(json_equal(msg, want));
    json_decref(want);
    assert_int_equal(
        json_integer_value(json_object_get(agent_stream_usage(f->agent), "total_tokens")), 7);

    /* a caller tool only: the turn ends the stream; its calls come as one delta, then the
     * finish reason, then the usage chunk; no summary, since no tool ran */
    assert_int_equal(agent_plan(f->agent, msg), AGENT_FINAL);
    json_t *tail =
        agent_stream_tail(f->agent, AGENT_FINAL, json_deep_copy(agent_stream_usage(f->agent)));
    assert_int_equal(json_array_size(tail), 3);
    json_t *d0 = json_object_get(
        json_array_get(json_object_get(json_array_get(tail, 0), "choices"), 0), "delta");
    json_t *call0 = json_array_get(json_object_get(d0, "tool_calls"), 0);
    assert_int_equal(json_integer_value(json_object_get(call0, "index")), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(call0, "function"), "arguments")),
        "{\"city\":\"Oslo\"}");
    json_t *fin = json_array_get(json_object_get(json_array_get(tail, 1), "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(fin, "finish_reason")), "tool_calls");
    json_t *u = json_array_get(tail, 2);
    assert_int_equal(json_array_size(json_object_get(u, "choices")), 0);
    assert_string_equal(json_string_value(json_object_get(u, "id")), "s1");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(u, "usage"), "total_tokens")), 7);
    json_decref(tail);
}

/* Without tool calls, the finish reason goes through at once. */
static void test_stream_text_turn(void **state)
{
    fixture_t *f = *state;
    json_t *c;
    assert_true(feed(f, CHUNK("[{\"index\":0,\"delta\":{\"content\":\"done\"}}]"), NULL));
    assert_true(feed(f, CHUNK("[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]"), &c));
    json_t *fin = json_array_get(json_object_get(c, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(fin, "finish_reason")), "stop");
    json_decref(c);
    /* an empty delta with no finish reason carries nothing */
    assert_false(feed(f, CHUNK("[{\"index\":0,\"delta\":{},\"finish_reason\":null}]"), NULL));

    json_t *tail =
        agent_stream_tail(f->agent, agent_plan(f->agent, agent_stream_message(f->agent)), NULL);
    assert_int_equal(json_array_size(tail), 0);
    json_decref(tail);

    /* the next turn starts from nothing */
    agent_stream_next_turn(f->agent);
    assert_true(json_is_null(json_object_get(agent_stream_message(f->agent), "content")));
}

static void test_usage_json(void **state)
{
    json_t *u = agent_usage_json(10, 5, 0);
    json_t *want = parse("{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15}");
    assert_true(json_equal(u, want));
    json_decref(u);
    json_decref(want);
    u = agent_usage_json(10, 5, 4);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"),
                                                        "cached_tokens")),
                     4);
    json_decref(u);
}

/* ---- Code Mode ------------------------------------------------------------------------------ */

/* A code-mode catalog: one server, two tools, only echo auto-executable. */
static mcp_tool_t cm_tools[] = {
    {.client = "everything",
     .name = "echo",
     .exposed = "everything-echo",
     .available = true,
     .executable = true,
     .auto_execute = true,
     .code_mode = true},
    {.client = "everything",
     .name = "get-env",
     .exposed = "everything-get-env",
     .available = true,
     .executable = true,
     .auto_execute = false,
     .code_mode = true},
};

static mcp_catalog_t cm_catalog = {.refcount = 1, .tools = cm_tools, .n_tools = 2};

/* An agent whose request got the four meta-tools and nothing else, as inject.c gives them. */
static int setup_codemode(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    f->tools.codemode = codemode_bindings_build(&cm_catalog, NULL);
    f->tools.meta_added = (1u << CODEMODE_META_COUNT) - 1;
    f->tools.n_added = CODEMODE_META_COUNT;
    f->tools.n_auto = CODEMODE_META_COUNT - 1;
    f->body = parse("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    agent_opts_t o = {
        .base = f->base, .request_id = "test-cm", .tools = &f->tools, .body = f->body};
    f->agent = agent_new(&o);
    assert_non_null(f->agent);
    *state = f;
    return 0;
}

static int teardown_codemode(void **state)
{
    fixture_t *f = *state;
    agent_free(f->agent);
    codemode_bindings_release(f->tools.codemode);
    json_decref(f->body);
    event_base_free(f->base);
    free(f);
    return 0;
}

/* The reading meta-tools are always gatehouse's; an executeToolCode without code too (it only
 * answers the mistake). Nothing needs the sandbox to decide. */
static void test_codemode_reading_tools_run_here(void **state)
{
    fixture_t *f = *state;
    json_t *m = assistant("[" CALL("l", "listToolFiles", "{}") "," CALL(
        "r", "readToolFile",
        "{\\\"fileName\\\":\\\"servers/everything.pyi\\\"}") "," CALL("x", "executeToolCode",
                                                                      "{}") "]");
    assert_false(agent_prepare(f->agent, m, on_done, f));
    assert_int_equal(agent_plan(f->agent, m), AGENT_RUN_ALL);

    agent_run(f->agent, m, on_done, f);
    assert_int_equal(f->done_calls, 0);
    event_base_loop(f->base, 0);
    assert_int_equal(f->done_calls, 1);
    json_t *conv = json_object_get(f->body, "messages");
    assert_int_equal(json_array_size(conv), 5);
    const char *list = json_string_value(json_object_get(json_array_get(conv, 2), "content"));
    const char *stub = json_string_value(json_object_get(json_array_get(conv, 3), "content"));
    const char *exec = json_string_value(json_object_get(json_array_get(conv, 4), "content"));
    assert_string_equal(list, "servers/\n  everything.pyi (2 tools)\nNext: readToolFile(fileName="
                              "\"servers/everything.pyi\") for the signatures, then "
                              "executeToolCode with a script that calls them.");
    assert_non_null(strstr(stub, "def get_env() -> Any:"));
    assert_string_equal(exec, "executeToolCode needs code: a Python script as a string.");
    json_decref(m);
}

/* A script whose analysis fails (here: no tool hub, so no sandbox) is the client's; the other
 * calls of the turn still run here. */
static void test_codemode_unanalysed_script_is_the_clients(void **state)
{
    fixture_t *f = *state;
    json_t *m = assistant("[" CALL("l", "listToolFiles", "{}") "," CALL(
        "x", "executeToolCode", "{\\\"code\\\":\\\"everything.echo(message=1)\\\"}") "]");
    assert_true(agent_prepare(f->agent, m, on_done, f));
    assert_int_equal(f->done_calls, 0); /* never from inside agent_prepare */
    event_base_loop(f->base, 0);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(agent_plan(f->agent, m), AGENT_RUN_SOME);

    json_t *resp = json_pack("{s:[{s:i, s:O, s:s}]}", "choices", "index", 0, "message", m,
                             "finish_reason", "tool_calls");
    agent_run(f->agent, m, on_done, f);
    event_base_loop(f->base, 0);
    agent_finish_json(f->agent, resp, AGENT_RUN_SOME);
    json_t *left = json_object_get(agent_response_message(resp), "tool_calls");
    assert_int_equal(json_array_size(left), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(left, 0), "id")), "x");
    json_decref(resp);
    json_decref(m);
}

/* A request that ends while a script is being analysed cancels the analysis. */
static void test_codemode_free_while_preparing(void **state)
{
    fixture_t *f = *state;
    json_t *m = assistant("[" CALL("x", "executeToolCode", "{\\\"code\\\":\\\"pass\\\"}") "]");
    assert_true(agent_prepare(f->agent, m, on_done, f));
    agent_free(f->agent);
    f->agent = NULL;
    event_base_loop(f->base, 0);
    assert_int_equal(f->done_calls, 0);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plan, setup, teardown),
        cmocka_unit_test(test_plan_only_visible_tools),
        cmocka_unit_test(test_no_agent),
        cmocka_unit_test_setup_teardown(test_round_without_hub, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_text_turn, setup, teardown),
        cmocka_unit_test(test_usage_json),
        cmocka_unit_test_setup_teardown(test_codemode_reading_tools_run_here, setup_codemode,
                                        teardown_codemode),
        cmocka_unit_test_setup_teardown(test_codemode_unanalysed_script_is_the_clients,
                                        setup_codemode, teardown_codemode),
        cmocka_unit_test_setup_teardown(test_codemode_free_while_preparing, setup_codemode,
                                        teardown_codemode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
