// mcp_faults.test.mjs - MCP servers that misbehave, behind a running gateway: one killed in the
// middle of a call, one that never answers (not even initialize), one that exits at start, and
// one that floods its output. The rule: a server that dies or hangs never blocks
// inference; its calls fail with a clear error, it is reconnected with backoff, and its tools
// are unavailable meanwhile.
//
// Servers (stdio): server-everything (the one killed, and a healthy neighbour) and the scripted
// fake server (tests/fixtures/mcp/fake_server.mjs) in its mute and flood modes, plus a node
// one-liner that says why on stderr and exits with status 3. The model is the replay server's mock mode, so chat
// requests show which tools reached the model. The client-level versions of these faults are in
// tests/unit/test_mcp_client.c. Skipped when tests/node_modules is absent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { REPO_ROOT, startGateway, provider, checkShutdown, isAsan, sleep } from './harness.mjs';
import { assertErrorShape } from './checks.mjs';
import { adminToken, waitForRow, until } from './telemetry_util.mjs';

const MODULES = path.join(REPO_ROOT, 'tests', 'node_modules', '@modelcontextprotocol');
const EVERYTHING = path.join(MODULES, 'server-everything', 'dist', 'index.js');
const FAKE = path.join(REPO_ROOT, 'tests', 'fixtures', 'mcp', 'fake_server.mjs');
const SKIP = fs.existsSync(EVERYTHING) ? false : `${EVERYTHING} missing: run npm ci in tests/`;
const TOKEN = adminToken();
const TIMEOUT_S = 20; // tool_execution_timeout: far above what any answer here should take
const FLOOD_MIB = 256; // on stdout, as much on stderr: enough to last through this file

let gw;

const stdio = (name, args) => ({
    name,
    connection_type: 'stdio',
    stdio_config: { command: process.execPath, args },
    tools_to_execute: ['*'],
});
const call = (name, args = {}, id = 'call_f') => ({ id, type: 'function', function: { name, arguments: JSON.stringify(args) } });
const exec = (body, headers) => gw.post('/v1/mcp/tool/execute', body, headers);

/** The names of the tools a chat request carried to the model, and how long it took. */
async function toolsOfAChat() {
    gw.replay.reset();
    const t0 = Date.now();
    const res = await gw.post('/v1/chat/completions', {
        model: 'mock/gpt-4o-mini', messages: [{ role: 'user', content: 'which tools?' }],
    });
    const ms = Date.now() - t0;
    assert.equal(res.status, 200, res.text);
    const sent = gw.replay.received().at(-1).json;
    return { names: (sent.tools ?? []).map((t) => t.function.name), ms };
}

/** Process ids of the gateway's children whose command line contains marker. */
function childrenWith(marker) {
    const out = [];
    for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
        try {
            const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            if (ppid !== gw.pid) continue;
            if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker)) out.push(Number(pid));
        } catch {
            // the process ended while we looked
        }
    }
    return out;
}

function rssKiB(pid) {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]);
}

before(async () => {
    if (SKIP) return;
    gw = await startGateway({
        providers: (replay) => [provider('mock', { family: 'openai', baseUrl: replay.mockUrl('openai', 'faults') })],
        sections: {
            admin: { token: TOKEN },
            logs: { enabled: true, content: true },
            mcp: {
                client_configs: [
                    stdio('everything', [EVERYTHING, 'stdio']),
                    stdio('mute', [FAKE, 'mute']),
                    stdio('quitter', ['-e', "console.error('cannot open /no/such/folder'); process.exit(3)"]),
                    stdio('flood', [FAKE, 'flood', String(FLOOD_MIB)]),
                ],
                tool_manager_config: { tool_execution_timeout: TIMEOUT_S },
            },
        },
    });
    const ready = await until(async () => {
        const { names } = await toolsOfAChat();
        return names.includes('everything-echo') && names.includes('flood-echo');
    }, 60000, 100);
    assert.ok(ready, 'everything and flood never both listed');
});

after(async () => {
    if (gw) await gw.stop();
});

