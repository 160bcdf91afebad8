/*
 * test_jsonrpc.c - unit tests for JSON-RPC 2.0 parsing, classification and building
 * (src/mcp/jsonrpc.c).
 *
 * Every kind and every invalid shape is fed as text through jsonrpc_parse, as it would arrive
 * from a peer, and the classification, the fields it points at and the reason are checked.
 * The builders are checked against the exact JSON they must produce (compared as trees, so
 * member order does not matter), and by a round trip through the parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mcp/jsonrpc.h"
#include "util/alloc.h"

/* ---- helpers --------------------------------------------------------------------------------- */

/* Parses a one-message document; fails the test when the document itself is refused. */
static jsonrpc_batch_t parse_one(const char *text)
{
    jsonrpc_batch_t b;
    char err[160] = "";
    int rc = jsonrpc_parse(text, strlen(text), &b, err, sizeof(err));
    if (rc != 0)
        fail_msg("%s: refused with %d (%s)", text, rc, err);
    assert_false(b.is_batch);
    assert_int_equal(b.count, 1);
    return b;
}

static jsonrpc_kind_t kind_of(const char *text)
{
    jsonrpc_batch_t b = parse_one(text);
    jsonrpc_kind_t k = b.msgs[0].kind;
    jsonrpc_batch_free(&b);
    return k;
}

/* The message is invalid, and its reason contains want. */
static void expect_invalid(const char *text, const char *want)
{
    jsonrpc_batch_t b = parse_one(text);
    const jsonrpc_msg_t *m = &b.msgs[0];
    if (m->kind != JSONRPC_INVALID)
        fail_msg("%s: classified %s, expected invalid", text, jsonrpc_kind_name(m->kind));
    assert_non_null(m->invalid_reason);
    if (strstr(m->invalid_reason, want) == NULL)
        fail_msg("%s: reason \"%s\" lacks \"%s\"", text, m->invalid_reason, want);
    jsonrpc_batch_free(&b);
}

static void assert_json(json_t *got, const char *want_text)
{
    json_error_t jerr;
    json_t *want = json_loads(want_text, 0, &jerr);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("got %s, want %s", g, want_text);
    }
    json_decref(want);
    json_decref(got);
}

/* ---- classification -------------------------------------------------------------------------- */

static void test_request(void **state)
{
    jsonrpc_batch_t b =
        parse_one("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{\"a\":1}}");
    const jsonrpc_msg_t *m = &b.msgs[0];
    assert_int_equal(m->kind, JSONRPC_REQUEST);
    assert_string_equal(m->method, "tools/list");
    assert_int_equal(json_integer_value(m->id), 7);
    assert_int_equal(json_integer_value(json_object_get(m->params, "a")), 1);
    assert_null(m->result);
    jsonrpc_batch_free(&b);

    b = parse_one("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"ping\"}");
    assert_int_equal(b.msgs[0].kind, JSONRPC_REQUEST);
    assert_string_equal(json_string_value(b.msgs[0].id), "abc");
    assert_null(b.msgs[0].params);
    jsonrpc_batch_free(&b);

    /* Array params are JSON-RPC; null params are read as absent. */
    b = parse_one("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[1,2]}");
    assert_int_equal(b.msgs[0].kind, JSONRPC_REQUEST);
    assert_int_equal(json_array_size(b.msgs[0].params), 2);
    jsonrpc_batch_free(&b);
    b = parse_one("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":null}");
    assert_int_equal(b.msgs[0].kind, JSONRPC_REQUEST);
    assert_null(b.msgs[0].params);
    jsonrpc_batch_free(&b);

    /* Negative and zero ids are ids. */
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":-3,\"method\":\"m\"}"), JSONRPC_REQUEST);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"m\"}"), JSONRPC_REQUEST);
}

static void test_notification(void **state)
{
    jsonrpc_batch_t b = parse_one(
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}");
    const jsonrpc_msg_t *m = &b.msgs[0];
    assert_int_equal(m->kind, JSONRPC_NOTIFICATION);
    assert_null(m->id);
    assert_string_equal(m->method, "notifications/progress");
    assert_non_null(m->params);
    jsonrpc_batch_free(&b);
}

