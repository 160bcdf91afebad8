/*
 * hub_catalog.c - the catalog snapshot: built on the hub thread from what each client last
 * listed, read by every thread, freed by whichever thread drops the last reference.
 *
 * A snapshot is immutable once built. Its tool definitions are not copied: they are the very
 * objects of the servers' tools/list answers, shared by reference with the hub's own lists.
 * That is safe because nothing ever modifies them after parsing, jansson's reference counts
 * are atomic (JANSSON_THREAD_SAFE_REFCOUNT) and, since jansson 2.13, encoding and copying
 * detect loops without marking the values, so several threads may read and dump one value at
 * the same time.
 *
 * Building: every tool of every client is named (naming.h) over the whole set, then only the
 * tools that tools_to_execute allows are kept, sorted by exposed name for the binary search of
 * mcp_catalog_find. Prompts, resources and templates are copied with their namespaced names.
 */
#include <stdlib.h>
#include <string.h>

#include "mcp/filter.h"
#include "mcp/hub_internal.h"
#include "mcp/naming.h"
#include "util/alloc.h"

#if !defined(JANSSON_THREAD_SAFE_REFCOUNT) || JANSSON_VERSION_HEX < 0x020d00
#error "the catalog shares JSON values between threads: jansson >= 2.13 with atomic refcounts"
#endif

const char *hub_state_name(mcp_client_state_t state)
{
    switch (state) {
    case MCP_STATE_CONNECTING:
        return "connecting";
    case MCP_STATE_READY:
        return "ready";
    case MCP_STATE_DOWN:
        return "down";
    case MCP_STATE_CLOSED:
        break;
    }
    return "closed";
}

const char *hub_transport_name(mcp_transport_t transport)
{
    switch (transport) {
    case MCP_TRANSPORT_HTTP:
        return "http";
    case MCP_TRANSPORT_SSE:
        return "sse";
    case MCP_TRANSPORT_STDIO:
        break;
    }
    return "stdio";
}

/* ---- lifetime ------------------------------------------------------------------------------- */

mcp_catalog_t *hub_catalog_empty(uint64_t version)
{
    mcp_catalog_t *cat = xcalloc(1, sizeof(*cat));
    cat->refcount = 1;
    cat->version = version;
    cat->resources = json_array();
    cat->templates = json_array();
    cat->prompts = json_array();
    cat->clients = json_array();
    return cat;
}

void mcp_catalog_release(mcp_catalog_t *cat)
{
    if (cat == NULL || __atomic_sub_fetch(&cat->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < cat->n_tools; i++) {
        mcp_tool_t *t = &cat->tools[i];
        free((char *)t->client);
        free((char *)t->name);
        free((char *)t->exposed);
        json_decref((json_t *)t->def);
    }
    free(cat->tools);
    json_decref(cat->resources);
    json_decref(cat->templates);
    json_decref(cat->prompts);
    json_decref(cat->clients);
    free(cat);
}

static int cmp_exposed(const void *a, const void *b)
{
    return strcmp(((const mcp_tool_t *)a)->exposed, ((const mcp_tool_t *)b)->exposed);
}

const mcp_tool_t *mcp_catalog_find(const mcp_catalog_t *cat, const char *exposed)
{
    if (cat == NULL || exposed == NULL || cat->n_tools == 0)
        return NULL;
    mcp_tool_t key = {.exposed = exposed};
    return bsearch(&key, cat->tools, cat->n_tools, sizeof(mcp_tool_t), cmp_exposed);
}

/* ---- building ------------------------------------------------------------------------------- */

/* One listed tool on its way into the catalog. */
typedef struct candidate {
    size_t src;        /* index of its client in the sources */
    size_t pos;        /* its position in the server's list */
    const char *name;  /* the server's name for it */
    const json_t *def; /* the server's tool object */
} candidate_t;

static int cmp_candidate(const void *a, const void *b)
{
    const candidate_t *x = a;
    const candidate_t *y = b;
    if (x->src != y->src)
        return x->src < y->src ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Every named tool of every listed client, sorted by client and name. A server that lists a
 * name twice is broken; its first definition is the one kept. */
static candidate_t *collect_tools(const hub_catalog_src_t *src, size_t n, size_t *out_n)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += json_array_size(src[i].tools);
    candidate_t *c = xcalloc(cap + 1, sizeof(*c));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j;
        const json_t *tool;
        json_array_foreach (src[i].tools, j, tool) {
            const char *name = json_string_value(json_object_get(tool, "name"));
            if (name != NULL && json_is_object(tool))
                c[k++] = (candidate_t){i, j, name, tool};
        }
    }
    qsort(c, k, sizeof(*c), cmp_candidate);

    size_t kept = 0;
    for (size_t i = 0; i < k; i++) {
        if (kept > 0 && c[kept - 1].src == c[i].src && strcmp(c[kept - 1].name, c[i].name) == 0)
            continue;
        c[kept++] = c[i];
    }
    *out_n = kept;
    return c;
}

