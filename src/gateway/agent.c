/*
 * agent.c - agent mode: runs the auto-executable MCP tool calls of a model turn and keeps the
 * conversation that the next model call sends (contract in agent.h, user view in
 * docs/agent-mode.md).
 *
 * The loop itself stays in chat.c, because each model call goes through the same attempt loop
 * (key choice, retries, fallbacks) as any chat request; this file decides and executes:
 *
 *   turn complete -> agent_plan -> FINAL | LIMIT: chat.c answers
 *                              -> RUN_ALL | RUN_SOME: agent_run
 *   agent_run: assistant message -> conversation; one hub call per auto call, all at once
 *     -> every result back (a failure is a result too: "Error: ..." for the model)
 *     -> tool messages -> conversation, in the order of the calls -> done(), on the next loop
 *        iteration at the earliest, so that chat.c never re-enters itself
 *
 * Depth: a round is one execution of a turn's calls. max_agent_depth bounds the rounds, so a
 * request makes at most max_depth + 1 model calls; a turn that still asks for auto calls after
 * that is answered as is, with the limit marked.
 *
 * Code Mode (docs/code-mode.md): listToolFiles, readToolFile and getToolDocs are always run by
 * gatehouse. executeToolCode is run only when the script's server.tool(...) calls, found by
 * parsing it in the sandbox before anything runs, are all tools_to_auto_execute and none is
 * dynamic (getattr, an aliased server): agent_prepare starts those analyses when a turn
 * completes and the turn is planned once every verdict is in. A script with a syntax error, or
 * a call without code, is run too: nothing in it can reach a tool, and the model gets the
 * error to fix. Anything else, including an analysis that failed, goes back to the client.
 *
 * Ownership: the agent owns the round's call records and their tool messages, the stream
 * turn's accumulators, the turn's analyses and verdicts, and one timer. The conversation array
 * belongs to the request body; the agent appends to it and keeps references to what it appended.
 * Tool calls still in flight when the request ends are cancelled (mcp_hub_cancel), so no callback
 * outlives the agent.
 */
#include "gateway/agent.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "codemode/metatools.h"
#include "gateway/handlers.h"
#include "mcp/content.h"
#include "mcp/hub.h"
#include "telemetry/metrics.h"
#include "telemetry/reqlog.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define AGENT_MAX_STREAM_CALLS 256  /* tool-call indexes a stream may use in one turn */
#define AGENT_MAX_LOGGED_ERROR 1024 /* characters of a tool's error text in the log row */

typedef struct agent_call {
    agent_t *agent;
    mcp_hub_call_t *handle;          /* while the hub runs it */
    const mcp_tool_t *tool;          /* the request's catalog entry; NULL for a meta-tool */
    codemode_meta_t meta;            /* the Code Mode meta-tool, or CODEMODE_META_NONE */
    codemode_meta_call_t *meta_call; /* while a meta-tool runs */
    const char *id;                  /* tool_call_id; borrowed from the round's message */
    const char *arguments;           /* JSON text as the model wrote it; borrowed likewise */
    double started;                  /* monotonic */
    double started_unix;
    json_t *message; /* the tool message, once the result is in; owned */
} agent_call_t;

/* One tool call of a streamed turn, rebuilt from its deltas. */
typedef struct stream_call {
    buf_t id;
    buf_t name;
    buf_t args;
} stream_call_t;

typedef struct stream_turn {
    bool shaped; /* the turn's first chunk has set agent.shape */
    buf_t content;
    bool has_content;
    buf_t reasoning;
    json_t *thinking; /* thinking_blocks seen, in order; owned or NULL */
    stream_call_t *calls;
    size_t n_calls;  /* highest index seen + 1 */
    json_t *finish;  /* the finish reason, held when the turn has calls; owned */
    json_t *usage;   /* the last usage object; owned */
    json_t *message; /* built by agent_stream_message; owned */
} stream_turn_t;

/* The analysis of one executeToolCode script of the turn being planned. */
typedef struct analysis {
    agent_t *agent;
    codemode_exec_t *handle; /* while the sandbox parses it */
    char *id;                /* the tool call's id; owned */
} analysis_t;

