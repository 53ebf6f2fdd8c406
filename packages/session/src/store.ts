import { AustaCodecError, type Codec, createCodec } from '@austa/codec';
import { escapeGlob, scanKeys } from '@austa/redis-cluster';
import { normalizeDevice } from './device.js';
import { SessionError } from './errors.js';
import { HEADER_BYTES, readHeader } from './header.js';
import { createInstruments, type Operation, type Result } from './instruments.js';
import {
  assertCallerId,
  assertUserId,
  createHasher,
  isCallerId,
  isSessionRef,
  isToken,
  KeyBuilder,
  type SessionKeys,
  TAG_LENGTH,
} from './keys.js';
import {
  type DeviceInfo,
  resolveOptions,
  type SessionAuditEvent,
  type SessionStoreOptions,
} from './options.js';
import { ScriptRunner, script, unavailable } from './runner.js';
import { CREATE } from './scripts/create.js';
import { DELETE } from './scripts/delete.js';
import { DELETE_USER } from './scripts/delete-user.js';
import { LIST } from './scripts/list.js';
import { TOUCH } from './scripts/touch.js';
import { UPDATE } from './scripts/update.js';

/** What `createSession` needs. */
export interface CreateSessionInput<T = Record<string, unknown>> {
  /** The user the session belongs to. Never stored in a key name (only its hash). */
  userId: string;
  /** Session data: anything `@austa/codec` encodes (Date, Map, BigInt…), up to `maxDataBytes` encoded. */
  data?: T;
  /** Where the session was opened from, for the "active devices" screen. */
  device?: DeviceInfo;
  /**
   * Bring your own session id (framework adapters do). 22-128 base64url characters. It cannot carry the user's slot
   * tag, so reads by such an id cost one more round trip (a pointer lookup); tokens we issue need one.
   */
  sessionId?: string;
}

/** The result of `createSession`. `token` is the only time the raw token is seen: hand it to the client. */
export interface CreatedSession {
  /** The secret the client presents (cookie, bearer). Never stored: Redis holds only its hash. */
  token: string;
  /** Stable reference for listing and revoking (the token's hash). Safe to show and log. */
  handle: string;
  createdAtMs: number;
  /** The earlier of the idle and the absolute deadline. */
  expiresAtMs: number;
  absoluteExpiresAtMs: number;
  /** How many of the user's older sessions were evicted to respect `maxSessionsPerUser`. */
  evicted: number;
}

/** A live session as `getSession` returns it. */
export interface Session<T = Record<string, unknown>> {
  handle: string;
  userId: string;
  data: T;
  device: DeviceInfo;
  createdAtMs: number;
  lastSeenAtMs: number;
  expiresAtMs: number;
  absoluteExpiresAtMs: number;
  /** Increases with every update; pass it as `expectedVersion` for compare-and-set. */
  version: number;
}

/** One entry of `getUserSessions`: no token, no data. */
export interface SessionInfo {
  handle: string;
  device: DeviceInfo;
  createdAtMs: number;
  lastSeenAtMs: number;
  expiresAtMs: number;
  absoluteExpiresAtMs: number;
}

export interface UpdateOptions {
  /** Write only if the session is still at this version; otherwise `E_CONFLICT` and nothing is written. */
  expectedVersion?: number;
}

export interface CleanupResult {
  /** User indexes visited. */
  usersScanned: number;
  /** Index entries removed because their session had expired. */
  entriesRemoved: number;
}

