/*
 * supervisor.c - the sandbox helper process (gatehouse-sandbox): spawn, control socket, log,
 * restart. Hub thread only (exec_internal.h).
 *
 * The helper gets a connected AF_UNIX stream socket as fd 3, /dev/null as stdin and stdout,
 * and a pipe as stderr whose lines go to our log prefixed "sandbox:". It is spawned in a
 * process group of its own (a terminal's Ctrl-C reaches gatehouse, which then stops it) with
 * default signal handling and no other descriptor (closefrom 4).
 *
 * States:
 *
 *   STARTING  spawned, waiting for its {"op":"ready"} (at most READY_TIMEOUT_MS)
 *   READY     executions are sent to it
 *   BACKOFF   it died, broke the protocol or never got ready; a timer spawns the next one
 *   STOPPED   before start and after stop
 *
 * A helper that stays alive but stops answering counts as a failure too: every run frame must be
 * acknowledged by "started" (or "exited", when the helper could not fork) within ACK_TIMEOUT_MS,
 * which a working helper does within milliseconds whatever the script does.
 *
 * Any failure goes through sup_lost: the executions it ran are failed (cm_exec_on_lost), the
 * process is killed and reaped in the background (reaper), and a restart is scheduled after a
 * backoff that doubles from BACKOFF_MIN_MS to BACKOFF_MAX_MS and starts over once a helper
 * stayed ready for BACKOFF_RESET_S. Nothing here blocks the hub's loop, except cm_sup_stop's
 * wait for a process that was just sent SIGKILL, at shutdown.
 *
 * The control socket is written through our own small queue rather than a bufferevent,
 * because a run frame carries a descriptor (SCM_RIGHTS) on its first byte, which needs
 * sendmsg. The descriptor is closed on our side as soon as the kernel has taken it.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codemode/exec_internal.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define READY_TIMEOUT_MS 10000L
#define ACK_TIMEOUT_MS 10000L /* run frame -> its "started" or "exited" */
#define ACK_CHECK_MS 1000L
#define BACKOFF_MIN_MS 100L
#define BACKOFF_MAX_MS 10000L
#define BACKOFF_RESET_S 30.0
#define FAILURES_BEFORE_GIVING_UP 3 /* in a row without a ready: executions stop waiting */
#define REAP_POLL_MS 50L
#define CONTROL_FRAME_MAX (1024u * 1024) /* the helper's frames are small */
#define LOG_LINE_MAX 1000

typedef enum sup_state { SUP_STOPPED, SUP_STARTING, SUP_READY, SUP_BACKOFF } sup_state_t;

typedef struct out_frame {
    char *data;
    size_t len;
    size_t off;
    int fd; /* to attach to the first byte, or -1 */
    TAILQ_ENTRY(out_frame) link;
} out_frame_t;

TAILQ_HEAD(out_list, out_frame);

typedef struct sup {
    struct event_base *base;
    char *path;
    sup_state_t state;
    pid_t pid; /* the helper, or -1 */
    int ctl_fd;
    struct event *ctl_read_ev;
    struct event *ctl_write_ev;
    struct evbuffer *ctl_in;
    struct out_list out;
    int err_fd;
    struct event *err_ev;
    buf_t err_line;
    struct event *restart_ev;       /* BACKOFF -> spawn */
    struct event *ready_timeout_ev; /* STARTING too long */
    struct event *ack_ev;           /* checks that run frames are acknowledged */
    long *unacked_ids;              /* run frames sent, not yet started or exited */
    double *unacked_at;             /* when each was queued (monotonic seconds) */
    size_t n_unacked, cap_unacked;
    long backoff_ms;
    double ready_at;  /* monotonic seconds of the last ready */
    int failures;     /* in a row, without a ready in between */
    char reason[256]; /* why it is not ready */
} sup_t;

