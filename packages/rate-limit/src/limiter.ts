import type { Metrics } from '@austa/metrics';
import {
  defineScript,
  escapeGlob,
  nodeRouter,
  runScript,
  scanKeys,
  tickCorker,
  unlinkKeys,
  withoutCommandArguments,
} from '@austa/redis-cluster';
import type { Cluster, Redis } from 'ioredis';
import {
  type CompiledLimit,
  checkCost,
  checkStrategy,
  compilePlan,
  type LimitConfig,
  type Plan,
  PlanCache,
  type Strategy,
} from './config.js';
import {
  AustaRateLimitError,
  RateLimitArgumentError,
  RateLimitConfigError,
  RateLimiterClosedError,
  RateLimitRedisError,
} from './errors.js';
import { type FailurePolicy, type FallbackReason, Instruments } from './instruments.js';
import { encodeKey, KIND, typeOf, validatePrefix } from './keys.js';
import { BlockCache, InsuranceLimiter } from './local-state.js';
import {
  BATCH_CODES,
  BATCH_ERROR,
  BATCH_SCRIPT,
  NODE_BATCH_REFUSED,
  NODE_BATCH_SCRIPT,
} from './scripts/batch.js';
import { COMMANDS, SCRIPTS, type ScriptVariant } from './scripts/index.js';
import { TimeoutQueue, type Waiter } from './timeouts.js';

export type { FailurePolicy };

/** Defaults, exported so the README and tests cite the numbers the code uses. */
export const DEFAULTS = {
  name: 'default',
  prefix: 'austa:rate-limit',
  failurePolicy: 'insurance' as FailurePolicy,
  timeoutMs: 500,
  insuranceMaxKeys: 10_000,
  insuranceLimitFraction: 1,
  blockCacheMaxKeys: 10_000,
  failClosedRetryAfterMs: 1000,
} as const;

export interface RateLimiterOptions {
  /** Any ioredis client: a standalone `Redis` or a `Cluster`, built by `@austa/redis-cluster` or by you. Never quit by the limiter. */
  redis: Redis | Cluster;
  /** `@austa/metrics` instance to record decisions, fallbacks and Redis latency in. Without it nothing is recorded. */
  metrics?: Metrics;
  /** `limiter` label of this limiter's metrics: a short fixed word (`api`, `login`), never a user id. Default `default`. */
  name?: string;
  /** Prefix of every key: `<prefix>:<kind>:{<key>}:…`. Default `austa:rate-limit`. */
  prefix?: string;
  /**
   * How `checkLimit` answers when Redis fails or does not answer within `timeoutMs`:
   * `insurance` (default) applies the limits in this process' memory, `fail-open` allows, `fail-closed` rejects.
   */
  failurePolicy?: FailurePolicy;
  /** Longest a call waits for Redis, in ms, before its failure policy (or error) answers. Default 500. */
  timeoutMs?: number;
  /** The in-memory limiter of the `insurance` policy. */
  insurance?: {
    /** Keys it tracks at most (least recently used dropped first). Default 10,000. */
    maxKeys?: number;
    /**
     * Share of each limit one process allows while Redis is away, in (0, 1]. With N processes behind a load
     * balancer, `1 / N` keeps the total near the limit. Default 1.
     */
    limitFraction?: number;
  };
  /**
   * Remember blocked keys in memory and answer their checks without Redis until the block ends. `unblock()` on
   * another process is not seen here until then. Default off; `true` or `{ maxKeys }` (default 10,000) turns it on.
   */
  blockCache?: boolean | { maxKeys?: number };
  /**
   * Record the check script's latency in `db_client_operation_duration_seconds` (as `evalsha`). Turn off when the
   * client is already measured (a `@austa/redis-cluster` client built with the same `metrics`). Default `true`.
   */
  recordRedisLatency?: boolean;
  /**
   * Send the single-limit checks issued in one turn of the event loop (until `setImmediate`) as one script call per
   * destination: on a standalone server one call, on a cluster one per master. In a server, that is the checks of
   * every request read in that turn. Each check stays atomic and gets the answer it would get alone; the batch halves
   * Redis and client time per check under load. `false` sends every check on its own. Default `true`.
   */
  batch?: boolean;
  /**
   * This process' clock, ms since 1970. Never used for decisions (Redis' clock is), nor for deadlines (the monotonic
   * clock is): only to express `resetAtMs` in your clock. Default `Date.now`.
   */
  now?: () => number;
  /** Called with each Redis error or timeout that a failure policy answered for. Default: nothing (see metrics). */
  onRedisError?: (error: unknown) => void;
}

/** How one limit of a multi-limit check came out. */
export interface LimitResult {
  strategy: Strategy;
  limit: number;
  windowSeconds: number;
  allowed: boolean;
  remaining: number;
  resetAtMs: number;
  retryAfterMs: number;
}

/** The answer to `checkLimit` and `getStatus`. A plain object. */
export interface RateLimitResult {
  /** `checkLimit`: the request may proceed (and was counted). `getStatus`: a request of this cost would be allowed now. */
  allowed: boolean;
  /** The limit that decided: the only one, or in a multi-limit check the one that rejected (or has least left). */
  limit: number;
  /** Units left in that limit after this request (`getStatus`: before any request). Never negative. */
  remaining: number;
  /** When that limit is fully restored, in ms since 1970 on this process' clock (`now`). */
  resetAtMs: number;
  /** 0 when allowed; else the exact wait in ms until a request of this cost would be allowed (or the block ends). */
  retryAfterMs: number;
  /** The key is blocked (`block()` or `blockDurationSeconds`). */
  blocked: boolean;
  /** `null` when Redis answered; the failure policy's name when it answered instead. */
  fallback: FailurePolicy | null;
  /** Multi-limit checks only: each limit's outcome, in the order given. */
  limits?: LimitResult[];
}

export interface CheckOptions {
  /** Units this request uses, a positive whole number up to the limit's capacity. Default 1. */
  cost?: number;
}

