// codemode_exec.test.mjs - the Code Mode executor end to end: the real gatehouse, the real
// gatehouse-sandbox beside it, server-everything over stdio as a code-mode client, scripts run
// through executeToolCode on POST /v1/mcp/tool/execute (the path a client in agent mode uses).
//
// What it checks (issue 4, docs/code-mode.md): the fixed answer format with the tool calls a
// script made; 50 scripts at once, each with its own tool calls, all answered correctly; an
// infinite loop ends with status timeout at the configured wall time and the gateway goes on;
// the helper killed with SIGKILL in the middle of a script fails that script cleanly and the
// next one works once the helper is back; the request log and metrics of the calls; an optional
// parameter passed as None is not sent (server-everything refuses a null for it).
// Skipped when tests/node_modules or the sandbox binary is absent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { startGateway, checkShutdown, gatehouseBin, isAsan, REPO_ROOT } from './harness.mjs';
import { adminGet, parseMetrics, sum, until, waitForRow } from './telemetry_util.mjs';

const EVERYTHING = path.join(REPO_ROOT, 'tests/node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const SANDBOX = path.join(path.dirname(gatehouseBin()), 'gatehouse-sandbox');
const SKIP = !fs.existsSync(EVERYTHING) ? `${EVERYTHING} missing: run npm ci in tests/`
    : !fs.existsSync(SANDBOX) ? `${SANDBOX} missing: run make` : false;
const WALL_MS = 3000;
const TOKEN = 'codemode-exec-admin-token-0123456789';
const CONCURRENT = 50;

let gw;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs a script through executeToolCode; returns the HTTP answer and its parsed outcome. */
async function run(code, headers = {}) {
    const res = await gw.post('/v1/mcp/tool/execute', {
        id: 'call_code',
        type: 'function',
        function: { name: 'executeToolCode', arguments: JSON.stringify({ code }) },
    }, headers);
    assert.equal(res.status, 200, res.text);
    return { res, out: parseOutcome(res.json.content) };
}

/** The fields of codemode_outcome_format's text (docs/code-mode.md). */
function parseOutcome(text) {
    const lines = text.split('\n');
    const status = /^status: (\w+) \(([\d.]+)ms\)$/.exec(lines[0]);
    assert.ok(status, `not an outcome: ${text}`);
    const o = { status: status[1], ms: Number(status[2]), calls: [], text };
    let i = 1;
    for (; i < lines.length; i++) {
        const l = lines[i];
        let m;
        if ((m = /^error: (.*)$/.exec(l))) o.error = m[1];
        else if ((m = /^hint: (.*)$/.exec(l))) o.hint = m[1];
        else if ((m = /^tool calls: (\d+)$/.exec(l))) o.nCalls = Number(m[1]);
        else if ((m = /^ {2}\d+\. (\S+) ([\d.]+)ms (ok|error: .*)$/.exec(l))) o.calls.push({ name: m[1], ok: m[3] === 'ok', error: m[3] });
        else if ((m = /^result: (.*)$/.exec(l))) o.result = m[1] === '(not set)' ? undefined : JSON.parse(m[1]);
        else if (/^output/.test(l)) break;
        else assert.fail(`unexpected line ${JSON.stringify(l)} in:\n${text}`);
    }
    o.output = /^output: \(none\)$/.test(lines[i]) ? '' : lines.slice(i + 1).join('\n');
    return o;
}

/** The zygote: the child of gatehouse running gatehouse-sandbox. */
function sandboxPid() {
    for (const d of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        try {
            const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            if (ppid !== gw.pid) continue;
            if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('gatehouse-sandbox')) return Number(d);
        } catch {
            // gone meanwhile
        }
    }
    return null;
}

const metrics = async () => parseMetrics((await gw.get('/metrics')).text);

before(async () => {
    if (SKIP) return;
    gw = await startGateway({
        threads: 2,
        sections: {
            admin: { token: TOKEN },
            logs: { enabled: true, content: true },
            metrics: { enabled: true },
            mcp: {
                client_configs: [{
                    name: 'everything',
                    connection_type: 'stdio',
                    stdio_config: { command: process.execPath, args: [EVERYTHING, 'stdio'] },
                    tools_to_execute: ['*'],
                    is_code_mode_client: true,
                }],
                tool_manager_config: { code_mode_limits: { wall_ms: WALL_MS } },
            },
        },
    });
    // The server connects and the helper starts in the background.
    const ready = await until(async () => {
        const r = await gw.post('/v1/mcp/tool/execute', {
            id: 'c', type: 'function',
            function: { name: 'executeToolCode', arguments: JSON.stringify({ code: 'result = everything.echo(message="up")' }) },
        });
        return r.status === 200 && /^status: ok/.test(r.json?.content ?? '');
    }, 60000, 200);
    assert.ok(ready, `Code Mode never became ready; stderr:\n${gw.stderr().slice(-3000)}`);
});

