/*
 * test_codemode_stubs.c - unit tests for Code Mode's Python stubs (src/codemode/stubs.c).
 *
 * Golden files: the real tools/list results of server-everything, server-filesystem and
 * server-memory (tests/fixtures/codemode/<server>.tools.json, captured as its README says) become a
 * catalog, then stubs at both binding levels, compared byte for byte with
 * tests/fixtures/codemode/golden/{server,tool}/. GATEHOUSE_UPDATE_GOLDENS=1 rewrites the golden
 * files instead (then review the diff).
 *
 * Python: every stub of those servers, and of the 517 tools of ../shared/tool-catalogs/ when
 * that folder exists (skipped with a message otherwise), must parse with Python's own ast
 * (python3 runs over a temporary folder of generated files).
 *
 * Plus the type mapping, summaries and string escaping on hand-made schemas.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codemode/stubs.h"
#include "mcp/hub_internal.h"
#include "util/buf.h"

#define FIXTURES "tests/fixtures/codemode/"
#define CATALOGS "../shared/tool-catalogs/"

static const char *const servers[] = {"everything", "filesystem", "memory"};
#define N_SERVERS (sizeof servers / sizeof servers[0])

/* ---- helpers -------------------------------------------------------------------------------- */

static json_t *load_json(const char *path)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (j == NULL)
        fail_msg("cannot read %s: %s", path, err.text);
    return j;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    buf_t b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return b.data != NULL ? buf_release(&b) : strdup("");
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void make_dirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

/* A catalog of code-mode clients whose tools/list arrays are given; every tool executable. */
static mcp_catalog_t *catalog_of(const char *const *names, json_t *const *tool_lists, size_t n)
{
    static const char *const all[] = {"*", NULL};
    hub_catalog_src_t *src = calloc(n, sizeof *src);
    for (size_t i = 0; i < n; i++) {
        src[i] = (hub_catalog_src_t){
            .name = names[i],
            .state = MCP_STATE_READY,
            .tools_to_execute = all,
            .tools_to_auto_execute = all,
            .code_mode = true,
            .tools = tool_lists[i],
        };
    }
    mcp_catalog_t *cat = hub_catalog_build(src, n, 1);
    free(src);
    return cat;
}

/* Bindings for the three captured servers. */
static codemode_bindings_t *fixture_bindings(void)
{
    json_t *lists[N_SERVERS];
    for (size_t i = 0; i < N_SERVERS; i++) {
        char path[256];
        snprintf(path, sizeof path, FIXTURES "%s.tools.json", servers[i]);
        json_t *doc = load_json(path);
        lists[i] = json_incref(json_object_get(doc, "tools"));
        json_decref(doc);
    }
    mcp_catalog_t *cat = catalog_of(servers, lists, N_SERVERS);
    for (size_t i = 0; i < N_SERVERS; i++)
        json_decref(lists[i]);
    codemode_bindings_t *b = codemode_bindings_build(cat, NULL);
    mcp_catalog_release(cat);
    return b;
}

static const codemode_tool_binding_t *tool_named(const codemode_bindings_t *b, const char *client,
                                                 const char *tool,
                                                 const codemode_server_binding_t **s)
{
    const codemode_tool_binding_t *t = codemode_bindings_find_mcp(b, client, tool, s);
    if (t == NULL)
        fail_msg("no tool %s of %s", tool, client);
    return t;
}

/* ---- types ---------------------------------------------------------------------------------- */

static void assert_type(const char *schema_text, const char *want)
{
    json_t *schema = json_loads(schema_text, 0, NULL);
    assert_non_null(schema);
    buf_t out = BUF_INIT;
    codemode_stub_type(&out, schema);
    assert_string_equal(buf_cstr(&out), want);
    buf_free(&out);
    json_decref(schema);
}

