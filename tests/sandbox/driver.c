/*
 * driver.c - plays the gateway's side of gatehouse-sandbox's wire format, for the escape suite
 * (tests/e2e/sandbox_escape.test.mjs). Node cannot pass a descriptor over a unix socket, which
 * every "run" needs, so the test talks JSON lines to this driver and the driver talks frames
 * and SCM_RIGHTS to the sandbox.
 *
 *   sandbox-driver <path of gatehouse-sandbox>
 *
 * stdin, one JSON object per line:
 *   {"id":N,"mode":"exec"|"analyze","code":"...","servers":{...},"limits":{...},
 *    "kill_after_ms":M (optional: send "kill" then, as the gateway's wall clock would),
 *    "no_socket":true (optional: send the run without an execution socket)}
 *   {"raw":"..."} sends the text as one control frame as it is (protocol robustness).
 *   {"kill_sandbox":true} SIGKILLs the sandbox (its children must die with it).
 * stdout, one JSON object per line:
 *   {"ready":{...}} once, first;
 *   {"id":N,"pid":P,"frame":<done or analysis frame or null>,"calls":[<call frames>],
 *    "exited":{...},"killed":bool,"ms":T} when the zygote reports the child exited;
 *   {"sandbox_exit":{"code":C}} or {"signal":S} after stdin closed and every job ended;
 *   {"sandbox_lost":true,"pids":[...]} when the sandbox closed the control socket first, with
 *   the pids of the children it had started and not reported exited.
 *
 * The tools it answers for every server: echo(**args) returns args, fail(message=...) fails
 * with that message, add(a=, b=) returns a+b, big(size=N) returns a string of N bytes (at most
 * what fits a frame); any other tool fails with "unknown tool".
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/frame.h"

#define MAX_JOBS 256

typedef struct job {
    json_int_t id;
    int fd; /* our end of the execution socket, -1 once closed */
    sandbox_frame_reader_t reader;
    json_t *frame; /* the last frame (done or analysis), owned */
    json_t *calls; /* call frames received, owned */
    json_t *pid;
    double started_ms;
    double kill_at_ms; /* 0: never */
    bool killed;
} job_t;

static int ctl = -1;
static pid_t sandbox_pid;
static job_t jobs[MAX_JOBS];
static size_t n_jobs;
static sandbox_frame_reader_t ctl_reader;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void print_json(json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text != NULL) {
        printf("%s\n", text);
        fflush(stdout);
        free(text);
    }
}