test('a server that floods its output: the gateway stays responsive, answers through the flood, stays bounded', { skip: SKIP }, async () => {
    const [flooder] = childrenWith('flood');
    const written = () => Number(/wchar:\s+(\d+)/.exec(fs.readFileSync(`/proc/${flooder}/io`, 'utf8'))[1]);
    const writtenBefore = written();
    const rssBefore = rssKiB(gw.pid);
    // While the flood runs (notifications on stdout, as much noise on stderr), every kind of
    // request is answered at once, the flooding server's own tools included.
    for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const health = await gw.get('/health');
        assert.equal(health.status, 200);
        const echo = await exec(call('flood-echo', { message: `through the flood ${i}` }));
        assert.equal(echo.status, 200, echo.text);
        assert.equal(echo.json.content, `Echo: through the flood ${i}`);
        const neighbour = await exec(call('everything-echo', { message: 'next door' }));
        assert.equal(neighbour.status, 200, neighbour.text);
        assert.ok(Date.now() - t0 < 5000, `round ${i} took ${Date.now() - t0} ms`);
    }
    const { ms } = await toolsOfAChat();
    // The requests above really met a flood: it went on while they were answered.
    const during = written() - writtenBefore;
    assert.ok(during > 1024 * 1024, `only ${during} bytes flooded during the requests`);
    assert.ok(ms < 5000, `a chat request took ${ms} ms during the flood`);
    // What it cost after many MiB went through (/proc/<pid>/io counts both streams).
    await sleep(1000);
    assert.ok(written() - writtenBefore > 8 * 1024 * 1024, 'the flood kept going');
    const growth = rssKiB(gw.pid) - rssBefore;
    // Not under AddressSanitizer: its quarantine keeps freed memory resident on purpose.
    if (!isAsan()) assert.ok(growth < 64 * 1024, `RSS grew by ${growth} KiB`);
    assert.ok(gw.stderr().length < 1024 * 1024, `gateway stderr is ${gw.stderr().length} bytes`);
    assert.doesNotMatch(gw.stderr(), /MCP server flood: /, 'the flooding server was never dropped');
});

test('a server that exits at start: backed off and logged, its tools never offered, the rest serves', { skip: SKIP }, async () => {
    const seen = await until(() => (gw.stderr().match(/MCP server quitter: server exited with status 3/g) ?? []).length >= 2, 20000);
    assert.ok(seen, `quitter's exits not logged twice:\n${gw.stderr().slice(-3000)}`);
    assert.match(gw.stderr(), /MCP server quitter: server exited with status 3; pending requests fail, reconnecting in \d+ ms/);
    // Why it ended is in the log at the default level: its last line on stderr.
    assert.match(gw.stderr(), /\[mcp:quitter\] MCP server ended before it was ready \(server exited with status 3\); its last line on stderr: cannot open \/no\/such\/folder\n/);

    const { names } = await toolsOfAChat();
    assert.ok(names.includes('everything-echo'));
    assert.deepEqual(names.filter((n) => n.startsWith('quitter-')), []);
    const res = await exec(call('quitter-anything'));
    assert.equal(res.status, 404, res.text);
    assert.equal(assertErrorShape(res, 'unknown tool').code, 'tool_not_found');
});

test('a server that never answers: nothing waits for it, its tools never appear', { skip: SKIP }, async () => {
    // The mute server takes every message and answers none, initialize included.
    for (let i = 0; i < 3; i++) {
        const { names, ms } = await toolsOfAChat();
        assert.ok(ms < 3000, `a chat request took ${ms} ms`);
        assert.deepEqual(names.filter((n) => n.startsWith('mute-')), []);
        assert.ok(names.includes('everything-echo'));
    }
    const res = await exec(call('mute-echo', { message: 'x' }));
    assert.equal(res.status, 404, res.text);
    const health = await gw.get('/health');
    assert.equal(health.status, 200);
});

test('a server killed in the middle of a call: the call fails at once with 502, the server comes back', { skip: SKIP }, async () => {
    const [pid] = childrenWith('server-everything');
    assert.ok(pid > 0, 'server-everything runs as a child of the gateway');
    const id = `fault-kill-${Date.now()}`;
    const t0 = Date.now();
    const pending = exec(call('everything-trigger-long-running-operation', { duration: 15, steps: 3 }), { 'x-request-id': id });
    await sleep(500);
    process.kill(pid, 'SIGKILL');
    const res = await pending;
    const took = Date.now() - t0;

    assert.equal(res.status, 502, res.text);
    const e = assertErrorShape(res, 'killed mid-call');
    assert.equal(e.code, 'mcp_transport_error');
    assert.match(e.message, /killed by signal 9/);
    assert.ok(took < 10000, `the failure took ${took} ms: it waited for the call instead of the process`);
    assert.match(gw.stderr(), /MCP server everything: server was killed by signal 9 \(\w+\); pending requests fail, reconnecting in \d+ ms/);

    const row = await waitForRow(gw, id, TOKEN);
    assert.equal(row.status, 502);
    assert.deepEqual(row.tool_calls.map((t) => [t.source, t.tool, t.ok]), [['client', 'trigger-long-running-operation', false]]);
    assert.match(row.tool_calls[0].error, /killed by signal 9/);

    // Restarted with backoff: a new process, and the tools answer again.
    const back = await until(async () => (await exec(call('everything-echo', { message: 'back' }))).status === 200, 30000, 100);
    assert.ok(back, 'everything never came back');
    const [again] = childrenWith('server-everything');
    assert.ok(again > 0 && again !== pid, `a new server process (was ${pid}, now ${again})`);
});

test('clean shutdown with a hung and a restarting server', { skip: SKIP }, async () => {
    await checkShutdown(gw);
});
