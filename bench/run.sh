#!/usr/bin/env bash
# run.sh - the gatehouse performance benchmark, end to end (`make bench`; see bench/README.md).
#
# Installs what it needs (Debian: wrk, nginx-light, gnuplot-nox, nghttp2-client for h2load, jq;
# npm: the Portkey gateway under bench/peers), builds gatehouse-mock, then sends the same
# requests to gatehouse-mock directly, through nginx, through gatehouse and through Portkey,
# and writes bench/results/results.{json,md} and the plots (bench/report.mjs). All traffic goes
# to 127.0.0.1; every load run is bounded in time and stops by itself.
#
# Cores: on a machine with two or more, the server under test (nginx, gatehouse, Portkey; the
# mock itself on the direct path) runs alone on core 1, and the load generator shares core 0
# with the mock. Each server gets exactly one core: nginx one worker, gatehouse --threads 1,
# Portkey one Node process.
#
# Paths: direct (client to mock), nginx, gatehouse (its defaults: the request log on, with
# bodies), gatehouse_nolog (the same with "logs": {"enabled": false}, on a few scenarios, to
# show what the request log costs), portkey. All servers are started at the beginning and run
# side by side on their own ports, each idle while another is measured.
#
# Two phases. Saturation: path by path, each scenario under wrk at 32 connections (throughput,
# CPU per request, peak RSS); the small chat, which the targets read, in rounds that take turns
# between the paths instead. Latency: per scenario, short fixed-rate runs that take turns
# between the paths, round after round, with a direct run between two rounds:
#   direct, nginx, gatehouse, gatehouse_nolog, direct, gatehouse, gatehouse_nolog, nginx, ...
# Each run's added latency is its percentile minus that of the direct runs just before and
# after it; the figures are the medians over the rounds, with their range (bench/README.md).
#
# Environment: BENCH_SECONDS (length of a saturation run, default 6), BENCH_SAT_ROUNDS (default
# 3) and BENCH_SAT_ROUND_SECONDS (default 5) for the small chat's saturation rounds,
# BENCH_LAT_SECONDS (length of a fixed-rate run, default 3), BENCH_LAT_ROUNDS (default 5 for
# the small chat and its translation, at most 3 for the other scenarios), BENCH_LAT_RATE
# (default 1000 req/s; lower for a scenario where a path saturates below twice that),
# BENCH_PATHS (default "direct nginx gatehouse gatehouse_nolog portkey"), BENCH_SKIP_INSTALL=1
# (use what is there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
RES="$BENCH/results"
KEEP="$RES/tmp" # what a run leaves behind for a look afterwards (not committed)
# Everything the servers and load generators write during a run (access logs, request logs,
# per-request latency logs) goes to memory when /dev/shm is there: on a disk shared with other
# work, one write held up by writeback stalls a server's event loop, or the load generator's,
# for a second, and the stall is the disk's, not the gateway's. Copied to KEEP at the end.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    TMP="$(mktemp -d /dev/shm/gatehouse-bench.XXXXXX)"
else
    TMP="$KEEP"
fi
SECONDS_PER_RUN="${BENCH_SECONDS:-6}"
LAT_SECONDS="${BENCH_LAT_SECONDS:-3}"
LAT_ROUNDS="${BENCH_LAT_ROUNDS:-5}"
# The scenarios no target reads get fewer rounds, to keep the whole run under 15 minutes.
LAT_ROUNDS_OTHER=$(( LAT_ROUNDS < 3 ? LAT_ROUNDS : 3 ))
LAT_TARGET_SCENARIOS="small small_anthropic"
LAT_RATE="${BENCH_LAT_RATE:-1000}"
LAT_SKIP_MS=250
SAT_ROUNDS_SCENARIOS="small small_anthropic"
SAT_ROUNDS="${BENCH_SAT_ROUNDS:-3}"
SAT_ROUND_SECONDS="${BENCH_SAT_ROUND_SECONDS:-5}"
STREAM_SECONDS=12
PATHS="${BENCH_PATHS:-direct nginx gatehouse gatehouse_nolog portkey}"

MOCK_PORT=18801
NGINX_PORT=18802
GH_PORT=18803
PK_PORT=18804
GH_NOLOG_PORT=18805

declare -A PORT_OF=([direct]=$MOCK_PORT [nginx]=$NGINX_PORT [gatehouse]=$GH_PORT
                    [gatehouse_nolog]=$GH_NOLOG_PORT [portkey]=$PK_PORT)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- dependencies -------------------------------------------------------------------------------

