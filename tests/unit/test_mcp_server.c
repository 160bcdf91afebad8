/*
 * test_mcp_server.c - the protocol side of the /mcp server (src/mcp/server.c and
 * server_session.c) without sockets: version negotiation, every method against a hand-made
 * catalog, pagination, forwards and their answers, the change digest, the session table
 * (ids, expiry, eviction, threads) and the transport checks (tokens, loopback, Origin,
 * Accept).
 *
 * The catalog is built here the way the hub builds it: tools with exposed names and flags,
 * resources, templates and prompts namespaced with naming.h, so that the mapping back to a
 * client is exercised with the real naming rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/filter.h"
#include "mcp/naming.h"
#include "mcp/server.h"
#include "util/alloc.h"

/* ---- a fake catalog ------------------------------------------------------------------------- */

typedef struct fake {
    mcp_catalog_t cat;
    json_t *defs; /* owns the tools' definitions */
    char **names; /* owned strings of the tools */
    size_t n_names;
} fake_t;

static const char *keep(fake_t *f, const char *s)
{
    f->names = xrealloc(f->names, (f->n_names + 1) * sizeof(char *));
    f->names[f->n_names] = xstrdup(s);
    return f->names[f->n_names++];
}

static void add_tool(fake_t *f, const char *client, const char *tool, const char *desc,
                     bool executable, bool available, bool code_mode)
{
    json_t *def =
        json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s}}}}", "name", tool, "description", desc,
                  "inputSchema", "type", "object", "properties", "text", "type", "string");
    json_array_append_new(f->defs, def);
    char exposed[128];
    snprintf(exposed, sizeof(exposed), "%s-%s", client, tool);

    f->cat.tools = xrealloc(f->cat.tools, (f->cat.n_tools + 1) * sizeof(mcp_tool_t));
    f->cat.tools[f->cat.n_tools++] = (mcp_tool_t){
        .client = keep(f, client),
        .name = keep(f, tool),
        .exposed = keep(f, exposed),
        .def = def,
        .available = available,
        .executable = executable,
        .code_mode = code_mode,
    };
}

static void fake_init(fake_t *f)
{
    memset(f, 0, sizeof(*f));
    f->defs = json_array();
    f->cat.version = 1;
    add_tool(f, "alpha", "echo", "Echoes.\nSecond line.", true, true, false);
    add_tool(f, "alpha", "hidden", "Not executable.", false, true, false);
    add_tool(f, "beta", "add", "Adds (server down).", true, false, false);
    add_tool(f, "beta", "mul", "Multiplies.", true, true, false);
    add_tool(f, "code", "run", "Code Mode.", true, true, true);
    add_tool(f, "gamma", "one", "One.", true, true, false);
    add_tool(f, "gamma", "two", "Two.", true, true, false);

    json_t *res = json_pack("{s:s, s:s}", "uri", "file:///notes.txt", "name", "notes");
    json_t *tpl = json_pack("{s:s, s:s}", "uriTemplate", "file:///{path}", "name", "files");
    json_t *res_b = json_pack("{s:s, s:s}", "uri", "mem://x", "name", "x");
    f->cat.resources = json_array();
    json_array_append_new(f->cat.resources, mcp_naming_resource_item("alpha", res, "uri"));
    json_array_append_new(f->cat.resources, mcp_naming_resource_item("beta", res_b, "uri"));
    f->cat.templates = json_array();
    json_array_append_new(f->cat.templates, mcp_naming_resource_item("alpha", tpl, "uriTemplate"));
    json_decref(res);
    json_decref(tpl);
    json_decref(res_b);

    json_t *prompt = json_pack("{s:s, s:s}", "name", "greet", "description", "Says hello");
    f->cat.prompts = json_array();
    json_array_append_new(f->cat.prompts, mcp_naming_prompt_item("alpha", prompt));
    json_decref(prompt);
    f->cat.clients = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}]", "name", "alpha", "name", "beta",
                               "name", "code", "name", "gamma");
}

