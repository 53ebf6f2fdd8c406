import type { Codec } from '@austa/codec';
import type { Metrics } from '@austa/metrics';
import type { Cluster, Redis } from 'ioredis';
import type { MessageInput, StoredMessage } from './message.js';

/** Who a conversation belongs to. The tenant is part of the identity: the same user id in two tenants is two owners. */
export interface Owner {
  userId: string;
  tenantId?: string;
}

/** Per-call options of every operation on one conversation. */
export interface OwnerOptions {
  /**
   * The caller's identity. When given, the conversation must belong to exactly this user and tenant, or the call
   * fails with `E_OWNERSHIP_MISMATCH` and nothing is read or written. Required when the store has
   * `requireOwner: true` (the default).
   */
  owner?: Owner;
}

/** What the `redact` hook is given: which kind of value is about to be written, and the value. */
export type RedactKind = 'message' | 'summary' | 'entity' | 'intent' | 'context';

export interface RedactInfo {
  kind: RedactKind;
  conversationId: string;
}

/**
 * Runs before every write of content, on the value as the caller gave it, and returns what is stored instead: the
 * message object, the summary object (`{ text, upToSeq, metadata? }`: redact `text` and return the object), one
 * entity, the intent, the context data. Synchronous. Its result is validated again; if it throws, the call fails
 * with `E_INVALID_ARGUMENT` and nothing is written.
 */
export type RedactHook = (value: unknown, info: RedactInfo) => unknown;

export interface Logger {
  warn(message: string): void;
}

export interface ConversationStoreOptions {
  /** Any ioredis client: standalone `Redis` or `Cluster`. The store never closes it. */
  redis: Redis | Cluster;
  /** Sliding TTL of a conversation, in seconds: every write gives all its keys at least this long again. */
  ttlSeconds: number;
  /**
   * Most messages a conversation keeps; older ones are trimmed by addMessage (pinned and system ones are kept).
   * Default none; set this, `maxTokens` or both (with neither a conversation would grow without bound).
   */
  maxMessages?: number;
  /**
   * Token budget of a conversation's stored messages; older messages are trimmed to stay within it (kept messages and
   * the newest one are never trimmed, so they may exceed it). Default none.
   */
  maxTokens?: number;
  /** Counts a message's tokens (after `redact`). Default {@link estimateTokens}: ceil(characters / 4) + 4. */
  tokenCounter?: (message: MessageInput) => number;
  /** Runs before every write of content. See {@link RedactHook}. */
  redact?: RedactHook;
  /**
   * From `@austa/codec`. With encryption keys, message content, tool calls and results, metadata, summaries, entity
   * values, intents and context data are encrypted at rest. Default: a codec without encryption.
   */
  codec?: Codec;
  /** From `@austa/metrics`. Without it nothing is recorded. */
  metrics?: Metrics;
  /** Key prefix. Default `austa:conversation`. */
  prefix?: string;
  /** Absolute cap: a conversation expires this many seconds after it was created, however active. Default none. */
  maxLifetimeSeconds?: number;
  /**
   * Every operation on one conversation must name its `owner` (else `E_OWNER_REQUIRED`). Default true: conversation
   * ids come from clients and are untrusted.
   */
  requireOwner?: boolean;
  /** Largest stored message (encoded, encrypted), in bytes. Default 262144 (256 KiB). */
  maxMessageBytes?: number;
  /** System messages are never trimmed, like pinned ones. Default true. */
  keepSystemMessages?: boolean;
  /** How many intents the history keeps (the newest is the current intent). Default 20. */
  intentHistorySize?: number;
  /** Most entities per conversation. Default 200. */
  maxEntities?: number;
  /**
   * The per-user index (another hash slot) is written on creation and then at most once per this many seconds of
   * activity, so addMessage stays one round trip. Default 60.
   */
  indexRefreshSeconds?: number;
  /** Where index-update failures are reported (never with content). Default `console`. */
  logger?: Logger;
}

export interface AddMessageOptions extends OwnerOptions {
  /**
   * Makes a retried append safe: an append whose key is among the conversation's last 15 or more appends is not
   * appended again; it resolves to the first one's `seq` with `duplicate: true`. Retry an `E_MAYBE_APPLIED` (or any
   * failed) append with the same key. 1-256 characters, unique per message within the conversation (your message
   * id is a good key). Only the key is compared, not the content.
   */
  idempotencyKey?: string;
}

