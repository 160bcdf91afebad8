// bench.mjs - the token cost of Code Mode against classic tool injection (issue 4), through
// the real gatehouse: the same five-step workflow, scripted on the model's side, with about
// 100, 250 and all 517 tools of ../shared/tool-catalogs connected, once with every server a
// classic MCP client and once with every server a code-mode client. Every request gatehouse
// sends to the (fake) model is recorded and its input counted with a real tokenizer
// (js-tiktoken, o200k_base). README.md here says what is counted and what the figures say.
//
// Usage: bench/tokens/run.sh   (or: node bench/tokens/bench.mjs, after make and npm ci here)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getEncoding } from 'js-tiktoken';

import { startGateway, provider } from '../../tests/e2e/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const CATALOGS = process.env.GATEHOUSE_TOOL_CATALOGS ?? path.resolve(ROOT, '..', 'shared', 'tool-catalogs');
const RESULTS = path.join(ROOT, 'bench', 'results', 'tokens.json');
const TARGETS = [100, 250, null]; // null: every tool
const WORKFLOW_SERVERS = ['github', 'slack', 'memory']; // the workflow's tools are in every subset
const enc = getEncoding('o200k_base');
const tokens = (v) => enc.encode(typeof v === 'string' ? v : JSON.stringify(v)).length;

// ---- the workflow, as the model plays it ------------------------------------------------------

const USER = 'Find the oldest open bug in acme/api, look at it and at the recent commits, ' +
    'record it in the knowledge graph and tell #triage on Slack.';

let callSeq = 0;
const call = (name, args) => ({ id: `call_${++callSeq}`, type: 'function', function: { name, arguments: JSON.stringify(args) } });
const calls = (...list) => ({ role: 'assistant', content: null, tool_calls: list });
const say = (content) => ({ role: 'assistant', content });

const STEPS = [
    ['github', 'search_issues', { q: 'repo:acme/api is:issue is:open label:bug sort:created-asc' }],
    ['github', 'get_issue', { owner: 'acme', repo: 'api', issue_number: 1001 }],
    ['github', 'list_commits', { owner: 'acme', repo: 'api' }],
    ['memory', 'create_entities', { entities: [{ name: 'acme/api#1001', entityType: 'bug', observations: ['oldest open bug'] }] }],
    ['slack', 'slack_post_message', { channel_id: 'C0TRIAGE', text: 'acme/api#1001 is the oldest open bug; 10 commits since.' }],
];
const ANSWER = 'Done: acme/api#1001 is recorded and #triage knows.';

function classicTurns() {
    return [...STEPS.map(([server, tool, args]) => calls(call(`${server}-${tool}`, args))), say(ANSWER)];
}

const SCRIPT = `issues = github.search_issues(q="repo:acme/api is:issue is:open label:bug sort:created-asc")
first = issues["items"][0]
issue = github.get_issue(owner="acme", repo="api", issue_number=first["id"])
commits = github.list_commits(owner="acme", repo="api")
memory.create_entities(entities=[{"name": "acme/api#%d" % first["id"], "entityType": "bug",
                                  "observations": ["oldest open bug"]}])
slack.slack_post_message(channel_id="C0TRIAGE",
                         text="acme/api#%d is the oldest open bug; %d commits since." % (first["id"], len(commits["items"])))
result = {"issue": first["id"], "title": issue["items"][0]["title"], "commits": len(commits["items"])}
`;

function codeTurns() {
    return [
        calls(call('listToolFiles', {})),
        calls(...WORKFLOW_SERVERS.map((s) => call('readToolFile', { fileName: `servers/${s}.pyi` }))),
        calls(call('executeToolCode', { code: SCRIPT })),
        say(ANSWER),
    ];
}

// ---- the fake model: answers each request with the next scripted turn, records the request --

function startModel() {
    const state = { turns: [], seen: [] };
    const server = http.createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (d) => {
            body += d;
        });
        req.on('end', () => {
            state.seen.push(JSON.parse(body));
            const message = state.turns.shift() ?? say('(script exhausted)');
            const finish = message.tool_calls ? 'tool_calls' : 'stop';
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({
                id: `chatcmpl-bench${state.seen.length}`, object: 'chat.completion', created: 1733400000,
                model: 'gpt-4o-mini', choices: [{ index: 0, message, finish_reason: finish }],
                usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
            }));
        });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
        state.url = `http://127.0.0.1:${server.address().port}`;
        state.close = () => new Promise((r) => server.close(r));
        resolve(state);
    }));
}

