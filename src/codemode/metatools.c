/*
 * metatools.c - the four meta-tools: their definitions, the answers of the three that read the
 * stub tree, and one asynchronous entry for all four (contract in metatools.h).
 *
 * The definitions are constant, whatever the binding level or the tools behind them, so a
 * provider's prompt cache keeps hitting when a server's tools change; the tree itself is what
 * listToolFiles answers.
 *
 * A call: listToolFiles, readToolFile and getToolDocs compute their text at once and deliver it
 * from a zero timer on the caller's loop; executeToolCode starts the executor, whose outcome is
 * formatted by codemode_outcome_format (exec.h). Either way the call object owns what it needs
 * until the callback has run or the caller cancelled.
 */
#include "codemode/metatools.h"

#include <event2/event.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

static const char *const meta_names[CODEMODE_META_COUNT] = {
    "listToolFiles",
    "readToolFile",
    "getToolDocs",
    "executeToolCode",
};

codemode_meta_t codemode_meta_kind(const char *name)
{
    for (int i = 0; name != NULL && i < CODEMODE_META_COUNT; i++)
        if (strcmp(meta_names[i], name) == 0)
            return (codemode_meta_t)i;
    return CODEMODE_META_NONE;
}

const char *codemode_meta_name(codemode_meta_t kind)
{
    return kind >= 0 && kind < CODEMODE_META_COUNT ? meta_names[kind] : "unknown";
}

/* ---- definitions ---------------------------------------------------------------------------- */

#define WORKFLOW                                                                                   \
    "Code Mode: the MCP tools behind this gateway are Python functions that you call from a "      \
    "script, not one by one. Workflow: 1) listToolFiles() lists the stub files, one per server "   \
    "(servers/<server>.pyi) or per tool (servers/<server>/<tool>.pyi); 2) readToolFile(fileName) " \
    "shows the Python signatures you need (getToolDocs(server, tool) documents one tool in "       \
    "full); 3) executeToolCode(code) runs one script that calls them, for example "                \
    "`result = everything.echo(message=\"hi\")`."

static const char desc_list[] = WORKFLOW " This tool lists the stub files.";

static const char desc_read[] =
    "Reads one stub file listed by listToolFiles: the Python signatures of tools (keyword-only "
    "parameters with types, required ones first, a return type and a one-line description). "
    "The answer starts with the file's total line count; startLine and endLine (1-based, "
    "inclusive) read part of a long file. Then write a script for executeToolCode.";

static const char desc_docs[] =
    "The full documentation of one tool: its description, each parameter with type, whether it "
    "is required and its description, the output schema when the server gives one, and a call "
    "example. server and tool are named as in the stubs (server=\"everything\", tool=\"echo\"); "
    "the MCP names work too.";

static const char desc_exec[] =
    "Runs a Python 3 script in an isolated sandbox. Each MCP server is a global object and each "
    "of its tools a method, as the stubs from readToolFile show: "
    "`result = everything.echo(message=\"hi\")`. Calls are synchronous and take keyword "
    "arguments only; a call returns the tool's structured content, else its text parsed as "
    "JSON, else the text, and a failing call raises ToolError (catch it with try/except). Chain "
    "several calls, filter and combine their results in the script, and print() or assign to "
    "`result` only what you need: the answer holds the printed output, the value of the global "
    "`result` as JSON, the tool calls made and any error with its line and a hint. Modules you "
    "can import: base64, bisect, calendar, cmath, collections, copy, csv, dataclasses, datetime, "
    "decimal, difflib, enum, fractions, functools, hashlib, heapq, hmac, html, io, itertools, "
    "json, keyword, math, numbers, operator, pprint, random, re, secrets, statistics, string, "
    "struct, textwrap, time, typing, unicodedata, urllib.parse, uuid, zlib. There are no files, "
    "no network and no processes; every script starts afresh.";

