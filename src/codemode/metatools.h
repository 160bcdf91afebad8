/*
 * metatools.h - Code Mode's four meta-tools, the only tools a model sees of the code-mode MCP
 * clients (names as Bifrost has them, so agents written for it keep working):
 *
 *   listToolFiles()                              the virtual tree of stubs (stubs.h)
 *   readToolFile(fileName, startLine?, endLine?) one stub, its total line count first
 *   getToolDocs(server, tool)                    one tool in full: description, parameters,
 *                                                output schema, a call example
 *   executeToolCode(code)                        runs a Python script in the sandbox (exec.h)
 *
 * The first three are pure functions of the request's bindings and answer at once; the last
 * one runs through the executor. codemode_meta_call hides the difference: every answer comes
 * back through a callback on the caller's loop, never from inside the call, so the agent loop,
 * the execute endpoint and /mcp treat the four alike.
 *
 * Answers are text for the model. A wrong call (unknown file, missing argument, a script that
 * failed) is still an answer, with is_error set and a text that says what to do instead, so a
 * model can correct itself. docs/code-mode.md is the user's reference.
 */
#ifndef GATEHOUSE_CODEMODE_METATOOLS_H
#define GATEHOUSE_CODEMODE_METATOOLS_H

#include <jansson.h>
#include <stdbool.h>

#include "codemode/bindings.h"
#include "codemode/exec.h"
#include "codemode/stubs.h"

struct event_base;

typedef enum codemode_meta {
    CODEMODE_META_NONE = -1,
    CODEMODE_META_LIST = 0, /* listToolFiles */
    CODEMODE_META_READ,     /* readToolFile */
    CODEMODE_META_DOCS,     /* getToolDocs */
    CODEMODE_META_EXECUTE,  /* executeToolCode */
} codemode_meta_t;

#define CODEMODE_META_COUNT 4

/* The meta-tool of that name, or CODEMODE_META_NONE. NULL is fine. */
codemode_meta_t codemode_meta_kind(const char *name);
/* "listToolFiles", ... */
const char *codemode_meta_name(codemode_meta_t kind);

/* The four as OpenAI function tools ({"type": "function", "function": {"name",
 * "description", "parameters"}}), in the order above. New array. */
json_t *codemode_meta_openai_tools(void);
/* The four as MCP tools ({"name", "description", "inputSchema"}), for /mcp. New array. */
json_t *codemode_meta_mcp_tools(void);

/* Answers listToolFiles, readToolFile or getToolDocs at once. args is the call's arguments
 * object (NULL = none). Returns the text (owned); *is_error is set when the call was wrong. */
char *codemode_meta_answer(codemode_meta_t kind, const codemode_bindings_t *b,
                           codemode_binding_level_t level, const json_t *args, bool *is_error);

/* ---- calls ---------------------------------------------------------------------------------- */

typedef struct codemode_meta_opts {
    codemode_bindings_t *bindings;   /* the request's; executeToolCode takes its own reference */
    codemode_binding_level_t level;  /* of the stub tree */
    const codemode_limits_t *limits; /* executeToolCode; NULL = the executor's defaults */
    const char *request_id;          /* for logs and the request-log rows of tool calls */
    bool log_content;                /* tool arguments and results go to the request log */
} codemode_meta_opts_t;

typedef void (*codemode_meta_done_fn)(void *arg, const char *text, bool is_error);
typedef struct codemode_meta_call codemode_meta_call_t;

/* Runs one meta-tool call: kind with args (borrowed; read before this returns). done runs
 * exactly once on base's thread, from the event loop (never from inside this call), unless
 * cancelled; text is valid during the callback. Never NULL. */
codemode_meta_call_t *codemode_meta_call(struct event_base *base, codemode_meta_t kind,
                                         const json_t *args, const codemode_meta_opts_t *o,
                                         codemode_meta_done_fn done, void *arg);
/* From base's thread, before done ran: done will not run; a running script is killed. NULL is
 * fine. */
void codemode_meta_cancel(codemode_meta_call_t *c);

/* The code of an executeToolCode call, or NULL (args lack a non-empty string "code"). */
const char *codemode_meta_code(const json_t *args);

#endif
