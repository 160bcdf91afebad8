// codemode.test.mjs - Code Mode end to end: gatehouse with server-everything, server-filesystem
// and server-memory as code-mode clients (plus one classic client), the upstream model scripted
// by the replay server (tests/fixtures/e2e/codemode, written by make.mjs there), driven through
// the official openai client and the MCP SDK client; scripts run in the real gatehouse-sandbox.
//
// What is checked: the meta-tools replace the code-mode clients' tools in chat requests (the
// classic client keeps its tool); a full session - listToolFiles, readToolFile, getToolDocs,
// then a script that chains five tools of three servers and filters their output - runs in
// agent mode, and every answer reaches the model, in JSON and streamed; scripts that call a tool outside
// tools_to_auto_execute, or call tools in a way that cannot be read before they run, go back
// to the client, which runs them through /v1/mcp/tool/execute; a syntax error is answered by
// gatehouse; /mcp serves the meta-tools to the MCP SDK client; the filter headers narrow what
// the meta-tools see.
//
// Expected values come from the MCP servers themselves (asked through the MCP SDK), from the
// files this test writes, from the fixtures, and from the stub golden files of
// tests/fixtures/codemode (generated from the same servers' schemas), never typed in twice.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { REPO_ROOT, startGateway, startReplay, provider, checkShutdown, collectStream } from './harness.mjs';
import { fixture } from './recorded.mjs';
import { adminToken, waitForRow, until } from './telemetry_util.mjs';

const MODULES = path.join(REPO_ROOT, 'tests', 'node_modules', '@modelcontextprotocol');
const EVERYTHING = path.join(MODULES, 'server-everything', 'dist', 'index.js');
const FILESYSTEM = path.join(MODULES, 'server-filesystem', 'dist', 'index.js');
const MEMORY = path.join(MODULES, 'server-memory', 'dist', 'index.js');
const GOLDEN = path.join(REPO_ROOT, 'tests', 'fixtures', 'codemode', 'golden');
const META = ['listToolFiles', 'readToolFile', 'getToolDocs', 'executeToolCode'];
const TOKEN = adminToken();

const NOTES = {
    'alpha.txt': 'gatehouse is written in C11\nIt has Code Mode\n',
    'beta.txt': 'bifrost is written in Go\n',
    'gamma.md': '# not a .txt file\nthis is written in Markdown\n',
};

let replay;
let gw;
let tmp;
let root; // the filesystem server's allowed directory
const url = {};
const sdk = {}; // client name -> {client, tools}
const mcpClients = [];

