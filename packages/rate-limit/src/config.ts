import { RateLimitArgumentError, RateLimitConfigError } from './errors.js';
import { KIND, typeOf } from './keys.js';
import { COMMANDS } from './scripts/index.js';

/** The algorithms, named as in the original rate limiter service. */
export type Strategy = 'fixed-window' | 'sliding-window' | 'token-bucket' | 'leaky-bucket';

export const STRATEGIES: readonly Strategy[] = [
  'fixed-window',
  'sliding-window',
  'token-bucket',
  'leaky-bucket',
];

/** Values of the `strategy` metric label; the position is the index into the limiter's bound series. */
export const STRATEGY_LABELS: readonly (Strategy | 'multiple')[] = [...STRATEGIES, 'multiple'];

/** One limit: how many units (requests, or cost units) a key may use per window, and how. */
export interface LimitConfig {
  /**
   * Units allowed per window. For `fixed-window` and `sliding-window` a positive integer. For `token-bucket` and
   * `leaky-bucket` the units refilled (or leaked) per window, which may be fractional: the rate is
   * `limit / windowSeconds` per second.
   */
  limit: number;
  /**
   * Window length in seconds, at least 0.001. Fractional values are fine: `{ limit: 1, windowSeconds: 2 }` is a rate
   * of 0.5 per second.
   */
  windowSeconds: number;
  /**
   * `token-bucket` and `leaky-bucket` only: the bucket's capacity, i.e. the most units that can be used at once.
   * At least 1. Default: `limit`.
   */
  burst?: number;
  /**
   * `sliding-window` only. `approximate` (default): two weighted counters, constant memory. `exact`: a log of every
   * unit used in the window, memory proportional to `limit` (at most 100,000). See the README for the trade-off.
   */
  precision?: 'exact' | 'approximate';
  /**
   * When a check is rejected by this limit, block the key for this many seconds, in the same atomic step.
   * Every strategy honours the block. Default: no automatic block.
   */
  blockDurationSeconds?: number;
  /**
   * Count rejected requests against the limit as well (a client that keeps hammering stays limited). They take
   * their cost only up to what is left: counts never exceed the limit and `remaining` never goes negative.
   * Default `false`: a rejected request consumes nothing.
   */
  countRejected?: boolean;
  /** In a multi-limit check (`checkLimit(key, [a, b], strategy)`): this limit's own strategy. */
  strategy?: Strategy;
}

/** Strategy codes understood by the multi-limit script. */
export const CODE = {
  'fixed-window': '1',
  'sliding-window:exact': '2',
  'sliding-window:approximate': '3',
  'token-bucket': '4',
  'leaky-bucket': '5',
} as const;

/** Most entries an exact sliding-window log may hold per key (its memory is proportional to the limit). */
export const MAX_EXACT_LIMIT = 100_000;
/** Upper bound for limits, bursts and costs: Lua numbers are doubles, exact for integers below 2^53. */
export const MAX_UNITS = 1e12;
/** Longest window or block: ten years, far beyond any rate limit, well inside the numbers' exact range. */
const MAX_SECONDS = 315_360_000;
/** The leaky bucket stores a theoretical arrival time in µs since 1970; spacing below 1 µs would lose precision. */
const MIN_GCRA_INTERVAL_US = 1;

/** A validated limit, with the script arguments already turned into strings. */
export interface CompiledLimit {
  readonly strategy: Strategy;
  readonly kind: string;
  /** `:<window>` (and limit and burst for buckets): distinguishes limits of one key and strategy. */
  readonly suffix: string;
  readonly limit: number;
  /** Most units usable at once: `limit` for windows, `burst` for buckets. */
  readonly capacity: number;
  readonly windowMs: number;
  readonly windowSeconds: number;
  /** The state key is `keyHead + <encoded key> + keyTail`: `<prefix>:<kind>:{` and `}<suffix>`. */
  readonly keyHead: string;
  readonly keyTail: string;
  /** Which flat script checks this limit alone. */
  readonly variant: keyof typeof CODE;
  /** Neither auto-block nor count-rejected: a check of this limit alone can take its flat script. */
  readonly plain: boolean;
  /** Arguments of this limit for its flat script (after deadline and cost): limit, window, [capacity]. */
  readonly flatArgs: readonly string[];
  /** Arguments for the general script: strategy code, limit, window µs, capacity, block ms, count rejected. */
  readonly args: readonly string[];
  /** The fields it was compiled from, to notice a config object changed after it was cached. */
  readonly source: {
    limit: unknown;
    windowSeconds: unknown;
    burst: unknown;
    precision: unknown;
    blockDurationSeconds: unknown;
    countRejected: unknown;
    strategy: unknown;
  };
}

