// The one place that reads ioredis' and Redis' error messages. Error types become the `error_type` label, so they
// come from a small fixed set: Redis reply errors carry their kind as the first upper-case word (WRONGTYPE,
// NOSCRIPT, MOVED…); client-side failures are mapped by message.
const REPLY_PREFIX = /^([A-Z][A-Z_]{1,23})\b/;

/** Message of the error a command gets when its time is up (the same words ioredis uses). */
export const TIMEOUT_MESSAGE = 'Command timed out';

const CLIENT_ERRORS: ReadonlyArray<[RegExp, string]> = [
  [/^Command timed out/, 'timeout'],
  [/^Connection is closed/, 'connection_closed'],
  [/enableOfflineQueue options? is false/, 'offline'],
  [/^Too many Cluster redirections/, 'max_redirections'],
  [/^Reached the max retries per request limit/, 'max_retries'],
  [/^Failed to refresh slots cache/, 'cluster_unavailable'],
  [/^None of startup nodes is available/, 'cluster_unavailable'],
  [/^Cluster is ended/, 'cluster_unavailable'],
  [/^This Redis client was closed/, 'client_closed'],
  [/only subscriber commands may be used/, 'subscriber_mode'],
  [/^Transaction aborted by WATCH/, 'watch_aborted'],
  [/^The connection closed after .* was sent/, 'maybe_applied'],
];

/**
 * The error kinds Redis itself replies with. Scripts and modules can reply with any upper-case word; those are
 * recorded as `other`, so a script that makes up codes cannot flood the `error_type` label.
 */
const REPLY_KINDS = new Set([
  'ERR',
  'WRONGTYPE',
  'NOSCRIPT',
  'MOVED',
  'ASK',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'CROSSSLOT',
  'LOADING',
  'BUSY',
  'BUSYKEY',
  'BUSYGROUP',
  'NOGROUP',
  'NOAUTH',
  'WRONGPASS',
  'NOPERM',
  'NOPROTO',
  'READONLY',
  'MASTERDOWN',
  'MISCONF',
  'EXECABORT',
  'OOM',
  'NOREPLICAS',
  'NOTBUSY',
  'UNBLOCKED',
  'UNKILLABLE',
  'NOTFOUND',
]);

/** Maps any error to a short, low-cardinality `error_type` label value. */
export function errorType(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown';
  const message = error.message;
  if (error.name === 'ReplyError') {
    const kind = REPLY_PREFIX.exec(message)?.[1];
    if (kind === undefined) return 'ERR';
    return REPLY_KINDS.has(kind) ? kind : 'other';
  }
  for (const [pattern, type] of CLIENT_ERRORS) {
    if (pattern.test(message)) return type;
  }
  return error.name === 'Error' ? 'client_error' : error.name.slice(0, 40);
}

/** What a cluster does with an error before it gives up on a command: follow it, retry it, or nothing. */
export type ClusterErrorKind = 'moved' | 'ask' | 'tryagain' | 'clusterdown' | 'connection_closed';

/** The cluster handling an error message triggers in ioredis (`handleError`), if any. */
export function clusterErrorKind(message: string): ClusterErrorKind | undefined {
  if (message.startsWith('MOVED ')) return 'moved';
  if (message.startsWith('ASK ')) return 'ask';
  if (message.startsWith('TRYAGAIN')) return 'tryagain';
  if (message.startsWith('CLUSTERDOWN')) return 'clusterdown';
  if (message.startsWith('Connection is closed')) return 'connection_closed';
  return undefined;
}

/** True for the NOSCRIPT reply an EVALSHA gets when the server does not have the script (after a restart). */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.includes('NOSCRIPT');
}

/**
 * Drops the arguments ioredis hangs on a failed command's error (`error.command.args`), keeping the command's name:
 * the arguments are keys and values (user ids, message bodies, PHI unless encrypted), and a store's error keeps the
 * ioredis error as its `cause`, which loggers print. Changes the error in place and returns it.
 */
export function withoutCommandArguments<E>(error: E): E {
  const holder = error as { command?: { name?: unknown } } | null;
  if (typeof holder === 'object' && holder !== null && holder.command !== undefined) {
    holder.command = { name: holder.command?.name };
  }
  return error;
}
