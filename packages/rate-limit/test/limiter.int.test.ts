import { inspect } from 'node:util';
import { createMetrics } from '@austa/metrics';
import { keySlot, nodeRouter } from '@austa/redis-cluster';
import {
  createTestClient,
  deleteByPrefix,
  keysWithoutTtl,
  redisTargets,
  uniquePrefix,
} from '@austa/test-env/vitest';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type LimitConfig,
  type RateLimiter,
  type RateLimiterOptions,
  type RateLimitResult,
  type Strategy,
} from '../src/index.js';
import { NODE_BATCH_REFUSED, NODE_BATCH_SCRIPT } from '../src/scripts/batch.js';
import { sample, sleep, type Topology } from './support.js';

interface Variant {
  name: string;
  strategy: Strategy;
  extra?: Partial<LimitConfig>;
}

const VARIANTS: Variant[] = [
  { name: 'fixed-window', strategy: 'fixed-window' },
  { name: 'sliding-window (exact)', strategy: 'sliding-window', extra: { precision: 'exact' } },
  { name: 'sliding-window (approximate)', strategy: 'sliding-window', extra: { precision: 'approximate' } },
  { name: 'token-bucket', strategy: 'token-bucket' },
  { name: 'leaky-bucket', strategy: 'leaky-bucket' },
];

