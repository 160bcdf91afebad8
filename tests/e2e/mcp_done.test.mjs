// mcp_done.test.mjs - the MCP gateway issue's "done means", in one gateway: a configuration
// that connects server-everything, server-filesystem (on a temporary folder) and server-memory
// over stdio, and then
//
//   - the official OpenAI SDK gets the tools of all three injected into its chat requests,
//   - agent mode runs a tool of each of them in one turn, JSON and streaming,
//   - the official MCP SDK client sees every tool of all three at /mcp and calls them,
//   - and every tool call, whichever way it came in (agent, /mcp, the execute endpoint), is in
//     the request log (GET /api/logs, GET /api/logs/{id}) and the metrics.
//
// The upstream model is the replay server (tests/fixtures/e2e/agent/*_three_servers.json: one
// turn calling get-sum, list_allowed_directories and create_entities at once, then text).
// Expected tool lists and results come from the servers themselves, asked directly through the
// MCP SDK over stdio with the same arguments and an equally fresh state. Skipped when
// tests/node_modules is absent.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {
    REPO_ROOT, startGateway, startReplay, provider, checkShutdown, collectStream, sleep,
} from './harness.mjs';
import { fixture } from './recorded.mjs';
import { adminToken, adminGet, waitForRow, parseMetrics, until } from './telemetry_util.mjs';

const MODULES = path.join(REPO_ROOT, 'tests', 'node_modules', '@modelcontextprotocol');
const EVERYTHING = path.join(MODULES, 'server-everything', 'dist', 'index.js');
const FILESYSTEM = path.join(MODULES, 'server-filesystem', 'dist', 'index.js');
const MEMORY = path.join(MODULES, 'server-memory', 'dist', 'index.js');
const SKIP = fs.existsSync(EVERYTHING) ? false : `${EVERYTHING} missing: run npm ci in tests/`;
const TOKEN = adminToken();
const SERVERS = ['everything', 'files', 'memory'];

let replay;
let gw;
let tmp;
let mcpSdk; // the MCP SDK's modules
const url = {};
const direct = {}; // server name -> {client, tools}: the second opinion
const mcpClients = [];

async function loadMcpSdk() {
    const [{ Client }, { StdioClientTransport }, { StreamableHTTPClientTransport }] = await Promise.all([
        import('@modelcontextprotocol/sdk/client/index.js'),
        import('@modelcontextprotocol/sdk/client/stdio.js'),
        import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
    ]);
    return { Client, StdioClientTransport, StreamableHTTPClientTransport };
}

/** The SDK straight to a server over stdio, with every tool it lists. */
async function probe(args, env = {}) {
    const client = new mcpSdk.Client({ name: 'gatehouse-done-probe', version: '0' });
    await client.connect(new mcpSdk.StdioClientTransport({
        command: process.execPath, args, env: { ...process.env, ...env }, stderr: 'ignore',
    }));
    const tools = [];
    let cursor;
    do {
        const page = await client.listTools(cursor ? { cursor } : {});
        tools.push(...page.tools);
        cursor = page.nextCursor;
    } while (cursor);
    return { client, tools };
}

/** Every tool of the three servers under its exposed name (docs/mcp.md, "Tool names"). */
function exposedTools() {
    return SERVERS.flatMap((s) => direct[s].tools.map((t) => ({ name: `${s}-${t.name}`, def: t })));
}

/** What the server says to the call, asked directly: the exposed name without its client. */
function directCall(exposed, args) {
    const [server, ...rest] = exposed.split('-');
    return direct[server].client.callTool({ name: rest.join('-'), arguments: args });
}

/** What a model sees of a text-only CallToolResult (src/mcp/content.h). */
function toolText(result) {
    const text = result.content.filter((b) => b.type === 'text').map((b) => b.text).join('\n');
    return result.isError ? `Error: ${text}` : text;
}

const ask = (model, text, extra = {}) => ({
    model: `${model}/gpt-4o-mini`, messages: [{ role: 'user', content: text }], ...extra,
});
/** The tool calls of a streamed fixture turn, put together from their deltas. */
function streamedCalls(name, turn) {
    const text = fixture('agent', name).interactions[turn].response.body.text;
    const calls = [];
    for (const line of text.split('\n')) {
        if (!line.startsWith('data: {')) continue;
        for (const d of JSON.parse(line.slice(6)).choices[0]?.delta?.tool_calls ?? []) {
            calls[d.index] ??= { id: d.id, type: 'function', function: { name: d.function.name, arguments: '' } };
            calls[d.index].function.arguments += d.function.arguments;
        }
    }
    return calls;
}

