/*
 * hub_internal.h - what hub.c (the thread, the clients, the calls) and hub_catalog.c (building
 * and comparing catalog snapshots) share. Not for use outside src/mcp/ and its unit tests.
 *
 * The catalog is built from one hub_catalog_src_t per configured client: what the hub last
 * learnt about that client (its state and lists). Building is a pure function of those
 * sources, so tests can build catalogs without any server.
 */
#ifndef GATEHOUSE_MCP_HUB_INTERNAL_H
#define GATEHOUSE_MCP_HUB_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "mcp/client.h"
#include "mcp/hub.h"

/* What the catalog needs to know about one client. */
typedef struct hub_catalog_src {
    const char *name;
    mcp_transport_t transport;
    mcp_client_state_t state;
    const char *error;                        /* why it is down, or NULL */
    const char *const *tools_to_execute;      /* NULL-terminated patterns */
    const char *const *tools_to_auto_execute; /* NULL-terminated patterns */
    bool code_mode;
    const json_t *tools;     /* the last tools/list answer, or NULL when never listed */
    const json_t *resources; /* the same for resources/list ... */
    const json_t *templates; /* ... resources/templates/list ... */
    const json_t *prompts;   /* ... and prompts/list */
} hub_catalog_src_t;

/* A new catalog (refcount 1) of the sources, in their order for "clients". */
mcp_catalog_t *hub_catalog_build(const hub_catalog_src_t *src, size_t n, uint64_t version);
/* A catalog with nothing in it (refcount 1). */
mcp_catalog_t *hub_catalog_empty(uint64_t version);
/* True when the two catalogs hold the same tools, resources, templates, prompts and client
 * states; the version is not compared. */
bool hub_catalog_same(const mcp_catalog_t *a, const mcp_catalog_t *b);

/* "ready", "connecting", "down" or "closed". */
const char *hub_state_name(mcp_client_state_t state);
/* "stdio", "http" or "sse". */
const char *hub_transport_name(mcp_transport_t transport);

#endif
