/*
 * test_config.c - unit tests for configuration loading (src/config/).
 *
 * Files under tests/fixtures/config/ hold the larger documents (a full Bifrost-shaped file, a
 * file with one of each error, ...); small cases are inline JSON strings. Tests run with the
 * repository root as working directory, as `make unit` does.
 *
 * Problems are compared as one string per kind ("path\n" per problem, in report order), so a
 * failure prints the whole list on both sides. Every test starts from an environment with no
 * provider variable set (clear_env), because the machine running the tests may have real keys
 * exported, and those must neither change the outcome nor appear anywhere.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "config/check.h"
#include "config/config.h"
#include "util/buf.h"

#define FIXTURE(name) "tests/fixtures/config/" name

/* The secrets the tests put in the environment; no message may ever contain them. */
#define OPENAI_SECRET "sk-openai-test-1234567890"
#define ANTHROPIC_SECRET "sk-ant-test-abcdefghijkl"
#define TOGETHER_SECRET "tg-test-secret-0000"
#define NEWLINE_SECRET "sk-secret-value-with-newline"

/* ---- helpers --------------------------------------------------------------------------------- */

/* Unsets every variable config_from_env looks at, and the ones the fixtures use. */
static void clear_env(void)
{
    for (const config_known_provider_t *k = config_known_providers(); k->name != NULL; k++) {
        unsetenv(k->env_key);
        char var[96];
        size_t n = strlen(k->name);
        for (size_t i = 0; i < n; i++)
            var[i] = (char)(k->name[i] >= 'a' && k->name[i] <= 'z' ? k->name[i] - 32 : k->name[i]);
        strcpy(var + n, "_BASE_URL");
        unsetenv(var);
    }
    const char *ours[] = {"GH_TEST_OPENAI_KEY",  "GH_TEST_ANTHROPIC_KEY", "GH_TEST_TOGETHER_KEY",
                          "GH_TEST_MYCORP_KEY",  "GH_TEST_UNSET_VAR",     "GH_TEST_EMPTY_VAR",
                          "GH_TEST_NEWLINE_VAR", "GH_TEST_OPTIONAL_KEY"};
    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
        unsetenv(ours[i]);
}

static int setup(void **state)
{
    clear_env();
    return 0;
}

/* "path\n" for each problem of the given kind, in report order. Caller frees. */
static char *paths_of(const config_report_t *r, bool errors)
{
    buf_t out = BUF_INIT;
    for (size_t i = 0; i < r->count; i++) {
        if (r->items[i].is_error == errors)
            buf_appendf(&out, "%s\n", r->items[i].path);
    }
    return buf_release(&out);
}

static void assert_paths(const config_report_t *r, bool errors, const char *want)
{
    char *got = paths_of(r, errors);
    assert_string_equal(got, want);
    free(got);
}

/* The message of the first problem at path; fails the test when there is none. */
static const char *message_at(const config_report_t *r, const char *path)
{
    for (size_t i = 0; i < r->count; i++) {
        if (strcmp(r->items[i].path, path) == 0)
            return r->items[i].message;
    }
    fail_msg("no problem reported at %s", path);
    return NULL;
}

static void assert_no_secret_in_report(const config_report_t *r, const char *secret)
{
    for (size_t i = 0; i < r->count; i++) {
        assert_null(strstr(r->items[i].message, secret));
        assert_null(strstr(r->items[i].path, secret));
    }
}

static config_t *load_string(const char *text, config_report_t *r)
{
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (root == NULL)
        fail_msg("test JSON does not parse: %s", err.text);
    config_t *cfg = config_load_json(root, "inline", r);
    json_decref(root);
    return cfg;
}

static void set_fixture_env(void)
{
    setenv("GH_TEST_OPENAI_KEY", OPENAI_SECRET, 1);
    setenv("GH_TEST_ANTHROPIC_KEY", ANTHROPIC_SECRET, 1);
    setenv("GH_TEST_TOGETHER_KEY", TOGETHER_SECRET, 1);
}

/* ---- whole files ----------------------------------------------------------------------------- */

static void check_full_server(const config_t *cfg)
{
    assert_string_equal(cfg->source, FIXTURE("full.json"));
    assert_string_equal(cfg->host, "127.0.0.1");
    assert_int_equal(cfg->port, 9090);
    assert_int_equal(cfg->threads, 4);
    assert_int_equal(cfg->max_body_bytes, 1048576);
    assert_int_equal(cfg->header_timeout_s, 10);
    assert_int_equal(cfg->idle_timeout_s, 20);
    assert_int_equal(cfg->shutdown_timeout_s, 5);
    assert_string_equal(cfg->log_level, "debug");
    assert_true(cfg->drop_excess_requests);
    assert_int_equal(cfg->refcount, 1);
}

