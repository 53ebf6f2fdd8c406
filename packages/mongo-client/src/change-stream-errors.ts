import { type ChangeStreamFatalReason, TokenStoreError } from './errors.js';

/*
 * What to do when the driver gives up on a change stream. The driver already resumes once, by itself, after a
 * resumable error (the change-streams specification); an error reaching this package means that resume failed
 * (server selection during a failover, say) or the error was not resumable. Most such errors pass: the stream is
 * reopened after the last handled event, with backoff. The ones below cannot pass by reopening, or reopening would
 * skip events, so the stream stops and says why.
 */

// Server error codes, from the server's error_codes.yml.
const HISTORY_LOST_CODES = new Set([286 /* ChangeStreamHistoryLost */, 136 /* CappedPositionLost */]);
const CHANGE_STREAM_FATAL = 280;
const INVALID_RESUME_TOKEN = 260;
const STANDALONE = 40573; // "The $changeStream stage is only supported on replica sets"
const OBJECT_TOO_LARGE = 10334; // BSONObjectTooLarge
const UNAUTHORIZED = 13;
// The server rejected the request itself: the same pipeline and options will be rejected again.
const INVALID_REQUEST_CODES = new Set([
  2, // BadValue
  9, // FailedToParse
  14, // TypeMismatch
  40324, // unrecognized pipeline stage name
  40323, // a pipeline stage specification object must contain exactly one field
  16436, // unrecognized pipeline stage name (older servers)
  15983, // a pipeline stage specification object must contain exactly one field (older servers)
  40602, // $changeStream is only valid as the first stage in a pipeline
]);

// Resumable per the change-streams specification, for servers older than 4.4 (which send no error label).
const RESUMABLE_CODES = new Set([
  6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 13388, 234, 133, 43,
]);
const NETWORK_ERRORS = new Set([
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoServerSelectionError',
]);

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  errorLabels?: unknown;
  hasErrorLabel?: (label: string) => boolean;
}

function hasLabel(error: ErrorLike, label: string): boolean {
  if (typeof error.hasErrorLabel === 'function') {
    try {
      return error.hasErrorLabel(label);
    } catch {
      return false;
    }
  }
  return Array.isArray(error.errorLabels) && error.errorLabels.includes(label);
}

const CURSOR_NOT_FOUND = 43;

/**
 * True when the specification calls the error resumable; used to label the error metric. Network and server
 * selection errors are; CursorNotFound is (DRIVERS-1308). A server that labels its errors (4.4+) is taken at its
 * word: the `ResumableChangeStreamError` label decides, and a listed code without it is not resumable. Only an error
 * without any label (older servers) falls back on the code list, and `NonResumableChangeStreamError` always wins.
 */
export function isResumableChangeStreamError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const found = error as ErrorLike;
  if (typeof found.name === 'string' && NETWORK_ERRORS.has(found.name)) return true;
  if (hasLabel(found, 'NonResumableChangeStreamError')) return false;
  if (found.code === CURSOR_NOT_FOUND) return true;
  if (hasLabel(found, 'ResumableChangeStreamError')) return true;
  if (labelCount(found) > 0) return false;
  return typeof found.code === 'number' && RESUMABLE_CODES.has(found.code);
}

function labelCount(error: ErrorLike): number {
  return Array.isArray(error.errorLabels) ? error.errorLabels.length : 0;
}

/** Why reopening cannot help, or `undefined` when a restart from the last handled token is the right move. */
export function fatalReason(error: unknown): ChangeStreamFatalReason | undefined {
  if (TokenStoreError.isInstance(error)) return 'invalid_resume_token';
  if (typeof error !== 'object' || error === null) return undefined;
  const found = error as ErrorLike;
  const message = typeof found.message === 'string' ? found.message : '';
  if (found.name === 'MongoChangeStreamError') {
    // The driver's own check: an event arrived without `_id`, so there is no token to resume from.
    return 'missing_resume_token';
  }
  if (found.name === 'MongoInvalidArgumentError') return 'invalid_pipeline';
  const code = found.code;
  if (typeof code !== 'number') return undefined;
  if (HISTORY_LOST_CODES.has(code)) return 'history_lost';
  if (code === CHANGE_STREAM_FATAL) {
    if (/_id/.test(message)) return 'missing_resume_token';
    if (/resume token was not found|resume point may no longer be in the oplog/i.test(message))
      return 'history_lost';
    return 'server_fatal';
  }
  if (code === INVALID_RESUME_TOKEN) return 'invalid_resume_token';
  if (code === STANDALONE) return 'standalone';
  if (code === OBJECT_TOO_LARGE) return 'event_too_large';
  if (code === UNAUTHORIZED) return 'unauthorized';
  if (INVALID_REQUEST_CODES.has(code)) return 'invalid_pipeline';
  return undefined;
}

/** What an operator should do about each fatal reason; used in the error message and the log line. */
export const FATAL_ADVICE: Readonly<Record<ChangeStreamFatalReason, string>> = {
  history_lost:
    'the saved resume point is no longer in the oplog: events were lost. Resynchronise from the collection, delete the saved token, and consider a larger oplog.',
  missing_resume_token:
    'the pipeline removes or changes _id, which holds the resume token. Keep _id in $project, $replaceRoot and $addFields stages.',
  standalone:
    'change streams need a replica set or a sharded cluster; a standalone mongod has no oplog. A single-node replica set is enough.',
  invalid_resume_token:
    'the saved resume token does not belong to this stream (or the token store returned garbage). Delete the saved token to start from now.',
  event_too_large:
    'a change event exceeds 16 MiB. Add { $changeStreamSplitLargeEvent: {} } as the last stage (MongoDB 7.0+) or project fewer fields.',
  invalid_pipeline: 'the server rejected the pipeline or options; fix them and start the stream again.',
  unauthorized: 'the user lacks the changeStream and find privileges on this namespace.',
  server_fatal:
    'the server reported ChangeStreamFatalError; the stream cannot continue from its saved point.',
};
