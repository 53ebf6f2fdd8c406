import { afterEach, describe, expect, it, vi } from 'vitest';
import { compilePlan } from '../src/config.js';
import { BlockCache, BoundedMap, InsuranceLimiter } from '../src/local-state.js';
import { TimeoutQueue, type Waiter } from '../src/timeouts.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('BoundedMap', () => {
  it('keeps at most maxKeys entries, dropping the least recently written', () => {
    const map = new BoundedMap<number>(3);
    for (const key of ['a', 'b', 'c']) map.set(key, 1);
    map.set('a', 2);
    map.set('d', 1);
    expect(map.size).toBe(3);
    expect(map.get('b')).toBeUndefined();
    expect(map.get('a')).toBe(2);
  });
});

describe('BlockCache', () => {
  it('reports a block until it ends, then forgets it', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const cache = new BlockCache(10);
    cache.add('k', 1000);
    expect(cache.remainingMs('k')).toBeCloseTo(1000, 0);
    vi.advanceTimersByTime(999);
    expect(cache.remainingMs('k')).toBeGreaterThan(0);
    vi.advanceTimersByTime(2);
    expect(cache.remainingMs('k')).toBe(0);
    cache.add('k', 1000);
    cache.delete('k');
    expect(cache.remainingMs('k')).toBe(0);
  });
});

describe('InsuranceLimiter', () => {
  it('applies each limit as a bucket of its size and rate, all limits or none', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const plan = compilePlan(
      [
        { limit: 3, windowSeconds: 1 },
        { limit: 5, windowSeconds: 60 },
      ],
      'fixed-window',
      'p',
    );
    const insurance = new InsuranceLimiter(100, 1);
    const outcomes = Array.from({ length: 4 }, () => insurance.check('k', plan, 1));
    expect(outcomes.map((o) => o.allowed)).toEqual([true, true, true, false]);
    expect(outcomes[3]?.retryMs[0]).toBeCloseTo(334, -1);
    // 1 s later the 3/s limit has room again, but the 5/min one has only 2 left.
    vi.advanceTimersByTime(1000);
    expect([1, 2, 3].map(() => insurance.check('k', plan, 1).allowed)).toEqual([true, true, false]);
    // The rejected check took nothing from the 3/s limit.
    expect(insurance.check('other', plan, 3).allowed).toBe(true);
  });

  it('scales limits by limitFraction, never below one request', () => {
    const plan = compilePlan({ limit: 10, windowSeconds: 3600 }, 'token-bucket', 'p');
    const insurance = new InsuranceLimiter(100, 0.25);
    const allowed = Array.from({ length: 10 }, () => insurance.check('k', plan, 1)).filter((o) => o.allowed);
    expect(allowed).toHaveLength(2);
    const tiny = new InsuranceLimiter(100, 0.01);
    expect(tiny.check('k', plan, 1).allowed).toBe(true);
    expect(tiny.check('k', plan, 1).allowed).toBe(false);
  });
});

describe('TimeoutQueue', () => {
  function waiter(deadline: number, expired: number[]): Waiter {
    const item: Waiter = {
      deadline,
      settled: false,
      expire() {
        item.settled = true;
        expired.push(deadline);
      },
    };
    return item;
  }

  it('expires unanswered waiters at their deadlines with one timer, skipping answered ones', async () => {
    vi.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const queue = new TimeoutQueue();
    const expired: number[] = [];
    const start = performance.now();
    const items = [100, 200, 300, 400].map((offset) => waiter(start + offset, expired));
    for (const item of items) queue.add(item);
    (items[1] as Waiter).settled = true;
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(250);
    expect(expired).toEqual([start + 100]);
    vi.advanceTimersByTime(200);
    expect(expired).toEqual([start + 100, start + 300, start + 400]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('lets go of answered waiters as soon as the next one is added, not when the timer fires', () => {
    vi.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const queue = new TimeoutQueue();
    const expired: number[] = [];
    const slow = waiter(performance.now() + 1000, expired);
    queue.add(slow);
    for (let i = 0; i < 5000; i++) {
      const item = waiter(performance.now() + 1000, expired);
      queue.add(item);
      item.settled = true;
    }
    // Only the unanswered head keeps what follows it.
    expect(queue.size).toBe(5001);
    slow.settled = true;
    queue.add(waiter(performance.now() + 1000, expired));
    expect(queue.size).toBe(1);
    vi.advanceTimersByTime(1000);
    expect(expired).toHaveLength(1);
  });

  it('expires everything at once on expireAll', () => {
    vi.useFakeTimers({ toFake: ['performance', 'setTimeout', 'clearTimeout'] });
    const queue = new TimeoutQueue();
    const expired: number[] = [];
    queue.add(waiter(performance.now() + 10_000, expired));
    queue.add(waiter(performance.now() + 20_000, expired));
    queue.expireAll();
    expect(expired).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
  });
});
