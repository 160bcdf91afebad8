// chat.test.mjs - the chat path end to end on the project's own fixtures (tests/fixtures/e2e,
// written from the providers' documented formats), so it runs without ../shared: OpenAI and
// Anthropic upstreams behind the OpenAI API, JSON and streaming, text, tool calls, thinking,
// usage, the route headers, /health and /v1/models.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, provider, checkShutdown, collectStream, readSseBody } from './harness.mjs';
import { fixture, expectOpenAIJson, expectOpenAIStream, turns } from './recorded.mjs';
import { checkAnthropicTurn, checkOpenAITurn, lastUpstream } from './checks.mjs';

let gw;
let urls;

before(async () => {
    gw = await startGateway({
        providers: (r) => {
            urls = {
                openai: r.fixtureUrl('openai', 'chat_text', 0),
                anthropic: r.fixtureUrl('anthropic', 'messages_text', 0),
                oatools: r.fixtureUrl('openai', 'chat_tool_call'),
                oastream: r.fixtureUrl('openai', 'stream_text', 0),
                oastreamtools: r.fixtureUrl('openai', 'stream_tool_calls', 0),
                antools: r.fixtureUrl('anthropic', 'messages_tool_use'),
                anthink: r.fixtureUrl('anthropic', 'stream_thinking', 0),
                anstreamtools: r.fixtureUrl('anthropic', 'stream_tool_use', 0),
            };
            return [
                provider('openai', { baseUrl: urls.openai, keys: [{ name: 'oa-main', models: ['gpt-4o-mini', 'gpt-4o'] }] }),
                provider('anthropic', { baseUrl: urls.anthropic, keys: [{ name: 'an-main', models: ['claude-3-5-haiku-latest'] }] }),
                provider('oatools', { family: 'openai', baseUrl: urls.oatools, keys: [{ name: 'oatools-key', models: ['gpt-4o-mini'] }] }),
                provider('oastream', { family: 'openai', baseUrl: urls.oastream }),
                provider('oastreamtools', { family: 'openai', baseUrl: urls.oastreamtools }),
                provider('antools', { family: 'anthropic', baseUrl: urls.antools }),
                provider('anthink', { family: 'anthropic', baseUrl: urls.anthink }),
                provider('anstreamtools', { family: 'anthropic', baseUrl: urls.anstreamtools }),
            ];
        },
    });
});

after(async () => {
    if (gw) await gw.stop();
});

test('GET /health answers 200 with a JSON body', async () => {
    const res = await gw.get('/health');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.ok(res.json && typeof res.json === 'object', `health body: ${res.text}`);
});

test('GET /v1/models lists the models the keys allow, as provider/model', async () => {
    const res = await gw.get('/v1/models');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.object, 'list');
    assert.ok(Array.isArray(res.json.data), `data: ${res.text}`);
    const ids = res.json.data.map((m) => m.id);
    for (const id of ['openai/gpt-4o-mini', 'openai/gpt-4o', 'anthropic/claude-3-5-haiku-latest', 'oatools/gpt-4o-mini']) {
        assert.ok(ids.includes(id), `${id} missing from ${JSON.stringify(ids)}`);
    }
    for (const m of res.json.data) assert.equal(m.object, 'model', `entry ${JSON.stringify(m)}`);
    // The openai client reads the same list.
    const listed = [];
    for await (const m of gw.client().models.list()) listed.push(m.id);
    assert.ok(listed.includes('openai/gpt-4o-mini'), `client list: ${listed}`);
});

test('OpenAI upstream, JSON: answer, usage and route headers', async () => {
    const rec = fixture('openai', 'chat_text');
    const turn = rec.interactions[0];
    const { headers, upstream } = await checkOpenAITurn(gw, 'openai', urls.openai, turn);
    assert.equal(headers.get('x-gatehouse-key'), 'oa-main', 'x-gatehouse-key is the key name');
    const keyValue = gw.config.providers.openai.keys[0].value;
    assert.equal(upstream.headers.authorization, `Bearer ${keyValue}`, 'upstream got the configured key');
    const rid = headers.get('x-request-id');
    assert.ok(rid && rid.length >= 8, `generated x-request-id: ${rid}`);
});

