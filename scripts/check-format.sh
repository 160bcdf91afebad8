#!/usr/bin/env bash
# Fails when a C source file differs from what clang-format (with the repo's .clang-format)
# would make of it, and names the files.
set -u
cd "$(dirname "$0")/.."
bad=0
for f in $(find src tests/unit tests/fuzz tests/sandbox -name '*.[ch]' | sort); do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "format: $f differs from clang-format's output (run: make format)"
        bad=1
    fi
done
exit $bad
