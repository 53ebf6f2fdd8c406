import { createHash, randomBytes } from 'node:crypto';
import { type Codec, createCodec } from '@austa/codec';
import { scanKeys } from '@austa/redis-cluster';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import {
  type ConversationError,
  ConversationInputError,
  ConversationNotFoundError,
  ConversationOwnershipError,
  ConversationStoreError,
} from './errors.js';
import { createInstruments, type Instruments, type Operation, type Result } from './instruments.js';
import { type ConversationKeys, hasControlCharacter, KeyLayout, validateId, validatePrefix } from './keys.js';
import {
  estimateTokens,
  fromBody,
  type MessageBody,
  type MessageInput,
  type StoredMessage,
  toBody,
  validateMessage,
} from './message.js';
import { type Argument, num, ScriptRunner, storeError, text } from './runner.js';
import { ADD_MESSAGE } from './scripts/add-message.js';
import { DELETE, EXTEND, INDEX_PRUNE, INDEX_TOUCH } from './scripts/lifecycle.js';
import { READ_MESSAGES } from './scripts/read-messages.js';
import { SET_CONTEXT } from './scripts/set-context.js';
import { SET_SUMMARY } from './scripts/summary.js';
import { UPDATE_ENTITIES } from './scripts/update-entities.js';
import { UPDATE_INTENT } from './scripts/update-intent.js';
import type {
  AddMessageOptions,
  AddMessageResult,
  CleanupReport,
  ConversationContext,
  ConversationStats,
  ConversationStoreOptions,
  DeleteUserConversationsOptions,
  Entity,
  EntityInput,
  EntityType,
  ErasureReport,
  GetMessagesOptions,
  Intent,
  IntentInput,
  Logger,
  OwnerOptions,
  RedactHook,
  RedactKind,
  SetContextInput,
  SetSummaryOptions,
  Summary,
  SummaryInput,
  UserConversation,
} from './types.js';
import { decodeValue, encodeValue, messageAad, parseElement, splitTimed } from './values.js';

/** Defaults of the optional settings; the README says why each. */
export const DEFAULTS = Object.freeze({
  prefix: 'austa:conversation',
  maxMessageBytes: 256 * 1024,
  requireOwner: true,
  keepSystemMessages: true,
  intentHistorySize: 20,
  maxEntities: 200,
  indexRefreshSeconds: 60,
});

/** Longest TTL accepted: 10 years. Beyond that a number is almost certainly a unit mistake (ms for s). */
const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;
/** Limit of getRecentMessages / getUserConversations. */
const MAX_LIMIT = 10_000;
const SCAN_BATCH = 100;
const TRYAGAIN_ATTEMPTS = 10;
const TRYAGAIN_DELAY_MS = 100;

function isTryAgain(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.message.startsWith('TRYAGAIN')) return true;
  // EXECABORT carries the errors of the queued commands.
  const previous = (error as { previousErrors?: unknown[] }).previousErrors;
  return (
    Array.isArray(previous) &&
    previous.some((inner) => inner instanceof Error && inner.message.startsWith('TRYAGAIN'))
  );
}
/** The meta hash fields getStats reads; uid and tid first, for the owner check. */
const STAT_FIELDS = [
  'uid',
  'tid',
  'n',
  'tokens',
  'added',
  'trimmed',
  'kept',
  'created',
  'updated',
  'sumV',
  'r:system',
  'r:user',
  'r:assistant',
  'r:tool',
] as const;

type OwnerArgs = [check: '0' | '1', userId: string, tenantId: string];

function positiveInteger(
  value: unknown,
  name: string,
  { min = 1, max = Number.MAX_SAFE_INTEGER } = {},
): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    throw new ConversationInputError('E_INVALID_CONFIG', `${name} must be an integer from ${min} to ${max}.`);
  }
  return value as number;
}

function ttlMsOf(
  value: unknown,
  name: string,
  code: 'E_INVALID_TTL' | 'E_INVALID_CONFIG' = 'E_INVALID_TTL',
): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TTL_SECONDS) {
    throw new ConversationInputError(
      code,
      `${name} must be a number of seconds above 0 and at most ${MAX_TTL_SECONDS}.`,
    );
  }
  return Math.max(1, Math.round(value * 1000));
}

function limitOf(value: unknown, name: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > MAX_LIMIT) {
    throw new ConversationInputError(
      'E_INVALID_ARGUMENT',
      `${name} must be an integer from 1 to ${MAX_LIMIT}.`,
    );
  }
  return value as number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkConfidence(value: unknown, what: string): void {
  if (value !== undefined && (typeof value !== 'number' || !(value >= 0 && value <= 1))) {
    throw new ConversationInputError(
      'E_INVALID_ARGUMENT',
      `${what}.confidence must be a number from 0 to 1.`,
    );
  }
}

function checkSeq(value: unknown, what: string): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= 0)) {
    throw new ConversationInputError('E_INVALID_ARGUMENT', `${what} must be a non-negative integer.`);
  }
}

function typeOfValue(value: unknown): EntityType {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return 'number';
  if (typeof value === 'boolean') return 'boolean';
  if (value instanceof Date) return 'date';
  return 'json';
}

function validateEntity(input: unknown): EntityInput & { type: EntityType } {
  if (!isPlainObject(input))
    throw new ConversationInputError('E_INVALID_ARGUMENT', 'each entity must be an object.');
  if (
    typeof input.name !== 'string' ||
    input.name.length === 0 ||
    input.name.length > 128 ||
    hasControlCharacter(input.name)
  ) {
    throw new ConversationInputError(
      'E_INVALID_ARGUMENT',
      'entity.name must be 1-128 characters without control characters.',
    );
  }
  if (!('value' in input) || input.value === undefined) {
    throw new ConversationInputError(
      'E_INVALID_ARGUMENT',
      `entity ${JSON.stringify(input.name)} has no value.`,
    );
  }
  const inferred = typeOfValue(input.value);
  if (
    input.type !== undefined &&
    input.type !== inferred &&
    !(input.type === 'json' && inferred !== 'date')
  ) {
    throw new ConversationInputError(
      'E_INVALID_ARGUMENT',
      `entity ${JSON.stringify(input.name)} is declared ${String(input.type)} but its value is a ${inferred}.`,
    );
  }
  checkConfidence(input.confidence, 'entity');
  checkSeq(input.sourceMessageSeq, 'entity.sourceMessageSeq');
  return { ...(input as unknown as EntityInput), type: (input.type as EntityType | undefined) ?? inferred };
}

