// bench.mjs - the token cost of Code Mode against classic tool injection (issue 4), through
// the real gatehouse: the same five-step workflow, scripted on the model's side, with about
// 100, 250 and all 517 tools of ../shared/tool-catalogs connected, once with every server a
// classic MCP client and once with every server a code-mode client (at each binding level).
// Every request gatehouse sends to the (fake) model is recorded and its input counted with a
// real tokenizer (js-tiktoken, o200k_base). README.md here says what is counted and what the
// figures say; the figures of the last run go to results.json here.
//
// Usage: bench/tokens/run.sh   (or: node bench/tokens/bench.mjs, after make and npm ci here)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getEncoding } from 'js-tiktoken';

import { startGateway, provider } from '../../tests/e2e/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const CATALOGS = process.env.GATEHOUSE_TOOL_CATALOGS ?? path.resolve(ROOT, '..', 'shared', 'tool-catalogs');
const SERVER = path.join(HERE, 'catalog_server.mjs');
const RESULTS = process.env.BENCH_TOKENS_RESULTS ?? path.join(HERE, 'results.json');
const TARGETS = [100, 250, null]; // null: every tool
const WORKFLOW_SERVERS = ['github', 'slack', 'memory']; // the workflow's tools are in every subset
const enc = getEncoding('o200k_base');
const tokens = (v) => enc.encode(typeof v === 'string' ? v : JSON.stringify(v)).length;
const sum = (a) => a.reduce((x, y) => x + y, 0);
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const spread = (a, total) => ({ tokens: sum(a), per_tool: sum(a) / total, median: median(a), max: Math.max(...a) });

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

/** The stub files the model reads: the three servers' files, or the five tools' files (every
 * tool name of the workflow is already a Python identifier). */
function stubFiles(level) {
    if (level === 'server') return WORKFLOW_SERVERS.map((s) => `servers/${s}.pyi`);
    return STEPS.map(([server, tool]) => `servers/${server}/${tool}.pyi`);
}

/** Code Mode as the model plays it: list, read the stubs (at once), with docs also ask
 * getToolDocs for each of the five tools (a more careful model), run one script, answer. */
function codeTurns(level, docs = false) {
    return [
        calls(call('listToolFiles', {})),
        calls(...stubFiles(level).map((fileName) => call('readToolFile', { fileName }))),
        ...(docs ? [calls(...STEPS.map(([server, tool]) => call('getToolDocs', { server, tool })))] : []),
        calls(call('executeToolCode', { code: SCRIPT })),
        say(ANSWER),
    ];
}

// ---- the fake model: answers each request with the next scripted turn, records the request --

