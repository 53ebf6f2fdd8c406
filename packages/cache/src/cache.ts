import { randomBytes } from 'node:crypto';
import { AustaCodecError, type Codec, createCodec } from '@austa/codec';
import {
  AustaRedisError,
  errorType,
  scanKeys,
  unlinkKeys,
  withoutCommandArguments,
} from '@austa/redis-cluster';
import calculateSlot from 'cluster-key-slot';
import { Command } from 'ioredis';
import { InvalidationBus } from './bus.js';
import {
  decodeHeader,
  type EnvelopeHeader,
  encodeHeader,
  FIXED_HEADER_BYTES,
  type TagVersion,
  WriteIds,
  writeIdOf,
} from './envelope.js';
import {
  AustaCacheError,
  CacheClosedError,
  CacheConfigError,
  CacheIncompleteScanError,
  CacheInputError,
  CacheUnavailableError,
  FactoryTimeoutError,
} from './errors.js';
import { InflightTracker } from './inflight.js';
import { createInstruments, type DegradedReason, type Instruments, type Operation } from './instruments.js';
import { checkPart, type KeyLayout, keyLayout } from './keys.js';
import { type L1Entry, L1Store } from './l1.js';
import {
  type CacheLogger,
  type CacheOptions,
  DEFAULTS,
  type LockOptions,
  MAX_TTL_SECONDS,
  type ResolvedLock,
  type ResolvedOptions,
  resolveLock,
  resolveOptions,
} from './options.js';
import { type Arg, RedisIo } from './redis-io.js';
import { releaseLock, renewLock } from './scripts/lock.js';
import { readEntry } from './scripts/read-entry.js';
import { pexpireIfWriteId, setIfUnchanged } from './scripts/write-id.js';
import { eachLimit, TagStore } from './tags.js';

/** Options of `set` and `setMany`. */
export interface SetOptions {
  /** Time to live in seconds. Default: the cache's `defaultTtlSeconds`. */
  ttlSeconds?: number;
  /** Tags to invalidate the entry by. Each tag adds a round trip to the first write under it per call. */
  tags?: readonly string[];
  /** Grace period in seconds: how long after its TTL getOrSet may still serve the entry as stale. */
  graceSeconds?: number;
}

/** Options of `getOrSet`. */
export interface GetOrSetOptions extends SetOptions {
  /** TTL of a cached `null`, in seconds. Default: the cache's `negativeTtlSeconds`. */
  negativeTtlSeconds?: number;
  /** Distributed lock: at most one factory call across processes. Default: the cache's `lock` option. */
  lock?: boolean | LockOptions;
  /** Wait this long for a fresh value before serving a stale one, in ms. Default: the cache's. */
  softTimeoutMs?: number;
  /** After this, in ms, the caller gets a stale value or `E_FACTORY_TIMEOUT`. Default: the cache's. */
  hardTimeoutMs?: number;
}

/** What a getOrSet factory receives. */
export interface FactoryContext<T> {
  /** The key being computed. */
  key: string;
  /** Aborted when the factory passes its hard timeout or the cache is closed. */
  signal: AbortSignal;
  /** The stale value being refreshed, if any. */
  staleValue: T | undefined;
}

export type Factory<T> = (context: FactoryContext<T>) => T | Promise<T>;

/** One entry for `setMany` or `warmUp`. */
export interface CacheEntry<T = unknown> {
  key: string;
  value: T;
  ttlSeconds?: number;
  tags?: readonly string[];
}

export interface WarmUpOptions {
  /** Commands per pipeline. Default 100. */
  batchSize?: number;
  /** Pipelines in flight at once, over all nodes. Default 4. */
  concurrency?: number;
}

export interface WarmUpResult {
  /** Entries written. */
  written: number;
  /** Entries not written because Redis failed (the call does not throw for them). */
  failed: number;
}

export interface TierStats {
  hits: number;
  misses: number;
  staleHits: number;
  /** hits / (hits + misses + staleHits), 0 when nothing was asked. */
  hitRate: number;
}

export interface CacheStats {
  l1: TierStats & { enabled: boolean; entries: number; bytes: number; evictions: number };
  l2: TierStats & { errors: number };
  factory: { calls: number; errors: number; timeouts: number };
  /** Answers given without Redis because it failed or its breaker was open. */
  degraded: number;
  invalidations: { sent: number; received: number };
  /** Tag-invalidated entries deleted by the background sweep. */
  swept: number;
  /** Redis shards whose circuit breaker is open now. */
  circuitBreakersOpen: number;
}

export interface Cache {
  readonly namespace: string;
  /** Stores a value. Rejects with `E_REDIS_UNAVAILABLE` when Redis did not confirm the write. */
  set<T>(key: string, value: T, options?: SetOptions): Promise<void>;
  /** The value, or `undefined` on a miss. A cached `null` is returned as `null`. Never throws for Redis failures. */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** The cached value, or the factory's (computed once per key across concurrent callers). */
  getOrSet<T>(key: string, factory: Factory<T>, options?: GetOrSetOptions): Promise<T>;
  /** Deletes an entry; resolves to whether it existed. */
  delete(key: string): Promise<boolean>;
  /** Deletes entries of the namespace matching a glob over keys (`*`, `?`, `[...]`, `\` escapes). */
  deletePattern(glob: string): Promise<number>;
  /** Invalidates every entry written under any of the tags. Cost: one command per tag. */
  invalidateByTags(tags: readonly string[]): Promise<void>;
  /** Whether `get` would return a value now. */
  exists(key: string): Promise<boolean>;
  /** Remaining fresh time in ms (PTTL minus the grace period), or `undefined` when there is no current entry. */
  getTTL(key: string): Promise<number | undefined>;
  /** Sets the remaining time to live to `ttlSeconds` (PEXPIRE). Resolves to false when there is no current entry. */
  extendTTL(key: string, ttlSeconds: number): Promise<boolean>;
  getStats(): CacheStats;
  /** Deletes every key of the namespace, on every master. Resolves to how many keys were removed. */
  clear(): Promise<number>;
  /** Writes many entries, pipelined per node, a few pipelines at a time. */
  warmUp<T>(entries: ReadonlyArray<CacheEntry<T>>, options?: WarmUpOptions): Promise<WarmUpResult>;
  getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>>;
  setMany<T>(entries: ReadonlyArray<CacheEntry<T>>, options?: SetOptions): Promise<void>;
  /** Deletes entries; resolves to how many existed. */
  deleteMany(keys: readonly string[]): Promise<number>;
  /** Stops timers and the bus connection. Never closes the Redis client you passed in. */
  close(): Promise<void>;
}

/** A read of one entry from Redis. */
type ReadOutcome =
  | { state: 'hit' | 'stale'; data: Buffer; header: EnvelopeHeader; pttl: number | undefined }
  | { state: 'miss'; data?: Buffer }
  | { state: 'error'; error: CacheUnavailableError };

/** What getOrSet callers are given: the creator gets `value`, others a fresh decode of `data`. */
interface Answer {
  value: unknown;
  data: Buffer | undefined;
  header: EnvelopeHeader | undefined;
  redisKey: string;
}

interface Stale {
  value(): unknown;
  tier: 'l1' | 'l2';
}

interface Flight {
  stale: Stale | undefined;
  result: Promise<Answer>;
  handedOut: boolean;
  /** Set when the key (or a tag, or everything) was invalidated while the factory ran: its result is not stored. */
  invalidated: boolean;
  /** Write id of the entry the read saw (stale), or '' when it saw none: the result is stored only over that one. */
  seenWriteId: Buffer | '';
  /** When the getOrSet that started the factory was called (performance.now()): its hard timeout runs from there. */
  startedAt: number;
  key: string;
}

const MISS: ReadOutcome = { state: 'miss' };
const passOutcome = (outcome: ReadOutcome): ReadOutcome => outcome;
/** What decodeRead returns for bytes that are not a value (never a value a caller can store). */
const UNDECODABLE = Symbol('undecodable');
/** Overdue factories tracked for invalidation (see retire); past this, the oldest one's late result is dropped. */
const MAX_OVERDUE_FLIGHTS = 1000;
/** Tag keys live this much longer than the entries written under them. */
const TAG_TTL_MARGIN_MS = 60_000;

/** A reply saying the command went to the wrong node and did not run there. */
function isRedirect(error: Error): boolean {
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error && /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(cause.message);
}

function readFailure(error: unknown): ReadOutcome {
  return {
    state: 'error',
    error:
      error instanceof CacheUnavailableError
        ? error
        : new CacheUnavailableError(`Reading from Redis failed: ${(error as Error).message}`, 'redis_error', {
            cause: error,
          }),
  };
}

function elapsedSeconds(started: number): number {
  return (performance.now() - started) / 1000;
}

function inputError(code: 'E_INVALID_TTL' | 'E_INVALID_ARGUMENT' | 'E_INVALID_TAG', message: string): never {
  throw new CacheInputError(code, message);
}

