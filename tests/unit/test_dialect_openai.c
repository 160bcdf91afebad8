/*
 * test_dialect_openai.c - checks of inbound chat bodies and the OpenAI error shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dialects/openai.h"

static int parse(const char *text, dialect_chat_request_t *req, dialect_parse_error_t *err)
{
    return dialect_openai_parse_chat(text, strlen(text), req, err);
}

static void test_valid(void **state)
{
    dialect_chat_request_t req;
    dialect_parse_error_t err;
    const char *body = "{\"model\":\"openai/gpt-4o\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},"
                       "\"fallbacks\":[\"anthropic/claude-haiku-4-5\"],"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    assert_int_equal(parse(body, &req, &err), 0);
    assert_string_equal(req.model, "openai/gpt-4o");
    assert_true(req.stream);
    assert_true(req.include_usage);
    assert_int_equal(json_array_size(req.fallbacks), 1);
    assert_string_equal(json_string_value(json_array_get(req.fallbacks, 0)),
                        "anthropic/claude-haiku-4-5");
    /* gateway-only fields never reach a provider */
    assert_null(json_object_get(req.body, "fallbacks"));
    dialect_chat_request_free(&req);
}

static void test_malformed_json_has_position(void **state)
{
    dialect_chat_request_t req;
    dialect_parse_error_t err;
    assert_int_equal(parse("{\"model\": \"x\",\n  \"messages\": [}", &req, &err), 400);
    assert_string_equal(err.code, "invalid_json");
    assert_non_null(strstr(err.message, "line 2"));
    assert_non_null(strstr(err.message, "column"));
    dialect_chat_request_free(&req);
}

static void expect_error(const char *body, const char *param, const char *code)
{
    dialect_chat_request_t req;
    dialect_parse_error_t err;
    assert_int_equal(parse(body, &req, &err), 400);
    if (param == NULL)
        assert_null(err.param);
    else
        assert_string_equal(err.param, param);
    assert_string_equal(err.code, code);
    dialect_chat_request_free(&req);
}

static void test_field_errors(void **state)
{
    expect_error("[]", NULL, "invalid_type");
    expect_error("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model",
                 "missing_required_parameter");
    expect_error("{\"model\":\"a/b\"}", "messages", "missing_required_parameter");
    expect_error("{\"model\":7,\"messages\":[]}", "model", "invalid_type");
    expect_error("{\"model\":\"a/b\",\"messages\":[]}", "messages", "invalid_value");
    expect_error("{\"model\":\"a/b\",\"messages\":{}}", "messages", "invalid_type");
    expect_error("{\"model\":\"a/b\",\"messages\":[{\"role\":\"robot\"}]}", "messages",
                 "invalid_value");
    expect_error("{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],\"stream\":\"yes\"}",
                 "stream", "invalid_type");
    expect_error("{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],\"fallbacks\":\"c/d\"}",
                 "fallbacks", "invalid_type");
    expect_error("{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],\"fallbacks\":[1]}",
                 "fallbacks", "invalid_type");
}

static void test_error_shape(void **state)
{
    buf_t out = BUF_INIT;
    dialect_openai_error(&out, "bad \"thing\"", "invalid_request_error", "model", NULL);
    json_t *root = json_loads(out.data, 0, NULL);
    assert_non_null(root);
    json_t *e = json_object_get(root, "error");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "bad \"thing\"");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(e, "param")), "model");
    assert_true(json_is_null(json_object_get(e, "code")));
    json_decref(root);
    buf_free(&out);

    assert_string_equal(dialect_openai_error_type(401), "authentication_error");
    assert_string_equal(dialect_openai_error_type(429), "rate_limit_error");
    assert_string_equal(dialect_openai_error_type(502), "api_error");
    assert_string_equal(dialect_openai_error_type(413), "invalid_request_error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_malformed_json_has_position),
        cmocka_unit_test(test_field_errors),
        cmocka_unit_test(test_error_shape),
    };
    return cmocka_run_group_tests_name("dialect_openai", tests, NULL, NULL);
}
