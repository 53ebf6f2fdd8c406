import { Counter as PromCounter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  AustaMetricsError,
  BUCKETS,
  createMetrics,
  DB_CLIENT_OPERATION_DURATION,
  errors,
  InvalidLabelsError,
  InvalidMetricError,
  MetricConflictError,
  metricName,
} from '../src/index.js';

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return AustaMetricsError.isInstance(error) ? error.code : `not an AustaMetricsError: ${String(error)}`;
  }
  return undefined;
}

describe('get-or-create', () => {
  it('counter() returns the same instrument for the same name, type and label names', () => {
    const metrics = createMetrics();
    const first = metrics.counter({
      name: 'austa_cache_requests_total',
      help: 'h',
      labelNames: ['cache', 'result'],
    });
    const second = metrics.counter({
      name: 'austa_cache_requests_total',
      help: 'h',
      labelNames: ['cache', 'result'],
    });
    expect(second).toBe(first);
  });

  it('label names in another order still return the same instrument', () => {
    const metrics = createMetrics();
    const first = metrics.gauge({
      name: 'austa_pool_connections',
      help: 'h',
      labelNames: ['role', 'status'],
    });
    expect(metrics.gauge({ name: 'austa_pool_connections', help: 'h', labelNames: ['status', 'role'] })).toBe(
      first,
    );
  });

  it('histogram() returns the same instrument for the same buckets', () => {
    const metrics = createMetrics();
    const first = metrics.histogram({ name: 'austa_codec_value_bytes', help: 'h', buckets: [1, 10] });
    expect(metrics.histogram({ name: 'austa_codec_value_bytes', help: 'h', buckets: [1, 10] })).toBe(first);
  });

  it('operationDuration() is shared by every Metrics object on one registry', () => {
    const registry = new Registry();
    const one = createMetrics({ registry });
    const two = createMetrics({ registry, prefix: 'other' });
    expect(two.operationDuration()).toBe(one.operationDuration());
    expect(one.operationDuration().name).toBe(DB_CLIENT_OPERATION_DURATION);
    expect(one.operationDuration().buckets).toEqual(BUCKETS.dbOperationSeconds);
  });

  it('a different type under the same name throws E_METRIC_CONFLICT naming both types', () => {
    const metrics = createMetrics();
    metrics.gauge({ name: 'austa_cache_entries', help: 'h' });
    let caught: unknown;
    try {
      metrics.histogram({ name: 'austa_cache_entries', help: 'h', buckets: [1] });
    } catch (error) {
      caught = error;
    }
    expect(MetricConflictError.isInstance(caught)).toBe(true);
    expect((caught as MetricConflictError).code).toBe('E_METRIC_CONFLICT');
    expect((caught as Error).message).toMatch(/already exists as a gauge; cannot get it as a histogram/);
    expect((caught as MetricConflictError).metricName).toBe('austa_cache_entries');
  });

  it('different label names throw E_METRIC_CONFLICT listing both', () => {
    const metrics = createMetrics();
    metrics.counter({ name: 'austa_cache_requests_total', help: 'h', labelNames: ['cache'] });
    expect(() =>
      metrics.counter({ name: 'austa_cache_requests_total', help: 'h', labelNames: ['cache', 'tier'] }),
    ).toThrow(/label names \[cache\]; requested \[cache, tier\]/);
    expect(
      codeOf(() =>
        metrics.counter({ name: 'austa_cache_requests_total', help: 'h', labelNames: ['cache', 'tier'] }),
      ),
    ).toBe('E_METRIC_CONFLICT');
  });

  it('different buckets throw E_METRIC_CONFLICT listing both', () => {
    const metrics = createMetrics();
    metrics.histogram({ name: 'austa_job_run_seconds', help: 'h', buckets: [0.1, 1] });
    expect(() => metrics.histogram({ name: 'austa_job_run_seconds', help: 'h', buckets: [0.1, 2] })).toThrow(
      /buckets \[0.1, 1\]; requested \[0.1, 2\]/,
    );
  });

  it('a prom-client metric already registered under the name throws E_METRIC_CONFLICT', () => {
    const registry = new Registry();
    new PromCounter({ name: 'austa_cache_requests_total', help: 'h', registers: [registry] });
    const metrics = createMetrics({ registry });
    expect(codeOf(() => metrics.counter({ name: 'austa_cache_requests_total', help: 'h' }))).toBe(
      'E_METRIC_CONFLICT',
    );
  });

  it('an invalid definition registers nothing', () => {
    const metrics = createMetrics();
    const before = metrics.registry.getMetricsAsArray().length;
    expect(() => metrics.counter({ name: 'austa_bad', help: 'h' })).toThrow();
    expect(metrics.registry.getMetricsAsArray().length).toBe(before);
  });
});

