/*
 * confine.c - the steps a sandbox child takes before it runs untrusted code (see confine.h).
 *
 * Order matters and is chosen so that each step still has what it needs:
 *   1. setsid, so the zygote can kill the whole process group, and a clean signal mask;
 *      (after step 4) death with the zygote (PR_SET_PDEATHSIG);
 *   2. the execution socket moved to fd 3, every other descriptor closed but stderr (kept for
 *      the log lines of the steps below, closed just before seccomp);
 *   3. an empty environment;
 *   4. root drops to nobody with no supplementary groups (before the namespaces, so that the
 *      new user namespace maps only an unprivileged uid);
 *   5. new user, mount, network and pid namespaces as the probe found them granted; with a pid
 *      namespace one more fork, so the script process is pid 1 of its own namespace and sees no
 *      other process; with a mount namespace an empty read-only tmpfs becomes the root and the
 *      old root is detached: no file of the host is reachable by any path;
 *   6. capabilities (those the user namespace gave) dropped, not dumpable, no_new_privs;
 *   7. rlimits: CPU seconds, address space, no file writes, no processes, 4 descriptors, no core;
 *   8. (sandbox_seccomp_enter) stderr closed and the seccomp filter loaded.
 */
#include "sandbox/confine.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/slog.h"

/* Exit codes of a child that failed before its script ran (docs/internals/sandbox.md). */
#define CONFINE_EXIT_FAILED 121
#define CONFINE_EXIT_WAIT 122

/* ---- descriptors, environment, identity ------------------------------------------------------ */

static void close_from(unsigned first, unsigned last)
{
    if (first > last)
        return;
    if (syscall(SYS_close_range, first, last, 0) == 0)
        return;
    /* Kernels before 5.9: close one by one up to the descriptor limit. */
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd <= (long)last && fd < max; fd++)
        close((int)fd);
}

static int keep_only_exec_fd(int exec_fd)
{
    if (exec_fd >= 0 && exec_fd != SANDBOX_EXEC_FD) {
        if (dup2(exec_fd, SANDBOX_EXEC_FD) < 0) {
            sandbox_log("crit", "child: dup2 of the execution socket failed: %s; not running",
                        strerror(errno));
            return -1;
        }
    }
    close_from(0, 1);
    close_from(exec_fd >= 0 ? SANDBOX_EXEC_FD + 1 : SANDBOX_EXEC_FD, ~0U);
    return 0;
}

static int drop_root(const sandbox_confinement_t *c)
{
    if (geteuid() != 0 && getuid() != 0)
        return 0;
    if (setgroups(0, NULL) != 0 || setresgid(c->gid, c->gid, c->gid) != 0 ||
        setresuid(c->uid, c->uid, c->uid) != 0) {
        sandbox_log("crit", "child: dropping root to uid %u failed: %s; not running",
                    (unsigned)c->uid, strerror(errno));
        return -1;
    }
    if (getuid() == 0 || geteuid() == 0 || getgid() == 0 || getegid() == 0)
        return -1;
    /* setuid cleared dumpability, which makes /proc/self/uid_map root's: step 5 writes it. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    return 0;
}

/* A child must not outlive the zygote (killed, or crashed): SIGKILL when it dies. Set after
 * the uid change, which clears it; the user namespace keeps it. */
static int die_with_zygote(const sandbox_confinement_t *c)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        return -1;
    if (getppid() != c->zygote) /* it died before the line above */
        return -1;
    return 0;
}

/* ---- namespaces ------------------------------------------------------------------------------ */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int saved = errno;
    close(fd);
    errno = saved;
    return w == (ssize_t)n ? 0 : -1;
}

static int map_ids(uid_t outer_uid, gid_t outer_gid)
{
    char line[64];
    if (write_file("/proc/self/setgroups", "deny") != 0 && errno != ENOENT)
        return -1;
    snprintf(line, sizeof(line), "0 %u 1", (unsigned)outer_uid);
    if (write_file("/proc/self/uid_map", line) != 0)
        return -1;
    snprintf(line, sizeof(line), "0 %u 1", (unsigned)outer_gid);
    return write_file("/proc/self/gid_map", line);
}

/* The first process of a pid-namespaced child: waits for the script process and exits as it
 * did, so the zygote reaps one status whatever the confinement. */
static void wait_and_mirror(pid_t script)
{
    close_from(0, ~0U);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    int status;
    while (waitpid(script, &status, 0) < 0) {
        if (errno != EINTR)
            _exit(CONFINE_EXIT_WAIT);
    }
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(sig);
    _exit(128 + sig);
}

/* Puts an empty read-only tmpfs at / and detaches the old root. */
static int empty_root(void)
{
    static const char *const mount_points[] = {"/tmp", "/mnt", "/dev"};

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(mount_points) / sizeof(mount_points[0]); i++) {
        const char *dir = mount_points[i];
        if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                  "size=4k,nr_inodes=1,mode=0555") != 0)
            continue;
        if (chdir(dir) != 0 || syscall(SYS_pivot_root, ".", ".") != 0 ||
            umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
            return -1;
        return 0;
    }
    return -1;
}