describe.each<Topology>(['standalone', 'cluster'])('rate limiter on %s', (topology) => {
  let client: Redis | Cluster;
  let prefix: string;
  const limiters: RateLimiter[] = [];

  function limiter(options: Partial<RateLimiterOptions> = {}): RateLimiter {
    // A generous timeout: these tests check decisions, and a noisy machine must not turn one into a fallback.
    const created = createRateLimiter({ redis: client, prefix, timeoutMs: 5000, ...options });
    limiters.push(created);
    return created;
  }

  /** Every key under this suite's prefix: bad-input tests assert this does not change. */
  async function keysUnderPrefix(): Promise<string[]> {
    const keys: string[] = [];
    const nodes = 'nodes' in client ? (client as Cluster).nodes('master') : [client as Redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, page] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        keys.push(...page);
      } while (cursor !== '0');
    }
    return keys.sort();
  }

  /** Keys that exist now and did not before (keys of other tests may expire meanwhile; that is not a write). */
  async function keysWrittenSince(before: string[]): Promise<string[]> {
    return (await keysUnderPrefix()).filter((key) => !before.includes(key));
  }

  beforeAll(async () => {
    client = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`rl-${topology}`);
    await client.ping();
  });

  afterAll(async () => {
    await Promise.all(limiters.map((created) => created.close()));
    try {
      // Every key the limiter wrote carries an expiry.
      expect(await keysWithoutTtl(client, `${prefix}:`)).toEqual([]);
    } finally {
      await deleteByPrefix(client, `${prefix}:`);
      await client.quit();
    }
  });

  describe.each(VARIANTS)('$name', ({ name, strategy, extra }) => {
    /** Keys of this variant: the block marker is shared by all strategies of a key. */
    const k = (part: string) => `${part}:${name}`;

    it('allows exactly 100 of 1,000 concurrent checks on one key with a limit of 100', async () => {
      const rl = limiter();
      const config = { limit: 100, windowSeconds: 3600, ...extra };
      const results = await Promise.all(
        Array.from({ length: 1000 }, () => rl.checkLimit(k('exact'), config, strategy)),
      );
      expect(results.filter((r) => r.fallback !== null)).toEqual([]);
      const allowed = results.filter((r) => r.allowed);
      expect(allowed).toHaveLength(100);
      // Each allowed check saw its own count: remaining runs 99..0 once each.
      expect(allowed.map((r) => r.remaining).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 100 }, (_, i) => i),
      );
      expect(results.filter((r) => !r.allowed).every((r) => r.retryAfterMs > 0 && r.remaining === 0)).toBe(
        true,
      );
    });

    it('allows exactly 33 of 500 concurrent checks of cost 3 with a limit of 100, and remaining never goes negative', async () => {
      const rl = limiter();
      const config = { limit: 100, windowSeconds: 3600, ...extra };
      const results = await Promise.all(
        Array.from({ length: 500 }, () => rl.checkLimit(k('exact-cost'), config, strategy, { cost: 3 })),
      );
      expect(results.filter((r) => r.fallback !== null)).toEqual([]);
      const allowed = results.filter((r) => r.allowed);
      expect(allowed).toHaveLength(33);
      expect(allowed.map((r) => r.remaining).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 33 }, (_, i) => 1 + 3 * i),
      );
      expect(results.every((r) => r.remaining >= 0)).toBe(true);
      // One unit is left: a check of cost 1 still fits, the next does not.
      expect((await rl.checkLimit(k('exact-cost'), config, strategy)).allowed).toBe(true);
      expect((await rl.getStatus(k('exact-cost'), config, strategy)).remaining).toBe(0);
    });

    it('gives an exact retryAfterMs: rejected just before it, allowed once it has passed', async () => {
      const rl = limiter();
      const config = { limit: 2, windowSeconds: 1.5, ...extra };
      const key = k('retry');
      expect((await rl.checkLimit(key, config, strategy)).allowed).toBe(true);
      expect((await rl.checkLimit(key, config, strategy)).allowed).toBe(true);
      const rejected = await rl.checkLimit(key, config, strategy);
      expect(rejected.allowed).toBe(false);
      expect(rejected.retryAfterMs).toBeGreaterThan(300);
      expect(rejected.retryAfterMs).toBeLessThanOrEqual(
        strategy === 'sliding-window' && extra?.precision === 'approximate' ? 3000 : 1500,
      );
      await sleep(rejected.retryAfterMs - 250);
      expect((await rl.checkLimit(key, config, strategy)).allowed).toBe(false);
      await sleep(260);
      expect((await rl.checkLimit(key, config, strategy)).allowed).toBe(true);
    });

    it('consumes nothing on rejection by default, and counts rejections up to the limit with countRejected', async () => {
      const rl = limiter();
      const plain = { limit: 3, windowSeconds: 3600, ...extra };
      for (let i = 0; i < 3; i++) await rl.checkLimit(k('plain'), plain, strategy);
      for (let i = 0; i < 5; i++)
        expect((await rl.checkLimit(k('plain'), plain, strategy)).allowed).toBe(false);
      const status = await rl.getStatus(k('plain'), plain, strategy);
      expect(status.remaining).toBe(0);

      // A cost-2 request rejected with 1 unit left: without countRejected that unit stays available.
      const costly = { limit: 3, windowSeconds: 3600, ...extra };
      await rl.checkLimit(k('costly'), costly, strategy, { cost: 2 });
      expect((await rl.checkLimit(k('costly'), costly, strategy, { cost: 2 })).allowed).toBe(false);
      expect((await rl.checkLimit(k('costly'), costly, strategy)).allowed).toBe(true);

      const counting = { limit: 3, windowSeconds: 3600, countRejected: true, ...extra };
      await rl.checkLimit(k('counting'), counting, strategy, { cost: 2 });
      const rejected = await rl.checkLimit(k('counting'), counting, strategy, { cost: 2 });
      expect(rejected.allowed).toBe(false);
      // The rejected request took the last unit, and no more: remaining is 0, never negative.
      const after = await rl.getStatus(k('counting'), counting, strategy);
      expect(after.remaining).toBe(0);
      expect(after.allowed).toBe(false);
    });

    it('takes costs into account and refuses a cost above the capacity without writing anything', async () => {
      const rl = limiter();
      const config = { limit: 10, windowSeconds: 3600, ...extra };
      expect((await rl.checkLimit(k('cost'), config, strategy, { cost: 7 })).remaining).toBe(3);
      expect((await rl.checkLimit(k('cost'), config, strategy, { cost: 4 })).allowed).toBe(false);
      expect((await rl.checkLimit(k('cost'), config, strategy, { cost: 3 })).remaining).toBe(0);
      const before = await keysUnderPrefix();
      await expect(rl.checkLimit(k('cost-new'), config, strategy, { cost: 11 })).rejects.toMatchObject({
        code: 'E_COST_EXCEEDS_LIMIT',
      });
      await expect(rl.checkLimit(k('cost-new'), config, strategy, { cost: 0 })).rejects.toMatchObject({
        code: 'E_INVALID_COST',
      });
      expect(await keysWrittenSince(before)).toEqual([]);
    });

    it('honours block() and reports it in getStatus, without consuming', async () => {
      const rl = limiter();
      const config = { limit: 5, windowSeconds: 3600, ...extra };
      await rl.block(k('blocked'), 0.6);
      expect(await rl.isBlocked(k('blocked'))).toBe(true);
      const result = await rl.checkLimit(k('blocked'), config, strategy);
      expect(result).toMatchObject({ allowed: false, blocked: true, remaining: 0 });
      expect(result.retryAfterMs).toBeGreaterThan(300);
      expect(result.retryAfterMs).toBeLessThanOrEqual(600);
      expect(await rl.getStatus(k('blocked'), config, strategy)).toMatchObject({
        allowed: false,
        blocked: true,
      });
      await sleep(result.retryAfterMs + 20);
      expect(await rl.isBlocked(k('blocked'))).toBe(false);
      // The blocked checks consumed nothing.
      expect(await rl.checkLimit(k('blocked'), config, strategy)).toMatchObject({
        allowed: true,
        remaining: 4,
      });
      await rl.block(k('blocked'), 60);
      expect(await rl.unblock(k('blocked'))).toBe(true);
      expect(await rl.unblock(k('blocked'))).toBe(false);
      expect((await rl.checkLimit(k('blocked'), config, strategy)).allowed).toBe(true);
    });

    it('blocks automatically on a rejection when blockDurationSeconds is set, in the same step', async () => {
      const rl = limiter();
      const config = { limit: 2, windowSeconds: 0.2, blockDurationSeconds: 1, ...extra };
      await rl.checkLimit(k('auto'), config, strategy);
      await rl.checkLimit(k('auto'), config, strategy);
      const rejected = await rl.checkLimit(k('auto'), config, strategy);
      expect(rejected).toMatchObject({ allowed: false, blocked: true });
      expect(rejected.retryAfterMs).toBeGreaterThan(900);
      // The window is long over, but the block holds.
      await sleep(400);
      expect(await rl.checkLimit(k('auto'), config, strategy)).toMatchObject({
        allowed: false,
        blocked: true,
      });
      expect(await rl.isBlocked(k('auto'))).toBe(true);
    });

    it('getStatus reads without consuming', async () => {
      const rl = limiter();
      const config = { limit: 4, windowSeconds: 3600, ...extra };
      const fresh = await rl.getStatus(k('status'), config, strategy);
      expect(fresh).toMatchObject({ allowed: true, remaining: 4, blocked: false, retryAfterMs: 0 });
      for (let i = 0; i < 3; i++) await rl.getStatus(k('status'), config, strategy);
      expect((await rl.checkLimit(k('status'), config, strategy)).remaining).toBe(3);
      expect(await rl.getStatus(k('status'), config, strategy)).toMatchObject({
        allowed: true,
        remaining: 3,
      });
      expect(await rl.getStatus(k('status'), config, strategy, { cost: 4 })).toMatchObject({
        allowed: false,
      });
    });

    it('reset() forgets the usage, with or without the config', async () => {
      const rl = limiter();
      const config = { limit: 2, windowSeconds: 3600, ...extra };
      await rl.checkLimit(k('reset'), config, strategy);
      await rl.checkLimit(k('reset'), config, strategy);
      expect((await rl.checkLimit(k('reset'), config, strategy)).allowed).toBe(false);
      expect(await rl.reset(k('reset'), strategy, config)).toBe(1);
      expect((await rl.checkLimit(k('reset'), config, strategy)).remaining).toBe(1);
      expect(await rl.reset(k('reset'), strategy)).toBe(1);
      expect((await rl.checkLimit(k('reset'), config, strategy)).remaining).toBe(1);
    });
  });

  it('applies several limits atomically: all of them count a request, or none does', async () => {
    const rl = limiter();
    const limits: LimitConfig[] = [
      { limit: 3, windowSeconds: 3600 },
      { limit: 5, windowSeconds: 86_400, strategy: 'token-bucket' },
      { limit: 4, windowSeconds: 7200, strategy: 'sliding-window', precision: 'exact' },
    ];
    const results = await Promise.all(
      Array.from({ length: 50 }, () => rl.checkLimit('multi', limits, 'fixed-window')),
    );
    expect(results.filter((r) => r.allowed)).toHaveLength(3);
    // The rejected checks took nothing from the other two limits.
    expect((await rl.getStatus('multi', limits[1] as LimitConfig, 'token-bucket')).remaining).toBe(2);
    expect((await rl.getStatus('multi', limits[2] as LimitConfig, 'sliding-window')).remaining).toBe(1);
    const rejected = results.find((r) => !r.allowed);
    expect(rejected?.limits?.map((l) => l.allowed)).toEqual([false, true, true]);
    expect(rejected?.limit).toBe(3);

    // The per-second AND per-hour shape: the tighter one decides.
    const pair: LimitConfig[] = [
      { limit: 2, windowSeconds: 1 },
      { limit: 3, windowSeconds: 3600 },
    ];
    const first = await Promise.all([0, 1, 2].map(() => rl.checkLimit('pair', pair, 'fixed-window')));
    expect(first.filter((r) => r.allowed)).toHaveLength(2);
    await sleep(1050);
    expect((await rl.checkLimit('pair', pair, 'fixed-window')).allowed).toBe(true);
    const hourly = await rl.checkLimit('pair', pair, 'fixed-window');
    expect(hourly.allowed).toBe(false);
    expect(hourly.limit).toBe(3);
    expect(hourly.retryAfterMs).toBeGreaterThan(3_500_000);
  });

  it('allows fractional rates such as 0.5 per second', async () => {
    const rl = limiter();
    const half = { limit: 1, windowSeconds: 2 };
    expect((await rl.checkLimit('half', half, 'token-bucket')).allowed).toBe(true);
    const next = await rl.checkLimit('half', half, 'token-bucket');
    expect(next.allowed).toBe(false);
    expect(next.retryAfterMs).toBeGreaterThan(1800);
    expect(next.retryAfterMs).toBeLessThanOrEqual(2000);
    const gcra = { limit: 0.5, windowSeconds: 1, burst: 1 };
    expect((await rl.checkLimit('half-gcra', gcra, 'leaky-bucket')).allowed).toBe(true);
    const later = await rl.checkLimit('half-gcra', gcra, 'leaky-bucket');
    expect(later.allowed).toBe(false);
    expect(later.retryAfterMs).toBeGreaterThan(1800);
    expect(later.retryAfterMs).toBeLessThanOrEqual(2000);
  });

  it('lets a burst through as configured: the whole burst at once, then the steady rate', async () => {
    const rl = limiter();
    const bucket = { limit: 10, windowSeconds: 1, burst: 25 };
    for (const strategy of ['token-bucket', 'leaky-bucket'] as const) {
      const burst = await Promise.all(
        Array.from({ length: 40 }, () => rl.checkLimit(`burst-${strategy}`, bucket, strategy)),
      );
      expect(burst.filter((r) => r.allowed).length).toBeGreaterThanOrEqual(25);
      expect(burst.filter((r) => r.allowed).length).toBeLessThanOrEqual(26);
      const rejected = burst.find((r) => !r.allowed);
      // One unit comes back every 100 ms.
      expect(rejected?.retryAfterMs).toBeLessThanOrEqual(100);
    }
  });

  it('treats braces and glob characters in keys as plain text: no shared slot, no shared counter', async () => {
    const rl = limiter();
    const config = { limit: 1, windowSeconds: 3600 };
    const keys = ['a}b', 'a', '{a}', '%7Ba%7D', 'a*', 'a?', '[a]', 'a\\'];
    const results = await Promise.all(keys.map((key) => rl.checkLimit(key, config, 'fixed-window')));
    expect(results.every((r) => r.allowed)).toBe(true);
    // reset() of `a*` must not match `a}b` or `a`.
    expect(await rl.reset('a*', 'fixed-window')).toBe(1);
    expect((await rl.checkLimit('a', config, 'fixed-window')).allowed).toBe(false);
    expect((await rl.checkLimit('a}b', config, 'fixed-window')).allowed).toBe(false);
    const stored = (await keysUnderPrefix()).filter((key) => key.startsWith(`${prefix}:fw:`));
    expect(stored).toContain(`${prefix}:fw:{a%7Db}:3600000`);
    expect(stored).toContain(`${prefix}:fw:{%257Ba%257D}:3600000`);
  });

  it('refuses bad input on every method with a typed error and writes nothing', async () => {
    const rl = limiter();
    const before = await keysUnderPrefix();
    const config = { limit: 10, windowSeconds: 60 };
    const cases: Array<[string, () => Promise<unknown>]> = [
      ['E_INVALID_CONFIG', () => rl.checkLimit('k', { limit: 0, windowSeconds: 60 }, 'fixed-window')],
      ['E_INVALID_CONFIG', () => rl.checkLimit('k', { limit: -1, windowSeconds: 60 }, 'token-bucket')],
      [
        'E_INVALID_CONFIG',
        () => rl.checkLimit('k', { limit: Number.NaN, windowSeconds: 60 }, 'leaky-bucket'),
      ],
      ['E_INVALID_CONFIG', () => rl.checkLimit('k', { limit: 10, windowSeconds: 0 }, 'sliding-window')],
      ['E_INVALID_CONFIG', () => rl.checkLimit('k', { limit: 10, windowSeconds: -3 }, 'fixed-window')],
      [
        'E_INVALID_CONFIG',
        () => rl.checkLimit('k', { limit: 10, windowSeconds: Number.NaN }, 'fixed-window'),
      ],
      ['E_UNKNOWN_STRATEGY', () => rl.checkLimit('k', config, 'sliding-log' as Strategy)],
      ['E_INVALID_COST', () => rl.checkLimit('k', config, 'fixed-window', { cost: 0 })],
      ['E_INVALID_COST', () => rl.checkLimit('k', config, 'fixed-window', { cost: -2 })],
      ['E_INVALID_KEY', () => rl.checkLimit('', config, 'fixed-window')],
      ['E_INVALID_KEY', () => rl.checkLimit('x'.repeat(513), config, 'fixed-window')],
      ['E_INVALID_KEY', () => rl.checkLimit('a\r\nb', config, 'fixed-window')],
      ['E_INVALID_KEY', () => rl.checkLimit(undefined as unknown as string, config, 'fixed-window')],
      ['E_INVALID_KEY', () => rl.getStatus('', config, 'fixed-window')],
      ['E_UNKNOWN_STRATEGY', () => rl.getStatus('k', config, 'nope' as Strategy)],
      ['E_INVALID_KEY', () => rl.reset('', 'fixed-window')],
      ['E_UNKNOWN_STRATEGY', () => rl.reset('k', 'nope' as Strategy)],
      ['E_INVALID_CONFIG', () => rl.reset('k', 'fixed-window', { limit: 0, windowSeconds: 1 })],
      ['E_INVALID_KEY', () => rl.block('', 10)],
      ['E_INVALID_ARGUMENT', () => rl.block('k', 0)],
      ['E_INVALID_ARGUMENT', () => rl.block('k', -1)],
      ['E_INVALID_ARGUMENT', () => rl.block('k', Number.NaN)],
      ['E_INVALID_ARGUMENT', () => rl.block('k', Number.POSITIVE_INFINITY)],
      ['E_INVALID_KEY', () => rl.isBlocked('\u0000')],
      ['E_INVALID_KEY', () => rl.unblock('x'.repeat(600))],
    ];
    for (const [code, call] of cases) {
      await expect(call(), code).rejects.toMatchObject({ code });
    }
    expect(await keysWrittenSince(before)).toEqual([]);
  });

  it('cleanup() scans every master and removes only the keys under its prefix that have no expiry', async () => {
    const local = uniquePrefix('rl-cleanup');
    const rl = createRateLimiter({ redis: client, prefix: local, timeoutMs: 5000 });
    limiters.push(rl);
    for (let i = 0; i < 30; i++)
      await rl.checkLimit(`user-${i}`, { limit: 5, windowSeconds: 60 }, 'fixed-window');
    // Orphans: what a bug or a stray PERSIST would leave; spread over many slots.
    for (let i = 0; i < 20; i++) await client.set(`${local}:fw:{orphan-${i}}:60000`, '1');
    await client.set(`${local}-other:fw:{x}:1`, '1', 'EX', 60);
    expect(await rl.cleanup()).toBe(20);
    expect(await keysWithoutTtl(client, `${local}:`)).toEqual([]);
    expect(await rl.cleanup()).toBe(0);
    expect((await rl.getStatus('user-1', { limit: 5, windowSeconds: 60 }, 'fixed-window')).remaining).toBe(4);
    expect(await client.exists(`${local}-other:fw:{x}:1`)).toBe(1);
    await deleteByPrefix(client, local);
  });

  describe('batches', () => {
    /** `count` keys whose hash tags share one slot, so a cluster may batch them too. */
    function sameSlotKeys(base: string, count: number): string[] {
      const slot = keySlot(`${base}-0`);
      const keys: string[] = [];
      for (let i = 0; keys.length < count; i++)
        if (keySlot(`${base}-${i}`) === slot) keys.push(`${base}-${i}`);
      return keys;
    }

    /**
     * Counts the script calls the client sends from now on: one EVALSHA each (a NOSCRIPT fallback adds an EVAL). On a
     * cluster they are counted at the node connections, where both the client's commands and the batches the limiter
     * writes to a master's connection itself pass.
     */
    function scriptCalls() {
      type Target = { sendCommand: (command: { name: string }, ...rest: unknown[]) => unknown };
      const targets = (client instanceof Cluster ? client.nodes('all') : [client]) as unknown as Target[];
      const originals = targets.map((target) => target.sendCommand);
      let count = 0;
      targets.forEach((target, index) => {
        const original = originals[index] as Target['sendCommand'];
        target.sendCommand = function (this: unknown, command, ...rest) {
          if (command.name === 'evalsha') count += 1;
          return original.call(this, command, ...rest);
        };
      });
      return {
        get count() {
          return count;
        },
        restore: () => {
          targets.forEach((target, index) => {
            target.sendCommand = originals[index] as Target['sendCommand'];
          });
        },
      };
    }

    /** Runs `work` and counts the script calls it sends. */
    async function withScriptCalls<T>(work: () => Promise<T>): Promise<{ count: number; value: T }> {
      const calls = scriptCalls();
      try {
        const value = await work();
        return { count: calls.count, value };
      } finally {
        calls.restore();
      }
    }

    /**
     * Two checks of each key in one tick, with a limit of 1: counts the script calls, and checks that each key's first
     * check is allowed and its second rejected, so the batch ran them in issue order.
     */
    async function checkPairs(
      rl: RateLimiter,
      keys: string[],
    ): Promise<{ calls: number; results: RateLimitResult[] }> {
      const config = { limit: 1, windowSeconds: 60 };
      const { count: calls, value: results } = await withScriptCalls(() =>
        Promise.all(
          keys.flatMap((key) => [
            rl.checkLimit(key, config, 'fixed-window'),
            rl.checkLimit(key, config, 'fixed-window'),
          ]),
        ),
      );
      results.forEach((result, index) => {
        expect(result.fallback).toBeNull();
        expect(result.allowed).toBe(index % 2 === 0);
      });
      return { calls, results };
    }

    it('sends the checks of one tick on keys of one slot as one script call, each with its own answer', async () => {
      // 24 checks: fewer than a tick sends before it writes what it has (see the next test).
      const { calls, results } = await checkPairs(limiter(), sameSlotKeys('batch', 12));
      expect(calls).toBe(1);
      results.forEach((result, index) => {
        if (index % 2 === 1) expect(result.retryAfterMs).toBeGreaterThan(0);
      });
    });

    it('batches the checks of one turn of the event loop even when each is issued in its own tick, as a server does', async () => {
      const rl = limiter();
      const config = { limit: 100, windowSeconds: 60 };
      const keys = sameSlotKeys('turn', 6);
      // A cluster connects to a node on its first command; until then checks bound for it are sent one by one.
      await rl.getStatus(keys[0] as string, config, 'fixed-window');
      // Immediates queued together run in one check phase, each callback in its own tick, like the requests an HTTP
      // server reads in one poll phase: batches that ended with the tick sent each of these checks alone. (Timers
      // would not do: on a busy machine timers due 1 ms apart fire in different turns.)
      const { count: calls, value: results } = await withScriptCalls(() =>
        Promise.all(
          keys.map(
            (key) =>
              new Promise<RateLimitResult>((resolve, reject) => {
                setImmediate(() => rl.checkLimit(key, config, 'fixed-window').then(resolve, reject));
              }),
          ),
        ),
      );
      expect(calls).toBe(1);
      for (const result of results) expect(result.remaining).toBe(99);
    });

    it('sends a long tick in several batches, written as they fill, and answers them in issue order', async () => {
      const rl = limiter();
      const config = { limit: 60, windowSeconds: 60 };
      // A cluster connects to a node on its first command; until then checks bound for it are sent one by one.
      await rl.getStatus('long-tick', config, 'fixed-window');
      // 100 checks of one key in one tick, fewer than one batch may hold: they still leave in several, so Redis
      // starts on the first while the tick issues the rest.
      const { count: calls, value: results } = await withScriptCalls(() =>
        Promise.all(Array.from({ length: 100 }, () => rl.checkLimit('long-tick', config, 'fixed-window'))),
      );
      expect(calls).toBeGreaterThan(1);
      expect(calls).toBeLessThan(10);
      results.forEach((result, index) => {
        expect(result.allowed).toBe(index < 60);
        expect(result.remaining).toBe(Math.max(59 - index, 0));
      });
    });

    it('after a small tick, writes the next one in smaller batches on a standalone server, in issue order', async () => {
      const rl = limiter();
      const config = { limit: 6, windowSeconds: 60 };
      // A first tick of 12 checks sizes the next tick's writes at a third of that (standalone only).
      await Promise.all(
        Array.from({ length: 12 }, (_, i) => rl.checkLimit(`small-tick-${i}`, config, 'fixed-window')),
      );
      const { count: calls, value: results } = await withScriptCalls(() =>
        Promise.all(Array.from({ length: 12 }, () => rl.checkLimit('small-tick', config, 'fixed-window'))),
      );
      expect(calls).toBe(topology === 'standalone' ? 3 : 1);
      results.forEach((result, index) => {
        expect(result.allowed).toBe(index < 6);
        expect(result.remaining).toBe(Math.max(5 - index, 0));
      });
    });

    it('gives every strategy in a batch the answer it gives alone', async () => {
      const batched = limiter();
      const alone = limiter({ prefix: `${prefix}:alone`, batch: false });
      const keys = sameSlotKeys('mixed', 5);
      const config = { limit: 3, windowSeconds: 60 };
      const run = (rl: RateLimiter) =>
        Promise.all(
          keys.flatMap((key, index) => {
            const variant = VARIANTS[index] as Variant;
            return Array.from({ length: 5 }, () =>
              rl.checkLimit(key, { ...config, ...variant.extra }, variant.strategy),
            );
          }),
        );
      const calls = scriptCalls();
      let together: Awaited<ReturnType<typeof run>>;
      let separate: Awaited<ReturnType<typeof run>>;
      try {
        together = await run(batched);
        expect(calls.count).toBe(1);
        separate = await run(alone);
        expect(calls.count).toBe(1 + 25);
      } finally {
        calls.restore();
      }
      expect(together.map((r) => [r.allowed, Math.floor(r.remaining)])).toEqual(
        separate.map((r) => [r.allowed, Math.floor(r.remaining)]),
      );
      expect(together.filter((r) => r.allowed)).toHaveLength(15);
    });

    // Cluster only: a standalone server has one node, so these have nothing to show there.
    if (topology === 'cluster') {
      it('sends the checks of one tick bound for one master as one script call, whatever their slots', async () => {
        const rl = limiter();
        const router = nodeRouter(client);
        const master = router.nodeOf('{spread-0}');
        const keys: string[] = [];
        for (let i = 0; keys.length < 8; i++) {
          if (router.nodeOf(`{spread-${i}}`) === master) keys.push(`spread-${i}`);
        }
        expect(new Set(keys.map((key) => keySlot(key))).size).toBeGreaterThan(1);
        // A cluster connects to a node on its first command; until then checks bound for it are sent one by one.
        await rl.getStatus(keys[0] as string, { limit: 1, windowSeconds: 60 }, 'fixed-window');
        expect((await checkPairs(rl, keys)).calls).toBe(1);
      });

      it('keeps a check ahead of a getStatus, block or reset issued after it when node connections auto-pipeline', async () => {
        // Auto-pipelining on every node connection holds commands to the end of the tick; a node batch must not.
        const piped = createTestClient(redisTargets(), 'cluster', { enableAutoPipelining: true });
        try {
          const rl = createRateLimiter({ redis: piped, prefix, timeoutMs: 5000 });
          const config = { limit: 5, windowSeconds: 60 };
          // Opens every master's connection and loads the scripts there, one key at a time: a script's first call on a
          // node is NOSCRIPT and goes again as EVAL, after what was sent behind it.
          for (const key of ['ap-status', 'ap-block', 'ap-reset']) {
            await rl.getStatus(key, config, 'fixed-window');
            await rl.checkLimit(key, config, 'fixed-window');
          }
          // Two checks per key, so they leave as a node batch (one check alone goes through the cluster client).
          const [, , status] = await Promise.all([
            rl.checkLimit('ap-status', config, 'fixed-window'),
            rl.checkLimit('ap-status', config, 'fixed-window'),
            rl.getStatus('ap-status', config, 'fixed-window'),
          ]);
          expect(status.remaining).toBe(2);
          const checked = await Promise.all([
            rl.checkLimit('ap-block', config, 'fixed-window'),
            rl.checkLimit('ap-block', config, 'fixed-window'),
            rl.block('ap-block', 60),
          ]);
          expect((checked.slice(0, 2) as RateLimitResult[]).map((r) => [r.allowed, r.blocked])).toEqual([
            [true, false],
            [true, false],
          ]);
          const [, , removed] = await Promise.all([
            rl.checkLimit('ap-reset', config, 'fixed-window'),
            rl.checkLimit('ap-reset', config, 'fixed-window'),
            rl.reset('ap-reset', 'fixed-window', config),
          ]);
          expect(removed).toBe(1);
          expect((await rl.getStatus('ap-reset', config, 'fixed-window')).remaining).toBe(5);
          await rl.close();
        } finally {
          piped.disconnect();
        }
      });

      it('keeps check, operation, check of one key in issue order while the operation waits for a node batch', async () => {
        const rl = limiter();
        const router = nodeRouter(client);
        const config = { limit: 5, windowSeconds: 60 };
        /** A key and two companions on its master, in other slots: each check of the key then leaves in a node batch. */
        const trio = (name: string) => {
          const master = router.nodeOf(`{${name}}`);
          const others: string[] = [];
          for (let i = 0; others.length < 2; i++) {
            const other = `${name}-o${i}`;
            if (router.nodeOf(`{${other}}`) === master && keySlot(other) !== keySlot(name))
              others.push(other);
          }
          return others;
        };
        const check = (key: string) => rl.checkLimit(key, config, 'fixed-window');
        for (const key of ['seq-block', 'seq-status', 'seq-reset'])
          await rl.getStatus(key, config, 'fixed-window');
        // block: the check after it is blocked, the one before is not.
        let [y1, y2] = trio('seq-block');
        const blockRun = [check('seq-block'), check(y1 as string), rl.block('seq-block', 60)] as const;
        const after = check('seq-block');
        void check(y2 as string);
        await Promise.all(blockRun);
        expect((await blockRun[0]).blocked).toBe(false);
        expect(await after).toMatchObject({ blocked: true, allowed: false });
        // getStatus sees the check before it and not the one after it.
        [y1, y2] = trio('seq-status');
        const first = check('seq-status');
        void check(y1 as string);
        const status = rl.getStatus('seq-status', config, 'fixed-window');
        const second = check('seq-status');
        void check(y2 as string);
        expect((await status).remaining).toBe(4);
        expect((await second).remaining).toBe(3);
        await first;
        // reset removes the check before it; the one after it is counted afresh.
        [y1, y2] = trio('seq-reset');
        void check('seq-reset');
        void check(y1 as string);
        const removed = rl.reset('seq-reset', 'fixed-window', config);
        const afterReset = check('seq-reset');
        void check(y2 as string);
        expect(await removed).toBe(1);
        expect((await afterReset).remaining).toBe(4);
      });

      it('a master refuses a batch holding a key it does not serve, and writes none of its checks', async () => {
        const router = nodeRouter(client);
        const here = router.nodeOf('{refused-0}') as string;
        let elsewhere = '';
        for (let i = 1; !elsewhere; i++) {
          if (router.nodeOf(`{refused-${i}}`) !== here) elsewhere = `refused-${i}`;
        }
        const keysOf = (key: string) => [`${prefix}:bl:{${key}}`, `${prefix}:fw:{${key}}:test`];
        const connection = router.readyConnection(here) as Redis;
        // A fixed-window check: deadline (Redis ms, far away), cost, limit, window ms.
        const fixedWindow = ['f', 4, '99999999999999', 1, 10, 60_000];
        const argv = [0, 2, ...keysOf('refused-0'), ...keysOf(elsewhere), ...fixedWindow, ...fixedWindow];
        expect(await connection.eval(NODE_BATCH_SCRIPT, ...(argv as [number, ...string[]]))).toEqual([
          NODE_BATCH_REFUSED,
        ]);
        expect(await keysUnderPrefix()).not.toContain(`${prefix}:fw:{refused-0}:test`);
        // The same batch without the stranger runs.
        const alone = [0, 1, ...keysOf('refused-0'), ...fixedWindow];
        const [reply] = (await connection.eval(
          NODE_BATCH_SCRIPT,
          ...(alone as [number, ...string[]]),
        )) as number[][];
        expect(reply?.[0]).toBe(0);
        expect(reply?.[2]).toBe(9);
        expect(await keysUnderPrefix()).toContain(`${prefix}:fw:{refused-0}:test`);
      });
    }

    it('fails only the check whose key Redis refuses (wrong type); the rest of the batch is answered', async () => {
      const errors: unknown[] = [];
      const rl = limiter({ failurePolicy: 'fail-closed', onRedisError: (error) => errors.push(error) });
      const keys = sameSlotKeys('wrongtype', 4);
      const config = { limit: 10, windowSeconds: 60, precision: 'exact' as const };
      await rl.checkLimit(keys[0] as string, config, 'sliding-window');
      const [stateKey] = (await keysUnderPrefix()).filter(
        (key) => key.includes(`{${keys[0]}}`) && !key.includes(':bl:'),
      );
      expect(stateKey).toBeDefined();
      await client.set(stateKey as string, 'not a sorted set', 'EX', 60);
      const results = await Promise.all(keys.map((key) => rl.checkLimit(key, config, 'sliding-window')));
      expect(results[0]?.fallback).toBe('fail-closed');
      expect(results[0]?.allowed).toBe(false);
      expect(results.slice(1).map((r) => [r.allowed, r.fallback])).toEqual([
        [true, null],
        [true, null],
        [true, null],
      ]);
      expect(String((errors[0] as Error).message)).toMatch(/WRONGTYPE/);
    });

    it('hands Redis errors on without the command arguments ioredis hangs on them (the keys name users)', async () => {
      const errors: unknown[] = [];
      const rl = limiter({
        batch: false,
        failurePolicy: 'fail-closed',
        onRedisError: (error) => errors.push(error),
      });
      const config = { limit: 10, windowSeconds: 60 };
      await rl.checkLimit('user:patient-42', config, 'fixed-window');
      const [stateKey] = (await keysUnderPrefix()).filter(
        (key) => key.includes('patient-42') && !key.includes(':bl:'),
      );
      await client.set(stateKey as string, 'not a counter', 'EX', 60);
      const result = await rl.checkLimit('user:patient-42', config, 'fixed-window');
      expect(result.fallback).toBe('fail-closed');
      expect(errors).toHaveLength(1);
      expect(String((errors[0] as Error).message)).toMatch(/ERR|WRONGTYPE/);
      expect(inspect(errors[0], { depth: 10 })).not.toContain('patient-42');
      await client.del(stateKey as string);
    });

    it('keeps the order of calls within a tick: nothing the limiter sends overtakes a check waiting for its batch', async () => {
      const rl = limiter();
      const config = { limit: 5, windowSeconds: 60 };
      const one = { limit: 1, windowSeconds: 60 };
      const both = [one, { limit: 10, windowSeconds: 3600 }];
      // A script's first call on a node is NOSCRIPT and goes again as EVAL, after what was sent behind it: load the
      // scripts on each key's master first, so only the order this test is about is left.
      for (const key of ['order-reset', 'order-block', 'order-status', 'order-multi']) {
        await rl.getStatus(key, both, 'fixed-window');
        await rl.checkLimit(key, config, 'fixed-window');
        await rl.reset(key, 'fixed-window', config);
      }
      // check, then reset with the config: the reset wins.
      const [checked, removed] = await Promise.all([
        rl.checkLimit('order-reset', config, 'fixed-window'),
        rl.reset('order-reset', 'fixed-window', config),
      ]);
      expect(checked.allowed).toBe(true);
      expect(removed).toBe(1);
      expect((await rl.getStatus('order-reset', config, 'fixed-window')).remaining).toBe(5);
      // check, then block: the check was not blocked yet.
      const [beforeBlock] = await Promise.all([
        rl.checkLimit('order-block', config, 'fixed-window'),
        rl.block('order-block', 60),
      ]);
      expect(beforeBlock.blocked).toBe(false);
      expect(beforeBlock.allowed).toBe(true);
      await rl.unblock('order-block');
      // check, then getStatus: the status sees the check.
      const [, status] = await Promise.all([
        rl.checkLimit('order-status', config, 'fixed-window'),
        rl.getStatus('order-status', config, 'fixed-window'),
      ]);
      expect(status.remaining).toBe(4);
      // a single-limit check, then a multi-limit check on the same key: the first takes the last unit.
      const [single, multi] = await Promise.all([
        rl.checkLimit('order-multi', one, 'fixed-window'),
        rl.checkLimit('order-multi', both, 'fixed-window'),
      ]);
      expect([single.allowed, multi.allowed]).toEqual([true, false]);
    });

    it('never sends a check that close() answered while it waited for the end of the tick', async () => {
      const rl = createRateLimiter({ redis: client, prefix, timeoutMs: 5000 });
      const config = { limit: 5, windowSeconds: 60 };
      const pending = rl.checkLimit('closed-in-tick', config, 'fixed-window');
      await rl.close();
      await expect(pending).rejects.toMatchObject({ code: 'E_CLOSED' });
      await sleep(50);
      expect((await limiter().getStatus('closed-in-tick', config, 'fixed-window')).remaining).toBe(5);
    });

    it('refuses a batch option that is not a boolean', () => {
      expect(() => createRateLimiter({ redis: client, batch: 'yes' as never })).toThrow(
        expect.objectContaining({
          code: 'E_INVALID_CONFIG',
          message: expect.stringMatching(/batch must be true or false/),
        }),
      );
    });
  });

  it('falls back from EVALSHA to the script after SCRIPT FLUSH on every node', async () => {
    const rl = limiter();
    const config = { limit: 100, windowSeconds: 60 };
    await rl.checkLimit('flush', config, 'token-bucket');
    const nodes = 'nodes' in client ? (client as Cluster).nodes('all') : [client as Redis];
    await Promise.all(nodes.map((node) => node.script('FLUSH')));
    const results = await Promise.all(
      Array.from({ length: 20 }, () => rl.checkLimit('flush', config, 'token-bucket')),
    );
    expect(results.every((r) => r.allowed && r.fallback === null)).toBe(true);
    expect((await rl.getStatus('flush', config, 'token-bucket')).remaining).toBe(79);
  });

  it('works on a client with auto-pipelining: checks of keys in many slots in one tick each reach their own master', async () => {
    // ioredis groups a cluster's auto-pipeline by a command's first key, and for a defineCommand script it cannot
    // tell the key from the key count: without care, one tick's checks of keys on different masters failed whole.
    const targets = redisTargets();
    const piped: Redis | Cluster =
      topology === 'cluster'
        ? new (await import('ioredis')).Cluster(targets.cluster.nodes, { enableAutoPipelining: true })
        : new (await import('ioredis')).Redis(targets.standalone.url, { enableAutoPipelining: true });
    try {
      const rl = createRateLimiter({ redis: piped, prefix, timeoutMs: 5000 });
      limiters.push(rl);
      const config = { limit: 5, windowSeconds: 60 };
      for (const variant of VARIANTS) {
        const results = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            rl.checkLimit(`piped-${variant.name}-${i}`, { ...config, ...variant.extra }, variant.strategy),
          ),
        );
        expect(results.map((r) => [r.allowed, r.fallback, r.remaining])).toEqual(
          Array.from({ length: 30 }, () => [true, null, 4]),
        );
      }
      const multi = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          rl.checkLimit(
            `piped-multi-${i}`,
            [config, { limit: 50, windowSeconds: 600, strategy: 'token-bucket' }],
            'fixed-window',
          ),
        ),
      );
      expect(multi.every((r) => r.allowed && r.fallback === null)).toBe(true);
    } finally {
      await piped.quit();
    }
  });

  it('enforces one shared limit across instances whose app clocks disagree by hours', async () => {
    const HOUR = 3_600_000;
    const ahead = limiter({ now: () => Date.now() + HOUR });
    const behind = limiter({ now: () => Date.now() - 2 * HOUR });
    for (const variant of VARIANTS) {
      const config = { limit: 50, windowSeconds: 3600, ...variant.extra };
      const key = `skew-${variant.name}`;
      // Warm both instances first: they learn Redis' clock from replies, which must not skew anything either.
      await ahead.getStatus(key, config, variant.strategy);
      await behind.getStatus(key, config, variant.strategy);
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          (i % 2 ? ahead : behind).checkLimit(key, config, variant.strategy),
        ),
      );
      expect(
        results.filter((r) => r.fallback !== null),
        variant.name,
      ).toEqual([]);
      expect(results.filter((r) => r.allowed).length, variant.name).toBe(50);
      const fromAhead = await ahead.checkLimit(key, config, variant.strategy);
      const fromBehind = await behind.checkLimit(key, config, variant.strategy);
      // Waits come from Redis' clock and agree; only resetAtMs is expressed in each instance's own clock.
      expect(Math.abs(fromAhead.retryAfterMs - fromBehind.retryAfterMs), variant.name).toBeLessThan(1000);
      expect(fromAhead.resetAtMs - fromBehind.resetAtMs, variant.name).toBeGreaterThan(3 * HOUR - 2000);
      expect(fromAhead.resetAtMs - fromBehind.resetAtMs, variant.name).toBeLessThan(3 * HOUR + 2000);
    }
  });

  it('answers checks of a blocked key from the block cache without calling Redis', async () => {
    const metrics = createMetrics();
    const rl = limiter({ metrics, name: 'cached', blockCache: { maxKeys: 100 } });
    const config = { limit: 5, windowSeconds: 60 };
    await rl.checkLimit('cached', config, 'fixed-window');
    await rl.block('cached', 30);
    const calls = () =>
      sample(metrics, 'db_client_operation_duration_seconds_count', {
        db_operation_name: 'evalsha',
        error_type: '',
      });
    const before = await calls();
    for (let i = 0; i < 10; i++) {
      expect(await rl.checkLimit('cached', config, 'fixed-window')).toMatchObject({
        allowed: false,
        blocked: true,
      });
    }
    expect(await calls()).toBe(before);
    expect(await sample(metrics, 'austa_rate_limit_block_cache_hits_total', { limiter: 'cached' })).toBe(10);
    expect(
      await sample(metrics, 'austa_rate_limit_decisions_total', { limiter: 'cached', result: 'blocked' }),
    ).toBe(10);
    await rl.unblock('cached');
    expect((await rl.checkLimit('cached', config, 'fixed-window')).allowed).toBe(true);
    expect(await calls()).toBe(before + 1);
  });

  it('forgets a block in its cache when a check issued before unblock() is answered "blocked" meanwhile', async () => {
    const config = { limit: 5, windowSeconds: 60 };
    const rl = limiter({ blockCache: true });
    // Loads the script on the key's node first: a NOSCRIPT check would go again after the unblock.
    await rl.checkLimit('cache-race', config, 'fixed-window');
    // Blocked by another process: this limiter's cache does not know, so its check goes to Redis.
    await limiter().block('cache-race', 30);
    const before = rl.checkLimit('cache-race', config, 'fixed-window');
    expect(await rl.unblock('cache-race')).toBe(true);
    expect((await before).blocked).toBe(true);
    expect(await rl.checkLimit('cache-race', config, 'fixed-window')).toMatchObject({
      allowed: true,
      blocked: false,
    });
  });

  it('records decisions and Redis latency without putting keys in labels', async () => {
    const metrics = createMetrics();
    const rl = limiter({ metrics, name: 'api' });
    const config = { limit: 2, windowSeconds: 60 };
    for (let i = 0; i < 3; i++) await rl.checkLimit('patient-123', config, 'sliding-window');
    await rl.block('patient-123', 10);
    await rl.checkLimit('patient-123', config, 'sliding-window');
    const labels = { limiter: 'api', strategy: 'sliding-window' };
    expect(await sample(metrics, 'austa_rate_limit_decisions_total', { ...labels, result: 'allowed' })).toBe(
      2,
    );
    expect(await sample(metrics, 'austa_rate_limit_decisions_total', { ...labels, result: 'rejected' })).toBe(
      1,
    );
    expect(await sample(metrics, 'austa_rate_limit_decisions_total', { ...labels, result: 'blocked' })).toBe(
      1,
    );
    expect(
      await sample(metrics, 'db_client_operation_duration_seconds_count', {
        db_system_name: 'redis',
        db_operation_name: 'evalsha',
        error_type: '',
      }),
    ).toBe(4);
    expect(
      await sample(metrics, 'db_client_operation_duration_seconds_count', { db_operation_name: 'set' }),
    ).toBe(1);
    const text = await metrics.text();
    expect(text).not.toContain('patient-123');
    expect(text).not.toContain(prefix);
  });
});