static void test_types_scalars(void **state)
{
    assert_type("{\"type\":\"string\"}", "str");
    assert_type("{\"type\":\"integer\"}", "int");
    assert_type("{\"type\":\"number\"}", "float");
    assert_type("{\"type\":\"boolean\"}", "bool");
    assert_type("{\"type\":\"null\"}", "None");
    assert_type("{\"type\":\"object\",\"properties\":{\"a\":{}}}", "dict");
    assert_type("{\"properties\":{\"a\":{}}}", "dict");
    assert_type("{}", "Any");
    assert_type("{\"$ref\":\"#/definitions/x\"}", "Any");
    assert_type("{\"type\":\"weird\"}", "Any");
}

static void test_types_arrays(void **state)
{
    assert_type("{\"type\":\"array\",\"items\":{\"type\":\"string\"}}", "list[str]");
    assert_type("{\"type\":\"array\"}", "list");
    assert_type("{\"type\":\"array\",\"items\":{}}", "list");
    assert_type("{\"items\":{\"type\":\"integer\"}}", "list[int]");
    assert_type("{\"type\":\"array\",\"items\":{\"type\":\"object\"}}", "list[dict]");
    assert_type("{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":"
                "\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}}",
                "list[list[list[list]]]");
    assert_type("{\"type\":\"array\",\"items\":{\"type\":[\"string\",\"number\"]}}",
                "list[str | float]");
}

