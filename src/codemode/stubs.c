/*
 * stubs.c - Python stubs from MCP tool schemas (format and rules in stubs.h).
 *
 * A type is built as a list of union parts ("str", "None", "Literal[...]"), so that nested
 * unions (anyOf of a type list, a nullable enum) flatten into one "X | Y | None" with no
 * duplicates; a part "Any" swallows the union. Nesting is rendered to a small depth only:
 * stubs tell the model the shape of a call, getToolDocs gives the full schema.
 *
 * Imports: a file imports from typing only the names its text uses, tracked while rendering.
 */
#include "codemode/stubs.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define MAX_TYPE_DEPTH 3    /* list[list[dict]] and deeper render as list */
#define MAX_LITERALS 32     /* a longer enum renders as its base type */
#define MAX_SUMMARY 200     /* bytes of a tool's summary */
#define MAX_SHAPE_DEPTH 3   /* objects spelt out in a docstring: {a: [{b: {c: dict}}]} */
#define MAX_SHAPE_FIELDS 12 /* fields of one object spelt out */

enum { USES_ANY = 1, USES_LITERAL = 2 };

/* ---- Python text ---------------------------------------------------------------------------- */

void codemode_stub_pystr(buf_t *out, const char *s)
{
    buf_appendc(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            buf_appends(out, "\\\"");
            break;
        case '\\':
            buf_appends(out, "\\\\");
            break;
        case '\n':
            buf_appends(out, "\\n");
            break;
        case '\r':
            buf_appends(out, "\\r");
            break;
        case '\t':
            buf_appends(out, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                buf_appendf(out, "\\x%02x", *p);
            else
                buf_appendc(out, (char)*p);
        }
    }
    buf_appendc(out, '"');
}

/* Text inside a """docstring""" on one line: quotes and backslashes escaped, controls as
 * spaces (the summary has none left, but a field name might). */
static void append_docstring_text(buf_t *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            buf_appendc(out, '\\');
        buf_appendc(out, *p < 0x20 || *p == 0x7f ? ' ' : (char)*p);
    }
}

static bool is_py_identifier(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (const char *p = s + 1; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    }
    return !codemode_py_is_keyword(s);
}

/* ---- types ---------------------------------------------------------------------------------- */

typedef struct parts {
    json_t *list; /* array of strings, in order, no duplicates */
    unsigned *uses;
} parts_t;

static void parts_add(parts_t *p, const char *part)
{
    size_t i;
    json_t *v;
    json_array_foreach (p->list, i, v) {
        if (strcmp(json_string_value(v), part) == 0)
            return;
    }
    json_array_append_new(p->list, json_string(part));
}

static void render_type(buf_t *out, const json_t *s, int depth, unsigned *uses);

/* A JSON scalar as a Python literal; false for arrays and objects. */
static bool append_literal(buf_t *out, const json_t *v)
{
    if (json_is_string(v))
        codemode_stub_pystr(out, json_string_value(v));
    else if (json_is_integer(v))
        buf_appendf(out, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) {
        char *text = json_dumps(v, JSON_ENCODE_ANY);
        buf_appends(out, text);
        free(text);
    } else if (json_is_true(v))
        buf_appends(out, "True");
    else if (json_is_false(v))
        buf_appends(out, "False");
    else
        return false;
    return true;
}

/* Literal[...] of the values, plus "None" when null is one of them. False when a value cannot
 * be a literal or there are too many. */
static bool add_literals(parts_t *p, const json_t *values)
{
    size_t n = json_array_size(values);
    if (n == 0 || n > MAX_LITERALS)
        return false;
    buf_t lit = BUF_INIT;
    bool has_null = false;
    size_t written = 0;
    size_t i;
    const json_t *v;
    json_array_foreach (values, i, v) {
        if (json_is_null(v)) {
            has_null = true;
            continue;
        }
        buf_appends(&lit, written++ == 0 ? "Literal[" : ", ");
        if (!append_literal(&lit, v)) {
            buf_free(&lit);
            return false;
        }
    }
    if (written > 0) {
        buf_appendc(&lit, ']');
        parts_add(p, buf_cstr(&lit));
        *p->uses |= USES_LITERAL;
    }
    if (has_null)
        parts_add(p, "None");
    buf_free(&lit);
    return true;
}