export interface RateLimiter {
  readonly name: string;
  readonly prefix: string;
  readonly failurePolicy: FailurePolicy;
  /**
   * Decides one request: counts it and returns `allowed: true` if every limit has room, else counts nothing (unless
   * `countRejected`) and returns `allowed: false` with the exact `retryAfterMs`. Pass an array of limits to apply
   * them together (all counted or none). Rejects only for bad input or after `close()`; Redis failures are answered
   * by the failure policy.
   * @example await limiter.checkLimit(`user:${id}`, { limit: 100, windowSeconds: 60 }, 'sliding-window')
   */
  checkLimit(
    key: string,
    config: LimitConfig | readonly LimitConfig[],
    strategy: Strategy,
    options?: CheckOptions,
  ): Promise<RateLimitResult>;
  /** Reads what `checkLimit` would answer, without counting anything. Reports blocks. Throws on Redis failure. */
  getStatus(
    key: string,
    config: LimitConfig | readonly LimitConfig[],
    strategy: Strategy,
    options?: CheckOptions,
  ): Promise<RateLimitResult>;
  /**
   * Forgets the key's usage under `strategy`. With `config`, only those limits' state (one `UNLINK`); without, every
   * limit of that strategy for the key, found by a cluster-wide SCAN (cost grows with the keyspace). Blocks stay.
   * Resolves to the number of keys removed.
   */
  reset(key: string, strategy: Strategy, config?: LimitConfig | readonly LimitConfig[]): Promise<number>;
  /** Blocks the key for `seconds` (fractional allowed): every check of every strategy is rejected until then. */
  block(key: string, seconds: number): Promise<void>;
  /** Whether the key is blocked now. */
  isBlocked(key: string): Promise<boolean>;
  /** Lifts a block; resolves to `true` if the key was blocked. */
  unblock(key: string): Promise<boolean>;
  /**
   * Scans every master for this prefix's keys that have no expiry (there should be none: every key is written with
   * one) and removes them. Resolves to the number removed. Fails with `E_INCOMPLETE_SCAN` rather than scan part of a
   * cluster.
   */
  cleanup(): Promise<number>;
  /** Answers pending calls, drops in-memory state. Does not quit the Redis client. Later calls reject with `E_CLOSED`. */
  close(): Promise<void>;
}

const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
const POLICIES: readonly FailurePolicy[] = ['fail-open', 'fail-closed', 'insurance'];
/** Longest per-call timeout. */
const MAX_TIMEOUT_MS = 60_000;
/** Longest block: ten years. */
const MAX_BLOCK_SECONDS = 315_360_000;
/** How far Redis' clock may be from this host's before the first reply without a check being dropped. */
const BOOTSTRAP_SKEW_MS = 30_000;
/** How long a sample of Redis' clock offset is trusted as the best one (see `ClockOffset`). */
const OFFSET_EPOCH_MS = 5000;

// Reply statuses of the check scripts (see scripts/common.ts).
const STATUS_ALLOWED = 0;
const STATUS_BLOCKED = 2;
const STATUS_AUTO_BLOCKED = 3;
const STATUS_LATE = -1;
const ALLOWED = 0;
const REJECTED = 1;
const BLOCKED = 2;

const SCRIPT_BY_COMMAND = new Map(
  (Object.keys(SCRIPTS) as ScriptVariant[]).map((variant) => [
    COMMANDS[variant],
    defineScript(SCRIPTS[variant]),
  ]),
);

const BATCH = defineScript(BATCH_SCRIPT);
const NODE_BATCH = defineScript(NODE_BATCH_SCRIPT);
/** The batch code of each flat script's command; the general script never runs in a batch. */
const BATCH_CODE_BY_COMMAND = new Map(
  (Object.keys(BATCH_CODES) as Array<keyof typeof BATCH_CODES>).map((variant) => [
    COMMANDS[variant],
    BATCH_CODES[variant],
  ]),
);
/** Checks per batch script call: bounds how long one call holds Redis (a check is a few µs there). */
const MAX_BATCH = 128;
/**
 * Checks a tick holds before it writes them (see endTick): Redis starts on a batch while the tick builds the next.
 * On a standalone server, about a third of the previous tick's checks within these bounds: at 100 callers in flight
 * 32 did best (8 and 4 cost more in writes than they won), at 10 callers 4 did (0.66-0.79x the rival's throughput
 * with one write per tick, 1.2x with three).
 */
const FLUSH_AT_MOST = 32;
const FLUSH_AT_LEAST = 4;

/** Where a check's reply or error goes. */
interface CheckReceiver {
  /** performance.now() ms past which Redis records nothing for this check (it answers that it came too late). */
  readonly deadline: number;
  reply(reply: number[]): void;
  error(error: unknown): void;
}

interface Batched {
  receiver: CheckReceiver;
  command: string;
  code: string;
  args: Array<string | number>;
}

function positiveInteger(value: unknown, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new RateLimitConfigError(`${field} must be a positive whole number (got ${typeOf(value)}).`);
  }
  return value;
}

/** The connection closed between the write and the reply (RedisMaybeAppliedError of `@austa/redis-cluster`). */
function isMaybeApplied(error: unknown): boolean {
  return (
    typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'E_MAYBE_APPLIED'
  );
}

function isCluster(client: Redis | Cluster): client is Cluster {
  return (client as { isCluster?: unknown }).isCluster === true;
}

function isRedisClient(value: unknown): value is Redis | Cluster {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { defineCommand?: unknown }).defineCommand === 'function' &&
    typeof (value as { sendCommand?: unknown }).sendCommand === 'function'
  );
}

/**
 * Where Redis' clock stands relative to this process' monotonic clock (`performance.now()`), learned from replies.
 * Each reply gives a lower bound (Redis' time at the script minus our time at the reply); the largest of the last
 * two 5-second epochs is used, so a slow reply never pulls it down and a step of Redis' clock (a failover to a host
 * whose clock differs) is followed within 10 s. Wall-clock steps on this host change nothing. Used only to place
 * deadlines on Redis' clock.
 */
