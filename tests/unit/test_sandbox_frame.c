/*
 * test_sandbox_frame.c - unit tests for the sandbox wire format's framing (src/sandbox/frame.c):
 * frames whole, split at every byte, several in one feed, empty, at and over the size limit,
 * how many bytes a reader may still take, and the blocking read and write over a socketpair
 * (short reads, a close between frames and in the middle of one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox/frame.h"

/* Appends a 4-byte big-endian length and the body to out; returns the new length. */
static size_t put_frame(unsigned char *out, size_t at, const char *body, size_t len)
{
    out[at] = (unsigned char)(len >> 24);
    out[at + 1] = (unsigned char)(len >> 16);
    out[at + 2] = (unsigned char)(len >> 8);
    out[at + 3] = (unsigned char)len;
    memcpy(out + at + 4, body, len);
    return at + 4 + len;
}

static void test_one_frame_whole(void **state)
{
    unsigned char wire[64];
    size_t n = put_frame(wire, 0, "{\"op\":\"ready\"}", 14);
    sandbox_frame_reader_t r;
    sandbox_frame_reader_init(&r);
    const char *body;
    size_t len;

    assert_int_equal(sandbox_frame_reader_next(&r, &body, &len), SANDBOX_FRAME_MORE);
    assert_int_equal(sandbox_frame_reader_feed(&r, wire, n), 0);
    assert_int_equal(sandbox_frame_reader_next(&r, &body, &len), SANDBOX_FRAME_READY);
    assert_int_equal(len, 14);
    assert_string_equal(body, "{\"op\":\"ready\"}");
    assert_int_equal(sandbox_frame_reader_next(&r, &body, &len), SANDBOX_FRAME_MORE);
    assert_false(sandbox_frame_reader_partial(&r));
    sandbox_frame_reader_free(&r);
}

static void test_split_at_every_byte(void **state)
{
    unsigned char wire[128];
    size_t n = put_frame(wire, 0, "abc", 3);
    n = put_frame(wire, n, "", 0);
    n = put_frame(wire, n, "{\"x\":[1,2,3]}", 13);
    static const char *const want[] = {"abc", "", "{\"x\":[1,2,3]}"};

    for (size_t split = 0; split <= n; split++) {
        sandbox_frame_reader_t r;
        sandbox_frame_reader_init(&r);
        size_t got = 0;
        const char *body;
        size_t len;
        assert_int_equal(sandbox_frame_reader_feed(&r, wire, split), 0);
        while (sandbox_frame_reader_next(&r, &body, &len) == SANDBOX_FRAME_READY) {
            assert_int_equal(len, strlen(want[got]));
            assert_memory_equal(body, want[got], len);
            got++;
        }
        assert_int_equal(sandbox_frame_reader_feed(&r, wire + split, n - split), 0);
        while (sandbox_frame_reader_next(&r, &body, &len) == SANDBOX_FRAME_READY) {
            assert_int_equal(len, strlen(want[got]));
            assert_memory_equal(body, want[got], len);
            got++;
        }
        assert_int_equal(got, 3);
        sandbox_frame_reader_free(&r);
    }
}

static void test_wanted_never_passes_a_frame(void **state)
{
    unsigned char wire[64];
    size_t n = put_frame(wire, 0, "hello", 5);
    n = put_frame(wire, n, "xy", 2);
    sandbox_frame_reader_t r;
    sandbox_frame_reader_init(&r);
    const char *body;
    size_t len, at = 0, frames = 0;

    /* Feeding exactly what the reader wants, it ends each frame at its last byte. */
    while (at < n) {
        size_t want = sandbox_frame_reader_wanted(&r);
        assert_true(want > 0 && at + want <= n);
        assert_int_equal(sandbox_frame_reader_feed(&r, wire + at, want), 0);
        at += want;
        if (sandbox_frame_reader_next(&r, &body, &len) == SANDBOX_FRAME_READY) {
            frames++;
            assert_int_equal(sandbox_frame_reader_partial(&r), 0);
        }
    }
    assert_int_equal(frames, 2);
    assert_int_equal(sandbox_frame_reader_wanted(&r), 4);
    sandbox_frame_reader_free(&r);
}

