// telemetry_logs.test.mjs - the request log, read through the admin API (GET /api/logs and
// GET /api/logs/{id}): one row per request that matches what the client saw (JSON, stream,
// upstream errors, retries, fallbacks, a client that leaves, a request rejected by gatehouse),
// x-gatehouse-log-content: false, filters, q search and keyset pagination, the admin token
// (401/403), retention at start on an existing database (rows inserted with the sqlite3 CLI),
// and the start-up faults: an unwritable data directory, a corrupted or damaged gatehouse.db.
//
// Expected values come from what the client got (status, body, x-gatehouse-* headers, usage,
// the SSE data lines) and from what the replay server received.
//
// Rows for agent mode and for MCP tool calls (the tool_calls table) come with a later issue; the
// row's "tool_calls" list is only checked to be empty here.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startGateway, startReplay, provider, checkShutdown, readSseBody, isAsan } from './harness.mjs';
import { adminToken, adminGet, waitForRow, rid, runGatehouse, streamThenAbort } from './telemetry_util.mjs';

let gw;
let replay;
const TOKEN = adminToken();
const urls = {};

before(async () => {
    replay = await startReplay({ port: 0 });
    urls.lo = replay.mockUrl('openai', 'lo');
    urls.lf = replay.mockUrl('anthropic', 'lf');
    urls.lp = replay.mockUrl('openai', 'lp');
    gw = await startGateway({
        replay,
        sections: {
            admin: { token: TOKEN },
            logs: { enabled: true, content: true },
            metrics: { enabled: false },
        },
        providers: [
            provider('lo', { family: 'openai', baseUrl: urls.lo, maxRetries: 2, keys: [{ name: 'lo-key' }] }),
            provider('lf', { family: 'anthropic', baseUrl: urls.lf, maxRetries: 0, keys: [{ name: 'lf-key' }] }),
            provider('lp', { family: 'openai', baseUrl: urls.lp, maxRetries: 0, keys: [{ name: 'lp-key' }] }),
        ],
    });
});

after(async () => {
    if (gw) await gw.stop();
    if (replay) await replay.close();
});

const prefix = (p) => replay.pathOf(urls[p]);
const count = (p) => replay.received(prefix(p)).length;
const ask = (model, text, extra = {}) => ({ model, messages: [{ role: 'user', content: text }], ...extra });
const row = (id) => waitForRow(gw, id, TOKEN);

// Every request this file sends to gw: id -> {status} (for the status filter).
const sent = new Map();

async function chat(id, body, headers = {}) {
    const t0 = Date.now() / 1000;
    const res = await gw.post('/v1/chat/completions', body, { 'x-request-id': id, ...headers });
    sent.set(id, { status: res.status });
    return { res, t0, t1: Date.now() / 1000 };
}

// A raw streamed request; resolves to what the client received: status, headers, data lines.
async function streamRaw(id, body, headers = {}) {
    const r = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id, ...headers },
        body: JSON.stringify(body),
    });
    const sse = await readSseBody(r);
    assert.equal(sse.error, null);
    sent.set(id, { status: r.status });
    return { status: r.status, headers: r.headers, data: sse.events.map((e) => e.data).filter((d) => d !== null) };
}

function assertRouteOf(rw, headers) {
    assert.equal(rw.provider, headers.get('x-gatehouse-provider'), 'provider');
    assert.equal(rw.model, headers.get('x-gatehouse-model'), 'model');
    assert.equal(rw.key_name, headers.get('x-gatehouse-key'), 'key_name');
    assert.equal(rw.fallback_index, Number(headers.get('x-gatehouse-fallback-index')), 'fallback_index');
    assert.equal(rw.retries, Number(headers.get('x-gatehouse-retries')), 'retries');
}