static void check_full_openai(const config_provider_t *p)
{
    assert_string_equal(p->name, "openai");
    assert_int_equal(p->family, CONFIG_FAMILY_OPENAI);
    assert_string_equal(p->base_url, "https://proxy.example.com/openai");
    assert_int_equal(p->max_retries, 3);
    assert_int_equal(p->backoff_initial_ms, 100);
    assert_int_equal(p->backoff_max_ms, 2000);
    assert_int_equal(p->timeout_s, 45);
    assert_int_equal(p->concurrency, 50);
    assert_int_equal(p->buffer_size, 200);
    assert_int_equal(json_object_size(p->extra_headers), 2);
    assert_string_equal(json_string_value(json_object_get(p->extra_headers, "X-Team")), "search");
    assert_string_equal(json_string_value(json_object_get(p->extra_headers, "X-Env")), "test");

    assert_int_equal(p->n_keys, 2);
    assert_string_equal(p->keys[0].name, "primary");
    assert_string_equal(p->keys[0].value, OPENAI_SECRET);
    assert_int_equal(p->keys[0].n_models, 2);
    assert_string_equal(p->keys[0].models[0], "gpt-4o"); /* "openai/" stripped */
    assert_string_equal(p->keys[0].models[1], "gpt-4o-mini");
    assert_true(p->keys[0].weight == 0.75);
    assert_string_equal(p->keys[1].name, "openai-key-1");
    assert_string_equal(p->keys[1].value, "sk-literal-secondary-000");
    assert_int_equal(p->keys[1].n_models, 0);
    assert_true(p->keys[1].weight == 0.25);
}

static void check_full_others(const config_t *cfg)
{
    const config_provider_t *a = &cfg->providers[1];
    assert_string_equal(a->name, "anthropic");
    assert_int_equal(a->family, CONFIG_FAMILY_ANTHROPIC);
    assert_string_equal(a->base_url, "https://api.anthropic.com");
    assert_int_equal(a->n_keys, 1);
    assert_string_equal(a->keys[0].name, "claude");
    assert_string_equal(a->keys[0].value, ANTHROPIC_SECRET);
    assert_int_equal(a->keys[0].n_models, 0); /* "*" means every model */
    assert_int_equal(a->max_retries, 2);      /* defaults where nothing was written */
    assert_int_equal(a->concurrency, 1000);
    assert_int_equal(json_object_size(a->extra_headers), 0);

    const config_provider_t *o = &cfg->providers[2];
    assert_string_equal(o->name, "ollama");
    assert_string_equal(o->base_url, "http://localhost:11434");
    assert_int_equal(o->n_keys, 1);
    assert_string_equal(o->keys[0].name, "ollama-nokey");
    assert_string_equal(o->keys[0].value, "");

    const config_provider_t *t = &cfg->providers[3];
    assert_string_equal(t->name, "together");
    assert_string_equal(t->base_url, "https://api.together.xyz");
    assert_string_equal(t->keys[0].name, "together-key-0");
    assert_int_equal(t->keys[0].n_models, 2);
    /* A model whose own name has a slash keeps it; only the provider's prefix goes. */
    assert_string_equal(t->keys[0].models[0], "meta-llama/Llama-3-8b-chat-hf");
    assert_string_equal(t->keys[0].models[1], "mistralai/Mixtral-8x7B");
}

static void test_full_file(void **state)
{
    set_fixture_env();
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file(FIXTURE("full.json"), &r);

    assert_non_null(cfg);
    assert_int_equal(r.n_errors, 0);
    assert_paths(&r, false,
                 "config_store\nlogs_store\nclient.initial_pool_size\n"
                 "providers.openai.send_back_raw_response\n");
    assert_string_equal(message_at(&r, "config_store"),
                        "Bifrost field not used by gatehouse; ignored");
    check_full_server(cfg);
    assert_int_equal(cfg->n_providers, 4);
    check_full_openai(&cfg->providers[0]);
    check_full_others(cfg);
    assert_ptr_equal(config_find_provider(cfg, "together"), &cfg->providers[3]);
    assert_null(config_find_provider(cfg, "groq"));

    config_release(cfg);
    config_report_free(&r);
}

