/*
 * check.h - `gatehouse check-config FILE`: validate a configuration file without starting.
 *
 * Meant for CI and for editing a file by hand: it loads the file exactly as the daemon would
 * (same validation, same environment lookups for "env." values), prints every problem, and
 * answers with an exit status a script can test.
 */
#ifndef GATEHOUSE_CONFIG_CHECK_H
#define GATEHOUSE_CONFIG_CHECK_H

#include <stdio.h>

/* Loads path and prints every problem to out, one per line ("error: <path>: <message>" or
 * "warning: ..."), then "ok: N providers, M keys" when the file is valid. Returns the process
 * exit status: 0 valid (warnings allowed), 1 invalid, 2 unreadable (missing, no permission, a
 * directory). Never prints a key's value. */
int config_check_file(const char *path, FILE *out);

#endif