function fail(message: string): never {
  throw new RateLimitConfigError(message);
}

function finitePositive(value: unknown, field: string, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    fail(`${field} must be a positive finite number (got ${typeOf(value)}).`);
  }
  if (value > max) fail(`${field} must be at most ${max} (got ${value}).`);
  return value;
}

export function checkStrategy(strategy: unknown): Strategy {
  if (typeof strategy === 'string' && (STRATEGIES as readonly string[]).includes(strategy)) {
    return strategy as Strategy;
  }
  throw new RateLimitConfigError(
    `Unknown strategy ${typeOf(strategy)}; use one of ${STRATEGIES.map((s) => `'${s}'`).join(', ')}.`,
    'E_UNKNOWN_STRATEGY',
  );
}

/** Validates one limit for one strategy and precomputes everything the hot path needs. */
export function compileLimit(config: LimitConfig, strategyArgument: unknown, prefix: string): CompiledLimit {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    fail(`A limit must be an object like { limit: 100, windowSeconds: 60 } (got ${typeOf(config)}).`);
  }
  const strategy = checkStrategy(config.strategy ?? strategyArgument);
  const limit = finitePositive(config.limit, 'limit', MAX_UNITS);
  const windowSeconds = finitePositive(config.windowSeconds, 'windowSeconds', MAX_SECONDS);
  const windowUs = Math.round(windowSeconds * 1e6);
  if (windowUs < 1000) fail(`windowSeconds must be at least 0.001 (got ${windowSeconds}).`);
  const windowMs = windowUs / 1000;
  const isBucket = strategy === 'token-bucket' || strategy === 'leaky-bucket';

  if (!isBucket && !Number.isInteger(limit)) {
    fail(
      `limit must be a whole number for ${strategy} (got ${limit}); express fractional rates through windowSeconds, ` +
        'e.g. { limit: 1, windowSeconds: 2 } for 0.5 per second.',
    );
  }
  if (config.burst !== undefined && !isBucket) {
    fail(`burst applies to token-bucket and leaky-bucket only, not to ${strategy}.`);
  }
  const capacity = isBucket
    ? config.burst === undefined
      ? limit
      : finitePositive(config.burst, 'burst', MAX_UNITS)
    : limit;
  if (capacity < 1) {
    fail(
      `The bucket holds ${capacity} units, less than one request: set burst to at least 1 (e.g. { limit: ${limit}, ` +
        `windowSeconds: ${windowSeconds}, burst: 1 }).`,
    );
  }
  if (config.precision !== undefined && strategy !== 'sliding-window') {
    fail(`precision applies to sliding-window only, not to ${strategy}.`);
  }
  const precision = config.precision ?? 'approximate';
  if (precision !== 'exact' && precision !== 'approximate') {
    fail(`precision must be 'exact' or 'approximate' (got ${typeOf(precision)}).`);
  }
  if (strategy === 'sliding-window' && precision === 'exact' && limit > MAX_EXACT_LIMIT) {
    fail(
      `An exact sliding window keeps one entry per unit, so its limit is capped at ${MAX_EXACT_LIMIT} (got ${limit}); ` +
        "use precision: 'approximate' for larger limits.",
    );
  }
  if (strategy === 'leaky-bucket' && windowUs / limit < MIN_GCRA_INTERVAL_US) {
    fail(
      `leaky-bucket supports at most 1,000,000 units per second per key (got ${limit / windowSeconds}/s).`,
    );
  }
  let blockMs = 0;
  if (config.blockDurationSeconds !== undefined) {
    blockMs = Math.ceil(
      finitePositive(config.blockDurationSeconds, 'blockDurationSeconds', MAX_SECONDS) * 1000,
    );
  }
  if (config.countRejected !== undefined && typeof config.countRejected !== 'boolean') {
    fail(`countRejected must be true or false (got ${typeOf(config.countRejected)}).`);
  }

  const variant = strategy === 'sliding-window' ? (`sliding-window:${precision}` as const) : strategy;
  const countRejected = config.countRejected ? '1' : '0';
  const flatArgs =
    strategy === 'fixed-window'
      ? // The fixed-window script passes its window straight to PEXPIRE, so it takes whole milliseconds.
        [String(limit), String(Math.ceil(windowUs / 1000))]
      : isBucket
        ? [String(limit), String(windowUs), String(capacity)]
        : [String(limit), String(windowUs)];
  const suffix = isBucket ? `:${windowMs}:${limit}:${capacity}` : `:${windowMs}`;
  return {
    strategy,
    kind: KIND[variant],
    suffix,
    limit,
    capacity,
    windowMs,
    windowSeconds,
    keyHead: `${prefix}:${KIND[variant]}:{`,
    keyTail: `}${suffix}`,
    variant,
    plain: blockMs === 0 && !config.countRejected,
    flatArgs,
    args: [CODE[variant], String(limit), String(windowUs), String(capacity), String(blockMs), countRejected],
    source: {
      limit: config.limit,
      windowSeconds: config.windowSeconds,
      burst: config.burst,
      precision: config.precision,
      blockDurationSeconds: config.blockDurationSeconds,
      countRejected: config.countRejected,
      strategy: config.strategy,
    },
  };
}

