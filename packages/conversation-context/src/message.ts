import { ConversationInputError } from './errors.js';

/** Roles a message can have. Anything else is refused with `E_INVALID_ROLE`. */
export const ROLES = ['system', 'user', 'assistant', 'tool'] as const;
export type Role = (typeof ROLES)[number];

/** One part of a multi-part content (text, image, file, reasoning…): an object with a string `type`. */
export interface ContentPart {
  type: string;
  [key: string]: unknown;
}

/** A tool call an assistant message asks for. */
export interface ToolCall {
  /** Id that the matching {@link ToolResult} refers to. */
  id: string;
  /** Tool name. */
  name: string;
  /** Arguments, any value the codec can store. */
  args: unknown;
  /** Anything else a framework attaches to the call (LangChain `type`, AI SDK part state…), kept as is. */
  metadata?: Record<string, unknown>;
}

/** The result of a tool call. On a `tool` message without `output`, the message content is the output. */
export interface ToolResult {
  toolCallId: string;
  name?: string;
  output?: unknown;
  isError?: boolean;
  metadata?: Record<string, unknown>;
}

/** What you pass to `addMessage`. */
export interface MessageInput {
  role: Role;
  /** Text, or parts (text, images, files…). Encrypted at rest when the codec has keys. */
  content: string | ContentPart[];
  toolCalls?: ToolCall[];
  toolResults?: ToolResult[];
  /** Free-form data stored (and encrypted) with the message. */
  metadata?: Record<string, unknown>;
  /** Your own message id (a LangChain or AI SDK id), kept as is. The store numbers messages itself (`seq`). */
  id?: string;
  /** Name of the participant or tool. */
  name?: string;
  /** Never trimmed (counts towards `maxMessages`; see `E_PINNED_LIMIT`). */
  pinned?: boolean;
  /** Token count of this message; when absent the store's `tokenCounter` computes it. */
  tokens?: number;
}

/** A message as stored and read back. */
export interface StoredMessage extends MessageInput {
  /** Position in the conversation: 1 for the first message ever added, never reused (also after trimming). */
  seq: number;
  /** When Redis stored it (Redis clock), ms since the epoch. */
  createdAtMs: number;
  tokens: number;
  pinned: boolean;
}

/** The encrypted part of a stored message (roles, counts and times stay in clear, in the element header). */
export interface MessageBody {
  c: string | ContentPart[];
  tc?: ToolCall[];
  tr?: ToolResult[];
  m?: Record<string, unknown>;
  id?: string;
  n?: string;
}

const ROLE_SET: ReadonlySet<string> = new Set(ROLES);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function invalid(message: string): never {
  throw new ConversationInputError('E_INVALID_ARGUMENT', message);
}

/** Checks the shape of a message before anything is encoded or sent. */
export function validateMessage(message: unknown): MessageInput {
  if (!isPlainObject(message)) invalid('message must be a plain object with role and content.');
  const { role, content, toolCalls, toolResults, metadata, pinned, tokens, id, name } = message;
  if (typeof role !== 'string' || !ROLE_SET.has(role)) {
    throw new ConversationInputError(
      'E_INVALID_ROLE',
      `message.role must be one of ${ROLES.join(', ')} (got ${typeof role === 'string' ? JSON.stringify(role.slice(0, 32)) : typeof role}).`,
    );
  }
  if (typeof content !== 'string') {
    if (!Array.isArray(content)) invalid('message.content must be a string or an array of parts.');
    for (const part of content) {
      if (!isPlainObject(part) || typeof part.type !== 'string') {
        invalid('each part of message.content must be an object with a string type.');
      }
    }
  }
  if (toolCalls !== undefined) {
    if (!Array.isArray(toolCalls)) invalid('message.toolCalls must be an array.');
    for (const call of toolCalls) {
      if (!isPlainObject(call) || typeof call.id !== 'string' || typeof call.name !== 'string') {
        invalid('each tool call needs a string id and name.');
      }
    }
  }
  if (toolResults !== undefined) {
    if (!Array.isArray(toolResults)) invalid('message.toolResults must be an array.');
    for (const result of toolResults) {
      if (!isPlainObject(result) || typeof result.toolCallId !== 'string') {
        invalid('each tool result needs a string toolCallId.');
      }
    }
  }
  if (metadata !== undefined && !isPlainObject(metadata)) invalid('message.metadata must be a plain object.');
  if (pinned !== undefined && typeof pinned !== 'boolean') invalid('message.pinned must be a boolean.');
  if (tokens !== undefined && !(Number.isSafeInteger(tokens) && (tokens as number) >= 0)) {
    invalid('message.tokens must be a non-negative integer.');
  }
  if (id !== undefined && typeof id !== 'string') invalid('message.id must be a string.');
  if (name !== undefined && typeof name !== 'string') invalid('message.name must be a string.');
  return message as unknown as MessageInput;
}

export function toBody(message: MessageInput): MessageBody {
  const body: MessageBody = { c: message.content };
  if (message.toolCalls !== undefined) body.tc = message.toolCalls;
  if (message.toolResults !== undefined) body.tr = message.toolResults;
  if (message.metadata !== undefined) body.m = message.metadata;
  if (message.id !== undefined) body.id = message.id;
  if (message.name !== undefined) body.n = message.name;
  return body;
}

export function fromBody(
  body: MessageBody,
  header: { seq: number; createdAtMs: number; role: Role; tokens: number; pinned: boolean },
): StoredMessage {
  const message: StoredMessage = {
    seq: header.seq,
    createdAtMs: header.createdAtMs,
    role: header.role,
    content: body.c,
    tokens: header.tokens,
    pinned: header.pinned,
  };
  if (body.tc !== undefined) message.toolCalls = body.tc;
  if (body.tr !== undefined) message.toolResults = body.tr;
  if (body.m !== undefined) message.metadata = body.m;
  if (body.id !== undefined) message.id = body.id;
  if (body.n !== undefined) message.name = body.n;
  return message;
}

/** Length in characters of everything a model reads from a message. */
function textLength(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (value === undefined || value === null) return 0;
  if (Array.isArray(value)) {
    let total = 0;
    for (const item of value) total += textLength(item);
    return total;
  }
  if (typeof value === 'object') {
    const part = value as Record<string, unknown>;
    // Text-bearing parts count their text; other parts (images, files) count their description as JSON.
    if (typeof part.text === 'string') return part.text.length;
    try {
      return (
        JSON.stringify(value, (_key, item) => (typeof item === 'bigint' ? item.toString() : item))?.length ??
        0
      );
    } catch {
      return 0;
    }
  }
  return String(value).length;
}

/**
 * The default token estimate: one token per 4 characters of content, tool call arguments and tool outputs (rounded
 * up), plus 4 tokens of per-message overhead. OpenAI's rule of thumb for English text; it over-counts code and
 * under-counts some scripts (CJK). Pass `tokenCounter` with a real tokenizer when budgets must be exact.
 */
export function estimateTokens(message: MessageInput): number {
  let characters = textLength(message.content);
  for (const call of message.toolCalls ?? []) characters += call.name.length + textLength(call.args);
  for (const result of message.toolResults ?? []) characters += textLength(result.output);
  return Math.ceil(characters / 4) + 4;
}
