/*
 * test_codemode_metatools.c - unit tests for Code Mode's meta-tools (src/codemode/metatools.c):
 * their definitions, the answers of listToolFiles, readToolFile and getToolDocs over the real
 * catalogs of tests/fixtures/codemode/ (and their errors), and the asynchronous call entry:
 * answers come from the loop, never from inside the call, and a cancelled call never answers.
 * executeToolCode itself is tested end to end (tests/e2e/codemode.test.mjs), with the sandbox.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codemode/metatools.h"
#include "mcp/hub_internal.h"
#include "util/buf.h"

#define FIXTURES "tests/fixtures/codemode/"

static const char *const servers[] = {"everything", "filesystem", "memory"};

/* ---- fixtures ------------------------------------------------------------------------------- */

static codemode_bindings_t *fixture_bindings(void)
{
    static const char *const all[] = {"*", NULL};
    hub_catalog_src_t src[3];
    json_t *docs[3];
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, FIXTURES "%s.tools.json", servers[i]);
        docs[i] = json_load_file(path, 0, NULL);
        assert_non_null(docs[i]);
        src[i] = (hub_catalog_src_t){.name = servers[i],
                                     .state = MCP_STATE_READY,
                                     .tools_to_execute = all,
                                     .tools_to_auto_execute = all,
                                     .code_mode = true,
                                     .tools = json_object_get(docs[i], "tools")};
    }
    mcp_catalog_t *cat = hub_catalog_build(src, 3, 1);
    for (size_t i = 0; i < 3; i++)
        json_decref(docs[i]);
    codemode_bindings_t *b = codemode_bindings_build(cat, NULL);
    mcp_catalog_release(cat);
    return b;
}

static char *golden(const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, FIXTURES "golden/%s", rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot read %s", path);
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_release(&b);
}

/* The answer of kind with args given as JSON text (NULL = none). */
static char *ask(const codemode_bindings_t *b, codemode_binding_level_t level, codemode_meta_t kind,
                 const char *args_text, bool *is_error)
{
    json_t *args = args_text != NULL ? json_loads(args_text, 0, NULL) : NULL;
    if (args_text != NULL && args == NULL)
        fail_msg("bad test JSON: %s", args_text);
    char *text = codemode_meta_answer(kind, b, level, args, is_error);
    json_decref(args);
    return text;
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("expected to find [%s] in:\n%s", part, text);
}

/* ---- names and definitions ------------------------------------------------------------------ */

static void test_names(void **state)
{
    assert_int_equal(codemode_meta_kind("listToolFiles"), CODEMODE_META_LIST);
    assert_int_equal(codemode_meta_kind("readToolFile"), CODEMODE_META_READ);
    assert_int_equal(codemode_meta_kind("getToolDocs"), CODEMODE_META_DOCS);
    assert_int_equal(codemode_meta_kind("executeToolCode"), CODEMODE_META_EXECUTE);
    assert_int_equal(codemode_meta_kind("executetoolcode"), CODEMODE_META_NONE);
    assert_int_equal(codemode_meta_kind(NULL), CODEMODE_META_NONE);
    assert_string_equal(codemode_meta_name(CODEMODE_META_DOCS), "getToolDocs");
}

static void test_openai_definitions(void **state)
{
    json_t *tools = codemode_meta_openai_tools();
    assert_int_equal(json_array_size(tools), 4);
    static const char *const required[4] = {NULL, "fileName", "server", "code"};
    for (size_t i = 0; i < 4; i++) {
        json_t *t = json_array_get(tools, i);
        json_t *fn = json_object_get(t, "function");
        assert_string_equal(json_string_value(json_object_get(t, "type")), "function");
        assert_string_equal(json_string_value(json_object_get(fn, "name")),
                            codemode_meta_name((codemode_meta_t)i));
        json_t *params = json_object_get(fn, "parameters");
        assert_string_equal(json_string_value(json_object_get(params, "type")), "object");
        json_t *req = json_object_get(params, "required");
        if (required[i] == NULL)
            assert_null(req);
        else
            assert_string_equal(json_string_value(json_array_get(req, 0)), required[i]);
        assert_true(strlen(json_string_value(json_object_get(fn, "description"))) > 100);
    }
    /* the workflow, the call convention, the modules, no files or network */
    const char *list = json_string_value(
        json_object_get(json_object_get(json_array_get(tools, 0), "function"), "description"));
    assert_contains(list, "listToolFiles()");
    assert_contains(list, "readToolFile(fileName)");
    assert_contains(list, "executeToolCode(code)");
    const char *exec = json_string_value(
        json_object_get(json_object_get(json_array_get(tools, 3), "function"), "description"));
    assert_contains(exec, "result = everything.echo(message=\"hi\")");
    assert_contains(exec, "synchronous");
    assert_contains(exec, "ToolError");
    assert_contains(exec, "json, keyword, math");
    assert_contains(exec, "no files, no network");
    json_decref(tools);

    json_t *mcp = codemode_meta_mcp_tools();
    assert_int_equal(json_array_size(mcp), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(mcp, 1), "name")),
                        "readToolFile");
    assert_non_null(json_object_get(json_array_get(mcp, 1), "inputSchema"));
    json_decref(mcp);
}