test('a JSON answer: the row matches what the client saw and sent', async () => {
    const id = rid('json');
    const body = ask('lo/gpt-json', 'log this JSON request');
    const { res, t0, t1 } = await chat(id, body);
    assert.equal(res.status, 200, res.text);
    const rw = await row(id);
    assert.equal(rw.id, id);
    assert.equal(rw.status, 200);
    assert.equal(rw.stream, false);
    assert.equal(rw.method, 'POST');
    assert.equal(rw.path, '/v1/chat/completions');
    assert.equal(rw.dialect, 'openai');
    assertRouteOf(rw, res.headers);
    assert.equal(rw.tokens_in, res.json.usage.prompt_tokens);
    assert.equal(rw.tokens_out, res.json.usage.completion_tokens);
    assert.equal(rw.error_type, null);
    assert.equal(rw.error_message, null);
    assert.deepEqual(rw.request_body, body);
    assert.deepEqual(rw.response_body, res.json);
    assert.ok(rw.ts >= t0 - 1 && rw.ts <= t1 + 1, `ts ${rw.ts} within [${t0}, ${t1}]`);
    assert.ok(rw.latency_ms > 0 && rw.latency_ms <= (t1 - t0) * 1000 + 1000, `latency_ms ${rw.latency_ms}`);
    assert.ok(rw.upstream_ms > 0 && rw.upstream_ms <= rw.latency_ms, `upstream_ms ${rw.upstream_ms}`);
    assert.deepEqual(rw.tool_calls, []);
});

test('a streamed answer: the row keeps the data lines the client received', async () => {
    const id = rid('stream');
    const body = ask('lo/gpt-stream', 'stream this one please', { stream: true, stream_options: { include_usage: true } });
    const got = await streamRaw(id, body);
    assert.equal(got.status, 200);
    assert.equal(got.data[got.data.length - 1], '[DONE]');
    const usage = got.data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d)).find((c) => c.usage)?.usage;
    assert.ok(usage, 'the client saw a usage chunk');
    const rw = await row(id);
    assert.equal(rw.status, 200);
    assert.equal(rw.stream, true);
    assertRouteOf(rw, got.headers);
    assert.equal(rw.tokens_in, usage.prompt_tokens);
    assert.equal(rw.tokens_out, usage.completion_tokens);
    assert.deepEqual(rw.request_body, body);
    assert.equal(rw.response_body, got.data.join('\n'));
    assert.ok(rw.ttft_ms > 0 && rw.ttft_ms <= rw.latency_ms, `ttft_ms ${rw.ttft_ms} <= latency_ms ${rw.latency_ms}`);
});

test('an upstream 400 passed through: status, error type and message, body as the client got them', async () => {
    const id = rid('u400');
    const message = `the model does not like this ${crypto.randomBytes(4).toString('hex')}`;
    replay.script({ prefix: prefix('lo'), status: 400, times: 1, body: { error: { message, type: 'invalid_request_error', param: 'messages', code: null } } });
    const n = count('lo');
    const body = ask('lo/gpt-err', 'please fail');
    const { res } = await chat(id, body);
    assert.equal(res.status, 400, res.text);
    assert.equal(count('lo') - n, 1, 'a 400 is not retried');
    const rw = await row(id);
    assert.equal(rw.status, 400);
    assert.equal(rw.provider, 'lo');
    assert.equal(rw.model, 'gpt-err');
    assert.equal(rw.key_name, 'lo-key');
    assert.equal(rw.retries, 0);
    assert.equal(rw.fallback_index, 0);
    assert.equal(rw.error_type, res.json.error.type);
    assert.equal(rw.error_message, res.json.error.message);
    assert.deepEqual(rw.response_body, res.json);
    assert.deepEqual(rw.request_body, body);
});

test('an upstream 500 after its retries: retries as the replay server saw them, the last error', async () => {
    const id = rid('u500');
    const message = `upstream exploded ${crypto.randomBytes(4).toString('hex')}`;
    replay.script({ prefix: prefix('lo'), status: 500, times: 3, body: { error: { message, type: 'server_error' } } });
    const n = count('lo');
    const { res } = await chat(id, ask('lo/gpt-500', 'keep failing'));
    assert.equal(res.status, 500, res.text);
    const attempts = count('lo') - n;
    assert.equal(attempts, 3, 'first attempt and max_retries (2)');
    const rw = await row(id);
    assert.equal(rw.status, 500);
    assert.equal(rw.provider, 'lo');
    assert.equal(rw.model, 'gpt-500');
    assert.equal(rw.key_name, 'lo-key');
    assert.equal(rw.retries, attempts - 1);
    assert.equal(rw.fallback_index, 0, 'the request had no fallback: it failed on its primary model');
    assert.equal(rw.error_type, res.json.error.type);
    assert.equal(rw.error_message, res.json.error.message);
    assert.deepEqual(rw.response_body, res.json);
});

