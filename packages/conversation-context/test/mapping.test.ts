import {
  AIMessage,
  type BaseMessage,
  ChatMessage,
  HumanMessage,
  SystemMessage,
  ToolMessage,
} from '@langchain/core/messages';
import type { UIMessage } from 'ai';
import { describe, expect, it } from 'vitest';
import { fromUIMessage, type StoredMessage, toUIMessage, toUIMessages } from '../src/index.js';
import { fromLangChainMessage, toLangChainMessage, toLangChainMessages } from '../src/langchain.js';

const roundTrip = (message: BaseMessage) => toLangChainMessage(fromLangChainMessage(message)).toDict();

describe('LangChain mapping', () => {
  it('round-trips every message class with ids, names, metadata, tool calls, artifacts and status', () => {
    const messages: BaseMessage[] = [
      new SystemMessage('Be brief.'),
      new HumanMessage({ content: 'hi', id: 'h', name: 'maria', additional_kwargs: { k: 1 } }),
      new HumanMessage({
        content: [
          { type: 'text', text: 'what is this?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
        ],
      }),
      new AIMessage({
        content: 'calling',
        tool_calls: [
          { id: 'c1', name: 'a', args: { x: [1, 2] }, type: 'tool_call' },
          { name: 'no_id', args: {} },
        ],
        invalid_tool_calls: [
          { id: 'bad', name: 'b', args: '{oops', error: 'parse', type: 'invalid_tool_call' },
        ],
        usage_metadata: { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
        response_metadata: { finish_reason: 'tool_calls' },
      }),
      new ToolMessage({ content: 'result', tool_call_id: 'c1', status: 'error', artifact: { rows: 2 } }),
      new ChatMessage({ content: 'x', role: 'critic' }),
    ];
    for (const message of messages) expect(roundTrip(message)).toEqual(message.toDict());
  });

  it('stores LangChain-only fields under metadata.langchain, and tool messages as role tool with a result', () => {
    const input = fromLangChainMessage(new ToolMessage({ content: '42', tool_call_id: 't', name: 'calc' }));
    expect(input).toMatchObject({
      role: 'tool',
      content: '42',
      name: 'calc',
      toolResults: [{ toolCallId: 't' }],
    });
    expect(fromLangChainMessage(new ChatMessage({ content: 'x', role: 'critic' })).metadata).toEqual({
      langchain: { role: 'critic' },
    });
  });

  it('maps stored messages written without LangChain', () => {
    const stored: StoredMessage = {
      seq: 1,
      createdAtMs: 1,
      tokens: 1,
      pinned: false,
      role: 'assistant',
      content: 'ok',
      toolCalls: [{ id: 'x', name: 'y', args: { a: 1 } }],
    };
    const [message] = toLangChainMessages([stored]);
    expect(message?.getType()).toBe('ai');
    expect((message as AIMessage).tool_calls).toEqual([{ id: 'x', name: 'y', args: { a: 1 } }]);
  });
});

describe('AI SDK UIMessage mapping', () => {
  const assistant: UIMessage = {
    id: 'a',
    role: 'assistant',
    metadata: { model: 'm', createdAt: 5 },
    parts: [
      { type: 'step-start' },
      { type: 'reasoning', text: 'thinking', state: 'done', providerMetadata: { p: { x: 1 } } },
      { type: 'text', text: 'Let me check', state: 'done' },
      {
        type: 'tool-weather',
        toolCallId: 'w1',
        state: 'output-available',
        input: { city: 'Recife' },
        output: { c: 31 },
        providerExecuted: false,
        callProviderMetadata: { openai: { id: 'x' } },
      },
      { type: 'tool-search', toolCallId: 's1', state: 'input-available', input: { q: 'clinic' } },
      {
        type: 'tool-denied',
        toolCallId: 'd1',
        state: 'output-denied',
        input: {},
        approval: { id: 'ap', approved: false },
      },
      {
        type: 'dynamic-tool',
        toolName: 'mcp_x',
        toolCallId: 'm1',
        state: 'output-error',
        input: { a: 1 },
        errorText: 'boom',
      },
      { type: 'source-url', sourceId: 's', url: 'https://example.org', title: 'ex' },
      { type: 'file', mediaType: 'image/png', url: 'data:image/png;base64,AAAA', filename: 'x.png' },
      { type: 'data-weather', id: 'd', data: { ok: true } },
      { type: 'text', text: 'Done.' },
    ],
  };

  it('round-trips every part type in order, tool states and provider metadata included', () => {
    const input = fromUIMessage(assistant);
    expect(input.toolCalls?.map((call) => [call.id, call.name, call.args])).toEqual([
      ['w1', 'weather', { city: 'Recife' }],
      ['s1', 'search', { q: 'clinic' }],
      ['d1', 'denied', {}],
      ['m1', 'mcp_x', { a: 1 }],
    ]);
    expect(input.toolResults).toEqual([
      { toolCallId: 'w1', name: 'weather', output: { c: 31 } },
      { toolCallId: 'm1', name: 'mcp_x', output: 'boom', isError: true },
    ]);
    expect(toUIMessage(input)).toEqual(assistant);
  });

  it('turns LangChain-style tool messages into results on the assistant tool part', () => {
    const history = [
      { role: 'user' as const, content: 'weather?', id: 'u' },
      {
        role: 'assistant' as const,
        content: '',
        id: 'a',
        toolCalls: [{ id: 't', name: 'weather', args: { c: 'x' } }],
      },
      { role: 'tool' as const, content: 'sunny', toolResults: [{ toolCallId: 't' }] },
    ];
    expect(toUIMessages(history)).toEqual([
      { id: 'u', role: 'user', parts: [{ type: 'text', text: 'weather?' }] },
      {
        id: 'a',
        role: 'assistant',
        parts: [
          { type: 'text', text: '' },
          {
            type: 'tool-weather',
            toolCallId: 't',
            input: { c: 'x' },
            output: 'sunny',
            state: 'output-available',
          },
        ],
      },
    ]);
  });
});
