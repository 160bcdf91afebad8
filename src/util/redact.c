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
        "authorization", "proxy-authorization",     "x-api-key",
        "api-key",       "x-goog-api-key",          "cookie",
        "set-cookie",    "x-gatehouse-admin-token",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i]) == 0)
            return true;
    }
    return false;
}

void redact_scrub(char *text, size_t cap, const char *secret)
{
    size_t slen = secret ? strlen(secret) : 0;
    if (slen < 8)
        return;

    char shown[64];
    redact_secret(secret, shown, sizeof(shown));
    size_t rlen = strlen(shown);

    char *hit;
    char *from = text;
    while ((hit = strstr(from, secret)) != NULL) {
        size_t tail = strlen(hit + slen);
        /* The redacted form is never longer than a secret of 12 or more characters; for
         * shorter ones the text is cut to fit the buffer. */
        if ((size_t)(hit - text) + rlen + tail + 1 > cap)
            tail = cap - (size_t)(hit - text) - rlen - 1;
        memmove(hit + rlen, hit + slen, tail);
        hit[rlen + tail] = '\0';
        memcpy(hit, shown, rlen);
        from = hit + rlen;
    }
}