static void test_defaults(void **state)
{
    setenv("GH_TEST_OPENAI_KEY", OPENAI_SECRET, 1);
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file(FIXTURE("minimal.json"), &r);

    assert_non_null(cfg);
    assert_int_equal(r.count, 0);
    assert_string_equal(cfg->host, "0.0.0.0");
    assert_int_equal(cfg->port, 8080);
    assert_int_equal(cfg->threads, 0);
    assert_int_equal(cfg->max_body_bytes, 8 * 1024 * 1024);
    assert_int_equal(cfg->header_timeout_s, 30);
    assert_int_equal(cfg->idle_timeout_s, 60);
    assert_int_equal(cfg->shutdown_timeout_s, 30);
    assert_string_equal(cfg->log_level, "info");
    assert_false(cfg->drop_excess_requests);

    assert_int_equal(cfg->n_providers, 1);
    const config_provider_t *p = &cfg->providers[0];
    assert_string_equal(p->base_url, "https://api.openai.com");
    assert_int_equal(p->max_retries, 2);
    assert_int_equal(p->backoff_initial_ms, 500);
    assert_int_equal(p->backoff_max_ms, 5000);
    assert_int_equal(p->timeout_s, 120);
    assert_int_equal(p->concurrency, 1000);
    assert_int_equal(p->buffer_size, 5000);
    assert_int_equal(p->n_keys, 1);
    assert_string_equal(p->keys[0].name, "openai-key-0");
    assert_true(p->keys[0].weight == 1.0);
    assert_int_equal(p->keys[0].n_models, 0);

    config_release(cfg);
    config_report_free(&r);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_error_paths(void **state)
{
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file(FIXTURE("errors.json"), &r);

    assert_null(cfg);
    assert_paths(&r, true,
                 "server.host\n"
                 "server.port\n"
                 "server.threads\n"
                 "server.header_timeout_seconds\n"
                 "server.log_level\n"
                 "client.drop_excess_requests\n"
                 "providers.openai.network_config.base_url\n"
                 "providers.openai.network_config.extra_headers.Bad Header\n"
                 "providers.openai.network_config.extra_headers.X-Num\n"
                 "providers.openai.network_config.max_retries\n"
                 "providers.openai.network_config.default_request_timeout_in_seconds\n"
                 "providers.openai.network_config.retry_backoff_initial\n"
                 "providers.openai.concurrency_and_buffer_size.concurrency\n"
                 "providers.openai.concurrency_and_buffer_size.buffer_size\n"
                 "providers.openai.keys[1].weight\n"
                 "providers.openai.keys[2].value\n"
                 "providers.openai.keys[3].value\n"
                 "providers.openai.keys[4].models[1]\n"
                 "providers.groq.keys\n"
                 "providers.mistral.keys\n"
                 "providers.madeup\n"
                 "providers.mycorp.custom_provider_config.base_provider_type\n"
                 "providers.bad/name\n"
                 "providers.deepseek\n");
    assert_int_equal(r.n_errors, 24);
    assert_paths(&r, false, "");

    assert_string_equal(message_at(&r, "server.port"), "must be between 0 and 65535, got 70000");
    assert_string_equal(message_at(&r, "server.host"), "must be a string, got a number");
    assert_string_equal(message_at(&r, "providers.openai.keys[1].weight"),
                        "must be greater than 0, got 0");
    assert_string_equal(message_at(&r, "providers.openai.network_config.retry_backoff_initial"),
                        "must not exceed retry_backoff_max (1000 ms), got 3000 ms");
    assert_string_equal(message_at(&r, "providers.openai.concurrency_and_buffer_size.buffer_size"),
                        "must be at least 0, got -5");
    assert_non_null(strstr(message_at(&r, "providers.mistral.keys"), "env.MISTRAL_API_KEY"));

    /* The unknown provider's message lists every known one. */
    const char *unknown = message_at(&r, "providers.madeup");
    for (const config_known_provider_t *k = config_known_providers(); k->name != NULL; k++)
        assert_non_null(strstr(unknown, k->name));
    assert_non_null(strstr(unknown, "custom_provider_config.base_provider_type"));

    const char *literals[] = {"sk-aaaa", "sk-bbbb", "sk-cccc", "sk-dddd", "sk-eeee", "sk-gggg"};
    for (size_t i = 0; i < sizeof(literals) / sizeof(literals[0]); i++)
        assert_no_secret_in_report(&r, literals[i]);
    config_report_free(&r);
}

static void test_unknown_field_warnings(void **state)
{
    setenv("GH_TEST_OPENAI_KEY", OPENAI_SECRET, 1);
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file(FIXTURE("unknown_fields.json"), &r);

    assert_non_null(cfg); /* warnings never stop a load */
    assert_int_equal(r.n_errors, 0);
    assert_paths(&r, false,
                 "servr\n"
                 "server.prot\n"
                 "providers.openai.network_config.max_retires\n"
                 "providers.openai.keys[0].wieght\n");
    assert_string_equal(message_at(&r, "server.prot"), "unknown field; ignored");
    /* The misspelt fields did not change anything. */
    assert_int_equal(cfg->port, 8080);
    assert_int_equal(cfg->providers[0].max_retries, 2);
    assert_true(cfg->providers[0].keys[0].weight == 1.0);

    config_release(cfg);
    config_report_free(&r);
}

static void test_missing_env_names_variable_only(void **state)
{
    setenv("GH_TEST_EMPTY_VAR", "", 1);
    setenv("GH_TEST_NEWLINE_VAR", NEWLINE_SECRET "\n", 1);
    setenv("OPENAI_API_KEY", OPENAI_SECRET, 1); /* set, but not the variable the file names */
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file(FIXTURE("missing_env.json"), &r);

    assert_null(cfg);
    assert_paths(&r, true,
                 "providers.openai.keys[0].value\n"
                 "providers.anthropic.keys[0].value\n"
                 "providers.groq.keys[0].value\n");
    assert_string_equal(message_at(&r, "providers.openai.keys[0].value"),
                        "environment variable GH_TEST_UNSET_VAR is not set");
    assert_string_equal(message_at(&r, "providers.anthropic.keys[0].value"),
                        "environment variable GH_TEST_EMPTY_VAR is empty");
    assert_non_null(strstr(message_at(&r, "providers.groq.keys[0].value"), "GH_TEST_NEWLINE_VAR"));
    assert_no_secret_in_report(&r, NEWLINE_SECRET);
    assert_no_secret_in_report(&r, OPENAI_SECRET);

    /* The printed form as well. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_report_print(&r, f);
    fclose(f);
    assert_string_equal(text,
                        "error: providers.openai.keys[0].value: environment variable "
                        "GH_TEST_UNSET_VAR is not set\n"
                        "error: providers.anthropic.keys[0].value: environment variable "
                        "GH_TEST_EMPTY_VAR is empty\n"
                        "error: providers.groq.keys[0].value: environment variable "
                        "GH_TEST_NEWLINE_VAR contains a control character (a stray newline?)\n");
    free(text);
    config_report_free(&r);
}

static void test_syntax_error_line_column(void **state)
{
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file(FIXTURE("syntax_error.json"), &r);

    assert_null(cfg);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.n_errors, 1);
    assert_string_equal(r.items[0].path, FIXTURE("syntax_error.json"));
    /* The bad token starts at line 4, column 26; jansson counts the column after reading it. */
    assert_string_equal(r.items[0].message, "invalid JSON at line 4, column 27: invalid token");
    /* jansson would quote the unquoted key ("near 'sk-live-...'"): that part is cut. */
    assert_no_secret_in_report(&r, "sk-live");
    config_report_free(&r);
}

static void test_duplicate_json_key_is_syntax_error(void **state)
{
    char path[] = "/tmp/gatehouse-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\n  \"server\": {\"port\": 1},\n  \"server\": {\"port\": 2}\n}\n", f);
    fclose(f);

    config_report_t r;
    config_report_init(&r);
    assert_null(config_load_file(path, &r));
    assert_int_equal(r.n_errors, 1);
    assert_non_null(strstr(r.items[0].message, "at line 3"));
    assert_non_null(strstr(r.items[0].message, "duplicate object key"));
    config_report_free(&r);
    unlink(path);
}

