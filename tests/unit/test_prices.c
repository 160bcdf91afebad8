/*
 * test_prices.c - unit tests for the price table and cost computation (src/telemetry/prices.c).
 *
 * Expected values are written out by hand from the table's USD-per-million prices, so a change
 * to a shipped price shows up here as a failing test to update on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>

#include <cmocka.h>

#include "config/config.h"
#include "telemetry/prices.h"

#define EPS 1e-12

/* cmocka 1.1's float assertion compares floats; prices need doubles. */
#define assert_near(got, want, eps) near_impl((got), (want), (eps), __FILE__, __LINE__)

static void near_impl(double got, double want, double eps, const char *file, int line)
{
    if (fabs(got - want) <= eps)
        return;
    print_error("%.15g is not %.15g (within %g)\n", got, want, eps);
    _fail(file, line);
}

static void assert_price(const config_t *cfg, const char *provider, const char *model, double input,
                         double output, double cached)
{
    prices_entry_t p;
    assert_true(prices_find(cfg, provider, model, &p));
    assert_near(p.input, input, EPS);
    assert_near(p.output, output, EPS);
    assert_near(p.cached_input, cached, EPS);
}

static void assert_unknown(const config_t *cfg, const char *provider, const char *model)
{
    prices_entry_t p;
    assert_false(prices_find(cfg, provider, model, &p));
    assert_near(prices_cost(cfg, provider, model, 1000, 1000, 0), -1, EPS);
}

static void test_exact_names(void **state)
{
    assert_price(NULL, "openai", "gpt-4o", 2.50, 10.00, 1.25);
    assert_price(NULL, "openai", "gpt-4o-mini", 0.15, 0.60, 0.075);
    assert_price(NULL, "openai", "gpt-4.1-nano", 0.10, 0.40, 0.025);
    assert_price(NULL, "openai", "o3", 2.00, 8.00, 0.50);
    assert_price(NULL, "openai", "o3-mini", 1.10, 4.40, 0.55);
    assert_price(NULL, "openai", "gpt-5", 1.25, 10.00, 0.125);
    assert_price(NULL, "anthropic", "claude-sonnet-4-5", 3.00, 15.00, 0.30);
    assert_price(NULL, "anthropic", "claude-haiku-4-5", 1.00, 5.00, 0.10);
    assert_price(NULL, "groq", "llama-3.3-70b-versatile", 0.59, 0.79, 0.59);
    assert_price(NULL, "mistral", "mistral-small", 0.10, 0.30, 0.10);
    assert_price(NULL, "deepseek", "deepseek-chat", 0.28, 0.42, 0.028);
}

/* Dated and aliased names find their family; the longest prefix wins, so the cheaper "-mini"
 * models never take the big model's price or the other way round. */
static void test_longest_prefix(void **state)
{
    assert_price(NULL, "openai", "gpt-4o-2024-08-06", 2.50, 10.00, 1.25);
    assert_price(NULL, "openai", "gpt-4o-mini-2024-07-18", 0.15, 0.60, 0.075);
    assert_price(NULL, "openai", "gpt-4o-2024-05-13", 5.00, 15.00, 5.00);
    assert_price(NULL, "openai", "gpt-4.1-mini-2025-04-14", 0.40, 1.60, 0.10);
    assert_price(NULL, "openai", "gpt-5-mini-2025-08-07", 0.25, 2.00, 0.025);
    assert_price(NULL, "openai", "o4-mini-2025-04-16", 1.10, 4.40, 0.275);
    assert_price(NULL, "anthropic", "claude-sonnet-4-5-20250929", 3.00, 15.00, 0.30);
    assert_price(NULL, "anthropic", "claude-opus-4-1-20250805", 15.00, 75.00, 1.50);
    assert_price(NULL, "anthropic", "claude-opus-4-5-20251101", 5.00, 25.00, 0.50);
    assert_price(NULL, "anthropic", "claude-opus-4-20250514", 15.00, 75.00, 1.50);
    assert_price(NULL, "anthropic", "claude-3-5-haiku-latest", 0.80, 4.00, 0.08);
    assert_price(NULL, "mistral", "mistral-large-latest", 2.00, 6.00, 2.00);
    assert_price(NULL, "mistral", "mistral-small-2506", 0.10, 0.30, 0.10);
}

