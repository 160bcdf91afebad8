#!/usr/bin/env bash
# bench/codemode/run.sh - Code Mode round trips (README.md): builds gatehouse and
# gatehouse-sandbox, then runs bench.mjs against them. BENCH_N (default 300) samples per case,
# BENCH_WARMUP (30) unmeasured runs first; GATEHOUSE_BIN to measure another build.
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s all
if [ ! -d tests/node_modules/@modelcontextprotocol/server-everything ]; then
    echo "bench/codemode: tests/node_modules is missing; run npm ci in tests/ first" >&2
    exit 1
fi
exec node bench/codemode/bench.mjs
