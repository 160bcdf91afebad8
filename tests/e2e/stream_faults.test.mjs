// stream_faults.test.mjs - streams that go wrong: an upstream that dies mid-stream, an upstream
// error event, a stream that ends without its end marker, a silent upstream, and a client that
// leaves mid-stream (gatehouse must cancel its upstream request).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, provider, checkShutdown, collectStream, readSseBody, sleep } from './harness.mjs';
import { mockReplyText } from '../replay/server.mjs';
import { fixture, expectAnthropicStream } from './recorded.mjs';

let gw;
const urls = {};

before(async () => {
    gw = await startGateway({
        providers: (r) => {
            urls.oa = r.mockUrl('openai', 'oa');
            urls.an = r.mockUrl('anthropic', 'an');
            urls.anerr = r.fixtureUrl('anthropic', 'stream_error', 0);
            urls.idle = r.mockUrl('openai', 'idle');
            return [
                provider('oa', { family: 'openai', baseUrl: urls.oa }),
                provider('an', { family: 'anthropic', baseUrl: urls.an }),
                provider('anerr', { family: 'anthropic', baseUrl: urls.anerr }),
                provider('idle', { family: 'openai', baseUrl: urls.idle, timeout: 1 }),
            ];
        },
    });
});

after(async () => {
    if (gw) await gw.stop();
});

const LONG = 'one two three four five six seven eight nine ten';

function streamBody(model, text = LONG, extra = {}) {
    return { model, stream: true, max_tokens: 256, messages: [{ role: 'user', content: text }], ...extra };
}

async function rawStream(body, signal) {
    return fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
    });
}

/** Asserts an SSE body that ends with one error event and never says [DONE]. */
function assertErrorEnding(sse, what) {
    const data = sse.events.map((e) => e.data);
    assert.ok(!data.includes('[DONE]'), `${what}: no [DONE] after a broken stream; events: ${JSON.stringify(data)}`);
    const last = data.at(-1);
    let parsed = null;
    try {
        parsed = JSON.parse(last);
    } catch {
        parsed = null;
    }
    assert.ok(parsed && parsed.error && typeof parsed.error.message === 'string' && parsed.error.message.length > 0,
        `${what}: the last event is an error object: ${last}`);
    const errors = data.filter((d) => d !== null && d.startsWith('{"error"'));
    assert.equal(errors.length, 1, `${what}: exactly one error event`);
    return parsed.error;
}

function contentOf(sse) {
    let text = '';
    for (const e of sse.events) {
        if (!e.data || e.data === '[DONE]') continue;
        const c = JSON.parse(e.data);
        for (const ch of c.choices ?? []) if (typeof ch.delta?.content === 'string') text += ch.delta.content;
    }
    return text;
}

test('OpenAI upstream dies mid-stream: the client gets what arrived, then an error event, no [DONE]', async () => {
    gw.replay.script({ prefix: gw.replay.pathOf(urls.oa), cutAfter: 4, times: 1 });
    const body = streamBody('oa/gpt-cut');
    const res = await rawStream(body);
    assert.equal(res.status, 200, 'the stream had started');
    const sse = await readSseBody(res);
    assertErrorEnding(sse, 'cut OpenAI stream');
    const got = contentOf(sse);
    assert.ok(got.length > 0, 'the chunks before the cut were delivered');
    assert.ok(mockReplyText(body).startsWith(got) && got !== mockReplyText(body), `partial content: ${JSON.stringify(got)}`);
});

test('the official client\'s iterator throws on a cut stream', async () => {
    gw.replay.script({ prefix: gw.replay.pathOf(urls.oa), cutAfter: 3, times: 1 });
    const got = await collectStream(await gw.client().chat.completions.create(streamBody('oa/gpt-cut')));
    assert.ok(got.error, 'iteration raised an error');
    assert.equal(got.finishReason, null, 'no finish_reason was seen');
});

test('Anthropic upstream dies mid-stream: error event, no [DONE]', async () => {
    gw.replay.script({ prefix: gw.replay.pathOf(urls.an), cutAfter: 5, times: 1 });
    const res = await rawStream(streamBody('an/claude-cut'));
    assert.equal(res.status, 200);
    const sse = await readSseBody(res);
    assertErrorEnding(sse, 'cut Anthropic stream');
});

test('an Anthropic error event inside the stream becomes an error event for the client', async () => {
    const rec = expectAnthropicStream(fixture('anthropic', 'stream_error').interactions[0].response);
    const res = await rawStream(streamBody('anerr/claude-3-5-haiku-latest', 'hi'));
    assert.equal(res.status, 200);
    const sse = await readSseBody(res);
    const err = assertErrorEnding(sse, 'Anthropic error event');
    assert.ok(err.message.includes(rec.error.message), `message carries the upstream's: ${err.message}`);
    assert.equal(contentOf(sse), rec.text, 'text before the error was delivered');
});

