// A registered symbol, not a class identity check: two copies of this package (duplicate installs, CJS next to ESM)
// must still recognise each other's errors.
const marker = Symbol.for('@austa/cache.error');

/** Stable error codes. Match on `error.code`, never on the message text. */
export type CacheErrorCode =
  | 'E_INVALID_CONFIG'
  | 'E_INVALID_KEY'
  | 'E_INVALID_TAG'
  | 'E_INVALID_PATTERN'
  | 'E_INVALID_TTL'
  | 'E_INVALID_ARGUMENT'
  | 'E_UNSERIALIZABLE'
  | 'E_VALUE_TOO_LARGE'
  | 'E_REDIS_UNAVAILABLE'
  | 'E_FACTORY_TIMEOUT'
  | 'E_CACHE_CLOSED'
  | 'E_INCOMPLETE_SCAN';

/**
 * Base class of every error `@austa/cache` throws. `AustaCacheError.isInstance(error)` works across duplicate
 * installs, where `instanceof` would not.
 */
export class AustaCacheError extends Error {
  readonly [marker] = true;
  /** Stable, machine-readable error code. */
  readonly code: CacheErrorCode;

  constructor(code: CacheErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AustaCacheError';
    this.code = code;
  }

  /** True for any error thrown by any copy of `@austa/cache`. */
  static isInstance(error: unknown): error is AustaCacheError {
    return typeof error === 'object' && error !== null && (error as { [marker]?: unknown })[marker] === true;
  }
}

/** `createCache` options that cannot work. Thrown by the factory, before anything connects. */
export class CacheConfigError extends AustaCacheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_INVALID_CONFIG', message, options);
    this.name = 'CacheConfigError';
  }
}

/**
 * A caller passed something the cache cannot store or look up: a bad key, tag, pattern, TTL or option, a value that
 * cannot be serialized or is over the cap. Thrown before anything is sent to Redis, so nothing was written.
 */
export class CacheInputError extends AustaCacheError {
  constructor(
    code:
      | 'E_INVALID_KEY'
      | 'E_INVALID_TAG'
      | 'E_INVALID_PATTERN'
      | 'E_INVALID_TTL'
      | 'E_INVALID_ARGUMENT'
      | 'E_UNSERIALIZABLE'
      | 'E_VALUE_TOO_LARGE',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'CacheInputError';
  }
}

/**
 * Redis did not answer in time, refused the connection, or the circuit breaker is open. Reads never throw this (they
 * degrade to a miss or a stale value); writes and invalidations do, because the caller must know the change may not
 * have happened. `reason` says which.
 */
export class CacheUnavailableError extends AustaCacheError {
  readonly reason: 'timeout' | 'circuit_open' | 'connection' | 'redis_error';

  constructor(
    message: string,
    reason: 'timeout' | 'circuit_open' | 'connection' | 'redis_error',
    options?: { cause?: unknown },
  ) {
    super('E_REDIS_UNAVAILABLE', message, options);
    this.name = 'CacheUnavailableError';
    this.reason = reason;
  }
}

/** The factory of `getOrSet` ran past its hard timeout and no stale value could be served. */
export class FactoryTimeoutError extends AustaCacheError {
  constructor(message: string) {
    super('E_FACTORY_TIMEOUT', message);
    this.name = 'FactoryTimeoutError';
  }
}

/** A call after `close()`. Create a new cache. */
export class CacheClosedError extends AustaCacheError {
  constructor() {
    super('E_CACHE_CLOSED', 'This cache was closed with close(); create a new cache to use it again.');
    this.name = 'CacheClosedError';
  }
}

/**
 * `clear()` or `deletePattern()` could not reach every hash slot of the cluster, so it stopped instead of reporting
 * a partial result. Keys it had already found may have been deleted. Retry once the cluster is healthy.
 */
export class CacheIncompleteScanError extends AustaCacheError {
  /** The slot ranges (inclusive) that were not scanned. */
  readonly uncoveredSlots: Array<[number, number]>;

  constructor(message: string, uncoveredSlots: Array<[number, number]>, options?: { cause?: unknown }) {
    super('E_INCOMPLETE_SCAN', message, options);
    this.name = 'CacheIncompleteScanError';
    this.uncoveredSlots = uncoveredSlots;
  }
}

export const errors = {
  AustaCacheError,
  CacheConfigError,
  CacheInputError,
  CacheUnavailableError,
  FactoryTimeoutError,
  CacheClosedError,
  CacheIncompleteScanError,
} as const;