struct agent {
    struct event_base *base;
    const char *rid;
    const inject_tools_t *tools;
    json_t *conversation; /* borrowed from the request body */
    size_t n_initial;     /* messages the client sent */
    int max_depth;
    bool log_content;
    int turns;  /* model turns completed */
    int rounds; /* rounds of tool execution started */

    json_t *round_msg;   /* assistant message of the last round, as appended; ref */
    agent_call_t *calls; /* the last round's auto calls, in message order */
    size_t n_calls;
    size_t pending;      /* calls of the round not back yet */
    bool launching;      /* inside agent_run's loop: completion must wait */
    struct event *later; /* runs done() on the next loop iteration */
    void (*done)(void *arg);
    void *done_arg;

    json_t *shape; /* the current turn's chunk fields but choices; owned */
    stream_turn_t turn;

    /* Code Mode: which executeToolCode calls of the current turn gatehouse runs itself. */
    json_t *verdicts;     /* tool call id -> true (run here) or false (the client's); owned */
    analysis_t *analyses; /* the turn's analyses */
    size_t n_analyses;
    size_t analyses_pending;
    bool preparing; /* inside agent_prepare's loop: completion must wait */
    void (*prepared)(void *arg);
    void *prepared_arg;
};

/* ---- lifecycle ------------------------------------------------------------------------------ */

agent_t *agent_new(const agent_opts_t *o)
{
    const json_t *n = json_object_get(o->body, "n");
    json_t *conversation = json_object_get(o->body, "messages");
    if (o->tools->n_auto == 0 || (json_is_integer(n) && json_integer_value(n) > 1) ||
        !json_is_array(conversation))
        return NULL;
    agent_t *a = xcalloc(1, sizeof(*a));
    a->base = o->base;
    a->rid = o->request_id;
    a->tools = o->tools;
    a->conversation = conversation;
    a->n_initial = json_array_size(conversation);
    a->max_depth = o->max_depth > 0 ? o->max_depth : CONFIG_MCP_DEFAULT_MAX_AGENT_DEPTH;
    a->log_content = o->log_content;
    return a;
}

static void round_reset(agent_t *a)
{
    for (size_t i = 0; i < a->n_calls; i++) {
        if (a->calls[i].handle != NULL)
            mcp_hub_cancel(a->calls[i].handle);
        codemode_meta_cancel(a->calls[i].meta_call);
        json_decref(a->calls[i].message);
    }
    free(a->calls);
    a->calls = NULL;
    a->n_calls = 0;
    a->pending = 0;
    json_decref(a->round_msg);
    a->round_msg = NULL;
}

void agent_stream_next_turn(agent_t *a)
{
    stream_turn_t *t = &a->turn;
    for (size_t i = 0; i < t->n_calls; i++) {
        buf_free(&t->calls[i].id);
        buf_free(&t->calls[i].name);
        buf_free(&t->calls[i].args);
    }
    free(t->calls);
    buf_free(&t->content);
    buf_free(&t->reasoning);
    json_decref(t->thinking);
    json_decref(t->finish);
    json_decref(t->usage);
    json_decref(t->message);
    memset(t, 0, sizeof(*t));
}

static void report_call(const agent_call_t *call, const json_t *result, bool ok, const char *error,
                        double duration_s);

static void analyses_reset(agent_t *a)
{
    for (size_t i = 0; i < a->n_analyses; i++) {
        codemode_exec_cancel(a->analyses[i].handle);
        free(a->analyses[i].id);
    }
    free(a->analyses);
    a->analyses = NULL;
    a->n_analyses = 0;
    a->analyses_pending = 0;
}

void agent_free(agent_t *a)
{
    if (a == NULL)
        return;
    /* Calls still running when the request ends (the client left): they never answer now,
     * but they did start, so they are logged as such. */
    for (size_t i = 0; i < a->n_calls; i++) {
        agent_call_t *call = &a->calls[i];
        if (call->handle != NULL)
            report_call(call, NULL, false, "cancelled: the request ended",
                        gateway_now() - call->started);
        if (call->meta_call != NULL)
            log_info(a->rid, "agent: %s cancelled: the request ended",
                     codemode_meta_name(call->meta));
    }
    analyses_reset(a);
    json_decref(a->verdicts);
    round_reset(a);
    agent_stream_next_turn(a);
    if (a->later != NULL)
        event_free(a->later);
    json_decref(a->shape);
    free(a);
}

