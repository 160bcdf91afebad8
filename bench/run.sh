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
# show what the request log costs), portkey.
#
# Environment: BENCH_SECONDS (length of a measured run, default 8), BENCH_PATHS (default
# "direct nginx gatehouse gatehouse_nolog portkey"), BENCH_SKIP_INSTALL=1 (use what is there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
RES="$BENCH/results"
TMP="$RES/tmp"
SECONDS_PER_RUN="${BENCH_SECONDS:-8}"
STREAM_SECONDS=12
PATHS="${BENCH_PATHS:-direct nginx gatehouse gatehouse_nolog portkey}"

MOCK_PORT=18801
NGINX_PORT=18802
GH_PORT=18803
PK_PORT=18804

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
    local out=$1 name params stream tools api paths provider first=1
    {
        printf '{"server": {"host": "127.0.0.1", "port": %d, "log_level": "warn",\n' "$GH_PORT"
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
        gatehouse*) echo "http://127.0.0.1:$GH_PORT/v1/chat/completions" ;;
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
        curl -s -m 5 "http://127.0.0.1:$GH_PORT/metrics" > "$out" 2>/dev/null || : > "$out"
    else
        : > "$out"
    fi
}

# saturation PATH SCENARIO URL BODY HEADERS CONNS SECONDS
saturation() {
    local path=$1 name=$2 url=$3 body=$4 headers=$5 conns=$6 secs=$7
    local tag="$path-$name-sat" out cpu0 cpu1 wall0 wall1 json
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
        --argjson cpu "$(( cpu1 - cpu0 ))" --argjson tck "$CLK_TCK" \
        --argjson peak "$(status_kb VmHWM)" --argjson rss "$(status_kb VmRSS)" \
        --arg m0 "$TMP/$tag.metrics0" --arg m1 "$TMP/$tag.metrics1" \
        '{kind: "saturation", path: $path, scenario: $scen, conns: $conns, tool: "wrk",
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

# fixed_rate PATH SCENARIO URL BODY HEADERS RATE SECONDS SATURATION_RPS
fixed_rate() {
    local path=$1 name=$2 url=$3 body=$4 headers=$5 rate=$6 secs=$7 sat=${8:-0}
    local tag="$path-$name-fixed$rate" conns=50 hargs=() line cpu0 cpu1 per_ms n
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
    n=$(( rate * secs ))
    # A server slower than the rate falls behind and the run would last n / its speed: cap n
    # at what its saturation run managed in the same time, plus a tenth.
    if [ "$sat" -gt 0 ] && [ "$(( sat * secs * 11 / 10 ))" -lt "$n" ]; then
        n=$(( sat * secs * 11 / 10 ))
    fi
    rm -f "$logf"
    metrics_snapshot "$TMP/$tag.metrics0"
    reset_peak
    cpu0="$(cpu_ticks)"
    $CORE_LOAD timeout $(( secs * 4 + 30 )) h2load --h1 -c "$conns" --rps $(( rate / conns )) \
        -r "$per_ms" --rate-period 1ms -n "$n" -T 60 -N 60 \
        -d "$body" -H 'content-type: application/json' "${hargs[@]}" --log-file "$logf" "$url" \
        > "$out" 2>&1 || true
    cpu1="$(cpu_ticks)"
    metrics_snapshot "$TMP/$tag.metrics1"
    jq -c -n --argjson s "$(node "$BENCH/report.mjs" percentiles "$logf" "$out")" \
        --arg path "$path" --arg scen "$name" --argjson rate "$rate" --argjson conns "$conns" \
        --argjson cpu "$(( cpu1 - cpu0 ))" --argjson tck "$CLK_TCK" \
        --argjson peak "$(status_kb VmHWM)" \
        --arg m0 "$TMP/$tag.metrics0" --arg m1 "$TMP/$tag.metrics1" \
        '{kind: "fixed", path: $path, scenario: $scen, rate: $rate, conns: $conns, tool: "h2load",
          requests: $s.count, seconds: $s.seconds, rps: $s.rps, errors: $s.errors,
          non2xx: $s.non2xx, latency_us: $s.latency_us, cpu_s: ($cpu / $tck),
          cpu_s_per_1k: (if $s.count > 0 then ($cpu / $tck) / $s.count * 1000 else null end),
          peak_rss_kb: $peak, metrics_before: $m0, metrics_after: $m1}' >> "$RAW"
    log "$tag: $(jq -r '"\(.rps | floor) req/s, p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us, p99.9 \(.latency_us.p999) us, errors \(.errors)+\(.non2xx)"' <<< "$(tail -1 "$RAW")")"
}

# ---- the paths ---------------------------------------------------------------------------------------

MOCK_PID=""
SERVER_PID=""
CURRENT_PATH=""

start_mock() {
    log "starting gatehouse-mock on core 0, port $MOCK_PORT"
    $CORE_LOAD "$ROOT/build/bench/gatehouse-mock" --port "$MOCK_PORT" > "$TMP/mock.log" 2>&1 &
    MOCK_PID=$!
    PIDS_STARTED+=("$MOCK_PID")
    wait_port "$MOCK_PORT"
}

