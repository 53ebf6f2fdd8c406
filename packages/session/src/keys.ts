import * as crypto from 'node:crypto';
import { createHash, createHmac, randomFillSync } from 'node:crypto';
import { SessionError } from './errors.js';

/*
 * Key layout (every key of one user shares the hash tag `{<userRef>}`, so create+evict and revoke-all are one script):
 *   <prefix>:s:{<userRef>}:<sessionRef>  HASH   one session
 *   <prefix>:u:{<userRef>}               ZSET   the user's index: sessionRef -> absolute deadline (µs); no PHI
 *   <prefix>:n:{<userRef>}               STRING the user id, codec-encoded (encrypted when the codec encrypts), for audit
 *   <prefix>:p:{<ref22>}:<sessionRef>    STRING caller-supplied ids only: the userRef of the session
 * userRef = base64url(H("u\0" + userId)) cut to 22 characters (132 bits). A user id is never in a key name: it cannot
 * pick a slot, match another user's keys under SCAN, or leak through SLOWLOG / MONITOR.
 * sessionRef = base64url(H("s\0" + token)) (43 chars): the only form of a token that reaches Redis, logs or audit.
 * Tokens we issue are `<userRef>.<43 chars of 256 random bits>`: every key a script touches can be named from the
 * token alone, so scripts declare all their keys (correct during slot migrations) and getSession() needs no lookup.
 * H is SHA-256, or HMAC-SHA-256 under `tokenSecret` when one is configured.
 */

export const TAG_LENGTH = 22;
const TOKEN = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/;
const CALLER_ID = /^[A-Za-z0-9_-]{22,128}$/;
const SESSION_REF = /^[A-Za-z0-9_-]{43}$/;
// Printable ASCII without glob characters, braces and backslash: ids go into hashes only, but a hostile id must
// still fail loudly rather than be hashed into something that looks valid.
const USER_ID = /^[!-~]{1,256}$/;
const USER_ID_FORBIDDEN = /[*?[\]{}\\]/;

export type Hasher = (domain: string, value: string) => string;

// One-shot `crypto.hash` (Node 20.12+) skips the Hash object createHash builds per call: it is on every getSession.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'base64url') => string })
  .hash;

export function createHasher(secret: Buffer | undefined): Hasher {
  if (secret) {
    return (domain, value) => createHmac('sha256', secret).update(domain).update(value).digest('base64url');
  }
  if (oneShot) return (domain, value) => oneShot('sha256', domain + value, 'base64url');
  return (domain, value) => createHash('sha256').update(domain).update(value).digest('base64url');
}

export function assertUserId(userId: unknown): asserts userId is string {
  if (typeof userId !== 'string' || !USER_ID.test(userId) || USER_ID_FORBIDDEN.test(userId)) {
    throw new SessionError(
      'E_INVALID_USER_ID',
      'userId must be 1-256 printable ASCII characters without spaces, control characters or * ? [ ] { } \\.',
    );
  }
}

/** The caller-supplied session ids we accept (express-session and @fastify/session ids fit). */
export function isCallerId(id: unknown): id is string {
  return typeof id === 'string' && CALLER_ID.test(id);
}

export function assertCallerId(id: unknown): asserts id is string {
  if (!isCallerId(id)) {
    throw new SessionError(
      'E_INVALID_SESSION_ID',
      'sessionId must be 22-128 characters of A-Z a-z 0-9 _ - (at least 128 bits of a CSPRNG, base64url).',
    );
  }
}

export function isToken(token: unknown): token is string {
  return typeof token === 'string' && TOKEN.test(token);
}

export function isSessionRef(handle: unknown): handle is string {
  return typeof handle === 'string' && SESSION_REF.test(handle);
}

export interface UserKeys {
  tag: string;
  userRef: string;
  index: string;
  name: string;
}

export interface SessionKeys {
  tag: string;
  sessionRef: string;
  session: string;
  /** Caller-supplied ids only. */
  pointer?: string;
}

const TOKEN_BYTES = 32;
/** CSPRNG bytes are drawn 128 tokens at a time: one call into the CSPRNG instead of one per token. */
const RANDOM_POOL_BYTES = TOKEN_BYTES * 128;

/** Users whose key names are kept, so the hash of a user id is not recomputed on every call. */
const USER_KEYS_CACHED = 10_000;

export class KeyBuilder {
  private readonly users = new Map<string, UserKeys>();
  private readonly pool = Buffer.allocUnsafeSlow(RANDOM_POOL_BYTES);
  private poolOffset = RANDOM_POOL_BYTES;

  constructor(
    readonly prefix: string,
    private readonly hash: Hasher,
  ) {}

  user(userId: string): UserKeys {
    let keys = this.users.get(userId);
    if (keys === undefined) {
      const tag = this.hash('u\0', userId).slice(0, TAG_LENGTH);
      keys = { tag, userRef: tag, index: this.index(tag), name: this.name(tag) };
      // A hint cache like any other: bounded, and recomputed when evicted.
      if (this.users.size >= USER_KEYS_CACHED) this.users.delete(this.users.keys().next().value as string);
      this.users.set(userId, keys);
    }
    return keys;
  }

  /** A new token for a user: the user's ref, a dot, 256 bits from the CSPRNG. */
  newToken(tag: string): string {
    if (this.poolOffset + TOKEN_BYTES > RANDOM_POOL_BYTES) {
      randomFillSync(this.pool);
      this.poolOffset = 0;
    }
    const start = this.poolOffset;
    this.poolOffset += TOKEN_BYTES;
    const secret = this.pool.toString('base64url', start, start + TOKEN_BYTES);
    // Bytes handed out are wiped from the pool: nothing keeps a copy of an issued token's secret.
    this.pool.fill(0, start, start + TOKEN_BYTES);
    return `${tag}.${secret}`;
  }

  sessionRef(id: string): string {
    return this.hash('s\0', id);
  }

  session(tag: string, sessionRef: string): string {
    return `${this.prefix}:s:{${tag}}:${sessionRef}`;
  }

  /** Where a session moved from this slot went (a login move), for a while: beside the session, same slot. */
  moved(tag: string, sessionRef: string): string {
    return `${this.prefix}:m:{${tag}}:${sessionRef}`;
  }

  /** Keys of one of our tokens: the slot comes from the token itself. */
  forToken(token: string): SessionKeys {
    const tag = token.slice(0, TAG_LENGTH);
    const sessionRef = this.sessionRef(token);
    return { tag, sessionRef, session: this.session(tag, sessionRef) };
  }

  /** The pointer of a caller-supplied id lives in a slot of its own, chosen by the id's hash. */
  pointer(sessionRef: string): string {
    return `${this.prefix}:p:{${sessionRef.slice(0, TAG_LENGTH)}}:${sessionRef}`;
  }

  index(tag: string): string {
    return `${this.prefix}:u:{${tag}}`;
  }

  name(tag: string): string {
    return `${this.prefix}:n:{${tag}}`;
  }
}