int agent_turns(const agent_t *a)
{
    return a->turns;
}

/* ---- planning ------------------------------------------------------------------------------- */

/* What gatehouse runs for a call: an MCP tool or a Code Mode meta-tool. */
typedef struct target {
    const mcp_tool_t *tool;
    codemode_meta_t meta;
} target_t;

static const char *call_name(const json_t *call)
{
    const char *type = json_string_value(json_object_get(call, "type"));
    if (type != NULL && strcmp(type, "function") != 0)
        return NULL;
    return json_string_value(json_object_get(json_object_get(call, "function"), "name"));
}

/* What gatehouse may run itself for a call: an auto-executable MCP tool, a reading meta-tool,
 * or an executeToolCode whose analysis said so. False when the call is the client's. */
static bool auto_target(const agent_t *a, const json_t *call, target_t *out)
{
    const char *name = call_name(call);
    *out = (target_t){NULL, inject_meta(a->tools, name)};
    if (out->meta == CODEMODE_META_EXECUTE) {
        const char *id = json_string_value(json_object_get(call, "id"));
        return id != NULL && json_is_true(json_object_get(a->verdicts, id));
    }
    if (out->meta != CODEMODE_META_NONE)
        return true;
    const mcp_tool_t *t = inject_lookup(a->tools, name);
    out->tool = t;
    return t != NULL && t->auto_execute;
}

static bool is_auto(const agent_t *a, const json_t *call)
{
    target_t ignored;
    return auto_target(a, call, &ignored);
}

agent_plan_t agent_plan(agent_t *a, const json_t *message)
{
    a->turns++;
    const json_t *calls = json_object_get(message, "tool_calls");
    size_t n = json_array_size(calls);
    size_t n_auto = 0;
    for (size_t i = 0; i < n; i++)
        n_auto += is_auto(a, json_array_get(calls, i));

    if (n_auto == 0)
        return AGENT_FINAL;
    if (a->rounds >= a->max_depth) {
        log_warn(a->rid,
                 "agent: max_agent_depth (%d) reached with %zu tool calls pending;"
                 " answering with the last turn as is",
                 a->max_depth, n);
        return AGENT_LIMIT;
    }
    return n_auto == n ? AGENT_RUN_ALL : AGENT_RUN_SOME;
}

/* ---- Code Mode: which scripts gatehouse runs ------------------------------------------------ */

static json_t *call_arguments(const char *text);

/* Whether a script may run here, from its analysis; why not goes to the log. */
static bool script_is_auto(const agent_t *a, const codemode_analysis_t *an, const char **why)
{
    *why = NULL;
    if (an->failed) {
        *why = "the sandbox could not analyse it";
        return false;
    }
    if (!an->syntax_ok)
        return true; /* it cannot run a thing; the model gets its syntax error */
    if (an->dynamic) {
        *why = "it calls tools in a way that cannot be read before it runs";
        return false;
    }
    for (size_t i = 0; i < an->n_calls; i++) {
        const codemode_tool_binding_t *t =
            codemode_bindings_find(a->tools->codemode, an->servers_py[i], an->tools_py[i], NULL);
        if (t == NULL || !t->t->auto_execute) {
            *why = "it calls a tool that is not in tools_to_auto_execute";
            return false;
        }
    }
    return true;
}

static void on_analysis(void *arg, const codemode_analysis_t *an)
{
    analysis_t *x = arg;
    agent_t *a = x->agent;
    x->handle = NULL;
    const char *why;
    bool run_here = script_is_auto(a, an, &why);
    json_object_set_new(a->verdicts, x->id, json_boolean(run_here));
    if (run_here)
        log_debug(a->rid, "agent: executeToolCode %s runs here (%zu tool calls)", x->id,
                  an->n_calls);
    else
        log_info(a->rid, "agent: executeToolCode %s goes back to the client: %s", x->id, why);
    if (--a->analyses_pending == 0 && !a->preparing)
        a->prepared(a->prepared_arg);
}

