// Error types become the `error_type` label, so they must come from a small fixed set. Redis reply errors carry
// their kind as the first upper-case word (WRONGTYPE, NOSCRIPT, MOVED…); client-side failures are mapped by message.
const REPLY_PREFIX = /^([A-Z][A-Z_]{1,23})\b/;

const CLIENT_ERRORS: ReadonlyArray<[RegExp, string]> = [
  [/^Command timed out/, 'timeout'],
  [/^Connection is closed/, 'connection_closed'],
  [/enableOfflineQueue options is false/, 'offline'],
  [/^Too many Cluster redirections/, 'max_redirections'],
  [/^Reached the max retries per request limit/, 'max_retries'],
  [/^Failed to refresh slots cache/, 'cluster_unavailable'],
  [/^None of startup nodes is available/, 'cluster_unavailable'],
  [/^Cluster isn't ready and enableOfflineQueue options is false/, 'offline'],
  [/^This Redis client was closed/, 'client_closed'],
  [/only subscriber commands may be used/, 'subscriber_mode'],
];

/** Maps any error to a short, low-cardinality `error_type` label value. */
export function errorType(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown';
  const message = error.message;
  if (error.name === 'ReplyError') {
    const match = REPLY_PREFIX.exec(message);
    return match?.[1] ?? 'ERR';
  }
  for (const [pattern, type] of CLIENT_ERRORS) {
    if (pattern.test(message)) return type;
  }
  return error.name === 'Error' ? 'client_error' : error.name.slice(0, 40);
}