static json_t *schema_of(int kind)
{
    switch (kind) {
    case CODEMODE_META_READ:
        return json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}}, s:[s]}", "type",
                         "object", "properties", "fileName", "type", "string", "description",
                         "A file listed by listToolFiles, e.g. servers/everything.pyi", "startLine",
                         "type", "integer", "description",
                         "First line to read, from 1 (default: 1)", "endLine", "type", "integer",
                         "description", "Last line to read, inclusive (default: the last line)",
                         "required", "fileName");
    case CODEMODE_META_DOCS:
        return json_pack("{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:[s, s]}", "type", "object",
                         "properties", "server", "type", "string", "description",
                         "The server's name, as in its stub file", "tool", "type", "string",
                         "description", "The tool's name, as in the stub", "required", "server",
                         "tool");
    case CODEMODE_META_EXECUTE:
        return json_pack("{s:s, s:{s:{s:s, s:s}}, s:[s]}", "type", "object", "properties", "code",
                         "type", "string", "description",
                         "The Python 3 script. Set the global `result` or print() what the "
                         "answer should hold.",
                         "required", "code");
    default:
        return json_pack("{s:s, s:{}}", "type", "object", "properties");
    }
}

static const char *description_of(int kind)
{
    static const char *const d[CODEMODE_META_COUNT] = {desc_list, desc_read, desc_docs, desc_exec};
    return d[kind];
}

json_t *codemode_meta_openai_tools(void)
{
    json_t *out = json_array();
    for (int i = 0; i < CODEMODE_META_COUNT; i++)
        json_array_append_new(out, json_pack("{s:s, s:{s:s, s:s, s:o}}", "type", "function",
                                             "function", "name", meta_names[i], "description",
                                             description_of(i), "parameters", schema_of(i)));
    return out;
}

json_t *codemode_meta_mcp_tools(void)
{
    json_t *out = json_array();
    for (int i = 0; i < CODEMODE_META_COUNT; i++)
        json_array_append_new(out,
                              json_pack("{s:s, s:s, s:o}", "name", meta_names[i], "description",
                                        description_of(i), "inputSchema", schema_of(i)));
    return out;
}

/* ---- listToolFiles -------------------------------------------------------------------------- */

static char *answer_list(const codemode_bindings_t *b, codemode_binding_level_t level)
{
    if (codemode_bindings_count(b) == 0)
        return xstrdup("No Code Mode tools are available to this request: no file to read.");
    size_t n = 0;
    codemode_stub_file_t *files = codemode_stub_files(b, level, &n);
    buf_t out = BUF_INIT;
    buf_appends(&out, CODEMODE_STUB_DIR "\n");
    const codemode_server_binding_t *dir = NULL;
    for (size_t i = 0; i < n; i++) {
        const codemode_stub_file_t *f = &files[i];
        if (f->tool == NULL) {
            buf_appendf(&out, "  %s" CODEMODE_STUB_EXT " (%zu tool%s)\n", f->server->client,
                        f->server->n_tools, f->server->n_tools == 1 ? "" : "s");
            continue;
        }
        if (f->server != dir)
            buf_appendf(&out, "  %s/\n", f->server->client);
        dir = f->server;
        buf_appendf(&out, "    %s" CODEMODE_STUB_EXT "\n", f->tool->py);
    }
    buf_appendf(&out,
                "Next: readToolFile(fileName=\"%s\") for the signatures, then executeToolCode "
                "with a script that calls them.",
                files[0].name);
    codemode_stub_files_free(files, n);
    return buf_release(&out);
}

/* ---- readToolFile --------------------------------------------------------------------------- */

/* "The files are: a, b, c." appended. */
static void append_valid_names(buf_t *out, const codemode_stub_file_t *files, size_t n)
{
    buf_appends(out, " The files are: ");
    for (size_t i = 0; i < n; i++)
        buf_appendf(out, "%s%s", i > 0 ? ", " : "", files[i].name);
    buf_appends(out, ".");
}

/* The file a model meant: the exact name, or the name without "servers/" or ".pyi", or with a
 * leading "./" or "/". NULL when none. */