static void fake_free(fake_t *f)
{
    for (size_t i = 0; i < f->n_names; i++)
        free(f->names[i]);
    free(f->names);
    free(f->cat.tools);
    json_decref(f->defs);
    json_decref(f->cat.resources);
    json_decref(f->cat.templates);
    json_decref(f->cat.prompts);
    json_decref(f->cat.clients);
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* Runs one request given as JSON text; returns the outcome (caller frees). */
static void run(const mcp_server_ctx_t *ctx, const char *text, mcp_server_outcome_t *out)
{
    jsonrpc_batch_t b;
    assert_int_equal(jsonrpc_parse(text, strlen(text), &b, NULL, 0), 0);
    assert_int_equal(b.msgs[0].kind, JSONRPC_REQUEST);
    mcp_server_request(ctx, &b.msgs[0], out);
    /* The outcome must not borrow from the request: free the request first. */
    jsonrpc_batch_free(&b);
}

/* Runs a request that is answered at once; returns the response (caller decrefs). */
static json_t *answer(const mcp_server_ctx_t *ctx, const char *text)
{
    mcp_server_outcome_t out;
    run(ctx, text, &out);
    assert_int_equal(out.kind, MCP_SERVER_REPLY);
    json_t *r = out.reply;
    out.reply = NULL;
    mcp_server_outcome_free(&out);
    return r;
}

static int error_code(const json_t *response)
{
    json_t *err = json_object_get(response, "error");
    assert_non_null(err);
    return (int)json_integer_value(json_object_get(err, "code"));
}

static const char *error_message(const json_t *response)
{
    return json_string_value(json_object_get(json_object_get(response, "error"), "message"));
}

static json_t *result_of(json_t *response)
{
    json_t *r = json_object_get(response, "result");
    assert_non_null(r);
    return r;
}

/* ---- versions and initialize ---------------------------------------------------------------- */

static void test_versions(void **state)
{
    assert_true(mcp_server_version_supported("2025-11-25"));
    assert_true(mcp_server_version_supported("2025-06-18"));
    assert_true(mcp_server_version_supported("2025-03-26"));
    assert_false(mcp_server_version_supported("2024-11-05"));
    assert_false(mcp_server_version_supported(NULL));
    assert_false(mcp_server_version_supported("2025-06-1"));

    assert_string_equal(mcp_server_negotiate_version("2025-06-18"), "2025-06-18");
    assert_string_equal(mcp_server_negotiate_version("2025-03-26"), "2025-03-26");
    assert_string_equal(mcp_server_negotiate_version("2024-11-05"), "2025-11-25");
    assert_string_equal(mcp_server_negotiate_version("2099-01-01"), "2025-11-25");
    assert_string_equal(mcp_server_negotiate_version(NULL), MCP_SERVER_PROTOCOL_LATEST);
}

static json_t *initialize(const char *text, const char **version, const char **client,
                          jsonrpc_batch_t *b)
{
    assert_int_equal(jsonrpc_parse(text, strlen(text), b, NULL, 0), 0);
    return mcp_server_initialize(&b->msgs[0], version, client);
}

static void test_initialize(void **state)
{
    jsonrpc_batch_t b;
    const char *version;
    const char *client;
    json_t *r = initialize("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"initialize\",\"params\":"
                           "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
                           "\"clientInfo\":{\"name\":\"ide\",\"version\":\"1\"}}}",
                           &version, &client, &b);
    assert_string_equal(version, "2025-06-18");
    assert_string_equal(client, "ide");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
    json_t *res = result_of(r);
    assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), "2025-06-18");
    json_t *caps = json_object_get(res, "capabilities");
    assert_true(json_is_true(json_object_get(json_object_get(caps, "tools"), "listChanged")));
    assert_true(json_is_true(json_object_get(json_object_get(caps, "resources"), "listChanged")));
    assert_true(json_is_true(json_object_get(json_object_get(caps, "prompts"), "listChanged")));
    assert_null(json_object_get(caps, "logging"));
    json_t *info = json_object_get(res, "serverInfo");
    assert_string_equal(json_string_value(json_object_get(info, "name")), "gatehouse");
    assert_string_equal(json_string_value(json_object_get(info, "version")), GATEHOUSE_VERSION);
    json_decref(r);
    jsonrpc_batch_free(&b);

    /* An old version gets our latest; the client decides whether it can go on. */
    r = initialize("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"initialize\",\"params\":"
                   "{\"protocolVersion\":\"2024-11-05\"}}",
                   &version, &client, &b);
    assert_string_equal(version, "2025-11-25");
    assert_string_equal(client, "");
    assert_string_equal(json_string_value(json_object_get(result_of(r), "protocolVersion")),
                        "2025-11-25");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "a");
    json_decref(r);
    jsonrpc_batch_free(&b);

    r = initialize("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}",
                   &version, &client, &b);
    assert_null(version);
    assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
    json_decref(r);
    jsonrpc_batch_free(&b);
}

/* ---- simple methods and errors -------------------------------------------------------------- */

static void test_ping_and_errors(void **state)
{
    fake_t f;
    fake_init(&f);
    mcp_server_ctx_t ctx = {.cat = &f.cat};

    json_t *r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
    assert_true(json_is_object(result_of(r)));
    assert_int_equal(json_object_size(result_of(r)), 0);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "p");
    json_decref(r);

    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"logging/setLevel\","
                     "\"params\":{\"level\":\"info\"}}");
    assert_int_equal(error_code(r), JSONRPC_METHOD_NOT_FOUND);
    assert_string_equal(error_message(r), "Method not found");
    json_decref(r);

    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":[1]}");
    assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
    json_decref(r);

    /* A second initialize inside a session is refused: it would open another session. */
    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\",\"params\":"
                     "{\"protocolVersion\":\"2025-06-18\"}}");
    assert_int_equal(error_code(r), JSONRPC_INVALID_REQUEST);
    json_decref(r);
    fake_free(&f);
}

