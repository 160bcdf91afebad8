// server.mjs - the replay server: a fake upstream that answers gatehouse with recorded provider
// exchanges, scripted faults, or small generated answers.
//
// gatehouse is pointed at it through a provider's network_config.base_url; gatehouse appends the
// provider's endpoint (/v1/chat/completions for the OpenAI family, /v1/messages for Anthropic).
// The path before that endpoint chooses what is answered:
//
//   /c/<group>/<name>[@K]/...   a recorded cassette: <cassettes>/<group>/<name>.json, where
//                                <cassettes> is $GATEHOUSE_SHARED_DIR/cassettes (default:
//                                <repo>/../shared/cassettes). Read in place, never copied.
//   /f/<group>/<name>[@K]/...   one of the project's own fixtures, same format:
//                                tests/fixtures/e2e/<group>/<name>.json
//   /m/openai[/<tag>]/...       mock mode, no recording: a small valid chat completion (JSON, or
//   /m/anthropic[/<tag>]/...    SSE when the body says "stream": true) whose text echoes the last
//                                user message. The tag only names the route (for faults and for
//                                filtering what was received).
//
// <group> and <name> are single path segments; encode them (encodeURIComponent), since cassette
// names contain brackets.
//
// Which recorded interaction answers a request: the candidates are the cassette's interactions
// whose recorded URI path ends with the request's endpoint (the request path after the route,
// without its leading /v1 or /v1beta: "/chat/completions", "/messages"); interactions with other
// providers or downloads recorded in the same cassette are ignored. The Nth request that a route
// receives gets candidate N (counting from 0, in recorded order, wrapping around when the
// recording is exhausted). A multi-turn recording is therefore replayed by sending its turns in
// order. "@K" after the name pins every request of that route to candidate K, so a test can ask
// for one turn directly, any number of times. Scripted faults (below) answer without consuming a
// candidate. Every request is recorded with the index it got, so a test can compare the request
// gatehouse sent with the recorded one.
//
// Replaying a response: the status, the recorded headers (the recordings keep content-type only)
// and the body: {"json": v} is sent serialized, {"text": s} as is, {"base64": s} decoded. A
// text/event-stream body is streamed event by event (chunked transfer encoding, eventDelayMs
// between events) so that the client really sees a stream.
//
// Faults, scripted per path prefix, are consumed first-in first-out by matching requests:
//
//   {prefix, times = 1,            which requests (path prefix) and how many of them (-1: all)
//    after = 0,                    let this many matching requests through untouched first (the
//                                  second turn of a multi-turn exchange, say)
//    status, body, headers,        answer this status/body instead (body: string or JSON value)
//    reset,                        destroy the socket without answering (a network error)
//    delayMs,                      wait this long before sending the response head
//    cutAfter,                     stream: close the socket after N events, leaving the chunked
//                                  body unfinished (an upstream that dies mid-stream)
//    hangAfter,                    stream: send N events, then nothing until the client leaves
//    fragment,                     stream: write every event in two pieces, split mid-line
//    eventDelayMs}                 stream: delay between events for this answer
//
// The server counts responses that the client abandoned (connection closed before the response
// was complete, not by a scripted cut): that is how a test sees that gatehouse cancelled an
// upstream request when its own client went away.
//
// Control API over HTTP (for tools outside this process):
//   GET    /__replay/health            {"ok": true}
//   GET    /__replay/received[?prefix=/c/...]   requests received, oldest first
//   GET    /__replay/stats             counters (requests, clientClosed, serverCut, open)
//   POST   /__replay/script            a fault object, or an array of them
//   DELETE /__replay/script            forget every scripted fault
//   POST   /__replay/reset             forget faults, received requests, counters, statistics
//
// In-process: `const r = await startReplay({port: 0}); r.url; r.script({...}); r.received();
// await r.close();` Run as a program (node tests/replay/server.mjs [--port N] [--host H]
// [--event-delay MS]) it prints its URL and serves until killed.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');

/** The shared folder: $GATEHOUSE_SHARED_DIR, or <repo>/../shared. */
export function sharedDir() {
    return process.env.GATEHOUSE_SHARED_DIR || path.resolve(REPO_ROOT, '..', 'shared');
}

/** The recorded cassettes folder (may not exist). */
export function cassettesDir() {
    return path.join(sharedDir(), 'cassettes');
}

