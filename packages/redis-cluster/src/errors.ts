const marker = Symbol.for('@austa/redis-cluster.error');

/** Stable error codes. Match on `error.code`, never on the message text. */
export type RedisErrorCode =
  | 'E_INVALID_CONFIG'
  | 'E_INVALID_ARGUMENT'
  | 'E_CLIENT_CLOSED'
  | 'E_REDIS_UNAVAILABLE';

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

export const errors = {
  AustaRedisError,
  RedisConfigError,
  RedisArgumentError,
  RedisClientClosedError,
  RedisUnavailableError,
} as const;