static int enter_namespaces(const sandbox_confinement_t *c)
{
    uid_t outer_uid = getuid();
    gid_t outer_gid = getgid();
    int flags = 0;
    flags |= (c->ns & SANDBOX_NS_USER) ? CLONE_NEWUSER : 0;
    flags |= (c->ns & SANDBOX_NS_MOUNT) ? CLONE_NEWNS : 0;
    flags |= (c->ns & SANDBOX_NS_NET) ? CLONE_NEWNET : 0;
    flags |= (c->ns & SANDBOX_NS_PID) ? CLONE_NEWPID : 0;
    if (flags == 0)
        return 0;

    if (unshare(flags) != 0) {
        sandbox_log("warn", "child: unshare(0x%x) failed: %s", (unsigned)flags, strerror(errno));
        return -1;
    }
    if ((c->ns & SANDBOX_NS_USER) && map_ids(outer_uid, outer_gid) != 0) {
        sandbox_log("warn", "child: writing the user namespace's id maps failed: %s",
                    strerror(errno));
        return -1;
    }
    if (c->ns & SANDBOX_NS_PID) {
        pid_t script = fork();
        if (script < 0) {
            sandbox_log("warn", "child: fork into the pid namespace failed: %s", strerror(errno));
            return -1;
        }
        if (script > 0)
            wait_and_mirror(script);
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    }
    if ((c->ns & SANDBOX_NS_MOUNT) && empty_root() != 0) {
        sandbox_log("warn", "child: replacing the root with an empty tmpfs failed: %s",
                    strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- capabilities, rlimits ------------------------------------------------------------------- */

static int drop_capabilities(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    return (int)syscall(SYS_capset, &hdr, data);
}

static int set_limit(int resource, rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {soft, hard};
    return setrlimit(resource, &rl);
}

static int set_rlimits(const sandbox_limits_t *lim)
{
    rlim_t cpu = lim->cpu_s > 0 ? (rlim_t)lim->cpu_s : 10;
    rlim_t mem = (lim->memory_mb > 0 ? (rlim_t)lim->memory_mb : 256) << 20;
    /* Soft = hard: the kernel's SIGKILL at the hard limit. SIGXCPU at a lower soft limit would
     * be ignored, because with a pid namespace the script process is its namespace's init,
     * which the kernel protects from signals it has no handler for. */
    if (set_limit(RLIMIT_CPU, cpu, cpu) != 0 || set_limit(RLIMIT_AS, mem, mem) != 0 ||
        set_limit(RLIMIT_FSIZE, 0, 0) != 0 || set_limit(RLIMIT_NPROC, 0, 0) != 0 ||
        set_limit(RLIMIT_NOFILE, SANDBOX_EXEC_FD + 1, SANDBOX_EXEC_FD + 1) != 0 ||
        set_limit(RLIMIT_CORE, 0, 0) != 0 || set_limit(RLIMIT_MEMLOCK, 0, 0) != 0 ||
        set_limit(RLIMIT_MSGQUEUE, 0, 0) != 0) {
        sandbox_log("crit", "child: setting rlimits failed: %s; not running", strerror(errno));
        return -1;
    }
    return 0;
}

int sandbox_confine(const sandbox_confinement_t *c, int exec_fd, const sandbox_limits_t *lim)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN); /* a gateway that went away is a failed write, not a signal */
    signal(SIGXCPU, SIG_DFL); /* the CPU limit must end the child, whatever it inherited */
    signal(SIGXFSZ, SIG_DFL);
    if (setsid() < 0)
        return -1;

    if (keep_only_exec_fd(exec_fd) != 0)
        return -1;
    if (clearenv() != 0)
        return -1;
    if (drop_root(c) != 0)
        return -1;
    if (die_with_zygote(c) != 0)
        return -1;
    if (enter_namespaces(c) != 0)
        return -1;

    if ((c->ns & SANDBOX_NS_USER) && drop_capabilities() != 0) {
        sandbox_log("crit", "child: dropping capabilities failed: %s", strerror(errno));
        return -1;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    if (lim != NULL && set_rlimits(lim) != 0)
        return -1;
    return 0;
}

/* ---- seccomp --------------------------------------------------------------------------------- */

/* Adds one rule, naming the call for the log when libseccomp refuses it. */
static int allow(scmp_filter_ctx ctx, const char *name, unsigned n_args,
                 const struct scmp_arg_cmp *args)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* not a call on this architecture (e.g. nanosleep on some) */
    int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n_args, args);
    if (rc != 0)
        sandbox_log("crit", "child: seccomp rule for %s refused: %s", name, strerror(-rc));
    return rc;
}

/*
 * The allow-list. Anything else fails with EPERM (not a kill: the script gets a clear
 * PermissionError it can report, and the child can still send its "done" frame; the kernel
 * refuses the call either way).
 */
