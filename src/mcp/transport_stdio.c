/*
 * transport_stdio.c - the stdio transport: the MCP server is a child process speaking
 * newline-delimited JSON-RPC on its stdin and stdout (transport.h has the contract).
 *
 * Spawning. posix_spawnp runs the command with three fresh pipes as its stdin, stdout and
 * stderr, every other descriptor closed, default signal dispositions and an empty signal
 * mask (the gateway ignores SIGPIPE and its threads may block signals; a child must not
 * inherit either), in a process group of its own so that stop can signal the whole tree
 * (npx starts node as a grandchild). The environment holds only the variables the
 * configuration names: no token or key of the gateway's own environment leaks into a server
 * by accident. posix_spawnp searches the gateway's PATH for the command; the child sees PATH
 * only when it is named (npx needs PATH and HOME).
 *
 * I/O. The parent's ends of the pipes are non-blocking bufferevents on the loop. Each
 * complete stdout line is one JSON-RPC document; a line longer than the message limit is a
 * broken server (the search for the line end resumes where the last one stopped, so a long
 * line costs linear time). stderr is read all the time so that a chatty server never blocks
 * on a full pipe; it is logged at debug level, at most a few lines per second, one line per
 * log entry, cut at a fixed length. Until the server is ready, its last stderr line is also
 * kept: a server that ends before it ever answered initialize (a missing program, npx without
 * PATH or network, a bad argument) has that line logged as a warning with its exit, since
 * it usually says why and the default log level would hide it. Later stderr is not kept: it
 * is the server's own business, and may say more than an operator wants in the log.
 *
 * The end of a child. Exit is seen through a pidfd (or, on kernels without pidfd_open, a
 * waitpid poll) and stdout's end of file. Either may come first, and a server's last answer
 * may still sit in the pipe when the pidfd fires, so the connection is reported lost only
 * when both have happened, or a short grace period after the first, with the exit status
 * when it is known. No SIGCHLD handler is installed: one would steal the exit of every other
 * child of the process.
 *
 * Stop. The pipes are closed (an SDK server exits on stdin's end), the process group gets
 * SIGTERM, and a reaper that lives on the loop independently of the connection waits for the
 * child: SIGKILL after two seconds, then waitpid. The reaper holds only a small struct and
 * frees it once the child is reaped, so a client can be freed (or reconnect) at once.
 */
#include "mcp/transport.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/log.h"

#define END_GRACE_MS 200                /* wait for the other half of a child's end (exit or EOF) */
#define EXIT_POLL_MS 1000               /* without a pidfd: how often waitpid looks */
#define KILL_AFTER_MS 2000              /* SIGTERM, then SIGKILL after this */
#define REAP_POLL_MS 50                 /* reaper without a pidfd */
#define REAP_RETRY_MS 5000              /* reaper after SIGKILL, with a pidfd */
#define STDERR_LINES_PER_S 20           /* log budget for a server's stderr */
#define STDERR_LINE_MAX 300             /* bytes of one stderr line shown */
#define STDERR_CHUNK_MAX 4096           /* a longer line without LF is cut and shown in pieces */
#define OUT_BACKLOG_SLACK (1024 * 1024) /* stdin bytes waiting beyond one message: stuck */

typedef struct stdio_conn {
    mcp_conn_t base;
    pid_t pid;                          /* the child, or -1 */
    bool reaped;                        /* waitpid returned it */
    int status;                         /* its wait status, once reaped */
    int pidfd;                          /* -1 when pidfd_open is unavailable */
    struct event *exit_ev;              /* pidfd readable, or the waitpid poll */
    struct event *grace_ev;             /* the end's grace period */
    struct bufferevent *to_child;       /* its stdin */
    struct bufferevent *from_child;     /* its stdout */
    struct bufferevent *child_err;      /* its stderr */
    size_t scanned;                     /* stdout bytes known to hold no LF */
    bool out_eof;                       /* stdout ended */
    char why[160];                      /* first non-exit reason for the end */
    time_t err_second;                  /* stderr budget: the current second */
    int err_lines;                      /* lines shown in it */
    long err_dropped;                   /* lines not shown since the last note */
    bool ready;                         /* initialize succeeded; stderr is no longer kept */
    char last_err[STDERR_LINE_MAX + 1]; /* the last non-blank stderr line before ready */
} stdio_conn_t;