install_deps() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
    command -v h2load >/dev/null || missing+=(nghttp2-client)
    command -v jq >/dev/null || missing+=(jq)
    command -v node >/dev/null || missing+=(nodejs npm)
    pkg-config --exists libevent || missing+=(libevent-dev)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [ ! -d "$BENCH/peers/node_modules/@portkey-ai/gateway" ]; then
        log "installing the Portkey gateway from npm"
        (cd "$BENCH/peers" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

# ---- processes ----------------------------------------------------------------------------------

PIDS_STARTED=()

cleanup() {
    local pid
    for pid in "${PIDS_STARTED[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS_STARTED[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [ "$TMP" = "$KEEP" ] || rm -rf "$TMP"
}
trap cleanup EXIT

wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log "nothing listens on port $port after 10 s"
    return 1
}

stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

CORE_LOAD=""
CORE_SUT=""
if [ "$(nproc)" -ge 2 ]; then
    CORE_LOAD="taskset -c 0"
    CORE_SUT="taskset -c 1"
fi

# The server process(es) whose CPU and memory are measured: nginx's master and workers, the
# other servers' single process.
SUT_PIDS=""

sut_pids() {
    local pid=$1 kids
    kids="$(pgrep -P "$pid" 2>/dev/null | tr '\n' ' ' || true)"
    echo "$pid $kids"
}

cpu_ticks() {
    local total=0 pid f
    for pid in $SUT_PIDS; do
        f="$(cut -d')' -f2- "/proc/$pid/stat" 2>/dev/null)" || continue
        # fields after "(comm)": state is $1, utime is $12, stime is $13
        total=$((total + $(echo "$f" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

status_kb() {
    local field=$1 total=0 pid v
    for pid in $SUT_PIDS; do
        v="$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

reset_peak() {
    local pid
    for pid in $SUT_PIDS; do
        echo 5 > "/proc/$pid/clear_refs" 2>/dev/null || true
    done
}

CLK_TCK="$(getconf CLK_TCK)"

# ---- request bodies ------------------------------------------------------------------------------

# 20 tool definitions in OpenAI's shape: the first 20 tools of a real MCP server's catalog when
# the shared catalogs are there, else 20 made-up but realistic ones.
CATALOG="$ROOT/../shared/tool-catalogs/github.json"
TOOLS_SOURCE=""

make_tools() {
    if [ -r "$CATALOG" ]; then
        TOOLS_SOURCE="first 20 tools of shared/tool-catalogs/github.json (@modelcontextprotocol/server-github)"
        jq -c '[.tools[:20][] | {type: "function", function: {name, description,
                 parameters: .inputSchema}}]' "$CATALOG"
    else
        TOOLS_SOURCE="20 synthetic tools generated by bench/run.sh (no shared catalog found)"
        jq -cn '[range(20) as $i | {type: "function", function: {
            name: "tool_\($i)_search_records",
            description: "Search the records of collection \($i) by text, owner and date range, returning at most `limit` matches sorted by relevance.",
            parameters: {type: "object", required: ["query"], properties: {
                query: {type: "string", description: "Free-text query"},
                owner: {type: "string", description: "Owner login"},
                since: {type: "string", format: "date-time", description: "Only records changed after this time"},
                state: {type: "string", enum: ["open", "closed", "all"]},
                limit: {type: "integer", minimum: 1, maximum: 100, description: "Page size"},
                labels: {type: "array", items: {type: "string"}, description: "Labels to match"}}}}}]'
    fi
}

# body MODEL STREAM TOOLS_FILE -> a chat request on stdout
make_body() {
    local model=$1 stream=$2 tools=$3
    if [ -n "$tools" ]; then
        jq -cn --arg m "$model" --argjson s "$stream" --slurpfile t "$tools" \
            '{model: $m, messages: [{role: "user", content: "Open an issue about the flaky test in repo acme/widgets, then list the open pull requests."}], max_tokens: 64, stream: $s, tools: $t[0]}'
    else
        jq -cn --arg m "$model" --argjson s "$stream" \
            '{model: $m, messages: [{role: "system", content: "You are a helpful assistant."}, {role: "user", content: "Say hello to the benchmark in one short sentence."}], max_tokens: 64, stream: $s}'
    fi
}

# ---- scenarios ------------------------------------------------------------------------------------

# name | mock parameters | stream | tools | api (openai or anthropic) | paths
SCENARIOS="
small|size=64|false||openai|direct nginx gatehouse gatehouse_nolog portkey
large10k|size=10240|false||openai|direct nginx gatehouse portkey
stream50|size=2000,chunks=50|true||openai|direct nginx gatehouse gatehouse_nolog portkey
tools20|size=64|false|tools|openai|direct nginx gatehouse portkey
streams1000|size=2000,chunks=20,delay_ms=250|true||openai|direct nginx gatehouse portkey
small_anthropic|size=64|false||anthropic|direct gatehouse gatehouse_nolog
stream50_anthropic|size=2000,chunks=50|true||anthropic|direct gatehouse
"