static void test_responses(void **state)
{
    jsonrpc_batch_t b = parse_one("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[]}}");
    assert_int_equal(b.msgs[0].kind, JSONRPC_RESPONSE);
    assert_int_equal(json_integer_value(b.msgs[0].id), 3);
    assert_true(json_is_array(json_object_get(b.msgs[0].result, "tools")));
    jsonrpc_batch_free(&b);

    /* A null result is a result. */
    b = parse_one("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":null}");
    assert_int_equal(b.msgs[0].kind, JSONRPC_RESPONSE);
    assert_true(json_is_null(b.msgs[0].result));
    jsonrpc_batch_free(&b);

    b = parse_one("{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32602,\"message\":\"bad\","
                  "\"data\":{\"field\":\"name\"}}}");
    const jsonrpc_msg_t *m = &b.msgs[0];
    assert_int_equal(m->kind, JSONRPC_ERROR);
    assert_int_equal(m->error_code, JSONRPC_INVALID_PARAMS);
    assert_string_equal(m->error_message, "bad");
    assert_string_equal(json_string_value(json_object_get(m->error_data, "field")), "name");
    jsonrpc_batch_free(&b);

    /* The peer could not read our id: an error with a null id is still an error response. */
    b = parse_one(
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\"}}");
    assert_int_equal(b.msgs[0].kind, JSONRPC_ERROR);
    assert_true(json_is_null(b.msgs[0].id));
    assert_null(b.msgs[0].error_data);
    jsonrpc_batch_free(&b);
}

static void test_invalid_shapes(void **state)
{
    expect_invalid("{\"id\":1,\"method\":\"m\"}", "\"jsonrpc\" must be \"2.0\"");
    expect_invalid("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"m\"}", "\"2.0\"");
    expect_invalid("{\"jsonrpc\":2.0,\"id\":1,\"method\":\"m\"}", "\"2.0\"");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", "\"method\" must be a string");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"result\":1}", "cannot carry");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":\"x\"}",
                   "\"params\" must be an object or an array");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"m\"}", "string or an integer");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"m\"}", "string or an integer");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"m\"}", "string or an integer");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{}}", "both");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"result\":1}", "response id");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":1}", "response id");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"oops\"}", "must be an object");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"m\"}}", "needs an id");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,\"message\":\"m\"}}",
                   "error.code");
    expect_invalid(
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":99999999999,\"message\":\"m\"}}",
        "error.code");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}", "error.message");
    expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1}", "neither");

    /* An invalid message keeps its id when it has a usable one, for the -32600 answer. */
    jsonrpc_batch_t b = parse_one("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":7}");
    assert_int_equal(b.msgs[0].kind, JSONRPC_INVALID);
    assert_int_equal(json_integer_value(b.msgs[0].id), 9);
    json_t *answer = jsonrpc_error_for_invalid(&b.msgs[0]);
    jsonrpc_batch_free(&b);
    json_t *err = json_object_get(answer, "error");
    assert_int_equal(json_integer_value(json_object_get(err, "code")), JSONRPC_INVALID_REQUEST);
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "\"method\""));
    assert_int_equal(json_integer_value(json_object_get(answer, "id")), 9);
    json_decref(answer);

    b = parse_one("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"m\"}");
    assert_null(b.msgs[0].id);
    answer = jsonrpc_error_for_invalid(&b.msgs[0]);
    assert_true(json_is_null(json_object_get(answer, "id")));
    json_decref(answer);
    jsonrpc_batch_free(&b);
}

/* ---- documents ------------------------------------------------------------------------------- */

