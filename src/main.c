/*
 * main.c - the gatehouse command line: serve, check-config, audit, mcp, --help, --version.
 *
 * `serve` loads the configuration (a file, or the environment when no file is given), starts
 * the worker threads (gateway/worker.c) and runs the control loop on this thread until SIGTERM
 * or SIGINT. Everything after start-up happens in gateway/.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/check.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "mcp/cli.h"
#include "telemetry/audit.h"
#include "util/alloc.h"
#include "util/log.h"

static void print_usage(FILE *out)
{
    fprintf(
        out,
        "gatehouse %s - an AI gateway: one OpenAI-compatible API in front of many providers\n"
        "\n"
        "usage:\n"
        "  gatehouse serve [--config FILE] [--host H] [--port P] [--threads N]\n"
        "                  [--data-dir DIR] [--log-level LEVEL]\n"
        "  gatehouse check-config FILE\n"
        "  gatehouse audit verify DIR           check the audit trail's hash chain\n"
        "  gatehouse audit show REQUEST_ID [--data-dir DIR]\n"
        "                                       print the upstream exchanges of a request\n"
        "  gatehouse mcp list URL|--config FILE list an MCP server's tools (--help: options)\n"
        "  gatehouse mcp call URL TOOL [JSON]   call one tool and print its result\n"
        "  gatehouse --help | --version\n"
        "\n"
        "serve options:\n"
        "  --config FILE     JSON configuration (Bifrost-compatible field names); without it,\n"
        "                    providers are enabled from OPENAI_API_KEY, ANTHROPIC_API_KEY, ...\n"
        "  --host H          address to listen on (default from config, else 0.0.0.0)\n"
        "  --port P          port to listen on (default from config, else 8080)\n"
        "  --threads N       worker threads (default: one per core)\n"
        "  --data-dir DIR    where logs and state are kept (default ./data)\n"
        "  --log-level L     debug, info, warn, error or crit (default info)\n"
        "\n"
        "signals: SIGHUP reloads the configuration file; SIGTERM and SIGINT stop accepting,\n"
        "let requests in flight finish (up to server.shutdown_timeout_seconds), then exit.\n",
        GATEHOUSE_VERSION);
}

static void print_report(const config_report_t *report, const char *source)
{
    for (size_t i = 0; i < report->count; i++) {
        const config_problem_t *p = &report->items[i];
        log_msg(p->is_error ? LOG_LVL_ERROR : LOG_LVL_WARN, NULL, "config %s: %s: %s", source,
                p->path, p->message);
    }
}

static config_t *load_config(const char *path)
{
    config_report_t report;
    config_report_init(&report);
    config_t *cfg = path ? config_load_file(path, &report) : config_from_env(&report);
    print_report(&report, path ? path : "environment");
    config_report_free(&report);

    if (cfg == NULL)
        log_crit(NULL, "configuration %s is invalid (problems above); not starting", path);
    else if (cfg->n_providers == 0)
        log_warn(NULL,
                 "no provider is configured (%s); every chat request will fail until one"
                 " is added",
                 path ? path : "set OPENAI_API_KEY or ANTHROPIC_API_KEY, or --config");
    return cfg;
}

static int parse_int(const char *text, const char *what, int min, int max, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "gatehouse: %s must be a number from %d to %d, not '%s'\n", what, min, max,
                text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},   {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},     {"threads", required_argument, NULL, 't'},
        {"data-dir", required_argument, NULL, 'd'}, {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    gateway_opts_t opts = {.port = -1, .threads = -1, .data_dir = "./data"};
    const char *level_name = NULL;

    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:H:p:t:d:l:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            opts.config_path = optarg;
            break;
        case 'H':
            opts.host = optarg;
            break;
        case 'd':
            opts.data_dir = optarg;
            break;
        case 'l':
            level_name = optarg;
            break;
        case 'p':
            if (parse_int(optarg, "--port", 0, 65535, &opts.port) != 0)
                return 2;
            break;
        case 't':
            if (parse_int(optarg, "--threads", 1, 1024, &opts.threads) != 0)
                return 2;
            break;
        case 'h':
            print_usage(stdout);
            return 0;
        default:
            print_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gatehouse: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    config_t *cfg = load_config(opts.config_path);
    if (cfg == NULL)
        return 1;

    log_level_t level;
    const char *wanted = level_name ? level_name : cfg->log_level;
    if (wanted != NULL && !log_parse_level(wanted, &level)) {
        fprintf(stderr, "gatehouse: unknown log level '%s'\n", wanted);
        config_release(cfg);
        return 2;
    }
    if (wanted != NULL)
        log_set_level(level);

    if (gateway_start(cfg, &opts) != 0)
        return 1;
    return gateway_run();
}

/* `audit verify DIR` and `audit show REQUEST_ID [--data-dir DIR]`; exit statuses as in
 * telemetry/audit.h (0 fine, 1 broken or not found, 2 unreadable or bad usage). */
static int cmd_audit(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "verify") == 0)
        return audit_verify(argv[2], stdout);

    bool show = argc >= 3 && strcmp(argv[1], "show") == 0;
    if (show && (argc == 3 || (argc == 5 && strcmp(argv[3], "--data-dir") == 0))) {
        char dir[4096];
        int n = snprintf(dir, sizeof(dir), "%s/audit", argc == 5 ? argv[4] : "./data");
        if (n > 0 && (size_t)n < sizeof(dir))
            return audit_show(dir, argv[2], stdout);
    }
    fprintf(stderr, "usage: gatehouse audit verify DIR\n"
                    "       gatehouse audit show REQUEST_ID [--data-dir DIR]\n");
    return 2;
}

int main(int argc, char **argv)
{
    alloc_init();

    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("gatehouse %s\n", GATEHOUSE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "check-config") == 0) {
        if (argc != 3) {
            fprintf(stderr, "usage: gatehouse check-config FILE\n");
            return 2;
        }
        return config_check_file(argv[2], stdout);
    }
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(argc - 1, argv + 1);
    if (strcmp(cmd, "mcp") == 0)
        return mcp_cli_main(argc - 1, argv + 1);

    fprintf(stderr, "gatehouse: unknown command '%s' (try --help)\n", cmd);
    return 2;
}
