// mcp_execute.test.mjs - POST /v1/mcp/tool/execute against real MCP servers over stdio:
// server-everything, server-filesystem on a temporary folder, server-memory, the scripted fake
// server (tests/fixtures/mcp/fake_server.mjs: JSON-RPC errors) and the hub fixture
// (tests/fixtures/mcp/hub_server.mjs: a server the test can take down and bring back).
//
// What a tool answers is checked against a second opinion: the same server asked directly
// through the official SDK client, mapped as src/mcp/content.h says. Errors have OpenAI's shape
// and the statuses of docs/mcp.md. Skipped when tests/node_modules is absent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startGateway, checkShutdown, REPO_ROOT } from './harness.mjs';
import { assertErrorShape } from './checks.mjs';

const MODULES = path.join(REPO_ROOT, 'tests/node_modules/@modelcontextprotocol');
const EVERYTHING = path.join(MODULES, 'server-everything/dist/index.js');
const FILESYSTEM = path.join(MODULES, 'server-filesystem/dist/index.js');
const MEMORY = path.join(MODULES, 'server-memory/dist/index.js');
const FAKE = path.join(REPO_ROOT, 'tests/fixtures/mcp/fake_server.mjs');
const HUB_SERVER = path.join(REPO_ROOT, 'tests/fixtures/mcp/hub_server.mjs');
const SKIP = fs.existsSync(EVERYTHING) ? false : `${EVERYTHING} missing: run npm ci in tests/`;
const TIMEOUT_S = 2;
const PATH = '/v1/mcp/tool/execute';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let gw;
let tmp;
let sdk;

const stdio = (name, args, extra = {}) => ({
    name,
    connection_type: 'stdio',
    stdio_config: { command: process.execPath, args, ...(extra.envs ? { envs: extra.envs } : {}) },
    tools_to_execute: extra.tools ?? ['*'],
});

const call = (name, args, id = 'call_1') => ({
    id,
    type: 'function',
    function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) },
});
const exec = (body, headers) => gw.post(PATH, body, headers);

/** Waits until the tool answers 200 (its server is connected and listed). */
async function waitForTool(name, args = {}) {
    const deadline = Date.now() + 60000;
    let last;
    while (Date.now() < deadline) {
        last = await exec(call(name, args));
        if (last.status === 200) return last;
        await sleep(100);
    }
    assert.fail(`tool ${name} never became callable; last answer ${last?.status}: ${last?.text}`);
}

/** The text src/mcp/content.h makes of a CallToolResult with text blocks only. */
function textOf(result) {
    const text = result.content.map((b) => b.text).join('\n');
    return result.isError ? `Error: ${text}` : text;
}

/** The SDK's own view of a server: a client over stdio, used as the second opinion. */
async function sdkClient(args, env) {
    const { Client } = await import(path.join(MODULES, 'sdk/dist/esm/client/index.js'));
    const { StdioClientTransport } = await import(path.join(MODULES, 'sdk/dist/esm/client/stdio.js'));
    const client = new Client({ name: 'e2e-probe', version: '0' }, { capabilities: {} });
    await client.connect(new StdioClientTransport({ command: process.execPath, args, env, stderr: 'ignore' }));
    return client;
}

before(async () => {
    if (SKIP) return;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-mcp-exec-'));
    fs.mkdirSync(path.join(tmp, 'files'));
    fs.writeFileSync(path.join(tmp, 'files', 'note.txt'), 'written by the e2e test\nsecond line\n');
    sdk = await sdkClient([EVERYTHING, 'stdio']);
    gw = await startGateway({
        env: { MEMORY_FILE_PATH: path.join(tmp, 'memory.jsonl') },
        sections: {
            mcp: {
                client_configs: [
                    stdio('everything', [EVERYTHING, 'stdio']),
                    stdio('filesystem', [FILESYSTEM, path.join(tmp, 'files')]),
                    stdio('memory', [MEMORY], { envs: ['MEMORY_FILE_PATH'] }),
                    stdio('fake', [FAKE, 'normal']),
                    stdio('hub', [HUB_SERVER, '--down-file', path.join(tmp, 'down')]),
                    stdio('limited', [EVERYTHING, 'stdio'], { tools: ['echo'] }),
                ],
                tool_manager_config: { tool_execution_timeout: TIMEOUT_S },
            },
        },
    });
    for (const t of ['everything-echo', 'filesystem-list_allowed_directories', 'memory-read_graph',
        'fake-echo', 'hub-hello', 'limited-echo']) {
        await waitForTool(t, t === 'fake-echo' ? { message: 'x' } : {});
    }
});