function validateIntent(input: unknown): IntentInput {
  if (
    !isPlainObject(input) ||
    typeof input.name !== 'string' ||
    input.name.length === 0 ||
    input.name.length > 256
  ) {
    throw new ConversationInputError(
      'E_INVALID_ARGUMENT',
      'intent.name must be a string of 1-256 characters.',
    );
  }
  checkConfidence(input.confidence, 'intent');
  checkSeq(input.sourceMessageSeq, 'intent.sourceMessageSeq');
  if (input.metadata !== undefined && !isPlainObject(input.metadata)) {
    throw new ConversationInputError('E_INVALID_ARGUMENT', 'intent.metadata must be a plain object.');
  }
  return input as unknown as IntentInput;
}

function validateSummary(input: unknown): SummaryInput {
  if (!isPlainObject(input) || typeof input.text !== 'string') {
    throw new ConversationInputError('E_INVALID_ARGUMENT', 'summary.text must be a string.');
  }
  checkSeq(input.upToSeq, 'summary.upToSeq');
  if (input.upToSeq === undefined) {
    throw new ConversationInputError(
      'E_INVALID_ARGUMENT',
      'summary.upToSeq is required: the seq it covers up to.',
    );
  }
  if (input.metadata !== undefined && !isPlainObject(input.metadata)) {
    throw new ConversationInputError('E_INVALID_ARGUMENT', 'summary.metadata must be a plain object.');
  }
  return input as unknown as SummaryInput;
}

interface EncodedIntent {
  n: string;
  c?: number;
  s?: number;
  m?: Record<string, unknown>;
}

interface EncodedEntity {
  v: unknown;
  t: EntityType;
  c?: number;
  s?: number;
}

interface EncodedSummary {
  t: string;
  m?: Record<string, unknown>;
}

/** The store. Create it with {@link createConversationStore}. */
export class ConversationStore {
  private readonly redis: Redis | Cluster;
  private readonly runner: ScriptRunner;
  private readonly keys: KeyLayout;
  private readonly codec: Codec;
  private readonly instruments: Instruments;
  private readonly logger: Logger;
  private readonly redactHook: RedactHook | undefined;
  private readonly countTokens: (message: MessageInput) => number;
  private readonly ttlMs: number;
  private readonly lifetimeMs: number;
  private readonly maxMessages: number;
  private readonly maxTokens: number;
  private readonly maxMessageBytes: number;
  private readonly requireOwner: boolean;
  private readonly keepSystemMessages: boolean;
  private readonly intentHistorySize: number;
  private readonly maxEntities: number;
  private readonly indexRefreshMs: number;
  private readonly addSettings: string;
  /** Append tokens: unique per store instance and call, so a re-sent append is recognised (see add-message.ts). */
  private readonly tokenPrefix = randomBytes(9).toString('base64url');
  private appendCount = 0;
  private closed = false;

  constructor(options: ConversationStoreOptions) {
    if (!isPlainObject(options) && typeof options !== 'object') {
      throw new ConversationInputError(
        'E_INVALID_CONFIG',
        'createConversationStore needs an options object.',
      );
    }
    const redis = options.redis as unknown as { evalshaBuffer?: unknown } | undefined;
    if (!redis || typeof redis.evalshaBuffer !== 'function') {
      throw new ConversationInputError(
        'E_INVALID_CONFIG',
        'redis must be an ioredis Redis or Cluster client.',
      );
    }
    this.redis = options.redis;
    this.runner = new ScriptRunner(options.redis);
    this.keys = new KeyLayout(validatePrefix(options.prefix ?? DEFAULTS.prefix));
    this.ttlMs = ttlMsOf(options.ttlSeconds, 'ttlSeconds', 'E_INVALID_CONFIG');
    this.lifetimeMs =
      options.maxLifetimeSeconds === undefined
        ? 0
        : ttlMsOf(options.maxLifetimeSeconds, 'maxLifetimeSeconds', 'E_INVALID_CONFIG');
    // Either limit may be left out, not both: a conversation must never grow without bound.
    if (options.maxMessages === undefined && options.maxTokens === undefined) {
      throw new ConversationInputError(
        'E_INVALID_CONFIG',
        'Set maxMessages, maxTokens or both: with neither, a conversation would grow without bound.',
      );
    }
    this.maxMessages =
      options.maxMessages === undefined
        ? 0
        : positiveInteger(options.maxMessages, 'maxMessages', { max: 100_000 });
    this.maxTokens = options.maxTokens === undefined ? 0 : positiveInteger(options.maxTokens, 'maxTokens');
    this.maxMessageBytes = positiveInteger(
      options.maxMessageBytes ?? DEFAULTS.maxMessageBytes,
      'maxMessageBytes',
      {
        min: 64,
        max: 64 * 1024 * 1024,
      },
    );
    this.intentHistorySize = positiveInteger(
      options.intentHistorySize ?? DEFAULTS.intentHistorySize,
      'intentHistorySize',
      { max: 1000 },
    );
    this.maxEntities = positiveInteger(options.maxEntities ?? DEFAULTS.maxEntities, 'maxEntities', {
      max: 10_000,
    });
    this.indexRefreshMs =
      positiveInteger(options.indexRefreshSeconds ?? DEFAULTS.indexRefreshSeconds, 'indexRefreshSeconds', {
        min: 0,
        max: 86_400,
      }) * 1000;
    for (const [name, value] of [
      ['requireOwner', options.requireOwner],
      ['keepSystemMessages', options.keepSystemMessages],
    ] as const) {
      if (value !== undefined && typeof value !== 'boolean') {
        throw new ConversationInputError('E_INVALID_CONFIG', `${name} must be a boolean.`);
      }
    }
    this.requireOwner = options.requireOwner ?? DEFAULTS.requireOwner;
    this.keepSystemMessages = options.keepSystemMessages ?? DEFAULTS.keepSystemMessages;
    for (const [name, value] of [
      ['tokenCounter', options.tokenCounter],
      ['redact', options.redact],
    ] as const) {
      if (value !== undefined && typeof value !== 'function') {
        throw new ConversationInputError('E_INVALID_CONFIG', `${name} must be a function.`);
      }
    }
    this.countTokens = options.tokenCounter ?? estimateTokens;
    this.redactHook = options.redact;
    if (options.codec !== undefined && typeof options.codec?.encode !== 'function') {
      throw new ConversationInputError(
        'E_INVALID_CONFIG',
        'codec must come from createCodec() of @austa/codec.',
      );
    }
    this.codec = options.codec ?? createCodec();
    // A conversation written to again while it still has 99% of its TTL keeps that TTL: sparing two PEXPIREs per
    // message is worth up to 1% of ttlSeconds (at least a second, at most a tenth of the TTL) of earlier expiry.
    const slackMs = Math.floor(Math.min(Math.max(1000, this.ttlMs / 100), this.ttlMs / 10));
    this.addSettings = `${this.ttlMs}|${this.lifetimeMs}|${this.maxMessages}|${this.maxTokens}|${this.indexRefreshMs}|${slackMs}`;
    this.instruments = createInstruments(options.metrics);
    this.logger = options.logger ?? console;
  }

