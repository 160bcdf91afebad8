// agent.test.mjs - MCP tools in chat requests and agent mode, end to end: gatehouse with
// server-everything and server-memory over stdio, the upstream model scripted by the replay
// server (tests/fixtures/e2e/agent: tool calls first, then text), driven by the official openai
// client and by raw HTTP where the bytes matter.
//
// Expected values come from three places, never typed in twice: the fixtures (what the model
// said), the MCP servers themselves asked through the official MCP SDK (tool lists, schemas and
// what a call returns), and what the replay server received from gatehouse.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

import {
    REPO_ROOT, startGateway, startReplay, provider, checkShutdown, collectStream, readSseBody, sleep,
} from './harness.mjs';
import { fixture } from './recorded.mjs';
import { adminToken, waitForRow, parseMetrics, until } from './telemetry_util.mjs';

const MODULES = path.join(REPO_ROOT, 'tests', 'node_modules', '@modelcontextprotocol');
const EVERYTHING = path.join(MODULES, 'server-everything', 'dist', 'index.js');
const MEMORY = path.join(MODULES, 'server-memory', 'dist', 'index.js');
const MAX_DEPTH = 2;
const TOKEN = adminToken();

let replay;
let gw;
let tmp;
const url = {};
const sdk = {}; // client name -> {tools, call(name, args)}

// The providers, one per fixture, so that each test reads its own replay route.
const ROUTES = {
    ajson: ['json_echo'],
    ajson0: ['json_echo', 0],
    amem: ['json_memory'],
    aloop: ['json_loop'],
    amix: ['json_mixed'],
    aerr: ['json_tool_error'],
    astream: ['stream_echo'],
    asmix: ['stream_mixed'],
    asloop: ['stream_loop'],
    aslow: ['json_slow_tool'],
    aanth: ['anthropic_echo'],
};

// A second opinion on each server: the official SDK client on a server of its own.
async function probe(script, env = {}) {
    const client = new Client({ name: 'gatehouse-agent-probe', version: '0' }, { capabilities: {} });
    await client.connect(new StdioClientTransport({
        command: process.execPath, args: [script], env: { ...process.env, ...env }, stderr: 'ignore',
    }));
    const tools = [];
    let cursor;
    do {
        const page = await client.listTools(cursor ? { cursor } : {});
        tools.push(...page.tools);
        cursor = page.nextCursor;
    } while (cursor);
    return { client, tools, call: (name, args) => client.callTool({ name, arguments: args }) };
}

// What a model sees of a text-only CallToolResult (src/mcp/content.h): the text blocks joined
// by newlines, "Error: " first when the tool failed.
function toolText(result) {
    const text = result.content.filter((b) => b.type === 'text').map((b) => b.text).join('\n');
    return result.isError ? `Error: ${text}` : text;
}

function turnOf(name, i) {
    return fixture('agent', name).interactions[i].response.body;
}

function received(name) {
    return replay.received(replay.pathOf(url[name])).map((r) => r.json);
}

function ask(model, text, extra = {}) {
    return { model: `${model}/gpt-4o-mini`, messages: [{ role: 'user', content: text }], ...extra };
}

