/*
 * pyhost.h - the embedded CPython of gatehouse-sandbox. The zygote initialises an isolated
 * interpreter once (no site, no user site, no environment variables, no current directory on
 * the path) and executes the harness (harness.py, compiled into the binary), which imports every
 * module a script may use. A child forked from the zygote then only calls sandbox_py_child_main:
 * it needs no file, which matters because by then it has no file system.
 *
 * The harness reaches the execution socket through a built-in module, _gatehouse, with send()
 * and recv() of whole frames on SANDBOX_EXEC_FD (confine.h).
 */
#ifndef GATEHOUSE_SANDBOX_PYHOST_H
#define GATEHOUSE_SANDBOX_PYHOST_H

#include <stddef.h>

/* 0 when the interpreter and the harness are ready; -1 after a log line. */
int sandbox_py_init(void);
/* "3.11.2": the version of the embedded interpreter. */
const char *sandbox_py_version(void);

/* Around fork(): the interpreter's own fork hooks (locks, the random module's reseed). */
void sandbox_py_before_fork(void);
void sandbox_py_after_fork_parent(void);
void sandbox_py_after_fork_child(void);

/* In a confined child: runs the run message's script (or analysis) and writes its last frame.
 * Returns the process exit code: 0 when the last frame was sent, SANDBOX_PY_EXIT_* otherwise. */
int sandbox_py_child_main(const char *run_text, size_t run_len);

#define SANDBOX_PY_EXIT_HARNESS 123 /* the harness itself failed (a bug: logged nowhere) */

#endif
