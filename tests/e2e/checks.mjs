// checks.mjs - shared assertions of the e2e suite: one recorded turn sent through gatehouse
// and compared with what the recording says, both ways (what the client got back, and what
// gatehouse sent upstream), plus the OpenAI error shape.

import assert from 'node:assert/strict';

import { collectStream, textOf } from './harness.mjs';
import {
    expectAnthropicJson,
    expectAnthropicStream,
    expectOpenAIJson,
    expectOpenAIStream,
    openAIRequestFromAnthropic,
} from './recorded.mjs';

/** Asserts the OpenAI error shape and returns the error object. */
export function assertErrorShape(res, what) {
    assert.ok(res.json && typeof res.json === 'object', `${what}: body is JSON: ${res.text}`);
    const e = res.json.error;
    assert.ok(e && typeof e === 'object', `${what}: body has an "error" object: ${res.text}`);
    assert.equal(typeof e.message, 'string', `${what}: error.message is a string: ${res.text}`);
    assert.ok(e.message.length > 0, `${what}: error.message is not empty`);
    assert.equal(typeof e.type, 'string', `${what}: error.type is a string: ${res.text}`);
    assert.ok('param' in e, `${what}: error.param present: ${res.text}`);
    assert.ok('code' in e, `${what}: error.code present: ${res.text}`);
    return e;
}

/** The last request the replay server received under a route (a base URL made by it). */
export function lastUpstream(replay, baseUrl) {
    const rx = replay.received(replay.pathOf(baseUrl));
    assert.ok(rx.length > 0, `gatehouse sent nothing to ${replay.pathOf(baseUrl)}`);
    return rx.at(-1);
}

/**
 * Sends one recorded OpenAI-family turn through gatehouse as model "<provider>/<recorded model>",
 * with the recorded body (stream and stream_options as recorded unless overridden), and checks
 * the answer against the recording and the upstream request against the recorded request.
 * Returns {got, expected, upstream}.
 */
export async function checkOpenAITurn(gw, providerName, baseUrl, turn, opts = {}) {
    const rec = turn.request.body.json;
    const body = { ...rec, model: `${providerName}/${rec.model}`, ...(opts.override ?? {}) };
    for (const k of opts.drop ?? []) delete body[k];
    const client = gw.client();
    const before = gw.replay.received(gw.replay.pathOf(baseUrl)).length;
    let got;
    let expected;
    let headers;
    if (body.stream) {
        const { data: stream, response } = await client.chat.completions.create(body).withResponse();
        headers = response.headers;
        got = await collectStream(stream);
        assert.equal(got.error, null, `stream ended with an error: ${got.error}`);
        expected = expectOpenAIStream(turn.response);
        assert.equal(got.content, expected.content, 'streamed content');
        assert.equal(got.finishReason, expected.finishReason, 'finish_reason');
        assert.equal(got.toolCalls.length, expected.toolCalls.length, `tool calls: ${JSON.stringify(got.toolCalls)}`);
        expected.toolCalls.forEach((t, i) => {
            assert.equal(got.toolCalls[i].id, t.id, `tool call ${i} id`);
            assert.equal(got.toolCalls[i].name, t.name, `tool call ${i} name`);
            assert.equal(got.toolCalls[i].arguments, t.arguments, `tool call ${i} arguments (byte-identical)`);
        });
        const wantUsage = Boolean(body.stream_options?.include_usage);
        if (wantUsage) {
            assert.equal(got.usageChunks.length, 1, `one usage chunk when include_usage is set, got ${got.usageChunks.length}`);
            const u = got.usageChunks[0].usage;
            assert.deepEqual(
                { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens },
                expected.usage,
                'usage chunk',
            );
        } else {
            assert.deepEqual(got.usageChunks.map((c) => c.usage), [], 'no usage chunk unless include_usage');
        }
    } else {
        const { data, response } = await client.chat.completions.create(body).withResponse();
        headers = response.headers;
        expected = expectOpenAIJson(turn.response);
        const m = data.choices[0].message;
        got = data;
        assert.equal(data.object, 'chat.completion');
        assert.equal(m.content ?? null, expected.content, 'message content');
        assert.equal(data.choices[0].finish_reason, expected.finishReason, 'finish_reason');
        const calls = (m.tool_calls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments }));
        assert.deepEqual(calls, expected.toolCalls, 'tool calls (arguments byte-identical)');
        if (expected.usage) {
            assert.deepEqual(
                { prompt_tokens: data.usage.prompt_tokens, completion_tokens: data.usage.completion_tokens, total_tokens: data.usage.total_tokens },
                expected.usage,
                'usage',
            );
        }
    }
    assert.equal(headers.get('x-gatehouse-provider'), providerName, 'x-gatehouse-provider');
    assert.equal(headers.get('x-gatehouse-model'), rec.model, 'x-gatehouse-model');
    assert.equal(headers.get('x-gatehouse-fallback-index'), '0', 'x-gatehouse-fallback-index');

    const rx = gw.replay.received(gw.replay.pathOf(baseUrl));
    assert.equal(rx.length, before + 1, `exactly one upstream request for the turn (got ${rx.length - before})`);
    const up = rx.at(-1);
    assert.ok(up.path.endsWith('/v1/chat/completions'), `upstream path ${up.path}`);
    assert.equal(up.method, 'POST');
    assert.ok(up.json, `upstream body is JSON: ${up.body.slice(0, 200)}`);
    assert.equal(up.json.model, rec.model, 'upstream model has no provider prefix');
    assert.deepEqual(up.json.messages, rec.messages, 'upstream messages equal the recorded ones');
    if (rec.tools) assert.deepEqual(up.json.tools, rec.tools, 'upstream tools equal the recorded ones');
    if (rec.tool_choice) assert.deepEqual(up.json.tool_choice, rec.tool_choice, 'upstream tool_choice');
    assert.equal(Boolean(up.json.stream), Boolean(body.stream), 'upstream stream flag');
    return { got, expected, upstream: up, headers };
}

