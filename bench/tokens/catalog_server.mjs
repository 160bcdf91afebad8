// catalog_server.mjs - a catalog-replay MCP server for the token-cost benchmark: one process
// serving every catalog of ../shared/tool-catalogs over Streamable HTTP, one endpoint per
// catalog (/mcp/<catalog>), answering tools/list with the catalog's real tools and every
// tools/call with the same canned result (a JSON list of ten records, about as much text as
// a search or listing tool returns), so that what reaches the model is realistic in size.
//
// Plain node:http, stateless (no session id), JSON answers; enough of MCP for gatehouse's
// client: initialize, notifications, ping, tools/list, tools/call; anything else is -32601.
//
// Usage: node catalog_server.mjs <catalog dir>    (prints "listening <port>" when ready)
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const dir = process.argv[2];
const catalogs = new Map();
for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    catalogs.set(f.slice(0, -5), JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')).tools);
}

/** The canned result: ten records, the same for every tool, naming the tool called. */
export function cannedText(tool) {
    const items = [];
    for (let i = 1; i <= 10; i++) {
        items.push({
            id: 1000 + i,
            title: `Record ${i} returned by ${tool}`,
            state: i % 3 === 0 ? 'closed' : 'open',
            url: `https://example.com/records/${1000 + i}`,
            updated_at: `2026-11-${String(10 + i).padStart(2, '0')}T09:00:00Z`,
            summary: 'A short description of the record, as search and listing tools return it.',
        });
    }
    return JSON.stringify({ total_count: 10, items });
}

function reply(res, id, result) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id, result }));
}

function answer(res, tools, m) {
    switch (m.method) {
    case 'initialize':
        return reply(res, m.id, {
            protocolVersion: m.params?.protocolVersion ?? '2025-06-18',
            capabilities: { tools: {} },
            serverInfo: { name: 'catalog-replay', version: '1.0.0' },
        });
    case 'ping':
        return reply(res, m.id, {});
    case 'tools/list':
        return reply(res, m.id, { tools });
    case 'tools/call':
        return reply(res, m.id, { content: [{ type: 'text', text: cannedText(m.params?.name) }] });
    default:
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({
            jsonrpc: '2.0', id: m.id, error: { code: -32601, message: `no method ${m.method}` },
        }));
    }
}

const server = http.createServer((req, res) => {
    const name = decodeURIComponent(req.url.replace(/^\/mcp\//, '').split('?')[0]);
    const tools = catalogs.get(name);
    if (!tools || req.method !== 'POST') {
        res.writeHead(tools ? 405 : 404);
        return res.end();
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => {
        body += d;
    });
    req.on('end', () => {
        const m = JSON.parse(body);
        if (m.id === undefined) {
            res.writeHead(202);
            return res.end();
        }
        answer(res, tools, m);
    });
});

if (import.meta.url === `file://${process.argv[1]}`) {
    server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
}