// ---- servers and gateways ------------------------------------------------------------------

function startCatalogServer() {
    const child = spawn(process.execPath, [path.join(HERE, 'catalog_server.mjs'), CATALOGS], { stdio: ['ignore', 'pipe', 'inherit'] });
    return new Promise((resolve, reject) => {
        child.stdout.setEncoding('utf8');
        child.stdout.once('data', (d) => {
            const port = /listening (\d+)/.exec(d)?.[1];
            if (!port) reject(new Error(`catalog server said: ${d}`));
            resolve({ url: `http://127.0.0.1:${port}`, stop: () => child.kill() });
        });
        child.once('exit', (code) => reject(new Error(`catalog server exited (${code})`)));
    });
}

async function startBenchGateway(model, catalogUrl, names, codeMode) {
    return startGateway({
        replay: { close: async () => {} },
        providers: [provider('bench', { family: 'openai', baseUrl: model.url, timeout: 60 })],
        sections: {
            logs: { enabled: false },
            mcp: {
                client_configs: names.map((name) => ({
                    name,
                    connection_type: 'http',
                    connection_string: `${catalogUrl}/mcp/${name}`,
                    tools_to_execute: ['*'],
                    tools_to_auto_execute: ['*'],
                    is_code_mode_client: codeMode,
                })),
                tool_manager_config: { max_agent_depth: 10 },
            },
        },
    });
}

/** Waits until every catalog's tools are offered: counted in a chat request (classic) or in
 * listToolFiles (Code Mode). */
async function waitForTools(gw, model, codeMode, total) {
    const deadline = Date.now() + 60000;
    for (;;) {
        let n = 0;
        if (codeMode) {
            const r = await gw.post('/v1/mcp/tool/execute',
                { id: 'w', type: 'function', function: { name: 'listToolFiles', arguments: '{}' } });
            for (const m of (r.json?.content ?? '').matchAll(/\((\d+) tools?\)/g)) n += Number(m[1]);
        } else {
            model.turns = [say('ready')];
            model.seen = [];
            await gw.post('/v1/chat/completions', { model: 'bench/gpt-4o-mini', messages: [{ role: 'user', content: 'ready?' }] });
            n = model.seen[0]?.tools?.length ?? 0;
        }
        if (n >= total) return;
        if (Date.now() > deadline) throw new Error(`only ${n} of ${total} tools after 60 s`);
        await new Promise((res) => setTimeout(res, 250));
    }
}

// ---- the runs ------------------------------------------------------------------------------

function subsets(catalogSizes) {
    const order = [...WORKFLOW_SERVERS, ...[...catalogSizes.keys()].filter((n) => !WORKFLOW_SERVERS.includes(n)).sort()];
    const total = [...catalogSizes.values()].reduce((a, b) => a + b, 0);
    return TARGETS.map((wanted) => {
        const target = wanted ?? total;
        let best = null;
        let sum = 0;
        for (let k = 0; k < order.length; k++) {
            sum += catalogSizes.get(order[k]);
            const cand = { names: order.slice(0, k + 1), tools: sum };
            if (!best || Math.abs(sum - target) < Math.abs(best.tools - target)) best = cand;
        }
        return best;
    });
}

async function runWorkflow(gw, model, turns, names) {
    model.turns = turns;
    model.seen = [];
    const r = await gw.post('/v1/chat/completions',
        { model: 'bench/gpt-4o-mini', messages: [{ role: 'user', content: USER }] },
        { 'x-gatehouse-mcp-include-clients': names.join(',') });
    if (r.status !== 200) throw new Error(`workflow answered ${r.status}: ${r.text.slice(0, 300)}`);
    if (r.json.choices[0].message.content !== ANSWER) throw new Error(`unexpected answer: ${r.text.slice(0, 300)}`);
    const perTurn = model.seen.map((b) => ({
        tools: b.tools ? tokens(b.tools) : 0,
        messages: tokens(b.messages),
    }));
    return { requests: model.seen, perTurn, input: perTurn.reduce((a, t) => a + t.tools + t.messages, 0) };
}

function toolMessage(body, fn) {
    const msgs = body.messages;
    const asked = msgs.flatMap((m) => m.tool_calls ?? []).filter((c) => c.function.name === fn).map((c) => c.id);
    return msgs.filter((m) => m.role === 'tool' && asked.includes(m.tool_call_id)).map((m) => m.content);
}

