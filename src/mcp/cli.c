/*
 * cli.c - `gatehouse mcp list` and `gatehouse mcp call` (usage in cli.h).
 *
 * One run is one event loop: every server gets an mcp_client (client.h) on that loop and its
 * own upstream pool; when a client becomes ready, its list or call request goes out; when
 * every server has answered or failed, or the deadline passes, the loop stops and the results
 * are printed. The client reconnects forever on its own; here the first failure is final, so
 * a server that is down says so at once instead of retrying until the deadline.
 *
 * Output goes to stdout (tools, or the call's content as a model would see it: content.h);
 * what went wrong goes to stderr. The library's own logging is turned down to warnings, since
 * a person is reading.
 */
#include "mcp/cli.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "http/upstream.h"
#include "mcp/client.h"
#include "mcp/content.h"
#include "util/alloc.h"
#include "util/log.h"

#define DEFAULT_TIMEOUT_S 30
#define NAME_COLUMN_MAX 40 /* longer tool names push the description further right */
#define MAX_HEADERS 64

typedef enum cli_op { CLI_LIST, CLI_CALL } cli_op_t;

typedef struct cli cli_t;

/* One server being asked. */
typedef struct cli_server {
    cli_t *cli;
    mcp_client_opts_t opts; /* borrowed strings (argv, or the configuration) */
    mcp_client_t *client;
    bool finished;       /* answered or failed */
    char error[600];     /* why it failed; "" when it did not */
    json_t *result;      /* list: the tools array; call: the CallToolResult */
    mcp_error_t rpc_err; /* call: the JSON-RPC error, when code != 0 */
} cli_server_t;

struct cli {
    cli_op_t op;
    bool json_out;
    long timeout_s;
    const char *tool;  /* call */
    json_t *arguments; /* call; owned */
    struct event_base *base;
    upstream_pool_t *pool;
    config_t *cfg; /* --config: the loaded file, whose strings the servers borrow */
    cli_server_t *servers;
    size_t n_servers;
    size_t unfinished;
    struct event *deadline;
};

/* ---- usage ---------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage:\n"
            "  gatehouse mcp list URL [--sse] [--header 'Name: value']... [--json]\n"
            "  gatehouse mcp list --config FILE [--json]\n"
            "  gatehouse mcp call URL TOOL [JSON_ARGS] [--sse] [--header 'Name: value']..."
            " [--json]\n"
            "\n"
            "  URL              a Streamable HTTP endpoint (http:// or https://)\n"
            "  --sse            the legacy HTTP+SSE transport (2024-11-05) instead\n"
            "  --header H       sent with every request (repeatable), e.g. an Authorization\n"
            "  --config FILE    connect every MCP client of the file's \"mcp\" section\n"
            "  --json           print the raw JSON (tools, or the CallToolResult)\n"
            "  --timeout S      give up after S seconds (default %d)\n"
            "  --verbose        the client's log lines on stderr\n"
            "\n"
            "exit status: 0 ok, 1 the tool reported an error (isError), 2 usage, connection\n"
            "or protocol failure\n",
            DEFAULT_TIMEOUT_S);
}

/* ---- finishing ------------------------------------------------------------------------------ */

static void server_finish(cli_server_t *s, const char *error)
{
    if (s->finished)
        return;
    s->finished = true;
    if (error != NULL)
        snprintf(s->error, sizeof(s->error), "%s", error);
    if (--s->cli->unfinished == 0)
        event_base_loopbreak(s->cli->base);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    cli_t *cli = arg;
    char msg[64];
    snprintf(msg, sizeof(msg), "no answer within %ld s", cli->timeout_s);
    for (size_t i = 0; i < cli->n_servers; i++)
        server_finish(&cli->servers[i], msg);
}

/* ---- the clients' callbacks ----------------------------------------------------------------- */

static void on_list(void *arg, const json_t *result, const mcp_error_t *err)
{
    cli_server_t *s = arg;
    if (result == NULL) {
        char msg[600];
        snprintf(msg, sizeof(msg), "tools/list failed: %d %s", err->code, err->message);
        server_finish(s, msg);
        return;
    }
    s->result = json_deep_copy(result);
    server_finish(s, NULL);
}

