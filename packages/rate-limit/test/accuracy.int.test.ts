import {
  createTestClient,
  deleteByPrefix,
  keysWithoutTtl,
  redisTargets,
  uniquePrefix,
} from '@austa/test-env/vitest';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type LimitConfig, type RateLimiter, type Strategy } from '../src/index.js';
import { sleep, type Topology } from './support.js';

const WINDOW_MS = 1000;
const LIMIT = 10;
/** Requests every 25 ms: 40 per second, four times the limit. */
const INTERVAL_MS = 25;
const DURATION_MS = 3000;
/** Allowed times are taken on this host when the check is sent; Redis decides a few ms later. */
const SLACK_MS = 100;

interface Variant {
  name: string;
  strategy: Strategy;
  config: LimitConfig;
  /** Most requests the algorithm may allow in any interval of `spanMs` (its documented bound). */
  maxIn(spanMs: number): number;
  /** Range of the total allowed over a run of `durationMs` at a rate above the limit, given the send times. */
  total(durationMs: number, sends: number[]): [number, number];
}

const windows = (ms: number) => Math.floor(ms / WINDOW_MS);
const rate = LIMIT / WINDOW_MS;

const VARIANTS: Variant[] = [
  {
    name: 'fixed-window',
    strategy: 'fixed-window',
    config: { limit: LIMIT, windowSeconds: WINDOW_MS / 1000 },
    // Exactly the limit per window; two windows can meet inside one window-long interval.
    maxIn: () => 2 * LIMIT,
    total: (ms) => [LIMIT * windows(ms), LIMIT * (windows(ms) + 1)],
  },
  {
    name: 'sliding-window (exact)',
    strategy: 'sliding-window',
    config: { limit: LIMIT, windowSeconds: WINDOW_MS / 1000, precision: 'exact' },
    maxIn: () => LIMIT,
    total: (ms) => [LIMIT * windows(ms), LIMIT * (windows(ms) + 1)],
  },
  {
    name: 'sliding-window (approximate)',
    strategy: 'sliding-window',
    config: { limit: LIMIT, windowSeconds: WINDOW_MS / 1000, precision: 'approximate' },
    // Worst case 2x the limit in a window-long interval; steady traffic stays within one limit of the exact
    // count, whose bounds are those of the exact variant above.
    maxIn: () => 2 * LIMIT,
    total: (ms) => [LIMIT * windows(ms) - LIMIT, LIMIT * (windows(ms) + 2)],
  },
  {
    name: 'token-bucket',
    strategy: 'token-bucket',
    config: { limit: LIMIT, windowSeconds: WINDOW_MS / 1000, burst: 5 },
    // The burst, plus what refills during the interval; in total, what the same bucket allows for the same send
    // times (the sender can fall behind its pace under load, and a full bucket refills nothing).
    maxIn: (span) => 5 + Math.ceil(rate * span) + 1,
    total: (_, sends) => bucketModel(sends),
  },
  {
    name: 'leaky-bucket',
    strategy: 'leaky-bucket',
    config: { limit: LIMIT, windowSeconds: WINDOW_MS / 1000, burst: 5 },
    maxIn: (span) => 5 + Math.ceil(rate * span) + 1,
    total: (_, sends) => bucketModel(sends),
  },
];

/**
 * What a bucket of 5 refilled at the limit's rate allows for these send times, give or take 3: each check reaches
 * Redis a few ms after it was sent, and not always in the same order.
 */
function bucketModel(sends: number[]): [number, number] {
  let tokens = 5;
  let last = sends[0] ?? 0;
  let count = 0;
  for (const at of sends) {
    tokens = Math.min(5, tokens + (at - last) * rate);
    last = at;
    if (tokens >= 1) {
      tokens -= 1;
      count += 1;
    }
  }
  return [count - 3, count + 3];
}