/* One JSON type name of schema s. */
static void add_base(parts_t *p, const char *name, const json_t *s, int depth)
{
    if (strcmp(name, "string") == 0) {
        parts_add(p, "str");
    } else if (strcmp(name, "integer") == 0) {
        parts_add(p, "int");
    } else if (strcmp(name, "number") == 0) {
        parts_add(p, "float");
    } else if (strcmp(name, "boolean") == 0) {
        parts_add(p, "bool");
    } else if (strcmp(name, "null") == 0) {
        parts_add(p, "None");
    } else if (strcmp(name, "object") == 0) {
        parts_add(p, "dict");
    } else if (strcmp(name, "array") == 0) {
        const json_t *items = json_object_get(s, "items");
        buf_t item = BUF_INIT;
        if (json_is_object(items) && json_object_size(items) > 0 && depth < MAX_TYPE_DEPTH)
            render_type(&item, items, depth + 1, p->uses);
        if (item.len == 0 || strcmp(buf_cstr(&item), "Any") == 0) {
            parts_add(p, "list");
        } else {
            buf_t list = BUF_INIT;
            buf_appendf(&list, "list[%s]", buf_cstr(&item));
            parts_add(p, buf_cstr(&list));
            buf_free(&list);
        }
        buf_free(&item);
    } else {
        parts_add(p, "Any");
    }
}

static void collect_parts(parts_t *p, const json_t *s, int depth)
{
    if (!json_is_object(s)) {
        parts_add(p, "Any");
        return;
    }
    const json_t *en = json_object_get(s, "enum");
    if (json_is_array(en) && add_literals(p, en))
        return;
    const json_t *cst = json_object_get(s, "const");
    if (cst != NULL) {
        json_t *one = json_pack("[O]", cst);
        bool ok = add_literals(p, one);
        json_decref(one);
        if (ok)
            return;
    }
    const json_t *alts = json_object_get(s, "anyOf");
    if (!json_is_array(alts))
        alts = json_object_get(s, "oneOf");
    if (json_is_array(alts) && json_array_size(alts) > 0) {
        size_t i;
        const json_t *alt;
        json_array_foreach (alts, i, alt)
            collect_parts(p, alt, depth);
        return;
    }

    const json_t *type = json_object_get(s, "type");
    const json_t *all = json_object_get(s, "allOf");
    if (json_is_string(type)) {
        add_base(p, json_string_value(type), s, depth);
    } else if (json_is_array(type) && json_array_size(type) > 0) {
        size_t i;
        const json_t *t;
        json_array_foreach (type, i, t)
            add_base(p, json_is_string(t) ? json_string_value(t) : "", s, depth);
    } else if (json_is_array(all) && json_array_size(all) == 1) {
        collect_parts(p, json_array_get(all, 0), depth);
    } else if (json_object_get(s, "properties") != NULL) {
        parts_add(p, "dict");
    } else if (json_object_get(s, "items") != NULL) {
        add_base(p, "array", s, depth);
    } else {
        parts_add(p, "Any");
    }
}

/* Joins the parts: Any alone if any part is Any, None last. */
static void render_type(buf_t *out, const json_t *s, int depth, unsigned *uses)
{
    parts_t p = {.list = json_array(), .uses = uses};
    collect_parts(&p, s, depth);

    bool any = false;
    bool none = false;
    size_t i;
    json_t *v;
    json_array_foreach (p.list, i, v) {
        any |= strcmp(json_string_value(v), "Any") == 0;
        none |= strcmp(json_string_value(v), "None") == 0;
    }
    if (any || json_array_size(p.list) == 0) {
        buf_appends(out, "Any");
        *uses |= USES_ANY;
        json_decref(p.list);
        return;
    }
    size_t written = 0;
    json_array_foreach (p.list, i, v) {
        if (strcmp(json_string_value(v), "None") == 0)
            continue;
        if (written++ > 0)
            buf_appends(out, " | ");
        buf_appends(out, json_string_value(v));
    }
    if (none)
        buf_appends(out, written > 0 ? " | None" : "None");
    json_decref(p.list);
}

void codemode_stub_type(buf_t *out, const json_t *schema)
{
    unsigned uses = 0;
    render_type(out, schema, 0, &uses);
}

