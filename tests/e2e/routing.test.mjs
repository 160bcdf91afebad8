// routing.test.mjs - retries, fallbacks, key rotation and per-provider concurrency, against the
// replay server's mock upstreams with scripted faults.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, startReplay, provider, checkShutdown, collectStream, freePort, OpenAI } from './harness.mjs';
import { mockReplyText } from '../replay/server.mjs';
import { assertErrorShape } from './checks.mjs';

let gw;
let replay;
const urls = {};

before(async () => {
    replay = await startReplay({ port: 0 });
    const deadPort = await freePort(); // nothing listens there: connection refused
    urls.prim = replay.mockUrl('openai', 'prim');
    urls.fb1 = replay.mockUrl('anthropic', 'fb1');
    urls.fb2 = replay.mockUrl('openai', 'fb2');
    urls.rot = replay.mockUrl('openai', 'rot');
    urls.auth = replay.mockUrl('openai', 'auth');
    urls.net = replay.mockUrl('openai', 'net');
    urls.lim = replay.mockUrl('openai', 'lim');
    urls.dead = `http://127.0.0.1:${deadPort}/nowhere`;
    urls.allow = replay.mockUrl('openai', 'allow');
    urls.weighted = replay.mockUrl('openai', 'weighted');
    urls.queue = replay.mockUrl('openai', 'queue');
    gw = await startGateway({
        replay,
        client: { drop_excess_requests: true },
        providers: [
            provider('prim', { family: 'openai', baseUrl: urls.prim, maxRetries: 2, keys: [{ name: 'prim-key' }] }),
            provider('fb1', { family: 'anthropic', baseUrl: urls.fb1, maxRetries: 0, keys: [{ name: 'fb1-key' }] }),
            provider('fb2', { family: 'openai', baseUrl: urls.fb2, maxRetries: 0, keys: [{ name: 'fb2-key' }] }),
            provider('rot', { family: 'openai', baseUrl: urls.rot, maxRetries: 2, keys: [{ name: 'rot-a' }, { name: 'rot-b' }] }),
            provider('auth', { family: 'openai', baseUrl: urls.auth, maxRetries: 1, keys: [{ name: 'auth-a' }, { name: 'auth-b' }] }),
            provider('net', { family: 'openai', baseUrl: urls.net, maxRetries: 1 }),
            provider('lim', { family: 'openai', baseUrl: urls.lim, concurrency: 1, bufferSize: 0 }),
            provider('dead', { family: 'openai', baseUrl: urls.dead, maxRetries: 1 }),
            provider('allow', { family: 'openai', baseUrl: urls.allow, keys: [{ name: 'only-m1', models: ['m1'] }, { name: 'any-model' }] }),
            provider('weighted', { family: 'openai', baseUrl: urls.weighted, keys: [{ name: 'heavy', weight: 9 }, { name: 'light', weight: 1 }] }),
            provider('queue', { family: 'openai', baseUrl: urls.queue, concurrency: 1, bufferSize: 1 }),
        ],
    });
});

after(async () => {
    if (gw) await gw.stop();
    await replay.close();
});

const count = (url) => replay.received(replay.pathOf(url)).length;
const since = (url, n) => replay.received(replay.pathOf(url)).slice(n);

function ask(text, extra = {}) {
    return { messages: [{ role: 'user', content: text }], ...extra };
}

async function chat(body, headers = {}) {
    return gw.post('/v1/chat/completions', body, headers);
}

const keyValue = (prov, name) => gw.config.providers[prov].keys.find((k) => k.name === name).value;
const keyNameOfAuth = (prov, auth) => gw.config.providers[prov].keys.find((k) => `Bearer ${k.value}` === auth)?.name;

test('a 500 is retried on the same provider, then the answer comes from it', async () => {
    const n = count(urls.prim);
    replay.script({ prefix: replay.pathOf(urls.prim), status: 500, times: 1 });
    const body = ask('retry after a 500', { model: 'prim/gpt-prim' });
    const res = await chat(body);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, mockReplyText(body));
    assert.equal(count(urls.prim) - n, 2, 'one failed attempt, one retry');
    assert.equal(res.headers.get('x-gatehouse-provider'), 'prim');
    assert.equal(res.headers.get('x-gatehouse-fallback-index'), '0');
    assert.equal(res.headers.get('x-gatehouse-retries'), '1');
});