# gatehouse's configuration: one provider per scenario, each pointed at the mock with that
# scenario's parameters. The small scenarios use the built-in openai and anthropic providers.
gatehouse_provider() {
    local name=$1 api=$2
    case "$name" in
        small) echo openai ;;
        small_anthropic) echo anthropic ;;
        *) echo "mock-${name//_/-}" ;;
    esac
}

write_gatehouse_config() {
    local out=$1 port=$2 name params stream tools api paths provider first=1
    {
        printf '{"server": {"host": "127.0.0.1", "port": %d, "log_level": "warn",\n' "$port"
        printf '            "idle_timeout_seconds": 120},\n "providers": {\n'
        while IFS='|' read -r name params stream tools api paths; do
            [ -n "$name" ] || continue
            provider="$(gatehouse_provider "$name" "$api")"
            [ $first -eq 1 ] || printf ',\n'
            first=0
            printf '  "%s": {"keys": [{"name": "bench", "value": "sk-bench-key"}],\n' "$provider"
            printf '   "network_config": {"base_url": "http://127.0.0.1:%d/p/%s", "max_retries": 0,\n' \
                "$MOCK_PORT" "$params"
            printf '                      "default_request_timeout_in_seconds": 120},\n'
            printf '   "concurrency_and_buffer_size": {"concurrency": 5000, "buffer_size": 5000}'
            case "$provider" in
                openai|anthropic) ;;
                *) printf ',\n   "custom_provider_config": {"base_provider_type": "%s"}' "$api" ;;
            esac
            printf '}'
        done <<< "$SCENARIOS"
        printf '\n }\n}\n'
    } > "$out"
}

# url_for PATH SCENARIO PARAMS API -> the URL the load generator hits
url_for() {
    local path=$1 name=$2 params=$3 api=$4 suffix="/v1/chat/completions"
    [ "$api" = anthropic ] && suffix="/v1/messages"
    case "$path" in
        direct) echo "http://127.0.0.1:$MOCK_PORT/p/$params$suffix" ;;
        nginx) echo "http://127.0.0.1:$NGINX_PORT/p/$params$suffix" ;;
        gatehouse*) echo "http://127.0.0.1:${PORT_OF[$path]}/v1/chat/completions" ;;
        portkey) echo "http://127.0.0.1:$PK_PORT/v1/chat/completions" ;;
    esac
}

model_for() {
    local path=$1 name=$2 api=$3
    if [ "${path#gatehouse}" != "$path" ]; then
        if [ "$api" = anthropic ]; then
            echo "$(gatehouse_provider "$name" "$api")/claude-sonnet-4-5"
        else
            echo "$(gatehouse_provider "$name" "$api")/gpt-4o-mini"
        fi
    elif [ "$api" = anthropic ]; then
        echo "claude-sonnet-4-5"
    else
        echo "gpt-4o-mini"
    fi
}

# ---- measurements ----------------------------------------------------------------------------------

RAW="$TMP/raw.jsonl"

metrics_snapshot() {
    local out=$1
    if [ "${CURRENT_PATH#gatehouse}" != "$CURRENT_PATH" ]; then
        curl -s -m 5 "http://127.0.0.1:${PORT_OF[$CURRENT_PATH]}/metrics" > "$out" 2>/dev/null \
            || : > "$out"
    else
        : > "$out"
    fi
}