start_server() {
    local path=$1
    case "$path" in
        direct)
            SERVER_PID=""
            SUT_PIDS="$MOCK_PID"
            return 0 ;;
        nginx)
            sed -e "s|@PORT@|$NGINX_PORT|; s|@MOCK_PORT@|$MOCK_PORT|; s|@TMP@|$TMP|g" \
                "$BENCH/nginx/nginx.conf.in" > "$TMP/nginx.conf"
            rm -f "$TMP/nginx-access.log"
            $CORE_SUT nginx -c "$TMP/nginx.conf" -e "$TMP/nginx-error.log" &
            SERVER_PID=$!
            wait_port "$NGINX_PORT" ;;
        gatehouse|gatehouse_nolog)
            write_gatehouse_config "$TMP/$path.json"
            if [ "$path" = gatehouse_nolog ]; then
                jq '. + {logs: {enabled: false}}' "$TMP/$path.json" > "$TMP/$path.json.new"
                mv "$TMP/$path.json.new" "$TMP/$path.json"
            fi
            "$ROOT/build/gatehouse" check-config "$TMP/$path.json" > "$TMP/$path-check.txt"
            rm -rf "$TMP/$path-data"
            $CORE_SUT "$ROOT/build/gatehouse" serve --config "$TMP/$path.json" --threads 1 \
                --data-dir "$TMP/$path-data" 2> "$TMP/$path.log" &
            SERVER_PID=$!
            wait_port "$GH_PORT" ;;
        portkey)
            (cd "$BENCH/peers" && NODE_ENV=production exec $CORE_SUT node \
                node_modules/@portkey-ai/gateway/build/start-server.js --port="$PK_PORT" --headless \
                > "$TMP/portkey.log" 2>&1) &
            SERVER_PID=$!
            wait_port "$PK_PORT" ;;
    esac
    PIDS_STARTED+=("$SERVER_PID")
    sleep 0.5
    SUT_PIDS="$(sut_pids "$SERVER_PID")"
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

run_path() {
    local path=$1 name params stream tools api paths url body headers model code sat_rps
    CURRENT_PATH="$path"
    log "== path: $path"
    start_server "$path"
    local idle_start idle_first
    idle_start="$(status_kb VmRSS)"

    local first=1
    while IFS='|' read -r name params stream tools api paths; do
        [ -n "$name" ] || continue
        case " $paths " in *" $path "*) ;; *) continue ;; esac

        url="$(url_for "$path" "$name" "$params" "$api")"
        model="$(model_for "$path" "$name" "$api")"
        body="$TMP/body-$path-$name.json"
        make_body "$model" "$stream" "${tools:+$TMP/tools20.json}" > "$body"
        headers=""
        if [ "$path" = portkey ]; then
            headers="$TMP/headers-$path-$name.txt"
            printf 'x-portkey-provider: openai\nx-portkey-custom-host: http://127.0.0.1:%d/p/%s/v1\nauthorization: Bearer sk-bench-key\n' \
                "$MOCK_PORT" "$params" > "$headers"
        fi

        code="$(warm_one "$url" "$body" "$headers")"
        if [ "$code" != 200 ]; then
            log "$path/$name: a single request answered $code; see $TMP"
        fi
        if [ $first -eq 1 ]; then
            idle_first="$(status_kb VmRSS)"
            first=0
        fi

        if [ "$name" = streams1000 ]; then
            saturation "$path" "$name" "$url" "$body" "$headers" 1000 "$STREAM_SECONDS"
            continue
        fi
        saturation "$path" "$name" "$url" "$body" "$headers" 32 "$SECONDS_PER_RUN"
        sat_rps="$(tail -1 "$RAW" | jq -r '.rps | floor')"
        fixed_rate "$path" "$name" "$url" "$body" "$headers" 1000 "$SECONDS_PER_RUN" "$sat_rps"
        if [ "$name" = small ]; then
            fixed_rate "$path" "$name" "$url" "$body" "$headers" 5000 "$SECONDS_PER_RUN" "$sat_rps"
        fi
    done <<< "$SCENARIOS"

    sleep 2
    jq -c -n --arg path "$path" --argjson a "$idle_start" --argjson b "${idle_first:-0}" \
        --argjson c "$(status_kb VmRSS)" --argjson pids "$(echo "$SUT_PIDS" | wc -w)" \
        '{kind: "idle", path: $path, rss_start_kb: $a, rss_after_first_kb: $b,
          rss_after_load_kb: $c, processes: $pids}' >> "$RAW"
    if [ -n "$SERVER_PID" ]; then
        stop_pid "$SERVER_PID"
    fi
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
        --argjson secs "$SECONDS_PER_RUN" \
        --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
        '{kind: "machine", date: $date, nproc: $nproc, cpu: $cpu, memory: $mem, kernel: $kernel,
          versions: {nginx: $nginx, node: $node, portkey: $portkey, wrk: $wrk, h2load: $h2load,
                     libcurl: $curl, gatehouse: $gatehouse, commit: $commit},
          tools_source: $tools, cores: $cores, seconds_per_run: $secs, loadavg_start: $load}' \
        >> "$RAW"
}

# ---- main ------------------------------------------------------------------------------------------

main() {
    local started path
    started="$(date +%s)"
    mkdir -p "$TMP"
    rm -rf "$TMP"/*
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
        run_path "$path"
    done
    stop_pid "$MOCK_PID"
    jq -c -n --arg load "$(cut -d' ' -f1 /proc/loadavg)" '{kind: "end", loadavg: $load}' >> "$RAW"

    node "$BENCH/report.mjs" build "$RAW" "$RES" "$BENCH/README.md"
    (cd "$RES" && gnuplot "$TMP/plots.gp")
    log "done in $(( $(date +%s) - started )) s; results in bench/results/"
}

main "$@"
