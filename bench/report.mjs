// report.mjs - the number-crunching half of the benchmark (bench/run.sh does the running).
//
//   node report.mjs percentiles H2LOAD_LOG H2LOAD_OUTPUT [SKIP_MS]
//       latency percentiles and errors of one h2load run, as one JSON object on stdout; the
//       requests started in the first SKIP_MS milliseconds are left out
//   node report.mjs callgrind CALLGRIND_FILE REQUESTS
//       the top entries of one callgrind profile (bench/profile.sh), per request, as text
//   node report.mjs build RAW.jsonl RESULTS_DIR README
//       turns the raw records run.sh wrote into RESULTS_DIR/results.json and results.md,
//       writes the gnuplot script and data (RESULTS_DIR/tmp/plots.gp) for the PNGs, and
//       replaces the results section of README between its two marker comments
//
// Added latency is a path's percentile minus the direct path's same percentile, at the same
// fixed request rate, measured minutes apart at most: each fixed-rate run of a proxy is
// compared with the mean of the two direct runs just before and after it (run.sh takes turns
// between the paths, round after round), and the figures are the medians over the rounds,
// with their minimum and maximum beside them (bench/README.md, "Added latency").

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const PATHS = ["direct", "nginx", "gatehouse", "gatehouse_nolog", "portkey"];
const LABELS = {
  direct: "direct (client to mock)",
  nginx: "nginx",
  gatehouse: "gatehouse (defaults: request log on)",
  gatehouse_nolog: "gatehouse (request log off)",
  portkey: "Portkey",
};
const PLOT_NAMES = { gatehouse: "gatehouse", gatehouse_nolog: "gatehouse-logoff" };
const SCENARIOS = [
  ["small", "small chat, JSON (64 B answer)"],
  ["large10k", "10 KiB answer, JSON"],
  ["stream50", "stream, 50 chunks (2 kB)"],
  ["tools20", "20 tools in the request (about 20 kB body)"],
  ["streams1000", "1,000 concurrent slow streams (20 chunks, 250 ms apart)"],
  ["small_anthropic", "translation: small chat, OpenAI in, Anthropic out"],
  ["stream50_anthropic", "translation: stream, 50 chunks, OpenAI in, Anthropic out"],
];
const MARK_BEGIN = "<!-- bench-results:begin -->";
const MARK_END = "<!-- bench-results:end -->";

// ---- percentiles of one h2load run -------------------------------------------------------------

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function percentiles(logFile, outFile, skipMs = 0) {
  const lines = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n") : [];
  const entries = [];
  for (const line of lines) {
    const [start, status, us] = line.split("\t").map(Number);
    if (Number.isFinite(us)) entries.push([start, status, us]);
  }
  const t0 = entries.reduce((m, e) => Math.min(m, e[0]), Infinity);
  const lat = [];
  let first = Infinity;
  let last = -Infinity;
  let non2xx = 0;
  let skipped = 0;
  for (const [start, status, us] of entries) {
    if (status < 200 || status >= 300) non2xx++;
    if (start < t0 + skipMs * 1000) {
      skipped++;
      continue;
    }
    lat.push(us);
    first = Math.min(first, start);
    last = Math.max(last, start + us);
  }
  lat.sort((a, b) => a - b);
  const out = fs.existsSync(outFile) ? fs.readFileSync(outFile, "utf8") : "";
  const m = out.match(/requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/);
  const total = m ? Number(m[1]) : lat.length;
  const done = m ? Number(m[3]) : lat.length;
  const errored = m ? Number(m[6]) + Number(m[7]) + (total - done) : 0;
  const seconds = lat.length ? (last - first) / 1e6 : 0;
  const mean = lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null;
  return {
    count: lat.length,
    skipped,
    seconds,
    rps: seconds > 0 ? lat.length / seconds : 0,
    errors: errored,
    non2xx,
    latency_us: {
      mean: mean === null ? null : Math.round(mean),
      p50: quantile(lat, 0.5),
      p90: quantile(lat, 0.9),
      p99: quantile(lat, 0.99),
      p999: quantile(lat, 0.999),
      max: lat.length ? lat[lat.length - 1] : null,
    },
  };
}

// ---- gatehouse's own overhead histogram ---------------------------------------------------------