test('an OpenAI stream that ends cleanly but without [DONE] is reported as broken', async () => {
    const chunk = (delta, finish = null) =>
        `data: ${JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    gw.replay.script({
        prefix: gw.replay.pathOf(urls.oa),
        status: 200,
        times: 1,
        headers: { 'content-type': 'text/event-stream' },
        body: chunk({ role: 'assistant', content: '' }) + chunk({ content: 'half an ans' }),
    });
    const res = await rawStream(streamBody('oa/gpt-nodone'));
    const sse = await readSseBody(res);
    assertErrorEnding(sse, 'stream without [DONE]');
    assert.equal(contentOf(sse), 'half an ans');
});

test('an Anthropic stream that ends without message_stop is reported as broken', async () => {
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    gw.replay.script({
        prefix: gw.replay.pathOf(urls.an),
        status: 200,
        times: 1,
        headers: { 'content-type': 'text/event-stream' },
        body:
            ev('message_start', { message: { id: 'msg_x', type: 'message', role: 'assistant', model: 'c', content: [], stop_reason: null, usage: { input_tokens: 3, output_tokens: 1 } } }) +
            ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) +
            ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'unfinished' } }),
    });
    const res = await rawStream(streamBody('an/claude-nostop'));
    const sse = await readSseBody(res);
    assertErrorEnding(sse, 'stream without message_stop');
    assert.equal(contentOf(sse), 'unfinished');
});

test('an upstream that goes silent mid-stream is ended by the timeout with an error event', async () => {
    gw.replay.script({ prefix: gw.replay.pathOf(urls.idle), hangAfter: 3, times: 1 });
    const t0 = Date.now();
    const res = await rawStream(streamBody('idle/gpt-silent'), AbortSignal.timeout(20000));
    const sse = await readSseBody(res);
    assert.equal(sse.error, null, `the gateway ended the stream itself (client-side: ${sse.error})`);
    assertErrorEnding(sse, 'silent upstream');
    assert.ok(Date.now() - t0 < 15000, `ended after ${Date.now() - t0} ms with a 1 s timeout`);
    const closed = await gw.replay.waitFor(() => gw.replay.clientClosed(gw.replay.pathOf(urls.idle)) >= 1, 3000);
    assert.ok(closed, 'the silent upstream connection was closed by gatehouse');
});

test('a client that disconnects mid-stream: gatehouse closes the upstream request', async () => {
    const prefix = gw.replay.pathOf(urls.oa);
    const closedBefore = gw.replay.clientClosed(prefix);
    gw.replay.script({ prefix, hangAfter: 3, times: 1 });
    const ac = new AbortController();
    const res = await rawStream(streamBody('oa/gpt-leave'), ac.signal);
    assert.equal(res.status, 200);
    const reader = res.body.getReader();
    let text = '';
    while (!text.includes('"content"')) {
        const { value, done } = await reader.read();
        assert.ok(!done, 'the stream delivered its first chunks');
        text += new TextDecoder().decode(value);
    }
    ac.abort();
    const closed = await gw.replay.waitFor(() => gw.replay.clientClosed(prefix) > closedBefore, 3000);
    assert.ok(closed, `the upstream connection was not closed within 3 s; stats: ${JSON.stringify(gw.replay.stats())}`);
});

test('a client that disconnects while waiting for the upstream head: upstream cancelled too', async () => {
    const prefix = gw.replay.pathOf(urls.an);
    const closedBefore = gw.replay.clientClosed(prefix);
    const n = gw.replay.received(prefix).length;
    gw.replay.script({ prefix, delayMs: 8000, times: 1 });
    const ac = new AbortController();
    const pending = rawStream(streamBody('an/claude-slow'), ac.signal).catch((e) => e);
    await gw.replay.waitFor(() => gw.replay.received(prefix).length > n, 3000);
    await sleep(100);
    ac.abort();
    await pending;
    const closed = await gw.replay.waitFor(() => gw.replay.clientClosed(prefix) > closedBefore, 3000);
    assert.ok(closed, `the upstream connection was not closed within 3 s; stats: ${JSON.stringify(gw.replay.stats())}`);
});

test('a non-streaming client that disconnects: upstream cancelled', async () => {
    const prefix = gw.replay.pathOf(urls.oa);
    const closedBefore = gw.replay.clientClosed(prefix);
    const n = gw.replay.received(prefix).length;
    gw.replay.script({ prefix, delayMs: 8000, times: 1 });
    const ac = new AbortController();
    const pending = gw.client().chat.completions.create({ model: 'oa/gpt-json', messages: [{ role: 'user', content: 'x' }] }, { signal: ac.signal }).catch((e) => e);
    await gw.replay.waitFor(() => gw.replay.received(prefix).length > n, 3000);
    ac.abort();
    await pending;
    const closed = await gw.replay.waitFor(() => gw.replay.clientClosed(prefix) > closedBefore, 3000);
    assert.ok(closed, 'the upstream connection was closed');
});

test('after all that the gateway still answers, streaming and not', async () => {
    const body = streamBody('oa/gpt-after', 'still alive');
    const got = await collectStream(await gw.client().chat.completions.create(body));
    assert.equal(got.error, null);
    assert.equal(got.content, mockReplyText(body));
    const h = await gw.get('/health');
    assert.equal(h.status, 200);
});

test('gatehouse shuts down cleanly on SIGTERM', async () => {
    await checkShutdown(gw);
});
