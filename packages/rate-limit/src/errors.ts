const marker = Symbol.for('@austa/rate-limit.error');

/** Stable error codes. Match on `error.code`, never on the message text. */
export type RateLimitErrorCode =
  | 'E_INVALID_CONFIG'
  | 'E_INVALID_KEY'
  | 'E_INVALID_COST'
  | 'E_COST_EXCEEDS_LIMIT'
  | 'E_UNKNOWN_STRATEGY'
  | 'E_INVALID_ARGUMENT'
  | 'E_REDIS_UNAVAILABLE'
  | 'E_TIMEOUT'
  | 'E_CLOSED';

/**
 * Base class of every error this package throws. `isInstance` works across two installed copies of the
 * package, where `instanceof` would not.
 */
export class AustaRateLimitError extends Error {
  readonly code: RateLimitErrorCode;

  constructor(code: RateLimitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AustaRateLimitError';
    this.code = code;
    Object.defineProperty(this, marker, { value: true });
  }

  static isInstance(error: unknown): error is AustaRateLimitError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

/** The limiter's options, or a limit's settings, cannot work. Nothing was sent to Redis. */
export class RateLimitConfigError extends AustaRateLimitError {
  constructor(message: string, code: 'E_INVALID_CONFIG' | 'E_UNKNOWN_STRATEGY' = 'E_INVALID_CONFIG') {
    super(code, message);
    this.name = 'RateLimitConfigError';
  }
}

/** A key, cost or duration a caller passed is unusable. Nothing was sent to Redis. */
export class RateLimitArgumentError extends AustaRateLimitError {
  constructor(
    code: 'E_INVALID_KEY' | 'E_INVALID_COST' | 'E_COST_EXCEEDS_LIMIT' | 'E_INVALID_ARGUMENT',
    message: string,
  ) {
    super(code, message);
    this.name = 'RateLimitArgumentError';
  }
}

/**
 * Redis failed or did not answer within `timeoutMs`. Thrown by the operations that have no failure policy
 * (`getStatus`, `reset`, `block`, `unblock`, `isBlocked`, `cleanup`); `checkLimit` answers by its policy instead.
 */
export class RateLimitRedisError extends AustaRateLimitError {
  constructor(code: 'E_REDIS_UNAVAILABLE' | 'E_TIMEOUT', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'RateLimitRedisError';
  }
}

/** The limiter was closed with `close()`; create a new one. */
export class RateLimiterClosedError extends AustaRateLimitError {
  constructor() {
    super('E_CLOSED', 'This rate limiter was closed with close(); create a new one.');
    this.name = 'RateLimiterClosedError';
  }
}

export const errors = {
  AustaRateLimitError,
  RateLimitConfigError,
  RateLimitArgumentError,
  RateLimitRedisError,
  RateLimiterClosedError,
} as const;