export interface AddMessageResult {
  /** The stored message (after redaction), with its `seq` and Redis timestamp. */
  message: StoredMessage;
  /** Messages this append trimmed, oldest first: fold them into a summary if you need them. */
  trimmed: StoredMessage[];
  /** Messages and tokens in the conversation now. */
  messageCount: number;
  tokenCount: number;
  /** True when this call created the conversation. */
  created: boolean;
  /**
   * True when an append with the same `idempotencyKey` (or the same call, re-sent by ioredis after a dropped
   * connection) was already stored: nothing was appended, `message.seq` is the stored one, and `trimmed` is empty (the
   * first append returned or lost what it trimmed).
   */
  duplicate: boolean;
}

export interface GetMessagesOptions extends OwnerOptions {
  /** Only messages with a greater `seq`: the ones a summary covering up to that seq does not include. */
  afterSeq?: number;
}

export interface IntentInput {
  name: string;
  /** 0 to 1. */
  confidence?: number;
  /** `seq` of the message the intent was detected in. */
  sourceMessageSeq?: number;
  metadata?: Record<string, unknown>;
}

export interface Intent extends IntentInput {
  /** When Redis recorded it, ms since the epoch. */
  recordedAtMs: number;
}

export type EntityType = 'string' | 'number' | 'boolean' | 'date' | 'json';

export interface EntityInput {
  /** Entities merge by name: a name given again replaces the earlier entity as a whole. */
  name: string;
  value: unknown;
  /** Inferred from the value when absent; checked against it when given. */
  type?: EntityType;
  /** 0 to 1. */
  confidence?: number;
  sourceMessageSeq?: number;
}

export interface Entity extends EntityInput {
  type: EntityType;
  updatedAtMs: number;
}

export interface SummaryInput {
  text: string;
  /** `seq` of the last message the summary covers: summary + messages after it rebuild the conversation. */
  upToSeq: number;
  metadata?: Record<string, unknown>;
}

export interface Summary extends SummaryInput {
  /** 1 for the first summary, +1 for every setSummary. */
  version: number;
  createdAtMs: number;
}

export interface SetSummaryOptions extends OwnerOptions {
  /** Write only if the current version is this one (0: no summary yet); else `E_SUMMARY_CONFLICT`. */
  expectedVersion?: number;
}

export interface SetContextInput {
  userId: string;
  tenantId?: string;
  /** Application data kept with the conversation (encrypted with the codec). `null` removes it. */
  data?: Record<string, unknown> | null;
}

export interface ConversationContext {
  conversationId: string;
  userId: string;
  tenantId?: string;
  data?: Record<string, unknown>;
  /** The newest intent, or null. */
  intent: Intent | null;
  /** Newest first, at most `intentHistorySize`. */
  intentHistory: Intent[];
  entities: Record<string, Entity>;
  summary: { version: number; upToSeq: number; createdAtMs: number } | null;
  messageCount: number;
  tokenCount: number;
  /** `seq` of the newest message (0 when none). */
  lastSeq: number;
  createdAtMs: number;
  lastActivityMs: number;
  /** Remaining time to live, in ms. */
  ttlMs: number;
}

export interface ConversationStats {
  messageCount: number;
  tokenCount: number;
  /** Stored messages by role. */
  roles: Record<string, number>;
  /** Messages ever added, and how many of them were trimmed. */
  addedMessages: number;
  trimmedMessages: number;
  /** Messages that are never trimmed: pinned ones, and system ones when `keepSystemMessages`. */
  keptMessages: number;
  firstActivityMs: number;
  lastActivityMs: number;
  /** 0 when there is no summary. */
  summaryVersion: number;
  ttlMs: number;
}

export interface UserConversation {
  conversationId: string;
  tenantId?: string;
  createdAtMs: number;
  lastActivityMs: number;
  messageCount: number;
  summaryVersion: number;
}

export interface CleanupReport {
  /** Keys the scan visited (every key under the prefix, on every master). */
  scannedKeys: number;
  conversations: number;
  /** Index entries added or raised to a conversation's last activity. */
  indexEntriesRepaired: number;
  /** Index entries of conversations that no longer exist (or belong to someone else). */
  indexEntriesRemoved: number;
  /** Message or intent lists whose meta hash is gone (evicted). */
  orphanKeysRemoved: number;
  /** Keys of this store found without a TTL, given one. */
  ttlsRepaired: number;
}

export interface ErasureReport {
  userId: string;
  tenantId?: string;
  /** Ids of the conversations removed. */
  conversationIds: string[];
  conversationsDeleted: number;
  /** Redis keys removed, the user index included. */
  keysDeleted: number;
  /** Whether every master was scanned (`thorough`), not only the user's index. */
  scanned: boolean;
}

export interface DeleteUserConversationsOptions {
  tenantId?: string;
  /**
   * Also scan every master for conversations of this user that the index misses (an index update lost in a
   * failover). Default true: erasure must be complete. Cost: one SCAN of the store's keys.
   */
  thorough?: boolean;
}