/* Starts the analysis of one executeToolCode call, or decides at once. */
static void prepare_script(agent_t *a, const json_t *call)
{
    const char *id = json_string_value(json_object_get(call, "id"));
    if (id == NULL)
        return; /* no id, no tool message to answer with: the client's */
    const json_t *fn = json_object_get(call, "function");
    json_t *args = call_arguments(json_string_value(json_object_get(fn, "arguments")));
    const char *code = codemode_meta_code(args);
    if (code == NULL) {
        json_object_set_new(a->verdicts, id, json_true()); /* answered here: "needs code" */
        json_decref(args);
        return;
    }
    analysis_t *x = &a->analyses[a->n_analyses++];
    x->agent = a;
    x->id = xstrdup(id);
    a->analyses_pending++;
    x->handle = codemode_analyze_start(a->base, code, a->tools->codemode, a->rid, on_analysis, x);
    json_decref(args);
}

bool agent_prepare(agent_t *a, const json_t *message, void (*done)(void *arg), void *arg)
{
    analyses_reset(a);
    json_decref(a->verdicts);
    a->verdicts = json_object();
    const json_t *calls = json_object_get(message, "tool_calls");
    if (a->tools->codemode == NULL || json_array_size(calls) == 0)
        return false;

    a->prepared = done;
    a->prepared_arg = arg;
    a->analyses = xcalloc(json_array_size(calls), sizeof(*a->analyses));
    a->preparing = true;
    size_t i;
    const json_t *c;
    json_array_foreach (calls, i, c) {
        if (inject_meta(a->tools, call_name(c)) == CODEMODE_META_EXECUTE)
            prepare_script(a, c);
    }
    a->preparing = false;
    return a->analyses_pending > 0;
}

/* ---- running a round ------------------------------------------------------------------------ */

/* The assistant message as it goes back to the model: the fields a provider reads, without
 * what only a response has (refusal, annotations, audio). */
static json_t *conversation_message(const json_t *m)
{
    static const char *const kept[] = {"tool_calls", "reasoning_content", "thinking_blocks"};
    json_t *out = json_pack("{s:s}", "role", "assistant");
    const json_t *content = json_object_get(m, "content");
    json_object_set_new(out, "content", content ? json_deep_copy(content) : json_null());
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
        const json_t *v = json_object_get(m, kept[i]);
        if (v != NULL && !json_is_null(v))
            json_object_set_new(out, kept[i], json_deep_copy(v));
    }
    return out;
}

static json_t *error_message(const char *id, const char *text)
{
    json_t *m = json_pack("{s:s, s:s, s:s+}", "role", "tool", "tool_call_id", id ? id : "",
                          "content", MCP_CONTENT_ERROR_PREFIX, text);
    /* A message cut short inside a UTF-8 sequence is no JSON string; the model still needs a
     * result for the call. */
    if (m == NULL)
        m = json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", id ? id : "", "content",
                      MCP_CONTENT_ERROR_PREFIX "the tool call failed");
    return m;
}

/* The call's log row and metric. result is the CallToolResult, or NULL. */
static void report_call(const agent_call_t *call, const json_t *result, bool ok, const char *error,
                        double duration_s)
{
    const agent_t *a = call->agent;
    char *result_text = NULL;
    if (a->log_content && result != NULL)
        result_text = json_dumps(result, JSON_COMPACT);
    reqlog_tool_call_t row = {
        .request_id = a->rid,
        .source = "agent",
        .mcp_client = call->tool->client,
        .tool = call->tool->name,
        .started_unix = call->started_unix,
        .duration_s = duration_s,
        .ok = ok,
        .error = ok ? NULL : error,
        .arguments = a->log_content ? call->arguments : NULL,
        .result = result_text,
    };
    reqlog_submit_tool(&row);
    metrics_tool_call(call->tool->client, call->tool->name, ok, duration_s);
    free(result_text);
}

static void round_complete(agent_t *a)
{
    for (size_t i = 0; i < a->n_calls; i++)
        json_array_append(a->conversation, a->calls[i].message);
    log_debug(a->rid, "agent: round %d done (%zu tool calls)", a->rounds, a->n_calls);
    a->done(a->done_arg);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    round_complete(arg);
}