  /** Whether stored content is encrypted (the codec has keys). */
  get encrypts(): boolean {
    return this.codec.encrypts;
  }

  // ---------------------------------------------------------------- plumbing

  private async measure<T>(
    operation: Operation,
    work: (mark: (result: Result) => void) => Promise<T>,
  ): Promise<T> {
    const started = this.instruments.enabled ? performance.now() : 0;
    let result: Result = 'ok';
    try {
      if (this.closed) {
        throw new ConversationStoreError(
          'E_STORE_CLOSED',
          'This conversation store was closed with close().',
        );
      }
      const value = await work((outcome) => {
        result = outcome;
      });
      this.instruments.record(operation, result, started);
      return value;
    } catch (caught) {
      const error = storeError(caught);
      this.instruments.record(operation, resultOf(error), started, error);
      throw error;
    }
  }

  private conversation(conversationId: unknown): { id: string; keys: ConversationKeys } {
    const id = validateId(conversationId, 'conversationId', 'E_INVALID_CONVERSATION_ID');
    return { id, keys: this.keys.conversation(id) };
  }

  private owner(id: string, options: OwnerOptions | undefined): OwnerArgs {
    if (options !== undefined && !isPlainObject(options)) {
      throw new ConversationInputError('E_INVALID_ARGUMENT', 'options must be an object.');
    }
    const owner = options?.owner;
    if (owner === undefined) {
      if (this.requireOwner) {
        throw new ConversationOwnershipError(
          'E_OWNER_REQUIRED',
          id,
          'This store requires options.owner ({ userId, tenantId? }) on every conversation operation.',
        );
      }
      return ['0', '', ''];
    }
    const valid = this.validOwner(owner);
    return ['1', valid.userId, valid.tenantId];
  }

  private validOwner(owner: unknown): { userId: string; tenantId: string } {
    if (!isPlainObject(owner)) {
      throw new ConversationInputError('E_INVALID_USER_ID', 'owner must be { userId, tenantId? }.');
    }
    const userId = validateId(owner.userId, 'owner.userId', 'E_INVALID_USER_ID');
    const tenantId =
      owner.tenantId === undefined ? '' : validateId(owner.tenantId, 'owner.tenantId', 'E_INVALID_USER_ID');
    return { userId, tenantId };
  }

  /**
   * Runs a read-only MULTI (atomic, one round trip) and unwraps its results. While a slot migration has moved some of
   * a conversation's keys and not the others, Redis answers TRYAGAIN; ioredis retries scripts on it but not
   * transactions, so reads (idempotent) are retried here, every 100 ms for at most a second.
   */
  private async transaction(build: (multi: ChainableCommander) => ChainableCommander): Promise<unknown[]> {
    for (let attempt = 1; ; attempt++) {
      let results: Array<[Error | null, unknown]> | null;
      try {
        results = await build(this.redis.multi()).exec();
        if (results === null) throw new Error('the transaction was aborted');
        const failed = results.find(([error]) => error !== null)?.[0];
        if (failed) throw failed;
      } catch (error) {
        if (attempt < TRYAGAIN_ATTEMPTS && isTryAgain(error)) {
          await new Promise((resolve) => setTimeout(resolve, TRYAGAIN_DELAY_MS));
          continue;
        }
        throw storeError(error);
      }
      return results.map(([, value]) => value);
    }
  }

  /**
   * Whether a read may proceed: false when the conversation does not exist; throws when the caller named an owner
   * other than the conversation's. The data read along with the owner is dropped unseen in both cases.
   */
  private readable(
    id: string,
    owner: ReadonlyArray<string | null | undefined>,
    check: string,
    userId: string,
    tenantId: string,
  ): boolean {
    if (owner[0] === null || owner[0] === undefined || owner[0] === '') return false;
    if (check === '1' && (owner[0] !== userId || (owner[1] ?? '') !== tenantId)) {
      this.status(['OWNER'], id);
    }
    return true;
  }

  /** Maps the shared failure statuses of the conversation scripts to typed errors. */
  private status(reply: unknown[], id: string): string {
    const status = text(reply[0]);
    if (status === 'NOTFOUND') throw new ConversationNotFoundError(id);
    if (status === 'OWNER') {
      throw new ConversationOwnershipError(
        'E_OWNERSHIP_MISMATCH',
        id,
        `Conversation ${JSON.stringify(id)} belongs to another user or tenant; nothing was read or written.`,
      );
    }
    return status;
  }

  private redact<T>(value: T, kind: RedactKind, conversationId: string): unknown {
    if (this.redactHook === undefined) return value;
    try {
      return this.redactHook(value, { kind, conversationId });
    } catch (error) {
      throw new ConversationInputError(
        'E_INVALID_ARGUMENT',
        `The redact hook threw on a ${kind}; nothing was written.`,
        { cause: error },
      );
    }
  }

  /** Raises the user's index entry; a failure is counted and logged (cleanup() repairs it), never thrown. */
  private async touchIndex(
    conversationId: string,
    userId: string,
    tenantId: string,
    atMs: number,
    ttlMs: number,
  ) {
    if (userId === '') return;
    try {
      await this.runner.run(
        INDEX_TOUCH,
        [this.keys.userIndex(userId, tenantId)],
        [conversationId, atMs, ttlMs + this.indexRefreshMs],
      );
    } catch (error) {
      this.instruments.indexFailure();
      this.logger.warn(
        `[@austa/conversation-context] the per-user index update failed (${storeError(error).code}); the conversation was written and cleanup() will repair the index.`,
      );
    }
  }

