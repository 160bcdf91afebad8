// recorded.mjs - what a recording says the client should get back.
//
// The e2e tests never hard-code a model's answer: they read the recording (a cassette or one of
// tests/fixtures/e2e) and derive from it what gatehouse must return through its OpenAI API:
// text, reasoning, tool calls with their arguments, the finish reason and the usage.

import { cassettesDir, fixturesDir, loadRecording, parseSse, uriPath } from '../replay/server.mjs';

/** A cassette from the shared folder: cassette('openai', 'test_x'). */
export function cassette(group, name) {
    return loadRecording(cassettesDir(), group, name);
}

/** One of the project's fixtures: fixture('anthropic', 'stream_thinking'). */
export function fixture(group, name) {
    return loadRecording(fixturesDir(), group, name);
}

/** The interactions of a recording that went to an endpoint ("/chat/completions", "/messages"). */
export function turns(rec, endpoint) {
    return rec.interactions.filter((it) => uriPath(it.request.uri).endsWith(endpoint));
}

/** The recorded response body as text (JSON serialized). */
export function bodyText(resp) {
    const b = resp.body ?? {};
    if ('json' in b) return JSON.stringify(b.json);
    if ('text' in b) return b.text;
    return '';
}

const ANTHROPIC_FINISH = {
    end_turn: 'stop',
    stop_sequence: 'stop',
    pause_turn: 'stop',
    tool_use: 'tool_calls',
    max_tokens: 'length',
    refusal: 'content_filter',
};

/** Finish reason an Anthropic stop_reason becomes in the OpenAI shape. */
export function anthropicFinish(stopReason) {
    return ANTHROPIC_FINISH[stopReason] ?? stopReason;
}

function anthropicUsage(u) {
    if (!u) return null;
    const prompt = (u.input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
    const completion = u.output_tokens ?? 0;
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Expected result of an OpenAI chat.completion JSON response. */
export function expectOpenAIJson(resp) {
    const j = resp.body.json;
    const m = j.choices[0].message;
    return {
        content: m.content ?? null,
        toolCalls: (m.tool_calls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })),
        finishReason: j.choices[0].finish_reason,
        usage: j.usage
            ? { prompt_tokens: j.usage.prompt_tokens, completion_tokens: j.usage.completion_tokens, total_tokens: j.usage.total_tokens }
            : null,
    };
}

/** Expected result of an OpenAI SSE stream: the deltas put together. */
export function expectOpenAIStream(resp) {
    const out = { content: '', toolCalls: [], finishReason: null, usage: null, chunks: 0 };
    for (const ev of parseSse(bodyText(resp))) {
        if (ev.data === null || ev.data === '[DONE]') continue;
        const c = JSON.parse(ev.data);
        out.chunks += 1;
        if (c.usage) {
            out.usage = { prompt_tokens: c.usage.prompt_tokens, completion_tokens: c.usage.completion_tokens, total_tokens: c.usage.total_tokens };
        }
        for (const ch of c.choices ?? []) {
            const d = ch.delta ?? {};
            if (typeof d.content === 'string') out.content += d.content;
            for (const tc of d.tool_calls ?? []) {
                out.toolCalls[tc.index] ??= { id: null, name: '', arguments: '' };
                const t = out.toolCalls[tc.index];
                if (tc.id) t.id = tc.id;
                if (tc.function?.name) t.name += tc.function.name;
                if (typeof tc.function?.arguments === 'string') t.arguments += tc.function.arguments;
            }
            if (ch.finish_reason) out.finishReason = ch.finish_reason;
        }
    }
    return out;
}

/** Expected OpenAI-shaped result of an Anthropic Messages JSON response. */
export function expectAnthropicJson(resp) {
    const j = resp.body.json;
    const blocks = j.content ?? [];
    return {
        text: blocks.filter((b) => b.type === 'text').map((b) => b.text).join(''),
        reasoning: blocks.filter((b) => b.type === 'thinking').map((b) => b.thinking).join(''),
        toolCalls: blocks.filter((b) => b.type === 'tool_use').map((b) => ({ id: b.id, name: b.name, input: b.input })),
        finishReason: anthropicFinish(j.stop_reason),
        usage: anthropicUsage(j.usage),
    };
}