test('a fallback: fallback_index 1 and the fallback\'s provider, model and key', async () => {
    const id = rid('fb');
    replay.script({ prefix: prefix('lo'), status: 503, times: 3 });
    const n = { lo: count('lo'), lf: count('lf') };
    const body = ask('lo/gpt-prim', 'fall back to claude', { fallbacks: ['lf/claude-fb'], max_tokens: 64 });
    const { res } = await chat(id, body);
    assert.equal(res.status, 200, res.text);
    assert.equal(count('lo') - n.lo, 3);
    assert.equal(count('lf') - n.lf, 1);
    const rw = await row(id);
    assert.equal(rw.status, 200);
    assertRouteOf(rw, res.headers);
    assert.equal(rw.fallback_index, 1);
    assert.equal(rw.provider, 'lf');
    assert.equal(rw.model, 'claude-fb');
    assert.equal(rw.key_name, 'lf-key');
    assert.equal(rw.retries, count('lo') - n.lo - 1);
    assert.equal(rw.tokens_in, res.json.usage.prompt_tokens);
    assert.equal(rw.tokens_out, res.json.usage.completion_tokens);
    assert.deepEqual(rw.response_body, res.json);
    assert.deepEqual(rw.request_body, body);
});

test('a client that leaves mid-stream: status 499, the data lines it had received', async () => {
    const id = rid('gone');
    replay.script({ prefix: prefix('lo'), hangAfter: 3, times: 1 });
    const body = ask('lo/gpt-gone', 'one two three four five six', { stream: true });
    const got = await streamThenAbort(`${gw.url}/v1/chat/completions`, body, { 'x-request-id': id }, 2);
    sent.set(id, { status: 499 });
    assert.equal(got.status, 200);
    assert.ok(got.data.length >= 2, `the client received ${got.data.length} events`);
    const rw = await row(id);
    assert.equal(rw.status, 499);
    assert.equal(rw.stream, true);
    assertRouteOf(rw, got.headers);
    assert.equal(rw.response_body, got.data.join('\n'), 'the data lines received, joined by newlines (docs/request-log.md)');
    assert.deepEqual(rw.request_body, body);
});

test('a request gatehouse itself rejects (bad JSON): the row has the error the client got and the raw body', async () => {
    const id = rid('badjson');
    const text = `{"model": "lo/gpt-x", "messages": [ ${crypto.randomBytes(3).toString('hex')}`;
    const t0 = Date.now() / 1000;
    const res = await gw.post('/v1/chat/completions', text, { 'x-request-id': id });
    sent.set(id, { status: res.status });
    assert.equal(res.status, 400);
    const rw = await row(id);
    assert.equal(rw.status, 400);
    assert.ok(rw.ts >= t0 - 1);
    assert.equal(rw.provider, null, 'no provider was reached');
    assert.equal(rw.request_body, text, 'a body that is not JSON is kept as the string received');
    assert.deepEqual(rw.response_body, res.json);
    assert.deepEqual(
        { error_type: rw.error_type, error_message: rw.error_message },
        { error_type: res.json.error.type, error_message: res.json.error.message },
        'the row\'s error is the one the client got',
    );
});

test('x-gatehouse-log-content: false keeps the row without bodies', async () => {
    const id = rid('nocontent');
    const word = `secretword${crypto.randomBytes(5).toString('hex')}`;
    const { res } = await chat(id, ask('lo/gpt-private', `private ${word}`), { 'x-gatehouse-log-content': 'false' });
    assert.equal(res.status, 200, res.text);
    const rw = await row(id);
    assert.equal(rw.status, 200);
    assert.equal(rw.tokens_in, res.json.usage.prompt_tokens);
    assert.equal(rw.tokens_out, res.json.usage.completion_tokens);
    assert.equal(rw.request_body, null);
    assert.equal(rw.response_body, null);
    const q = await adminGet(gw, `/api/logs?q=${word}`, TOKEN);
    assert.equal(q.status, 200, q.text);
    assert.deepEqual(q.json.data, [], 'the private words are nowhere in the log');
    // and the same request without the header is found by the same search
    const id2 = rid('withcontent');
    await chat(id2, ask('lo/gpt-private', `public ${word}`));
    await row(id2);
    const q2 = await adminGet(gw, `/api/logs?q=${word}`, TOKEN);
    assert.deepEqual(q2.json.data.map((r) => r.id), [id2]);
});

// ---- listing, filters, pagination ----------------------------------------------------------------