static void test_small_errors(void **state)
{
    struct {
        const char *json;
        const char *path;
        const char *message;
    } cases[] = {
        {"[1]", "(root)", "must be a JSON object, got an array"},
        {"{\"providers\": []}", "providers", "must be an object, got an array"},
        {"{\"server\": {\"max_request_body_bytes\": 0}}", "server.max_request_body_bytes",
         "must be at least 1, got 0"},
        {"{\"server\": {\"port\": 80.5}}", "server.port", "must be an integer, got a number"},
        {"{\"server\": {\"threads\": 5000}}", "server.threads",
         "must be between 0 and 1024, got 5000"},
        {"{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"\"}]}}}",
         "providers.openai.keys[0].value", "must not be empty: this provider needs an API key"},
        {"{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"env.\"}]}}}",
         "providers.openai.keys[0].value",
         "\"env.\" must be followed by the name of an environment variable"},
        {"{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"sk-x\\nInjected: 1\"}]}}}",
         "providers.openai.keys[0].value", "contains a control character (a stray newline?)"},
        {"{\"providers\": {\"openai\": {\"keys\": [\"sk-abc\"]}}}", "providers.openai.keys[0]",
         "must be an object, got a string"},
        {"{\"providers\": {\"openai\": {\"keys\": {}}}}", "providers.openai.keys",
         "must be an array, got an object"},
        {"{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"k\", \"weight\": \"2\"}]}}}",
         "providers.openai.keys[0].weight", "must be a number, got a string"},
        {"{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"k\", \"models\": \"gpt\"}]}}}",
         "providers.openai.keys[0].models", "must be an array of model names, got a string"},
        {"{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"k\", \"models\": "
         "[\"openai/\"]}]}}}",
         "providers.openai.keys[0].models[0]", "must be a non-empty model name"},
        {"{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"k\"}], \"network_config\": "
         "{\"retry_backoff_initial\": 6000}}}}",
         "providers.openai.network_config.retry_backoff_initial",
         "must not exceed retry_backoff_max (5000 ms), got 6000 ms"},
        {"{\"providers\": {\"openai\": {\"keys\": [{\"value\": \"k\"}], \"network_config\": "
         "{\"base_url\": \"https://\"}}}}",
         "providers.openai.network_config.base_url",
         "must start with http:// or https:// and name a host"},
        {"{\"providers\": {\"x\": {\"custom_provider_config\": {}, \"keys\": [{\"value\": "
         "\"k\"}]}}}",
         "providers.x.custom_provider_config.base_provider_type",
         "required: \"openai\" or \"anthropic\""},
        {"{\"providers\": {\"x\": {\"custom_provider_config\": {\"base_provider_type\": "
         "\"openai\"}, \"keys\": [{\"value\": \"k\"}]}}}",
         "providers.x.network_config.base_url", "required for a custom provider"},
        {"{\"providers\": {\"x\": {\"custom_provider_config\": {\"base_provider_type\": "
         "\"openai\"}, \"network_config\": {\"base_url\": \"ftp://h\"}, \"keys\": [{\"value\": "
         "\"k\"}]}}}",
         "providers.x.network_config.base_url",
         "must start with http:// or https:// and name a host"},
        {"{\"providers\": {\"x\": {\"custom_provider_config\": {\"base_provider_type\": "
         "\"openai\"}, \"network_config\": {\"base_url\": \"http://h\"}}}}",
         "providers.x.keys",
         "required: x needs at least one key, or custom_provider_config.is_key_less: true"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        config_report_t r;
        config_report_init(&r);
        config_t *cfg = load_string(cases[i].json, &r);
        if (cfg != NULL || r.n_errors != 1)
            fail_msg("case %zu: expected exactly one error, got %zu", i, r.n_errors);
        assert_string_equal(r.items[0].path, cases[i].path);
        assert_string_equal(r.items[0].message, cases[i].message);
        assert_no_secret_in_report(&r, "sk-x");
        assert_no_secret_in_report(&r, "sk-abc");
        config_report_free(&r);
    }
}

/* ---- accepted variations --------------------------------------------------------------------- */

static void test_custom_provider(void **state)
{
    setenv("GH_TEST_MYCORP_KEY", "corp-secret-1", 1);
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file(FIXTURE("custom.json"), &r);

    assert_non_null(cfg);
    assert_paths(&r, false, "providers.mycorp.custom_provider_config.allowed_requests\n");
    assert_int_equal(cfg->n_providers, 2);

    const config_provider_t *m = config_find_provider(cfg, "mycorp");
    assert_non_null(m);
    assert_int_equal(m->family, CONFIG_FAMILY_ANTHROPIC);
    assert_string_equal(m->base_url, "https://llm.mycorp.internal/claude");
    assert_int_equal(m->n_keys, 1);
    assert_string_equal(m->keys[0].name, "corp");
    assert_string_equal(m->keys[0].value, "corp-secret-1");
    assert_int_equal(m->keys[0].n_models, 1);
    assert_string_equal(m->keys[0].models[0], "claude-x");

    const config_provider_t *l = config_find_provider(cfg, "localai");
    assert_non_null(l);
    assert_int_equal(l->family, CONFIG_FAMILY_OPENAI);
    assert_string_equal(l->base_url, "http://127.0.0.1:8081");
    assert_int_equal(l->n_keys, 1);
    assert_string_equal(l->keys[0].name, "localai-nokey");
    assert_string_equal(l->keys[0].value, "");

    config_release(cfg);
    config_report_free(&r);
}

static void test_optional_keys(void **state)
{
    setenv("GH_TEST_OPENAI_KEY", OPENAI_SECRET, 1);
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = load_string(
        "{\"providers\": {"
        " \"openai\": {\"keys\": [{\"value\": \"env.GH_TEST_OPTIONAL_KEY\", \"optional\": true},"
        "                          {\"value\": \"env.GH_TEST_OPENAI_KEY\", \"optional\": true}]},"
        " \"anthropic\": {\"keys\": [{\"value\": \"env.GH_TEST_OPTIONAL_KEY\", \"optional\": "
        "true}]},"
        " \"ollama\": {\"keys\": [{\"value\": \"env.GH_TEST_OPTIONAL_KEY\", \"optional\": "
        "true}]}}}",
        &r);

    assert_non_null(cfg);
    assert_paths(&r, false,
                 "providers.openai.keys[0].value\n"
                 "providers.anthropic.keys[0].value\n"
                 "providers.anthropic\n"
                 "providers.ollama.keys[0].value\n");
    assert_string_equal(message_at(&r, "providers.openai.keys[0].value"),
                        "environment variable GH_TEST_OPTIONAL_KEY is not set; this optional key "
                        "is skipped");
    assert_int_equal(cfg->n_providers, 2); /* anthropic left out, with a warning */
    assert_string_equal(cfg->providers[0].name, "openai");
    assert_int_equal(cfg->providers[0].n_keys, 1);
    assert_string_equal(cfg->providers[0].keys[0].name, "openai-key-1");
    assert_string_equal(cfg->providers[1].name, "ollama"); /* a local server runs keyless */
    assert_string_equal(cfg->providers[1].keys[0].name, "ollama-nokey");

    config_release(cfg);
    config_report_free(&r);
}

static void test_nulls_and_bifrost_body_limit(void **state)
{
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = load_string("{\"server\": {\"port\": null, \"host\": null},"
                                " \"client\": {\"max_request_body_size_mb\": 3},"
                                " \"providers\": {\"vllm\": {\"network_config\": "
                                "{\"base_url\": \"http://gpu-box:8000///\"}}}}",
                                &r);
    assert_non_null(cfg);
    assert_int_equal(r.count, 0);
    assert_int_equal(cfg->port, 8080);
    assert_string_equal(cfg->host, "0.0.0.0");
    assert_int_equal(cfg->max_body_bytes, 3 * 1024 * 1024);
    assert_string_equal(cfg->providers[0].base_url, "http://gpu-box:8000");
    assert_string_equal(cfg->providers[0].keys[0].name, "vllm-nokey");
    config_release(cfg);
    config_report_free(&r);

    /* gatehouse's exact byte count wins over Bifrost's MiB, with a warning. */
    config_report_init(&r);
    cfg = load_string("{\"server\": {\"max_request_body_bytes\": 1000},"
                      " \"client\": {\"max_request_body_size_mb\": 3}}",
                      &r);
    assert_non_null(cfg);
    assert_int_equal(cfg->max_body_bytes, 1000);
    assert_paths(&r, false, "client.max_request_body_size_mb\nproviders\n");
    assert_string_equal(message_at(&r, "providers"),
                        "no provider is configured; every model request will fail");
    config_release(cfg);
    config_report_free(&r);
}

static void test_example_file(void **state)
{
    /* Neither variable set: the example still loads, and says what it skipped. */
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file("gatehouse.example.json", &r);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_providers, 0);
    assert_non_null(strstr(message_at(&r, "providers.openai.keys[0].value"), "OPENAI_API_KEY"));
    assert_non_null(
        strstr(message_at(&r, "providers.anthropic.keys[0].value"), "ANTHROPIC_API_KEY"));
    config_release(cfg);
    config_report_free(&r);

    /* One of them set: that provider only. */
    setenv("ANTHROPIC_API_KEY", ANTHROPIC_SECRET, 1);
    config_report_init(&r);
    cfg = config_load_file("gatehouse.example.json", &r);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_providers, 1);
    assert_string_equal(cfg->providers[0].name, "anthropic");
    assert_string_equal(cfg->providers[0].keys[0].value, ANTHROPIC_SECRET);
    assert_paths(&r, false, "providers.openai.keys[0].value\nproviders.openai\n");
    config_release(cfg);
    config_report_free(&r);
}

