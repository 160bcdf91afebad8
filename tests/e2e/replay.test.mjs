// replay.test.mjs - the replay server itself, without gatehouse: the e2e suite is only as good
// as its fake upstream, so its routing, streaming and faults are checked here first.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

import { startReplay, fixturesDir, splitSseEvents, parseSse, mockReplyText } from '../replay/server.mjs';
import { fixture, bodyText, expectOpenAIStream } from './recorded.mjs';
import { needCassettes } from './harness.mjs';

let r;
before(async () => {
    r = await startReplay({ port: 0, eventDelayMs: 3 });
});
after(async () => {
    await r.close();
});

async function post(url, body, init = {}) {
    const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: typeof body === 'string' ? body : JSON.stringify(body),
        ...init,
    });
    return res;
}

// Raw request with node:http so that chunk arrival and socket events are visible.
function rawPost(url, body) {
    return new Promise((resolve, reject) => {
        const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
            const pieces = [];
            let aborted = false;
            res.on('data', (d) => pieces.push(d.toString('utf8')));
            res.on('aborted', () => {
                aborted = true;
            });
            res.on('error', () => {
                aborted = true;
            });
            res.on('close', () => resolve({ status: res.statusCode, headers: res.headers, pieces, aborted, complete: res.complete }));
        });
        req.on('error', reject);
        req.end(JSON.stringify(body));
    });
}

test('every e2e fixture is a valid recording', () => {
    const dir = fixturesDir();
    const files = [];
    for (const g of fs.readdirSync(dir)) {
        for (const f of fs.readdirSync(path.join(dir, g))) if (f.endsWith('.json')) files.push(`${g}/${f}`);
    }
    assert.ok(files.length >= 10, `expected the e2e fixtures, found ${files.length}: ${files.join(', ')}`);
    for (const f of files) {
        const rec = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
        assert.ok(Array.isArray(rec.interactions) && rec.interactions.length > 0, `${f}: interactions`);
        for (const it of rec.interactions) {
            assert.equal(typeof it.request.uri, 'string', `${f}: request.uri`);
            assert.equal(typeof it.response.status, 'number', `${f}: response.status`);
            const ct = it.response.headers['content-type'];
            if (/event-stream/.test(ct)) {
                const events = parseSse(it.response.body.text);
                assert.ok(events.length > 2, `${f}: SSE body has events`);
                for (const ev of events) {
                    if (ev.data !== '[DONE]') JSON.parse(ev.data); // every data line is JSON
                }
            } else {
                assert.ok('json' in it.response.body, `${f}: JSON body`);
            }
        }
    }
});

test('fixture route: the Nth request gets the Nth interaction, then wraps around', async () => {
    const base = r.fixtureUrl('openai', 'chat_tool_call');
    const rec = fixture('openai', 'chat_tool_call');
    const got = [];
    for (let i = 0; i < 3; i++) {
        const res = await post(`${base}/v1/chat/completions`, { model: 'x', messages: [] });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'application/json');
        got.push(await res.json());
    }
    assert.deepEqual(got[0], rec.interactions[0].response.body.json);
    assert.deepEqual(got[1], rec.interactions[1].response.body.json);
    assert.deepEqual(got[2], rec.interactions[0].response.body.json, 'third request wraps to interaction 0');
    const rx = r.received(r.pathOf(base));
    assert.deepEqual(rx.map((x) => x.interaction), [0, 1, 0]);
    assert.deepEqual(rx[0].json, { model: 'x', messages: [] });
});

test('a pinned route always answers the same interaction', async () => {
    const base = r.fixtureUrl('openai', 'chat_tool_call', 1);
    const rec = fixture('openai', 'chat_tool_call');
    for (let i = 0; i < 2; i++) {
        const res = await post(`${base}/v1/chat/completions`, {});
        assert.deepEqual(await res.json(), rec.interactions[1].response.body.json);
    }
});

test('SSE bodies are streamed in pieces, event by event, byte-identical overall', async () => {
    const base = r.fixtureUrl('openai', 'stream_text', 0);
    const rec = fixture('openai', 'stream_text');
    const res = await rawPost(`${base}/v1/chat/completions`, { stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /text\/event-stream/);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.pieces.join(''), bodyText(rec.interactions[0].response));
    const events = splitSseEvents(bodyText(rec.interactions[0].response)).length;
    assert.ok(res.pieces.length > events / 2, `expected the body in many pieces (events: ${events}), got ${res.pieces.length}`);
});