/* ---- tools ---------------------------------------------------------------------------------- */

static void test_tools_list(void **state)
{
    fake_t f;
    fake_init(&f);
    mcp_server_ctx_t ctx = {.cat = &f.cat};

    json_t *r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(result_of(r), "tools");
    /* Not listed: alpha-hidden (not executable), beta-add (down), code-run (Code Mode). */
    assert_int_equal(json_array_size(tools), 4);
    const char *want[] = {"alpha-echo", "beta-mul", "gamma-one", "gamma-two"};
    for (size_t i = 0; i < 4; i++) {
        json_t *t = json_array_get(tools, i);
        assert_string_equal(json_string_value(json_object_get(t, "name")), want[i]);
        assert_true(json_is_object(json_object_get(t, "inputSchema")));
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "description")),
                        "Echoes.\nSecond line.");
    assert_null(json_object_get(result_of(r), "nextCursor"));
    /* The catalog's own definition keeps the server's name. */
    assert_string_equal(json_string_value(json_object_get(f.cat.tools[0].def, "name")), "echo");
    json_decref(r);
    fake_free(&f);
}

static void test_tools_list_pages(void **state)
{
    fake_t f;
    fake_init(&f);
    mcp_server_ctx_t ctx = {.cat = &f.cat, .page_size = 3};

    json_t *r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(result_of(r), "tools");
    assert_int_equal(json_array_size(tools), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 2), "name")),
                        "gamma-one");
    const char *cursor = json_string_value(json_object_get(result_of(r), "nextCursor"));
    assert_non_null(cursor);

    char text[256];
    snprintf(text, sizeof(text),
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":"
             "{\"cursor\":\"%s\"}}",
             cursor);
    json_decref(r);
    r = answer(&ctx, text);
    tools = json_object_get(result_of(r), "tools");
    assert_int_equal(json_array_size(tools), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
                        "gamma-two");
    assert_null(json_object_get(result_of(r), "nextCursor"));
    json_decref(r);

    /* A page that ends exactly at the last visible tool has no next cursor either. */
    ctx.page_size = 4;
    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}");
    assert_int_equal(json_array_size(json_object_get(result_of(r), "tools")), 4);
    assert_null(json_object_get(result_of(r), "nextCursor"));
    json_decref(r);

    const char *bad[] = {"\"zz\"", "\"o\"", "\"o12x\"", "17", "\"o-1\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":"
                 "{\"cursor\":%s}}",
                 bad[i]);
        r = answer(&ctx, text);
        assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
        json_decref(r);
    }

    /* A cursor past the end (the catalog shrank) is an empty last page, not an error. */
    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\",\"params\":"
                     "{\"cursor\":\"o99\"}}");
    assert_int_equal(json_array_size(json_object_get(result_of(r), "tools")), 0);
    json_decref(r);
    fake_free(&f);
}

/* Tools the caller serves itself (Code Mode's meta-tools): listed first, paged with the
 * catalog's, and their calls handed back as MCP_SERVER_LOCAL. */
static void test_extra_tools(void **state)
{
    fake_t f;
    fake_init(&f);
    json_t *extra = json_pack("[{s:s, s:s, s:{s:s}}, {s:s, s:s, s:{s:s}}]", "name", "listFiles",
                              "description", "Lists.", "inputSchema", "type", "object", "name",
                              "runCode", "description", "Runs.", "inputSchema", "type", "object");
    mcp_server_ctx_t ctx = {.cat = &f.cat, .extra_tools = extra, .page_size = 3};

    json_t *r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(result_of(r), "tools");
    assert_int_equal(json_array_size(tools), 3);
    const char *want[] = {"listFiles", "runCode", "alpha-echo"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(tools, i), "name")),
                            want[i]);
    const char *cursor = json_string_value(json_object_get(result_of(r), "nextCursor"));
    assert_non_null(cursor);
    char text[256];
    snprintf(text, sizeof(text),
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":"
             "{\"cursor\":\"%s\"}}",
             cursor);
    json_decref(r);
    r = answer(&ctx, text);
    tools = json_object_get(result_of(r), "tools");
    assert_int_equal(json_array_size(tools), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
                        "beta-mul");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 2), "name")),
                        "gamma-two");
    assert_null(json_object_get(result_of(r), "nextCursor"));
    json_decref(r);

    mcp_server_outcome_t out;
    run(&ctx,
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
        "{\"name\":\"runCode\",\"arguments\":{\"code\":\"print(1)\"}}}",
        &out);
    assert_int_equal(out.kind, MCP_SERVER_LOCAL);
    assert_string_equal(out.fwd.tool, "runCode");
    assert_null(out.fwd.client);
    assert_string_equal(json_string_value(json_object_get(out.fwd.params, "code")), "print(1)");
    mcp_server_outcome_free(&out);

    /* The Code Mode client's own tool stays unknown. */
    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":"
                     "{\"name\":\"code-run\"}}");
    assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
    json_decref(r);

    json_t *id = json_integer(5);
    r = mcp_server_text_result(id, "done", true);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(result_of(r), "content"), 0), "text")),
                        "done");
    assert_true(json_is_true(json_object_get(result_of(r), "isError")));
    json_decref(r);
    json_decref(id);
    json_decref(extra);
    fake_free(&f);
}