static const codemode_stub_file_t *find_file(const codemode_stub_file_t *files, size_t n,
                                             const char *name)
{
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    while (name[0] == '/')
        name++;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const char *full = files[i].name;
            const char *bare = full + strlen(CODEMODE_STUB_DIR);
            size_t bare_len = strlen(bare) - strlen(CODEMODE_STUB_EXT);
            if (pass == 0 && (strcmp(full, name) == 0 || strcmp(bare, name) == 0))
                return &files[i];
            if (pass == 1) {
                const char *stem = strncmp(name, CODEMODE_STUB_DIR, strlen(CODEMODE_STUB_DIR)) == 0
                                       ? name + strlen(CODEMODE_STUB_DIR)
                                       : name;
                if (strlen(stem) == bare_len && strncmp(stem, bare, bare_len) == 0)
                    return &files[i];
            }
        }
    }
    return NULL;
}

/* An optional line number argument: absent or null is 0; an integer (or a number with no
 * fraction, or a string of digits, as models sometimes send) is that; anything else is -1. */
static long line_arg(const json_t *args, const char *name)
{
    const json_t *v = json_object_get(args, name);
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (long)json_integer_value(v) : -1;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d >= 1 && d < 1e9 && floor(d) == d ? (long)d : -1;
    }
    const char *s = json_string_value(v);
    if (s == NULL || *s == '\0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9)
        return -1;
    long n = strtol(s, NULL, 10);
    return n > 0 ? n : -1;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0'; p++)
        n += *p == '\n';
    if (*text != '\0' && text[strlen(text) - 1] != '\n')
        n++;
    return n;
}

/* Appends lines [from, to] (1-based, inclusive) of text. */
static void append_lines(buf_t *out, const char *text, size_t from, size_t to)
{
    size_t line = 1;
    const char *p = text;
    while (*p != '\0' && line <= to) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) + 1 : strlen(p);
        if (line >= from)
            buf_append(out, p, len);
        p += len;
        line++;
    }
}

static char *read_error(const char *what, const char *name, const codemode_stub_file_t *files,
                        size_t n, bool *is_error)
{
    buf_t out = BUF_INIT;
    *is_error = true;
    if (name != NULL) {
        buf_appendf(&out, "%s: ", what);
        buf_append(&out, name, strlen(name) > 200 ? 200 : strlen(name));
        buf_appends(&out, ".");
    } else {
        buf_appends(&out, what);
    }
    append_valid_names(&out, files, n);
    return buf_release(&out);
}

static char *answer_read(const codemode_bindings_t *b, codemode_binding_level_t level,
                         const json_t *args, bool *is_error)
{
    size_t n = 0;
    codemode_stub_file_t *files = codemode_stub_files(b, level, &n);
    const char *name = json_string_value(json_object_get(args, "fileName"));
    char *answer = NULL;
    const codemode_stub_file_t *f = NULL;

    if (n == 0) {
        *is_error = true;
        answer = xstrdup("No Code Mode tools are available to this request: no file to read.");
    } else if (name == NULL || *name == '\0') {
        answer = read_error("readToolFile needs fileName, a file listed by listToolFiles.", NULL,
                            files, n, is_error);
    } else if (strstr(name, "..") != NULL) {
        answer = read_error("fileName may not contain \"..\"", name, files, n, is_error);
    } else if ((f = find_file(files, n, name)) == NULL) {
        answer = read_error("No such file", name, files, n, is_error);
    }
    if (answer != NULL) {
        codemode_stub_files_free(files, n);
        return answer;
    }

    long from = line_arg(args, "startLine");
    long to = line_arg(args, "endLine");
    char *text = codemode_stub_text(f);
    size_t total = count_lines(text);
    buf_t out = BUF_INIT;
    if (from < 0 || to < 0) {
        *is_error = true;
        buf_appendf(&out, "startLine and endLine must be line numbers from 1; %s has %zu lines.",
                    f->name, total);
    } else if ((size_t)from > total || (to > 0 && to < from)) {
        *is_error = true;
        buf_appendf(&out, "No lines %ld-%ld: %s has %zu lines.", from > 0 ? from : 1,
                    to > 0 ? to : (long)total, f->name, total);
    } else if (from <= 1 && (to == 0 || (size_t)to >= total)) {
        buf_appendf(&out, "# %s: %zu lines\n%s", f->name, total, text);
    } else {
        size_t first = from > 0 ? (size_t)from : 1;
        size_t last = to > 0 && (size_t)to < total ? (size_t)to : total;
        buf_appendf(&out, "# %s: %zu lines, showing %zu-%zu\n", f->name, total, first, last);
        append_lines(&out, text, first, last);
    }
    free(text);
    codemode_stub_files_free(files, n);
    return buf_release(&out);
}