after(async () => {
    if (gw) await checkShutdown(gw);
});

test('a script chaining tools: the fixed answer, its calls, their log rows and metrics', { skip: SKIP }, async () => {
    assert.match(gw.stderr(), /sandbox: helper \d+ ready \(version/);
    const before = await metrics();
    const id = `cm-exec-${crypto.randomBytes(4).toString('hex')}`;
    const { res, out } = await run([
        'e = everything.echo(message="hello")',
        's = everything.get_sum(a=20, b=22)',
        'print("sum is", s)',
        'try:',
        '    everything.get_sum(a="x")',
        'except ToolError as err:',
        '    print("caught")',
        'result = {"echo": e, "sum": s}',
    ].join('\n'), { 'x-request-id': id });
    assert.equal(res.headers.get('x-gatehouse-tool-error'), 'false');
    assert.equal(out.status, 'ok', out.text);
    assert.deepEqual(out.result, { echo: 'Echo: hello', sum: 'The sum of 20 and 22 is 42.' });
    assert.equal(out.output, 'sum is The sum of 20 and 22 is 42.\ncaught\n');
    assert.equal(out.nCalls, 3);
    assert.deepEqual(out.calls.map((c) => [c.name, c.ok]), [
        ['everything.echo', true], ['everything.get_sum', true], ['everything.get_sum', false],
    ]);

    const row = await waitForRow(gw, id, TOKEN);
    const calls = row.tool_calls.filter((t) => t.source === 'code_mode');
    assert.deepEqual(calls.map((t) => [t.mcp_client, t.tool, t.ok]), [
        ['everything', 'echo', true], ['everything', 'get-sum', true], ['everything', 'get-sum', false],
    ]);
    assert.ok(calls.every((t) => t.execution_id === calls[0].execution_id && t.execution_id.startsWith(`${id}.cm`)));
    const args = calls[0].arguments;
    assert.deepEqual(typeof args === 'string' ? JSON.parse(args) : args, { message: 'hello' });

    const after = await metrics();
    const ok = (m) => sum(m, 'gatehouse_code_mode_executions_total', { outcome: 'ok' });
    assert.equal(ok(after) - ok(before), 1);
    const echo = (m) => sum(m, 'gatehouse_mcp_tool_calls_total', { mcp_client: 'everything', tool: 'echo' });
    assert.equal(echo(after) - echo(before), 1);
});

test('errors of the script: kind, message, line', { skip: SKIP }, async () => {
    let { res, out } = await run('x = 1\ny = x / 0\n');
    assert.equal(res.headers.get('x-gatehouse-tool-error'), 'true');
    assert.equal(out.status, 'runtime');
    assert.match(out.error, /^ZeroDivisionError: .* \(line 2\)$/);
    ({ out } = await run('def f(:\n  pass\n'));
    assert.equal(out.status, 'syntax');
    assert.match(out.error, /\(line 1\)$/);
    ({ out } = await run('everything.get_sum(a="x")\n'));
    assert.equal(out.status, 'tool');
    assert.match(out.error, /^ToolError: /);
    assert.equal(out.calls.length, 1);
    assert.equal(out.calls[0].ok, false);
});

test('an optional parameter passed as None is left out of the call, as the stubs mean', { skip: SKIP }, async () => {
    // get-annotated-message's includeImage is an optional boolean: server-everything refuses
    // a null for it, so this call succeeds only when None is not sent.
    const id = `cm-none-${crypto.randomBytes(4).toString('hex')}`;
    const { out } = await run([
        'm = everything.get_annotated_message(messageType="success", includeImage=None)',
        'result = "ok"',
    ].join('\n'), { 'x-request-id': id });
    assert.equal(out.status, 'ok', out.text);
    assert.deepEqual(out.calls.map((c) => [c.name, c.ok]), [['everything.get_annotated_message', true]]);
    const row = await waitForRow(gw, id, TOKEN);
    const args = row.tool_calls.find((t) => t.source === 'code_mode').arguments;
    assert.deepEqual(typeof args === 'string' ? JSON.parse(args) : args, { messageType: 'success' });
});

test('no code-mode tool left by the filter headers: 404 that says why', { skip: SKIP }, async () => {
    const res = await gw.post('/v1/mcp/tool/execute', {
        id: 'c', type: 'function', function: { name: 'listToolFiles', arguments: '{}' },
    }, { 'x-gatehouse-mcp-include-clients': 'nobody' });
    assert.equal(res.status, 404, res.text);
    assert.equal(res.json.error.code, 'tool_not_found');
    assert.match(res.json.error.message,
        /^listToolFiles: no Code Mode tool is available to this request: the code-mode MCP clients are connected, but .*x-gatehouse-mcp-include-clients/);
});

test(`${CONCURRENT} scripts at once, each with tool calls: all answered correctly`, { skip: SKIP }, async () => {
    const runs = Array.from({ length: CONCURRENT }, (_, i) => run([
        `a = everything.echo(message="run ${i}")`,
        `b = everything.get_sum(a=${i}, b=1000)`,
        'print(a)',
        'result = [a, b]',
    ].join('\n')));
    const outs = await Promise.all(runs);
    outs.forEach(({ out }, i) => {
        assert.equal(out.status, 'ok', `script ${i}: ${out.text}`);
        assert.deepEqual(out.result, [`Echo: run ${i}`, `The sum of ${i} and 1000 is ${i + 1000}.`], `script ${i}`);
        assert.equal(out.output, `Echo: run ${i}\n`);
        assert.deepEqual(out.calls.map((c) => [c.name, c.ok]), [['everything.echo', true], ['everything.get_sum', true]]);
    });
});

test('an infinite loop ends with status timeout at the wall time; the gateway goes on', { skip: SKIP }, async () => {
    const t0 = Date.now();
    const { out } = await run('while True:\n    pass\n');
    const took = Date.now() - t0;
    assert.equal(out.status, 'timeout', out.text);
    assert.match(out.error, new RegExp(`wall-clock limit of ${WALL_MS} ms`));
    assert.ok(took >= WALL_MS - 50 && took < WALL_MS + (isAsan() ? 5000 : 2000), `took ${took} ms`);
    const next = await run('result = everything.echo(message="after")');
    assert.equal(next.out.status, 'ok', next.out.text);
    assert.equal(next.out.result, 'Echo: after');
    const m = await metrics();
    assert.ok(sum(m, 'gatehouse_code_mode_executions_total', { outcome: 'timeout' }) >= 1);
});

test('the helper killed mid-script: the script fails cleanly, the next works after the restart', { skip: SKIP }, async () => {
    const pid = sandboxPid();
    assert.ok(pid, 'no gatehouse-sandbox child found');
    const pending = run('import time\nwhile True:\n    everything.echo(message="tick")\n');
    await sleep(500);
    process.kill(pid, 'SIGKILL');
    const { out } = await pending;
    assert.equal(out.status, 'internal', out.text);
    assert.match(out.error, /the sandbox stopped during the execution/);
    assert.ok(out.calls.length >= 1, 'the script made calls before the kill');

    // The next script waits for the new helper (within its wall time) or is retried once.
    let next = await run('result = everything.echo(message="back")');
    if (next.out.status !== 'ok') {
        await sleep(500);
        next = await run('result = everything.echo(message="back")');
    }
    assert.equal(next.out.status, 'ok', next.out.text);
    assert.equal(next.out.result, 'Echo: back');
    const newPid = sandboxPid();
    assert.ok(newPid && newPid !== pid, `the helper was not restarted (old ${pid}, now ${newPid})`);
    assert.match(gw.stderr(), new RegExp(`sandbox: helper ${pid} lost`));
    assert.ok(gw.alive());
});

test('a client that leaves mid-script: the script is killed, the gateway goes on', { skip: SKIP }, async () => {
    const ac = new AbortController();
    const pending = fetch(`${gw.url}/v1/mcp/tool/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'cm-exec-leaves' },
        body: JSON.stringify({ id: 'c', type: 'function', function: { name: 'executeToolCode', arguments: JSON.stringify({ code: 'while True:\n    pass\n' }) } }),
        signal: ac.signal,
    }).catch((e) => e);
    await sleep(400);
    ac.abort();
    await pending;
    const cancelled = await until(async () => /cm-exec-leaves.*Cancelled/.test(gw.stderr()), 3000);
    assert.ok(cancelled, 'the execution was not cancelled when its client left');
    const m = await metrics();
    assert.ok(sum(m, 'gatehouse_code_mode_executions_total', { outcome: 'cancelled' }) >= 1);
    const { out } = await run('result = 7 * 6');
    assert.equal(out.status, 'ok');
    assert.equal(out.result, 42);
});
