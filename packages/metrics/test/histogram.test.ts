import { Histogram as PromHistogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BUCKETS, createMetrics } from '../src/index.js';

const VALUES = [
  0, 0.00005, 0.0001, 0.00012, 0.00025, 0.0003, 0.0004, 0.0009, 0.001, 0.0011, 0.004, 0.02, 0.3, 0.7, 1, 3,
  9.99, 10, 11, 250, -0.5,
];

function sameValuesInto(observe: (labels: Record<string, string>, value: number) => void): void {
  const labelSets = [
    { db_system_name: 'redis', db_operation_name: 'get', db_collection_name: '', error_type: '' },
    { db_system_name: 'redis', db_operation_name: 'set', db_collection_name: '', error_type: 'timeout' },
    { db_system_name: 'mongodb', db_operation_name: 'find', db_collection_name: 'patients', error_type: '' },
  ];
  VALUES.forEach((value, index) => {
    observe(labelSets[index % labelSets.length]!, value);
  });
}

describe('histogram exposition', () => {
  it('matches a prom-client Histogram fed the same values, byte for byte apart from the name', async () => {
    const metrics = createMetrics({ defaultLabels: { service: 'care-api' } });
    const ours = metrics.operationDuration();
    sameValuesInto((labels, value) => ours.observe(labels, value));

    const reference = new Registry();
    reference.setDefaultLabels({ service: 'care-api' });
    const theirs = new PromHistogram({
      name: 'reference_seconds',
      help: ours.help,
      labelNames: ['db_system_name', 'db_operation_name', 'db_collection_name', 'error_type'],
      buckets: [...BUCKETS.dbOperationSeconds],
      registers: [reference],
    });
    sameValuesInto((labels, value) => theirs.observe(labels, value));

    const ourText = await metrics.registry.getSingleMetricAsString(ours.name);
    const theirText = await reference.getSingleMetricAsString('reference_seconds');
    expect(ourText).toBe(theirText.replaceAll('reference_seconds', 'db_client_operation_duration_seconds'));
    expect(ourText).toContain('le="+Inf"');
  });

  it('bound series and observe(labels) write to the same series', async () => {
    const metrics = createMetrics();
    const histogram = metrics.histogram({ name: 'austa_job_run_seconds', help: 'h', labelNames: ['job'] });
    const bound = histogram.bind({ job: 'sweep' });
    bound.observe(0.003);
    histogram.observe({ job: 'sweep' }, 0.2);
    expect(histogram.bind({ job: 'sweep' })).toBe(bound);
    const text = await metrics.text();
    expect(text).toContain('austa_job_run_seconds_count{job="sweep"} 2');
    expect(text).toContain('austa_job_run_seconds_sum{job="sweep"} 0.203');
  });

  it('buckets are cumulative, +Inf equals the count, and sum adds every value', async () => {
    const metrics = createMetrics();
    const histogram = metrics.histogram({ name: 'austa_x_seconds', help: 'h', buckets: [0.1, 1, 10] });
    const bound = histogram.bind();
    for (const value of [0.05, 0.1, 0.5, 1, 5, 50]) bound.observe(value);
    const text = await metrics.text();
    expect(text).toContain('austa_x_seconds_bucket{le="0.1"} 2');
    expect(text).toContain('austa_x_seconds_bucket{le="1"} 4');
    expect(text).toContain('austa_x_seconds_bucket{le="10"} 5');
    expect(text).toContain('austa_x_seconds_bucket{le="+Inf"} 6');
    expect(text).toContain('austa_x_seconds_sum 56.65');
    expect(text).toContain('austa_x_seconds_count 6');
  });

  it('drops NaN and infinite values instead of poisoning the sum', async () => {
    const metrics = createMetrics();
    const bound = metrics.histogram({ name: 'austa_y_seconds', help: 'h', buckets: [1] }).bind();
    bound.observe(Number.NaN);
    bound.observe(Number.POSITIVE_INFINITY);
    bound.observe(Number.NEGATIVE_INFINITY);
    bound.observe(0.5);
    const text = await metrics.text();
    expect(text).toContain('austa_y_seconds_sum 0.5');
    expect(text).toContain('austa_y_seconds_count 1');
  });

  it('a label-less histogram is exported as zero before its first observation', async () => {
    const metrics = createMetrics();
    metrics.histogram({ name: 'austa_z_seconds', help: 'h', buckets: [1] });
    expect(await metrics.text()).toContain('austa_z_seconds_count 0');
  });

  it('JSON samples carry le and the series labels together, as prom-client does', async () => {
    const metrics = createMetrics();
    metrics
      .histogram({ name: 'austa_w_seconds', help: 'h', labelNames: ['job'], buckets: [1] })
      .observe({ job: 'a' }, 2);
    const [, json] = await metrics.registry.getMetricsAsJSON();
    expect(json?.values).toEqual([
      { value: 0, labels: { le: 1, job: 'a' }, metricName: 'austa_w_seconds_bucket' },
      { value: 1, labels: { le: '+Inf', job: 'a' }, metricName: 'austa_w_seconds_bucket' },
      { value: 2, labels: { job: 'a' }, metricName: 'austa_w_seconds_sum' },
      { value: 1, labels: { job: 'a' }, metricName: 'austa_w_seconds_count' },
    ]);
  });

  it('reset() zeroes the series and keeps bound handles working', async () => {
    const metrics = createMetrics();
    const histogram = metrics.histogram({ name: 'austa_r_seconds', help: 'h', buckets: [1] });
    const bound = histogram.bind();
    bound.observe(0.5);
    metrics.reset();
    expect(await metrics.text()).toContain('austa_r_seconds_count 0');
    bound.observe(0.5);
    expect(await metrics.text()).toContain('austa_r_seconds_count 1');
    metrics.registry.resetMetrics();
    expect(await metrics.text()).toContain('austa_r_seconds_count 0');
  });
});