static void call_finished(agent_call_t *call, json_t *message)
{
    agent_t *a = call->agent;
    call->message = message;
    if (--a->pending > 0 || a->launching)
        return;
    round_complete(a);
}

/* The error text of a tool message for the log row: the tool's own words only when content
 * may be logged, since they are part of the result. */
static void report_tool_error(const agent_call_t *call, const json_t *result, const json_t *msg,
                              double duration_s)
{
    char text[AGENT_MAX_LOGGED_ERROR + 1] = "the tool reported an error (isError)";
    const char *content = json_string_value(json_object_get(msg, "content"));
    if (call->agent->log_content && content != NULL)
        snprintf(text, sizeof(text), "%s", content);
    report_call(call, result, false, text, duration_s);
}

static void on_tool_done(void *arg, const mcp_hub_result_t *res)
{
    agent_call_t *call = arg;
    call->handle = NULL;
    double duration = res->duration_s > 0 ? res->duration_s : gateway_now() - call->started;

    if (res->result == NULL) {
        const char *why = res->err != NULL ? res->err->message : "no result";
        log_info(call->agent->rid, "agent: tool %s of %s failed: %s", call->tool->name,
                 call->tool->client, why);
        report_call(call, NULL, false, why, duration);
        call_finished(call, error_message(call->id, why));
        return;
    }
    bool is_error = false;
    json_t *msg = mcp_content_tool_message(res->result, call->id, &is_error);
    if (is_error)
        report_tool_error(call, res->result, msg, duration);
    else
        report_call(call, res->result, true, NULL, duration);
    call_finished(call, msg);
}

/* The model's arguments as the object a tools/call sends, or NULL when they are not one. */
static json_t *call_arguments(const char *text)
{
    if (text == NULL || text[strspn(text, " \t\r\n")] == '\0')
        return json_object();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (json_is_object(v))
        return v;
    json_decref(v);
    return NULL;
}

static void on_meta_done(void *arg, const char *text, bool is_error)
{
    agent_call_t *call = arg;
    call->meta_call = NULL;
    log_info(call->agent->rid, "agent: %s answered in %.0f ms%s", codemode_meta_name(call->meta),
             (gateway_now() - call->started) * 1000.0, is_error ? " (an error for the model)" : "");
    json_t *m = json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id",
                          call->id ? call->id : "", "content", text);
    call_finished(call, m != NULL ? m : error_message(call->id, "the answer is not valid UTF-8"));
}

/* A meta-tool call: bad arguments are the meta-tool's to answer, like any mistake of the
 * model's, so they go through too (as no arguments). */
static void launch_meta(agent_call_t *call)
{
    agent_t *a = call->agent;
    json_t *args = call_arguments(call->arguments);
    codemode_meta_opts_t o = {
        .bindings = a->tools->codemode,
        .level = a->tools->codemode_level,
        .request_id = a->rid,
        .log_content = a->log_content,
    };
    log_debug(a->rid, "agent: running %s", codemode_meta_name(call->meta));
    call->meta_call = codemode_meta_call(a->base, call->meta, args, &o, on_meta_done, call);
    json_decref(args);
}

static void launch(agent_call_t *call)
{
    agent_t *a = call->agent;
    call->started = gateway_now();
    call->started_unix = gateway_wall_now();
    if (call->meta != CODEMODE_META_NONE) {
        launch_meta(call);
        return;
    }
    json_t *args = call_arguments(call->arguments);
    if (args == NULL) {
        static const char why[] = "the arguments are not a JSON object";
        report_call(call, NULL, false, why, 0);
        call_finished(call, error_message(call->id, why));
        return;
    }
    log_debug(a->rid, "agent: calling %s of %s", call->tool->name, call->tool->client);
    call->handle = mcp_hub_call_tool(a->base, call->tool->client, call->tool->name, args, a->rid,
                                     on_tool_done, call);
    if (call->handle == NULL) {
        static const char why[] = "the tool hub is not running";
        report_call(call, NULL, false, why, 0);
        call_finished(call, error_message(call->id, why));
    }
}