static void test_types_enums_and_unions(void **state)
{
    assert_type("{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}", "Literal[\"a\", \"b\"]");
    assert_type("{\"enum\":[1,2.5,true,null]}", "Literal[1, 2.5, True] | None");
    assert_type("{\"enum\":[\"say \\\"hi\\\"\\n\"]}", "Literal[\"say \\\"hi\\\"\\n\"]");
    assert_type("{\"const\":\"fixed\"}", "Literal[\"fixed\"]");
    /* an enum of objects cannot be a Literal: the base type */
    assert_type("{\"type\":\"object\",\"enum\":[{\"a\":1}]}", "dict");
    assert_type("{\"type\":[\"string\",\"null\"]}", "str | None");
    assert_type("{\"type\":[\"null\",\"string\"]}", "str | None");
    assert_type("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "str | int");
    assert_type("{\"oneOf\":[{\"type\":\"null\"},{\"type\":\"array\",\"items\":{\"type\":"
                "\"string\"}}]}",
                "list[str] | None");
    /* duplicates collapse; Any swallows the union */
    assert_type("{\"anyOf\":[{\"type\":\"string\"},{\"type\":[\"string\",\"null\"]}]}",
                "str | None");
    assert_type("{\"anyOf\":[{\"type\":\"string\"},{}]}", "Any");
    assert_type("{\"allOf\":[{\"type\":\"integer\"}]}", "int");
    assert_type("{\"allOf\":[{\"type\":\"object\"},{\"required\":[\"a\"]}]}", "Any");
}

/* ---- summaries and signatures --------------------------------------------------------------- */

static void assert_summary(const char *def_text, const char *want)
{
    json_t *def = json_loads(def_text, 0, NULL);
    assert_non_null(def);
    buf_t out = BUF_INIT;
    codemode_stub_summary(&out, def);
    assert_string_equal(buf_cstr(&out), want);
    buf_free(&out);
    json_decref(def);
}

static void test_summaries(void **state)
{
    assert_summary("{\"description\":\"Echoes back the input string\"}",
                   "Echoes back the input string");
    assert_summary("{\"description\":\"\\n\\n  First line.  Second sentence.\\nMore\"}",
                   "First line.");
    assert_summary("{\"description\":\"a  b\\t c\"}", "a b c");
    assert_summary("{\"title\":\"Only a title\"}", "Only a title");
    assert_summary("{\"description\":\"\",\"title\":\"T\"}", "T");
    assert_summary("{}", "No description.");

    /* longer than 200 bytes: cut at a space, "..." */
    char long_desc[600];
    char *p = long_desc + sprintf(long_desc, "{\"description\":\"");
    for (int i = 0; i < 60; i++)
        p += sprintf(p, "word ");
    sprintf(p, "\"}");
    json_t *def = json_loads(long_desc, 0, NULL);
    buf_t out = BUF_INIT;
    codemode_stub_summary(&out, def);
    assert_true(out.len <= 200);
    assert_string_equal(out.data + out.len - 7, "word...");
    buf_free(&out);
    json_decref(def);
}

static void assert_tool_stub(const char *def_text, const char *want)
{
    json_t *def = json_loads(def_text, 0, NULL);
    assert_non_null(def);
    const char *name = json_string_value(json_object_get(def, "name"));
    mcp_tool_t tool = {.client = "my-server",
                       .name = name,
                       .exposed = "x",
                       .def = def,
                       .available = true,
                       .executable = true,
                       .code_mode = true};
    mcp_catalog_t cat = {.refcount = 1, .tools = &tool, .n_tools = 1};
    codemode_bindings_t *b = codemode_bindings_build(&cat, NULL);
    const codemode_server_binding_t *s = codemode_bindings_server(b, 0);
    char *text = codemode_stub_tool(s, &s->tools[0]);
    assert_string_equal(text, want);
    free(text);
    codemode_bindings_release(b);
    json_decref(def);
}

static void test_signature_order_and_defaults(void **state)
{
    assert_tool_stub("{\"name\":\"get-x\",\"description\":\"Gets x.\",\"inputSchema\":{"
                     "\"type\":\"object\",\"properties\":{\"opt\":{\"type\":\"integer\"},"
                     "\"req\":{\"type\":\"string\"},\"mode\":{\"enum\":[\"a\",\"b\"]}},"
                     "\"required\":[\"req\",\"ghost\"]}}",
                     "# my_server.get_x: tool \"get-x\" of MCP server \"my-server\"; returns its "
                     "result or raises ToolError.\n"
                     "from typing import Any, Literal\n"
                     "\n"
                     "def get_x(*, req: str, ghost: Any, opt: int = None, "
                     "mode: Literal[\"a\", \"b\"] = None) -> Any:\n"
                     "    \"\"\"Gets x.\"\"\"\n");
}

static void test_signature_without_params(void **state)
{
    assert_tool_stub("{\"name\":\"ping\",\"inputSchema\":{\"type\":\"object\"}}",
                     "# my_server.ping: tool \"ping\" of MCP server \"my-server\"; returns its "
                     "result or raises ToolError.\n"
                     "from typing import Any\n"
                     "\n"
                     "def ping() -> Any:\n"
                     "    \"\"\"No description.\"\"\"\n");
}

/* Names that cannot be keyword arguments go through **kwargs; quotes in a description are
 * escaped; an output schema gives the return type and the fields. */
static void test_signature_odd_names_and_output(void **state)
{
    assert_tool_stub(
        "{\"name\":\"class\",\"description\":\"Says \\\"hi\\\" \\\\o/\",\"inputSchema\":{"
        "\"type\":\"object\",\"properties\":{\"from\":{\"type\":\"string\"},"
        "\"user-id\":{\"type\":\"integer\"},\"ok\":{\"type\":\"boolean\"}},"
        "\"required\":[\"from\"]},\"outputSchema\":{\"type\":\"object\",\"properties\":{"
        "\"n\":{\"type\":\"number\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":"
        "\"string\"}}}}}",
        "# my_server.class_: tool \"class\" of MCP server \"my-server\"; returns its result or "
        "raises ToolError.\n"
        "from typing import Any\n"
        "\n"
        "def class_(*, ok: bool = None, **kwargs: Any) -> dict:\n"
        "    \"\"\"Says \\\"hi\\\" \\\\o/. Returns {n?: float, tags?: list[str]}. Pass "
        "\\\"from\\\" "
        "(str), \\\"user-id\\\" (int, optional) as **{\\\"<name>\\\": value}.\"\"\"\n");
}

/* ---- golden files --------------------------------------------------------------------------- */

static bool updating(void)
{
    const char *v = getenv("GATEHOUSE_UPDATE_GOLDENS");
    return v != NULL && strcmp(v, "1") == 0;
}

/* Compares (or rewrites) every file of the tree at one level under golden/<dir>/. */
static void check_goldens(codemode_binding_level_t level, const char *dir, size_t want_files)
{
    codemode_bindings_t *b = fixture_bindings();
    size_t n = 0;
    codemode_stub_file_t *files = codemode_stub_files(b, level, &n);
    assert_int_equal(n, want_files);

    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, FIXTURES "golden/%s/%s", dir,
                 files[i].name + strlen(CODEMODE_STUB_DIR));
        char *text = codemode_stub_text(&files[i]);
        if (updating()) {
            char folder[512];
            snprintf(folder, sizeof folder, "%s", path);
            *strrchr(folder, '/') = '\0';
            make_dirs(folder);
            write_text(path, text);
        } else {
            char *golden = read_text(path);
            if (golden == NULL)
                fail_msg("missing golden file %s (GATEHOUSE_UPDATE_GOLDENS=1 writes it)", path);
            if (strcmp(golden, text) != 0)
                fail_msg("%s differs from the generated stub:\n%s", path, text);
            free(golden);
        }
        free(text);
    }
    codemode_stub_files_free(files, n);
    codemode_bindings_release(b);
}

