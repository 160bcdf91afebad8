// harness.mjs - runs a real gatehouse process against the replay server for the e2e suite.
//
// startGateway() starts a replay server (unless given one), writes a temporary config file whose
// providers point at it, starts $GATEHOUSE_BIN (default build/gatehouse; the suite also runs with
// build/asan/gatehouse) as
//
//     gatehouse serve --config <file> --host 127.0.0.1 --port <free port> --threads 2
//
// and waits until GET /health answers 200. gw.stop() sends SIGTERM and resolves to the exit code,
// signal and everything the process wrote to stderr; checkShutdown() turns that into assertions:
// exit code 0, no sanitizer report, no key value anywhere in stderr.
//
// Key values are made distinctive and random per run (sk-e2e-...-SECRET-<hex>) so that grepping
// stderr for them means something.

import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

import { REPO_ROOT, cassettesDir, startReplay } from '../replay/server.mjs';

export { REPO_ROOT, cassettesDir, startReplay };
export { OpenAI };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Absolute path of the gatehouse binary under test. */
export function gatehouseBin() {
    const b = process.env.GATEHOUSE_BIN || 'build/gatehouse';
    return path.resolve(REPO_ROOT, b);
}

/** True when the binary under test was built with the sanitizers (slower start). */
export function isAsan() {
    return /asan/.test(gatehouseBin());
}

/**
 * Skip reason for a test that needs recorded cassettes, or false when they are all there.
 * Pass cassette paths relative to the cassettes folder ("openai/test_x").
 */
export function needCassettes(...names) {
    const dir = cassettesDir();
    if (!fs.existsSync(dir)) {
        return `recorded cassettes not found at ${dir} (set GATEHOUSE_SHARED_DIR to the folder holding cassettes/)`;
    }
    for (const n of names) {
        const f = path.join(dir, `${n}.json`);
        if (!fs.existsSync(f)) return `cassette ${f} not found`;
    }
    return false;
}

/** A free TCP port on 127.0.0.1 (released before returning; a small race is accepted). */
export async function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

/** A distinctive, random fake key value; never a real secret. */
export function fakeKey(label) {
    return `sk-e2e-${label}-SECRET-${crypto.randomBytes(8).toString('hex')}`;
}

// The provider names gatehouse knows (src/config/known_providers.c); any other name is a custom
// provider and needs custom_provider_config.base_provider_type.
const KNOWN_PROVIDERS = new Set([
    'openai', 'anthropic', 'groq', 'mistral', 'openrouter', 'xai', 'deepseek', 'cerebras',
    'together', 'fireworks', 'ollama', 'vllm', 'huggingface', 'perplexity',
]);

/**
 * One provider entry of the config file.
 *   name        provider name (a custom name needs family)
 *   baseUrl     where the replay server answers for it
 *   family      "openai" | "anthropic" (custom_provider_config.base_provider_type), for
 *               names gatehouse does not know
 *   keys        [{name, value?, models?, weight?}]; value defaults to a fakeKey
 *   maxRetries, backoffInitial, backoffMax (ms), timeout (s), concurrency, bufferSize
 */
export function provider(name, o) {
    const keys = (o.keys ?? [{ name: `${name}-key` }]).map((k) => ({
        name: k.name,
        value: k.value ?? fakeKey(k.name),
        models: k.models ?? [],
        weight: k.weight ?? 1,
    }));
    const entry = {
        keys,
        network_config: {
            base_url: o.baseUrl,
            max_retries: o.maxRetries ?? 0,
            retry_backoff_initial: o.backoffInitial ?? 5,
            retry_backoff_max: o.backoffMax ?? 20,
            default_request_timeout_in_seconds: o.timeout ?? 20,
        },
    };
    if (o.concurrency !== undefined || o.bufferSize !== undefined) {
        entry.concurrency_and_buffer_size = {
            concurrency: o.concurrency ?? 100,
            buffer_size: o.bufferSize ?? 1000,
        };
    }
    if (!KNOWN_PROVIDERS.has(name)) {
        if (!o.family) throw new Error(`provider ${name}: a custom provider needs a family`);
        entry.custom_provider_config = { base_provider_type: o.family };
    }
    return [name, entry];
}

/** Every key value in a config object (for the "no secret in stderr" check). */
export function secretsOf(config) {
    const out = [];
    for (const p of Object.values(config.providers ?? {})) {
        for (const k of p.keys ?? []) if (k.value) out.push(k.value);
    }
    return out;
}