export interface SessionStore {
  createSession<T = Record<string, unknown>>(input: CreateSessionInput<T>): Promise<CreatedSession>;
  /**
   * The session for a token or id, or `null` when it is unknown, expired, revoked or malformed (never throws for
   * those). Touches the session (sliding expiration) when `touchIntervalSeconds` have passed since the last touch.
   */
  getSession<T = Record<string, unknown>>(
    token: string,
    options?: { touch?: boolean },
  ): Promise<Session<T> | null>;
  /**
   * Merges `patch` into the data (a key set to `undefined` is removed), or replaces it with `updater(current)`.
   * Concurrent updates are never lost: each is a compare-and-set on the version, retried on conflict.
   * `E_SESSION_NOT_FOUND` when the session is gone: a deleted session is never brought back.
   */
  updateSession<T = Record<string, unknown>>(
    token: string,
    patchOrUpdater: Partial<T> | ((current: T) => T),
    options?: UpdateOptions,
  ): Promise<Session<T>>;
  /** Deletes (logs out) a session; false when there was none. */
  deleteSession(token: string): Promise<boolean>;
  /** Touches now: the idle deadline moves to now + idle, capped by the absolute one. Null when gone. */
  extendSession(token: string): Promise<{ expiresAtMs: number; absoluteExpiresAtMs: number } | null>;
  /** The user's live sessions, newest first, for an "active devices" screen. */
  getUserSessions(userId: string): Promise<SessionInfo[]>;
  /** Revokes every session of the user, except the one of `except` (a token or id) if given. Returns how many. */
  deleteUserSessions(userId: string, options?: { except?: string }): Promise<number>;
  /** Revokes one session of the user by its `handle` (from `getUserSessions`). */
  deleteUserSession(userId: string, handle: string): Promise<boolean>;
  /** How many live sessions the user has. */
  getSessionCount(userId: string): Promise<number>;
  /** Removes index entries of expired sessions on every master (no KEYS). Fails whole if a slot is unreachable. */
  cleanupExpiredSessions(options?: { count?: number }): Promise<CleanupResult>;
  /**
   * For framework adapters: create-or-replace the data of a caller-supplied id for this user. Moves the session to
   * the user's slot when the id was first saved for another user (an anonymous session that logged in).
   */
  saveSession<T = Record<string, unknown>>(
    sessionId: string,
    input: { userId: string; data: T; device?: DeviceInfo },
  ): Promise<void>;
  /** Ends nothing but this store: the Redis client is yours and stays open. Later calls fail with `E_CLOSED`. */
  close(): Promise<void>;
}

const UPDATE_ATTEMPTS = 50;
const DECLARE_ATTEMPTS = 50;
/** Users whose index members and encoded user id are remembered, so creating at the cap is one round trip. */
const USER_CACHE_SIZE = 10_000;
const TAG = /^[A-Za-z0-9_-]{22}$/;

const text = (value: unknown): string => (Buffer.isBuffer(value) ? value.toString('latin1') : String(value));
const numberOf = (value: unknown): number => Number(text(value));

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function codecError(error: unknown): never {
  if (AustaCodecError.isInstance(error)) {
    const code =
      error.code === 'E_UNSERIALIZABLE' || error.code === 'E_VALUE_TOO_LARGE' ? error.code : 'E_DECODE';
    throw new SessionError(code, error.message, { cause: error });
  }
  throw error;
}

/**
 * A bounded map for per-user hints, evicting the least recently written entry. Reads do not reorder: a Map delete and
 * re-insert per read showed in create's profile, and a hint that falls out only costs a round trip.
 */
class Lru<K, V> {
  private readonly entries = new Map<K, V>();
  constructor(private readonly size: number) {}
  get(key: K): V | undefined {
    return this.entries.get(key);
  }
  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.size) this.entries.delete(this.entries.keys().next().value as K);
  }
  delete(key: K): void {
    this.entries.delete(key);
  }
}

/**
 * What the store remembers about a user's index, as a hint: how many members it had and the oldest few (the next
 * ones a create at the cap evicts). Bounded per user; a stale hint costs one more round trip, never a wrong answer.
 */
interface IndexHint {
  count: number;
  /** Oldest members first, at most HINT_MEMBERS of them. */
  oldest: string[];
}

const HINT_MEMBERS = 16;
const INDEX_SLACK_MAX_MS = 10 * 60_000;

/** What one session stores after its header, encoded (and encrypted) as one value bound to the session key. */
interface SessionRecord {
  /** user id */
  u: string;
  /** device */
  v: DeviceInfo;
  /** data */
  d: unknown;
}

/**
 * Creates a session store on an existing ioredis client. Nothing connects or starts here; `close()` stops nothing
 * but the store.
 * @example
 * const sessions = createSessionStore({ redis, idleTimeoutSeconds: 900, absoluteTimeoutSeconds: 43200, maxSessionsPerUser: 5 });
 * const { token } = await sessions.createSession({ userId: 'u-1', device: { userAgent, ip } });
 */