/** Seconds from a caller to ms, with `E_INVALID_TTL` for anything but a positive finite number. */
function ttlMsOf(value: unknown, fallbackMs: number, field = 'ttlSeconds'): number {
  if (value === undefined) return fallbackMs;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TTL_SECONDS) {
    inputError('E_INVALID_TTL', `${field} must be a number of seconds above 0 (got ${String(value)}).`);
  }
  return Math.max(1, Math.round(value * 1000));
}

function graceMsOf(value: unknown, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 49 * 24 * 3600) {
    inputError(
      'E_INVALID_TTL',
      `graceSeconds must be a number of seconds from 0 to 49 days (got ${String(value)}).`,
    );
  }
  return Math.round(value * 1000);
}

function timeoutMsOf(value: unknown, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    inputError('E_INVALID_ARGUMENT', `${field} must be a number of ms of at least 0 (got ${String(value)}).`);
  }
  return value;
}

/**
 * Creates a cache over an existing ioredis client. The invalidation bus opens its own connection at once (none with
 * `bus: false`); nothing else connects until the first call.
 * @example
 * const cache = createCache({ redis, namespace: 'patients', defaultTtlSeconds: 300 });
 * const patient = await cache.getOrSet(`patient:${id}`, () => db.findPatient(id), { tags: [`clinic:${clinicId}`] });
 */
export function createCache(options: CacheOptions): Cache {
  const resolved = resolveOptions(options);
  return new CacheImpl(options, resolved);
}

class CacheImpl implements Cache {
  readonly namespace: string;
  private readonly options: ResolvedOptions;
  private readonly layout: KeyLayout;
  private readonly codec: Codec;
  /** Encodes L1 copies when the user's codec encrypts (L1 holds clear bytes in process memory only). */
  private readonly plainCodec: Codec | undefined;
  private readonly io: RedisIo;
  private readonly tags: TagStore;
  private readonly instruments: Instruments;
  private readonly writeIds = new WriteIds();
  private readonly tracker = new InflightTracker();
  private readonly l1: L1Store | undefined;
  private readonly bus: InvalidationBus | undefined;
  private readonly flights = new Map<string, Flight>();
  /** Flights past their hard timeout that new callers no longer join (see joinableFlight); kept until they settle. */
  private readonly overdue = new Set<Flight>();
  /** Incremented by every local invalidation: a getOrSet whose read crossed one reads again before computing. */
  private localWrites = 0;
  private readonly logger: CacheLogger;
  private readonly stopCollect: () => void;
  private readonly background = new Set<Promise<unknown>>();
  private readonly sweepQueue = new Set<string>();
  private sweeping = false;
  /** Signals of running factories, aborted by close(). */
  private readonly factoryControllers = new Set<AbortController>();
  private closed = false;
  /** Reads need the PTTL when freshness is judged by it: a grace period, or an L1 that must not outlive Redis. */
  private readonly readWithTtl: boolean;
  private readonly headerMaxBytes: number;
  private defaultSettings: ReturnType<CacheImpl['getOrSetSettings']> | undefined;
  /** Whether operation latency is recorded (metrics given): without it, no clock reads for it. */
  private readonly timed: boolean;

