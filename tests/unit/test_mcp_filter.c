/*
 * test_mcp_filter.c - unit tests for the per-request tool filter (src/mcp/filter.c): the glob
 * matcher, comma-list parsing, the header spellings, how restrictions stack, and the names a
 * tool pattern is matched against. Pure functions: no loop, no server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "mcp/filter.h"

/* ---- glob ----------------------------------------------------------------------------------- */

static void test_glob_literals(void **state)
{
    assert_true(mcp_filter_glob("echo", "echo"));
    assert_false(mcp_filter_glob("echo", "echo2"));
    assert_false(mcp_filter_glob("echo2", "echo"));
    assert_false(mcp_filter_glob("Echo", "echo")); /* case-sensitive */
    assert_true(mcp_filter_glob("", ""));
    assert_false(mcp_filter_glob("", "x"));
    assert_false(mcp_filter_glob("x", ""));
}

static void test_glob_star(void **state)
{
    assert_true(mcp_filter_glob("*", ""));
    assert_true(mcp_filter_glob("*", "anything at all"));
    assert_true(mcp_filter_glob("everything-*", "everything-echo"));
    assert_true(mcp_filter_glob("everything-*", "everything-"));
    assert_false(mcp_filter_glob("everything-*", "everything"));
    assert_true(mcp_filter_glob("*-echo", "everything-echo"));
    assert_false(mcp_filter_glob("*-echo", "everything-echo2"));
    assert_true(mcp_filter_glob("read_*_file", "read_text_file"));
    assert_true(mcp_filter_glob("read_*_file", "read__file"));
    assert_false(mcp_filter_glob("read_*_file", "read_file"));
    /* backtracking: the first "ab" is not the one that must match */
    assert_true(mcp_filter_glob("*ab*ab", "xabyabzab"));
    assert_false(mcp_filter_glob("*ab*abc", "xabyabzab"));
    assert_true(mcp_filter_glob("**a**", "a"));
    assert_true(mcp_filter_glob("a*b*c*d", "aXbYcZd"));
    assert_false(mcp_filter_glob("a*b*c*d", "aXbYcZ"));
}

static void test_glob_question(void **state)
{
    assert_true(mcp_filter_glob("tool?", "tool1"));
    assert_false(mcp_filter_glob("tool?", "tool"));
    assert_false(mcp_filter_glob("tool?", "tool12"));
    assert_true(mcp_filter_glob("?*", "x"));
    assert_false(mcp_filter_glob("?*", ""));
}

static void test_list_allows(void **state)
{
    const char *const all[] = {"*", NULL};
    const char *const none[] = {NULL};
    const char *const some[] = {"read_file", "list_*", NULL};
    assert_true(mcp_filter_list_allows(all, "whatever"));
    assert_false(mcp_filter_list_allows(none, "whatever"));
    assert_false(mcp_filter_list_allows(NULL, "whatever"));
    assert_true(mcp_filter_list_allows(some, "read_file"));
    assert_true(mcp_filter_list_allows(some, "list_directory"));
    assert_false(mcp_filter_list_allows(some, "write_file"));
}

/* ---- building from headers ------------------------------------------------------------------ */

typedef struct headers {
    const char *names[8];
    const char *values[8];
} headers_t;

static const char *get_header(void *arg, const char *name)
{
    headers_t *h = arg;
    for (int i = 0; i < 8 && h->names[i] != NULL; i++) {
        if (strcmp(h->names[i], name) == 0)
            return h->values[i];
    }
    return NULL;
}

static void test_absent_headers_restrict_nothing(void **state)
{
    headers_t h = {{NULL}, {NULL}};
    mcp_filter_t f = MCP_FILTER_INIT;
    mcp_filter_from_headers(&f, get_header, &h);
    assert_true(mcp_filter_is_open(&f));
    assert_true(mcp_filter_allows(&f, "fs", "read_file", "fs-read_file"));
    assert_true(mcp_filter_allows_client(&f, "anything"));
    mcp_filter_free(&f);
}

static void test_empty_header_allows_nothing(void **state)
{
    headers_t h = {{MCP_FILTER_HEADER_CLIENTS}, {" , "}};
    mcp_filter_t f = MCP_FILTER_INIT;
    mcp_filter_from_headers(&f, get_header, &h);
    assert_false(mcp_filter_is_open(&f));
    assert_false(mcp_filter_allows_client(&f, "fs"));
    assert_false(mcp_filter_allows(&f, "fs", "read_file", "fs-read_file"));
    mcp_filter_free(&f);

    headers_t t = {{MCP_FILTER_HEADER_BF_TOOLS}, {""}};
    mcp_filter_from_headers(&f, get_header, &t);
    assert_true(mcp_filter_allows_client(&f, "fs")); /* only tools are restricted */
    assert_false(mcp_filter_allows(&f, "fs", "read_file", "fs-read_file"));
    mcp_filter_free(&f);
}

static void test_client_header(void **state)
{
    headers_t h = {{MCP_FILTER_HEADER_CLIENTS}, {" fs ,mem*,, "}};
    mcp_filter_t f = MCP_FILTER_INIT;
    mcp_filter_from_headers(&f, get_header, &h);
    assert_true(mcp_filter_allows_client(&f, "fs"));
    assert_true(mcp_filter_allows_client(&f, "memory"));
    assert_false(mcp_filter_allows_client(&f, "everything"));
    assert_false(mcp_filter_allows_client(&f, "fs2")); /* items are trimmed, not prefixes */
    assert_true(mcp_filter_allows(&f, "memory", "create_entities", "memory-create_entities"));
    assert_false(mcp_filter_allows(&f, "everything", "echo", "everything-echo"));
    mcp_filter_free(&f);
}