static void test_tools_call(void **state)
{
    fake_t f;
    fake_init(&f);
    mcp_server_ctx_t ctx = {.cat = &f.cat};
    mcp_server_outcome_t out;

    run(&ctx,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
        "{\"name\":\"alpha-echo\",\"arguments\":{\"text\":\"hi\"}}}",
        &out);
    assert_int_equal(out.kind, MCP_SERVER_FORWARD);
    assert_string_equal(out.fwd.client, "alpha");
    assert_string_equal(out.fwd.tool, "echo");
    assert_string_equal(out.fwd.method, "tools/call");
    assert_string_equal(out.fwd.exposed, "alpha-echo");
    assert_string_equal(json_string_value(json_object_get(out.fwd.params, "text")), "hi");
    mcp_server_outcome_free(&out);

    /* No arguments: the hub sends none. A client that is down still goes to the hub, which
     * answers "unavailable" at once. */
    run(&ctx,
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
        "{\"name\":\"beta-add\"}}",
        &out);
    assert_int_equal(out.kind, MCP_SERVER_FORWARD);
    assert_null(out.fwd.params);
    assert_string_equal(out.fwd.client, "beta");
    mcp_server_outcome_free(&out);

    const char *unknown[] = {"nope", "alpha-hidden", "code-run", "alpha-"};
    for (size_t i = 0; i < 4; i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
                 "{\"name\":\"%s\",\"arguments\":{}}}",
                 unknown[i]);
        json_t *r = answer(&ctx, text);
        assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
        assert_non_null(strstr(error_message(r), unknown[i]));
        json_decref(r);
    }

    json_t *r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
                             "\"params\":{\"name\":\"alpha-echo\",\"arguments\":[1]}}");
    assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
    json_decref(r);
    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{}}");
    assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
    json_decref(r);

    /* Without any catalog every tool is unknown. */
    mcp_server_ctx_t empty = {0};
    r = answer(&empty, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":"
                       "{\"name\":\"alpha-echo\"}}");
    assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
    json_decref(r);
    fake_free(&f);
}

/* Runs tools/call of name with no arguments; returns the outcome (caller frees). */
static void call_tool(const mcp_server_ctx_t *ctx, const char *name, mcp_server_outcome_t *out)
{
    char text[256];
    snprintf(text, sizeof(text),
             "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"%s\"}}",
             name);
    run(ctx, text, out);
}

/* A forward of tools/call to client's tool, the name the client used kept for the logs. */
static void assert_forwarded(const mcp_server_ctx_t *ctx, const char *name, const char *client,
                             const char *tool)
{
    mcp_server_outcome_t out;
    call_tool(ctx, name, &out);
    assert_int_equal(out.kind, MCP_SERVER_FORWARD);
    assert_string_equal(out.fwd.client, client);
    assert_string_equal(out.fwd.tool, tool);
    assert_string_equal(out.fwd.exposed, name);
    mcp_server_outcome_free(&out);
}

/* The -32602 answer to tools/call of name; returns its message (caller frees). */
static char *call_error(const mcp_server_ctx_t *ctx, const char *name)
{
    mcp_server_outcome_t out;
    call_tool(ctx, name, &out);
    assert_int_equal(out.kind, MCP_SERVER_REPLY);
    assert_int_equal(error_code(out.reply), JSONRPC_INVALID_PARAMS);
    char *message = xstrdup(error_message(out.reply));
    mcp_server_outcome_free(&out);
    return message;
}