# saturation PATH SCENARIO URL BODY HEADERS CONNS SECONDS
# saturation PATH SCENARIO URL BODY HEADERS CONNS SECONDS [ROUND]
saturation() {
    local path=$1 name=$2 url=$3 body=$4 headers=$5 conns=$6 secs=$7 round=${8:-0}
    local tag="$path-$name-sat${8:+$8}" out cpu0 cpu1 wall0 wall1 json
    out="$TMP/$tag.wrk"
    metrics_snapshot "$TMP/$tag.metrics0"
    reset_peak
    cpu0="$(cpu_ticks)"
    wall0="$(date +%s.%N)"
    # -t1: one wrk thread on the load core. --timeout well above the slowest stream.
    $CORE_LOAD wrk -t1 -c"$conns" -d"${secs}s" --timeout 60s --latency \
        -s "$BENCH/lua/post.lua" "$url" -- "$body" $headers > "$out" 2>&1 || true
    wall1="$(date +%s.%N)"
    cpu1="$(cpu_ticks)"
    metrics_snapshot "$TMP/$tag.metrics1"
    json="$(grep '^BENCH_JSON ' "$out" | head -1 | cut -d' ' -f2-)"
    if [ -z "$json" ]; then
        log "wrk printed no result for $tag:"
        cat "$out" >&2
        json='{"requests":0,"duration_us":1,"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0},"latency_us":{}}'
    fi
    jq -c -n --argjson w "$json" --arg path "$path" --arg scen "$name" --argjson conns "$conns" \
        --argjson cpu "$(( cpu1 - cpu0 ))" --argjson tck "$CLK_TCK" --argjson round "$round" \
        --argjson peak "$(status_kb VmHWM)" --argjson rss "$(status_kb VmRSS)" \
        --arg m0 "$TMP/$tag.metrics0" --arg m1 "$TMP/$tag.metrics1" \
        '{kind: "saturation", path: $path, scenario: $scen, conns: $conns, tool: "wrk",
          round: $round,
          requests: $w.requests, seconds: ($w.duration_us / 1e6),
          rps: ($w.requests / ($w.duration_us / 1e6)),
          errors: ($w.errors.connect + $w.errors.read + $w.errors.write + $w.errors.timeout),
          non2xx: $w.errors.status, error_detail: $w.errors,
          latency_us: $w.latency_us,
          cpu_s: ($cpu / $tck),
          cpu_s_per_1k: (if $w.requests > 0 then ($cpu / $tck) / $w.requests * 1000 else null end),
          peak_rss_kb: $peak, rss_after_kb: $rss, metrics_before: $m0, metrics_after: $m1}' \
        >> "$RAW"
    log "$tag: $(jq -r '"\(.rps | floor) req/s, p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us, errors \(.errors)+\(.non2xx), cpu/1k \(.cpu_s_per_1k), peak \(.peak_rss_kb) kB"' <<< "$(tail -1 "$RAW")")"
}

# fixed_rate PATH SCENARIO URL BODY HEADERS RATE SECONDS ROUND: one short run of the latency
# phase (see latency_phase).
fixed_rate() {
    local path=$1 name=$2 url=$3 body=$4 headers=$5 rate=$6 secs=$7 round=$8
    local tag="$path-$name-lat$round" conns=50 hargs=() line cpu0 cpu1 per_ms
    local out="$TMP/$tag.h2load" logf="$TMP/$tag.log"
    if [ -n "$headers" ]; then
        while IFS= read -r line; do
            [ -n "$line" ] && hargs+=(-H "$line")
        done < "$headers"
    fi
    # h2load --rps paces each client; clients are started rate/1000 per millisecond (-r,
    # --rate-period takes whole milliseconds) so that their requests interleave instead of
    # leaving in one burst per period. -r excludes -D: the run is -n requests long instead.
    per_ms=$(( rate / 1000 ))
    [ "$per_ms" -ge 1 ] || per_ms=1
    rm -f "$logf"
    metrics_snapshot "$TMP/$tag.metrics0"
    cpu0="$(cpu_ticks)"
    $CORE_LOAD timeout $(( secs * 4 + 30 )) h2load --h1 -c "$conns" --rps $(( rate / conns )) \
        -r "$per_ms" --rate-period 1ms -n $(( rate * secs )) -T 60 -N 60 \
        -d "$body" -H 'content-type: application/json' "${hargs[@]}" --log-file "$logf" "$url" \
        > "$out" 2>&1 || true
    cpu1="$(cpu_ticks)"
    metrics_snapshot "$TMP/$tag.metrics1"
    # The first LAT_SKIP_MS of a run are left out of its percentiles: they hold the 50
    # connection set-ups and the clients' staggered start, not the steady state.
    jq -c -n --argjson s "$(node "$BENCH/report.mjs" percentiles "$logf" "$out" "$LAT_SKIP_MS")" \
        --arg path "$path" --arg scen "$name" --argjson rate "$rate" --argjson conns "$conns" \
        --argjson round "$round" --argjson cpu "$(( cpu1 - cpu0 ))" --argjson tck "$CLK_TCK" \
        --arg m0 "$TMP/$tag.metrics0" --arg m1 "$TMP/$tag.metrics1" \
        --argjson t "$(date +%s.%N)" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
        '{kind: "fixed", path: $path, scenario: $scen, rate: $rate, conns: $conns, tool: "h2load",
          round: $round, ended_at: $t, loadavg: ($load | tonumber),
          requests: $s.count, skipped: $s.skipped,
          seconds: $s.seconds, rps: $s.rps, errors: $s.errors, non2xx: $s.non2xx,
          latency_us: $s.latency_us, cpu_s: ($cpu / $tck),
          cpu_s_per_1k: (if $s.count > 0 then ($cpu / $tck) / $s.count * 1000 else null end),
          metrics_before: $m0, metrics_after: $m1}' >> "$RAW"
    log "$tag: $(jq -r '"\(.rps | floor) req/s, p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us, p99.9 \(.latency_us.p999) us, errors \(.errors)+\(.non2xx)"' <<< "$(tail -1 "$RAW")")"
}

