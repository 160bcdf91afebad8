/*
 * main.c - gatehouse-sandbox: the Code Mode helper (DESIGN.md "Code Mode sandbox",
 * docs/internals/sandbox.md). The gateway starts it with a connected AF_UNIX stream socket as
 * fd 3, stdin on /dev/null and stderr for log lines. It probes which confinement the kernel
 * grants, starts the embedded Python and its allowed modules once, says "ready", and serves
 * runs until the gateway closes fd 3.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/confine.h"
#include "sandbox/pyhost.h"
#include "sandbox/slog.h"
#include "sandbox/zygote.h"

#define CONTROL_FD 3

/* fds 0-2 point somewhere, so nothing the zygote opens later lands on them by accident. */
static void fill_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int null = open("/dev/null", O_RDWR);
        if (null >= 0 && null != fd) {
            dup2(null, fd);
            close(null);
        }
    }
}

static int control_socket_ok(void)
{
    struct stat st;
    int type = 0;
    socklen_t len = sizeof(type);
    return fstat(CONTROL_FD, &st) == 0 && S_ISSOCK(st.st_mode) &&
           getsockopt(CONTROL_FD, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

static void describe(const sandbox_confinement_t *c)
{
    char ns[64] = "";
    if (c->ns & SANDBOX_NS_USER)
        strcat(ns, " user");
    if (c->ns & SANDBOX_NS_MOUNT)
        strcat(ns, " mount");
    if (c->ns & SANDBOX_NS_NET)
        strcat(ns, " net");
    if (c->ns & SANDBOX_NS_PID)
        strcat(ns, " pid");
    if (c->ns == 0)
        sandbox_log("warn", "no namespaces available: children see the host's file system, "
                            "network and processes, and rely on rlimits and seccomp alone");
    sandbox_log("info", "children get namespaces:%s; seccomp %s", ns[0] ? ns : " none",
                c->seccomp ? "on" : "OFF");
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: %s (started by gatehouse with a unix socket as fd 3)\n", argv[0]);
        return 2;
    }
    fill_std_fds();
    if (!control_socket_ok()) {
        sandbox_log("crit", "fd %d is not a connected unix stream socket; exiting", CONTROL_FD);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    sandbox_confinement_t conf;
    sandbox_probe(&conf);
    describe(&conf);
    if (sandbox_py_init() != 0)
        return 1;
    return sandbox_zygote_run(CONTROL_FD, &conf);
}