const received = (name) => replay.received(replay.pathOf(url[name])).map((r) => r.json);
const toolCount = (m, client, tool) => m.samples.find((s) => s.name === 'gatehouse_mcp_tool_calls_total' &&
    s.labels.mcp_client === client && s.labels.tool === tool && s.labels.outcome === 'ok')?.value ?? 0;
const metrics = async () => parseMetrics((await gw.get('/metrics')).text);

before(async () => {
    if (SKIP) return;
    mcpSdk = await loadMcpSdk();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-mcp-done-'));
    const shared = path.join(tmp, 'shared');
    fs.mkdirSync(shared);
    fs.writeFileSync(path.join(shared, 'note.txt'), 'a file behind gatehouse\n');
    // The gateway and the probes each get a fresh memory file: same history, same answers.
    direct.everything = await probe([EVERYTHING, 'stdio']);
    direct.files = await probe([FILESYSTEM, shared]);
    direct.memory = await probe([MEMORY], { MEMORY_FILE_PATH: path.join(tmp, 'probe-memory.jsonl') });

    replay = await startReplay({ port: 0 });
    url.json = replay.fixtureUrl('agent', 'json_three_servers');
    url.stream = replay.fixtureUrl('agent', 'stream_three_servers');
    url.mock = replay.mockUrl('openai', 'mcp-done');
    const stdio = (name, args, envs) => ({
        name,
        connection_type: 'stdio',
        stdio_config: { command: process.execPath, args, ...(envs ? { envs } : {}) },
        tools_to_execute: ['*'],
        tools_to_auto_execute: ['*'],
    });
    gw = await startGateway({
        replay,
        providers: Object.keys(url).map((name) => provider(name, { family: 'openai', baseUrl: url[name], maxRetries: 0 })),
        env: { MEMORY_FILE_PATH: path.join(tmp, 'gatehouse-memory.jsonl') },
        sections: {
            admin: { token: TOKEN },
            logs: { enabled: true, content: true },
            metrics: { enabled: true },
            mcp: {
                client_configs: [
                    stdio('everything', [EVERYTHING, 'stdio']),
                    stdio('files', [FILESYSTEM, shared]),
                    stdio('memory', [MEMORY], ['MEMORY_FILE_PATH']),
                ],
            },
        },
    });
    // Connecting is in the background: wait until the tools of all three reach a request.
    const want = exposedTools().map((t) => t.name);
    const ok = await until(async () => {
        replay.reset();
        const res = await gw.post('/v1/chat/completions', ask('mock', 'ready?'));
        const names = (received('mock').at(-1)?.tools ?? []).map((t) => t.function.name);
        return res.status === 200 && want.every((n) => names.includes(n));
    }, 60000, 100);
    assert.ok(ok, 'the tools of the three servers never all reached a chat request');
});

