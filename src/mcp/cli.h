/*
 * cli.h - `gatehouse mcp`: a small MCP client on the command line, for trying a server before
 * putting it in the configuration, checking what a configuration connects to, and calling a
 * tool by hand (docs/mcp-server.md, "The command line").
 *
 *   gatehouse mcp list URL [--sse] [--header 'Name: value']... [--json] [--timeout S]
 *   gatehouse mcp list --config FILE [--json] [--timeout S]
 *   gatehouse mcp call URL TOOL [JSON_ARGS] [--sse] [--header 'Name: value']... [--json]
 *
 * It runs one event loop with one upstream pool and one mcp_client per server (client.h), the
 * same code the gateway uses, so what works here works in the gateway.
 */
#ifndef GATEHOUSE_MCP_CLI_H
#define GATEHOUSE_MCP_CLI_H

/* Exit statuses. */
#define MCP_CLI_OK 0
#define MCP_CLI_TOOL_ERROR 1 /* the tool ran and reported an error (isError) */
#define MCP_CLI_FAILED 2     /* bad usage, connection or protocol failure */

/* Runs the subcommand; argv[0] is "mcp". Returns an exit status above. */
int mcp_cli_main(int argc, char **argv);

#endif
