import { describe, expect, it } from 'vitest';
import { NOOP_SERIES, noopMetrics } from '../src/index.js';

describe('noopMetrics', () => {
  it('hands out instruments whose bound series are NOOP_SERIES', () => {
    const counter = noopMetrics.counter({
      name: 'austa_cache_requests_total',
      help: 'h',
      labelNames: ['result'],
    });
    expect(counter.bind({ result: 'hit' })).toBe(NOOP_SERIES);
    expect(noopMetrics.operationDuration().bind()).toBe(NOOP_SERIES);
    expect(noopMetrics.gauge({ name: 'austa_pool_in_use', help: 'h' }).bind()).toBe(NOOP_SERIES);
    expect(noopMetrics.histogram({ name: 'austa_job_run_seconds', help: 'h' }).bind()).toBe(NOOP_SERIES);
  });

  it('every method is safe to call and records nothing', async () => {
    const gauge = noopMetrics.gauge({ name: 'austa_pool_in_use', help: 'h', labelNames: ['pool'] });
    gauge.set({ pool: 'a' }, 1);
    gauge.inc({ pool: 'a' });
    gauge.dec({ pool: 'a' });
    const stop = gauge.onCollect(() => {
      throw new Error('never called');
    });
    stop();
    noopMetrics.counter({ name: 'austa_x_ops_total', help: 'h' }).inc({}, 2);
    noopMetrics.operationDuration().observe({ db_system_name: 'redis' }, 1);
    noopMetrics.packageInstruments('cache').counter({ name: 'hits_total', help: 'h' }).bind().inc();
    noopMetrics.reset();
    NOOP_SERIES.inc();
    NOOP_SERIES.dec();
    NOOP_SERIES.set(1);
    NOOP_SERIES.observe(1);
    expect(await noopMetrics.text()).toBe('');
    expect(await noopMetrics.registry.getMetricsAsJSON()).toEqual([]);
  });

  it('still rejects invalid definitions, so packages tested without metrics ship valid names', () => {
    expect(() => noopMetrics.counter({ name: 'austa_cache_requests', help: 'h' })).toThrow(/_total/);
    expect(() => noopMetrics.histogram({ name: 'austa_batch_size', help: 'h' })).toThrow(/buckets/);
  });

  it('NOOP_SERIES is frozen', () => {
    expect(Object.isFrozen(NOOP_SERIES)).toBe(true);
    expect(Object.isFrozen(noopMetrics)).toBe(true);
  });
});