/* ---- getToolDocs ---------------------------------------------------------------------------- */

/* One line of text: whitespace runs (newlines too) become one space. */
static void append_one_line(buf_t *out, const char *s)
{
    bool space = false;
    bool any = false;
    for (; *s != '\0'; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
            space = any;
            continue;
        }
        if (space)
            buf_appendc(out, ' ');
        space = false;
        any = true;
        buf_appendc(out, *s);
    }
}

static bool in_required(const json_t *required, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach (required, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return true;
    }
    return false;
}

static bool is_identifier(const char *s)
{
    char *id = codemode_py_ident(s);
    bool same = strcmp(id, s) == 0;
    free(id);
    return same;
}

/* "  name: type, required - description (default: x)" */
static void append_param(buf_t *out, const char *name, const json_t *schema, bool required)
{
    buf_appendf(out, "  %s: ", name);
    codemode_stub_type(out, schema);
    buf_appends(out, required ? ", required" : ", optional");
    const char *desc = json_string_value(json_object_get(schema, "description"));
    if (desc != NULL && *desc != '\0') {
        buf_appends(out, " - ");
        append_one_line(out, desc);
    }
    const json_t *def = json_object_get(schema, "default");
    if (def != NULL) {
        char *text = json_dumps(def, JSON_ENCODE_ANY | JSON_COMPACT);
        buf_appendf(out, " (default: %s)", text);
        free(text);
    }
    if (!is_identifier(name))
        buf_appendf(out, " [not a Python name: pass it as **{\"%s\": ...}]", name);
    buf_appends(out, "\n");
}

/* A JSON scalar as Python source; false for anything else. */
static bool append_py_scalar(buf_t *out, const json_t *v)
{
    if (json_is_string(v)) {
        codemode_stub_pystr(out, json_string_value(v));
    } else if (json_is_number(v)) {
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        buf_appends(out, text);
        free(text);
    } else if (json_is_boolean(v)) {
        buf_appends(out, json_is_true(v) ? "True" : "False");
    } else {
        return false;
    }
    return true;
}

/* A placeholder value for an example call: the first enum value, the default, or a value of
 * the parameter's type. */
static void append_example_value(buf_t *out, const json_t *schema)
{
    const json_t *en = json_object_get(schema, "enum");
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (append_py_scalar(out, json_array_get(en, 0)) ||
        append_py_scalar(out, json_object_get(schema, "default")))
        return;
    if (type == NULL || strcmp(type, "string") == 0)
        buf_appends(out, "\"...\"");
    else if (strcmp(type, "integer") == 0)
        buf_appends(out, "1");
    else if (strcmp(type, "number") == 0)
        buf_appends(out, "1.0");
    else if (strcmp(type, "boolean") == 0)
        buf_appends(out, "True");
    else if (strcmp(type, "array") == 0)
        buf_appends(out, "[]");
    else if (strcmp(type, "object") == 0)
        buf_appends(out, "{}");
    else
        buf_appends(out, "None");
}

/* "result = server.tool(a=..., b=...)" with the required parameters. */
static void append_example(buf_t *out, const codemode_server_binding_t *s,
                           const codemode_tool_binding_t *t)
{
    const json_t *input = json_object_get(t->t->def, "inputSchema");
    const json_t *props = json_object_get(input, "properties");
    const json_t *required = json_object_get(input, "required");
    buf_appendf(out, "Example:\n  result = %s.%s(", s->py, t->py);
    size_t n = 0;
    buf_t odd = BUF_INIT;
    size_t i;
    const json_t *r;
    json_array_foreach (required, i, r) {
        const char *name = json_string_value(r);
        if (name == NULL)
            continue;
        const json_t *schema = json_object_get(props, name);
        if (is_identifier(name)) {
            buf_appendf(out, "%s%s=", n++ > 0 ? ", " : "", name);
            append_example_value(out, schema);
        } else {
            buf_appends(&odd, odd.len > 0 ? ", " : "");
            codemode_stub_pystr(&odd, name);
            buf_appends(&odd, ": ");
            append_example_value(&odd, schema);
        }
    }
    if (odd.len > 0)
        buf_appendf(out, "%s**{%s}", n > 0 ? ", " : "", buf_cstr(&odd));
    buf_appends(out, ")\n");
    buf_free(&odd);
}

