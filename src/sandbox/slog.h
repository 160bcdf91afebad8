/*
 * slog.h - log lines of gatehouse-sandbox. They go to stderr, which the gateway reads into its
 * own log, so each line names the program and the process, then says what happened and what
 * happens next. A child closes stderr just before its seccomp filter; it logs nothing after.
 */
#ifndef GATEHOUSE_SANDBOX_SLOG_H
#define GATEHOUSE_SANDBOX_SLOG_H

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((format(printf, 2, 3))) static inline void sandbox_log(const char *level,
                                                                     const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "gatehouse-sandbox[%d]: %s: ", (int)getpid(), level);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

#endif