# ---- the paths ---------------------------------------------------------------------------------------

MOCK_PID=""
CURRENT_PATH=""
declare -A SERVER_PID_OF=() SUT_PIDS_OF=() IDLE_START=() IDLE_FIRST=()

start_mock() {
    log "starting gatehouse-mock on core 0, port $MOCK_PORT"
    $CORE_LOAD "$ROOT/build/bench/gatehouse-mock" --port "$MOCK_PORT" > "$TMP/mock.log" 2>&1 &
    MOCK_PID=$!
    PIDS_STARTED+=("$MOCK_PID")
    wait_port "$MOCK_PORT"
}

# Starts the server of one path on its own port; every path's server stays up until the end.
start_server() {
    local path=$1 pid
    case "$path" in
        direct)
            SUT_PIDS_OF[$path]="$MOCK_PID"
            IDLE_START[$path]="$(SUT_PIDS="$MOCK_PID" status_kb VmRSS)"
            return 0 ;;
        nginx)
            sed -e "s|@PORT@|$NGINX_PORT|; s|@MOCK_PORT@|$MOCK_PORT|; s|@TMP@|$TMP|g" \
                "$BENCH/nginx/nginx.conf.in" > "$TMP/nginx.conf"
            rm -f "$TMP/nginx-access.log"
            $CORE_SUT nginx -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" &
            pid=$! ;;
        gatehouse|gatehouse_nolog)
            write_gatehouse_config "$TMP/$path.json" "${PORT_OF[$path]}"
            if [ "$path" = gatehouse_nolog ]; then
                jq '. + {logs: {enabled: false}}' "$TMP/$path.json" > "$TMP/$path.json.new"
                mv "$TMP/$path.json.new" "$TMP/$path.json"
            fi
            "$ROOT/build/gatehouse" check-config "$TMP/$path.json" > "$TMP/$path-check.txt"
            rm -rf "$TMP/$path-data"
            $CORE_SUT "$ROOT/build/gatehouse" serve --config "$TMP/$path.json" --threads 1 \
                --data-dir "$TMP/$path-data" 2> "$TMP/$path.log" &
            pid=$! ;;
        portkey)
            (cd "$BENCH/peers" && NODE_ENV=production exec $CORE_SUT node \
                node_modules/@portkey-ai/gateway/build/start-server.js --port="$PK_PORT" --headless \
                > "$TMP/portkey.log" 2>&1) &
            pid=$! ;;
    esac
    PIDS_STARTED+=("$pid")
    SERVER_PID_OF[$path]="$pid"
    wait_port "${PORT_OF[$path]}"
    sleep 0.5
    SUT_PIDS_OF[$path]="$(sut_pids "$pid")"
    IDLE_START[$path]="$(SUT_PIDS="${SUT_PIDS_OF[$path]}" status_kb VmRSS)"
}

# Makes the processes of PATH the ones measured, and its /metrics the one scraped. The list is
# taken afresh each time: nginx's worker may not have been forked yet when its master started
# listening.
measure_path() {
    CURRENT_PATH=$1
    if [ -n "${SERVER_PID_OF[$1]:-}" ]; then
        SUT_PIDS_OF[$1]="$(sut_pids "${SERVER_PID_OF[$1]}")"
    fi
    SUT_PIDS="${SUT_PIDS_OF[$1]}"
}

# One request through the path, so that idle RSS counts a process that has served once.
warm_one() {
    local url=$1 body=$2 headers=$3 hargs=() line
    if [ -n "$headers" ]; then
        while IFS= read -r line; do
            [ -n "$line" ] && hargs+=(-H "$line")
        done < "$headers"
    fi
    curl -s -m 10 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        "${hargs[@]}" --data-binary "@$body" "$url"
}

# request_for PATH SCENARIO PARAMS STREAM TOOLS API: sets REQ_URL, REQ_BODY (a file) and
# REQ_HEADERS (a file, or empty) for that path and scenario.
request_for() {
    local path=$1 name=$2 params=$3 stream=$4 tools=$5 api=$6
    REQ_URL="$(url_for "$path" "$name" "$params" "$api")"
    REQ_BODY="$TMP/body-$path-$name.json"
    [ -s "$REQ_BODY" ] || make_body "$(model_for "$path" "$name" "$api")" "$stream" \
        "${tools:+$TMP/tools20.json}" > "$REQ_BODY"
    REQ_HEADERS=""
    if [ "$path" = portkey ]; then
        REQ_HEADERS="$TMP/headers-$path-$name.txt"
        printf 'x-portkey-provider: openai\nx-portkey-custom-host: http://127.0.0.1:%d/p/%s/v1\nauthorization: Bearer sk-bench-key\n' \
            "$MOCK_PORT" "$params" > "$REQ_HEADERS"
    fi
}

