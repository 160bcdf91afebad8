/*
 * test_router.c - routing decisions: model names, weighted key choice, backoff, classification.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/router.h"

static char *models_4o[] = {"gpt-4o"};

static config_key_t keys[] = {
    {.name = "a", .value = "ka", .models = NULL, .n_models = 0, .weight = 1.0},
    {.name = "b", .value = "kb", .models = models_4o, .n_models = 1, .weight = 3.0},
};

static config_provider_t providers[] = {
    {.name = "openai", .keys = keys, .n_keys = 2, .max_retries = 2},
};

static config_t cfg = {.providers = providers, .n_providers = 1};

static void test_resolve_ok(void **state)
{
    router_target_t t;
    char msg[256];
    assert_int_equal(router_resolve(&cfg, "openai/gpt-4o-mini", &t, msg, sizeof(msg)), ROUTER_OK);
    assert_ptr_equal(t.provider, &providers[0]);
    assert_string_equal(t.model, "gpt-4o-mini");

    /* model names may themselves contain slashes (openrouter/meta-llama/...) */
    assert_int_equal(router_resolve(&cfg, "openai/org/model", &t, msg, sizeof(msg)), ROUTER_OK);
    assert_string_equal(t.model, "org/model");
}

static void test_resolve_errors(void **state)
{
    router_target_t t;
    char msg[256];
    assert_int_equal(router_resolve(&cfg, "gpt-4o", &t, msg, sizeof(msg)), ROUTER_BAD_NAME);
    assert_non_null(strstr(msg, "provider/model"));
    assert_int_equal(router_resolve(&cfg, "/gpt-4o", &t, msg, sizeof(msg)), ROUTER_BAD_NAME);
    assert_int_equal(router_resolve(&cfg, "openai/", &t, msg, sizeof(msg)), ROUTER_BAD_NAME);
    assert_int_equal(router_resolve(&cfg, "nope/x", &t, msg, sizeof(msg)), ROUTER_UNKNOWN_PROVIDER);
    assert_non_null(strstr(msg, "'nope'"));
}

static void test_resolve_not_allowed(void **state)
{
    config_key_t only[] = {
        {.name = "b", .value = "kb", .models = models_4o, .n_models = 1, .weight = 1.0}};
    config_provider_t p = {.name = "openai", .keys = only, .n_keys = 1};
    config_t c = {.providers = &p, .n_providers = 1};
    router_target_t t;
    char msg[256];
    assert_int_equal(router_resolve(&c, "openai/gpt-3.5", &t, msg, sizeof(msg)),
                     ROUTER_MODEL_NOT_ALLOWED);
    assert_non_null(strstr(msg, "gpt-3.5"));
}

static void test_pick_key_weights(void **state)
{
    /* For gpt-4o both keys are eligible with weights 1 and 3: r below 0.25 picks a. */
    assert_int_equal(router_pick_key(&providers[0], "gpt-4o", 0, 0.0), 0);
    assert_int_equal(router_pick_key(&providers[0], "gpt-4o", 0, 0.24), 0);
    assert_int_equal(router_pick_key(&providers[0], "gpt-4o", 0, 0.26), 1);
    assert_int_equal(router_pick_key(&providers[0], "gpt-4o", 0, 0.999999), 1);

    /* For another model only key a allows it. */
    assert_int_equal(router_pick_key(&providers[0], "o3", 0, 0.9), 0);

    /* Exclusions. */
    assert_int_equal(router_pick_key(&providers[0], "gpt-4o", 1u << 1, 0.9), 0);
    assert_int_equal(router_pick_key(&providers[0], "o3", 1u << 0, 0.1), -1);

    /* Over many draws the share follows the weights. */
    int count_b = 0;
    for (int i = 0; i < 1000; i++)
        count_b += router_pick_key(&providers[0], "gpt-4o", 0, (i + 0.5) / 1000.0) == 1;
    assert_int_equal(count_b, 750);
}

static void test_backoff(void **state)
{
    /* r = 0 gives the lower half bound, r -> 1 the full delay. */
    assert_int_equal(router_backoff_ms(1, 100, 2000, -1, 0.0), 50);
    assert_int_equal(router_backoff_ms(1, 100, 2000, -1, 0.999), 99);
    assert_int_equal(router_backoff_ms(2, 100, 2000, -1, 0.0), 100);
    assert_int_equal(router_backoff_ms(3, 100, 2000, -1, 0.0), 200);
    /* capped */
    assert_int_equal(router_backoff_ms(20, 100, 2000, -1, 0.0), 1000);
    assert_true(router_backoff_ms(20, 100, 2000, -1, 0.999) <= 2000);
    /* Retry-After wins when longer, still capped */
    assert_int_equal(router_backoff_ms(1, 100, 5000, 2, 0.0), 2000);
    assert_int_equal(router_backoff_ms(1, 100, 1500, 9, 0.0), 1500);
}

static void test_classify(void **state)
{
    assert_int_equal(router_classify(0), ROUTER_RETRY);
    assert_int_equal(router_classify(500), ROUTER_RETRY);
    assert_int_equal(router_classify(503), ROUTER_RETRY);
    assert_int_equal(router_classify(529), ROUTER_RETRY);
    assert_int_equal(router_classify(429), ROUTER_ROTATE_KEY);
    assert_int_equal(router_classify(401), ROUTER_DROP_KEY);
    assert_int_equal(router_classify(403), ROUTER_DROP_KEY);
    assert_int_equal(router_classify(400), ROUTER_FINAL);
    assert_int_equal(router_classify(404), ROUTER_FINAL);
    assert_int_equal(router_classify(422), ROUTER_FINAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_ok),
        cmocka_unit_test(test_resolve_errors),
        cmocka_unit_test(test_resolve_not_allowed),
        cmocka_unit_test(test_pick_key_weights),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_classify),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