function startModel() {
    const state = { turns: [], seen: [], raw: [] };
    const server = http.createServer((req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (d) => {
            body += d;
        });
        req.on('end', () => {
            state.seen.push(JSON.parse(body));
            state.raw.push(body);
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

/** A gatehouse with every catalog connected: classic (mode null) or Code Mode at binding level
 * mode ('server' or 'tool'). Every tool is auto-executable, so gatehouse runs the whole loop. */
async function startBenchGateway(model, names, mode) {
    return startGateway({
        replay: { close: async () => {} },
        providers: [provider('bench', { family: 'openai', baseUrl: model.url, timeout: 60 })],
        sections: {
            logs: { enabled: false },
            mcp: {
                client_configs: names.map((name) => ({
                    name,
                    connection_type: 'stdio',
                    stdio_config: { command: process.execPath, args: [SERVER, path.join(CATALOGS, `${name}.json`)] },
                    tools_to_execute: ['*'],
                    tools_to_auto_execute: ['*'],
                    is_code_mode_client: mode !== null,
                })),
                tool_manager_config: { max_agent_depth: 10, code_mode_binding_level: mode ?? 'server' },
            },
        },
    });
}

/** Runs one meta-tool through /v1/mcp/tool/execute (all clients) and returns its answer text. */
async function meta(gw, name, args) {
    const r = await gw.post('/v1/mcp/tool/execute', { id: 'm', type: 'function', function: { name, arguments: JSON.stringify(args) } });
    if (r.status !== 200 || typeof r.json?.content !== 'string') throw new Error(`${name} answered ${r.status}: ${r.text.slice(0, 300)}`);
    if (r.headers.get('x-gatehouse-tool-error') === 'true') throw new Error(`${name}(${JSON.stringify(args)}) failed: ${r.json.content.slice(0, 300)}`);
    return r.json.content;
}

/** The tool-level file names of a listToolFiles answer ("  client/" then "    tool.pyi"). */
function toolFilesOf(tree) {
    const files = [];
    let dir = null;
    for (const line of tree.split('\n')) {
        const d = /^ {2}(\S+)\/$/.exec(line);
        const f = /^ {4}(\S+\.pyi)$/.exec(line);
        if (d) dir = d[1];
        else if (f && dir) files.push(`servers/${dir}/${f[1]}`);
    }
    return files;
}

/** Waits until every catalog's tools are offered: counted in a chat request (classic) or in
 * listToolFiles (Code Mode). */
async function waitForTools(gw, model, mode, total) {
    const deadline = Date.now() + 120000;
    for (;;) {
        let n = 0;
        if (mode !== null) {
            // Until the first server is connected, listToolFiles is not offered at all.
            const tree = await meta(gw, 'listToolFiles', {}).catch(() => '');
            if (mode === 'tool') n = toolFilesOf(tree).length;
            for (const m of tree.matchAll(/\((\d+) tools?\)/g)) n += Number(m[1]);
        } else {
            model.turns = [say('ready')];
            model.seen = [];
            await gw.post('/v1/chat/completions', { model: 'bench/gpt-4o-mini', messages: [{ role: 'user', content: 'ready?' }] });
            n = model.seen[0]?.tools?.length ?? 0;
        }
        if (n >= total) return;
        if (Date.now() > deadline) throw new Error(`only ${n} of ${total} tools after 120 s`);
        await new Promise((res) => setTimeout(res, 250));
    }
}

// ---- the runs ------------------------------------------------------------------------------

/** The subsets of about 100 and 250 tools, and all: the workflow's servers first, then the
 * others in alphabetical order, as many as bring the count closest to the target. */
function subsets(catalogSizes) {
    const order = [...WORKFLOW_SERVERS, ...[...catalogSizes.keys()].filter((n) => !WORKFLOW_SERVERS.includes(n)).sort()];
    const total = sum([...catalogSizes.values()]);
    return TARGETS.map((wanted) => {
        const target = wanted ?? total;
        let best = null;
        let count = 0;
        for (let k = 0; k < order.length; k++) {
            count += catalogSizes.get(order[k]);
            const cand = { names: order.slice(0, k + 1), tools: count };
            if (!best || Math.abs(count - target) < Math.abs(best.tools - target)) best = cand;
        }
        return best;
    });
}

/** Plays one workflow through gatehouse with the official OpenAI client, as an application
 * would, and counts the input of every request gatehouse sent upstream. */
async function runWorkflow(gw, model, turns, names) {
    model.turns = turns;
    model.seen = [];
    model.raw = [];
    const answer = await gw.client().chat.completions.create(
        { model: 'bench/gpt-4o-mini', messages: [{ role: 'user', content: USER }] },
        { headers: { 'x-gatehouse-mcp-include-clients': names.join(',') } });
    const got = answer.choices[0].message.content;
    if (got !== ANSWER) throw new Error(`unexpected answer: ${JSON.stringify(answer).slice(0, 300)}`);
    // The parts are counted as JSON.stringify writes them; that is the text gatehouse sent only
    // if gatehouse's serialization is the same (compact, same escapes), which is checked here.
    model.seen.forEach((b, i) => {
        if (JSON.stringify(b) !== model.raw[i]) throw new Error(`request ${i + 1} was not sent in compact JSON`);
    });
    const perTurn = model.seen.map((b, i) => ({
        tools: b.tools ? tokens(b.tools) : 0,
        messages: tokens(b.messages),
        body: tokens(model.raw[i]),
    }));
    return { requests: model.seen, perTurn, input: perTurn.reduce((a, t) => a + t.tools + t.messages, 0) };
}

function toolMessage(body, fn) {
    const msgs = body.messages;
    const asked = msgs.flatMap((m) => m.tool_calls ?? []).filter((c) => c.function.name === fn).map((c) => c.id);
    return msgs.filter((m) => m.role === 'tool' && asked.includes(m.tool_call_id)).map((m) => m.content);
}

/** One Code Mode run's figures; fails unless the script ran to the end. */
function codeModeFigures(m, level) {
    const last = m.requests.at(-1);
    const outcome = toolMessage(last, 'executeToolCode')[0] ?? '';
    if (!outcome.startsWith('status: ok')) throw new Error(`the script did not run:\n${outcome}`);
    const answers = (fn) => toolMessage(last, fn).map(tokens);
    return {
        binding_level: level,
        requests: m.perTurn.length,
        input: m.input,
        meta_tool_definitions_per_turn: m.perTurn[0].tools,
        list_tool_files_answer: sum(answers('listToolFiles')),
        stubs_read: { files: answers('readToolFile').length, tokens: sum(answers('readToolFile')) },
        tool_docs_read: { tools: answers('getToolDocs').length, tokens: sum(answers('getToolDocs')) },
        execute_answer: sum(answers('executeToolCode')),
        per_turn: m.perTurn,
    };
}

/** What reading the tools costs at the server level: every server file (its tokens spread over
 * its tools), and getToolDocs of every tool. */
async function serverLevelCosts(gw, catalogs, total) {
    const files = [];
    for (const name of catalogs.keys()) files.push(tokens(await meta(gw, 'readToolFile', { fileName: `servers/${name}.pyi` })));
    const docs = [];
    for (const [server, tools] of catalogs) {
        for (const t of tools) docs.push(tokens(await meta(gw, 'getToolDocs', { server, tool: t.name })));
    }
    return {
        server_files: { files: files.length, tokens: sum(files), per_tool: sum(files) / total },
        get_tool_docs: spread(docs, total),
        list_tool_files: tokens(await meta(gw, 'listToolFiles', {})),
    };
}

/** The same at the tool level: every tool's file. */
async function toolLevelCosts(gw, total) {
    const tree = await meta(gw, 'listToolFiles', {});
    const files = toolFilesOf(tree);
    if (files.length !== total) throw new Error(`the tool-level tree has ${files.length} files, not ${total}`);
    const read = [];
    for (const fileName of files) read.push(tokens(await meta(gw, 'readToolFile', { fileName })));
    return { tool_files: { files: files.length, ...spread(read, total) }, list_tool_files: tokens(tree) };
}

function revision() {
    try {
        return execFileSync('git', ['-C', ROOT, 'describe', '--always', '--dirty', '--abbrev=7'], { encoding: 'utf8' }).trim();
    } catch {
        return 'unknown';
    }
}

/** Starts a gateway of one mode, waits for all its tools, runs body(gw), stops it: one mode
 * at a time, so at most 30 catalog servers run at once. */
async function withGateway(model, names, mode, total, body) {
    const gw = await startBenchGateway(model, names, mode);
    try {
        await waitForTools(gw, model, mode, total);
        return await body(gw);
    } finally {
        await gw.stop();
    }
}

async function main() {
    if (!fs.existsSync(CATALOGS)) {
        console.error(`bench/tokens: no tool catalogs at ${CATALOGS} (../shared/tool-catalogs next to the ` +
            'clone; or set GATEHOUSE_TOOL_CATALOGS)');
        process.exit(1);
    }
    const catalogs = new Map();
    for (const f of fs.readdirSync(CATALOGS).filter((n) => n.endsWith('.json')).sort()) {
        catalogs.set(f.slice(0, -5), JSON.parse(fs.readFileSync(path.join(CATALOGS, f), 'utf8')).tools);
    }
    const catalogSizes = new Map([...catalogs].map(([n, t]) => [n, t.length]));
    const all = [...catalogs.keys()];
    const total = sum([...catalogSizes.values()]);
    const runs = subsets(catalogSizes).map((s) => ({ tools: s.tools, servers: s.names.length, names: s.names }));
    const results = {
        date: new Date().toISOString(), commit: revision(), tokenizer: 'js-tiktoken o200k_base',
        catalogs: all.length, tools: total, runs,
    };
    const model = await startModel();
    try {
        const play = async (gw, turns, run) => {
            callSeq = 0;
            return runWorkflow(gw, model, turns, run.names);
        };
        await withGateway(model, all, null, total, async (gw) => {
            for (const run of runs) {
                const c = await play(gw, classicTurns(), run);
                run.classic = { requests: c.perTurn.length, input: c.input, tool_definitions_per_turn: c.perTurn[0].tools, per_turn: c.perTurn };
            }
        });
        await withGateway(model, all, 'server', total, async (gw) => {
            for (const run of runs) {
                run.code_mode = codeModeFigures(await play(gw, codeTurns('server'), run), 'server');
                run.code_mode_with_docs = codeModeFigures(await play(gw, codeTurns('server', true), run), 'server');
            }
            results.server_level = await serverLevelCosts(gw, catalogs, total);
        });
        await withGateway(model, all, 'tool', total, async (gw) => {
            for (const run of runs) run.code_mode_tool_level = codeModeFigures(await play(gw, codeTurns('tool'), run), 'tool');
            results.tool_level = await toolLevelCosts(gw, total);
        });
    } finally {
        await model.close();
    }
    for (const run of runs) {
        run.saved = 1 - run.code_mode.input / run.classic.input;
        run.saved_with_docs = 1 - run.code_mode_with_docs.input / run.classic.input;
        run.saved_tool_level = 1 - run.code_mode_tool_level.input / run.classic.input;
    }
    const definitions = runs.at(-1).classic.tool_definitions_per_turn;
    results.classic_definitions = { tokens: definitions, per_tool: definitions / total };
    fs.writeFileSync(RESULTS, JSON.stringify(results, null, 2) + '\n');
    report(results);
}

function report(r) {
    const pct = (x) => `${(100 * x).toFixed(1)}%`;
    const n = (x) => Math.round(x).toLocaleString('en-US');
    console.log(`${r.date}, ${r.commit}, tokenizer ${r.tokenizer}; ${r.tools} tools of ${r.catalogs} servers\n`);
    console.log('| tools (servers) | classic: requests, input tokens | definitions per classic request | ' +
        'Code Mode, server files: requests, input tokens | fewer | ' +
        'with getToolDocs x5: requests, input tokens | fewer | tool files: requests, input tokens | fewer |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const x of r.runs) {
        const cell = (m, saved) => `${m.requests}, ${n(m.input)} | **${pct(saved)}**`;
        console.log(`| ${x.tools} (${x.servers}) | ${x.classic.requests}, ${n(x.classic.input)} | ${n(x.classic.tool_definitions_per_turn)} | ` +
            `${cell(x.code_mode, x.saved)} | ${cell(x.code_mode_with_docs, x.saved_with_docs)} | ` +
            `${cell(x.code_mode_tool_level, x.saved_tool_level)} |`);
    }
    console.log('\nsubsets: ' + r.runs.map((x) => `${x.tools}: ${x.names.join(', ')}`).join('\n         '));
    const first = r.runs[0];
    console.log(`\nmeta-tool definitions per request: ${first.code_mode.meta_tool_definitions_per_turn} tokens; ` +
        `stubs read: ${first.code_mode.stubs_read.tokens} (${first.code_mode.stubs_read.files} server files), ` +
        `${first.code_mode_tool_level.stubs_read.tokens} (${first.code_mode_tool_level.stubs_read.files} tool files); ` +
        `getToolDocs x5: ${first.code_mode_with_docs.tool_docs_read.tokens}`);
    console.log('listToolFiles answer per run (server files / tool files): ' +
        r.runs.map((x) => `${x.tools}: ${x.code_mode.list_tool_files_answer} / ${x.code_mode_tool_level.list_tool_files_answer}`).join(', '));
    const s = r.server_level;
    const t = r.tool_level;
    console.log(`\nper tool, over all ${r.tools}: classic definition ${r.classic_definitions.per_tool.toFixed(0)} ` +
        `(${n(r.classic_definitions.tokens)} in all, in every request); server file ${s.server_files.per_tool.toFixed(0)} ` +
        `(${n(s.server_files.tokens)} in all); tool file ${t.tool_files.per_tool.toFixed(0)} (median ${t.tool_files.median}, ` +
        `max ${t.tool_files.max}); getToolDocs ${s.get_tool_docs.per_tool.toFixed(0)} (median ${s.get_tool_docs.median}, ` +
        `max ${s.get_tool_docs.max})`);
    console.log(`\nraw figures: ${path.relative(process.cwd(), RESULTS)}`);
}

await main();
