/*
 * test_config_mcp.c - unit tests for the "mcp" section of config.json (src/config/mcp.c).
 *
 * Documents are inline JSON strings loaded with config_load_json. Problems are compared as
 * one string per kind ("path: message\n" per problem, in report order) or looked up by path,
 * so a failure prints what was really reported. Secrets are put in the environment under
 * GH_TEST_MCP_* names; no message may contain them.
 *
 * config_free does not free the MCP fields yet (config.c belongs to another part of the
 * tree), so every loaded snapshot goes through config_mcp_free before its release.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"
#include "util/buf.h"

#define HEADER_SECRET "Bearer hdr-secret-0123456789"
#define TOKEN_SECRET "mcp-token-secret-abcdefgh"
#define URL_VALUE "https://mcp.example.com/mcp"

/* ---- helpers --------------------------------------------------------------------------------- */

typedef struct loaded {
    config_t *cfg;
    config_report_t report;
} loaded_t;

static loaded_t load(const char *text)
{
    loaded_t l;
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (root == NULL)
        fail_msg("bad test JSON: %s (line %d)", jerr.text, jerr.line);
    config_report_init(&l.report);
    l.cfg = config_load_json(root, "test", &l.report);
    json_decref(root);
    for (size_t i = 0; i < l.report.count; i++) {
        const char *m = l.report.items[i].message;
        assert_null(strstr(m, "hdr-secret"));
        assert_null(strstr(m, TOKEN_SECRET));
        assert_null(strstr(m, "mcp.example.com"));
    }
    return l;
}

static void unload(loaded_t *l)
{
    if (l->cfg != NULL) {
        config_mcp_free(l->cfg);
        config_mcp_free(l->cfg); /* twice: harmless */
        config_release(l->cfg);
    }
    config_report_free(&l->report);
}

/* The problems of one kind under "mcp", "path: message" per line. */
static char *problems(const loaded_t *l, bool errors)
{
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < l->report.count; i++) {
        const config_problem_t *p = &l->report.items[i];
        if (p->is_error == errors && strncmp(p->path, "mcp", 3) == 0)
            buf_appendf(&b, "%s: %s\n", p->path, p->message);
    }
    return buf_release(&b);
}

/* True when a problem of that kind names path and its message contains want. */
static bool has_problem(const loaded_t *l, bool error, const char *path, const char *want)
{
    for (size_t i = 0; i < l->report.count; i++) {
        const config_problem_t *p = &l->report.items[i];
        if (p->is_error == error && strcmp(p->path, path) == 0 && strstr(p->message, want))
            return true;
    }
    return false;
}

#define ASSERT_PROBLEM(l, error, path, want)                                                       \
    do {                                                                                           \
        if (!has_problem(l, error, path, want)) {                                                  \
            char *all = problems(l, error);                                                        \
            fail_msg("no %s at %s containing \"%s\"; got:\n%s", (error) ? "error" : "warning",     \
                     path, want, all);                                                             \
        }                                                                                          \
    } while (0)

