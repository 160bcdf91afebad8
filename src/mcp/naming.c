/*
 * naming.c - exposed tool names and namespaced prompts and resources (rules in naming.h).
 *
 * The catalog is rebuilt on the hub thread whenever a server's lists change; it calls
 * mcp_naming_assign over every tool of every client, then keeps only the executable ones.
 * Naming over all tools (not only the executable ones) keeps a tool's name stable when an
 * operator widens or narrows tools_to_execute.
 */
#include "mcp/naming.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

/* ---- tools ---------------------------------------------------------------------------------- */

static bool name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Appends s with one '_' per character outside the allowed set. A UTF-8 sequence is one
 * character: its lead byte becomes '_' and its continuation bytes are dropped. */
static void append_sanitized(buf_t *out, const char *s)
{
    bool in_sequence = false;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool continuation = (*p & 0xC0) == 0x80;
        if (continuation && in_sequence)
            continue;
        in_sequence = *p >= 0xC0;
        buf_appendc(out, name_char_ok(*p) ? (char)*p : '_');
    }
}

char *mcp_naming_sanitize(const char *client, const char *tool)
{
    buf_t b = BUF_INIT;
    append_sanitized(&b, client);
    buf_appendc(&b, '-');
    append_sanitized(&b, tool);
    return buf_release(&b);
}

bool mcp_naming_is_clean(const char *client, const char *tool)
{
    for (const char *p = client; *p != '\0'; p++) {
        if (!name_char_ok((unsigned char)*p))
            return false;
    }
    for (const char *p = tool; *p != '\0'; p++) {
        if (!name_char_ok((unsigned char)*p))
            return false;
    }
    return true;
}

