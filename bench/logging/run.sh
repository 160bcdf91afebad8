#!/usr/bin/env bash
# run.sh - what the request log and the audit trail cost: throughput and latency of gatehouse at
# the same load with
#   off         logs.enabled false, audit.enabled false
#   logs        logs.enabled true, logs.content true (request and response bodies kept)
#   logs_audit  the same plus audit.enabled true, audit.content true
# See bench/logging/README.md for the method and the figures.
#
# The three gatehouse processes run side by side (one worker thread each, all on the same core),
# so that the rounds can alternate between them: off, logs, logs_audit, off, logs, ... A slow
# drift of the machine then touches every configuration alike. Only one of them is loaded at a
# time. The load is wrk with a fixed number of connections and threads for every run; the
# upstream is bench/mock (gatehouse-mock), built if missing.
#
# Environment: BENCH_SECONDS (one measured run, default 5), BENCH_ROUNDS (default 3),
# BENCH_CONNECTIONS (default 32), BENCH_SCENARIOS (default "small medium"), GATEHOUSE_BIN
# (default build/gatehouse), GATEHOUSE_BEFORE_BIN (another build, for example the previous
# release: its three configurations run in the same rounds as before_off, before_logs and
# before_logs_audit, so that before and after are measured side by side), BENCH_KEEP=1 keeps
# the data directories, BENCH_PROFILE=1 adds one
# run per configuration under `perf record -e cpu-clock` (a software clock, which works in VMs
# without hardware counters) and prints where gatehouse's CPU time goes, by thread and symbol.
# Everything listens on 127.0.0.1; every load run stops by itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/logging"
SECONDS_PER_RUN="${BENCH_SECONDS:-5}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-32}"
SCENARIOS="${BENCH_SCENARIOS:-small medium}"
GATEHOUSE="${GATEHOUSE_BIN:-$ROOT/build/gatehouse}"
case "$GATEHOUSE" in /*) ;; *) GATEHOUSE="$ROOT/$GATEHOUSE" ;; esac
MOCK="$ROOT/build/bench/gatehouse-mock"
CONFIGS="off logs logs_audit"
declare -A BIN=([off]="$GATEHOUSE" [logs]="$GATEHOUSE" [logs_audit]="$GATEHOUSE")
if [ -n "${GATEHOUSE_BEFORE_BIN:-}" ]; then
    BEFORE="$GATEHOUSE_BEFORE_BIN"
    case "$BEFORE" in /*) ;; *) BEFORE="$ROOT/$BEFORE" ;; esac
    [ -x "$BEFORE" ] || { echo "no gatehouse at $BEFORE" >&2; exit 1; }
    CONFIGS="before_off before_logs before_logs_audit $CONFIGS"
    BIN+=([before_off]="$BEFORE" [before_logs]="$BEFORE" [before_logs_audit]="$BEFORE")
fi

MOCK_PORT=18811
declare -A PORT=([off]=18812 [logs]=18813 [logs_audit]=18814 [before_off]=18815
    [before_logs]=18816 [before_logs_audit]=18817)

log() { printf '[bench-logging %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- what is needed -------------------------------------------------------------------------------

if ! command -v wrk >/dev/null; then
    log "installing wrk"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
command -v node >/dev/null || { log "node is needed for the summary"; exit 1; }
[ -x "$GATEHOUSE" ] || { log "no gatehouse at $GATEHOUSE: run make"; exit 1; }
[ -x "$MOCK" ] || make -s -C "$ROOT/bench/mock"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-logging.XXXXXX")"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT

wait_port() {
    local i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "nothing listens on port $1"
    return 1
}

# Cores: gatehouse alone on core 1, wrk and the mock on core 0 (when there are two or more).
if [ "$(nproc)" -ge 2 ]; then
    CORE_LOAD="taskset -c 0"
    CORE_SUT="taskset -c 1"
else
    CORE_LOAD=""
    CORE_SUT=""
fi

# ---- the runs -------------------------------------------------------------------------------------

# Request bodies: small is a one-line chat (the mock answers 64 bytes); medium sends a 4 KiB
# prompt and gets a 4 KiB answer, so that the bodies the log and the trail keep weigh something.
make_body() {
    local scenario=$1 file=$2
    case "$scenario" in
        small) printf '{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark"}]}' >"$file" ;;
        medium)
            local text
            text="$(head -c 3072 /dev/zero | base64 -w0)" # 4096 characters
            printf '{"model":"mock/gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' "$text" >"$file"
            ;;
        *) log "unknown scenario $scenario"; exit 1 ;;
    esac
}
mock_params() {
    case "$1" in
        small) echo "size=64" ;;
        medium) echo "size=4096" ;;
    esac
}

write_config() {
    local cfg=$1 scenario=$2 file=$3 logs=false audit=false
    case "${cfg#before_}" in
        logs) logs=true ;;
        logs_audit) logs=true audit=true ;;
    esac
    cat >"$file" <<EOF
{
  "providers": {
    "mock": {
      "custom_provider_config": {"base_provider_type": "openai"},
      "keys": [{"name": "bench", "value": "sk-bench-logging-not-a-secret"}],
      "network_config": {"base_url": "http://127.0.0.1:$MOCK_PORT/p/$(mock_params "$scenario")",
                         "max_retries": 0},
      "concurrency_and_buffer_size": {"concurrency": 10000, "buffer_size": 10000}
    }
  },
  "logs": {"enabled": $logs, "content": true},
  "audit": {"enabled": $audit, "content": true},
  "metrics": {"enabled": true}
}
EOF
}

# CPU time (user + system, all threads) a process has used, in clock ticks.
CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Nanoseconds on a CPU per thread, as "tid name ns" lines (schedstat: exact, where the ticks of
# /proc/<pid>/stat are 10 ms). gatehouse names its threads gh-worker, gh-reqlog and gh-audit;
# older builds left them all "gatehouse".
thread_ns() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s %s\n' "${t##*/}" "$(cat "$t/comm")" "$(cut -d' ' -f1 "$t/schedstat")"
    done
}