static void test_golden_server_level(void **state)
{
    check_goldens(CODEMODE_BINDING_SERVER, "server", 3);
}

static void test_golden_tool_level(void **state)
{
    check_goldens(CODEMODE_BINDING_TOOL, "tool", 13 + 14 + 9);
}

/* The tree's names at both levels, and a few landmarks of the real schemas. */
static void test_files_and_landmarks(void **state)
{
    codemode_bindings_t *b = fixture_bindings();
    size_t n = 0;
    codemode_stub_file_t *files = codemode_stub_files(b, CODEMODE_BINDING_SERVER, &n);
    assert_string_equal(files[0].name, "servers/everything.pyi");
    assert_string_equal(files[1].name, "servers/filesystem.pyi");
    assert_string_equal(files[2].name, "servers/memory.pyi");
    assert_null(files[2].tool);
    codemode_stub_files_free(files, n);

    files = codemode_stub_files(b, CODEMODE_BINDING_TOOL, &n);
    assert_string_equal(files[0].name, "servers/everything/echo.pyi");
    assert_string_equal(files[1].name, "servers/everything/get_annotated_message.pyi");
    assert_string_equal(files[1].tool->tool, "get-annotated-message");
    codemode_stub_files_free(files, n);

    const codemode_server_binding_t *s;
    const codemode_tool_binding_t *t = tool_named(b, "everything", "get-structured-content", &s);
    char *text = codemode_stub_tool(s, t);
    assert_non_null(strstr(text, "def get_structured_content(*, location: Literal[\"New York\", "
                                 "\"Chicago\", \"Los Angeles\"]) -> dict:\n"));
    assert_non_null(
        strstr(text, "Returns {temperature: float, conditions: str, humidity: float}."));
    free(text);

    t = tool_named(b, "filesystem", "read_text_file", &s);
    text = codemode_stub_tool(s, t);
    assert_non_null(strstr(text, "def read_text_file(*, path: str, tail: float = None, "
                                 "head: float = None) -> dict:\n"));
    free(text);

    t = tool_named(b, "memory", "create_entities", &s);
    text = codemode_stub_tool(s, t);
    assert_non_null(strstr(text, "def create_entities(*, entities: list[dict]) -> dict:\n"));
    free(text);
    codemode_bindings_release(b);
}

/* ---- Python parses every stub --------------------------------------------------------------- */

/* Writes every file of b at both levels under dir; returns how many. */
static size_t write_tree(const codemode_bindings_t *b, const char *dir)
{
    size_t total = 0;
    for (int level = CODEMODE_BINDING_SERVER; level <= CODEMODE_BINDING_TOOL; level++) {
        size_t n = 0;
        codemode_stub_file_t *files = codemode_stub_files(b, level, &n);
        for (size_t i = 0; i < n; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s/%s", dir, level ? "tool" : "server", files[i].name);
            char folder[1024];
            snprintf(folder, sizeof folder, "%s", path);
            *strrchr(folder, '/') = '\0';
            make_dirs(folder);
            char *text = codemode_stub_text(&files[i]);
            write_text(path, text);
            free(text);
        }
        total += n;
        codemode_stub_files_free(files, n);
    }
    return total;
}

