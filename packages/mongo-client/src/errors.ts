// A registered symbol, not a class identity check: two installed copies of this package (duplicate installs, CJS
// next to ESM) must still recognise each other's errors.
const marker = Symbol.for('@austa/mongo-client.error');

/** Stable error codes. Match on `error.code`, never on the message text. */
export type MongoClientErrorCode =
  | 'E_INVALID_CONFIG'
  | 'E_INVALID_ARGUMENT'
  | 'E_UNSAFE_FILTER'
  | 'E_CLIENT_CLOSED'
  | 'E_CHANGE_STREAM_FATAL'
  | 'E_TOKEN_STORE';

/**
 * Base class of every error this package throws. `AustaMongoError.isInstance(error)` works across two installed
 * copies of the package, where `instanceof` would not. Errors of the MongoDB driver pass through unchanged.
 */
export class AustaMongoError extends Error {
  readonly code: MongoClientErrorCode;

  constructor(code: MongoClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AustaMongoError';
    this.code = code;
    Object.defineProperty(this, marker, { value: true });
  }

  static isInstance(error: unknown): error is AustaMongoError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

function hasCode(error: unknown, code: MongoClientErrorCode): boolean {
  return AustaMongoError.isInstance(error) && error.code === code;
}

/** The options cannot work: no URL and no client, a URL that is not `mongodb://`, a negative pool size… */
export class MongoConfigError extends AustaMongoError {
  declare readonly code: 'E_INVALID_CONFIG';

  constructor(message: string, options?: { cause?: unknown }) {
    super('E_INVALID_CONFIG', message, options);
    this.name = 'MongoConfigError';
  }

  static override isInstance(error: unknown): error is MongoConfigError {
    return hasCode(error, 'E_INVALID_CONFIG');
  }
}

/** A caller passed a value the method cannot use (an empty collection name, a pipeline that is not an array…). Nothing was sent. */
export class MongoArgumentError extends AustaMongoError {
  declare readonly code: 'E_INVALID_ARGUMENT';

  constructor(message: string) {
    super('E_INVALID_ARGUMENT', message);
    this.name = 'MongoArgumentError';
  }

  static override isInstance(error: unknown): error is MongoArgumentError {
    return hasCode(error, 'E_INVALID_ARGUMENT');
  }
}

/**
 * `sanitizeFilter` found an operator where user input should only hold values (`{ email: { $ne: null } }`), or a
 * server-side JavaScript operator. The message names the path, never the value (it may be health data).
 */
export class UnsafeFilterError extends AustaMongoError {
  declare readonly code: 'E_UNSAFE_FILTER';
  /** Dotted path of the offending key, e.g. `email.$ne` or `$where`. */
  readonly path: string;

  constructor(message: string, path: string) {
    super('E_UNSAFE_FILTER', message);
    this.name = 'UnsafeFilterError';
    this.path = path;
  }

  static override isInstance(error: unknown): error is UnsafeFilterError {
    return hasCode(error, 'E_UNSAFE_FILTER');
  }
}

/** The client was closed with `close()`; create a new one. */
export class MongoClientClosedError extends AustaMongoError {
  declare readonly code: 'E_CLIENT_CLOSED';

  /** `message` says what was closed when it is not the client (a change stream that ended before it opened). */
  constructor(message = 'This client was closed with close(); create a new one with createMongoClient().') {
    super('E_CLIENT_CLOSED', message);
    this.name = 'MongoClientClosedError';
  }

  static override isInstance(error: unknown): error is MongoClientClosedError {
    return hasCode(error, 'E_CLIENT_CLOSED');
  }
}

/** Why a change stream cannot go on by restarting. */
export type ChangeStreamFatalReason =
  /** The saved resume point is no longer in the oplog (ChangeStreamHistoryLost, CappedPositionLost). */
  | 'history_lost'
  /** The pipeline removed or changed `_id`, so events carry no resume token. */
  | 'missing_resume_token'
  /** The server is not a replica set or sharded cluster: a standalone `mongod` has no oplog. */
  | 'standalone'
  /** The saved token is not a resume token of this stream (InvalidResumeToken), or the token store holds garbage. */
  | 'invalid_resume_token'
  /** An event is larger than 16 MiB (BSONObjectTooLarge); add `$changeStreamSplitLargeEvent` or drop fields. */
  | 'event_too_large'
  /** The server rejected the pipeline or options (BadValue, FailedToParse, unknown stage…). */
  | 'invalid_pipeline'
  /** The user lacks the `changeStream`/`find` privilege on the namespace. */
  | 'unauthorized'
  /** The server said the stream cannot continue (ChangeStreamFatalError, code 280). */
  | 'server_fatal';

/**
 * A change stream stopped for good: restarting would fail the same way or skip events. The stream's `done` promise
 * resolves with `{ reason: 'fatal', error }`, a metric is counted and one error line is logged.
 */
export class FatalChangeStreamError extends AustaMongoError {
  declare readonly code: 'E_CHANGE_STREAM_FATAL';
  readonly reason: ChangeStreamFatalReason;
  /** The stream name (token store key). */
  readonly stream: string;

  constructor(
    stream: string,
    reason: ChangeStreamFatalReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('E_CHANGE_STREAM_FATAL', message, options);
    this.name = 'FatalChangeStreamError';
    this.reason = reason;
    this.stream = stream;
  }

  static override isInstance(error: unknown): error is FatalChangeStreamError {
    return hasCode(error, 'E_CHANGE_STREAM_FATAL');
  }
}

/** A token store could not serialize, store or read a resume token. */
export class TokenStoreError extends AustaMongoError {
  declare readonly code: 'E_TOKEN_STORE';

  constructor(message: string, options?: { cause?: unknown }) {
    super('E_TOKEN_STORE', message, options);
    this.name = 'TokenStoreError';
  }

  static override isInstance(error: unknown): error is TokenStoreError {
    return hasCode(error, 'E_TOKEN_STORE');
  }
}

/** Every error class of the package, for `instanceof`-free matching. */
export const errors = Object.freeze({
  AustaMongoError,
  MongoConfigError,
  MongoArgumentError,
  UnsafeFilterError,
  MongoClientClosedError,
  FatalChangeStreamError,
  TokenStoreError,
});
