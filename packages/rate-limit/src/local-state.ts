import type { CompiledLimit, Plan } from './config.js';

/**
 * A Map that keeps at most `maxKeys` entries, dropping the least recently written. Used by the block cache and the
 * insurance limiter, so a flood of distinct keys (an attacker rotating IPs) costs bounded memory.
 */
export class BoundedMap<V> {
  private readonly entries = new Map<string, V>();

  constructor(readonly maxKeys: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: V): void {
    // Delete first so the entry moves to the end: Map iterates in insertion order, oldest first.
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.maxKeys) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}

/**
 * Keys known to be blocked, with the end of their block on this process' monotonic clock. A check for such a key is
 * answered without Redis until the block ends.
 */
export class BlockCache {
  private readonly until: BoundedMap<number>;

  constructor(maxKeys: number) {
    this.until = new BoundedMap(maxKeys);
  }

  /** Milliseconds the key stays blocked, or 0 when it is not known to be blocked. */
  remainingMs(tag: string): number {
    const until = this.until.get(tag);
    if (until === undefined) return 0;
    const left = until - performance.now();
    if (left > 0) return left;
    this.until.delete(tag);
    return 0;
  }

  add(tag: string, ttlMs: number): void {
    if (ttlMs > 0) this.until.set(tag, performance.now() + ttlMs);
  }

  delete(tag: string): void {
    this.until.delete(tag);
  }

  clear(): void {
    this.until.clear();
  }
}

export interface LocalOutcome {
  allowed: boolean;
  /** Per limit: units left, ms until fully restored, ms until the request would fit (0 when it fits). */
  remaining: number[];
  resetMs: number[];
  retryMs: number[];
}

/**
 * The insurance limiter: takes over while Redis fails or is slow. Each limit of a key is one GCRA bucket in memory
 * (a single number: the theoretical arrival time on the monotonic clock), whatever the limit's strategy, with the
 * limit's size and rate scaled by `limitFraction`. It is per process: with N processes, a key gets up to N times the
 * scaled limit while Redis is away.
 */
export class InsuranceLimiter {
  private readonly arrivals: BoundedMap<number>;

  constructor(
    maxKeys: number,
    private readonly limitFraction: number,
  ) {
    this.arrivals = new BoundedMap(maxKeys);
  }

  check(tag: string, plan: Plan, cost: number): LocalOutcome {
    const now = performance.now();
    const count = plan.limits.length;
    const outcome: LocalOutcome = { allowed: true, remaining: [], resetMs: [], retryMs: [] };
    const next: number[] = [];
    for (let i = 0; i < count; i++) {
      const limit = plan.limits[i] as CompiledLimit;
      const capacity = Math.max(1, limit.capacity * this.limitFraction);
      const interval = limit.windowMs / (limit.limit * this.limitFraction);
      const tolerance = capacity * interval;
      const arrival = Math.max(this.arrivals.get(`${tag}\u0000${limit.kind}${limit.suffix}`) ?? now, now);
      const after = arrival - now + cost * interval;
      const allowed = after <= tolerance * (1 + 1e-9);
      if (!allowed) outcome.allowed = false;
      next.push(arrival + cost * interval);
      outcome.retryMs.push(allowed ? 0 : Math.ceil(after - tolerance));
      outcome.remaining.push(Math.max(0, Math.floor((tolerance - (arrival - now)) / interval)));
      outcome.resetMs.push(Math.ceil(arrival - now));
    }
    if (outcome.allowed) {
      for (let i = 0; i < count; i++) {
        const limit = plan.limits[i] as CompiledLimit;
        this.arrivals.set(`${tag}\u0000${limit.kind}${limit.suffix}`, next[i] as number);
        outcome.remaining[i] = Math.max(0, (outcome.remaining[i] as number) - cost);
        outcome.resetMs[i] = Math.ceil((next[i] as number) - now);
      }
    }
    return outcome;
  }

  clear(): void {
    this.arrivals.clear();
  }
}
