/*
 * buf.h - a growable byte buffer.
 *
 * The buffer always keeps a NUL after its last byte, so its data can be used as a C string when
 * it holds text. The buffer owns its data; buf_release hands ownership to the caller.
 */
#ifndef GATEHOUSE_UTIL_BUF_H
#define GATEHOUSE_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
    char *data; /* NUL-terminated, or NULL before the first append */
    size_t len; /* bytes used, not counting the NUL */
    size_t cap; /* bytes allocated */
} buf_t;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(buf_t *b);
void buf_free(buf_t *b);
void buf_reset(buf_t *b); /* len = 0, keeps the allocation */
void buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *data, size_t len);
void buf_appends(buf_t *b, const char *s);
void buf_appendc(buf_t *b, char c);
void buf_appendf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vappendf(buf_t *b, const char *fmt, va_list ap);
/* Returns the data (never NULL, caller frees) and leaves the buffer empty. */
char *buf_release(buf_t *b);
/* A C string view of the buffer; "" when nothing was appended. */
const char *buf_cstr(const buf_t *b);

#endif