after(async () => {
    for (const c of mcpClients) await c.close().catch(() => {});
    if (gw) await gw.stop();
    if (replay) await replay.close();
    for (const p of Object.values(direct)) await p.client.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => replay?.reset());

// ---- the OpenAI SDK ------------------------------------------------------------------------------

test('the OpenAI SDK\'s request reaches the model with every tool of the three servers', { skip: SKIP }, async () => {
    const reply = await gw.client().chat.completions.create(ask('mock', 'which tools do you have?'));
    assert.equal(reply.object, 'chat.completion');

    const sent = received('mock')[0].tools;
    const expected = exposedTools();
    assert.deepEqual(sent.map((t) => t.function.name).sort(), expected.map((t) => t.name).sort());
    for (const server of SERVERS) {
        assert.ok(expected.some((t) => t.name.startsWith(`${server}-`)), `${server} has tools`);
    }
    for (const t of expected) {
        const got = sent.find((s) => s.function.name === t.name);
        assert.deepEqual(got.function.parameters, t.def.inputSchema, `schema of ${t.name}`);
        assert.equal(got.function.description, t.def.description, `description of ${t.name}`);
    }
});

test('agent mode (JSON, OpenAI SDK): one turn runs a tool of each server, then the model answers', { skip: SKIP }, async () => {
    const turns = fixture('agent', 'json_three_servers').interactions.map((i) => i.response.body.json);
    const calls = turns[0].choices[0].message.tool_calls;
    const id = `mcp-done-json-${crypto.randomBytes(4).toString('hex')}`;
    const { data, response } = await gw.client().chat.completions
        .create(ask('json', 'use all three servers'), { headers: { 'x-request-id': id } })
        .withResponse();

    assert.equal(data.choices[0].message.content, turns[1].choices[0].message.content);
    assert.equal(response.headers.get('x-gatehouse-agent-steps'), '2');
    const results = [];
    for (const c of calls) results.push(await directCall(c.function.name, JSON.parse(c.function.arguments)));
    const toolMessages = calls.map((c, i) => ({ role: 'tool', tool_call_id: c.id, content: toolText(results[i]) }));
    assert.deepEqual(data.gatehouse_agent.messages.slice(1, 4), toolMessages);
    // The model's second turn got the three results, in the order of the calls.
    assert.deepEqual(received('json')[1].messages.slice(2), toolMessages);

    const row = await waitForRow(gw, id, TOKEN);
    assert.deepEqual(row.tool_calls.map((t) => [t.source, t.mcp_client, t.ok]).sort(), [
        ['agent', 'everything', true], ['agent', 'files', true], ['agent', 'memory', true],
    ]);
});

test('agent mode (stream, OpenAI SDK): the round is announced and reported, then the answer streams', { skip: SKIP }, async () => {
    const calls = streamedCalls('stream_three_servers', 0);
    const stream = await gw.client().chat.completions.create(ask('stream', 'stream it', { stream: true }));
    const got = await collectStream(stream);
    assert.equal(got.error, null, String(got.error));

    const events = got.chunks.filter((c) => c.gatehouse_agent).map((c) => c.gatehouse_agent);
    assert.deepEqual(events.map((e) => e.type), ['tool_calls', 'tool_results', 'done']);
    assert.deepEqual(events[0].message.tool_calls, calls);
    assert.deepEqual(events[0].executing, calls.map((c) => c.id));
    const results = [];
    for (const c of calls) results.push(await directCall(c.function.name, JSON.parse(c.function.arguments)));
    assert.deepEqual(events[1].messages, calls.map((c, i) => ({ role: 'tool', tool_call_id: c.id, content: toolText(results[i]) })));
    assert.equal(got.content, 'Asking all three. The sum is 5, one folder is shared, and done_check is remembered.');
    assert.equal(got.finishReason, 'stop');
    assert.deepEqual(got.toolCalls, []);
});

// ---- the MCP SDK at /mcp -------------------------------------------------------------------------

test('the MCP SDK client sees every tool of the three servers at /mcp and calls one of each', { skip: SKIP }, async () => {
    const client = new mcpSdk.Client({ name: 'e2e-mcp-done', version: '1.0.0' });
    await client.connect(new mcpSdk.StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`)));
    mcpClients.push(client);

    const listed = [];
    let cursor;
    do {
        const page = await client.listTools(cursor ? { cursor } : {});
        listed.push(...page.tools);
        cursor = page.nextCursor;
    } while (cursor);
    const expected = exposedTools();
    assert.deepEqual(listed.map((t) => t.name).sort(), expected.map((t) => t.name).sort());
    for (const t of expected) {
        const mine = listed.find((x) => x.name === t.name);
        assert.deepEqual({ ...mine, name: t.def.name }, t.def, `definition of ${t.name}`);
    }

    const before = await metrics();
    const nonce = crypto.randomBytes(6).toString('hex');
    const entity = { name: `mcp_${nonce}`, entityType: 'test', observations: ['through /mcp'] };
    const cases = [
        ['everything-echo', { message: `done ${nonce}` }],
        ['files-list_allowed_directories', {}],
        ['memory-create_entities', { entities: [entity] }],
    ];
    for (const [name, args] of cases) {
        const mine = await client.callTool({ name, arguments: args });
        assert.deepEqual(mine, await directCall(name, args), name);
    }

    // Each tools/call is a request in the log (path /mcp) with its tool call (source "mcp").
    const rows = await until(async () => {
        const r = await adminGet(gw, `/api/logs?q=${nonce}`, TOKEN);
        return r.status === 200 && r.json.data.length === 2 ? r.json.data : null;
    });
    assert.ok(rows, 'the /mcp requests that carried the nonce are in the log');
    for (const r of rows) {
        assert.equal(r.path, '/mcp');
        assert.equal(r.method, 'POST');
        assert.equal(r.dialect, 'mcp');
        assert.equal(r.status, 200);
        assert.equal(r.provider, null);
    }
    const all = [];
    for (const r of rows) all.push(...(await waitForRow(gw, r.id, TOKEN)).tool_calls);
    assert.deepEqual(all.map((t) => [t.source, t.mcp_client, t.tool, t.ok]).sort(), [
        ['mcp', 'everything', 'echo', true],
        ['mcp', 'memory', 'create_entities', true],
    ]);
    const echo = all.find((t) => t.tool === 'echo');
    assert.deepEqual(echo.arguments, { message: `done ${nonce}` });
    assert.deepEqual(echo.result, await directCall('everything-echo', { message: `done ${nonce}` }));
    const bodies = [];
    for (const r of rows) bodies.push((await waitForRow(gw, r.id, TOKEN)).request_body);
    assert.deepEqual(bodies.map((b) => [b.method, b.params.name]).sort(), [
        ['tools/call', 'everything-echo'], ['tools/call', 'memory-create_entities'],
    ]);

    const after = await metrics();
    for (const [client_, tool] of [['everything', 'echo'], ['files', 'list_allowed_directories'], ['memory', 'create_entities']]) {
        assert.equal(toolCount(after, client_, tool) - toolCount(before, client_, tool), 1, `${client_} ${tool}`);
    }
});

test('a tool call through /mcp that the client cancels is in the log as cancelled', { skip: SKIP }, async () => {
    // Every request of this client carries the id; only the POST that ran a call makes a row.
    const id = `mcp-done-cancel-${crypto.randomBytes(4).toString('hex')}`;
    const client = new mcpSdk.Client({ name: 'e2e-mcp-done-cancel', version: '1.0.0' });
    await client.connect(new mcpSdk.StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
        requestInit: { headers: { 'x-request-id': id } },
    }));
    mcpClients.push(client);
    const ac = new AbortController();
    const pending = client.callTool(
        { name: 'everything-trigger-long-running-operation', arguments: { duration: 10, steps: 2 } },
        undefined, { signal: ac.signal },
    ).catch((e) => e);
    await sleep(500);
    ac.abort();
    await pending;
    const row = await until(async () => {
        const r = await adminGet(gw, `/api/logs/${id}`, TOKEN);
        return r.status === 200 && r.json.tool_calls.length > 0 ? r.json : null;
    });
    assert.ok(row, `no row with a tool call for ${id}`);
    assert.equal(row.path, '/mcp');
    assert.deepEqual(row.tool_calls.map((t) => [t.source, t.tool, t.ok]), [['mcp', 'trigger-long-running-operation', false]]);
    // The SDK sends notifications/cancelled; were its POST cut instead, the row says so.
    assert.match(row.tool_calls[0].error, /^cancelled/);
});

// ---- the execute endpoint ------------------------------------------------------------------------

test('POST /v1/mcp/tool/execute: a request row with its tool call (source client)', { skip: SKIP }, async () => {
    const id = `mcp-done-exec-${crypto.randomBytes(4).toString('hex')}`;
    const call = { id: 'call_x', type: 'function', function: { name: 'files-list_allowed_directories', arguments: '' } };
    const res = await gw.post('/v1/mcp/tool/execute', call, { 'x-request-id': id });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.content, toolText(await directCall('files-list_allowed_directories', {})));

    const row = await waitForRow(gw, id, TOKEN);
    assert.equal(row.path, '/v1/mcp/tool/execute');
    assert.equal(row.status, 200);
    assert.deepEqual(row.response_body, res.json);
    assert.deepEqual(row.tool_calls.map((t) => [t.source, t.mcp_client, t.tool, t.ok]), [
        ['client', 'files', 'list_allowed_directories', true],
    ]);

    const missing = `mcp-done-exec404-${crypto.randomBytes(4).toString('hex')}`;
    const bad = await gw.post('/v1/mcp/tool/execute', { ...call, function: { name: 'files-nope' } }, { 'x-request-id': missing });
    assert.equal(bad.status, 404);
    const badRow = await waitForRow(gw, missing, TOKEN);
    assert.equal(badRow.status, 404);
    assert.equal(badRow.error_type, 'invalid_request_error');
    assert.match(badRow.error_message, /no MCP tool named files-nope/);
    assert.deepEqual(badRow.tool_calls, []);
});

test('clean shutdown', { skip: SKIP }, async () => {
    await checkShutdown(gw);
});