char *mcp_naming_hashed(const char *client, const char *tool, unsigned salt)
{
    buf_t in = BUF_INIT;
    buf_appends(&in, client);
    buf_appendc(&in, '\0');
    buf_appends(&in, tool);
    if (salt > 0)
        buf_appendf(&in, "%c%u", '\0', salt);

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_Digest(in.data, in.len, md, &md_len, EVP_sha256(), NULL);
    buf_free(&in);

    char *plain = mcp_naming_sanitize(client, tool);
    size_t keep = strlen(plain);
    if (keep > MCP_NAME_PREFIX_MAX)
        keep = MCP_NAME_PREFIX_MAX;
    char *out = xmalloc(keep + 1 + 8 + 1);
    memcpy(out, plain, keep);
    snprintf(out + keep, 10, "_%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
    free(plain);
    return out;
}

/* Work item of mcp_naming_assign: one entry with its sanitized name. */
typedef struct slot {
    mcp_name_entry_t *e;
    char *plain;
    bool clean; /* nothing rewritten and short enough: a candidate to keep the plain name */
} slot_t;

static int cmp_slot(const void *a, const void *b)
{
    const slot_t *x = a;
    const slot_t *y = b;
    int c = strcmp(x->plain, y->plain);
    if (c == 0)
        c = strcmp(x->e->client, y->e->client);
    if (c == 0)
        c = strcmp(x->e->tool, y->e->tool);
    return c;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True when name is a plain name already given (sorted) or one of the hashed names given so
 * far. */
static bool name_taken(const char *name, char **plain, size_t n_plain, char **hashed,
                       size_t n_hashed)
{
    if (bsearch(&name, plain, n_plain, sizeof(char *), cmp_str) != NULL)
        return true;
    for (size_t i = 0; i < n_hashed; i++) {
        if (strcmp(hashed[i], name) == 0)
            return true;
    }
    return false;
}

/* Decides which members of the group [from, to) of equal plain names keep the plain name:
 * sets e->exposed for that one and leaves the others NULL. */
static void settle_group(slot_t *slots, size_t from, size_t to)
{
    if (to - from == 1) {
        if (strlen(slots[from].plain) <= MCP_NAME_MAX)
            slots[from].e->exposed = xstrdup(slots[from].plain);
        return;
    }

    size_t n_clean = 0;
    size_t winner = to;
    for (size_t i = from; i < to; i++) {
        if (slots[i].clean) {
            n_clean++;
            winner = i;
        }
    }
    if (n_clean == 1)
        slots[winner].e->exposed = xstrdup(slots[winner].plain);
}

void mcp_naming_assign(mcp_name_entry_t *entries, size_t n)
{
    if (n == 0)
        return;
    slot_t *slots = xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i < n; i++) {
        slots[i].e = &entries[i];
        slots[i].e->exposed = NULL;
        slots[i].plain = mcp_naming_sanitize(entries[i].client, entries[i].tool);
        slots[i].clean = strlen(slots[i].plain) <= MCP_NAME_MAX &&
                         mcp_naming_is_clean(entries[i].client, entries[i].tool);
    }
    qsort(slots, n, sizeof(*slots), cmp_slot);

    /* First the plain names: one per group of equal sanitized names at most. */
    for (size_t from = 0; from < n;) {
        size_t to = from + 1;
        while (to < n && strcmp(slots[to].plain, slots[from].plain) == 0)
            to++;
        settle_group(slots, from, to);
        from = to;
    }

    char **plain = xcalloc(n, sizeof(char *));
    size_t n_plain = 0;
    for (size_t i = 0; i < n; i++) {
        if (slots[i].e->exposed != NULL)
            plain[n_plain++] = slots[i].e->exposed;
    }
    qsort(plain, n_plain, sizeof(char *), cmp_str);

    /* Then the hashed names, in sorted order so that a salt (if one is ever needed) goes to
     * the same tool every time. */
    char **hashed = xcalloc(n, sizeof(char *));
    size_t n_hashed = 0;
    for (size_t i = 0; i < n; i++) {
        mcp_name_entry_t *e = slots[i].e;
        if (e->exposed != NULL)
            continue;
        unsigned salt = 0;
        char *name = mcp_naming_hashed(e->client, e->tool, salt);
        while (name_taken(name, plain, n_plain, hashed, n_hashed)) {
            free(name);
            name = mcp_naming_hashed(e->client, e->tool, ++salt);
        }
        e->exposed = name;
        hashed[n_hashed++] = name;
    }

    for (size_t i = 0; i < n; i++)
        free(slots[i].plain);
    free(slots);
    free(plain);
    free(hashed);
}

/* ---- prompts and resources ------------------------------------------------------------------ */

char *mcp_naming_prompt(const char *client, const char *prompt)
{
    buf_t b = BUF_INIT;
    buf_appendf(&b, "%s-%s", client, prompt);
    return buf_release(&b);
}

char *mcp_naming_resource_uri(const char *client, const char *uri)
{
    buf_t b = BUF_INIT;
    buf_appendf(&b, "%s%s/%s", MCP_RESOURCE_SCHEME, client, uri);
    return buf_release(&b);
}

const char *mcp_naming_parse_resource_uri(const char *namespaced, char *client, size_t cap)
{
    size_t scheme_len = strlen(MCP_RESOURCE_SCHEME);
    if (namespaced == NULL || strncmp(namespaced, MCP_RESOURCE_SCHEME, scheme_len) != 0)
        return NULL;
    const char *name = namespaced + scheme_len;
    const char *slash = strchr(name, '/');
    if (slash == NULL || slash == name || (size_t)(slash - name) >= cap)
        return NULL;
    memcpy(client, name, (size_t)(slash - name));
    client[slash - name] = '\0';
    return slash + 1;
}

/* Adds "gatehouse/<key>": value to the item's _meta, creating _meta when needed. */
static void set_meta(json_t *item, const char *key, const char *value)
{
    json_t *meta = json_object_get(item, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(item, "_meta", meta);
    }
    char full[64];
    snprintf(full, sizeof(full), "gatehouse/%s", key);
    json_object_set_new(meta, full, json_string(value));
}

json_t *mcp_naming_prompt_item(const char *client, const json_t *item)
{
    const char *name = json_string_value(json_object_get(item, "name"));
    if (name == NULL)
        return NULL;
    json_t *copy = json_deep_copy(item);
    char *exposed = mcp_naming_prompt(client, name);
    json_object_set_new(copy, "name", json_string(exposed));
    free(exposed);
    set_meta(copy, "client", client);
    set_meta(copy, "name", name);
    return copy;
}

json_t *mcp_naming_resource_item(const char *client, const json_t *item, const char *uri_field)
{
    const char *uri = json_string_value(json_object_get(item, uri_field));
    if (uri == NULL)
        return NULL;
    json_t *copy = json_deep_copy(item);
    char *exposed = mcp_naming_resource_uri(client, uri);
    json_object_set_new(copy, uri_field, json_string(exposed));
    free(exposed);
    set_meta(copy, "client", client);
    set_meta(copy, "uri", uri);
    return copy;
}