  constructor(raw: CacheOptions, options: ResolvedOptions) {
    this.options = options;
    this.namespace = options.namespace;
    this.layout = keyLayout(options.prefix, options.namespace);
    this.logger = raw.logger ?? console;
    if (raw.codec !== undefined) {
      const codec = raw.codec as Partial<Codec>;
      if (typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
        throw new CacheConfigError('codec must be a codec from @austa/codec (createCodec()).');
      }
    }
    this.codec = raw.codec ?? createCodec({ maxBytes: options.maxValueBytes });
    this.plainCodec = this.codec.encrypts ? createCodec({ maxBytes: Number.MAX_SAFE_INTEGER }) : undefined;
    const client = raw.redis;
    const recordRedis =
      raw.recordRedisLatency === undefined || raw.recordRedisLatency === 'auto'
        ? // A client from @austa/redis-cluster wraps sendCommand on the instance and records every command itself.
          !Object.hasOwn(client, 'sendCommand')
        : raw.recordRedisLatency;
    this.instruments = createInstruments(raw.metrics, options.name, { recordRedis, errorTypeOf: errorType });
    this.timed = raw.metrics !== undefined;
    this.io = new RedisIo(client, {
      timeoutMs: options.timeoutMs,
      failureThreshold: options.breaker.failureThreshold,
      openMs: options.breaker.openMs,
      observe: this.instruments.redisObserver,
    });
    this.headerMaxBytes = FIXED_HEADER_BYTES + options.maxTagsPerEntry * (2 + options.maxKeyBytes + 1 + 20);
    this.tags = new TagStore(this.io, this.layout, this.headerMaxBytes);
    this.readWithTtl = options.l1 !== undefined || options.graceMs > 0;
    if (options.l1 !== undefined) {
      this.l1 = new L1Store(options.l1.maxEntries, options.l1.maxBytes, options.l1.admission);
    }
    if (options.bus) {
      this.bus = new InvalidationBus(
        client,
        this.io,
        this.layout,
        randomBytes(8).toString('hex'),
        {
          onKeys: (keys) => {
            for (const key of keys) this.forgetKey(key);
          },
          onTags: (tags) => {
            this.l1?.deleteTags(tags);
            this.forgetAll(false);
          },
          onClear: () => this.forgetAll(true),
          onGap: (afterConfirmation) => this.forgetAll(false, afterConfirmation),
        },
        this.instruments,
        {
          heartbeatIntervalMs: options.l1?.heartbeatIntervalMs ?? DEFAULTS.l1HeartbeatIntervalMs,
          toleranceMs: options.l1?.busToleranceMs ?? DEFAULTS.l1BusToleranceMs,
          logger: this.logger,
        },
      );
      this.bus.start();
    }
    this.stopCollect = this.instruments.onCollect(() => ({
      l1Entries: this.l1?.size ?? 0,
      l1Bytes: this.l1?.bytes ?? 0,
      breakersOpen: this.io.breakersOpen,
    }));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Local bookkeeping

  private ensureOpen(): void {
    if (this.closed) throw new CacheClosedError();
  }

  /** An invalidation of one key, from this instance or another: L1, running getOrSets and in-flight fills. */
  private forgetKey(key: string, keepFlight = false): void {
    this.l1?.delete(key);
    this.localWrites++;
    // A getOrSet already computing may be working from data older than this change: later callers start anew, and
    // its result is not stored.
    if (!keepFlight) {
      const flight = this.flights.get(key);
      if (flight !== undefined) {
        flight.invalidated = true;
        this.flights.delete(key);
      }
      for (const overdue of this.overdue) if (overdue.key === key) overdue.invalidated = true;
    }
    this.tracker.invalidateKey(key);
  }

  private forgetAll(clearL1: boolean, flightsToo = true): void {
    if (clearL1) this.l1?.clear();
    this.localWrites++;
    if (flightsToo) {
      for (const flight of this.flights.values()) flight.invalidated = true;
      for (const flight of this.overdue) flight.invalidated = true;
      this.flights.clear();
    }
    this.tracker.invalidateAll();
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.background.add(promise);
    void promise.finally(() => this.background.delete(promise)).catch(() => undefined);
    return promise;
  }

  private checkKey(key: unknown): asserts key is string {
    checkPart(key, 'key', this.options.maxKeyBytes);
  }

  private checkTags(tags: unknown, required: boolean): string[] {
    if (tags === undefined) {
      if (required) inputError('E_INVALID_TAG', 'At least one tag is required.');
      return [];
    }
    if (!Array.isArray(tags)) inputError('E_INVALID_TAG', 'tags must be an array of strings.');
    if (tags.length === 0) {
      if (required) inputError('E_INVALID_TAG', 'The tag list is empty: pass at least one tag.');
      return [];
    }
    for (const tag of tags) checkPart(tag, 'tag', this.options.maxKeyBytes);
    const unique = [...new Set(tags as string[])];
    if (unique.length > this.options.maxTagsPerEntry) {
      inputError(
        'E_INVALID_TAG',
        `At most ${this.options.maxTagsPerEntry} tags per call (got ${unique.length}); raise maxTagsPerEntry.`,
      );
    }
    return unique;
  }

  private jittered(ttlMs: number): number {
    const jitter = this.options.ttlJitter;
    return jitter === 0 ? ttlMs : Math.max(1, Math.round(ttlMs * (1 - jitter * Math.random())));
  }

  private degraded(operation: Operation, error: unknown): void {
    const reason: DegradedReason = error instanceof CacheUnavailableError ? error.reason : 'redis_error';
    this.instruments.degraded(operation, reason);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Envelopes

  private associatedData(redisKey: string, header: Buffer): Buffer {
    return Buffer.concat([Buffer.from(redisKey), header]);
  }

  /** Encodes an entry; codec failures become `CacheInputError`s (nothing has been written yet). */
  private encode(redisKey: string, value: unknown, graceMs: number, tags: readonly TagVersion[]): Buffer {
    const header = encodeHeader(graceMs, this.writeIds.next(), tags);
    let payload: Buffer;
    try {
      payload = this.codec.encode(
        value,
        this.codec.encrypts
          ? { maxBytes: this.options.maxValueBytes, associatedData: this.associatedData(redisKey, header) }
          : { maxBytes: this.options.maxValueBytes },
      );
    } catch (error) {
      throw this.codecInputError(error);
    }
    return Buffer.concat([header, payload], header.length + payload.length);
  }

  private codecInputError(error: unknown): unknown {
    if (
      AustaCodecError.isInstance(error) &&
      (error.code === 'E_UNSERIALIZABLE' || error.code === 'E_VALUE_TOO_LARGE')
    ) {
      return new CacheInputError(error.code, error.message, { cause: error });
    }
    return error;
  }

  /** Checks that a value can be stored, before anything is written (for writes whose header needs Redis first). */
  private checkValue(redisKey: string, value: unknown, graceMs: number, tags: readonly string[]): void {
    if (value === undefined) {
      inputError('E_INVALID_ARGUMENT', 'undefined cannot be cached: store null to cache "nothing".');
    }
    // Same tag names and version lengths as the real header, so an encrypted payload has its real size.
    this.encode(
      redisKey,
      value,
      graceMs,
      tags.map((tag) => ({ tag, version: '0000000000000000' })),
    );
  }

  private decode(redisKey: string, data: Buffer, header: EnvelopeHeader): unknown {
    const payload = data.subarray(header.payloadOffset);
    return this.codec.encrypts
      ? this.codec.decode(payload, {
          associatedData: this.associatedData(redisKey, data.subarray(0, header.payloadOffset)),
        })
      : this.codec.decode(payload);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // L1

  private l1Fresh(key: string, now: number): L1Entry | undefined {
    const entry = this.l1?.get(key);
    if (entry === undefined) return undefined;
    if (now > entry.staleUntil || now > entry.trustUntil || !this.bus?.trusts(entry.generation, now)) {
      this.l1?.delete(key);
      return undefined;
    }
    return entry;
  }

  private l1Value(entry: L1Entry): unknown {
    if (entry.bytes === undefined) return entry.value;
    return (this.plainCodec ?? this.codec).decode(entry.bytes);
  }

  /**
   * Fills the L1 after a read or write of Redis: only when no invalidation touched the key meanwhile (`clean`), and
   * only while the bus is confirmed. `remainingMs` is what Redis keeps the entry for (PTTL).
   */
  private l1Store(
    key: string,
    generation: number,
    clean: boolean,
    value: unknown,
    data: Buffer | undefined,
    header: EnvelopeHeader | undefined,
    remainingMs: number,
    graceMs: number,
    tags: readonly TagVersion[],
  ): void {
    const l1 = this.l1;
    const settings = this.options.l1;
    if (l1 === undefined || settings === undefined || this.bus === undefined) return;
    const now = performance.now();
    if (!clean || generation !== this.bus.generation || !this.bus.confirmed(now)) {
      l1.delete(key);
      return;
    }
    let bytes: Buffer | undefined;
    // Strings, numbers, booleans, null and BigInts cannot be mutated by a caller: they are kept as they are and
    // handed out without a copy. Objects are kept as bytes and decoded per hit (copyOnRead).
    const copy = settings.copyOnRead && typeof value === 'object' && value !== null;
    if (copy) {
      if (this.plainCodec !== undefined) bytes = this.plainCodec.encode(value);
      else if (data !== undefined && header !== undefined) bytes = data.subarray(header.payloadOffset);
      else bytes = this.codec.encode(value, { maxBytes: Number.MAX_SAFE_INTEGER });
    }
    const freshMs = Math.min(remainingMs - graceMs, settings.maxTtlMs);
    if (freshMs <= 0 && graceMs === 0) return;
    l1.set(key, {
      bytes,
      value: copy ? undefined : value,
      size: (bytes?.length ?? data?.length ?? 64) + key.length * 2 + 64,
      freshUntil: now + freshMs,
      staleUntil: now + Math.min(remainingMs, freshMs + graceMs),
      trustUntil: Number.POSITIVE_INFINITY,
      generation,
      tags: tags as TagVersion[],
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Reads

  /**
   * One read of an entry, tags checked. Never rejects: failures come back as `{ state: 'error' }`. `hint` is the tag
   * list a getOrSet caller passed: their versions are read in parallel with the entry, so a tagged hit whose tags
   * match the hint takes one round trip instead of two.
   */
  private readL2(
    redisKey: string,
    withTtl: boolean,
    deadline: number,
    hint?: readonly string[],
  ): Promise<ReadOutcome>;
  private readL2<R>(
    redisKey: string,
    withTtl: boolean,
    deadline: number,
    hint: readonly string[] | undefined,
    next: (outcome: ReadOutcome) => R | PromiseLike<R>,
  ): Promise<R>;
  private readL2(
    redisKey: string,
    withTtl: boolean,
    deadline: number,
    hint?: readonly string[],
    next: (outcome: ReadOutcome) => unknown = passOutcome,
  ): Promise<unknown> {
    const versions =
      hint !== undefined && hint.length > 0
        ? this.tags.current(hint, deadline).catch(() => undefined)
        : undefined;
    const failed = (error: unknown) => next(readFailure(error));
    if (withTtl) {
      return this.io
        .eval<[Buffer | null, number]>(readEntry, [redisKey], [], true, deadline)
        .then((reply) => {
          const outcome = this.outcomeOf(redisKey, reply[0], Number(reply[1]), deadline, hint, versions);
          return outcome instanceof Promise ? outcome.then(next) : next(outcome);
        }, failed);
    }
    // The common case, one GET: the caller's continuation runs in the reply's own promise reaction.
    return this.io.call<Buffer | null, unknown>(
      'get',
      [redisKey],
      redisKey,
      true,
      deadline,
      (data) => {
        const outcome = this.outcomeOf(redisKey, data, undefined, deadline, hint, versions);
        return outcome instanceof Promise ? outcome.then(next) : next(outcome);
      },
      failed,
    );
  }

  private outcomeOf(
    redisKey: string,
    data: Buffer | null,
    pttl: number | undefined,
    deadline: number,
    hint?: readonly string[],
    hinted?: Promise<Array<string | null> | undefined>,
  ): ReadOutcome | Promise<ReadOutcome> {
    if (data === null) return MISS;
    const header = decodeHeader(data);
    // Not an entry of ours (or of a newer format): a miss, but getOrSet may replace exactly these bytes.
    if (header === undefined) return { state: 'miss', data };
    if (header.graceMs === 0 && header.tags.length === 0) {
      if (pttl !== undefined && pttl < 0 && pttl !== -1) return MISS;
      return { state: 'hit', data, header, pttl };
    }
    return this.checkOutcome(redisKey, data, header, pttl, deadline, hint, hinted).catch(readFailure);
  }

  /** The slower part of a read: the PTTL of an entry with a grace period, and its tags' current versions. */
  private async checkOutcome(
    redisKey: string,
    data: Buffer,
    header: EnvelopeHeader,
    known: number | undefined,
    deadline: number,
    hint?: readonly string[],
    hinted?: Promise<Array<string | null> | undefined>,
  ): Promise<ReadOutcome> {
    let pttl = known;
    if (header.graceMs > 0 && pttl === undefined) {
      pttl = await this.io.send<number>('pttl', [redisKey], redisKey, false, deadline);
    }
    if (pttl !== undefined && pttl < 0 && pttl !== -1) return MISS;
    if (header.tags.length > 0 && !(await this.tagsCurrent(header.tags, deadline, hint, hinted))) {
      return { state: 'miss', data };
    }
    const stale = header.graceMs > 0 && pttl !== undefined && pttl !== -1 && pttl <= header.graceMs;
    return { state: stale ? 'stale' : 'hit', data, header, pttl };
  }

  /** Whether stored tag versions are current: from the versions read alongside when the hint covers them. */
  private async tagsCurrent(
    stored: readonly TagVersion[],
    deadline: number,
    hint: readonly string[] | undefined,
    hinted: Promise<Array<string | null> | undefined> | undefined,
  ): Promise<boolean> {
    if (hint !== undefined && hinted !== undefined) {
      const versions = await hinted;
      if (versions !== undefined) {
        const byTag = new Map<string, string | null>();
        hint.forEach((tag, index) => {
          byTag.set(tag, versions[index] ?? null);
        });
        if (stored.every((entry) => byTag.has(entry.tag))) {
          return stored.every((entry) => byTag.get(entry.tag) === entry.version);
        }
      }
    }
    return this.tags.isCurrent(stored, deadline);
  }

  /** Decodes a read for one caller, or UNDECODABLE (logged) when the stored bytes cannot be decoded. */
  private decodeRead(redisKey: string, data: Buffer, header: EnvelopeHeader): unknown {
    try {
      return this.decode(redisKey, data, header);
    } catch (error) {
      // Corrupt, tampered, or written with a key this codec lacks: a miss, never the bytes (they may be PHI).
      const code = AustaCodecError.isInstance(error) ? error.code : 'E_DECODE';
      this.logger.warn(
        `[@austa/cache] an entry of cache "${this.options.name}" could not be decoded (${code}); treated as a miss.`,
      );
      return UNDECODABLE;
    }
  }

  get<T = unknown>(key: string): Promise<T | undefined> {
    const started = performance.now();
    try {
      this.ensureOpen();
      this.checkKey(key);
    } catch (error) {
      return Promise.reject(error);
    }
    const result = this.getOne(key, started, 'get') as Promise<T | undefined>;
    return this.timed
      ? result.finally(() => this.instruments.duration('get', elapsedSeconds(started)))
      : result;
  }

  /** get() for one key: sync on an L1 hit, one promise chain to Redis otherwise (the hot path has no async frame). */
  private getOne(key: string, started: number, operation: Operation): Promise<unknown> {
    let fallback: L1Entry | undefined;
    if (this.l1 !== undefined) {
      const entry = this.l1Fresh(key, started);
      if (entry !== undefined) {
        if (started <= entry.freshUntil) {
          this.instruments.request('l1', 'hit');
          return Promise.resolve(this.l1Value(entry));
        }
        fallback = entry;
      }
      this.instruments.request('l1', 'miss');
    }
    const redisKey = this.layout.entry(key);
    const generation = this.bus?.generation ?? 0;
    // Only an L1 fill needs to know whether an invalidation crossed the read.
    const ticket = this.l1 === undefined ? undefined : this.tracker.begin(key);
    // Each get() reads on its own: sharing one read among concurrent gets of a key cost every read about a
    // microsecond (measured), and hot keys are what the L1 is for.
    return this.readL2(redisKey, this.readWithTtl, started + this.options.timeoutMs, undefined, (outcome) => {
      const clean = ticket === undefined || this.tracker.end(ticket);
      return this.answerGet(key, redisKey, outcome, fallback, generation, clean, operation);
    });
  }

  private answerGet(
    key: string,
    redisKey: string,
    outcome: ReadOutcome,
    fallback: L1Entry | undefined,
    generation: number,
    clean: boolean,
    operation: Operation,
  ): unknown {
    if (outcome.state === 'hit') {
      const value = this.decodeRead(redisKey, outcome.data, outcome.header);
      if (value === UNDECODABLE) {
        this.instruments.request('l2', 'error');
        return undefined;
      }
      this.instruments.request('l2', 'hit');
      if (this.l1 !== undefined) {
        this.l1Store(
          key,
          generation,
          clean,
          value,
          outcome.data,
          outcome.header,
          outcome.pttl ?? this.options.defaultTtlMs,
          outcome.header.graceMs,
          outcome.header.tags,
        );
      }
      return value;
    }
    if (outcome.state === 'error') {
      this.instruments.request('l2', 'error');
      this.degraded(operation, outcome.error);
      // Redis is down or slow: the L1's grace copy is better than nothing, if the bus still vouches for it.
      if (fallback !== undefined) {
        this.instruments.request('l1', 'stale');
        return this.l1Value(fallback);
      }
      return undefined;
    }
    // A stale entry is for getOrSet, which can refresh it; get() reports a miss.
    this.instruments.request('l2', 'miss');
    return undefined;
  }

  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    const started = performance.now();
    this.ensureOpen();
    if (!Array.isArray(keys)) inputError('E_INVALID_ARGUMENT', 'getMany expects an array of keys.');
    for (const key of keys) this.checkKey(key);
    try {
      return (await Promise.all(keys.map((key) => this.getOne(key, started, 'get_many')))) as Array<
        T | undefined
      >;
    } finally {
      this.instruments.duration('get_many', elapsedSeconds(started));
    }
  }

  async exists(key: string): Promise<boolean> {
    const started = performance.now();
    this.ensureOpen();
    this.checkKey(key);
    try {
      if (this.l1 !== undefined) {
        const entry = this.l1Fresh(key, started);
        if (entry !== undefined && started <= entry.freshUntil) return true;
      }
      const outcome = await this.readL2(
        this.layout.entry(key),
        this.readWithTtl,
        started + this.options.timeoutMs,
      );
      if (outcome.state === 'error') {
        this.degraded('exists', outcome.error);
        throw outcome.error;
      }
      return outcome.state === 'hit';
    } finally {
      this.instruments.duration('exists', elapsedSeconds(started));
    }
  }

  async getTTL(key: string): Promise<number | undefined> {
    const started = performance.now();
    this.ensureOpen();
    this.checkKey(key);
    try {
      const outcome = await this.readL2(this.layout.entry(key), true, started + this.options.timeoutMs);
      if (outcome.state === 'error') throw outcome.error;
      if (outcome.state !== 'hit' || outcome.pttl === undefined) return undefined;
      return outcome.pttl - outcome.header.graceMs;
    } finally {
      this.instruments.duration('get_ttl', elapsedSeconds(started));
    }
  }

  async extendTTL(key: string, ttlSeconds: number): Promise<boolean> {
    const started = performance.now();
    this.ensureOpen();
    this.checkKey(key);
    const ttlMs = ttlMsOf(ttlSeconds, 0);
    const deadline = started + this.options.timeoutMs;
    try {
      const redisKey = this.layout.entry(key);
      const outcome = await this.readL2(redisKey, true, deadline);
      if (outcome.state === 'error') throw outcome.error;
      if (outcome.state !== 'hit') return false;
      const { header } = outcome;
      const totalMs = ttlMs + header.graceMs;
      // Tag keys first: a tag key must never expire before an entry that depends on it.
      if (header.tags.length > 0) {
        await this.tags.prepare(
          header.tags.map((entry) => entry.tag),
          [],
          totalMs + TAG_TTL_MARGIN_MS,
          deadline,
        );
      }
      const done = await this.io.eval<number>(
        pexpireIfWriteId,
        [redisKey],
        [writeIdOf(outcome.data), totalMs],
        false,
        deadline,
      );
      if (done === 1) {
        const entry = this.l1?.get(key);
        if (entry !== undefined && this.options.l1 !== undefined) {
          const now = performance.now();
          const freshMs = Math.min(ttlMs, this.options.l1.maxTtlMs);
          entry.freshUntil = now + freshMs;
          entry.staleUntil = now + freshMs + header.graceMs;
        }
      }
      return done === 1;
    } finally {
      this.instruments.duration('extend_ttl', elapsedSeconds(started));
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Writes

  async set<T>(key: string, value: T, options: SetOptions = {}): Promise<void> {
    const started = performance.now();
    this.ensureOpen();
    this.checkKey(key);
    if (typeof options !== 'object' || options === null)
      inputError('E_INVALID_ARGUMENT', 'options must be an object.');
    const ttlMs = ttlMsOf(options.ttlSeconds, this.options.defaultTtlMs);
    const graceMs = graceMsOf(options.graceSeconds, this.options.graceMs);
    const tags = this.checkTags(options.tags, false);
    try {
      await this.write(key, value, ttlMs, graceMs, tags, started + this.options.timeoutMs);
    } finally {
      this.instruments.duration('set', elapsedSeconds(started));
    }
  }

  /**
   * Writes one entry: tag versions first (when tagged), then the SET, then the L1 and the bus. Input errors are
   * thrown before anything is sent. `versions` lets getOrSet pass versions read before its factory ran.
   */
  private async write(
    key: string,
    value: unknown,
    ttlMs: number,
    graceMs: number,
    tags: readonly string[],
    deadline: number,
    versions?: readonly TagVersion[],
  ): Promise<void> {
    const redisKey = this.layout.entry(key);
    let data: Buffer | undefined;
    if (value === undefined) {
      inputError('E_INVALID_ARGUMENT', 'undefined cannot be cached: store null to cache "nothing".');
    }
    if (tags.length === 0 || versions !== undefined)
      data = this.encode(redisKey, value, graceMs, versions ?? []);
    else this.checkValue(redisKey, value, graceMs, tags);
    const generation = this.bus?.generation ?? 0;
    this.forgetKey(key);
    const ticket = this.tracker.begin(key);
    let clean = false;
    try {
      let stamped = versions ?? [];
      if (data === undefined) {
        stamped = await this.tags.prepare(tags, [redisKey], ttlMs + graceMs + TAG_TTL_MARGIN_MS, deadline);
        data = this.encode(redisKey, value, graceMs, stamped);
      }
      await this.io.send('set', [redisKey, data, 'PX', ttlMs + graceMs], redisKey, false, deadline);
      clean = this.tracker.clean(ticket);
      if (this.l1 !== undefined) {
        this.l1Store(
          key,
          generation,
          clean,
          value,
          data,
          decodeHeader(data),
          ttlMs + graceMs,
          graceMs,
          stamped,
        );
      }
    } finally {
      this.tracker.end(ticket);
      // Also after a failure: a write that timed out may still have happened.
      this.bus?.publish('k', [key]);
    }
  }

  async setMany<T>(entries: ReadonlyArray<CacheEntry<T>>, options: SetOptions = {}): Promise<void> {
    const started = performance.now();
    this.ensureOpen();
    const prepared = this.prepareEntries(entries, options, false);
    try {
      const failures = await this.writeMany(
        prepared,
        this.bulkDeadline(started, prepared.length, 100, 4),
        100,
        4,
      );
      if (failures.length > 0) {
        throw new CacheUnavailableError(
          `${failures.length} of ${prepared.length} entries were not written: ${(failures[0] as Error).message}`,
          failures[0] instanceof CacheUnavailableError ? failures[0].reason : 'redis_error',
          { cause: failures[0] },
        );
      }
    } finally {
      this.instruments.duration('set_many', elapsedSeconds(started));
    }
  }

  private prepareEntries<T>(
    entries: ReadonlyArray<CacheEntry<T>>,
    defaults: SetOptions,
    jitter: boolean,
  ): Array<{
    key: string;
    redisKey: string;
    value: unknown;
    ttlMs: number;
    graceMs: number;
    tags: string[];
  }> {
    if (!Array.isArray(entries))
      inputError('E_INVALID_ARGUMENT', 'Expected an array of { key, value } entries.');
    const graceMs = graceMsOf(defaults.graceSeconds, this.options.graceMs);
    const defaultTtl = ttlMsOf(defaults.ttlSeconds, this.options.defaultTtlMs);
    const defaultTags = this.checkTags(defaults.tags, false);
    const seen = new Set<string>();
    const prepared = entries.map((entry, index) => {
      if (typeof entry !== 'object' || entry === null)
        inputError('E_INVALID_ARGUMENT', 'Each entry must be { key, value }.');
      this.checkKey(entry.key);
      // The position, never the key itself: keys carry identifiers, and messages end up in logs.
      if (seen.has(entry.key)) inputError('E_INVALID_ARGUMENT', `The key of entry ${index} appears twice.`);
      seen.add(entry.key);
      const ttlMs = ttlMsOf(entry.ttlSeconds, defaultTtl);
      const tags = entry.tags === undefined ? defaultTags : this.checkTags(entry.tags, false);
      const redisKey = this.layout.entry(entry.key);
      this.checkValue(redisKey, entry.value, graceMs, tags);
      return {
        key: entry.key,
        redisKey,
        value: entry.value,
        ttlMs: jitter ? this.jittered(ttlMs) : ttlMs,
        graceMs,
        tags,
      };
    });
    return prepared;
  }

  /**
   * Writes prepared entries: tag versions per distinct tag, then the SETs in pipelines per node. Resolves to the
   * errors of entries that were not written.
   */
  private async writeMany(
    prepared: Array<{
      key: string;
      redisKey: string;
      value: unknown;
      ttlMs: number;
      graceMs: number;
      tags: string[];
    }>,
    deadline: number,
    batchSize: number,
    concurrency: number,
  ): Promise<unknown[]> {
    const failures: unknown[] = [];
    const byTag = new Map<string, { keys: string[]; ttlMs: number }>();
    for (const entry of prepared) {
      for (const tag of entry.tags) {
        const group = byTag.get(tag) ?? { keys: [], ttlMs: 0 };
        group.keys.push(entry.redisKey);
        group.ttlMs = Math.max(group.ttlMs, entry.ttlMs + entry.graceMs);
        byTag.set(tag, group);
      }
    }
    const versions = new Map<string, string>();
    const tagFailures = new Map<string, unknown>();
    await eachLimit([...byTag.entries()], 8, async ([tag, group]) => {
      try {
        const [stamped] = await this.tags.prepare(
          [tag],
          group.keys,
          group.ttlMs + TAG_TTL_MARGIN_MS,
          deadline,
        );
        versions.set(tag, (stamped as TagVersion).version);
      } catch (error) {
        tagFailures.set(tag, error);
      }
    });
    for (const entry of prepared) this.forgetKey(entry.key);
    const writable: typeof prepared = [];
    for (const entry of prepared) {
      const failedTag = entry.tags.find((tag) => tagFailures.has(tag));
      // Without the versions of all its tags an entry cannot be stamped: it is not written.
      if (failedTag === undefined) writable.push(entry);
      else failures.push(tagFailures.get(failedTag));
    }
    const commands = writable.map((entry) => ({
      entry,
      data: this.encode(
        entry.redisKey,
        entry.value,
        entry.graceMs,
        entry.tags.map((tag) => ({ tag, version: versions.get(tag) as string })),
      ),
    }));
    const groups = new Map<string, typeof commands>();
    for (const command of commands) {
      const node = this.nodeOf(command.entry.redisKey);
      const group = groups.get(node) ?? [];
      group.push(command);
      groups.set(node, group);
    }
    const batches: Array<typeof commands> = [];
    for (const group of groups.values()) {
      for (let i = 0; i < group.length; i += batchSize) batches.push(group.slice(i, i + batchSize));
    }
    await eachLimit(batches, concurrency, async (batch) => {
      // Each pipeline gets its own timeout: a bulk load is many round trips, each bounded.
      const results = await this.pipeline(
        batch.map(
          ({ entry, data }) => ['set', [entry.redisKey, data, 'PX', entry.ttlMs + entry.graceMs]] as const,
        ),
        batch[0]?.entry.redisKey,
        Math.max(deadline, performance.now() + this.options.timeoutMs),
      );
      const redirected: typeof batch = [];
      results.forEach((result, index) => {
        const command = batch[index];
        if (command === undefined) return;
        if (!(result instanceof Error)) return;
        if (isRedirect(result)) redirected.push(command);
        else failures.push(result);
      });
      // After a failover or a slot migration the client's slot map is stale until a command learns better, and a
      // pipeline does not follow MOVED/ASK unless every command got the same one. Those SETs did not run: each goes
      // again on its own, routed (and the slot map refreshed) by the client.
      await Promise.all(
        redirected.map(({ entry, data }) =>
          this.io
            .send(
              'set',
              [entry.redisKey, data, 'PX', entry.ttlMs + entry.graceMs],
              entry.redisKey,
              false,
              Math.max(deadline, performance.now() + this.options.timeoutMs),
            )
            .catch((error: unknown) => {
              failures.push(error);
            }),
        ),
      );
    });
    this.bus?.publish(
      'k',
      prepared.map((entry) => entry.key),
    );
    return failures;
  }

  /** A bulk write gets the timeout once per round of pipelines (plus one for tag versions), not once in all. */
  private bulkDeadline(started: number, count: number, batchSize: number, concurrency: number): number {
    const rounds = Math.ceil(count / (batchSize * concurrency)) + 1;
    return started + this.options.timeoutMs * Math.max(2, rounds);
  }

  /** The master serving a key (cluster), for grouping pipelines; one group on a standalone server. */
  private nodeOf(redisKey: string): string {
    if (!this.io.isCluster) return '';
    const slots = (this.io.client as unknown as { slots: Array<string[] | undefined> }).slots;
    const slot = calculateSlot(redisKey);
    return slots[slot]?.[0] ?? `slot:${slot}`;
  }

  /**
   * Sends commands as one pipeline to one node with one deadline; each result is a reply or an Error. On timeout
   * every command still held by ioredis is neutralised like a single command (see redis-io.ts).
   */
  private async pipeline(
    commands: ReadonlyArray<readonly [string, Arg[]]>,
    shardKey: string | undefined,
    deadline: number,
  ): Promise<unknown[]> {
    const client = this.io.client as unknown as {
      pipeline(): { sendCommand(c: Command): void; exec(): Promise<unknown> };
    };
    const pipeline = client.pipeline();
    const built = commands.map(([name, args]) => new Command(name, args, { replyEncoding: 'utf8' }));
    for (const command of built) pipeline.sendCommand(command);
    const settled = built.map((command) =>
      command.promise.then(
        (value) => value,
        (error: Error) => error,
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), Math.max(1, deadline - performance.now()));
    });
    const exec = pipeline.exec().catch((error: Error) => error);
    const winner = await Promise.race([Promise.all(settled), timedOut]);
    clearTimeout(timer);
    void exec;
    if (winner === 'timeout') {
      for (const command of built) {
        (command as unknown as { toWritable: () => string }).toWritable = () => '*1\r\n$4\r\nPING\r\n';
      }
      return built.map(() => new CacheUnavailableError('Redis pipeline timed out.', 'timeout'));
    }
    void shardKey;
    return winner.map((result) =>
      result instanceof Error
        ? new CacheUnavailableError(`Redis SET failed: ${result.message}`, 'redis_error', {
            cause: withoutCommandArguments(result),
          })
        : result,
    );
  }

  async warmUp<T>(entries: ReadonlyArray<CacheEntry<T>>, options: WarmUpOptions = {}): Promise<WarmUpResult> {
    const started = performance.now();
    this.ensureOpen();
    const batchSize = options.batchSize ?? 100;
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(batchSize) || batchSize < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
      inputError('E_INVALID_ARGUMENT', 'batchSize and concurrency must be positive integers.');
    }
    const prepared = this.prepareEntries(entries, {}, true);
    try {
      const failures = await this.writeMany(
        prepared,
        this.bulkDeadline(started, prepared.length, batchSize, concurrency),
        batchSize,
        concurrency,
      );
      if (failures.length > 0) this.degraded('warm_up', failures[0]);
      return { written: prepared.length - failures.length, failed: failures.length };
    } finally {
      this.instruments.duration('warm_up', elapsedSeconds(started));
    }
  }

  async delete(key: string): Promise<boolean> {
    const started = performance.now();
    this.ensureOpen();
    this.checkKey(key);
    this.forgetKey(key);
    try {
      const redisKey = this.layout.entry(key);
      return (await this.io.send<number>('unlink', [redisKey], redisKey)) > 0;
    } finally {
      this.bus?.publish('k', [key]);
      this.instruments.duration('delete', elapsedSeconds(started));
    }
  }

  async deleteMany(keys: readonly string[]): Promise<number> {
    const started = performance.now();
    this.ensureOpen();
    if (!Array.isArray(keys)) inputError('E_INVALID_ARGUMENT', 'deleteMany expects an array of keys.');
    for (const key of keys) this.checkKey(key);
    for (const key of keys) this.forgetKey(key);
    const deadline = started + this.options.timeoutMs;
    try {
      const groups = new Map<string, string[]>();
      for (const key of keys) {
        const redisKey = this.layout.entry(key);
        // One UNLINK per slot on a cluster (no cross-slot command), one in all on a standalone server.
        const group = this.io.isCluster ? String(calculateSlot(redisKey)) : '';
        const list = groups.get(group) ?? [];
        list.push(redisKey);
        groups.set(group, list);
      }
      const counts = await Promise.all(
        [...groups.values()].map((group) => this.io.send<number>('unlink', group, group[0], false, deadline)),
      );
      return counts.reduce((sum, count) => sum + count, 0);
    } finally {
      if (keys.length > 0) this.bus?.publish('k', keys);
      this.instruments.duration('delete_many', elapsedSeconds(started));
    }
  }

  async invalidateByTags(tags: readonly string[]): Promise<void> {
    const started = performance.now();
    this.ensureOpen();
    const unique = this.checkTags(tags, true);
    this.l1?.deleteTags(unique);
    this.forgetAll(false);
    try {
      await this.tags.invalidate(
        unique,
        this.options.defaultTtlMs + TAG_TTL_MARGIN_MS,
        started + this.options.timeoutMs,
      );
      for (const tag of unique) this.sweepQueue.add(tag);
      this.runSweeps();
    } finally {
      this.bus?.publish('t', unique);
      this.instruments.duration('invalidate_by_tags', elapsedSeconds(started));
    }
  }

  /** Reclaims the memory of invalidated entries in the background, one tag at a time. */
  private runSweeps(): void {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    const work = (async () => {
      while (!this.closed) {
        const tag = this.sweepQueue.values().next().value as string | undefined;
        if (tag === undefined) break;
        this.sweepQueue.delete(tag);
        try {
          this.instruments.swept(await this.tags.sweep(tag, this.options.timeoutMs));
        } catch (error) {
          if (!this.closed) {
            this.logger.warn(
              `[@austa/cache] background sweep of a tag failed (entries expire with their TTL): ${(error as Error).message}`,
            );
          }
        }
      }
      this.sweeping = false;
    })();
    this.track(work);
  }

  async deletePattern(glob: string): Promise<number> {
    const started = performance.now();
    this.ensureOpen();
    checkPart(glob, 'pattern', this.options.maxKeyBytes);
    const { pattern, filter } = this.layout.entryPattern(glob);
    try {
      return await this.deleteMatching(pattern, filter);
    } finally {
      this.forgetAll(true);
      this.bus?.publish('c');
      this.instruments.duration('delete_pattern', elapsedSeconds(started));
    }
  }

  async clear(): Promise<number> {
    const started = performance.now();
    this.ensureOpen();
    try {
      return await this.deleteMatching(this.layout.allPattern);
    } finally {
      this.forgetAll(true);
      this.bus?.publish('c');
      this.instruments.duration('clear', elapsedSeconds(started));
    }
  }

  /** SCAN every master (slot coverage checked) and UNLINK in batches; each page is bounded in time. */
  private async deleteMatching(pattern: string, filter?: (userKey: string) => boolean): Promise<number> {
    // A server whose breaker is open cannot be scanned: fail now rather than wait for it, as every other call does.
    // On a cluster, scanKeys reports the slots of an unreachable master (E_INCOMPLETE_SCAN) within timeoutMs.
    if (!this.io.isCluster && this.io.breakersOpen > 0) {
      throw new CacheUnavailableError(
        `Redis is failing on ${this.io.breakersOpen} shard(s) (circuit breaker open): nothing was deleted.`,
        'circuit_open',
      );
    }
    // scanKeys bounds its slot-map refresh and its PING of each master by timeoutMs, and the first page waits for
    // both: a page gets twice that, so an unreachable master is still reported by scanKeys as E_INCOMPLETE_SCAN.
    const scanTimeoutMs = this.options.timeoutMs;
    const pageTimeoutMs = scanTimeoutMs * 2 + 50;
    const iterator = scanKeys(this.io.client, pattern, { count: 500, timeoutMs: scanTimeoutMs });
    let removed = 0;
    let batch: string[] = [];
    const flush = async () => {
      const keys = batch;
      batch = [];
      if (keys.length > 0) removed += await this.bounded(unlinkKeys(this.io.client, keys), pageTimeoutMs);
    };
    try {
      for (;;) {
        const next = await this.bounded(iterator.next(), pageTimeoutMs);
        if (next.done) break;
        if (filter !== undefined && !filter(this.layout.userKey(next.value) ?? '')) continue;
        batch.push(next.value);
        if (batch.length >= 500) await flush();
      }
      await flush();
    } catch (error) {
      void iterator.return?.(undefined)?.catch?.(() => undefined);
      if (AustaRedisError.isInstance(error) && error.code === 'E_INCOMPLETE_SCAN') {
        throw new CacheIncompleteScanError(
          error.message,
          (error as unknown as { uncoveredSlots: Array<[number, number]> }).uncoveredSlots,
          { cause: error },
        );
      }
      if (AustaCacheError.isInstance(error)) throw error;
      throw new CacheUnavailableError(`Deleting keys failed: ${(error as Error).message}`, 'connection', {
        cause: error instanceof Error ? withoutCommandArguments(error) : error,
      });
    }
    return removed;
  }

  private bounded<T>(promise: Promise<T>, ms: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new CacheUnavailableError(`Redis did not answer within ${ms} ms.`, 'timeout')),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // getOrSet

  getOrSet<T>(key: string, factory: Factory<T>, options?: GetOrSetOptions): Promise<T> {
    const started = performance.now();
    let settings: ReturnType<CacheImpl['getOrSetSettings']>;
    try {
      this.ensureOpen();
      this.checkKey(key);
      if (typeof factory !== 'function') inputError('E_INVALID_ARGUMENT', 'factory must be a function.');
      if (options !== undefined && (typeof options !== 'object' || options === null)) {
        inputError('E_INVALID_ARGUMENT', 'options must be an object.');
      }
      // Calls without options share one settings object (resolved once) instead of building one per call.
      settings = options === undefined ? this.sharedSettings() : this.getOrSetSettings(options);
    } catch (error) {
      return Promise.reject(error);
    }
    const result = this.getOrSetOne(key, factory as Factory<unknown>, settings, started) as Promise<T>;
    return this.timed
      ? result.finally(() => this.instruments.duration('get_or_set', elapsedSeconds(started)))
      : result;
  }

  private sharedSettings(): ReturnType<CacheImpl['getOrSetSettings']> {
    if (this.defaultSettings === undefined) this.defaultSettings = this.getOrSetSettings({});
    return this.defaultSettings;
  }

  private getOrSetSettings(options: GetOrSetOptions) {
    let lock: ResolvedLock | undefined = this.options.lock;
    if (options.lock !== undefined) {
      try {
        lock = options.lock === false ? undefined : resolveLock(options.lock);
      } catch (error) {
        inputError('E_INVALID_ARGUMENT', (error as Error).message);
      }
    }
    return {
      ttlMs: ttlMsOf(options.ttlSeconds, this.options.defaultTtlMs),
      negativeTtlMs: ttlMsOf(options.negativeTtlSeconds, this.options.negativeTtlMs, 'negativeTtlSeconds'),
      graceMs: graceMsOf(options.graceSeconds, this.options.graceMs),
      tags: this.checkTags(options.tags, false),
      softTimeoutMs: timeoutMsOf(options.softTimeoutMs, this.options.softTimeoutMs, 'softTimeoutMs'),
      hardTimeoutMs: timeoutMsOf(options.hardTimeoutMs, this.options.hardTimeoutMs, 'hardTimeoutMs'),
      lock,
    };
  }

  /** getOrSet's hit path: sync on an L1 hit, one promise chain on an L2 hit; misses go on in getOrSetMiss. */
  private getOrSetOne(
    key: string,
    factory: Factory<unknown>,
    settings: ReturnType<CacheImpl['getOrSetSettings']>,
    started: number,
  ): Promise<unknown> {
    let stale: Stale | undefined;
    if (this.l1 !== undefined) {
      const entry = this.l1Fresh(key, started);
      if (entry !== undefined) {
        if (started <= entry.freshUntil) {
          this.instruments.request('l1', 'hit');
          return Promise.resolve(this.l1Value(entry));
        }
        stale = { value: () => this.l1Value(entry), tier: 'l1' };
      }
      this.instruments.request('l1', 'miss');
    }
    const flight = this.joinableFlight(key, settings, started);
    if (flight !== undefined) return this.awaitFlight(flight, stale ?? flight.stale, settings, started);
    const redisKey = this.layout.entry(key);
    const withTtl = this.readWithTtl || settings.graceMs > 0;
    const generation = this.bus?.generation ?? 0;
    // Reads are not shared between concurrent callers (a shared read cost every call about a microsecond); the
    // factory is: concurrent misses meet in `flights`.
    const ticket = this.l1 === undefined ? undefined : this.tracker.begin(key);
    const writes = this.localWrites;
    const deadline = started + this.options.timeoutMs;
    return this.readL2(redisKey, withTtl, deadline, settings.tags, (outcome) => {
      const clean = ticket === undefined ? this.localWrites === writes : this.tracker.end(ticket);
      if (outcome.state === 'hit') {
        const decoded = this.decodeRead(redisKey, outcome.data, outcome.header);
        if (decoded !== UNDECODABLE) {
          this.instruments.request('l2', 'hit');
          this.l1Store(
            key,
            generation,
            clean,
            decoded,
            outcome.data,
            outcome.header,
            outcome.pttl ?? settings.ttlMs,
            outcome.header.graceMs,
            outcome.header.tags,
          );
          return decoded;
        }
        // Bytes this codec cannot read (corrupt, or another key's ciphertext): the factory's value replaces them.
        return this.getOrSetMiss(
          key,
          redisKey,
          factory,
          settings,
          started,
          { state: 'miss', data: outcome.data },
          stale,
        );
      }
      // A write of this key finished while we read (a factory of this process, say): read again, once.
      if (!clean && !this.flights.has(key)) {
        return this.readL2(redisKey, withTtl, performance.now() + this.options.timeoutMs, settings.tags).then(
          (again) =>
            again.state === 'hit'
              ? this.getOrSetOne(key, factory, settings, started)
              : this.getOrSetMiss(key, redisKey, factory, settings, started, again, stale),
        );
      }
      return this.getOrSetMiss(key, redisKey, factory, settings, started, outcome, stale);
    });
  }

  private getOrSetMiss(
    key: string,
    redisKey: string,
    factory: Factory<unknown>,
    settings: ReturnType<CacheImpl['getOrSetSettings']>,
    started: number,
    outcome: ReadOutcome,
    l1Stale: Stale | undefined,
  ): Promise<unknown> {
    let stale = l1Stale;
    if (outcome.state === 'error') {
      this.instruments.request('l2', 'error');
      this.degraded('get_or_set', outcome.error);
    } else if (outcome.state === 'stale') {
      const read = outcome;
      const decoded = this.decodeRead(redisKey, read.data, read.header);
      if (decoded !== UNDECODABLE) {
        let first = true;
        stale = {
          value: () => {
            if (first) {
              first = false;
              return decoded;
            }
            return this.decode(redisKey, read.data, read.header);
          },
          tier: 'l2',
        };
      }
    } else {
      this.instruments.request('l2', 'miss');
    }
    const seen =
      (outcome.state === 'stale' || outcome.state === 'miss') && outcome.data !== undefined
        ? writeIdOf(outcome.data)
        : '';
    const existing = this.joinableFlight(key, settings, performance.now());
    const flight =
      existing ??
      this.startFlight(key, redisKey, factory, settings, stale, outcome.state === 'error', seen, started);
    return this.awaitFlight(
      flight,
      stale ?? (existing === undefined ? undefined : existing.stale),
      settings,
      started,
    );
  }

  /**
   * The computation a caller may wait for: not one past its hard timeout. A factory that never settles would
   * otherwise hold its key in this process until a write: every later caller would time out without a try.
   */
  private joinableFlight(
    key: string,
    settings: ReturnType<CacheImpl['getOrSetSettings']>,
    now: number,
  ): Flight | undefined {
    const flight = this.flights.get(key);
    if (flight === undefined || now - flight.startedAt < settings.hardTimeoutMs) return flight;
    this.retire(flight);
    return undefined;
  }

  /** Takes a flight past its hard timeout out of `flights`; still invalidated by later changes until it settles. */
  private retire(flight: Flight): void {
    if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
    this.overdue.add(flight);
    // Factories that never settle must not grow this without bound: the oldest is let go with its result unstored.
    if (this.overdue.size > MAX_OVERDUE_FLIGHTS) {
      const oldest = this.overdue.values().next().value as Flight;
      oldest.invalidated = true;
      this.overdue.delete(oldest);
    }
  }

  private startFlight(
    key: string,
    redisKey: string,
    factory: Factory<unknown>,
    settings: ReturnType<CacheImpl['getOrSetSettings']>,
    stale: Stale | undefined,
    redisFailed: boolean,
    seenWriteId: Buffer | '',
    started: number,
  ): Flight {
    const flight: Flight = {
      stale,
      result: undefined as unknown as Promise<Answer>,
      handedOut: false,
      invalidated: false,
      seenWriteId,
      startedAt: started,
      key,
    };
    this.flights.set(key, flight);
    flight.result = this.computeFlight(flight, key, redisKey, factory, settings, stale, redisFailed).finally(
      () => {
        if (this.flights.get(key) === flight) this.flights.delete(key);
        this.overdue.delete(flight);
      },
    );
    // Callers may all have gone (timeouts, stale answers): the flight still settles, so keep its rejection handled.
    this.track(flight.result).catch(() => undefined);
    return flight;
  }

  private async computeFlight(
    flight: Flight,
    key: string,
    redisKey: string,
    factory: Factory<unknown>,
    settings: ReturnType<CacheImpl['getOrSetSettings']>,
    stale: Stale | undefined,
    redisFailed: boolean,
  ): Promise<Answer> {
    const generation = this.bus?.generation ?? 0;
    const ticket = this.tracker.begin(key);
    let lockToken: string | undefined;
    let renewTimer: NodeJS.Timeout | undefined;
    const lockKey = this.layout.lock(key);
    try {
      if (settings.lock !== undefined && !redisFailed) {
        const locked = await this.acquireOrWait(key, redisKey, lockKey, settings.lock, settings.graceMs > 0);
        if (locked.answer !== undefined) return locked.answer;
        // The lock holder may have replaced the entry our read saw: store only over what is there now.
        if (locked.seenWriteId !== undefined) flight.seenWriteId = locked.seenWriteId;
        lockToken = locked.token;
        if (lockToken !== undefined) {
          const lease = settings.lock.leaseMs;
          renewTimer = setInterval(
            () => {
              this.io.eval(renewLock, [lockKey], [lockToken as string, lease]).catch(() => undefined);
            },
            Math.max(10, Math.floor(lease / 3)),
          );
          renewTimer.unref();
        }
      }
      // Versions are read before the factory runs (and nothing is written yet): if an invalidation lands while the
      // factory works, the versions differ afterwards and its result is not cached.
      let before: Array<string | null> | undefined = [];
      if (settings.tags.length > 0 && !redisFailed) {
        before = await this.tags
          .current(settings.tags, performance.now() + this.options.timeoutMs)
          .catch((error: unknown) => {
            this.degraded('get_or_set', error);
            return undefined;
          });
      }
      const value = await this.runFactory(key, factory, stale, settings.hardTimeoutMs);
      if (value === undefined) {
        return { value, data: undefined, header: undefined, redisKey };
      }
      const ttlMs = this.jittered(value === null ? settings.negativeTtlMs : settings.ttlMs);
      let versions: TagVersion[] | undefined = before === undefined ? undefined : [];
      if (settings.tags.length > 0) this.checkValue(redisKey, value, settings.graceMs, settings.tags);
      if (settings.tags.length > 0 && before !== undefined) {
        try {
          const stamped = await this.tags.prepare(
            settings.tags,
            [redisKey],
            ttlMs + settings.graceMs + TAG_TTL_MARGIN_MS,
            performance.now() + this.options.timeoutMs,
          );
          const unchanged = stamped.every(
            (entry, index) =>
              entry.version === before?.[index] || (before?.[index] === null && entry.created),
          );
          versions = unchanged ? stamped.map(({ tag, version }) => ({ tag, version })) : undefined;
        } catch (error) {
          this.degraded('get_or_set', error);
          versions = undefined;
        }
      }
      const data = this.encode(redisKey, value, settings.graceMs, versions ?? []);
      const header = decodeHeader(data) as EnvelopeHeader;
      this.forgetKey(key, true);
      const store = versions !== undefined && !redisFailed && !flight.invalidated;
      if (store) {
        try {
          await this.io.eval(
            setIfUnchanged,
            [redisKey],
            [flight.seenWriteId, data, ttlMs + settings.graceMs],
          );
        } catch (error) {
          this.degraded('get_or_set', error);
        }
        this.bus?.publish('k', [key]);
      }
      this.l1Store(
        key,
        generation,
        this.tracker.clean(ticket) && store,
        value,
        data,
        header,
        ttlMs + settings.graceMs,
        settings.graceMs,
        versions ?? [],
      );
      return { value, data, header, redisKey };
    } finally {
      this.tracker.end(ticket);
      if (renewTimer !== undefined) clearInterval(renewTimer);
      if (lockToken !== undefined) {
        this.io.eval(releaseLock, [lockKey], [lockToken]).catch(() => undefined);
      }
    }
  }

  /** Runs the factory once, aborting its signal at the hard timeout (it may still finish and be cached). */
  private async runFactory(
    key: string,
    factory: Factory<unknown>,
    stale: Stale | undefined,
    hardTimeoutMs: number,
  ): Promise<unknown> {
    const controller = new AbortController();
    this.factoryControllers.add(controller);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new FactoryTimeoutError(`The factory for a key ran past ${hardTimeoutMs} ms.`));
    }, hardTimeoutMs);
    timer.unref();
    const started = performance.now();
    try {
      let staleValue: unknown;
      if (stale !== undefined) {
        try {
          staleValue = stale.value();
        } catch {
          staleValue = undefined;
        }
      }
      const value = await factory({ key, signal: controller.signal, staleValue });
      this.instruments.factory(timedOut ? 'timeout' : 'ok', elapsedSeconds(started));
      return value;
    } catch (error) {
      this.instruments.factory(timedOut ? 'timeout' : 'error', elapsedSeconds(started));
      throw error;
    } finally {
      clearTimeout(timer);
      this.factoryControllers.delete(controller);
    }
  }

  /**
   * Takes the entry's lock (SET NX PX with a random token), or waits for the process holding it to write the value.
   * Returns the answer if another process wrote it, a token if we hold the lock, or neither (wait timed out, or
   * Redis failed): then the factory runs without the lock.
   */
  private async acquireOrWait(
    key: string,
    redisKey: string,
    lockKey: string,
    lock: ResolvedLock,
    withTtl: boolean,
  ): Promise<{ token?: string; answer?: Answer; seenWriteId?: Buffer | '' }> {
    const token = randomBytes(16).toString('hex');
    const tryAcquire = async () =>
      (await this.io.send<string | null>('set', [lockKey, token, 'NX', 'PX', lock.leaseMs], lockKey)) ===
      'OK';
    const readAnswer = async (): Promise<Answer | undefined> => {
      const outcome = await this.readL2(
        redisKey,
        withTtl || this.readWithTtl,
        performance.now() + this.options.timeoutMs,
      );
      if (outcome.state !== 'hit') return undefined;
      const decoded = this.decodeRead(redisKey, outcome.data, outcome.header);
      return decoded === UNDECODABLE
        ? undefined
        : { value: decoded, data: outcome.data, header: outcome.header, redisKey };
    };
    try {
      if (await tryAcquire()) {
        // Another process may have written the value and released the lock between our read and our SET NX.
        const answer = await readAnswer();
        if (answer !== undefined) {
          this.io.eval(releaseLock, [lockKey], [token]).catch(() => undefined);
          return { answer };
        }
        this.instruments.lock('acquired');
        return { token, seenWriteId: await this.currentWriteId(redisKey) };
      }
      const deadline = performance.now() + lock.waitMs;
      let delay = 5;
      while (performance.now() < deadline && !this.closed) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(100, Math.ceil(delay * 1.5));
        const answer = await readAnswer();
        if (answer !== undefined) {
          this.instruments.lock('waited');
          return { answer };
        }
        if ((await this.io.send<number>('exists', [lockKey], lockKey)) === 0 && (await tryAcquire())) {
          const again = await readAnswer();
          if (again !== undefined) {
            this.io.eval(releaseLock, [lockKey], [token]).catch(() => undefined);
            return { answer: again };
          }
          this.instruments.lock('acquired');
          return { token, seenWriteId: await this.currentWriteId(redisKey) };
        }
      }
      this.instruments.lock('timeout');
      return {};
    } catch (error) {
      this.degraded('get_or_set', error);
      void key;
      return {};
    }
  }

