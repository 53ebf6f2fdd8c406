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
import { RELEASE, REPOINT, TAKE, TOMBSTONE as TOMBSTONE_SCRIPT } from './scripts/repoint.js';
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
  /**
   * Removes index entries of expired sessions on every master (no KEYS). Fails whole if a slot is unreachable.
   * `count` is the SCAN COUNT hint, an integer from 1 to 100000.
   */
  cleanupExpiredSessions(options?: { count?: number }): Promise<CleanupResult>;
  /**
   * For framework adapters: replaces the data of a live session saved under a caller-supplied id, or creates it when
   * the id was never stored. A session that ended (logout, revoke, idle or absolute expiry) is never brought back:
   * the save then writes nothing and resolves `false`. Moves the session to the user's slot when the id was first
   * saved for another user (an anonymous session that logged in), keeping its creation time and absolute deadline.
   */
  saveSession<T = Record<string, unknown>>(
    sessionId: string,
    input: { userId: string; data: T; device?: DeviceInfo },
  ): Promise<boolean>;
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
/**
 * How long the pointer of a caller-supplied id outlives the latest absolute deadline its session can have. Until it
 * expires, an adapter save for the id can tell a session that ended (deleted, revoked, expired) from one it never
 * stored, and refuses to bring the first back; a request still in flight this long after its session's absolute
 * deadline is past any request timeout.
 */
const POINTER_MARGIN_MS = 10 * 60_000;
/** A pointer whose session was logged out: the id stays known as ended until the pointer expires. */
const TOMBSTONE = '-';
/**
 * How far in the future (by this host's estimate of the Redis clock) a session's last-seen time may be before the
 * estimate is taken as wrong and a touch is sent anyway (which corrects it).
 */
