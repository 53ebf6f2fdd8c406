import type { Codec } from '@austa/codec';
import type { Metrics } from '@austa/metrics';
import type { Cluster, Redis } from 'ioredis';
import { CacheConfigError } from './errors.js';
import { checkNamespace, checkPrefix } from './keys.js';

/** Where the cache reports what it cannot throw (background sweeps, failed publishes). */
export interface CacheLogger {
  warn(message: string): void;
}

/** Options of the optional in-memory (L1) tier. */
export interface L1Options {
  /** Most entries held. Default 10000. */
  maxEntries?: number;
  /** Most bytes held (stored value bytes plus keys). Default 64 MiB. */
  maxBytes?: number;
  /**
   * Longest an entry stays in L1, in seconds, even when Redis keeps it longer. Bounds how long a change made
   * outside this cache (a write by another tool, a lost publish) can be served from memory. Default 60.
   */
  maxTtlSeconds?: number;
  /**
   * Decode a fresh copy on every L1 hit (default `true`), so a caller that mutates the object it got never changes
   * what the next caller gets. `false` hands every caller the same object: faster, for values you never mutate.
   */
  copyOnRead?: boolean;
  /**
   * How long L1 entries are still served after the invalidation bus stopped confirming delivery (connection closed,
   * node paused, subscriber moved), in ms. Past it, reads go to Redis. Default 2000.
   */
  busToleranceMs?: number;
  /** How often the bus proves it delivers (a heartbeat through Redis and back), in ms. Default 500. */
  heartbeatIntervalMs?: number;
  /**
   * Which new keys enter a full L1: `'lru'` (default) admits every one and evicts the least recently used;
   * `'frequency'` (TinyLFU) admits a key only if it was looked up more often than the entry it would evict, which
   * keeps hot keys under skewed traffic, for a few tens of ns per lookup.
   */
  admission?: 'lru' | 'frequency';
}

/** Distributed lock of `getOrSet`: one factory call across processes for one key. */
export interface LockOptions {
  /** Lease of the lock in ms; renewed while the factory runs. Default 10000. */
  leaseMs?: number;
  /** How long a process waits for another's result before running the factory itself, in ms. Default 5000. */
  waitMs?: number;
}

export interface CircuitBreakerOptions {
  /** Consecutive failures (timeouts, closed connections) of one shard that open its breaker. Default 5. */
  failureThreshold?: number;
  /** How long an open breaker skips its shard before one probe call, in ms. Default 1000. */
  openMs?: number;
}

export interface CacheOptions {
  /** Any ioredis client: a `Redis` or a `Cluster`, yours or one from `@austa/redis-cluster`. Never closed by us. */
  redis: Redis | Cluster;
  /** Every key lives under `<prefix>:<namespace>:`. 1-64 characters of `A-Z a-z 0-9 _ . -`. */
  namespace: string;
  /** TTL of entries written without one, in seconds. */
  defaultTtlSeconds: number;
  /** Start of every key. Default `austa:cache`. */
  prefix?: string;
  /** The `cache` label of this cache's metrics: a short fixed word. Default: the namespace. */
  name?: string;
  /** Metrics from `@austa/metrics`. Without it nothing is recorded and nothing is paid for it. */
  metrics?: Metrics;
  /** The codec values are stored with. Default: `createCodec()` from `@austa/codec` (type-preserving, no encryption). */
  codec?: Codec;
  /** Largest encoded value accepted, in bytes. Default 1 MiB. */
  maxValueBytes?: number;
  /** Longest key or tag, in UTF-8 bytes. Default 1024. */
  maxKeyBytes?: number;
  /** Most tags on one entry. Default 64. */
  maxTagsPerEntry?: number;
  /** TTL of a cached `null` from a getOrSet factory, in seconds. Default: the smaller of 60 and defaultTtlSeconds. */
  negativeTtlSeconds?: number;
  /** How long after its TTL an entry may still be served as stale by getOrSet, in seconds. Default 0. */
  graceSeconds?: number;
  /** Fraction by which getOrSet and warmUp shorten TTLs at random (0 to 1). Default 0.1. */
  ttlJitter?: number;
  /** Upper bound on each cache call's Redis work, in ms: past it reads degrade and writes fail. Default 500. */
  timeoutMs?: number;
  /** Per-shard circuit breaker; `false` turns it off. */
  circuitBreaker?: CircuitBreakerOptions | false;
  /** getOrSet factories: after `hardTimeoutMs` (default 15000) callers get `E_FACTORY_TIMEOUT` or a stale value. */
  factoryHardTimeoutMs?: number;
  /** getOrSet: wait this long for a fresh value before serving a stale one, in ms. Default 0 (serve stale at once). */
  factorySoftTimeoutMs?: number;
  /** Default of getOrSet's `lock` option: `true`, a LockOptions object, or `false` (default). */
  lock?: boolean | LockOptions;
  /** Turns on the in-memory tier. Default: off. */
  l1?: boolean | L1Options;
  /**
   * Publish what changes (set, delete, tag invalidation, clear) on the namespace's invalidation channel and listen
   * to it, also without an L1. Default `true`: instances with an L1 drop what this one changes, and a getOrSet
   * computing here does not store a result that another instance invalidated meanwhile. `false` opens no pub/sub
   * connection; only for a namespace no instance caches in L1, where a concurrent remote delete may then be undone by
   * a getOrSet that was already computing. An L1 needs it.
   */
  bus?: boolean;
  /** Where background failures are reported. Default: `console`. */
  logger?: CacheLogger;
  /**
   * Record this cache's Redis commands in `db_client_operation_duration_seconds`. Default `'auto'`: only when the
   * client does not record them itself (a client from `@austa/redis-cluster` does).
   */
  recordRedisLatency?: 'auto' | boolean;
}

