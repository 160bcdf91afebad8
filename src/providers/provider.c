/*
 * provider.c - helpers shared by every adapter, and the family -> adapter table.
 */
#include "providers/provider.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

void provider_http_init(provider_http_t *h)
{
    h->url = NULL;
    h->headers = xcalloc(1, sizeof(char *));
    h->n_headers = 0;
    buf_init(&h->body);
}

void provider_http_add_header(provider_http_t *h, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = xmalloc(len);
    snprintf(line, len, "%s: %s", name, value);

    h->headers = xrealloc(h->headers, (h->n_headers + 2) * sizeof(char *));
    h->headers[h->n_headers++] = line;
    h->headers[h->n_headers] = NULL;
}

void provider_http_free(provider_http_t *h)
{
    free(h->url);
    for (size_t i = 0; i < h->n_headers; i++)
        free(h->headers[i]);
    free(h->headers);
    buf_free(&h->body);
    h->url = NULL;
    h->headers = NULL;
    h->n_headers = 0;
}

void provider_error_set(provider_error_t *err, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->type = type;
}

const provider_ops_t *provider_ops_for(const config_provider_t *p)
{
    switch (p->family) {
    case CONFIG_FAMILY_ANTHROPIC:
        return &provider_anthropic_ops;
    case CONFIG_FAMILY_OPENAI:
    default:
        return &provider_openai_ops;
    }
}
