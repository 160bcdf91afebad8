// telemetry_metrics.test.mjs - GET /metrics of a running gatehouse: the output passes
// `promtool check metrics`, and its counters match the traffic this file sends (requests by
// provider/model/status, tokens equal to the usage the client saw, retries and fallbacks after
// scripted 500s, the active gauges back at 0, upstream attempts as the replay server saw them).
//
// Expected values come from what the client got (status, x-gatehouse-* headers, usage) and from
// what the replay server received; nothing is typed in except the documented label value "none"
// for requests rejected before routing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, startReplay, provider, checkShutdown, collectStream } from './harness.mjs';
import {
    parseMetrics, select, sum, scalar, promtoolPath, promtoolCheck, streamThenAbort, until, rid,
} from './telemetry_util.mjs';

let gw;
let replay;
const urls = {};

// What the client saw, one entry per chat request:
// {provider, model, status, errorType, usage: {in, out} | null, retries, fallbackIndex}
const seen = [];
// Upstream attempts per provider, as the replay server received them, with their status class.
const attempts = { mo: [], ma: [] };

before(async () => {
    replay = await startReplay({ port: 0 });
    urls.mo = replay.mockUrl('openai', 'mo');
    urls.ma = replay.mockUrl('anthropic', 'ma');
    urls.md = replay.mockUrl('openai', 'md');
    gw = await startGateway({
        replay,
        sections: { metrics: { enabled: true } },
        providers: [
            provider('mo', { family: 'openai', baseUrl: urls.mo, maxRetries: 1, keys: [{ name: 'mo-key' }] }),
            provider('ma', { family: 'anthropic', baseUrl: urls.ma, maxRetries: 0, keys: [{ name: 'ma-key' }] }),
            provider('md', { family: 'openai', baseUrl: urls.md, maxRetries: 0, keys: [{ name: 'md-key' }] }),
        ],
    });
});

after(async () => {
    if (gw) await gw.stop();
    if (replay) await replay.close();
});

const prefix = (p) => replay.pathOf(urls[p]);
const received = (p) => replay.received(prefix(p));

function statusClass(entry) {
    const s = entry.fault?.status ?? 200; // mock answers are 200; a fault may script another status
    return `${Math.floor(s / 100)}xx`;
}

// Runs one request (requests are sent one at a time) and records, from the replay server's
// point of view, each upstream attempt it caused: provider and status class. Resolves to
// {out, tries: {provider: attempts}}.
async function tracked(fn) {
    const before = { mo: received('mo').length, ma: received('ma').length };
    const out = await fn();
    const tries = {};
    for (const p of ['mo', 'ma']) {
        const got = received(p).slice(before[p]);
        for (const e of got) attempts[p].push(statusClass(e));
        if (got.length) tries[p] = got.length;
    }
    return { out, tries };
}

// Retries of one request from the attempts the replay server received: every attempt after the
// first one at each target (each target here is its own provider).
const retriesOf = (tries) => Object.values(tries).reduce((a, n) => a + n - 1, 0);

function targetOf(modelString) {
    const i = modelString.indexOf('/');
    return { provider: modelString.slice(0, i), model: modelString.slice(i + 1) };
}

// A JSON request; records what the client saw.
async function jsonChat(body) {
    const { out: res, tries } = await tracked(() => gw.post('/v1/chat/completions', body));
    const asked = targetOf(body.model);
    const entry = {
        provider: res.headers.get('x-gatehouse-provider') ?? asked.provider,
        model: res.headers.get('x-gatehouse-model') ?? asked.model,
        status: res.status,
        errorType: res.status >= 400 ? res.json?.error?.type : 'none',
        usage: res.status === 200 ? { in: res.json.usage.prompt_tokens, out: res.json.usage.completion_tokens } : null,
        retries: retriesOf(tries),
        fallbackIndex: Object.keys(tries).length - 1,
    };
    // When the answer names its route, it agrees with what the replay server saw.
    if (res.headers.get('x-gatehouse-retries') !== null) {
        assert.equal(Number(res.headers.get('x-gatehouse-retries')), entry.retries, 'x-gatehouse-retries');
        assert.equal(Number(res.headers.get('x-gatehouse-fallback-index')), entry.fallbackIndex, 'x-gatehouse-fallback-index');
    }
    seen.push(entry);
    return { res, entry };
}

