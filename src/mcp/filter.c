/*
 * filter.c - per-request tool filters: comma lists of glob patterns, combined with the
 * catalog's executable flag (rules and header syntax in filter.h).
 *
 * The gateway builds one filter per request from its headers (tool injection, the execute
 * endpoint, the /mcp server) and asks it about each catalog tool; the hub uses the glob
 * matcher for tools_to_execute.
 */
#include "mcp/filter.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

/* ---- matching ------------------------------------------------------------------------------- */

/* Classic glob with one backtrack point: on a mismatch after a '*', the star swallows one
 * more character and matching resumes. Linear in practice, O(n*m) at worst; patterns and
 * names are short. */
bool mcp_filter_glob(const char *pattern, const char *name)
{
    const char *p = pattern;
    const char *n = name;
    const char *star = NULL;
    const char *resume = NULL;

    while (*n != '\0') {
        if (*p == '*') {
            star = p++;
            resume = n;
        } else if (*p == '?' || *p == *n) {
            p++;
            n++;
        } else if (star != NULL) {
            p = star + 1;
            n = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

bool mcp_filter_list_allows(const char *const *patterns, const char *name)
{
    for (size_t i = 0; patterns != NULL && patterns[i] != NULL; i++) {
        if (mcp_filter_glob(patterns[i], name))
            return true;
    }
    return false;
}

/* ---- building ------------------------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits a comma list into trimmed, non-empty items. Never NULL. */
static char **split_list(const char *value)
{
    size_t cap = 1;
    for (const char *p = value; *p != '\0'; p++)
        cap += *p == ',';
    char **items = xcalloc(cap + 1, sizeof(char *));
    size_t n = 0;

    const char *p = value;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p;
        const char *b = end;
        while (a < b && is_space(*a))
            a++;
        while (b > a && is_space(b[-1]))
            b--;
        if (b > a)
            items[n++] = xstrndup(a, (size_t)(b - a));
        p = *end == ',' ? end + 1 : end;
    }
    return items;
}

static int add_restriction(mcp_filter_list_t *lists, size_t *n, const char *value)
{
    if (value == NULL)
        return 0;
    if (*n >= MCP_FILTER_MAX_RESTRICTIONS)
        return -1;
    lists[(*n)++].patterns = split_list(value);
    return 0;
}

int mcp_filter_restrict_clients(mcp_filter_t *f, const char *value)
{
    return add_restriction(f->clients, &f->n_clients, value);
}

int mcp_filter_restrict_tools(mcp_filter_t *f, const char *value)
{
    return add_restriction(f->tools, &f->n_tools, value);
}

void mcp_filter_from_headers(mcp_filter_t *f, const char *(*get)(void *arg, const char *name),
                             void *arg)
{
    mcp_filter_restrict_clients(f, get(arg, MCP_FILTER_HEADER_CLIENTS));
    mcp_filter_restrict_clients(f, get(arg, MCP_FILTER_HEADER_BF_CLIENTS));
    mcp_filter_restrict_tools(f, get(arg, MCP_FILTER_HEADER_TOOLS));
    mcp_filter_restrict_tools(f, get(arg, MCP_FILTER_HEADER_BF_TOOLS));
}

static void free_lists(mcp_filter_list_t *lists, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; lists[i].patterns[j] != NULL; j++)
            free(lists[i].patterns[j]);
        free(lists[i].patterns);
        lists[i].patterns = NULL;
    }
}

void mcp_filter_free(mcp_filter_t *f)
{
    free_lists(f->clients, f->n_clients);
    free_lists(f->tools, f->n_tools);
    f->n_clients = 0;
    f->n_tools = 0;
}

/* ---- deciding ------------------------------------------------------------------------------- */

bool mcp_filter_is_open(const mcp_filter_t *f)
{
    return f->n_clients == 0 && f->n_tools == 0;
}

bool mcp_filter_allows_client(const mcp_filter_t *f, const char *client)
{
    for (size_t i = 0; i < f->n_clients; i++) {
        if (!mcp_filter_list_allows((const char *const *)f->clients[i].patterns, client))
            return false;
    }
    return true;
}

/* True when one pattern of the list matches one of the tool's names. */
static bool tool_list_allows(const mcp_filter_list_t *list, const char *const names[4])
{
    for (size_t i = 0; list->patterns[i] != NULL; i++) {
        for (size_t k = 0; k < 4; k++) {
            if (names[k] != NULL && mcp_filter_glob(list->patterns[i], names[k]))
                return true;
        }
    }
    return false;
}

bool mcp_filter_allows(const mcp_filter_t *f, const char *client, const char *tool,
                       const char *exposed)
{
    if (!mcp_filter_allows_client(f, client))
        return false;
    if (f->n_tools == 0)
        return true;

    buf_t dash = BUF_INIT;
    buf_t slash = BUF_INIT;
    buf_appendf(&dash, "%s-%s", client, tool);
    buf_appendf(&slash, "%s/%s", client, tool);
    const char *const names[4] = {exposed, buf_cstr(&dash), buf_cstr(&slash), tool};

    bool ok = true;
    for (size_t i = 0; i < f->n_tools && ok; i++)
        ok = tool_list_allows(&f->tools[i], names);
    buf_free(&dash);
    buf_free(&slash);
    return ok;
}

bool mcp_filter_allows_tool(const mcp_filter_t *f, const mcp_tool_t *t)
{
    return t->executable && mcp_filter_allows(f, t->client, t->name, t->exposed);
}