static size_t count(char **v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

/* tool_manager_config.code_mode_limits: values kept, 0 (the default) when absent, bounds and
 * types reported with their paths, unknown fields warned about. */
static void test_code_mode_limits(void **state)
{
    loaded_t l = load("{\"mcp\": {\"tool_manager_config\": {\"code_mode_limits\":"
                      " {\"wall_ms\": 5000, \"cpu_s\": 3, \"memory_mb\": 128,"
                      "  \"output_bytes\": 65536, \"max_concurrent\": 4}}}}");
    assert_non_null(l.cfg);
    assert_int_equal(l.cfg->mcp_code_mode_wall_ms, 5000);
    assert_int_equal(l.cfg->mcp_code_mode_cpu_s, 3);
    assert_int_equal(l.cfg->mcp_code_mode_memory_mb, 128);
    assert_int_equal(l.cfg->mcp_code_mode_output_bytes, 65536);
    assert_int_equal(l.cfg->mcp_code_mode_max_concurrent, 4);
    unload(&l);

    l = load("{\"mcp\": {\"tool_manager_config\": {\"code_mode_limits\": {\"cpu_s\": 2}}}}");
    assert_non_null(l.cfg);
    assert_int_equal(l.cfg->mcp_code_mode_cpu_s, 2);
    assert_int_equal(l.cfg->mcp_code_mode_wall_ms, 0);
    assert_int_equal(l.cfg->mcp_code_mode_memory_mb, 0);
    assert_int_equal(l.cfg->mcp_code_mode_output_bytes, 0);
    assert_int_equal(l.cfg->mcp_code_mode_max_concurrent, 0);
    unload(&l);

    l = load("{\"mcp\": {\"tool_manager_config\": {\"code_mode_limits\":"
             " {\"wall_ms\": 10, \"cpu_s\": \"ten\", \"memory_mb\": 1000000,"
             "  \"output_bytes\": 0, \"max_concurrent\": 0, \"disk_mb\": 5}}}}");
    assert_null(l.cfg);
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_limits.wall_ms",
                   "between 100 and 600000");
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_limits.cpu_s", "integer");
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_limits.memory_mb",
                   "between 32 and 65536");
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_limits.output_bytes",
                   "between 1024 and 4194304");
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_limits.max_concurrent",
                   "between 1 and 1024");
    ASSERT_PROBLEM(&l, false, "mcp.tool_manager_config.code_mode_limits.disk_mb", "unknown field");
    unload(&l);

    l = load("{\"mcp\": {\"tool_manager_config\": {\"code_mode_limits\":"
             " {\"max_concurrent\": 2000}}}}");
    assert_null(l.cfg);
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_limits.max_concurrent",
                   "between 1 and 1024");
    unload(&l);
    l = load("{\"mcp\": {\"tool_manager_config\": {\"code_mode_limits\":"
             " {\"max_concurrent\": \"many\"}}}}");
    assert_null(l.cfg);
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_limits.max_concurrent", "integer");
    unload(&l);

    l = load("{\"mcp\": {\"tool_manager_config\": {\"code_mode_limits\": 30}}}");
    assert_null(l.cfg);
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_limits", "must be an object");
    unload(&l);
}

static int setup(void **state)
{
    setenv("GH_TEST_MCP_URL", URL_VALUE, 1);
    setenv("GH_TEST_MCP_HEADER", HEADER_SECRET, 1);
    setenv("GH_TEST_MCP_TOKEN", TOKEN_SECRET, 1);
    setenv("GH_TEST_MCP_SHORT", "short", 1);
    setenv("GH_TEST_MCP_EMPTY", "", 1);
    unsetenv("GH_TEST_MCP_UNSET");
    return 0;
}

/* ---- a good file ----------------------------------------------------------------------------- */

static const char *good =
    "{\"mcp\": {"
    " \"client_configs\": ["
    "  {\"name\": \"fs\", \"connection_type\": \"stdio\","
    "   \"stdio_config\": {\"command\": \"npx\", \"args\": [\"-y\", \"server-fs\", \"/tmp\"],"
    "                    \"envs\": [\"PATH\", \"HOME\"]},"
    "   \"tools_to_execute\": [\"*\"], \"tools_to_auto_execute\": [\"read_file\"]},"
    "  {\"name\": \"remote_1\", \"connection_type\": \"http\","
    "   \"connection_string\": \"env.GH_TEST_MCP_URL\","
    "   \"headers\": {\"Authorization\": \"env.GH_TEST_MCP_HEADER\", \"X-Team\": \"core\"},"
    "   \"tools_to_execute\": [\"search\", \"fetch\", \"search\"],"
    "   \"tools_to_auto_execute\": [\"fetch\"], \"is_code_mode_client\": true},"
    "  {\"name\": \"legacy\", \"connection_type\": \"sse\","
    "   \"connection_string\": \"http://127.0.0.1:3001/sse\", \"tools_to_execute\": []}"
    " ],"
    " \"tool_manager_config\": {\"tool_execution_timeout\": 45, \"max_agent_depth\": 4,"
    "                          \"code_mode_binding_level\": \"tool\"},"
    " \"server\": {\"tokens\": [\"env.GH_TEST_MCP_TOKEN\", \"literal-token-0123456789\"]}"
    "}}";