  /**
   * The token the append script remembers: from the caller's idempotency key (a hash, so any key fits the script's
   * token alphabet and length), or unique to this call, so that ioredis re-sending it is recognised.
   */
  private appendToken(idempotencyKey: unknown): string {
    if (idempotencyKey === undefined) return `${this.tokenPrefix}${(this.appendCount++).toString(36)}`;
    if (
      typeof idempotencyKey !== 'string' ||
      idempotencyKey.length === 0 ||
      idempotencyKey.length > 256 ||
      hasControlCharacter(idempotencyKey)
    ) {
      throw new ConversationInputError(
        'E_INVALID_ARGUMENT',
        'idempotencyKey must be a string of 1-256 characters without control characters.',
      );
    }
    // 'k' and 20 base64url characters (120 bits): no collision with another key or a generated token in practice.
    return `k${createHash('sha256').update(idempotencyKey).digest('base64url').slice(0, 20)}`;
  }

  private decodeMessage(element: Buffer, keys: ConversationKeys): StoredMessage {
    const header = parseElement(element);
    const body = decodeValue<MessageBody>(
      this.codec,
      header.body,
      messageAad(keys.messages, header.role, header.flags),
      'message',
    );
    return fromBody(body, {
      seq: header.seq,
      createdAtMs: header.createdAtMs,
      role: header.role,
      tokens: header.tokens,
      pinned: header.flags === 'p',
    });
  }

  // ---------------------------------------------------------------- operations

  /**
   * Creates a conversation for `userId` (and `tenantId`), or updates its context `data`. The owner of an existing
   * conversation never changes: another owner gets `E_OWNERSHIP_MISMATCH`.
   */
  setContext(
    conversationId: string,
    input: SetContextInput,
    options: { ttlSeconds?: number } = {},
  ): Promise<{ created: boolean; ttlMs: number }> {
    return this.measure('set_context', async () => {
      const { id, keys } = this.conversation(conversationId);
      const { userId, tenantId } = this.validOwner(input);
      const ttlMs = options.ttlSeconds === undefined ? this.ttlMs : ttlMsOf(options.ttlSeconds, 'ttlSeconds');
      let mode = '0';
      let data: Buffer | string = '';
      if (input.data === null) mode = '2';
      else if (input.data !== undefined) {
        const redacted = this.redact(input.data, 'context', id);
        if (!isPlainObject(redacted)) {
          throw new ConversationInputError('E_INVALID_ARGUMENT', 'context data must be a plain object.');
        }
        data = encodeValue(this.codec, redacted, `${keys.meta}|ctx`, this.maxMessageBytes, 'context data');
        mode = '1';
      }
      const reply = await this.runner.run(
        SET_CONTEXT,
        [keys.meta, keys.messages, keys.intents],
        [userId, tenantId, ttlMs, this.lifetimeMs, this.indexRefreshMs, mode, data],
      );
      this.status(reply, id);
      const created = num(reply[1]) === 1;
      const appliedTtl = num(reply[3]);
      if (num(reply[2]) === 1) await this.touchIndex(id, userId, tenantId, num(reply[4]), appliedTtl);
      return { created, ttlMs: appliedTtl };
    });
  }

