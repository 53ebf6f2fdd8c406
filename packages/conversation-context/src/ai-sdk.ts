import type { ContentPart, MessageInput, StoredMessage, ToolCall, ToolResult } from './message.js';

/**
 * The shape of a Vercel AI SDK (v5, v6) `UIMessage`, declared here so this package needs no dependency on `ai`.
 * `import type { UIMessage } from 'ai'` values are assignable to it.
 */
export interface UIMessageLike {
  id: string;
  role: 'system' | 'user' | 'assistant';
  metadata?: unknown;
  parts: Array<{ type: string; [key: string]: unknown }>;
}

/** In `content`, where a tool part stood: its call and result are in `toolCalls` / `toolResults`. */
interface ToolMarker {
  type: 'tool-call';
  toolCallId: string;
}

const TOOL_PART_FIELDS = new Set(['type', 'toolCallId', 'toolName', 'input', 'output', 'errorText']);

function isToolPart(part: { type: string }): boolean {
  return part.type === 'dynamic-tool' || part.type.startsWith('tool-');
}

/**
 * Maps an AI SDK `UIMessage` to a message for `addMessage`, without loss: text and every other part stay in
 * `content` in their order; each tool part becomes a `toolCalls` entry (and a `toolResults` entry once it has an
 * output or error), with a `{ type: 'tool-call', toolCallId }` marker keeping its place; the part's other fields
 * (state, provider metadata, approval…) ride along in the call's `metadata.uiPart`. `toUIMessage` reverses it.
 */
export function fromUIMessage(message: UIMessageLike): MessageInput {
  const content: ContentPart[] = [];
  const toolCalls: ToolCall[] = [];
  const toolResults: ToolResult[] = [];
  for (const part of message.parts) {
    if (!isToolPart(part)) {
      content.push(part);
      continue;
    }
    const toolCallId = String(part.toolCallId);
    const name = part.type === 'dynamic-tool' ? String(part.toolName) : part.type.slice('tool-'.length);
    const extras: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(part)) if (!TOOL_PART_FIELDS.has(key)) extras[key] = value;
    extras.type = part.type;
    const call: ToolCall = { id: toolCallId, name, args: part.input, metadata: { uiPart: extras } };
    toolCalls.push(call);
    if ('output' in part) toolResults.push({ toolCallId, name, output: part.output });
    else if ('errorText' in part)
      toolResults.push({ toolCallId, name, output: part.errorText, isError: true });
    content.push({ type: 'tool-call', toolCallId } satisfies ToolMarker);
  }
  const input: MessageInput = { role: message.role, content, id: message.id };
  if (toolCalls.length > 0) input.toolCalls = toolCalls;
  if (toolResults.length > 0) input.toolResults = toolResults;
  if (message.metadata !== undefined) input.metadata = { aiSdk: message.metadata };
  return input;
}

function toolPart(call: ToolCall, result: ToolResult | undefined): { type: string; [key: string]: unknown } {
  const saved = (call.metadata?.uiPart ?? {}) as Record<string, unknown>;
  const type = typeof saved.type === 'string' ? saved.type : `tool-${call.name}`;
  const part: { type: string; [key: string]: unknown } = { ...saved, type, toolCallId: call.id };
  if (type === 'dynamic-tool') part.toolName = call.name;
  if (call.args !== undefined) part.input = call.args;
  if (result !== undefined) {
    if (result.isError)
      part.errorText = typeof result.output === 'string' ? result.output : String(result.output);
    else part.output = result.output;
    if (saved.state === undefined) part.state = result.isError ? 'output-error' : 'output-available';
  } else if (saved.state === undefined) {
    part.state = 'input-available';
  }
  return part;
}

/**
 * Maps a stored message back to an AI SDK `UIMessage`. The id is the message's own `id`, else its `seq`. Messages
 * written from other sources (LangChain, plain text) map too: string content becomes one text part, and tool calls
 * without a marker are appended as tool parts.
 */
export function toUIMessage(
  message: MessageInput | StoredMessage,
  results: ReadonlyMap<string, ToolResult> = new Map(),
): UIMessageLike {
  const ownResults = new Map(results);
  for (const result of message.toolResults ?? []) ownResults.set(result.toolCallId, result);
  const calls = new Map((message.toolCalls ?? []).map((call) => [call.id, call]));
  const placed = new Set<string>();
  const parts: UIMessageLike['parts'] = [];
  const content =
    typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content;
  for (const part of content) {
    const call = part.type === 'tool-call' ? calls.get(String(part.toolCallId)) : undefined;
    if (call === undefined) {
      parts.push(part);
      continue;
    }
    placed.add(call.id);
    parts.push(toolPart(call, ownResults.get(call.id)));
  }
  for (const call of message.toolCalls ?? []) {
    if (!placed.has(call.id)) parts.push(toolPart(call, ownResults.get(call.id)));
  }
  const role = message.role === 'tool' ? 'assistant' : message.role;
  const ui: UIMessageLike = {
    id: message.id ?? ('seq' in message ? String(message.seq) : ''),
    role,
    parts,
  };
  const aiSdk = message.metadata?.aiSdk;
  if (aiSdk !== undefined) ui.metadata = aiSdk;
  return ui;
}

/**
 * Maps a conversation (oldest first) to AI SDK `UIMessage`s. `tool` messages (from LangChain or your own code) have
 * no `UIMessage` of their own: their results are attached to the assistant tool parts they answer.
 */
export function toUIMessages(messages: ReadonlyArray<MessageInput | StoredMessage>): UIMessageLike[] {
  const results = new Map<string, ToolResult>();
  for (const message of messages) {
    if (message.role !== 'tool') continue;
    for (const result of message.toolResults ?? []) {
      results.set(
        result.toolCallId,
        result.output === undefined ? { ...result, output: toolMessageText(message) } : result,
      );
    }
  }
  return messages
    .filter((message) => message.role !== 'tool')
    .map((message) => toUIMessage(message, results));
}

function toolMessageText(message: MessageInput): string {
  if (typeof message.content === 'string') return message.content;
  return message.content.map((part) => (typeof part.text === 'string' ? part.text : '')).join('');
}