test('mock openai: JSON answer echoes the last user message', async () => {
    const body = { model: 'm1', messages: [{ role: 'user', content: 'first' }, { role: 'assistant', content: 'x' }, { role: 'user', content: [{ type: 'text', text: 'second one' }] }] };
    const res = await post(`${r.mockUrl('openai', 'j')}/v1/chat/completions`, body);
    const j = await res.json();
    assert.equal(res.status, 200);
    assert.equal(j.object, 'chat.completion');
    assert.equal(j.model, 'm1');
    assert.equal(j.choices[0].message.content, 'echo: second one');
    assert.equal(j.choices[0].finish_reason, 'stop');
    assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
});

test('mock openai: stream ends with [DONE], usage chunk only with include_usage', async () => {
    for (const include of [false, true]) {
        const body = { model: 'm2', stream: true, messages: [{ role: 'user', content: 'stream me please' }] };
        if (include) body.stream_options = { include_usage: true };
        const res = await post(`${r.mockUrl('openai')}/v1/chat/completions`, body);
        const text = await res.text();
        const events = parseSse(text);
        assert.equal(events.at(-1).data, '[DONE]');
        const got = expectOpenAIStream({ body: { text } });
        assert.equal(got.content, mockReplyText(body));
        assert.equal(got.finishReason, 'stop');
        assert.equal(got.usage !== null, include, `usage chunk present: ${got.usage !== null}, include_usage: ${include}`);
    }
});

test('mock anthropic: JSON and SSE Messages answers', async () => {
    const body = { model: 'c1', max_tokens: 10, messages: [{ role: 'user', content: 'hello claude' }] };
    const j = await (await post(`${r.mockUrl('anthropic')}/v1/messages`, body)).json();
    assert.equal(j.type, 'message');
    assert.deepEqual(j.content, [{ type: 'text', text: 'echo: hello claude' }]);
    assert.equal(j.stop_reason, 'end_turn');
    const text = await (await post(`${r.mockUrl('anthropic')}/v1/messages`, { ...body, stream: true })).text();
    const types = parseSse(text).map((e) => e.event);
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    const deltas = parseSse(text)
        .filter((e) => e.event === 'content_block_delta')
        .map((e) => JSON.parse(e.data).delta.text)
        .join('');
    assert.equal(deltas, 'echo: hello claude');
});

test('faults: status for the next K requests, then the normal answer', async () => {
    const base = r.mockUrl('openai', 'faulty');
    r.script({ prefix: r.pathOf(base), times: 2, status: 503, body: { error: { message: 'try later' } }, headers: { 'retry-after': '1' } });
    const statuses = [];
    for (let i = 0; i < 3; i++) {
        const res = await post(`${base}/v1/chat/completions`, { model: 'm', messages: [{ role: 'user', content: 'q' }] });
        statuses.push(res.status);
        if (res.status === 503) {
            assert.equal(res.headers.get('retry-after'), '1');
            assert.equal((await res.json()).error.message, 'try later');
        } else {
            await res.arrayBuffer();
        }
    }
    assert.deepEqual(statuses, [503, 503, 200]);
    assert.equal(r.pendingScripts().length, 0);
});

test('faults do not consume recorded interactions', async () => {
    const base = r.fixtureUrl('openai', 'chat_tool_call');
    r.reset();
    r.script({ prefix: r.pathOf(base), status: 500 });
    const a = await post(`${base}/v1/chat/completions`, {});
    assert.equal(a.status, 500);
    await a.arrayBuffer();
    const b = await post(`${base}/v1/chat/completions`, {});
    assert.deepEqual(await b.json(), fixture('openai', 'chat_tool_call').interactions[0].response.body.json);
});

test('faults: reset closes the connection without an answer', async () => {
    const base = r.mockUrl('openai', 'reset');
    r.script({ prefix: r.pathOf(base), reset: true });
    await assert.rejects(post(`${base}/v1/chat/completions`, {}), /fetch failed|socket|other side closed/i);
});