export interface ResolvedL1 {
  admission: 'lru' | 'frequency';
  maxEntries: number;
  maxBytes: number;
  maxTtlMs: number;
  copyOnRead: boolean;
  busToleranceMs: number;
  heartbeatIntervalMs: number;
}

export interface ResolvedLock {
  leaseMs: number;
  waitMs: number;
}

export interface ResolvedOptions {
  prefix: string;
  namespace: string;
  name: string;
  defaultTtlMs: number;
  maxValueBytes: number;
  maxKeyBytes: number;
  maxTagsPerEntry: number;
  negativeTtlMs: number;
  graceMs: number;
  ttlJitter: number;
  timeoutMs: number;
  breaker: { failureThreshold: number; openMs: number };
  hardTimeoutMs: number;
  softTimeoutMs: number;
  lock: ResolvedLock | undefined;
  l1: ResolvedL1 | undefined;
  bus: boolean;
}

/** Defaults, exported so the README and tests cite the numbers the code uses. */
export const DEFAULTS = {
  prefix: 'austa:cache',
  maxValueBytes: 1024 * 1024,
  maxKeyBytes: 1024,
  maxTagsPerEntry: 64,
  negativeTtlSeconds: 60,
  graceSeconds: 0,
  ttlJitter: 0.1,
  timeoutMs: 500,
  failureThreshold: 5,
  openMs: 1000,
  factoryHardTimeoutMs: 15_000,
  factorySoftTimeoutMs: 0,
  lockLeaseMs: 10_000,
  lockWaitMs: 5000,
  l1MaxEntries: 10_000,
  l1MaxBytes: 64 * 1024 * 1024,
  l1MaxTtlSeconds: 60,
  l1BusToleranceMs: 2000,
  l1HeartbeatIntervalMs: 500,
} as const;

/** Longest TTL accepted: PX takes a 64-bit value, but past ~68 years arithmetic on it stops being exact here. */
export const MAX_TTL_SECONDS = 2 ** 31;

const NAME = /^[a-z][a-z0-9_-]{0,63}$/i;

function positive(value: unknown, fallback: number, field: string, integer = true): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value <= 0 ||
    (integer && !Number.isInteger(value))
  ) {
    throw new CacheConfigError(
      `${field} must be a positive ${integer ? 'integer' : 'number'} (got ${String(value)}).`,
    );
  }
  return value;
}

function nonNegative(value: unknown, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new CacheConfigError(`${field} must be a number of at least 0 (got ${String(value)}).`);
  }
  return value;
}

function ttlSeconds(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TTL_SECONDS) {
    throw new CacheConfigError(`${field} must be a number of seconds above 0 (got ${String(value)}).`);
  }
  return value;
}