test('after its retries the primary falls back to the first fallback (Anthropic upstream)', async () => {
    const n = { prim: count(urls.prim), fb1: count(urls.fb1), fb2: count(urls.fb2) };
    replay.script({ prefix: replay.pathOf(urls.prim), status: 503, times: 3 });
    const body = ask('fall back to claude', { model: 'prim/gpt-prim', fallbacks: ['fb1/claude-fallback', 'fb2/gpt-fb2'] });
    const res = await chat(body);
    assert.equal(res.status, 200, res.text);
    assert.equal(count(urls.prim) - n.prim, 3, 'first attempt + max_retries (2)');
    assert.equal(count(urls.fb1) - n.fb1, 1);
    assert.equal(count(urls.fb2) - n.fb2, 0, 'the second fallback is not tried');
    assert.equal(res.headers.get('x-gatehouse-provider'), 'fb1');
    assert.equal(res.headers.get('x-gatehouse-model'), 'claude-fallback');
    assert.equal(res.headers.get('x-gatehouse-fallback-index'), '1');
    assert.equal(res.headers.get('x-gatehouse-key'), 'fb1-key');
    assert.equal(res.json.choices[0].message.content, mockReplyText(body));
    const up = since(urls.fb1, n.fb1)[0];
    assert.ok(up.path.endsWith('/v1/messages'), up.path);
    assert.equal(up.json.model, 'claude-fallback');
    assert.equal(up.json.fallbacks, undefined, 'gateway-only fields are not sent upstream');
    assert.equal(up.headers['x-api-key'], keyValue('fb1', 'fb1-key'));
});

test('fallbacks are tried in order: the second answers when the first fails too', async () => {
    const n = { prim: count(urls.prim), fb1: count(urls.fb1), fb2: count(urls.fb2) };
    replay.script({ prefix: replay.pathOf(urls.prim), status: 502, times: 3 });
    replay.script({ prefix: replay.pathOf(urls.fb1), status: 529, times: 1, body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } });
    const body = ask('third time lucky', { model: 'prim/gpt-prim', fallbacks: ['fb1/claude-fallback', 'fb2/gpt-fb2'] });
    const res = await chat(body);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual([count(urls.prim) - n.prim, count(urls.fb1) - n.fb1, count(urls.fb2) - n.fb2], [3, 1, 1]);
    assert.equal(res.headers.get('x-gatehouse-provider'), 'fb2');
    assert.equal(res.headers.get('x-gatehouse-model'), 'gpt-fb2');
    assert.equal(res.headers.get('x-gatehouse-fallback-index'), '2');
    assert.equal(since(urls.fb2, n.fb2)[0].json.model, 'gpt-fb2');
});

test('when every model fails, the client gets the last failure with its status and message', async () => {
    replay.script({ prefix: replay.pathOf(urls.prim), status: 503, times: 3 });
    replay.script({ prefix: replay.pathOf(urls.fb2), status: 502, times: 1, body: { error: { message: 'fb2 is down for maintenance', type: 'server_error' } } });
    const res = await chat(ask('nobody answers', { model: 'prim/gpt-prim', fallbacks: ['fb2/gpt-fb2'] }));
    assert.equal(res.status, 502, res.text);
    const e = assertErrorShape(res, 'all failed');
    assert.ok(e.message.includes('fb2 is down for maintenance'), `message: ${e.message}`);
    assert.ok(res.headers.get('x-request-id'), 'x-request-id on errors too');
});

test('the official client raises APIError with the upstream status when retries are exhausted', async () => {
    replay.script({ prefix: replay.pathOf(urls.prim), status: 503, times: 3, body: { error: { message: 'primary overloaded', type: 'server_error' } } });
    const err = await gw.client().chat.completions.create({ model: 'prim/gpt-prim', messages: [{ role: 'user', content: 'x' }] }).then(() => null, (e) => e);
    assert.ok(err instanceof OpenAI.APIError, `got ${err}`);
    assert.equal(err.status, 503);
    assert.match(err.message, /primary overloaded/);
});

test('a 400 from upstream is returned as it is: no retry, no fallback', async () => {
    const n = { prim: count(urls.prim), fb1: count(urls.fb1) };
    replay.script({
        prefix: replay.pathOf(urls.prim),
        status: 400,
        times: 1,
        body: { error: { message: "Invalid 'messages[0].content': too long.", type: 'invalid_request_error', param: 'messages', code: 'string_above_max_length' } },
    });
    const res = await chat(ask('bad request', { model: 'prim/gpt-prim', fallbacks: ['fb1/claude-fallback'] }));
    assert.equal(res.status, 400, res.text);
    const e = assertErrorShape(res, 'upstream 400');
    assert.ok(e.message.includes("Invalid 'messages[0].content': too long."), `message: ${e.message}`);
    assert.equal(count(urls.prim) - n.prim, 1, 'no retry');
    assert.equal(count(urls.fb1) - n.fb1, 0, 'no fallback');
});