describe('naming rules', () => {
  const metrics = createMetrics();

  it.each([
    ['counter without _total', () => metrics.counter({ name: 'austa_cache_requests', help: 'h' })],
    ['gauge with _total', () => metrics.gauge({ name: 'austa_cache_entries_total', help: 'h' })],
    ['camelCase', () => metrics.gauge({ name: 'austa_cacheEntries', help: 'h' })],
    ['colon', () => metrics.gauge({ name: 'austa:cache_entries', help: 'h' })],
    ['leading digit', () => metrics.gauge({ name: '1_cache_entries', help: 'h' })],
    ['empty name', () => metrics.gauge({ name: '', help: 'h' })],
    ['non-string name', () => metrics.gauge({ name: 42 as unknown as string, help: 'h' })],
    ['milliseconds', () => metrics.histogram({ name: 'austa_call_duration_milliseconds', help: 'h' })],
    ['ms abbreviation', () => metrics.histogram({ name: 'austa_call_latency_ms', help: 'h', buckets: [1] })],
    [
      'duration without seconds',
      () => metrics.histogram({ name: 'austa_call_duration', help: 'h', buckets: [1] }),
    ],
    ['kilobytes', () => metrics.gauge({ name: 'austa_value_kilobytes', help: 'h' })],
    ['type in name', () => metrics.gauge({ name: 'austa_cache_gauge', help: 'h' })],
    ['_count suffix', () => metrics.gauge({ name: 'austa_cache_count', help: 'h' })],
    ['_bucket suffix', () => metrics.histogram({ name: 'austa_cache_bucket', help: 'h', buckets: [1] })],
    ['exporter name', () => metrics.gauge({ name: 'redis_up', help: 'h' })],
    ['exporter prefix', () => metrics.gauge({ name: 'mongodb_ss_connections', help: 'h' })],
    ['missing help', () => metrics.gauge({ name: 'austa_cache_entries', help: '' })],
    [
      'reserved le label',
      () => metrics.histogram({ name: 'austa_x_seconds', help: 'h', labelNames: ['le'] }),
    ],
    [
      'reserved quantile label',
      () => metrics.gauge({ name: 'austa_x', help: 'h', labelNames: ['quantile'] }),
    ],
    ['__ label', () => metrics.gauge({ name: 'austa_x', help: 'h', labelNames: ['__name'] })],
    ['camelCase label', () => metrics.gauge({ name: 'austa_x', help: 'h', labelNames: ['userId'] })],
    ['duplicate label', () => metrics.gauge({ name: 'austa_x', help: 'h', labelNames: ['a', 'a'] })],
    ['unsorted buckets', () => metrics.histogram({ name: 'austa_x_seconds', help: 'h', buckets: [1, 0.5] })],
    [
      'infinite bucket',
      () => metrics.histogram({ name: 'austa_x_seconds', help: 'h', buckets: [1, Infinity] }),
    ],
    ['empty buckets', () => metrics.histogram({ name: 'austa_x_seconds', help: 'h', buckets: [] })],
    ['histogram without unit or buckets', () => metrics.histogram({ name: 'austa_batch_size', help: 'h' })],
    ['maxSeries 0', () => metrics.gauge({ name: 'austa_x', help: 'h', maxSeries: 0 })],
    ['maxSeries 1.5', () => metrics.gauge({ name: 'austa_x', help: 'h', maxSeries: 1.5 })],
    ['bad prefix', () => createMetrics({ prefix: 'Bad-Prefix' })],
    ['bad default label', () => createMetrics({ defaultLabels: { 'bad-label': 'x' } })],
    ['bad package name', () => metricName('Cache', 'requests_total')],
    ['bad maxSeries option', () => createMetrics({ maxSeries: -1 })],
  ])('%s throws E_INVALID_METRIC', (_case, action) => {
    expect(codeOf(action)).toBe('E_INVALID_METRIC');
  });

  it('the message says what is wrong', () => {
    expect(() => metrics.counter({ name: 'austa_cache_requests', help: 'h' })).toThrow(
      'Invalid metric "austa_cache_requests": counter names must end with "_total"',
    );
    expect(() => metrics.histogram({ name: 'austa_call_duration_milliseconds', help: 'h' })).toThrow(
      /use the base unit "seconds" instead of "milliseconds"/,
    );
  });

  it('unknown label names throw E_INVALID_LABELS when binding', () => {
    const counter = metrics.counter({ name: 'austa_label_check_total', help: 'h', labelNames: ['result'] });
    let caught: unknown;
    try {
      counter.bind({ result: 'ok', user: 'u1' } as never);
    } catch (error) {
      caught = error;
    }
    expect(InvalidLabelsError.isInstance(caught)).toBe(true);
    expect((caught as Error).message).toMatch(/Unknown label "user"/);
    expect(codeOf(() => counter.inc({ result: { nested: true } } as never))).toBe('E_INVALID_LABELS');
  });

  it('metricName() builds austa_<package>_<suffix> with dashes turned into underscores', () => {
    expect(metricName('rate-limit', 'decisions_total')).toBe('austa_rate_limit_decisions_total');
    expect(metrics.name('cache', 'requests_total')).toBe('austa_cache_requests_total');
  });

  it('packageInstruments() names instruments relative to the package', () => {
    const cache = createMetrics({ prefix: 'billing' }).packageInstruments('cache');
    expect(cache.name('requests_total')).toBe('austa_cache_requests_total');
    expect(cache.counter({ name: 'requests_total', help: 'h' }).name).toBe(
      'billing_austa_cache_requests_total',
    );
    expect(cache.histogram({ name: 'value_bytes', help: 'h' }).buckets).toEqual(BUCKETS.payloadBytes);
  });
});

describe('errors', () => {
  it('isInstance recognises errors from another copy of the package by their marker', () => {
    const foreign = Object.assign(new Error('x'), {
      [Symbol.for('@austa/metrics.error')]: true,
      code: 'E_INVALID_METRIC',
    });
    expect(AustaMetricsError.isInstance(foreign)).toBe(true);
    expect(InvalidMetricError.isInstance(foreign)).toBe(true);
    expect(MetricConflictError.isInstance(foreign)).toBe(false);
    expect(AustaMetricsError.isInstance(new Error('x'))).toBe(false);
    expect(AustaMetricsError.isInstance(null)).toBe(false);
  });

  it('keep cause and name, and are listed in the errors map', () => {
    const cause = new Error('root');
    const error = new MetricConflictError('conflict', { cause, metricName: 'm' });
    expect(error.cause).toBe(cause);
    expect(error.name).toBe('MetricConflictError');
    expect(error).toBeInstanceOf(errors.AustaMetricsError);
    expect(Object.keys(errors).sort()).toEqual([
      'AustaMetricsError',
      'InvalidLabelsError',
      'InvalidMetricError',
      'MetricConflictError',
    ]);
  });
});
