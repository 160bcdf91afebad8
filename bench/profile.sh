#!/usr/bin/env bash
# profile.sh - where gatehouse spends its instructions on the request path, per request.
#
# Runs build/gatehouse (one worker thread) under `valgrind --tool=callgrind` in front of
# gatehouse-mock, sends each scenario's requests after a warm-up, and writes one callgrind file
# per scenario plus a summary of the top entries divided by the number of requests. Callgrind
# counts instructions, so the figures are the same on a busy machine as on an idle one, which
# wall-clock profiles on a shared 2-core machine are not; the cost is a run 50 times slower,
# so the request counts stay small. See bench/README.md, "Profile".
#
#   bench/profile.sh [OUT_DIR]     default OUT_DIR: bench/results/tmp/profile
#
# Environment: PROFILE_REQUESTS (per scenario, default 2000), PROFILE_LOGS (on or off, default
# off: the request log has its own benchmark in bench/logging), PROFILE_SCENARIOS (default
# "small small_anthropic stream50"), GATEHOUSE_BIN (default build/gatehouse).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/bench/results/tmp/profile}"
N="${PROFILE_REQUESTS:-2000}"
LOGS="${PROFILE_LOGS:-off}"
SCENARIOS="${PROFILE_SCENARIOS:-small small_anthropic stream50}"
GATEHOUSE="${GATEHOUSE_BIN:-$ROOT/build/gatehouse}"
MOCK="$ROOT/build/bench/gatehouse-mock"
MOCK_PORT=18821
GH_PORT=18823

log() { printf '[profile %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v valgrind >/dev/null || { log "valgrind is needed (Debian: valgrind)"; exit 1; }
command -v h2load >/dev/null || { log "h2load is needed (Debian: nghttp2-client)"; exit 1; }
[ -x "$GATEHOUSE" ] || { log "no gatehouse at $GATEHOUSE: run make"; exit 1; }
[ -x "$MOCK" ] || make -s -C "$ROOT/bench/mock"
mkdir -p "$OUT"
rm -f "$OUT"/callgrind.* "$OUT"/*.top.txt

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() {
    local i
    for i in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    log "nothing listens on port $1 after 30 s"
    return 1
}

# scenario -> provider|stream
scenario() {
    case "$1" in
        small) echo "openai|false" ;;
        small_anthropic) echo "anthropic|false" ;;
        stream50) echo "mock-stream50|true" ;;
        stream50_anthropic) echo "mock-stream50-anthropic|true" ;;
        *) log "unknown scenario $1"; exit 2 ;;
    esac
}

cat > "$OUT/gatehouse.json" <<EOF
{"server": {"host": "127.0.0.1", "port": $GH_PORT, "log_level": "warn"},
 "logs": {"enabled": $([ "$LOGS" = on ] && echo true || echo false)},
 "providers": {
  "openai": {"keys": [{"name": "bench", "value": "sk-bench-key"}],
   "network_config": {"base_url": "http://127.0.0.1:$MOCK_PORT/p/size=64", "max_retries": 0}},
  "anthropic": {"keys": [{"name": "bench", "value": "sk-bench-key"}],
   "network_config": {"base_url": "http://127.0.0.1:$MOCK_PORT/p/size=64", "max_retries": 0}},
  "mock-stream50": {"keys": [{"name": "bench", "value": "sk-bench-key"}],
   "network_config": {"base_url": "http://127.0.0.1:$MOCK_PORT/p/size=2000,chunks=50",
                      "max_retries": 0},
   "custom_provider_config": {"base_provider_type": "openai"}},
  "mock-stream50-anthropic": {"keys": [{"name": "bench", "value": "sk-bench-key"}],
   "network_config": {"base_url": "http://127.0.0.1:$MOCK_PORT/p/size=2000,chunks=50",
                      "max_retries": 0},
   "custom_provider_config": {"base_provider_type": "anthropic"}}
 }}
EOF

"$MOCK" --port "$MOCK_PORT" > "$OUT/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"

rm -rf "$OUT/data"
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.start" \
    "$GATEHOUSE" serve --config "$OUT/gatehouse.json" --threads 1 --data-dir "$OUT/data" \
    > "$OUT/gatehouse.log" 2>&1 &
GH_PID=$!
PIDS+=("$GH_PID")
wait_port "$GH_PORT"

url="http://127.0.0.1:$GH_PORT/v1/chat/completions"
for s in $SCENARIOS; do
    IFS='|' read -r provider stream <<< "$(scenario "$s")"
    model="$provider/gpt-4o-mini"
    jq -cn --arg m "$model" --argjson s "$stream" \
        '{model: $m, messages: [{role: "system", content: "You are a helpful assistant."},
          {role: "user", content: "Say hello to the benchmark in one short sentence."}],
          max_tokens: 64, stream: $s}' > "$OUT/body-$s.json"
    # Warm-up: connections to the mock, the allocator's free lists, first-use paths.
    h2load --h1 -c4 -n200 -d "$OUT/body-$s.json" -H 'content-type: application/json' "$url" \
        > /dev/null
    callgrind_control -z "$GH_PID" > /dev/null 2>&1
    h2load --h1 -c4 -n"$N" -d "$OUT/body-$s.json" -H 'content-type: application/json' "$url" \
        > "$OUT/h2load-$s.txt"
    grep -q "$N succeeded" "$OUT/h2load-$s.txt" || log "$s: not all $N requests succeeded"
    callgrind_control -d "$s" "$GH_PID" > /dev/null 2>&1
    log "$s: $N requests profiled"
done
kill "$GH_PID"
wait "$GH_PID" 2>/dev/null || true

# The dumps are numbered in the order the scenarios ran; callgrind.start.N holds scenario N.
i=0
for s in $SCENARIOS; do
    i=$((i + 1))
    f="$OUT/callgrind.start.$i"
    [ -r "$f" ] || { log "no profile for $s"; continue; }
    mv "$f" "$OUT/callgrind.$s"
    node "$ROOT/bench/report.mjs" callgrind "$OUT/callgrind.$s" "$N" > "$OUT/$s.top.txt"
    log "$s: $(head -1 "$OUT/$s.top.txt")"
done
log "profiles in $OUT (callgrind_annotate $OUT/callgrind.<scenario> for the full picture)"
