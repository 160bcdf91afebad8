// summary.mjs - turns bench/logging/run.sh's results (one JSON object per line) into the
// Markdown table of bench/logging/README.md: per scenario and configuration, the median over the
// rounds of throughput, p50 and p99, the cost relative to "off" (for before_* configurations:
// to before_off, the same build with the log off), CPU per request split between the worker
// and the writer threads, and what the writers did.
//
// usage: node bench/logging/summary.mjs RESULTS_JSONL

import fs from 'node:fs';

const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (n, d = 0) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

const targets = { logs: 5, logs_audit: 15 };
const configs = ['before_off', 'before_logs', 'before_logs_audit', 'off', 'logs', 'logs_audit'];
let missed = false;
const out = [];
for (const scenario of [...new Set(lines.map((l) => l.scenario))]) {
    out.push(`### ${scenario}`, '');
    out.push('| configuration | req/s (median) | req/s per round | p50 ms | p99 ms | throughput cost | p99 change | CPU µs / request | CPU cost | worker / writers µs / request | log rows written / dropped | audit records written / dropped | data dir MiB | errors |');
    out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    let base = null;
    for (const config of configs) {
        const runs = lines.filter((l) => l.scenario === scenario && l.config === config && l.run).map((l) => l.run);
        if (!runs.length) continue;
        const rps = runs.map((r) => r.requests / (r.duration_us / 1e6));
        const p50 = median(runs.map((r) => r.p50_us / 1000));
        const p99 = median(runs.map((r) => r.p99_us / 1000));
        const errors = runs.reduce((a, r) => a + r.errors + r.non2xx, 0);
        const t = lines.find((l) => l.scenario === scenario && l.config === config && l.totals)?.totals ?? {};
        const m = median(rps);
        // CPU: every thread's time on a CPU (schedstat, exact) when the run has it, else the
        // process's ticks.
        const perReq = (r, s) => (s * 1e6) / r.requests;
        const cpu = median(runs.map((r) => perReq(r, r.threads_s ? r.threads_s.worker + r.threads_s.writers : r.cpu_s)));
        const worker = runs[0].threads_s ? median(runs.map((r) => perReq(r, r.threads_s.worker))) : null;
        const writers = runs[0].threads_s ? median(runs.map((r) => perReq(r, r.threads_s.writers))) : null;
        const isBase = config.endsWith('off');
        if (isBase) base = { rps: m, p99, cpu };
        const cpuc = base && !isBase ? (cpu / base.cpu - 1) * 100 : null;
        const cost = base && !isBase ? (1 - m / base.rps) * 100 : null;
        const p99c = base && !isBase ? (p99 / base.p99 - 1) * 100 : null;
        const target = targets[config.replace(/^before_/, '')];
        const met = cost === null ? '' : cost < target ? ` (target < ${target}%: met)` : ` (target < ${target}%: **missed**)`;
        if (cost !== null && cost >= target && !config.startsWith('before_')) missed = true;
        out.push(
            `| ${config} | ${fmt(m)} | ${rps.map((x) => fmt(x)).join(', ')} | ${fmt(p50, 2)} | ${fmt(p99, 2)} | ` +
                `${cost === null ? '–' : `${fmt(cost, 1)}%${met}`} | ${p99c === null ? '–' : `${p99c >= 0 ? '+' : ''}${fmt(p99c, 1)}%`} | ` +
                `${fmt(cpu, 1)} | ${cpuc === null ? '–' : `${cpuc >= 0 ? '+' : ''}${fmt(cpuc, 1)}%`} | ` +
                `${worker === null ? '–' : `${fmt(worker, 1)} / ${fmt(writers, 1)}`} | ` +
                `${fmt(t.log_written ?? 0)} / ${fmt(t.log_dropped ?? 0)} | ${fmt(t.audit_written ?? 0)} / ${fmt(t.audit_dropped ?? 0)} | ` +
                `${fmt((t.data_bytes ?? 0) / 1048576, 1)} | ${errors} |`,
        );
    }
    out.push('');
}
process.stdout.write(out.join('\n') + '\n');
if (missed) process.stdout.write('At least one target was missed.\n');