/* ---- the reaper: outlives the connection ----------------------------------------------------- */

typedef struct reaper {
    struct event_base *base;
    pid_t pid;
    int pidfd;   /* -1: poll */
    long waited; /* ms since SIGTERM, roughly */
    bool killed; /* SIGKILL sent */
    bool warned; /* the "survives SIGKILL" line was logged */
} reaper_t;

static void reaper_schedule(reaper_t *r);

static long reaper_step_ms(const reaper_t *r)
{
    if (r->pidfd < 0)
        return REAP_POLL_MS;
    return r->killed ? REAP_RETRY_MS : KILL_AFTER_MS;
}

static void reaper_tick(evutil_socket_t fd, short what, void *arg)
{
    reaper_t *r = arg;
    pid_t got = waitpid(r->pid, NULL, WNOHANG);
    if (got == r->pid || (got < 0 && errno == ECHILD)) {
        if (r->pidfd >= 0)
            close(r->pidfd);
        free(r);
        return;
    }
    r->waited += (what & EV_TIMEOUT) ? reaper_step_ms(r) : 0;
    if (!r->killed && r->waited >= KILL_AFTER_MS) {
        log_warn(NULL, "MCP server process %d ignored SIGTERM for %d ms; sending SIGKILL",
                 (int)r->pid, KILL_AFTER_MS);
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
        r->killed = true;
    } else if (r->killed && !r->warned && r->waited >= KILL_AFTER_MS + REAP_RETRY_MS) {
        log_crit(NULL, "MCP server process %d survives SIGKILL; still waiting for it", (int)r->pid);
        r->warned = true;
    }
    reaper_schedule(r);
}

static void reaper_schedule(reaper_t *r)
{
    long ms = reaper_step_ms(r);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    short what = r->pidfd >= 0 ? EV_READ : EV_TIMEOUT;
    if (event_base_once(r->base, r->pidfd, what, reaper_tick, r, &tv) != 0) {
        log_crit(NULL, "cannot watch MCP server process %d; it may stay a zombie", (int)r->pid);
        if (r->pidfd >= 0)
            close(r->pidfd);
        free(r);
    }
}

/* Takes over pid (and pidfd, which may be -1): SIGTERM to its group now, SIGKILL later. */
static void reaper_start(struct event_base *base, pid_t pid, int pidfd)
{
    reaper_t *r = xcalloc(1, sizeof(*r));
    r->base = base;
    r->pid = pid;
    r->pidfd = pidfd;
    kill(-pid, SIGTERM);
    reaper_schedule(r);
}

/* ---- the end of a child ---------------------------------------------------------------------- */

static void try_reap(stdio_conn_t *s)
{
    if (s->pid <= 0 || s->reaped)
        return;
    int status;
    pid_t got = waitpid(s->pid, &status, WNOHANG);
    if (got == s->pid) {
        s->reaped = true;
        s->status = status;
    } else if (got < 0 && errno == ECHILD) {
        s->reaped = true; /* someone else reaped it; the status is lost */
        s->status = -1;
    }
}

static void describe_end(const stdio_conn_t *s, char *out, size_t cap)
{
    if (!s->reaped)
        snprintf(out, cap, "%s", s->why[0] != '\0' ? s->why : "server closed its output");
    else if (s->status >= 0 && WIFEXITED(s->status))
        snprintf(out, cap, "server exited with status %d", WEXITSTATUS(s->status));
    else if (s->status >= 0 && WIFSIGNALED(s->status))
        snprintf(out, cap, "server was killed by signal %d (%s)", WTERMSIG(s->status),
                 strsignal(WTERMSIG(s->status)));
    else
        snprintf(out, cap, "server exited");
}

