/*
 * exec.h - the Code Mode executor: runs a model's Python script in the sandbox helper
 * (gatehouse-sandbox) and carries out the MCP tool calls the script makes.
 *
 * One process-wide sandbox helper (a zygote that forks one child per script) is started by
 * codemode_start and restarted with backoff when it dies. Everything the executor does - the
 * zygote's control socket, each execution's socket, timers, the tool calls - are events on the
 * tool hub's thread (DESIGN.md, "The tool plane"; mcp_hub_post), so neither a worker nor the
 * hub ever waits on the sandbox. Results come back on the caller's own event loop, the same
 * way the hub delivers tool results. docs/code-mode.md describes what the model gets back and
 * the limits; docs/internals/sandbox.md the wire format.
 *
 * Each tool call a script makes is recorded: a request-log row with source "code_mode" (its
 * execution_id names the execution), metrics_tool_call, and an entry in the outcome's calls.
 * Each execution adds to metrics_code_mode(status, duration).
 */
#ifndef GATEHOUSE_CODEMODE_EXEC_H
#define GATEHOUSE_CODEMODE_EXEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
typedef struct codemode_bindings codemode_bindings_t; /* codemode/bindings.h */

/* Per-execution limits. A field <= 0 takes the configured default (codemode_start). */
typedef struct codemode_limits {
    long wall_ms;      /* wall clock, enforced by the gateway; default 30000 */
    long cpu_s;        /* CPU seconds (RLIMIT_CPU in the child); default 10 */
    long memory_mb;    /* address space (RLIMIT_AS in the child); default 256 */
    long output_bytes; /* captured print() output; default 1 MiB */
} codemode_limits_t;

#define CODEMODE_DEFAULT_WALL_MS 30000L
#define CODEMODE_DEFAULT_CPU_S 10L
#define CODEMODE_DEFAULT_MEMORY_MB 256L
#define CODEMODE_DEFAULT_OUTPUT_BYTES (1024L * 1024)
#define CODEMODE_DEFAULT_MAX_CONCURRENT 16L

/* One tool call made by a script. */
typedef struct codemode_call_record {
    const char *server_py, *tool_py; /* as the script named them */
    double duration_s;
    bool ok;
    const char *error; /* NULL when ok */
} codemode_call_record_t;

/* What an execution ended with. Every pointer is owned by the executor and valid during the
 * done callback only. */
typedef struct codemode_outcome {
    const char *status; /* "ok", "syntax", "runtime", "tool", "timeout", "limit", "internal" */
    const char *output; /* captured print() output, possibly cut (output_truncated); never NULL */
    bool output_truncated;
    const json_t *result;      /* the global `result`, as JSON; NULL when unset or not JSON-able */
    const char *error_type;    /* e.g. "ZeroDivisionError", "ToolError"; NULL when ok */
    const char *error_message; /* NULL when ok */
    int error_line;            /* 0 when unknown */
    const char *hint;          /* short hint for the model, NULL when none */
    const codemode_call_record_t *calls;
    size_t n_calls;
    double duration_s; /* from codemode_exec_start to the end */
} codemode_outcome_t;

/* What codemode_analyze_start found: the script's server.tool(...) calls, without running it.
 * Pointers valid during the callback only. */
typedef struct codemode_analysis {
    bool syntax_ok;
    const char *error_message; /* syntax error, or why the analysis failed (internal) */
    int error_line;            /* 0 when unknown */
    const char *const *servers_py, *const *tools_py; /* server.tool calls found, n_calls each */
    size_t n_calls;
    bool dynamic; /* a call that cannot be resolved statically (getattr, aliasing a server...) */
    bool failed;  /* the sandbox could not analyse it (not available, timeout): treat as unknown */
} codemode_analysis_t;

typedef struct codemode_exec codemode_exec_t;
typedef void (*codemode_done_fn)(void *arg, const codemode_outcome_t *o);
typedef void (*codemode_analysis_fn)(void *arg, const codemode_analysis_t *a);

/* Process-wide, from the main thread. Start the sandbox helper at sandbox_path (the gateway
 * finds it beside its own binary, docs/code-mode.md) with default limits; needs the tool hub
 * to be running. Never waits for the helper: executions queued before it is ready wait for
 * it (within their wall time). Calling it again only updates the default limits (a reload).
 * Returns 0, or -1 when the hub does not run. */
int codemode_start(const char *sandbox_path, const codemode_limits_t *defaults);
/* Updates the defaults for executions started from now on. Any thread. */
void codemode_set_defaults(const codemode_limits_t *defaults);
/* How many scripts and analyses may run in the sandbox at once, across all requests (<= 0: the
 * default, 16). Each child may use memory_mb and nothing bounds them together, so the rest wait
 * in a FIFO queue; their wall-clock time runs while they wait. A child holds its place until the
 * helper reports its exit. From the main thread, like codemode_start; a higher value starts
 * waiting executions at once. */
void codemode_set_max_concurrent(long max_concurrent);
/* Fails executions in flight ("internal"), stops the helper and waits until it is gone. Call
 * before the tool hub stops. */
void codemode_stop(void);

/* Runs code with the tools of b (a reference is taken; NULL = no tools) under lim (NULL or
 * fields <= 0: the defaults). done runs exactly once on reply_base's thread unless cancelled.
 * Tool calls go through mcp_hub_call_tool; request_id is for logs and the request-log rows of
 * the calls, whose arguments and results are kept only when log_content is true. Never NULL. */
codemode_exec_t *codemode_exec_start(struct event_base *reply_base, const char *code,
                                     codemode_bindings_t *b, const codemode_limits_t *lim,
                                     const char *request_id, bool log_content,
                                     codemode_done_fn done, void *arg);
/* Parses code with Python's ast inside the sandbox and lists its server.tool calls; done runs
 * exactly once on reply_base's thread unless cancelled. Never NULL. */
codemode_exec_t *codemode_analyze_start(struct event_base *reply_base, const char *code,
                                        codemode_bindings_t *b, const char *request_id,
                                        codemode_analysis_fn done, void *arg);
/* From reply_base's thread, before the callback ran: the callback will not run; the child is
 * killed and its tool calls in flight are cancelled. NULL is fine. */
void codemode_exec_cancel(codemode_exec_t *e);

/* The compact, fixed-format answer the model gets (issue 4; the format is documented with an
 * example in docs/code-mode.md): status, printed output, the JSON of result, the tool calls
 * (name, duration, ok or error), and on failure the error kind, message, line and a hint.
 * Returns a malloc'd string. */
char *codemode_outcome_format(const codemode_outcome_t *o);

#endif
