import { defineBench, loadRival, type MicroCase } from '@austa/bench';
import { createMetrics } from '@austa/metrics';

// The rival comes from the bench package's dependencies.
const promClient = await loadRival<typeof import('prom-client')>('prom-client');

/*
 * What one observation costs on the hot path: the figures the README quotes. Each case records into the shared
 * database histogram's shape (three labels, 16 buckets) with values spread over the buckets.
 */

const VALUES = Array.from({ length: 1024 }, (_, i) => 0.00005 * 1.01 ** i);
const LABELS = { db_system_name: 'redis', db_operation_name: 'get', error_type: '' };

function ours() {
  return createMetrics().operationDuration();
}

function rival() {
  const registry = new promClient.Registry();
  return new promClient.Histogram({
    name: 'db_client_operation_duration_seconds',
    help: 'h',
    labelNames: ['db_system_name', 'db_operation_name', 'error_type'],
    buckets: [
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ],
    registers: [registry],
  });
}

const value = (i: number) => VALUES[i & 1023] as number;

const cases: MicroCase[] = [
  {
    op: 'histogram observe',
    lib: 'prom-client labels().observe()',
    setup: () => {
      const histogram = rival();
      return { run: (i) => histogram.labels(LABELS).observe(value(i)) };
    },
  },
  {
    op: 'histogram observe',
    lib: 'prom-client labels().observe() (control)',
    vs: 'prom-client labels().observe()',
    setup: () => {
      const histogram = rival();
      return { run: (i) => histogram.labels(LABELS).observe(value(i)) };
    },
  },
  {
    op: 'histogram observe',
    lib: 'prom-client observe(labels, v)',
    vs: 'prom-client labels().observe()',
    setup: () => {
      const histogram = rival();
      return { run: (i) => histogram.observe(LABELS, value(i)) };
    },
  },
  {
    op: 'histogram observe',
    lib: '@austa/metrics observe(labels, v)',
    vs: 'prom-client labels().observe()',
    setup: () => {
      const histogram = ours();
      return { run: (i) => histogram.observe(LABELS, value(i)) };
    },
  },
  {
    op: 'histogram observe',
    lib: '@austa/metrics bound observe()',
    vs: 'prom-client labels().observe()',
    setup: () => {
      const bound = ours().bind(LABELS);
      return { run: (i) => bound.observe(value(i)) };
    },
  },
];

export default defineBench({ package: 'metrics', micro: cases });
