// errors.test.mjs - what the client gets when something is wrong: its own request (malformed
// JSON, missing fields, unknown provider or model, body too large) or the upstream's answer
// (4xx/5xx passed through). Every error has OpenAI's shape.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, provider, checkShutdown, OpenAI } from './harness.mjs';
import { fixture } from './recorded.mjs';
import { assertErrorShape } from './checks.mjs';

const MAX_BODY = 16384;
let gw;
const urls = {};

before(async () => {
    gw = await startGateway({
        server: { max_request_body_bytes: MAX_BODY },
        providers: (r) => {
            urls.allow = r.mockUrl('openai', 'allow');
            urls.up = r.mockUrl('openai', 'up');
            urls.an = r.mockUrl('anthropic', 'an');
            urls.oa400 = r.fixtureUrl('openai', 'error_400', 0);
            urls.an400 = r.fixtureUrl('anthropic', 'error_400', 0);
            return [
                provider('openai', { baseUrl: urls.allow, keys: [{ name: 'only-4o', models: ['gpt-4o'] }] }),
                provider('up', { family: 'openai', baseUrl: urls.up }),
                provider('an', { family: 'anthropic', baseUrl: urls.an }),
                provider('oa400', { family: 'openai', baseUrl: urls.oa400 }),
                provider('an400', { family: 'anthropic', baseUrl: urls.an400 }),
            ];
        },
    });
});

after(async () => {
    if (gw) await gw.stop();
});

const chat = (body, headers) => gw.post('/v1/chat/completions', body, headers);
const user = [{ role: 'user', content: 'hi' }];

test('malformed JSON: 400 whose message gives line and column', async () => {
    const res = await chat('{"model": "openai/gpt-4o",\n  "messages": [ {"role": "user", "content": "hi"} ,, ]}');
    assert.equal(res.status, 400, res.text);
    const e = assertErrorShape(res, 'malformed JSON');
    assert.match(e.message, /line/i, `message: ${e.message}`);
    assert.match(e.message, /column/i, `message: ${e.message}`);
    assert.match(e.message, /\b2\b/, `the error is on line 2: ${e.message}`);
    assert.equal(e.type, 'invalid_request_error');
});

test('a body that is not a JSON object: 400', async () => {
    const res = await chat('[1, 2, 3]');
    assert.equal(res.status, 400, res.text);
    assertErrorShape(res, 'array body');
});

test('missing model: 400 naming the field', async () => {
    const res = await chat({ messages: user });
    assert.equal(res.status, 400, res.text);
    const e = assertErrorShape(res, 'missing model');
    assert.match(`${e.message} ${e.param}`, /model/);
});

test('missing messages: 400 naming the field', async () => {
    const res = await chat({ model: 'openai/gpt-4o' });
    assert.equal(res.status, 400, res.text);
    const e = assertErrorShape(res, 'missing messages');
    assert.match(`${e.message} ${e.param}`, /messages/);
});

test('a model without a provider prefix, or an unknown provider: 400 naming it', async () => {
    let res = await chat({ model: 'nosuchprovider/gpt-4o', messages: user });
    assert.equal(res.status, 400, res.text);
    let e = assertErrorShape(res, 'unknown provider');
    assert.ok(e.message.includes('nosuchprovider'), `message: ${e.message}`);
    res = await chat({ model: 'gpt-4o', messages: user });
    assert.equal(res.status, 400, res.text);
    e = assertErrorShape(res, 'no prefix');
    assert.ok(e.message.includes('gpt-4o'), `message: ${e.message}`);
});

test('an unknown fallback provider is refused before anything is sent upstream', async () => {
    const n = gw.replay.received(gw.replay.pathOf(urls.up)).length;
    const res = await chat({ model: 'up/gpt-x', fallbacks: ['ghost/gpt-y'], messages: user });
    assert.equal(res.status, 400, res.text);
    const e = assertErrorShape(res, 'unknown fallback');
    assert.ok(e.message.includes('ghost'), `message: ${e.message}`);
    assert.equal(gw.replay.received(gw.replay.pathOf(urls.up)).length, n);
});

test('a model no key allows: 400 or 404 naming the model, nothing sent upstream', async () => {
    const n = gw.replay.received(gw.replay.pathOf(urls.allow)).length;
    const res = await chat({ model: 'openai/gpt-3.5-turbo-forbidden', messages: user });
    assert.ok([400, 404].includes(res.status), `status ${res.status}: ${res.text}`);
    const e = assertErrorShape(res, 'model not allowed');
    assert.ok(e.message.includes('gpt-3.5-turbo-forbidden'), `message: ${e.message}`);
    assert.equal(gw.replay.received(gw.replay.pathOf(urls.allow)).length, n);
    // The allowed model works with the same key.
    const ok = await chat({ model: 'openai/gpt-4o', messages: user });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers.get('x-gatehouse-key'), 'only-4o');
});