export function resolveOptions(options: CacheOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new CacheConfigError('createCache needs options: { redis, namespace, defaultTtlSeconds }.');
  }
  const redis = options.redis as unknown as { sendCommand?: unknown; options?: { keyPrefix?: string } };
  if (typeof redis !== 'object' || redis === null || typeof redis.sendCommand !== 'function') {
    throw new CacheConfigError('redis must be an ioredis Redis or Cluster client.');
  }
  const clientOptions = (redis as { options?: { keyPrefix?: string; redisOptions?: { keyPrefix?: string } } })
    .options;
  if (clientOptions?.keyPrefix || clientOptions?.redisOptions?.keyPrefix) {
    throw new CacheConfigError(
      'The Redis client has a keyPrefix: use the cache prefix option instead (scans and scripts would not see it).',
    );
  }
  const namespace = checkNamespace(options.namespace);
  const prefix = checkPrefix(options.prefix ?? DEFAULTS.prefix);
  const name = options.name ?? namespace.toLowerCase().replace(/[^a-z0-9_-]/g, '_');
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new CacheConfigError(
      `name must be 1-64 characters of letters, digits, "_" or "-", starting with a letter (got ${String(name)}).`,
    );
  }
  const defaultTtlSeconds = ttlSeconds(options.defaultTtlSeconds, 'defaultTtlSeconds');
  const negativeTtlSeconds =
    options.negativeTtlSeconds === undefined
      ? Math.min(DEFAULTS.negativeTtlSeconds, defaultTtlSeconds)
      : ttlSeconds(options.negativeTtlSeconds, 'negativeTtlSeconds');
  const ttlJitter = nonNegative(options.ttlJitter, DEFAULTS.ttlJitter, 'ttlJitter');
  if (ttlJitter >= 1) throw new CacheConfigError(`ttlJitter must be below 1 (got ${ttlJitter}).`);
  const breaker =
    options.circuitBreaker === false
      ? { failureThreshold: Number.POSITIVE_INFINITY, openMs: 1 }
      : {
          failureThreshold: positive(
            options.circuitBreaker?.failureThreshold,
            DEFAULTS.failureThreshold,
            'circuitBreaker.failureThreshold',
          ),
          openMs: positive(options.circuitBreaker?.openMs, DEFAULTS.openMs, 'circuitBreaker.openMs'),
        };
  let lock: ResolvedLock | undefined;
  if (options.lock !== undefined && options.lock !== false) lock = resolveLock(options.lock);
  let l1: ResolvedL1 | undefined;
  if (options.l1 !== undefined && options.l1 !== false) {
    const given: L1Options = options.l1 === true ? {} : options.l1;
    if (given.admission !== undefined && given.admission !== 'lru' && given.admission !== 'frequency') {
      throw new CacheConfigError(
        `l1.admission must be 'lru' or 'frequency' (got ${String(given.admission)}).`,
      );
    }
    l1 = {
      admission: given.admission ?? 'lru',
      maxEntries: positive(given.maxEntries, DEFAULTS.l1MaxEntries, 'l1.maxEntries'),
      maxBytes: positive(given.maxBytes, DEFAULTS.l1MaxBytes, 'l1.maxBytes'),
      maxTtlMs: ttlSeconds(given.maxTtlSeconds ?? DEFAULTS.l1MaxTtlSeconds, 'l1.maxTtlSeconds') * 1000,
      copyOnRead: given.copyOnRead ?? true,
      busToleranceMs: positive(given.busToleranceMs, DEFAULTS.l1BusToleranceMs, 'l1.busToleranceMs'),
      heartbeatIntervalMs: positive(
        given.heartbeatIntervalMs,
        DEFAULTS.l1HeartbeatIntervalMs,
        'l1.heartbeatIntervalMs',
      ),
    };
    if (l1.heartbeatIntervalMs * 2 > l1.busToleranceMs) {
      throw new CacheConfigError(
        'l1.busToleranceMs must be at least twice l1.heartbeatIntervalMs: one late heartbeat would otherwise turn the L1 off.',
      );
    }
  }
  if (options.bus !== undefined && typeof options.bus !== 'boolean') {
    throw new CacheConfigError(`bus must be true or false (got ${typeof options.bus}).`);
  }
  const bus = options.bus ?? true;
  if (!bus && l1 !== undefined) {
    throw new CacheConfigError(
      'An L1 needs the invalidation bus (bus: false with l1): without it, other instances would never evict its entries.',
    );
  }
  return {
    prefix,
    namespace,
    name,
    defaultTtlMs: Math.round(defaultTtlSeconds * 1000),
    maxValueBytes: positive(options.maxValueBytes, DEFAULTS.maxValueBytes, 'maxValueBytes'),
    maxKeyBytes: positive(options.maxKeyBytes, DEFAULTS.maxKeyBytes, 'maxKeyBytes'),
    maxTagsPerEntry: positive(options.maxTagsPerEntry, DEFAULTS.maxTagsPerEntry, 'maxTagsPerEntry'),
    negativeTtlMs: Math.round(negativeTtlSeconds * 1000),
    graceMs: Math.round(nonNegative(options.graceSeconds, DEFAULTS.graceSeconds, 'graceSeconds') * 1000),
    ttlJitter,
    timeoutMs: positive(options.timeoutMs, DEFAULTS.timeoutMs, 'timeoutMs'),
    breaker,
    hardTimeoutMs: positive(
      options.factoryHardTimeoutMs,
      DEFAULTS.factoryHardTimeoutMs,
      'factoryHardTimeoutMs',
    ),
    softTimeoutMs: nonNegative(
      options.factorySoftTimeoutMs,
      DEFAULTS.factorySoftTimeoutMs,
      'factorySoftTimeoutMs',
    ),
    lock,
    l1,
    bus,
  };
}

export function resolveLock(lock: true | LockOptions): ResolvedLock {
  const given = lock === true ? {} : lock;
  return {
    leaseMs: positive(given.leaseMs, DEFAULTS.lockLeaseMs, 'lock.leaseMs'),
    waitMs: nonNegative(given.waitMs, DEFAULTS.lockWaitMs, 'lock.waitMs'),
  };
}