/* ---- listToolFiles -------------------------------------------------------------------------- */

static void test_list_server_level(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    bool err = true;
    char *text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_LIST, NULL, &err);
    assert_false(err);
    assert_string_equal(text, "servers/\n"
                              "  everything.pyi (13 tools)\n"
                              "  filesystem.pyi (14 tools)\n"
                              "  memory.pyi (9 tools)\n"
                              "Next: readToolFile(fileName=\"servers/everything.pyi\") for the "
                              "signatures, then executeToolCode with a script that calls them.");
    free(text);
    codemode_bindings_release(b);
}

static void test_list_tool_level(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    bool err = true;
    char *text = ask(b, CODEMODE_BINDING_TOOL, CODEMODE_META_LIST, "{}", &err);
    assert_false(err);
    assert_contains(text, "servers/\n  everything/\n    echo.pyi\n    get_annotated_message.pyi\n");
    assert_contains(text, "    trigger_long_running_operation.pyi\n  filesystem/\n");
    assert_contains(text, "  memory/\n    add_observations.pyi\n");
    assert_contains(text, "readToolFile(fileName=\"servers/everything/echo.pyi\")");
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1 + 3 + 36); /* servers/, three folders, 36 files */
    free(text);
    codemode_bindings_release(b);
}

static void test_list_empty(void **state)
{
    mcp_catalog_t cat = {.refcount = 1};
    codemode_bindings_t *b = codemode_bindings_build(&cat, NULL);
    bool err = true;
    char *text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_LIST, NULL, &err);
    assert_false(err);
    assert_contains(text, "No Code Mode tools");
    free(text);
    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ, "{\"fileName\":\"x\"}", &err);
    assert_true(err);
    free(text);
    codemode_bindings_release(b);
}

/* ---- readToolFile --------------------------------------------------------------------------- */

static void test_read_whole_file(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    char *want_body = golden("server/memory.pyi");
    size_t lines = 0;
    for (const char *p = want_body; *p; p++)
        lines += *p == '\n';
    char want[8192];
    snprintf(want, sizeof want, "# servers/memory.pyi: %zu lines\n%s", lines, want_body);

    /* the exact name, and the forms a model may use */
    static const char *const names[] = {
        "servers/memory.pyi", "memory.pyi",          "memory",
        "servers/memory",     "/servers/memory.pyi", "./servers/memory.pyi",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char args[128];
        snprintf(args, sizeof args, "{\"fileName\":\"%s\"}", names[i]);
        bool err = true;
        char *text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ, args, &err);
        assert_false(err);
        assert_string_equal(text, want);
        free(text);
    }
    free(want_body);
    codemode_bindings_release(b);
}

static void test_read_tool_level_file(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    char *want_body = golden("tool/everything/get_sum.pyi");
    bool err = true;
    char *text = ask(b, CODEMODE_BINDING_TOOL, CODEMODE_META_READ,
                     "{\"fileName\":\"servers/everything/get_sum.pyi\"}", &err);
    assert_false(err);
    char want[1024];
    snprintf(want, sizeof want, "# servers/everything/get_sum.pyi: 5 lines\n%s", want_body);
    assert_string_equal(text, want);
    free(text);
    free(want_body);
    codemode_bindings_release(b);
}