static void test_tools_call_bare_names(void **state)
{
    fake_t f;
    fake_init(&f);
    add_tool(&f, "gamma", "mul", "Multiplies too.", true, true, false);
    add_tool(&f, "delta", "alpha-echo", "Named like another's exposed name.", true, true, false);
    add_tool(&f, "delta", "run", "Shares a name with a Code Mode tool.", true, true, false);
    mcp_server_ctx_t ctx = {.cat = &f.cat};

    /* One callable tool of that name: its server gets the call. The tool of a client that is
     * down counts too, and the hub answers that it is unavailable. */
    assert_forwarded(&ctx, "echo", "alpha", "echo");
    assert_forwarded(&ctx, "add", "beta", "add");
    assert_forwarded(&ctx, "two", "gamma", "two");

    /* Several: -32602 naming the exposed names to use, and nothing is forwarded. */
    char *message = call_error(&ctx, "mul");
    assert_non_null(strstr(message, "Ambiguous tool name: mul"));
    assert_non_null(strstr(message, "beta-mul, gamma-mul"));
    free(message);

    /* An exposed name wins over another tool's bare name. */
    assert_forwarded(&ctx, "alpha-echo", "alpha", "echo");
    assert_forwarded(&ctx, "delta-alpha-echo", "delta", "alpha-echo");

    /* Not executable, or Code Mode's: not reachable by the bare name either, and not counted:
     * "run" is delta's alone. */
    message = call_error(&ctx, "hidden");
    assert_string_equal(message, "Unknown tool: hidden");
    free(message);
    assert_forwarded(&ctx, "run", "delta", "run");
    f.cat.tools[f.cat.n_tools - 1].executable = false;
    message = call_error(&ctx, "run");
    assert_string_equal(message, "Unknown tool: run");
    free(message);

    /* The request's filter applies before the count: beta's mul is out, so gamma's is the one;
     * alpha's echo is out, so "echo" is unknown. */
    mcp_filter_t filter = MCP_FILTER_INIT;
    assert_int_equal(mcp_filter_restrict_tools(&filter, "gamma-*"), 0);
    ctx.filter = &filter;
    assert_forwarded(&ctx, "mul", "gamma", "mul");
    message = call_error(&ctx, "echo");
    assert_string_equal(message, "Unknown tool: echo");
    free(message);
    mcp_filter_free(&filter);
    fake_free(&f);
}

static void test_forward_reply(void **state)
{
    mcp_server_forward_t call = {.client = "alpha", .method = "tools/call"};
    json_t *id = json_integer(9);

    json_t *result =
        json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", "boom", "isError", 1);
    json_t *r = mcp_server_forward_reply(id, &call, result, NULL);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 9);
    assert_true(json_equal(json_object_get(r, "result"), result));
    json_decref(r);
    json_decref(result);

    json_t *data = json_pack("{s:s}", "why", "because");
    mcp_error_t err = {.code = -32001, .data = data};
    snprintf(err.message, sizeof(err.message), "timed out after 30 s");
    r = mcp_server_forward_reply(id, &call, NULL, &err);
    assert_int_equal(error_code(r), -32001);
    assert_string_equal(error_message(r), "timed out after 30 s");
    assert_true(json_equal(json_object_get(json_object_get(r, "error"), "data"), data));
    json_decref(r);
    json_decref(data);

    /* resources/read: contents come back under the URIs the client knows. */
    mcp_server_forward_t read = {.client = "alpha", .method = "resources/read"};
    result = json_pack("{s:[{s:s, s:s}, {s:s}]}", "contents", "uri", "file:///notes.txt", "text",
                       "hello", "text", "no uri");
    r = mcp_server_forward_reply(id, &read, result, NULL);
    json_t *contents = json_object_get(result_of(r), "contents");
    assert_string_equal(json_string_value(json_object_get(json_array_get(contents, 0), "uri")),
                        "gatehouse://alpha/file:///notes.txt");
    assert_string_equal(json_string_value(json_object_get(json_array_get(contents, 0), "text")),
                        "hello");
    assert_null(json_object_get(json_array_get(contents, 1), "uri"));
    /* The hub's result is not changed. */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(result, "contents"), 0), "uri")),
                        "file:///notes.txt");
    json_decref(r);
    json_decref(result);
    json_decref(id);
}

/* ---- resources and prompts ------------------------------------------------------------------ */

static void test_resources(void **state)
{
    fake_t f;
    fake_init(&f);
    mcp_server_ctx_t ctx = {.cat = &f.cat};

    json_t *r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}");
    json_t *list = json_object_get(result_of(r), "resources");
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "uri")),
                        "gatehouse://alpha/file:///notes.txt");
    json_decref(r);

    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/templates/list\"}");
    list = json_object_get(result_of(r), "resourceTemplates");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "uriTemplate")),
                        "gatehouse://alpha/file:///{path}");
    json_decref(r);

    /* A URI made from a template maps back by its prefix like a listed one. */
    mcp_server_outcome_t out;
    run(&ctx,
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/read\",\"params\":"
        "{\"uri\":\"gatehouse://alpha/file:///deep/x.md\"}}",
        &out);
    assert_int_equal(out.kind, MCP_SERVER_FORWARD);
    assert_string_equal(out.fwd.client, "alpha");
    assert_string_equal(out.fwd.method, "resources/read");
    assert_string_equal(json_string_value(json_object_get(out.fwd.params, "uri")),
                        "file:///deep/x.md");
    mcp_server_outcome_free(&out);

    const char *missing[] = {"file:///notes.txt", "gatehouse://nobody/file:///x",
                             "gatehouse://alpha/", "gatehouse://alpha"};
    for (size_t i = 0; i < 4; i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":"
                 "{\"uri\":\"%s\"}}",
                 missing[i]);
        r = answer(&ctx, text);
        assert_int_equal(error_code(r), -32002);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_object_get(r, "error"), "data"), "uri")),
                            missing[i]);
        json_decref(r);
    }
    fake_free(&f);
}

