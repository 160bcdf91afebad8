/*
 * log.h - leveled logging to stderr.
 *
 * Levels have fixed meanings (as in nginx):
 *   LOG_LVL_DEBUG  tracing for developers, off by default
 *   LOG_LVL_INFO   normal events, and problems the client caused (bad JSON, unknown model)
 *   LOG_LVL_WARN   something is wrong but handled (a retry, an unknown config field)
 *   LOG_LVL_ERROR  an upstream or peer failed (provider 5xx, refused connection)
 *   LOG_LVL_CRIT   a system call failed, or a state that should be impossible
 *
 * One line per event: what happened, to which request, and what happens next. Pass the request
 * id (or NULL) so that every line about a request can be found with one grep. Nothing that
 * could be a secret is ever passed to these functions; see redact.h.
 */
#ifndef GATEHOUSE_UTIL_LOG_H
#define GATEHOUSE_UTIL_LOG_H

#include <stdbool.h>

typedef enum log_level {
    LOG_LVL_DEBUG = 0,
    LOG_LVL_INFO,
    LOG_LVL_WARN,
    LOG_LVL_ERROR,
    LOG_LVL_CRIT,
} log_level_t;

void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Parses "debug", "info", ...; returns false for anything else. */
bool log_parse_level(const char *name, log_level_t *out);
bool log_enabled(log_level_t level);

void log_msg(log_level_t level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes one pre-formatted line (the access log) with the usual time prefix. */
void log_line(const char *line);

#define log_debug(rid, ...)                                                                        \
    do {                                                                                           \
        if (log_enabled(LOG_LVL_DEBUG))                                                            \
            log_msg(LOG_LVL_DEBUG, rid, __VA_ARGS__);                                              \
    } while (0)
#define log_info(rid, ...) log_msg(LOG_LVL_INFO, rid, __VA_ARGS__)
#define log_warn(rid, ...) log_msg(LOG_LVL_WARN, rid, __VA_ARGS__)
#define log_error(rid, ...) log_msg(LOG_LVL_ERROR, rid, __VA_ARGS__)
#define log_crit(rid, ...) log_msg(LOG_LVL_CRIT, rid, __VA_ARGS__)

#endif