const pageIds = [];

test('pagination: pages of provider=lp, newest first, no row twice, none missing, new rows do not shift pages', async () => {
    for (let i = 0; i < 7; i++) {
        const id = rid(`page${i}`);
        const { res } = await chat(id, ask('lp/gpt-page', `page row ${i}`));
        assert.equal(res.status, 200, res.text);
        pageIds.push(id);
    }
    await row(pageIds[pageIds.length - 1]);
    for (const id of pageIds) await row(id);

    const seenIds = [];
    const pages = [];
    let cursor = null;
    for (let guard = 0; guard < 10; guard++) {
        const qs = `provider=lp&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
        const r = await adminGet(gw, `/api/logs?${qs}`, TOKEN);
        assert.equal(r.status, 200, r.text);
        pages.push(r.json.data.length);
        for (const it of r.json.data) {
            seenIds.push(it.id);
            assert.equal(it.provider, 'lp');
            assert.equal('request_body' in it || 'response_body' in it, false, 'the list carries no bodies');
        }
        if (guard === 0) {
            // a request written while the client pages through: newer than every listed row
            const late = rid('late');
            await chat(late, ask('lp/gpt-page', 'late row'));
            await row(late);
        }
        cursor = r.json.next_cursor;
        if (cursor === null) break;
        assert.match(cursor, /^[0-9a-f]{32}$/);
    }
    assert.deepEqual(pages, [3, 3, 1]);
    assert.equal(new Set(seenIds).size, seenIds.length, `no duplicates: ${seenIds}`);
    assert.deepEqual(seenIds, [...pageIds].reverse(), 'newest first, every row once');
});

test('filters: provider, model, status, since/until, and their combination', async () => {
    const all = await adminGet(gw, '/api/logs?limit=1000', TOKEN);
    assert.equal(all.status, 200, all.text);
    const rows = all.json.data;
    assert.equal(all.json.next_cursor, null);
    assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(sent.keys()), 'every request has its row');
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].ts >= rows[i].ts, 'newest first');

    const ids = async (qs) => {
        const r = await adminGet(gw, `/api/logs?limit=1000&${qs}`, TOKEN);
        assert.equal(r.status, 200, `${qs}: ${r.text}`);
        return r.json.data.map((x) => x.id);
    };
    const expect = (pred) => rows.filter(pred).map((r) => r.id);

    assert.deepEqual(await ids('provider=lf'), expect((r) => r.provider === 'lf'));
    assert.ok((await ids('provider=lf')).length >= 1);
    assert.deepEqual(await ids('model=gpt-page'), expect((r) => r.model === 'gpt-page'));
    const with400 = [...sent].filter(([, v]) => v.status === 400).map(([k]) => k);
    assert.ok(with400.length >= 2);
    assert.deepEqual(new Set(await ids('status=400')), new Set(with400));
    assert.deepEqual(await ids('provider=lo&status=400'), expect((r) => r.provider === 'lo' && r.status === 400));
    assert.deepEqual(await ids('status=499'), expect((r) => r.status === 499));
    assert.deepEqual(await ids('provider=nobody'), []);

    // since/until at the midpoint between two of the page rows (rows are ms apart).
    const pr = rows.filter((r) => r.model === 'gpt-page');
    const mid = (pr[2].ts + pr[3].ts) / 2;
    assert.deepEqual(await ids(`since=${mid}`), expect((r) => r.ts >= mid));
    assert.deepEqual(await ids(`until=${mid}`), expect((r) => r.ts < mid));
    const mid2 = (pr[4].ts + pr[5].ts) / 2;
    assert.deepEqual(await ids(`model=gpt-page&since=${mid2}&until=${mid}`), expect((r) => r.model === 'gpt-page' && r.ts >= mid2 && r.ts < mid));
    assert.equal((await ids(`model=gpt-page&since=${mid2}&until=${mid}`)).length, 2);
});

test('q searches request bodies, response bodies and error messages; case-insensitive; % and _ are plain', async () => {
    const word = `Zebra${crypto.randomBytes(5).toString('hex')}`;
    const a = rid('qa');
    await chat(a, ask('lo/gpt-q', `find the ${word} here`));
    // the mock echoes the text: the response body holds it too, so search for the echo only
    const b = rid('qb');
    const pct = `${crypto.randomBytes(3).toString('hex')}0%_d`;
    await chat(b, ask('lo/gpt-q', `progress 10${pct}one`));
    const c = rid('qc');
    const errWord = `quokka${crypto.randomBytes(5).toString('hex')}`;
    replay.script({ prefix: prefix('lo'), status: 422, times: 1, body: { error: { message: `unprocessable ${errWord}`, type: 'invalid_request_error' } } });
    const rc = await chat(c, ask('lo/gpt-q', 'an error with a word'));
    assert.equal(rc.res.status, 422);
    for (const id of [a, b, c]) await row(id);

    const ids = async (q) => {
        const r = await adminGet(gw, `/api/logs?limit=1000&q=${encodeURIComponent(q)}`, TOKEN);
        assert.equal(r.status, 200, r.text);
        return r.json.data.map((x) => x.id);
    };
    assert.deepEqual(await ids(word), [a]);
    assert.deepEqual(await ids(word.toUpperCase()), [a], 'ASCII letters match in either case');
    assert.deepEqual(await ids(word.toLowerCase()), [a]);
    assert.deepEqual(await ids(`echo: find the ${word}`), [a], 'found in the response body');
    assert.deepEqual(await ids(pct), [b], '% and _ are plain characters');
    assert.deepEqual(await ids('0%_d'), [b], 'a short pattern with % and _ matches only the row that holds it');
    assert.deepEqual(await ids(errWord), [c], 'found in the error message');
    assert.deepEqual(await ids(`nothing-${crypto.randomBytes(6).toString('hex')}`), []);
});

test('a bad cursor is refused; an unknown id is 404', async () => {
    const r = await adminGet(gw, '/api/logs?cursor=not-a-cursor', TOKEN);
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /bad cursor/);
    const u = await adminGet(gw, `/api/logs/${rid('unknown')}`, TOKEN);
    assert.equal(u.status, 404, u.text);
});

test('the admin API wants the token: 401 without it and with a wrong one', async () => {
    for (const [what, headers] of [
        ['no Authorization', {}],
        ['a wrong token', { authorization: `Bearer ${adminToken()}` }],
        ['the token with a suffix', { authorization: `Bearer ${TOKEN}x` }],
        ['a prefix of the token', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
        ['the token without Bearer', { authorization: TOKEN }],
    ]) {
        for (const p of ['/api/logs', `/api/logs/${[...sent.keys()][0]}`]) {
            const r = await gw.get(p, headers);
            assert.equal(r.status, 401, `${what} on ${p}: ${r.text}`);
            assert.equal(typeof r.json?.error?.message, 'string');
            assert.ok(!r.text.includes('request_body'), 'no row data in a refusal');
        }
    }
    const ok = await adminGet(gw, '/api/logs?limit=1', TOKEN);
    assert.equal(ok.status, 200);
});

test('metrics.enabled false: GET /metrics is 404', async () => {
    const r = await gw.get('/metrics');
    assert.equal(r.status, 404, r.text);
});

test('the log gateway shuts down cleanly on SIGTERM (no key or admin token in stderr)', async () => {
    const res = await checkShutdown(gw);
    assert.ok(!res.stderr.includes(TOKEN), 'the admin token is not in stderr');
});

// ---- without an admin token ----------------------------------------------------------------------

test('without admin.token the admin API answers 403, with or without a token', async () => {
    const g = await startGateway({
        providers: (r) => [provider('nt', { family: 'openai', baseUrl: r.mockUrl('openai', 'nt') })],
    });
    try {
        for (const headers of [{}, { authorization: `Bearer ${adminToken()}` }]) {
            const r = await g.get('/api/logs', headers);
            assert.equal(r.status, 403, r.text);
            assert.match(r.json.error.message, /admin\.token/);
        }
    } finally {
        await checkShutdown(g);
    }
});

// ---- retention at start ---------------------------------------------------------------------------

function sqlite3Path() {
    const r = spawnSync('sh', ['-c', 'command -v sqlite3'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
}

function sql(db, statement) {
    const r = spawnSync(sqlite3Path(), [db, statement], { encoding: 'utf8' });
    assert.equal(r.status, 0, `sqlite3 ${statement}: ${r.stderr}`);
    return r.stdout.trim();
}

test('retention: at start, rows older than logs.retention_days are deleted, and bodies older than content_retention_days cleared',
    { skip: sqlite3Path() ? false : 'the sqlite3 CLI is not installed (apt-get install -y sqlite3)' },
    async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-ret-'));
        try {
            const providers = (r) => [provider('rt', { family: 'openai', baseUrl: r.mockUrl('openai', 'rt') })];
            // A first run makes a real gatehouse.db with a recent row.
            const g1 = await startGateway({ dir, sections: { admin: { token: TOKEN } }, providers });
            const recent = rid('recent');
            const res = await g1.post('/v1/chat/completions', ask('rt/gpt-r', 'recent row'), { 'x-request-id': recent });
            assert.equal(res.status, 200);
            await waitForRow(g1, recent, TOKEN);
            await checkShutdown(g1);

            // Rows from the past, written while gatehouse is stopped.
            const db = path.join(dir, 'data', 'gatehouse.db');
            const now = Date.now() / 1000;
            const old = { d40: rid('old40'), d31: rid('old31'), d20: rid('old20'), d2: rid('old2') };
            const ages = { d40: 40, d31: 31, d20: 20, d2: 2 };
            for (const [k, id] of Object.entries(old)) {
                sql(db, `INSERT INTO requests (id, ts, dialect, method, path, provider, model, key_name, fallback_index, retries, status, stream, tokens_in, tokens_out, tokens_cached, request_body, response_body) VALUES ('${id}', ${now - ages[k] * 86400}, 'openai', 'POST', '/v1/chat/completions', 'rt', 'gpt-r', 'rt-key', 0, 0, 200, 0, 1, 1, 0, '{"old":"${k}"}', '{"answer":"${k}"}')`);
            }
            assert.equal(Number(sql(db, 'SELECT count(*) FROM requests')), 5);

            const g2 = await startGateway({
                dir,
                sections: { admin: { token: TOKEN }, logs: { retention_days: 30, content_retention_days: 7 } },
                providers,
            });
            try {
                // Retention runs on the writer thread at start; wait for the 40-day row to go.
                const deadline = Date.now() + (isAsan() ? 20000 : 10000);
                let listed;
                for (;;) {
                    const r = await adminGet(g2, '/api/logs?limit=1000', TOKEN);
                    assert.equal(r.status, 200, r.text);
                    listed = r.json.data.map((x) => x.id);
                    if (!listed.includes(old.d40) || Date.now() > deadline) break;
                    await new Promise((res2) => setTimeout(res2, 50));
                }
                assert.deepEqual(new Set(listed), new Set([recent, old.d20, old.d2]), 'rows older than 30 days are gone, the others stay');
                // Bodies of rows older than 7 days are cleared; the newer ones keep theirs.
                const r20 = await waitForRow(g2, old.d20, TOKEN);
                assert.equal(r20.request_body, null);
                assert.equal(r20.response_body, null);
                assert.equal(r20.status, 200, 'the row itself stays');
                const r2 = await waitForRow(g2, old.d2, TOKEN);
                assert.deepEqual(r2.request_body, { old: 'd2' });
                assert.deepEqual(r2.response_body, { answer: 'd2' });
                const rr = await waitForRow(g2, recent, TOKEN);
                assert.deepEqual(rr.request_body, ask('rt/gpt-r', 'recent row'));
            } finally {
                await checkShutdown(g2);
            }
            assert.equal(Number(sql(db, `SELECT count(*) FROM requests WHERE id IN ('${old.d40}', '${old.d31}')`)), 0);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

// ---- start-up faults ----------------------------------------------------------------------------

// A config with one provider and whatever sections; written into dir. Returns its path.
function writeConfig(dir, sections = {}) {
    const cfg = {
        providers: { openai: { keys: [{ name: 'k', value: `sk-e2e-fault-SECRET-${crypto.randomBytes(8).toString('hex')}` }] } },
        ...sections,
    };
    const p = path.join(dir, 'config.json');
    fs.writeFileSync(p, JSON.stringify(cfg));
    fs.chmodSync(p, 0o644);
    return p;
}

const serveArgs = (configPath) => ['serve', '--config', configPath, '--host', '127.0.0.1', '--port', '0', '--threads', '1'];

function assertRefused(r, file, advice) {
    assert.equal(r.timedOut, false, `gatehouse did not refuse to start (it was still running); stderr:\n${r.stderr}`);
    assert.equal(r.signal, null, `gatehouse died of ${r.signal}; stderr:\n${r.stderr}`);
    assert.notEqual(r.code, 0, `exit code; stderr:\n${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l.includes(file));
    assert.ok(lines.length >= 1, `a message names ${file}; stderr:\n${r.stderr}`);
    assert.ok(lines.some((l) => advice.test(l)), `the message naming ${file} says what to do (${advice}); lines:\n${lines.join('\n')}`);
}

test('an unwritable data directory: gatehouse refuses to start and names the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-ro-'));
    try {
        const cfg = writeConfig(dir);
        const data = path.join(dir, 'data');
        fs.mkdirSync(data);
        let ids = {};
        if (process.getuid() === 0) {
            // root writes anywhere: run gatehouse as nobody, with the directory owned by root 0755
            fs.chmodSync(dir, 0o755);
            fs.chmodSync(data, 0o755);
            ids = { uid: 65534, gid: 65534 };
        } else {
            fs.chmodSync(data, 0o500);
        }
        const r = await runGatehouse([...serveArgs(cfg), '--data-dir', data], { cwd: dir, ...ids });
        assertRefused(r, path.join(data, 'gatehouse.db'), /writable|logs\.enabled/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('a data directory that is a file: gatehouse refuses to start and names the file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-nd-'));
    try {
        const cfg = writeConfig(dir);
        fs.writeFileSync(path.join(dir, 'data'), 'not a directory');
        const r = await runGatehouse(serveArgs(cfg), { cwd: dir });
        assertRefused(r, 'data/gatehouse.db', /writable|logs\.enabled/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('a gatehouse.db full of garbage: gatehouse refuses to start and says to move it aside', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-bad-'));
    try {
        const cfg = writeConfig(dir);
        fs.mkdirSync(path.join(dir, 'data'), { mode: 0o700 });
        fs.writeFileSync(path.join(dir, 'data', 'gatehouse.db'), crypto.randomBytes(64 * 1024));
        const r = await runGatehouse(serveArgs(cfg), { cwd: dir });
        assertRefused(r, 'data/gatehouse.db', /move .* aside|delete it/);
        // and the file was left as it was
        assert.equal(fs.statSync(path.join(dir, 'data', 'gatehouse.db')).size, 64 * 1024);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('a real gatehouse.db with damaged pages: gatehouse refuses to start and says to move it aside', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-dmg-'));
    try {
        const g = await startGateway({ dir, sections: { admin: { token: TOKEN } }, providers: (r) => [provider('dm', { family: 'openai', baseUrl: r.mockUrl('openai', 'dm') })] });
        for (let i = 0; i < 20; i++) {
            await g.post('/v1/chat/completions', ask('dm/gpt-d', `row ${i} ${'x'.repeat(2000)}`), { 'x-request-id': `dmg-${i}` });
        }
        await waitForRow(g, 'dmg-19', TOKEN);
        await checkShutdown(g);
        const db = path.join(dir, 'data', 'gatehouse.db');
        const size = fs.statSync(db).size;
        assert.ok(size >= 4 * 4096, `the database has several pages (${size} bytes)`);
        // Keep the 100-byte header valid; overwrite every page after the first with garbage.
        const fd = fs.openSync(db, 'r+');
        const pageSize = fs.readFileSync(db).readUInt16BE(16) || 65536;
        fs.writeSync(fd, crypto.randomBytes(size - pageSize), 0, size - pageSize, pageSize);
        fs.closeSync(fd);
        const r = await runGatehouse(serveArgs(writeConfig(dir)), { cwd: dir });
        assertRefused(r, 'data/gatehouse.db', /move .* aside|delete it/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('logs.enabled false: a garbage gatehouse.db does not stop the start', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-off-'));
    try {
        fs.mkdirSync(path.join(dir, 'data'), { mode: 0o700 });
        const garbage = crypto.randomBytes(8192);
        fs.writeFileSync(path.join(dir, 'data', 'gatehouse.db'), garbage);
        const g = await startGateway({ dir, sections: { logs: { enabled: false } }, providers: (r) => [provider('off', { family: 'openai', baseUrl: r.mockUrl('openai', 'off') })] });
        const res = await g.post('/v1/chat/completions', ask('off/gpt-o', 'no log'));
        assert.equal(res.status, 200, res.text);
        await checkShutdown(g);
        assert.ok(fs.readFileSync(path.join(dir, 'data', 'gatehouse.db')).equals(garbage), 'the file was not touched');
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
