#!/usr/bin/env bash
# The second README command: installs what the tests need, builds, and runs every test (unit and
# end-to-end, release and sanitizer builds). Ends with "N passed, N failed". See scripts/test.sh.
exec "$(dirname "$0")/scripts/test.sh" "$@"
