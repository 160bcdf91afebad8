/*
 * fuzz_codemode_stubs.c - libFuzzer target for Code Mode's stub generation and meta-tool answers
 * (src/codemode/bindings.c, stubs.c, metatools.c): the code that turns tool names and JSON
 * schemas from MCP servers - untrusted input - into Python text for a model.
 *
 * The input is a tools/list result ({"tools": [...]}, or a bare array) from one server whose
 * name is the input's first line (letters, digits, '_' and '-', as the configuration allows;
 * tool names and schemas may be anything JSON holds). It becomes a one-client catalog, then
 * bindings, then every stub at both binding levels and the answers of listToolFiles, readToolFile
 * (each file, and a range) and getToolDocs (each tool). Beyond "no crash, no leak, no undefined
 * behaviour", it checks invariants: every Python name is an identifier, names are unique in their
 * scope, and every stub is valid UTF-8 text without a NUL byte, as jansson requires of a JSON
 * string (stubs travel in JSON tool messages).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codemode/metatools.h"
#include "mcp/hub_internal.h"
#include "util/alloc.h"

static bool valid_client_name(const char *s)
{
    return *s != '\0' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
               strlen(s);
}

static void check_ident(const char *s)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9') || codemode_py_is_keyword(s))
        abort();
    for (const char *p = s; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            abort();
    }
}

static void check_text(const char *text)
{
    json_t *as_string = json_string(text); /* NULL unless valid UTF-8 */
    if (as_string == NULL)
        abort();
    json_decref(as_string);
}

static void check_bindings(const codemode_bindings_t *b)
{
    for (size_t i = 0; i < codemode_bindings_count(b); i++) {
        const codemode_server_binding_t *s = codemode_bindings_server(b, i);
        check_ident(s->py);
        for (size_t k = 0; k < s->n_tools; k++) {
            check_ident(s->tools[k].py);
            for (size_t j = 0; j < k; j++)
                if (strcmp(s->tools[j].py, s->tools[k].py) == 0)
                    abort();
            if (codemode_bindings_find(b, s->py, s->tools[k].py, NULL) != &s->tools[k])
                abort();
        }
    }
}

static void answer(codemode_meta_t kind, const codemode_bindings_t *b,
                   codemode_binding_level_t level, json_t *args)
{
    bool is_error;
    char *text = codemode_meta_answer(kind, b, level, args, &is_error);
    check_text(text);
    free(text);
    json_decref(args);
}

static void exercise(const codemode_bindings_t *b, codemode_binding_level_t level)
{
    size_t n = 0;
    codemode_stub_file_t *files = codemode_stub_files(b, level, &n);
    for (size_t i = 0; i < n; i++) {
        char *text = codemode_stub_text(&files[i]);
        check_text(text);
        free(text);
        answer(CODEMODE_META_READ, b, level, json_pack("{s:s}", "fileName", files[i].name));
        answer(
            CODEMODE_META_READ, b, level,
            json_pack("{s:s, s:i, s:i}", "fileName", files[i].name, "startLine", 2, "endLine", 4));
    }
    codemode_stub_files_free(files, n);
    answer(CODEMODE_META_LIST, b, level, NULL);

    for (size_t i = 0; i < codemode_bindings_count(b); i++) {
        const codemode_server_binding_t *s = codemode_bindings_server(b, i);
        for (size_t k = 0; k < s->n_tools; k++)
            answer(CODEMODE_META_DOCS, b, level,
                   json_pack("{s:s, s:s}", "server", s->client, "tool", s->tools[k].tool));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        alloc_init();
        ready = true;
    }
    const char *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return 0;
    char *name = xstrndup((const char *)data, (size_t)(nl - (const char *)data));
    json_t *doc = json_loadb(nl + 1, size - (size_t)(nl + 1 - (const char *)data), 0, NULL);
    json_t *tools = json_is_array(doc) ? doc : json_object_get(doc, "tools");
    if (json_is_array(tools) && valid_client_name(name)) {
        static const char *const all[] = {"*", NULL};
        hub_catalog_src_t src = {.name = name,
                                 .state = MCP_STATE_READY,
                                 .tools_to_execute = all,
                                 .tools_to_auto_execute = all,
                                 .code_mode = true,
                                 .tools = tools};
        mcp_catalog_t *cat = hub_catalog_build(&src, 1, 1);
        codemode_bindings_t *b = codemode_bindings_build(cat, NULL);
        mcp_catalog_release(cat);
        check_bindings(b);
        exercise(b, CODEMODE_BINDING_SERVER);
        exercise(b, CODEMODE_BINDING_TOOL);
        codemode_bindings_release(b);
    }
    json_decref(doc);
    free(name);
    return 0;
}