# The saturation phase of one path: every scenario of the path under wrk.
saturate_path() {
    local path=$1 name params stream tools api paths code
    measure_path "$path"
    log "== saturation: $path"
    while IFS='|' read -r name params stream tools api paths; do
        [ -n "$name" ] || continue
        case " $paths " in *" $path "*) ;; *) continue ;; esac
        request_for "$path" "$name" "$params" "$stream" "$tools" "$api"

        code="$(warm_one "$REQ_URL" "$REQ_BODY" "$REQ_HEADERS")"
        if [ "$code" != 200 ]; then
            log "$path/$name: a single request answered $code; see $TMP"
        fi
        if [ -z "${IDLE_FIRST[$path]:-}" ]; then
            IDLE_FIRST[$path]="$(status_kb VmRSS)"
        fi

        case " $SAT_ROUNDS_SCENARIOS " in
            *" $name "*) continue ;; # measured in rounds, taking turns (saturation_rounds)
        esac
        if [ "$name" = streams1000 ]; then
            saturation "$path" "$name" "$REQ_URL" "$REQ_BODY" "$REQ_HEADERS" 1000 "$STREAM_SECONDS"
        else
            saturation "$path" "$name" "$REQ_URL" "$REQ_BODY" "$REQ_HEADERS" 32 "$SECONDS_PER_RUN"
        fi
        # Let a request log's writer finish what the run queued before the next run starts.
        sleep 1
    done <<< "$SCENARIOS"
}

# The saturation runs of the targets' scenarios (the small chat and its translation) take turns
# between the paths and scenarios, round after round, like the latency runs: the figures are
# the medians, and the ratio of two paths is also given round by round (report.mjs). A single
# run per path would compare minutes that see different machines when other work comes and
# goes.
saturation_rounds() {
    local name p r i n pairs=()
    for name in $SAT_ROUNDS_SCENARIOS; do
        for p in $(paths_here "$(scenario_line "$name")"); do
            pairs+=("$p|$name")
        done
    done
    n=${#pairs[@]}
    log "== saturation: $SAT_ROUNDS_SCENARIOS, $SAT_ROUNDS rounds of $SAT_ROUND_SECONDS s per path"
    # One request each first: the idle RSS after one request, and no first-use cost in a round.
    for i in $(seq 0 $(( n - 1 ))); do
        IFS='|' read -r p name <<< "${pairs[$i]}"
        warm_path "$p" "$name"
    done
    for r in $(seq 1 "$SAT_ROUNDS"); do
        for i in $(seq 0 $(( n - 1 ))); do
            IFS='|' read -r p name <<< "${pairs[$(( (i + r - 1) % n ))]}"
            sat_run "$p" "$name" "$r"
        done
    done
}

# warm_path PATH SCENARIO: one request, and the path's idle RSS after its first request.
warm_path() {
    local path=$1 name params stream tools api paths code
    IFS='|' read -r name params stream tools api paths <<< "$(scenario_line "$2")"
    measure_path "$path"
    request_for "$path" "$name" "$params" "$stream" "$tools" "$api"
    code="$(warm_one "$REQ_URL" "$REQ_BODY" "$REQ_HEADERS")"
    [ "$code" = 200 ] || log "$path/$name: a single request answered $code; see $TMP"
    if [ -z "${IDLE_FIRST[$path]:-}" ]; then
        IDLE_FIRST[$path]="$(status_kb VmRSS)"
    fi
}

# sat_run PATH SCENARIO ROUND: one saturation run of a round.
sat_run() {
    local path=$1 round=$3 name params stream tools api paths
    IFS='|' read -r name params stream tools api paths <<< "$(scenario_line "$2")"
    measure_path "$path"
    request_for "$path" "$name" "$params" "$stream" "$tools" "$api"
    saturation "$path" "$name" "$REQ_URL" "$REQ_BODY" "$REQ_HEADERS" 32 "$SAT_ROUND_SECONDS" \
        "$round"
    sleep 1
}

# Saturation throughput of PATH in SCENARIO from this run's records (the median of its
# rounds), or 0.
sat_rps_of() {
    jq -rs --arg p "$1" --arg s "$2" \
        '[.[] | select(.kind == "saturation" and .path == $p and .scenario == $s) | .rps] | sort
         | if length > 0 then .[length / 2 | floor] else 0 end | floor' "$RAW"
}

# The rate of a scenario's latency runs: LAT_RATE, or half the saturation throughput of the
# slowest proxy measured (nginx, gatehouse) when that is lower, so that every run measures
# latency rather than queueing. A peer gateway slower than twice the rate is left out.
latency_plan() {
    local name=$1 paths=$2 p sat rate=$LAT_RATE
    LAT_PATHS=""
    LAT_EXCLUDED=""
    for p in $paths; do
        case "$p" in direct|portkey) continue ;; esac
        sat="$(sat_rps_of "$p" "$name")"
        if [ "$sat" -gt 0 ] && [ $(( sat / 2 / 100 * 100 )) -lt "$rate" ]; then
            rate=$(( sat / 2 / 100 * 100 ))
        fi
    done
    [ "$rate" -ge 100 ] || rate=100
    for p in $paths; do
        [ "$p" = direct ] && continue
        sat="$(sat_rps_of "$p" "$name")"
        if [ "$p" = portkey ] && [ "$sat" -lt $(( 2 * rate )) ]; then
            LAT_EXCLUDED="$LAT_EXCLUDED $p:$sat"
            continue
        fi
        LAT_PATHS="$LAT_PATHS $p"
    done
    LAT_SCEN_RATE=$rate
}