test('a 429 is retried with the other key', async () => {
    const n = count(urls.rot);
    replay.script({ prefix: replay.pathOf(urls.rot), status: 429, times: 1, headers: { 'retry-after': '0' }, body: { error: { message: 'Rate limit reached', type: 'requests' } } });
    const res = await chat(ask('rotate keys', { model: 'rot/gpt-rot' }));
    assert.equal(res.status, 200, res.text);
    const rx = since(urls.rot, n);
    assert.equal(rx.length, 2, 'the 429 and the retry');
    const first = keyNameOfAuth('rot', rx[0].headers.authorization);
    const second = keyNameOfAuth('rot', rx[1].headers.authorization);
    assert.ok(first && second, `both requests carry a configured key: ${first}, ${second}`);
    assert.notEqual(second, first, 'the retry uses the other key');
    assert.equal(res.headers.get('x-gatehouse-key'), second, 'x-gatehouse-key names the key that answered');
});

test('a 401 drops that key for the request; the other key answers', async () => {
    const n = count(urls.auth);
    replay.script({ prefix: replay.pathOf(urls.auth), status: 401, times: 1, body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } } });
    const res = await chat(ask('drop a bad key', { model: 'auth/gpt-auth' }));
    assert.equal(res.status, 200, res.text);
    const rx = since(urls.auth, n);
    assert.equal(rx.length, 2);
    const first = keyNameOfAuth('auth', rx[0].headers.authorization);
    const second = keyNameOfAuth('auth', rx[1].headers.authorization);
    assert.notEqual(second, first, 'the rejected key is not used again');
    assert.equal(res.headers.get('x-gatehouse-key'), second);
});

test('when every key is rejected the client gets 401 or 503, and no key value', async () => {
    const n = count(urls.auth);
    replay.script({ prefix: replay.pathOf(urls.auth), status: 401, times: 4, body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } } });
    const res = await chat(ask('no key works', { model: 'auth/gpt-auth' }));
    replay.clearScripts();
    assert.ok([401, 503].includes(res.status), `status ${res.status}: ${res.text}`);
    assertErrorShape(res, 'no usable key');
    const rx = since(urls.auth, n);
    const used = new Set(rx.map((r) => keyNameOfAuth('auth', r.headers.authorization)));
    assert.deepEqual([...used].sort(), ['auth-a', 'auth-b'], 'both keys were tried, each once');
    assert.equal(rx.length, 2, 'a rejected key is not retried');
    for (const s of gw.secrets) assert.ok(!res.text.includes(s), 'no key value in the error body');
});

test('a network error (connection reset) is retried', async () => {
    const n = count(urls.net);
    replay.script({ prefix: replay.pathOf(urls.net), reset: true, times: 1 });
    const body = ask('survive a reset', { model: 'net/gpt-net' });
    const res = await chat(body);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, mockReplyText(body));
    assert.equal(count(urls.net) - n, 2);
});

test('an unreachable provider falls back after its retries', async () => {
    const n = count(urls.fb2);
    const body = ask('nobody home', { model: 'dead/gpt-dead', fallbacks: ['fb2/gpt-fb2'] });
    const res = await chat(body);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('x-gatehouse-provider'), 'fb2');
    assert.equal(res.headers.get('x-gatehouse-fallback-index'), '1');
    assert.equal(count(urls.fb2) - n, 1);
});

test('an unreachable provider without fallback answers a 5xx error in the OpenAI shape', async () => {
    const res = await chat(ask('nobody home', { model: 'dead/gpt-dead' }));
    assert.ok(res.status >= 500 && res.status < 600, `status ${res.status}: ${res.text}`);
    assertErrorShape(res, 'unreachable');
});

test('streaming: a 500 before the first chunk is retried and the stream completes', async () => {
    const n = count(urls.prim);
    replay.script({ prefix: replay.pathOf(urls.prim), status: 500, times: 1 });
    const body = { model: 'prim/gpt-prim', stream: true, messages: [{ role: 'user', content: 'stream after a retry' }] };
    const got = await collectStream(await gw.client().chat.completions.create(body));
    assert.equal(got.error, null, `stream error: ${got.error}`);
    assert.equal(got.content, mockReplyText(body));
    assert.equal(got.finishReason, 'stop');
    assert.equal(count(urls.prim) - n, 2);
});

test('streaming: a stream cut before any chunk reached the client is retried', async () => {
    const n = count(urls.prim);
    replay.script({ prefix: replay.pathOf(urls.prim), cutAfter: 0, times: 1 });
    const body = { model: 'prim/gpt-prim', stream: true, messages: [{ role: 'user', content: 'cut before anything' }] };
    const got = await collectStream(await gw.client().chat.completions.create(body));
    assert.equal(got.error, null, `stream error: ${got.error}`);
    assert.equal(got.content, mockReplyText(body));
    assert.equal(count(urls.prim) - n, 2);
});