static void on_call(void *arg, const json_t *result, const mcp_error_t *err)
{
    cli_server_t *s = arg;
    if (result == NULL) {
        s->rpc_err = *err;
        s->rpc_err.data = NULL; /* borrowed; not kept */
        char msg[600];
        snprintf(msg, sizeof(msg), "tools/call %s failed: %d %s", s->cli->tool, err->code,
                 err->message);
        server_finish(s, msg);
        return;
    }
    s->result = json_deep_copy(result);
    server_finish(s, NULL);
}

static void on_ready(cli_server_t *s, mcp_client_t *c)
{
    cli_t *cli = s->cli;
    if (cli->op == CLI_LIST) {
        mcp_client_list_all(c, "tools/list", "tools", on_list, s);
        return;
    }
    json_t *params = json_pack("{s:s, s:O}", "name", cli->tool, "arguments", cli->arguments);
    mcp_client_request(c, "tools/call", params, cli->timeout_s * 1000, on_call, NULL, s);
}

static void on_state(void *arg, mcp_client_t *c, mcp_client_state_t state, const char *reason)
{
    cli_server_t *s = arg;
    if (s->finished)
        return;
    if (state == MCP_STATE_READY) {
        on_ready(s, c);
    } else if (state == MCP_STATE_DOWN) {
        char msg[600];
        snprintf(msg, sizeof(msg), "cannot connect: %s", reason ? reason : "connection failed");
        server_finish(s, msg);
    }
}

/* ---- running -------------------------------------------------------------------------------- */

static int cli_run(cli_t *cli)
{
    cli->base = event_base_new();
    cli->pool = upstream_pool_new(cli->base);
    if (cli->base == NULL || cli->pool == NULL) {
        fprintf(stderr, "gatehouse mcp: cannot set up the event loop\n");
        return -1;
    }
    static const mcp_client_handlers_t handlers = {.on_state = on_state};
    cli->unfinished = cli->n_servers;
    for (size_t i = 0; i < cli->n_servers; i++) {
        cli_server_t *s = &cli->servers[i];
        s->cli = cli;
        s->opts.request_timeout_ms = cli->timeout_s * 1000;
        s->client = mcp_client_new(cli->base, cli->pool, &s->opts, &handlers, s);
        mcp_client_start(s->client);
    }
    cli->deadline = evtimer_new(cli->base, on_deadline, cli);
    struct timeval tv = {cli->timeout_s, 0};
    event_add(cli->deadline, &tv);
    event_base_dispatch(cli->base);
    return 0;
}

/* Frees the clients, then lets the loop finish what they leave behind (a stdio server's
 * reaper waits for the child to exit). */
static void cli_teardown(cli_t *cli)
{
    for (size_t i = 0; i < cli->n_servers; i++) {
        cli_server_t *s = &cli->servers[i];
        if (s->client != NULL)
            mcp_client_free(s->client);
        json_decref(s->result);
    }
    if (cli->deadline != NULL)
        event_free(cli->deadline);
    if (cli->pool != NULL)
        upstream_pool_free(cli->pool);
    if (cli->base != NULL) {
        event_base_dispatch(cli->base);
        event_base_free(cli->base);
    }
    json_decref(cli->arguments);
    if (cli->cfg != NULL)
        config_release(cli->cfg);
}

/* ---- printing ------------------------------------------------------------------------------- */

static void print_json(const json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (text != NULL)
        printf("%s\n", text);
    free(text);
}

static const char *member(const json_t *obj, const char *name, const char *fallback)
{
    const char *v = json_string_value(json_object_get(obj, name));
    return v != NULL ? v : fallback;
}

