/*
 * redact.c - secret redaction (see redact.h).
 */
#include "util/redact.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void redact_secret(const char *secret, char *out, size_t cap)
{
    size_t len = secret ? strlen(secret) : 0;
    if (len < 12) {
        /* Too short to show any of it without giving most of it away. */
        snprintf(out, cap, "***(%zu)", len);
        return;
    }
    snprintf(out, cap, "%.4s...(%zu)", secret, len);
}

bool redact_is_secret_header(const char *name)
{
    static const char *const names[] = {
        "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
        "cookie",        "set-cookie",          "x-gatehouse-admin-token",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i]) == 0)
            return true;
    }
    return false;
}
