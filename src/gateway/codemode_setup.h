/*
 * codemode_setup.h - the gateway's side of the Code Mode executor: starts the sandbox helper
 * with the gateway when a code-mode MCP client is configured, applies reloaded limits, stops
 * it before the tool hub.
 *
 * The helper program is found beside the gatehouse binary (the directory of /proc/self/exe,
 * file gatehouse-sandbox), unless the environment variable GATEHOUSE_SANDBOX names another
 * path (docs/code-mode.md). The limits come from tool_manager_config.code_mode_limits.
 * worker.c calls codemode_setup_start after mcp_setup_start, codemode_setup_reload after
 * mcp_setup_reload, and codemode_setup_stop before mcp_setup_stop.
 */
#ifndef GATEHOUSE_GATEWAY_CODEMODE_SETUP_H
#define GATEHOUSE_GATEWAY_CODEMODE_SETUP_H

#include "codemode/exec.h"
#include "config/config.h"

/* The default limits of cfg (fields at 0 in the file take the built-in defaults). */
void codemode_setup_limits(const config_t *cfg, codemode_limits_t *out);
/* Starts the helper when cfg has a code-mode client and it is not running yet. */
void codemode_setup_start(const config_t *cfg);
/* Applies a reloaded configuration: new default limits, or a first start. A helper that runs
 * keeps running when the last code-mode client goes (it costs one idle process). */
void codemode_setup_reload(const config_t *cfg);
void codemode_setup_stop(void);

#endif