const CLOCK_TOLERANCE_MS = 1000;

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
    repoint: script(REPOINT),
    release: script(RELEASE),
    take: script(TAKE),
    tombstone: script(TOMBSTONE_SCRIPT),
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
  const pointerTtlMs = settings.absoluteMs + Math.max(settings.idleMs, POINTER_MARGIN_MS);
  /**
   * The Redis clock minus this host's, learned from replies that carry Redis' time. The touch throttle compares a
   * session's last-seen time (Redis clock) with now: on a host whose clock is behind, comparing with the host clock
   * would hold touches back by the difference, and a difference above the idle timeout would log active users out.
   */
  let clockOffsetMs: number | undefined;
  const learnClock = (redisNowMs: number) => {
    if (Number.isFinite(redisNowMs)) clockOffsetMs = redisNowMs - Date.now();
  };
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

  /** Errors of a create whose earlier attempt may have run, whatever the last attempt's error says. */
  const afterMaybeApplied = new WeakSet<object>();

  /** A write that failed this way may be in Redis: whatever it claimed must stay claimed. */
  function mayHaveWritten(error: unknown): boolean {
    if (typeof error === 'object' && error !== null && afterMaybeApplied.has(error)) return true;
    return (
      SessionError.isInstance(error) &&
      (error.code === 'E_MAYBE_APPLIED' || error.code === 'E_NOT_REPLICATED')
    );
  }

  function sessionExists(): SessionError {
    return new SessionError(
      'E_SESSION_EXISTS',
      'A session with this sessionId exists or existed lately (for this or another user); ids must be unique.',
    );
  }

  function notFound(): SessionError {
    return new SessionError(
      'E_SESSION_NOT_FOUND',
      'No such session: it expired, was revoked, or never existed.',
    );
  }

  /**
   * Claims the pointer of a caller-supplied id for a user (SET NX): false when the id is, or was lately, in use. An
   * adapter whose claim may or may not have landed (E_MAYBE_APPLIED) reads it back: an id it never stored that now
   * names this user is its own claim.
   */
  async function claimPointer(sessionRef: string, tag: string, adapter: boolean): Promise<boolean> {
    const pointer = keys.pointer(sessionRef);
    try {
      const reply = await runner.command(
        pointer,
        'set',
        (pipeline) => pipeline.set(pointer, tag, 'PX', pointerTtlMs, 'NX'),
        false,
      );
      return reply !== null && reply !== undefined;
    } catch (error) {
      if (SessionError.isInstance(error) && error.code === 'E_NOT_REPLICATED') {
        // Our claim, written on the master only, is reported failed: it must not keep the id taken for a retry. A
        // refused claim (no reply) wrote nothing, and the pointer it met is someone else's, or a tombstone.
        const reply = (error as { reply?: unknown }).reply;
        if (reply !== null && reply !== undefined) await releasePointer(sessionRef, tag);
        throw error;
      }
      if (!adapter || !SessionError.isInstance(error) || error.code !== 'E_MAYBE_APPLIED') throw error;
      return (await runner.getString(pointer)) === tag;
    }
  }

  /**
   * Best effort: a claim whose create failed should not keep the id taken. Only while the pointer still holds the
   * claim (`tag`): a logout's tombstone or a move's new tag written since stays.
   */
  async function releasePointer(sessionRef: string, tag: string): Promise<void> {
    const pointer = keys.pointer(sessionRef);
    await runner.write(scripts.release, [pointer], [tag]).catch(() => undefined);
  }

  /**
   * `replace`: an adapter's save ('r': overwrite, counted once in the index). `keep`: the creation time and absolute
   * deadline of a session moved from another slot. `claim`: take the pointer of `sessionId` first (its caller has
   * not), so an id already in use, by this user or another, is refused before anything is written.
   */
  async function create<T>(
    input: CreateSessionInput<T>,
    replace: boolean,
    keep?: { createdAtMs: number; absoluteExpiresAtMs: number },
    claim = true,
  ): Promise<CreatedSession> {
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
    const claimed = input.sessionId !== undefined && claim;
    if (claimed && !(await claimPointer(sessionRef, user.tag, replace))) throw sessionExists();
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
          `${settings.idleMs},${settings.absoluteMs},${settings.maxSessionsPerUser},${mode},${wantRecords},${settings.absoluteMs + indexSlackMs},${extend},${keep?.createdAtMs ?? 0},${keep?.absoluteExpiresAtMs ?? 0}`,
          record,
          name,
        ],
        victimsToDeclare(user.tag),
      );
    let reply: unknown[];
    try {
      try {
        reply = await attempt(mode);
      } catch (error) {
        // The write may have run on a connection that closed. Writing the same session again is harmless ('r'
        // counts it once in the index), so a create of ours, or an adapter's save, is sent once more; a
        // caller-supplied id that must be new cannot tell its own first write from another's, so it reports
        // E_MAYBE_APPLIED.
        if (mode === 'c' || !SessionError.isInstance(error) || error.code !== 'E_MAYBE_APPLIED') throw error;
        try {
          reply = await attempt('r');
        } catch (retryError) {
          // The first attempt may have written the session: the retry's own failure does not undo that.
          if (typeof retryError === 'object' && retryError !== null) afterMaybeApplied.add(retryError);
          throw retryError;
        }
      }
    } catch (error) {
      // A create that may have run (E_MAYBE_APPLIED), or ran on the master only (E_NOT_REPLICATED), keeps its
      // pointer, so that a session it wrote stays reachable by its id and no other user can take the id.
      if (claimed && !mayHaveWritten(error)) await releasePointer(sessionRef, user.tag);
      throw error;
    }
    const status = text(reply[0]);
    if (status === 'exists' || status === 'gone') {
      if (claimed) await releasePointer(sessionRef, user.tag);
      throw status === 'exists' ? sessionExists() : notFound();
    }
    if (extend === 1) indexExtendedAt.set(user.tag, sentAt);
    const createdAtMs = numberOf(reply[1]);
    const absoluteExpiresAtMs = numberOf(reply[2]);
    if (!keep) learnClock(createdAtMs);
    audit({ type: 'create', sessionRef, userId: input.userId, device, atMs: createdAtMs });
    const evictedRefs = new Set<string>();
    const atMs = clockOffsetMs === undefined ? Date.now() : Date.now() + clockOffsetMs;
    for (let index = 4; index + 1 < reply.length; index += 2) {
      const ref = text(reply[index]);
      evictedRefs.add(ref);
      const value = reply[index + 1];
      if (!auditing) continue;
      // An entry whose session had already expired was only pruned: it expired, it was not evicted.
      if (!Buffer.isBuffer(value) || value.length === 0) {
        audit({ type: 'expire', sessionRef: ref, userId: input.userId, device: undefined, atMs });
        continue;
      }
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
      expiresAtMs: Math.min(absoluteExpiresAtMs, (keep ? Date.now() : createdAtMs) + settings.idleMs),
      absoluteExpiresAtMs,
      evicted,
    };
  }

  /**
   * An adapter id saved for another user (an anonymous session that logged in without regenerate): the session is
   * copied to the user's slot with its creation time and absolute deadline, then taken from its old slot (leaving a
   * marker of where it went), then the id is repointed. A logout racing with this either deletes the old copy first
   * (the take finds it gone and the new copy is removed), or tombstones the pointer first (the repoint fails and the
   * new copy is removed), or finds the pointer repointed and deletes the new copy itself. Two saves moving the id to
   * the same user share the copy: the second take reads the marker. False when the session had ended.
   */
  async function moveSession<T>(
    sessionRef: string,
    fromTag: string,
    input: CreateSessionInput<T> & { sessionId: string },
  ): Promise<boolean> {
    const fromKey = keys.session(fromTag, sessionRef);
    const current = await runner.get(fromKey);
    const header = current ? readHeader(current) : null;
    if (!header) return false;
    const user = keys.user(input.userId);
    const copyKey = keys.session(user.tag, sessionRef);
    // Copy first, take after: a copy refused (bad data) or failed leaves the session where it was, untouched.
    try {
      await create(
        input,
        true,
        { createdAtMs: header.createdAtMs, absoluteExpiresAtMs: header.absoluteExpiresAtMs },
        false,
      );
    } catch (error) {
      if (SessionError.isInstance(error) && error.code === 'E_SESSION_NOT_FOUND') return false;
      throw error;
    }
    const dropCopy = () => runner.write(scripts.delete, [copyKey, user.index], ['0']);
    // Sent again after a lost reply: a take that ran left its marker, and the second one reads it.
    const taken = (await runner.write(
      scripts.take,
      [fromKey, keys.index(fromTag), keys.moved(fromTag, sessionRef)],
      [user.tag, POINTER_MARGIN_MS],
    )) as unknown[];
    const outcome = text(taken?.[0]);
    // 'moved' to this user: this take sent again, or a concurrent save of this id for this user took it first; the
    // copy both wrote is the session either way. Gone from the old slot before the take (logged out, revoked or
    // expired meanwhile), or moved to another user: the copy must not outlive it.
    if (outcome !== 'taken' && !(outcome === 'moved' && text(taken[1]) === user.tag)) {
      await dropCopy();
      return false;
    }
    const pointer = keys.pointer(sessionRef);
    if (numberOf(await runner.write(scripts.repoint, [pointer], [fromTag, user.tag])) === 1) return true;
    // Repointed already by the concurrent save: the session lives in this slot. A tombstone: a logout came first.
    if ((await runner.getString(pointer)) === user.tag) return true;
    await dropCopy();
    return false;
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
    const redisNowMs = Date.now() + (clockOffsetMs ?? 0);
    // A last-seen time ahead of our estimate of the Redis clock means the estimate is wrong (none yet, or this host's
    // clock stepped): touch, and learn the clock from the reply, rather than hold touches back until a timeout.
    if (
      touch &&
      (redisNowMs - lastSeenAtMs >= settings.touchIntervalMs ||
        lastSeenAtMs > redisNowMs + (clockOffsetMs === undefined ? 0 : CLOCK_TOLERANCE_MS))
    ) {
      const reply = (await runner.read(
        scripts.touch,
        [located.session, keys.index(located.tag)],
        [settings.touchIntervalMs],
      )) as unknown[] | null;
      if (!reply) return null;
      lastSeenAtMs = numberOf(reply[1]);
      learnClock(numberOf(reply[4]));
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
        learnClock(lastSeenAtMs);
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
    let removed = reply;
    let sessionKey = located.session;
    if (located.pointer) {
      // A tombstone, not a delete: a request that loaded the session before this logout and saves after it (the
      // connect-redis #328 race) must find the id ended, not unknown, or its adapter save would create it again.
      const held = text(await runner.write(scripts.tombstone, [located.pointer], [TOMBSTONE]));
      if (held !== located.tag && TAG.test(held)) {
        // Moved to another slot (an anonymous session that logged in) between the lookup and the delete above.
        sessionKey = keys.session(held, located.sessionRef);
        removed = await runner.write(scripts.delete, [sessionKey, keys.index(held)], [wantRecords]);
      }
    }
    if (removed === null || removed === undefined) return false;
    const record = recordForAudit(sessionKey, removed);
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

  /** Lists or counts; index entries it finds expired are pruned and audited as `expire`. Returns the live pairs. */
  async function list(userId: string, mode: 'list' | 'count'): Promise<{ count: number; live: unknown[] }> {
    const user = keys.user(userId);
    const reply = await withDeclared(
      (declaredKeys, args) => runner.read(scripts.list, declaredKeys, args),
      user.tag,
      [user.index, user.name],
      [mode],
      allMembers(user.tag),
    );
    const removed = numberOf(reply[3]);
    const atMs = Date.now() + (clockOffsetMs ?? 0);
    for (const ref of reply.slice(4, 4 + removed)) {
      audit({ type: 'expire', sessionRef: text(ref), userId, device: undefined, atMs });
    }
    return { count: numberOf(reply[1]), live: reply.slice(4 + removed) };
  }

  async function cleanup(count: number | undefined): Promise<CleanupResult> {
    if (count !== undefined && (!Number.isSafeInteger(count) || count < 1 || count > 100_000)) {
      throw new SessionError(
        'E_INVALID_ARGUMENT',
        `cleanupExpiredSessions count must be an integer from 1 to 100000 (got ${String(count)}).`,
      );
    }
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
      const atMs = Date.now() + (clockOffsetMs ?? 0);
      for (const ref of reply.slice(4, 4 + numberOf(reply[3]))) {
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
          learnClock(numberOf(reply[4]));
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
          const { live } = await list(userId, 'list');
          const sessions: SessionInfo[] = [];
          for (let index = 0; index + 1 < live.length; index += 2) {
            const handle = text(live[index]);
            const value = live[index + 1] as Buffer;
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
          // The index is ordered by deadline, which moves with every touch: newest first is by creation time. Within
          // one millisecond the reversed index order (deadlines to the microsecond, untouched yet) breaks the tie;
          // the sort is stable.
          return sessions.reverse().sort((a, b) => b.createdAtMs - a.createdAtMs);
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
          return (await list(userId, 'count')).count;
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
          const device = normalizeDevice(input.device, settings.ipAddress, hash);
          const user = keys.user(input.userId);
          const sessionRef = keys.sessionRef(sessionId);
          const pointer = keys.pointer(sessionRef);
          const fresh = { userId: input.userId, data: input.data, device: input.device, sessionId };
          // Two rounds at most: a claim lost to a concurrent first save of the same new id reads the winner's.
          for (let round = 0; round < 2; round++) {
            const tag = await runner.getString(pointer);
            if (tag === null) {
              // Never stored (its pointer outlives the session's absolute deadline by POINTER_MARGIN_MS): new.
              if (!(await claimPointer(sessionRef, user.tag, true))) continue;
              try {
                await create(fresh, true, undefined, false);
              } catch (error) {
                // Refused or failed before writing: the id was never stored, and a later save must be able to.
                if (!mayHaveWritten(error)) await releasePointer(sessionRef, user.tag);
                throw error;
              }
              return true;
            }
            // A tombstone (logged out) or anything else that is not a slot tag: the session ended.
            if (!TAG.test(tag)) return false;
            const sessionKey = keys.session(tag, sessionRef);
            if (tag === user.tag) {
              const bytes = encodeRecord(sessionKey, { u: input.userId, v: device, d: input.data });
              const reply = (await runner.write(
                scripts.update,
                [sessionKey, keys.index(tag)],
                [bytes, ''],
              )) as unknown[];
              // Missing: revoked, expired, or deleted. Never written again (the connect-redis #328 race).
              if (text(reply[0]) !== 'ok') return false;
              learnClock(numberOf(reply[2]));
              audit({
                type: 'update',
                sessionRef,
                userId: input.userId,
                device,
                atMs: numberOf(reply[2]),
              });
              return true;
            }
            return moveSession(sessionRef, tag, fresh);
          }
          return false;
        },
        (saved) => (saved ? 'ok' : 'miss'),
      );
    },

    async close() {
      closed = true;
    },
  };
}