static void test_good_file(void **state)
{
    loaded_t l = load(good);
    char *errors = problems(&l, true);
    assert_string_equal(errors, "");
    free(errors);
    assert_non_null(l.cfg);
    const config_t *cfg = l.cfg;

    assert_int_equal(cfg->n_mcp_clients, 3);
    const config_mcp_client_t *fs = &cfg->mcp_clients[0];
    assert_string_equal(fs->name, "fs");
    assert_int_equal(fs->connection_type, CONFIG_MCP_STDIO);
    assert_string_equal(fs->command, "npx");
    assert_int_equal(count(fs->args), 3);
    assert_string_equal(fs->args[2], "/tmp");
    assert_int_equal(count(fs->envs), 2);
    assert_string_equal(fs->envs[1], "HOME");
    assert_int_equal(count(fs->tools_to_execute), 1);
    assert_string_equal(fs->tools_to_execute[0], "*");
    assert_int_equal(count(fs->tools_to_auto_execute), 1);
    assert_string_equal(fs->tools_to_auto_execute[0], "read_file");
    assert_null(fs->url);
    assert_int_equal(count(fs->headers), 0);
    assert_false(fs->is_code_mode_client);

    const config_mcp_client_t *remote = &cfg->mcp_clients[1];
    assert_int_equal(remote->connection_type, CONFIG_MCP_HTTP);
    assert_string_equal(remote->url, URL_VALUE);
    assert_int_equal(count(remote->headers), 2);
    assert_string_equal(remote->headers[0], "Authorization: " HEADER_SECRET);
    assert_string_equal(remote->headers[1], "X-Team: core");
    assert_int_equal(count(remote->tools_to_execute), 2); /* the duplicate went */
    assert_string_equal(remote->tools_to_execute[1], "fetch");
    assert_int_equal(count(remote->tools_to_auto_execute), 1);
    assert_true(remote->is_code_mode_client);
    assert_null(remote->command);
    assert_int_equal(count(remote->args), 0);

    const config_mcp_client_t *legacy = &cfg->mcp_clients[2];
    assert_int_equal(legacy->connection_type, CONFIG_MCP_SSE);
    assert_string_equal(legacy->url, "http://127.0.0.1:3001/sse");
    assert_int_equal(count(legacy->tools_to_execute), 0);

    assert_int_equal(cfg->mcp_tool_execution_timeout_s, 45);
    assert_int_equal(cfg->mcp_max_agent_depth, 4);
    assert_int_equal(cfg->mcp_code_mode_binding, CONFIG_MCP_BINDING_TOOL);
    assert_int_equal(cfg->n_mcp_server_tokens, 2);
    assert_string_equal(cfg->mcp_server_tokens[0], TOKEN_SECRET);
    assert_string_equal(cfg->mcp_server_tokens[1], "literal-token-0123456789");
    assert_null(cfg->mcp_server_tokens[2]);

    /* An empty tools_to_execute is a choice, not a surprise: no warning for it. */
    assert_false(has_problem(&l, false, "mcp.client_configs[2].tools_to_execute", ""));
    unload(&l);
}