static void test_prompts(void **state)
{
    fake_t f;
    fake_init(&f);
    mcp_server_ctx_t ctx = {.cat = &f.cat};

    json_t *r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/list\"}");
    json_t *list = json_object_get(result_of(r), "prompts");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
                        "alpha-greet");
    json_decref(r);

    mcp_server_outcome_t out;
    run(&ctx,
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\",\"params\":"
        "{\"name\":\"alpha-greet\",\"arguments\":{\"who\":\"you\"}}}",
        &out);
    assert_int_equal(out.kind, MCP_SERVER_FORWARD);
    assert_string_equal(out.fwd.client, "alpha");
    assert_string_equal(out.fwd.method, "prompts/get");
    assert_string_equal(json_string_value(json_object_get(out.fwd.params, "name")), "greet");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out.fwd.params, "arguments"), "who")),
        "you");
    mcp_server_outcome_free(&out);

    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/get\",\"params\":"
                     "{\"name\":\"greet\"}}");
    assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
    json_decref(r);
    fake_free(&f);
}

static void test_filter_headers(void **state)
{
    fake_t f;
    fake_init(&f);
    mcp_filter_t filter = MCP_FILTER_INIT;
    assert_int_equal(mcp_filter_restrict_clients(&filter, "alpha, gamma"), 0);
    assert_int_equal(mcp_filter_restrict_tools(&filter, "alpha-*, gamma-two"), 0);
    mcp_server_ctx_t ctx = {.cat = &f.cat, .filter = &filter};

    json_t *r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(result_of(r), "tools");
    assert_int_equal(json_array_size(tools), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
                        "alpha-echo");
    assert_string_equal(json_string_value(json_object_get(json_array_get(tools, 1), "name")),
                        "gamma-two");
    json_decref(r);

    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
                     "{\"name\":\"beta-mul\"}}");
    assert_int_equal(error_code(r), JSONRPC_INVALID_PARAMS);
    json_decref(r);

    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/list\"}");
    json_t *list = json_object_get(result_of(r), "resources");
    assert_int_equal(json_array_size(list), 1); /* beta's resource is filtered out */
    json_decref(r);
    r = answer(&ctx, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":"
                     "{\"uri\":\"gatehouse://beta/mem://x\"}}");
    assert_int_equal(error_code(r), -32002);
    json_decref(r);
    mcp_filter_free(&filter);
    fake_free(&f);
}

/* ---- change digest -------------------------------------------------------------------------- */

static void assert_changes(const mcp_server_digest_t *a, const mcp_server_digest_t *b,
                           const char *expect)
{
    json_t *n = mcp_server_changes(a, b);
    char got[256] = "";
    for (size_t i = 0; i < json_array_size(n); i++) {
        const char *m = json_string_value(json_object_get(json_array_get(n, i), "method"));
        strcat(got, i ? " " : "");
        strcat(got, m);
        assert_null(json_object_get(json_array_get(n, i), "id"));
    }
    assert_string_equal(got, expect);
    json_decref(n);
}

static void test_digest(void **state)
{
    fake_t f;
    fake_init(&f);
    mcp_server_digest_t d0, d1;
    mcp_server_digest(&f.cat, &d0);
    mcp_server_digest(&f.cat, &d1);
    assert_changes(&d0, &d1, "");

    /* A tool nobody here can see changes: no notification. */
    json_object_set_new((json_t *)f.cat.tools[4].def, "description", json_string("changed"));
    mcp_server_digest(&f.cat, &d1);
    assert_changes(&d0, &d1, "");

    json_object_set_new((json_t *)f.cat.tools[0].def, "description", json_string("changed"));
    mcp_server_digest(&f.cat, &d1);
    assert_changes(&d0, &d1, "notifications/tools/list_changed");

    /* Code Mode tools coming or going change the list: the meta-tools come and go with them. */
    mcp_server_digest(&f.cat, &d0);
    f.cat.tools[4].available = false;
    mcp_server_digest(&f.cat, &d1);
    assert_changes(&d0, &d1, "notifications/tools/list_changed");
    f.cat.tools[4].available = true;

    /* A client going down hides its tools. */
    mcp_server_digest(&f.cat, &d0);
    f.cat.tools[3].available = false;
    mcp_server_digest(&f.cat, &d1);
    assert_changes(&d0, &d1, "notifications/tools/list_changed");

    d0 = d1;
    json_array_clear(f.cat.prompts);
    json_array_clear(f.cat.templates);
    mcp_server_digest(&f.cat, &d1);
    assert_changes(&d0, &d1,
                   "notifications/resources/list_changed notifications/prompts/list_changed");

    mcp_server_digest(NULL, &d0);
    assert_changes(&d0, &d1,
                   "notifications/tools/list_changed notifications/resources/list_changed "
                   "notifications/prompts/list_changed");
    fake_free(&f);
}

