/*
 * frame.c - length-prefixed JSON frames (see frame.h). The reader keeps one growing buffer and
 * compacts it when the taken bytes are most of it, so a long stream of small frames does not
 * grow memory, and one frame never needs more than its own size plus the header.
 */
#include "sandbox/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t read_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void sandbox_frame_reader_init(sandbox_frame_reader_t *r)
{
    memset(r, 0, sizeof(*r));
}

void sandbox_frame_reader_free(sandbox_frame_reader_t *r)
{
    if (r->buf != NULL)
        explicit_bzero(r->buf, r->cap);
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

/* Room for n more bytes after len, plus the NUL that next() may write after a frame. */
static int reserve(sandbox_frame_reader_t *r, size_t n)
{
    if (r->start > 0 && (r->start >= r->len || r->start > r->cap / 2)) {
        memmove(r->buf, r->buf + r->start, r->len - r->start);
        r->len -= r->start;
        r->start = 0;
    }
    if (r->len + n + 1 <= r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n + 1)
        cap *= 2;
    /* Not realloc: the old block is wiped before it is freed, so no script's bytes are left in
     * freed memory of the zygote, which every later child inherits. */
    unsigned char *grown = malloc(cap);
    if (grown == NULL)
        return -1;
    if (r->buf != NULL) {
        memcpy(grown, r->buf, r->len);
        explicit_bzero(r->buf, r->cap);
        free(r->buf);
    }
    r->buf = grown;
    r->cap = cap;
    return 0;
}

int sandbox_frame_reader_feed(sandbox_frame_reader_t *r, const void *data, size_t n)
{
    if (r->failed)
        return -1;
    if (n == 0)
        return 0;
    if (reserve(r, n) != 0)
        return -1;
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return 0;
}

sandbox_frame_result_t sandbox_frame_reader_next(sandbox_frame_reader_t *r, const char **body,
                                                 size_t *body_len)
{
    if (r->failed)
        return SANDBOX_FRAME_ERROR;
    size_t avail = r->len - r->start;
    if (avail < 4)
        return SANDBOX_FRAME_MORE;
    size_t n = read_be32(r->buf + r->start);
    if (n > SANDBOX_FRAME_MAX) {
        r->failed = 1;
        return SANDBOX_FRAME_ERROR;
    }
    if (avail - 4 < n)
        return SANDBOX_FRAME_MORE;

    /* Shift the body over its header so that a NUL can follow it without touching the next
     * frame's first byte, which may already be buffered. */
    unsigned char *p = r->buf + r->start;
    memmove(p, p + 4, n);
    p[n] = '\0'; /* lands on a stale copy of the body's tail, never on the next frame */
    r->start += 4 + n;
    *body = (const char *)p;
    *body_len = n;
    return SANDBOX_FRAME_READY;
}

size_t sandbox_frame_reader_wanted(const sandbox_frame_reader_t *r)
{
    if (r->failed)
        return 0;
    size_t avail = r->len - r->start;
    if (avail < 4)
        return 4 - avail;
    size_t n = read_be32(r->buf + r->start);
    if (n > SANDBOX_FRAME_MAX)
        return 0;
    return avail - 4 >= n ? 0 : n - (avail - 4);
}

int sandbox_frame_reader_partial(const sandbox_frame_reader_t *r)
{
    return r->len > r->start;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sandbox_frame_write(int fd, const char *body, size_t len)
{
    if (len > SANDBOX_FRAME_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                            (unsigned char)(len >> 8), (unsigned char)len};
    /* Small frames go out in one write so that a reader sees header and body together. */
    if (len <= 4096) {
        unsigned char one[4 + 4096];
        memcpy(one, hdr, 4);
        memcpy(one + 4, body, len);
        return write_all(fd, one, 4 + len);
    }
    if (write_all(fd, hdr, 4) != 0)
        return -1;
    return write_all(fd, (const unsigned char *)body, len);
}

/* 1 when n bytes were read, 0 when the peer closed before the first, -1 on error or a close
 * in the middle. */
static int read_all(int fd, unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0 && got == 0)
            return 0;
        if (r <= 0) {
            if (r == 0)
                errno = EPIPE;
            return -1;
        }
        got += (size_t)r;
    }
    return 1;
}

sandbox_frame_result_t sandbox_frame_read(int fd, char **body, size_t *body_len)
{
    unsigned char hdr[4];
    int rc = read_all(fd, hdr, 4);
    if (rc <= 0)
        return rc == 0 ? SANDBOX_FRAME_EOF : SANDBOX_FRAME_ERROR;
    size_t n = read_be32(hdr);
    if (n > SANDBOX_FRAME_MAX) {
        errno = EMSGSIZE;
        return SANDBOX_FRAME_ERROR;
    }
    char *buf = malloc(n + 1);
    if (buf == NULL)
        return SANDBOX_FRAME_ERROR;
    if (n > 0 && read_all(fd, (unsigned char *)buf, n) != 1) {
        if (errno == 0)
            errno = EPIPE;
        free(buf);
        return SANDBOX_FRAME_ERROR;
    }
    buf[n] = '\0';
    *body = buf;
    *body_len = n;
    return SANDBOX_FRAME_READY;
}