# The SCENARIOS line of a scenario.
scenario_line() {
    grep "^$1|" <<< "$SCENARIOS" || true
}

# The paths of a SCENARIOS line that this run measures.
paths_here() {
    local p here=""
    for p in $(cut -d'|' -f6 <<< "$1"); do
        case " $PATHS " in *" $p "*) here="$here $p" ;; esac
    done
    echo "$here"
}

declare -A LAT_RATE_OF=()

# lat_run PATH SCENARIO ROUND: one fixed-rate run at the scenario's planned rate.
lat_run() {
    local path=$1 round=$3 name params stream tools api paths
    IFS='|' read -r name params stream tools api paths <<< "$(scenario_line "$2")"
    measure_path "$path"
    request_for "$path" "$name" "$params" "$stream" "$tools" "$api"
    fixed_rate "$path" "$name" "$REQ_URL" "$REQ_BODY" "$REQ_HEADERS" "${LAT_RATE_OF[$name]}" \
        "$LAT_SECONDS" "$round"
    # gatehouse's request log is written by a thread on the same core: let it finish the run's
    # rows before another path is measured there.
    [ "$path" != gatehouse ] || sleep 1
}

# latency_group "SCENARIO ..." ROUNDS: the fixed-rate runs of these scenarios take turns in the
# same rounds: each round begins with a direct run per scenario, then one run per proxy and
# scenario, in an order that turns by one each round; a last direct run per scenario closes.
# Scenarios that a target compares (the small chat and its translation) share their rounds,
# so that both see the same machine. report.mjs compares each run with the direct runs of its
# scenario just before and after it.
latency_group() {
    local scens=$1 rounds=$2 name here p r i n pairs=() directs=()
    for name in $scens; do
        here="$(paths_here "$(scenario_line "$name")")"
        case " $here " in *" direct "*) ;; *) continue ;; esac
        latency_plan "$name" "$here"
        LAT_RATE_OF[$name]=$LAT_SCEN_RATE
        jq -c -n --arg s "$name" --argjson rate "$LAT_SCEN_RATE" --arg paths "$LAT_PATHS" \
            --arg excl "$LAT_EXCLUDED" --argjson rounds "$rounds" --argjson secs "$LAT_SECONDS" \
            '{kind: "latency_plan", scenario: $s, rate: $rate, rounds: $rounds, seconds: $secs,
              paths: ($paths | split(" ") | map(select(. != ""))),
              excluded: ($excl | split(" ") | map(select(. != "") | split(":")
                         | {path: .[0], saturation_rps: (.[1] | tonumber)}))}' >> "$RAW"
        log "$name: $LAT_SCEN_RATE req/s, $rounds rounds; paths:$LAT_PATHS" \
            "${LAT_EXCLUDED:+; too slow for the rate:$LAT_EXCLUDED}"
        directs+=("$name")
        for p in $LAT_PATHS; do
            pairs+=("$p|$name")
        done
    done
    n=${#pairs[@]}
    [ "${#directs[@]}" -gt 0 ] || return 0
    for r in $(seq 1 $(( rounds + 1 ))); do
        for name in "${directs[@]}"; do
            lat_run direct "$name" "$r"
        done
        [ "$r" -le "$rounds" ] || break
        for i in $(seq 0 $(( n - 1 ))); do
            IFS='|' read -r p name <<< "${pairs[$(( (i + r - 1) % n ))]}"
            sleep 0.3
            lat_run "$p" "$name" "$r"
        done
        sleep 0.3
    done
}

