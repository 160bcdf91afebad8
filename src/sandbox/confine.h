/*
 * confine.h - what a sandbox child gives up before it runs a script, in order: its session and
 * descriptors, its environment, root (for nobody), then new user, mount, network and pid
 * namespaces with an empty read-only root, its capabilities, dumpability and the right to gain
 * privileges, rlimits, and finally a seccomp filter that leaves the execution socket, memory,
 * clocks and exit. docs/internals/sandbox.md explains each step.
 *
 * The zygote probes once at start which namespaces the kernel grants (sandbox_probe) and every
 * child then asks for exactly those, so a refused namespace is logged once, not per execution.
 */
#ifndef GATEHOUSE_SANDBOX_CONFINE_H
#define GATEHOUSE_SANDBOX_CONFINE_H

#include <stdbool.h>
#include <sys/types.h>

/* The execution socket's number in the child: every other descriptor is closed. */
#define SANDBOX_EXEC_FD 3

typedef enum sandbox_ns {
    SANDBOX_NS_USER = 1 << 0,
    SANDBOX_NS_NET = 1 << 1,
    SANDBOX_NS_MOUNT = 1 << 2,
    SANDBOX_NS_PID = 1 << 3,
} sandbox_ns_t;

typedef struct sandbox_limits {
    long cpu_s;        /* RLIMIT_CPU: SIGKILL when used up */
    long memory_mb;    /* RLIMIT_AS, the interpreter's own mappings included */
    long output_bytes; /* enforced by the child's print(), not by the kernel */
} sandbox_limits_t;

typedef struct sandbox_confinement {
    unsigned ns;  /* sandbox_ns_t bits the kernel granted at the probe */
    bool seccomp; /* a filter could be loaded at the probe */
    uid_t uid;    /* whom a child runs as when the zygote is root (nobody) */
    gid_t gid;
    pid_t zygote; /* the zygote's pid: a child dies with it */
} sandbox_confinement_t;

/* Forks throw-away children to find which namespaces and whether seccomp work here, and which
 * uid/gid to drop to. Logs each refusal on stderr. Call before any thread exists. */
void sandbox_probe(sandbox_confinement_t *c);

/* In a child just forked from the zygote, with its execution socket at exec_fd (-1 in a
 * probe): every step before seccomp. Returns 0 in the process that goes on to run the script.
 * With a pid namespace the child forks once more and the first process only waits and exits
 * with the script process's status, never returning. -1 after a message on stderr when a step
 * that must succeed failed; the caller then exits without running anything. */
int sandbox_confine(const sandbox_confinement_t *c, int exec_fd, const sandbox_limits_t *lim);

/* Closes stderr and loads the seccomp filter (see confine.c for each allowed system call).
 * After this the process can only use SANDBOX_EXEC_FD, its memory, clocks and exit. */
int sandbox_seccomp_enter(const sandbox_confinement_t *c);

#endif
