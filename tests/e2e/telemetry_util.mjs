// telemetry_util.mjs - helpers shared by the telemetry e2e tests (telemetry_logs, telemetry_audit,
// telemetry_metrics): the admin API, Prometheus text parsing, the audit files, running the
// gatehouse binary for one command, and reading a stream the way a client does.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { gatehouseBin, isAsan, sleep } from './harness.mjs';

/** A random admin token (the config wants at least 16 characters). */
export function adminToken() {
    return `adm-e2e-TOKEN-${crypto.randomBytes(12).toString('hex')}`;
}

/** A random request id with a label, for x-request-id. */
export function rid(label) {
    return `tel-${label}-${crypto.randomBytes(6).toString('hex')}`;
}

/** GET on the admin API with a bearer token (null: no Authorization header). */
export function adminGet(gw, p, token) {
    return gw.get(p, token === null ? {} : { authorization: `Bearer ${token}` });
}

/**
 * Polls GET /api/logs/{id} until the row is there (the writer commits at least every 200 ms);
 * returns the row. Fails the test after timeoutMs.
 */
export async function waitForRow(gw, id, token, timeoutMs = 8000) {
    const end = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await adminGet(gw, `/api/logs/${encodeURIComponent(id)}`, token);
        if (last.status === 200) return last.json;
        if (Date.now() > end) {
            throw new Error(`no log row for ${id} after ${timeoutMs} ms: last answer ${last.status} ${last.text}`);
        }
        await sleep(50);
    }
}

/** Polls fn() (async) until it returns a truthy value; returns the last value. */
export async function until(fn, timeoutMs = 8000, stepMs = 50) {
    const end = Date.now() + timeoutMs;
    let v = await fn();
    while (!v && Date.now() < end) {
        await sleep(stepMs);
        v = await fn();
    }
    return v;
}

// ---- Prometheus text ------------------------------------------------------------------------

