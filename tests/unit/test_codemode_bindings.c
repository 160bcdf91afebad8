/*
 * test_codemode_bindings.c - unit tests for Code Mode's Python names (src/codemode/bindings.c):
 * the identifier mapping, collisions within a scope, which catalog tools are bound, grouping
 * and order, lookups by Python and MCP names, and the catalog reference the bindings hold.
 * A hand-made catalog; no hub, no sandbox.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "codemode/bindings.h"

/* ---- identifiers ---------------------------------------------------------------------------- */

static void assert_ident(const char *name, const char *want)
{
    char *got = codemode_py_ident(name);
    assert_string_equal(got, want);
    free(got);
}

static void test_ident_mapping(void **state)
{
    assert_ident("echo", "echo");
    assert_ident("my-server", "my_server");
    assert_ident("get.tiny image", "get_tiny_image");
    assert_ident("a/b:c", "a_b_c");
    assert_ident("2fa", "_2fa");
    assert_ident("9", "_9");
    assert_ident("", "_");
    assert_ident("-", "_");
    assert_ident("_private", "_private");
    assert_ident("CamelCase42", "CamelCase42");
    /* one '_' per UTF-8 character, not per byte */
    assert_ident("caf\xc3\xa9", "caf_");
    assert_ident("\xe2\x82\xac-price", "__price");
}

static void test_ident_keywords(void **state)
{
    assert_ident("import", "import_");
    assert_ident("class", "class_");
    assert_ident("None", "None_");
    assert_ident("lambda", "lambda_");
    assert_ident("async", "async_");
    /* names the sandbox defines for the script itself */
    assert_ident("result", "result_");
    assert_ident("ToolError", "ToolError_");
    /* a mapped name that becomes a keyword is suffixed too */
    assert_ident("i-f", "i_f");
    assert_ident("if", "if_");
    /* soft keywords and builtins are valid identifiers */
    assert_ident("match", "match");
    assert_ident("type", "type");
    assert_ident("print", "print");
    assert_true(codemode_py_is_keyword("while"));
    assert_false(codemode_py_is_keyword("While"));
    assert_false(codemode_py_is_keyword("match"));
}

/* ---- a catalog, sorted by exposed name as the hub sorts it ---------------------------------- */

#define TOOL(c, n, e, cm, av, ex, au)                                                              \
    {                                                                                              \
        .client = c, .name = n, .exposed = e, .code_mode = cm, .available = av, .executable = ex,  \
        .auto_execute = au                                                                         \
    }

static mcp_tool_t tools[] = {
    TOOL("2nd", "x", "2nd-x", true, true, true, false),
    TOOL("classic", "echo", "classic-echo", false, true, true, true),
    TOOL("down", "ping", "down-ping", true, false, true, true),
    TOOL("everything", "echo", "everything-echo", true, true, true, true),
    TOOL("everything", "get-sum", "everything-get-sum", true, true, true, false),
    TOOL("everything", "get_sum", "everything-get_sum", true, true, true, false),
    TOOL("everything", "get.sum", "everything-get_sum_1a2b3c4d", true, true, true, false),
    TOOL("everything", "import", "everything-import", true, true, true, false),
    TOOL("everything", "noexec", "everything-noexec", true, true, false, false),
    TOOL("my-server", "read", "my-server-read", true, true, true, true),
    TOOL("my_server", "write", "my_server-write", true, true, true, false),
};

static mcp_catalog_t catalog = {.refcount = 1, .tools = tools, .n_tools = 11};