/* "name  first line of the description", names padded to one column. */
static void print_tools(const json_t *tools, const char *indent)
{
    size_t width = 0;
    size_t i;
    json_t *t;
    json_array_foreach (tools, i, t) {
        size_t n = strlen(member(t, "name", ""));
        width = n > width ? n : width;
    }
    width = width > NAME_COLUMN_MAX ? NAME_COLUMN_MAX : width;

    json_array_foreach (tools, i, t) {
        const char *name = member(t, "name", "?");
        const char *desc = member(t, "description", "");
        int line = (int)strcspn(desc, "\r\n");
        printf("%s%-*s  %.*s\n", indent, (int)width, name, line, desc);
    }
}

static int print_list(const cli_t *cli, bool grouped)
{
    int status = MCP_CLI_OK;
    json_t *all = json_object();
    for (size_t i = 0; i < cli->n_servers; i++) {
        const cli_server_t *s = &cli->servers[i];
        if (s->error[0] != '\0') {
            fprintf(stderr, "gatehouse mcp: %s: %s\n", s->opts.name, s->error);
            status = MCP_CLI_FAILED;
            continue;
        }
        if (cli->json_out) {
            json_object_set(all, s->opts.name, s->result);
            continue;
        }
        if (grouped)
            printf("%s: %zu tools\n", s->opts.name, json_array_size(s->result));
        print_tools(s->result, grouped ? "  " : "");
    }
    if (cli->json_out)
        print_json(grouped ? all : json_object_get(all, cli->servers[0].opts.name));
    json_decref(all);
    return status;
}

static int print_call(const cli_t *cli)
{
    const cli_server_t *s = &cli->servers[0];
    if (s->error[0] != '\0') {
        fprintf(stderr, "gatehouse mcp: %s\n", s->error);
        return MCP_CLI_FAILED;
    }
    bool is_error = json_is_true(json_object_get(s->result, "isError"));
    if (cli->json_out) {
        print_json(s->result);
    } else {
        char *text = mcp_content_text(s->result, NULL);
        size_t n = strlen(text);
        printf("%s%s", text, n > 0 && text[n - 1] == '\n' ? "" : "\n");
        free(text);
    }
    return is_error ? MCP_CLI_TOOL_ERROR : MCP_CLI_OK;
}

/* ---- the command line ----------------------------------------------------------------------- */

typedef struct cli_args {
    bool sse;
    bool verbose;
    const char *config;
    const char *headers[MAX_HEADERS + 1];
    size_t n_headers;
    const char *positional[4];
    size_t n_positional;
} cli_args_t;

