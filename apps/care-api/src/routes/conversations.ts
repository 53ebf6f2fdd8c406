import { randomUUID } from 'node:crypto';
import {
  ConversationError,
  type ConversationStore,
  type Owner,
  type StoredMessage,
  type Summary,
} from '@austa/conversation-context';
import type { FastifyInstance, preHandlerAsyncHookHandler } from 'fastify';
import type { AssistantResponder, ResponderMessage } from '../assistant/responder.js';
import { authOf } from '../auth/session.js';
import { HttpError } from '../http-errors.js';
import { errorResponses, idParam } from '../schemas.js';

export interface ConversationRoutesOptions {
  conversations: ConversationStore;
  responder: AssistantResponder;
  requireSession: preHandlerAsyncHookHandler;
  limitAssistant: preHandlerAsyncHookHandler;
  /** Largest user message, in characters. */
  maxMessageChars: number;
}

/** Messages the responder sees besides the summary: enough context, bounded cost per request. */
const HISTORY = 20;

const iso = (ms: number) => new Date(ms).toISOString();

const notFound = () =>
  new HttpError(404, 'E_CONVERSATION_NOT_FOUND', 'No such conversation of yours (or it has expired).');

/**
 * The store's typed errors as HTTP: someone else's conversation reads exactly like a missing one, so ids cannot be
 * probed for existence.
 */
function asHttp(error: unknown): unknown {
  if (!ConversationError.isInstance(error)) return error;
  switch (error.code) {
    case 'E_NOT_FOUND':
    case 'E_OWNERSHIP_MISMATCH':
      return notFound();
    case 'E_MESSAGE_TOO_LARGE':
      return new HttpError(413, 'E_MESSAGE_TOO_LARGE', 'The message is too large to store.');
    case 'E_INVALID_CONVERSATION_ID':
      return new HttpError(400, 'E_VALIDATION', 'The conversation id is invalid.');
    default:
      return error;
  }
}

async function mapped<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw asHttp(error);
  }
}

function text(message: StoredMessage): string {
  if (typeof message.content === 'string') return message.content;
  return message.content
    .map((part) => (part.type === 'text' && typeof part.text === 'string' ? part.text : ''))
    .join('');
}

function messageView(message: StoredMessage) {
  return {
    seq: message.seq,
    role: message.role,
    content: text(message),
    createdAt: iso(message.createdAtMs),
  };
}

const MESSAGE = {
  type: 'object',
  required: ['seq', 'role', 'content', 'createdAt'],
  properties: {
    seq: { type: 'integer', description: 'Position in the conversation, from 1; never reused.' },
    role: { type: 'string', enum: ['system', 'user', 'assistant', 'tool'] },
    content: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
  },
} as const;

const INTENT = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string' }, confidence: { type: 'number' } },
} as const;

const ENTITY = {
  type: 'object',
  required: ['name', 'value', 'type'],
  properties: {
    name: { type: 'string' },
    value: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
    type: { type: 'string' },
    confidence: { type: 'number' },
  },
} as const;

const EXCHANGE = {
  type: 'object',
  required: ['conversationId', 'message', 'reply'],
  properties: {
    conversationId: { type: 'string' },
    message: MESSAGE,
    reply: MESSAGE,
    intent: INTENT,
    entities: { type: 'array', items: ENTITY },
  },
} as const;

/**
 * Tries to write a summary before giving up on it. Each conflict means another append's summary was written (the
 * conversation moved on), so this bounds the retries of one request in a burst of this many concurrent appends.
 */
const SUMMARY_ATTEMPTS = 16;

/** Ranges of folded seqs kept in the summary's metadata: gaps (messages never trimmed) are few, but bounded anyway. */
const MAX_FOLDED_RANGES = 32;

type SeqRange = [number, number];

/** The seqs a summary holds: its `folded` metadata, else (older summaries) everything up to `upToSeq`. */
function foldedRanges(summary: Summary | null): SeqRange[] {
  if (summary === null) return [];
  const folded = summary.metadata?.folded;
  if (
    Array.isArray(folded) &&
    folded.every(
      (range): range is SeqRange =>
        Array.isArray(range) &&
        range.length === 2 &&
        Number.isSafeInteger(range[0]) &&
        Number.isSafeInteger(range[1]) &&
        range[0] <= range[1],
    )
  ) {
    return folded;
  }
  return summary.upToSeq > 0 ? [[1, summary.upToSeq]] : [];
}

function covers(ranges: readonly SeqRange[], seq: number): boolean {
  return ranges.some(([from, to]) => seq >= from && seq <= to);
}

