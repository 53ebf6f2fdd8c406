import { randomUUID } from 'node:crypto';
import {
  ConversationError,
  type ConversationStore,
  type Owner,
  type StoredMessage,
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

  /** Stores the user's message, asks the responder, stores its reply, intent and entities. */
  async function exchange(
    id: string,
    owner: Owner,
    message: string,
    summaryVersion: number,
    history: readonly StoredMessage[],
  ) {
    const summary = summaryVersion > 0 ? (await conversations.getSummary(id, { owner }))?.text : undefined;
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
    const last = trimmed[trimmed.length - 1];
    if (last !== undefined && responder.summarize !== undefined) {
      const previous = summary ?? (await conversations.getSummary(id, { owner }))?.text;
      const folded = await responder.summarize({
        ...(previous !== undefined ? { previous } : {}),
        messages: trimmed.map((entry) => ({ role: entry.role, content: text(entry) })),
      });
      try {
        await conversations.setSummary(id, { text: folded, upToSeq: last.seq }, undefined, { owner });
      } catch (error) {
        // A concurrent append summarized first: its summary covers these messages too.
        if (!(ConversationError.isInstance(error) && error.code === 'E_SUMMARY_CONFLICT')) throw error;
      }
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