static void test_defaults(void **state)
{
    loaded_t l = load("{}");
    assert_non_null(l.cfg);
    assert_int_equal(l.cfg->n_mcp_clients, 0);
    assert_null(l.cfg->mcp_clients);
    assert_int_equal(l.cfg->mcp_tool_execution_timeout_s, 30);
    assert_int_equal(l.cfg->mcp_max_agent_depth, 10);
    assert_int_equal(l.cfg->mcp_code_mode_binding, CONFIG_MCP_BINDING_SERVER);
    assert_null(l.cfg->mcp_server_tokens);
    assert_int_equal(l.cfg->n_mcp_server_tokens, 0);
    char *all = problems(&l, false);
    assert_string_equal(all, "");
    free(all);
    unload(&l);

    /* A section with nothing in it is fine too. */
    l = load("{\"mcp\": {\"client_configs\": [], \"server\": {\"tokens\": []}}}");
    assert_non_null(l.cfg);
    assert_int_equal(l.cfg->n_mcp_server_tokens, 0);
    unload(&l);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_client_errors(void **state)
{
    loaded_t l = load(
        "{\"mcp\": {\"client_configs\": ["
        " {\"name\": \"a b\", \"connection_type\": \"stdio\", \"stdio_config\": {\"command\": "
        "\"x\","
        "  \"envs\": [\"PATH\"]}},"
        " {\"name\": \"dup\", \"connection_type\": \"stdio\", \"stdio_config\": {\"command\": "
        "\"x\","
        "  \"envs\": [\"PATH\"]}},"
        " {\"name\": \"dup\", \"connection_type\": \"websocket\"},"
        " {\"connection_type\": \"stdio\"},"
        " {\"name\": \"s2\", \"connection_type\": \"stdio\", \"stdio_config\": {\"args\": [1],"
        "  \"envs\": [\"1BAD\", \"OK_NAME\"]}},"
        " {\"name\": \"h1\", \"connection_type\": \"http\"},"
        " {\"name\": \"h2\", \"connection_type\": \"http\", \"connection_string\": \"ftp://x\"},"
        " {\"name\": \"h3\", \"connection_type\": \"sse\", \"connection_string\": "
        "\"env.GH_TEST_MCP_UNSET\","
        "  \"headers\": {\"Content-Type\": \"text/plain\", \"Bad Name\": \"v\", \"X-Num\": 5,"
        "               \"X-Empty\": \"env.GH_TEST_MCP_EMPTY\"}},"
        " \"not an object\","
        " {\"name\": \"t\", \"connection_type\": \"stdio\", \"stdio_config\": {\"command\": \"x\","
        "  \"envs\": [\"PATH\"]}, \"tools_to_execute\": \"*\", \"is_code_mode_client\": \"yes\"}"
        "]}}");
    assert_null(l.cfg);
    const char *c = "mcp.client_configs";
    char path[128];
#define AT(i, rest) (snprintf(path, sizeof(path), "%s[%d]%s", c, i, rest), path)
    ASSERT_PROBLEM(&l, true, AT(0, ".name"), "letters, digits");
    ASSERT_PROBLEM(&l, true, AT(2, ".name"), "already named \"dup\"");
    ASSERT_PROBLEM(&l, true, AT(2, ".connection_type"), "\"stdio\", \"http\"");
    ASSERT_PROBLEM(&l, true, AT(3, ".name"), "required");
    ASSERT_PROBLEM(&l, true, AT(3, ".stdio_config"), "required for a stdio client");
    ASSERT_PROBLEM(&l, true, AT(4, ".stdio_config.command"), "required");
    ASSERT_PROBLEM(&l, true, AT(4, ".stdio_config.args[0]"), "must be a string");
    ASSERT_PROBLEM(&l, true, AT(4, ".stdio_config.envs[0]"), "environment variable");
    ASSERT_PROBLEM(&l, true, AT(5, ".connection_string"), "required");
    ASSERT_PROBLEM(&l, true, AT(6, ".connection_string"), "http:// or https://");
    ASSERT_PROBLEM(&l, true, AT(7, ".connection_string"), "GH_TEST_MCP_UNSET is not set");
    ASSERT_PROBLEM(&l, true, AT(7, ".headers.Content-Type"), "set by gatehouse");
    ASSERT_PROBLEM(&l, true, AT(7, ".headers.Bad Name"), "not a valid HTTP header name");
    ASSERT_PROBLEM(&l, true, AT(7, ".headers.X-Num"), "must be a string");
    ASSERT_PROBLEM(&l, true, AT(7, ".headers.X-Empty"), "GH_TEST_MCP_EMPTY is empty");
    ASSERT_PROBLEM(&l, true, AT(8, ""), "must be an object");
    ASSERT_PROBLEM(&l, true, AT(9, ".tools_to_execute"), "must be an array");
    ASSERT_PROBLEM(&l, true, AT(9, ".is_code_mode_client"), "true or false");
#undef AT
    /* The first "dup" was fine; so was OK_NAME. */
    assert_false(has_problem(&l, true, "mcp.client_configs[1].name", ""));
    assert_false(has_problem(&l, true, "mcp.client_configs[4].stdio_config.envs[1]", ""));
    unload(&l);
}

static void test_section_errors(void **state)
{
    loaded_t l = load("{\"mcp\": {\"client_configs\": {},"
                      " \"tool_manager_config\": {\"tool_execution_timeout\": 0,"
                      "   \"max_agent_depth\": \"ten\", \"code_mode_binding_level\": \"file\"},"
                      " \"server\": {\"tokens\": [\"env.GH_TEST_MCP_SHORT\", 7,"
                      "   \"env.GH_TEST_MCP_UNSET\", \"tiny\"]}}}");
    assert_null(l.cfg);
    ASSERT_PROBLEM(&l, true, "mcp.client_configs", "must be an array");
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.tool_execution_timeout",
                   "between 1 and 3600");
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.max_agent_depth", "integer");
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config.code_mode_binding_level",
                   "\"server\" or \"tool\"");
    ASSERT_PROBLEM(&l, true, "mcp.server.tokens[0]", "at least 16 characters");
    ASSERT_PROBLEM(&l, true, "mcp.server.tokens[1]", "token string");
    ASSERT_PROBLEM(&l, true, "mcp.server.tokens[2]", "GH_TEST_MCP_UNSET is not set");
    ASSERT_PROBLEM(&l, true, "mcp.server.tokens[3]", "at least 16 characters");
    unload(&l);

    l = load("{\"mcp\": []}");
    assert_null(l.cfg);
    ASSERT_PROBLEM(&l, true, "mcp", "must be an object");
    unload(&l);

    l = load("{\"mcp\": {\"server\": {\"tokens\": \"one\"}, \"tool_manager_config\": 3}}");
    assert_null(l.cfg);
    ASSERT_PROBLEM(&l, true, "mcp.server.tokens", "must be an array");
    ASSERT_PROBLEM(&l, true, "mcp.tool_manager_config", "must be an object");
    unload(&l);
}