function unescapeLabel(v) {
    return v.replace(/\\(["\\n])/g, (_, c) => (c === 'n' ? '\n' : c));
}

/**
 * Parses the text exposition format into {samples: [{name, labels, value}], types: {family:
 * type}, help: {family: text}}. Throws on a line it cannot read.
 */
export function parseMetrics(text) {
    const samples = [];
    const types = {};
    const help = {};
    for (const line of text.split('\n')) {
        if (line === '') continue;
        let m;
        if ((m = line.match(/^# TYPE (\S+) (\S+)$/))) {
            types[m[1]] = m[2];
            continue;
        }
        if ((m = line.match(/^# HELP (\S+) (.*)$/))) {
            help[m[1]] = m[2];
            continue;
        }
        if (line.startsWith('#')) continue;
        m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/);
        if (!m) throw new Error(`cannot parse metrics line: ${JSON.stringify(line)}`);
        const labels = {};
        if (m[2]) {
            const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
            let l;
            let consumed = 0;
            while ((l = re.exec(m[2])) !== null) {
                labels[l[1]] = unescapeLabel(l[2]);
                consumed += l[0].length;
            }
            if (consumed !== m[2].length) throw new Error(`cannot parse labels of ${JSON.stringify(line)}`);
        }
        const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
        samples.push({ name: m[1], labels, value });
    }
    return { samples, types, help };
}

/** Samples of one metric name whose labels include every label of match. */
export function select(parsed, name, match = {}) {
    return parsed.samples.filter(
        (s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v),
    );
}

/** Sum of the values of select(...); 0 when there is none. */
export function sum(parsed, name, match = {}) {
    return select(parsed, name, match).reduce((a, s) => a + s.value, 0);
}

/** The value of the single sample of an unlabelled metric (undefined when absent). */
export function scalar(parsed, name) {
    const s = select(parsed, name);
    return s.length ? s[0].value : undefined;
}

/** The path of promtool, or null when it is not installed. */
export function promtoolPath() {
    for (const d of (process.env.PATH || '').split(':')) {
        const p = path.join(d || '.', 'promtool');
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch {
            // not here
        }
    }
    return null;
}

/** Runs `promtool check metrics` on text: {code, stdout, stderr}. */
export function promtoolCheck(text) {
    const r = spawnSync(promtoolPath(), ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, error: r.error };
}

// ---- running the binary ------------------------------------------------------------------------

/**
 * Runs gatehouse with args (cwd, uid/gid optional) until it exits: {code, signal, stdout,
 * stderr, timedOut}. A process still running after timeoutMs is killed (timedOut: true): a
 * `serve` that was expected to refuse to start but did not.
 */
export function runGatehouse(args, { cwd, uid, gid, timeoutMs } = {}) {
    const limit = timeoutMs ?? (isAsan() ? 30000 : 10000);
    return new Promise((resolve) => {
        const child = spawn(gatehouseBin(), args, { cwd, uid, gid, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        child.stdout.setEncoding('utf8');
        child.stderr.setEncoding('utf8');
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
        }, limit);
        child.on('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr, timedOut });
        });
    });
}

// ---- files -----------------------------------------------------------------------------------------

/** Every regular file under dir, recursively (absolute paths, sorted). */
export function filesUnder(dir) {
    const out = [];
    const walk = (d) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            const p = path.join(d, e.name);
            if (e.isDirectory()) walk(p);
            else if (e.isFile()) out.push(p);
        }
    };
    if (fs.existsSync(dir)) walk(dir);
    return out.sort();
}

/**
 * Files under dir whose bytes contain needle (a string, searched as its UTF-8 bytes), with the
 * offset of the first occurrence: [{file, offset}].
 */
export function filesContaining(dir, needle) {
    const n = Buffer.from(needle, 'utf8');
    const hits = [];
    for (const f of filesUnder(dir)) {
        const at = fs.readFileSync(f).indexOf(n);
        if (at >= 0) hits.push({ file: f, offset: at });
    }
    return hits;
}

/** The audit files of a data directory, in chain order (their names sort in that order). */
export function auditFiles(dataDir) {
    const d = path.join(dataDir, 'audit');
    if (!fs.existsSync(d)) return [];
    return fs
        .readdirSync(d)
        .filter((n) => /^audit-\d{8}-\d+\.jsonl$/.test(n))
        .sort()
        .map((n) => path.join(d, n));
}

/**
 * Every audit record of a data directory: [{file, line (1-based), text, rec}] in chain order.
 * Lines are split on "\n" only (the chain hashes a line's bytes without its newline).
 */
export function auditRecords(dataDir) {
    const out = [];
    for (const f of auditFiles(dataDir)) {
        const text = fs.readFileSync(f, 'utf8');
        const lines = text.split('\n');
        if (lines[lines.length - 1] === '') lines.pop();
        lines.forEach((l, i) => out.push({ file: f, line: i + 1, text: l, rec: JSON.parse(l) }));
    }
    return out;
}

export function sha256hex(data) {
    return crypto.createHash('sha256').update(data).digest('hex');
}

// ---- streams as a client sees them --------------------------------------------------------------

/** Data fields of SSE text, in order (the "data:" lines of each event joined by "\n"). */
export function sseData(text) {
    const out = [];
    for (const block of text.split(/\r?\n\r?\n/)) {
        const data = [];
        for (const line of block.split(/\r?\n/)) {
            if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) out.push(data.join('\n'));
    }
    return out;
}

/**
 * POSTs a streamed chat request with fetch and reads the body until `events` complete SSE events
 * have arrived and then nothing more for idleMs, then aborts (the client goes away). Resolves to
 * {status, headers, text, data}: what the client had received, complete events only.
 */
export async function streamThenAbort(url, body, headers, events, idleMs = 300) {
    const ac = new AbortController();
    const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
        signal: ac.signal,
    });
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let text = '';
    const deadline = Date.now() + 15000;
    while ((text.match(/\n\n/g) ?? []).length < events && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value, { stream: true });
    }
    // Whatever else is already on its way (the upstream is expected to hang here).
    for (;;) {
        const next = await Promise.race([reader.read(), sleep(idleMs).then(() => null)]);
        if (next === null || next.done) break;
        text += dec.decode(next.value, { stream: true });
    }
    ac.abort();
    try {
        await reader.cancel();
    } catch {
        // aborted
    }
    const complete = text.slice(0, text.lastIndexOf('\n\n') + 2);
    return { status: r.status, headers: r.headers, text: complete, data: sseData(complete) };
}