const weatherTool = {
    type: 'function',
    function: {
        name: 'get_weather',
        description: 'Current weather for a city.',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
};

// Waits until both MCP servers are connected and their tools reach chat requests.
async function waitForTools() {
    const end = Date.now() + 20000;
    for (;;) {
        replay.reset();
        const res = await gw.post('/v1/chat/completions', ask('amock', 'ready?'));
        assert.equal(res.status, 200, res.text);
        const names = (received('amock').at(-1)?.tools ?? []).map((t) => t.function.name);
        if (names.includes('everything-echo') && names.includes('memory-read_graph')) return;
        if (Date.now() > end) throw new Error(`MCP tools never arrived; last tools: ${names.join(', ')}`);
        await sleep(100);
    }
}

before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-agent-'));
    sdk.everything = await probe(EVERYTHING);
    sdk.memory = await probe(MEMORY, { MEMORY_FILE_PATH: path.join(tmp, 'probe-memory.jsonl') });

    replay = await startReplay({ port: 0 });
    for (const [name, [fx, pin]] of Object.entries(ROUTES)) url[name] = replay.fixtureUrl('agent', fx, pin);
    url.amock = replay.mockUrl('openai', 'agent-inject');
    const retrying = new Set(['ajson', 'astream']);
    gw = await startGateway({
        replay,
        providers: Object.keys(url).map((name) =>
            provider(name, {
                family: name === 'aanth' ? 'anthropic' : 'openai',
                baseUrl: url[name],
                maxRetries: retrying.has(name) ? 1 : 0,
            }),
        ),
        env: { MEMORY_FILE_PATH: path.join(tmp, 'gatehouse-memory.jsonl') },
        sections: {
            admin: { token: TOKEN },
            logs: { enabled: true, content: true },
            metrics: { enabled: true },
            mcp: {
                client_configs: [
                    {
                        name: 'everything',
                        connection_type: 'stdio',
                        stdio_config: { command: process.execPath, args: [EVERYTHING] },
                        tools_to_execute: ['*'],
                        tools_to_auto_execute: ['echo', 'trigger-long-running-operation'],
                    },
                    {
                        name: 'memory',
                        connection_type: 'stdio',
                        stdio_config: { command: process.execPath, args: [MEMORY], envs: ['MEMORY_FILE_PATH'] },
                        tools_to_execute: ['*'],
                        tools_to_auto_execute: ['*'],
                    },
                ],
                tool_manager_config: { max_agent_depth: MAX_DEPTH },
            },
        },
    });
    await waitForTools();
});

