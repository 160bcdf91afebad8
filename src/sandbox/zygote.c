/*
 * zygote.c - the control loop (see zygote.h and docs/internals/sandbox.md for the messages).
 *
 * One thread, poll() on two descriptors: the control socket and a signalfd for SIGCHLD. The
 * execution socket of a run arrives as SCM_RIGHTS data on the control socket. The kernel hands
 * a descriptor out with the first read that touches the bytes of the write that carried it,
 * and a read may glue several writes together; so the zygote never reads past the end of the
 * frame in progress, and every descriptor that arrives while a frame's bytes are read belongs
 * to that frame: it does not matter which part of its run frame the gateway attached the
 * socket to, and a run that came without one cannot take the next run's. Descriptors on any
 * other frame are closed. Children are tracked by run id;
 * a "kill" signals the child's process group (the child is its session leader, and with a pid
 * namespace its script process is in the same group), which the zygote can do without a pid
 * reuse race because it reaps its children itself.
 */
#include "sandbox/zygote.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/frame.h"
#include "sandbox/pyhost.h"
#include "sandbox/slog.h"

#define MAX_QUEUED_FDS 64
#define EXIT_NO_SOCKET 125 /* "exited" code of a run that came without an execution socket */

typedef struct job {
    json_int_t id; /* the gateway's run id */
    pid_t pid;     /* the child, leader of its own process group */
} job_t;

typedef struct zygote {
    int ctl;                           /* control socket */
    int sigfd;                         /* SIGCHLD */
    const sandbox_confinement_t *conf; /* what every child applies */
    sandbox_frame_reader_t reader;
    int fds[MAX_QUEUED_FDS]; /* descriptors received with the frame in progress */
    size_t n_fds;
    job_t *jobs; /* running children, owned */
    size_t n_jobs, cap_jobs;
} zygote_t;

/* ---- sending --------------------------------------------------------------------------------- */

static int send_json(zygote_t *z, json_t *msg)
{
    if (msg == NULL)
        return -1;
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text == NULL)
        return -1;
    int rc = sandbox_frame_write(z->ctl, text, strlen(text));
    if (rc != 0)
        sandbox_log("error", "writing to the gateway failed: %s", strerror(errno));
    free(text);
    return rc;
}

static void send_exited(zygote_t *z, json_int_t id, int status, const char *error)
{
    json_t *msg = json_pack("{s:s, s:I}", "op", "exited", "id", id);
    if (msg == NULL)
        return;
    if (WIFSIGNALED(status))
        json_object_set_new(msg, "signal", json_integer(WTERMSIG(status)));
    else
        json_object_set_new(msg, "code", json_integer(WEXITSTATUS(status)));
    if (error != NULL)
        json_object_set_new(msg, "error", json_string(error));
    send_json(z, msg);
}

/* ---- jobs ------------------------------------------------------------------------------------ */

