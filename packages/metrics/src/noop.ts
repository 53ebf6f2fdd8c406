import { Registry } from 'prom-client';
import { DEFAULT_MAX_SERIES, OPERATION_DURATION_DEFINITION } from './constants.js';
import type { Counter } from './counter.js';
import type { Gauge } from './gauge.js';
import { createMetricsHandler } from './handler.js';
import type { Histogram } from './histogram.js';
import type { Metrics, MetricsRegistry, PackageInstruments } from './metrics.js';
import { packageInstrumentsOf } from './package-instruments.js';
import { NOOP_SERIES } from './series.js';
import {
  assertOptions,
  defaultBuckets,
  type InstrumentType,
  metricName,
  validateBuckets,
  validateHelp,
  validateLabelNames,
  validateMetricName,
} from './validation.js';

const unregister = (): void => {};

// Definitions are still validated, once, so a package tested without metrics cannot ship
// a name that a real registry would reject. Nothing is validated or stored per call.
function noopInstrument(
  type: InstrumentType,
  options: { name: string; help: string; labelNames?: readonly string[]; buckets?: readonly number[] },
) {
  assertOptions(options, type);
  validateMetricName(options.name, type);
  validateHelp(options.help, options.name);
  return Object.freeze({
    name: options.name,
    help: options.help,
    type,
    labelNames: validateLabelNames(options.labelNames, options.name),
    buckets:
      type === 'histogram'
        ? validateBuckets(options.buckets ?? defaultBuckets(options.name), options.name)
        : undefined,
    maxSeries: 0,
    bind: () => NOOP_SERIES,
    inc(): void {},
    dec(): void {},
    set(): void {},
    observe(): void {},
    onCollect: () => unregister,
    reset(): void {},
  });
}

let noopRegistry: MetricsRegistry | undefined;
const registry = (): MetricsRegistry => {
  noopRegistry ??= new Registry();
  return noopRegistry;
};

/**
 * A `Metrics` whose instruments record nothing and whose bound series are `NOOP_SERIES`.
 * Definitions are validated like the real ones. Its registry is a private, empty one,
 * never prom-client's global registry.
 */
export const noopMetrics: Metrics = Object.freeze({
  get registry() {
    return registry();
  },
  prefix: '',
  maxSeries: DEFAULT_MAX_SERIES,
  contentType: Registry.PROMETHEUS_CONTENT_TYPE,
  handler: createMetricsHandler({
    metrics: async () => '',
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
  }),
  text: async () => '',
  counter: <L extends string>(options: { name: string; help: string; labelNames?: readonly L[] }) =>
    noopInstrument('counter', options) as unknown as Counter<L>,
  gauge: <L extends string>(options: { name: string; help: string; labelNames?: readonly L[] }) =>
    noopInstrument('gauge', options) as unknown as Gauge<L>,
  histogram: <L extends string>(options: {
    name: string;
    help: string;
    labelNames?: readonly L[];
    buckets?: readonly number[];
  }) => noopInstrument('histogram', options) as unknown as Histogram<L>,
  operationDuration: () =>
    noopInstrument('histogram', OPERATION_DURATION_DEFINITION) as unknown as Histogram<
      (typeof OPERATION_DURATION_DEFINITION.labelNames)[number]
    >,
  name: metricName,
  packageInstruments: (packageName: string): PackageInstruments =>
    packageInstrumentsOf(noopMetrics, packageName),
  reset(): void {},
});