static void test_size_limit(void **state)
{
    sandbox_frame_reader_t r;
    sandbox_frame_reader_init(&r);
    const char *body;
    size_t len;
    size_t over = SANDBOX_FRAME_MAX + 1;
    unsigned char hdr[4] = {(unsigned char)(over >> 24), (unsigned char)(over >> 16),
                            (unsigned char)(over >> 8), (unsigned char)over};

    assert_int_equal(sandbox_frame_reader_feed(&r, hdr, 4), 0);
    assert_int_equal(sandbox_frame_reader_next(&r, &body, &len), SANDBOX_FRAME_ERROR);
    assert_int_equal(sandbox_frame_reader_wanted(&r), 0);
    /* Once failed, it stays failed. */
    assert_int_equal(sandbox_frame_reader_feed(&r, "x", 1), -1);
    assert_int_equal(sandbox_frame_reader_next(&r, &body, &len), SANDBOX_FRAME_ERROR);
    sandbox_frame_reader_free(&r);

    /* Exactly the limit is a length the reader accepts (it waits for the body). */
    size_t max = SANDBOX_FRAME_MAX;
    unsigned char ok[4] = {(unsigned char)(max >> 24), (unsigned char)(max >> 16),
                           (unsigned char)(max >> 8), (unsigned char)max};
    sandbox_frame_reader_init(&r);
    assert_int_equal(sandbox_frame_reader_feed(&r, ok, 4), 0);
    assert_int_equal(sandbox_frame_reader_next(&r, &body, &len), SANDBOX_FRAME_MORE);
    assert_int_equal(sandbox_frame_reader_wanted(&r), SANDBOX_FRAME_MAX);
    sandbox_frame_reader_free(&r);
}

static void test_many_small_frames_do_not_grow(void **state)
{
    sandbox_frame_reader_t r;
    sandbox_frame_reader_init(&r);
    unsigned char wire[16];
    size_t n = put_frame(wire, 0, "12345678", 8);
    const char *body;
    size_t len;
    for (int i = 0; i < 100000; i++) {
        assert_int_equal(sandbox_frame_reader_feed(&r, wire, n), 0);
        assert_int_equal(sandbox_frame_reader_next(&r, &body, &len), SANDBOX_FRAME_READY);
        assert_memory_equal(body, "12345678", 8);
    }
    assert_true(r.cap <= 4096);
    sandbox_frame_reader_free(&r);
}

static void test_blocking_write_and_read(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    size_t big_len = 200000;
    char *big = malloc(big_len);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        int rc = sandbox_frame_write(sv[1], "{}", 2) | sandbox_frame_write(sv[1], big, big_len);
        /* Then half a header: the reader must call it an error, not a frame or an EOF. */
        rc |= write(sv[1], "\0\0", 2) != 2;
        _exit(rc == 0 ? 0 : 1);
    }
    close(sv[1]);
    char *body;
    size_t len;
    assert_int_equal(sandbox_frame_read(sv[0], &body, &len), SANDBOX_FRAME_READY);
    assert_int_equal(len, 2);
    assert_string_equal(body, "{}");
    free(body);
    assert_int_equal(sandbox_frame_read(sv[0], &body, &len), SANDBOX_FRAME_READY);
    assert_int_equal(len, big_len);
    assert_memory_equal(body, big, big_len);
    free(body);
    assert_int_equal(sandbox_frame_read(sv[0], &body, &len), SANDBOX_FRAME_ERROR);
    close(sv[0]);
    free(big);
}

static void test_blocking_read_eof_and_oversize(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    unsigned char hdr[4] = {0x01, 0x00, 0x00, 0x01}; /* 16 MiB + 1 */
    assert_int_equal(write(sv[1], hdr, 4), 4);
    char *body;
    size_t len;
    assert_int_equal(sandbox_frame_read(sv[0], &body, &len), SANDBOX_FRAME_ERROR);
    close(sv[1]);
    close(sv[0]);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    assert_int_equal(sandbox_frame_read(sv[0], &body, &len), SANDBOX_FRAME_EOF);
    close(sv[0]);

    /* Writing over the limit is refused before a byte goes out. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(sandbox_frame_write(sv[1], "x", SANDBOX_FRAME_MAX + 1), -1);
    close(sv[1]);
    assert_int_equal(sandbox_frame_read(sv[0], &body, &len), SANDBOX_FRAME_EOF);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_frame_whole),
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_wanted_never_passes_a_frame),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_many_small_frames_do_not_grow),
        cmocka_unit_test(test_blocking_write_and_read),
        cmocka_unit_test(test_blocking_read_eof_and_oversize),
    };
    return cmocka_run_group_tests_name("sandbox_frame", tests, NULL, NULL);
}
