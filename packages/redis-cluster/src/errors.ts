const marker = Symbol.for('@austa/redis-cluster.error');

/** Stable error codes. Match on `error.code`, never on the message text. */
export type RedisErrorCode =
  | 'E_INVALID_CONFIG'
  | 'E_INVALID_ARGUMENT'
  | 'E_CLIENT_CLOSED'
  | 'E_REDIS_UNAVAILABLE'
  | 'E_INCOMPLETE_SCAN';

/**
 * Base class of every error this package throws. `isInstance` works across two
 * installed copies of the package, where `instanceof` would not.
 */
export class AustaRedisError extends Error {
  readonly code: RedisErrorCode;

  constructor(code: RedisErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AustaRedisError';
    this.code = code;
    Object.defineProperty(this, marker, { value: true });
  }

  static isInstance(error: unknown): error is AustaRedisError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

/** The options cannot work: a missing address, a retry budget shorter than a failover, and so on. */
export class RedisConfigError extends AustaRedisError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_INVALID_CONFIG', message, options);
    this.name = 'RedisConfigError';
  }
}

/** A caller passed a value the method cannot use. Nothing was sent to Redis. */
export class RedisArgumentError extends AustaRedisError {
  constructor(message: string) {
    super('E_INVALID_ARGUMENT', message);
    this.name = 'RedisArgumentError';
  }
}

/** The client was closed with `close()`; create a new one. */
export class RedisClientClosedError extends AustaRedisError {
  constructor() {
    super(
      'E_CLIENT_CLOSED',
      'This Redis client was closed with close(); create a new client to send commands.',
    );
    this.name = 'RedisClientClosedError';
  }
}

/** Redis did not become reachable in time. Check the address, credentials, TLS and the server's health. */
export class RedisUnavailableError extends AustaRedisError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_REDIS_UNAVAILABLE', message, options);
    this.name = 'RedisUnavailableError';
  }
}

/**
 * A cluster-wide scan could not visit every hash slot: a slot range has no master in the slot map, or its master did
 * not answer. Nothing is returned as if it were complete; retry once the cluster is healthy (see `health()`).
 */
export class RedisIncompleteScanError extends AustaRedisError {
  /** The slot ranges (inclusive) that were not scanned. `[[0, 16383]]` on a standalone server that failed. */
  readonly uncoveredSlots: Array<[number, number]>;

  constructor(message: string, uncoveredSlots: Array<[number, number]>, options?: { cause?: unknown }) {
    super('E_INCOMPLETE_SCAN', message, options);
    this.name = 'RedisIncompleteScanError';
    this.uncoveredSlots = uncoveredSlots;
  }
}

export const errors = {
  AustaRedisError,
  RedisConfigError,
  RedisArgumentError,
  RedisClientClosedError,
  RedisUnavailableError,
  RedisIncompleteScanError,
} as const;