static int parse_args(int argc, char **argv, cli_t *cli, cli_args_t *a)
{
    static const struct option longopts[] = {
        {"sse", no_argument, NULL, 's'},           {"header", required_argument, NULL, 'H'},
        {"config", required_argument, NULL, 'c'},  {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "sH:c:jt:vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            a->sse = true;
            break;
        case 'v':
            a->verbose = true;
            break;
        case 'c':
            a->config = optarg;
            break;
        case 'j':
            cli->json_out = true;
            break;
        case 'H':
            if (strchr(optarg, ':') == NULL || a->n_headers == MAX_HEADERS) {
                fprintf(stderr, "gatehouse mcp: --header wants 'Name: value'\n");
                return -1;
            }
            a->headers[a->n_headers++] = optarg;
            break;
        case 't':
            cli->timeout_s = strtol(optarg, NULL, 10);
            if (cli->timeout_s <= 0 || cli->timeout_s > 86400) {
                fprintf(stderr, "gatehouse mcp: --timeout wants seconds, 1 to 86400\n");
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            exit(MCP_CLI_OK);
        default:
            return -1;
        }
    }
    for (int i = optind; i < argc; i++) {
        if (a->n_positional == 4)
            return -1;
        a->positional[a->n_positional++] = argv[i];
    }
    return 0;
}

static bool is_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* One server from a URL on the command line. -2 when the URL is not one (said why). */
static int server_from_url(cli_t *cli, const cli_args_t *a, const char *url)
{
    if (!is_http_url(url)) {
        fprintf(stderr, "gatehouse mcp: '%s' is not an http:// or https:// URL\n", url);
        return -2;
    }
    cli->servers = xcalloc(1, sizeof(cli_server_t));
    cli->n_servers = 1;
    mcp_client_opts_t *o = &cli->servers[0].opts;
    o->name = url;
    o->transport = a->sse ? MCP_TRANSPORT_SSE : MCP_TRANSPORT_HTTP;
    o->url = url;
    o->headers = a->headers;
    return 0;
}

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

/* Every client of a configuration file's "mcp" section. The configuration stays loaded (in
 * cli->cfg) while the servers borrow its strings. -2 when it cannot be loaded (said why). */
static int servers_from_config(cli_t *cli, const char *path)
{
    config_report_t report;
    config_report_init(&report);
    cli->cfg = config_load_file(path, &report);
    for (size_t i = 0; i < report.count; i++) {
        if (report.items[i].is_error)
            fprintf(stderr, "gatehouse mcp: %s: %s: %s\n", path, report.items[i].path,
                    report.items[i].message);
    }
    config_report_free(&report);
    if (cli->cfg == NULL)
        return -2;
    if (cli->cfg->n_mcp_clients == 0) {
        fprintf(stderr, "gatehouse mcp: %s has no MCP client (mcp.client_configs)\n", path);
        return -2;
    }

    cli->n_servers = cli->cfg->n_mcp_clients;
    cli->servers = xcalloc(cli->n_servers, sizeof(cli_server_t));
    for (size_t i = 0; i < cli->n_servers; i++) {
        const config_mcp_client_t *c = &cli->cfg->mcp_clients[i];
        cli->servers[i].opts = (mcp_client_opts_t){
            .name = c->name,
            .transport = transport_of(c->connection_type),
            .command = c->command,
            .args = (const char *const *)c->args,
            .env_names = (const char *const *)c->envs,
            .url = c->url,
            .headers = (const char *const *)c->headers,
        };
    }
    return 0;
}

/* Reads the operation and its servers. Returns 0, -1 for a usage error, or -2 for an error
 * already explained. */
static int setup(cli_t *cli, cli_args_t *a, const char *cmd)
{
    if (strcmp(cmd, "list") == 0) {
        cli->op = CLI_LIST;
        if (a->config != NULL && a->n_positional == 0)
            return servers_from_config(cli, a->config);
        if (a->config == NULL && a->n_positional == 1)
            return server_from_url(cli, a, a->positional[0]);
        return -1;
    }
    if (strcmp(cmd, "call") != 0 || a->config != NULL || a->n_positional < 2 || a->n_positional > 3)
        return -1;

    cli->op = CLI_CALL;
    cli->tool = a->positional[1];
    const char *args = a->n_positional == 3 ? a->positional[2] : "{}";
    json_error_t jerr;
    cli->arguments = json_loads(args, 0, &jerr);
    if (!json_is_object(cli->arguments)) {
        fprintf(stderr, "gatehouse mcp: JSON_ARGS must be a JSON object, e.g. '{\"q\": 1}'\n");
        return -2;
    }
    return server_from_url(cli, a, a->positional[0]);
}

int mcp_cli_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MCP_CLI_FAILED : MCP_CLI_OK;
    }
    cli_t cli = {.timeout_s = DEFAULT_TIMEOUT_S};
    cli_args_t args = {0};
    const char *cmd = argv[1];
    int rc = parse_args(argc - 1, argv + 1, &cli, &args);
    if (rc == 0)
        rc = setup(&cli, &args, cmd);
    if (rc != 0) {
        if (rc == -1)
            usage(stderr);
        json_decref(cli.arguments);
        if (cli.cfg != NULL)
            config_release(cli.cfg);
        free(cli.servers);
        return MCP_CLI_FAILED;
    }

    /* The library logs for a daemon; here the failures are reported once, below, and
     * --verbose shows everything. */
    log_set_level(args.verbose ? LOG_LVL_DEBUG : LOG_LVL_CRIT);
    signal(SIGPIPE, SIG_IGN); /* a stdio server that exits must not kill us */
    int status = MCP_CLI_FAILED;
    if (cli_run(&cli) == 0)
        status = cli.op == CLI_LIST ? print_list(&cli, args.config != NULL) : print_call(&cli);
    fflush(stdout);
    cli_teardown(&cli);
    free(cli.servers);
    return status;
}
