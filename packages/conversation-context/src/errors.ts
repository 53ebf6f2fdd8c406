// A registered symbol, not a class identity check: two copies of this package (duplicate installs, CJS next to ESM)
// must still recognise each other's errors.
const marker = Symbol.for('@austa/conversation-context.error');

/** Stable error codes. Match on `error.code`, never on the message text. */
export type ConversationErrorCode =
  | 'E_INVALID_CONFIG'
  | 'E_INVALID_ARGUMENT'
  | 'E_INVALID_CONVERSATION_ID'
  | 'E_INVALID_USER_ID'
  | 'E_INVALID_ROLE'
  | 'E_INVALID_TTL'
  | 'E_MESSAGE_TOO_LARGE'
  | 'E_UNSERIALIZABLE'
  | 'E_NOT_FOUND'
  | 'E_OWNER_REQUIRED'
  | 'E_OWNERSHIP_MISMATCH'
  | 'E_PINNED_LIMIT'
  | 'E_TOO_MANY_ENTITIES'
  | 'E_SUMMARY_CONFLICT'
  | 'E_DECODE'
  | 'E_INCOMPLETE_SCAN'
  | 'E_REDIS_UNAVAILABLE'
  | 'E_MAYBE_APPLIED'
  | 'E_STORE_CLOSED';

export interface ConversationErrorOptions {
  cause?: unknown;
}

/**
 * Base class of every error `@austa/conversation-context` throws, with a stable `code`. `isInstance` works across
 * duplicate installs, where `instanceof` would not. Messages never contain message content, summaries or entity
 * values; they may name a conversation id.
 */
export class ConversationError extends Error {
  readonly [marker] = true;
  readonly code: ConversationErrorCode;

  constructor(code: ConversationErrorCode, message: string, options?: ConversationErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConversationError';
    this.code = code;
  }

  /** True for any error thrown by any copy of this package. */
  static isInstance(error: unknown): error is ConversationError {
    return typeof error === 'object' && error !== null && (error as { [marker]?: unknown })[marker] === true;
  }
}

/** A caller passed something the store cannot use. Nothing was written. */
export class ConversationInputError extends ConversationError {
  constructor(code: ConversationErrorCode, message: string, options?: ConversationErrorOptions) {
    super(code, message, options);
    this.name = 'ConversationInputError';
  }
}

/** The conversation does not exist (never created, expired, or deleted). */
export class ConversationNotFoundError extends ConversationError {
  readonly conversationId: string;

  constructor(conversationId: string) {
    super('E_NOT_FOUND', `Conversation ${JSON.stringify(conversationId)} does not exist (or has expired).`);
    this.name = 'ConversationNotFoundError';
    this.conversationId = conversationId;
  }
}

/**
 * The conversation belongs to another user or tenant than the caller said (`E_OWNERSHIP_MISMATCH`), or the store
 * requires an owner and none was given (`E_OWNER_REQUIRED`). Nothing was read or written.
 */
export class ConversationOwnershipError extends ConversationError {
  readonly conversationId: string;

  constructor(code: 'E_OWNERSHIP_MISMATCH' | 'E_OWNER_REQUIRED', conversationId: string, message: string) {
    super(code, message);
    this.name = 'ConversationOwnershipError';
    this.conversationId = conversationId;
  }
}

/** Redis failed or did not answer in time, a scan could not cover every slot, or the store was closed. */
export class ConversationStoreError extends ConversationError {
  constructor(code: ConversationErrorCode, message: string, options?: ConversationErrorOptions) {
    super(code, message, options);
    this.name = 'ConversationStoreError';
  }
}

export const errors = {
  ConversationError,
  ConversationInputError,
  ConversationNotFoundError,
  ConversationOwnershipError,
  ConversationStoreError,
} as const;