/* ---- sessions ------------------------------------------------------------------------------- */

static int sessions_setup(void **state)
{
    mcp_server_sessions_clear();
    mcp_server_sessions_configure(100, 1000);
    return 0;
}

static void test_sessions(void **state)
{
    mcp_server_session_t a, b, got;
    assert_int_equal(mcp_server_session_create("2025-06-18", "ide", 1000.0, &a), 0);
    assert_int_equal(mcp_server_session_create("2025-11-25", NULL, 1000.0, &b), 0);
    assert_int_equal(strlen(a.id), MCP_SERVER_SESSION_ID_LEN);
    assert_int_equal(strspn(a.id, "0123456789abcdef"), MCP_SERVER_SESSION_ID_LEN);
    assert_string_not_equal(a.id, b.id);
    assert_int_equal(mcp_server_session_count(), 2);

    assert_true(mcp_server_session_touch(a.id, 1050.0, &got));
    assert_string_equal(got.version, "2025-06-18");
    assert_string_equal(got.client, "ide");
    assert_false(got.initialized);
    mcp_server_session_mark_initialized(a.id);
    assert_true(mcp_server_session_touch(a.id, 1100.0, &got));
    assert_true(got.initialized);

    assert_false(mcp_server_session_touch("0123456789abcdef0123456789abcdef", 1100.0, NULL));
    assert_false(mcp_server_session_touch("short", 1100.0, NULL));
    assert_false(mcp_server_session_touch(NULL, 1100.0, NULL));

    /* b was last used at 1000 and the idle limit is 100 s; a was touched at 1100. */
    assert_false(mcp_server_session_touch(b.id, 1100.5, NULL));
    assert_int_equal(mcp_server_session_count(), 1);
    assert_true(mcp_server_session_touch(a.id, 1150.0, NULL));

    /* One GET stream per session: a newer one supersedes the older. */
    uint64_t g1 = mcp_server_session_claim_stream(a.id);
    assert_int_not_equal(g1, 0);
    assert_true(mcp_server_session_stream_current(a.id, g1));
    uint64_t g2 = mcp_server_session_claim_stream(a.id);
    assert_int_not_equal(g2, g1);
    assert_false(mcp_server_session_stream_current(a.id, g1));
    assert_true(mcp_server_session_stream_current(a.id, g2));
    assert_int_equal(mcp_server_session_claim_stream("0123456789abcdef0123456789abcdef"), 0);

    assert_true(mcp_server_session_delete(a.id));
    assert_false(mcp_server_session_stream_current(a.id, g2));
    assert_false(mcp_server_session_delete(a.id));
    assert_false(mcp_server_session_touch(a.id, 1150.0, NULL));
    assert_int_equal(mcp_server_session_count(), 0);
}

static void test_sessions_eviction(void **state)
{
    mcp_server_sessions_configure(1e6, 3);
    mcp_server_session_t s[4];
    for (int i = 0; i < 3; i++)
        assert_int_equal(mcp_server_session_create("2025-06-18", "c", 10.0 + i, &s[i]), 0);
    assert_true(mcp_server_session_touch(s[0].id, 20.0, NULL)); /* s[1] is now the oldest */

    assert_int_equal(mcp_server_session_create("2025-06-18", "c", 21.0, &s[3]), 0);
    assert_int_equal(mcp_server_session_count(), 3);
    assert_false(mcp_server_session_touch(s[1].id, 22.0, NULL));
    assert_true(mcp_server_session_touch(s[0].id, 22.0, NULL));
    assert_true(mcp_server_session_touch(s[2].id, 22.0, NULL));
    assert_true(mcp_server_session_touch(s[3].id, 22.0, NULL));

    /* Creation sweeps expired sessions first, so a full table of idle ones is emptied. */
    mcp_server_sessions_configure(5, 3);
    assert_int_equal(mcp_server_session_create("2025-06-18", "c", 100.0, NULL), 0);
    assert_int_equal(mcp_server_session_count(), 1);
}

#define THREADS 4
#define PER_THREAD 300

static void *session_worker(void *arg)
{
    int *failures = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        mcp_server_session_t s;
        if (mcp_server_session_create("2025-06-18", "t", 1.0, &s) != 0 ||
            !mcp_server_session_touch(s.id, 2.0, NULL))
            (*failures)++;
        if (i % 2 == 0 && !mcp_server_session_delete(s.id))
            (*failures)++;
    }
    return NULL;
}

