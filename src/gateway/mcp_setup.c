/*
 * mcp_setup.c - configuration -> tool hub options, and the hub's start, reload and stop with
 * the gateway (contract in mcp_setup.h).
 *
 * The config's lists are already NULL-terminated arrays that are never NULL (config.h), so they
 * are handed to the hub as they are; the hub copies them before mcp_hub_start or
 * mcp_hub_reconfigure returns, so the snapshot may go right after.
 */
#include "gateway/mcp_setup.h"

#include <stdbool.h>
#include <stdlib.h>

#include "codemode/bindings.h"
#include "util/alloc.h"
#include "util/log.h"

static bool hub_running; /* main thread only: start, reload and stop all run there */

static mcp_transport_t transport_of(config_mcp_connection_t c)
{
    switch (c) {
    case CONFIG_MCP_HTTP:
        return MCP_TRANSPORT_HTTP;
    case CONFIG_MCP_SSE:
        return MCP_TRANSPORT_SSE;
    case CONFIG_MCP_STDIO:
        break;
    }
    return MCP_TRANSPORT_STDIO;
}

void mcp_setup_opts(const config_t *cfg, mcp_hub_opts_t *opts)
{
    mcp_hub_client_spec_t *specs = xcalloc(cfg->n_mcp_clients + 1, sizeof(*specs));
    for (size_t i = 0; i < cfg->n_mcp_clients; i++) {
        const config_mcp_client_t *c = &cfg->mcp_clients[i];
        specs[i] = (mcp_hub_client_spec_t){
            .conn =
                {
                    .name = c->name,
                    .transport = transport_of(c->connection_type),
                    .command = c->command,
                    .args = (const char *const *)c->args,
                    .env_names = (const char *const *)c->envs,
                    .url = c->url,
                    .headers = (const char *const *)c->headers,
                },
            .tools_to_execute = (const char *const *)c->tools_to_execute,
            .tools_to_auto_execute = (const char *const *)c->tools_to_auto_execute,
            .is_code_mode = c->is_code_mode_client,
        };
    }
    int timeout_s = cfg->mcp_tool_execution_timeout_s > 0 ? cfg->mcp_tool_execution_timeout_s
                                                          : CONFIG_MCP_DEFAULT_TOOL_TIMEOUT_S;
    *opts = (mcp_hub_opts_t){
        .clients = specs,
        .n_clients = cfg->n_mcp_clients,
        .tool_timeout_ms = (long)timeout_s * 1000,
    };
}

void mcp_setup_opts_free(mcp_hub_opts_t *opts)
{
    free((void *)opts->clients);
    opts->clients = NULL;
    opts->n_clients = 0;
}

int mcp_setup_start(const config_t *cfg)
{
    if (cfg->n_mcp_clients == 0 || hub_running)
        return 0;
    mcp_hub_opts_t opts;
    mcp_setup_opts(cfg, &opts);
    int rc = mcp_hub_start(&opts);
    mcp_setup_opts_free(&opts);
    if (rc != 0) {
        log_crit(NULL, "cannot start the MCP tool hub (reason above); MCP tools are off");
        return -1;
    }
    hub_running = true;
    return 0;
}

void mcp_setup_reload(const config_t *cfg)
{
    if (!hub_running) {
        mcp_setup_start(cfg);
        return;
    }
    mcp_hub_opts_t opts;
    mcp_setup_opts(cfg, &opts);
    mcp_hub_reconfigure(&opts);
    mcp_setup_opts_free(&opts);
}

void mcp_setup_stop(void)
{
    if (!hub_running)
        return;
    codemode_bindings_cache_clear(); /* it holds a catalog reference */
    mcp_hub_stop();
    hub_running = false;
}
