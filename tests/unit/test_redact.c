/*
 * test_redact.c - secrets never printed: redacted forms, header names, scrubbing messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/redact.h"

static void test_secret_forms(void **state)
{
    char out[64];
    redact_secret("sk-proj-abcdefghijklmnop", out, sizeof(out));
    assert_string_equal(out, "sk-p...(24)");
    redact_secret("short", out, sizeof(out));
    assert_string_equal(out, "***(5)");
    redact_secret(NULL, out, sizeof(out));
    assert_string_equal(out, "***(0)");
}

static void test_secret_headers(void **state)
{
    assert_true(redact_is_secret_header("Authorization"));
    assert_true(redact_is_secret_header("x-api-key"));
    assert_true(redact_is_secret_header("X-Goog-Api-Key"));
    assert_false(redact_is_secret_header("content-type"));
}

static void test_scrub(void **state)
{
    char msg[128] =
        "Incorrect API key provided: sk-test-0123456789abcdef. Again sk-test-0123456789abcdef!";
    redact_scrub(msg, sizeof(msg), "sk-test-0123456789abcdef");
    assert_string_equal(msg, "Incorrect API key provided: sk-t...(24). Again sk-t...(24)!");

    char mid[32] = "key=abcdefghij end";
    redact_scrub(mid, sizeof(mid), "abcdefghij");
    assert_string_equal(mid, "key=***(10) end");

    /* short secrets would match ordinary words and are left alone */
    char plain[32] = "the key is abc";
    redact_scrub(plain, sizeof(plain), "abc");
    assert_string_equal(plain, "the key is abc");

    char none[32] = "nothing here";
    redact_scrub(none, sizeof(none), NULL);
    assert_string_equal(none, "nothing here");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_forms),
        cmocka_unit_test(test_secret_headers),
        cmocka_unit_test(test_scrub),
    };
    return cmocka_run_group_tests_name("redact", tests, NULL, NULL);
}