static void test_read_line_ranges(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    bool err = true;
    char *text =
        ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ,
            "{\"fileName\":\"servers/everything.pyi\",\"startLine\":5,\"endLine\":6}", &err);
    assert_false(err);
    assert_string_equal(text, "# servers/everything.pyi: 42 lines, showing 5-6\n"
                              "def echo(*, message: str) -> Any:\n"
                              "    \"\"\"Echoes back the input string\"\"\"\n");
    free(text);

    /* only a start; numbers as strings or reals; an end past the last line */
    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ,
               "{\"fileName\":\"servers/everything.pyi\",\"startLine\":\"41\",\"endLine\":99.0}",
               &err);
    assert_false(err);
    assert_string_equal(text, "# servers/everything.pyi: 42 lines, showing 41-42\n"
                              "def trigger_long_running_operation(*, duration: float = None, "
                              "steps: float = None) -> Any:\n"
                              "    \"\"\"Demonstrates a long running operation with progress "
                              "updates.\"\"\"\n");
    free(text);

    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ,
               "{\"fileName\":\"servers/everything.pyi\",\"startLine\":43}", &err);
    assert_true(err);
    assert_string_equal(text, "No lines 43-42: servers/everything.pyi has 42 lines.");
    free(text);

    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ,
               "{\"fileName\":\"servers/everything.pyi\",\"startLine\":0}", &err);
    assert_true(err);
    assert_contains(text, "must be line numbers from 1");
    free(text);

    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ,
               "{\"fileName\":\"servers/everything.pyi\",\"startLine\":9,\"endLine\":3}", &err);
    assert_true(err);
    free(text);
    codemode_bindings_release(b);
}

static void test_read_errors_list_valid_names(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    static const char names[] =
        " The files are: servers/everything.pyi, servers/filesystem.pyi, servers/memory.pyi.";
    bool err = false;
    char *text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ,
                     "{\"fileName\":\"servers/github.pyi\"}", &err);
    assert_true(err);
    assert_string_equal(text, "No such file: servers/github.pyi. The files are: "
                              "servers/everything.pyi, servers/filesystem.pyi, "
                              "servers/memory.pyi.");
    free(text);

    err = false;
    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ,
               "{\"fileName\":\"servers/../../etc/passwd\"}", &err);
    assert_true(err);
    assert_contains(text, "fileName may not contain \"..\": servers/../../etc/passwd.");
    assert_contains(text, names);
    free(text);

    err = false;
    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_READ, "{}", &err);
    assert_true(err);
    assert_contains(text, "readToolFile needs fileName");
    assert_contains(text, names);
    free(text);

    /* at tool level, a server file is not a file */
    err = false;
    text = ask(b, CODEMODE_BINDING_TOOL, CODEMODE_META_READ,
               "{\"fileName\":\"servers/memory.pyi\"}", &err);
    assert_true(err);
    assert_contains(text, "servers/memory/read_graph.pyi");
    free(text);
    codemode_bindings_release(b);
}

/* ---- getToolDocs ---------------------------------------------------------------------------- */

static void test_docs_simple(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    bool err = true;
    char *text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_DOCS,
                     "{\"server\":\"everything\",\"tool\":\"get-sum\"}", &err);
    assert_false(err);
    assert_string_equal(text, "everything.get_sum: tool \"get-sum\" of MCP server \"everything\"\n"
                              "Title: Get Sum Tool\n"
                              "Returns the sum of two numbers\n"
                              "\n"
                              "Parameters (keyword arguments):\n"
                              "  a: float, required - First number\n"
                              "  b: float, required - Second number\n"
                              "Returns: no output schema; the call returns the tool's structured "
                              "content, else its text parsed as JSON, else the text.\n"
                              "Example:\n"
                              "  result = everything.get_sum(a=1.0, b=1.0)\n");
    free(text);

    /* the Python name works as well as the MCP name */
    char *again = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_DOCS,
                      "{\"server\":\"everything\",\"tool\":\"get_sum\"}", &err);
    assert_false(err);
    assert_contains(again, "everything.get_sum(a=1.0, b=1.0)");
    free(again);
    codemode_bindings_release(b);
}

static void test_docs_enums_defaults_output(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    bool err = true;
    char *text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_DOCS,
                     "{\"server\":\"everything\",\"tool\":\"get-structured-content\"}", &err);
    assert_false(err);
    assert_contains(text, "Title: Get Structured Content Tool\n");
    assert_contains(text, "  location: Literal[\"New York\", \"Chicago\", \"Los Angeles\"], "
                          "required - Choose city\n");
    assert_contains(text, "Returns dict, its structured content, with this output schema:\n  "
                          "{\"type\":\"object\",\"properties\":{\"temperature\":");
    assert_null(strstr(text, "$schema"));
    assert_contains(text, "  result = everything.get_structured_content(location=\"New York\")\n");
    free(text);

    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_DOCS,
               "{\"server\":\"everything\",\"tool\":\"get-annotated-message\"}", &err);
    assert_contains(text, "  includeImage: bool, optional - Whether to include an example image "
                          "(default: false)\n");
    free(text);

    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_DOCS,
               "{\"server\":\"memory\",\"tool\":\"create_entities\"}", &err);
    assert_contains(text, "  entities: list[dict], required\n");
    assert_contains(text, "  result = memory.create_entities(entities=[])\n");
    free(text);
    codemode_bindings_release(b);
}