test('faults: cutAfter ends a stream mid-way without the chunked terminator', async () => {
    const base = r.fixtureUrl('openai', 'stream_text', 0);
    r.script({ prefix: r.pathOf(base), cutAfter: 2 });
    const res = await rawPost(`${base}/v1/chat/completions`, {});
    assert.equal(res.status, 200);
    assert.equal(res.complete, false, 'response must not be complete');
    const events = parseSse(res.pieces.join(''));
    assert.equal(events.length, 2, `events before the cut: ${JSON.stringify(events)}`);
    assert.equal(r.clientClosed(r.pathOf(base)), 0, 'a scripted cut is not a client disconnect');
});

test('faults: hangAfter keeps the stream open; a client that leaves is counted', async () => {
    const base = r.mockUrl('openai', 'hang');
    r.script({ prefix: r.pathOf(base), hangAfter: 2 });
    const ac = new AbortController();
    const res = await post(`${base}/v1/chat/completions`, { model: 'm', stream: true, messages: [{ role: 'user', content: 'a b c d e' }] }, { signal: ac.signal });
    const reader = res.body.getReader();
    let text = '';
    while (parseSse(text).length < 2) {
        const { value } = await reader.read();
        text += new TextDecoder().decode(value);
    }
    assert.equal(r.clientClosed(r.pathOf(base)), 0);
    ac.abort();
    const n = await r.waitFor(() => r.clientClosed(r.pathOf(base)), 3000);
    assert.equal(n, 1, 'the abandoned response is counted once');
    const rx = r.received(r.pathOf(base));
    assert.equal(rx.at(-1).clientClosed, true);
});

test('faults: delayMs holds the response head', async () => {
    const base = r.mockUrl('openai', 'slow');
    r.script({ prefix: r.pathOf(base), delayMs: 300 });
    const t0 = Date.now();
    const res = await post(`${base}/v1/chat/completions`, { model: 'm', messages: [] });
    await res.arrayBuffer();
    assert.ok(Date.now() - t0 >= 250, `answer came after ${Date.now() - t0} ms`);
});

test('control API over HTTP: script, received, stats, reset', async () => {
    const base = r.mockUrl('anthropic', 'ctl');
    let res = await post(`${r.url}/__replay/script`, { prefix: r.pathOf(base), status: 429, body: { type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    res = await post(`${base}/v1/messages`, { model: 'c', messages: [] }, { headers: { 'content-type': 'application/json', 'x-api-key': 'k1' } });
    assert.equal(res.status, 429);
    assert.equal((await res.json()).error.message, 'slow down');
    const rx = await (await fetch(`${r.url}/__replay/received?prefix=${encodeURIComponent(r.pathOf(base))}`)).json();
    assert.equal(rx.length, 1);
    assert.equal(rx[0].method, 'POST');
    assert.equal(rx[0].headers['x-api-key'], 'k1');
    assert.deepEqual(rx[0].json, { model: 'c', messages: [] });
    const stats = await (await fetch(`${r.url}/__replay/stats`)).json();
    assert.ok(stats.requests >= 1);
    res = await post(`${r.url}/__replay/reset`, {});
    await res.arrayBuffer();
    assert.equal(r.received().length, 0);
    res = await post(`${r.url}/__replay/script`, { nope: 1 });
    assert.equal(res.status, 400);
    await res.arrayBuffer();
});

test('unknown routes and missing recordings answer 404 with a reason', async () => {
    let res = await post(`${r.url}/elsewhere/v1/chat/completions`, {});
    assert.equal(res.status, 404);
    assert.match((await res.json()).error.message, /no route/);
    res = await post(`${r.fixtureUrl('openai', 'no_such_fixture')}/v1/chat/completions`, {});
    assert.equal(res.status, 404);
    assert.match((await res.json()).error.message, /no_such_fixture/);
    res = await post(`${r.fixtureUrl('openai', 'chat_text')}/v1/messages`, {});
    assert.equal(res.status, 404, 'an OpenAI recording has no /messages interaction');
    assert.match((await res.json()).error.message, /no interaction for \/messages/);
});

test('cassette route serves a recorded exchange by endpoint', { skip: needCassettes('openai/test_document_url_input') }, async () => {
    // This cassette first recorded a document download, then the chat call: only the latter is a
    // candidate for /v1/chat/completions.
    const base = r.cassetteUrl('openai', 'test_document_url_input');
    const res = await post(`${base}/v1/chat/completions`, {});
    assert.equal(res.status, 200);
    const j = await res.json();
    assert.equal(j.object, 'chat.completion');
    assert.equal(r.received(r.pathOf(base)).at(-1).interaction, 1);
});
