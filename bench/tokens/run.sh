#!/usr/bin/env bash
# bench/tokens/run.sh - the token cost of Code Mode against classic tool injection (README.md):
# builds gatehouse and gatehouse-sandbox, installs the tokenizer (js-tiktoken, pinned in
# package-lock.json here) when missing, then runs bench.mjs (about a minute), which writes
# results.json here. `make bench-tokens` runs this. GATEHOUSE_TOOL_CATALOGS points at the
# catalogs (default ../shared/tool-catalogs next to the clone); GATEHOUSE_BIN at another build.
set -euo pipefail
cd "$(dirname "$0")/../.."
catalogs=${GATEHOUSE_TOOL_CATALOGS:-../shared/tool-catalogs}
if [ ! -d "$catalogs" ]; then
    echo "bench/tokens: no tool catalogs at $catalogs (set GATEHOUSE_TOOL_CATALOGS)" >&2
    exit 1
fi
make -s all
if [ ! -d tests/node_modules/openai ] || [ ! -d tests/node_modules/@modelcontextprotocol/sdk ]; then
    echo "bench/tokens: tests/node_modules is missing; run npm ci in tests/ first" >&2
    exit 1
fi
if [ ! -d bench/tokens/node_modules/js-tiktoken ]; then
    (cd bench/tokens && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node bench/tokens/bench.mjs
