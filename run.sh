#!/usr/bin/env bash
# The first README command: installs what is missing, builds, and starts the gateway.
#
#   ./run.sh                      serve with gatehouse.example.json (or from the environment)
#   ./run.sh --port 9000          extra arguments go to `gatehouse serve`
#   ./run.sh --config my.json     a --config of your own replaces the example file
#
# Paths in the arguments are relative to where you run it from, and so is the data
# directory (./data unless --data-dir says otherwise): only the build happens in the repo.
set -euo pipefail

repo=$(cd "$(dirname "$0")" && pwd)
"$repo/scripts/install-deps.sh"
make -C "$repo" -j"$(nproc 2>/dev/null || echo 2)"

for arg in "$@"; do
    case "$arg" in
    --config | --config=*) exec "$repo/build/gatehouse" serve "$@" ;;
    esac
done
if [ -f "$repo/gatehouse.example.json" ]; then
    exec "$repo/build/gatehouse" serve --config "$repo/gatehouse.example.json" "$@"
fi
exec "$repo/build/gatehouse" serve "$@"
