// catalog_server.mjs - a catalog-replay MCP server for the token-cost benchmark: serves one
// catalog of ../shared/tool-catalogs over stdio with the official MCP SDK (the server API of
// tests/node_modules/@modelcontextprotocol/sdk), the way the 30 npm servers the catalogs were
// captured from serve them. tools/list answers the catalog's real tools, unchanged; every
// tools/call answers the same canned result (a JSON list of ten records, about as much text
// as a search or listing tool returns), so that what reaches the model is realistic in size.
// The catalog is read in place; nothing of it is copied.
//
// Usage: node catalog_server.mjs <catalog file>    (gatehouse starts it as a stdio MCP client)
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The SDK is a test dependency: resolve it from tests/, where npm ci installs it.
const HERE = path.dirname(fileURLToPath(import.meta.url));
const fromTests = createRequire(path.resolve(HERE, '..', '..', 'tests', 'package.json'));
const sdk = async (p) => import(pathToFileURL(fromTests.resolve(`@modelcontextprotocol/sdk/${p}`)).href);
const { Server } = await sdk('server/index.js');
const { StdioServerTransport } = await sdk('server/stdio.js');
const { ListToolsRequestSchema, CallToolRequestSchema } = await sdk('types.js');

/** The canned result: ten records, the same for every tool, naming the tool called. */
function cannedText(tool) {
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

const file = process.argv[2];
if (!file) {
    console.error('usage: node catalog_server.mjs <catalog file>');
    process.exit(2);
}
const catalog = JSON.parse(fs.readFileSync(file, 'utf8'));
const known = new Set(catalog.tools.map((t) => t.name));

const server = new Server({ name: `catalog-replay-${catalog.server}`, version: '1.0.0' }, { capabilities: { tools: {} } });
server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: catalog.tools }));
server.setRequestHandler(CallToolRequestSchema, async (req) => {
    if (!known.has(req.params.name)) {
        return { isError: true, content: [{ type: 'text', text: `no tool ${req.params.name} in ${catalog.server}` }] };
    }
    return { content: [{ type: 'text', text: cannedText(req.params.name) }] };
});
await server.connect(new StdioServerTransport());