/* ---- warnings -------------------------------------------------------------------------------- */

static void test_warnings(void **state)
{
    loaded_t l =
        load("{\"mcp\": {\"client_configs\": ["
             " {\"name\": \"quiet\", \"connection_type\": \"stdio\","
             "  \"stdio_config\": {\"command\": \"npx\", \"envs\": [\"GH_TEST_MCP_UNSET\"]},"
             "  \"connection_string\": \"http://x\", \"client_id\": \"abc\", \"colour\": \"red\"},"
             " {\"name\": \"auto\", \"connection_type\": \"http\", \"connection_string\": "
             "\"http://127.0.0.1:9/mcp\","
             "  \"stdio_config\": {}, \"auth_type\": \"oauth\","
             "  \"tools_to_execute\": [\"a\", \"*\"], \"tools_to_auto_execute\": [\"zzz\"]},"
             " {\"name\": \"subset\", \"connection_type\": \"sse\", \"connection_string\": "
             "\"http://127.0.0.1:9/sse\","
             "  \"tools_to_execute\": [\"a\", \"b\"], \"tools_to_auto_execute\": [\"b\", \"c\"]},"
             " {\"name\": \"star\", \"connection_type\": \"sse\", \"connection_string\": "
             "\"http://127.0.0.1:9/sse\","
             "  \"tools_to_execute\": [\"a\"], \"tools_to_auto_execute\": [\"*\"]}"
             "], \"mystery\": 1}}");
    char *errors = problems(&l, true);
    assert_string_equal(errors, "");
    free(errors);
    assert_non_null(l.cfg);
    const char *c = "mcp.client_configs";
    char path[128];
#define AT(i, rest) (snprintf(path, sizeof(path), "%s[%d]%s", c, i, rest), path)
    ASSERT_PROBLEM(&l, false, "mcp.mystery", "unknown field");
    ASSERT_PROBLEM(&l, false, AT(0, ".client_id"), "Bifrost field");
    ASSERT_PROBLEM(&l, false, AT(0, ".colour"), "unknown field");
    ASSERT_PROBLEM(&l, false, AT(0, ".tools_to_execute"), "no tool of this client");
    ASSERT_PROBLEM(&l, false, AT(0, ".stdio_config.envs"), "no PATH");
    ASSERT_PROBLEM(&l, false, AT(0, ".stdio_config.envs"), "GH_TEST_MCP_UNSET is not set");
    ASSERT_PROBLEM(&l, false, AT(0, ".connection_string"), "ignored");
    ASSERT_PROBLEM(&l, false, AT(1, ".stdio_config"), "ignored");
    ASSERT_PROBLEM(&l, false, AT(1, ".auth_type"), "without OAuth");
    ASSERT_PROBLEM(&l, false, AT(1, ".tools_to_execute"), "already allows every tool");
    ASSERT_PROBLEM(&l, false, AT(2, ".tools_to_auto_execute"), "\"c\" is not in");
    ASSERT_PROBLEM(&l, false, AT(3, ".tools_to_auto_execute"), "only what tools_to_execute");
#undef AT

    /* What the warnings say happens, happens. */
    const config_t *cfg = l.cfg;
    assert_int_equal(count(cfg->mcp_clients[0].tools_to_execute), 0);
    assert_int_equal(count(cfg->mcp_clients[1].tools_to_execute), 1);
    assert_string_equal(cfg->mcp_clients[1].tools_to_execute[0], "*");
    assert_int_equal(count(cfg->mcp_clients[1].tools_to_auto_execute), 1); /* "*" covers zzz */
    assert_int_equal(count(cfg->mcp_clients[2].tools_to_auto_execute), 1);
    assert_string_equal(cfg->mcp_clients[2].tools_to_auto_execute[0], "b");
    assert_int_equal(count(cfg->mcp_clients[3].tools_to_auto_execute), 1);
    assert_string_equal(cfg->mcp_clients[3].tools_to_auto_execute[0], "a");
    unload(&l);
}

/* A Bifrost file's MCP section as Bifrost's docs show it loads as it is. */
static void test_bifrost_example(void **state)
{
    loaded_t l = load("{\"mcp\": {\"client_configs\": [{"
                      " \"name\": \"filesystem\", \"connection_type\": \"stdio\","
                      " \"stdio_config\": {\"command\": \"npx\","
                      "   \"args\": [\"-y\", \"@anthropic/mcp-filesystem\"],"
                      "   \"envs\": [\"HOME\", \"PATH\"]},"
                      " \"tools_to_execute\": [\"*\"]}]}}");
    assert_non_null(l.cfg);
    char *warnings = problems(&l, false);
    assert_string_equal(warnings, "");
    free(warnings);
    assert_int_equal(l.cfg->n_mcp_clients, 1);
    unload(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_good_file, setup),
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_client_errors, setup),
        cmocka_unit_test_setup(test_section_errors, setup),
        cmocka_unit_test_setup(test_warnings, setup),
        cmocka_unit_test_setup(test_bifrost_example, setup),
        cmocka_unit_test_setup(test_code_mode_limits, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