/* ---- the environment ------------------------------------------------------------------------- */

static void test_from_env(void **state)
{
    setenv("OPENAI_API_KEY", OPENAI_SECRET, 1);
    setenv("GROQ_API_KEY", "gsk-test", 1);
    setenv("GROQ_BASE_URL", "http://127.0.0.1:9999/openai/", 1);
    setenv("MISTRAL_API_KEY", "mistral-test", 1);
    setenv("MISTRAL_BASE_URL", "ftp://nope", 1);
    setenv("ANTHROPIC_API_KEY", "", 1);                    /* empty: not enabled */
    setenv("OLLAMA_BASE_URL", "http://10.0.0.5:11434", 1); /* keyless local server */
    setenv("OPENAI_BASE_URL", "", 1);                      /* empty: the default */

    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_from_env(&r);

    assert_non_null(cfg);
    assert_string_equal(cfg->source, "environment");
    assert_int_equal(cfg->port, 8080);
    assert_int_equal(cfg->n_providers, 4); /* table order */
    assert_string_equal(cfg->providers[0].name, "openai");
    assert_string_equal(cfg->providers[0].base_url, "https://api.openai.com");
    assert_string_equal(cfg->providers[0].keys[0].name, "openai-env");
    assert_string_equal(cfg->providers[0].keys[0].value, OPENAI_SECRET);
    assert_string_equal(cfg->providers[1].name, "groq");
    assert_string_equal(cfg->providers[1].base_url, "http://127.0.0.1:9999/openai");
    assert_string_equal(cfg->providers[2].name, "mistral");
    assert_string_equal(cfg->providers[2].base_url, "https://api.mistral.ai");
    assert_string_equal(cfg->providers[3].name, "ollama");
    assert_string_equal(cfg->providers[3].base_url, "http://10.0.0.5:11434");
    assert_string_equal(cfg->providers[3].keys[0].name, "ollama-nokey");
    assert_string_equal(cfg->providers[3].keys[0].value, "");
    assert_null(config_find_provider(cfg, "anthropic"));

    assert_int_equal(r.n_errors, 0);
    assert_paths(&r, false, "MISTRAL_BASE_URL\n");
    assert_no_secret_in_report(&r, "mistral-test");
    config_release(cfg);
    config_report_free(&r);
}