function unchanged(compiled: CompiledLimit, config: LimitConfig): boolean {
  const source = compiled.source;
  return (
    source.limit === config.limit &&
    source.windowSeconds === config.windowSeconds &&
    source.burst === config.burst &&
    source.precision === config.precision &&
    source.blockDurationSeconds === config.blockDurationSeconds &&
    source.countRejected === config.countRejected &&
    source.strategy === config.strategy
  );
}

/** What one call checks: one limit, or several applied together. */
export interface Plan {
  readonly limits: readonly CompiledLimit[];
  readonly strategyArgument: Strategy;
  /** Value of the `strategy` metric label: the strategy, or `multiple` when a call mixes strategies. */
  readonly strategyLabel: Strategy | 'multiple';
  /** The smallest capacity: a cost above it could never be allowed. */
  readonly maxCost: number;
  /** `numkeys` of the script call: the block key plus one state key per limit. */
  readonly numberOfKeys: number;
  /** Position of `strategyLabel` in the metrics' decision table. */
  readonly strategyIndex: number;
  /** A single plain limit: checked by its flat script. Otherwise (and for peeks) the general script runs. */
  readonly flat: boolean;
  /** The ioredis command (script) that checks and records this plan. */
  readonly command: string;
}

/** Most limits one call may check together. */
export const MAX_LIMITS_PER_CHECK = 16;

/**
 * Compiles configs into plans, caching by config object: services pass the same constant objects on every request,
 * so the hot path is one WeakMap lookup and a field comparison that notices objects mutated after first use.
 */
/** Distinct configurations remembered by value; past this many the cache starts over. */
const PLANS_BY_VALUE = 1000;

/** `value` as text when it has the type `kind`, or when it is undefined; otherwise undefined (never cached). */
function part(value: unknown, kind: 'number' | 'string' | 'boolean'): string | undefined {
  if (value === undefined) return '';
  return typeof value === kind ? String(value) : undefined;
}

/**
 * A text equal for two configurations exactly when they compile to the same plan, or undefined when a field has a
 * type the compiler would refuse (those always go to the compiler, which says what is wrong).
 */
function signatureOf(config: LimitConfig | readonly LimitConfig[], strategy: unknown): string | undefined {
  if (typeof strategy !== 'string') return undefined;
  let signature = strategy;
  const list = Array.isArray(config) ? (config as readonly LimitConfig[]) : [config as LimitConfig];
  for (const item of list) {
    if (typeof item !== 'object' || item === null) return undefined;
    const fields = [
      part(item.limit, 'number'),
      part(item.windowSeconds, 'number'),
      part(item.burst, 'number'),
      part(item.precision, 'string'),
      part(item.blockDurationSeconds, 'number'),
      part(item.countRejected, 'boolean'),
      part(item.strategy, 'string'),
    ];
    if (fields.includes(undefined)) return undefined;
    signature += `|${fields.join(',')}`;
  }
  return signature;
}

/**
 * Compiled plans, found by the configuration object first (a configuration built once and passed on every call) and
 * by value second: a configuration written inline is a new object on every call. Compiling it and adding it to the
 * WeakMap on every call cost a fifth of a check's throughput, and young-generation GC pauses went from 0.5 to 2 ms.
 * So only the first object of each configuration goes into the WeakMap.
 */