/* Fills cat->tools from the sources; returns the executable tool count of each source in
 * counts. */
static void build_tools(mcp_catalog_t *cat, const hub_catalog_src_t *src, size_t n, size_t *counts)
{
    size_t n_cand;
    candidate_t *cand = collect_tools(src, n, &n_cand);
    mcp_name_entry_t *names = xcalloc(n_cand + 1, sizeof(*names));
    for (size_t i = 0; i < n_cand; i++)
        names[i] = (mcp_name_entry_t){src[cand[i].src].name, cand[i].name, NULL};
    mcp_naming_assign(names, n_cand);

    cat->tools = xcalloc(n_cand + 1, sizeof(mcp_tool_t));
    for (size_t i = 0; i < n_cand; i++) {
        const hub_catalog_src_t *s = &src[cand[i].src];
        if (!mcp_filter_list_allows(s->tools_to_execute, cand[i].name)) {
            free(names[i].exposed);
            continue;
        }
        counts[cand[i].src]++;
        cat->tools[cat->n_tools++] = (mcp_tool_t){
            .client = xstrdup(s->name),
            .name = xstrdup(cand[i].name),
            .exposed = names[i].exposed,
            .def = json_incref((json_t *)cand[i].def),
            .available = s->state == MCP_STATE_READY,
            .executable = true,
            .auto_execute = mcp_filter_list_allows(s->tools_to_auto_execute, cand[i].name),
            .code_mode = s->code_mode,
        };
    }
    qsort(cat->tools, cat->n_tools, sizeof(mcp_tool_t), cmp_exposed);
    free(names);
    free(cand);
}

typedef json_t *(*namespace_fn)(const char *client, const json_t *item, const char *field);

static json_t *prompt_item(const char *client, const json_t *item, const char *field)
{
    return mcp_naming_prompt_item(client, item);
}

/* Appends the namespaced copies of one client's items; items that lack the field are left
 * out (a server bug; nothing could address them). */
static void add_items(json_t *out, const char *client, const json_t *items, namespace_fn fn,
                      const char *field)
{
    size_t i;
    const json_t *item;
    json_array_foreach (items, i, item) {
        json_t *copy = fn(client, item, field);
        if (copy != NULL)
            json_array_append_new(out, copy);
    }
}

static json_t *client_entry(const hub_catalog_src_t *s, size_t n_tools)
{
    json_t *e = json_object();
    json_object_set_new(e, "name", json_string(s->name));
    json_object_set_new(e, "state", json_string(hub_state_name(s->state)));
    json_object_set_new(e, "transport", json_string(hub_transport_name(s->transport)));
    json_object_set_new(e, "tools", json_integer((json_int_t)n_tools));
    json_object_set_new(e, "error",
                        s->error != NULL && s->state != MCP_STATE_READY ? json_string(s->error)
                                                                        : json_null());
    return e;
}

mcp_catalog_t *hub_catalog_build(const hub_catalog_src_t *src, size_t n, uint64_t version)
{
    mcp_catalog_t *cat = hub_catalog_empty(version);
    size_t *counts = xcalloc(n + 1, sizeof(size_t));
    build_tools(cat, src, n, counts);

    for (size_t i = 0; i < n; i++) {
        add_items(cat->resources, src[i].name, src[i].resources, mcp_naming_resource_item, "uri");
        add_items(cat->templates, src[i].name, src[i].templates, mcp_naming_resource_item,
                  "uriTemplate");
        add_items(cat->prompts, src[i].name, src[i].prompts, prompt_item, "name");
        json_array_append_new(cat->clients, client_entry(&src[i], counts[i]));
    }
    free(counts);
    return cat;
}

/* ---- comparing ------------------------------------------------------------------------------ */

static bool same_tool(const mcp_tool_t *a, const mcp_tool_t *b)
{
    return strcmp(a->exposed, b->exposed) == 0 && strcmp(a->client, b->client) == 0 &&
           strcmp(a->name, b->name) == 0 && a->available == b->available &&
           a->executable == b->executable && a->auto_execute == b->auto_execute &&
           a->code_mode == b->code_mode && json_equal(a->def, b->def);
}

bool hub_catalog_same(const mcp_catalog_t *a, const mcp_catalog_t *b)
{
    if (a->n_tools != b->n_tools)
        return false;
    for (size_t i = 0; i < a->n_tools; i++) {
        if (!same_tool(&a->tools[i], &b->tools[i]))
            return false;
    }
    return json_equal(a->resources, b->resources) && json_equal(a->templates, b->templates) &&
           json_equal(a->prompts, b->prompts) && json_equal(a->clients, b->clients);
}