static void test_sessions_threads(void **state)
{
    mcp_server_sessions_configure(1e6, 100000);
    pthread_t th[THREADS];
    int failures[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, session_worker, &failures[i]);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(failures[i], 0);
    }
    assert_int_equal(mcp_server_session_count(), THREADS * PER_THREAD / 2);
    mcp_server_sessions_clear();
    assert_int_equal(mcp_server_session_count(), 0);
}

/* ---- transport checks ----------------------------------------------------------------------- */

static void test_tokens(void **state)
{
    const char *tokens[] = {"first-token", "", "second"};
    assert_true(mcp_server_token_ok("Bearer first-token", tokens, 3));
    assert_true(mcp_server_token_ok("Bearer second", tokens, 3));
    assert_true(mcp_server_token_ok("bearer second", tokens, 3));
    assert_false(mcp_server_token_ok("Bearer second2", tokens, 3));
    assert_false(mcp_server_token_ok("Bearer secon", tokens, 3));
    assert_false(mcp_server_token_ok("Bearer ", tokens, 3)); /* the empty token never matches */
    assert_false(mcp_server_token_ok("Basic c2Vjb25k", tokens, 3));
    assert_false(mcp_server_token_ok("second", tokens, 3));
    assert_false(mcp_server_token_ok(NULL, tokens, 3));
    assert_false(mcp_server_token_ok("Bearer first-token", tokens, 0));
}

static void test_loopback(void **state)
{
    assert_true(mcp_server_peer_is_loopback("127.0.0.1"));
    assert_true(mcp_server_peer_is_loopback("127.3.2.1"));
    assert_true(mcp_server_peer_is_loopback("::1"));
    assert_true(mcp_server_peer_is_loopback("::ffff:127.0.0.1"));
    assert_false(mcp_server_peer_is_loopback("10.0.0.1"));
    assert_false(mcp_server_peer_is_loopback("128.0.0.1"));
    assert_false(mcp_server_peer_is_loopback("::ffff:10.0.0.1"));
    assert_false(mcp_server_peer_is_loopback("::2"));
    assert_false(mcp_server_peer_is_loopback("localhost"));
    assert_false(mcp_server_peer_is_loopback(""));
    assert_false(mcp_server_peer_is_loopback(NULL));
}

static void test_origin(void **state)
{
    assert_true(mcp_server_origin_ok(NULL));
    assert_true(mcp_server_origin_ok("http://localhost:6274"));
    assert_true(mcp_server_origin_ok("http://LOCALHOST"));
    assert_true(mcp_server_origin_ok("http://127.0.0.1:8080"));
    assert_true(mcp_server_origin_ok("https://[::1]:8443"));
    assert_false(mcp_server_origin_ok("https://evil.example"));
    assert_false(mcp_server_origin_ok("http://localhost.evil.example:80"));
    assert_false(mcp_server_origin_ok("http://127.0.0.1.evil.example"));
    assert_false(mcp_server_origin_ok("http://[::2]"));
    assert_false(mcp_server_origin_ok("null"));
    assert_false(mcp_server_origin_ok(""));
}

static void check_accept(const char *header, bool json, bool sse)
{
    bool j, s;
    mcp_server_accepts(header, &j, &s);
    assert_int_equal(j, json);
    assert_int_equal(s, sse);
}

static void test_accept(void **state)
{
    check_accept(NULL, true, true);
    check_accept("application/json, text/event-stream", true, true);
    check_accept("text/event-stream", false, true);
    check_accept("application/json", true, false);
    check_accept("application/json;q=0.9", true, false);
    check_accept("  TEXT/EVENT-STREAM ; charset=utf-8", false, true);
    check_accept("*/*", true, true);
    check_accept("application/*", true, false);
    check_accept("text/html", false, false);
    check_accept("application/jsonx", false, false);
    check_accept("", false, false);
}

int main(void)
{
    alloc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_initialize),
        cmocka_unit_test(test_ping_and_errors),
        cmocka_unit_test(test_tools_list),
        cmocka_unit_test(test_tools_list_pages),
        cmocka_unit_test(test_extra_tools),
        cmocka_unit_test(test_tools_call),
        cmocka_unit_test(test_tools_call_bare_names),
        cmocka_unit_test(test_forward_reply),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_filter_headers),
        cmocka_unit_test(test_digest),
        cmocka_unit_test_setup(test_sessions, sessions_setup),
        cmocka_unit_test_setup(test_sessions_eviction, sessions_setup),
        cmocka_unit_test_setup(test_sessions_threads, sessions_setup),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_accept),
    };
    return cmocka_run_group_tests_name("mcp_server", tests, NULL, NULL);
}
