// cassettes.test.mjs - real recorded provider exchanges (../shared/cassettes, read in place)
// replayed through gatehouse: the recorded request is sent through the OpenAI API, the answer
// is compared with the recorded response, and the request gatehouse sent upstream with the
// recorded request. Skips, saying why, when the cassettes are absent.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, provider, checkShutdown, needCassettes, OpenAI } from './harness.mjs';
import { cassette, turns, expectOpenAIStream } from './recorded.mjs';
import { checkAnthropicTurn, checkOpenAITurn } from './checks.mjs';

// Each provider points at one cassette; [name, family, group, cassette, pin].
const ROUTES = [
    ['openai', 'openai', 'openai', 'test_run_stream_sync_streams_real_model'],
    ['recstream0', 'openai', 'openai', 'test_run_stream_sync_streams_real_model', 0],
    ['rectools', 'openai', 'openai', 'test_openai_tool_output'],
    ['recmatrix', 'openai', 'tool_choice_matrix', 'test_tool_choice_matrix[auto-openai]'],
    ['recmod', 'openai', 'openai', 'test_openai_moderation_stream', 0],
    ['recbad', 'openai', 'openai', 'test_openai_o1_mini_system_role[system]'],
    ['anthropic', 'anthropic', 'anthropic', 'test_anthropic_tool_output'],
    ['anmatrix', 'anthropic', 'tool_choice_matrix', 'test_tool_choice_matrix[auto-anthropic]'],
    ['anparallel', 'anthropic', 'anthropic', 'test_multiple_parallel_tool_calls'],
    ['anthink', 'anthropic', 'anthropic', 'test_anthropic_model_thinking_part', 0],
    ['anthinkstream', 'anthropic', 'anthropic', 'test_anthropic_model_thinking_part_stream', 0],
    ['anbad', 'anthropic', 'anthropic', 'test_anthropic_explicit_effort_xhigh_unsupported_model_errors'],
    ['spare', 'anthropic', null, 'mock'],
];

const skip = needCassettes(...ROUTES.filter((r) => r[2]).map((r) => `${r[2]}/${r[3]}`));

// Each test skips on its own (rather than the whole suite) so the runner counts the skips.
const it = (name, fn) => test(name, { skip }, fn);