/** `ranges` plus `seqs`, sorted and merged where adjacent; past MAX_FOLDED_RANGES the oldest gaps are closed. */
function withSeqs(ranges: readonly SeqRange[], seqs: readonly number[]): SeqRange[] {
  const all = [
    ...ranges.map(([from, to]): SeqRange => [from, to]),
    ...seqs.map((seq): SeqRange => [seq, seq]),
  ];
  all.sort((a, b) => a[0] - b[0]);
  const merged: SeqRange[] = [];
  for (const range of all) {
    const last = merged[merged.length - 1];
    if (last !== undefined && range[0] <= last[1] + 1) last[1] = Math.max(last[1], range[1]);
    else merged.push(range);
  }
  // A gap that never closes is a message that was never trimmed (a kept one): still in the list, so claiming it
  // does not hide anything from a reader of summary + messages.
  while (merged.length > MAX_FOLDED_RANGES) {
    const [first, second] = merged as [SeqRange, SeqRange];
    merged.splice(0, 2, [first[0], second[1]]);
  }
  return merged;
}

/** Chat with the assistant on `@austa/conversation-context`; every call names its owner, so the store checks it. */
export async function conversationRoutes(
  app: FastifyInstance,
  options: ConversationRoutesOptions,
): Promise<void> {
  const { conversations, responder, requireSession, limitAssistant } = options;
  const messageBody = {
    type: 'string',
    minLength: 1,
    maxLength: options.maxMessageChars,
    description: 'What the user says.',
  } as const;

  /**
   * Folds this request's trimmed messages into the summary, compare-and-set: the write names the version it read
   * (`expectedVersion`), and on `E_SUMMARY_CONFLICT` the summary is read again and the fold redone on top of it.
   *
   * Concurrent appends trim disjoint messages, but may write their summaries in any order: the one that trimmed
   * seqs 3-4 can write before the one that trimmed 1-2. So `upToSeq` (the newest seq folded) cannot say which seqs
   * are in; the summary's metadata lists the folded seqs as ranges (`folded: [[1, 4]]`, merged when adjacent), and a
   * request folds exactly its seqs that are not listed. Without the metadata (summaries written before it), the
   * summary is taken to cover 1..upToSeq.
   */
  /**
   * Folds of one conversation in this process run one after another, each on the summary the previous one wrote:
   * concurrent appends then do not race each other's compare-and-set (50 appends in flight on one conversation
   * retried up to 16 times each, summarizing again every time); the compare-and-set still guards against other
   * instances. Keyed by conversation id, an entry only while a fold of it runs or waits.
   */
  const folds = new Map<string, Promise<void>>();
  function oneFoldAtATime(id: string, fold: (waited: boolean) => Promise<void>): Promise<void> {
    const previous = folds.get(id);
    const run = previous === undefined ? fold(false) : previous.then(() => fold(true));
    const settled = run.catch(() => undefined);
    folds.set(id, settled);
    void settled.then(() => {
      if (folds.get(id) === settled) folds.delete(id);
    });
    return run;
  }

  async function foldIntoSummary(
    id: string,
    owner: Owner,
    trimmed: readonly StoredMessage[],
    first: Summary | null | undefined,
  ): Promise<void> {
    const summarize = responder.summarize;
    if (summarize === undefined) return;
    let current = first === undefined ? await conversations.getSummary(id, { owner }) : first;
    for (let attempt = 1; ; attempt++) {
      const folded = foldedRanges(current);
      const pending = trimmed.filter((message) => !covers(folded, message.seq));
      if (pending.length === 0) return; // another request's summary already holds these messages
      const summaryText = await summarize({
        ...(current !== null ? { previous: current.text } : {}),
        messages: pending.map((entry) => ({ role: entry.role, content: text(entry) })),
      });
      const ranges = withSeqs(
        folded,
        pending.map((message) => message.seq),
      );
      const upToSeq = Math.max(current?.upToSeq ?? 0, ...pending.map((message) => message.seq));
      try {
        await conversations.setSummary(
          id,
          { text: summaryText, upToSeq, metadata: { folded: ranges } },
          undefined,
          {
            owner,
            expectedVersion: current?.version ?? 0,
          },
        );
        return;
      } catch (error) {
        if (!(ConversationError.isInstance(error) && error.code === 'E_SUMMARY_CONFLICT')) throw error;
        if (attempt >= SUMMARY_ATTEMPTS) {
          // Every conflict means another append's summary was written, so this takes many appends racing on one
          // conversation. The messages are stored and answered; only their summary is missing, and that is logged.
          app.log.warn(
            { attempts: attempt, messages: pending.length },
            'summary not updated: concurrent appends kept conflicting; trimmed messages are not in the summary',
          );
          return;
        }
      }
      // Someone else's summary won: fold on top of it. A short random pause spreads out the retries of a burst.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
      current = await conversations.getSummary(id, { owner });
    }
  }

  /** Stores the user's message, asks the responder, stores its reply, intent and entities. */
  async function exchange(
    id: string,
    owner: Owner,
    message: string,
    summaryVersion: number,
    history: readonly StoredMessage[],
  ) {
    const summaryRead = summaryVersion > 0 ? await conversations.getSummary(id, { owner }) : null;
    const summary = summaryRead?.text;
    const stored = await conversations.addMessage(id, { role: 'user', content: message }, { owner });
    const historyView: ResponderMessage[] = history.map((entry) => ({
      role: entry.role,
      content: text(entry),
    }));
    const output = await responder.respond({
      conversationId: id,
      userId: owner.userId,
      message,
      history: historyView,
      ...(summary !== undefined ? { summary } : {}),
    });
    const reply = await conversations.addMessage(id, { role: 'assistant', content: output.reply }, { owner });
    const entities = output.entities ?? [];
    await Promise.all([
      output.intent
        ? conversations.updateIntent(
            id,
            { ...output.intent, sourceMessageSeq: stored.message.seq },
            { owner },
          )
        : undefined,
      entities.length > 0
        ? conversations.updateEntities(
            id,
            entities.map((entity) => ({ ...entity, sourceMessageSeq: stored.message.seq })),
            { owner },
          )
        : undefined,
    ]);
    // Messages the store trimmed are folded into the summary, so summary + recent messages still cover everything.
    const trimmed = [...stored.trimmed, ...reply.trimmed];
    if (trimmed.length > 0 && responder.summarize !== undefined) {
      await oneFoldAtATime(id, (waited) =>
        // After another fold of this conversation, the summary read before it is stale: read it again.
        foldIntoSummary(id, owner, trimmed, waited ? undefined : summaryRead),
      );
    }
    return {
      conversationId: id,
      message: messageView(stored.message),
      reply: messageView(reply.message),
      ...(output.intent ? { intent: output.intent } : {}),
      entities: entities.map((entity) => ({
        ...entity,
        type: typeof entity.value === 'number' ? 'number' : 'string',
      })),
    };
  }

  app.post(
    '/conversations',
    {
      preHandler: [requireSession, limitAssistant],
      schema: {
        tags: ['conversations'],
        summary: 'Start a conversation with the assistant, optionally with the first message.',
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            title: { type: 'string', minLength: 1, maxLength: 200 },
            message: messageBody,
          },
        },
        response: {
          201: {
            type: 'object',
            required: ['conversationId', 'createdAt'],
            properties: {
              conversationId: { type: 'string' },
              createdAt: { type: 'string', format: 'date-time' },
              exchange: EXCHANGE,
            },
          },
          ...errorResponses(400, 401, 413, 415, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const { userId } = authOf(request);
      const body = (request.body ?? {}) as { title?: string; message?: string };
      const id = randomUUID();
      await mapped(
        conversations.setContext(id, {
          userId,
          ...(body.title !== undefined ? { data: { title: body.title } } : {}),
        }),
      );
      const createdAt = new Date().toISOString();
      const result =
        body.message !== undefined ? await mapped(exchange(id, { userId }, body.message, 0, [])) : undefined;
      return reply
        .code(201)
        .header('location', `/conversations/${id}`)
        .send({ conversationId: id, createdAt, ...(result ? { exchange: result } : {}) });
    },
  );

  app.post(
    '/conversations/:id/messages',
    {
      preHandler: [requireSession, limitAssistant],
      schema: {
        tags: ['conversations'],
        summary: 'Append a user message; the reply of the assistant responder is stored and returned.',
        params: idParam('The conversation id.'),
        body: {
          type: 'object',
          required: ['content'],
          additionalProperties: false,
          properties: { content: messageBody },
        },
        response: { 201: EXCHANGE, ...errorResponses(400, 401, 404, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      const { userId } = authOf(request);
      const { id } = request.params as { id: string };
      const { content } = request.body as { content: string };
      const owner = { userId };
      // Both owner-checked; read together, so the existence check costs no extra round trip. The stats, not the
      // context: the context decrypts every entity and past intent, and an append needs only the summary's version.
      const [stats, history] = await mapped(
        Promise.all([
          conversations.getStats(id, { owner }),
          conversations.getRecentMessages(id, HISTORY, { owner }),
        ]),
      );
      if (stats === null) throw notFound();
      const result = await mapped(exchange(id, owner, content, stats.summaryVersion, history));
      return reply.code(201).send(result);
    },
  );

  app.get(
    '/conversations/:id',
    {
      preHandler: requireSession,
      schema: {
        tags: ['conversations'],
        summary: 'The conversation’s context: current intent, entities, summary and counts (no messages).',
        params: idParam('The conversation id.'),
        response: {
          200: {
            type: 'object',
            required: ['conversationId', 'createdAt', 'lastActivityAt', 'messageCount', 'entities'],
            properties: {
              conversationId: { type: 'string' },
              title: { type: 'string' },
              createdAt: { type: 'string', format: 'date-time' },
              lastActivityAt: { type: 'string', format: 'date-time' },
              expiresAt: { type: 'string', format: 'date-time' },
              messageCount: { type: 'integer' },
              tokenCount: { type: 'integer' },
              intent: { anyOf: [INTENT, { type: 'null' }] },
              entities: { type: 'array', items: ENTITY },
              summary: {
                anyOf: [
                  {
                    type: 'object',
                    required: ['text', 'upToSeq', 'version'],
                    properties: {
                      text: { type: 'string' },
                      upToSeq: { type: 'integer' },
                      version: { type: 'integer' },
                    },
                  },
                  { type: 'null' },
                ],
              },
            },
          },
          ...errorResponses(400, 401, 404, 429, 503),
        },
      },
    },
    async (request) => {
      const { userId } = authOf(request);
      const { id } = request.params as { id: string };
      const owner = { userId };
      const context = await mapped(conversations.getContext(id, { owner }));
      if (context === null) throw notFound();
      const summary = context.summary ? await mapped(conversations.getSummary(id, { owner })) : null;
      const title = context.data?.title;
      return {
        conversationId: id,
        ...(typeof title === 'string' ? { title } : {}),
        createdAt: iso(context.createdAtMs),
        lastActivityAt: iso(context.lastActivityMs),
        expiresAt: iso(Date.now() + context.ttlMs),
        messageCount: context.messageCount,
        tokenCount: context.tokenCount,
        intent: context.intent
          ? {
              name: context.intent.name,
              ...(context.intent.confidence !== undefined ? { confidence: context.intent.confidence } : {}),
            }
          : null,
        entities: Object.values(context.entities).map((entity) => ({
          name: entity.name,
          value: entity.value as string | number | boolean,
          type: entity.type,
          ...(entity.confidence !== undefined ? { confidence: entity.confidence } : {}),
        })),
        summary: summary ? { text: summary.text, upToSeq: summary.upToSeq, version: summary.version } : null,
      };
    },
  );

  app.get(
    '/conversations/:id/messages',
    {
      preHandler: requireSession,
      schema: {
        tags: ['conversations'],
        summary: 'The newest messages, oldest first.',
        params: idParam('The conversation id.'),
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['conversationId', 'messages'],
            properties: {
              conversationId: { type: 'string' },
              messages: { type: 'array', items: MESSAGE },
            },
          },
          ...errorResponses(400, 401, 404, 429, 503),
        },
      },
    },
    async (request) => {
      const { userId } = authOf(request);
      const { id } = request.params as { id: string };
      const { limit } = request.query as { limit: number };
      const owner = { userId };
      const [context, messages] = await mapped(
        Promise.all([
          conversations.getContext(id, { owner }),
          conversations.getRecentMessages(id, limit, { owner }),
        ]),
      );
      if (context === null) throw notFound();
      return { conversationId: id, messages: messages.map(messageView) };
    },
  );

  app.get(
    '/me/conversations',
    {
      preHandler: requireSession,
      schema: {
        tags: ['conversations'],
        summary: 'The user’s conversations, most recent activity first.',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
        },
        response: {
          200: {
            type: 'object',
            required: ['conversations'],
            properties: {
              conversations: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['conversationId', 'createdAt', 'lastActivityAt', 'messageCount'],
                  properties: {
                    conversationId: { type: 'string' },
                    createdAt: { type: 'string', format: 'date-time' },
                    lastActivityAt: { type: 'string', format: 'date-time' },
                    messageCount: { type: 'integer' },
                  },
                },
              },
            },
          },
          ...errorResponses(400, 401, 429, 503),
        },
      },
    },
    async (request) => {
      const { userId } = authOf(request);
      const { limit } = request.query as { limit: number };
      const list = await mapped(conversations.getUserConversations(userId, limit));
      return {
        conversations: list.map((entry) => ({
          conversationId: entry.conversationId,
          createdAt: iso(entry.createdAtMs),
          lastActivityAt: iso(entry.lastActivityMs),
          messageCount: entry.messageCount,
        })),
      };
    },
  );
}
