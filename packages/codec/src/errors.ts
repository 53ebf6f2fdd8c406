// A registered symbol, not a class identity check: two copies of this package (duplicate installs, CJS next to
// ESM) must still recognise each other's errors.
const marker = Symbol.for('@austa/codec.error');

/** Stable error codes. Match on `error.code`, never on the message text. */
export type CodecErrorCode =
  | 'E_UNSERIALIZABLE'
  | 'E_VALUE_TOO_LARGE'
  | 'E_DECODE'
  | 'E_DECRYPT'
  | 'E_UNKNOWN_KEY'
  | 'E_INVALID_CONFIG'
  | 'E_INVALID_ARGUMENT';

/**
 * Base class of every error `@austa/codec` throws. `AustaCodecError.isInstance(error)` works across duplicate
 * installs, where `instanceof` would not.
 */
export class AustaCodecError extends Error {
  readonly [marker] = true;
  /** Stable, machine-readable error code. */
  readonly code: CodecErrorCode;

  constructor(code: CodecErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AustaCodecError';
    this.code = code;
  }

  /** True for any error thrown by any copy of `@austa/codec`. */
  static isInstance(error: unknown): error is AustaCodecError {
    return typeof error === 'object' && error !== null && (error as { [marker]?: unknown })[marker] === true;
  }
}

/**
 * A value could not be encoded or decoded: see `code`. Encoding errors (`E_UNSERIALIZABLE`, `E_VALUE_TOO_LARGE`)
 * are thrown before anything is returned, so a store that encodes first writes nothing. Decoding errors
 * (`E_DECODE`, `E_DECRYPT`, `E_UNKNOWN_KEY`) mean the stored bytes are not a value this codec can trust.
 * `createCodec` throws the subclass `CodecConfigError` (`E_INVALID_CONFIG`).
 */
export class CodecError extends AustaCodecError {
  constructor(code: CodecErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'CodecError';
  }
}

/** The options given to `createCodec` cannot work (a key of the wrong length, an unknown current key id…). */
export class CodecConfigError extends CodecError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_INVALID_CONFIG', message, options);
    this.name = 'CodecConfigError';
  }
}

export const errors = { AustaCodecError, CodecError, CodecConfigError } as const;