class ClockOffset {
  known = false;
  private current = Number.NEGATIVE_INFINITY;
  private previous = Number.NEGATIVE_INFINITY;
  private epochEnd = 0;

  sample(redisNowMs: number, localNowMs: number): void {
    const offset = redisNowMs - localNowMs;
    if (localNowMs > this.epochEnd) {
      this.previous = this.current;
      this.current = offset;
      this.epochEnd = localNowMs + OFFSET_EPOCH_MS;
    } else if (offset > this.current) {
      this.current = offset;
    }
    this.known = true;
  }

  get value(): number {
    return Math.max(this.current, this.previous);
  }
}

/** `work`, or E_TIMEOUT with `message` if it has not settled within `ms`. */
function withinMs<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RateLimitRedisError('E_TIMEOUT', message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  if (typeof options !== 'object' || options === null) {
    throw new RateLimitConfigError('createRateLimiter needs an options object: { redis }.');
  }
  if (!isRedisClient(options.redis)) {
    throw new RateLimitConfigError('redis must be an ioredis Redis or Cluster client.');
  }
  const redis = options.redis;
  const name = options.name ?? DEFAULTS.name;
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new RateLimitConfigError(
      `name must be 1-32 characters of a-z, 0-9, "_" or "-", starting with a letter (got ${typeOf(name)}).`,
    );
  }
  const prefix = validatePrefix(options.prefix ?? DEFAULTS.prefix);
  const failurePolicy = options.failurePolicy ?? DEFAULTS.failurePolicy;
  if (!POLICIES.includes(failurePolicy)) {
    throw new RateLimitConfigError(
      `failurePolicy must be one of ${POLICIES.map((p) => `'${p}'`).join(', ')} (got ${typeOf(failurePolicy)}).`,
    );
  }
  const timeoutMs = positiveInteger(options.timeoutMs, DEFAULTS.timeoutMs, 'timeoutMs');
  if (timeoutMs > MAX_TIMEOUT_MS) {
    throw new RateLimitConfigError(
      `timeoutMs must be at most ${MAX_TIMEOUT_MS} (got ${timeoutMs}): a check that waits longer is an outage already.`,
    );
  }
  const insuranceOptions = options.insurance ?? {};
  const insuranceMaxKeys = positiveInteger(
    insuranceOptions.maxKeys,
    DEFAULTS.insuranceMaxKeys,
    'insurance.maxKeys',
  );
  const limitFraction = insuranceOptions.limitFraction ?? DEFAULTS.insuranceLimitFraction;
  if (typeof limitFraction !== 'number' || !(limitFraction > 0 && limitFraction <= 1)) {
    throw new RateLimitConfigError(
      `insurance.limitFraction must be a number in (0, 1] (got ${typeOf(limitFraction)}).`,
    );
  }
  let blockCache: BlockCache | undefined;
  if (options.blockCache !== undefined && options.blockCache !== false) {
    const maxKeys =
      options.blockCache === true
        ? DEFAULTS.blockCacheMaxKeys
        : positiveInteger(options.blockCache.maxKeys, DEFAULTS.blockCacheMaxKeys, 'blockCache.maxKeys');
    blockCache = new BlockCache(maxKeys);
  }
  const now = options.now ?? Date.now;
  // Checked once here: a clock that throws or returns garbage inside a reply handler would leave a check unanswered.
  if (typeof now !== 'function' || !Number.isFinite(now())) {
    throw new RateLimitConfigError('now must be a function returning ms since 1970.');
  }
  const onRedisError = options.onRedisError;
  const instruments = new Instruments(options.metrics, name, failurePolicy);
  const recordLatency = instruments.enabled && options.recordRedisLatency !== false;
  const insurance =
    failurePolicy === 'insurance' ? new InsuranceLimiter(insuranceMaxKeys, limitFraction) : undefined;

  const clientKeyPrefix = (redis.options as { keyPrefix?: string }).keyPrefix ?? '';
  // EVALSHA with EVAL after NOSCRIPT (runScript), not ioredis defineCommand: with auto-pipelining on a cluster,
  // ioredis groups a command by its first key, and for a defined command it took the key count for the key, so one
  // tick's checks of keys on different masters failed whole.
  // The checks of one tick leave in one write per connection (see tickCorker): the syscall per command was most of a
  // check's client CPU.
  const corker = tickCorker(redis);
  const clustered = isCluster(redis);
  const router = nodeRouter(redis);
  if (options.batch !== undefined && typeof options.batch !== 'boolean') {
    throw new RateLimitConfigError(`batch must be true or false (got ${typeOf(options.batch)}).`);
  }
  const batching = options.batch !== false;

  // EVALSHA with EVAL after NOSCRIPT (runScript), not ioredis defineCommand: with auto-pipelining on a cluster,
  // ioredis groups a command by its first key, and for a defined command it took the key count for the key, so one
  // tick's checks of keys on different masters failed whole.
  /** Sends one check; the promise settles (never rejects) once it is answered. */
  function sendAlone(receiver: CheckReceiver, command: string, args: Array<string | number>): Promise<void> {
    corker.cork(clientKeyPrefix + (args[1] as string));
    return runScript(redis, SCRIPT_BY_COMMAND.get(command) as { sha: string; lua: string }, args).then(
      (reply) => receiver.reply(reply as number[]),
      (error: unknown) => receiver.error(error),
    );
  }

  /*
   * Node batches in flight, until every check in them is answered, including checks a master refused and that were
   * sent again on their own. A refused check goes out one round trip later, through a redirection, so a getStatus,
   * block or reset of the same key issued after it (and written right away) would run first. Those wait for the
   * batches holding their key (see afterBatchesOf). Only node batches can be refused: a standalone server runs what
   * it is sent in order.
   */
  const batchesInFlight: Array<{ keys: Set<string>; settled: Promise<void> }> = [];

  /**
   * Settles when no node batch in flight holds a check of the key whose block marker is `blockKey`; undefined when
   * none does, so the caller sends at once.
   */
  function afterBatchesOf(blockKey: string): Promise<unknown> | undefined {
    let waits: Array<Promise<void>> | undefined;
    for (const batch of batchesInFlight) {
      if (batch.keys.has(blockKey)) {
        waits ??= [];
        waits.push(batch.settled);
      }
    }
    return waits === undefined ? undefined : Promise.all(waits);
  }
  /*
   * Keys with an operation held back until their earlier checks are answered. The operation is sent late, so the
   * key's checks and operations issued after it wait for it too (until it is answered), or they would overtake it.
   * Empty unless a node batch was in flight when an operation of its key was issued.
   */
  const heldKeys = new Map<string, Promise<unknown>>();

  /** What an operation of the key must wait for before it is sent; undefined when it can go at once. */
  function waitFor(blockKey: string): Promise<unknown> | undefined {
    const batches = afterBatchesOf(blockKey);
    const held = heldKeys.get(blockKey);
    if (batches === undefined) return held;
    return held === undefined ? batches : Promise.all([batches, held]);
  }

  /** Sends `send` after `wait`, and holds the key's later checks and operations until it is answered. */
  function holdKey<T>(blockKey: string, wait: Promise<unknown>, send: () => Promise<T>): Promise<T> {
    const result = wait.then(send);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    heldKeys.set(blockKey, settled);
    void settled.then(() => {
      if (heldKeys.get(blockKey) === settled) heldKeys.delete(blockKey);
    });
    return result;
  }

  /*
   * Flat checks wait for the end of the event loop's turn, grouped by where they go: on a standalone server all in
   * one group, on a cluster one group per master (by the slot map ioredis routes by). Each group runs as one batch
   * script call (scripts/batch.ts). At 100 callers in flight this halved the Redis time and the client time of a
   * check: one command, one reply and one script call per turn instead of one per check. A group is sent on
   * setImmediate, not process.nextTick: an HTTP server handles each request in its own tick (one per socket read), so
   * ending batches with the tick sent every request's check alone and batching never happened in a server (plain
   * node:http, 50 connections, distinct keys: 52-71 µs of server CPU per request with nextTick, 43-49 with
   * setImmediate). No check waits for I/O: the event loop does not block for I/O while an immediate is pending, and
   * every flushAt checks the groups are written at once. On a cluster a group goes to its master's
   * connection; a batch that master refuses (a slot moved, or is moving) writes nothing, and its checks are sent
   * again one by one through the cluster client, which follows MOVED and ASK. Every flushAt checks the tick's groups
   * are sent and written at once: with all of a tick in one write, Redis ran the whole batch while the client waited,
   * then the client answered it while Redis waited; written as they fill, Redis runs one batch while the tick builds
   * the next (fixed window, 100 callers in flight: from 1.1-1.2x to about 1.6x rate-limiter-flexible's throughput on
   * a standalone server).
   */
  let waiting = new Map<string, Batched[]>();
  let waitingChecks = 0;
  let tickChecks = 0;
  let tickEndScheduled = false;
  let flushAt = FLUSH_AT_MOST;
  const flushAll = () => {
    waitingChecks = 0;
    if (waiting.size === 0) return;
    const groups = waiting;
    waiting = new Map();
    for (const [node, group] of groups) sendBatch(group, node);
  };

  /** Sends what the tick left, and sizes the next tick's writes after this one: about three writes per tick. */
  const endTick = () => {
    tickEndScheduled = false;
    flushAll();
    // On a cluster a tick's checks spread over the masters: smaller writes only cost more.
    if (!clustered) flushAt = Math.min(FLUSH_AT_MOST, Math.max(FLUSH_AT_LEAST, Math.ceil(tickChecks / 3)));
    tickChecks = 0;
  };

  function sendCheck(receiver: CheckReceiver, command: string, args: Array<string | number>): void {
    const code = batching ? BATCH_CODE_BY_COMMAND.get(command) : undefined;
    if (code === undefined) {
      // Anything this limiter sends goes after the checks issued before it: a getStatus, a multi-limit check, a
      // block or a reset issued after a check in the same tick must not overtake it.
      flushAll();
      const wait = waitFor(args[1] as string);
      if (wait === undefined) sendAlone(receiver, command, args);
      else void holdKey(args[1] as string, wait, () => sendAlone(receiver, command, args));
      return;
    }
    const held = heldKeys.size === 0 ? undefined : heldKeys.get(args[1] as string);
    if (held !== undefined) {
      void held.then(() => {
        if (!closed) sendCheck(receiver, command, args);
      });
      return;
    }
    const node = clustered ? router.nodeOf(clientKeyPrefix + (args[1] as string)) : '';
    if (node === undefined) {
      // A slot the map does not know yet: the cluster client finds it.
      sendAlone(receiver, command, args);
      return;
    }
    let group = waiting.get(node);
    if (group === undefined) {
      group = [];
      waiting.set(node, group);
    }
    group.push({ receiver, command, code, args });
    if (group.length >= MAX_BATCH) {
      waiting.delete(node);
      sendBatch(group, node);
    }
    tickChecks++;
    if (++waitingChecks >= flushAt) {
      flushAll();
      corker.flushAll();
    }
    if (!tickEndScheduled) {
      tickEndScheduled = true;
      setImmediate(endTick);
    }
  }

  function sendEachAlone(group: Batched[]): Promise<unknown> {
    return Promise.all(group.map(({ receiver, command, args }) => sendAlone(receiver, command, args)));
  }

  function sendBatch(group: Batched[], node: string): void {
    if (group.length === 1) {
      sendEachAlone(group);
      return;
    }
    const connection = clustered ? router.readyConnection(node) : redis;
    if (connection === undefined) {
      sendEachAlone(group);
      return;
    }
    // Two keys per check first, then each check's code, argument count and arguments (scripts/batch.ts). A node
    // batch declares no keys (its keys go in ARGV, with the client's key prefix, which only declared keys get).
    const argv: Array<string | number> = clustered ? [0, group.length] : [group.length * 2];
    const keyPrefix = clustered ? clientKeyPrefix : '';
    for (const { args } of group) argv.push(keyPrefix + (args[1] as string), keyPrefix + (args[2] as string));
    for (const { code, args } of group) {
      argv.push(code, args.length - 3);
      for (let i = 3; i < args.length; i++) argv.push(args[i] as string | number);
    }
    if (clustered) corker.corkNode(node);
    else corker.cork(clientKeyPrefix + ((group[0] as Batched).args[1] as string));
    // A node connection may auto-pipeline (to the end of the tick); commands the Cluster routes to it later in this
    // tick are written at once, so the batch must be handed over now to stay ahead of them.
    const answered = runScript(connection, clustered ? NODE_BATCH : BATCH, argv, false, {
      now: clustered,
    }).then(
      (replies) => {
        const list = replies as Array<Array<number | string> | number>;
        if (list[0] === NODE_BATCH_REFUSED) return sendEachAlone(group);
        for (let i = 0; i < group.length; i++) {
          const receiver = (group[i] as Batched).receiver;
          const reply = list[i];
          if (!Array.isArray(reply))
            receiver.error(new Error('The batch reply has no entry for this check.'));
          else if (reply[0] === BATCH_ERROR) {
            receiver.error(Object.assign(new Error(String(reply[1])), { name: 'ReplyError' }));
          } else receiver.reply(reply as number[]);
        }
        return undefined;
      },
      (error: unknown) => {
        for (const { receiver } of group) receiver.error(error);
      },
    );
    if (!clustered) return;
    // Settled when answered, or once every check's deadline has passed: Redis then records none of them, even sent
    // again (once this limiter has learned Redis' clock, see scriptArgs), so nothing of them can still be counted.
    // A batch stuck on a master that hangs (a failover moved the slot meanwhile) holds its keys' operations no longer
    // than its checks' own timeout.
    const keys = new Set<string>();
    let lastDeadline = 0;
    for (const { args, receiver } of group) {
      keys.add(args[1] as string);
      if (receiver.deadline > lastDeadline) lastDeadline = receiver.deadline;
    }
    let timer: NodeJS.Timeout | undefined;
    const settled = Promise.race([
      answered,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, lastDeadline - performance.now()));
        timer.unref();
      }),
    ]).then(() => clearTimeout(timer));
    const batch = { keys, settled };
    batchesInFlight.push(batch);
    void settled.then(() => batchesInFlight.splice(batchesInFlight.indexOf(batch), 1));
  }

  const plans = new PlanCache(prefix);
  const timeouts = new TimeoutQueue();
  const offset = new ClockOffset();
  let closed = false;
  const blockKeyHead = `${prefix}:${KIND.block}:{`;

  function decide(strategyIndex: number, result: number): void {
    instruments.decision(strategyIndex, result);
  }

  function blockedResult(
    plan: Plan,
    ttlMs: number,
    at: number,
    fallback: FailurePolicy | null,
  ): RateLimitResult {
    const first = plan.limits[0] as CompiledLimit;
    // A block key without expiry was not written by this package; report a window's wait rather than none.
    const wait = ttlMs < 0 ? first.windowMs : Math.ceil(ttlMs);
    return {
      allowed: false,
      limit: first.limit,
      remaining: 0,
      resetAtMs: at + wait,
      retryAfterMs: wait,
      blocked: true,
      fallback,
    };
  }

  /** A reply of a flat script: { status, Redis time, remaining, reset ms[, retry ms] }. */
  function resultFromFlatReply(reply: number[], plan: Plan, at: number): RateLimitResult {
    const status = reply[0] as number;
    if (status === STATUS_BLOCKED) return blockedResult(plan, reply[4] as number, at, null);
    return {
      allowed: status === STATUS_ALLOWED,
      limit: (plan.limits[0] as CompiledLimit).limit,
      remaining: reply[2] as number,
      resetAtMs: at + (reply[3] as number),
      retryAfterMs: status === STATUS_ALLOWED ? 0 : (reply[4] as number),
      blocked: false,
      fallback: null,
    };
  }

  /** A reply of the general script: { status, Redis time, block ms, then four per limit }. */
  function resultFromReply(reply: number[], plan: Plan, at: number): RateLimitResult {
    const status = reply[0] as number;
    if (status === STATUS_BLOCKED) return blockedResult(plan, reply[4] as number, at, null);
    if (plan.limits.length === 1) {
      let retry = reply[6] as number;
      if (status === STATUS_AUTO_BLOCKED && (reply[2] as number) > retry) retry = reply[2] as number;
      return {
        allowed: status === STATUS_ALLOWED,
        limit: (plan.limits[0] as CompiledLimit).limit,
        remaining: reply[4] as number,
        resetAtMs: at + (reply[5] as number),
        retryAfterMs: status === STATUS_ALLOWED ? 0 : retry,
        blocked: status === STATUS_AUTO_BLOCKED,
        fallback: null,
      };
    }
    const count = plan.limits.length;
    const limits: LimitResult[] = [];
    let deciding = 0;
    let retry = 0;
    for (let i = 0; i < count; i++) {
      const compiled = plan.limits[i] as CompiledLimit;
      const at4 = 3 + i * 4;
      const item: LimitResult = {
        strategy: compiled.strategy,
        limit: compiled.limit,
        windowSeconds: compiled.windowSeconds,
        allowed: reply[at4] === 1,
        remaining: reply[at4 + 1] as number,
        resetAtMs: at + (reply[at4 + 2] as number),
        retryAfterMs: reply[at4 + 3] as number,
      };
      limits.push(item);
      const best = limits[deciding] as LimitResult;
      // The deciding limit: the rejecting one with the longest wait, else the one with the least left.
      if (
        (!item.allowed && (best.allowed || item.retryAfterMs > best.retryAfterMs)) ||
        (item.allowed && best.allowed && item.remaining < best.remaining)
      ) {
        deciding = i;
      }
      if (item.retryAfterMs > retry) retry = item.retryAfterMs;
    }
    const allowed = status === STATUS_ALLOWED;
    if (status === STATUS_AUTO_BLOCKED && (reply[2] as number) > retry) retry = reply[2] as number;
    const top = limits[deciding] as LimitResult;
    return {
      allowed,
      limit: top.limit,
      remaining: top.remaining,
      resetAtMs: top.resetAtMs,
      retryAfterMs: allowed ? 0 : retry,
      blocked: status === STATUS_AUTO_BLOCKED,
      fallback: null,
      limits,
    };
  }

  /** What the failure policy answers, per limit; multi-limit results carry `limits` like Redis' answers do. */
  function policyResult(tag: string, plan: Plan, cost: number): RateLimitResult {
    const at = now();
    const count = plan.limits.length;
    let allowed: boolean;
    let remaining: number[];
    let resetMs: number[];
    let retryMs: number[];
    if (failurePolicy === 'insurance') {
      const local = (insurance as InsuranceLimiter).check(tag, plan, cost);
      ({ allowed, remaining, resetMs, retryMs } = local);
    } else {
      allowed = failurePolicy === 'fail-open';
      const wait = DEFAULTS.failClosedRetryAfterMs;
      remaining = plan.limits.map((limit) => (allowed ? Math.max(0, Math.floor(limit.capacity - cost)) : 0));
      resetMs = plan.limits.map((limit) => (allowed ? Math.ceil(limit.windowMs) : wait));
      retryMs = plan.limits.map(() => (allowed ? 0 : wait));
    }
    let deciding = 0;
    for (let i = 1; i < count; i++) {
      const wait = retryMs[i] as number;
      if (wait > (retryMs[deciding] as number)) deciding = i;
      else if (allowed && (remaining[i] as number) < (remaining[deciding] as number)) deciding = i;
    }
    const result: RateLimitResult = {
      allowed,
      limit: (plan.limits[deciding] as CompiledLimit).limit,
      remaining: remaining[deciding] as number,
      resetAtMs: at + (resetMs[deciding] as number),
      retryAfterMs: allowed ? 0 : (retryMs[deciding] as number),
      blocked: false,
      fallback: failurePolicy,
    };
    if (count > 1) {
      result.limits = plan.limits.map((limit, i) => ({
        strategy: limit.strategy,
        limit: limit.limit,
        windowSeconds: limit.windowSeconds,
        allowed: (retryMs[i] as number) === 0,
        remaining: remaining[i] as number,
        resetAtMs: at + (resetMs[i] as number),
        retryAfterMs: retryMs[i] as number,
      }));
    }
    return result;
  }

  function scriptArgs(tag: string, plan: Plan, peek: boolean, cost: number, sentAt: number) {
    const limits = plan.limits;
    // Before the first reply Redis' clock is unknown: assume it is within BOOTSTRAP_SKEW_MS of this host's wall
    // clock, so checks queued during an outage at startup are not counted minutes later either. A Redis clock
    // further ahead only turns the first checks into policy answers, and their replies teach the real offset.
    const deadline = offset.known
      ? Math.floor(sentAt + offset.value + timeoutMs)
      : Math.floor(Date.now() + timeoutMs + BOOTSTRAP_SKEW_MS);
    if (plan.flat && !peek) {
      const limit = limits[0] as CompiledLimit;
      const own = limit.flatArgs;
      const args: Array<string | number> = [
        2,
        `${blockKeyHead + tag}}`,
        limit.keyHead + tag + limit.keyTail,
        deadline,
        cost,
        own[0] as string,
        own[1] as string,
      ];
      if (own.length === 3) args.push(own[2] as string);
      return args;
    }
    const args: Array<string | number> = [plan.numberOfKeys, `${blockKeyHead + tag}}`];
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as CompiledLimit;
      args.push(limit.keyHead + tag + limit.keyTail);
    }
    args.push(peek ? '1' : '0', deadline, cost);
    for (let i = 0; i < limits.length; i++) {
      const limitArgs = (limits[i] as CompiledLimit).args;
      for (let j = 0; j < limitArgs.length; j++) args.push(limitArgs[j] as string);
    }
    return args;
  }

  /** One check in flight: answered by its reply, its error, or its deadline, whichever comes first. */
  class PendingCheck implements Waiter {
    settled = false;
    readonly deadline: number;

    /** A peek already sent again after its connection closed (see `error`). */
    private resent = false;

    constructor(
      private readonly resolve: (result: RateLimitResult) => void,
      private readonly reject: (error: Error) => void,
      private readonly tag: string,
      private readonly plan: Plan,
      private readonly cost: number,
      private readonly peek: boolean,
      private readonly startedAt: number,
      private readonly args: Array<string | number>,
    ) {
      this.deadline = startedAt + timeoutMs;
    }

    send(): void {
      sendCheck(this, this.peek ? COMMANDS.multi : this.plan.command, this.args);
    }

    reply(reply: number[]): void {
      if (this.settled) return;
      this.settled = true;
      try {
        this.answer(reply);
      } catch (error) {
        // A reply of an unexpected shape (or a clock that throws): answer with the error rather than never.
        this.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }

    private answer(reply: number[]): void {
      const at = now();
      const monotonic = performance.now();
      if (recordLatency) instruments.checkAnswered((monotonic - this.startedAt) / 1000);
      offset.sample(reply[1] as number, monotonic);
      if (reply[0] === STATUS_LATE) {
        this.fallback(
          'deadline',
          new RateLimitRedisError('E_TIMEOUT', 'The check reached Redis after its deadline.'),
        );
        return;
      }
      const plan = this.plan;
      const result =
        plan.flat && !this.peek ? resultFromFlatReply(reply, plan, at) : resultFromReply(reply, plan, at);
      if (result.blocked && blockCache !== undefined) blockCache.add(this.tag, result.retryAfterMs);
      if (!this.peek) {
        decide(
          plan.strategyIndex,
          result.allowed ? ALLOWED : reply[0] === STATUS_BLOCKED ? BLOCKED : REJECTED,
        );
      }
      this.resolve(result);
    }

    error(error: unknown): void {
      if (this.settled) return;
      // The connection closed after the script was written (E_MAYBE_APPLIED from an @austa/redis-cluster client). A
      // peek writes nothing, so it is sent again, once, within the same deadline; a check is never sent twice, since
      // Redis may have counted it: its failure policy answers.
      if (this.peek && !this.resent && isMaybeApplied(error)) {
        this.resent = true;
        this.send();
        return;
      }
      this.settled = true;
      if (recordLatency) instruments.redis('evalsha', (performance.now() - this.startedAt) / 1000, error);
      this.fallback('error', error);
    }

    expire(): void {
      this.settled = true;
      if (recordLatency) instruments.redis('evalsha', timeoutMs / 1000, 'timeout');
      this.fallback(
        'timeout',
        new RateLimitRedisError(
          'E_TIMEOUT',
          `Redis did not answer the rate limit check within ${timeoutMs} ms.`,
        ),
      );
    }

    private fallback(reason: FallbackReason, error: unknown): void {
      if (closed) {
        this.reject(new RateLimiterClosedError());
        return;
      }
      if (this.peek) {
        this.reject(redisError(error));
        return;
      }
      instruments.fallback(reason);
      if (onRedisError !== undefined) {
        try {
          onRedisError(withoutCommandArguments(error));
        } catch {
          // A failing error hook must not turn an answered check into a hanging one.
        }
      }
      const result = policyResult(this.tag, this.plan, this.cost);
      decide(this.plan.strategyIndex, result.allowed ? ALLOWED : REJECTED);
      this.resolve(result);
    }
  }

  function run(
    peek: boolean,
    key: string,
    config: LimitConfig | readonly LimitConfig[],
    strategy: Strategy,
    checkOptions: CheckOptions | undefined,
  ): Promise<RateLimitResult> {
    if (closed) return Promise.reject(new RateLimiterClosedError());
    let tag: string;
    let plan: Plan;
    let cost = 1;
    try {
      tag = encodeKey(key);
      plan = plans.get(config, strategy);
      if (checkOptions !== undefined && checkOptions.cost !== undefined)
        cost = checkCost(checkOptions.cost, plan);
    } catch (error) {
      return Promise.reject(error);
    }
    if (blockCache !== undefined) {
      const left = blockCache.remainingMs(tag);
      if (left > 0) {
        instruments.blockCacheHit();
        if (!peek) decide(plan.strategyIndex, BLOCKED);
        return Promise.resolve(blockedResult(plan, left, now(), null));
      }
    }
    const startedAt = performance.now();
    const args = scriptArgs(tag, plan, peek, cost, startedAt);
    return new Promise<RateLimitResult>((resolve, reject) => {
      const pending = new PendingCheck(resolve, reject, tag, plan, cost, peek, startedAt, args);
      timeouts.add(pending);
      pending.send();
    });
  }

  function redisError(error: unknown): AustaRateLimitError {
    if (AustaRateLimitError.isInstance(error)) return error;
    return new RateLimitRedisError(
      'E_REDIS_UNAVAILABLE',
      `Redis failed: ${error instanceof Error ? error.message : String(error)}`,
      // The command's arguments are the limit's keys (user ids, addresses): not for logs.
      { cause: withoutCommandArguments(error) },
    );
  }

  /**
   * Admin operations: bounded by `timeoutMs` like checks, but they throw instead of applying a policy. Each one is
   * idempotent (SET PX, DEL, UNLINK, PTTL, SCAN), so one whose connection closed before its reply (E_MAYBE_APPLIED)
   * is sent again within the same deadline.
   */
  async function bounded<T>(operation: string, work: () => Promise<T>, afterChecksOf?: string): Promise<T> {
    if (closed) throw new RateLimiterClosedError();
    flushAll();
    // afterChecksOf: a block marker; the operation runs after that key's checks issued before it.
    const wait = afterChecksOf === undefined ? undefined : waitFor(afterChecksOf);
    const startedAt = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const attempt = () =>
      work().catch((error: unknown) => {
        if (timedOut || !isMaybeApplied(error)) throw error;
        return work();
      });
    try {
      const result = await Promise.race([
        wait === undefined
          ? attempt()
          : holdKey(afterChecksOf as string, wait, () => {
              // Answered already (E_TIMEOUT): never sent afterwards.
              if (timedOut) throw new RateLimitRedisError('E_TIMEOUT', `${operation} timed out.`);
              return attempt();
            }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            timedOut = true;
            reject(
              new RateLimitRedisError(
                'E_TIMEOUT',
                `Redis did not answer ${operation} within ${timeoutMs} ms.`,
              ),
            );
          }, timeoutMs);
        }),
      ]);
      if (recordLatency) instruments.redis(operation, (performance.now() - startedAt) / 1000);
      return result;
    } catch (error) {
      if (recordLatency) {
        const timedOut = AustaRateLimitError.isInstance(error) && error.code === 'E_TIMEOUT';
        instruments.redis(operation, (performance.now() - startedAt) / 1000, timedOut ? 'timeout' : error);
      }
      throw redisError(error);
    } finally {
      clearTimeout(timer);
    }
  }

  function blockSeconds(seconds: unknown): number {
    if (
      typeof seconds !== 'number' ||
      !Number.isFinite(seconds) ||
      seconds <= 0 ||
      seconds > MAX_BLOCK_SECONDS
    ) {
      throw new RateLimitArgumentError(
        'E_INVALID_ARGUMENT',
        `block seconds must be a positive finite number of at most ${MAX_BLOCK_SECONDS} (got ${typeOf(seconds)}).`,
      );
    }
    return Math.ceil(seconds * 1000);
  }

  /** Removes keys found by a scan; scanned keys carry the client's keyPrefix, which ioredis adds again. */
  async function unlinkScanned(keys: string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const own = clientKeyPrefix === '' ? keys : keys.map((key) => key.slice(clientKeyPrefix.length));
    return bounded('unlink', () => unlinkKeys(redis, own));
  }

  /**
   * Every key matching `pattern` on every master. A client without `commandTimeout` would wait forever for a SCAN
   * page from a paused server, so each page is bounded: by `timeoutMs` on a standalone server; on a cluster by three
   * times that, since `scanKeys` may first refresh the slot map and check every master answers (each bounded by
   * `timeoutMs`, failing with E_INCOMPLETE_SCAN), then SCAN.
   */
  async function* scan(pattern: string): AsyncGenerator<string> {
    const keys = scanKeys(redis, pattern, { count: 1000, timeoutMs });
    let done = false;
    try {
      while (true) {
        if (closed) throw new RateLimiterClosedError();
        const next = await pageOrTimeout(keys.next());
        if (next.done) {
          done = true;
          return;
        }
        yield next.value;
      }
    } finally {
      // Ends the scan behind us; a page still awaited settles into nothing.
      if (!done) keys.return?.(undefined).catch(() => {});
    }
  }

  const pageTimeoutMs = isCluster(redis) ? 3 * timeoutMs : timeoutMs;
  function pageOrTimeout<T>(page: Promise<T>): Promise<T> {
    return withinMs(page, pageTimeoutMs, `Redis did not answer SCAN within ${pageTimeoutMs} ms.`);
  }

  const limiter: RateLimiter = {
    name,
    prefix,
    failurePolicy,

    checkLimit(key, config, strategy, checkOptions) {
      return run(false, key, config, strategy, checkOptions);
    },

    getStatus(key, config, strategy, checkOptions) {
      return run(true, key, config, strategy, checkOptions);
    },

    async reset(key, strategy, config) {
      const tag = encodeKey(key);
      const checked = checkStrategy(strategy);
      if (closed) throw new RateLimiterClosedError();
      if (config !== undefined) {
        const plan = compilePlan(config, checked, prefix);
        const keys = plan.limits.map((limit) => limit.keyHead + tag + limit.keyTail);
        return bounded('unlink', () => redis.unlink(...keys), `${blockKeyHead + tag}}`);
      }
      const kinds =
        checked === 'sliding-window'
          ? [KIND['sliding-window:exact'], KIND['sliding-window:approximate']]
          : [KIND[checked]];
      const scanAndUnlink = async () => {
        let removed = 0;
        for (const kind of kinds) {
          const pattern = `${escapeGlob(clientKeyPrefix + prefix)}:${kind}:{${escapeGlob(tag)}}:*`;
          const found: string[] = [];
          for await (const found1 of scan(pattern)) found.push(found1);
          removed += await unlinkScanned([...new Set(found)]);
        }
        return removed;
      };
      // The scan and UNLINK must not overtake this key's checks issued before reset(), nor be overtaken by later ones.
      const blockKey = `${blockKeyHead + tag}}`;
      flushAll();
      const wait = waitFor(blockKey);
      if (wait === undefined) return scanAndUnlink();
      const message = `The checks issued before reset() were not answered within ${timeoutMs} ms.`;
      return holdKey(blockKey, withinMs(wait, timeoutMs, message), scanAndUnlink);
    },

    async block(key, seconds) {
      const tag = encodeKey(key);
      const ms = blockSeconds(seconds);
      const blockKey = `${blockKeyHead + tag}}`;
      await bounded('set', () => redis.set(blockKey, '1', 'PX', ms), blockKey);
      blockCache?.add(tag, ms);
    },

    async isBlocked(key) {
      const tag = encodeKey(key);
      const blockKey = `${blockKeyHead + tag}}`;
      const ttl = await bounded('pttl', () => redis.pttl(blockKey), blockKey);
      if (ttl > 0) blockCache?.add(tag, ttl);
      else blockCache?.delete(tag);
      return ttl !== -2;
    },

    async unblock(key) {
      const tag = encodeKey(key);
      blockCache?.delete(tag);
      const blockKey = `${blockKeyHead + tag}}`;
      const removed = (await bounded('del', () => redis.del(blockKey), blockKey)) > 0;
      // A check issued before unblock() whose "blocked" reply arrived meanwhile put the key back in the cache.
      blockCache?.delete(tag);
      return removed;
    },

    async cleanup() {
      if (closed) throw new RateLimiterClosedError();
      const pattern = `${escapeGlob(clientKeyPrefix + prefix)}:*`;
      let removed = 0;
      let batch: string[] = [];
      const flush = async () => {
        const keys = batch;
        batch = [];
        const own = clientKeyPrefix === '' ? keys : keys.map((key) => key.slice(clientKeyPrefix.length));
        const ttls = await Promise.all(own.map((key) => bounded('pttl', () => redis.pttl(key))));
        const orphans = keys.filter((_, i) => ttls[i] === -1);
        removed += await unlinkScanned(orphans);
      };
      // A slot migration can yield a key twice: the second PTTL finds it gone, and UNLINK counts only real removals.
      for await (const key of scan(pattern)) {
        batch.push(key);
        if (batch.length >= 200) await flush();
      }
      if (batch.length > 0) await flush();
      return removed;
    },

    async close() {
      if (closed) return;
      closed = true;
      timeouts.expireAll();
      // Checks still waiting for the end of the tick were just answered (closed): they must not reach Redis.
      waiting.clear();
      blockCache?.clear();
      insurance?.clear();
    },
  };
  return limiter;
}