static int add_job(zygote_t *z, json_int_t id, pid_t pid)
{
    if (z->n_jobs == z->cap_jobs) {
        size_t cap = z->cap_jobs ? z->cap_jobs * 2 : 16;
        job_t *grown = realloc(z->jobs, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        z->jobs = grown;
        z->cap_jobs = cap;
    }
    z->jobs[z->n_jobs++] = (job_t){id, pid};
    return 0;
}

static job_t *find_job_by_id(zygote_t *z, json_int_t id)
{
    for (size_t i = 0; i < z->n_jobs; i++)
        if (z->jobs[i].id == id)
            return &z->jobs[i];
    return NULL;
}

static void kill_job(const job_t *j)
{
    kill(-j->pid, SIGKILL);
    kill(j->pid, SIGKILL);
}

/* ---- run ------------------------------------------------------------------------------------- */

static long limit_of(json_t *limits, const char *key, long fallback)
{
    json_t *v = json_object_get(limits, key);
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return fallback;
    json_int_t n = json_integer_value(v);
    return n > (json_int_t)1 << 40 ? (long)1 << 40 : (long)n;
}

/* The child: confine, run, exit. Never returns. */
static void run_child(zygote_t *z, int exec_fd, const sandbox_limits_t *lim, const char *text,
                      size_t len)
{
    sandbox_py_after_fork_child();
    if (sandbox_confine(z->conf, exec_fd, lim) != 0 || sandbox_seccomp_enter(z->conf) != 0)
        _exit(121);
    _exit(sandbox_py_child_main(text, len));
}

static void handle_run(zygote_t *z, json_t *msg, const char *text, size_t len, int exec_fd)
{
    json_t *id_json = json_object_get(msg, "id");
    if (!json_is_integer(id_json)) {
        sandbox_log("warn", "a run without an integer id was ignored");
        if (exec_fd >= 0)
            close(exec_fd);
        return;
    }
    json_int_t id = json_integer_value(id_json);
    if (exec_fd < 0) {
        sandbox_log("warn", "run %lld came without an execution socket; not run", (long long)id);
        send_exited(z, id, EXIT_NO_SOCKET << 8, "no execution socket attached to the run");
        return;
    }

    json_t *limits = json_object_get(msg, "limits");
    sandbox_limits_t lim = {limit_of(limits, "cpu_s", 10), limit_of(limits, "memory_mb", 256),
                            limit_of(limits, "output_bytes", 1 << 20)};

    sandbox_py_before_fork();
    pid_t pid = fork();
    if (pid == 0)
        run_child(z, exec_fd, &lim, text, len);
    sandbox_py_after_fork_parent();
    close(exec_fd);

    if (pid < 0) {
        sandbox_log("error", "run %lld: fork failed: %s; reported as exited", (long long)id,
                    strerror(errno));
        send_exited(z, id, 124 << 8, "fork failed");
        return;
    }
    if (add_job(z, id, pid) != 0) {
        sandbox_log("crit", "run %lld: out of memory tracking child %d; killed it", (long long)id,
                    (int)pid);
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        send_exited(z, id, SIGKILL, "out of memory in the sandbox");
        return;
    }
    send_json(z, json_pack("{s:s, s:I, s:i}", "op", "started", "id", id, "pid", (int)pid));
}

static void handle_kill(zygote_t *z, json_t *msg)
{
    json_t *id_json = json_object_get(msg, "id");
    if (!json_is_integer(id_json))
        return;
    job_t *j = find_job_by_id(z, json_integer_value(id_json));
    if (j != NULL) /* a run already reaped needs nothing: its "exited" is on the way */
        kill_job(j);
}

/* The descriptor that came with the frame just completed, -1 when none; extra ones closed. */
static int take_frame_fd(zygote_t *z)
{
    int fd = z->n_fds > 0 ? z->fds[0] : -1;
    for (size_t i = 1; i < z->n_fds; i++) {
        sandbox_log("warn", "a control frame came with more than one descriptor; closed one");
        close(z->fds[i]);
    }
    z->n_fds = 0;
    return fd;
}

static void handle_frame(zygote_t *z, const char *text, size_t len, int fd)
{
    json_error_t err;
    /* A script may hold U+0000; the child reports it as a syntax error. */
    json_t *msg = json_loadb(text, len, JSON_ALLOW_NUL, &err);
    const char *op = json_string_value(json_object_get(msg, "op"));
    if (op != NULL && strcmp(op, "run") == 0) {
        handle_run(z, msg, text, len, fd);
        fd = -1;
    } else if (op == NULL) {
        sandbox_log("warn", "a control frame without an op was ignored");
    } else if (strcmp(op, "kill") == 0) {
        handle_kill(z, msg);
    } else {
        sandbox_log("warn", "unknown control op '%.40s' ignored", op);
    }
    if (fd >= 0) {
        sandbox_log("warn", "a descriptor came with a '%.40s' frame; closed it", op ? op : "?");
        close(fd);
    }
    json_decref(msg);
}

/* ---- receiving ------------------------------------------------------------------------------- */

static void queue_fds(zygote_t *z, struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *fds = (int *)CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            if (z->n_fds < MAX_QUEUED_FDS) {
                z->fds[z->n_fds++] = fds[i];
            } else {
                sandbox_log("warn", "more than %d execution sockets queued; one closed",
                            MAX_QUEUED_FDS);
                close(fds[i]);
            }
        }
    }
}

/* One read of at most the rest of the frame in progress. 1 to go on, 2 when nothing more is
 * there now, 0 when the gateway closed, -1 on an error. */
