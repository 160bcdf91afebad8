// telemetry_audit.test.mjs - the wire-level audit trail (<data>/audit/*.jsonl):
//   - the recorded upstream request body is byte for byte what the replay server received, and
//     the recorded response body what it sent (the project's fixtures say what that is);
//   - the hash chain is intact (recomputed here with node:crypto), `gatehouse audit verify` says
//     so, and names the right record after one byte of a record is changed or a line deleted;
//   - `gatehouse audit show ID` prints both attempts of a retried request;
//   - x-gatehouse-audit: true records that request alone when audit.enabled is off;
//   - audit.content false stores SHA-256 values that match the bytes;
//   - no key value (nor the admin token) is in any byte of any file under the data directory,
//     while gatehouse runs (SQLite WAL included) and after a clean SIGTERM shutdown, although a
//     provider echoes a key back in an error body and in an answer.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startGateway, startReplay, provider, checkShutdown, collectStream, isAsan } from './harness.mjs';
import { splitSseEvents } from '../replay/server.mjs';
import { fixture, turns, bodyText } from './recorded.mjs';
import {
    adminToken, waitForRow, rid, runGatehouse, auditRecords, auditFiles, filesUnder, filesContaining, sha256hex, until,
} from './telemetry_util.mjs';

let replay;
let gw; // audit.enabled, content on, logs on
const TOKEN = adminToken();
const urls = {};

const rec = {
    chat: turns(fixture('openai', 'chat_text'), '/chat/completions')[0],
    stream: turns(fixture('openai', 'stream_text'), '/chat/completions')[0],
    claude: turns(fixture('anthropic', 'messages_text'), '/messages')[0],
};
// What the replay server sends for a recorded response: the body serialized, or the SSE events
// one after the other.
function sentBody(it) {
    const text = bodyText(it.response);
    return /event-stream/.test(it.response.headers?.['content-type'] ?? '') ? splitSseEvents(text).join('') : text;
}

before(async () => {
    replay = await startReplay({ port: 0 });
    urls.ao = replay.fixtureUrl('openai', 'chat_text', 0);
    urls.as = replay.fixtureUrl('openai', 'stream_text', 0);
    urls.aa = replay.fixtureUrl('anthropic', 'messages_text', 0);
    // The fixture has one interaction: every pin answers it. Distinct pins give distinct paths,
    // so that faults and received requests of one provider do not mix with another's.
    urls.ar = replay.fixtureUrl('openai', 'chat_text', 1);
    urls.ae = replay.mockUrl('openai', 'ae');
    urls.ak = replay.mockUrl('openai', 'ak');
    gw = await startGateway({
        replay,
        keepDir: true,
        sections: { admin: { token: TOKEN }, audit: { enabled: true, content: true }, logs: { enabled: true, content: true } },
        providers: [
            provider('ao', { family: 'openai', baseUrl: urls.ao, keys: [{ name: 'ao-key' }] }),
            provider('as', { family: 'openai', baseUrl: urls.as, keys: [{ name: 'as-key' }] }),
            provider('aa', { family: 'anthropic', baseUrl: urls.aa, keys: [{ name: 'aa-key' }] }),
            // the same fixture behind another provider, which retries
            provider('ar', { family: 'openai', baseUrl: urls.ar, maxRetries: 1, keys: [{ name: 'ar-key' }] }),
            provider('ae', { family: 'openai', baseUrl: urls.ae, keys: [{ name: 'ae-key' }] }),
            // ak-one is as good as always picked first (weights), so a scripted 401 can quote it
            provider('ak', { family: 'openai', baseUrl: urls.ak, maxRetries: 1, keys: [{ name: 'ak-one', weight: 1e9 }, { name: 'ak-two', weight: 1e-9 }] }),
        ],
    });
});

after(async () => {
    if (gw) {
        await gw.stop();
        fs.rmSync(gw.dir, { recursive: true, force: true });
    }
    if (replay) await replay.close();
});

const ask = (model, text, extra = {}) => ({ model, messages: [{ role: 'user', content: text }], ...extra });
const keyOf = (g, prov, name) => g.config.providers[prov].keys.find((k) => k.name === name).value;