test('the official client maps these to its error classes', async () => {
    const c = gw.client();
    const e1 = await c.chat.completions.create({ model: 'nosuchprovider/x', messages: user }).then(() => null, (e) => e);
    assert.ok(e1 instanceof OpenAI.BadRequestError, `unknown provider: ${e1}`);
    const e2 = await c.chat.completions.create({ model: 'openai/not-allowed', messages: user }).then(() => null, (e) => e);
    assert.ok(e2 instanceof OpenAI.APIError && [400, 404].includes(e2.status), `not allowed: ${e2}`);
});

test('a body over server.max_request_body_bytes: 413 with a JSON error body', async () => {
    const big = { model: 'up/gpt-x', messages: [{ role: 'user', content: 'x'.repeat(MAX_BODY * 2) }] };
    const n = gw.replay.received(gw.replay.pathOf(urls.up)).length;
    const res = await chat(big);
    assert.equal(res.status, 413, res.text.slice(0, 300));
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assertErrorShape(res, 'too large');
    assert.equal(gw.replay.received(gw.replay.pathOf(urls.up)).length, n, 'nothing sent upstream');
    // The server keeps working afterwards.
    const ok = await chat({ model: 'up/gpt-x', messages: user });
    assert.equal(ok.status, 200, ok.text);
});

test('a body just under the limit is accepted', async () => {
    const filler = 'y'.repeat(MAX_BODY - 200);
    const body = { model: 'up/gpt-x', messages: [{ role: 'user', content: filler }] };
    assert.ok(JSON.stringify(body).length < MAX_BODY);
    const res = await chat(body);
    assert.equal(res.status, 200, res.text.slice(0, 300));
});

test('upstream OpenAI 400 (recorded format): status, message and type passed through', async () => {
    const rec = fixture('openai', 'error_400').interactions[0].response.body.json.error;
    const res = await chat({ model: 'oa400/gpt-4o-mini', messages: user, temperature: 7 });
    assert.equal(res.status, 400, res.text);
    const e = assertErrorShape(res, 'upstream 400');
    assert.ok(e.message.includes(rec.message), `message: ${e.message}`);
    assert.equal(e.type, rec.type);
});

test('upstream Anthropic 400: the client gets 400 and Anthropic\'s message', async () => {
    const rec = fixture('anthropic', 'error_400').interactions[0].response.body.json.error;
    const err = await gw.client().chat.completions.create({ model: 'an400/claude-3-5-haiku-latest', max_tokens: 999999, messages: user }).then(() => null, (e) => e);
    assert.ok(err instanceof OpenAI.BadRequestError, `got ${err}`);
    assert.ok(err.message.includes(rec.message), `message: ${err.message}`);
});

for (const status of [401, 403, 404, 422, 500, 502, 503]) {
    test(`upstream ${status} passes through with its status and message (no retries configured)`, async () => {
        const message = `scripted upstream failure ${status} for the e2e suite`;
        gw.replay.script({ prefix: gw.replay.pathOf(urls.up), status, times: 1, body: { error: { message, type: 'upstream_test_error' } } });
        const err = await gw.client().chat.completions.create({ model: 'up/gpt-x', messages: user }).then(() => null, (e) => e);
        gw.replay.clearScripts();
        assert.ok(err instanceof OpenAI.APIError, `got ${err}`);
        assert.equal(err.status, status, `status for upstream ${status}`);
        assert.ok(err.message.includes(message), `message: ${err.message}`);
    });
}

test('upstream Anthropic error body in a 5xx: message extracted', async () => {
    gw.replay.script({ prefix: gw.replay.pathOf(urls.an), status: 529, times: 1, body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded right now' } } });
    const res = await chat({ model: 'an/claude-x', max_tokens: 100, messages: user });
    assert.equal(res.status, 529, res.text);
    const e = assertErrorShape(res, 'anthropic 529');
    assert.ok(e.message.includes('Overloaded right now'), `message: ${e.message}`);
});

test('a non-JSON upstream error body still gives an OpenAI-shaped error', async () => {
    gw.replay.script({ prefix: gw.replay.pathOf(urls.up), status: 502, times: 1, body: '<html>Bad Gateway from a proxy</html>' });
    const res = await chat({ model: 'up/gpt-x', messages: user });
    assert.equal(res.status, 502, res.text);
    assertErrorShape(res, 'html upstream error');
});

test('a 200 upstream answer that is not valid JSON: 5xx error, not a crash', async () => {
    gw.replay.script({ prefix: gw.replay.pathOf(urls.up), status: 200, times: 1, body: '{"id": "chatcmpl-broken", "choices": [' });
    const res = await chat({ model: 'up/gpt-x', messages: user });
    assert.ok(res.status >= 500 && res.status < 600, `status ${res.status}: ${res.text}`);
    assertErrorShape(res, 'invalid upstream JSON');
    const ok = await chat({ model: 'up/gpt-x', messages: user });
    assert.equal(ok.status, 200, 'the gateway still serves');
});

test('gatehouse shuts down cleanly on SIGTERM', async () => {
    await checkShutdown(gw);
});