static void test_from_env_nothing_set(void **state)
{
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_from_env(&r);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_providers, 0);
    assert_int_equal(r.count, 0);
    config_release(cfg);
    config_report_free(&r);
}

/* ---- helpers of the API ---------------------------------------------------------------------- */

static void test_key_allows(void **state)
{
    config_key_t every = {.name = "a", .value = "", .models = NULL, .n_models = 0, .weight = 1};
    assert_true(config_key_allows(&every, "gpt-4o"));
    assert_true(config_key_allows(&every, "anything-at-all"));

    char *one[] = {"gpt-4o"};
    config_key_t only = {.name = "b", .value = "", .models = one, .n_models = 1, .weight = 1};
    assert_true(config_key_allows(&only, "gpt-4o"));
    assert_false(config_key_allows(&only, "gpt-4o-mini")); /* no prefix matching */
    assert_false(config_key_allows(&only, "gpt-4"));
    assert_false(config_key_allows(&only, "GPT-4O"));
    assert_false(config_key_allows(&only, ""));
    assert_false(config_key_allows(&only, NULL));

    char *two[] = {"gpt-4o-mini", "o3"};
    config_key_t pair = {.name = "c", .value = "", .models = two, .n_models = 2, .weight = 1};
    assert_false(config_key_allows(&pair, "gpt-4o"));
    assert_true(config_key_allows(&pair, "gpt-4o-mini"));
    assert_true(config_key_allows(&pair, "o3"));
    assert_false(config_key_allows(&pair, "o3-mini"));
}