/** Anthropic messages reduced to what a translation must keep: role and typed blocks. */
export function normalizeAnthropicMessages(messages) {
    return messages.map((m) => {
        const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
        const out = [];
        for (const b of blocks) {
            if (b.type === 'text') {
                const last = out.at(-1);
                if (last && last.type === 'text') last.text += b.text; // adjacent text is one text
                else out.push({ type: 'text', text: b.text });
            } else if (b.type === 'tool_use') {
                out.push({ type: 'tool_use', id: b.id, name: b.name, input: b.input });
            } else if (b.type === 'tool_result') {
                out.push({ type: 'tool_result', tool_use_id: b.tool_use_id, content: textOf(b.content) });
            } else {
                out.push({ type: b.type });
            }
        }
        return { role: m.role, content: out };
    });
}

/** The system prompt of an Anthropic request as text. */
export function anthropicSystemText(system) {
    if (system === undefined || system === null) return '';
    return typeof system === 'string' ? system : textOf(system);
}

/**
 * Sends one recorded Anthropic turn through gatehouse's OpenAI API (the recorded request turned
 * into the OpenAI shape) and checks the translated answer and the translated upstream request.
 */
export async function checkAnthropicTurn(gw, providerName, baseUrl, turn, opts = {}) {
    const rec = turn.request.body.json;
    const body = openAIRequestFromAnthropic(rec, `${providerName}/${rec.model}`);
    const stream = opts.stream ?? Boolean(rec.stream);
    if (stream) {
        body.stream = true;
        if (opts.includeUsage) body.stream_options = { include_usage: true };
    }
    const client = gw.client();
    const before = gw.replay.received(gw.replay.pathOf(baseUrl)).length;
    let result;
    let headers;
    if (stream) {
        const expected = expectAnthropicStream(turn.response);
        const { data, response } = await client.chat.completions.create(body).withResponse();
        headers = response.headers;
        const got = await collectStream(data);
        assert.equal(got.error, null, `stream ended with an error: ${got.error}`);
        assert.equal(got.content, expected.text, 'streamed text');
        assert.equal(got.reasoning, expected.reasoning, 'streamed reasoning_content');
        assert.equal(got.finishReason, expected.finishReason, 'finish_reason');
        assert.equal(got.toolCalls.length, expected.toolCalls.length, `tool calls: ${JSON.stringify(got.toolCalls)}`);
        expected.toolCalls.forEach((t, i) => {
            assert.equal(got.toolCalls[i].id, t.id, `tool call ${i} id`);
            assert.equal(got.toolCalls[i].name, t.name, `tool call ${i} name`);
            assert.equal(got.toolCalls[i].arguments, t.arguments, `tool call ${i} arguments (byte-identical partial JSON)`);
        });
        if (opts.includeUsage) {
            assert.equal(got.usageChunks.length, 1, `one usage chunk, got ${got.usageChunks.length}`);
            const u = got.usageChunks[0].usage;
            assert.deepEqual(
                { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens },
                expected.usage,
                'usage chunk',
            );
        } else {
            assert.equal(got.usageChunks.length, 0, 'no usage chunk unless include_usage');
        }
        result = { got, expected };
    } else {
        const expected = expectAnthropicJson(turn.response);
        const { data, response } = await client.chat.completions.create(body).withResponse();
        headers = response.headers;
        const m = data.choices[0].message;
        assert.equal(data.object, 'chat.completion');
        assert.equal(m.role, 'assistant');
        assert.equal(m.content ?? '', expected.text, 'message content (text blocks joined)');
        assert.equal(m.reasoning_content ?? '', expected.reasoning, 'reasoning_content (thinking blocks)');
        assert.equal(data.choices[0].finish_reason, expected.finishReason, 'finish_reason');
        const calls = (m.tool_calls ?? []).map((t) => ({ id: t.id, type: t.type, name: t.function.name, input: JSON.parse(t.function.arguments) }));
        assert.deepEqual(
            calls,
            expected.toolCalls.map((t) => ({ id: t.id, type: 'function', name: t.name, input: t.input })),
            'tool calls (arguments parse to the recorded input)',
        );
        assert.deepEqual(
            { prompt_tokens: data.usage.prompt_tokens, completion_tokens: data.usage.completion_tokens, total_tokens: data.usage.total_tokens },
            expected.usage,
            'usage',
        );
        result = { got: data, expected };
    }
    assert.equal(headers.get('x-gatehouse-provider'), providerName, 'x-gatehouse-provider');
    assert.equal(headers.get('x-gatehouse-model'), rec.model, 'x-gatehouse-model');

    const rx = gw.replay.received(gw.replay.pathOf(baseUrl));
    assert.equal(rx.length, before + 1, `exactly one upstream request for the turn (got ${rx.length - before})`);
    const up = rx.at(-1);
    assert.ok(up.path.split('?')[0].endsWith('/v1/messages'), `upstream path ${up.path}`);
    assert.ok(up.json, `upstream body is JSON: ${up.body.slice(0, 200)}`);
    assert.equal(up.json.model, rec.model, 'upstream model');
    assert.equal(up.json.max_tokens, rec.max_tokens, 'upstream max_tokens');
    assert.equal(Boolean(up.json.stream), stream, 'upstream stream flag');
    assert.equal(anthropicSystemText(up.json.system), anthropicSystemText(rec.system), 'upstream system prompt');
    assert.deepEqual(normalizeAnthropicMessages(up.json.messages), normalizeAnthropicMessages(rec.messages), 'upstream messages');
    if (rec.tools) {
        assert.deepEqual(
            (up.json.tools ?? []).map((t) => ({ name: t.name, description: t.description ?? '', input_schema: t.input_schema })),
            rec.tools.map((t) => ({ name: t.name, description: t.description ?? '', input_schema: t.input_schema })),
            'upstream tools (name, description, input_schema)',
        );
    }
    if (rec.tool_choice) assert.equal(up.json.tool_choice?.type, rec.tool_choice.type, 'upstream tool_choice.type');
    assert.ok(up.headers['x-api-key'], 'upstream x-api-key header');
    assert.ok(up.headers['anthropic-version'], 'upstream anthropic-version header');
    return { ...result, upstream: up, headers };
}