void agent_run(agent_t *a, const json_t *message, void (*done)(void *arg), void *arg)
{
    round_reset(a);
    a->rounds++;
    a->done = done;
    a->done_arg = arg;
    a->round_msg = conversation_message(message);
    json_array_append(a->conversation, a->round_msg);

    const json_t *calls = json_object_get(a->round_msg, "tool_calls");
    a->calls = xcalloc(json_array_size(calls), sizeof(*a->calls));
    size_t i;
    const json_t *c;
    json_array_foreach (calls, i, c) {
        target_t target;
        if (!auto_target(a, c, &target))
            continue;
        const json_t *fn = json_object_get(c, "function");
        a->calls[a->n_calls++] = (agent_call_t){
            .agent = a,
            .tool = target.tool,
            .meta = target.meta,
            .id = json_string_value(json_object_get(c, "id")),
            .arguments = json_string_value(json_object_get(fn, "arguments")),
        };
    }
    log_info(a->rid, "agent: round %d runs %zu of %zu tool calls", a->rounds, a->n_calls,
             json_array_size(calls));

    /* The hub may answer a call before the loop is over (an unknown client, say): completion
     * waits for the loop, and done() always runs from the event loop, never from here. */
    a->pending = a->n_calls;
    a->launching = true;
    for (i = 0; i < a->n_calls; i++)
        launch(&a->calls[i]);
    a->launching = false;
    if (a->pending == 0) {
        if (a->later == NULL)
            a->later = evtimer_new(a->base, on_later, a);
        struct timeval now = {0, 0};
        evtimer_add(a->later, &now);
    }
}

/* ---- what the client sees ------------------------------------------------------------------- */

/* The calls of message that gatehouse does not run (AGENT_RUN_SOME leaves these to the client),
 * in order. New reference. */
static json_t *client_calls(const agent_t *a, const json_t *message)
{
    json_t *out = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach (json_object_get(message, "tool_calls"), i, c) {
        if (!is_auto(a, c))
            json_array_append(out, (json_t *)c);
    }
    return out;
}

/* Every message gatehouse added to the conversation, then final (stolen) unless NULL: what a
 * client appends to its own messages to continue. */
static json_t *transcript(const agent_t *a, json_t *final)
{
    json_t *out = json_array();
    for (size_t i = a->n_initial; i < json_array_size(a->conversation); i++)
        json_array_append(out, json_array_get(a->conversation, i));
    if (final != NULL)
        json_array_append_new(out, final);
    return out;
}

/* The summary: {"steps", "depth_limit_reached", "messages"}, or NULL when no tool ran and no
 * limit stopped the loop (the answer is then exactly what the model said). */
static json_t *summary(const agent_t *a, agent_plan_t plan, const json_t *final_message)
{
    if (a->rounds == 0 && plan != AGENT_LIMIT)
        return NULL;
    json_t *final = NULL;
    if (plan != AGENT_RUN_SOME && final_message != NULL)
        final = conversation_message(final_message);
    return json_pack("{s:i, s:i, s:b, s:o}", "steps", a->turns, "max_depth", a->max_depth,
                     "depth_limit_reached", plan == AGENT_LIMIT, "messages", transcript(a, final));
}

const json_t *agent_response_message(const json_t *resp)
{
    const json_t *choices = json_object_get(resp, "choices");
    if (json_array_size(choices) != 1)
        return NULL;
    const json_t *m = json_object_get(json_array_get(choices, 0), "message");
    return json_is_object(m) ? m : NULL;
}

void agent_finish_json(agent_t *a, json_t *resp, agent_plan_t plan)
{
    json_t *msg = (json_t *)agent_response_message(resp);
    json_t *s = summary(a, plan, msg);
    if (s == NULL)
        return;
    if (plan == AGENT_RUN_SOME && msg != NULL)
        json_object_set_new(msg, "tool_calls", client_calls(a, msg));
    json_object_set_new(resp, "gatehouse_agent", s);
}

/* ---- streams -------------------------------------------------------------------------------- */

json_t *agent_chunk(const agent_t *a)
{
    json_t *c = a->shape != NULL ? json_copy(a->shape) : json_object();
    json_object_set_new(c, "object", json_string("chat.completion.chunk"));
    json_object_set_new(c, "choices", json_array());
    return c;
}

