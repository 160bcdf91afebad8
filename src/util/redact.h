/*
 * redact.h - turning secrets into something safe to print.
 *
 * A key is shown as its first four characters and its length ("sk-p...(51)") when a human must
 * tell two keys apart, or not at all. Header redaction knows the header names that carry
 * credentials for every provider gatehouse talks to.
 */
#ifndef GATEHOUSE_UTIL_REDACT_H
#define GATEHOUSE_UTIL_REDACT_H

#include <stdbool.h>
#include <stddef.h>

/* Writes a redacted form of secret into out (always NUL-terminated). */
void redact_secret(const char *secret, char *out, size_t cap);
/* True for header names whose values are credentials (authorization, x-api-key, ...). */
bool redact_is_secret_header(const char *name);

/* Replaces every occurrence of secret in text (NUL-terminated, edited in place) with its
 * redacted form. Upstream error messages sometimes quote the key they were sent ("Incorrect API
 * key provided: sk-..."); they pass through here before they are logged or returned. Secrets
 * shorter than 8 characters are left alone: they would match ordinary words. */
void redact_scrub(char *text, size_t cap, const char *secret);

#endif
