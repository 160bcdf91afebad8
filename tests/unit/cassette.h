/*
 * cassette.h - reading the recorded provider exchanges from unit tests (header-only).
 *
 * The cassettes live read-only in the shared folder (see its README.md): one JSON file per
 * recorded test, grouped by provider folder, each holding a list of request/response
 * interactions. Tests find them at $GATEHOUSE_SHARED_DIR/cassettes, or ../shared/cassettes
 * relative to the repository root (tests run with the root as working directory), and skip
 * when neither exists; nothing is ever copied into the repository.
 *
 * Every function is static inline so that a test includes this header and uses what it needs
 * without unused-function warnings; the Makefile builds only tests/unit/test_*.c, so a separate
 * .c file would not be linked.
 *
 * Ownership: cassette_walk loads each file, hands the visitor borrowed views of its
 * interactions, and frees the file afterwards. Strings returned by the accessors are borrowed
 * from the interaction and live as long as it does, except cassette_body_bytes, whose result
 * the caller frees.
 */
#ifndef GATEHOUSE_TESTS_CASSETTE_H
#define GATEHOUSE_TESTS_CASSETTE_H

#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* One loaded cassette file. */
typedef struct cassette {
    const char *path;  /* full path of the file (borrowed from the walker) */
    const char *group; /* the folder it lives in: "openai", "groq", ... */
    const char *name;  /* the recorded test's name */
    json_t *root;      /* the whole file; owned by the walker */
} cassette_t;

/* Called once per interaction; ix is borrowed. */
typedef void (*cassette_visit_fn)(const cassette_t *c, const json_t *ix, void *arg);

static inline bool cassette_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Writes the cassette folder's path into out. Returns false when it does not exist. */
static inline bool cassette_dir(char *out, size_t cap)
{
    const char *shared = getenv("GATEHOUSE_SHARED_DIR");
    if (shared == NULL || shared[0] == '\0')
        shared = "../shared";

    int n = snprintf(out, cap, "%s/cassettes", shared);
    if (n < 0 || (size_t)n >= cap)
        return false;
    return cassette_is_dir(out);
}

/* ---- accessors ------------------------------------------------------------------------------- */

static inline const json_t *cassette_request(const json_t *ix)
{
    return json_object_get(ix, "request");
}

static inline const json_t *cassette_response(const json_t *ix)
{
    return json_object_get(ix, "response");
}

static inline const char *cassette_request_uri(const json_t *ix)
{
    return json_string_value(json_object_get(cassette_request(ix), "uri"));
}

/* True when the request URI, without its query string, ends with suffix. */
static inline bool cassette_uri_ends_with(const json_t *ix, const char *suffix)
{
    const char *uri = cassette_request_uri(ix);
    if (uri == NULL)
        return false;

    size_t len = strcspn(uri, "?");
    size_t slen = strlen(suffix);
    return len >= slen && memcmp(uri + len - slen, suffix, slen) == 0;
}

static inline long cassette_response_status(const json_t *ix)
{
    return (long)json_integer_value(json_object_get(cassette_response(ix), "status"));
}

static inline const json_t *cassette_response_headers(const json_t *ix)
{
    return json_object_get(cassette_response(ix), "headers");
}

/* A header's value by case-insensitive name, or NULL. */
static inline const char *cassette_header(const json_t *headers, const char *name)
{
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)headers, key, value) {
        if (strcasecmp(key, name) == 0)
            return json_string_value(value);
    }
    return NULL;
}

/* The request body when it was recorded as JSON, or NULL. */
static inline const json_t *cassette_request_json(const json_t *ix)
{
    return json_object_get(json_object_get(cassette_request(ix), "body"), "json");
}

/* The response body when it was recorded as JSON, or NULL. */
static inline const json_t *cassette_response_json(const json_t *ix)
{
    return json_object_get(json_object_get(cassette_response(ix), "body"), "json");
}

/* The response body when it was recorded as text (SSE, plain errors), or NULL. */
static inline const char *cassette_response_text(const json_t *ix, size_t *len)
{
    const json_t *text = json_object_get(json_object_get(cassette_response(ix), "body"), "text");
    if (!json_is_string(text))
        return NULL;
    if (len != NULL)
        *len = json_string_length(text);
    return json_string_value(text);
}