/* python3 parses every .pyi under dir; returns how many parsed, or -1 on any failure. */
static long python_parse_all(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import ast, pathlib, sys\n"
             "n = 0\n"
             "for p in sorted(pathlib.Path(sys.argv[1]).rglob(\"*.pyi\")):\n"
             "    try:\n"
             "        ast.parse(p.read_text(encoding=\"utf-8\"), filename=str(p))\n"
             "        n += 1\n"
             "    except SyntaxError as e:\n"
             "        print(\"stub does not parse:\", e, file=sys.stderr)\n"
             "        sys.exit(1)\n"
             "print(n)\n' '%s'",
             dir);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    long n = -1;
    if (fscanf(p, "%ld", &n) != 1)
        n = -1;
    int rc = pclose(p);
    return rc == 0 ? n : -1;
}

static void remove_tree(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static bool have_python(void)
{
    return system("python3 -c 'import ast' >/dev/null 2>&1") == 0;
}

static void test_python_parses_fixture_stubs(void **state)
{
    if (!have_python()) {
        print_message("python3 not found: stubs not parsed\n");
        skip();
    }
    char dir[] = "/tmp/gatehouse-stubs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    codemode_bindings_t *b = fixture_bindings();
    size_t written = write_tree(b, dir);
    assert_int_equal(written, 3 + 36);
    assert_int_equal(python_parse_all(dir), (long)written);
    codemode_bindings_release(b);
    remove_tree(dir);
}

/* Every catalog of ../shared/tool-catalogs/ as one code-mode client each. */
static void test_python_parses_shared_catalogs(void **state)
{
    DIR *d = opendir(CATALOGS);
    if (d == NULL) {
        print_message("%s is absent: the 517-tool catalogs are not checked\n", CATALOGS);
        skip();
    }
    if (!have_python()) {
        closedir(d);
        print_message("python3 not found: stubs not parsed\n");
        skip();
    }
    const char *names[64];
    json_t *lists[64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, CATALOGS "%s", e->d_name);
        json_t *doc = load_json(path);
        names[n] = strndup(e->d_name, len - 5);
        lists[n] = json_incref(json_object_get(doc, "tools"));
        json_decref(doc);
        n++;
    }
    closedir(d);
    mcp_catalog_t *cat = catalog_of(names, lists, n);
    codemode_bindings_t *b = codemode_bindings_build(cat, NULL);
    mcp_catalog_release(cat);
    size_t tools = codemode_bindings_tool_count(b);
    print_message("%zu catalogs, %zu tools\n", n, tools);
    assert_true(tools >= 500);

    char dir[] = "/tmp/gatehouse-stubs-XXXXXX";
    assert_non_null(mkdtemp(dir));
    size_t written = write_tree(b, dir);
    assert_int_equal(written, codemode_bindings_count(b) + tools);
    assert_int_equal(python_parse_all(dir), (long)written);
    remove_tree(dir);

    codemode_bindings_release(b);
    for (size_t i = 0; i < n; i++) {
        free((char *)names[i]);
        json_decref(lists[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_scalars),
        cmocka_unit_test(test_types_arrays),
        cmocka_unit_test(test_types_enums_and_unions),
        cmocka_unit_test(test_summaries),
        cmocka_unit_test(test_signature_order_and_defaults),
        cmocka_unit_test(test_signature_without_params),
        cmocka_unit_test(test_signature_odd_names_and_output),
        cmocka_unit_test(test_golden_server_level),
        cmocka_unit_test(test_golden_tool_level),
        cmocka_unit_test(test_files_and_landmarks),
        cmocka_unit_test(test_python_parses_fixture_stubs),
        cmocka_unit_test(test_python_parses_shared_catalogs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
