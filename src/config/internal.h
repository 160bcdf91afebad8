/*
 * internal.h - what the files of src/config/ share with each other and with no one else.
 *
 * config.c owns the snapshot's lifetime, the problem report, file reading and the environment
 * path; validate.c turns a JSON tree into a snapshot; known_providers.c holds the table of
 * providers gatehouse knows by name. The defaults live here so that both ways of building a
 * snapshot (file and environment) start from the same values, and so that the tests and
 * docs/configuration.md can name them.
 */
#ifndef GATEHOUSE_CONFIG_INTERNAL_H
#define GATEHOUSE_CONFIG_INTERNAL_H

#include <stdbool.h>

#include "config/config.h"

#define CONFIG_DEFAULT_HOST "0.0.0.0"
#define CONFIG_DEFAULT_PORT 8080
#define CONFIG_DEFAULT_THREADS 0
#define CONFIG_DEFAULT_MAX_BODY_BYTES ((size_t)8 * 1024 * 1024)
#define CONFIG_DEFAULT_HEADER_TIMEOUT_S 30
#define CONFIG_DEFAULT_IDLE_TIMEOUT_S 60
#define CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_S 30
#define CONFIG_DEFAULT_LOG_LEVEL "info"
#define CONFIG_DEFAULT_LOG_RETENTION_DAYS 30
#define CONFIG_DEFAULT_CONTENT_RETENTION_DAYS 7
#define CONFIG_DEFAULT_LOG_QUEUE_SIZE 10000

#define CONFIG_DEFAULT_MAX_RETRIES 2
#define CONFIG_DEFAULT_BACKOFF_INITIAL_MS 500
#define CONFIG_DEFAULT_BACKOFF_MAX_MS 5000
#define CONFIG_DEFAULT_TIMEOUT_S 120
#define CONFIG_DEFAULT_CONCURRENCY 1000
#define CONFIG_DEFAULT_BUFFER_SIZE 5000

/* The path used for problems about the whole document rather than one field. */
#define CONFIG_ROOT_PATH "(root)"

/* Records one problem. The message must never contain a secret: name the variable or the
 * field, never the value. */
void config_report_addf(config_report_t *r, bool is_error, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A fresh snapshot with refcount 1, every server field at its default and no provider. */
config_t *config_new(const char *source);

/* Appends a provider with the given identity and every other field at its default; the
 * returned pointer stays valid until the next call (the array may move). */
config_provider_t *config_add_provider(config_t *cfg, const char *name, config_family_t family,
                                       const char *base_url);
/* Appends a key to a provider; takes ownership of nothing, copies both strings. */
config_key_t *config_add_key(config_provider_t *p, const char *name, const char *value);
/* Drops the last provider (one that turned out to have nothing usable). */
void config_drop_last_provider(config_t *cfg);

/* Checks that url is http:// or https:// followed by a host, and returns a copy without its
 * trailing slashes; NULL when it is not acceptable. */
char *config_normalize_url(const char *url);

/* True when s holds a byte below 0x20 or 0x7f. Such a key would end up inside an HTTP header,
 * where a stray newline (a common copy-paste accident) breaks or splits the request. */
bool config_has_control_chars(const char *s);

/* config_load_file, plus whether the file could not be read at all (as opposed to read and
 * found invalid); check-config exits with a different status for each. */
config_t *config_load_path(const char *path, config_report_t *report, bool *unreadable);

#endif
