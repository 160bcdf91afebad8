/*
 * test_mcp_content.c - unit tests for the CallToolResult mapping (src/mcp/content.c): each
 * content block type, several blocks, structuredContent with and without text, isError, and
 * the Chat Completions and Responses shapes. The inputs follow the MCP 2025-06-18 schema
 * shapes, as server-everything sends them (echo, get-tiny-image, get-resource-reference,
 * get-resource-links, get-structured-content).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mcp/content.h"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (j == NULL)
        fail_msg("bad test JSON: %s", err.text);
    return j;
}

/* The text for a result given as JSON text; checks is_error too. */
static void check_text(const char *result, const char *want, bool want_error)
{
    json_t *r = parse(result);
    bool is_error = !want_error;
    char *got = mcp_content_text(r, &is_error);
    assert_string_equal(got, want);
    assert_int_equal(is_error, want_error);
    free(got);
    json_decref(r);
}

static void test_text(void **state)
{
    check_text("{\"content\":[{\"type\":\"text\",\"text\":\"Echo: hello\"}]}", "Echo: hello",
               false);
    /* several blocks are joined with newlines, in order */
    check_text("{\"content\":[{\"type\":\"text\",\"text\":\"one\"},"
               "{\"type\":\"text\",\"text\":\"two\\nlines\"}]}",
               "one\ntwo\nlines", false);
    /* unicode passes unchanged */
    check_text("{\"content\":[{\"type\":\"text\",\"text\":\"h\\u00e9llo \\u2603\"}]}",
               "h\xc3\xa9llo \xe2\x98\x83", false);
    /* nothing at all */
    check_text("{\"content\":[]}", "", false);
    check_text("{}", "", false);
}

static void test_image_and_audio(void **state)
{
    /* 8 base64 characters with one '=' of padding = 5 bytes */
    check_text("{\"content\":[{\"type\":\"text\",\"text\":\"A tiny image:\"},"
               "{\"type\":\"image\",\"data\":\"iVBORw0=\",\"mimeType\":\"image/png\"},"
               "{\"type\":\"text\",\"text\":\"The image above is the MCP logo.\"}]}",
               "A tiny image:\n[image: image/png, 5 bytes]\nThe image above is the MCP logo.",
               false);
    check_text(
        "{\"content\":[{\"type\":\"audio\",\"data\":\"AAAAAAAA\",\"mimeType\":\"audio/wav\"}]}",
        "[audio: audio/wav, 6 bytes]", false);
    /* a broken block is described, not refused */
    check_text("{\"content\":[{\"type\":\"image\"}]}", "[image: ?, 0 bytes]", false);
}

static void test_resources(void **state)
{
    check_text("{\"content\":[{\"type\":\"resource\",\"resource\":{\"uri\":"
               "\"demo://resource/dynamic/text/1\",\"mimeType\":\"text/plain\","
               "\"text\":\"Resource 1: plain text\"}}]}",
               "[resource: demo://resource/dynamic/text/1 (text/plain)]\nResource 1: plain text",
               false);
    check_text("{\"content\":[{\"type\":\"resource\",\"resource\":{\"uri\":\"demo://b/2\","
               "\"mimeType\":\"application/octet-stream\",\"blob\":\"AAAA\"}}]}",
               "[resource: demo://b/2 (application/octet-stream), 3 bytes]", false);
    check_text("{\"content\":[{\"type\":\"resource_link\",\"uri\":\"demo://r/3\",\"name\":\"r3\","
               "\"mimeType\":\"text/plain\",\"description\":\"the third\"}]}",
               "[resource link: r3 demo://r/3 (text/plain): the third]", false);
    check_text("{\"content\":[{\"type\":\"resource_link\",\"uri\":\"demo://r/4\"}]}",
               "[resource link: demo://r/4]", false);
    check_text("{\"content\":[{\"type\":\"hologram\"}]}", "[hologram content]", false);
}

static void test_structured(void **state)
{
    /* with a text block, structuredContent is not repeated */
    check_text("{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"t\\\":22}\"}],"
               "\"structuredContent\":{\"t\":22}}",
               "{\"t\":22}", false);
    /* without one, its compact JSON is the content */
    check_text("{\"content\":[],\"structuredContent\":{\"temperature\":22.5,\"conditions\":"
               "\"Partly cloudy\"}}",
               "{\"temperature\":22.5,\"conditions\":\"Partly cloudy\"}", false);
    /* ... after any other parts */
    check_text("{\"content\":[{\"type\":\"image\",\"data\":\"AAAA\",\"mimeType\":\"image/gif\"}],"
               "\"structuredContent\":[1,2]}",
               "[image: image/gif, 3 bytes]\n[1,2]", false);
    check_text("{\"structuredContent\":null}", "", false);
}

static void test_is_error(void **state)
{
    check_text("{\"content\":[{\"type\":\"text\",\"text\":\"MCP error -32602: bad path\"}],"
               "\"isError\":true}",
               "Error: MCP error -32602: bad path", true);
    check_text("{\"content\":[{\"type\":\"text\",\"text\":\"fine\"}],\"isError\":false}", "fine",
               false);
    check_text("{\"content\":[],\"isError\":true}", "Error: ", true);
    /* is_error may be NULL */
    json_t *r = parse("{\"content\":[{\"type\":\"text\",\"text\":\"x\"}],\"isError\":true}");
    char *t = mcp_content_text(r, NULL);
    assert_string_equal(t, "Error: x");
    free(t);
    json_decref(r);
}

static void test_tool_message(void **state)
{
    json_t *r = parse("{\"content\":[{\"type\":\"text\",\"text\":\"Echo: hi\"}]}");
    bool is_error = true;
    json_t *msg = mcp_content_tool_message(r, "call_abc", &is_error);
    assert_false(is_error);
    assert_int_equal(json_object_size(msg), 3);
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "tool");
    assert_string_equal(json_string_value(json_object_get(msg, "tool_call_id")), "call_abc");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "Echo: hi");
    json_decref(msg);
    json_decref(r);
}

static void test_responses_output(void **state)
{
    json_t *r = parse("{\"content\":[{\"type\":\"text\",\"text\":\"no such file\"}],"
                      "\"isError\":true}");
    bool is_error = false;
    json_t *item = mcp_content_responses_output(r, "call_9", &is_error);
    assert_true(is_error);
    assert_int_equal(json_object_size(item), 3);
    assert_string_equal(json_string_value(json_object_get(item, "type")), "function_call_output");
    assert_string_equal(json_string_value(json_object_get(item, "call_id")), "call_9");
    assert_string_equal(json_string_value(json_object_get(item, "output")), "Error: no such file");
    json_decref(item);
    json_decref(r);
}

static void test_base64_size(void **state)
{
    assert_int_equal(mcp_content_base64_size(""), 0);
    assert_int_equal(mcp_content_base64_size(NULL), 0);
    assert_int_equal(mcp_content_base64_size("AA=="), 1);
    assert_int_equal(mcp_content_base64_size("AAA="), 2);
    assert_int_equal(mcp_content_base64_size("AAAA"), 3);
    assert_int_equal(mcp_content_base64_size("AAAA\nAAAA"), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_image_and_audio),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_structured),
        cmocka_unit_test(test_is_error),
        cmocka_unit_test(test_tool_message),
        cmocka_unit_test(test_responses_output),
        cmocka_unit_test(test_base64_size),
    };
    return cmocka_run_group_tests_name("mcp_content", tests, NULL, NULL);
}
