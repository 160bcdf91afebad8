/*
 * exec.c - the Code Mode executor (contract in exec.h).
 *
 * First landing: the API compiles and every execution answers status "internal" with
 * "sandbox not available", delivered on the caller's loop like a real answer would be.
 */
#include "codemode/exec.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

struct codemode_exec {
    codemode_done_fn done;
    codemode_analysis_fn analysis_done;
    void *arg;
    int cancelled;
};

static void deliver(evutil_socket_t fd, short what, void *arg)
{
    codemode_exec_t *e = arg;
    if (!e->cancelled && e->done != NULL) {
        codemode_outcome_t o = {
            .status = "internal",
            .output = "",
            .error_type = "SandboxError",
            .error_message = "sandbox not available",
        };
        e->done(e->arg, &o);
    } else if (!e->cancelled) {
        codemode_analysis_t a = {.failed = true, .error_message = "sandbox not available"};
        e->analysis_done(e->arg, &a);
    }
    free(e);
}

int codemode_start(const char *sandbox_path, const codemode_limits_t *defaults)
{
    return 0;
}

void codemode_set_defaults(const codemode_limits_t *defaults)
{
}

void codemode_stop(void)
{
}

codemode_exec_t *codemode_exec_start(struct event_base *reply_base, const char *code,
                                     codemode_bindings_t *b, const codemode_limits_t *lim,
                                     const char *request_id, bool log_content,
                                     codemode_done_fn done, void *arg)
{
    codemode_exec_t *e = xcalloc(1, sizeof(*e));
    e->done = done;
    e->arg = arg;
    event_base_once(reply_base, -1, EV_TIMEOUT, deliver, e, NULL);
    return e;
}

codemode_exec_t *codemode_analyze_start(struct event_base *reply_base, const char *code,
                                        codemode_bindings_t *b, const char *request_id,
                                        codemode_analysis_fn done, void *arg)
{
    codemode_exec_t *e = xcalloc(1, sizeof(*e));
    e->analysis_done = done;
    e->arg = arg;
    event_base_once(reply_base, -1, EV_TIMEOUT, deliver, e, NULL);
    return e;
}

void codemode_exec_cancel(codemode_exec_t *e)
{
    if (e != NULL)
        e->cancelled = 1;
}