static void append_output(buf_t *out, const json_t *def)
{
    const json_t *output = json_object_get(def, "outputSchema");
    if (!json_is_object(output)) {
        buf_appends(out, "Returns: no output schema; the call returns the tool's structured "
                         "content, else its text parsed as JSON, else the text.\n");
        return;
    }
    json_t *copy = json_copy((json_t *)output);
    json_object_del(copy, "$schema");
    char *text = json_dumps(copy, JSON_COMPACT);
    json_decref(copy);
    buf_appends(out, "Returns ");
    codemode_stub_type(out, output);
    buf_appendf(out, ", its structured content, with this output schema:\n  %s\n", text);
    free(text);
}

static char *docs_error(const char *fmt, const char *name, const codemode_bindings_t *b,
                        const codemode_server_binding_t *s, bool *is_error)
{
    buf_t out = BUF_INIT;
    *is_error = true;
    buf_appendf(&out, fmt, name != NULL ? name : "");
    if (s == NULL) {
        buf_appends(&out, " The servers are: ");
        for (size_t i = 0; i < codemode_bindings_count(b); i++)
            buf_appendf(&out, "%s%s", i > 0 ? ", " : "", codemode_bindings_server(b, i)->py);
    } else {
        buf_appendf(&out, " The tools of %s are: ", s->py);
        for (size_t i = 0; i < s->n_tools; i++)
            buf_appendf(&out, "%s%s", i > 0 ? ", " : "", s->tools[i].py);
    }
    buf_appends(&out, ".");
    return buf_release(&out);
}

static const codemode_tool_binding_t *find_tool(const codemode_server_binding_t *s,
                                                const char *name)
{
    for (size_t i = 0; i < s->n_tools; i++)
        if (strcmp(s->tools[i].py, name) == 0)
            return &s->tools[i];
    for (size_t i = 0; i < s->n_tools; i++)
        if (strcmp(s->tools[i].tool, name) == 0)
            return &s->tools[i];
    return NULL;
}

static char *answer_docs(const codemode_bindings_t *b, const json_t *args, bool *is_error)
{
    const char *server = json_string_value(json_object_get(args, "server"));
    const char *tool = json_string_value(json_object_get(args, "tool"));
    if (codemode_bindings_count(b) == 0) {
        *is_error = true;
        return xstrdup("No Code Mode tools are available to this request.");
    }
    if (server == NULL || tool == NULL)
        return docs_error("getToolDocs needs server and tool.%s", NULL, b, NULL, is_error);
    const codemode_server_binding_t *s = codemode_bindings_find_server(b, server);
    if (s == NULL)
        return docs_error("No server named %.200s.", server, b, NULL, is_error);
    const codemode_tool_binding_t *t = find_tool(s, tool);
    if (t == NULL)
        return docs_error("No tool named %.200s.", tool, b, s, is_error);

    const json_t *def = t->t->def;
    buf_t out = BUF_INIT;
    buf_appendf(&out, "%s.%s: tool ", s->py, t->py);
    codemode_stub_pystr(&out, t->tool);
    buf_appendf(&out, " of MCP server \"%s\"\n", s->client);
    const char *desc = json_string_value(json_object_get(def, "description"));
    const char *title = json_string_value(json_object_get(def, "title"));
    if (title != NULL && *title != '\0')
        buf_appendf(&out, "Title: %s\n", title);
    buf_appendf(&out, "%s\n\n", desc != NULL && *desc != '\0' ? desc : "No description.");

    const json_t *input = json_object_get(def, "inputSchema");
    const json_t *props = json_object_get(input, "properties");
    const json_t *required = json_object_get(input, "required");
    if (json_object_size(props) == 0) {
        buf_appends(&out, "Parameters: none\n");
    } else {
        buf_appends(&out, "Parameters (keyword arguments):\n");
        const char *name;
        const json_t *schema;
        json_object_foreach ((json_t *)props, name, schema) {
            if (in_required(required, name))
                append_param(&out, name, schema, true);
        }
        json_object_foreach ((json_t *)props, name, schema) {
            if (!in_required(required, name))
                append_param(&out, name, schema, false);
        }
    }
    append_output(&out, def);
    append_example(&out, s, t);
    return buf_release(&out);
}