test('x-request-id: echoed when the client sends one, generated and distinct otherwise', async () => {
    const body = { model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello to the e2e suite.' }] };
    const mine = 'e2e-req-7f3a9c2e-echo';
    const a = await gw.post('/v1/chat/completions', body, { 'x-request-id': mine });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.headers.get('x-request-id'), mine);
    const b = await gw.post('/v1/chat/completions', body);
    const c = await gw.post('/v1/chat/completions', body);
    const rb = b.headers.get('x-request-id');
    const rc = c.headers.get('x-request-id');
    assert.ok(rb && rc, `generated ids: ${rb}, ${rc}`);
    assert.notEqual(rb, rc, 'two requests get two ids');
    assert.notEqual(rb, mine);
});

test('OpenAI upstream, JSON tool call then tool result (two turns)', async () => {
    const rec = fixture('openai', 'chat_tool_call');
    const [t1, t2] = turns(rec, '/chat/completions');
    const first = await checkOpenAITurn(gw, 'oatools', urls.oatools, t1);
    assert.equal(first.got.choices[0].finish_reason, 'tool_calls');
    assert.equal(first.headers.get('x-gatehouse-key'), 'oatools-key');
    const second = await checkOpenAITurn(gw, 'oatools', urls.oatools, t2);
    assert.equal(second.got.choices[0].message.content, expectOpenAIJson(t2.response).content);
});

test('OpenAI upstream, stream: chunks, [DONE], no usage chunk unless asked', async () => {
    const turn = fixture('openai', 'stream_text').interactions[0];
    await checkOpenAITurn(gw, 'oastream', urls.oastream, turn, { drop: ['stream_options'] });
    // The raw stream: SSE framing, several data events, [DONE] last.
    const res = await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'oastream/gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Stream a short sentence.' }] }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.equal(res.headers.get('x-gatehouse-provider'), 'oastream');
    assert.equal(res.headers.get('x-gatehouse-model'), 'gpt-4o-mini');
    assert.equal(res.headers.get('x-gatehouse-key'), 'oastream-key');
    assert.equal(res.headers.get('x-gatehouse-fallback-index'), '0');
    assert.ok(res.headers.get('x-request-id'), 'x-request-id on a streamed response');
    const sse = await readSseBody(res);
    assert.equal(sse.error, null);
    const data = sse.events.map((e) => e.data);
    assert.equal(data.at(-1), '[DONE]', `last event: ${data.at(-1)}`);
    assert.equal(data.filter((d) => d === '[DONE]').length, 1);
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.ok(chunks.length >= expectOpenAIStream(turn.response).content.split(' ').length, `chunks: ${chunks.length}`);
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    assert.ok(chunks.every((c) => !c.usage), 'no chunk carries usage without include_usage');
});

test('OpenAI upstream, stream with include_usage: one usage chunk with the recorded numbers', async () => {
    const turn = fixture('openai', 'stream_text').interactions[0];
    await checkOpenAITurn(gw, 'oastream', urls.oastream, turn);
});

test('OpenAI upstream, streamed parallel tool calls: ids, names, arguments byte-identical', async () => {
    const turn = fixture('openai', 'stream_tool_calls').interactions[0];
    const { got } = await checkOpenAITurn(gw, 'oastreamtools', urls.oastreamtools, turn);
    assert.equal(got.toolCalls.length, 2);
    assert.equal(got.finishReason, 'tool_calls');
    assert.equal(got.toolCalls[0].arguments, expectOpenAIStream(turn.response).toolCalls[0].arguments);
});