export class PlanCache {
  private readonly plans = new WeakMap<object, Plan>();
  private byValue = new Map<string, Plan>();

  constructor(private readonly prefix: string) {}

  get(config: LimitConfig | readonly LimitConfig[], strategy: unknown): Plan {
    if (typeof config === 'object' && config !== null) {
      const cached = this.plans.get(config);
      if (cached !== undefined && cached.strategyArgument === strategy && this.stillValid(cached, config)) {
        return cached;
      }
    }
    const signature = signatureOf(config, strategy);
    if (signature !== undefined) {
      // Two configurations may share a text (an empty string and a missing field both give ''): the plan is only
      // used when its own copy of the fields matches this configuration's exactly.
      const known = this.byValue.get(signature);
      if (known !== undefined && known.strategyArgument === strategy && this.stillValid(known, config)) {
        return known;
      }
    }
    const plan = compilePlan(config, strategy, this.prefix);
    this.plans.set(config as object, plan);
    if (signature !== undefined) {
      // A new Map rather than clear(): a cleared Map keeps its old table, and with it every plan it held, until the
      // next full GC.
      if (this.byValue.size >= PLANS_BY_VALUE) this.byValue = new Map();
      this.byValue.set(signature, plan);
    }
    return plan;
  }

  private stillValid(plan: Plan, config: LimitConfig | readonly LimitConfig[]): boolean {
    if (!Array.isArray(config)) {
      return plan.limits.length === 1 && unchanged(plan.limits[0] as CompiledLimit, config as LimitConfig);
    }
    if (config.length !== plan.limits.length) return false;
    for (let i = 0; i < config.length; i++) {
      if (!unchanged(plan.limits[i] as CompiledLimit, config[i] as LimitConfig)) return false;
    }
    return true;
  }
}

export function compilePlan(
  config: LimitConfig | readonly LimitConfig[],
  strategyArgument: unknown,
  prefix: string,
): Plan {
  const list = Array.isArray(config) ? (config as readonly LimitConfig[]) : [config as LimitConfig];
  if (list.length === 0) fail('Pass at least one limit.');
  if (list.length > MAX_LIMITS_PER_CHECK) {
    fail(`At most ${MAX_LIMITS_PER_CHECK} limits can be checked together (got ${list.length}).`);
  }
  // Validate the argument even when every limit names its own strategy, so a typo is never silently ignored.
  const strategy = checkStrategy(strategyArgument);
  const limits = list.map((item) => compileLimit(item, strategy, prefix));
  const ids = new Set<string>();
  for (const limit of limits) {
    const id = limit.kind + limit.suffix;
    if (ids.has(id)) {
      fail(
        `Two limits of one check would share state (${limit.strategy}, ${limit.windowSeconds} s window): ` +
          'merge them or give them different windows.',
      );
    }
    ids.add(id);
  }
  const strategies = new Set(limits.map((limit) => limit.strategy));
  const flat = limits.length === 1 && (limits[0] as CompiledLimit).plain;
  return {
    limits,
    strategyArgument: strategy,
    strategyLabel: strategies.size === 1 ? (limits[0] as CompiledLimit).strategy : 'multiple',
    maxCost: Math.min(...limits.map((limit) => limit.capacity)),
    numberOfKeys: limits.length + 1,
    flat,
    command: flat ? COMMANDS[(limits[0] as CompiledLimit).variant] : COMMANDS.multi,
    strategyIndex: STRATEGY_LABELS.indexOf(
      strategies.size === 1 ? (limits[0] as CompiledLimit).strategy : 'multiple',
    ),
  };
}

/** Checks a cost against a plan. Returns the cost as a string for the script. */
export function checkCost(cost: unknown, plan: Plan): number {
  if (typeof cost !== 'number' || !Number.isInteger(cost) || cost <= 0) {
    throw new RateLimitArgumentError(
      'E_INVALID_COST',
      `cost must be a positive whole number (got ${typeOf(cost)}).`,
    );
  }
  if (cost > plan.maxCost) {
    throw new RateLimitArgumentError(
      'E_COST_EXCEEDS_LIMIT',
      `cost ${cost} exceeds the capacity of the limit (${plan.maxCost}), so it could never be allowed; ` +
        'raise the limit (or burst) or split the request.',
    );
  }
  return cost;
}