/* Keeps the first chunk's top-level fields (id, created, model, ...) for the chunks the agent
 * writes itself. */
static void remember_shape(agent_t *a, const json_t *chunk)
{
    if (a->turn.shaped)
        return;
    a->turn.shaped = true;
    json_decref(a->shape);
    a->shape = json_object();
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)chunk, key, v) {
        if (strcmp(key, "choices") != 0 && strcmp(key, "usage") != 0)
            json_object_set(a->shape, key, v);
    }
}

static stream_call_t *stream_call_at(stream_turn_t *t, size_t index)
{
    if (index >= t->n_calls) {
        t->calls = xrealloc(t->calls, (index + 1) * sizeof(*t->calls));
        memset(t->calls + t->n_calls, 0, (index + 1 - t->n_calls) * sizeof(*t->calls));
        t->n_calls = index + 1;
    }
    return &t->calls[index];
}

static void take_call_delta(agent_t *a, size_t pos, const json_t *d)
{
    const json_t *index = json_object_get(d, "index");
    json_int_t i = json_is_integer(index) ? json_integer_value(index) : (json_int_t)pos;
    if (i < 0 || i >= AGENT_MAX_STREAM_CALLS) {
        log_warn(a->rid, "agent: ignoring a tool call delta with index %lld", (long long)i);
        return;
    }
    stream_call_t *c = stream_call_at(&a->turn, (size_t)i);
    const json_t *fn = json_object_get(d, "function");
    const char *id = json_string_value(json_object_get(d, "id"));
    const char *name = json_string_value(json_object_get(fn, "name"));
    const char *args = json_string_value(json_object_get(fn, "arguments"));
    if (id != NULL) {
        buf_reset(&c->id);
        buf_appends(&c->id, id);
    }
    if (name != NULL)
        buf_appends(&c->name, name);
    if (args != NULL)
        buf_appends(&c->args, args);
}

/* Accumulates a delta; removes its tool calls, which the client gets at the turn's end. */
static void take_delta(agent_t *a, json_t *delta)
{
    stream_turn_t *t = &a->turn;
    const char *content = json_string_value(json_object_get(delta, "content"));
    if (content != NULL) {
        buf_appends(&t->content, content);
        t->has_content = true;
    }
    const char *reasoning = json_string_value(json_object_get(delta, "reasoning_content"));
    if (reasoning != NULL)
        buf_appends(&t->reasoning, reasoning);
    const json_t *blocks = json_object_get(delta, "thinking_blocks");
    if (json_is_array(blocks)) {
        if (t->thinking == NULL)
            t->thinking = json_array();
        json_array_extend(t->thinking, (json_t *)blocks);
    }
    json_t *calls = json_object_get(delta, "tool_calls");
    if (calls == NULL)
        return;
    size_t i;
    const json_t *d;
    json_array_foreach (calls, i, d)
        take_call_delta(a, i, d);
    json_object_del(delta, "tool_calls");
}

bool agent_stream_chunk(agent_t *a, json_t *chunk)
{
    stream_turn_t *t = &a->turn;
    remember_shape(a, chunk);
    json_t *usage = json_object_get(chunk, "usage");
    if (json_is_object(usage)) {
        json_decref(t->usage);
        t->usage = json_deep_copy(usage);
    }
    if (usage != NULL)
        json_object_del(chunk, "usage");

    json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
    if (choice == NULL)
        return false;
    json_t *delta = json_object_get(choice, "delta");
    if (json_is_object(delta))
        take_delta(a, delta);

    json_t *finish = json_object_get(choice, "finish_reason");
    if (json_is_string(finish) && t->n_calls > 0) {
        json_decref(t->finish);
        t->finish = json_incref(finish);
        json_object_set_new(choice, "finish_reason", json_null());
    }
    /* What is left may be nothing at all (a chunk that only carried tool calls or usage). */
    finish = json_object_get(choice, "finish_reason");
    return json_object_size(delta) > 0 || (finish != NULL && !json_is_null(finish)) ||
           json_array_size(json_object_get(chunk, "choices")) > 1;
}