after(async () => {
    if (gw) await gw.stop();
    if (replay) await replay.close();
    for (const p of Object.values(sdk)) await p.client.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => replay.reset());

// ---- injection --------------------------------------------------------------------------------

function exposedTools() {
    const out = [];
    for (const [client, p] of Object.entries(sdk)) {
        for (const t of p.tools) out.push({ name: `${client}-${t.name}`, def: t });
    }
    return out;
}

test('MCP tools reach the model after the caller tools, with the servers\' names and schemas', async () => {
    const callerEcho = {
        type: 'function',
        function: {
            name: 'everything-echo',
            description: 'the caller\'s own echo',
            parameters: { type: 'object', properties: {} },
        },
    };
    const body = ask('amock', 'which tools?', { tools: [weatherTool, callerEcho] });
    const res = await gw.post('/v1/chat/completions', body);
    assert.equal(res.status, 200, res.text);

    const sent = received('amock')[0].tools;
    assert.deepEqual(sent.slice(0, 2), [weatherTool, callerEcho], 'caller tools first and unchanged');
    const names = sent.map((t) => t.function.name);
    assert.equal(names.filter((n) => n === 'everything-echo').length, 1, 'no duplicate of a caller tool');

    const expected = exposedTools().filter((t) => t.name !== 'everything-echo');
    assert.deepEqual(names.slice(2).sort(), expected.map((t) => t.name).sort());
    for (const t of expected) {
        const got = sent.find((s) => s.function.name === t.name);
        assert.equal(got.type, 'function');
        assert.deepEqual(got.function.parameters, t.def.inputSchema, `schema of ${t.name}`);
        assert.equal(got.function.description, t.def.description, `description of ${t.name}`);
    }
});

test('the include headers narrow the tools a request sees (both spellings); an empty list hides all', async () => {
    const only = async (headers) => {
        replay.reset();
        const res = await gw.post('/v1/chat/completions', ask('amock', 'filtered'), headers);
        assert.equal(res.status, 200, res.text);
        return (received('amock')[0].tools ?? []).map((t) => t.function.name).sort();
    };
    const memory = exposedTools().filter((t) => t.name.startsWith('memory-')).map((t) => t.name).sort();
    assert.deepEqual(await only({ 'x-gatehouse-mcp-include-clients': 'memory' }), memory);
    assert.deepEqual(
        await only({ 'x-bf-mcp-include-tools': 'everything-echo, *read_graph' }),
        ['everything-echo', 'memory-read_graph'],
    );
    assert.deepEqual(
        await only({ 'x-gatehouse-mcp-include-clients': 'everything', 'x-gatehouse-mcp-include-tools': 'get-*' }),
        exposedTools().filter((t) => t.name.startsWith('everything-get-')).map((t) => t.name).sort(),
    );
    assert.deepEqual(await only({ 'x-gatehouse-mcp-include-clients': '' }), []);
});

test('a tool the caller defines under an MCP tool\'s name is the caller\'s: gatehouse does not run it', async () => {
    const callerEcho = {
        type: 'function',
        function: { name: 'everything-echo', parameters: { type: 'object', properties: {} } },
    };
    const { data, response } = await gw.client().chat.completions
        .create(ask('ajson0', 'echo please', { tools: [callerEcho] }))
        .withResponse();
    const turn1 = turnOf('json_echo', 0).json.choices[0].message;
    assert.deepEqual(data.choices[0].message.tool_calls, turn1.tool_calls);
    assert.equal(data.gatehouse_agent, undefined);
    assert.equal(response.headers.get('x-gatehouse-agent-steps'), '1');
    assert.equal(received('ajson0').length, 1);
});

// ---- JSON agent loop --------------------------------------------------------------------------

test('JSON: gatehouse runs everything-echo, sends its result to the model and returns the final text', async () => {
    const { data, response } = await gw.client().chat.completions
        .create(ask('ajson', 'say hello through the echo tool'))
        .withResponse();
    const t1 = turnOf('json_echo', 0).json;
    const t2 = turnOf('json_echo', 1).json;
    const call = t1.choices[0].message.tool_calls[0];
    const echoed = toolText(await sdk.everything.call('echo', JSON.parse(call.function.arguments)));

    const up = received('ajson');
    assert.equal(up.length, 2, 'two model calls');
    assert.deepEqual(up[1].messages, [
        { role: 'user', content: 'say hello through the echo tool' },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: echoed },
    ]);
    assert.deepEqual(up[1].tools, up[0].tools, 'the second turn offers the same tools');

    assert.equal(data.choices[0].message.content, t2.choices[0].message.content);
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.equal(response.headers.get('x-gatehouse-agent-steps'), '2');
    assert.equal(data.gatehouse_agent.steps, 2);
    assert.equal(data.gatehouse_agent.depth_limit_reached, false);
    assert.deepEqual(data.gatehouse_agent.messages, [
        ...up[1].messages.slice(1),
        { role: 'assistant', content: t2.choices[0].message.content },
    ]);
    assert.deepEqual(data.usage, {
        prompt_tokens: t1.usage.prompt_tokens + t2.usage.prompt_tokens,
        completion_tokens: t1.usage.completion_tokens + t2.usage.completion_tokens,
        total_tokens: t1.usage.total_tokens + t2.usage.total_tokens,
    });
});