static void collect_stderr_now(stdio_conn_t *s);

static void report_end(stdio_conn_t *s)
{
    char reason[200];
    describe_end(s, reason, sizeof(reason));
    if (!s->ready) {
        collect_stderr_now(s);
        if (s->last_err[0] != '\0')
            log_warn(s->base.log_id,
                     "MCP server ended before it was ready (%s); its last line on"
                     " stderr: %s",
                     reason, s->last_err);
    }
    mcp_conn_failed(&s->base, reason, false);
}

/* One half of the end happened (exit, EOF or a write error); why may be NULL for exit. */
static void note_end(stdio_conn_t *s, const char *why)
{
    if (why != NULL && s->why[0] == '\0')
        snprintf(s->why, sizeof(s->why), "%s", why);
    try_reap(s);
    if (s->reaped && s->out_eof) {
        report_end(s);
        return;
    }
    if (!evtimer_pending(s->grace_ev, NULL)) {
        struct timeval tv = {0, END_GRACE_MS * 1000};
        evtimer_add(s->grace_ev, &tv);
    }
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    stdio_conn_t *s = arg;
    try_reap(s);
    report_end(s);
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
    stdio_conn_t *s = arg;
    try_reap(s);
    if (s->reaped) {
        event_del(s->exit_ev);
        note_end(s, NULL);
    }
}

/* ---- stdout: one JSON-RPC document per line -------------------------------------------------- */

static void deliver_line(stdio_conn_t *s, const char *line, size_t n)
{
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    size_t skip = 0;
    while (skip < n && (line[skip] == ' ' || line[skip] == '\t'))
        skip++;
    if (skip == n)
        return; /* blank lines are not messages */
    mcp_conn_received(&s->base, line + skip, n - skip);
}

static void on_stdout(struct bufferevent *bev, void *arg)
{
    stdio_conn_t *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        struct evbuffer_ptr start;
        evbuffer_ptr_set(in, &start, s->scanned, EVBUFFER_PTR_SET);
        struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, &start);
        if (eol.pos < 0) {
            s->scanned = evbuffer_get_length(in);
            if (s->scanned > (size_t)s->base.max_message_bytes)
                mcp_conn_failed(&s->base, "sent a line longer than the message limit", false);
            return;
        }
        size_t n = (size_t)eol.pos;
        const char *line = (const char *)evbuffer_pullup(in, (ev_ssize_t)n + 1);
        deliver_line(s, line, n);
        if (s->base.stopped)
            return;
        evbuffer_drain(in, n + 1);
        s->scanned = 0;
    }
}

static void on_stdout_event(struct bufferevent *bev, short what, void *arg)
{
    stdio_conn_t *s = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    /* A last line without its LF is still a message; the SDKs always end lines, others may
     * not. */
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t left = evbuffer_get_length(in);
    if (left > 0 && left <= (size_t)s->base.max_message_bytes) {
        deliver_line(s, (const char *)evbuffer_pullup(in, -1), left);
        if (s->base.stopped)
            return;
    }
    bufferevent_disable(bev, EV_READ);
    s->out_eof = true;
    char why[160];
    snprintf(why, sizeof(why), "server closed its output%s%s", (what & BEV_EVENT_ERROR) ? ": " : "",
             (what & BEV_EVENT_ERROR) ? strerror(errno) : "");
    note_end(s, why);
}

/* ---- stderr: drained always, logged sparingly ------------------------------------------------ */

static void log_stderr_line(stdio_conn_t *s, const char *line, size_t n)
{
    time_t now = time(NULL);
    if (now != s->err_second) {
        if (s->err_dropped > 0)
            log_debug(s->base.log_id, "server stderr: %ld more lines not shown", s->err_dropped);
        s->err_second = now;
        s->err_lines = 0;
        s->err_dropped = 0;
    }
    if (s->err_lines >= STDERR_LINES_PER_S) {
        s->err_dropped++;
        return;
    }
    s->err_lines++;

    char shown[STDERR_LINE_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < n && k < STDERR_LINE_MAX; i++)
        shown[k++] = ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) ? '?' : line[i];
    shown[k] = '\0';
    log_debug(s->base.log_id, "server stderr: %s%s", shown, n > STDERR_LINE_MAX ? "..." : "");
}

