#!/usr/bin/env bash
# Every test gatehouse has, in one command (./test.sh runs this):
#
#   1. install what is missing (scripts/install-deps.sh --test)
#   2. build: make (release) and make asan (AddressSanitizer + UBSan); the format check
#      (scripts/check-format.sh, counted as one test)
#   3. unit tests: make unit, make unit-asan (cmocka; "unit: N passed, N failed")
#   4. end-to-end tests (node --test tests/e2e/) against build/gatehouse, then against
#      build/asan/gatehouse
#
# and ends with one line, "N passed, N failed" (", N skipped" when tests were skipped), adding up
# unit and end-to-end counts. A step that fails without counting tests (a build, a crashed
# runner) counts as one failure. Exit status is 0 only when nothing failed.
#
# Environment: GATEHOUSE_SHARED_DIR (folder holding cassettes/, default ../shared; the cassette
# tests skip without it), JOBS (make -j, default nproc), E2E_TIMEOUT (seconds per e2e run, 900).
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
logdir=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-test.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

passed=0
failed=0
skipped=0
problems=()

step() {
    echo
    echo "==== $* ===="
}

note_failure() {
    failed=$((failed + 1))
    problems+=("$1")
    echo "test.sh: FAILED: $1"
}

# ---- 1. dependencies ----------------------------------------------------------------------------
step "dependencies"
if ! scripts/install-deps.sh --test; then
    note_failure "installing dependencies"
fi

# ---- 2. builds -----------------------------------------------------------------------------------
step "build (release)"
release_ok=1
make -j"$jobs" || {
    release_ok=0
    note_failure "make (release build)"
}
step "build (asan)"
asan_ok=1
make -j"$jobs" asan || {
    asan_ok=0
    note_failure "make asan"
}

# ---- 2b. format ----------------------------------------------------------------------------------
# One check, counted like a test: every C file is what clang-format makes of it (make format).
step "format"
if scripts/check-format.sh; then
    passed=$((passed + 1))
else
    note_failure "format: files differ from clang-format's output (run: make format)"
fi

# ---- 3. unit tests -------------------------------------------------------------------------------
run_unit() { # target
    local target=$1 log="$logdir/$1.log" line p f
    step "$target"
    make -j"$jobs" "$target" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    line=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
    if [ -n "$line" ]; then
        p=$(sed -E 's/^unit: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
        f=$(sed -E 's/^unit: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
        s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
        passed=$((passed + p))
        failed=$((failed + f))
        skipped=$((skipped + ${s:-0}))
        [ "$f" -gt 0 ] && problems+=("$target: $f failed")
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            note_failure "$target exited with status $rc"
        fi
    else
        note_failure "$target (no summary line; exit status $rc)"
    fi
}
run_unit unit
run_unit unit-asan

# ---- 4. end-to-end tests -------------------------------------------------------------------------
run_e2e() { # label binary
    local label=$1 bin=$2 tap="$logdir/e2e-$1.tap" rc p f s c
    step "e2e ($label: $bin)"
    if [ ! -x "$bin" ]; then
        note_failure "e2e ($label): $bin was not built"
        return
    fi
    (
        cd tests &&
            GATEHOUSE_BIN="$root/$bin" timeout "${E2E_TIMEOUT:-900}" \
                node --test --test-concurrency=1 --test-timeout=120000 \
                --test-reporter=spec --test-reporter-destination=stdout \
                --test-reporter=tap --test-reporter-destination="$tap" \
                e2e/
    )
    rc=$?
    p=$(grep -E '^# pass [0-9]+' "$tap" 2>/dev/null | tail -n1 | awk '{print $3}')
    f=$(grep -E '^# fail [0-9]+' "$tap" 2>/dev/null | tail -n1 | awk '{print $3}')
    s=$(grep -E '^# skipped [0-9]+' "$tap" 2>/dev/null | tail -n1 | awk '{print $3}')
    c=$(grep -E '^# cancelled [0-9]+' "$tap" 2>/dev/null | tail -n1 | awk '{print $3}')
    if [ -z "$p" ] || [ -z "$f" ]; then
        note_failure "e2e ($label): the test runner printed no summary (exit status $rc)"
        return
    fi
    passed=$((passed + p))
    failed=$((failed + f + ${c:-0}))
    skipped=$((skipped + ${s:-0}))
    [ "$f" -gt 0 ] && problems+=("e2e ($label): $f failed")
    [ "${c:-0}" -gt 0 ] && problems+=("e2e ($label): ${c} cancelled")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "${c:-0}" -eq 0 ]; then
        note_failure "e2e ($label) exited with status $rc"
    fi
    echo "e2e ($label): $p passed, $f failed, ${s:-0} skipped"
}
if [ "$release_ok" -eq 1 ]; then
    run_e2e release build/gatehouse
else
    note_failure "e2e (release): skipped, the build failed"
fi
if [ "$asan_ok" -eq 1 ]; then
    run_e2e asan build/asan/gatehouse
else
    note_failure "e2e (asan): skipped, the build failed"
fi

# ---- summary -------------------------------------------------------------------------------------
echo
if [ "${#problems[@]}" -gt 0 ]; then
    echo "test.sh: problems:"
    for p in "${problems[@]}"; do echo "  - $p"; done
fi
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