  /** The write id of whatever entry is at the key now ('' for none): what a locked factory may replace. */
  private async currentWriteId(redisKey: string): Promise<Buffer | ''> {
    const id = await this.io.send<Buffer | null>('getrange', [redisKey, 6, 13], redisKey, true);
    return id === null || id.length === 0 ? '' : id;
  }

  /** One caller's wait on a flight, with its own soft and hard timeouts. */
  private async awaitFlight(
    flight: Flight,
    stale: Stale | undefined,
    settings: ReturnType<CacheImpl['getOrSetSettings']>,
    started: number,
  ): Promise<unknown> {
    const serveStale = (available: Stale) => {
      this.instruments.request(available.tier, 'stale');
      return available.value();
    };
    if (stale !== undefined && settings.softTimeoutMs <= 0) return serveStale(stale);
    const timers: NodeJS.Timeout[] = [];
    const outcome = await new Promise<
      { kind: 'ok'; answer: Answer } | { kind: 'error'; error: unknown } | { kind: 'soft' | 'hard' }
    >((resolve) => {
      flight.result.then(
        (answer) => resolve({ kind: 'ok', answer }),
        (error: unknown) => resolve({ kind: 'error', error }),
      );
      const elapsed = performance.now() - started;
      if (stale !== undefined)
        timers.push(setTimeout(() => resolve({ kind: 'soft' }), settings.softTimeoutMs - elapsed));
      timers.push(setTimeout(() => resolve({ kind: 'hard' }), Math.max(0, settings.hardTimeoutMs - elapsed)));
    });
    for (const timer of timers) clearTimeout(timer);
    switch (outcome.kind) {
      case 'ok': {
        const { answer } = outcome;
        if (!flight.handedOut || answer.data === undefined || answer.header === undefined) {
          flight.handedOut = true;
          return answer.value;
        }
        // Every other caller gets its own copy, as from the cache.
        return this.decode(answer.redisKey, answer.data, answer.header);
      }
      case 'error':
        if (stale !== undefined && !AustaCacheError.isInstance(outcome.error)) return serveStale(stale);
        if (stale !== undefined && (outcome.error as AustaCacheError).code === 'E_FACTORY_TIMEOUT')
          return serveStale(stale);
        throw this.codecInputError(outcome.error);
      case 'soft':
        return serveStale(stale as Stale);
      default:
        // A caller gave up on this factory: later callers start their own (see joinableFlight).
        this.retire(flight);
        if (stale !== undefined) return serveStale(stale);
        throw new FactoryTimeoutError(
          `getOrSet waited ${settings.hardTimeoutMs} ms for the factory; it keeps running and its result will be cached.`,
        );
    }
  }