after(async () => {
    if (sdk) await sdk.close();
    if (gw) await gw.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- results ------------------------------------------------------------------------------------

test('echo: the tool message, as the server answered', { skip: SKIP }, async () => {
    const res = await exec(call('everything-echo', { message: 'hello gateway' }, 'call_echo'));
    assert.equal(res.status, 200, res.text);
    const direct = await sdk.callTool({ name: 'echo', arguments: { message: 'hello gateway' } });
    assert.deepEqual(res.json, { role: 'tool', tool_call_id: 'call_echo', content: textOf(direct) });
    assert.equal(res.headers.get('x-gatehouse-tool-error'), 'false');
    assert.equal(res.headers.get('x-gatehouse-mcp-client'), 'everything');
    assert.ok(res.headers.get('x-request-id'));
});

test('arguments may be an object, and "" means none', { skip: SKIP }, async () => {
    const body = { id: 'c2', type: 'function', function: { name: 'everything-get-sum', arguments: { a: 2, b: 40 } } };
    const res = await exec(body);
    assert.equal(res.status, 200, res.text);
    const direct = await sdk.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
    assert.equal(res.json.content, textOf(direct));

    const none = await exec({ id: 'c3', function: { name: 'filesystem-list_allowed_directories', arguments: '' } });
    assert.equal(none.status, 200, none.text);
    assert.match(none.json.content, new RegExp(path.basename(tmp)));
});

test('?format=responses: function_call in, function_call_output out', { skip: SKIP }, async () => {
    const body = { type: 'function_call', call_id: 'fc_1', name: 'everything-echo', arguments: '{"message":"r"}' };
    const res = await exec(`${JSON.stringify(body)}`, {});
    assert.equal(res.status, 400, 'the chat shape is the default'); // no "id", no "function"
    const r = await gw.post(`${PATH}?format=responses`, body);
    assert.equal(r.status, 200, r.text);
    const direct = await sdk.callTool({ name: 'echo', arguments: { message: 'r' } });
    assert.deepEqual(r.json, { type: 'function_call_output', call_id: 'fc_1', output: textOf(direct) });

    const bad = await gw.post(`${PATH}?format=xml`, body);
    assert.equal(bad.status, 400, bad.text);
    assert.equal(assertErrorShape(bad, 'unknown format').param, 'format');
});

test('filesystem: reads a file the test wrote', { skip: SKIP }, async () => {
    const file = path.join(tmp, 'files', 'note.txt');
    const res = await exec(call('filesystem-read_text_file', { path: file }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.content, fs.readFileSync(file, 'utf8'));
});

test('memory: creates an entity and reads it back', { skip: SKIP }, async () => {
    const entity = { name: 'gatehouse_e2e', entityType: 'test', observations: ['made by mcp_execute'] };
    const made = await exec(call('memory-create_entities', { entities: [entity] }));
    assert.equal(made.status, 200, made.text);
    const read = await exec(call('memory-open_nodes', { names: ['gatehouse_e2e'] }));
    assert.equal(read.status, 200, read.text);
    const graph = JSON.parse(read.json.content);
    assert.deepEqual(graph.entities.map((e) => [e.name, e.entityType, e.observations]), [
        ['gatehouse_e2e', 'test', ['made by mcp_execute']],
    ]);
});

test('isError results are 200 with the error marked', { skip: SKIP }, async () => {
    const res = await exec(call('everything-echo', { message: 42 }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('x-gatehouse-tool-error'), 'true');
    const direct = await sdk.callTool({ name: 'echo', arguments: { message: 42 } });
    assert.equal(direct.isError, true);
    assert.equal(res.json.content, textOf(direct));
    assert.match(res.json.content, /^Error: /);
});

// ---- the request's errors -----------------------------------------------------------------------

test('malformed JSON: 400 with line and column', { skip: SKIP }, async () => {
    const res = await exec('{"id": "c",\n "function": {"name": "everything-echo",, }}');
    assert.equal(res.status, 400, res.text);
    const e = assertErrorShape(res, 'malformed JSON');
    assert.match(e.message, /line 2, column \d+/);
    assert.equal(e.type, 'invalid_request_error');
});

test('missing fields: 400 naming them', { skip: SKIP }, async () => {
    const cases = [
        [{ type: 'function', function: { name: 'everything-echo', arguments: '{}' } }, 'id'],
        [{ id: 'c' }, 'function'],
        [{ id: 'c', function: { arguments: '{}' } }, 'function.name'],
        [{ id: 'c', type: 'tool', function: { name: 'everything-echo' } }, 'type'],
        [[1, 2], null],
    ];
    for (const [body, param] of cases) {
        const res = await exec(body);
        assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
        assert.equal(assertErrorShape(res, JSON.stringify(body)).param, param);
    }
});

test('arguments that are not a JSON object: 400', { skip: SKIP }, async () => {
    for (const args of ['[1,2]', '"text"', '{"message": ', 42, [1]]) {
        const res = await exec({ id: 'c', function: { name: 'everything-echo', arguments: args } });
        assert.equal(res.status, 400, `${JSON.stringify(args)}: ${res.text}`);
        assert.equal(assertErrorShape(res, 'arguments').param, 'function.arguments');
    }
});

test('unknown tool: 404; a tool outside tools_to_execute is unknown too', { skip: SKIP }, async () => {
    for (const name of ['everything-no_such_tool', 'nobody-echo', 'limited-get-sum']) {
        const res = await exec(call(name, {}));
        assert.equal(res.status, 404, `${name}: ${res.text}`);
        assert.equal(assertErrorShape(res, name).code, 'tool_not_found');
    }
    const ok = await exec(call('limited-echo', { message: 'only me' }));
    assert.equal(ok.status, 200, ok.text);
});

test('a meta-tool without any code-mode client: 404 that says so', { skip: SKIP }, async () => {
    const res = await exec({ id: 'c', type: 'function', function: { name: 'executeToolCode', arguments: '{"code": "x = 1"}' } });
    assert.equal(res.status, 404, res.text);
    assert.equal(assertErrorShape(res, 'executeToolCode').code, 'tool_not_found');
    assert.match(res.json.error.message, /no MCP client of the configuration has "is_code_mode_client": true$/);
});

test('filter headers: 403 for a tool they leave out', { skip: SKIP }, async () => {
    const echo = call('everything-echo', { message: 'f' });
    const verdict = async (headers) => (await exec(echo, headers)).status;
    assert.equal(await verdict({ 'x-gatehouse-mcp-include-clients': 'memory,filesystem' }), 403);
    assert.equal(await verdict({ 'x-bf-mcp-include-clients': 'every*' }), 200);
    assert.equal(await verdict({ 'x-gatehouse-mcp-include-tools': 'filesystem-*' }), 403);
    assert.equal(await verdict({ 'x-gatehouse-mcp-include-tools': 'everything-*' }), 200);
    assert.equal(await verdict({ 'x-bf-mcp-include-tools': 'everything/echo' }), 200);
    assert.equal(await verdict({ 'x-gatehouse-mcp-include-tools': 'echo' }), 200); // bare name
    assert.equal(await verdict({ 'x-gatehouse-mcp-include-clients': '' }), 403); // empty = none
    // both spellings apply together
    assert.equal(await verdict({ 'x-gatehouse-mcp-include-tools': 'everything-*', 'x-bf-mcp-include-tools': 'get-*' }), 403);
    const res = await exec(echo, { 'x-gatehouse-mcp-include-clients': 'memory' });
    const e = assertErrorShape(res, 'filtered');
    assert.equal(e.code, 'tool_not_allowed');
    assert.equal(e.type, 'permission_error');
});

// ---- the server's errors ------------------------------------------------------------------------

test('JSON-RPC error from the server: 502 with its message', { skip: SKIP }, async () => {
    const res = await exec(call('fake-tool3', {}));
    assert.equal(res.status, 502, res.text);
    const e = assertErrorShape(res, 'JSON-RPC error');
    assert.equal(e.code, 'mcp_server_error');
    assert.match(e.message, /-32602/);
    assert.match(e.message, /no tool tool3/);
});

test('no answer within tool_execution_timeout: 504', { skip: SKIP }, async () => {
    const t0 = Date.now();
    const res = await exec(call('fake-slow', {}));
    const took = Date.now() - t0;
    assert.equal(res.status, 504, res.text);
    assert.equal(assertErrorShape(res, 'timeout').code, 'mcp_tool_timeout');
    assert.ok(took >= TIMEOUT_S * 1000 - 100 && took < TIMEOUT_S * 1000 + 10000, `took ${took} ms`);
    // the server was told, and the connection is still good
    const seen = await exec(call('fake-received', {}));
    assert.equal(seen.status, 200, seen.text);
    const msgs = JSON.parse(seen.json.content);
    const slow = msgs.find((m) => m.method === 'tools/call' && m.params.name === 'slow');
    assert.ok(msgs.some((m) => m.method === 'notifications/cancelled' && m.params.requestId === slow.id));
});

test('client unavailable: 503 while its server is down, 200 once it is back', { skip: SKIP }, async () => {
    const down = path.join(tmp, 'down');
    fs.writeFileSync(down, 'stay down');
    const bye = await exec(call('hub-exit', {}));
    assert.equal(bye.status, 200, bye.text);
    const deadline = Date.now() + 30000;
    let res;
    do {
        await sleep(100);
        res = await exec(call('hub-hello', {}));
    } while (res.status === 200 && Date.now() < deadline);
    assert.equal(res.status, 503, res.text);
    assert.equal(assertErrorShape(res, 'unavailable').code, 'mcp_client_unavailable');

    fs.rmSync(down);
    const back = await waitForTool('hub-hello');
    assert.equal(back.json.content, 'hello from hub_server');
});

test('a client that leaves cancels the call; the gateway goes on', { skip: SKIP }, async () => {
    const ac = new AbortController();
    const pending = fetch(gw.url + PATH, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(call('everything-trigger-long-running-operation', { duration: 5, steps: 5 })),
        signal: ac.signal,
    }).catch((e) => e);
    await sleep(300);
    ac.abort();
    assert.equal((await pending).name, 'AbortError');
    const deadline = Date.now() + 10000;
    while (!/client disconnected; cancelling tool call/.test(gw.stderr()) && Date.now() < deadline) await sleep(50);
    assert.match(gw.stderr(), /client disconnected; cancelling tool call everything-trigger-long-running-operation/);
    const ok = await exec(call('everything-echo', { message: 'after' }));
    assert.equal(ok.status, 200, ok.text);
});

test('reload: new tools_to_execute apply and removed clients go', { skip: SKIP }, async () => {
    const config = JSON.parse(fs.readFileSync(gw.configPath, 'utf8'));
    const clients = config.mcp.client_configs;
    clients.find((c) => c.name === 'limited').tools_to_execute = ['echo', 'get-sum'];
    config.mcp.client_configs = clients.filter((c) => c.name !== 'memory');
    fs.writeFileSync(gw.configPath, JSON.stringify(config, null, 2));
    process.kill(gw.pid, 'SIGHUP');

    const sum = await waitForTool('limited-get-sum', { a: 1, b: 2 });
    assert.equal(sum.json.content, textOf(await sdk.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })));
    const deadline = Date.now() + 30000;
    let gone = await exec(call('memory-read_graph', {}));
    while (gone.status !== 404 && Date.now() < deadline) {
        await sleep(100);
        gone = await exec(call('memory-read_graph', {}));
    }
    assert.equal(gone.status, 404, gone.text);
    const still = await exec(call('everything-echo', { message: 'kept' }));
    assert.equal(still.status, 200, still.text);
});

test('GET is not allowed', { skip: SKIP }, async () => {
    const res = await gw.get(PATH);
    assert.equal(res.status, 405, res.text);
    assertErrorShape(res, 'GET');
});

test('shutdown is clean', { skip: SKIP }, async () => {
    await checkShutdown(gw);
});
