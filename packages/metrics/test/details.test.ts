import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter as PromCounter, Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CARDINALITY_OVERFLOW_METRIC, createMetrics, noopMetrics } from '../src/index.js';

afterEach(() => {
  vi.restoreAllMocks();
});

function quietWarnings() {
  return vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
}

function failure(run: () => unknown): { code?: string; message: string; metricName?: string } {
  try {
    run();
  } catch (error) {
    return error as { code?: string; message: string; metricName?: string };
  }
  throw new Error('expected an error');
}

function lines(text: string, prefix: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(prefix));
}

describe('createMetrics options', () => {
  it('names createMetrics in the error of a bad default cap', () => {
    expect(failure(() => createMetrics({ maxSeries: 0 })).message).toBe(
      'Invalid maxSeries 0 for createMetrics: expected a positive integer or Infinity',
    );
  });

  it('checks default labels: their names, and that their values are strings', () => {
    expect(failure(() => createMetrics({ defaultLabels: { Bad: 'x' } })).message).toBe(
      'Invalid label name "Bad" in defaultLabels: label names must be lower-case snake_case',
    );
    const error = failure(() => createMetrics({ defaultLabels: { service: 5 as never } }));
    expect(error).toMatchObject({
      code: 'E_INVALID_METRIC',
      message: 'Default label "service" must be a string, got number',
    });
  });

  it('passes the options of collectDefaultMetrics to prom-client', () => {
    const registry = new Registry();
    createMetrics({ registry, collectDefaultMetrics: { prefix: 'care_' } });
    expect(registry.getSingleMetric('care_process_cpu_user_seconds_total')).toBeDefined();
    expect(registry.getSingleMetric('process_cpu_user_seconds_total')).toBeUndefined();
  });
});

describe('instrument definitions', () => {
  it('each method validates its options and name as its own kind', () => {
    const metrics = createMetrics();
    expect(failure(() => metrics.counter(null as never)).message).toBe(
      'counter() expects an options object with name and help',
    );
    expect(failure(() => metrics.gauge(null as never)).message).toBe(
      'gauge() expects an options object with name and help',
    );
    expect(failure(() => metrics.histogram(null as never)).message).toBe(
      'histogram() expects an options object with name and help',
    );
    expect(failure(() => metrics.gauge({ name: 'austa_x_total', help: 'h' })).message).toBe(
      'Invalid metric "austa_x_total": gauge names must not end with "_total"',
    );
    expect(failure(() => metrics.histogram({ name: 'austa_x_total', help: 'h', buckets: [1] })).message).toBe(
      'Invalid metric "austa_x_total": histogram names must not end with "_total"',
    );
    expect(failure(() => metrics.counter({ name: 'austa_x_total', help: 'h', maxSeries: -1 })).message).toBe(
      'Invalid maxSeries -1 for metric "austa_x_total": expected a positive integer or Infinity',
    );
  });

  it('package instruments validate their options as their own kind, and make gauges too', () => {
    const cache = createMetrics().packageInstruments('cache');
    expect(failure(() => cache.counter(null as never)).message).toBe(
      'counter() expects an options object with name and help',
    );
    expect(failure(() => cache.gauge(null as never)).message).toBe(
      'gauge() expects an options object with name and help',
    );
    expect(failure(() => cache.histogram(null as never)).message).toBe(
      'histogram() expects an options object with name and help',
    );
    expect(cache.gauge({ name: 'entries', help: 'h' }).name).toBe('austa_cache_entries');
  });

  it('accepts each prom-client aggregator for gauges and refuses any other', () => {
    const metrics = createMetrics();
    for (const aggregator of ['sum', 'first', 'min', 'max', 'average', 'omit'] as const) {
      const name = `austa_pool_${aggregator}_workers`;
      metrics.gauge({ name, help: 'h', aggregator });
      // AggregatorRegistry reads it from the registered metric.
      expect(
        (metrics.registry.getSingleMetric(name) as { aggregator?: string } | undefined)?.aggregator,
      ).toBe(aggregator);
    }
    expect(
      failure(() => metrics.gauge({ name: 'austa_g', help: 'h', aggregator: 'median' as never })),
    ).toMatchObject({
      code: 'E_INVALID_METRIC',
      message: 'Invalid aggregator "median" for "austa_g"',
      metricName: 'austa_g',
    });
  });

  it('marks instruments with a registered symbol, so another copy of the package recognises them', () => {
    const counter = createMetrics().counter({ name: 'austa_sym_total', help: 'h' });
    expect((counter as unknown as Record<symbol, unknown>)[Symbol.for('@austa/metrics.instrument')]).toBe(
      true,
    );
  });
});