/* ---- summaries ------------------------------------------------------------------------------ */

/* The first non-blank line of text. */
static const char *first_line(const char *text, size_t *len)
{
    while (*text == '\n' || *text == '\r' || *text == ' ' || *text == '\t')
        text++;
    *len = strcspn(text, "\r\n");
    return text;
}

/* Length of the first sentence: up to ". ", "! " or "? " (the mark kept). */
static size_t first_sentence(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if ((s[i] == '.' || s[i] == '!' || s[i] == '?') && (s[i + 1] == ' ' || s[i + 1] == '\t'))
            return i + 1;
    }
    return len;
}

/* Appends s[0..len) with whitespace runs collapsed, at most MAX_SUMMARY bytes: a longer text
 * is cut at a space (or a UTF-8 character boundary) and ends with "...". */
static void append_collapsed(buf_t *out, const char *s, size_t len)
{
    buf_t tmp = BUF_INIT;
    bool space = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ' || s[i] == '\t') {
            space = tmp.len > 0;
            continue;
        }
        if (space)
            buf_appendc(&tmp, ' ');
        space = false;
        buf_appendc(&tmp, s[i]);
    }
    if (tmp.len <= MAX_SUMMARY) {
        buf_append(out, tmp.data ? tmp.data : "", tmp.len);
        buf_free(&tmp);
        return;
    }
    size_t cut = MAX_SUMMARY - 3;
    while (cut > 0 && ((unsigned char)tmp.data[cut] & 0xC0) == 0x80)
        cut--;
    size_t space_at = cut;
    while (space_at > MAX_SUMMARY / 2 && tmp.data[space_at] != ' ')
        space_at--;
    if (tmp.data[space_at] == ' ')
        cut = space_at;
    buf_append(out, tmp.data, cut);
    buf_appends(out, "...");
    buf_free(&tmp);
}

void codemode_stub_summary(buf_t *out, const json_t *def)
{
    const char *text = json_string_value(json_object_get(def, "description"));
    size_t len = 0;
    if (text != NULL)
        text = first_line(text, &len);
    if (text == NULL || len == 0) {
        text = json_string_value(json_object_get(def, "title"));
        if (text != NULL)
            text = first_line(text, &len);
    }
    if (text == NULL || len == 0) {
        buf_appends(out, "No description.");
        return;
    }
    append_collapsed(out, text, first_sentence(text, len));
}

/* ---- one tool ------------------------------------------------------------------------------- */

static bool is_required(const json_t *required, const char *name)
{
    size_t i;
    const json_t *v;
    json_array_foreach (required, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return true;
    }
    return false;
}

typedef struct sig {
    buf_t params;  /* "a: str, b: int = None" */
    buf_t extras;  /* "\"from\" (str), ..." for names that are not identifiers */
    size_t n;      /* parameters written */
    unsigned uses; /* typing names used */
} sig_t;

static void add_param(sig_t *g, const char *name, const json_t *schema, bool required)
{
    buf_t type = BUF_INIT;
    render_type(&type, schema, 1, &g->uses);
    if (!is_py_identifier(name)) {
        if (g->extras.len > 0)
            buf_appends(&g->extras, ", ");
        codemode_stub_pystr(&g->extras, name);
        buf_appendf(&g->extras, " (%s%s)", buf_cstr(&type), required ? "" : ", optional");
    } else {
        if (g->n++ > 0)
            buf_appends(&g->params, ", ");
        buf_appendf(&g->params, "%s: %s%s", name, buf_cstr(&type), required ? "" : " = None");
    }
    buf_free(&type);
}

/* Parameters in schema order, required ones first; a required name the schema does not
 * describe is still a parameter (of type Any). */
static void build_params(sig_t *g, const json_t *input)
{
    const json_t *props = json_object_get(input, "properties");
    const json_t *required = json_object_get(input, "required");
    const char *name;
    const json_t *schema;

    json_object_foreach ((json_t *)props, name, schema) {
        if (is_required(required, name))
            add_param(g, name, schema, true);
    }
    size_t i;
    const json_t *r;
    json_array_foreach (required, i, r) {
        if (json_is_string(r) && json_object_get(props, json_string_value(r)) == NULL)
            add_param(g, json_string_value(r), NULL, true);
    }
    json_object_foreach ((json_t *)props, name, schema) {
        if (!is_required(required, name))
            add_param(g, name, schema, false);
    }
}