static sup_t *sup; /* hub thread only */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval ms_tv(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void sup_lost(sup_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- reaping --------------------------------------------------------------------------------- */

/* A helper that was killed: waitpid it without blocking until it is gone. */
typedef struct reaper {
    struct event_base *base;
    pid_t pid;
} reaper_t;

static void reaper_tick(evutil_socket_t fd, short what, void *arg)
{
    reaper_t *r = arg;
    pid_t got = waitpid(r->pid, NULL, WNOHANG);
    if (got == r->pid || (got < 0 && errno == ECHILD)) {
        free(r);
        return;
    }
    struct timeval tv = ms_tv(REAP_POLL_MS);
    if (event_base_once(r->base, -1, EV_TIMEOUT, reaper_tick, r, &tv) != 0) {
        log_crit(NULL, "sandbox: cannot watch helper %d any more; it may stay a zombie",
                 (int)r->pid);
        free(r);
    }
}

static void reap_later(struct event_base *base, pid_t pid)
{
    reaper_t *r = xcalloc(1, sizeof(*r));
    r->base = base;
    r->pid = pid;
    reaper_tick(-1, 0, r);
}

/* ---- stderr -> log --------------------------------------------------------------------------- */

static void flush_err_line(sup_t *s)
{
    if (s->err_line.len > 0)
        log_info(NULL, "sandbox: %s", buf_cstr(&s->err_line));
    buf_reset(&s->err_line);
}

static void on_err_read(evutil_socket_t fd, short what, void *arg)
{
    sup_t *s = arg;
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) { /* the helper closed stderr: it is gone or going; the control socket
                       * tells which */
            flush_err_line(s);
            event_del(s->err_ev);
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] == '\n')
                flush_err_line(s);
            else if (s->err_line.len < LOG_LINE_MAX)
                buf_appendc(&s->err_line, chunk[i]);
        }
    }
}

/* ---- the control socket: writing ------------------------------------------------------------- */

static void out_free(out_frame_t *f)
{
    close_fd(&f->fd);
    free(f->data);
    free(f);
}

/* Sends as much of the queue as the socket takes. Returns -1 on a broken socket. */
static int flush_out(sup_t *s)
{
    out_frame_t *f;
    while ((f = TAILQ_FIRST(&s->out)) != NULL) {
        struct iovec iov = {f->data + f->off, f->len - f->off};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        union {
            struct cmsghdr align;
            char bytes[CMSG_SPACE(sizeof(int))];
        } control;
        if (f->fd >= 0) {
            memset(&control, 0, sizeof(control));
            msg.msg_control = control.bytes;
            msg.msg_controllen = sizeof(control.bytes);
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &f->fd, sizeof(int));
        }
        ssize_t n = sendmsg(s->ctl_fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(s->ctl_write_ev, NULL);
            return 0;
        }
        if (n < 0)
            return -1;
        close_fd(&f->fd); /* the kernel holds it for the helper now */
        f->off += (size_t)n;
        if (f->off == f->len) {
            TAILQ_REMOVE(&s->out, f, link);
            out_free(f);
        }
    }
    event_del(s->ctl_write_ev);
    return 0;
}

static void on_ctl_write(evutil_socket_t fd, short what, void *arg)
{
    sup_t *s = arg;
    if (flush_out(s) != 0)
        sup_lost(s, "writing to its control socket failed: %s", strerror(errno));
}

/* ---- acknowledgements ------------------------------------------------------------------------ */

static void on_ack_check(evutil_socket_t fd, short what, void *arg)
{
    sup_t *s = arg;
    if (s->n_unacked == 0)
        return;
    if (now_s() - s->unacked_at[0] > ACK_TIMEOUT_MS / 1000.0) {
        sup_lost(s, "it did not start run %ld within %ld ms: it is hung", s->unacked_ids[0],
                 ACK_TIMEOUT_MS);
        return;
    }
    struct timeval tv = ms_tv(ACK_CHECK_MS);
    event_add(s->ack_ev, &tv);
}

static void expect_ack(sup_t *s, long id)
{
    if (s->n_unacked == s->cap_unacked) {
        s->cap_unacked = s->cap_unacked ? s->cap_unacked * 2 : 16;
        s->unacked_ids = xrealloc(s->unacked_ids, s->cap_unacked * sizeof(long));
        s->unacked_at = xrealloc(s->unacked_at, s->cap_unacked * sizeof(double));
    }
    s->unacked_ids[s->n_unacked] = id;
    s->unacked_at[s->n_unacked] = now_s();
    s->n_unacked++;
    if (!evtimer_pending(s->ack_ev, NULL)) {
        struct timeval tv = ms_tv(ACK_CHECK_MS);
        event_add(s->ack_ev, &tv);
    }
}