static void die(const char *what)
{
    fprintf(stderr, "sandbox-driver: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void send_frame(int fd, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text == NULL || sandbox_frame_write(fd, text, strlen(text)) != 0)
        fprintf(stderr, "sandbox-driver: writing a frame failed: %s\n", strerror(errno));
    free(text);
}

/* ---- starting the sandbox -------------------------------------------------------------------- */

static void start_sandbox(const char *path)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair");
    sandbox_pid = fork();
    if (sandbox_pid < 0)
        die("fork");
    if (sandbox_pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(null, 0);
        dup2(null, 1);
        dup2(sv[1], 3); /* dup2 clears close-on-exec on the copy */
        execl(path, path, (char *)NULL);
        fprintf(stderr, "sandbox-driver: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(sv[1]);
    ctl = sv[0];
}

/* ---- tools ----------------------------------------------------------------------------------- */

static json_t *answer_call(json_t *call)
{
    json_t *seq = json_object_get(call, "seq");
    const char *tool = json_string_value(json_object_get(call, "tool"));
    json_t *args = json_object_get(call, "args");
    json_t *reply = json_pack("{s:s, s:O}", "type", "return", "seq", seq ? seq : json_null());
    if (tool != NULL && strcmp(tool, "echo") == 0) {
        json_object_set_new(reply, "ok", json_true());
        json_object_set(reply, "value", args ? args : json_null());
    } else if (tool != NULL && strcmp(tool, "add") == 0) {
        json_object_set_new(reply, "ok", json_true());
        json_object_set_new(reply, "value",
                            json_integer(json_integer_value(json_object_get(args, "a")) +
                                         json_integer_value(json_object_get(args, "b"))));
    } else if (tool != NULL && strcmp(tool, "big") == 0) {
        size_t n = (size_t)json_integer_value(json_object_get(args, "size"));
        n = n > SANDBOX_FRAME_MAX - 100 ? SANDBOX_FRAME_MAX - 100 : n;
        char *text = malloc(n + 1);
        memset(text, 'z', n);
        text[n] = '\0';
        json_object_set_new(reply, "ok", json_true());
        json_object_set_new(reply, "value", json_stringn(text, n));
        free(text);
    } else {
        const char *m = json_string_value(json_object_get(args, "message"));
        json_object_set_new(reply, "ok", json_false());
        json_object_set_new(
            reply, "error",
            json_string(tool && strcmp(tool, "fail") == 0 && m ? m : "unknown tool"));
    }
    return reply;
}

/* ---- jobs ------------------------------------------------------------------------------------ */

static job_t *find_job(json_int_t id)
{
    for (size_t i = 0; i < n_jobs; i++)
        if (jobs[i].id == id)
            return &jobs[i];
    return NULL;
}

static void on_exec_frame(job_t *j, const char *body, size_t len)
{
    json_error_t err;
    json_t *msg = json_loadb(body, len, JSON_ALLOW_NUL, &err);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (type != NULL && strcmp(type, "call") == 0) {
        json_array_append(j->calls, msg);
        if (j->fd >= 0)
            send_frame(j->fd, answer_call(msg));
        json_decref(msg);
        return;
    }
    json_decref(j->frame);
    j->frame = msg != NULL ? msg
                           : json_pack("{s:s, s:s#}", "invalid", "json", "text", body,
                                       (int)(len > 200 ? 200 : len));
}

/* 0 on EOF or error (the socket is then closed), 1 otherwise. */
static int read_exec(job_t *j)
{
    char buf[65536];
    ssize_t n = read(j->fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0 || sandbox_frame_reader_feed(&j->reader, buf, (size_t)n) != 0) {
        close(j->fd);
        j->fd = -1;
        return 0;
    }
    const char *body;
    size_t len;
    while (sandbox_frame_reader_next(&j->reader, &body, &len) == SANDBOX_FRAME_READY)
        on_exec_frame(j, body, len);
    return 1;
}

static void finish_job(job_t *j, json_t *exited)
{
    /* The child is gone: whatever it wrote is in the socket already. */
    while (j->fd >= 0 && read_exec(j))
        ;
    json_t *out = json_pack("{s:I, s:O, s:O, s:O, s:O, s:b, s:f}", "id", j->id, "pid",
                            j->pid ? j->pid : json_null(), "frame",
                            j->frame ? j->frame : json_null(), "calls", j->calls, "exited", exited,
                            "killed", j->killed, "ms", now_ms() - j->started_ms);
    print_json(out);
    json_decref(j->frame);
    json_decref(j->calls);
    json_decref(j->pid);
    sandbox_frame_reader_free(&j->reader);
    *j = jobs[--n_jobs];
}

static void start_job(json_t *in)
{
    if (json_is_true(json_object_get(in, "kill_sandbox"))) {
        kill(sandbox_pid, SIGKILL);
        return;
    }
    json_t *raw = json_object_get(in, "raw");
    if (json_is_string(raw)) {
        if (sandbox_frame_write(ctl, json_string_value(raw), json_string_length(raw)) != 0)
            die("write raw frame");
        return;
    }
    if (n_jobs == MAX_JOBS) {
        fprintf(stderr, "sandbox-driver: too many jobs at once\n");
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair");
    job_t *j = &jobs[n_jobs++];
    memset(j, 0, sizeof(*j));
    j->id = json_integer_value(json_object_get(in, "id"));
    j->fd = sv[0];
    sandbox_frame_reader_init(&j->reader);
    j->calls = json_array();
    j->started_ms = now_ms();
    json_int_t kill_after = json_integer_value(json_object_get(in, "kill_after_ms"));
    j->kill_at_ms = kill_after > 0 ? j->started_ms + (double)kill_after : 0;

    json_t *run = json_deep_copy(in);
    json_object_del(run, "kill_after_ms");
    bool no_socket = json_is_true(json_object_get(run, "no_socket"));
    json_object_del(run, "no_socket");
    json_object_set_new(run, "op", json_string("run"));
    char *text = json_dumps(run, JSON_COMPACT);
    json_decref(run);
    size_t len = strlen(text);
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};

    /* The descriptor rides on the header; the body follows with plain writes. */
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct iovec iov = {hdr, 4};
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (!no_socket) {
        mh.msg_control = cbuf.space;
        mh.msg_controllen = sizeof(cbuf.space);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &sv[1], sizeof(int));
    }
    if (sendmsg(ctl, &mh, 0) != 4)
        die("sendmsg run");
    for (size_t off = 0; off < len;) {
        ssize_t w = write(ctl, text + off, len - off);
        if (w <= 0)
            die("write run");
        off += (size_t)w;
    }
    free(text);
    close(sv[1]);
}

static void on_control_frame(const char *body, size_t len)
{
    json_error_t err;
    json_t *msg = json_loadb(body, len, JSON_ALLOW_NUL, &err);
    const char *op = json_string_value(json_object_get(msg, "op"));
    if (op == NULL) {
        fprintf(stderr, "sandbox-driver: control frame without op: %.200s\n", body);
    } else if (strcmp(op, "ready") == 0) {
        print_json(json_pack("{s:O}", "ready", msg));
    } else if (strcmp(op, "started") == 0) {
        job_t *j = find_job(json_integer_value(json_object_get(msg, "id")));
        if (j != NULL)
            j->pid = json_incref(json_object_get(msg, "pid"));
    } else if (strcmp(op, "exited") == 0) {
        job_t *j = find_job(json_integer_value(json_object_get(msg, "id")));
        if (j != NULL)
            finish_job(j, msg);
    }
    json_decref(msg);
}

static int read_control(void)
{
    char buf[65536];
    ssize_t n = read(ctl, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0 || sandbox_frame_reader_feed(&ctl_reader, buf, (size_t)n) != 0)
        return 0;
    const char *body;
    size_t len;
    while (sandbox_frame_reader_next(&ctl_reader, &body, &len) == SANDBOX_FRAME_READY)
        on_control_frame(body, len);
    return 1;
}

/* ---- stdin ----------------------------------------------------------------------------------- */

static char *in_buf;
static size_t in_len, in_cap;

/* 0 on EOF. */
static int read_stdin(void)
{
    if (in_cap - in_len < 65536) {
        in_cap = in_cap ? in_cap * 2 : 1 << 20;
        in_buf = realloc(in_buf, in_cap);
        if (in_buf == NULL)
            die("realloc");
    }
    ssize_t n = read(0, in_buf + in_len, in_cap - in_len - 1);
    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0)
        return 0;
    in_len += (size_t)n;
    char *nl;
    while ((nl = memchr(in_buf, '\n', in_len)) != NULL) {
        *nl = '\0';
        json_error_t err;
        json_t *job = json_loads(in_buf, JSON_ALLOW_NUL, &err);
        if (job != NULL)
            start_job(job);
        else if (nl != in_buf)
            fprintf(stderr, "sandbox-driver: bad input line: %s\n", err.text);
        json_decref(job);
        size_t used = (size_t)(nl - in_buf) + 1;
        memmove(in_buf, nl + 1, in_len - used);
        in_len -= used;
    }
    return 1;
}