static void test_build_selects_and_groups(void **state)
{
    codemode_bindings_t *b = codemode_bindings_build(&catalog, NULL);

    /* classic (not code mode), down (unavailable) and noexec (not executable) are left out */
    assert_int_equal(codemode_bindings_count(b), 4);
    assert_int_equal(codemode_bindings_tool_count(b), 8);

    const codemode_server_binding_t *s = codemode_bindings_server(b, 0);
    assert_string_equal(s->client, "2nd");
    assert_string_equal(s->py, "_2nd");

    s = codemode_bindings_server(b, 1);
    assert_string_equal(s->client, "everything");
    assert_string_equal(s->py, "everything");
    assert_int_equal(s->n_tools, 5);
    /* sorted by MCP name: "echo" < "get-sum" < "get.sum" < "get_sum" < "import" */
    assert_string_equal(s->tools[0].tool, "echo");
    assert_string_equal(s->tools[0].py, "echo");
    assert_ptr_equal(s->tools[0].t, &tools[3]);
    assert_string_equal(s->tools[1].tool, "get-sum");
    assert_string_equal(s->tools[2].tool, "get.sum");
    assert_string_equal(s->tools[3].tool, "get_sum");
    /* the clean "get_sum" keeps its name; the mapped ones take numbers in sorted order */
    assert_string_equal(s->tools[3].py, "get_sum");
    assert_string_equal(s->tools[1].py, "get_sum_2");
    assert_string_equal(s->tools[2].py, "get_sum_3");
    assert_string_equal(s->tools[4].py, "import_");

    /* server scope: "my-server" and "my_server" */
    assert_string_equal(codemode_bindings_server(b, 2)->client, "my-server");
    assert_string_equal(codemode_bindings_server(b, 2)->py, "my_server_2");
    assert_string_equal(codemode_bindings_server(b, 3)->client, "my_server");
    assert_string_equal(codemode_bindings_server(b, 3)->py, "my_server");
    assert_null(codemode_bindings_server(b, 4));

    codemode_bindings_release(b);
}

/* A numbered form that a real name already holds is skipped. */
static void test_collision_skips_taken_numbers(void **state)
{
    mcp_tool_t t[] = {
        TOOL("s", "a-b", "s-a-b", true, true, true, false),
        TOOL("s", "a.b", "s-a_b_x", true, true, true, false),
        TOOL("s", "a_b_2", "s-a_b_2", true, true, true, false),
    };
    mcp_catalog_t cat = {.refcount = 1, .tools = t, .n_tools = 3};
    codemode_bindings_t *b = codemode_bindings_build(&cat, NULL);
    const codemode_server_binding_t *s = codemode_bindings_server(b, 0);

    assert_string_equal(s->tools[0].py, "a_b");
    assert_string_equal(s->tools[1].py, "a_b_3");
    assert_string_equal(s->tools[2].py, "a_b_2");
    codemode_bindings_release(b);
}

static void test_build_applies_filter(void **state)
{
    mcp_filter_t f = MCP_FILTER_INIT;
    mcp_filter_restrict_clients(&f, "everything, my-server");
    mcp_filter_restrict_tools(&f, "everything-echo, my-server-*, get-sum");
    codemode_bindings_t *b = codemode_bindings_build(&catalog, &f);

    assert_int_equal(codemode_bindings_count(b), 2);
    const codemode_server_binding_t *s = codemode_bindings_server(b, 0);
    assert_string_equal(s->client, "everything");
    assert_int_equal(s->n_tools, 2);
    assert_string_equal(s->tools[0].tool, "echo");
    assert_string_equal(s->tools[1].tool, "get-sum");
    /* alone in its scope now: no number needed */
    assert_string_equal(s->tools[1].py, "get_sum");
    assert_string_equal(codemode_bindings_server(b, 1)->py, "my_server");

    codemode_bindings_release(b);
    mcp_filter_free(&f);
}

static void test_build_empty(void **state)
{
    mcp_filter_t f = MCP_FILTER_INIT;
    mcp_filter_restrict_clients(&f, "");
    codemode_bindings_t *b = codemode_bindings_build(&catalog, &f);

    assert_non_null(b);
    assert_int_equal(codemode_bindings_count(b), 0);
    assert_int_equal(codemode_bindings_tool_count(b), 0);
    assert_null(codemode_bindings_find(b, "everything", "echo", NULL));
    codemode_bindings_release(b);
    mcp_filter_free(&f);
}

