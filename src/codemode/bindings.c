/*
 * bindings.c - Python names for the code-mode tools of one catalog (rules in bindings.h).
 *
 * Building is done once per request (or per /mcp call) from the catalog snapshot the worker
 * already holds: pick the tools, sort them by (client, tool), group them by client, then give
 * names in two scopes, servers and each server's tools. The bindings keep a catalog reference
 * so that the mcp_tool_t pointers and the catalog strings they borrow stay valid until the
 * last reference is dropped, possibly on the tool hub thread.
 */
#include "codemode/bindings.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

struct codemode_bindings {
    int refcount;                       /* atomic */
    mcp_catalog_t *cat;                 /* our reference */
    codemode_server_binding_t *servers; /* sorted by client name */
    size_t n_servers;
    size_t n_tools; /* over every server */
};

/* ---- identifiers ---------------------------------------------------------------------------- */

static const char *const py_keywords[] = {
    "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
    "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
    "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
    "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield",
};

/* Names the sandbox gives the script itself: a server or tool called so would be shadowed. */
static const char *const py_reserved[] = {"result", "ToolError"};

bool codemode_py_is_keyword(const char *name)
{
    for (size_t i = 0; i < sizeof py_keywords / sizeof py_keywords[0]; i++)
        if (strcmp(py_keywords[i], name) == 0)
            return true;
    return false;
}

static bool is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof py_reserved / sizeof py_reserved[0]; i++)
        if (strcmp(py_reserved[i], name) == 0)
            return true;
    return codemode_py_is_keyword(name);
}

static bool is_ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* One '_' per character that is not allowed; a multi-byte UTF-8 character counts once (its
 * continuation bytes are skipped), as in mcp/naming.c. */
char *codemode_py_ident(const char *name)
{
    size_t len = strlen(name);
    char *out = xmalloc(len + 3); /* '_' prefix, '_' suffix, NUL */
    size_t n = 0;

    if (name[0] >= '0' && name[0] <= '9')
        out[n++] = '_';
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        if (is_ident_char(*p))
            out[n++] = (char)*p;
        else if ((*p & 0xC0) != 0x80)
            out[n++] = '_';
    }
    if (n == 0)
        out[n++] = '_';
    out[n] = '\0';

    if (is_reserved(out)) {
        out[n++] = '_';
        out[n] = '\0';
    }
    return out;
}

static bool name_taken(char *const *assigned, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (assigned[i] != NULL && strcmp(assigned[i], name) == 0)
            return true;
    return false;
}

/* Identifiers for n distinct names given in sorted order, unique within the scope. Names that
 * map to themselves go first, so a clean "a_b" keeps its name against "a-b"; the others take
 * their identifier, or the first free numbered form of it. Quadratic, but a scope holds one
 * server's tools or the list of servers: tens, rarely a few hundred. */
static void assign_scope(const char *const *names, size_t n, char **out)
{
    for (size_t i = 0; i < n; i++) {
        char *id = codemode_py_ident(names[i]);
        out[i] = NULL;
        if (strcmp(id, names[i]) == 0)
            out[i] = id;
        else
            free(id);
    }

    for (size_t i = 0; i < n; i++) {
        if (out[i] != NULL)
            continue;
        char *id = codemode_py_ident(names[i]);
        size_t cap = strlen(id) + 24;
        char *candidate = xmalloc(cap);
        snprintf(candidate, cap, "%s", id);
        for (unsigned k = 2; name_taken(out, n, candidate); k++)
            snprintf(candidate, cap, "%s_%u", id, k);
        free(id);
        out[i] = candidate;
    }
}

/* ---- building ------------------------------------------------------------------------------- */

static int cmp_tool(const void *a, const void *b)
{
    const mcp_tool_t *x = *(const mcp_tool_t *const *)a;
    const mcp_tool_t *y = *(const mcp_tool_t *const *)b;
    int c = strcmp(x->client, y->client);
    return c != 0 ? c : strcmp(x->name, y->name);
}

static bool is_bound(const mcp_tool_t *t, const mcp_filter_t *filter)
{
    if (!t->code_mode || !t->executable || !t->available)
        return false;
    return filter == NULL || mcp_filter_allows_tool(filter, t);
}

/* The selected tools, sorted by (client, tool). Owned array of borrowed pointers. */
static const mcp_tool_t **select_tools(const mcp_catalog_t *cat, const mcp_filter_t *filter,
                                       size_t *n_out)
{
    const mcp_tool_t **picked = xcalloc(cat->n_tools + 1, sizeof *picked);
    size_t n = 0;

    for (size_t i = 0; i < cat->n_tools; i++)
        if (is_bound(&cat->tools[i], filter))
            picked[n++] = &cat->tools[i];
    qsort(picked, n, sizeof *picked, cmp_tool);
    *n_out = n;
    return picked;
}

/* Fills one server from the run of tools [first, first + n) of the same client. */
static void build_server(codemode_server_binding_t *s, const mcp_tool_t *const *run, size_t n)
{
    const char **names = xcalloc(n, sizeof *names);
    char **ids = xcalloc(n, sizeof *ids);

    s->client = run[0]->client;
    s->tools = xcalloc(n, sizeof *s->tools);
    s->n_tools = n;
    for (size_t i = 0; i < n; i++)
        names[i] = run[i]->name;
    assign_scope(names, n, ids);
    for (size_t i = 0; i < n; i++) {
        s->tools[i].py = ids[i];
        s->tools[i].tool = run[i]->name;
        s->tools[i].t = run[i];
    }
    free(names);
    free(ids);
}

