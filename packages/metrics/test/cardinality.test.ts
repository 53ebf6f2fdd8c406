import { afterEach, describe, expect, it, vi } from 'vitest';
import { CARDINALITY_OVERFLOW_METRIC, createMetrics } from '../src/index.js';

afterEach(() => {
  vi.restoreAllMocks();
});

function quietWarnings() {
  return vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
}

describe('cardinality guard', () => {
  it('past maxSeries folds only the labels whose values are new, and counts each folded observation', async () => {
    const warn = quietWarnings();
    const metrics = createMetrics();
    const counter = metrics.counter({
      name: 'austa_cache_requests_total',
      help: 'h',
      labelNames: ['cache', 'result'],
      maxSeries: 2,
    });
    counter.inc({ cache: 'a', result: 'hit' });
    counter.inc({ cache: 'b', result: 'hit' });
    counter.inc({ cache: 'c', result: 'hit' }, 5);
    counter.bind({ cache: 'd', result: 'miss' }).inc();
    counter.inc({ cache: 'a', result: 'hit' });

    const text = await metrics.text();
    expect(text).toContain('austa_cache_requests_total{cache="a",result="hit"} 2');
    expect(text).toContain('austa_cache_requests_total{cache="b",result="hit"} 1');
    // "hit" was in use before the cap, so it stays; only the new cache names fold.
    expect(text).toContain('austa_cache_requests_total{cache="other",result="hit"} 5');
    expect(text).toContain('austa_cache_requests_total{cache="other",result="other"} 1');
    expect(text).not.toContain('cache="c"');
    expect(text).not.toContain('cache="d"');
    expect(text).toContain(`${CARDINALITY_OVERFLOW_METRIC}{metric="austa_cache_requests_total"} 2`);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/austa_cache_requests_total.*cap of 2/);
  });

  it('creates a new mix of known values past the cap up to twice the cap, then folds every label', async () => {
    quietWarnings();
    const metrics = createMetrics();
    const counter = metrics.counter({
      name: 'austa_mix_total',
      help: 'h',
      labelNames: ['a', 'b', 'c'],
      maxSeries: 2,
    });
    counter.inc({ a: 'x', b: '1', c: 'p' });
    counter.inc({ a: 'y', b: '2', c: 'q' });
    counter.inc({ a: 'x', b: '2', c: 'p' });
    counter.inc({ a: 'y', b: '1', c: 'p' });
    counter.inc({ a: 'x', b: '1', c: 'q' });
    const lines = (await metrics.text()).split('\n').filter((line) => line.startsWith('austa_mix_total{'));
    expect(lines).toContain('austa_mix_total{a="x",b="2",c="p"} 1');
    expect(lines).toContain('austa_mix_total{a="y",b="1",c="p"} 1');
    expect(lines).toContain('austa_mix_total{a="other",b="other",c="other"} 1');
    expect(lines).toHaveLength(5);
  });

  it('keeps db_system_name and gives each database system its own budget on the shared histogram', async () => {
    quietWarnings();
    const metrics = createMetrics({ maxSeries: 5 });
    const duration = metrics.operationDuration();
    duration.observe({ db_system_name: 'mongodb', db_operation_name: 'find', error_type: '' }, 0.001);
    for (let i = 0; i < 50; i++) {
      duration.observe({ db_system_name: 'redis', db_operation_name: `bogus${i}`, error_type: 'ERR' }, 0.001);
    }
    duration.observe({ db_system_name: 'redis', db_operation_name: 'get', error_type: 'timeout' }, 0.001);
    duration.observe({ db_system_name: 'mongodb', db_operation_name: 'insert', error_type: '' }, 0.001);
    const text = await metrics.text();
    // The runaway operation names fold; db_system_name and the known error type stay.
    expect(text).toContain(
      'db_client_operation_duration_seconds_count{db_system_name="redis",db_operation_name="other",db_collection_name="",error_type="ERR"} 45',
    );
    expect(text).toContain(
      'db_client_operation_duration_seconds_count{db_system_name="redis",db_operation_name="other",db_collection_name="",error_type="other"} 1',
    );
    // The flood of redis operations did not use up mongodb's budget.
    expect(text).toContain(
      'db_client_operation_duration_seconds_count{db_system_name="mongodb",db_operation_name="insert",db_collection_name="",error_type=""} 1',
    );
    expect(text).not.toContain('db_system_name="other"');
  });

  it('folds the partition label too once it has too many values', async () => {
    quietWarnings();
    const metrics = createMetrics();
    const duration = metrics.operationDuration();
    for (let i = 0; i < 40; i++) {
      duration.observe({ db_system_name: `system${i}`, db_operation_name: 'get', error_type: '' }, 0.001);
    }
    const systems = new Set(
      (await metrics.text())
        .split('\n')
        .filter((line) => line.startsWith('db_client_operation_duration_seconds_count'))
        .map((line) => /db_system_name="([^"]*)"/.exec(line)?.[1]),
    );
    expect(systems.size).toBe(17);
    expect(systems.has('other')).toBe(true);
  });

  it('warns once per metric, however many combinations overflow', () => {
    const warn = quietWarnings();
    const metrics = createMetrics({ maxSeries: 1 });
    const one = metrics.histogram({ name: 'austa_a_seconds', help: 'h', labelNames: ['k'] });
    const two = metrics.gauge({ name: 'austa_beta', help: 'h', labelNames: ['k'] });
    for (let i = 0; i < 10; i++) {
      one.observe({ k: String(i) }, 0.1);
      two.set({ k: String(i) }, i);
    }
    expect(warn).toHaveBeenCalledTimes(2);
  });

  it('the overflow series does not grow the series map, whatever the number of new combinations', async () => {
    quietWarnings();
    const metrics = createMetrics({ maxSeries: 3 });
    const histogram = metrics.histogram({ name: 'austa_c_seconds', help: 'h', labelNames: ['user'] });
    for (let i = 0; i < 1000; i++) histogram.observe({ user: `u${i}` }, 0.01);
    const text = await metrics.text();
    const series = new Set(
      text
        .split('\n')
        .filter((line) => line.startsWith('austa_c_seconds_count'))
        .map((line) => line.split(' ')[0]),
    );
    expect(series.size).toBe(4);
    expect(text).toContain('austa_c_seconds_count{user="other"} 997');
    expect(text).toContain(`${CARDINALITY_OVERFLOW_METRIC}{metric="austa_c_seconds"} 997`);
  });

  it('an explicit "other" value and folded values share one series', async () => {
    quietWarnings();
    const metrics = createMetrics();
    const counter = metrics.counter({
      name: 'austa_delta_total',
      help: 'h',
      labelNames: ['k'],
      maxSeries: 1,
    });
    counter.inc({ k: 'other' });
    counter.inc({ k: 'x' });
    expect(await metrics.text()).toContain('austa_delta_total{k="other"} 2');
  });

  it('the cap of an instrument wins over the default', async () => {
    quietWarnings();
    const metrics = createMetrics({ maxSeries: 1 });
    const counter = metrics.counter({ name: 'austa_e_total', help: 'h', labelNames: ['k'], maxSeries: 10 });
    for (let i = 0; i < 10; i++) counter.inc({ k: String(i) });
    expect(await metrics.text()).not.toContain('k="other"');
  });

  it('maxSeries: Infinity turns the guard off', async () => {
    const warn = quietWarnings();
    const metrics = createMetrics({ maxSeries: Number.POSITIVE_INFINITY });
    const counter = metrics.counter({ name: 'austa_f_total', help: 'h', labelNames: ['k'] });
    for (let i = 0; i < 2000; i++) counter.inc({ k: String(i) });
    expect(warn).not.toHaveBeenCalled();
  });

  it('label values containing separators never collide', async () => {
    const metrics = createMetrics();
    const counter = metrics.counter({ name: 'austa_g_total', help: 'h', labelNames: ['a', 'b'] });
    counter.inc({ a: '1:x', b: '' });
    counter.inc({ a: '1', b: 'x1:' });
    counter.inc({ a: 'x\u0000y', b: 'z' });
    counter.inc({ a: 'x', b: 'y\u0000z' });
    const lines = (await metrics.text()).split('\n').filter((line) => line.startsWith('austa_g_total{'));
    expect(lines).toHaveLength(4);
  });
});
