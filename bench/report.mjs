// report.mjs - the number-crunching half of the benchmark (bench/run.sh does the running).
//
//   node report.mjs percentiles H2LOAD_LOG H2LOAD_OUTPUT
//       latency percentiles and errors of one h2load run, as one JSON object on stdout
//   node report.mjs build RAW.jsonl RESULTS_DIR README
//       turns the raw records run.sh wrote into RESULTS_DIR/results.json and results.md,
//       writes the gnuplot script and data (RESULTS_DIR/tmp/plots.gp) for the PNGs, and
//       replaces the results section of README between its two marker comments
//
// Added latency is a path's percentile minus the direct path's same percentile, at the same
// fixed request rate: the time the hop adds, as a client sees it.

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

function percentiles(logFile, outFile) {
  const lines = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n") : [];
  const lat = [];
  let first = Infinity;
  let last = -Infinity;
  let non2xx = 0;
  for (const line of lines) {
    const [start, status, us] = line.split("\t").map(Number);
    if (!Number.isFinite(us)) continue;
    if (status < 200 || status >= 300) non2xx++;
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

function build(rawFile, resDirArg, readme) {
  const resDir = path.resolve(resDirArg);
  const records = fs.readFileSync(rawFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const machine = records.find((r) => r.kind === "machine") ?? {};
  const end = records.find((r) => r.kind === "end");
  if (end) machine.loadavg_end = end.loadavg;
  const runs = records.filter((r) => r.kind === "saturation" || r.kind === "fixed");
  const idle = Object.fromEntries(records.filter((r) => r.kind === "idle").map((r) => [r.path, r]));

  for (const r of runs) {
    r.overhead = overhead(r.metrics_before, r.metrics_after);
    delete r.metrics_before;
    delete r.metrics_after;
  }
  const find = (p, s, kind, rate) =>
    runs.find((r) => r.path === p && r.scenario === s && r.kind === kind && (rate === undefined || r.rate === rate));

  // Added latency over the direct path at the same rate (the direct run of the same API).
  for (const r of runs) {
    if (r.kind !== "fixed" || r.path === "direct") continue;
    const d = find("direct", r.scenario, "fixed", r.rate);
    if (!d) continue;
    r.added_us = {
      p50: r.latency_us.p50 - d.latency_us.p50,
      p99: r.latency_us.p99 - d.latency_us.p99,
      p999: r.latency_us.p999 - d.latency_us.p999,
    };
  }
  for (const r of runs) {
    if (r.kind !== "saturation" || r.path === "direct") continue;
    const d = find("direct", r.scenario, "saturation");
    if (d && d.latency_us.p50 !== undefined)
      r.added_us = { p50: r.latency_us.p50 - d.latency_us.p50, p99: r.latency_us.p99 - d.latency_us.p99 };
  }

  const targets = [...evaluateTargets(find, idle, "gatehouse"), ...evaluateTargets(find, idle, "gatehouse_nolog")];
  const overheadPresent = runs.some((r) => r.overhead);
  const result = { machine, targets, idle, runs, gatehouse_overhead_metric: overheadPresent ? "present" : "absent" };
  fs.writeFileSync(path.join(resDir, "results.json"), JSON.stringify(result, null, 2) + "\n");

  const md = markdown(machine, runs, idle, targets, find, overheadPresent);
  fs.writeFileSync(path.join(resDir, "results.md"), md.replaceAll("](results/", "]("));
  writePlots(resDir, find);

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

function evaluateTargets(find, idle, ghPath) {
  const t = [];
  const add = (name, figure, pass, detail) => t.push({ gatehouse: ghPath, name, figure, pass, detail });
  // A ratio of added latencies means something only when both are positive; noise on a
  // shared machine can push the smaller one below zero.
  const ratio = (a, b) => (a !== null && b !== null && a > 0 && b > 0 ? a / b : null);

  const gh = find(ghPath, "small", "fixed", 1000);
  const ng = find("nginx", "small", "fixed", 1000);
  if (gh?.added_us && ng?.added_us) {
    for (const q of ["p50", "p99"]) {
      const r = ratio(gh.added_us[q], ng.added_us[q]);
      add(`added latency ${q}, small chat at 1,000 req/s: gatehouse ≤ 1.5× nginx`,
        r === null ? null : Number(r.toFixed(2)), r === null ? null : r <= 1.5,
        `gatehouse ${signed(gh.added_us[q])} µs, nginx ${signed(ng.added_us[q])} µs`);
    }
  }
  const ghs = find(ghPath, "small", "saturation");
  const ngs = find("nginx", "small", "saturation");
  const pks = find("portkey", "small", "saturation");
  if (ghs && pks) {
    const r = ratio(ghs.rps, pks.rps);
    add("throughput at saturation, small chat: gatehouse ≥ 10× Portkey", r === null ? null : Number(r.toFixed(1)),
      r !== null && r >= 10, `${fmtInt(ghs.rps)} vs ${fmtInt(pks.rps)} req/s`);
  }
  if (ghs && ngs) {
    const r = ratio(ghs.rps, ngs.rps);
    add("throughput at saturation, small chat: gatehouse ≥ 60% of nginx", r === null ? null : Number(r.toFixed(2)),
      r !== null && r >= 0.6, `${fmtInt(ghs.rps)} vs ${fmtInt(ngs.rps)} req/s`);
  }
  const st = find(ghPath, "streams1000", "saturation");
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
  const tr = find(ghPath, "small_anthropic", "fixed", 1000);
  if (tr?.added_us && gh?.added_us) {
    const r = ratio(tr.added_us.p50, gh.added_us.p50);
    add("translation (OpenAI in, Anthropic out) < 1.3× pass-through: added p50 at 1,000 req/s",
      r === null ? null : Number(r.toFixed(2)), r === null ? null : r < 1.3,
      `${signed(tr.added_us.p50)} µs vs ${signed(gh.added_us.p50)} µs`);
  }
  const trc = find(ghPath, "small_anthropic", "saturation");
  if (trc && ghs) {
    const r = ratio(trc.cpu_s_per_1k, ghs.cpu_s_per_1k);
    add("translation < 1.3× pass-through: CPU per request at saturation", r === null ? null : Number(r.toFixed(2)),
      r !== null && r < 1.3, `${fmt3(trc.cpu_s_per_1k)} vs ${fmt3(ghs.cpu_s_per_1k)} CPU s per 1,000 requests`);
  }
  return t;
}

function markdown(machine, runs, idle, targets, find, overheadPresent) {
  const out = [];
  const v = machine.versions ?? {};
  out.push("# gatehouse benchmark results", "");
  out.push(`Run ${machine.date ?? "?"} at gatehouse ${v.gatehouse ?? "?"} (commit ${v.commit ?? "?"}), by \`make bench\`.`, "");
  out.push("## Machine", "");
  out.push(`- ${machine.nproc} cores (${machine.cpu}), ${machine.memory} memory, ${machine.kernel}`);
  out.push(`- nginx ${v.nginx}, Node ${v.node}, Portkey gateway ${v.portkey}, wrk ${v.wrk}, h2load ${v.h2load}, libcurl ${v.libcurl}`);
  out.push(`- cores: ${machine.cores}`);
  out.push(`- each measured run lasts ${machine.seconds_per_run} s (the 1,000-stream run 12 s); saturation with wrk, 32 connections (1,000 for the stream run); fixed rate with h2load \`--rps\`, 50 connections started 1/rate apart so their requests interleave`);
  out.push(`- 20-tool request: ${machine.tools_source}`);
  out.push(`- load average (1 min) when the run began: ${machine.loadavg_start ?? "?"}; when it ended: ${machine.loadavg_end ?? "?"} (anything above 0 is other work sharing the two cores)`, "");

  out.push("## Targets", "");
  out.push("| gatehouse | target | figure | met |", "|---|---|---|---|");
  for (const t of targets)
    out.push(`| ${t.gatehouse === "gatehouse" ? "defaults" : "request log off"} | ${t.name} | ${t.figure ?? "–"} (${t.detail}) | ${t.pass === null ? "not measurable (an added latency ≤ 0: noise)" : t.pass ? "yes" : "**no**"} |`);
  out.push("");

  out.push("## Per scenario", "");
  out.push("Latencies in ms unless marked µs. *sat* = wrk at saturation (32 connections); *@1k* = h2load at a fixed 1,000 req/s; *added* = the path's latency minus the direct path's, at 1,000 req/s. CPU is the server process's user+system time (`/proc/<pid>/stat`), per 1,000 requests at saturation; for the direct path it is the mock's own. Peak RSS is VmHWM, reset before each run. Errors are socket errors + non-2xx answers over both runs.", "");
  if (overheadPresent)
    out.push("The last column is gatehouse's own `gatehouse_overhead_seconds` histogram (from `GET /metrics`) over the 1,000 req/s run: p50 / p99 in µs.", "");
  else
    out.push("gatehouse's own `gatehouse_overhead_seconds` histogram was not served by `GET /metrics` in this run (the metric is not implemented yet), so only the external measure is shown.", "");

  for (const [scen, title] of SCENARIOS) {
    const rows = PATHS.map((p) => [p, find(p, scen, "saturation"), find(p, scen, "fixed", 1000), find(p, scen, "fixed", 5000)])
      .filter(([, s, f]) => s || f);
    if (!rows.length) continue;
    out.push(`### ${scen}: ${title}`, "");
    const has5k = rows.some(([, , , f5]) => f5);
    const head = ["path", "sat req/s", "sat p50 / p99 / p99.9", "@1k p50 / p99 / p99.9", "added p50 / p99 (µs)"];
    if (has5k) head.push("@5k achieved req/s, p50 / p99", "@5k added p50 / p99 (µs)");
    head.push("CPU s / 1k req", "peak RSS MiB", "errors");
    if (overheadPresent) head.push("own overhead p50 / p99 (µs)");
    out.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
    for (const [p, s, f, f5] of rows) {
      const l = (r) => {
        if (!r) return "–";
        const text = `${fmtMs(r.latency_us.p50)} / ${fmtMs(r.latency_us.p99)} / ${fmtMs(r.latency_us.p999)}`;
        // A fixed-rate run the server could not keep up with measured queueing, not latency.
        return r.kind === "fixed" && r.rps < 0.95 * r.rate ? `${text} (only ${fmtInt(r.rps)} req/s)` : text;
      };
      const added = (r) => (r?.added_us ? `${fmtUs(r.added_us.p50)} / ${fmtUs(r.added_us.p99)}` : p === "direct" ? "0" : "–");
      const cells = [LABELS[p], s ? fmtInt(s.rps) : "–", l(s), l(f), added(f)];
      if (has5k) {
        cells.push(f5 ? `${fmtInt(f5.rps)}, ${fmtMs(f5.latency_us.p50)} / ${fmtMs(f5.latency_us.p99)}` : "–");
        cells.push(added(f5));
      }
      const errs = [s, f, f5].filter(Boolean).reduce((a, r) => a + r.errors + r.non2xx, 0);
      cells.push(s ? fmt3(s.cpu_s_per_1k) : "–", s ? mib(s.peak_rss_kb) : "–", `${errs}`);
      if (overheadPresent) {
        const o = f?.overhead;
        cells.push(o && o.count > 0 ? `${o.p50_us} / ${o.p99_us}` : "–");
      }
      out.push(`| ${cells.join(" | ")} |`);
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

  out.push("## Published figures of other gateways (quoted, not measured here)", "");
  out.push("Bifrost and LiteLLM cannot be installed on this machine (no Go module or PyPI access for them here), so their own published figures are quoted as they give them; they come from other machines and other loads and compare only roughly.", "");
  out.push("| gateway | published figure | source |", "|---|---|---|");
  out.push("| Bifrost (Go) | about 11 µs mean added overhead at 5,000 req/s on 4 vCPUs; 59 µs on 2 vCPUs (JSON handling excluded) | Bifrost's published benchmarks |");
  out.push("| TensorZero (Rust) | under 1 ms p99 added latency at 10,000 QPS on 4 vCPUs | TensorZero's published benchmarks |");
  out.push("| LiteLLM (Python) | tens of ms added latency; fails past about 1,000 QPS | as reported in the same comparisons |");
  out.push("");
  out.push("## Plots", "");
  out.push("![throughput](results/throughput.png)", "", "![added latency](results/latency.png)", "", "![CPU per request](results/cpu.png)", "");
  return out.join("\n");
}

function writePlots(resDir, find) {
  const tmp = path.join(resDir, "tmp");
  fs.mkdirSync(tmp, { recursive: true });
  const scen = ["small", "large10k", "stream50", "tools20"];
  const col = (p, s, f) => {
    const v = f(p, s);
    return v === null || v === undefined || !(v > 0) ? "-" : v.toFixed(3);
  };
  const table = (file, paths, f) => {
    const lines = [`scenario ${paths.map((p) => PLOT_NAMES[p] ?? p).join(" ")}`];
    for (const s of scen) lines.push(`${s} ${paths.map((p) => col(p, s, f)).join(" ")}`);
    fs.writeFileSync(path.join(tmp, file), lines.join("\n") + "\n");
  };
  table("throughput.dat", PATHS, (p, s) => find(p, s, "saturation")?.rps);
  table("added_p50.dat", PATHS.slice(1), (p, s) => find(p, s, "fixed", 1000)?.added_us?.p50);
  table("added_p99.dat", PATHS.slice(1), (p, s) => find(p, s, "fixed", 1000)?.added_us?.p99);
  table("cpu.dat", PATHS, (p, s) => {
    const r = find(p, s, "saturation");
    return r?.cpu_s_per_1k ? r.cpu_s_per_1k * 1000 : null; // ms of CPU per 1,000 -> µs per request
  });

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
  const gp = `${common}
set output 'throughput.png'
set title "Throughput at saturation (wrk, 32 connections; server on one core)"
set ylabel "requests per second (log scale)"
plot ${plot(path.join(tmp, "throughput.dat"), PATHS)}

set terminal pngcairo size 1100,820 font "DejaVu Sans,11"
set output 'latency.png'
set multiplot layout 2,1 title "Latency added over the direct path at 1,000 req/s (h2load)"
set title "p50"
set ylabel "µs added (log scale)"
plot ${plot(path.join(tmp, "added_p50.dat"), PATHS.slice(1))}
set title "p99"
plot ${plot(path.join(tmp, "added_p99.dat"), PATHS.slice(1))}
unset multiplot

set terminal pngcairo size 1100,520 font "DejaVu Sans,11"
set output 'cpu.png'
set title "Server CPU time per request at saturation (user + system)"
set ylabel "µs of CPU per request (log scale)"
plot ${plot(path.join(tmp, "cpu.dat"), PATHS)}
`;
  fs.writeFileSync(path.join(tmp, "plots.gp"), gp);
}

// ---- command line ------------------------------------------------------------------------------

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "percentiles") {
  process.stdout.write(JSON.stringify(percentiles(args[0], args[1])) + "\n");
} else if (cmd === "build") {
  build(args[0], args[1], args[2]);
} else {
  process.stderr.write("usage: report.mjs percentiles LOG OUT | build RAW RESULTS_DIR README\n");
  process.exit(2);
}