/* The helper answered for run id; the oldest unanswered run is always first. */
static void got_ack(sup_t *s, long id)
{
    for (size_t i = 0; i < s->n_unacked; i++) {
        if (s->unacked_ids[i] != id)
            continue;
        memmove(&s->unacked_ids[i], &s->unacked_ids[i + 1], (s->n_unacked - i - 1) * sizeof(long));
        memmove(&s->unacked_at[i], &s->unacked_at[i + 1], (s->n_unacked - i - 1) * sizeof(double));
        s->n_unacked--;
        return;
    }
}

int cm_sup_send(const json_t *frame, int fd)
{
    sup_t *s = sup;
    size_t len;
    char *data = s != NULL && s->state == SUP_READY ? codemode_frame_encode(frame, &len) : NULL;
    if (data == NULL) {
        close_fd(&fd);
        return -1;
    }
    out_frame_t *f = xcalloc(1, sizeof(*f));
    f->data = data;
    f->len = len;
    f->fd = fd;
    const char *op = json_string_value(json_object_get(frame, "op"));
    if (op != NULL && strcmp(op, "run") == 0)
        expect_ack(s, (long)json_integer_value(json_object_get(frame, "id")));
    bool was_empty = TAILQ_EMPTY(&s->out);
    TAILQ_INSERT_TAIL(&s->out, f, link);
    if (was_empty && flush_out(s) != 0) {
        /* The frame is lost with the helper; its execution hears of it from sup_lost, after
         * this call has returned, through a fresh loop turn. */
        event_active(s->ctl_write_ev, EV_WRITE, 0);
    }
    return 0;
}

/* ---- the control socket: reading ------------------------------------------------------------- */

static void on_ready(sup_t *s, const json_t *msg)
{
    buf_t ns = BUF_INIT;
    const json_t *list = json_object_get(msg, "namespaces");
    size_t i;
    const json_t *v;
    json_array_foreach (list, i, v) {
        if (json_is_string(v))
            buf_appendf(&ns, "%s%s", ns.len > 0 ? "," : "", json_string_value(v));
    }
    const char *version = json_string_value(json_object_get(msg, "version"));
    const char *python = json_string_value(json_object_get(msg, "python"));
    bool seccomp = json_is_true(json_object_get(msg, "seccomp"));
    log_msg(ns.len > 0 && seccomp ? LOG_LVL_INFO : LOG_LVL_WARN, NULL,
            "sandbox: helper %d ready (version %s, Python %s); namespaces: %s; seccomp: %s",
            (int)s->pid, version ? version : "?", python ? python : "?",
            ns.len > 0 ? buf_cstr(&ns) : "none, plain-process fallback (the kernel refused them)",
            seccomp ? "on" : "OFF");
    buf_free(&ns);

    s->state = SUP_READY;
    s->ready_at = now_s();
    s->failures = 0;
    s->reason[0] = '\0';
    event_del(s->ready_timeout_ev);
    cm_exec_on_ready();
}

