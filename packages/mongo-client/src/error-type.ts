// Error types become the `error_type` label, so they come from small fixed sets: the server's code names (a few
// hundred, fixed per server version) and the driver's error classes. Never a message: messages quote values
// (a duplicate-key error names the key), and values may be health data.

const DRIVER_ERRORS: Readonly<Record<string, string>> = {
  MongoNetworkTimeoutError: 'network_timeout',
  MongoNetworkError: 'network',
  MongoServerSelectionError: 'server_selection',
  MongoOperationTimeoutError: 'timeout',
  MongoPoolClearedError: 'pool_cleared',
  MongoWaitQueueTimeoutError: 'pool_timeout',
  MongoTopologyClosedError: 'client_closed',
  MongoNotConnectedError: 'client_closed',
  MongoExpiredSessionError: 'session_expired',
  MongoTransactionError: 'transaction',
};

// Write errors inside an `ok: 1` reply carry a code and, on most servers, no code name.
const WRITE_ERROR_NAMES: Readonly<Record<number, string>> = {
  2: 'BadValue',
  11000: 'DuplicateKey',
  11001: 'DuplicateKey',
  121: 'DocumentValidationFailure',
  112: 'WriteConflict',
  66: 'ImmutableField',
  14: 'TypeMismatch',
  50: 'MaxTimeMSExpired',
  13: 'Unauthorized',
  10334: 'BSONObjectTooLarge',
};

const CODE_NAME = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

function codeNameOf(error: { codeName?: unknown; code?: unknown }): string | undefined {
  if (typeof error.codeName === 'string' && CODE_NAME.test(error.codeName)) return error.codeName;
  if (typeof error.code === 'number') return WRITE_ERROR_NAMES[error.code] ?? `code_${error.code}`;
  return undefined;
}

/** Maps any error to a short, low-cardinality `error_type` label value. */
export function errorType(error: unknown): string {
  if (typeof error !== 'object' || error === null) return 'unknown';
  const name = (error as { name?: unknown }).name;
  if (typeof name === 'string') {
    const driver = DRIVER_ERRORS[name];
    if (driver !== undefined) return driver;
  }
  const code = codeNameOf(error as { codeName?: unknown; code?: unknown });
  if (code !== undefined) return code;
  if (typeof name !== 'string' || name === 'Error') return 'client_error';
  return CODE_NAME.test(name) ? name : 'client_error';
}

interface WriteReply {
  writeErrors?: ReadonlyArray<{ code?: unknown; codeName?: unknown }>;
  writeConcernError?: { code?: unknown; codeName?: unknown };
}

/**
 * The error type of a reply the server sent with `ok: 1` that still reports a failed write: the driver emits
 * `commandSucceeded` for it and then throws at the call site (a duplicate key on `insertOne`, for one).
 * `''` when the write succeeded.
 */
export function writeReplyErrorType(reply: unknown): string {
  if (typeof reply !== 'object' || reply === null) return '';
  const { writeErrors, writeConcernError } = reply as WriteReply;
  if (Array.isArray(writeErrors) && writeErrors.length > 0) {
    return codeNameOf(writeErrors[0] ?? {}) ?? 'WriteError';
  }
  if (typeof writeConcernError === 'object' && writeConcernError !== null) {
    return codeNameOf(writeConcernError) ?? 'WriteConcernError';
  }
  return '';
}