/* Keeps a non-blank line as the last thing the server said before it was ready. */
static void keep_stderr_line(stdio_conn_t *s, const char *line, size_t n)
{
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    if (n == 0)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n && k < STDERR_LINE_MAX; i++)
        s->last_err[k++] = ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) ? '?' : line[i];
    s->last_err[k] = '\0';
}

/* Takes the complete lines out of the stderr buffer (and, at the end, what is left), to keep
 * and to show. */
static void take_stderr_lines(stdio_conn_t *s, struct evbuffer *in, bool at_end)
{
    bool show = log_enabled(LOG_LVL_DEBUG);
    if (!show && s->ready) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    for (;;) {
        struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
        size_t len = evbuffer_get_length(in);
        if (len == 0 || (eol.pos < 0 && len <= STDERR_CHUNK_MAX && !at_end))
            return; /* wait for the rest of the line */
        size_t n =
            eol.pos >= 0 ? (size_t)eol.pos : (len < STDERR_CHUNK_MAX ? len : STDERR_CHUNK_MAX);
        size_t pulled = n < STDERR_LINE_MAX + 1 ? n : STDERR_LINE_MAX + 1;
        const char *line = (const char *)evbuffer_pullup(in, (ev_ssize_t)pulled);
        if (!s->ready)
            keep_stderr_line(s, line, pulled < n ? pulled : n);
        if (show)
            log_stderr_line(s, line, n);
        evbuffer_drain(in, eol.pos >= 0 ? n + 1 : n);
    }
}

static void on_stderr(struct bufferevent *bev, void *arg)
{
    take_stderr_lines(arg, bufferevent_get_input(bev), false);
}

static void on_stderr_event(struct bufferevent *bev, short what, void *arg)
{
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    take_stderr_lines(arg, bufferevent_get_input(bev), true);
    bufferevent_disable(bev, EV_READ); /* stdout and the exit tell the story */
}

/* The child has ended: what it wrote to stderr last may still sit in the pipe, unread by the
 * loop, when its exit is reported. Read it now. */
static void collect_stderr_now(stdio_conn_t *s)
{
    if (s->child_err == NULL)
        return;
    struct evbuffer *in = bufferevent_get_input(s->child_err);
    evutil_socket_t fd = bufferevent_getfd(s->child_err);
    if (fd >= 0) {
        while (evbuffer_get_length(in) < 64 * 1024 && evbuffer_read(in, fd, 4096) > 0) {
        }
    }
    take_stderr_lines(s, in, true);
}

/* ---- stdin ----------------------------------------------------------------------------------- */

static void on_stdin_event(struct bufferevent *bev, short what, void *arg)
{
    stdio_conn_t *s = arg;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    char why[160];
    snprintf(why, sizeof(why), "cannot write to the server: %s", strerror(errno));
    bufferevent_disable(bev, EV_WRITE);
    note_end(s, why);
}

static void stdio_send(mcp_conn_t *conn, const char *text, size_t len, long long request_id)
{
    stdio_conn_t *s = (stdio_conn_t *)conn;
    if (conn->stopped || s->to_child == NULL)
        return;
    struct evbuffer *out = bufferevent_get_output(s->to_child);
    if (evbuffer_get_length(out) > (size_t)conn->max_message_bytes + OUT_BACKLOG_SLACK) {
        mcp_conn_fail_soon(conn, "server does not read its input");
        return;
    }
    if (evbuffer_add(out, text, len) != 0 || evbuffer_add(out, "\n", 1) != 0)
        mcp_conn_fail_soon(conn, "cannot queue a message for the server");
}