static long int_field(const json_t *msg, const char *key, long dflt)
{
    const json_t *v = json_object_get(msg, key);
    return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

/* Returns -1 when the helper broke the protocol (sup_lost has been called). */
static int on_ctl_message(sup_t *s, const json_t *msg)
{
    const char *op = json_string_value(json_object_get(msg, "op"));
    if (op == NULL) {
        sup_lost(s, "it sent a control message without \"op\"");
        return -1;
    }
    if (strcmp(op, "ready") == 0) {
        if (s->state != SUP_STARTING) {
            sup_lost(s, "it said ready twice");
            return -1;
        }
        on_ready(s, msg);
    } else if (s->state != SUP_READY) {
        sup_lost(s, "it sent \"%.40s\" before ready", op);
        return -1;
    } else if (strcmp(op, "started") == 0) {
        got_ack(s, int_field(msg, "id", -1));
        cm_exec_on_started(int_field(msg, "id", -1), int_field(msg, "pid", -1));
    } else if (strcmp(op, "exited") == 0) {
        const json_t *sig = json_object_get(msg, "signal");
        bool signaled = json_is_integer(sig);
        got_ack(s, int_field(msg, "id", -1));
        cm_exec_on_exited(int_field(msg, "id", -1), signaled,
                          (int)(signaled ? json_integer_value(sig) : int_field(msg, "code", -1)),
                          json_string_value(json_object_get(msg, "error")));
    } else {
        log_warn(NULL, "sandbox: helper %d sent unknown op \"%.40s\"; ignored", (int)s->pid, op);
    }
    return 0;
}

static void on_ctl_read(evutil_socket_t fd, short what, void *arg)
{
    sup_t *s = arg;
    int n = evbuffer_read(s->ctl_in, fd, 65536);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n == 0) {
        sup_lost(s, "it closed its control socket");
        return;
    }
    if (n < 0) {
        sup_lost(s, "reading its control socket failed: %s", strerror(errno));
        return;
    }
    for (;;) {
        json_t *msg;
        size_t len;
        char err[160];
        codemode_frame_rc_t rc =
            codemode_frame_take(s->ctl_in, CONTROL_FRAME_MAX, &msg, &len, err, sizeof(err));
        if (rc == CODEMODE_FRAME_MORE)
            return;
        if (rc != CODEMODE_FRAME_OK) {
            sup_lost(s, "protocol error on its control socket: %s", err);
            return;
        }
        int bad = on_ctl_message(s, msg);
        json_decref(msg);
        if (bad)
            return;
    }
}

/* ---- spawning -------------------------------------------------------------------------------- */

static void on_restart(evutil_socket_t fd, short what, void *arg);

static void on_ready_timeout(evutil_socket_t fd, short what, void *arg)
{
    sup_lost(arg, "it did not say ready within %ld ms", READY_TIMEOUT_MS);
}

/* A descriptor at 10 or above, close-on-exec, so that dup2 to 3 in the child never meets it. */
static int high_fd(int fd)
{
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return hi;
}

static int spawn_helper(sup_t *s, int child_sock, int err_w)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, err_w, 2);
    posix_spawn_file_actions_adddup2(&fa, child_sock, 3);
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);

    sigset_t none, dflt;
    sigemptyset(&none);
    sigfillset(&dflt);
    sigdelset(&dflt, SIGKILL);
    sigdelset(&dflt, SIGSTOP);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dflt);

    char *argv[] = {s->path, NULL};
    char *envp[] = {NULL}; /* the helper needs nothing from ours, which may hold secrets */
    int rc = posix_spawn(&s->pid, s->path, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        s->pid = -1;
    return rc;
}

static void spawn(sup_t *s)
{
    int sv[2] = {-1, -1}, ep[2] = {-1, -1};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
        int saved = errno;
        close_fd(&sv[0]);
        close_fd(&sv[1]);
        sup_lost(s, "cannot create its sockets: %s", strerror(saved));
        return;
    }
    sv[1] = high_fd(sv[1]);
    ep[1] = high_fd(ep[1]);
    int rc = sv[1] >= 0 && ep[1] >= 0 ? spawn_helper(s, sv[1], ep[1]) : errno;
    close_fd(&sv[1]);
    close_fd(&ep[1]);
    if (rc != 0) {
        close_fd(&sv[0]);
        close_fd(&ep[0]);
        sup_lost(s, "cannot run %s: %s", s->path, strerror(rc));
        return;
    }

    s->ctl_fd = sv[0];
    s->err_fd = ep[0];
    evutil_make_socket_nonblocking(s->ctl_fd);
    evutil_make_socket_nonblocking(s->err_fd);
    s->ctl_read_ev = event_new(s->base, s->ctl_fd, EV_READ | EV_PERSIST, on_ctl_read, s);
    s->ctl_write_ev = event_new(s->base, s->ctl_fd, EV_WRITE, on_ctl_write, s);
    s->err_ev = event_new(s->base, s->err_fd, EV_READ | EV_PERSIST, on_err_read, s);
    event_add(s->ctl_read_ev, NULL);
    event_add(s->err_ev, NULL);
    struct timeval tv = ms_tv(READY_TIMEOUT_MS);
    event_add(s->ready_timeout_ev, &tv);
    s->state = SUP_STARTING;
    log_info(NULL, "sandbox: started helper %s as process %d; waiting for it to be ready", s->path,
             (int)s->pid);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
    spawn(arg);
}