async function probe(args, env = {}) {
    const client = new Client({ name: 'gatehouse-codemode-probe', version: '0' }, { capabilities: {} });
    await client.connect(new StdioClientTransport({
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

function received(name) {
    return replay.received(replay.pathOf(url[name])).map((r) => r.json);
}

function ask(model, text, extra = {}) {
    return { model: `${model}/gpt-4o-mini`, messages: [{ role: 'user', content: text }], ...extra };
}

function turnMessage(name, i) {
    return fixture('codemode', name).interactions[i].response.body.json.choices[0].message;
}

/** The tool message answering a call id in a conversation. */
function toolAnswer(messages, id) {
    const m = messages.find((x) => x.role === 'tool' && x.tool_call_id === id);
    assert.ok(m, `no tool message for ${id} in ${JSON.stringify(messages.map((x) => x.role))}`);
    return m.content;
}

/** The fields of executeToolCode's answer (docs/code-mode.md): status, result, output. */
function outcome(text) {
    const status = /^status: (\w+)/.exec(text)?.[1];
    const resultLine = text.split('\n').find((l) => l.startsWith('result: '));
    const result = resultLine && resultLine !== 'result: (not set)' ? JSON.parse(resultLine.slice(8)) : undefined;
    const at = text.indexOf('\noutput:\n');
    const output = at >= 0 ? text.slice(at + 9) : '';
    return { status, result, output, text };
}

/** What CHAIN_SCRIPT must compute, from the notes this test wrote and the servers' own answers. */
async function expectedChain() {
    const files = Object.keys(NOTES).filter((n) => n.endsWith('.txt')).sort();
    const facts = files.flatMap((n) => NOTES[n].split('\n').filter((l) => l.includes('written in')));
    const c11 = facts.filter((f) => f.includes('C11')).map((f) => f.split(' ')[0]);
    const sum = await sdk.everything.client.callTool({ name: 'get-sum', arguments: { a: files.length, b: c11.length } });
    return { files, facts, c11, sum: sum.content[0].text };
}

async function connectMcp(headers = {}) {
    const client = new Client({ name: 'e2e-codemode', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), { requestInit: { headers } }));
    mcpClients.push(client);
    return client;
}

/** Waits until every server is connected: listToolFiles names the three code-mode ones, and
 * the classic one answers. */
async function waitForServers() {
    const ready = await until(async () => {
        const list = await gw.post('/v1/mcp/tool/execute', {
            id: 'ready', type: 'function', function: { name: 'listToolFiles', arguments: '{}' },
        });
        const plain = await gw.post('/v1/mcp/tool/execute', {
            id: 'ready', type: 'function', function: { name: 'plain-echo', arguments: '{"message":"ready"}' },
        });
        return list.status === 200 && plain.status === 200 &&
            ['everything', 'filesystem', 'memory'].every((s) => list.json.content.includes(`  ${s}.pyi`));
    }, 30000, 100);
    assert.ok(ready, 'the MCP servers never connected');
}

before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-codemode-'));
    fs.mkdirSync(path.join(tmp, 'root', 'notes'), { recursive: true });
    root = fs.realpathSync(path.join(tmp, 'root'));
    for (const [name, text] of Object.entries(NOTES)) fs.writeFileSync(path.join(root, 'notes', name), text);

    sdk.everything = await probe([EVERYTHING]);
    sdk.filesystem = await probe([FILESYSTEM, root]);
    sdk.memory = await probe([MEMORY], { MEMORY_FILE_PATH: path.join(tmp, 'probe-memory.jsonl') });

    replay = await startReplay({ port: 0 });
    for (const name of ['session', 'client_exec', 'syntax_fix', 'stream_session']) url[name] = replay.fixtureUrl('codemode', name);
    url.mock = replay.mockUrl('openai', 'codemode-inject');
    gw = await startGateway({
        replay,
        providers: Object.keys(url).map((name) => provider(name, { family: 'openai', baseUrl: url[name], maxRetries: 0 })),
        env: { MEMORY_FILE_PATH: path.join(tmp, 'gatehouse-memory.jsonl') },
        sections: {
            admin: { token: TOKEN },
            logs: { enabled: true, content: true },
            mcp: {
                client_configs: [
                    {
                        name: 'everything',
                        connection_type: 'stdio',
                        stdio_config: { command: process.execPath, args: [EVERYTHING] },
                        tools_to_execute: ['*'],
                        tools_to_auto_execute: ['echo', 'get-sum'],
                        is_code_mode_client: true,
                    },
                    {
                        name: 'filesystem',
                        connection_type: 'stdio',
                        stdio_config: { command: process.execPath, args: [FILESYSTEM, root] },
                        tools_to_execute: ['*'],
                        tools_to_auto_execute: ['list_allowed_directories', 'list_directory', 'read_text_file'],
                        is_code_mode_client: true,
                    },
                    {
                        name: 'memory',
                        connection_type: 'stdio',
                        stdio_config: { command: process.execPath, args: [MEMORY], envs: ['MEMORY_FILE_PATH'] },
                        tools_to_execute: ['*'],
                        tools_to_auto_execute: ['*'],
                        is_code_mode_client: true,
                    },
                    {
                        name: 'plain',
                        connection_type: 'stdio',
                        stdio_config: { command: process.execPath, args: [EVERYTHING] },
                        tools_to_execute: ['echo'],
                    },
                ],
            },
        },
    });
    await waitForServers();
});

after(async () => {
    for (const c of mcpClients) await c.close().catch(() => {});
    if (gw) await checkShutdown(gw);
    if (replay) await replay.close();
    for (const p of Object.values(sdk)) await p.client.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => replay.reset());

// ---- injection -------------------------------------------------------------------------------

test('code-mode clients reach the model as the four meta-tools; the classic client keeps its tool', async () => {
    const weather = {
        type: 'function',
        function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
    };
    const res = await gw.client().chat.completions.create(ask('mock', 'which tools?', { tools: [weather] }));
    assert.equal(res.object, 'chat.completion');

    const sent = received('mock')[0].tools;
    assert.deepEqual(sent[0], weather, 'caller tools first');
    const names = sent.map((t) => t.function.name);
    assert.deepEqual(names, ['get_weather', 'plain-echo', ...META]);
    for (const t of sent.slice(2)) {
        assert.equal(t.type, 'function');
        assert.equal(t.function.parameters.type, 'object');
        assert.ok(t.function.description.length > 100, `${t.function.name} explains itself`);
    }
    const exec = sent.find((t) => t.function.name === 'executeToolCode').function;
    assert.deepEqual(exec.parameters.required, ['code']);
    assert.match(exec.description, /result = everything\.echo\(message="hi"\)/);
    assert.match(exec.description, /ToolError/);
    assert.match(exec.description, /no files, no network/);
    assert.match(sent.find((t) => t.function.name === 'listToolFiles').function.description,
        /listToolFiles\(\).*readToolFile\(fileName\).*executeToolCode\(code\)/s);
});

test('the include headers narrow the meta-tools: none without a code-mode client, fewer files with one', async () => {
    await gw.client().chat.completions.create(ask('mock', 'x'), { headers: { 'x-gatehouse-mcp-include-clients': 'plain' } });
    assert.deepEqual(received('mock')[0].tools.map((t) => t.function.name), ['plain-echo']);

    const headers = { 'x-gatehouse-mcp-include-clients': 'memory' };
    await gw.client().chat.completions.create(ask('mock', 'x'), { headers });
    assert.deepEqual(received('mock')[1].tools.map((t) => t.function.name), META);

    const r = await gw.post('/v1/mcp/tool/execute',
        { id: 'c1', type: 'function', function: { name: 'listToolFiles', arguments: '{}' } }, headers);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-gatehouse-tool-error'), 'false');
    assert.equal(r.json.content.split('\n').slice(0, 2).join('\n'),
        `servers/\n  memory.pyi (${sdk.memory.tools.length} tools)`);
    assert.ok(!r.json.content.includes('everything'));
});

// ---- agent mode ------------------------------------------------------------------------------

test('agent mode: a full session - list, read, docs, one script chaining five tools of three servers', async () => {
    const RID = `codemode-session-${Date.now()}`;
    const res = await gw.client().chat.completions.create(ask('session', 'which of my notes is about C11?'),
        { headers: { 'x-request-id': RID } });
    const fx = fixture('codemode', 'session');
    assert.equal(res.choices[0].message.content, turnMessage('session', 3).content);
    assert.equal(res.gatehouse_agent.steps, 4);
    assert.equal(received('session').length, fx.interactions.length);

    // Turn 2 got the tree, with the servers' real tool counts.
    const turn2 = received('session')[1].messages;
    const tree = toolAnswer(turn2, 'call_list');
    const counts = ['everything', 'filesystem', 'memory'].map((s) => `  ${s}.pyi (${sdk[s].tools.length} tools)`);
    assert.equal(tree.split('\n').slice(0, 4).join('\n'), ['servers/', ...counts].join('\n'));
    assert.match(tree, /readToolFile\(fileName="servers\/everything\.pyi"\)/);

    // Turn 3 got the stub, exactly the golden file (made from the same servers' schemas), and
    // the docs of memory.search_nodes with its real parameter.
    const turn3 = received('session')[2].messages;
    const stub = fs.readFileSync(path.join(GOLDEN, 'server', 'filesystem.pyi'), 'utf8');
    const lines = stub.split('\n').length - 1;
    assert.equal(toolAnswer(turn3, 'call_read'), `# servers/filesystem.pyi: ${lines} lines\n${stub}`);
    const docs = toolAnswer(turn3, 'call_docs');
    const search = sdk.memory.tools.find((t) => t.name === 'search_nodes');
    assert.match(docs, /^memory\.search_nodes: tool "search_nodes" of MCP server "memory"\n/);
    assert.ok(docs.includes(`  query: str, required - ${search.inputSchema.properties.query.description}`), docs);
    assert.ok(docs.includes('  result = memory.search_nodes(query="...")'), docs);

    // Turn 4 got the script's outcome: its result, computed here independently.
    const turn4 = received('session')[3].messages;
    const out = outcome(toolAnswer(turn4, 'call_exec'));
    assert.equal(out.status, 'ok', out.text);
    const want = await expectedChain();
    assert.deepEqual(out.result, want);
    assert.equal(out.output, `files: ${want.files.join(', ')}\n`);
    for (const tool of ['filesystem.list_allowed_directories', 'filesystem.list_directory',
        'filesystem.read_text_file', 'memory.create_entities', 'memory.search_nodes', 'everything.get_sum']) {
        assert.ok(out.text.includes(tool), `${tool} in the list of calls:\n${out.text}`);
    }

    // The conversation the client gets back holds every step.
    const steps = res.gatehouse_agent.messages;
    assert.deepEqual(steps.filter((m) => m.role === 'tool').map((m) => m.tool_call_id),
        ['call_list', 'call_read', 'call_docs', 'call_exec']);

    // The script's tool calls are in the request log, source code_mode, under this request.
    const row = await waitForRow(gw, RID, TOKEN);
    const made = [
        'everything.get-sum', 'filesystem.list_allowed_directories', 'filesystem.list_directory',
        ...want.files.map(() => 'filesystem.read_text_file'), 'memory.create_entities', 'memory.search_nodes',
    ];
    const inner = await until(async () => {
        const r = await waitForRow(gw, RID, TOKEN);
        const rows = (r.tool_calls ?? []).filter((t) => t.source === 'code_mode');
        return rows.length >= made.length ? rows : null;
    });
    assert.ok(inner, `code_mode rows: ${JSON.stringify(row.tool_calls)}`);
    assert.deepEqual(inner.map((t) => `${t.mcp_client}.${t.tool}`).sort(), made.sort());
    assert.ok(inner.every((t) => t.ok), JSON.stringify(inner));
});

test('agent mode: scripts that write, or call tools dynamically, go back to the client, which runs them itself', async () => {
    const res = await gw.client().chat.completions.create(ask('client_exec', 'write a summary'));
    const msg = res.choices[0].message;
    assert.equal(res.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(msg.tool_calls, turnMessage('client_exec', 0).tool_calls, 'both calls, as the model made them');
    assert.equal(res.gatehouse_agent, undefined, 'gatehouse ran nothing');
    assert.ok(!fs.existsSync(path.join(root, 'notes', 'summary.txt')), 'nothing written yet');

    // The client runs both through the execute endpoint.
    const answers = [];
    for (const call of msg.tool_calls) {
        const r = await gw.post('/v1/mcp/tool/execute', call);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.tool_call_id, call.id);
        answers.push(r.json);
    }
    const written = outcome(answers[0].content);
    assert.equal(written.status, 'ok', written.text);
    assert.equal(written.result, '2 gateways\n');
    assert.equal(fs.readFileSync(path.join(root, 'notes', 'summary.txt'), 'utf8'), '2 gateways\n');
    const dynamic = outcome(answers[1].content);
    assert.equal(dynamic.status, 'ok', dynamic.text);
    const echo = await sdk.everything.client.callTool({ name: 'echo', arguments: { message: 'dynamic' } });
    assert.equal(dynamic.result, echo.content[0].text);

    // ... and continues the conversation.
    const next = await gw.client().chat.completions.create({
        model: 'client_exec/gpt-4o-mini',
        messages: [{ role: 'user', content: 'write a summary' }, msg, ...answers],
    });
    assert.equal(next.choices[0].message.content, turnMessage('client_exec', 1).content);
    const sent = received('client_exec')[1].messages;
    assert.equal(toolAnswer(sent, 'call_write'), answers[0].content);
    fs.rmSync(path.join(root, 'notes', 'summary.txt'));
});

test('agent mode: a syntax error is answered by gatehouse, with its line, and the fixed script runs', async () => {
    const res = await gw.client().chat.completions.create(ask('syntax_fix', 'echo hi'));
    assert.equal(res.choices[0].message.content, turnMessage('syntax_fix', 2).content);
    const bad = outcome(toolAnswer(received('syntax_fix')[1].messages, 'call_bad'));
    assert.equal(bad.status, 'syntax', bad.text);
    assert.match(bad.text, /line 1/);
    const good = outcome(toolAnswer(received('syntax_fix')[2].messages, 'call_good'));
    assert.equal(good.status, 'ok', good.text);
    const echo = await sdk.everything.client.callTool({ name: 'echo', arguments: { message: 'hi' } });
    assert.equal(good.result, echo.content[0].text);
});

test('agent mode, streamed: the tree and a script in one turn, run by gatehouse, then the answer', async () => {
    const got = await collectStream(await gw.client().chat.completions.create(
        ask('stream_session', 'stream it', { stream: true, stream_options: { include_usage: true } })));
    assert.equal(got.error, null, String(got.error));
    const turns = fixture('codemode', 'stream_session').interactions.map((it) =>
        it.response.body.text.split('\n\n').filter((e) => e.startsWith('data: {'))
            .map((e) => JSON.parse(e.slice(6))));
    const text = (chunks) => chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    const usage = (chunks) => chunks.find((c) => c.usage).usage;
    assert.equal(got.content, text(turns[0]) + text(turns[1]));
    assert.deepEqual(got.toolCalls, [], 'gatehouse ran both calls: no tool call deltas');
    assert.equal(got.finishReason, 'stop');

    const events = got.chunks.filter((c) => c.gatehouse_agent).map((c) => c.gatehouse_agent);
    assert.deepEqual(events.map((e) => e.type), ['tool_calls', 'tool_results', 'done']);
    assert.deepEqual(events[0].executing, ['call_slist', 'call_sexec']);
    const [list, exec] = events[1].messages;
    assert.equal(list.tool_call_id, 'call_slist');
    assert.match(list.content, /^servers\/\n {2}everything\.pyi/);
    const out = outcome(exec.content);
    assert.equal(out.status, 'ok', out.text);
    const echo = await sdk.everything.client.callTool({ name: 'echo', arguments: { message: 'streamed' } });
    const sum = await sdk.everything.client.callTool({ name: 'get-sum', arguments: { a: 20, b: 22 } });
    assert.deepEqual(out.result, { said: echo.content[0].text, total: sum.content[0].text });
    assert.equal(out.output, `${echo.content[0].text}\n`);
    assert.deepEqual(received('stream_session')[1].messages.filter((m) => m.role === 'tool'), events[1].messages);
    assert.equal(got.usageChunks.length, 1);
    assert.equal(got.usageChunks[0].usage.prompt_tokens,
        usage(turns[0]).prompt_tokens + usage(turns[1]).prompt_tokens);
});

// ---- the execute endpoint and /mcp -----------------------------------------------------------

test('/v1/mcp/tool/execute: the meta-tools answer mistakes as tool errors that name what exists', async () => {
    const call = (name, args) => gw.post('/v1/mcp/tool/execute',
        { id: 'c', type: 'function', function: { name, arguments: JSON.stringify(args) } });
    let r = await call('readToolFile', { fileName: '../../etc/passwd' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-gatehouse-tool-error'), 'true');
    assert.match(r.json.content, /may not contain ".."/);
    assert.match(r.json.content, /servers\/everything\.pyi, servers\/filesystem\.pyi, servers\/memory\.pyi/);

    r = await call('getToolDocs', { server: 'everything', tool: 'nope' });
    assert.equal(r.headers.get('x-gatehouse-tool-error'), 'true');
    for (const t of sdk.everything.tools) assert.ok(r.json.content.includes(t.name.replaceAll('-', '_')), t.name);

    r = await call('executeToolCode', { code: 'result = 6 * 7' });
    assert.equal(r.headers.get('x-gatehouse-tool-error'), 'false');
    assert.equal(outcome(r.json.content).result, 42);

    r = await call('executeToolCode', { code: 'everything.echo(message=1/0)' });
    assert.equal(r.headers.get('x-gatehouse-tool-error'), 'true');
    assert.equal(outcome(r.json.content).status, 'runtime');

    r = await gw.post('/v1/mcp/tool/execute?format=responses',
        { type: 'function_call', call_id: 'r1', name: 'listToolFiles', arguments: '{}' });
    assert.equal(r.status, 200);
    assert.equal(r.json.type, 'function_call_output');
    assert.match(r.json.output, /^servers\//);
});

test('/mcp serves the meta-tools in place of the code-mode tools, to the MCP SDK client', async () => {
    const client = await connectMcp();
    const tools = (await client.listTools()).tools;
    assert.deepEqual(tools.map((t) => t.name), [...META, 'plain-echo']);
    assert.deepEqual(tools[1].inputSchema.required, ['fileName']);

    const list = await client.callTool({ name: 'listToolFiles', arguments: {} });
    assert.equal(list.isError, false);
    assert.match(list.content[0].text, /^servers\/\n {2}everything\.pyi/);

    const stub = await client.callTool({ name: 'readToolFile', arguments: { fileName: 'memory.pyi', startLine: 1, endLine: 2 } });
    assert.match(stub.content[0].text, /^# servers\/memory\.pyi: \d+ lines, showing 1-2\n# memory: /);

    const code = 'x = memory.read_graph()\nresult = sorted(e["name"] for e in x["entities"])\n';
    const run = await client.callTool({ name: 'executeToolCode', arguments: { code } });
    assert.equal(run.isError, false, run.content[0].text);
    const graph = outcome(run.content[0].text).result;
    assert.ok(Array.isArray(graph), run.content[0].text);

    const bad = await client.callTool({ name: 'executeToolCode', arguments: { code: 'raise ValueError("no")' } });
    assert.equal(bad.isError, true);
    assert.match(bad.content[0].text, /ValueError/);

    // The code-mode tools themselves are not served; the classic one is.
    await assert.rejects(client.callTool({ name: 'everything-echo', arguments: { message: 'x' } }), /Unknown tool/);
    const echo = await client.callTool({ name: 'plain-echo', arguments: { message: 'classic' } });
    assert.match(echo.content[0].text, /classic/);

    // With a filter that leaves no code-mode client, no meta-tools either.
    const narrowed = await connectMcp({ 'x-gatehouse-mcp-include-clients': 'plain' });
    assert.deepEqual((await narrowed.listTools()).tools.map((t) => t.name), ['plain-echo']);
});

test('binding level "tool": one stub per tool, named by its Python name, the same text as the golden file', async () => {
    const g = await startGateway({
        replay,
        providers: [provider('mock', { family: 'openai', baseUrl: url.mock, maxRetries: 0 })],
        env: { MEMORY_FILE_PATH: path.join(tmp, 'tool-level-memory.jsonl') },
        sections: {
            mcp: {
                client_configs: [{
                    name: 'memory',
                    connection_type: 'stdio',
                    stdio_config: { command: process.execPath, args: [MEMORY], envs: ['MEMORY_FILE_PATH'] },
                    tools_to_execute: ['*'],
                    is_code_mode_client: true,
                }],
                tool_manager_config: { code_mode_binding_level: 'tool' },
            },
        },
    });
    try {
        const call = (name, args) => g.post('/v1/mcp/tool/execute',
            { id: 't', type: 'function', function: { name, arguments: JSON.stringify(args) } });
        const tree = await until(async () => {
            const r = await call('listToolFiles', {});
            return r.status === 200 && r.json.content.startsWith('servers/') ? r.json.content : null;
        }, 30000, 100);
        assert.ok(tree, 'memory never connected');
        const names = sdk.memory.tools.map((t) => t.name).sort();
        assert.equal(tree.split('\n').slice(0, names.length + 2).join('\n'),
            ['servers/', '  memory/', ...names.map((n) => `    ${n}.pyi`)].join('\n'));

        const stub = fs.readFileSync(path.join(GOLDEN, 'tool', 'memory', 'read_graph.pyi'), 'utf8');
        const r = await call('readToolFile', { fileName: 'servers/memory/read_graph.pyi' });
        assert.equal(r.json.content, `# servers/memory/read_graph.pyi: ${stub.split('\n').length - 1} lines\n${stub}`);
        const whole = await call('readToolFile', { fileName: 'servers/memory.pyi' });
        assert.equal(whole.headers.get('x-gatehouse-tool-error'), 'true', 'no server file at this level');
    } finally {
        await checkShutdown(g);
    }
});