static void test_docs_errors(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    bool err = false;
    char *text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_DOCS,
                     "{\"server\":\"github\",\"tool\":\"x\"}", &err);
    assert_true(err);
    assert_string_equal(text,
                        "No server named github. The servers are: everything, filesystem, memory.");
    free(text);

    err = false;
    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_DOCS,
               "{\"server\":\"memory\",\"tool\":\"nope\"}", &err);
    assert_true(err);
    assert_string_equal(text, "No tool named nope. The tools of memory are: add_observations, "
                              "create_entities, create_relations, delete_entities, "
                              "delete_observations, delete_relations, open_nodes, read_graph, "
                              "search_nodes.");
    free(text);

    err = false;
    text = ask(b, CODEMODE_BINDING_SERVER, CODEMODE_META_DOCS, "{\"server\":\"memory\"}", &err);
    assert_true(err);
    assert_contains(text, "getToolDocs needs server and tool.");
    free(text);
    codemode_bindings_release(b);
}

/* ---- the asynchronous entry ----------------------------------------------------------------- */

typedef struct answer {
    int calls;
    char text[512];
    bool is_error;
} answer_t;

static void on_answer(void *arg, const char *text, bool is_error)
{
    answer_t *a = arg;
    a->calls++;
    snprintf(a->text, sizeof a->text, "%s", text);
    a->is_error = is_error;
}

static void test_call_answers_from_the_loop(void **state)
{
    struct event_base *base = event_base_new();
    codemode_bindings_t *b = fixture_bindings();
    codemode_meta_opts_t o = {.bindings = b, .level = CODEMODE_BINDING_SERVER};
    answer_t a = {0};

    json_t *args = json_pack("{s:s}", "fileName", "servers/memory.pyi");
    codemode_meta_call(base, CODEMODE_META_READ, args, &o, on_answer, &a);
    json_decref(args);
    assert_int_equal(a.calls, 0); /* never from inside the call */
    event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(a.calls, 1);
    assert_false(a.is_error);
    assert_contains(a.text, "# servers/memory.pyi: ");

    answer_t bad = {0};
    codemode_meta_call(base, CODEMODE_META_NONE, NULL, &o, on_answer, &bad);
    answer_t nocode = {0};
    args = json_pack("{s:s}", "code", "  \n");
    codemode_meta_call(base, CODEMODE_META_EXECUTE, args, &o, on_answer, &nocode);
    json_decref(args);
    event_base_dispatch(base);
    assert_int_equal(bad.calls, 1);
    assert_true(bad.is_error);
    assert_contains(bad.text, "Unknown Code Mode tool");
    assert_int_equal(nocode.calls, 1);
    assert_true(nocode.is_error);
    assert_string_equal(nocode.text, "executeToolCode needs code: a Python script as a string.");

    codemode_bindings_release(b);
    event_base_free(base);
}

static void test_call_cancelled_never_answers(void **state)
{
    struct event_base *base = event_base_new();
    codemode_bindings_t *b = fixture_bindings();
    codemode_meta_opts_t o = {.bindings = b, .level = CODEMODE_BINDING_TOOL};
    answer_t a = {0};
    codemode_meta_call_t *c = codemode_meta_call(base, CODEMODE_META_LIST, NULL, &o, on_answer, &a);
    codemode_meta_cancel(c);
    codemode_meta_cancel(NULL);
    event_base_dispatch(base);
    assert_int_equal(a.calls, 0);
    codemode_bindings_release(b);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_openai_definitions),
        cmocka_unit_test(test_list_server_level),
        cmocka_unit_test(test_list_tool_level),
        cmocka_unit_test(test_list_empty),
        cmocka_unit_test(test_read_whole_file),
        cmocka_unit_test(test_read_tool_level_file),
        cmocka_unit_test(test_read_line_ranges),
        cmocka_unit_test(test_read_errors_list_valid_names),
        cmocka_unit_test(test_docs_simple),
        cmocka_unit_test(test_docs_enums_defaults_output),
        cmocka_unit_test(test_docs_errors),
        cmocka_unit_test(test_call_answers_from_the_loop),
        cmocka_unit_test(test_call_cancelled_never_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
