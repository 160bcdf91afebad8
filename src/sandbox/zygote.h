/*
 * zygote.h - the control loop of gatehouse-sandbox. It reads "run" and "kill" frames from the
 * gateway on the control socket, forks one confined child per run (handing it the execution
 * socket that came with the run), reports "started" and, when it reaps the child, "exited". It
 * never runs a script itself. It returns when the gateway closes the control socket.
 */
#ifndef GATEHOUSE_SANDBOX_ZYGOTE_H
#define GATEHOUSE_SANDBOX_ZYGOTE_H

#include "sandbox/confine.h"

/* The process exit code: 0 after the gateway closed the socket, 1 on a protocol or system
 * error (logged). ctl_fd is the control socket. */
int sandbox_zygote_run(int ctl_fd, const sandbox_confinement_t *conf);

#endif