static void test_find(void **state)
{
    codemode_bindings_t *b = codemode_bindings_build(&catalog, NULL);
    const codemode_server_binding_t *s = NULL;

    const codemode_tool_binding_t *t = codemode_bindings_find(b, "my_server_2", "read", &s);
    assert_non_null(t);
    assert_string_equal(t->tool, "read");
    assert_string_equal(s->client, "my-server");
    assert_ptr_equal(t->t, &tools[9]);

    t = codemode_bindings_find(b, "everything", "get_sum_2", &s);
    assert_non_null(t);
    assert_string_equal(t->tool, "get-sum");

    assert_null(codemode_bindings_find(b, "everything", "get-sum", NULL)); /* MCP, not Python */
    assert_null(codemode_bindings_find(b, "everything", "noexec", NULL));
    assert_null(codemode_bindings_find(b, "classic", "echo", NULL));
    assert_null(codemode_bindings_find(b, "nope", "echo", NULL));

    t = codemode_bindings_find_mcp(b, "everything", "get.sum", &s);
    assert_non_null(t);
    assert_string_equal(t->py, "get_sum_3");
    assert_null(codemode_bindings_find_mcp(b, "everything", "get_sum_3", NULL));

    assert_string_equal(codemode_bindings_find_server(b, "my_server_2")->client, "my-server");
    assert_string_equal(codemode_bindings_find_server(b, "my-server")->client, "my-server");
    assert_string_equal(codemode_bindings_find_server(b, "my_server")->client, "my_server");
    assert_null(codemode_bindings_find_server(b, "classic"));
    codemode_bindings_release(b);
}

/* The bindings hold a catalog reference until their last reference goes. */
static void test_refcounts(void **state)
{
    mcp_catalog_t cat = {.refcount = 1, .tools = tools, .n_tools = 11};
    codemode_bindings_t *b = codemode_bindings_build(&cat, NULL);

    assert_int_equal(cat.refcount, 2);
    assert_ptr_equal(codemode_bindings_ref(b), b);
    codemode_bindings_release(b);
    assert_int_equal(cat.refcount, 2);
    codemode_bindings_release(b);
    assert_int_equal(cat.refcount, 1);
    codemode_bindings_release(NULL);
}

/* Requests without a filter share one build per catalog; a filter, or a newer catalog, does
 * not reuse it. */
static void test_shared(void **state)
{
    mcp_catalog_t one = {.refcount = 1, .version = 1, .tools = tools, .n_tools = 11};
    mcp_catalog_t two = {.refcount = 1, .version = 2, .tools = tools, .n_tools = 11};
    mcp_filter_t open = MCP_FILTER_INIT;
    mcp_filter_t narrow = MCP_FILTER_INIT;
    mcp_filter_restrict_clients(&narrow, "everything");

    codemode_bindings_t *a = codemode_bindings_get(&one, NULL);
    codemode_bindings_t *b = codemode_bindings_get(&one, &open);
    assert_ptr_equal(a, b);
    codemode_bindings_t *c = codemode_bindings_get(&one, &narrow);
    assert_ptr_not_equal(a, c);
    assert_int_equal(codemode_bindings_count(c), 1);
    codemode_bindings_t *d = codemode_bindings_get(&two, NULL);
    assert_ptr_not_equal(a, d);
    assert_int_equal(two.refcount, 2); /* ours, and d's, which is the shared one */
    assert_int_equal(one.refcount, 3); /* ours, a (= b) and c; the shared one moved to two */

    codemode_bindings_release(a);
    codemode_bindings_release(b);
    codemode_bindings_release(c);
    codemode_bindings_release(d);
    assert_int_equal(one.refcount, 1);
    assert_int_equal(two.refcount, 2); /* still shared */
    codemode_bindings_cache_clear();
    assert_int_equal(two.refcount, 1);
    codemode_bindings_cache_clear();
    mcp_filter_free(&narrow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ident_mapping),
        cmocka_unit_test(test_ident_keywords),
        cmocka_unit_test(test_build_selects_and_groups),
        cmocka_unit_test(test_collision_skips_taken_numbers),
        cmocka_unit_test(test_build_applies_filter),
        cmocka_unit_test(test_build_empty),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_refcounts),
        cmocka_unit_test(test_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