static void test_tool_names_matched(void **state)
{
    mcp_filter_t f = MCP_FILTER_INIT;

    /* the exposed name, even when it was shortened */
    mcp_filter_restrict_tools(&f, "srv-long_name_1a2b3c4d");
    assert_true(mcp_filter_allows(&f, "srv", "long.name", "srv-long_name_1a2b3c4d"));
    assert_false(mcp_filter_allows(&f, "srv", "other", "srv-other"));
    mcp_filter_free(&f);

    /* "<client>-<tool>" with the server's own name (not sanitized) */
    mcp_filter_restrict_tools(&f, "srv-long.name");
    assert_true(mcp_filter_allows(&f, "srv", "long.name", "srv-long_name"));
    mcp_filter_free(&f);

    /* "<client>/<tool>", Bifrost's older spelling */
    mcp_filter_restrict_tools(&f, "srv/long.name, fs/*");
    assert_true(mcp_filter_allows(&f, "srv", "long.name", "srv-long_name"));
    assert_true(mcp_filter_allows(&f, "fs", "read_file", "fs-read_file"));
    assert_false(mcp_filter_allows(&f, "srv", "other", "srv-other"));
    mcp_filter_free(&f);

    /* the bare tool name, in every client */
    mcp_filter_restrict_tools(&f, "read_*");
    assert_true(mcp_filter_allows(&f, "fs", "read_file", "fs-read_file"));
    assert_true(mcp_filter_allows(&f, "other", "read_graph", "other-read_graph"));
    assert_false(mcp_filter_allows(&f, "fs", "write_file", "fs-write_file"));
    mcp_filter_free(&f);

    /* a client-wide wildcard does not leak into another client */
    mcp_filter_restrict_tools(&f, "fs-*");
    assert_true(mcp_filter_allows(&f, "fs", "write_file", "fs-write_file"));
    assert_false(mcp_filter_allows(&f, "memory", "read_graph", "memory-read_graph"));
    mcp_filter_free(&f);
}

static void test_restrictions_stack(void **state)
{
    /* Both spellings sent: a tool must pass both lists. */
    headers_t h = {
        {MCP_FILTER_HEADER_TOOLS, MCP_FILTER_HEADER_BF_TOOLS, MCP_FILTER_HEADER_CLIENTS,
         MCP_FILTER_HEADER_BF_CLIENTS},
        {"fs-*,memory-*", "fs-read_*,everything-echo", "fs,memory,everything", "fs,everything"}};
    mcp_filter_t f = MCP_FILTER_INIT;
    mcp_filter_from_headers(&f, get_header, &h);
    assert_int_equal(f.n_tools, 2);
    assert_int_equal(f.n_clients, 2);
    assert_true(mcp_filter_allows(&f, "fs", "read_file", "fs-read_file"));
    assert_false(mcp_filter_allows(&f, "fs", "write_file", "fs-write_file"));
    assert_false(mcp_filter_allows(&f, "memory", "read_graph", "memory-read_graph"));
    /* allowed by the second tools list and both client lists, but not the first tools list */
    assert_false(mcp_filter_allows(&f, "everything", "echo", "everything-echo"));
    assert_true(mcp_filter_allows_client(&f, "everything"));
    assert_false(mcp_filter_allows_client(&f, "memory"));
    mcp_filter_free(&f);
}

static void test_virtual_key_extension_point(void **state)
{
    mcp_filter_t f = MCP_FILTER_INIT;
    assert_int_equal(mcp_filter_restrict_tools(&f, NULL), 0); /* absent: nothing added */
    assert_true(mcp_filter_is_open(&f));
    for (int i = 0; i < MCP_FILTER_MAX_RESTRICTIONS; i++)
        assert_int_equal(mcp_filter_restrict_clients(&f, "*"), 0);
    assert_int_equal(mcp_filter_restrict_clients(&f, "x"), -1);
    assert_int_equal(f.n_clients, MCP_FILTER_MAX_RESTRICTIONS);
    assert_true(mcp_filter_allows_client(&f, "x")); /* the refused "x" list was not added */
    mcp_filter_free(&f);
    assert_true(mcp_filter_is_open(&f));
}

static void test_catalog_tool(void **state)
{
    mcp_tool_t t = {.client = "fs",
                    .name = "read_file",
                    .exposed = "fs-read_file",
                    .available = true,
                    .executable = true};
    mcp_filter_t f = MCP_FILTER_INIT;
    assert_true(mcp_filter_allows_tool(&f, &t));
    t.executable = false;
    assert_false(mcp_filter_allows_tool(&f, &t));
    t.executable = true;
    mcp_filter_restrict_clients(&f, "memory");
    assert_false(mcp_filter_allows_tool(&f, &t));
    mcp_filter_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_literals),
        cmocka_unit_test(test_glob_star),
        cmocka_unit_test(test_glob_question),
        cmocka_unit_test(test_list_allows),
        cmocka_unit_test(test_absent_headers_restrict_nothing),
        cmocka_unit_test(test_empty_header_allows_nothing),
        cmocka_unit_test(test_client_header),
        cmocka_unit_test(test_tool_names_matched),
        cmocka_unit_test(test_restrictions_stack),
        cmocka_unit_test(test_virtual_key_extension_point),
        cmocka_unit_test(test_catalog_tool),
    };
    return cmocka_run_group_tests_name("mcp_filter", tests, NULL, NULL);
}