// Sums gatehouse_overhead_seconds_bucket over all label sets, by upper bound.
function readHistogram(file) {
  if (!file || !fs.existsSync(file)) return null;
  const text = fs.readFileSync(file, "utf8");
  const buckets = new Map();
  let count = 0;
  let sum = 0;
  let seen = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith("gatehouse_overhead_seconds")) continue;
    seen = true;
    const value = Number(line.trim().split(/\s+/).pop());
    if (line.startsWith("gatehouse_overhead_seconds_bucket")) {
      const le = line.match(/le="([^"]+)"/);
      if (!le) continue;
      const bound = le[1] === "+Inf" ? Infinity : Number(le[1]);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    } else if (line.startsWith("gatehouse_overhead_seconds_count")) {
      count += value;
    } else if (line.startsWith("gatehouse_overhead_seconds_sum")) {
      sum += value;
    }
  }
  return seen ? { buckets, count, sum } : null;
}

function histogramQuantile(bounds, counts, q) {
  const total = counts[counts.length - 1];
  if (!total) return null;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i] >= rank) {
      if (!Number.isFinite(bounds[i])) return prevBound;
      const inBucket = counts[i] - prevCount;
      const frac = inBucket > 0 ? (rank - prevCount) / inBucket : 0;
      return prevBound + (bounds[i] - prevBound) * frac;
    }
    prevBound = bounds[i];
    prevCount = counts[i];
  }
  return prevBound;
}

// The overhead histogram of what happened between two scrapes: p50, p99 and mean in µs.
function overhead(beforeFile, afterFile) {
  const a = readHistogram(afterFile);
  if (!a) return null;
  const b = readHistogram(beforeFile) ?? { buckets: new Map(), count: 0, sum: 0 };
  const bounds = [...a.buckets.keys()].sort((x, y) => x - y);
  const counts = bounds.map((k) => a.buckets.get(k) - (b.buckets.get(k) ?? 0));
  const n = a.count - b.count;
  const us = (s) => (s === null ? null : Math.round(s * 1e6 * 10) / 10);
  return {
    count: n,
    mean_us: n > 0 ? us((a.sum - b.sum) / n) : null,
    p50_us: us(histogramQuantile(bounds, counts, 0.5)),
    p99_us: us(histogramQuantile(bounds, counts, 0.99)),
  };
}

// ---- the report --------------------------------------------------------------------------------

const fmtInt = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Math.round(v).toLocaleString("en-US"));
const fmtMs = (us) => (us === null || us === undefined ? "–" : (us / 1000).toFixed(us < 10000 ? 2 : 1));
const fmtUs = (us) => (us === null || us === undefined ? "–" : `${Math.round(us)}`);
const fmt3 = (v) => (v === null || v === undefined ? "–" : v.toFixed(v < 0.1 ? 4 : 3));
const signed = (v) => (v === null || v === undefined ? "–" : `${v >= 0 ? "+" : ""}${Math.round(v)}`);
const mib = (kb) => (kb ? (kb / 1024).toFixed(1) : "–");