test('streaming: fallback to an Anthropic upstream streams the translated answer', async () => {
    replay.script({ prefix: replay.pathOf(urls.prim), status: 503, times: 3 });
    const body = { model: 'prim/gpt-prim', stream: true, fallbacks: ['fb1/claude-fallback'], messages: [{ role: 'user', content: 'stream from claude' }] };
    const { data, response } = await gw.client().chat.completions.create(body).withResponse();
    const got = await collectStream(data);
    assert.equal(got.error, null, `stream error: ${got.error}`);
    assert.equal(response.headers.get('x-gatehouse-provider'), 'fb1');
    assert.equal(response.headers.get('x-gatehouse-fallback-index'), '1');
    assert.equal(got.content, mockReplyText(body));
    assert.equal(got.finishReason, 'stop');
});

test('concurrency 1, buffer 0, drop_excess_requests: a second concurrent request gets 429 at once', async () => {
    const n = count(urls.lim);
    replay.script({ prefix: replay.pathOf(urls.lim), delayMs: 1500, times: 1 });
    let aDone = null;
    const a = chat(ask('slow one', { model: 'lim/gpt-lim' })).then((r) => {
        aDone = Date.now();
        return r;
    });
    const arrived = await replay.waitFor(() => count(urls.lim) > n, 5000);
    assert.ok(arrived, 'the first request reached the upstream');
    const b = await chat(ask('excess', { model: 'lim/gpt-lim' }));
    const bDone = Date.now();
    assert.equal(b.status, 429, b.text);
    const e = assertErrorShape(b, 'queue full');
    assert.ok(e.message.includes('lim'), `message names the provider: ${e.message}`);
    assert.equal(aDone, null, 'the 429 came while the first request was still in flight');
    const ra = await a;
    assert.ok(aDone >= bDone);
    assert.equal(ra.status, 200, ra.text);
    assert.equal(count(urls.lim) - n, 1, 'the rejected request never reached the upstream');
    // The slot is free again.
    const c = await chat(ask('after', { model: 'lim/gpt-lim' }));
    assert.equal(c.status, 200, c.text);
});

test('concurrency 1, buffer 1: one request waits for the slot, the next one gets 429', async () => {
    const n = count(urls.queue);
    replay.script({ prefix: replay.pathOf(urls.queue), delayMs: 1500, times: 1 });
    const a = chat(ask('first', { model: 'queue/gpt-q' }));
    assert.ok(await replay.waitFor(() => count(urls.queue) > n, 5000), 'the first request reached the upstream');
    const bBody = ask('second waits', { model: 'queue/gpt-q' });
    const b = chat(bBody);
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the second one take the queue place
    const c = await chat(ask('third is refused', { model: 'queue/gpt-q' }));
    assert.equal(c.status, 429, c.text);
    assert.equal(count(urls.queue) - n, 1, 'only the first request is upstream while it is in flight');
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.status, 200, ra.text);
    assert.equal(rb.status, 200, rb.text);
    assert.equal(rb.json.choices[0].message.content, mockReplyText(bBody));
    assert.equal(count(urls.queue) - n, 2);
});

test('a key whose allow-list excludes the model is never used for it', async () => {
    const n = count(urls.allow);
    const names = [];
    for (let i = 0; i < 12; i++) {
        const res = await chat(ask(`other model ${i}`, { model: 'allow/m2' }));
        assert.equal(res.status, 200, res.text);
        names.push(res.headers.get('x-gatehouse-key'));
    }
    assert.deepEqual([...new Set(names)], ['any-model'], `keys used for m2: ${names}`);
    const auths = new Set(since(urls.allow, n).map((r) => r.headers.authorization));
    assert.deepEqual([...auths], [`Bearer ${keyValue('allow', 'any-model')}`]);
});

test('weighted keys: the heavy key (weight 9 of 10) takes most requests', async () => {
    const used = { heavy: 0, light: 0 };
    for (let i = 0; i < 60; i++) {
        const res = await chat(ask(`w ${i}`, { model: 'weighted/gpt-w' }));
        assert.equal(res.status, 200, res.text);
        used[res.headers.get('x-gatehouse-key')] += 1;
    }
    assert.equal(used.heavy + used.light, 60, `key names seen: ${JSON.stringify(used)}`);
    // Expected about 54 of 60; below 35 would take odds of about one in a billion.
    assert.ok(used.heavy >= 35, `heavy key used ${used.heavy} of 60 times`);
});

test('gatehouse shuts down cleanly on SIGTERM', async () => {
    await checkShutdown(gw);
});