# {"worker": s, "writers": s, "gh-reqlog": s, ...}: CPU seconds per thread between two
# thread_ns snapshots. The worker is the busiest thread (there is one, --threads 1); "writers"
# is every other thread (the writers; the main thread only waits).
thread_split() {
    awk 'NR == FNR {a[$1] = $3; next} {d[$1] = $3 - a[$1]; n[$1] = $2}
        END {
            for (t in d) if (w == "" || d[t] > d[w]) w = t
            o = 0; for (t in d) if (t != w) o += d[t]
            printf "{\"worker\":%.4f,\"writers\":%.4f", d[w] / 1e9, o / 1e9
            for (t in d) if (t != w && n[t] ~ /^gh-(reqlog|audit)$/) printf ",\"%s\":%.4f", n[t], d[t] / 1e9
            printf "}"
        }' "$1" "$2"
}

metric() { # port name -> value (0 when absent)
    curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2; found=1} END {if (!found) print 0}'
}

log "gatehouse $("$GATEHOUSE" --version), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), wrk $CONNS connections, $ROUNDS rounds of ${SECONDS_PER_RUN} s"
$CORE_LOAD "$MOCK" --host 127.0.0.1 --port "$MOCK_PORT" --threads 1 >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

for scenario in $SCENARIOS; do
    make_body "$scenario" "$WORK/body-$scenario.json"
    declare -A GPID=()
    for cfg in $CONFIGS; do
        d="$WORK/$scenario-$cfg"
        mkdir -p "$d"
        write_config "$cfg" "$scenario" "$d/config.json"
        (cd "$d" && exec $CORE_SUT "${BIN[$cfg]}" serve --config config.json --host 127.0.0.1 \
            --port "${PORT[$cfg]}" --threads 1 --data-dir ./data --log-level warn 2>"$d/stderr.log") &
        GPID[$cfg]=$!
        PIDS+=($!)
        wait_port "${PORT[$cfg]}"
        # warm-up: connections, the SQLite file and the audit file exist before measuring
        $CORE_LOAD wrk -t1 -c"$CONNS" -d1s -s "$HERE/post.lua" \
            "http://127.0.0.1:${PORT[$cfg]}/v1/chat/completions" -- "$WORK/body-$scenario.json" >/dev/null
    done
    for round in $(seq 1 "$ROUNDS"); do
        for cfg in $CONFIGS; do
            t0="$(cpu_ticks "${GPID[$cfg]}")"
            thread_ns "${GPID[$cfg]}" >"$WORK/threads0"
            line="$($CORE_LOAD wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" --latency -s "$HERE/post.lua" \
                "http://127.0.0.1:${PORT[$cfg]}/v1/chat/completions" -- "$WORK/body-$scenario.json" |
                sed -n 's/^RESULT //p')"
            sleep 1 # the writers finish what the run queued; their CPU time counts too
            t1="$(cpu_ticks "${GPID[$cfg]}")"
            thread_ns "${GPID[$cfg]}" >"$WORK/threads1"
            line="${line%\}},\"cpu_s\":$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", (b - a) / hz}')"
            line="$line,\"threads_s\":$(thread_split "$WORK/threads0" "$WORK/threads1")}"
            log "$scenario $cfg round $round: $line"
            printf '{"scenario":"%s","config":"%s","round":%d,"run":%s}\n' "$scenario" "$cfg" "$round" "$line" >>"$RESULTS"
        done
    done
    if [ "${BENCH_PROFILE:-0}" = 1 ]; then
        for cfg in $CONFIGS; do
            perf record -q -e cpu-clock -g -p "$(pgrep -P "${GPID[$cfg]}" -x gatehouse || echo "${GPID[$cfg]}")" \
                -o "$WORK/perf-$scenario-$cfg.data" -- sleep "$SECONDS_PER_RUN" 2>/dev/null &
            perf_pid=$!
            sleep 0.2
            $CORE_LOAD wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" -s "$HERE/post.lua" \
                "http://127.0.0.1:${PORT[$cfg]}/v1/chat/completions" -- "$WORK/body-$scenario.json" >/dev/null
            wait "$perf_pid" || true
            {
                # threads are not named; the "pid" key is the thread id (the worker is the busiest)
                echo "== $scenario $cfg: CPU samples by thread"
                perf report -q -i "$WORK/perf-$scenario-$cfg.data" --no-children -g none --sort pid 2>/dev/null |
                    grep -v '^$' | head -8
                echo "== $scenario $cfg: top symbols (self time), by thread"
                perf report -q -i "$WORK/perf-$scenario-$cfg.data" --no-children -g none --sort pid,dso,symbol 2>/dev/null |
                    grep -v '^$' | head -30
                echo "== $scenario $cfg: by library"
                perf report -q -i "$WORK/perf-$scenario-$cfg.data" --no-children -g none --sort dso 2>/dev/null |
                    grep -v '^$' | head -12
            } | tee "$WORK/profile-$scenario-$cfg.txt" >&2 || true
            sleep 1
        done
    fi
    sleep 1
    for cfg in $CONFIGS; do
        p="${PORT[$cfg]}"
        printf '{"scenario":"%s","config":"%s","totals":{"log_written":%s,"log_dropped":%s,"audit_written":%s,"audit_dropped":%s,"data_bytes":%s}}\n' \
            "$scenario" "$cfg" \
            "$(metric "$p" gatehouse_log_rows_written_total)" "$(metric "$p" gatehouse_log_rows_dropped_total)" \
            "$(metric "$p" gatehouse_audit_records_written_total)" "$(metric "$p" gatehouse_audit_records_dropped_total)" \
            "$(du -sb "$WORK/$scenario-$cfg/data" | cut -f1)" >>"$RESULTS"
        kill -TERM "${GPID[$cfg]}"
        wait "${GPID[$cfg]}" || log "gatehouse ($scenario $cfg) exited with $?"
    done
    unset GPID
done

node "$HERE/summary.mjs" "$RESULTS"
