/*
 * exec_internal.h - pieces of the executor shared by its files (exec.c: executions,
 * supervisor.c: the sandbox helper process, frame.c: framing, outcome.c: translations) and its
 * unit tests; not for other modules, which use exec.h.
 *
 * Everything named cm_sup_* and cm_exec_on_* runs on the tool hub's thread only.
 */
#ifndef GATEHOUSE_CODEMODE_EXEC_INTERNAL_H
#define GATEHOUSE_CODEMODE_EXEC_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "codemode/exec.h"

struct event_base;
struct evbuffer;

/* ---- framing (frame.c): a 4-byte big-endian length, then that many bytes of JSON ----------- */

#define CODEMODE_FRAME_MAX (16u * 1024 * 1024) /* the wire format's hard limit */

typedef enum codemode_frame_rc {
    CODEMODE_FRAME_MORE = 0,  /* no whole frame yet */
    CODEMODE_FRAME_OK,        /* *out holds one object */
    CODEMODE_FRAME_TOO_LARGE, /* the announced length is over max; *len_out holds it */
    CODEMODE_FRAME_BAD,       /* the bytes are not one JSON object; err says why */
} codemode_frame_rc_t;

/* Takes one frame from the front of in. Frames longer than max are not read (the caller
 * closes the stream: it can no longer find the next frame). */
codemode_frame_rc_t codemode_frame_take(struct evbuffer *in, size_t max, json_t **out,
                                        size_t *len_out, char *err, size_t err_cap);
/* The frame of an object (length prefix included), or NULL when it cannot be encoded.
 * *len_out is its length. malloc'd. */
char *codemode_frame_encode(const json_t *obj, size_t *len_out);

/* ---- translations (outcome.c) --------------------------------------------------------------- */

/* The execution socket's answer to call number seq: {"type":"return","seq":seq,"ok":true,
 * "value":...} built from a CallToolResult (structuredContent if present, else the parsed JSON
 * of its text when the text is JSON, else the text), or {"ok":false,"error":...} when the
 * result has isError or result is NULL (hub_error says why). *error_out is set to a malloc'd
 * copy of the error, or NULL when ok. New reference. */
json_t *codemode_return_frame(long seq, const json_t *result, const char *hub_error,
                              char **error_out);

/* The status of a done frame when it is one the child may send ("ok", "syntax", "runtime",
 * "tool", "limit"), else NULL. The string is done's. */
const char *codemode_done_status(const json_t *done);
/* Fills o's output, output_truncated, result and error fields from a done frame (the child's:
 * untrusted, any shape). The output is cut at output_bytes (at a UTF-8 boundary) into
 * *output_owned (malloc'd), which o->output points to; the other strings point into done. */
void codemode_outcome_from_done(const json_t *done, long output_bytes, codemode_outcome_t *o,
                                char **output_owned);

/* ---- the sandbox helper (supervisor.c) ------------------------------------------------------ */

/* Starts supervising the helper at path on base (the hub's loop): spawn now, restart with
 * backoff when it dies. Returns 0, or -1 when already started. */
int cm_sup_start(struct event_base *base, const char *path);
/* Kills the helper and waits for it (it dies at once: SIGKILL), frees everything. */
void cm_sup_stop(void);
/* The helper announced "ready" and is still there. */
bool cm_sup_ready(void);
/* Whether executions should wait for the helper (it is starting or restarting) rather than
 * fail at once (not started, or it failed to start several times in a row); *reason says why
 * it is not ready. */
bool cm_sup_worth_waiting(const char **reason);
/* Queues a frame on the control socket with fd attached (taken: closed once sent or when the
 * helper is lost; -1 for none). Returns 0, or -1 when the helper is not ready (fd closed). */
int cm_sup_send(const json_t *frame, int fd);

/* Called by the supervisor (exec.c implements them). */
void cm_exec_on_ready(void);
void cm_exec_on_started(long id, long pid);
/* error: the helper's word on why (a run without a socket, a failed fork), or NULL. */
void cm_exec_on_exited(long id, bool signaled, int code_or_signal, const char *error);
/* The helper died or broke the protocol: executions it ran are lost. */
void cm_exec_on_lost(const char *reason);

#endif