/* ---- spawning -------------------------------------------------------------------------------- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Moves fd above 2, so that no dup2 onto 0, 1 or 2 in the child can clobber another pipe end
 * or be a no-op that keeps close-on-exec set (possible when the gateway runs with a standard
 * descriptor closed). */
static int lift_fd(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

static bool make_pipe(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return false;
    fds[0] = lift_fd(fds[0]);
    fds[1] = lift_fd(fds[1]);
    return fds[0] >= 0 && fds[1] >= 0;
}

/* "NAME=value" for each named variable that is set; nothing else. */
static char **build_env(const char *const *names)
{
    size_t n = 0;
    while (names != NULL && names[n] != NULL)
        n++;
    char **env = xcalloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *value = getenv(names[i]);
        if (value == NULL)
            continue;
        buf_t b = BUF_INIT;
        buf_appendf(&b, "%s=%s", names[i], value);
        env[k++] = buf_release(&b);
    }
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env[i] != NULL; i++) {
        volatile char *p = env[i]; /* values may be credentials */
        while (*p != '\0')
            *p++ = '\0';
        free(env[i]);
    }
    free(env);
}

static char **build_argv(const mcp_client_opts_t *o)
{
    size_t n = 0;
    while (o->args != NULL && o->args[n] != NULL)
        n++;
    char **argv = xcalloc(n + 2, sizeof(char *));
    argv[0] = (char *)o->command;
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = (char *)o->args[i];
    return argv;
}

static void spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *attr, const int in[2],
                        const int out[2], const int err[2])
{
    posix_spawn_file_actions_init(fa);
    posix_spawn_file_actions_adddup2(fa, in[0], 0);
    posix_spawn_file_actions_adddup2(fa, out[1], 1);
    posix_spawn_file_actions_adddup2(fa, err[1], 2);
    posix_spawn_file_actions_addclosefrom_np(fa, 3);

    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    const int reset[] = {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        sigaddset(&dflt, reset[i]);
    posix_spawnattr_init(attr);
    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                       POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(attr, 0);
    posix_spawnattr_setsigmask(attr, &none);
    posix_spawnattr_setsigdefault(attr, &dflt);
}

/* Runs the command. On success the parent's ends are left in in[1], out[0], err[0]. */
static int spawn_child(stdio_conn_t *s, int in[2], int out[2], int err[2])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    spawn_setup(&fa, &attr, in, out, err);
    char **argv = build_argv(s->base.opts);
    char **envp = build_env(s->base.opts->env_names);

    int rc = posix_spawnp(&s->pid, s->base.opts->command, &fa, &attr, argv, envp);

    free_env(envp);
    free(argv);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    if (rc != 0)
        s->pid = -1;
    return rc;
}

static struct bufferevent *pipe_bev(stdio_conn_t *s, int fd, bufferevent_data_cb read_cb,
                                    bufferevent_event_cb event_cb)
{
    evutil_make_socket_nonblocking(fd);
    struct bufferevent *bev = bufferevent_socket_new(s->base.base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        close(fd);
        return NULL;
    }
    bufferevent_setcb(bev, read_cb, NULL, event_cb, s);
    if (read_cb != NULL)
        bufferevent_enable(bev, EV_READ);
    return bev;
}

static void watch_exit(stdio_conn_t *s)
{
    s->pidfd = pidfd_open(s->pid, 0);
    if (s->pidfd >= 0) {
        s->exit_ev = event_new(s->base.base, s->pidfd, EV_READ | EV_PERSIST, on_exit_ev, s);
        event_add(s->exit_ev, NULL);
        return;
    }
    /* No pidfd (kernel before 5.3): stdout's EOF catches most ends; the poll catches a child
     * whose grandchildren keep the pipe open after it died. */
    s->exit_ev = event_new(s->base.base, -1, EV_PERSIST, on_exit_ev, s);
    struct timeval tv = {EXIT_POLL_MS / 1000, (EXIT_POLL_MS % 1000) * 1000};
    event_add(s->exit_ev, &tv);
}