/* The response body as the bytes an upstream would send: text as recorded, JSON serialized.
 * Returns NULL for binary (base64) or missing bodies; the caller frees the result. */
static inline char *cassette_body_bytes(const json_t *ix, size_t *len)
{
    size_t n = 0;
    const char *text = cassette_response_text(ix, &n);
    if (text != NULL) {
        char *copy = malloc(n + 1);
        if (copy == NULL)
            return NULL;
        memcpy(copy, text, n + 1);
        *len = n;
        return copy;
    }

    const json_t *body = cassette_response_json(ix);
    if (body == NULL)
        return NULL;
    char *dump = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (dump != NULL)
        *len = strlen(dump);
    return dump;
}

/* Integers beyond 64 bits (a "seed" in some recorded bodies) make jansson refuse a file. Such a
 * file is read again with every integer as a real, and reals that hold a whole number within
 * the 64-bit range are turned back into integers, so token counts stay integers. */
static inline void cassette_restore_integers(json_t *v)
{
    size_t i;
    const char *key;
    json_t *item;

    if (json_is_object(v)) {
        json_object_foreach (v, key, item) {
            double d = json_real_value(item);
            if (json_is_real(item) && d == (double)(json_int_t)d && d > -9.2e18 && d < 9.2e18)
                json_object_set_new(v, key, json_integer((json_int_t)d));
            else
                cassette_restore_integers(item);
        }
    } else if (json_is_array(v)) {
        json_array_foreach (v, i, item) {
            double d = json_real_value(item);
            if (json_is_real(item) && d == (double)(json_int_t)d && d > -9.2e18 && d < 9.2e18)
                json_array_set_new(v, i, json_integer((json_int_t)d));
            else
                cassette_restore_integers(item);
        }
    }
}

static inline json_t *cassette_load_file(const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root != NULL)
        return root;

    root = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr);
    if (root == NULL) {
        fprintf(stderr, "cassette: %s: %s (line %d)\n", path, jerr.text, jerr.line);
        return NULL;
    }
    cassette_restore_integers(root);
    return root;
}

/* ---- walking --------------------------------------------------------------------------------- */

static inline int cassette_is_json_name(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

/* Visits every interaction of every file in dir/group (files in name order). Returns the
 * number of files loaded; a file that does not parse is reported on stderr and counted out. */
static inline size_t cassette_walk_group(const char *dir, const char *group,
                                         cassette_visit_fn visit, void *arg)
{
    char folder[4096];
    int flen = snprintf(folder, sizeof(folder), "%s/%s", dir, group);
    if (flen < 0 || (size_t)flen >= sizeof(folder))
        return 0;

    struct dirent **names = NULL;
    int n = scandir(folder, &names, cassette_is_json_name, alphasort);
    if (n < 0)
        return 0;

    size_t loaded = 0;
    for (int i = 0; i < n; i++) {
        char path[4096 + 256];
        int len = snprintf(path, sizeof(path), "%s/%s", folder, names[i]->d_name);
        free(names[i]);
        if (len < 0 || (size_t)len >= sizeof(path))
            continue;

        json_t *root = cassette_load_file(path);
        if (root == NULL)
            continue;

        cassette_t c = {path, group, json_string_value(json_object_get(root, "name")), root};
        size_t k;
        json_t *ix;
        json_array_foreach (json_object_get(root, "interactions"), k, ix)
            visit(&c, ix, arg);
        json_decref(root);
        loaded++;
    }
    free(names);
    return loaded;
}

/* The same over one group, or over every group when group is NULL. */
static inline size_t cassette_walk(const char *dir, const char *group, cassette_visit_fn visit,
                                   void *arg)
{
    if (group != NULL)
        return cassette_walk_group(dir, group, visit, arg);

    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return 0;

    size_t loaded = 0;
    for (int i = 0; i < n; i++) {
        char sub[4096 + 256];
        int len = snprintf(sub, sizeof(sub), "%s/%s", dir, names[i]->d_name);
        bool fits = len >= 0 && (size_t)len < sizeof(sub);
        if (fits && names[i]->d_name[0] != '.' && cassette_is_dir(sub))
            loaded += cassette_walk_group(dir, names[i]->d_name, visit, arg);
        free(names[i]);
    }
    free(names);
    return loaded;
}

#endif