/** Expected OpenAI-shaped result of an Anthropic Messages SSE stream. */
export function expectAnthropicStream(resp) {
    const out = { text: '', reasoning: '', toolCalls: [], finishReason: null, usage: null, error: null, complete: false };
    const blocks = new Map(); // index -> tool call
    let usageIn = null;
    let outputTokens = 0;
    for (const ev of parseSse(bodyText(resp))) {
        if (ev.data === null) continue;
        const d = JSON.parse(ev.data);
        switch (d.type) {
            case 'message_start':
                usageIn = d.message.usage;
                outputTokens = d.message.usage?.output_tokens ?? 0;
                break;
            case 'content_block_start':
                if (d.content_block.type === 'tool_use') {
                    const t = { id: d.content_block.id, name: d.content_block.name, arguments: '' };
                    blocks.set(d.index, t);
                    out.toolCalls.push(t);
                }
                break;
            case 'content_block_delta':
                if (d.delta.type === 'text_delta') out.text += d.delta.text;
                else if (d.delta.type === 'thinking_delta') out.reasoning += d.delta.thinking;
                else if (d.delta.type === 'input_json_delta') blocks.get(d.index).arguments += d.delta.partial_json;
                break;
            case 'message_delta':
                if (d.delta?.stop_reason) out.finishReason = anthropicFinish(d.delta.stop_reason);
                if (d.usage?.output_tokens !== undefined) outputTokens = d.usage.output_tokens;
                break;
            case 'message_stop':
                out.complete = true;
                break;
            case 'error':
                out.error = d.error;
                break;
            default:
                break;
        }
    }
    out.usage = anthropicUsage({ ...(usageIn ?? {}), output_tokens: outputTokens });
    return out;
}

/**
 * Converts a recorded Anthropic Messages request into the OpenAI chat request a client would
 * send to gatehouse for it (system, text, tool_use and tool_result blocks, tools, tool_choice,
 * max_tokens). Only what these tests use is covered.
 */
export function openAIRequestFromAnthropic(body, model) {
    const messages = [];
    if (body.system) messages.push({ role: 'system', content: typeof body.system === 'string' ? body.system : body.system.map((b) => b.text).join('') });
    for (const m of body.messages) {
        const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
        if (m.role === 'user') {
            for (const b of blocks.filter((x) => x.type === 'tool_result')) {
                messages.push({
                    role: 'tool',
                    tool_call_id: b.tool_use_id,
                    content: typeof b.content === 'string' ? b.content : (b.content ?? []).map((x) => x.text).join(''),
                });
            }
            const text = blocks.filter((x) => x.type === 'text').map((x) => x.text).join('');
            if (text) messages.push({ role: 'user', content: text });
        } else {
            const text = blocks.filter((x) => x.type === 'text').map((x) => x.text).join('');
            const calls = blocks
                .filter((x) => x.type === 'tool_use')
                .map((x) => ({ id: x.id, type: 'function', function: { name: x.name, arguments: JSON.stringify(x.input) } }));
            const msg = { role: 'assistant', content: text || null };
            if (calls.length) msg.tool_calls = calls;
            messages.push(msg);
        }
    }
    const req = { model, messages };
    if (body.max_tokens) req.max_tokens = body.max_tokens;
    if (body.tools) {
        req.tools = body.tools.map((t) => ({
            type: 'function',
            function: { name: t.name, description: t.description, parameters: t.input_schema },
        }));
    }
    if (body.tool_choice) {
        const tc = body.tool_choice;
        if (tc.type === 'any') req.tool_choice = 'required';
        else if (tc.type === 'auto') req.tool_choice = 'auto';
        else if (tc.type === 'none') req.tool_choice = 'none';
        else if (tc.type === 'tool') req.tool_choice = { type: 'function', function: { name: tc.name } };
    }
    return req;
}