char *codemode_meta_answer(codemode_meta_t kind, const codemode_bindings_t *b,
                           codemode_binding_level_t level, const json_t *args, bool *is_error)
{
    *is_error = false;
    switch (kind) {
    case CODEMODE_META_LIST:
        return answer_list(b, level);
    case CODEMODE_META_READ:
        return answer_read(b, level, args, is_error);
    case CODEMODE_META_DOCS:
        return answer_docs(b, args, is_error);
    default:
        *is_error = true;
        return xstrdup("executeToolCode runs through codemode_meta_call, not at once.");
    }
}

const char *codemode_meta_code(const json_t *args)
{
    const char *code = json_string_value(json_object_get(args, "code"));
    return code != NULL && code[strspn(code, " \t\r\n")] != '\0' ? code : NULL;
}

/* ---- calls ---------------------------------------------------------------------------------- */

struct codemode_meta_call {
    codemode_meta_done_fn done;
    void *arg;
    struct event *timer; /* delivers text, for the answers made at once */
    char *text;          /* owned */
    bool is_error;
    codemode_exec_t *exec; /* while a script runs */
};

static void call_free(codemode_meta_call_t *c)
{
    if (c->timer != NULL)
        event_free(c->timer);
    free(c->text);
    free(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    codemode_meta_call_t *c = arg;
    c->done(c->arg, c->text, c->is_error);
    call_free(c);
}

static void on_exec_done(void *arg, const codemode_outcome_t *o)
{
    codemode_meta_call_t *c = arg;
    c->exec = NULL;
    char *text = codemode_outcome_format(o);
    bool failed = o->status == NULL || strcmp(o->status, "ok") != 0;
    c->done(c->arg, text, failed);
    free(text);
    call_free(c);
}

static void deliver_later(struct event_base *base, codemode_meta_call_t *c)
{
    c->timer = evtimer_new(base, on_timer, c);
    struct timeval now = {0, 0};
    evtimer_add(c->timer, &now);
}

codemode_meta_call_t *codemode_meta_call(struct event_base *base, codemode_meta_t kind,
                                         const json_t *args, const codemode_meta_opts_t *o,
                                         codemode_meta_done_fn done, void *arg)
{
    codemode_meta_call_t *c = xcalloc(1, sizeof *c);
    c->done = done;
    c->arg = arg;
    if (kind != CODEMODE_META_EXECUTE) {
        if (kind == CODEMODE_META_NONE) {
            c->is_error = true;
            c->text = xstrdup("Unknown Code Mode tool: use listToolFiles, readToolFile, "
                              "getToolDocs or executeToolCode.");
        } else {
            c->text = codemode_meta_answer(kind, o->bindings, o->level, args, &c->is_error);
        }
        deliver_later(base, c);
        return c;
    }

    const char *code = codemode_meta_code(args);
    if (code == NULL) {
        c->is_error = true;
        c->text = xstrdup("executeToolCode needs code: a Python script as a string.");
        deliver_later(base, c);
        return c;
    }
    c->exec = codemode_exec_start(base, code, o->bindings, o->limits, o->request_id, o->log_content,
                                  on_exec_done, c);
    return c;
}

void codemode_meta_cancel(codemode_meta_call_t *c)
{
    if (c == NULL)
        return;
    if (c->exec != NULL)
        codemode_exec_cancel(c->exec);
    call_free(c);
}
