/*
 * mcp_setup.h - the gateway's side of the tool hub: turns the configuration's "mcp" section
 * into mcp_hub_opts_t and starts, reconfigures and stops the hub with the gateway.
 *
 * The hub (mcp/hub.h) knows nothing of configuration files; this is where config_t meets it.
 * worker.c calls mcp_setup_start after the configuration is installed, mcp_setup_reload after
 * each reload, and mcp_setup_stop after the worker threads have been joined but before their
 * event loops are freed (a call still in flight then delivers to a loop that is still there).
 * A gateway without MCP clients runs no hub thread until a reload adds one.
 */
#ifndef GATEHOUSE_GATEWAY_MCP_SETUP_H
#define GATEHOUSE_GATEWAY_MCP_SETUP_H

#include "config/config.h"
#include "mcp/hub.h"

/* Fills opts from cfg. The strings and lists stay cfg's (the hub copies what it keeps); the
 * client array is allocated: release it with mcp_setup_opts_free. */
void mcp_setup_opts(const config_t *cfg, mcp_hub_opts_t *opts);
void mcp_setup_opts_free(mcp_hub_opts_t *opts);

/* Starts the hub when cfg has MCP clients. Returns 0, or -1 after logging why. */
int mcp_setup_start(const config_t *cfg);
/* Applies a reloaded configuration: reconfigures the running hub, or starts it when the new
 * configuration is the first with MCP clients. */
void mcp_setup_reload(const config_t *cfg);
/* Stops the hub if it runs. */
void mcp_setup_stop(void);

#endif