test('JSON: two rounds on server-memory; every execution is in the request log and the metrics', async () => {
    const id = `agent-mem-${Date.now()}`;
    const turns = [0, 1, 2].map((i) => turnOf('json_memory', i).json);
    const res = await gw.post('/v1/chat/completions', ask('amem', 'remember gatehouse'), { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('x-gatehouse-agent-steps'), '3');
    assert.equal(res.json.choices[0].message.content, turns[2].choices[0].message.content);

    // What the servers answer to the same calls, asked directly.
    const calls = turns.slice(0, 2).map((t) => t.choices[0].message.tool_calls[0]);
    const results = [];
    for (const c of calls) {
        results.push(await sdk.memory.call(c.function.name.replace(/^memory-/, ''), JSON.parse(c.function.arguments)));
    }
    const up = received('amem');
    assert.equal(up.length, 3);
    assert.deepEqual(up[2].messages.slice(1), [
        { role: 'assistant', content: null, tool_calls: [calls[0]] },
        { role: 'tool', tool_call_id: calls[0].id, content: toolText(results[0]) },
        { role: 'assistant', content: null, tool_calls: [calls[1]] },
        { role: 'tool', tool_call_id: calls[1].id, content: toolText(results[1]) },
    ]);

    const row = await waitForRow(gw, id, TOKEN);
    assert.equal(row.tokens_in, turns.reduce((s, t) => s + t.usage.prompt_tokens, 0));
    assert.equal(row.tokens_out, turns.reduce((s, t) => s + t.usage.completion_tokens, 0));
    const tc = row.tool_calls;
    assert.deepEqual(tc.map((t) => [t.source, t.mcp_client, t.tool, t.ok]), [
        ['agent', 'memory', 'create_entities', true],
        ['agent', 'memory', 'read_graph', true],
    ]);
    // The admin API shows JSON bodies as JSON (docs/request-log.md).
    const asJson = (v) => (typeof v === 'string' ? JSON.parse(v) : v);
    assert.deepEqual(tc.map((t) => asJson(t.arguments)), calls.map((c) => JSON.parse(c.function.arguments)));
    assert.deepEqual(asJson(tc[1].result).content, results[1].content);

    const m = parseMetrics((await gw.get('/metrics')).text);
    const count = (tool) => m.samples.find((s) => s.name === 'gatehouse_mcp_tool_calls_total' &&
        s.labels.mcp_client === 'memory' && s.labels.tool === tool && s.labels.outcome === 'ok')?.value;
    assert.equal(count('create_entities'), 1);
    assert.equal(count('read_graph'), 1);
});

test('JSON: the depth limit returns the last turn as is, with its tool calls and the marker', async () => {
    const { data, response } = await gw.client().chat.completions.create(ask('aloop', 'loop forever')).withResponse();
    const turn = turnOf('json_loop', 0).json.choices[0];
    assert.equal(received('aloop').length, MAX_DEPTH + 1);
    assert.deepEqual(data.choices[0].message.tool_calls, turn.message.tool_calls);
    assert.equal(data.choices[0].finish_reason, 'tool_calls');
    assert.equal(response.headers.get('x-gatehouse-agent-depth-limit-reached'), 'true');
    assert.equal(response.headers.get('x-gatehouse-agent-steps'), String(MAX_DEPTH + 1));
    assert.equal(data.gatehouse_agent.depth_limit_reached, true);
    assert.equal(data.gatehouse_agent.max_depth, MAX_DEPTH);
    assert.equal(data.gatehouse_agent.messages.length, 2 * MAX_DEPTH + 1);
    assert.deepEqual(data.gatehouse_agent.messages.at(-1).tool_calls, turn.message.tool_calls);
});

test('JSON: mixed turn - the auto call runs, the others come back, and the client can continue', async () => {
    const client = gw.client();
    const question = ask('amix', 'sum, weather and echo', { tools: [weatherTool] });
    const { data, response } = await client.chat.completions.create(question).withResponse();
    const t1 = turnOf('json_mixed', 0).json.choices[0].message;
    const [echoCall, sumCall, weatherCall] = t1.tool_calls;

    assert.equal(received('amix').length, 1, 'no model call while calls are left to the client');
    assert.equal(response.headers.get('x-gatehouse-agent-steps'), '1');
    assert.equal(data.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(data.choices[0].message.tool_calls, [sumCall, weatherCall]);
    const echoed = toolText(await sdk.everything.call('echo', JSON.parse(echoCall.function.arguments)));
    assert.deepEqual(data.gatehouse_agent.messages, [
        { role: 'assistant', content: t1.content, tool_calls: t1.tool_calls },
        { role: 'tool', tool_call_id: echoCall.id, content: echoed },
    ]);

    // The documented continuation: gatehouse_agent.messages, then the client's own results.
    const sum = toolText(await sdk.everything.call('get-sum', JSON.parse(sumCall.function.arguments)));
    const messages = [
        ...question.messages,
        ...data.gatehouse_agent.messages,
        { role: 'tool', tool_call_id: sumCall.id, content: sum },
        { role: 'tool', tool_call_id: weatherCall.id, content: 'sunny, 21 C' },
    ];
    const next = await client.chat.completions.create({ ...question, messages });
    assert.equal(next.choices[0].message.content, turnOf('json_mixed', 1).json.choices[0].message.content);
    assert.equal(next.gatehouse_agent, undefined, 'nothing ran on the second request');
    const up = received('amix');
    assert.equal(up.length, 2);
    assert.deepEqual(up[1].messages, messages);
    const answered = new Set(up[1].messages.filter((m) => m.role === 'tool').map((m) => m.tool_call_id));
    assert.deepEqual([...answered].sort(), t1.tool_calls.map((c) => c.id).sort(), 'every call has its result');
});

test('JSON: a tool failure (isError) is a tool result for the model, not a gateway error', async () => {
    const id = `agent-err-${Date.now()}`;
    const res = await gw.post('/v1/chat/completions', ask('aerr', 'echo nothing'), { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    const call = turnOf('json_tool_error', 0).json.choices[0].message.tool_calls[0];
    const direct = await sdk.everything.call('echo', JSON.parse(call.function.arguments));
    assert.equal(direct.isError, true, 'the server itself rejects the call');

    const up = received('aerr');
    assert.equal(up.length, 2);
    assert.deepEqual(up[1].messages.at(-1), { role: 'tool', tool_call_id: call.id, content: toolText(direct) });
    assert.equal(res.json.choices[0].message.content, turnOf('json_tool_error', 1).json.choices[0].message.content);

    const row = await waitForRow(gw, id, TOKEN);
    assert.equal(row.status, 200);
    assert.equal(row.tool_calls.length, 1);
    assert.equal(row.tool_calls[0].ok, false);
    assert.equal(row.tool_calls[0].error, toolText(direct));
});

test('JSON: retries apply to every model call of the loop', async () => {
    replay.script({ prefix: replay.pathOf(url.ajson), after: 1, status: 500 });
    const res = await gw.post('/v1/chat/completions', ask('ajson', 'retry the second turn'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('x-gatehouse-retries'), '1');
    assert.equal(res.headers.get('x-gatehouse-agent-steps'), '2');
    const rx = replay.received(replay.pathOf(url.ajson));
    assert.deepEqual(rx.map((r) => r.served), ['fixture', 'fault', 'fixture']);
    assert.deepEqual(rx[2].json.messages, rx[1].json.messages, 'the retry sends the same conversation');
    assert.equal(res.json.choices[0].message.content, turnOf('json_echo', 1).json.choices[0].message.content);
});

test('JSON: the loop works the same behind an Anthropic upstream (tool_use in, tool_result out)', async () => {
    const { data, response } = await gw.client().chat.completions
        .create(ask('aanth', 'echo through claude'))
        .withResponse();
    const t1 = turnOf('anthropic_echo', 0).json;
    const t2 = turnOf('anthropic_echo', 1).json;
    const use = t1.content.find((b) => b.type === 'tool_use');
    const echoed = toolText(await sdk.everything.call('echo', use.input));

    const up = received('aanth');
    assert.equal(up.length, 2);
    assert.ok(up[0].tools.some((t) => t.name === 'everything-echo'), 'the MCP tool reached Claude');
    const [user, assistantTurn, results] = up[1].messages;
    assert.equal(user.role, 'user');
    assert.equal(assistantTurn.role, 'assistant');
    assert.deepEqual(assistantTurn.content.find((b) => b.type === 'tool_use'), use);
    assert.equal(results.role, 'user');
    assert.deepEqual(results.content, [{ type: 'tool_result', tool_use_id: use.id, content: echoed }]);

    assert.equal(data.choices[0].message.content, t2.content[0].text);
    assert.equal(response.headers.get('x-gatehouse-agent-steps'), '2');
    assert.equal(data.usage.prompt_tokens, t1.usage.input_tokens + t2.usage.input_tokens);
    assert.equal(data.usage.completion_tokens, t1.usage.output_tokens + t2.usage.output_tokens);
    const call = data.gatehouse_agent.messages[0].tool_calls[0];
    assert.deepEqual([call.id, call.function.name, JSON.parse(call.function.arguments)], [use.id, use.name, use.input]);
});

// ---- streaming agent loop ---------------------------------------------------------------------

function sseTurn(name, i) {
    const chunks = turnOf(name, i).text.split('\n\n')
        .filter((e) => e.startsWith('data: {'))
        .map((e) => JSON.parse(e.slice(6)));
    const content = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    const calls = [];
    for (const c of chunks) {
        for (const d of c.choices[0]?.delta?.tool_calls ?? []) {
            calls[d.index] ??= { id: null, type: 'function', function: { name: '', arguments: '' } };
            if (d.id) calls[d.index].id = d.id;
            calls[d.index].function.name += d.function?.name ?? '';
            calls[d.index].function.arguments += d.function?.arguments ?? '';
        }
    }
    return { chunks, content, calls, usage: chunks.find((c) => c.usage)?.usage };
}

const agentEvents = (chunks) => chunks.filter((c) => c.gatehouse_agent).map((c) => c.gatehouse_agent);

test('stream: the steps arrive as gatehouse_agent events, the final turn as a normal stream, then [DONE]', async () => {
    const t1 = sseTurn('stream_echo', 0);
    const t2 = sseTurn('stream_echo', 1);
    const stream = await gw.client().chat.completions.create(
        ask('astream', 'stream it', { stream: true, stream_options: { include_usage: true } }),
    );
    const got = await collectStream(stream);
    assert.equal(got.error, null, String(got.error));

    const echoed = toolText(await sdk.everything.call('echo', JSON.parse(t1.calls[0].function.arguments)));
    const events = agentEvents(got.chunks);
    assert.deepEqual(events.map((e) => e.type), ['tool_calls', 'tool_results', 'done']);
    assert.deepEqual(events[0].message, { role: 'assistant', content: t1.content, tool_calls: t1.calls });
    assert.deepEqual(events[0].executing, [t1.calls[0].id]);
    assert.deepEqual(events[1].messages, [{ role: 'tool', tool_call_id: t1.calls[0].id, content: echoed }]);
    assert.equal(events[2].steps, 2);
    assert.deepEqual(events[2].messages, [
        events[0].message, ...events[1].messages, { role: 'assistant', content: t2.content },
    ]);

    assert.equal(got.content, t1.content + t2.content, 'text of both turns, as it came');
    assert.deepEqual(got.toolCalls, [], 'no tool call deltas for calls gatehouse ran');
    assert.equal(got.finishReason, 'stop');
    assert.equal(got.usageChunks.length, 1);
    assert.deepEqual(got.usageChunks[0].usage, {
        prompt_tokens: t1.usage.prompt_tokens + t2.usage.prompt_tokens,
        completion_tokens: t1.usage.completion_tokens + t2.usage.completion_tokens,
        total_tokens: t1.usage.total_tokens + t2.usage.total_tokens,
    });

    const up = received('astream');
    assert.equal(up.length, 2);
    assert.deepEqual(up[1].messages.slice(1), events[2].messages.slice(0, 2));
});

test('stream: the raw SSE ends with [DONE] and the agent events are data chunks with no choices', async () => {
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(ask('astream', 'raw stream', { stream: true })),
    });
    assert.equal(r.status, 200);
    const { events, error } = await readSseBody(r);
    assert.equal(error, null);
    assert.equal(events.at(-1).data, '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    for (const c of chunks.filter((x) => x.gatehouse_agent)) {
        assert.deepEqual(c.choices, []);
        assert.equal(c.object, 'chat.completion.chunk');
    }
    assert.equal(chunks.filter((c) => c.usage).length, 0, 'no usage without include_usage');
});

test('stream: mixed turn - the client gets the calls it must run as deltas, and the summary', async () => {
    const t1 = sseTurn('stream_mixed', 0);
    const [echoCall, weatherCall] = t1.calls;
    const got = await collectStream(
        await gw.client().chat.completions.create(ask('asmix', 'mixed stream', { stream: true, tools: [weatherTool] })),
    );
    assert.equal(got.error, null, String(got.error));
    assert.equal(received('asmix').length, 1);
    assert.deepEqual(got.toolCalls, [
        { id: weatherCall.id, type: 'function', name: 'get_weather', arguments: weatherCall.function.arguments },
    ]);
    assert.equal(got.finishReason, 'tool_calls');
    const events = agentEvents(got.chunks);
    assert.deepEqual(events.map((e) => e.type), ['tool_calls', 'tool_results', 'done']);
    assert.deepEqual(events[0].executing, [echoCall.id]);
    assert.deepEqual(events[2].messages, [events[0].message, ...events[1].messages]);
    assert.deepEqual(events[2].messages[0].tool_calls, t1.calls);
});

test('stream: the depth limit ends with the last turn\'s tool calls and a marked summary', async () => {
    const t = sseTurn('stream_loop', 0);
    const got = await collectStream(await gw.client().chat.completions.create(ask('asloop', 'loop', { stream: true })));
    assert.equal(got.error, null, String(got.error));
    assert.equal(received('asloop').length, MAX_DEPTH + 1);
    const events = agentEvents(got.chunks);
    assert.deepEqual(events.map((e) => e.type), [
        ...Array(MAX_DEPTH).fill(['tool_calls', 'tool_results']).flat(), 'done',
    ]);
    const done = events.at(-1);
    assert.equal(done.depth_limit_reached, true);
    assert.equal(done.steps, MAX_DEPTH + 1);
    assert.deepEqual(got.toolCalls.map((c) => [c.id, c.name, c.arguments]),
        t.calls.map((c) => [c.id, c.function.name, c.function.arguments]));
    assert.equal(got.finishReason, 'tool_calls');
});

test('stream: a model call that breaks after its text started ends with an error event, never [DONE]', async () => {
    replay.script({ prefix: replay.pathOf(url.astream), after: 1, cutAfter: 2 });
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(ask('astream', 'cut the second turn', { stream: true })),
    });
    const { events } = await readSseBody(r);
    const data = events.map((e) => e.data);
    assert.ok(!data.includes('[DONE]'), 'no [DONE] after a cut');
    const last = JSON.parse(data.at(-1));
    assert.equal(last.error?.code, 'stream_interrupted', data.at(-1));
    assert.ok(data.some((d) => d.includes('"tool_results"')), 'the round ran before the cut');
    assert.equal(replay.received(replay.pathOf(url.astream)).length, 2, 'no retry once text went out');
});

test('stream: a later model call failing before it sent anything is retried, then reported in-stream', async () => {
    const prefix = replay.pathOf(url.astream);
    replay.script({ prefix, after: 1, status: 503 });
    const client = gw.client();
    const ok = await collectStream(await client.chat.completions.create(ask('astream', 'retry', { stream: true })));
    assert.equal(ok.error, null, String(ok.error));
    assert.equal(ok.content, sseTurn('stream_echo', 0).content + sseTurn('stream_echo', 1).content);
    assert.deepEqual(replay.received(prefix).map((r) => r.served), ['fixture', 'fault', 'fixture']);

    replay.reset();
    replay.script({ prefix, after: 1, status: 503, times: 2 });
    const r = await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(ask('astream', 'fail the second turn', { stream: true })),
    });
    assert.equal(r.status, 200, 'the stream had started with the first round');
    const { events } = await readSseBody(r);
    const data = events.map((e) => e.data);
    assert.ok(!data.includes('[DONE]'));
    assert.match(JSON.parse(data.at(-1)).error?.message ?? '', /scripted status 503/);
    assert.equal(replay.received(prefix).length, 3, 'first turn, then the attempt and its retry');
});

test('a client that leaves while a tool runs cancels the loop: no further model call', async () => {
    const id = `agent-gone-${Date.now()}`;
    const ac = new AbortController();
    const pending = fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify(ask('aslow', 'slow tool')),
        signal: ac.signal,
    }).catch((e) => e);
    await replay.waitFor(() => received('aslow').length === 1, 5000);
    await sleep(300);
    ac.abort();
    assert.equal((await pending).name, 'AbortError');
    const args = JSON.parse(turnOf('json_slow_tool', 0).json.choices[0].message.tool_calls[0].function.arguments);
    await sleep(args.duration * 1000 + 500); // the tool's own duration, and a margin
    assert.equal(received('aslow').length, 1);
    assert.equal((await gw.get('/health')).status, 200);

    const row = await until(async () => {
        const r = await waitForRow(gw, id, TOKEN);
        return r.tool_calls.length > 0 ? r : null;
    });
    assert.equal(row.status, 499);
    assert.deepEqual(row.tool_calls.map((t) => [t.tool, t.ok, t.error]),
        [['trigger-long-running-operation', false, 'cancelled: the request ended']]);
});

test('gatehouse shuts down cleanly on SIGTERM', async () => {
    await checkShutdown(gw);
});