/* True when a schema has structure worth spelling out: an object with properties, or an array
 * of such objects. */
static bool has_shape(const json_t *s)
{
    const json_t *props = json_object_get(s, "properties");
    if (json_is_object(props) && json_object_size(props) > 0)
        return true;
    const json_t *items = json_object_get(s, "items");
    return json_is_object(items) && has_shape(items);
}

/* The shape of a structured value: {name: str, tags?: list[str]} for an object ('?' marks a
 * field that may be absent), [{...}] for an array of objects; a plain type otherwise and past
 * MAX_SHAPE_DEPTH. */
static void render_shape(buf_t *out, const json_t *s, int depth)
{
    unsigned ignored = 0;
    if (depth >= MAX_SHAPE_DEPTH || !has_shape(s)) {
        render_type(out, s, 1, &ignored);
        return;
    }
    const json_t *props = json_object_get(s, "properties");
    if (!json_is_object(props) || json_object_size(props) == 0) {
        buf_appendc(out, '[');
        render_shape(out, json_object_get(s, "items"), depth + 1);
        buf_appendc(out, ']');
        return;
    }
    const json_t *required = json_object_get(s, "required");
    buf_appendc(out, '{');
    size_t n = 0;
    const char *name;
    const json_t *field;
    json_object_foreach ((json_t *)props, name, field) {
        if (n == MAX_SHAPE_FIELDS) {
            buf_appends(out, ", ...");
            break;
        }
        buf_appendf(out, "%s%s%s: ", n++ > 0 ? ", " : "", name,
                    is_required(required, name) ? "" : "?");
        render_shape(out, field, depth + 1);
    }
    buf_appendc(out, '}');
}

/* Appends " <label><shape>." to a docstring, escaped. */
static void append_shape_sentence(buf_t *out, const char *label, const json_t *s)
{
    buf_t text = BUF_INIT;
    buf_appendf(&text, " %s", label);
    render_shape(&text, s, 0);
    buf_appendc(&text, '.');
    append_docstring_text(out, buf_cstr(&text));
    buf_free(&text);
}

/* The shapes of the structured parameters: " entities: [{name: str, ...}]." each. */
static void append_param_shapes(buf_t *out, const json_t *input)
{
    const char *name;
    const json_t *schema;
    json_object_foreach (json_object_get(input, "properties"), name, schema) {
        if (!has_shape(schema) || !is_py_identifier(name))
            continue;
        buf_t label = BUF_INIT;
        buf_appendf(&label, "%s: ", name);
        append_shape_sentence(out, buf_cstr(&label), schema);
        buf_free(&label);
    }
}

static void end_sentence(buf_t *out)
{
    char last = out->len > 0 ? out->data[out->len - 1] : '.';
    if (last != '.' && last != '!' && last != '?')
        buf_appendc(out, '.');
}

/* The def line and docstring of one tool, indented by nothing. uses collects typing names. */
static void append_tool(buf_t *out, const codemode_tool_binding_t *t, unsigned *uses)
{
    const json_t *def = t->t->def;
    const json_t *input = json_object_get(def, "inputSchema");
    const json_t *output = json_object_get(def, "outputSchema");
    sig_t g = {BUF_INIT, BUF_INIT, 0, 0};
    build_params(&g, input);

    buf_appendf(out, "def %s(", t->py);
    if (g.n > 0)
        buf_appendf(out, "*, %s", buf_cstr(&g.params));
    if (g.extras.len > 0) {
        buf_appendf(out, "%s**kwargs: Any", g.n > 0 ? ", " : "");
        g.uses |= USES_ANY;
    }
    buf_appends(out, ") -> ");
    if (json_is_object(output))
        render_type(out, output, 0, &g.uses);
    else {
        buf_appends(out, "Any");
        g.uses |= USES_ANY;
    }
    buf_appends(out, ":\n    \"\"\"");

    buf_t doc = BUF_INIT;
    codemode_stub_summary(&doc, def);
    append_docstring_text(out, buf_cstr(&doc));
    buf_t shapes = BUF_INIT;
    append_param_shapes(&shapes, input);
    if (has_shape(output))
        append_shape_sentence(&shapes, "Returns ", output);
    if (g.extras.len > 0) {
        buf_appends(&shapes, " Pass ");
        append_docstring_text(&shapes, buf_cstr(&g.extras));
        append_docstring_text(&shapes, " as **{\"<name>\": value}.");
    }
    if (shapes.len > 0) {
        end_sentence(out);
        buf_append(out, shapes.data, shapes.len);
    }
    buf_free(&shapes);
    buf_appends(out, "\"\"\"\n");

    *uses |= g.uses;
    buf_free(&doc);
    buf_free(&g.params);
    buf_free(&g.extras);
}