function median(values) {
  const v = values.filter((x) => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// { median, min, max } of a list of numbers (nulls ignored), or null when there is none.
function spread(values) {
  const v = values.filter((x) => x !== null && x !== undefined && Number.isFinite(x));
  if (!v.length) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

const QS = ["p50", "p99", "p999"];

// Each fixed-rate run of a proxy gets added_us: its percentiles minus the mean of the direct
// runs just before (same round) and after it (next round) in the same scenario.
function addedPerRun(fixed) {
  for (const r of fixed) {
    if (r.path === "direct") continue;
    const around = fixed.filter((d) => d.path === "direct" && d.scenario === r.scenario &&
      (d.round === r.round || d.round === r.round + 1) && d.requests > 0);
    if (!around.length || !(r.requests > 0)) continue;
    r.direct_us = Object.fromEntries(QS.map((q) => [q, around.reduce((a, d) => a + d.latency_us[q], 0) / around.length]));
    r.added_us = Object.fromEntries(QS.map((q) => [q, r.latency_us[q] - r.direct_us[q]]));
  }
}

// A path's saturation runs of one scenario as one record: the run of median throughput (its
// latencies), with the median CPU per request, the largest peak RSS, the errors of all runs,
// and the throughput of each round when there were several.
function saturationSummary(rs) {
  if (rs.length === 1) return rs[0];
  const sorted = [...rs].sort((a, b) => a.rps - b.rps);
  const mid = sorted[Math.floor(sorted.length / 2)];
  return {
    ...mid,
    rounds: rs.length,
    rps_range: [sorted[0].rps, sorted[sorted.length - 1].rps],
    per_round: [...rs].sort((a, b) => a.round - b.round).map((r) => ({ round: r.round, rps: r.rps, cpu_s_per_1k: r.cpu_s_per_1k })),
    cpu_s_per_1k: median(rs.map((r) => r.cpu_s_per_1k)),
    cpu_s: rs.reduce((a, r) => a + r.cpu_s, 0) * (mid.seconds / rs.reduce((a, r) => a + r.seconds, 0)),
    peak_rss_kb: Math.max(...rs.map((r) => r.peak_rss_kb)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
  };
}

// The latency phase of one path and scenario: the medians over the rounds, with their range.
function latencySummary(fixed, p, s) {
  const rs = fixed.filter((r) => r.path === p && r.scenario === s).sort((a, b) => a.round - b.round);
  if (!rs.length) return null;
  const lat = Object.fromEntries(QS.map((q) => [q, spread(rs.map((r) => r.latency_us[q]))]));
  const added = p === "direct" ? null : Object.fromEntries(QS.map((q) => [q, spread(rs.map((r) => r.added_us?.[q]))]));
  const own = rs.map((r) => r.overhead).filter((o) => o && o.count > 0);
  return {
    rate: rs[0].rate,
    rounds: rs.length,
    min_rps: Math.min(...rs.map((r) => r.rps)),
    requests: rs.reduce((a, r) => a + r.requests, 0),
    errors: rs.reduce((a, r) => a + r.errors + r.non2xx, 0),
    latency_us: lat,
    added_us: added,
    per_round: rs.map((r) => ({ round: r.round, p50: r.latency_us.p50, p99: r.latency_us.p99,
      added_p50: r.added_us?.p50 ?? null, added_p99: r.added_us?.p99 ?? null, loadavg: r.loadavg })),
    overhead: own.length ? { p50_us: median(own.map((o) => o.p50_us)), p99_us: median(own.map((o) => o.p99_us)),
      mean_us: median(own.map((o) => o.mean_us)) } : null,
  };
}

function build(rawFile, resDirArg, readme) {
  const resDir = path.resolve(resDirArg);
  const records = fs.readFileSync(rawFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const machine = records.find((r) => r.kind === "machine") ?? {};
  const end = records.find((r) => r.kind === "end");
  if (end) machine.loadavg_end = end.loadavg;
  const runs = records.filter((r) => r.kind === "saturation" || r.kind === "fixed");
  const plans = Object.fromEntries(records.filter((r) => r.kind === "latency_plan").map((r) => [r.scenario, r]));
  const idle = Object.fromEntries(records.filter((r) => r.kind === "idle").map((r) => [r.path, r]));

  for (const r of runs) {
    r.overhead = overhead(r.metrics_before, r.metrics_after);
    delete r.metrics_before;
    delete r.metrics_after;
  }
  const fixed = runs.filter((r) => r.kind === "fixed");
  addedPerRun(fixed);
  const satRuns = runs.filter((r) => r.kind === "saturation");
  const satAgg = new Map();
  for (const r of satRuns) {
    const key = `${r.path}|${r.scenario}`;
    if (!satAgg.has(key)) satAgg.set(key, saturationSummary(satRuns.filter((x) => `${x.path}|${x.scenario}` === key)));
  }
  const sat = (p, s) => satAgg.get(`${p}|${s}`);
  const latency = {};
  for (const p of PATHS)
    for (const [s] of SCENARIOS) {
      const l = latencySummary(fixed, p, s);
      if (l) (latency[s] ??= {})[p] = l;
    }
  const lat = (p, s) => latency[s]?.[p] ?? null;
  for (const r of runs) {
    if (r.kind !== "saturation" || r.path === "direct") continue;
    const d = sat("direct", r.scenario);
    if (d && d.latency_us.p50 !== undefined)
      r.added_us = { p50: r.latency_us.p50 - d.latency_us.p50, p99: r.latency_us.p99 - d.latency_us.p99 };
  }

  const targets = [...evaluateTargets(sat, lat, idle, "gatehouse"), ...evaluateTargets(sat, lat, idle, "gatehouse_nolog")];
  const overheadPresent = runs.some((r) => r.overhead);
  const result = { machine, targets, idle, latency_plans: plans, latency, runs,
    gatehouse_overhead_metric: overheadPresent ? "present" : "absent" };
  fs.writeFileSync(path.join(resDir, "results.json"), JSON.stringify(result, null, 2) + "\n");

  const md = markdown(machine, plans, idle, targets, sat, lat, overheadPresent);
  fs.writeFileSync(path.join(resDir, "results.md"), md.replaceAll("](results/", "]("));
  writePlots(resDir, sat, lat);

  if (readme && fs.existsSync(readme)) {
    const text = fs.readFileSync(readme, "utf8");
    const a = text.indexOf(MARK_BEGIN);
    const b = text.indexOf(MARK_END);
    if (a >= 0 && b > a) {
      const body = md.replace(/^# .*\n/, "");
      fs.writeFileSync(readme, text.slice(0, a + MARK_BEGIN.length) + "\n" + body + "\n" + text.slice(b));
    }
  }
}

// Share of one core the server used during a saturation run, and requests per CPU-second.
const coreUse = (r) => (r && r.seconds > 0 ? r.cpu_s / r.seconds : null);
const perCpuSecond = (r) => (r?.cpu_s_per_1k > 0 ? 1000 / r.cpu_s_per_1k : null);
const pct = (v) => (v === null ? "–" : `${Math.round(v * 100)}%`);

const range = (sp) => (sp ? `${signed(sp.min)} to ${signed(sp.max)}` : "–");

function evaluateTargets(sat, lat, idle, ghPath) {
  const t = [];
  const add = (name, figure, pass, detail) => t.push({ gatehouse: ghPath, name, figure, pass, detail });
  // A ratio of added latencies means something only when both are positive; noise on a
  // shared machine can push the smaller one below zero.
  const ratio = (a, b) => (a !== null && a !== undefined && b !== null && b !== undefined && a > 0 && b > 0 ? a / b : null);

  const gh = lat(ghPath, "small");
  const ng = lat("nginx", "small");
  if (gh?.added_us && ng?.added_us) {
    for (const q of ["p50", "p99"]) {
      const r = ratio(gh.added_us[q]?.median, ng.added_us[q]?.median);
      // The same ratio round by round (each pair of runs minutes apart at most): its range
      // says how much of the figure is noise.
      const perRound = gh.per_round.map((g) => {
        const n = ng.per_round.find((x) => x.round === g.round);
        return n ? ratio(g[`added_${q}`], n[`added_${q}`]) : null;
      }).filter((x) => x !== null);
      const rr = perRound.length ? `; round by round ${Math.min(...perRound).toFixed(2)} to ${Math.max(...perRound).toFixed(2)}` : "";
      add(`added latency ${q}, small chat at ${fmtInt(gh.rate)} req/s: gatehouse ≤ 1.5× nginx`,
        r === null ? null : Number(r.toFixed(2)), r === null ? null : r <= 1.5,
        `medians of ${gh.rounds} rounds: gatehouse ${signed(gh.added_us[q]?.median)} µs (${range(gh.added_us[q])}), nginx ${signed(ng.added_us[q]?.median)} µs (${range(ng.added_us[q])})${rr}`);
    }
  }
  const ghs = sat(ghPath, "small");
  const ngs = sat("nginx", "small");
  const pks = sat("portkey", "small");
  // The throughput ratio round by round (the two runs of a round seconds apart), when the
  // saturation runs took turns.
  const roundRatios = (a, b) => {
    if (!a?.per_round || !b?.per_round) return "";
    const rs = a.per_round.map((x) => ratio(x.rps, b.per_round.find((y) => y.round === x.round)?.rps)).filter((x) => x !== null);
    return rs.length ? `; round by round ${Math.min(...rs).toFixed(2)} to ${Math.max(...rs).toFixed(2)}` : "";
  };
  const rpsText = (x) => (x.rps_range ? `${fmtInt(x.rps)} [${fmtInt(x.rps_range[0])}, ${fmtInt(x.rps_range[1])}]` : fmtInt(x.rps));
  if (ghs && pks) {
    const r = ratio(ghs.rps, pks.rps);
    add("throughput at saturation, small chat: gatehouse ≥ 10× Portkey", r === null ? null : Number(r.toFixed(1)),
      r !== null && r >= 10, `${rpsText(ghs)} vs ${rpsText(pks)} req/s${roundRatios(ghs, pks)}`);
  }
  if (ghs && ngs) {
    const r = ratio(ghs.rps, ngs.rps);
    // When the load generator's core is the limit, neither server's core is busy all the time:
    // their capacity per CPU-second says what each could do with its core to itself.
    const cap = ratio(perCpuSecond(ghs), perCpuSecond(ngs));
    add("throughput at saturation, small chat: gatehouse ≥ 60% of nginx", r === null ? null : Number(r.toFixed(2)),
      r !== null && r >= 0.6, `${rpsText(ghs)} vs ${rpsText(ngs)} req/s${roundRatios(ghs, ngs)}; server core busy ${pct(coreUse(ghs))} vs ${pct(coreUse(ngs))}; requests per CPU-second ${fmtInt(perCpuSecond(ghs))} vs ${fmtInt(perCpuSecond(ngs))} (ratio ${cap === null ? "–" : cap.toFixed(2)})`);
  }
  const st = sat(ghPath, "streams1000");
  if (st) {
    add("1,000 concurrent streams: zero errors", st.errors + st.non2xx, st.errors + st.non2xx === 0,
      `${fmtInt(st.requests)} streams completed; socket errors ${st.errors}, non-2xx ${st.non2xx}`);
    add("1,000 concurrent streams: peak RSS < 100 MiB", Number((st.peak_rss_kb / 1024).toFixed(1)),
      st.peak_rss_kb < 100 * 1024, `VmHWM ${mib(st.peak_rss_kb)} MiB`);
  }
  if (idle[ghPath]) {
    const kb = idle[ghPath].rss_after_first_kb;
    add("idle RSS < 20 MiB", Number((kb / 1024).toFixed(1)), kb < 20 * 1024,
      `after one request ${mib(kb)} MiB; after the whole run ${mib(idle[ghPath].rss_after_load_kb)} MiB`);
  }
  const tr = lat(ghPath, "small_anthropic");
  if (tr?.added_us && gh?.added_us) {
    const r = ratio(tr.added_us.p50?.median, gh.added_us.p50?.median);
    const perRound = tr.per_round.map((t) => ratio(t.added_p50, gh.per_round.find((g) => g.round === t.round)?.added_p50))
      .filter((x) => x !== null);
    const rr = perRound.length ? `; round by round ${Math.min(...perRound).toFixed(2)} to ${Math.max(...perRound).toFixed(2)}` : "";
    add(`translation (OpenAI in, Anthropic out) < 1.3× pass-through: added p50 at ${fmtInt(tr.rate)} req/s`,
      r === null ? null : Number(r.toFixed(2)), r === null ? null : r < 1.3,
      `medians: ${signed(tr.added_us.p50?.median)} µs (${range(tr.added_us.p50)}) vs ${signed(gh.added_us.p50?.median)} µs (${range(gh.added_us.p50)})${rr}`);
  }
  const trc = sat(ghPath, "small_anthropic");
  if (trc && ghs) {
    const r = ratio(trc.cpu_s_per_1k, ghs.cpu_s_per_1k);
    add("translation < 1.3× pass-through: CPU per request at saturation", r === null ? null : Number(r.toFixed(2)),
      r !== null && r < 1.3, `${fmt3(trc.cpu_s_per_1k)} vs ${fmt3(ghs.cpu_s_per_1k)} CPU s per 1,000 requests`);
  }
  return t;
}

function markdown(machine, plans, idle, targets, sat, lat, overheadPresent) {
  const out = [];
  const v = machine.versions ?? {};
  out.push("# gatehouse benchmark results", "");
  out.push(`Run ${machine.date ?? "?"} at gatehouse ${v.gatehouse ?? "?"} (commit ${v.commit ?? "?"}), by \`make bench\`.`, "");
  out.push("## Machine", "");
  out.push(`- ${machine.nproc} cores (${machine.cpu}), ${machine.memory} memory, ${machine.kernel}`);
  out.push(`- nginx ${v.nginx}, Node ${v.node}, Portkey gateway ${v.portkey}, wrk ${v.wrk}, h2load ${v.h2load}, libcurl ${v.libcurl}`);
  out.push(`- cores: ${machine.cores}`);
  out.push(`- saturation: wrk, 32 connections (1,000 for the stream run), ${machine.seconds_per_run} s per run (the 1,000-stream run 12 s)`);
  out.push(`- latency: h2load \`--rps\`, 50 connections started 1/rate apart; ${machine.latency_rounds ?? "?"} rounds of ${machine.latency_seconds_per_run ?? "?"} s runs taking turns between the paths, a direct run before every round and after the last; the first ${machine.latency_skip_ms ?? "?"} ms of each run (connection set-up) left out`);
  out.push(`- 20-tool request: ${machine.tools_source}`);
  out.push(`- load average (1 min) when the run began: ${machine.loadavg_start ?? "?"}; when it ended: ${machine.loadavg_end ?? "?"} (anything above 0 is other work sharing the two cores)`, "");

  out.push("## Targets", "");
  out.push("| gatehouse | target | figure | met |", "|---|---|---|---|");
  for (const t of targets)
    out.push(`| ${t.gatehouse === "gatehouse" ? "defaults" : "request log off"} | ${t.name} | ${t.figure ?? "–"} (${t.detail}) | ${t.pass === null ? "not measurable (an added latency ≤ 0: noise)" : t.pass ? "yes" : "**no**"} |`);
  out.push("");

  out.push("## Per scenario", "");
  out.push("Latencies in ms unless marked µs. *sat* = wrk at saturation (32 connections); for the small chat, the median of rounds that took turns between the paths, with the smallest and largest round in brackets. *core busy* = the server's CPU time over the run's length: below 100%, something else (the load generator and the mock on the other core, other work on the machine) set the pace, not the server. *fixed rate* = the medians over the rounds of the latency phase (h2load at the scenario's rate, given in the heading). *added* = the path's percentile minus that of the direct runs just before and after it, median over the rounds, and in brackets the smallest and largest of the rounds: a range that spans hundreds of µs says the machine's noise is that large. CPU is the server process's user+system time (`/proc/<pid>/stat`), per 1,000 requests at saturation; for the direct path it is the mock's own. Peak RSS is VmHWM during the saturation run. Errors are socket errors + non-2xx answers over all runs.", "");
  if (overheadPresent)
    out.push("The last column is gatehouse's own `gatehouse_overhead_seconds` histogram (from `GET /metrics`) over the fixed-rate runs: p50 / p99 in µs, median over the rounds.", "");
  else
    out.push("gatehouse's own `gatehouse_overhead_seconds` histogram was not served by `GET /metrics` in this run, so only the external measure is shown.", "");

  for (const [scen, title] of SCENARIOS) {
    const rows = PATHS.map((p) => [p, sat(p, scen), lat(p, scen)]).filter(([, s, f]) => s || f);
    if (!rows.length) continue;
    const plan = plans[scen];
    out.push(`### ${scen}: ${title}`, "");
    if (plan) {
      const excl = plan.excluded.map((e) => `${LABELS[e.path]} (saturates at ${fmtInt(e.saturation_rps)} req/s)`);
      out.push(`Fixed rate: ${fmtInt(plan.rate)} req/s, ${plan.rounds} rounds of ${plan.seconds} s.${excl.length ? ` Left out of the fixed-rate runs, too slow for that rate: ${excl.join(", ")}.` : ""}`, "");
    }
    const head = ["path", "sat req/s", "core busy", "sat p50 / p99 / p99.9", "fixed rate p50 / p99 / p99.9", "added p50 µs [range]", "added p99 µs [range]",
      "CPU s / 1k req", "peak RSS MiB", "errors"];
    if (overheadPresent) head.push("own overhead p50 / p99 (µs)");
    out.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
    for (const [p, s, f] of rows) {
      const ls = s ? `${fmtMs(s.latency_us.p50)} / ${fmtMs(s.latency_us.p99)} / ${fmtMs(s.latency_us.p999)}` : "–";
      let lf = f ? `${fmtMs(f.latency_us.p50?.median)} / ${fmtMs(f.latency_us.p99?.median)} / ${fmtMs(f.latency_us.p999?.median)}` : "–";
      // A fixed-rate run the server could not keep up with measured queueing, not latency.
      if (f && f.min_rps < 0.95 * f.rate) lf += ` (a round reached only ${fmtInt(f.min_rps)} req/s)`;
      const added = (q) => {
        if (p === "direct") return f ? "0" : "–";
        const a = f?.added_us?.[q];
        return a ? `${signed(a.median)} [${signed(a.min)}, ${signed(a.max)}]` : "–";
      };
      const errs = (s ? s.errors + s.non2xx : 0) + (f ? f.errors : 0);
      const satRps = s ? (s.rps_range ? `${fmtInt(s.rps)} [${fmtInt(s.rps_range[0])}, ${fmtInt(s.rps_range[1])}]` : fmtInt(s.rps)) : "–";
      const cells = [LABELS[p], satRps, s ? pct(coreUse(s)) : "–", ls, lf, added("p50"), added("p99"),
        s ? fmt3(s.cpu_s_per_1k) : "–", s ? mib(s.peak_rss_kb) : "–", `${errs}`];
      if (overheadPresent) cells.push(f?.overhead ? `${fmtUs(f.overhead.p50_us)} / ${fmtUs(f.overhead.p99_us)}` : "–");
      out.push(`| ${cells.join(" | ")} |`);
    }
    out.push("");
  }

  const small = ["direct", "nginx", "gatehouse", "gatehouse_nolog"].map((p) => [p, lat(p, "small")]).filter(([, l]) => l);
  if (small.length > 1) {
    out.push("## The small chat round by round", "");
    out.push("p50 / p99 of each fixed-rate run in µs (added latency in brackets), with the load average when the run ended: the spread between rounds is the noise of the machine.", "");
    const rounds = Math.max(...small.map(([, l]) => l.per_round.length));
    out.push(`| round | ${small.map(([p]) => LABELS[p]).join(" | ")} | load average |`, `|---|${small.map(() => "---").join("|")}|---|`);
    for (let i = 0; i < rounds; i++) {
      const cells = small.map(([p, l]) => {
        const r = l.per_round[i];
        if (!r) return "–";
        return p === "direct" ? `${fmtUs(r.p50)} / ${fmtUs(r.p99)}` : `${fmtUs(r.p50)} / ${fmtUs(r.p99)} (${signed(r.added_p50)} / ${signed(r.added_p99)})`;
      });
      const load = small.map(([, l]) => l.per_round[i]?.loadavg).find((x) => x !== undefined);
      out.push(`| ${i + 1} | ${cells.join(" | ")} | ${load ?? "–"} |`);
    }
    out.push("");
  }

  out.push("## Memory at rest", "");
  out.push("| path | RSS at start (MiB) | after one request | after the whole run |", "|---|---|---|---|");
  for (const p of PATHS) {
    const i = idle[p];
    if (i) out.push(`| ${p === "direct" ? "the mock" : LABELS[p]} | ${mib(i.rss_start_kb)} | ${mib(i.rss_after_first_kb)} | ${mib(i.rss_after_load_kb)} |`);
  }
  out.push("");
  out.push("Published figures of Bifrost, LiteLLM and TensorZero, quoted with their sources and not measured here: bench/README.md, \"Published figures of gateways that cannot be installed here\".", "");
  out.push("## Plots", "");
  out.push("![throughput](results/throughput.png)", "", "![added latency](results/latency.png)", "", "![CPU per request](results/cpu.png)", "");
  return out.join("\n");
}

function writePlots(resDir, sat, lat) {
  const tmp = path.join(resDir, "tmp");
  fs.mkdirSync(tmp, { recursive: true });
  const scen = ["small", "large10k", "stream50", "tools20"];
  const num = (v, f = 3) => (v === null || v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(f));
  const table = (file, paths, f) => {
    const lines = [`scenario ${paths.map((p) => PLOT_NAMES[p] ?? p).join(" ")}`];
    for (const s of scen) lines.push(`${s} ${paths.map((p) => { const v = f(p, s); return v > 0 ? num(v) : "-"; }).join(" ")}`);
    fs.writeFileSync(path.join(tmp, file), lines.join("\n") + "\n");
  };
  table("throughput.dat", PATHS, (p, s) => sat(p, s)?.rps);
  table("cpu.dat", PATHS, (p, s) => {
    const r = sat(p, s);
    return r?.cpu_s_per_1k ? r.cpu_s_per_1k * 1000 : null; // ms of CPU per 1,000 -> µs per request
  });
  // Added latency: median, min and max over the rounds, three columns per path.
  const proxies = PATHS.slice(1).filter((p) => scen.some((s) => lat(p, s)?.added_us));
  const errTable = (file, q) => {
    // No header line: with error bars, gnuplot would count it as a cluster of its own.
    const lines = [];
    for (const s of scen)
      lines.push(`${s} ${proxies.map((p) => {
        const a = lat(p, s)?.added_us?.[q];
        return a ? `${num(a.median, 0)} ${num(a.min, 0)} ${num(a.max, 0)}` : "- - -";
      }).join(" ")}`);
    fs.writeFileSync(path.join(tmp, file), lines.join("\n") + "\n");
  };
  errTable("added_p50.dat", "p50");
  errTable("added_p99.dat", "p99");

  const common = `
set terminal pngcairo size 1100,520 font "DejaVu Sans,11"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set datafile missing "-"
set key outside right top
set grid ytics
set logscale y
set format y "%g"
set xtics nomirror
`;
  // One colour per path in every plot.
  const COLORS = { direct: "#8c8c8c", nginx: "#2ca02c", gatehouse: "#1f4e9c", gatehouse_nolog: "#6baed6", portkey: "#ff7f0e" };
  const plot = (file, paths) => paths.map((p, i) =>
    `${i === 0 ? `'${file}'` : "''"} using ${i + 2}:xtic(1) title columnheader(${i + 2}) lc rgb "${COLORS[p]}"`).join(", ");
  const plotErr = (file) => proxies.map((p, i) =>
    `${i === 0 ? `'${file}'` : "''"} using ${3 * i + 2}:${3 * i + 3}:${3 * i + 4}:xtic(1) title "${PLOT_NAMES[p] ?? p}" lc rgb "${COLORS[p]}"`).join(", ");
  const gp = `${common}
set output 'throughput.png'
set title "Throughput at saturation (wrk, 32 connections; server on one core)"
set ylabel "requests per second (log scale)"
plot ${plot(path.join(tmp, "throughput.dat"), PATHS)}

set terminal pngcairo size 1100,820 font "DejaVu Sans,11"
set output 'latency.png'
unset logscale y
set style histogram errorbars gap 1 lw 1
set multiplot layout 2,1 title "Latency added over the direct path at a fixed rate (h2load): median over the rounds, bars from the smallest to the largest round"
set title "p50"
set ylabel "µs added"
plot ${plotErr(path.join(tmp, "added_p50.dat"))}
set title "p99"
plot ${plotErr(path.join(tmp, "added_p99.dat"))}
unset multiplot

set terminal pngcairo size 1100,520 font "DejaVu Sans,11"
set output 'cpu.png'
set style histogram clustered gap 1
set logscale y
set title "Server CPU time per request at saturation (user + system)"
set ylabel "µs of CPU per request (log scale)"
plot ${plot(path.join(tmp, "cpu.dat"), PATHS)}
`;
  fs.writeFileSync(path.join(tmp, "plots.gp"), gp);
}

// ---- callgrind profiles (bench/profile.sh) ------------------------------------------------------

// Rows of callgrind_annotate: { ir, fn, obj }, with fn "file:function" or "???:0x..." when the
// library has no symbols for it.
function annotate(file, inclusive) {
  const text = execFileSync("callgrind_annotate", [`--inclusive=${inclusive ? "yes" : "no"}`, "--threshold=100", file],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, stdio: ["ignore", "pipe", "ignore"] });
  const total = text.match(/^\s*([\d,]+) \([ \d.]+%\)\s+PROGRAM TOTALS/m);
  const sum = total ? Number(total[1].replaceAll(",", "")) : 0;
  // The function table is the block after the "file:function" header, up to a blank line;
  // what follows is annotated source. A thread's outer frames (start_thread, its main
  // function, the event loop) are left out: with a profile zeroed mid-run, callgrind charges
  // them the thread's whole run, even as self cost.
  const table = text.split(/^Ir\s+file:function\s*$/m)[1]?.split(/\n\s*\n/)[0] ?? "";
  const rows = [];
  for (const line of table.split("\n")) {
    const m = line.match(/^\s*([\d,]+) \([ \d.]+%\)\s+(\S.*?)(?: \[(.*)\])?$/);
    if (!m) continue;
    const ir = Number(m[1].replaceAll(",", ""));
    const fn = m[2].replace(/'\d+$/, ""); // recursion levels ('2) count once, at the outermost
    if (/:(clone|start_thread|event_base_dispatch|event_base_loop|\w+_main)$/.test(fn)) continue;
    if (rows.some((r) => r.fn === fn)) continue;
    rows.push({ ir, fn, obj: path.basename(m[3] ?? "?") });
  }
  return { total: sum, rows };
}

// "src/gateway/chat.c:on_done" for gatehouse's own code, "libc: malloc" for the rest.
function shortName(row) {
  const src = row.fn.match(/(src\/.*)$/);
  if (src) return src[1];
  const fn = row.fn.replace(/^.*:/, "");
  return `${row.obj.replace(/\.so.*$/, "")}: ${fn}`;
}

function callgrindSummary(file, requests) {
  const excl = annotate(file, false);
  const incl = annotate(file, true);
  const per = (ir) => Math.round(ir / requests).toLocaleString("en-US").padStart(9);
  const out = [`${per(excl.total).trim()} instructions per request (${requests.toLocaleString("en-US")} requests)`, ""];

  const byObj = new Map();
  for (const r of excl.rows) {
    const o = r.obj.replace(/\.so.*$/, "");
    byObj.set(o, (byObj.get(o) ?? 0) + r.ir);
  }
  out.push("self cost by library:");
  for (const [o, ir] of [...byObj].sort((a, b) => b[1] - a[1]).slice(0, 8))
    out.push(`${per(ir)}  ${(100 * ir / excl.total).toFixed(1).padStart(5)}%  ${o}`);

  // Inclusive: gatehouse's own functions below the event loop (worker_main and the loop itself
  // are 100% and say nothing).
  out.push("", "inclusive cost of gatehouse's functions (self + callees):");
  const own = incl.rows.filter((r) => /\bsrc\//.test(r.fn) && !/worker_main|pool_drive|on_socket_event|on_timer/.test(r.fn));
  const seen = new Set();
  for (const r of own.filter((x) => !seen.has(shortName(x)) && seen.add(shortName(x))).slice(0, 18))
    out.push(`${per(r.ir)}  ${(100 * r.ir / incl.total).toFixed(1).padStart(5)}%  ${shortName(r)}`);

  out.push("", "self cost, top functions (??? = a library without symbols):");
  for (const r of excl.rows.slice(0, 16))
    out.push(`${per(r.ir)}  ${(100 * r.ir / excl.total).toFixed(1).padStart(5)}%  ${shortName(r)}`);
  return out.join("\n") + "\n";
}

// ---- command line ------------------------------------------------------------------------------

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "percentiles") {
  process.stdout.write(JSON.stringify(percentiles(args[0], args[1], Number(args[2] ?? 0))) + "\n");
} else if (cmd === "callgrind") {
  process.stdout.write(callgrindSummary(args[0], Number(args[1])));
} else if (cmd === "build") {
  build(args[0], args[1], args[2]);
} else {
  process.stderr.write("usage: report.mjs percentiles LOG OUT | callgrind FILE REQUESTS | build RAW RESULTS_DIR README\n");
  process.exit(2);
}