static int read_control_once(zygote_t *z)
{
    static char buf[65536];
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int) * 16)];
    } ctrl;
    size_t wanted = sandbox_frame_reader_wanted(&z->reader);
    if (wanted == 0)
        return -1;
    struct iovec iov = {buf, wanted < sizeof(buf) ? wanted : sizeof(buf)};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctrl.space;
    mh.msg_controllen = sizeof(ctrl.space);

    ssize_t n = recvmsg(z->ctl, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
        return 1;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 2 : -1;
    queue_fds(z, &mh);
    if (mh.msg_flags & MSG_CTRUNC)
        sandbox_log("warn", "descriptors were cut from a control message");
    if (n == 0)
        return 0;
    if (sandbox_frame_reader_feed(&z->reader, buf, (size_t)n) != 0)
        return -1;

    const char *body;
    size_t len;
    sandbox_frame_result_t rc = sandbox_frame_reader_next(&z->reader, &body, &len);
    explicit_bzero(buf, (size_t)n);
    if (rc == SANDBOX_FRAME_READY) {
        handle_frame(z, body, len, take_frame_fd(z));
        /* The next child is forked from this memory: no script outlives its run in it. The
         * reader never holds bytes past this frame, and its header's room is wiped too. */
        explicit_bzero((char *)body, len + 4);
    }
    if (rc == SANDBOX_FRAME_ERROR) {
        sandbox_log("error", "control frame over %zu bytes; closing", SANDBOX_FRAME_MAX);
        return -1;
    }
    return 1;
}

/* Reads what the gateway sent so far. 1 to go on, 0 when it closed, -1 on an error. */
static int read_control(zygote_t *z)
{
    int rc;
    while ((rc = read_control_once(z)) == 1)
        ;
    return rc == 2 ? 1 : rc;
}

static void reap(zygote_t *z)
{
    struct signalfd_siginfo si;
    while (read(z->sigfd, &si, sizeof(si)) == sizeof(si))
        ;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < z->n_jobs; i++) {
            if (z->jobs[i].pid != pid)
                continue;
            send_exited(z, z->jobs[i].id, status, NULL);
            z->jobs[i] = z->jobs[--z->n_jobs];
            break;
        }
    }
}

/* The gateway is gone: no child outlives the zygote. */
static void stop_all(zygote_t *z)
{
    for (size_t i = 0; i < z->n_jobs; i++)
        kill_job(&z->jobs[i]);
    for (size_t i = 0; i < z->n_jobs; i++)
        waitpid(z->jobs[i].pid, NULL, 0);
    z->n_jobs = 0;
}

static int send_ready(zygote_t *z)
{
    json_t *ns = json_array();
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{SANDBOX_NS_USER, "user"},
                 {SANDBOX_NS_NET, "net"},
                 {SANDBOX_NS_MOUNT, "mount"},
                 {SANDBOX_NS_PID, "pid"}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (z->conf->ns & names[i].bit)
            json_array_append_new(ns, json_string(names[i].name));
    return send_json(z, json_pack("{s:s, s:s, s:s, s:o, s:b}", "op", "ready", "version",
                                  GATEHOUSE_VERSION, "python", sandbox_py_version(), "namespaces",
                                  ns, "seccomp", z->conf->seccomp));
}

/* jansson's allocations wiped when freed: a run message's code and names must not linger in
 * the zygote's heap, which every later child inherits. */
static void *wiping_malloc(size_t n)
{
    return malloc(n);
}

static void wiping_free(void *p)
{
    if (p != NULL)
        explicit_bzero(p, malloc_usable_size(p));
    free(p);
}

int sandbox_zygote_run(int ctl_fd, const sandbox_confinement_t *conf)
{
    zygote_t z = {.ctl = ctl_fd, .conf = conf};
    json_set_alloc_funcs(wiping_malloc, wiping_free);
    /* A script process whose pid-namespace parent died is orphaned; as subreaper the zygote
     * reaps it (the reap loop ignores pids it does not know), so no zombie is left to a host
     * init that may not reap (gatehouse as pid 1 of a container). */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    sandbox_frame_reader_init(&z.reader);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    z.sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (z.sigfd < 0) {
        sandbox_log("crit", "signalfd failed: %s; exiting", strerror(errno));
        return 1;
    }
    int rc = send_ready(&z) == 0 ? 1 : -1;
    while (rc > 0) {
        struct pollfd p[2] = {{z.ctl, POLLIN, 0}, {z.sigfd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        if (p[1].revents)
            reap(&z);
        if (p[0].revents)
            rc = read_control(&z);
    }
    if (rc == 0)
        sandbox_log("info",
                    "the gateway closed the control socket; stopping %zu children "
                    "and exiting",
                    z.n_jobs);
    stop_all(&z);
    while (z.n_fds > 0)
        close(z.fds[--z.n_fds]);
    free(z.jobs);
    sandbox_frame_reader_free(&z.reader);
    close(z.sigfd);
    return rc == 0 ? 0 : 1;
}