  // ---------------------------------------------------------------------------------------------------------------

  getStats(): CacheStats {
    const { counters } = this.instruments;
    const rate = (tier: { hits: number; misses: number; staleHits: number }) => {
      const total = tier.hits + tier.misses + tier.staleHits;
      return total === 0 ? 0 : tier.hits / total;
    };
    return {
      l1: {
        enabled: this.l1 !== undefined,
        hits: counters.l1.hits,
        misses: counters.l1.misses,
        staleHits: counters.l1.staleHits,
        hitRate: rate(counters.l1),
        entries: this.l1?.size ?? 0,
        bytes: this.l1?.bytes ?? 0,
        evictions: this.l1?.evictions ?? 0,
      },
      l2: {
        hits: counters.l2.hits,
        misses: counters.l2.misses,
        staleHits: counters.l2.staleHits,
        errors: counters.l2.errors,
        hitRate: rate(counters.l2),
      },
      factory: { ...counters.factory },
      degraded: counters.degraded,
      invalidations: { ...counters.invalidations },
      swept: counters.swept,
      circuitBreakersOpen: this.io.breakersOpen,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const controller of this.factoryControllers) controller.abort(new CacheClosedError());
    this.stopCollect();
    await this.bus?.close();
    // Background sweeps and refreshes end within their own Redis timeouts; wait for them, bounded.
    await Promise.race([
      Promise.allSettled([...this.background]),
      new Promise((resolve) => setTimeout(resolve, Math.max(1000, this.options.timeoutMs * 2)).unref()),
    ]);
    this.l1?.clear();
  }
}