describe('getting an existing instrument', () => {
  it('refuses a request for fewer or more label names, naming the metric', () => {
    const metrics = createMetrics();
    metrics.counter({ name: 'austa_hits_total', help: 'h', labelNames: ['a', 'b'] });
    const fewer = failure(() => metrics.counter({ name: 'austa_hits_total', help: 'h', labelNames: ['a'] }));
    expect(fewer).toMatchObject({
      code: 'E_METRIC_CONFLICT',
      message: 'Metric "austa_hits_total" already exists with label names [a, b]; requested [a]',
      metricName: 'austa_hits_total',
    });
    expect(metrics.counter({ name: 'austa_hits_total', help: 'h', labelNames: ['b', 'a'] }).name).toBe(
      'austa_hits_total',
    );
  });

  it('refuses a request for more buckets, naming the metric', () => {
    const metrics = createMetrics();
    metrics.histogram({ name: 'austa_i_seconds', help: 'h', buckets: [0.1, 1] });
    expect(
      failure(() => metrics.histogram({ name: 'austa_i_seconds', help: 'h', buckets: [0.1, 1, 2] })),
    ).toMatchObject({
      code: 'E_METRIC_CONFLICT',
      message: 'Metric "austa_i_seconds" already exists with buckets [0.1, 1]; requested [0.1, 1, 2]',
      metricName: 'austa_i_seconds',
    });
  });

  it('compares label names with an instrument of another copy of the package that lists none', () => {
    const registry = new Registry();
    // What an older copy of the package could have registered: the marker, and no labelNames array.
    registry.registerMetric({
      name: 'austa_old_total',
      help: 'h',
      type: 'counter',
      aggregator: 'sum',
      [Symbol.for('@austa/metrics.instrument')]: true,
      get: async () => ({
        name: 'austa_old_total',
        help: 'h',
        type: 'counter',
        aggregator: 'sum',
        values: [],
      }),
      reset: () => {},
    } as never);
    const metrics = createMetrics({ registry });
    expect(
      failure(() => metrics.counter({ name: 'austa_old_total', help: 'h', labelNames: ['k'] })).message,
    ).toBe('Metric "austa_old_total" already exists with label names []; requested [k]');
  });

  it('names the prom-client metric type when the name belongs to one', () => {
    const registry = new Registry();
    new PromCounter({ name: 'austa_j_total', help: 'h', registers: [registry] });
    expect(
      failure(() => createMetrics({ registry }).counter({ name: 'austa_j_total', help: 'h' })),
    ).toMatchObject({
      code: 'E_METRIC_CONFLICT',
      message:
        'Metric "austa_j_total" is already registered by something other than @austa/metrics (a prom-client counter); pick another name or another registry',
      metricName: 'austa_j_total',
    });
  });
});

describe('overflow', () => {
  it('warns once with a typed warning naming the metric and its cap', () => {
    const warn = quietWarnings();
    const counter = createMetrics().counter({
      name: 'austa_k_total',
      help: 'h',
      labelNames: ['k'],
      maxSeries: 1,
    });
    counter.inc({ k: 'a' });
    counter.inc({ k: 'b' });
    expect(warn.mock.calls).toEqual([
      [
        `Metric "austa_k_total" reached its cap of 1 label combinations. New label values are recorded as "other" (values already in use are kept) and counted in ${CARDINALITY_OVERFLOW_METRIC}. Remove unbounded label values or raise maxSeries.`,
        { type: 'AustaMetricsWarning', code: 'AUSTA_METRICS_CARDINALITY' },
      ],
    ]);
  });

  it('a folded gauge forwards set, inc and dec to "other" and counts each', async () => {
    quietWarnings();
    const metrics = createMetrics();
    const gauge = metrics.gauge({ name: 'austa_l', help: 'h', labelNames: ['k'], maxSeries: 1 });
    gauge.set({ k: 'a' }, 1);
    const folded = gauge.bind({ k: 'b' });
    folded.set(10);
    folded.inc(5);
    folded.dec(2);
    const text = await metrics.text();
    expect(text).toContain('austa_l{k="other"} 13');
    expect(text).toContain(`${CARDINALITY_OVERFLOW_METRIC}{metric="austa_l"} 3`);
  });

  it('binding the same folded labels twice gives the same handle', () => {
    quietWarnings();
    const counter = createMetrics().counter({
      name: 'austa_misses_total',
      help: 'h',
      labelNames: ['k'],
      maxSeries: 1,
    });
    counter.inc({ k: 'a' });
    expect(counter.bind({ k: 'b' })).toBe(counter.bind({ k: 'b' }));
  });

  it('applies the cap whatever the label names, even one named "undefined"', async () => {
    quietWarnings();
    const metrics = createMetrics();
    const counter = metrics.counter({
      name: 'austa_odd_total',
      help: 'h',
      labelNames: ['undefined'],
      maxSeries: 1,
    });
    counter.inc({ undefined: 'a' });
    counter.inc({ undefined: 'b' });
    expect(lines(await metrics.text(), 'austa_odd_total{')).toEqual([
      'austa_odd_total{undefined="a"} 1',
      'austa_odd_total{undefined="other"} 1',
    ]);
  });

  it('reset() zeroes counters in place', async () => {
    const metrics = createMetrics();
    const counter = metrics.counter({ name: 'austa_n_total', help: 'h' });
    const bound = counter.bind();
    bound.inc(3);
    counter.reset();
    expect(lines(await metrics.text(), 'austa_n_total ')).toEqual(['austa_n_total 0']);
    bound.inc();
    expect(lines(await metrics.text(), 'austa_n_total ')).toEqual(['austa_n_total 1']);
  });
});

