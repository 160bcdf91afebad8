/*
 * frame.h - the sandbox wire format's framing: a 4-byte big-endian length, then that many bytes
 * of UTF-8 JSON (one object). Used by gatehouse-sandbox on its control socket and by the child on
 * its execution socket; the gateway side may use it too (it has no dependency but libc).
 *
 * Two ways to read: an incremental reader (feed it whatever bytes arrived, take whole frames
 * out; for event loops and the zygote, which also receives descriptors alongside the bytes), and
 * a blocking one-frame read for a process that has nothing else to do (the child waiting for a
 * tool's answer). docs/internals/sandbox.md describes the messages themselves.
 */
#ifndef GATEHOUSE_SANDBOX_FRAME_H
#define GATEHOUSE_SANDBOX_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Frames whose length exceeds this are a protocol error: the reader stops and the peer closes. */
#define SANDBOX_FRAME_MAX ((size_t)16 << 20)

typedef struct sandbox_frame_reader {
    unsigned char *buf; /* owned; bytes received and not yet taken */
    size_t start;       /* offset of the first byte not yet taken */
    size_t len;         /* end of the received bytes */
    size_t cap;
    int failed; /* 1 after an oversized frame: every later call fails too */
} sandbox_frame_reader_t;

typedef enum sandbox_frame_result {
    SANDBOX_FRAME_ERROR = -1, /* oversized frame, out of memory, or a read error */
    SANDBOX_FRAME_MORE = 0,   /* no whole frame yet */
    SANDBOX_FRAME_READY = 1,  /* a frame was taken */
    SANDBOX_FRAME_EOF = 2,    /* the peer closed between two frames (blocking read only) */
} sandbox_frame_result_t;

void sandbox_frame_reader_init(sandbox_frame_reader_t *r);
void sandbox_frame_reader_free(sandbox_frame_reader_t *r);
/* Appends n received bytes. -1 when out of memory. */
int sandbox_frame_reader_feed(sandbox_frame_reader_t *r, const void *data, size_t n);
/* Takes the next whole frame: *body points into the reader, valid until the next call on it,
 * and is NUL-terminated for convenience (the frame itself may contain NUL bytes). */
sandbox_frame_result_t sandbox_frame_reader_next(sandbox_frame_reader_t *r, const char **body,
                                                 size_t *body_len);
/* How many more bytes the frame in progress needs (its header first, then its body): a reader
 * that never reads more than this never takes bytes of the next frame, which is how the zygote
 * knows which frame a received descriptor belongs to. 0 after an error. */
size_t sandbox_frame_reader_wanted(const sandbox_frame_reader_t *r);
/* True when bytes of an unfinished frame are buffered (the peer closed mid-frame). */
int sandbox_frame_reader_partial(const sandbox_frame_reader_t *r);

/* Writes one whole frame to a blocking descriptor, retrying short writes and EINTR.
 * -1 with errno on failure; EMSGSIZE when len exceeds SANDBOX_FRAME_MAX. */
int sandbox_frame_write(int fd, const char *body, size_t len);
/* Reads one whole frame from a blocking descriptor. On READY *body is malloc'd (NUL-terminated)
 * and owned by the caller. EOF only when the peer closed before the first byte. */
sandbox_frame_result_t sandbox_frame_read(int fd, char **body, size_t *body_len);

#endif