static void append_imports(buf_t *out, unsigned uses)
{
    if (uses == 0)
        return;
    buf_appends(out, "from typing import ");
    if (uses & USES_ANY)
        buf_appends(out, (uses & USES_LITERAL) ? "Any, " : "Any");
    if (uses & USES_LITERAL)
        buf_appends(out, "Literal");
    buf_appends(out, "\n");
}

/* ---- files ---------------------------------------------------------------------------------- */

char *codemode_stub_server(const codemode_server_binding_t *s)
{
    buf_t body = BUF_INIT;
    unsigned uses = 0;
    for (size_t i = 0; i < s->n_tools; i++) {
        buf_appends(&body, "\n");
        append_tool(&body, &s->tools[i], &uses);
    }

    buf_t out = BUF_INIT;
    buf_appendf(&out, "# %s: %zu tool%s of MCP server \"%s\". In executeToolCode call them as\n",
                s->py, s->n_tools, s->n_tools == 1 ? "" : "s", s->client);
    buf_appendf(&out,
                "# %s.<tool>(name=value, ...); a call returns the tool's result or raises "
                "ToolError.\n",
                s->py);
    append_imports(&out, uses);
    buf_append(&out, body.data ? body.data : "", body.len);
    buf_free(&body);
    return buf_release(&out);
}

char *codemode_stub_tool(const codemode_server_binding_t *s, const codemode_tool_binding_t *t)
{
    buf_t body = BUF_INIT;
    unsigned uses = 0;
    append_tool(&body, t, &uses);

    buf_t out = BUF_INIT;
    buf_appendf(&out, "# %s.%s: tool ", s->py, t->py);
    codemode_stub_pystr(&out, t->tool);
    buf_appendf(&out, " of MCP server \"%s\"; returns its result or raises ToolError.\n",
                s->client);
    append_imports(&out, uses);
    buf_appends(&out, "\n");
    buf_append(&out, body.data, body.len);
    buf_free(&body);
    return buf_release(&out);
}

char *codemode_stub_text(const codemode_stub_file_t *file)
{
    if (file->tool != NULL)
        return codemode_stub_tool(file->server, file->tool);
    return codemode_stub_server(file->server);
}

codemode_stub_file_t *codemode_stub_files(const codemode_bindings_t *b,
                                          codemode_binding_level_t level, size_t *n)
{
    size_t count = level == CODEMODE_BINDING_TOOL ? codemode_bindings_tool_count(b)
                                                  : codemode_bindings_count(b);
    codemode_stub_file_t *files = xcalloc(count + 1, sizeof *files);
    size_t k = 0;

    for (size_t i = 0; i < codemode_bindings_count(b); i++) {
        const codemode_server_binding_t *s = codemode_bindings_server(b, i);
        buf_t name = BUF_INIT;
        if (level != CODEMODE_BINDING_TOOL) {
            buf_appendf(&name, CODEMODE_STUB_DIR "%s" CODEMODE_STUB_EXT, s->client);
            files[k++] = (codemode_stub_file_t){buf_release(&name), s, NULL};
            continue;
        }
        for (size_t t = 0; t < s->n_tools; t++) {
            buf_reset(&name);
            buf_appendf(&name, CODEMODE_STUB_DIR "%s/%s" CODEMODE_STUB_EXT, s->client,
                        s->tools[t].py);
            files[k++] = (codemode_stub_file_t){xstrdup(buf_cstr(&name)), s, &s->tools[t]};
        }
        buf_free(&name);
    }
    *n = k;
    return files;
}

void codemode_stub_files_free(codemode_stub_file_t *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].name);
    free(files);
}