// A streamed request with include_usage through the official client; records what it saw.
async function streamChat(body) {
    let headers;
    const { out: got, tries } = await tracked(async () => {
        const { data, response } = await gw
            .client()
            .chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })
            .withResponse();
        headers = response.headers;
        return collectStream(data);
    });
    assert.equal(got.error, null, `stream error: ${got.error}`);
    assert.equal(got.usageChunks.length, 1, 'one usage chunk');
    const u = got.usageChunks[0].usage;
    const entry = {
        provider: headers.get('x-gatehouse-provider'),
        model: headers.get('x-gatehouse-model'),
        status: 200,
        errorType: 'none',
        usage: { in: u.prompt_tokens, out: u.completion_tokens },
        retries: retriesOf(tries),
        fallbackIndex: Object.keys(tries).length - 1,
    };
    assert.equal(Number(headers.get('x-gatehouse-retries')), entry.retries, 'x-gatehouse-retries');
    seen.push(entry);
    return entry;
}

const ask = (model, text, extra = {}) => ({ model, messages: [{ role: 'user', content: text }], ...extra });

test('traffic: JSON and streamed answers from an OpenAI and an Anthropic upstream', async () => {
    for (const text of ['one', 'two words', 'three little words']) {
        const { res } = await jsonChat(ask('mo/gpt-m1', text));
        assert.equal(res.status, 200, res.text);
    }
    await streamChat(ask('mo/gpt-m2', 'a streamed answer please'));
    await streamChat(ask('mo/gpt-m2', 'another one'));
    const { res } = await jsonChat(ask('ma/claude-m3', 'hello claude', { max_tokens: 50 }));
    assert.equal(res.status, 200, res.text);
    await streamChat(ask('ma/claude-m3', 'stream from claude', { max_tokens: 50 }));
});

test('traffic: a scripted 500 is retried; a primary that keeps failing falls back', async () => {
    replay.script({ prefix: prefix('mo'), status: 500, times: 1 });
    const r1 = await jsonChat(ask('mo/gpt-m1', 'retry me'));
    assert.equal(r1.res.status, 200, r1.res.text);
    assert.equal(r1.entry.retries, 1);

    replay.script({ prefix: prefix('mo'), status: 500, times: 2 });
    const r2 = await jsonChat(ask('mo/gpt-m1', 'fall back', { fallbacks: ['ma/claude-fb'], max_tokens: 50 }));
    assert.equal(r2.res.status, 200, r2.res.text);
    assert.equal(r2.entry.provider, 'ma');
    assert.equal(r2.entry.fallbackIndex, 1);
    assert.equal(r2.entry.retries, 1);
});

test('traffic: upstream 400 passed through, 500 after retries, client errors, a client that leaves', async () => {
    replay.script({ prefix: prefix('mo'), status: 400, times: 1, body: { error: { message: 'bad thing', type: 'invalid_request_error' } } });
    const a = await jsonChat(ask('mo/gpt-m1', 'rejected upstream'));
    assert.equal(a.res.status, 400, a.res.text);

    replay.script({ prefix: prefix('mo'), status: 500, times: 2 });
    const b = await jsonChat(ask('mo/gpt-m4', 'always failing'));
    assert.equal(b.res.status, 500, b.res.text);
    assert.equal(b.entry.retries, 1, 'two attempts at mo');

    // Rejected before routing: bad JSON and an unknown provider.
    const c = await gw.post('/v1/chat/completions', '{"model": "mo/gpt-m1", "messages": [');
    assert.equal(c.status, 400);
    seen.push({ provider: 'none', model: 'none', status: 400, errorType: c.json.error.type, usage: null, retries: 0, fallbackIndex: 0 });
    const d = await gw.post('/v1/chat/completions', ask('nosuch/gpt-x', 'who?'));
    assert.equal(d.status, 400);
    seen.push({ provider: 'none', model: 'none', status: 400, errorType: d.json.error.type, usage: null, retries: 0, fallbackIndex: 0 });

    // A stream whose client goes away after the first events (the upstream hangs).
    replay.script({ prefix: prefix('md'), hangAfter: 2, times: 1 });
    const gone = await streamThenAbort(`${gw.url}/v1/chat/completions`, ask('md/gpt-gone', 'never finished', { stream: true }), { 'x-request-id': rid('gone') }, 1);
    assert.equal(gone.status, 200);
    assert.ok(gone.data.length >= 1, 'the client got at least one event before leaving');
    seen.push({
        provider: gone.headers.get('x-gatehouse-provider'),
        model: gone.headers.get('x-gatehouse-model'),
        status: 499,
        errorType: null, // the client saw no error type
        usage: null,
        retries: Number(gone.headers.get('x-gatehouse-retries')),
        fallbackIndex: Number(gone.headers.get('x-gatehouse-fallback-index')),
    });
    // gatehouse notices the close and cancels the upstream request.
    assert.ok(await replay.waitFor(() => replay.clientClosed(prefix('md')) >= 1, 5000), 'the upstream request was cancelled');
});