static void test_batches(void **state)
{
    const char *text = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"},"
                       " {\"jsonrpc\":\"2.0\",\"method\":\"b\"},"
                       " {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}},"
                       " 42,"
                       " {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-1,\"message\":\"e\"}}]";
    jsonrpc_batch_t b;
    assert_int_equal(jsonrpc_parse(text, strlen(text), &b, NULL, 0), 0);
    assert_true(b.is_batch);
    assert_int_equal(b.count, 5);
    assert_int_equal(b.msgs[0].kind, JSONRPC_REQUEST);
    assert_int_equal(b.msgs[1].kind, JSONRPC_NOTIFICATION);
    assert_int_equal(b.msgs[2].kind, JSONRPC_RESPONSE);
    assert_int_equal(b.msgs[3].kind, JSONRPC_INVALID);
    assert_non_null(strstr(b.msgs[3].invalid_reason, "JSON object"));
    assert_int_equal(b.msgs[4].kind, JSONRPC_ERROR);
    jsonrpc_batch_free(&b);
    assert_null(b.msgs);
    assert_null(b.root);
}

static void test_document_errors(void **state)
{
    jsonrpc_batch_t b;
    char err[160];
    const char *cases[][2] = {
        {"", "not JSON"},
        {"{\"jsonrpc\":", "not JSON"},
        {"this is not json", "not JSON"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"m\"}", "not JSON"},
        {"[]", "empty batch"},
        {"42", "neither a message nor a batch"},
        {"\"text\"", "neither a message nor a batch"},
    };
    const int codes[] = {JSONRPC_PARSE_ERROR,    JSONRPC_PARSE_ERROR,     JSONRPC_PARSE_ERROR,
                         JSONRPC_PARSE_ERROR,    JSONRPC_INVALID_REQUEST, JSONRPC_INVALID_REQUEST,
                         JSONRPC_INVALID_REQUEST};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        err[0] = '\0';
        int rc = jsonrpc_parse(cases[i][0], strlen(cases[i][0]), &b, err, sizeof(err));
        if (rc != codes[i] || strstr(err, cases[i][1]) == NULL)
            fail_msg("%s: got %d \"%s\", want %d \"%s\"", cases[i][0], rc, err, codes[i],
                     cases[i][1]);
        assert_null(b.root);
        assert_int_equal(b.count, 0);
    }

    /* The reason never quotes the input: it may hold a secret a broken peer echoed. */
    const char *secret = "{\"token\": sk-secret-value}";
    assert_int_equal(jsonrpc_parse(secret, strlen(secret), &b, err, sizeof(err)),
                     JSONRPC_PARSE_ERROR);
    assert_null(strstr(err, "sk-secret"));
    assert_non_null(strstr(err, "line 1"));

    /* No NUL terminator needed: only len bytes are read. */
    const char *padded = "{\"jsonrpc\":\"2.0\",\"method\":\"m\"}GARBAGE";
    assert_int_equal(jsonrpc_parse(padded, strlen(padded) - 7, &b, NULL, 0), 0);
    assert_int_equal(b.msgs[0].kind, JSONRPC_NOTIFICATION);
    jsonrpc_batch_free(&b);
}

/* ---- building -------------------------------------------------------------------------------- */