/* ---- losing the helper ----------------------------------------------------------------------- */

/* Closes the connection to the helper and kills it; the process is reaped in the background. */
static void disconnect(sup_t *s)
{
    if (s->err_fd >= 0)
        on_err_read(s->err_fd, EV_READ, s); /* its last words, if any */
    flush_err_line(s);
    event_del(s->ready_timeout_ev);
    event_del(s->ack_ev);
    s->n_unacked = 0;
    struct event **evs[] = {&s->ctl_read_ev, &s->ctl_write_ev, &s->err_ev};
    for (size_t i = 0; i < 3; i++) {
        if (*evs[i] != NULL)
            event_free(*evs[i]);
        *evs[i] = NULL;
    }
    close_fd(&s->ctl_fd);
    close_fd(&s->err_fd);
    evbuffer_drain(s->ctl_in, evbuffer_get_length(s->ctl_in));
    out_frame_t *f;
    while ((f = TAILQ_FIRST(&s->out)) != NULL) {
        TAILQ_REMOVE(&s->out, f, link);
        out_free(f);
    }
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        reap_later(s->base, s->pid);
    }
    s->pid = -1;
}

static void sup_lost(sup_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
    va_end(ap);

    bool was_ready = s->state == SUP_READY;
    if (was_ready && now_s() - s->ready_at >= BACKOFF_RESET_S)
        s->backoff_ms = BACKOFF_MIN_MS;
    if (!was_ready)
        s->failures++;
    int pid = (int)s->pid;
    disconnect(s);
    s->state = SUP_BACKOFF;
    log_error(NULL,
              "sandbox: helper %d lost: %s; executions it was running fail; restarting in"
              " %ld ms",
              pid, s->reason, s->backoff_ms);
    struct timeval tv = ms_tv(s->backoff_ms);
    event_add(s->restart_ev, &tv);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
    cm_exec_on_lost(s->reason);
}

/* ---- public (hub thread) --------------------------------------------------------------------- */

int cm_sup_start(struct event_base *base, const char *path)
{
    if (sup != NULL)
        return -1;
    sup_t *s = xcalloc(1, sizeof(*s));
    s->base = base;
    s->path = xstrdup(path);
    s->pid = -1;
    s->ctl_fd = -1;
    s->err_fd = -1;
    s->ctl_in = evbuffer_new();
    TAILQ_INIT(&s->out);
    s->restart_ev = evtimer_new(base, on_restart, s);
    s->ready_timeout_ev = evtimer_new(base, on_ready_timeout, s);
    s->ack_ev = evtimer_new(base, on_ack_check, s);
    s->backoff_ms = BACKOFF_MIN_MS;
    snprintf(s->reason, sizeof(s->reason), "it is starting");
    sup = s;
    spawn(s);
    return 0;
}

void cm_sup_stop(void)
{
    sup_t *s = sup;
    if (s == NULL)
        return;
    pid_t pid = s->pid;
    s->pid = -1; /* reaped here, not in the background */
    disconnect(s);
    if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        log_info(NULL, "sandbox: helper %d stopped", (int)pid);
    }
    event_free(s->restart_ev);
    event_free(s->ready_timeout_ev);
    event_free(s->ack_ev);
    free(s->unacked_ids);
    free(s->unacked_at);
    evbuffer_free(s->ctl_in);
    buf_free(&s->err_line);
    free(s->path);
    free(s);
    sup = NULL;
}

bool cm_sup_ready(void)
{
    return sup != NULL && sup->state == SUP_READY;
}

bool cm_sup_worth_waiting(const char **reason)
{
    if (sup == NULL) {
        *reason = "no code-mode MCP client is configured, so the sandbox is not started";
        return false;
    }
    *reason = sup->reason;
    return sup->failures < FAILURES_BEFORE_GIVING_UP;
}