let metrics;
let metricsText;

async function scrape() {
    const r = await gw.get('/metrics');
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    metricsText = r.text;
    metrics = parseMetrics(r.text);
    return metrics;
}

test('the active gauges come back to 0 once every request has finished', async () => {
    const ok = await until(async () => {
        const m = await scrape();
        return scalar(m, 'gatehouse_active_requests') === 0 && scalar(m, 'gatehouse_active_streams') === 0;
    }, 8000);
    assert.ok(ok, `active gauges: requests ${scalar(metrics, 'gatehouse_active_requests')}, streams ${scalar(metrics, 'gatehouse_active_streams')}`);
});

test('the metrics pass promtool check metrics', { skip: promtoolPath() ? false : 'promtool not installed (Debian package prometheus)' }, async () => {
    await scrape();
    const r = promtoolCheck(metricsText);
    assert.equal(r.error, undefined, `promtool could not run: ${r.error}`);
    assert.equal(r.code, 0, `promtool check metrics failed:\n${r.stdout}${r.stderr}`);
});

test('gatehouse_requests_total counts the requests by provider, model and status the client saw', async () => {
    await scrape();
    const expected = new Map();
    for (const s of seen) {
        const k = `${s.provider}|${s.model}|${s.status}`;
        expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    const got = new Map();
    for (const s of select(metrics, 'gatehouse_requests_total')) {
        const k = `${s.labels.provider}|${s.labels.model}|${s.labels.status}`;
        got.set(k, (got.get(k) ?? 0) + s.value);
    }
    assert.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries([...expected].sort()));
});

test('gatehouse_requests_total carries the error type the client got (none on success)', async () => {
    await scrape();
    const expected = new Map();
    for (const s of seen) {
        if (s.errorType === null) continue; // the client that left saw no error type
        const k = `${s.provider}|${s.model}|${s.status}|${s.errorType}`;
        expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    const got = new Map();
    for (const s of select(metrics, 'gatehouse_requests_total')) {
        if (s.labels.status === '499') continue;
        const k = `${s.labels.provider}|${s.labels.model}|${s.labels.status}|${s.labels.error_type}`;
        got.set(k, (got.get(k) ?? 0) + s.value);
    }
    assert.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries([...expected].sort()));
});

test('token counters equal the usage the client saw, per provider and model', async () => {
    await scrape();
    const exp = { in: new Map(), out: new Map() };
    for (const s of seen) {
        if (s.provider === 'none') continue;
        const k = `${s.provider}|${s.model}`;
        for (const d of ['in', 'out']) exp[d].set(k, (exp[d].get(k) ?? 0) + (s.usage ? s.usage[d] : 0));
    }
    for (const [d, name] of [['in', 'gatehouse_input_tokens_total'], ['out', 'gatehouse_output_tokens_total']]) {
        const got = new Map();
        for (const s of select(metrics, name)) {
            const k = `${s.labels.provider}|${s.labels.model}`;
            got.set(k, (got.get(k) ?? 0) + s.value);
        }
        // A series may be missing for a target that produced no token at all.
        for (const [k, v] of exp[d]) if (v === 0 && !got.has(k)) got.set(k, 0);
        assert.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries([...exp[d]].sort()), name);
    }
    const total = seen.reduce((a, s) => a + (s.usage ? s.usage.in : 0), 0);
    assert.ok(total > 0, 'the traffic had prompt tokens');
});

test('retries and fallbacks are counted by the provider that answered last', async () => {
    await scrape();
    const retries = { mo: 0, ma: 0, md: 0 };
    const fallbacks = { mo: 0, ma: 0, md: 0 };
    for (const s of seen) {
        if (s.provider === 'none') continue;
        retries[s.provider] += s.retries;
        if (s.fallbackIndex > 0) fallbacks[s.provider] += 1;
    }
    for (const p of ['mo', 'ma', 'md']) {
        assert.equal(sum(metrics, 'gatehouse_retries_total', { provider: p }), retries[p], `retries of ${p}`);
        assert.equal(sum(metrics, 'gatehouse_fallbacks_total', { provider: p }), fallbacks[p], `fallbacks of ${p}`);
        assert.equal(select(metrics, 'gatehouse_retries_total', { provider: p }).length, 1, `one retries series for ${p}`);
    }
    assert.ok(retries.mo + retries.ma > 0 && fallbacks.ma > 0, 'the traffic had retries and a fallback');
});

