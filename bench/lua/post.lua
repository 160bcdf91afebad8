-- post.lua - wrk script of the benchmark: POSTs one JSON body with the given headers and, when
-- the run ends, prints its figures as one JSON line (prefixed "BENCH_JSON ") for bench/run.sh.
--
-- usage: wrk ... -s bench/lua/post.lua URL -- BODY_FILE [HEADER_FILE]
--   BODY_FILE    the request body, sent as is
--   HEADER_FILE  optional; one "Name: value" per line, added to every request

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

function init(args)
  wrk.method = "POST"
  wrk.body = read_file(args[1])
  wrk.headers["Content-Type"] = "application/json"
  if args[2] then
    for line in io.lines(args[2]) do
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then wrk.headers[name] = value end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
