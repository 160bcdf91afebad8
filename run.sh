#!/usr/bin/env bash
# The first README command: installs what is missing, builds, and starts the gateway.
#
#   ./run.sh                      serve with gatehouse.example.json (or from the environment)
#   ./run.sh --port 9000          extra arguments go to `gatehouse serve`
#   ./run.sh --config my.json     a --config of your own replaces the example file
set -euo pipefail

cd "$(dirname "$0")"
scripts/install-deps.sh
make -j"$(nproc 2>/dev/null || echo 2)"

for arg in "$@"; do
    case "$arg" in
    --config | --config=*) exec build/gatehouse serve "$@" ;;
    esac
done
if [ -f gatehouse.example.json ]; then
    exec build/gatehouse serve --config gatehouse.example.json "$@"
fi
exec build/gatehouse serve "$@"