/** The project's own e2e fixtures folder. */
export function fixturesDir() {
    return path.join(REPO_ROOT, 'tests', 'fixtures', 'e2e');
}

/** Reads and parses one recording file; throws with the path when it is missing or invalid. */
export function loadRecording(dir, group, name) {
    const file = path.join(dir, group, `${name}.json`);
    const text = fs.readFileSync(file, 'utf8');
    const rec = JSON.parse(text);
    if (!Array.isArray(rec.interactions)) {
        throw new Error(`${file}: no "interactions" array`);
    }
    return rec;
}

/** Path of a recorded URI without scheme, host and query ("/v1/messages"). */
export function uriPath(uri) {
    try {
        return new URL(uri).pathname;
    } catch {
        return String(uri).split('?')[0];
    }
}

/** The endpoint of a request path: what follows a leading /v1, /v1beta or /v2 segment. */
export function endpointOf(rest) {
    const p = rest.split('?')[0];
    const m = p.match(/^\/v\d+[a-z0-9]*(\/.*)$/);
    return m ? m[1] : p;
}

/** Splits an SSE body into events, each keeping its blank-line terminator. */
export function splitSseEvents(text) {
    const events = [];
    const re = /\r?\n\r?\n/g;
    let start = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
        events.push(text.slice(start, m.index + m[0].length));
        start = m.index + m[0].length;
    }
    if (start < text.length && text.slice(start).trim() !== '') {
        events.push(text.slice(start));
    }
    return events;
}

/** Parses SSE text into [{event, data}] (data lines joined with "\n"). */
export function parseSse(text) {
    return splitSseEvents(text)
        .map((block) => {
            let event = null;
            const data = [];
            for (const line of block.split(/\r?\n/)) {
                if (line.startsWith('event:')) event = line.slice(6).trim();
                else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            }
            return { event, data: data.length ? data.join('\n') : null };
        })
        .filter((e) => e.event !== null || e.data !== null);
}

function isSse(contentType) {
    return /text\/event-stream/i.test(contentType || '');
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Sleeps, but wakes early when the response closes (so no timer outlives a gone client).
function sleepUnlessClosed(ms, res) {
    return new Promise((resolve) => {
        if (res.destroyed) return resolve();
        const done = () => {
            clearTimeout(timer);
            res.off('close', done);
            resolve();
        };
        const timer = setTimeout(done, ms);
        res.on('close', done);
    });
}

// ---- mock mode -------------------------------------------------------------------------------

function lastUserText(body) {
    const msgs = Array.isArray(body?.messages) ? body.messages : [];
    for (let i = msgs.length - 1; i >= 0; i--) {
        const m = msgs[i];
        if (m?.role !== 'user') continue;
        if (typeof m.content === 'string') return m.content;
        if (Array.isArray(m.content)) {
            return m.content
                .filter((p) => p && p.type === 'text' && typeof p.text === 'string')
                .map((p) => p.text)
                .join('');
        }
    }
    return '';
}

function countWords(value) {
    const s = typeof value === 'string' ? value : JSON.stringify(value ?? '');
    const words = s.split(/\s+/).filter(Boolean);
    return words.length;
}

/** The reply text the mock produces for a request body (exported for tests). */
export function mockReplyText(body) {
    return `echo: ${lastUserText(body)}`;
}

function wordPieces(text) {
    // Split after each space so the pieces concatenate back to the exact text.
    const pieces = text.match(/\S*\s*/g).filter((p) => p !== '');
    return pieces.length ? pieces : [''];
}

function mockOpenAI(body, seq) {
    const model = typeof body?.model === 'string' ? body.model : 'mock-model';
    const text = mockReplyText(body);
    const id = `chatcmpl-mock-${seq}`;
    const created = 1700000000 + seq;
    const usage = {
        prompt_tokens: countWords(body?.messages),
        completion_tokens: countWords(text),
        total_tokens: countWords(body?.messages) + countWords(text),
    };
    if (!body?.stream) {
        return {
            status: 200,
            contentType: 'application/json',
            body: JSON.stringify({
                id,
                object: 'chat.completion',
                created,
                model,
                choices: [
                    {
                        index: 0,
                        message: { role: 'assistant', content: text, refusal: null },
                        logprobs: null,
                        finish_reason: 'stop',
                    },
                ],
                usage,
            }),
        };
    }
    const chunk = (delta, finish, extra = {}) =>
        `data: ${JSON.stringify({
            id,
            object: 'chat.completion.chunk',
            created,
            model,
            choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
            ...extra,
        })}\n\n`;
    const events = [chunk({ role: 'assistant', content: '' }, null)];
    for (const piece of wordPieces(text)) events.push(chunk({ content: piece }, null));
    events.push(chunk({}, 'stop'));
    if (body?.stream_options?.include_usage) {
        events.push(
            `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [], usage })}\n\n`,
        );
    }
    events.push('data: [DONE]\n\n');
    return { status: 200, contentType: 'text/event-stream; charset=utf-8', events };
}

function mockAnthropic(body, seq) {
    const model = typeof body?.model === 'string' ? body.model : 'mock-model';
    const text = mockReplyText(body);
    const id = `msg_mock_${seq}`;
    const inputTokens = countWords(body?.messages) + countWords(body?.system ?? '');
    const outputTokens = countWords(text);
    if (!body?.stream) {
        return {
            status: 200,
            contentType: 'application/json',
            body: JSON.stringify({
                id,
                type: 'message',
                role: 'assistant',
                model,
                content: [{ type: 'text', text }],
                stop_reason: 'end_turn',
                stop_sequence: null,
                usage: { input_tokens: inputTokens, output_tokens: outputTokens },
            }),
        };
    }
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    const events = [
        ev('message_start', {
            message: {
                id,
                type: 'message',
                role: 'assistant',
                model,
                content: [],
                stop_reason: null,
                stop_sequence: null,
                usage: { input_tokens: inputTokens, output_tokens: 1 },
            },
        }),
        ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
        ev('ping', {}),
    ];
    for (const piece of wordPieces(text)) {
        events.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } }));
    }
    events.push(ev('content_block_stop', { index: 0 }));
    events.push(
        ev('message_delta', {
            delta: { stop_reason: 'end_turn', stop_sequence: null },
            usage: { output_tokens: outputTokens },
        }),
    );
    events.push(ev('message_stop', {}));
    return { status: 200, contentType: 'text/event-stream; charset=utf-8', events };
}