static json_t *stream_calls_json(const stream_turn_t *t)
{
    json_t *calls = json_array();
    for (size_t i = 0; i < t->n_calls; i++) {
        const stream_call_t *c = &t->calls[i];
        json_array_append_new(calls,
                              json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", buf_cstr(&c->id), "type",
                                        "function", "function", "name", buf_cstr(&c->name),
                                        "arguments", buf_cstr(&c->args)));
    }
    return calls;
}

const json_t *agent_stream_message(agent_t *a)
{
    stream_turn_t *t = &a->turn;
    if (t->message != NULL)
        return t->message;
    t->message = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(t->message, "content",
                        t->has_content ? json_string(buf_cstr(&t->content)) : json_null());
    if (t->reasoning.len > 0)
        json_object_set_new(t->message, "reasoning_content", json_string(buf_cstr(&t->reasoning)));
    if (t->thinking != NULL)
        json_object_set(t->message, "thinking_blocks", t->thinking);
    if (t->n_calls > 0)
        json_object_set_new(t->message, "tool_calls", stream_calls_json(t));
    return t->message;
}

const json_t *agent_stream_usage(const agent_t *a)
{
    return a->turn.usage;
}

static json_t *event_chunk(const agent_t *a, json_t *event)
{
    json_t *c = agent_chunk(a);
    json_object_set_new(c, "gatehouse_agent", event);
    return c;
}

json_t *agent_event_calls(const agent_t *a)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < a->n_calls; i++)
        json_array_append_new(ids, json_string(a->calls[i].id ? a->calls[i].id : ""));
    return event_chunk(a, json_pack("{s:s, s:i, s:O, s:o}", "type", "tool_calls", "step", a->turns,
                                    "message", a->round_msg, "executing", ids));
}

json_t *agent_event_results(const agent_t *a)
{
    json_t *msgs = json_array();
    for (size_t i = 0; i < a->n_calls; i++)
        json_array_append(msgs, a->calls[i].message);
    return event_chunk(a, json_pack("{s:s, s:i, s:o}", "type", "tool_results", "step", a->turns,
                                    "messages", msgs));
}

/* A chunk of choice 0 with this delta (stolen) and finish reason (borrowed, may be NULL). */
static json_t *choice_chunk(const agent_t *a, json_t *delta, json_t *finish)
{
    json_t *c = agent_chunk(a);
    json_array_append_new(json_object_get(c, "choices"),
                          json_pack("{s:i, s:o, s:O}", "index", 0, "delta", delta, "finish_reason",
                                    finish ? finish : json_null()));
    return c;
}

json_t *agent_stream_tail(agent_t *a, agent_plan_t plan, json_t *usage)
{
    json_t *out = json_array();
    const json_t *msg = agent_stream_message(a);
    json_t *calls = plan == AGENT_RUN_SOME ? client_calls(a, msg)
                                           : json_incref(json_object_get(msg, "tool_calls"));
    size_t i;
    json_t *c;
    json_array_foreach (calls, i, c) {
        json_t *d = json_deep_copy(c);
        json_object_set_new(d, "index", json_integer((json_int_t)i));
        json_t *delta = json_pack("{s:[o]}", "tool_calls", d);
        json_array_append_new(out, choice_chunk(a, delta, NULL));
    }
    json_decref(calls);
    if (a->turn.finish != NULL)
        json_array_append_new(out, choice_chunk(a, json_object(), a->turn.finish));

    json_t *s = summary(a, plan, msg);
    if (s != NULL) {
        json_object_set_new(s, "type", json_string("done"));
        json_array_append_new(out, event_chunk(a, s));
    }
    if (usage != NULL) {
        json_t *u = agent_chunk(a);
        json_object_set_new(u, "usage", usage);
        json_array_append_new(out, u);
    }
    return out;
}

json_t *agent_usage_json(long tokens_in, long tokens_out, long tokens_cached)
{
    json_t *u =
        json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)tokens_in, "completion_tokens",
                  (json_int_t)tokens_out, "total_tokens", (json_int_t)(tokens_in + tokens_out));
    if (tokens_cached > 0)
        json_object_set_new(u, "prompt_tokens_details",
                            json_pack("{s:I}", "cached_tokens", (json_int_t)tokens_cached));
    return u;
}