test('Anthropic upstream (real name) behind the OpenAI API, JSON: text, system, usage, headers', async () => {
    const turn = fixture('anthropic', 'messages_text').interactions[0];
    const { headers, upstream } = await checkAnthropicTurn(gw, 'anthropic', urls.anthropic, turn);
    assert.equal(headers.get('x-gatehouse-key'), 'an-main');
    assert.equal(upstream.headers['x-api-key'], gw.config.providers.anthropic.keys[0].value, 'upstream x-api-key is the key value');
    assert.equal(upstream.headers.authorization, undefined, 'no Authorization header to Anthropic');
});

test('Anthropic upstream, JSON tool use then tool result (two turns)', async () => {
    const [t1, t2] = turns(fixture('anthropic', 'messages_tool_use'), '/messages');
    const first = await checkAnthropicTurn(gw, 'antools', urls.antools, t1);
    assert.equal(first.got.choices[0].finish_reason, 'tool_calls');
    const second = await checkAnthropicTurn(gw, 'antools', urls.antools, t2);
    assert.equal(second.got.choices[0].finish_reason, 'stop');
    const blocks = second.upstream.json.messages.at(-1).content;
    assert.ok(Array.isArray(blocks) && blocks.some((b) => b.type === 'tool_result' && b.tool_use_id === 'toolu_fx01Weather'),
        `the tool result goes upstream as a tool_result block: ${JSON.stringify(second.upstream.json.messages.at(-1))}`);
});

test('Anthropic upstream, stream with thinking: reasoning_content, text, usage', async () => {
    const turn = fixture('anthropic', 'stream_thinking').interactions[0];
    const { got } = await checkAnthropicTurn(gw, 'anthink', urls.anthink, turn, { includeUsage: true });
    assert.ok(got.reasoning.length > 0, 'reasoning arrived');
    assert.equal(got.finishReason, 'stop');
});

test('Anthropic upstream, stream without include_usage has no usage chunk', async () => {
    const turn = fixture('anthropic', 'stream_thinking').interactions[0];
    await checkAnthropicTurn(gw, 'anthink', urls.anthink, turn, { includeUsage: false });
});

test('Anthropic upstream, streamed tool use: arguments byte-identical, finish_reason tool_calls', async () => {
    const turn = fixture('anthropic', 'stream_tool_use').interactions[0];
    const { got } = await checkAnthropicTurn(gw, 'anstreamtools', urls.anstreamtools, turn, { includeUsage: true });
    assert.equal(got.finishReason, 'tool_calls');
    assert.equal(got.toolCalls.length, 1);
    assert.equal(got.content, 'Let me check.');
});

test('Anthropic upstream, raw stream ends with [DONE] and chunks are chat.completion.chunk', async () => {
    const res = await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'anthink/claude-sonnet-4-0', stream: true, max_tokens: 2048, messages: [{ role: 'user', content: 'Greet me, but think first.' }] }),
    });
    assert.equal(res.status, 200);
    const sse = await readSseBody(res);
    const data = sse.events.map((e) => e.data);
    assert.equal(data.at(-1), '[DONE]', `last event: ${data.at(-1)}`);
    for (const d of data.slice(0, -1)) {
        const c = JSON.parse(d);
        assert.equal(c.object, 'chat.completion.chunk', d);
        assert.ok(!('error' in c), `no error chunk: ${d}`);
    }
});

test('the official client streams through the gateway (smoke)', async () => {
    const stream = await gw.client().chat.completions.create({
        model: 'oastream/gpt-4o-mini',
        stream: true,
        messages: [{ role: 'user', content: 'Stream a short sentence.' }],
    });
    const got = await collectStream(stream);
    assert.equal(got.error, null);
    assert.equal(got.content, expectOpenAIStream(fixture('openai', 'stream_text').interactions[0].response).content);
    const up = lastUpstream(gw.replay, urls.oastream);
    assert.equal(up.json.stream, true);
});

test('gatehouse shuts down cleanly on SIGTERM (exit 0, no sanitizer report, no key in stderr)', async () => {
    await checkShutdown(gw);
});