export function createSessionStore(options: SessionStoreOptions): SessionStore {
  const settings = resolveOptions(options);
  const { redis } = settings;
  const codec: Codec = settings.codec ?? createCodec();
  const hash = createHasher(settings.tokenSecret);
  const keys = new KeyBuilder(settings.prefix, hash);
  const instruments = createInstruments(settings.metrics, redis);
  const runner = new ScriptRunner(
    redis,
    settings.replicated,
    settings.replicationTimeoutMs,
    instruments.redis,
  );
  const auditing = settings.onAudit !== undefined;
  const wantRecords = auditing ? '1' : '0';
  const scripts = {
    create: script(CREATE),
    touch: script(TOUCH),
    update: script(UPDATE),
    delete: script(DELETE),
    deleteUser: script(DELETE_USER),
    list: script(LIST),
  };
  // Hints only: a stale entry costs one more round trip (the script asks again), never a wrong answer.
  const hints = new Lru<string, IndexHint>(USER_CACHE_SIZE);
  const encodedNames = new Lru<string, Buffer>(USER_CACHE_SIZE);
  /*
   * When this store last set a user's index TTL (performance.now ms). It sets absolute + slack, so for the next
   * `slack` ms at least the absolute timeout is left and creates skip the PEXPIRE: one command less per create, at
   * the price of an index that outlives its last session by up to `slack` (it holds no PHI). A new index always gets
   * its TTL in the script, whatever this says.
   */
  const indexExtendedAt = new Lru<string, number>(USER_CACHE_SIZE);
  const indexSlackMs = Math.min(Math.ceil(settings.absoluteMs / 10), INDEX_SLACK_MAX_MS);
  let closed = false;

  /** Keys a create should declare: only the members it will evict, and only when the user is at the cap. */
  function victimsToDeclare(tag: string): string[] {
    const hint = hints.get(tag);
    if (!hint) return [];
    const excess = hint.count + 1 - settings.maxSessionsPerUser;
    return excess > 0 ? hint.oldest.slice(0, excess) : [];
  }

  /** Every member, when the hint knows them all (small indexes); otherwise the script will list them. */
  function allMembers(tag: string): string[] {
    const hint = hints.get(tag);
    return hint && hint.count === hint.oldest.length ? hint.oldest : [];
  }

  function rememberMembers(tag: string, members: readonly string[]): void {
    hints.set(tag, { count: members.length, oldest: members.slice(0, HINT_MEMBERS) });
  }

  const audit = (event: SessionAuditEvent) => {
    if (!settings.onAudit) return;
    try {
      settings.onAudit(event);
    } catch {
      // An audit sink that fails must not fail (or half-fail) the session operation it reports.
    }
  };

  async function measured<R>(operation: Operation, work: () => Promise<R>, resultOf: (value: R) => Result) {
    if (closed) throw new SessionError('E_CLOSED', 'This session store was closed; create a new one.');
    const startedAt = instruments.enabled ? performance.now() : 0;
    try {
      const value = await work();
      instruments.record(operation, resultOf(value), startedAt);
      return value;
    } catch (error) {
      const code = SessionError.isInstance(error) ? error.code : '';
      const result: Result =
        code === 'E_CONFLICT'
          ? 'conflict'
          : code === 'E_SESSION_NOT_FOUND'
            ? 'miss'
            : code.startsWith('E_INVALID') ||
                code === 'E_UNSERIALIZABLE' ||
                code === 'E_VALUE_TOO_LARGE' ||
                code === 'E_SESSION_EXISTS'
              ? 'rejected'
              : 'error';
      instruments.record(operation, result, startedAt);
      throw SessionError.isInstance(error) ? error : unavailable(error);
    }
  }

  /**
   * Runs a script that touches other sessions of one user with their keys declared (see scripts/common.ts): the
   * first run declares `members` (the last known ones); when the script answers 'declare' with the index members,
   * it runs again with those. Bounded: a user whose index changes faster than this converges gets E_CONFLICT.
   */
  async function withDeclared(
    run: (keys: string[], args: Array<string | Buffer | number>) => Promise<unknown>,
    tag: string,
    fixedKeys: string[],
    fixedArgs: Array<string | Buffer | number>,
    members: readonly string[] = [],
  ): Promise<unknown[]> {
    let declared = members;
    for (let attempt = 1; attempt <= DECLARE_ATTEMPTS; attempt++) {
      const reply = (await run(
        [...fixedKeys, ...declared.map((ref) => keys.session(tag, ref))],
        fixedArgs,
      )) as unknown[];
      if (text(reply[0]) !== 'declare') return reply;
      const members = reply.slice(1).map(text);
      rememberMembers(tag, members);
      declared = members;
      if (attempt > 2) await new Promise((resolve) => setTimeout(resolve, Math.random() * attempt));
    }
    throw new SessionError(
      'E_CONFLICT',
      `The user's sessions changed concurrently ${DECLARE_ATTEMPTS} times during this call; nothing was written.`,
    );
  }

  function encodeRecord(sessionKey: string, record: SessionRecord): Buffer {
    try {
      return codec.encode(record, { associatedData: sessionKey, maxBytes: settings.maxDataBytes });
    } catch (error) {
      return codecError(error);
    }
  }

  function decodeRecord(sessionKey: string, bytes: unknown): SessionRecord {
    try {
      return codec.decode<SessionRecord>(bytes as Buffer, { associatedData: sessionKey });
    } catch (error) {
      return codecError(error);
    }
  }

  /** For audit events only: a stored value that cannot be read still gets its event, without the details. */
  function recordForAudit(sessionKey: string, value: unknown): SessionRecord | undefined {
    if (!Buffer.isBuffer(value) || value.length <= HEADER_BYTES) return undefined;
    try {
      return decodeRecord(sessionKey, value.subarray(HEADER_BYTES));
    } catch {
      return undefined;
    }
  }

  function encodedName(userId: string, nameKey: string): Buffer {
    let name = encodedNames.get(userId);
    if (!name) {
      try {
        name = codec.encode(userId, { associatedData: nameKey });
      } catch (error) {
        return codecError(error);
      }
      encodedNames.set(userId, name);
    }
    return name;
  }

  /** Finds where a token or caller-supplied id lives; null when it cannot exist. */
  async function locate(id: unknown): Promise<SessionKeys | null> {
    if (isToken(id)) return keys.forToken(id);
    if (!isCallerId(id)) return null;
    const sessionRef = keys.sessionRef(id);
    const pointer = keys.pointer(sessionRef);
    const tag = await runner.getString(pointer);
    if (tag === null || !TAG.test(tag)) return null;
    return { tag, sessionRef, session: keys.session(tag, sessionRef), pointer };
  }

  function assertId(id: unknown): void {
    if (!isToken(id) && !isCallerId(id)) {
      throw new SessionError(
        'E_INVALID_SESSION_ID',
        'The session token or id is malformed (expected a token from createSession or a 22-128 character base64url id).',
      );
    }
  }

  function notFound(): SessionError {
    return new SessionError(
      'E_SESSION_NOT_FOUND',
      'No such session: it expired, was revoked, or never existed.',
    );
  }

  async function create<T>(input: CreateSessionInput<T>, replace: boolean): Promise<CreatedSession> {
    if (typeof input !== 'object' || input === null) {
      throw new SessionError(
        'E_INVALID_ARGUMENT',
        'createSession needs { userId, data?, device?, sessionId? }.',
      );
    }
    assertUserId(input.userId);
    if (input.sessionId !== undefined) assertCallerId(input.sessionId);
    const device = normalizeDevice(input.device, settings.ipAddress, hash);
    const user = keys.user(input.userId);
    const token = input.sessionId ?? keys.newToken(user.tag);
    const sessionRef = keys.sessionRef(token);
    const sessionKey = keys.session(user.tag, sessionRef);
    // Everything is encoded before the first command: bad data is refused with nothing written.
    const record = encodeRecord(sessionKey, { u: input.userId, v: device, d: input.data ?? {} });
    const name = auditing ? encodedName(input.userId, user.name) : '';
    if (input.sessionId !== undefined) {
      const pointer = keys.pointer(sessionRef);
      await runner.command(pointer, 'set', (pipeline) =>
        pipeline.set(pointer, user.tag, 'PX', settings.absoluteMs),
      );
    }
    // A token we generated cannot exist yet ('n'; a retry after a failover rewrites the same session). A
    // caller-supplied id must not exist ('c') unless the adapter re-saves it ('r').
    const mode = input.sessionId === undefined ? 'n' : replace ? 'r' : 'c';
    const sentAt = performance.now();
    const extendedAt = indexExtendedAt.get(user.tag);
    const extend = extendedAt === undefined || sentAt - extendedAt >= indexSlackMs ? 1 : 0;
    const attempt = (mode: 'n' | 'c' | 'r') =>
      withDeclared(
        (declaredKeys, args) => runner.write(scripts.create, declaredKeys, args, false),
        user.tag,
        [sessionKey, user.index, user.name],
        [
          `${settings.idleMs},${settings.absoluteMs},${settings.maxSessionsPerUser},${mode},${wantRecords},${settings.absoluteMs + indexSlackMs},${extend}`,
          record,
          name,
        ],
        victimsToDeclare(user.tag),
      );
    let reply: unknown[];
    try {
      reply = await attempt(mode);
    } catch (error) {
      // The write may have run on a connection that closed. Writing the same session again is harmless ('r' counts
      // it once in the index), so a create of ours, or an adapter's save, is sent once more; a caller-supplied id
      // that must be new cannot tell its own first write from another's, so it reports E_MAYBE_APPLIED.
      if (mode === 'c' || !SessionError.isInstance(error) || error.code !== 'E_MAYBE_APPLIED') throw error;
      reply = await attempt('r');
    }
    if (text(reply[0]) === 'exists') {
      throw new SessionError(
        'E_SESSION_EXISTS',
        'A session with this sessionId already exists; ids must be unique.',
      );
    }
    if (extend === 1) indexExtendedAt.set(user.tag, sentAt);
    const createdAtMs = numberOf(reply[1]);
    const absoluteExpiresAtMs = numberOf(reply[2]);
    audit({ type: 'create', sessionRef, userId: input.userId, device, atMs: createdAtMs });
    const evictedRefs = new Set<string>();
    for (let index = 4; index + 1 < reply.length; index += 2) {
      const ref = text(reply[index]);
      evictedRefs.add(ref);
      const value = reply[index + 1];
      // An entry whose session had already expired was only pruned: no eviction to report.
      if (!auditing || !Buffer.isBuffer(value) || value.length === 0) continue;
      const evictedRecord = recordForAudit(keys.session(user.tag, ref), value);
      audit({
        type: 'evict',
        sessionRef: ref,
        userId: input.userId,
        device: evictedRecord?.v,
        atMs: createdAtMs,
      });
    }
    const evicted = numberOf(reply[3]);
    // The next create for this user declares its victims up front: one round trip at the cap.
    const hint = hints.get(user.tag);
    if (hint) {
      const oldest = hint.oldest.filter((ref) => !evictedRefs.has(ref));
      const count = hint.count - evictedRefs.size + 1;
      if (oldest.length < HINT_MEMBERS && count === oldest.length + 1) oldest.push(sessionRef);
      hints.set(user.tag, { count, oldest });
    } else {
      hints.set(user.tag, { count: 1, oldest: [sessionRef] });
    }
    instruments.evicted(evicted);
    return {
      token,
      handle: sessionRef,
      createdAtMs,
      expiresAtMs: Math.min(absoluteExpiresAtMs, createdAtMs + settings.idleMs),
      absoluteExpiresAtMs,
      evicted,
    };
  }

  async function read<T>(id: unknown, touch: boolean): Promise<Session<T> | null> {
    const located = await locate(id);
    return located ? readAt<T>(located, touch) : null;
  }

  /**
   * The hot path is one HMGET: the key's TTL already is the earlier of the two deadlines, so a key that exists is a
   * live session. Only when the throttle interval has passed does a second command touch it (a script that never
   * writes a missing key).
   */
  async function readAt<T>(located: SessionKeys, touch: boolean): Promise<Session<T> | null> {
    const value = await runner.get(located.session);
    const header = value ? readHeader(value) : null;
    if (!value || !header) return null;
    const record = decodeRecord(located.session, value.subarray(HEADER_BYTES));
    let lastSeenAtMs = header.lastSeenAtMs;
    if (touch && Date.now() - lastSeenAtMs >= settings.touchIntervalMs) {
      const reply = (await runner.read(
        scripts.touch,
        [located.session, keys.index(located.tag)],
        [settings.touchIntervalMs],
      )) as unknown[] | null;
      if (!reply) return null;
      lastSeenAtMs = numberOf(reply[1]);
      if (text(reply[0]) === '1') {
        audit({
          type: 'touch',
          sessionRef: located.sessionRef,
          userId: record.u,
          device: record.v,
          atMs: lastSeenAtMs,
        });
      }
    }
    return {
      handle: located.sessionRef,
      userId: record.u,
      data: record.d as T,
      device: record.v,
      createdAtMs: header.createdAtMs,
      lastSeenAtMs,
      expiresAtMs: Math.min(header.absoluteExpiresAtMs, lastSeenAtMs + header.idleMs),
      absoluteExpiresAtMs: header.absoluteExpiresAtMs,
      version: header.version,
    };
  }

  async function update<T>(
    id: string,
    patchOrUpdater: Partial<T> | ((current: T) => T),
    updateOptions: UpdateOptions | undefined,
  ): Promise<Session<T>> {
    assertId(id);
    if (typeof patchOrUpdater !== 'function' && !isPlainObject(patchOrUpdater)) {
      throw new SessionError(
        'E_INVALID_ARGUMENT',
        'updateSession takes a plain-object patch or an updater function.',
      );
    }
    const expected = updateOptions?.expectedVersion;
    if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 1)) {
      throw new SessionError(
        'E_INVALID_ARGUMENT',
        'expectedVersion must be a positive integer from getSession().',
      );
    }
    const located = await locate(id);
    if (!located) throw notFound();
    for (let attempt = 1; ; attempt++) {
      const current = await readAt<T>(located, false);
      if (!current) throw notFound();
      if (expected !== undefined && current.version !== expected) {
        throw new SessionError(
          'E_CONFLICT',
          `The session is at version ${current.version}, not ${expected}.`,
        );
      }
      let next: unknown;
      if (typeof patchOrUpdater === 'function') {
        next = (patchOrUpdater as (value: T) => T)(current.data);
      } else {
        const merged: Record<string, unknown> = isPlainObject(current.data) ? { ...current.data } : {};
        for (const [key, value] of Object.entries(patchOrUpdater as Record<string, unknown>)) {
          if (value === undefined) delete merged[key];
          // A parsed request body can carry an own "__proto__" key: it is data, and assigning it would swap the
          // prototype of what this call returns.
          else if (key === '__proto__') {
            Object.defineProperty(merged, key, {
              value,
              enumerable: true,
              writable: true,
              configurable: true,
            });
          } else merged[key] = value;
        }
        next = merged;
      }
      const bytes = encodeRecord(located.session, { u: current.userId, v: current.device, d: next });
      const reply = (await runner.write(
        scripts.update,
        [located.session, keys.index(located.tag)],
        [bytes, String(current.version)],
        false,
      )) as unknown[];
      const status = text(reply[0]);
      if (status === 'missing') throw notFound();
      if (status === 'ok') {
        const lastSeenAtMs = numberOf(reply[2]);
        const absoluteExpiresAtMs = numberOf(reply[3]);
        audit({
          type: 'update',
          sessionRef: current.handle,
          userId: current.userId,
          device: current.device,
          atMs: lastSeenAtMs,
        });
        return {
          ...current,
          data: next as T,
          version: numberOf(reply[1]),
          lastSeenAtMs,
          expiresAtMs: Math.min(absoluteExpiresAtMs, lastSeenAtMs + numberOf(reply[4])),
          absoluteExpiresAtMs,
        };
      }
      if (expected !== undefined || attempt >= UPDATE_ATTEMPTS) {
        throw new SessionError(
          'E_CONFLICT',
          `The session changed concurrently ${attempt} time(s) while updating; nothing was written by this call.`,
        );
      }
      // Another update won the compare-and-set: read again and re-apply, after a short random pause so that
      // many writers of one session do not retry in lockstep.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(attempt, 10)));
    }
  }

  async function remove(located: SessionKeys, reason: 'logout'): Promise<boolean> {
    const reply = await runner.write(
      scripts.delete,
      [located.session, keys.index(located.tag)],
      [wantRecords],
    );
    if (located.pointer) {
      const pointer = located.pointer;
      await runner.command(pointer, 'unlink', (pipeline) => pipeline.unlink(pointer));
    }
    if (reply === null || reply === undefined) return false;
    const record = recordForAudit(located.session, reply);
    audit({
      type: 'revoke',
      reason,
      sessionRef: located.sessionRef,
      userId: record?.u,
      device: record?.v,
      atMs: Date.now(),
    });
    return true;
  }

  async function revoke(
    userId: string,
    keepRef: string,
    onlyRef: string,
    reason: 'revoke-all' | 'revoke-handle',
  ): Promise<number> {
    const user = keys.user(userId);
    const reply = await withDeclared(
      (declaredKeys, args) => runner.write(scripts.deleteUser, declaredKeys, args),
      user.tag,
      [user.index, user.name],
      [keepRef, onlyRef, wantRecords],
      onlyRef === '' ? allMembers(user.tag) : [onlyRef],
    );
    hints.delete(user.tag);
    const atMs = Date.now();
    let count = 0;
    for (let index = 1; index + 1 < reply.length; index += 2) {
      const ref = text(reply[index]);
      const record = recordForAudit(keys.session(user.tag, ref), reply[index + 1]);
      count++;
      audit({ type: 'revoke', reason, sessionRef: ref, userId, device: record?.v, atMs });
    }
    return count;
  }

  async function list(userId: string, mode: 'list' | 'count'): Promise<unknown[]> {
    const user = keys.user(userId);
    return withDeclared(
      (declaredKeys, args) => runner.read(scripts.list, declaredKeys, args),
      user.tag,
      [user.index, user.name],
      [mode],
      allMembers(user.tag),
    );
  }

  async function cleanup(count: number | undefined): Promise<CleanupResult> {
    const pattern = `${escapeGlob(settings.prefix)}:u:*`;
    const indexKey = new RegExp(
      `^${settings.prefix.replace(/[.]/g, '\\.')}:u:\\{([A-Za-z0-9_-]{${TAG_LENGTH}})\\}$`,
    );
    const result: CleanupResult = { usersScanned: 0, entriesRemoved: 0 };
    const seen = new Set<string>();
    for await (const key of scanKeys(redis, pattern, count === undefined ? {} : { count })) {
      // A key can be yielded twice during a slot migration; pruning is idempotent, but count users once.
      if (seen.has(key)) continue;
      seen.add(key);
      const tag = indexKey.exec(key)?.[1];
      if (tag === undefined) continue;
      const nameKey = keys.name(tag);
      const reply = await withDeclared(
        (declaredKeys, args) => runner.write(scripts.list, declaredKeys, args),
        tag,
        [key, nameKey],
        ['prune'],
      );
      result.usersScanned++;
      let userId: string | undefined;
      const name = reply[2];
      try {
        userId =
          Buffer.isBuffer(name) && name.length > 0
            ? codec.decode<string>(name, { associatedData: nameKey })
            : undefined;
      } catch {
        userId = undefined;
      }
      const atMs = Date.now();
      for (const ref of reply.slice(3)) {
        result.entriesRemoved++;
        audit({ type: 'expire', sessionRef: text(ref), userId, device: undefined, atMs });
      }
    }
    return result;
  }

  return {
    createSession<T>(input: CreateSessionInput<T>) {
      return measured(
        'create_session',
        () => create(input, false),
        () => 'ok',
      );
    },

    getSession<T>(token: string, getOptions?: { touch?: boolean }) {
      return measured(
        'get_session',
        () => read<T>(token, getOptions?.touch ?? true),
        (session) => (session ? 'ok' : 'miss'),
      );
    },

    updateSession<T>(
      token: string,
      patchOrUpdater: Partial<T> | ((current: T) => T),
      updateOptions?: UpdateOptions,
    ) {
      return measured(
        'update_session',
        () => update<T>(token, patchOrUpdater, updateOptions),
        () => 'ok',
      );
    },

    deleteSession(token: string) {
      return measured(
        'delete_session',
        async () => {
          assertId(token);
          const located = await locate(token);
          return located ? remove(located, 'logout') : false;
        },
        (deleted) => (deleted ? 'ok' : 'miss'),
      );
    },

    extendSession(token: string) {
      return measured(
        'extend_session',
        async () => {
          assertId(token);
          const located = await locate(token);
          if (!located) return null;
          const reply = (await runner.write(
            scripts.touch,
            [located.session, keys.index(located.tag)],
            ['0'],
          )) as unknown[] | null;
          if (!reply) return null;
          const lastSeenAtMs = numberOf(reply[1]);
          const absoluteExpiresAtMs = numberOf(reply[2]);
          if (auditing) {
            // Audit needs the user and device: one more read, only when someone listens.
            const record = recordForAudit(
              located.session,
              await runner.get(located.session).catch(() => null),
            );
            audit({
              type: 'extend',
              sessionRef: located.sessionRef,
              userId: record?.u,
              device: record?.v,
              atMs: lastSeenAtMs,
            });
          }
          return {
            expiresAtMs: Math.min(absoluteExpiresAtMs, lastSeenAtMs + numberOf(reply[3])),
            absoluteExpiresAtMs,
          };
        },
        (result) => (result ? 'ok' : 'miss'),
      );
    },

    getUserSessions(userId: string) {
      return measured(
        'get_user_sessions',
        async () => {
          assertUserId(userId);
          const user = keys.user(userId);
          const reply = await list(userId, 'list');
          const sessions: SessionInfo[] = [];
          for (let index = 3; index + 1 < reply.length; index += 2) {
            const handle = text(reply[index]);
            const value = reply[index + 1] as Buffer;
            const header = readHeader(value);
            if (!header) continue;
            sessions.push({
              handle,
              device: decodeRecord(keys.session(user.tag, handle), value.subarray(HEADER_BYTES)).v,
              createdAtMs: header.createdAtMs,
              lastSeenAtMs: header.lastSeenAtMs,
              expiresAtMs: Math.min(header.absoluteExpiresAtMs, header.lastSeenAtMs + header.idleMs),
              absoluteExpiresAtMs: header.absoluteExpiresAtMs,
            });
          }
          rememberMembers(
            user.tag,
            sessions.map((session) => session.handle),
          );
          // The index is in creation order (to the microsecond); newest first for an "active devices" screen.
          return sessions.reverse();
        },
        () => 'ok',
      );
    },

    deleteUserSessions(userId: string, deleteOptions?: { except?: string }) {
      return measured(
        'delete_user_sessions',
        async () => {
          assertUserId(userId);
          const except = deleteOptions?.except;
          if (except !== undefined) assertId(except);
          return revoke(userId, except === undefined ? '' : keys.sessionRef(except), '', 'revoke-all');
        },
        () => 'ok',
      );
    },

    deleteUserSession(userId: string, handle: string) {
      return measured(
        'delete_user_sessions',
        async () => {
          assertUserId(userId);
          if (!isSessionRef(handle)) {
            throw new SessionError('E_INVALID_SESSION_ID', 'handle must be a handle from getUserSessions().');
          }
          return (await revoke(userId, '', handle, 'revoke-handle')) > 0;
        },
        (deleted) => (deleted ? 'ok' : 'miss'),
      );
    },

    getSessionCount(userId: string) {
      return measured(
        'get_session_count',
        async () => {
          assertUserId(userId);
          return numberOf((await list(userId, 'count'))[1]);
        },
        () => 'ok',
      );
    },

    cleanupExpiredSessions(cleanupOptions?: { count?: number }) {
      return measured(
        'cleanup_expired_sessions',
        () => cleanup(cleanupOptions?.count),
        () => 'ok',
      );
    },

    saveSession<T>(sessionId: string, input: { userId: string; data: T; device?: DeviceInfo }) {
      return measured(
        'update_session',
        async () => {
          assertCallerId(sessionId);
          if (typeof input !== 'object' || input === null) {
            throw new SessionError('E_INVALID_ARGUMENT', 'saveSession needs { userId, data, device? }.');
          }
          assertUserId(input.userId);
          const located = await locate(sessionId);
          const user = keys.user(input.userId);
          if (located && located.tag === user.tag) {
            const device = normalizeDevice(input.device, settings.ipAddress, hash);
            const bytes = encodeRecord(located.session, { u: input.userId, v: device, d: input.data });
            const reply = (await runner.write(
              scripts.update,
              [located.session, keys.index(located.tag)],
              [bytes, ''],
            )) as unknown[];
            if (text(reply[0]) === 'ok') {
              audit({
                type: 'update',
                sessionRef: located.sessionRef,
                userId: input.userId,
                device,
                atMs: numberOf(reply[2]),
              });
              return;
            }
          }
          await create({ userId: input.userId, data: input.data, device: input.device, sessionId }, true);
          if (located && located.tag !== user.tag) {
            // The id moved to another user's slot (an anonymous session that logged in): drop the old copy.
            await runner.write(scripts.delete, [located.session, keys.index(located.tag)], ['0']);
          }
        },
        () => 'ok',
      );
    },

    async close() {
      closed = true;
    },
  };
}