# The latency phase: the targets' scenarios together, then every other scenario on its own.
latency_phase() {
    local name
    log "== latency: $LAT_ROUNDS rounds ($LAT_ROUNDS_OTHER outside $LAT_TARGET_SCENARIOS)" \
        "of $LAT_SECONDS s runs per path and scenario"
    latency_group "$LAT_TARGET_SCENARIOS" "$LAT_ROUNDS"
    for name in $(cut -d'|' -f1 <<< "$SCENARIOS"); do
        case " $LAT_TARGET_SCENARIOS streams1000 " in *" $name "*) continue ;; esac
        latency_group "$name" "$LAT_ROUNDS_OTHER"
    done
}

# Memory at rest of every path, after both phases; then the servers stop.
finish_paths() {
    local path
    sleep 2
    for path in $PATHS; do
        measure_path "$path"
        jq -c -n --arg path "$path" --argjson a "${IDLE_START[$path]:-0}" \
            --argjson b "${IDLE_FIRST[$path]:-0}" --argjson c "$(status_kb VmRSS)" \
            --argjson pids "$(echo "$SUT_PIDS" | wc -w)" \
            '{kind: "idle", path: $path, rss_start_kb: $a, rss_after_first_kb: $b,
              rss_after_load_kb: $c, processes: $pids}' >> "$RAW"
        if [ -n "${SERVER_PID_OF[$path]:-}" ]; then
            stop_pid "${SERVER_PID_OF[$path]}"
        fi
    done
}

machine_info() {
    local portkey_version
    portkey_version="$(cd "$BENCH/peers" && node -p \
        'require("./node_modules/@portkey-ai/gateway/package.json").version' 2>/dev/null || echo unknown)"
    jq -c -n \
        --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        --arg nproc "$(nproc)" \
        --arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" \
        --arg mem "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
        --arg kernel "$(uname -sr)" \
        --arg nginx "$(nginx -v 2>&1 | sed 's/.*nginx\///')" \
        --arg node "$(node --version)" \
        --arg portkey "$portkey_version" \
        --arg wrk "$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
        --arg h2load "$(h2load --version 2>&1 | head -1 | awk '{print $NF}')" \
        --arg curl "$(curl --version | head -1 | awk '{print $2}')" \
        --arg gatehouse "$("$ROOT/build/gatehouse" --version | awk '{print $NF}')" \
        --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        --arg tools "$TOOLS_SOURCE" \
        --arg cores "$([ -n "$CORE_SUT" ] && echo "server under test alone on core 1; load generator (wrk, h2load) and gatehouse-mock share core 0" || echo "one core: no pinning")" \
        --argjson secs "$SECONDS_PER_RUN" --argjson lat_secs "$LAT_SECONDS" \
        --argjson lat_rounds "$LAT_ROUNDS" --argjson lat_skip "$LAT_SKIP_MS" \
        --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
        '{kind: "machine", date: $date, nproc: $nproc, cpu: $cpu, memory: $mem, kernel: $kernel,
          versions: {nginx: $nginx, node: $node, portkey: $portkey, wrk: $wrk, h2load: $h2load,
                     libcurl: $curl, gatehouse: $gatehouse, commit: $commit},
          tools_source: $tools, cores: $cores, seconds_per_run: $secs,
          latency_seconds_per_run: $lat_secs, latency_rounds: $lat_rounds,
          latency_skip_ms: $lat_skip, loadavg_start: $load}' \
        >> "$RAW"
}

# ---- main ------------------------------------------------------------------------------------------

main() {
    local started path
    started="$(date +%s)"
    mkdir -p "$TMP" "$KEEP"
    rm -rf "${KEEP:?}"/*
    log "working files in $TMP"
    [ "${BENCH_SKIP_INSTALL:-0}" = 1 ] || install_deps
    make -s -C "$ROOT" all
    make -s -C "$BENCH/mock"

    # 1,000 streams need 1,000 client sockets, 1,000 inbound and 1,000 upstream ones.
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    log "open files limit: $(ulimit -n)"

    make_tools > "$TMP/tools20.json"
    machine_info
    start_mock
    for path in $PATHS; do
        start_server "$path"
    done
    saturation_rounds
    for path in $PATHS; do
        saturate_path "$path"
    done
    latency_phase
    finish_paths
    stop_pid "$MOCK_PID"
    jq -c -n --arg load "$(cut -d' ' -f1 /proc/loadavg)" '{kind: "end", loadavg: $load}' >> "$RAW"

    [ "$TMP" = "$KEEP" ] || cp -a "$TMP"/. "$KEEP"/
    node "$BENCH/report.mjs" build "$KEEP/raw.jsonl" "$RES" "$BENCH/README.md"
    (cd "$RES" && gnuplot "$KEEP/plots.gp")
    log "done in $(( $(date +%s) - started )) s; results in bench/results/"
}

main "$@"