static int add_rules(scmp_filter_ctx ctx)
{
    const struct scmp_arg_cmp on_socket[] = {SCMP_A0(SCMP_CMP_EQ, SANDBOX_EXEC_FD)};
    const struct scmp_arg_cmp no_exec_prot[] = {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)};
    const struct scmp_arg_cmp to_self[] = {SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid())};
    int rc = 0;

    /* The execution socket: frames out (write) and in (read); no other descriptor. */
    rc |= allow(ctx, "read", 1, on_socket);
    rc |= allow(ctx, "write", 1, on_socket);
    /* Memory for the interpreter's allocators; never executable, so no new code can be
     * mapped or made runnable. */
    rc |= allow(ctx, "mmap", 1, no_exec_prot);
    rc |= allow(ctx, "mprotect", 1, no_exec_prot);
    rc |= allow(ctx, "munmap", 0, NULL);
    rc |= allow(ctx, "mremap", 0, NULL);
    rc |= allow(ctx, "brk", 0, NULL);
    rc |= allow(ctx, "madvise", 0, NULL);
    /* Clocks (time, datetime.now; usually the vDSO, but the fallback is a call) and
     * time.sleep, which the wall-clock limit bounds. */
    rc |= allow(ctx, "clock_gettime", 0, NULL);
    rc |= allow(ctx, "clock_getres", 0, NULL);
    rc |= allow(ctx, "gettimeofday", 0, NULL);
    rc |= allow(ctx, "clock_nanosleep", 0, NULL);
    rc |= allow(ctx, "nanosleep", 0, NULL);
    /* random, uuid4, secrets and hashlib draw from the kernel. */
    rc |= allow(ctx, "getrandom", 0, NULL);
    /* Locks of the interpreter and libc (single-threaded, but libc still uses futexes). */
    rc |= allow(ctx, "futex", 0, NULL);
    rc |= allow(ctx, "sched_yield", 0, NULL);
    /* Leaving: exit, exit_group, and the return from a signal handler; abort() signals
     * itself (SIGABRT to its own pid only), so a crash is reported as a signal. */
    rc |= allow(ctx, "exit", 0, NULL);
    rc |= allow(ctx, "exit_group", 0, NULL);
    rc |= allow(ctx, "rt_sigreturn", 0, NULL);
    rc |= allow(ctx, "restart_syscall", 0, NULL);
    rc |= allow(ctx, "tgkill", 1, to_self);
    rc |= allow(ctx, "rt_sigprocmask", 0, NULL);
    /* Harmless identity reads libc and Python make (getpid is 1 in a pid namespace). */
    rc |= allow(ctx, "getpid", 0, NULL);
    rc |= allow(ctx, "gettid", 0, NULL);
    return rc;
}

int sandbox_seccomp_enter(const sandbox_confinement_t *c)
{
    if (!c->seccomp) {
        close(STDERR_FILENO);
        return 0;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (ctx == NULL) {
        sandbox_log("crit", "child: seccomp_init failed; not running");
        return -1;
    }
    if (add_rules(ctx) != 0) {
        seccomp_release(ctx);
        return -1;
    }
    close(STDERR_FILENO);
    int rc = seccomp_load(ctx);
    seccomp_release(ctx);
    return rc == 0 ? 0 : -1;
}

/* ---- the probe ------------------------------------------------------------------------------- */

/* Runs the whole confinement in a throw-away child: true when it got through. */
static bool probe_once(const sandbox_confinement_t *c)
{
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        if (sandbox_confine(c, -1, NULL) != 0 || sandbox_seccomp_enter(c) != 0)
            _exit(CONFINE_EXIT_FAILED);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return false;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void find_nobody(sandbox_confinement_t *c)
{
    struct passwd *pw = getpwnam("nobody");
    c->uid = pw != NULL ? pw->pw_uid : 65534;
    struct group *gr = getgrnam("nogroup");
    if (gr == NULL)
        gr = getgrnam("nobody");
    c->gid = gr != NULL ? gr->gr_gid : (pw != NULL ? pw->pw_gid : 65534);
}

void sandbox_probe(sandbox_confinement_t *c)
{
    static const unsigned tries[] = {
        SANDBOX_NS_USER | SANDBOX_NS_MOUNT | SANDBOX_NS_NET | SANDBOX_NS_PID,
        SANDBOX_NS_USER | SANDBOX_NS_MOUNT | SANDBOX_NS_NET,
        SANDBOX_NS_USER | SANDBOX_NS_NET,
        0,
    };
    memset(c, 0, sizeof(*c));
    c->zygote = getpid();
    find_nobody(c);

    c->seccomp = true;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        c->ns = tries[i];
        if (probe_once(c))
            break;
        if (tries[i] == 0)
            break;
        sandbox_log("warn", "namespaces 0x%x refused by this kernel; trying fewer", tries[i]);
    }
    if (c->ns == 0 && !probe_once(c)) {
        c->seccomp = false;
        sandbox_log("warn", "seccomp filter could not be loaded; children run without it");
    }
}