describe('the shared database histogram', () => {
  const count = 'db_client_operation_duration_seconds_count';

  it('past 16 database systems, still creates series for the systems already seen', async () => {
    quietWarnings();
    const metrics = createMetrics();
    const duration = metrics.operationDuration();
    for (let i = 0; i < 16; i++) {
      duration.observe({ db_system_name: `system${i}`, db_operation_name: 'get', error_type: '' }, 0.001);
    }
    duration.observe({ db_system_name: 'system0', db_operation_name: 'set', error_type: '' }, 0.001);
    duration.observe({ db_system_name: 'system99', db_operation_name: 'get', error_type: '' }, 0.001);
    const text = await metrics.text();
    expect(text).toContain(
      `${count}{db_system_name="system0",db_operation_name="set",db_collection_name="",error_type=""} 1`,
    );
    expect(text).toContain(
      `${count}{db_system_name="other",db_operation_name="other",db_collection_name="other",error_type="other"} 1`,
    );
    expect(text).toContain(`${CARDINALITY_OVERFLOW_METRIC}{metric="db_client_operation_duration_seconds"} 1`);
  });

  it('counts only the observations a label budget folded, and keeps known values of a full budget', async () => {
    quietWarnings();
    const metrics = createMetrics();
    const duration = metrics.operationDuration();
    for (let i = 0; i < 50; i++) {
      duration.observe({ db_system_name: 'redis', db_operation_name: 'get', error_type: `E${i}` }, 0.001);
    }
    expect(await metrics.text()).not.toContain(`${CARDINALITY_OVERFLOW_METRIC}{`);
    // The error_type budget (50) is full: a known error type on another command is kept, a new one folds.
    duration.observe({ db_system_name: 'redis', db_operation_name: 'set', error_type: 'E7' }, 0.001);
    duration.observe({ db_system_name: 'redis', db_operation_name: 'set', error_type: 'E50' }, 0.001);
    const text = await metrics.text();
    expect(text).toContain(
      `${count}{db_system_name="redis",db_operation_name="set",db_collection_name="",error_type="E7"} 1`,
    );
    expect(text).toContain(
      `${count}{db_system_name="redis",db_operation_name="set",db_collection_name="",error_type="other"} 1`,
    );
    expect(text).toContain(`${CARDINALITY_OVERFLOW_METRIC}{metric="db_client_operation_duration_seconds"} 1`);
  });

  it('labels without a budget are never folded by the budgets', async () => {
    quietWarnings();
    const metrics = createMetrics();
    const duration = metrics.operationDuration();
    for (let i = 0; i < 3; i++) {
      duration.observe({ db_system_name: 'redis', db_operation_name: 'get', error_type: '' }, 0.001);
    }
    const text = await metrics.text();
    expect(lines(text, count)).toEqual([
      `${count}{db_system_name="redis",db_operation_name="get",db_collection_name="",error_type=""} 3`,
    ]);
  });

  it('with maxSeries Infinity, label budgets are off too', async () => {
    const warn = quietWarnings();
    const metrics = createMetrics({ maxSeries: Number.POSITIVE_INFINITY });
    const duration = metrics.operationDuration();
    for (let i = 0; i < 60; i++) {
      duration.observe({ db_system_name: 'redis', db_operation_name: 'get', error_type: `E${i}` }, 0.001);
    }
    expect(await metrics.text()).not.toContain('error_type="other"');
    expect(warn).not.toHaveBeenCalled();
  });

  it('past twice the cap, folds every label but the database system', async () => {
    quietWarnings();
    const metrics = createMetrics({ maxSeries: 2 });
    const duration = metrics.operationDuration();
    const observe = (operation: string, collection: string, error: string) =>
      duration.observe(
        {
          db_system_name: 'redis',
          db_operation_name: operation,
          db_collection_name: collection,
          error_type: error,
        },
        0.001,
      );
    observe('get', 'a', '');
    observe('set', 'b', 'ERR');
    // Mixes of known values: created up to twice the cap, then folded.
    observe('get', 'b', '');
    observe('set', 'a', '');
    observe('get', 'a', 'ERR');
    const text = await metrics.text();
    expect(lines(text, count)).toHaveLength(5);
    expect(text).toContain(
      `${count}{db_system_name="redis",db_operation_name="other",db_collection_name="other",error_type="other"} 1`,
    );
  });
});

describe('no-op metrics', () => {
  it('has no prefix', () => {
    expect(noopMetrics.prefix).toBe('');
  });

  it('serves an empty exposition', async () => {
    const body = await new Promise<string | undefined>((resolve) => {
      const response = { headersSent: false, writeHead: () => response, end: resolve };
      noopMetrics.handler({ method: 'GET' } as IncomingMessage, response as unknown as ServerResponse);
    });
    expect(body).toBe('');
  });
});