// ---- the server ------------------------------------------------------------------------------

function parseRoute(pathname) {
    const segs = pathname.split('/');
    // segs[0] is "" (leading slash)
    const kind = segs[1];
    if (kind === 'c' || kind === 'f') {
        if (segs.length < 4) return null;
        let group;
        let nameSeg;
        try {
            group = decodeURIComponent(segs[2]);
            nameSeg = decodeURIComponent(segs[3]);
        } catch {
            return null;
        }
        let pin = null;
        const at = nameSeg.match(/^(.*)@(\d+)$/);
        if (at) {
            nameSeg = at[1];
            pin = Number(at[2]);
        }
        if (!group || !nameSeg || group.includes('..') || nameSeg.includes('..')) return null;
        if (group.includes('/') || nameSeg.includes('/')) return null;
        const route = segs.slice(0, 4).join('/');
        const rest = '/' + segs.slice(4).join('/');
        return { kind, group, name: nameSeg, pin, route, rest };
    }
    if (kind === 'm') {
        const family = segs[2];
        if (family !== 'openai' && family !== 'anthropic') return null;
        // An optional tag segment unless it already is the endpoint (v1, v1beta, ...).
        let n = 3;
        let tag = null;
        if (segs.length > 3 && segs[3] && !/^v\d/.test(segs[3])) {
            tag = segs[3];
            n = 4;
        }
        const route = segs.slice(0, n).join('/');
        const rest = '/' + segs.slice(n).join('/');
        return { kind, family, tag, route, rest };
    }
    return null;
}

/**
 * Starts a replay server. Options: port (0 = any free port), host (127.0.0.1), cassettes
 * (folder, default cassettesDir()), fixtures (folder, default fixturesDir()), eventDelayMs
 * (between SSE events, default 2). Resolves to the control object described at the top.
 */