// The audit records of one request, once `n` of them are on disk.
async function recordsOf(g, id, n = 1) {
    const got = await until(() => {
        const r = auditRecords(g.dataDir).filter((x) => x.rec.request_id === id);
        return r.length >= n ? r : null;
    }, isAsan() ? 15000 : 8000);
    assert.ok(got, `${n} audit record(s) for ${id}; records on disk: ${auditRecords(g.dataDir).map((x) => x.rec.request_id)}`);
    return got;
}

// The requests the replay server received under a base URL since index `from`.
const receivedSince = (url, from) => replay.received(replay.pathOf(url)).slice(from);
const countOf = (url) => replay.received(replay.pathOf(url)).length;

function headerValue(list, name) {
    const h = list.find(([k]) => k.toLowerCase() === name.toLowerCase());
    return h ? h[1] : undefined;
}

function assertExchange(r, up, sentText, status, target) {
    assert.equal(r.kind, 'upstream');
    assert.equal(r.target, target);
    assert.equal(r.method, up.method);
    assert.equal(r.url, `${replay.url}${up.path}`, 'the URL called');
    assert.ok(r.req_body && typeof r.req_body.text === 'string', `req_body is text: ${JSON.stringify(r.req_body)}`);
    assert.ok(Buffer.from(r.req_body.text, 'utf8').equals(Buffer.from(up.body, 'utf8')), 'request body bytes equal what the replay server received');
    assert.equal(r.status, status);
    assert.ok(r.resp_body && typeof r.resp_body.text === 'string', `resp_body is text: ${JSON.stringify(r.resp_body)}`);
    assert.ok(Buffer.from(r.resp_body.text, 'utf8').equals(Buffer.from(sentText, 'utf8')), 'response body bytes equal what the replay server sent');
    assert.equal(headerValue(r.req_headers, 'content-type'), up.headers['content-type']);
    assert.equal(r.error, null);
    assert.ok(r.duration_s >= 0 && r.first_byte_s >= 0 && r.first_byte_s <= r.duration_s + 1e-6, `timings ${r.first_byte_s} / ${r.duration_s}`);
}