static void test_builders(void **state)
{
    assert_json(
        jsonrpc_request(json_integer(5), "tools/call", json_pack("{s:s}", "name", "x")),
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}");
    assert_json(jsonrpc_request(json_string("a"), "ping", NULL),
                "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"ping\"}");
    assert_json(jsonrpc_notification("notifications/initialized", NULL),
                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    assert_json(jsonrpc_notification("n", json_pack("{s:i}", "requestId", 3)),
                "{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":{\"requestId\":3}}");

    json_t *id = json_string("req-1");
    assert_json(jsonrpc_result(id, NULL), "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"result\":{}}");
    assert_json(jsonrpc_result(id, json_pack("{s:b}", "ok", 1)),
                "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"result\":{\"ok\":true}}");
    assert_json(jsonrpc_error(id, JSONRPC_METHOD_NOT_FOUND, NULL, NULL),
                "{\"jsonrpc\":\"2.0\",\"id\":\"req-1\",\"error\":{\"code\":-32601,"
                "\"message\":\"Method not found\"}}");
    assert_json(jsonrpc_error(NULL, JSONRPC_PARSE_ERROR, "bad bytes", json_integer(3)),
                "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                "\"message\":\"bad bytes\",\"data\":3}}");
    /* id is copied, not taken */
    assert_int_equal(id->refcount, 1);
    json_decref(id);
}

static void test_round_trip(void **state)
{
    json_t *id = json_integer(11); /* copied by result and error, stolen by request */
    json_t *msgs[] = {
        jsonrpc_result(id, json_pack("{s:[]}", "content")),
        jsonrpc_error(id, JSONRPC_INTERNAL_ERROR, NULL, NULL),
        jsonrpc_request(id, "tools/call", json_pack("{s:s}", "name", "echo")),
        jsonrpc_notification("notifications/cancelled", json_pack("{s:i}", "requestId", 11)),
    };
    const jsonrpc_kind_t kinds[] = {JSONRPC_RESPONSE, JSONRPC_ERROR, JSONRPC_REQUEST,
                                    JSONRPC_NOTIFICATION};
    for (size_t i = 0; i < 4; i++) {
        size_t len = 0;
        char *text = jsonrpc_dump(msgs[i], &len);
        assert_non_null(text);
        assert_int_equal(len, strlen(text));
        assert_null(strchr(text, '\n')); /* fits newline-delimited framing */
        assert_int_equal(kind_of(text), kinds[i]);
        free(text);
        json_decref(msgs[i]);
    }
}

static void test_ids_and_texts(void **state)
{
    json_t *one = json_integer(1), *one_b = json_integer(1), *s1 = json_string("1"),
           *s1_b = json_string("1"), *two = json_integer(2), *real = json_real(1.0);
    assert_true(jsonrpc_id_equal(one, one_b));
    assert_true(jsonrpc_id_equal(s1, s1_b));
    assert_false(jsonrpc_id_equal(one, s1));
    assert_false(jsonrpc_id_equal(one, two));
    assert_false(jsonrpc_id_equal(NULL, NULL));
    assert_false(jsonrpc_id_equal(one, NULL));
    assert_true(jsonrpc_id_valid(one));
    assert_true(jsonrpc_id_valid(s1));
    assert_false(jsonrpc_id_valid(real));
    assert_false(jsonrpc_id_valid(json_null()));
    assert_false(jsonrpc_id_valid(NULL));
    json_t *all[] = {one, one_b, s1, s1_b, two, real};
    for (size_t i = 0; i < 6; i++)
        json_decref(all[i]);

    assert_string_equal(jsonrpc_error_text(-32700), "Parse error");
    assert_string_equal(jsonrpc_error_text(-32600), "Invalid Request");
    assert_string_equal(jsonrpc_error_text(-32601), "Method not found");
    assert_string_equal(jsonrpc_error_text(-32602), "Invalid params");
    assert_string_equal(jsonrpc_error_text(-32603), "Internal error");
    assert_string_equal(jsonrpc_error_text(-32000), "Server error");
    assert_string_equal(jsonrpc_error_text(-32099), "Server error");
    assert_string_equal(jsonrpc_error_text(-32100), "Error");
    assert_string_equal(jsonrpc_error_text(42), "Error");

    assert_string_equal(jsonrpc_kind_name(JSONRPC_REQUEST), "request");
    assert_string_equal(jsonrpc_kind_name(JSONRPC_NOTIFICATION), "notification");
    assert_string_equal(jsonrpc_kind_name(JSONRPC_RESPONSE), "response");
    assert_string_equal(jsonrpc_kind_name(JSONRPC_ERROR), "error response");
    assert_string_equal(jsonrpc_kind_name(JSONRPC_INVALID), "invalid message");
}

int main(void)
{
    alloc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request),       cmocka_unit_test(test_notification),
        cmocka_unit_test(test_responses),     cmocka_unit_test(test_invalid_shapes),
        cmocka_unit_test(test_batches),       cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_builders),      cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_ids_and_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