describe('recorded cassettes through gatehouse', () => {
    let gw;
    const urls = {};

    before(async () => {
        if (skip) return;
        gw = await startGateway({
            providers: (r) =>
                ROUTES.map(([name, family, group, cas, pin]) => {
                    urls[name] = group ? r.cassetteUrl(group, cas, pin) : r.mockUrl(family, name);
                    return provider(name, { family, baseUrl: urls[name], maxRetries: 1 });
                }),
        });
    });
    after(async () => {
        if (gw) await gw.stop();
    });

    it('OpenAI stream with tools (real name "openai"): tool call, then the answer after the tool result', async () => {
        const rec = cassette('openai', 'test_run_stream_sync_streams_real_model');
        const [t1, t2] = turns(rec, '/chat/completions');
        const first = await checkOpenAITurn(gw, 'openai', urls.openai, t1);
        assert.equal(first.got.finishReason, 'tool_calls');
        assert.equal(first.got.toolCalls[0].arguments, expectOpenAIStream(t1.response).toolCalls[0].arguments);
        const second = await checkOpenAITurn(gw, 'openai', urls.openai, t2);
        assert.equal(second.got.finishReason, 'stop');
        assert.ok(second.got.content.length > 0);
    });

    it('OpenAI stream without include_usage: the recorded usage chunk is not passed on', async () => {
        const t1 = turns(cassette('openai', 'test_run_stream_sync_streams_real_model'), '/chat/completions')[0];
        const { got } = await checkOpenAITurn(gw, 'recstream0', urls.recstream0, t1, { drop: ['stream_options'] });
        assert.equal(got.usageChunks.length, 0);
    });

    it('OpenAI JSON tool calls, two turns, arguments byte-identical', async () => {
        const [t1, t2] = turns(cassette('openai', 'test_openai_tool_output'), '/chat/completions');
        await checkOpenAITurn(gw, 'rectools', urls.rectools, t1);
        const second = await checkOpenAITurn(gw, 'rectools', urls.rectools, t2);
        // The recorded arguments have spaces after ':' and ','; they must arrive untouched.
        assert.equal(second.got.choices[0].message.tool_calls[0].function.arguments, t2.response.body.json.choices[0].message.tool_calls[0].function.arguments);
    });

    it('tool_choice matrix (auto, OpenAI): tool call, then the final text', async () => {
        const [t1, t2] = turns(cassette('tool_choice_matrix', 'test_tool_choice_matrix[auto-openai]'), '/chat/completions');
        await checkOpenAITurn(gw, 'recmatrix', urls.recmatrix, t1);
        await checkOpenAITurn(gw, 'recmatrix', urls.recmatrix, t2);
    });

    it('OpenAI stream (moderation cassette) with include_usage', async () => {
        const t = turns(cassette('openai', 'test_openai_moderation_stream'), '/chat/completions')[0];
        await checkOpenAITurn(gw, 'recmod', urls.recmod, t);
    });

    it('an upstream 400 is passed through with its status and message, without retry or fallback', async () => {
        const t = turns(cassette('openai', 'test_openai_o1_mini_system_role[system]'), '/chat/completions')[0];
        const rec = t.request.body.json;
        const spare = gw.replay.received(gw.replay.pathOf(urls.spare)).length;
        const before = gw.replay.received(gw.replay.pathOf(urls.recbad)).length;
        const err = await gw
            .client()
            .chat.completions.create({ ...rec, model: `recbad/${rec.model}`, fallbacks: ['spare/claude-x'] })
            .then(() => null, (e) => e);
        assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err}`);
        assert.equal(err.status, 400);
        assert.ok(err.message.includes(t.response.body.json.error.message), `message: ${err.message}`);
        assert.equal(gw.replay.received(gw.replay.pathOf(urls.recbad)).length - before, 1, 'no retry of a 400');
        assert.equal(gw.replay.received(gw.replay.pathOf(urls.spare)).length, spare, 'no fallback after a 400');
    });

    it('Anthropic (real name) JSON tool use: tool call, then final_result after the tool result', async () => {
        const [t1, t2] = turns(cassette('anthropic', 'test_anthropic_tool_output'), '/messages');
        const first = await checkAnthropicTurn(gw, 'anthropic', urls.anthropic, t1);
        assert.equal(first.got.choices[0].finish_reason, 'tool_calls');
        assert.equal(first.upstream.json.tool_choice.type, 'any', 'tool_choice "required" becomes {"type": "any"}');
        await checkAnthropicTurn(gw, 'anthropic', urls.anthropic, t2);
    });

    it('tool_choice matrix (auto, Anthropic): tool call, then the final text', async () => {
        const [t1, t2] = turns(cassette('tool_choice_matrix', 'test_tool_choice_matrix[auto-anthropic]'), '/messages');
        await checkAnthropicTurn(gw, 'anmatrix', urls.anmatrix, t1);
        const second = await checkAnthropicTurn(gw, 'anmatrix', urls.anmatrix, t2);
        assert.equal(second.got.choices[0].finish_reason, 'stop');
    });

    it('Anthropic parallel tool calls with a system prompt, and four tool results in one user turn', async () => {
        const [t1, t2] = turns(cassette('anthropic', 'test_multiple_parallel_tool_calls'), '/messages');
        const first = await checkAnthropicTurn(gw, 'anparallel', urls.anparallel, t1);
        assert.equal(first.got.choices[0].message.tool_calls.length, 4);
        await checkAnthropicTurn(gw, 'anparallel', urls.anparallel, t2);
    });

    it('Anthropic thinking (JSON) surfaces as reasoning_content', async () => {
        const t1 = turns(cassette('anthropic', 'test_anthropic_model_thinking_part'), '/messages')[0];
        const { got, expected } = await checkAnthropicTurn(gw, 'anthink', urls.anthink, t1);
        assert.ok(expected.reasoning.length > 0);
        assert.equal(got.choices[0].message.reasoning_content, expected.reasoning);
    });

    it('Anthropic thinking (stream) surfaces as reasoning_content deltas, with usage', async () => {
        const t1 = turns(cassette('anthropic', 'test_anthropic_model_thinking_part_stream'), '/messages')[0];
        const { got, expected } = await checkAnthropicTurn(gw, 'anthinkstream', urls.anthinkstream, t1, { includeUsage: true });
        assert.ok(expected.reasoning.length > 0 && expected.text.length > 0);
        assert.equal(got.reasoning, expected.reasoning);
    });

    it('an Anthropic 400 reaches the client as a 400 with the upstream message', async () => {
        const t = turns(cassette('anthropic', 'test_anthropic_explicit_effort_xhigh_unsupported_model_errors'), '/messages')[0];
        const rec = t.request.body.json;
        const err = await gw
            .client()
            .chat.completions.create({ model: `anbad/${rec.model}`, max_tokens: rec.max_tokens, messages: [{ role: 'user', content: 'What is 2+2?' }] })
            .then(() => null, (e) => e);
        assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${err}`);
        assert.equal(err.status, 400);
        assert.ok(err.message.includes(t.response.body.json.error.message), `message: ${err.message}`);
        assert.equal(err.error?.type, 'invalid_request_error', `error type: ${JSON.stringify(err.error)}`);
    });

    it('gatehouse shuts down cleanly on SIGTERM', async () => {
        await checkShutdown(gw);
    });
});
