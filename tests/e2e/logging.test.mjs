// logging.test.mjs - what gatehouse writes to stderr: one access line per request carrying the
// request id, and never a key value (the keys here are distinctive random fakes, so a grep for
// them is meaningful).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { startGateway, provider, checkShutdown, collectStream } from './harness.mjs';

let gw;
const urls = {};

before(async () => {
    gw = await startGateway({
        providers: (r) => {
            urls.oa = r.mockUrl('openai', 'oa');
            urls.two = r.mockUrl('openai', 'two');
            urls.an = r.mockUrl('anthropic', 'an');
            return [
                provider('oa', { family: 'openai', baseUrl: urls.oa, keys: [{ name: 'oa-logkey' }] }),
                provider('two', { family: 'openai', baseUrl: urls.two, maxRetries: 1, keys: [{ name: 'two-a' }, { name: 'two-b' }] }),
                provider('an', { family: 'anthropic', baseUrl: urls.an, keys: [{ name: 'an-logkey' }] }),
            ];
        },
    });
});

after(async () => {
    if (gw) await gw.stop();
});

const rid = (label) => `e2e-${label}-${crypto.randomBytes(6).toString('hex')}`;

async function linesWith(id) {
    await gw.replay.waitFor(() => gw.stderr().includes(id), 3000);
    return gw.stderr().split('\n').filter((l) => l.includes(id));
}

test('the access line of a request carries the client\'s x-request-id, method, path and status', async () => {
    const id = rid('ok');
    const res = await gw.post('/v1/chat/completions', { model: 'oa/gpt-log', messages: [{ role: 'user', content: 'log me' }] }, { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    const lines = await linesWith(id);
    assert.ok(lines.length >= 1, `no stderr line carries ${id}; stderr tail:\n${gw.stderr().slice(-2000)}`);
    const access = lines.find((l) => / 200\b/.test(l) && l.includes('/v1/chat/completions'));
    assert.ok(access, `an access line with path and status 200: ${JSON.stringify(lines)}`);
    assert.match(access, /POST/);
});

test('a generated request id (error answer) is logged too', async () => {
    const res = await gw.post('/v1/chat/completions', { model: 'ghost/gpt', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 400);
    const id = res.headers.get('x-request-id');
    assert.ok(id, 'x-request-id on an error response');
    const lines = await linesWith(id);
    assert.ok(lines.some((l) => / 400\b/.test(l)), `an access line with status 400 for ${id}: ${JSON.stringify(lines)}`);
});

test('a streamed request gets its access line with the request id', async () => {
    const id = rid('stream');
    const got = await collectStream(
        await gw.client().chat.completions.create(
            { model: 'an/claude-log', stream: true, max_tokens: 50, messages: [{ role: 'user', content: 'stream log' }] },
            { headers: { 'x-request-id': id } },
        ),
    );
    assert.equal(got.error, null);
    const lines = await linesWith(id);
    assert.ok(lines.some((l) => / 200\b/.test(l)), `access line for the stream: ${JSON.stringify(lines)}`);
});

test('retries and rejected keys are logged by key name, never by key value', async () => {
    const id = rid('keys');
    gw.replay.script({ prefix: gw.replay.pathOf(urls.two), status: 401, times: 1, body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } } });
    const res = await gw.post('/v1/chat/completions', { model: 'two/gpt-two', messages: [{ role: 'user', content: 'k' }] }, { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    const lines = await linesWith(id);
    assert.ok(lines.length >= 1);
    for (const s of gw.secrets) assert.ok(!gw.stderr().includes(s), `key value ${s.slice(0, 14)}... found in stderr`);
});

test('an upstream error message that echoes the key value does not put it in stderr', async () => {
    // Some providers quote the rejected key in their 401 message. The key must not reach the logs.
    const value = gw.config.providers.oa.keys[0].value;
    const id = rid('echo');
    gw.replay.script({
        prefix: gw.replay.pathOf(urls.oa),
        status: 401,
        times: 1,
        body: { error: { message: `Incorrect API key provided: ${value}. You can find your API key at the dashboard.`, type: 'invalid_request_error', code: 'invalid_api_key' } },
    });
    const res = await gw.post('/v1/chat/completions', { model: 'oa/gpt-log', messages: [{ role: 'user', content: 'x' }] }, { 'x-request-id': id });
    assert.equal(res.status, 401, res.text);
    await linesWith(id);
    const leaked = gw.stderr().split('\n').filter((l) => l.includes(value));
    assert.deepEqual(leaked, [], 'stderr lines containing the key value');
});

test('gatehouse shuts down cleanly on SIGTERM (and no key value anywhere in stderr)', async () => {
    await checkShutdown(gw);
});