test('upstream attempts are counted by provider and status class as the replay server saw them', async () => {
    await scrape();
    for (const p of ['mo', 'ma']) {
        const exp = {};
        for (const c of attempts[p]) exp[c] = (exp[c] ?? 0) + 1;
        const got = {};
        for (const s of select(metrics, 'gatehouse_upstream_duration_seconds_count', { provider: p })) {
            got[s.labels.status_class] = s.value;
        }
        assert.deepEqual(got, exp, `upstream attempts of ${p}`);
    }
});

test('request durations are observed once per request, per provider; histograms are consistent', async () => {
    await scrape();
    const per = {};
    for (const s of seen) per[s.provider] = (per[s.provider] ?? 0) + 1;
    const got = {};
    for (const s of select(metrics, 'gatehouse_request_duration_seconds_count')) got[s.labels.provider] = s.value;
    assert.deepEqual(got, per);
    assert.equal(scalar(metrics, 'gatehouse_overhead_seconds_count'), seen.length);

    // Every histogram series: cumulative buckets never decrease and +Inf equals _count.
    const families = Object.entries(metrics.types).filter(([, t]) => t === 'histogram').map(([f]) => f);
    assert.ok(families.length >= 4, `histogram families: ${families}`);
    let series = 0;
    for (const f of families) {
        const groups = new Map();
        for (const s of select(metrics, `${f}_bucket`)) {
            const { le, ...rest } = s.labels;
            const k = JSON.stringify(rest);
            if (!groups.has(k)) groups.set(k, []);
            groups.get(k).push({ le: le === '+Inf' ? Infinity : Number(le), value: s.value });
        }
        for (const [k, buckets] of groups) {
            series += 1;
            const sorted = [...buckets].sort((x, y) => x.le - y.le);
            for (let i = 1; i < sorted.length; i++) {
                assert.ok(sorted[i].value >= sorted[i - 1].value, `${f}${k}: bucket le=${sorted[i].le} < le=${sorted[i - 1].le}`);
            }
            assert.equal(sorted[sorted.length - 1].le, Infinity, `${f}${k} has a +Inf bucket`);
            const count = select(metrics, `${f}_count`, JSON.parse(k)).filter((s) => JSON.stringify(s.labels) === k);
            assert.equal(count.length, 1, `${f}_count${k}`);
            assert.equal(count[0].value, sorted[sorted.length - 1].value, `${f}${k}: _count equals the +Inf bucket`);
        }
    }
    assert.ok(series > 0);
});

test('every family has HELP and TYPE; build info and process metrics are there', async () => {
    await scrape();
    for (const f of [
        'gatehouse_requests_total', 'gatehouse_request_duration_seconds', 'gatehouse_time_to_first_token_seconds',
        'gatehouse_overhead_seconds', 'gatehouse_upstream_duration_seconds', 'gatehouse_input_tokens_total',
        'gatehouse_output_tokens_total', 'gatehouse_cached_input_tokens_total', 'gatehouse_cost_usd_total',
        'gatehouse_retries_total', 'gatehouse_fallbacks_total', 'gatehouse_active_requests', 'gatehouse_active_streams',
        'gatehouse_log_rows_written_total', 'gatehouse_log_rows_dropped_total', 'gatehouse_audit_records_written_total',
        'gatehouse_audit_records_dropped_total', 'gatehouse_build_info', 'process_start_time_seconds',
        'process_resident_memory_bytes',
    ]) {
        // Counters are announced under their family name, with or without _total.
        const fam = metrics.types[f] ? f : f.replace(/_total$/, '');
        assert.ok(metrics.types[fam], `# TYPE for ${f}`);
        assert.ok(metrics.help[fam] !== undefined, `# HELP for ${f}`);
    }
    assert.equal(select(metrics, 'gatehouse_build_info').length, 1);
    assert.equal(select(metrics, 'gatehouse_build_info')[0].value, 1);
    const start = scalar(metrics, 'process_start_time_seconds');
    assert.ok(Math.abs(start - Date.now() / 1000) < 3600, `process_start_time_seconds ${start} is about now`);
    assert.ok(scalar(metrics, 'process_resident_memory_bytes') > 1e6);
});

test('every request reached the request log: rows written equal the requests sent, none dropped', async () => {
    const ok = await until(async () => {
        const m = await scrape();
        return scalar(m, 'gatehouse_log_rows_written_total') >= seen.length;
    }, 8000);
    assert.equal(scalar(metrics, 'gatehouse_log_rows_written_total'), seen.length);
    assert.equal(scalar(metrics, 'gatehouse_log_rows_dropped_total'), 0);
    // The audit trail is off in this file.
    assert.equal(scalar(metrics, 'gatehouse_audit_records_written_total'), 0);
});

test('gatehouse shuts down cleanly on SIGTERM', async () => {
    await checkShutdown(gw);
});