/** The most timestamps inside any interval of length `spanMs`. */
function densest(times: number[], spanMs: number): number {
  let best = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while ((times[end] as number) - (times[start] as number) > spanMs) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

describe.each<Topology>(['standalone', 'cluster'])('accuracy on %s', (topology) => {
  let client: Redis | Cluster;
  let prefix: string;
  let limiter: RateLimiter;

  beforeAll(async () => {
    client = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`rl-accuracy-${topology}`);
    limiter = createRateLimiter({ redis: client, prefix, timeoutMs: 5000 });
  });

  afterAll(async () => {
    await limiter.close();
    try {
      expect(await keysWithoutTtl(client, `${prefix}:`)).toEqual([]);
    } finally {
      await deleteByPrefix(client, `${prefix}:`);
      await client.quit();
    }
  });

  it('keeps every strategy within its documented bound under a steady rate of 4x the limit', async () => {
    const allowed = new Map<string, number[]>(VARIANTS.map((variant) => [variant.name, []]));
    const sends: number[] = [];
    const pending: Promise<unknown>[] = [];
    const started = performance.now();
    let sent = 0;
    let lastAt = 0;
    // One request per variant every INTERVAL_MS, paced against the start so timer drift does not slow the rate.
    while (performance.now() - started < DURATION_MS) {
      const at = performance.now() - started;
      lastAt = at;
      sends.push(at);
      for (const variant of VARIANTS) {
        pending.push(
          limiter.checkLimit(`steady-${variant.name}`, variant.config, variant.strategy).then((result) => {
            expect(result.fallback).toBeNull();
            if (result.allowed) allowed.get(variant.name)?.push(at);
          }),
        );
      }
      sent += 1;
      await sleep(Math.max(0, sent * INTERVAL_MS - (performance.now() - started)));
    }
    await Promise.all(pending);
    // The real span of the sends: under load the loop can fall behind its pace, and the bounds follow real time.
    const durationMs = lastAt;
    for (const variant of VARIANTS) {
      const times = (allowed.get(variant.name) ?? []).sort((a, b) => a - b);
      const [low, high] = variant.total(durationMs, sends);
      expect(times.length, `${variant.name}: total allowed in ${durationMs} ms`).toBeGreaterThanOrEqual(low);
      expect(times.length, `${variant.name}: total allowed in ${durationMs} ms`).toBeLessThanOrEqual(high);
      const span = WINDOW_MS - SLACK_MS;
      expect(densest(times, span), `${variant.name}: allowed within ${span} ms`).toBeLessThanOrEqual(
        variant.maxIn(WINDOW_MS),
      );
    }
  });

  it('lets the configured burst through at once, then holds to the rate', async () => {
    for (const strategy of ['token-bucket', 'leaky-bucket', 'fixed-window'] as const) {
      const config: LimitConfig =
        strategy === 'fixed-window'
          ? { limit: 20, windowSeconds: 2 }
          : { limit: 10, windowSeconds: 1, burst: 20 };
      const key = `burst-${strategy}`;
      const started = performance.now();
      const first = await Promise.all(
        Array.from({ length: 30 }, () => limiter.checkLimit(key, config, strategy)),
      );
      expect(first.filter((r) => r.allowed).length, strategy).toBeGreaterThanOrEqual(20);
      expect(first.filter((r) => r.allowed).length, strategy).toBeLessThanOrEqual(21);
      if (strategy === 'fixed-window') continue;
      // 500 ms later, about 5 units have come back (10 per second), not the whole burst.
      await sleep(500);
      const later = await Promise.all(
        Array.from({ length: 30 }, () => limiter.checkLimit(key, config, strategy)),
      );
      const count = later.filter((r) => r.allowed).length;
      // At least what refills in the 500 ms; at most what refills between the first burst's start and the second's
      // end (well above 500 ms when this machine is loaded), plus one for rounding.
      const elapsedMs = performance.now() - started;
      expect(count, strategy).toBeGreaterThanOrEqual(5);
      expect(count, `${strategy} after ${elapsedMs} ms`).toBeLessThanOrEqual(Math.floor(elapsedMs / 100) + 1);
    }
  });
});