static void test_known_providers(void **state)
{
    const config_known_provider_t *k = config_known_provider("fireworks");
    assert_non_null(k);
    assert_string_equal(k->base_url, "https://api.fireworks.ai/inference");
    assert_string_equal(k->env_key, "FIREWORKS_API_KEY");
    assert_false(k->key_optional);

    k = config_known_provider("huggingface");
    assert_non_null(k);
    assert_string_equal(k->env_key, "HF_TOKEN");
    assert_true(config_known_provider("vllm")->key_optional);
    assert_int_equal(config_known_provider("anthropic")->family, CONFIG_FAMILY_ANTHROPIC);
    assert_null(config_known_provider("OpenAI"));
    assert_null(config_known_provider(NULL));

    size_t n = 0;
    for (const config_known_provider_t *t = config_known_providers(); t->name != NULL; t++)
        n++;
    assert_int_equal(n, 13);
}

#define RC_THREADS 8
#define RC_ROUNDS 20000

static void *refcount_worker(void *arg)
{
    config_t *cfg = arg;
    for (int i = 0; i < RC_ROUNDS; i++) {
        config_retain(cfg);
        config_release(cfg);
    }
    config_release(cfg); /* the reference the main thread took for this worker */
    return NULL;
}

static void test_refcount(void **state)
{
    set_fixture_env();
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_file(FIXTURE("full.json"), &r);
    assert_non_null(cfg);
    config_report_free(&r);

    pthread_t threads[RC_THREADS];
    for (int i = 0; i < RC_THREADS; i++) {
        config_retain(cfg);
        assert_int_equal(pthread_create(&threads[i], NULL, refcount_worker, cfg), 0);
    }
    for (int i = 0; i < RC_THREADS; i++)
        pthread_join(threads[i], NULL);

    /* Only the first reference is left; releasing it frees everything (LeakSanitizer checks
     * that under `make unit-asan`, and a premature free would be a use-after-free here). */
    assert_int_equal(__atomic_load_n(&cfg->refcount, __ATOMIC_SEQ_CST), 1);
    assert_string_equal(cfg->providers[0].keys[0].value, OPENAI_SECRET);
    config_release(cfg);
    config_release(NULL); /* harmless */
}

/* ---- check-config ---------------------------------------------------------------------------- */

static int check_to_string(const char *path, char **text)
{
    size_t len = 0;
    FILE *f = open_memstream(text, &len);
    int status = config_check_file(path, f);
    fclose(f);
    return status;
}

