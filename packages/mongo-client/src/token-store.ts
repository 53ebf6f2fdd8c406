import { BSON, type ResumeToken } from 'mongodb';
import { TokenStoreError } from './errors.js';
import { assertStreamName } from './validation.js';

export type { ResumeToken };

/**
 * Where a change stream keeps the resume token of the last event it handled, keyed by stream name. A stream loads
 * the token when it starts (and resumes after it) and saves one after each handled event, so a restarted process
 * receives every event that happened while it was down, as long as the oplog still holds it.
 *
 * One consumer per stream name: two processes running a stream of the same name share one token and both receive
 * every event. This package does not elect a leader.
 */
export interface ResumeTokenStore {
  /** The saved token, or `undefined` when the stream has none yet. */
  load(stream: string): Promise<ResumeToken | undefined>;
  /** Saves the token, replacing the previous one. */
  save(stream: string, token: ResumeToken): Promise<void>;
  /** Forgets the stream's token: its next start begins at the current time. */
  delete(stream: string): Promise<void>;
}

/** Default lifetime of a saved token in the Redis and Mongo stores: 30 days, longer than most oplog windows. */
export const DEFAULT_TOKEN_TTL_SECONDS = 30 * 24 * 60 * 60;

/**
 * Largest serialized token accepted. Tokens are a few hundred bytes, growing with the document key they encode;
 * anything this big is not a token.
 */
export const MAX_TOKEN_BYTES = 64 * 1024;

/** A resume token as canonical Extended JSON, so BSON types (Binary on old servers) survive a round trip. */
export function serializeToken(token: ResumeToken): string {
  if (typeof token !== 'object' || token === null || Array.isArray(token)) {
    throw new TokenStoreError('A resume token must be a document such as { _data: "82…" }.');
  }
  let text: string;
  try {
    text = BSON.EJSON.stringify(token as BSON.Document, { relaxed: false });
  } catch (cause) {
    throw new TokenStoreError('The resume token cannot be serialized as Extended JSON.', { cause });
  }
  if (Buffer.byteLength(text) > MAX_TOKEN_BYTES) {
    throw new TokenStoreError(
      `The resume token is larger than ${MAX_TOKEN_BYTES} bytes; it is not a resume token.`,
    );
  }
  return text;
}

/** Reads a token written by {@link serializeToken}; a `TokenStoreError` for anything else. */
export function parseToken(text: string): ResumeToken {
  let token: unknown;
  try {
    token = BSON.EJSON.parse(text, { relaxed: false });
  } catch (cause) {
    throw new TokenStoreError(
      'The stored resume token is not valid Extended JSON; delete it to start over.',
      {
        cause,
      },
    );
  }
  if (typeof token !== 'object' || token === null || Array.isArray(token)) {
    throw new TokenStoreError('The stored resume token is not a document; delete it to start over.');
  }
  return token;
}

/** A string that is equal for equal tokens, to skip saving a token that did not change. */
export function tokenKey(token: ResumeToken): string {
  const data = (token as { _data?: unknown } | null)?._data;
  if (typeof data === 'string') return data;
  return BSON.EJSON.stringify(token as BSON.Document, { relaxed: false });
}

/**
 * A token store in this process's memory: streams resume across restarts of the stream (after a fatal error,
 * `close()` and a new stream), not across restarts of the process. The default when no store is given.
 */
export function createMemoryTokenStore(): ResumeTokenStore {
  const tokens = new Map<string, ResumeToken>();
  return {
    async load(stream) {
      assertStreamName(stream);
      return tokens.get(stream);
    },
    async save(stream, token) {
      assertStreamName(stream);
      serializeToken(token);
      tokens.set(stream, token);
    },
    async delete(stream) {
      assertStreamName(stream);
      tokens.delete(stream);
    },
  };
}
