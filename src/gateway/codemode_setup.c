/*
 * codemode_setup.c - configuration -> Code Mode executor, with the gateway's start, reload and
 * stop (contract in codemode_setup.h).
 */
#include "gateway/codemode_setup.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

#define SANDBOX_NAME "gatehouse-sandbox"
#define SANDBOX_ENV "GATEHOUSE_SANDBOX"

static bool running; /* main thread only: start, reload and stop all run there */

void codemode_setup_limits(const config_t *cfg, codemode_limits_t *out)
{
    *out = (codemode_limits_t){
        .wall_ms =
            cfg->mcp_code_mode_wall_ms > 0 ? cfg->mcp_code_mode_wall_ms : CODEMODE_DEFAULT_WALL_MS,
        .cpu_s = cfg->mcp_code_mode_cpu_s > 0 ? cfg->mcp_code_mode_cpu_s : CODEMODE_DEFAULT_CPU_S,
        .memory_mb = cfg->mcp_code_mode_memory_mb > 0 ? cfg->mcp_code_mode_memory_mb
                                                      : CODEMODE_DEFAULT_MEMORY_MB,
        .output_bytes = cfg->mcp_code_mode_output_bytes > 0 ? cfg->mcp_code_mode_output_bytes
                                                            : CODEMODE_DEFAULT_OUTPUT_BYTES,
    };
}

static long setup_max_concurrent(const config_t *cfg)
{
    return cfg->mcp_code_mode_max_concurrent > 0 ? cfg->mcp_code_mode_max_concurrent
                                                 : CODEMODE_DEFAULT_MAX_CONCURRENT;
}

static bool has_code_mode_client(const config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_mcp_clients; i++) {
        if (cfg->mcp_clients[i].is_code_mode_client)
            return true;
    }
    return false;
}

/* GATEHOUSE_SANDBOX, else gatehouse-sandbox in the directory of our own binary. */
static bool sandbox_path(char *out, size_t cap, const char **from)
{
    const char *env = getenv(SANDBOX_ENV);
    if (env != NULL && env[0] != '\0') {
        *from = "from " SANDBOX_ENV;
        return (size_t)snprintf(out, cap, "%s", env) < cap;
    }
    *from = "beside the gatehouse binary";
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    return (size_t)snprintf(out, cap, "%s/%s", self, SANDBOX_NAME) < cap;
}

void codemode_setup_start(const config_t *cfg)
{
    if (running || !has_code_mode_client(cfg))
        return;
    char path[PATH_MAX];
    const char *from;
    if (!sandbox_path(path, sizeof(path), &from)) {
        log_error(
            NULL,
            "code mode: cannot find where gatehouse runs from (/proc/self/exe); set " SANDBOX_ENV
            " to the sandbox helper's path. Code Mode scripts will fail");
        return;
    }
    if (access(path, X_OK) != 0)
        log_error(NULL,
                  "code mode: the sandbox helper %s (%s) is not an executable file; Code"
                  " Mode scripts fail until it is",
                  path, from);
    codemode_limits_t lim;
    codemode_setup_limits(cfg, &lim);
    long max_concurrent = setup_max_concurrent(cfg);
    codemode_set_max_concurrent(max_concurrent);
    if (codemode_start(path, &lim) != 0)
        return;
    running = true;
    log_info(NULL,
             "code mode: starting the sandbox helper %s (%s); limits per script: %ld ms"
             " wall, %ld s CPU, %ld MiB memory, %ld bytes of output; at most %ld scripts at"
             " once",
             path, from, lim.wall_ms, lim.cpu_s, lim.memory_mb, lim.output_bytes, max_concurrent);
}

void codemode_setup_reload(const config_t *cfg)
{
    if (!running) {
        codemode_setup_start(cfg);
        return;
    }
    codemode_limits_t lim;
    codemode_setup_limits(cfg, &lim);
    codemode_set_defaults(&lim);
    codemode_set_max_concurrent(setup_max_concurrent(cfg));
}

void codemode_setup_stop(void)
{
    if (!running)
        return;
    codemode_stop();
    running = false;
}
