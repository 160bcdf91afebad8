/*
 * agent.h - agent mode: gatehouse runs the MCP tools a model calls, when they are all marked
 * tools_to_auto_execute, and calls the model again with their results.
 *
 * One agent_t lives for one chat request that was given at least one auto-executable tool
 * (inject.h). The request pipeline (chat.c) keeps its attempt loop (retries, fallbacks) for
 * every model call and asks the agent, whenever a turn is complete, what comes next:
 *
 *   agent_prepare(message, done)  Code Mode only: when the turn calls executeToolCode, the
 *                              scripts are parsed in the sandbox first (is every tool they
 *                              call auto-executable?); returns true and calls done later,
 *                              then the turn is planned
 *   agent_plan(message)        AGENT_FINAL     no call gatehouse may run: answer as is
 *                              AGENT_LIMIT     calls to run, but max_agent_depth rounds ran:
 *                                              answer as is, marked
 *                              AGENT_RUN_ALL   run them, then call the model again
 *                              AGENT_RUN_SOME  run the auto calls, answer with the others
 *   agent_run(message, done)   appends the assistant message to the conversation, runs the
 *                              auto calls in parallel on the hub, appends their tool messages
 *                              in call order, then calls done on the worker's loop
 *
 * Streams: agent_stream_chunk sees every canonical chunk of a turn. Text passes through at
 * once; tool-call deltas, and the finish reason of a turn that has them, are held until the
 * turn ends, because only a whole turn says whether gatehouse runs its calls. Usage is held
 * too, so that the client gets one usage chunk at the very end.
 *
 * What the client sees of the steps (docs/agent-mode.md): a top-level "gatehouse_agent"
 * object on the JSON answer, and chunks with "choices": [] carrying "gatehouse_agent" events
 * in a stream.
 */
#ifndef GATEHOUSE_GATEWAY_AGENT_H
#define GATEHOUSE_GATEWAY_AGENT_H

#include <jansson.h>
#include <stdbool.h>

#include "config/config.h"
#include "gateway/inject.h"

struct event_base;

typedef struct agent agent_t;

typedef enum agent_plan {
    AGENT_FINAL,
    AGENT_LIMIT,
    AGENT_RUN_ALL,
    AGENT_RUN_SOME,
} agent_plan_t;

typedef struct agent_opts {
    struct event_base *base;     /* the worker's loop: tool results come back on it */
    const char *request_id;      /* borrowed; outlives the agent */
    const inject_tools_t *tools; /* the request's MCP tools; borrowed, outlives the agent */
    json_t *body;                /* the canonical request; its "messages" grow with the loop */
    int max_depth;               /* rounds of tool execution at most; 0 = the default (10) */
    bool log_content;            /* tool arguments and results go to the request log */
} agent_opts_t;

/* An agent for a request that was given an auto-executable tool and asks for one choice (a
 * loop cannot follow several), or NULL: agent mode does not apply. */
agent_t *agent_new(const agent_opts_t *o);
/* Cancels the calls still running (their results are dropped) and frees everything. */
void agent_free(agent_t *a);

/* Model turns completed so far (each agent_plan call counts one). */
int agent_turns(const agent_t *a);

/* Starts what planning the turn needs that takes time: the analysis of its executeToolCode
 * scripts. Returns true when done will run later, on the worker's loop (message must stay
 * valid until then); false when agent_plan may run at once. */
bool agent_prepare(agent_t *a, const json_t *message, void (*done)(void *arg), void *arg);
/* Classifies a complete turn (after agent_prepare); message is its assistant message. */
agent_plan_t agent_plan(agent_t *a, const json_t *message);
/* Runs the auto-executable calls of message (plan AGENT_RUN_ALL or AGENT_RUN_SOME); done runs
 * once, later, on the worker's loop, when every result is in the conversation. */
void agent_run(agent_t *a, const json_t *message, void (*done)(void *arg), void *arg);

/* ---- JSON answers --------------------------------------------------------------------------- */

/* The assistant message of a chat.completion with exactly one choice, or NULL. */
const json_t *agent_response_message(const json_t *resp);
/* Prepares the final answer: leaves only the calls the client must run when the last round ran
 * some of them (AGENT_RUN_SOME), and adds "gatehouse_agent" when any tool ran or the depth
 * limit stopped the loop. */
void agent_finish_json(agent_t *a, json_t *resp, agent_plan_t plan);

/* ---- streams -------------------------------------------------------------------------------- */

/* Takes in one chunk of the current turn. Returns true when the chunk, as modified (tool-call
 * deltas, usage and a held finish reason removed), should go to the client. */
bool agent_stream_chunk(agent_t *a, json_t *chunk);
/* The assistant message the current turn built. Owned by the agent; valid until the next
 * turn starts. */
const json_t *agent_stream_message(agent_t *a);
/* The last usage object of the current turn, or NULL (borrowed). */
const json_t *agent_stream_usage(const agent_t *a);
/* Forgets the current turn, before the next model call. */
void agent_stream_next_turn(agent_t *a);
/* A new chunk shaped like the turn's chunks (id, created, model), with "choices": []. */
json_t *agent_chunk(const agent_t *a);
/* The event before a round runs: {"type":"tool_calls", "step", "message", "executing"}. */
json_t *agent_event_calls(const agent_t *a);
/* The event after a round ran: {"type":"tool_results", "step", "messages"}. */
json_t *agent_event_results(const agent_t *a);
/* The chunks that end the final turn, in order: the tool calls the client must run (all of the
 * turn's calls, or those gatehouse did not run for AGENT_RUN_SOME), the held finish reason, the
 * "done" event when any tool ran or the limit stopped the loop, and a usage chunk when usage
 * (stolen) is not NULL. New array. */
json_t *agent_stream_tail(agent_t *a, agent_plan_t plan, json_t *usage);

/* {"prompt_tokens", "completion_tokens", "total_tokens"[, "prompt_tokens_details"]}. New. */
json_t *agent_usage_json(long tokens_in, long tokens_out, long tokens_cached);

#endif
