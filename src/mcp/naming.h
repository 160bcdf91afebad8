/*
 * naming.h - the names the gateway gives to what MCP servers offer: exposed tool names, and the
 * namespaced names of prompts and resources in the merged catalog.
 *
 * Tools. A tool "search" of the client "github" is exposed as "github-search". Providers accept
 * at most 64 characters of [A-Za-z0-9_-] in a function name (OpenAI's rule, the strictest), so
 * every other character becomes '_' (one '_' per UTF-8 character). A name that is still longer
 * than 64 characters, or that several tools would share, is shortened deterministically to a
 * prefix of at most 55 characters, '_' and 8 hex digits of the SHA-256 of the client's name, a
 * NUL byte and the tool's name (the NUL keeps "a"+"b-c" apart from "a-b"+"c"). In a collision,
 * a name that needed no rewriting at all keeps it when it is the only such one; every other
 * contender gets the hashed form. The result depends only on the set of (client, tool) pairs,
 * never on their order, so names are stable across restarts and across threads.
 *
 * Prompts are exposed as "<client>-<prompt>" with no rewriting (no provider sees them); the
 * resources' "uri" (and templates' "uriTemplate") become "gatehouse://<client>/<original>", so
 * two servers' "file:///x" stay apart and the client can be read back from the URI. Each
 * namespaced item also carries its origin in "_meta": "gatehouse/client" and "gatehouse/name"
 * (prompts) or "gatehouse/uri" (resources and templates).
 */
#ifndef GATEHOUSE_MCP_NAMING_H
#define GATEHOUSE_MCP_NAMING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MCP_NAME_MAX 64        /* longest exposed tool name */
#define MCP_NAME_PREFIX_MAX 55 /* prefix kept before "_" + 8 hex digits */
#define MCP_RESOURCE_SCHEME "gatehouse://"

typedef struct mcp_name_entry {
    const char *client; /* in: the client's name */
    const char *tool;   /* in: the tool's name on its server */
    char *exposed;      /* out: owned by the caller after mcp_naming_assign */
} mcp_name_entry_t;

/* "<client>-<tool>" with every character outside [A-Za-z0-9_-] replaced by '_'. Owned. */
char *mcp_naming_sanitize(const char *client, const char *tool);
/* True when the sanitized name is exactly "<client>-<tool>" (nothing was rewritten). */
bool mcp_naming_is_clean(const char *client, const char *tool);
/* The shortened form: prefix of the sanitized name, '_', 8 hex digits of the hash. salt > 0
 * adds a counter to the hash input (only for the astronomically rare case where a hashed name
 * is taken too). Owned. */
char *mcp_naming_hashed(const char *client, const char *tool, unsigned salt);
/* Gives every entry its exposed name, following the rules above. Entries must be distinct
 * (client, tool) pairs. */
void mcp_naming_assign(mcp_name_entry_t *entries, size_t n);

/* "<client>-<prompt>". Owned. */
char *mcp_naming_prompt(const char *client, const char *prompt);
/* "gatehouse://<client>/<uri>". Owned. */
char *mcp_naming_resource_uri(const char *client, const char *uri);
/* Splits "gatehouse://<client>/<uri>": copies the client name into client (cap bytes) and
 * returns a pointer to the original URI inside namespaced, or NULL when it is not one. */
const char *mcp_naming_parse_resource_uri(const char *namespaced, char *client, size_t cap);

/* Copies of a server's prompt, resource or template item, namespaced as above. */
json_t *mcp_naming_prompt_item(const char *client, const json_t *item);
json_t *mcp_naming_resource_item(const char *client, const json_t *item, const char *uri_field);

#endif