export async function startReplay(opts = {}) {
    const host = opts.host ?? '127.0.0.1';
    const dirs = { c: opts.cassettes ?? cassettesDir(), f: opts.fixtures ?? fixturesDir() };
    const defaultEventDelay = opts.eventDelayMs ?? 2;

    const recordings = new Map(); // "c:group/name" -> parsed recording
    const counters = new Map(); // route key -> next candidate index
    let faults = [];
    let received = [];
    const stats = { requests: 0, clientClosed: 0, serverCut: 0, open: 0 };
    const entryOf = new WeakMap(); // response -> its received entry
    const closedLog = []; // [{path, at}] for responses the client abandoned
    let seq = 0;

    function recording(kind, group, name) {
        const key = `${kind}:${group}/${name}`;
        if (!recordings.has(key)) recordings.set(key, loadRecording(dirs[kind], group, name));
        return recordings.get(key);
    }

    function takeFault(pathname) {
        for (let i = 0; i < faults.length; i++) {
            const f = faults[i];
            if (!pathname.startsWith(f.prefix)) continue;
            if (f.after > 0) {
                f.after -= 1;
                continue;
            }
            if (f.times > 0) f.times -= 1;
            if (f.times === 0) faults.splice(i, 1);
            return f;
        }
        return null;
    }

    function addFault(f) {
        if (!f || typeof f.prefix !== 'string' || !f.prefix.startsWith('/')) {
            throw new Error('a fault needs a "prefix" starting with "/"');
        }
        const times = f.times === undefined ? 1 : Number(f.times);
        faults.push({ ...f, times: times < 0 ? -1 : times });
    }

    function sendJson(res, status, value) {
        const body = JSON.stringify(value);
        res.writeHead(status, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
        });
        res.end(body);
    }

    function replayError(res, status, message) {
        sendJson(res, status, { error: { message: `replay: ${message}`, type: 'replay_error' } });
    }

    async function control(req, res, url, bodyText) {
        const p = url.pathname;
        if (p === '/__replay/health') return sendJson(res, 200, { ok: true });
        if (p === '/__replay/received' && req.method === 'GET') {
            return sendJson(res, 200, api.received(url.searchParams.get('prefix') ?? undefined));
        }
        if (p === '/__replay/stats') return sendJson(res, 200, api.stats());
        if (p === '/__replay/script' && req.method === 'POST') {
            let v;
            try {
                v = JSON.parse(bodyText);
                for (const f of Array.isArray(v) ? v : [v]) addFault(f);
            } catch (e) {
                return replayError(res, 400, e.message);
            }
            return sendJson(res, 200, { ok: true, pending: faults.length });
        }
        if (p === '/__replay/script' && req.method === 'DELETE') {
            faults = [];
            return sendJson(res, 200, { ok: true });
        }
        if (p === '/__replay/reset' && req.method === 'POST') {
            api.reset();
            return sendJson(res, 200, { ok: true });
        }
        return replayError(res, 404, `no control endpoint ${req.method} ${p}`);
    }

    // Chooses the answer for a routed request: {status, contentType, body} or {.., events}.
    function answerFor(route, bodyJson, entry) {
        if (route.kind === 'm') {
            const n = seq++;
            entry.served = 'mock';
            return route.family === 'openai' ? mockOpenAI(bodyJson, n) : mockAnthropic(bodyJson, n);
        }
        let rec;
        try {
            rec = recording(route.kind, route.group, route.name);
        } catch (e) {
            entry.served = 'missing';
            const where = route.kind === 'c' ? 'cassette' : 'fixture';
            return {
                status: 404,
                contentType: 'application/json',
                body: JSON.stringify({
                    error: { message: `replay: ${where} not found: ${e.message}`, type: 'replay_error' },
                }),
            };
        }
        const endpoint = endpointOf(route.rest);
        const candidates = [];
        rec.interactions.forEach((it, i) => {
            if (uriPath(it.request?.uri ?? '').endsWith(endpoint)) candidates.push(i);
        });
        if (candidates.length === 0) {
            entry.served = 'missing';
            return {
                status: 404,
                contentType: 'application/json',
                body: JSON.stringify({
                    error: {
                        message: `replay: ${route.group}/${route.name} has no interaction for ${endpoint}`,
                        type: 'replay_error',
                    },
                }),
            };
        }
        let k;
        if (route.pin !== null) {
            k = route.pin % candidates.length;
        } else {
            const key = route.route;
            const next = counters.get(key) ?? 0;
            counters.set(key, next + 1);
            k = next % candidates.length;
        }
        const idx = candidates[k];
        const it = rec.interactions[idx];
        entry.served = route.kind === 'c' ? 'cassette' : 'fixture';
        entry.interaction = idx;
        const resp = it.response;
        const contentType = resp.headers?.['content-type'] ?? 'application/json';
        const b = resp.body ?? {};
        let payload;
        if ('json' in b) payload = JSON.stringify(b.json);
        else if ('text' in b) payload = b.text;
        else if ('base64' in b) payload = Buffer.from(b.base64, 'base64');
        else payload = '';
        if (isSse(contentType) && typeof payload === 'string') {
            return { status: resp.status, contentType, events: splitSseEvents(payload) };
        }
        return { status: resp.status, contentType, body: payload };
    }

    async function streamEvents(req, res, answer, fault, entry) {
        res.writeHead(answer.status, {
            'content-type': answer.contentType,
            'cache-control': 'no-cache',
            ...(fault?.headers ?? {}),
        });
        res.flushHeaders();
        const delay = fault?.eventDelayMs ?? defaultEventDelay;
        const cutAfter = fault?.cutAfter;
        const hangAfter = fault?.hangAfter;
        let sent = 0;
        for (const ev of answer.events) {
            if (res.destroyed) return;
            if (cutAfter !== undefined && sent >= cutAfter) {
                entry.cut = true;
                stats.serverCut += 1;
                res.socket?.destroy();
                return;
            }
            if (hangAfter !== undefined && sent >= hangAfter) {
                entry.hung = true;
                return; // leave the response open; the client has to go away
            }
            if (fault?.fragment && ev.length > 2) {
                const half = Math.floor(ev.length / 2);
                res.write(ev.slice(0, half));
                await sleep(1);
                if (res.destroyed) return;
                res.write(ev.slice(half));
            } else {
                res.write(ev);
            }
            sent += 1;
            entry.eventsSent = sent;
            if (delay > 0) await sleepUnlessClosed(delay, res);
            else await new Promise((resolve) => setImmediate(resolve));
        }
        if (cutAfter !== undefined && sent >= cutAfter && !res.destroyed) {
            // cutAfter >= number of events: cut before the terminating chunk.
            entry.cut = true;
            stats.serverCut += 1;
            res.socket?.destroy();
            return;
        }
        if (hangAfter !== undefined) {
            entry.hung = true;
            return;
        }
        res.end();
    }

    async function handle(req, res, bodyBuf) {
        const url = new URL(req.url, `http://${host}`);
        const bodyText = bodyBuf.toString('utf8');
        if (url.pathname.startsWith('/__replay/')) return control(req, res, url, bodyText);

        stats.requests += 1;
        let bodyJson = null;
        try {
            bodyJson = bodyText ? JSON.parse(bodyText) : null;
        } catch {
            bodyJson = null;
        }
        const entry = {
            seq: stats.requests,
            method: req.method,
            path: req.url,
            headers: { ...req.headers },
            body: bodyText,
            json: bodyJson,
            at: Date.now(),
            served: null,
        };
        entryOf.set(res, entry);
        received.push(entry);

        const route = parseRoute(url.pathname);
        if (!route) {
            entry.served = 'error';
            return replayError(res, 404, `no route for ${url.pathname} (use /c/, /f/ or /m/)`);
        }
        entry.route = route.route;

        const fault = takeFault(url.pathname);
        if (fault) entry.fault = { ...fault };
        if (fault?.delayMs) {
            await sleepUnlessClosed(fault.delayMs, res);
            if (res.destroyed) return;
        }
        if (fault?.reset) {
            entry.served = 'reset';
            stats.serverCut += 1;
            req.socket.destroy();
            return;
        }
        if (fault && fault.status !== undefined) {
            entry.served = 'fault';
            const b = fault.body ?? { error: { message: `scripted status ${fault.status}`, type: 'api_error' } };
            const text = typeof b === 'string' ? b : JSON.stringify(b);
            res.writeHead(fault.status, {
                'content-type': typeof b === 'string' ? 'text/plain' : 'application/json',
                'content-length': Buffer.byteLength(text),
                ...(fault.headers ?? {}),
            });
            res.end(text);
            return;
        }

        const answer = answerFor(route, bodyJson, entry);
        if (answer.events) return streamEvents(req, res, answer, fault, entry);
        const payload = answer.body;
        res.writeHead(answer.status, {
            'content-type': answer.contentType,
            'content-length': Buffer.byteLength(payload),
            ...(fault?.headers ?? {}),
        });
        res.end(payload);
    }

    const sockets = new Set();
    const server = http.createServer((req, res) => {
        stats.open += 1;
        let counted = false;
        res.on('close', () => {
            stats.open -= 1;
            if (counted) return;
            counted = true;
            // Closed before our response was complete, and not by a scripted cut or reset.
            if (!res.writableFinished && !req.url.startsWith('/__replay/')) {
                const e = entryOf.get(res);
                if (!(e && (e.cut || e.served === 'reset'))) {
                    stats.clientClosed += 1;
                    closedLog.push({ path: req.url, at: Date.now() });
                    if (e) e.clientClosed = true;
                }
            }
        });
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            handle(req, res, Buffer.concat(chunks)).catch((e) => {
                if (!res.headersSent) replayError(res, 500, e.stack || String(e));
                else res.destroy();
            });
        });
    });
    server.keepAliveTimeout = 5000;
    server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
    });

    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, host, resolve);
    });
    const port = server.address().port;
    const base = `http://${host}:${port}`;

    const api = {
        url: base,
        port,
        host,
        server,
        /** Base URL for a recorded cassette (pin: always answer candidate K). */
        cassetteUrl(group, name, pin) {
            const n = pin === undefined ? name : `${name}@${pin}`;
            return `${base}/c/${encodeURIComponent(group)}/${encodeURIComponent(n)}`;
        },
        /** Base URL for one of the project's own fixtures. */
        fixtureUrl(group, name, pin) {
            const n = pin === undefined ? name : `${name}@${pin}`;
            return `${base}/f/${encodeURIComponent(group)}/${encodeURIComponent(n)}`;
        },
        /** Base URL for mock mode: family "openai" or "anthropic", optional tag. */
        mockUrl(family, tag) {
            return tag ? `${base}/m/${family}/${tag}` : `${base}/m/${family}`;
        },
        /** Path part of a base URL made above, for fault prefixes and filters. */
        pathOf(baseUrl) {
            return new URL(baseUrl).pathname;
        },
        /** Requests received (oldest first), optionally only those whose path starts with prefix. */
        received(prefix) {
            const list = prefix ? received.filter((r) => r.path.startsWith(prefix)) : received;
            return list.map((r) => ({ ...r }));
        },
        clearReceived() {
            received = [];
        },
        /** Adds one fault or an array of them. */
        script(f) {
            for (const x of Array.isArray(f) ? f : [f]) addFault(x);
        },
        clearScripts() {
            faults = [];
        },
        pendingScripts() {
            return faults.map((f) => ({ ...f }));
        },
        /** Forgets faults, received requests, replay counters and statistics. */
        reset() {
            faults = [];
            received = [];
            counters.clear();
            closedLog.length = 0;
            stats.requests = 0;
            stats.clientClosed = 0;
            stats.serverCut = 0;
        },
        stats() {
            return { ...stats, closed: closedLog.map((c) => ({ ...c })) };
        },
        /** Responses the client abandoned, optionally filtered by path prefix. */
        clientClosed(prefix) {
            return closedLog.filter((c) => !prefix || c.path.startsWith(prefix)).length;
        },
        /** Polls fn() until it returns a truthy value or timeoutMs passes; returns the last value. */
        async waitFor(fn, timeoutMs = 5000, stepMs = 20) {
            const end = Date.now() + timeoutMs;
            let v = fn();
            while (!v && Date.now() < end) {
                await sleep(stepMs);
                v = fn();
            }
            return v;
        },
        async close() {
            await new Promise((resolve) => {
                server.close(() => resolve());
                for (const s of sockets) s.destroy();
            });
        },
    };
    return api;
}

// ---- command line ------------------------------------------------------------------------------

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const args = process.argv.slice(2);
    const opt = (name, dflt) => {
        const i = args.indexOf(name);
        return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
    };
    const r = await startReplay({
        port: Number(opt('--port', 0)),
        host: opt('--host', '127.0.0.1'),
        eventDelayMs: Number(opt('--event-delay', 2)),
    });
    process.stdout.write(`replay server listening on ${r.url}\n`);
    const stop = () => r.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
}