/* A prefix that does not end at a separator is a different model. */
static void test_boundaries(void **state)
{
    /* "gpt-4" is a prefix of "gpt-4o" but must not give gpt-4o gpt-4's price. */
    assert_price(NULL, "openai", "gpt-4-0613", 30.00, 60.00, 30.00);
    assert_unknown(NULL, "openai", "gpt-4x");
    assert_unknown(NULL, "openai", "o3x");
    assert_unknown(NULL, "openai", "gpt-");
    assert_unknown(NULL, "openai", "");
    /* The model is priced per provider: the same name elsewhere is unknown. */
    assert_unknown(NULL, "openrouter", "gpt-4o");
    assert_unknown(NULL, "nosuch", "gpt-4o");
    assert_unknown(NULL, NULL, "gpt-4o");
    assert_unknown(NULL, "openai", NULL);
}

static void test_cost(void **state)
{
    /* gpt-4o: 1M uncached in at 2.50 + 0.5M cached at 1.25 + 0.2M out at 10 = 2.5+0.625+2 */
    assert_near(prices_cost(NULL, "openai", "gpt-4o", 1500000, 200000, 500000), 5.125, 1e-9);
    /* Small numbers: 1000 in, 500 out on claude-haiku-4-5 = 0.001 + 0.0025 */
    assert_near(prices_cost(NULL, "anthropic", "claude-haiku-4-5", 1000, 500, 0), 0.0035, 1e-12);
    /* No cached price: cached tokens cost the input price. */
    assert_near(prices_cost(NULL, "groq", "llama-3.1-8b-instant", 2000000, 0, 1000000), 0.10,
                1e-12);
    /* Zero tokens cost zero, not "unknown". */
    assert_near(prices_cost(NULL, "openai", "gpt-4o", 0, 0, 0), 0, EPS);
    /* Odd counts are clamped: more cached than prompt tokens, negative numbers. */
    assert_near(prices_cost(NULL, "openai", "gpt-4o", 1000000, -5, 3000000), 1.25, 1e-12);
    assert_near(prices_cost(NULL, "openai", "gpt-4o", -1, -1, -1), 0, EPS);
}

static void test_overrides(void **state)
{
    json_error_t jerr;
    config_t cfg = {0};
    cfg.prices = json_loads("{\"openai/gpt-4o\": {\"input\": 1, \"output\": 2, "
                            "\"cached_input\": 0.5},"
                            " \"mycorp/llama-local\": {\"input\": 0.2, \"output\": 0.4},"
                            " \"openai/gpt-4o-mini\": {\"output\": 3}}",
                            0, &jerr);
    assert_non_null(cfg.prices);

    /* An exact key overrides the shipped entry. */
    assert_price(&cfg, "openai", "gpt-4o", 1, 2, 0.5);
    assert_near(prices_cost(&cfg, "openai", "gpt-4o", 3000000, 1000000, 1000000),
                2 * 1 + 1 * 0.5 + 1 * 2, 1e-9);
    /* A provider the shipped table does not know. */
    assert_price(&cfg, "mycorp", "llama-local", 0.2, 0.4, 0.2);
    /* An override replaces the whole entry: missing input is 0, cached follows input. */
    assert_price(&cfg, "openai", "gpt-4o-mini", 0, 3, 0);
    /* Overrides match exactly: a dated name still takes the shipped price. */
    assert_price(&cfg, "openai", "gpt-4o-2024-08-06", 2.50, 10.00, 1.25);
    assert_unknown(&cfg, "mycorp", "llama-local-v2");
    /* Models without an override keep the shipped price. */
    assert_price(&cfg, "openai", "o3", 2.00, 8.00, 0.50);

    json_decref(cfg.prices);
}

/* Overrides as the configuration loader produces them, from the documented JSON shape. */
static void test_overrides_from_config(void **state)
{
    json_error_t jerr;
    json_t *root = json_loads("{\"logs\": {\"prices\": {\"deepseek/deepseek-chat\": "
                              "{\"input\": 0.5, \"output\": 1.5, \"cached_input\": 0.05}}}}",
                              0, &jerr);
    assert_non_null(root);
    config_report_t report;
    config_report_init(&report);
    config_t *cfg = config_load_json(root, "test", &report);
    assert_non_null(cfg);
    assert_int_equal(report.n_errors, 0);

    assert_price(cfg, "deepseek", "deepseek-chat", 0.5, 1.5, 0.05);
    assert_near(prices_cost(cfg, "deepseek", "deepseek-chat", 2000000, 1000000, 1000000),
                0.5 + 0.05 + 1.5, 1e-9);

    config_release(cfg);
    config_report_free(&report);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_names), cmocka_unit_test(test_longest_prefix),
        cmocka_unit_test(test_boundaries),  cmocka_unit_test(test_cost),
        cmocka_unit_test(test_overrides),   cmocka_unit_test(test_overrides_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
