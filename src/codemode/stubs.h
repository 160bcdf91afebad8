/*
 * stubs.h - the Python stubs a Code Mode model reads: a virtual tree of .pyi files, one per
 * server or one per tool, generated from the MCP tools' JSON schemas.
 *
 * The tree (listToolFiles shows it, readToolFile reads it):
 *
 *   binding level "server" (default)   servers/<client>.pyi          every tool of one server
 *   binding level "tool"               servers/<client>/<tool>.pyi   one tool; <tool> is the
 *                                                                    method's Python name
 *
 * A stub is valid Python (the unit tests parse every one with Python's ast). Each tool is one
 * function whose name is its method name (bindings.h) and whose parameters are keyword-only,
 * typed from the input schema, required ones first, optional ones "= None", then a return
 * type and a docstring on one line:
 *
 *   def get_sum(*, a: float, b: float) -> Any:
 *       """Returns the sum of two numbers"""
 *
 * Types: string str, integer int, number float, boolean bool, null None, array list[<items>],
 * object dict, enum and const Literal[...], a list of types or anyOf/oneOf a union "X | Y"
 * (null last, as "| None"), a single allOf its member, anything else (a $ref, no type) Any.
 * The return type is the type of the output schema when the tool declares one, else Any,
 * since a call returns structured content, parsed JSON or text.
 *
 * The docstring is the tool's summary (first line and sentence of its description), then the
 * shapes a type annotation cannot say: each structured parameter ("entities: [{name: str,
 * observations: list[str]}]", '?' after a field that may be absent) and the output schema
 * ("Returns {content: str}."). A parameter whose name is not a Python identifier ("from",
 * "user-id") cannot be a keyword argument: the function takes **kwargs: Any and the docstring
 * says how to pass it (**{"from": ...}).
 *
 * Everything here is a pure function of the bindings; the output is byte-for-byte stable for
 * the same catalog (golden files in tests/fixtures/codemode/).
 */
#ifndef GATEHOUSE_CODEMODE_STUBS_H
#define GATEHOUSE_CODEMODE_STUBS_H

#include <jansson.h>
#include <stddef.h>

#include "codemode/bindings.h"
#include "util/buf.h"

typedef enum codemode_binding_level {
    CODEMODE_BINDING_SERVER = 0, /* one file per server */
    CODEMODE_BINDING_TOOL,       /* one file per tool */
} codemode_binding_level_t;

#define CODEMODE_STUB_DIR "servers/"
#define CODEMODE_STUB_EXT ".pyi"

/* One file of the virtual tree. */
typedef struct codemode_stub_file {
    char *name;                              /* "servers/everything.pyi"; owned */
    const codemode_server_binding_t *server; /* borrowed from the bindings */
    const codemode_tool_binding_t *tool;     /* NULL for a server file */
} codemode_stub_file_t;

/* The files of the tree, sorted by name (servers in client order, then tools in order). The
 * array and names are owned by the caller: free with codemode_stub_files_free. */
codemode_stub_file_t *codemode_stub_files(const codemode_bindings_t *b,
                                          codemode_binding_level_t level, size_t *n);
void codemode_stub_files_free(codemode_stub_file_t *files, size_t n);

/* The text of one file. Owned. */
char *codemode_stub_text(const codemode_stub_file_t *file);
/* Every tool of a server / one tool, as in its file. Owned. */
char *codemode_stub_server(const codemode_server_binding_t *s);
char *codemode_stub_tool(const codemode_server_binding_t *s, const codemode_tool_binding_t *t);

/* The Python type of a JSON schema, as described above, appended to out. */
void codemode_stub_type(buf_t *out, const json_t *schema);
/* The one-line summary of a tool: first line and sentence of its description (or title),
 * whitespace collapsed, at most 200 bytes. Appended to out, unescaped. */
void codemode_stub_summary(buf_t *out, const json_t *def);
/* A Python string literal ("...", escaped) for any UTF-8 text. */
void codemode_stub_pystr(buf_t *out, const char *s);

#endif