static void test_check_file(void **state)
{
    set_fixture_env();
    char *text = NULL;

    assert_int_equal(check_to_string(FIXTURE("minimal.json"), &text), 0);
    assert_string_equal(text, "ok: 1 providers, 1 keys\n");
    free(text);

    assert_int_equal(check_to_string(FIXTURE("full.json"), &text), 0);
    assert_non_null(strstr(text, "warning: client.initial_pool_size: Bifrost field not used"));
    assert_non_null(strstr(text, "\nok: 4 providers, 5 keys\n"));
    assert_null(strstr(text, OPENAI_SECRET));
    assert_null(strstr(text, "sk-literal"));
    free(text);

    assert_int_equal(check_to_string(FIXTURE("errors.json"), &text), 1);
    assert_non_null(strstr(text, "error: server.port: must be between 0 and 65535, got 70000\n"));
    assert_null(strstr(text, "ok:"));
    free(text);

    assert_int_equal(check_to_string(FIXTURE("syntax_error.json"), &text), 1);
    free(text);

    assert_int_equal(check_to_string(FIXTURE("does-not-exist.json"), &text), 2);
    assert_string_equal(
        text, "error: " FIXTURE(
                  "does-not-exist.json") ": cannot read the file: No such file or directory\n");
    free(text);

    assert_int_equal(check_to_string("tests/fixtures/config", &text), 2);
    free(text);
}

static void test_telemetry_sections(void **state)
{
    setenv("GH_TEST_ADMIN", "admin-token-0123456789", 1);
    const char *text =
        "{\"client\": {\"disable_content_logging\": true, \"log_retention_days\": 9},"
        " \"logs\": {\"queue_size\": 50, \"content_retention_days\": 2,"
        "  \"prices\": {\"openai/gpt-4o\": {\"input\": 2.5, \"output\": 10}}},"
        " \"audit\": {\"enabled\": true, \"content\": false},"
        " \"metrics\": {\"enabled\": false},"
        " \"admin\": {\"token\": \"env.GH_TEST_ADMIN\"}}";
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    config_report_t r;
    config_report_init(&r);
    config_t *cfg = config_load_json(root, "test", &r);
    assert_non_null(cfg);
    assert_true(cfg->logs_enabled);
    assert_false(cfg->logs_content);
    assert_int_equal(cfg->logs_retention_days, 9);
    assert_int_equal(cfg->logs_content_retention_days, 2);
    assert_int_equal(cfg->logs_queue_size, 50);
    assert_true(cfg->audit_enabled);
    assert_false(cfg->audit_content);
    assert_false(cfg->metrics_enabled);
    assert_string_equal(cfg->admin_token, "admin-token-0123456789");
    assert_true(json_number_value(json_object_get(json_object_get(cfg->prices, "openai/gpt-4o"),
                                                  "output")) == 10.0);
    config_release(cfg);
    config_report_free(&r);
    json_decref(root);

    /* a short token and a bad price are errors with their paths; the token never printed */
    root = json_loads("{\"admin\": {\"token\": \"short\"},"
                      " \"logs\": {\"prices\": {\"a/b\": {\"input\": -1}}}}",
                      0, NULL);
    config_report_init(&r);
    assert_null(config_load_json(root, "test", &r));
    assert_paths(&r, true, "logs.prices.a/b.input\nadmin.token\n");
    for (size_t i = 0; i < r.count; i++)
        assert_null(strstr(r.items[i].message, "short"));
    config_report_free(&r);
    json_decref(root);
    unsetenv("GH_TEST_ADMIN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_full_file, setup),
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_error_paths, setup),
        cmocka_unit_test_setup(test_unknown_field_warnings, setup),
        cmocka_unit_test_setup(test_missing_env_names_variable_only, setup),
        cmocka_unit_test_setup(test_syntax_error_line_column, setup),
        cmocka_unit_test_setup(test_duplicate_json_key_is_syntax_error, setup),
        cmocka_unit_test_setup(test_small_errors, setup),
        cmocka_unit_test_setup(test_custom_provider, setup),
        cmocka_unit_test_setup(test_optional_keys, setup),
        cmocka_unit_test_setup(test_nulls_and_bifrost_body_limit, setup),
        cmocka_unit_test_setup(test_example_file, setup),
        cmocka_unit_test_setup(test_from_env, setup),
        cmocka_unit_test_setup(test_from_env_nothing_set, setup),
        cmocka_unit_test_setup(test_key_allows, setup),
        cmocka_unit_test_setup(test_known_providers, setup),
        cmocka_unit_test_setup(test_refcount, setup),
        cmocka_unit_test_setup(test_check_file, setup),
        cmocka_unit_test_setup(test_telemetry_sections, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
