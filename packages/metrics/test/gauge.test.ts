import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMetrics } from '../src/index.js';

afterEach(() => {
  vi.restoreAllMocks();
});

function samples(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe('gauges', () => {
  it('bound handles set, inc and dec', async () => {
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_pool_in_use', help: 'h', labelNames: ['pool'] });
    const bound = gauge.bind({ pool: 'a' });
    bound.set(5);
    bound.inc();
    bound.dec(3);
    gauge.inc({ pool: 'b' }, 2);
    gauge.dec({ pool: 'b' });
    gauge.set({ pool: 'c' }, -1.5);
    expect(samples(await metrics.text(), 'austa_pool_in_use')).toEqual([
      'austa_pool_in_use{pool="a"} 3',
      'austa_pool_in_use{pool="b"} 1',
      'austa_pool_in_use{pool="c"} -1.5',
    ]);
  });

  it('onCollect callbacks run on every read and their series are rebuilt each time', async () => {
    const metrics = createMetrics();
    const gauge = metrics.gauge({
      name: 'austa_redis_connections',
      help: 'h',
      labelNames: ['role', 'status'],
    });
    let nodes = [
      { role: 'master', status: 'ready' },
      { role: 'replica', status: 'ready' },
      { role: 'replica', status: 'ready' },
    ];
    gauge.onCollect((set) => {
      const counts = new Map<string, number>();
      for (const node of nodes)
        counts.set(`${node.role}|${node.status}`, (counts.get(`${node.role}|${node.status}`) ?? 0) + 1);
      for (const [key, count] of counts) {
        const [role, status] = key.split('|');
        set({ role, status }, count);
      }
    });
    expect(samples(await metrics.text(), 'austa_redis_connections')).toEqual([
      'austa_redis_connections{role="master",status="ready"} 1',
      'austa_redis_connections{role="replica",status="ready"} 2',
    ]);
    nodes = [{ role: 'master', status: 'reconnecting' }];
    expect(samples(await metrics.text(), 'austa_redis_connections')).toEqual([
      'austa_redis_connections{role="master",status="reconnecting"} 1',
    ]);
  });

  it('async callbacks are awaited, and a callback wins over a bound series with the same labels', async () => {
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_hh', help: 'h', labelNames: ['k'] });
    gauge.set({ k: 'a' }, 1);
    gauge.set({ k: 'b' }, 1);
    gauge.onCollect(async (set) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      set({ k: 'a' }, 42);
    });
    expect(samples(await metrics.text(), 'austa_hh')).toEqual(['austa_hh{k="b"} 1', 'austa_hh{k="a"} 42']);
  });

  it('the unregister function stops a callback', async () => {
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_i', help: 'h' });
    const callback = vi.fn((set: (labels: object, value: number) => void) => set({}, 7));
    const stop = gauge.onCollect(callback);
    expect(samples(await metrics.text(), 'austa_i')).toEqual(['austa_i 7']);
    stop();
    stop();
    expect(samples(await metrics.text(), 'austa_i')).toEqual(['austa_i 0']);
    expect(callback).toHaveBeenCalledTimes(1);
  });

  it('a failing callback contributes nothing, warns once, and the other callbacks still report', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_j', help: 'h', labelNames: ['k'] });
    gauge.onCollect(() => {
      throw new Error('boom');
    });
    gauge.onCollect(async (set) => {
      set({ k: 'partial' }, 5);
      throw new Error('async boom');
    });
    gauge.onCollect((set) => set({ unknown: 'x' } as never, 1));
    gauge.onCollect((set) => set({ k: 'ok' }, 1));
    await metrics.text();
    expect(samples(await metrics.text(), 'austa_j')).toEqual(['austa_j{k="ok"} 1']);
    expect(warn).toHaveBeenCalledTimes(3);
  });

  it('callback series past the cap are summed into "other"', async () => {
    vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_k', help: 'h', labelNames: ['node'], maxSeries: 2 });
    gauge.onCollect((set) => {
      for (let i = 0; i < 5; i++) set({ node: `n${i}` }, 10);
    });
    expect(samples(await metrics.text(), 'austa_k')).toEqual([
      'austa_k{node="n0"} 10',
      'austa_k{node="n1"} 10',
      'austa_k{node="other"} 30',
    ]);
  });

  it('overlapping reads each see a complete set of callback values', async () => {
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_l', help: 'h', labelNames: ['k'] });
    let call = 0;
    gauge.onCollect(async (set) => {
      const mine = ++call;
      await new Promise((resolve) => setTimeout(resolve, mine === 1 ? 20 : 1));
      set({ k: `read${mine}` }, mine);
    });
    const [first, second] = await Promise.all([metrics.text(), metrics.text()]);
    expect(samples(first, 'austa_l')).toEqual(['austa_l{k="read1"} 1']);
    expect(samples(second, 'austa_l')).toEqual(['austa_l{k="read2"} 2']);
  });
});

describe('gauge details', () => {
  it('onCollect refuses what is not a function', () => {
    const gauge = createMetrics().gauge({ name: 'austa_r', help: 'h' });
    expect(() => gauge.onCollect('x' as never)).toThrowError(new TypeError('onCollect expects a function'));
  });

  it('warns with a typed warning naming the gauge and the error when a callback fails', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const metrics = createMetrics();
    metrics.gauge({ name: 'austa_n', help: 'h' }).onCollect(() => {
      throw new Error('boom');
    });
    await metrics.text();
    expect(warn.mock.calls).toEqual([
      [
        'An onCollect callback of gauge "austa_n" failed; its values are left out of the scrape: Error: boom',
        { type: 'AustaMetricsWarning', code: 'AUSTA_METRICS_COLLECT' },
      ],
    ]);
  });

  it('a callback that sets the same labels twice reports the last value once', async () => {
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_o', help: 'h', labelNames: ['k'] });
    gauge.onCollect((set) => {
      set({ k: 'a' }, 1);
      set({ k: 'a' }, 2);
    });
    expect(samples(await metrics.text(), 'austa_o')).toEqual(['austa_o{k="a"} 2']);
  });

  it('bound series count toward the cap of callback series, and a callback may always update a bound series', async () => {
    vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_p', help: 'h', labelNames: ['k'], maxSeries: 2 });
    gauge.set({ k: 'bound' }, 1);
    gauge.onCollect((set) => {
      set({ k: 'a' }, 10);
      set({ k: 'b' }, 20);
      set({ k: 'bound' }, 5);
    });
    expect(samples(await metrics.text(), 'austa_p')).toEqual([
      'austa_p{k="a"} 10',
      'austa_p{k="other"} 20',
      'austa_p{k="bound"} 5',
    ]);
  });

  it('reset() zeroes bound series, and the handles keep reporting', async () => {
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_q', help: 'h', labelNames: ['k'] });
    const bound = gauge.bind({ k: 'a' });
    bound.set(5);
    gauge.reset();
    expect(samples(await metrics.text(), 'austa_q')).toEqual(['austa_q{k="a"} 0']);
    bound.inc(2);
    expect(samples(await metrics.text(), 'austa_q')).toEqual(['austa_q{k="a"} 2']);
  });
});