async function main() {
    const catalogSizes = new Map();
    for (const f of fs.readdirSync(CATALOGS).filter((n) => n.endsWith('.json'))) {
        catalogSizes.set(f.slice(0, -5), JSON.parse(fs.readFileSync(path.join(CATALOGS, f), 'utf8')).tools.length);
    }
    const all = [...catalogSizes.keys()].sort();
    const total = [...catalogSizes.values()].reduce((a, b) => a + b, 0);
    const catalog = await startCatalogServer();
    const model = await startModel();
    const classic = await startBenchGateway(model, catalog.url, all, false);
    const code = await startBenchGateway(model, catalog.url, all, true);
    const results = { date: new Date().toISOString(), tokenizer: 'js-tiktoken o200k_base', catalogs: all.length, tools: total, runs: [] };
    try {
        await waitForTools(classic, model, false, total);
        await waitForTools(code, model, true, total);
        for (const s of subsets(catalogSizes)) {
            callSeq = 0;
            const c = await runWorkflow(classic, model, classicTurns(), s.names);
            callSeq = 0;
            const m = await runWorkflow(code, model, codeTurns(), s.names);
            const outcome = toolMessage(m.requests.at(-1), 'executeToolCode')[0] ?? '';
            if (!outcome.startsWith('status: ok')) throw new Error(`the script did not run:\n${outcome}`);
            const stubs = toolMessage(m.requests[2], 'readToolFile');
            const stubTools = WORKFLOW_SERVERS.reduce((a, n) => a + catalogSizes.get(n), 0);
            results.runs.push({
                servers: s.names.length,
                tools: s.tools,
                classic: { requests: c.perTurn.length, input: c.input, tool_definitions_per_turn: c.perTurn[0].tools, per_turn: c.perTurn },
                code_mode: {
                    requests: m.perTurn.length,
                    input: m.input,
                    meta_tool_definitions_per_turn: m.perTurn[0].tools,
                    per_turn: m.perTurn,
                    stubs_read: { files: stubs.length, tools: stubTools, tokens: stubs.reduce((a, t) => a + tokens(t), 0) },
                },
                saved: 1 - m.input / c.input,
            });
        }
        // What the stubs of every server cost, against the classic definitions of the same tools.
        let stubTokens = 0;
        for (const name of all) {
            const r = await code.post('/v1/mcp/tool/execute', { id: 's', type: 'function',
                function: { name: 'readToolFile', arguments: JSON.stringify({ fileName: `servers/${name}.pyi` }) } });
            stubTokens += tokens(r.json.content);
        }
        results.all_stubs = { tokens: stubTokens, per_tool: stubTokens / total };
        results.all_definitions = { tokens: results.runs.at(-1).classic.tool_definitions_per_turn,
            per_tool: results.runs.at(-1).classic.tool_definitions_per_turn / total };
    } finally {
        await classic.stop();
        await code.stop();
        await model.close();
        catalog.stop();
    }
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, JSON.stringify(results, null, 2) + '\n');
    report(results);
}

function report(r) {
    const pct = (x) => `${(100 * x).toFixed(1)}%`;
    console.log(`tokenizer ${r.tokenizer}; ${r.tools} tools of ${r.catalogs} servers\n`);
    console.log('| tools (servers) | classic: requests, input tokens | of which tool definitions per request | Code Mode: requests, input tokens | of which stubs read | saved |');
    console.log('|---|---|---|---|---|---|');
    for (const x of r.runs) {
        console.log(`| ${x.tools} (${x.servers}) | ${x.classic.requests}, ${x.classic.input} | ${x.classic.tool_definitions_per_turn} | ` +
            `${x.code_mode.requests}, ${x.code_mode.input} | ${x.code_mode.stubs_read.tokens} (${x.code_mode.stubs_read.tools} tools) | ${pct(x.saved)} |`);
    }
    console.log(`\nmeta-tool definitions per request: ${r.runs[0].code_mode.meta_tool_definitions_per_turn} tokens`);
    console.log(`all ${r.tools} tools: classic definitions ${r.all_definitions.tokens} tokens ` +
        `(${r.all_definitions.per_tool.toFixed(0)} per tool); server-level stubs ${r.all_stubs.tokens} tokens ` +
        `(${r.all_stubs.per_tool.toFixed(0)} per tool)`);
}

await main();