const children = new Set();
process.on('exit', () => {
    for (const c of children) {
        try {
            c.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
});

/**
 * Starts gatehouse. Options:
 *   providers   array of provider(...) results
 *   server      extra "server" settings (merged)
 *   client      "client" settings
 *   replay      an existing replay server (else one is started and closed by stop())
 *   env         extra environment variables
 *   threads     worker threads (2)
 *   sections    extra top-level config sections (logs, audit, metrics, admin, ...), merged
 *               into the generated config as they are
 *   dir         run in this existing directory (gatehouse's cwd, holding config.json and
 *               ./data) instead of a new temporary one; it is then not removed by stop()
 *   keepDir     do not remove the temporary directory on stop() (the caller removes gw.dir)
 * Resolves to {url, baseURL, port, replay, config, configPath, dir, dataDir, client(), post(),
 * get(), stderr(), stop(), secrets}. dataDir is where gatehouse keeps its data (./data in dir).
 */
export async function startGateway(opts = {}) {
    const bin = gatehouseBin();
    if (!fs.existsSync(bin)) {
        throw new Error(`gatehouse binary not found at ${bin}: run make (or make asan), or set GATEHOUSE_BIN`);
    }
    const ownReplay = !opts.replay;
    const replay = opts.replay ?? (await startReplay({ port: 0 }));
    const providersList = typeof opts.providers === 'function' ? opts.providers(replay) : opts.providers ?? [];
    const config = {
        client: { drop_excess_requests: false, ...(opts.client ?? {}) },
        providers: Object.fromEntries(providersList),
        server: { ...(opts.server ?? {}) },
        ...(opts.sections ?? {}),
    };
    const ownDir = !opts.dir;
    const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'gatehouse-e2e-'));
    const configPath = path.join(dir, 'config.json');
    fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
    const port = await freePort();
    const args = [
        'serve', '--config', configPath, '--host', '127.0.0.1', '--port', String(port),
        '--threads', String(opts.threads ?? 2),
    ];
    const child = spawn(bin, args, {
        cwd: dir,
        env: { ...process.env, ...(opts.env ?? {}) },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stderr = '';
    let stdout = '';
    child.stderr.setEncoding('utf8');
    child.stdout.setEncoding('utf8');
    child.stderr.on('data', (d) => {
        stderr += d;
        if (process.env.GATEHOUSE_E2E_VERBOSE) process.stderr.write(d);
    });
    child.stdout.on('data', (d) => {
        stdout += d;
    });
    const exited = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
            children.delete(child);
            resolve({ code, signal });
        });
    });
    let exitInfo = null;
    exited.then((e) => {
        exitInfo = e;
    });

    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + (isAsan() ? 30000 : 15000);
    let lastErr = null;
    for (;;) {
        if (exitInfo) {
            throw new Error(
                `gatehouse exited during start-up (code ${exitInfo.code}, signal ${exitInfo.signal}); ` +
                    `args: ${args.join(' ')}\nconfig: ${JSON.stringify(config)}\nstderr:\n${stderr}`,
            );
        }
        try {
            const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
            await r.arrayBuffer();
            if (r.status === 200) break;
            lastErr = new Error(`GET /health answered ${r.status}`);
        } catch (e) {
            lastErr = e;
        }
        if (Date.now() > deadline) {
            child.kill('SIGKILL');
            throw new Error(`gatehouse did not answer GET /health with 200 in time (${lastErr?.message}); stderr:\n${stderr}`);
        }
        await sleep(50);
    }

    let stopped = null;
    const gw = {
        url,
        baseURL: `${url}/v1`,
        port,
        replay,
        config,
        configPath,
        dir,
        dataDir: path.join(dir, 'data'),
        secrets: secretsOf(config),
        pid: child.pid,
        /** An official OpenAI client aimed at this gateway; no client-side retries. */
        client(o = {}) {
            return new OpenAI({ baseURL: `${url}/v1`, apiKey: 'anything', maxRetries: 0, timeout: 30000, ...o });
        },
        /** Raw POST of a JSON value (or a string, sent as is). */
        async post(p, body, headers = {}) {
            const r = await fetch(url + p, {
                method: 'POST',
                headers: { 'content-type': 'application/json', ...headers },
                body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
            });
            return readResponse(r);
        },
        async get(p, headers = {}) {
            return readResponse(await fetch(url + p, { headers }));
        },
        stderr: () => stderr,
        stdout: () => stdout,
        alive: () => exitInfo === null,
        /** SIGTERM, then wait (SIGKILL after timeoutMs). Idempotent. */
        async stop(timeoutMs = isAsan() ? 30000 : 15000) {
            if (!stopped) {
                stopped = (async () => {
                    if (!exitInfo) child.kill('SIGTERM');
                    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
                    const e = await exited;
                    clearTimeout(timer);
                    if (ownReplay) await replay.close();
                    if (ownDir && !opts.keepDir) fs.rmSync(dir, { recursive: true, force: true });
                    return { code: e.code, signal: e.signal, stderr };
                })();
            }
            return stopped;
        },
    };
    return gw;
}

