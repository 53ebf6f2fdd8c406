// A registered symbol, not a class identity check: two copies of this package must recognise each other's errors.
const marker = Symbol.for('@austa/session.error');

/** Stable error codes. Match on `error.code`, never on the message text. */
export type SessionErrorCode =
  | 'E_INVALID_CONFIG'
  | 'E_INVALID_USER_ID'
  | 'E_INVALID_SESSION_ID'
  | 'E_INVALID_ARGUMENT'
  | 'E_UNSERIALIZABLE'
  | 'E_VALUE_TOO_LARGE'
  | 'E_SESSION_NOT_FOUND'
  | 'E_SESSION_EXISTS'
  | 'E_CONFLICT'
  | 'E_NOT_REPLICATED'
  | 'E_MAYBE_APPLIED'
  | 'E_REDIS_UNAVAILABLE'
  | 'E_INCOMPLETE_SCAN'
  | 'E_DECODE'
  | 'E_CLOSED';

/**
 * Every error `@austa/session` throws. `SessionError.isInstance(error)` works across duplicate installs, where
 * `instanceof` would not. When a call fails before Redis was reached (bad input), nothing was written.
 */
export class SessionError extends Error {
  readonly [marker] = true;
  /** Stable, machine-readable error code. */
  readonly code: SessionErrorCode;

  constructor(code: SessionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SessionError';
    this.code = code;
  }

  /** True for any error thrown by any copy of `@austa/session`. */
  static isInstance(error: unknown): error is SessionError {
    return typeof error === 'object' && error !== null && (error as { [marker]?: unknown })[marker] === true;
  }
}

export const errors = { SessionError } as const;