static bool stdio_start(mcp_conn_t *conn, char *reason, size_t cap)
{
    stdio_conn_t *s = (stdio_conn_t *)conn;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    if (conn->opts->command == NULL || conn->opts->command[0] == '\0') {
        snprintf(reason, cap, "no command to run");
        return false;
    }
    if (!make_pipe(in) || !make_pipe(out) || !make_pipe(err)) {
        snprintf(reason, cap, "cannot create pipes: %s", strerror(errno));
        int *all[] = {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1]};
        for (size_t i = 0; i < 6; i++)
            close_fd(all[i]);
        return false;
    }
    int rc = spawn_child(s, in, out, err);
    if (rc != 0) {
        snprintf(reason, cap, "cannot start %s: %s", conn->opts->command, strerror(rc));
        close_fd(&in[1]);
        close_fd(&out[0]);
        close_fd(&err[0]);
        return false;
    }

    s->to_child = pipe_bev(s, in[1], NULL, on_stdin_event);
    s->from_child = pipe_bev(s, out[0], on_stdout, on_stdout_event);
    s->child_err = pipe_bev(s, err[0], on_stderr, on_stderr_event);
    s->grace_ev = evtimer_new(conn->base, on_grace, s);
    watch_exit(s);
    if (s->to_child == NULL || s->from_child == NULL || s->child_err == NULL) {
        snprintf(reason, cap, "cannot watch the pipes of %s", conn->opts->command);
        return false; /* stop() kills and reaps the child */
    }
    log_info(conn->log_id, "started MCP server %s (pid %d)", conn->opts->command, (int)s->pid);
    return true;
}

/* ---- stop and destroy ------------------------------------------------------------------------ */

static void free_bev(struct bufferevent **bev)
{
    if (*bev != NULL)
        bufferevent_free(*bev); /* safe inside its own callback: libevent defers the free */
    *bev = NULL;
}

static void stdio_stop(mcp_conn_t *conn)
{
    stdio_conn_t *s = (stdio_conn_t *)conn;
    if (conn->stopped)
        return;
    conn->stopped = true;
    free_bev(&s->to_child);
    free_bev(&s->from_child);
    free_bev(&s->child_err);
    if (s->exit_ev != NULL)
        event_del(s->exit_ev);
    if (s->grace_ev != NULL)
        event_del(s->grace_ev);

    try_reap(s);
    if (s->pid > 0 && !s->reaped) {
        log_debug(conn->log_id, "stopping MCP server (pid %d): SIGTERM now, SIGKILL in %d ms",
                  (int)s->pid, KILL_AFTER_MS);
        reaper_start(conn->base, s->pid, s->pidfd); /* the reaper owns the pidfd now */
        s->pidfd = -1;
    }
}

static void stdio_destroy(mcp_conn_t *conn)
{
    stdio_conn_t *s = (stdio_conn_t *)conn;
    if (s->exit_ev != NULL)
        event_free(s->exit_ev);
    if (s->grace_ev != NULL)
        event_free(s->grace_ev);
    if (s->pidfd >= 0)
        close(s->pidfd);
    free(s);
}

/* From now on stderr is only shown (at debug level), not kept. */
static void stdio_ready(mcp_conn_t *conn, const char *protocol_version)
{
    stdio_conn_t *s = (stdio_conn_t *)conn;
    s->ready = true;
    s->last_err[0] = '\0';
}

static const mcp_conn_ops_t stdio_ops = {
    .name = "stdio",
    .opens_at_start = true,
    .start = stdio_start,
    .send = stdio_send,
    .ready = stdio_ready,
    .abandon = NULL,
    .stop = stdio_stop,
    .destroy = stdio_destroy,
};

mcp_conn_t *mcp_stdio_new(void)
{
    stdio_conn_t *s = xcalloc(1, sizeof(*s));
    s->base.ops = &stdio_ops;
    s->pid = -1;
    s->pidfd = -1;
    return &s->base;
}