  /**
   * Appends a message, trims the oldest unpinned messages beyond `maxMessages` / `maxTokens`, and refreshes the TTL,
   * atomically, in one round trip. With `owner`, a missing conversation is created for that owner.
   */
  addMessage(
    conversationId: string,
    message: MessageInput,
    options?: AddMessageOptions,
  ): Promise<AddMessageResult> {
    return this.measure('add_message', async () => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      const token = this.appendToken(options?.idempotencyKey);
      validateMessage(message);
      const stored =
        this.redactHook === undefined ? message : validateMessage(this.redact(message, 'message', id));
      let tokens = stored.tokens;
      if (tokens === undefined) {
        try {
          tokens = this.countTokens(stored);
        } catch (error) {
          throw new ConversationInputError(
            'E_INVALID_ARGUMENT',
            'The tokenCounter threw; nothing was written.',
            {
              cause: error,
            },
          );
        }
        if (!Number.isSafeInteger(tokens) || tokens < 0) {
          throw new ConversationInputError(
            'E_INVALID_ARGUMENT',
            'The tokenCounter must return a non-negative integer; nothing was written.',
          );
        }
      }
      const flags =
        stored.pinned === true ? 'p' : this.keepSystemMessages && stored.role === 'system' ? 's' : '';
      const body = encodeValue(
        this.codec,
        toBody(stored),
        messageAad(keys.messages, stored.role, flags),
        this.maxMessageBytes,
        'The message',
      );
      const reply = await this.runner.run(
        ADD_MESSAGE,
        [keys.meta, keys.messages, keys.intents],
        [
          this.addSettings,
          `${check}${check}|${stored.role}|${tokens}|${flags}|${token}`,
          userId,
          tenantId,
          body,
        ],
      );
      const status = this.status(reply, id);
      if (status === 'PINNED') {
        throw new ConversationInputError(
          'E_PINNED_LIMIT',
          `Conversation ${JSON.stringify(id)} already keeps ${num(reply[1])} pinned or system messages (${num(reply[2])} tokens); with ${this.maxMessages > 0 ? `maxMessages ${this.maxMessages}` : ''}${this.maxMessages > 0 && this.maxTokens > 0 ? ' and ' : ''}${this.maxTokens > 0 ? `maxTokens ${this.maxTokens}` : ''} one more could never be trimmed. Nothing was written.`,
        );
      }
      const seq = num(reply[1]);
      const createdAtMs = num(reply[2]);
      if (status === 'DUP') {
        // ioredis re-sent this append after its connection closed, and the first send had run: report that one.
        return {
          message: { ...stored, seq, createdAtMs, tokens, pinned: flags === 'p' },
          trimmed: [],
          messageCount: num(reply[3]),
          tokenCount: num(reply[4]),
          created: false,
          duplicate: true,
        };
      }
      const trimmed: StoredMessage[] = [];
      for (let i = 10; i < reply.length; i++) trimmed.push(this.decodeMessage(reply[i] as Buffer, keys));
      this.instruments.message(stored.role);
      this.instruments.trimmed(trimmed.length);
      if (num(reply[6]) === 1) {
        await this.touchIndex(id, text(reply[7]), text(reply[8]), createdAtMs, num(reply[9]));
      }
      const result: StoredMessage = { ...stored, seq, createdAtMs, tokens, pinned: flags === 'p' };
      return {
        message: result,
        trimmed,
        messageCount: num(reply[3]),
        tokenCount: num(reply[4]),
        created: num(reply[5]) === 1,
        duplicate: false,
      };
    });
  }

  /**
   * The newest `limit` messages, oldest first (all of them without `limit`). A conversation that does not exist
   * reads as empty.
   */
  getRecentMessages(
    conversationId: string,
    limit?: number,
    options?: GetMessagesOptions,
  ): Promise<StoredMessage[]> {
    return this.measure('get_recent_messages', async (mark) => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      const count = limit === undefined ? 0 : limitOf(limit, 'limit');
      checkSeq(options?.afterSeq, 'afterSeq');
      const args = [check, userId, tenantId, count];
      let reply: unknown[];
      try {
        reply = await this.runner.run(READ_MESSAGES, [keys.meta, keys.messages], args);
      } catch (error) {
        // A read whose reply was lost (a @austa/redis-cluster client does not re-send it) is safe to send again.
        if (storeError(error).code !== 'E_MAYBE_APPLIED') throw error;
        reply = await this.runner.run(READ_MESSAGES, [keys.meta, keys.messages], args);
      }
      if (reply.length === 0) {
        mark('miss');
        return [];
      }
      const last = reply.length - 1;
      if (text(reply[last]) !== 'OK') this.status(reply, id);
      const messages: StoredMessage[] = [];
      const afterSeq = options?.afterSeq;
      for (let i = 0; i < last; i++) {
        const element = reply[i] as Buffer;
        if (afterSeq !== undefined && parseElement(element).seq <= afterSeq) continue;
        messages.push(this.decodeMessage(element, keys));
      }
      return messages;
    });
  }

  /** Sets the current intent; the previous ones stay in a bounded history (newest first). */
  updateIntent(conversationId: string, intent: IntentInput, options?: OwnerOptions): Promise<Intent> {
    return this.measure('update_intent', async () => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      validateIntent(intent);
      const stored = validateIntent(this.redact(intent, 'intent', id));
      const encoded: EncodedIntent = { n: stored.name };
      if (stored.confidence !== undefined) encoded.c = stored.confidence;
      if (stored.sourceMessageSeq !== undefined) encoded.s = stored.sourceMessageSeq;
      if (stored.metadata !== undefined) encoded.m = stored.metadata;
      const body = encodeValue(this.codec, encoded, keys.intents, this.maxMessageBytes, 'The intent');
      const reply = await this.runner.run(
        UPDATE_INTENT,
        [keys.meta, keys.messages, keys.intents],
        [check, userId, tenantId, this.ttlMs, this.intentHistorySize, this.indexRefreshMs, body],
      );
      this.status(reply, id);
      const recordedAtMs = num(reply[1]);
      if (num(reply[2]) === 1)
        await this.touchIndex(id, text(reply[3]), text(reply[4]), recordedAtMs, num(reply[5]));
      return { ...stored, recordedAtMs };
    });
  }

  /**
   * Merges entities by name: each name given replaces that entity as a whole; other entities are kept. Values are
   * typed (`string`, `number`, `boolean`, `date`, `json`) and encrypted with the codec.
   */
  updateEntities(
    conversationId: string,
    entities: EntityInput[],
    options?: OwnerOptions,
  ): Promise<{ entityCount: number; updatedAtMs: number }> {
    return this.measure('update_entities', async () => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      if (!Array.isArray(entities) || entities.length === 0 || entities.length > this.maxEntities) {
        throw new ConversationInputError(
          'E_INVALID_ARGUMENT',
          `entities must be an array of 1 to ${this.maxEntities} entities.`,
        );
      }
      const byName = new Map<string, Buffer>();
      for (const raw of entities) {
        validateEntity(raw);
        const entity = validateEntity(this.redact(raw, 'entity', id));
        const encoded: EncodedEntity = { v: entity.value, t: entity.type };
        if (entity.confidence !== undefined) encoded.c = entity.confidence;
        if (entity.sourceMessageSeq !== undefined) encoded.s = entity.sourceMessageSeq;
        byName.set(
          entity.name,
          encodeValue(
            this.codec,
            encoded,
            `${keys.meta}|e:${entity.name}`,
            this.maxMessageBytes,
            `Entity ${JSON.stringify(entity.name)}`,
          ),
        );
      }
      const pairs: Argument[] = [];
      let bytes = 0;
      for (const [name, body] of byName) {
        pairs.push(name, body);
        bytes += body.length;
      }
      // The limit holds for the call, not only each value: the reason for it is one command holding Redis up.
      if (bytes > this.maxMessageBytes) {
        throw new ConversationInputError(
          'E_MESSAGE_TOO_LARGE',
          `These entities take ${bytes} bytes encoded, over maxMessageBytes ${this.maxMessageBytes} for one call; send them in smaller calls. Nothing was written.`,
        );
      }
      const reply = await this.runner.run(
        UPDATE_ENTITIES,
        [keys.meta, keys.messages, keys.intents],
        [check, userId, tenantId, this.ttlMs, this.maxEntities, this.indexRefreshMs, ...pairs],
      );
      if (this.status(reply, id) === 'ENTITIES') {
        throw new ConversationInputError(
          'E_TOO_MANY_ENTITIES',
          `Conversation ${JSON.stringify(id)} has ${num(reply[1])} entities; these would pass maxEntities ${this.maxEntities}. Nothing was written.`,
        );
      }
      const updatedAtMs = num(reply[1]);
      if (num(reply[3]) === 1)
        await this.touchIndex(id, text(reply[4]), text(reply[5]), updatedAtMs, num(reply[6]));
      return { entityCount: num(reply[2]), updatedAtMs };
    });
  }

  /** Everything about a conversation except its messages and summary text; null when it does not exist. */
  getContext(conversationId: string, options?: OwnerOptions): Promise<ConversationContext | null> {
    return this.measure('get_context', async (mark) => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      const [hash, pttl, intents] = await this.transaction((multi) =>
        multi.hgetallBuffer(keys.meta).pttl(keys.meta).lrangeBuffer(keys.intents, 0, -1),
      );
      const fields = new Map(Object.entries(hash as Record<string, Buffer>));
      if (
        !this.readable(
          id,
          [text(fields.get('uid')) || null, text(fields.get('tid'))],
          check,
          userId,
          tenantId,
        )
      ) {
        mark('miss');
        return null;
      }
      const entities: Record<string, Entity> = {};
      for (const [field, value] of fields) {
        if (!field.startsWith('e:')) continue;
        const name = field.slice(2);
        const { atMs, body } = splitTimed(value);
        const encoded = decodeValue<EncodedEntity>(this.codec, body, `${keys.meta}|e:${name}`, 'entity');
        const entity: Entity = { name, value: encoded.v, type: encoded.t, updatedAtMs: atMs };
        if (encoded.c !== undefined) entity.confidence = encoded.c;
        if (encoded.s !== undefined) entity.sourceMessageSeq = encoded.s;
        // defineProperty, not assignment: an entity named __proto__ must stay an entity, not become the prototype.
        Object.defineProperty(entities, name, {
          value: entity,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      const intentHistory = (intents as Buffer[]).map((element) => this.decodeIntent(element, keys));
      const ctx = fields.get('ctx');
      const summaryVersion = num(fields.get('sumV'));
      const context: ConversationContext = {
        conversationId: id,
        userId: text(fields.get('uid')),
        intent: intentHistory[0] ?? null,
        intentHistory,
        entities,
        summary:
          summaryVersion > 0
            ? {
                version: summaryVersion,
                upToSeq: num(fields.get('sumUpTo')),
                createdAtMs: num(fields.get('sumAt')),
              }
            : null,
        messageCount: num(fields.get('n')),
        tokenCount: num(fields.get('tokens')),
        lastSeq: num(fields.get('seq')),
        createdAtMs: num(fields.get('created')),
        lastActivityMs: num(fields.get('updated')),
        ttlMs: num(pttl),
      };
      const tenant = text(fields.get('tid'));
      if (tenant !== '') context.tenantId = tenant;
      if (ctx !== undefined) {
        context.data = decodeValue<Record<string, unknown>>(
          this.codec,
          ctx,
          `${keys.meta}|ctx`,
          'context data',
        );
      }
      return context;
    });
  }

  private decodeIntent(element: Buffer, keys: ConversationKeys): Intent {
    const { atMs, body } = splitTimed(element);
    const encoded = decodeValue<EncodedIntent>(this.codec, body, keys.intents, 'intent');
    const intent: Intent = { name: encoded.n, recordedAtMs: atMs };
    if (encoded.c !== undefined) intent.confidence = encoded.c;
    if (encoded.s !== undefined) intent.sourceMessageSeq = encoded.s;
    if (encoded.m !== undefined) intent.metadata = encoded.m;
    return intent;
  }

  /** Counts, roles, activity times and summary version of a conversation; null when it does not exist. */
  getStats(conversationId: string, options?: OwnerOptions): Promise<ConversationStats | null> {
    return this.measure('get_stats', async (mark) => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      const [values, pttl] = await this.transaction((multi) =>
        multi.hmget(keys.meta, ...STAT_FIELDS).pttl(keys.meta),
      );
      const list = values as Array<string | null>;
      if (!this.readable(id, list, check, userId, tenantId)) {
        mark('miss');
        return null;
      }
      const fields = new Map(STAT_FIELDS.map((field, i) => [field, list[i] ?? null]));
      const roles: Record<string, number> = {};
      for (const [field, value] of fields) {
        if (field.startsWith('r:') && num(value) > 0) roles[field.slice(2)] = num(value);
      }
      return {
        messageCount: num(fields.get('n')),
        tokenCount: num(fields.get('tokens')),
        roles,
        addedMessages: num(fields.get('added')),
        trimmedMessages: num(fields.get('trimmed')),
        keptMessages: num(fields.get('kept')),
        firstActivityMs: num(fields.get('created')),
        lastActivityMs: num(fields.get('updated')),
        summaryVersion: num(fields.get('sumV')),
        ttlMs: num(pttl),
      };
    });
  }

  /** The current summary, or null (no summary yet, or no such conversation). */
  getSummary(conversationId: string, options?: OwnerOptions): Promise<Summary | null> {
    return this.measure('get_summary', async (mark) => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      let reply: Array<Buffer | null>;
      try {
        reply = await this.redis.hmgetBuffer(keys.meta, 'uid', 'tid', 'sum', 'sumV', 'sumUpTo', 'sumAt');
      } catch (error) {
        throw storeError(error);
      }
      const owner = [reply[0] ? text(reply[0]) : null, text(reply[1])];
      if (!this.readable(id, owner, check, userId, tenantId) || !Buffer.isBuffer(reply[2])) {
        mark('miss');
        return null;
      }
      const upToSeq = num(reply[4]);
      const encoded = decodeValue<EncodedSummary>(
        this.codec,
        reply[2],
        `${keys.meta}|sum|${upToSeq}`,
        'summary',
      );
      const summary: Summary = {
        text: encoded.t,
        upToSeq,
        version: num(reply[3]),
        createdAtMs: num(reply[5]),
      };
      if (encoded.m !== undefined) summary.metadata = encoded.m;
      return summary;
    });
  }

  /**
   * Stores a new summary version covering messages up to `upToSeq`, and gives the conversation at least
   * `ttlSeconds` (default the store's) to live.
   */
  setSummary(
    conversationId: string,
    summary: SummaryInput,
    ttlSeconds?: number,
    options?: SetSummaryOptions,
  ): Promise<{ version: number; createdAtMs: number }> {
    return this.measure('set_summary', async (mark) => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      const ttlMs = ttlSeconds === undefined ? this.ttlMs : ttlMsOf(ttlSeconds, 'ttlSeconds');
      checkSeq(options?.expectedVersion, 'expectedVersion');
      validateSummary(summary);
      const stored = validateSummary(this.redact(summary, 'summary', id));
      const encoded: EncodedSummary = { t: stored.text };
      if (stored.metadata !== undefined) encoded.m = stored.metadata;
      const body = encodeValue(
        this.codec,
        encoded,
        `${keys.meta}|sum|${stored.upToSeq}`,
        this.maxMessageBytes,
        'The summary',
      );
      const reply = await this.runner.run(
        SET_SUMMARY,
        [keys.meta, keys.messages, keys.intents],
        [
          check,
          userId,
          tenantId,
          ttlMs,
          options?.expectedVersion === undefined ? '' : options.expectedVersion,
          stored.upToSeq,
          this.indexRefreshMs,
          body,
        ],
      );
      const status = this.status(reply, id);
      if (status === 'CONFLICT') {
        mark('conflict');
        throw new ConversationInputError(
          'E_SUMMARY_CONFLICT',
          `The summary of ${JSON.stringify(id)} is at version ${num(reply[1])}, not ${options?.expectedVersion}; nothing was written. Re-read it and summarize again.`,
        );
      }
      if (status === 'UPTO') {
        throw new ConversationInputError(
          'E_INVALID_ARGUMENT',
          `summary.upToSeq ${stored.upToSeq} is past the newest message (seq ${num(reply[1])}); nothing was written.`,
        );
      }
      const createdAtMs = num(reply[2]);
      if (num(reply[3]) === 1)
        await this.touchIndex(id, text(reply[4]), text(reply[5]), createdAtMs, num(reply[6]));
      return { version: num(reply[1]), createdAtMs };
    });
  }

  /**
   * Gives all of a conversation's keys at least `ttlSeconds` (default the store's) more to live, within the absolute
   * cap. Throws `E_NOT_FOUND` when it does not exist. Resolves to the TTL applied, in ms.
   */
  extendTTL(conversationId: string, ttlSeconds?: number, options?: OwnerOptions): Promise<number> {
    return this.measure('extend_ttl', async () => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      const ttlMs = ttlSeconds === undefined ? this.ttlMs : ttlMsOf(ttlSeconds, 'ttlSeconds');
      const reply = await this.runner.run(
        EXTEND,
        [keys.meta, keys.messages, keys.intents],
        [check, userId, tenantId, ttlMs],
      );
      this.status(reply, id);
      const applied = num(reply[1]);
      await this.touchIndex(id, text(reply[2]), text(reply[3]), num(reply[4]), applied);
      return applied;
    });
  }

  /** Removes a conversation and its index entry. Resolves to false when it did not exist. */
  deleteContext(conversationId: string, options?: OwnerOptions): Promise<boolean> {
    return this.measure('delete_context', async (mark) => {
      const { id, keys } = this.conversation(conversationId);
      const [check, userId, tenantId] = this.owner(id, options);
      const reply = await this.runner.run(
        DELETE,
        [keys.meta, keys.messages, keys.intents],
        [check, userId, tenantId, '0'],
      );
      if (text(reply[0]) === 'NOTFOUND') {
        mark('miss');
        return false;
      }
      this.status(reply, id);
      await this.removeFromIndex(text(reply[1]), text(reply[2]), [id, num(reply[4])]);
      return true;
    });
  }

  private async pruneIndex(index: string, seen: Array<string | number>): Promise<number> {
    return num(await this.runner.run(INDEX_PRUNE, [index], seen));
  }

  /** `seen`: id, score pairs; an entry whose score rose since (the id was created again) stays (INDEX_PRUNE). */
  private async removeFromIndex(
    userId: string,
    tenantId: string,
    seen: Array<string | number>,
  ): Promise<void> {
    if (userId === '' || seen.length === 0) return;
    try {
      await this.pruneIndex(this.keys.userIndex(userId, tenantId), seen);
    } catch (error) {
      // The entry points at nothing: getUserConversations skips it and cleanup() removes it.
      this.instruments.indexFailure();
      this.logger.warn(
        `[@austa/conversation-context] removing a deleted conversation from the per-user index failed (${storeError(error).code}); cleanup() will remove it.`,
      );
    }
  }

  /**
   * The user's conversations, most recent activity first. The index is checked against each conversation's own meta
   * hash: entries of expired conversations, or of conversations owned by someone else, are never returned.
   */
  getUserConversations(
    userId: string,
    limit = 20,
    options: { tenantId?: string } = {},
  ): Promise<UserConversation[]> {
    return this.measure('get_user_conversations', async () => {
      const owner = this.validOwner({ userId, tenantId: options.tenantId });
      const count = limitOf(limit, 'limit');
      const index = this.keys.userIndex(owner.userId, owner.tenantId);
      const valid: UserConversation[] = [];
      const stale: string[] = [];
      const pageSize = Math.min(MAX_LIMIT, Math.max(count * 2, 20));
      let start = 0;
      for (;;) {
        const page = await this.redis.zrevrange(index, start, start + pageSize - 1, 'WITHSCORES');
        const ids: string[] = [];
        const scores = new Map<string, string>();
        for (let i = 0; i < page.length; i += 2) {
          ids.push(page[i] as string);
          scores.set(page[i] as string, page[i + 1] as string);
        }
        if (ids.length === 0) break;
        const metas = await Promise.all(
          ids.map((id) =>
            this.redis.hmget(
              this.keys.conversation(id).meta,
              'uid',
              'tid',
              'created',
              'updated',
              'n',
              'sumV',
            ),
          ),
        );
        metas.forEach((meta, i) => {
          const id = ids[i] as string;
          if (meta[0] !== owner.userId || (meta[1] ?? '') !== owner.tenantId) {
            stale.push(id, scores.get(id) as string);
            return;
          }
          const item: UserConversation = {
            conversationId: id,
            createdAtMs: Number(meta[2]),
            lastActivityMs: Number(meta[3]),
            messageCount: Number(meta[4] ?? 0),
            summaryVersion: Number(meta[5] ?? 0),
          };
          if (owner.tenantId !== '') item.tenantId = owner.tenantId;
          valid.push(item);
        });
        start += ids.length;
        if (ids.length < pageSize) break;
        // Index scores lag real activity by at most the refresh interval, so once the count-th best conversation is
        // newer than anything unread could be, the answer is exact.
        if (valid.length >= count) {
          valid.sort((a, b) => b.lastActivityMs - a.lastActivityMs);
          const lowestUnread = Number(page[page.length - 1]);
          if ((valid[count - 1]?.lastActivityMs ?? 0) >= lowestUnread + this.indexRefreshMs) break;
        }
      }
      if (stale.length > 0) {
        await this.pruneIndex(index, stale).catch(() => undefined);
      }
      valid.sort((a, b) => b.lastActivityMs - a.lastActivityMs);
      return valid.slice(0, count);
    });
  }

  /**
   * Right to erasure: removes every conversation of the user (and tenant) and the user's index, and reports what it
   * removed. By default it also scans every master, so conversations the index misses are found too; a scan that
   * cannot reach every slot fails with `E_INCOMPLETE_SCAN` before anything is deleted.
   */
  deleteUserConversations(
    userId: string,
    options: DeleteUserConversationsOptions = {},
  ): Promise<ErasureReport> {
    return this.measure('delete_user_conversations', async () => {
      const owner = this.validOwner({ userId, tenantId: options.tenantId });
      const thorough = options.thorough ?? true;
      const index = this.keys.userIndex(owner.userId, owner.tenantId);
      const candidates = new Set<string>();
      // The scan runs first: when it cannot cover every slot it fails before anything is read or deleted.
      if (thorough) {
        for await (const batch of this.scanBatches(`${this.keys.everything().slice(0, -1)}meta:*`)) {
          const metas = await Promise.all(batch.map((key) => this.redis.hmget(key, 'uid', 'tid')));
          metas.forEach((meta, i) => {
            if (meta[0] !== owner.userId || (meta[1] ?? '') !== owner.tenantId) return;
            const parsed = this.keys.parse(batch[i] as string);
            if (parsed?.kind === 'meta') candidates.add(parsed.conversationId);
          });
        }
      }
      for (const id of await this.redis.zrange(index, 0, -1)) candidates.add(id);
      const conversationIds: string[] = [];
      let keysDeleted = 0;
      await inBatches([...candidates], async (id) => {
        const keys = this.keys.conversation(id);
        const reply = await this.runner.run(
          DELETE,
          [keys.meta, keys.messages, keys.intents],
          ['1', owner.userId, owner.tenantId, '0'],
        );
        const status = text(reply[0]);
        if (status === 'OK') {
          conversationIds.push(id);
          keysDeleted += num(reply[3]);
        } else if (status === 'NOTFOUND') {
          keysDeleted += num(reply[1]);
        }
      });
      keysDeleted += await this.redis.unlink(index);
      conversationIds.sort();
      const report: ErasureReport = {
        userId: owner.userId,
        conversationIds,
        conversationsDeleted: conversationIds.length,
        keysDeleted,
        scanned: thorough,
      };
      if (owner.tenantId !== '') report.tenantId = owner.tenantId;
      return report;
    });
  }

  private async *scanBatches(pattern: string): AsyncGenerator<string[]> {
    let batch: string[] = [];
    for await (const key of scanKeys(this.redis, pattern, { count: 500 })) {
      batch.push(key);
      if (batch.length >= SCAN_BATCH) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  /**
   * Reconciles the store across every master: re-adds index entries that an interrupted write missed, removes entries
   * of conversations that are gone, removes message lists whose meta hash was evicted, and gives a TTL to any key of
   * the store that lacks one. Safe to run at any time and from several processes (every step is idempotent).
   */
  cleanup(): Promise<CleanupReport> {
    return this.measure('cleanup', async () => {
      const report: CleanupReport = {
        scannedKeys: 0,
        conversations: 0,
        indexEntriesRepaired: 0,
        indexEntriesRemoved: 0,
        orphanKeysRemoved: 0,
        ttlsRepaired: 0,
      };
      for await (const batch of this.scanBatches(this.keys.everything())) {
        report.scannedKeys += batch.length;
        await Promise.all(batch.map((key) => this.reconcileKey(key, report)));
      }
      return report;
    });
  }

  private async reconcileKey(key: string, report: CleanupReport): Promise<void> {
    const parsed = this.keys.parse(key);
    if (parsed === undefined) return;
    if (parsed.kind === 'meta') {
      const [meta, pttl] = await Promise.all([
        this.redis.hmget(key, 'uid', 'tid', 'updated'),
        this.redis.pttl(key),
      ]);
      if (meta[0] === null || meta[0] === undefined) return;
      report.conversations++;
      if (pttl === -1) {
        await this.redis.pexpire(key, this.ttlMs);
        report.ttlsRepaired++;
      }
      const index = this.keys.userIndex(meta[0], meta[1] ?? '');
      const score = await this.redis.zscore(index, parsed.conversationId);
      const updated = Number(meta[2] ?? 0);
      if (score === null || Number(score) < updated - this.indexRefreshMs) {
        await this.touchIndex(
          parsed.conversationId,
          meta[0],
          meta[1] ?? '',
          updated,
          pttl > 0 ? pttl : this.ttlMs,
        );
        report.indexEntriesRepaired++;
      }
      return;
    }
    if (parsed.kind === 'user') {
      const [entries, pttl] = await Promise.all([
        this.redis.zrange(key, 0, -1, 'WITHSCORES'),
        this.redis.pttl(key),
      ]);
      const members = entries.filter((_, i) => i % 2 === 0);
      if (pttl === -1) {
        await this.redis.pexpire(key, this.ttlMs + this.indexRefreshMs);
        report.ttlsRepaired++;
      }
      const metas = await Promise.all(
        members.map((id) => this.redis.hmget(this.keys.conversation(id).meta, 'uid', 'tid')),
      );
      const gone = members.flatMap((id, i) =>
        metas[i]?.[0] !== parsed.userId || (metas[i]?.[1] ?? '') !== parsed.tenantId
          ? [id, entries[i * 2 + 1] as string]
          : [],
      );
      if (gone.length > 0) report.indexEntriesRemoved += await this.pruneIndex(key, gone);
      return;
    }
    const keys = this.keys.conversation(parsed.conversationId);
    const reply = await this.runner.run(DELETE, [keys.meta, keys.messages, keys.intents], ['0', '', '', '1']);
    if (text(reply[0]) === 'NOTFOUND') {
      report.orphanKeysRemoved += num(reply[1]);
      return;
    }
    if ((await this.redis.pttl(key)) === -1) {
      // A list without TTL under a live conversation: align it with its meta hash.
      const metaTtl = await this.redis.pttl(keys.meta);
      await this.redis.pexpire(key, metaTtl > 0 ? metaTtl : this.ttlMs);
      report.ttlsRepaired++;
    }
  }

  /** Marks the store closed: later calls fail with `E_STORE_CLOSED`. The Redis client is yours and stays open. */
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Runs `work` over `items`, at most 50 at a time: erasure of a user with thousands of conversations stays gentle. */
async function inBatches<T>(items: readonly T[], work: (item: T) => Promise<void>, size = 50): Promise<void> {
  for (let index = 0; index < items.length; index += size) {
    await Promise.all(items.slice(index, index + size).map(work));
  }
}

function resultOf(error: ConversationError): Result {
  switch (error.code) {
    case 'E_NOT_FOUND':
      return 'miss';
    case 'E_SUMMARY_CONFLICT':
      return 'conflict';
    case 'E_REDIS_UNAVAILABLE':
    case 'E_MAYBE_APPLIED':
    case 'E_INCOMPLETE_SCAN':
    case 'E_DECODE':
      return 'error';
    default:
      return 'rejected';
  }
}

/**
 * Creates a conversation store on any ioredis `Redis | Cluster`. Nothing connects and nothing is sent until the
 * first call.
 * @example
 * const store = createConversationStore({ redis, ttlSeconds: 3600, maxMessages: 50 });
 * await store.addMessage(conversationId, { role: 'user', content: 'Hi' }, { owner: { userId } });
 */
export function createConversationStore(options: ConversationStoreOptions): ConversationStore {
  return new ConversationStore(options);
}