async function readResponse(r) {
    const text = await r.text();
    let json = null;
    try {
        json = JSON.parse(text);
    } catch {
        json = null;
    }
    return { status: r.status, headers: r.headers, text, json };
}

/** Lines of a sanitizer or UBSan report in a process's stderr. */
export function sanitizerReports(stderr) {
    return stderr
        .split('\n')
        .filter((l) => /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer/.test(l));
}

/**
 * Stops the gateway and asserts a clean shutdown: exit code 0 after SIGTERM, no sanitizer report,
 * no key value in stderr. Returns the stop result.
 */
export async function checkShutdown(gw) {
    const res = await gw.stop();
    const reports = sanitizerReports(res.stderr);
    assert.deepEqual(reports, [], `sanitizer reported errors:\n${res.stderr.slice(-6000)}`);
    assert.equal(res.signal, null, `gatehouse died of signal ${res.signal}; stderr tail:\n${res.stderr.slice(-3000)}`);
    assert.equal(res.code, 0, `gatehouse exit code after SIGTERM; stderr tail:\n${res.stderr.slice(-3000)}`);
    for (const s of gw.secrets) {
        assert.ok(!res.stderr.includes(s), `a key value (${s.slice(0, 12)}...) appears in gatehouse's stderr`);
    }
    return res;
}

// ---- reading responses ---------------------------------------------------------------------------

/**
 * Consumes an openai-client stream. Returns {chunks, content, reasoning, toolCalls (by index:
 * {id, type, name, arguments}), finishReason, usageChunks, error}. A thrown error is caught
 * and returned in error, with what had arrived before it.
 */
export async function collectStream(stream) {
    const out = { chunks: [], content: '', reasoning: '', toolCalls: [], finishReason: null, usageChunks: [], error: null };
    try {
        for await (const chunk of stream) {
            out.chunks.push(chunk);
            if (chunk.usage) out.usageChunks.push(chunk);
            for (const ch of chunk.choices ?? []) {
                const d = ch.delta ?? {};
                if (typeof d.content === 'string') out.content += d.content;
                if (typeof d.reasoning_content === 'string') out.reasoning += d.reasoning_content;
                for (const tc of d.tool_calls ?? []) {
                    const i = tc.index;
                    out.toolCalls[i] ??= { id: null, type: null, name: '', arguments: '' };
                    const t = out.toolCalls[i];
                    if (tc.id) t.id = tc.id;
                    if (tc.type) t.type = tc.type;
                    if (tc.function?.name) t.name += tc.function.name;
                    if (typeof tc.function?.arguments === 'string') t.arguments += tc.function.arguments;
                }
                if (ch.finish_reason) out.finishReason = ch.finish_reason;
            }
        }
    } catch (e) {
        out.error = e;
    }
    return out;
}

/** Reads a raw SSE response body to the end: {events: [{event, data}], text, error}. */
export async function readSseBody(response) {
    let text = '';
    let error = null;
    try {
        const dec = new TextDecoder();
        for await (const piece of response.body) text += dec.decode(piece, { stream: true });
    } catch (e) {
        error = e;
    }
    const events = [];
    for (const block of text.split(/\r?\n\r?\n/)) {
        if (!block.trim()) continue;
        let event = null;
        const data = [];
        for (const line of block.split(/\r?\n/)) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        events.push({ event, data: data.length ? data.join('\n') : null });
    }
    return { events, text, error };
}

/** The text of an OpenAI message content (string or parts) or of Anthropic content blocks. */
export function textOf(content) {
    if (content === null || content === undefined) return '';
    if (typeof content === 'string') return content;
    if (Array.isArray(content)) {
        return content
            .filter((p) => p && (p.type === 'text' || p.type === undefined) && typeof p.text === 'string')
            .map((p) => p.text)
            .join('');
    }
    return '';
}

export { sleep };
