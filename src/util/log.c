/*
 * log.c - leveled logging to stderr (see log.h).
 *
 * Each line is formatted into one buffer and written with a single write(2), so lines from
 * different worker threads never interleave mid-line.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = LOG_LVL_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "crit"};

void log_set_level(log_level_t level)
{
    atomic_store(&current_level, (int)level);
}

log_level_t log_get_level(void)
{
    return (log_level_t)atomic_load(&current_level);
}

bool log_enabled(log_level_t level)
{
    return (int)level >= atomic_load(&current_level);
}

bool log_parse_level(const char *name, log_level_t *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return true;
        }
    }
    return false;
}

static size_t format_time(char *out, size_t cap)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    return n;
}

static void write_line(char *line, size_t len, size_t cap)
{
    if (len >= cap - 1)
        len = cap - 2;
    line[len++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, len);
    (void)rc; /* nowhere left to report a failed write to stderr */
}

void log_msg(log_level_t level, const char *request_id, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;

    char line[4096];
    size_t n = format_time(line, sizeof(line));
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %-5s ", level_names[level]);
    if (request_id != NULL && n < sizeof(line))
        n += (size_t)snprintf(line + n, sizeof(line) - n, "[%s] ", request_id);

    if (n < sizeof(line)) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        n += m > 0 ? (size_t)m : 0;
    }
    write_line(line, n, sizeof(line));
}

void log_line(const char *text)
{
    char line[4096];
    size_t n = format_time(line, sizeof(line));
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", text);
    write_line(line, n, sizeof(line));
}