test('a JSON exchange: request bytes as received upstream, response bytes as sent, the key redacted', async () => {
    const id = rid('ajson');
    const n = countOf(urls.ao);
    const res = await gw.post('/v1/chat/completions', ask('ao/gpt-4o-mini', 'audit this exchange'), { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    const up = receivedSince(urls.ao, n);
    assert.equal(up.length, 1);
    const [r] = await recordsOf(gw, id);
    assertExchange(r.rec, up[0], sentBody(rec.chat), rec.chat.response.status, 'ao');
    const key = keyOf(gw, 'ao', 'ao-key');
    assert.equal(up[0].headers.authorization, `Bearer ${key}`, 'the upstream got the key');
    const auth = headerValue(r.rec.req_headers, 'authorization');
    assert.ok(auth.startsWith('Bearer ') && !auth.includes(key), `Authorization is redacted: ${auth}`);
    assert.ok(!r.text.includes(key));
    assert.equal(headerValue(r.rec.resp_headers, 'content-type'), rec.chat.response.headers['content-type']);
});

test('a streamed exchange: the SSE bytes as the replay server sent them', async () => {
    const id = rid('astream');
    const n = countOf(urls.as);
    const got = await collectStream(await gw.client().chat.completions.create(ask('as/gpt-4o-mini', 'stream and audit', { stream: true }), { headers: { 'x-request-id': id } }));
    assert.equal(got.error, null);
    const up = receivedSince(urls.as, n);
    assert.equal(up.length, 1);
    const [r] = await recordsOf(gw, id);
    assertExchange(r.rec, up[0], sentBody(rec.stream), 200, 'as');
});

test('an Anthropic exchange: the translated request as received, x-api-key redacted', async () => {
    const id = rid('aclaude');
    const n = countOf(urls.aa);
    const res = await gw.post('/v1/chat/completions', ask('aa/claude-sonnet-4-5', 'audit claude', { max_tokens: 100 }), { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    const up = receivedSince(urls.aa, n);
    assert.equal(up.length, 1);
    const [r] = await recordsOf(gw, id);
    assertExchange(r.rec, up[0], sentBody(rec.claude), 200, 'aa');
    const key = keyOf(gw, 'aa', 'aa-key');
    assert.equal(up[0].headers['x-api-key'], key);
    const xk = headerValue(r.rec.req_headers, 'x-api-key');
    assert.ok(xk !== undefined && !xk.includes(key), `x-api-key is redacted: ${xk}`);
});

let retried; // {id, records}

test('a retried request: both attempts recorded, in order; audit show prints both', async () => {
    const id = rid('aretry');
    const prefix = replay.pathOf(urls.ar);
    const faultBody = { error: { message: `scripted failure ${crypto.randomBytes(4).toString('hex')}`, type: 'server_error' } };
    replay.script({ prefix, status: 500, times: 1, body: faultBody });
    const n = replay.received(prefix).length;
    const res = await gw.post('/v1/chat/completions', ask('ar/gpt-4o-mini', 'retry and audit'), { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('x-gatehouse-retries'), '1');
    const up = replay.received(prefix).slice(n);
    assert.equal(up.length, 2);
    const records = await recordsOf(gw, id, 2);
    assert.equal(records.length, 2);
    assert.ok(records[0].rec.seq < records[1].rec.seq);
    assertExchange(records[0].rec, up[0], JSON.stringify(faultBody), 500, 'ar');
    assertExchange(records[1].rec, up[1], sentBody(rec.chat), 200, 'ar');
    retried = { id, records };

    const show = await runGatehouse(['audit', 'show', id, '--data-dir', gw.dataDir]);
    assert.equal(show.code, 0, `audit show: ${show.stdout}${show.stderr}`);
    const blocks = show.stdout.split(/^== /m).slice(1);
    assert.equal(blocks.length, 2, `two exchanges printed:\n${show.stdout}`);
    const seqs = blocks.map((b) => Number(b.match(/^seq (\d+)/)?.[1]));
    assert.deepEqual(seqs, records.map((x) => x.rec.seq));
    assert.match(blocks[0], /status 500/);
    assert.match(blocks[1], /status 200/);
    assert.ok(blocks[0].includes(up[0].body), 'the request body is printed');
    assert.ok(blocks[0].includes(faultBody.error.message), 'the first response body is printed');
    assert.ok(blocks[1].includes(JSON.parse(sentBody(rec.chat)).choices[0].message.content), 'the second response body is printed');
    assert.ok(!show.stdout.includes(keyOf(gw, 'ar', 'ar-key')), 'no key in audit show');

    const none = await runGatehouse(['audit', 'show', rid('nosuch'), '--data-dir', gw.dataDir]);
    assert.equal(none.code, 1, `an unknown request id: ${none.stdout}${none.stderr}`);
});

test('keys echoed back by a provider (error body, answer) and rotated keys are not recorded', async () => {
    const key = keyOf(gw, 'ae', 'ae-key');
    const prefix = replay.pathOf(urls.ae);
    const idErr = rid('aecho401');
    replay.script({ prefix, status: 401, times: 1, body: { error: { message: `Incorrect API key provided: ${key}. You can find your API key at the dashboard.`, type: 'invalid_request_error', code: 'invalid_api_key' } } });
    const r1 = await gw.post('/v1/chat/completions', ask('ae/gpt-echo', 'echo my key'), { 'x-request-id': idErr });
    assert.ok(r1.status >= 400, r1.text);
    const idOk = rid('aecho200');
    replay.script({
        prefix,
        status: 200,
        times: 1,
        body: { id: 'chatcmpl-echo', object: 'chat.completion', created: 1, model: 'gpt-echo', choices: [{ index: 0, message: { role: 'assistant', content: `your key is ${key} and Bearer ${key}` }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 } },
    });
    const r2 = await gw.post('/v1/chat/completions', ask('ae/gpt-echo', 'say my key'), { 'x-request-id': idOk });
    assert.equal(r2.status, 200, r2.text);
    // a 401 that quotes the key it was sent; the other key answers
    const idRot = rid('arot');
    const nk = countOf(urls.ak);
    replay.script({ prefix: replay.pathOf(urls.ak), status: 401, times: 1, body: { error: { message: `Incorrect API key provided: ${keyOf(gw, 'ak', 'ak-one')}`, type: 'invalid_request_error' } } });
    const r3 = await gw.post('/v1/chat/completions', ask('ak/gpt-rot', 'rotate'), { 'x-request-id': idRot });
    assert.equal(r3.status, 200, r3.text);
    const upk = receivedSince(urls.ak, nk);
    assert.deepEqual(upk.map((u) => u.headers.authorization), [`Bearer ${keyOf(gw, 'ak', 'ak-one')}`, `Bearer ${keyOf(gw, 'ak', 'ak-two')}`], 'ak-one, then ak-two');

    for (const id of [idErr, idOk, idRot]) {
        await waitForRow(gw, id, TOKEN);
        for (const x of await recordsOf(gw, id)) {
            for (const s of gw.secrets) assert.ok(!x.text.includes(s), `${id}: key ${s.slice(0, 14)}... in audit seq ${x.rec.seq}`);
        }
    }
    const [echo] = await recordsOf(gw, idErr);
    assert.match(echo.rec.resp_body.text, /Incorrect API key provided: /, 'the error body is recorded, scrubbed');
});

test('the chain is intact: seq 1..n, each prev the SHA-256 of the line before; audit verify says so', async () => {
    const all = auditRecords(gw.dataDir);
    assert.ok(all.length >= 8, `records: ${all.length}`);
    let prev = '0'.repeat(64);
    all.forEach((x, i) => {
        assert.equal(x.rec.seq, i + 1, `seq of ${path.basename(x.file)}:${x.line}`);
        assert.equal(x.rec.prev, prev, `prev of seq ${x.rec.seq}`);
        prev = sha256hex(Buffer.from(x.text, 'utf8'));
    });
    for (const dir of [path.join(gw.dataDir, 'audit'), gw.dataDir]) {
        const v = await runGatehouse(['audit', 'verify', dir]);
        assert.equal(v.code, 0, `audit verify ${dir}: ${v.stdout}${v.stderr}`);
        const out = v.stdout + v.stderr;
        assert.match(out, /chain intact/);
        assert.match(out, new RegExp(`\\b${all.length} records in ${auditFiles(gw.dataDir).length} files?\\b`));
        assert.ok(out.includes(`seq ${all.length}, sha256 ${prev}`), `the last record and its hash:\n${out}`);
    }
});

// A copy of the audit files in a new directory, for tampering (the live trail keeps growing).
function copyTrail(dataDir) {
    const dst = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-tamper-'));
    for (const f of auditFiles(dataDir)) fs.copyFileSync(f, path.join(dst, path.basename(f)));
    return dst;
}

// A record in the middle of a file that has records before and after it.
function middleRecord(dataDir) {
    const all = auditRecords(dataDir);
    const byFile = new Map();
    for (const x of all) byFile.set(x.file, [...(byFile.get(x.file) ?? []), x]);
    const [, recs] = [...byFile].sort((a, b) => b[1].length - a[1].length)[0];
    assert.ok(recs.length >= 5, 'a file with at least 5 records');
    return recs[Math.floor(recs.length / 2)];
}

test('one byte of one record changed: verify exits 1 and names that record', async () => {
    const m = middleRecord(gw.dataDir);
    const dst = copyTrail(gw.dataDir);
    try {
        const f = path.join(dst, path.basename(m.file));
        const buf = fs.readFileSync(f);
        // the byte offset of that line, then of a digit of its timestamp's milliseconds
        const lines = buf.toString('utf8').split('\n');
        const lineStart = Buffer.byteLength(lines.slice(0, m.line - 1).map((l) => `${l}\n`).join(''), 'utf8');
        const tsAt = m.text.indexOf('"ts":"') + 6 + '2026-01-01T00:00:00.00'.length;
        const at = lineStart + Buffer.byteLength(m.text.slice(0, tsAt), 'utf8');
        assert.match(String.fromCharCode(buf[at]), /\d/);
        buf[at] = buf[at] === 0x30 ? 0x31 : 0x30;
        fs.writeFileSync(f, buf);
        JSON.parse(buf.toString('utf8').split('\n')[m.line - 1]); // still a JSON record
        const v = await runGatehouse(['audit', 'verify', dst]);
        const out = v.stdout + v.stderr;
        assert.equal(v.code, 1, out);
        assert.ok(out.includes(`${path.basename(m.file)}:${m.line} (seq ${m.rec.seq})`), `names ${path.basename(m.file)}:${m.line} (seq ${m.rec.seq}):\n${out}`);
        assert.match(out, /changed/);
    } finally {
        fs.rmSync(dst, { recursive: true, force: true });
    }
});

test('one line deleted: verify exits 1 and names the place', async () => {
    const m = middleRecord(gw.dataDir);
    const dst = copyTrail(gw.dataDir);
    try {
        const f = path.join(dst, path.basename(m.file));
        const lines = fs.readFileSync(f, 'utf8').split('\n');
        lines.splice(m.line - 1, 1);
        fs.writeFileSync(f, lines.join('\n'));
        const v = await runGatehouse(['audit', 'verify', dst]);
        const out = v.stdout + v.stderr;
        assert.equal(v.code, 1, out);
        // the record after the deleted one now sits on its line
        assert.ok(out.includes(`${path.basename(m.file)}:${m.line} (seq ${m.rec.seq + 1})`), `names ${path.basename(m.file)}:${m.line} (seq ${m.rec.seq + 1}):\n${out}`);
        assert.ok(out.includes(`from ${m.rec.seq - 1} to ${m.rec.seq + 1}`), `says which seq is missing:\n${out}`);
        assert.match(out, /deleted/);
    } finally {
        fs.rmSync(dst, { recursive: true, force: true });
    }
});

test('audit verify on a directory without audit files exits 2', async () => {
    const dst = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-empty-'));
    try {
        const v = await runGatehouse(['audit', 'verify', dst]);
        assert.equal(v.code, 2, v.stdout + v.stderr);
    } finally {
        fs.rmSync(dst, { recursive: true, force: true });
    }
});

// Every secret of a gateway: key values and the admin token.
const secretsOfGw = (g) => [...g.secrets, TOKEN];

function assertNoSecretOnDisk(g, when) {
    const files = filesUnder(g.dataDir);
    assert.ok(files.some((f) => f.endsWith('gatehouse.db')), `${when}: the data directory holds the log: ${files}`);
    assert.ok(auditFiles(g.dataDir).length >= 1, `${when}: and the audit trail`);
    for (const s of secretsOfGw(g)) {
        const hits = filesContaining(g.dataDir, s);
        assert.deepEqual(hits, [], `${when}: ${s.slice(0, 14)}... found in ${hits.map((h) => `${h.file}@${h.offset}`)}`);
    }
}

let marker;

test('no key in any file under the data directory while gatehouse runs (WAL included)', async () => {
    marker = `marker${crypto.randomBytes(6).toString('hex')}`;
    const id = rid('amark');
    const res = await gw.post('/v1/chat/completions', ask('ak/gpt-rot', `remember ${marker}`), { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    await waitForRow(gw, id, TOKEN);
    await recordsOf(gw, id);
    // the search is not vacuous: what was written is in these files
    assert.ok(filesContaining(gw.dataDir, marker).length >= 2, `the marker is in the log and the trail: ${filesUnder(gw.dataDir)}`);
    assert.ok(filesUnder(gw.dataDir).some((f) => f.endsWith('gatehouse.db-wal')), `the WAL file is among the files searched: ${filesUnder(gw.dataDir)}`);
    assertNoSecretOnDisk(gw, 'running');
});

test('after a clean SIGTERM shutdown: no key in any file under the data directory', async () => {
    const res = await checkShutdown(gw);
    assert.ok(!res.stderr.includes(TOKEN));
    assert.ok(filesContaining(gw.dataDir, marker).length >= 2, `the marker is in the log and the trail: ${filesUnder(gw.dataDir)}`);
    assertNoSecretOnDisk(gw, 'stopped');
    const v = await runGatehouse(['audit', 'verify', gw.dataDir]);
    assert.equal(v.code, 0, `the trail is intact after shutdown: ${v.stdout}${v.stderr}`);
});

// ---- per-request opt-in ---------------------------------------------------------------------------

test('audit.enabled off: only the request with x-gatehouse-audit: true is recorded', async () => {
    const g = await startGateway({
        replay,
        keepDir: true,
        sections: { audit: { enabled: false } },
        providers: [provider('oi', { family: 'openai', baseUrl: replay.fixtureUrl('openai', 'chat_text', 2), keys: [{ name: 'oi-key' }] })],
    });
    try {
        const ids = { before: rid('obefore'), opted: rid('oopted'), no: rid('ono'), after: rid('oafter') };
        const prefix = replay.pathOf(g.config.providers.oi.network_config.base_url);
        const n = replay.received(prefix).length;
        const send = (id, headers = {}) => g.post('/v1/chat/completions', ask('oi/gpt-4o-mini', `opt in? ${id}`), { 'x-request-id': id, ...headers });
        assert.equal((await send(ids.before)).status, 200);
        assert.equal((await send(ids.opted, { 'x-gatehouse-audit': 'true' })).status, 200);
        assert.equal((await send(ids.no, { 'x-gatehouse-audit': 'false' })).status, 200);
        assert.equal((await send(ids.after)).status, 200);
        const up = replay.received(prefix).slice(n);
        assert.equal(up.length, 4);
        const [r] = await recordsOf(g, ids.opted);
        assertExchange(r.rec, up[1], sentBody(rec.chat), 200, 'oi');
        await checkShutdown(g); // the writer drains its queue before it stops
        const all = auditRecords(g.dataDir);
        assert.deepEqual(all.map((x) => x.rec.request_id), [ids.opted]);
        assert.equal(all[0].rec.seq, 1);
        const v = await runGatehouse(['audit', 'verify', g.dataDir]);
        assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
        await g.stop();
        fs.rmSync(g.dir, { recursive: true, force: true });
    }
});

// ---- audit.content false ------------------------------------------------------------------------

test('audit.content false: SHA-256 and length of the bytes sent and received, no body text', async () => {
    const g = await startGateway({
        replay,
        keepDir: true,
        sections: { audit: { enabled: true, content: false } },
        providers: [
            provider('hc', { family: 'openai', baseUrl: replay.fixtureUrl('openai', 'chat_text', 3), keys: [{ name: 'hc-key' }] }),
            provider('hs', { family: 'openai', baseUrl: replay.fixtureUrl('openai', 'stream_text', 1), keys: [{ name: 'hs-key' }] }),
        ],
    });
    try {
        const word = `hashonly${crypto.randomBytes(6).toString('hex')}`;
        const cases = [
            { id: rid('hjson'), prov: 'hc', it: rec.chat, stream: false },
            { id: rid('hstream'), prov: 'hs', it: rec.stream, stream: true },
        ];
        for (const c of cases) {
            const prefix = replay.pathOf(g.config.providers[c.prov].network_config.base_url);
            const n = replay.received(prefix).length;
            const body = ask(`${c.prov}/gpt-4o-mini`, `hash me ${word}`, c.stream ? { stream: true } : {});
            const res = await g.post('/v1/chat/completions', body, { 'x-request-id': c.id });
            assert.equal(res.status, 200, res.text);
            const up = replay.received(prefix).slice(n);
            assert.equal(up.length, 1);
            const [r] = await recordsOf(g, c.id);
            const reqBytes = Buffer.from(up[0].body, 'utf8');
            assert.deepEqual(r.rec.req_body, { sha256: sha256hex(reqBytes), bytes: reqBytes.length });
            const respBytes = Buffer.from(sentBody(c.it), 'utf8');
            assert.deepEqual(r.rec.resp_body, { sha256: sha256hex(respBytes), bytes: respBytes.length });
        }
        await checkShutdown(g);
        assert.deepEqual(filesContaining(path.join(g.dataDir, 'audit'), word), [], 'no body text in the trail');
        for (const s of g.secrets) assert.deepEqual(filesContaining(g.dataDir, s), [], `key ${s.slice(0, 14)}... on disk`);
        const v = await runGatehouse(['audit', 'verify', g.dataDir]);
        assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
        await g.stop();
        fs.rmSync(g.dir, { recursive: true, force: true });
    }
});