/* ---- main loop ------------------------------------------------------------------------------- */

static void check_kills(void)
{
    double now = now_ms();
    for (size_t i = 0; i < n_jobs; i++) {
        if (jobs[i].kill_at_ms > 0 && !jobs[i].killed && now >= jobs[i].kill_at_ms) {
            jobs[i].killed = true;
            send_frame(ctl, json_pack("{s:s, s:I}", "op", "kill", "id", jobs[i].id));
        }
    }
}

static int next_timeout(void)
{
    double now = now_ms(), best = -1;
    for (size_t i = 0; i < n_jobs; i++) {
        if (jobs[i].kill_at_ms > 0 && !jobs[i].killed) {
            double left = jobs[i].kill_at_ms - now;
            if (best < 0 || left < best)
                best = left;
        }
    }
    return best < 0 ? -1 : (int)(best < 0 ? 0 : best) + 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <gatehouse-sandbox>\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sandbox_frame_reader_init(&ctl_reader);
    start_sandbox(argv[1]);

    bool stdin_open = true;
    for (;;) {
        if (!stdin_open && n_jobs == 0)
            break;
        struct pollfd p[2 + MAX_JOBS];
        size_t np = 0;
        p[np++] = (struct pollfd){ctl, POLLIN, 0};
        p[np++] = (struct pollfd){stdin_open ? 0 : -1, POLLIN, 0};
        for (size_t i = 0; i < n_jobs; i++)
            p[np++] = (struct pollfd){jobs[i].fd, POLLIN, 0};
        if (poll(p, np, next_timeout()) < 0 && errno != EINTR)
            die("poll");
        check_kills();
        /* Execution sockets before the control socket: their frames come before "exited". */
        for (size_t i = 2; i < np; i++) {
            if (p[i].revents == 0 || p[i].fd < 0)
                continue;
            for (size_t k = 0; k < n_jobs; k++)
                if (jobs[k].fd == p[i].fd)
                    read_exec(&jobs[k]);
        }
        if (p[0].revents && !read_control()) {
            json_t *pids = json_array();
            for (size_t i = 0; i < n_jobs; i++)
                if (jobs[i].pid != NULL)
                    json_array_append(pids, jobs[i].pid);
            print_json(json_pack("{s:b, s:o}", "sandbox_lost", 1, "pids", pids));
            break;
        }
        if (p[1].revents && !read_stdin())
            stdin_open = false;
    }

    close(ctl);
    int status;
    waitpid(sandbox_pid, &status, 0);
    if (WIFEXITED(status))
        print_json(json_pack("{s:{s:i}}", "sandbox_exit", "code", WEXITSTATUS(status)));
    else
        print_json(json_pack("{s:{s:i}}", "sandbox_exit", "signal", WTERMSIG(status)));
    return 0;
}
