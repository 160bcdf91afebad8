// bench.mjs - Code Mode round trips against direct tool calls (bench/codemode/README.md).
//
// One gatehouse (the build under test, with gatehouse-sandbox beside it) and two MCP clients
// over stdio that are both @modelcontextprotocol/server-everything: "cm" is a code-mode client,
// "plain" a classic one. Measured sequentially, one request at a time, from the client's side:
//
//   empty   executeToolCode with the script "pass"
//   three   executeToolCode with a script making three tool calls (echo, get_sum, echo)
//   direct  the same three calls as three POST /v1/mcp/tool/execute, one after the other
//
// Prints a Markdown table (median and p99 in ms) and writes the raw samples as JSON. For the
// scripts it also reports the duration the executor itself measured (the status line's), from
// handing the script to the hub thread to its end. BENCH_SANDBOX=<path> runs another helper
// (GATEHOUSE_SANDBOX), e.g. tests/fixtures/codemode/fake_sandbox.py to see the cost of the
// confinement apart from the executor's.

import fs from 'node:fs';
import path from 'node:path';

import { startGateway, REPO_ROOT } from '../../tests/e2e/harness.mjs';

const N = Number(process.env.BENCH_N ?? 300);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 30);
const OUT = process.env.BENCH_OUT ?? path.join(REPO_ROOT, 'bench/results/codemode.json');
const EVERYTHING = path.join(REPO_ROOT, 'tests/node_modules/@modelcontextprotocol/server-everything/dist/index.js');

const client = (name, codeMode) => ({
    name,
    connection_type: 'stdio',
    stdio_config: { command: process.execPath, args: [EVERYTHING, 'stdio'] },
    tools_to_execute: ['*'],
    is_code_mode_client: codeMode,
});

const body = (name, args) => ({ id: 'b', type: 'function', function: { name, arguments: JSON.stringify(args) } });
const THREE = 'a = cm.echo(message="one")\nb = cm.get_sum(a=1, b=2)\nc = cm.echo(message="three")\nresult = [a, b, c]\n';

async function post(gw, b) {
    const r = await fetch(`${gw.url}/v1/mcp/tool/execute`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b),
    });
    const j = await r.json();
    if (r.status !== 200) throw new Error(`execute answered ${r.status}: ${JSON.stringify(j)}`);
    return j.content;
}

const inner = { empty: [], three: [] };

async function script(gw, code, label) {
    const text = await post(gw, body('executeToolCode', { code }));
    const m = /^status: ok \(([\d.]+)ms\)/.exec(text);
    if (!m) throw new Error(`script failed:\n${text}`);
    if (label) inner[label].push(Number(m[1]));
    return text;
}

const cases = {
    empty: (gw, measured) => script(gw, 'pass', measured && 'empty'),
    three: (gw, measured) => script(gw, THREE, measured && 'three'),
    direct: async (gw) => {
        await post(gw, body('plain-echo', { message: 'one' }));
        await post(gw, body('plain-get-sum', { a: 1, b: 2 }));
        await post(gw, body('plain-echo', { message: 'three' }));
    },
};

function pct(sorted, p) {
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
    const gw = await startGateway({
        threads: 2,
        env: process.env.BENCH_SANDBOX ? { GATEHOUSE_SANDBOX: path.resolve(process.env.BENCH_SANDBOX) } : {},
        sections: {
            logs: { enabled: false },
            mcp: { client_configs: [client('cm', true), client('plain', false)] },
        },
    });
    try {
        const deadline = Date.now() + 60000;
        for (;;) {
            try {
                await cases.three(gw);
                await cases.direct(gw);
                break;
            } catch (e) {
                if (Date.now() > deadline) throw e;
                await new Promise((r) => setTimeout(r, 200));
            }
        }
        const samples = {};
        for (const [name, fn] of Object.entries(cases)) {
            for (let i = 0; i < WARMUP; i++) await fn(gw);
            samples[name] = [];
            for (let i = 0; i < N; i++) {
                const t0 = process.hrtime.bigint();
                await fn(gw, true);
                samples[name].push(Number(process.hrtime.bigint() - t0) / 1e6);
            }
        }
        console.log(`| case | n | median ms | p99 ms | mean ms |`);
        console.log(`|---|---|---|---|---|`);
        for (const [name, s] of Object.entries(samples)) {
            const sorted = [...s].sort((a, b) => a - b);
            const mean = s.reduce((a, b) => a + b, 0) / s.length;
            console.log(`| ${name} | ${s.length} | ${pct(sorted, 50).toFixed(2)} | ${pct(sorted, 99).toFixed(2)} | ${mean.toFixed(2)} |`);
        }
        for (const [name, s] of Object.entries(inner)) {
            const sorted = [...s].sort((a, b) => a - b);
            console.log(`| ${name}, executor's own time | ${s.length} | ${pct(sorted, 50).toFixed(2)} | ${pct(sorted, 99).toFixed(2)} | |`);
        }
        fs.mkdirSync(path.dirname(OUT), { recursive: true });
        fs.writeFileSync(OUT, JSON.stringify({ n: N, warmup: WARMUP, samples, inner }, null, 1));
        console.log(`raw samples: ${OUT}`);
    } finally {
        await gw.stop();
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