static void name_servers(codemode_bindings_t *b)
{
    const char **names = xcalloc(b->n_servers + 1, sizeof *names);
    char **ids = xcalloc(b->n_servers + 1, sizeof *ids);

    for (size_t i = 0; i < b->n_servers; i++)
        names[i] = b->servers[i].client;
    assign_scope(names, b->n_servers, ids);
    for (size_t i = 0; i < b->n_servers; i++)
        b->servers[i].py = ids[i];
    free(names);
    free(ids);
}

codemode_bindings_t *codemode_bindings_build(mcp_catalog_t *cat, const mcp_filter_t *filter)
{
    codemode_bindings_t *b = xcalloc(1, sizeof *b);
    size_t n = 0;
    const mcp_tool_t **picked = select_tools(cat, filter, &n);

    b->refcount = 1;
    b->cat = cat;
    __atomic_add_fetch(&cat->refcount, 1, __ATOMIC_RELAXED);
    b->servers = xcalloc(n + 1, sizeof *b->servers);
    b->n_tools = n;

    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && strcmp(picked[j]->client, picked[i]->client) == 0)
            j++;
        build_server(&b->servers[b->n_servers++], picked + i, j - i);
        i = j;
    }
    name_servers(b);
    free(picked);
    return b;
}

/* ---- the shared bindings -------------------------------------------------------------------- */

/* The bindings of the catalog most recently asked for without a filter. They hold a reference
 * to that catalog, so comparing the pointer is safe: it cannot be freed and reused meanwhile.
 * Building happens outside the lock; two threads that race build twice and one result wins. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static codemode_bindings_t *shared; /* under shared_lock */

codemode_bindings_t *codemode_bindings_get(mcp_catalog_t *cat, const mcp_filter_t *filter)
{
    if (filter != NULL && !mcp_filter_is_open(filter))
        return codemode_bindings_build(cat, filter);

    pthread_mutex_lock(&shared_lock);
    codemode_bindings_t *b =
        shared != NULL && shared->cat == cat ? codemode_bindings_ref(shared) : NULL;
    pthread_mutex_unlock(&shared_lock);
    if (b != NULL)
        return b;

    b = codemode_bindings_build(cat, NULL);
    codemode_bindings_t *old = NULL;
    pthread_mutex_lock(&shared_lock);
    if (shared == NULL || shared->cat->version <= cat->version) {
        old = shared;
        shared = codemode_bindings_ref(b);
    }
    pthread_mutex_unlock(&shared_lock);
    codemode_bindings_release(old);
    return b;
}

void codemode_bindings_cache_clear(void)
{
    pthread_mutex_lock(&shared_lock);
    codemode_bindings_t *old = shared;
    shared = NULL;
    pthread_mutex_unlock(&shared_lock);
    codemode_bindings_release(old);
}

codemode_bindings_t *codemode_bindings_ref(codemode_bindings_t *b)
{
    __atomic_add_fetch(&b->refcount, 1, __ATOMIC_RELAXED);
    return b;
}

void codemode_bindings_release(codemode_bindings_t *b)
{
    if (b == NULL || __atomic_sub_fetch(&b->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < b->n_servers; i++) {
        codemode_server_binding_t *s = &b->servers[i];
        for (size_t k = 0; k < s->n_tools; k++)
            free((char *)s->tools[k].py);
        free(s->tools);
        free((char *)s->py);
    }
    free(b->servers);
    mcp_catalog_release(b->cat);
    free(b);
}

/* ---- reading -------------------------------------------------------------------------------- */

size_t codemode_bindings_count(const codemode_bindings_t *b)
{
    return b->n_servers;
}

const codemode_server_binding_t *codemode_bindings_server(const codemode_bindings_t *b, size_t i)
{
    return i < b->n_servers ? &b->servers[i] : NULL;
}

size_t codemode_bindings_tool_count(const codemode_bindings_t *b)
{
    return b->n_tools;
}

const codemode_tool_binding_t *codemode_bindings_find(const codemode_bindings_t *b,
                                                      const char *server_py, const char *tool_py,
                                                      const codemode_server_binding_t **server)
{
    for (size_t i = 0; i < b->n_servers; i++) {
        const codemode_server_binding_t *s = &b->servers[i];
        if (strcmp(s->py, server_py) != 0)
            continue;
        for (size_t k = 0; k < s->n_tools; k++) {
            if (strcmp(s->tools[k].py, tool_py) == 0) {
                if (server != NULL)
                    *server = s;
                return &s->tools[k];
            }
        }
        return NULL;
    }
    return NULL;
}

const codemode_tool_binding_t *codemode_bindings_find_mcp(const codemode_bindings_t *b,
                                                          const char *client, const char *tool,
                                                          const codemode_server_binding_t **server)
{
    for (size_t i = 0; i < b->n_servers; i++) {
        const codemode_server_binding_t *s = &b->servers[i];
        if (strcmp(s->client, client) != 0)
            continue;
        for (size_t k = 0; k < s->n_tools; k++) {
            if (strcmp(s->tools[k].tool, tool) == 0) {
                if (server != NULL)
                    *server = s;
                return &s->tools[k];
            }
        }
        return NULL;
    }
    return NULL;
}

const codemode_server_binding_t *codemode_bindings_find_server(const codemode_bindings_t *b,
                                                               const char *name)
{
    for (size_t i = 0; i < b->n_servers; i++)
        if (strcmp(b->servers[i].py, name) == 0)
            return &b->servers[i];
    for (size_t i = 0; i < b->n_servers; i++)
        if (strcmp(b->servers[i].client, name) == 0)
            return &b->servers[i];
    return NULL;
}
