import {
  collectDefaultMetrics as collectProcessMetrics,
  type Metric as PromMetric,
  Registry,
  type RegistryContentType,
} from 'prom-client';
import {
  CARDINALITY_OVERFLOW_METRIC,
  DB_CLIENT_OPERATION_DURATION,
  type DbOperationLabel,
  DEFAULT_MAX_SERIES,
  OPERATION_DURATION_DEFINITION,
} from './constants.js';
import { type Counter, CounterInstrument } from './counter.js';
import { InvalidMetricError, MetricConflictError } from './errors.js';
import { type Gauge, GaugeInstrument } from './gauge.js';
import { createMetricsHandler, type MetricsRequestHandler } from './handler.js';
import { type Histogram, HistogramInstrument } from './histogram.js';
import { type Aggregator, INSTRUMENT_MARKER, type InstrumentContext } from './instrument.js';
import { packageInstrumentsOf } from './package-instruments.js';
import {
  assertOptions,
  defaultBuckets,
  type InstrumentType,
  metricName,
  normalizePrefix,
  validateBuckets,
  validateHelp,
  validateLabelName,
  validateLabelNames,
  validateMaxSeries,
  validateMetricName,
} from './validation.js';

/** A prom-client registry of either content type. */
export type MetricsRegistry = Registry<RegistryContentType>;

/** Options of prom-client's default process metrics, when `collectDefaultMetrics` is an object. */
export interface DefaultMetricsOptions {
  /** Prepended to the default metric names (`process_cpu_seconds_total`…). Not the `prefix` option. */
  prefix?: string;
  /** Buckets of `nodejs_gc_duration_seconds`, in seconds. */
  gcDurationBuckets?: number[];
  /** Sampling resolution of the event loop lag metrics, in milliseconds (default 10). */
  eventLoopMonitoringPrecision?: number;
}

/** Options of {@link createMetrics}. */
export interface CreateMetricsOptions {
  /**
   * The registry to write to. Default: a new `Registry` owned by this object. prom-client's
   * global `register` is used only if you pass it here.
   */
  registry?: MetricsRegistry;
  /**
   * Prepended to the names given to `counter()`, `gauge()`, `histogram()` and
   * `packageInstruments()`, e.g. `'billing'` turns `austa_cache_requests_total` into
   * `billing_austa_cache_requests_total`. A trailing `_` is added if missing.
   * Never applied to `db_client_operation_duration_seconds` or
   * `austa_metrics_cardinality_overflow_total`, so shared dashboards and alerts work for
   * every service. Default: none.
   */
  prefix?: string;
  /**
   * Labels added to every sample of the registry (e.g. `{ service: 'care-api' }`), through
   * `registry.setDefaultLabels()`. This replaces default labels already set on a registry
   * you pass in. A series label of the same name wins over a default label.
   */
  defaultLabels?: Readonly<Record<string, string>>;
  /**
   * Also register prom-client's process and Node.js metrics (CPU, memory, event loop lag,
   * GC) on the registry. Skipped if the registry already has them. Default: `false`.
   */
  collectDefaultMetrics?: boolean | DefaultMetricsOptions;
  /**
   * Default cap on label combinations per instrument; an instrument's own `maxSeries` wins.
   * Past the cap, new combinations are recorded under `other`. `Infinity` turns the guard
   * off. Default: 500.
   */
  maxSeries?: number;
}

/** Options shared by counters, gauges and histograms. */
export interface InstrumentOptions<L extends string> {
  /**
   * Full metric name in lower-case snake_case, with base units (`_seconds`, `_bytes`).
   * Counters end in `_total`. Package metrics are named `austa_<package>_…`: build the
   * name with `metrics.name(package, suffix)` or use `packageInstruments()`. The
   * `prefix` option is prepended.
   */
  name: string;
  /** One sentence saying what is measured, and in which unit if the name does not say. */
  help: string;
  /** Label names, from small fixed sets only (never ids, keys or free text). Default: none. */
  labelNames?: readonly L[];
  /**
   * Cap on label combinations for this instrument. Default: the `maxSeries` given to
   * `createMetrics` (500). On get-or-create, the first definition's cap stays.
   */
  maxSeries?: number;
}

/** Options of `metrics.counter()`. */
export interface CounterOptions<L extends string> extends InstrumentOptions<L> {}

/** Options of `metrics.gauge()`. */
export interface GaugeOptions<L extends string> extends InstrumentOptions<L> {
  /**
   * How `AggregatorRegistry` combines this gauge across cluster workers: `sum` (default,
   * right for counts such as connections), `max`, `min`, `average`, `first` or `omit`.
   */
  aggregator?: Aggregator;
}

/** Options of `metrics.histogram()`. */
export interface HistogramOptions<L extends string> extends InstrumentOptions<L> {
  /**
   * Upper bounds in the metric's unit, strictly increasing; `+Inf` is added. Default:
   * `BUCKETS.requestSeconds` for `_seconds` names, `BUCKETS.payloadBytes` for `_bytes`
   * names; other names must pass buckets.
   */
  buckets?: readonly number[];
}

/** Instruments of one package: names are relative to `austa_<package>_`. */
export interface PackageInstruments {
  /** The package name as given, e.g. `rate-limit`. */
  readonly packageName: string;
  /** `austa_<package>_<suffix>`, without the `prefix` option (which instruments add). */
  name(suffix: string): string;
  /** `metrics.counter()` with `name` read as the part after `austa_<package>_`. */
  counter<L extends string = never>(options: CounterOptions<L>): Counter<L>;
  /** `metrics.gauge()` with `name` read as the part after `austa_<package>_`. */
  gauge<L extends string = never>(options: GaugeOptions<L>): Gauge<L>;
  /** `metrics.histogram()` with `name` read as the part after `austa_<package>_`. */
  histogram<L extends string = never>(options: HistogramOptions<L>): Histogram<L>;
}

/**
 * Instruments and exposition on one registry. Every `@austa` package takes an optional
 * `metrics` option of this type and records nothing without it.
 */
export interface Metrics {
  /** The registry everything is written to. */
  readonly registry: MetricsRegistry;
  /** The normalised `prefix` option (`''` or ending in `_`). */
  readonly prefix: string;
  /** The default cap on label combinations per instrument. */
  readonly maxSeries: number;
  /** The `Content-Type` of `text()`, from the registry. */
  readonly contentType: string;
  /** A `node:http` handler serving `text()`; see `createMetricsHandler`. */
  readonly handler: MetricsRequestHandler;
  /** The registry in the exposition format (`registry.metrics()`). */
  text(): Promise<string>;
  /**
   * Gets or creates a counter. The same name, type and label names (in any order) return
   * the same instrument; anything else under that name throws `E_METRIC_CONFLICT`.
   * Invalid names throw `E_INVALID_METRIC`.
   * @example
   * const requests = metrics.counter({
   *   name: metrics.name('cache', 'requests_total'),
   *   help: 'Cache lookups by tier and result.',
   *   labelNames: ['cache', 'tier', 'result'],
   * });
   */
  counter<L extends string = never>(options: CounterOptions<L>): Counter<L>;
  /** Gets or creates a gauge; same rules as `counter()`. */
  gauge<L extends string = never>(options: GaugeOptions<L>): Gauge<L>;
  /** Gets or creates a histogram; same rules as `counter()`, and the buckets must match too. */
  histogram<L extends string = never>(options: HistogramOptions<L>): Histogram<L>;
  /**
   * The shared `db_client_operation_duration_seconds` histogram (OpenTelemetry
   * `db.client.operation.duration`), labelled `db_system_name`, `db_operation_name` and
   * `error_type` (empty when the operation succeeded), with `BUCKETS.dbOperationSeconds`.
   * Never prefixed.
   */
  operationDuration(): Histogram<DbOperationLabel>;
  /** `austa_<package>_<suffix>`: `name('rate-limit', 'decisions_total')` is `austa_rate_limit_decisions_total`. */
  name(packageName: string, suffix: string): string;
  /** Instruments whose names are relative to `austa_<package>_`. */
  packageInstruments(packageName: string): PackageInstruments;
  /** Zeroes every instrument obtained through this object. Bound handles stay valid. */
  reset(): void;
}

type AnyInstrument = CounterInstrument<string> | GaugeInstrument<string> | HistogramInstrument<string>;

interface Existing {
  [INSTRUMENT_MARKER]?: unknown;
  type?: unknown;
  labelNames?: unknown;
  buckets?: unknown;
}

const OVERFLOW_LABEL_NAMES = Object.freeze(['metric'] as const);

function describeList(values: readonly unknown[]): string {
  return `[${values.map(String).join(', ')}]`;
}

function sameSet(left: readonly string[], right: readonly string[]): boolean {
  if (left.length !== right.length) return false;
  const set = new Set(left);
  return right.every((value) => set.has(value));
}

function checkExisting(
  existing: unknown,
  name: string,
  type: InstrumentType,
  labelNames: readonly string[],
  buckets: readonly number[] | undefined,
): void {
  const found = existing as Existing;
  if (typeof existing !== 'object' || existing === null || found[INSTRUMENT_MARKER] !== true) {
    throw new MetricConflictError(
      // Stryker disable next-line OptionalChaining: found is an object here.
      `Metric "${name}" is already registered by something other than @austa/metrics (a prom-client ${String(found?.type ?? 'metric')}); pick another name or another registry`,
      { metricName: name },
    );
  }
  if (found.type !== type) {
    throw new MetricConflictError(
      `Metric "${name}" already exists as a ${String(found.type)}; cannot get it as a ${type}`,
      { metricName: name },
    );
  }
  const existingLabels = Array.isArray(found.labelNames) ? (found.labelNames as string[]) : [];
  if (!sameSet(existingLabels, labelNames)) {
    throw new MetricConflictError(
      `Metric "${name}" already exists with label names ${describeList(existingLabels)}; requested ${describeList(labelNames)}`,
      { metricName: name },
    );
  }
  if (buckets !== undefined) {
    const existingBuckets = Array.isArray(found.buckets) ? (found.buckets as number[]) : [];
    if (
      existingBuckets.length !== buckets.length ||
      existingBuckets.some((bound, i) => bound !== buckets[i])
    ) {
      throw new MetricConflictError(
        `Metric "${name}" already exists with buckets ${describeList(existingBuckets)}; requested ${describeList(buckets)}`,
        { metricName: name },
      );
    }
  }
}

/**
 * Creates the metrics object every `@austa` package accepts as its `metrics` option.
 * It owns a new prom-client `Registry` unless you pass one.
 * @example
 * const metrics = createMetrics({ defaultLabels: { service: 'care-api' } });
 * const redis = createRedisClient(options, { metrics });
 * http.createServer(metrics.handler).listen(9464);
 */
export function createMetrics(options: CreateMetricsOptions = {}): Metrics {
  const registry: MetricsRegistry = options.registry ?? new Registry();
  const prefix = normalizePrefix(options.prefix);
  const defaultMaxSeries = validateMaxSeries(options.maxSeries ?? DEFAULT_MAX_SERIES, 'createMetrics');

  let defaultLabels: Record<string, string> | undefined;
  if (options.defaultLabels !== undefined) {
    defaultLabels = {};
    for (const [labelName, value] of Object.entries(options.defaultLabels)) {
      validateLabelName(labelName, 'defaultLabels');
      if (typeof value !== 'string') {
        throw new InvalidMetricError(`Default label "${labelName}" must be a string, got ${typeof value}`);
      }
      defaultLabels[labelName] = value;
    }
  }

  const handedOut = new Set<AnyInstrument>();

  function getOrCreate<T extends AnyInstrument>(
    type: InstrumentType,
    name: string,
    labelNames: readonly string[],
    buckets: readonly number[] | undefined,
    create: () => T,
  ): T {
    const existing: unknown = registry.getSingleMetric(name);
    let instrument: T;
    if (existing === undefined) {
      instrument = create();
      // Our instruments implement the subset of prom-client's metric interface that the
      // registry calls (name, help, type, aggregator, get, reset); the cast is for its types.
      registry.registerMetric(instrument as unknown as PromMetric);
    } else {
      checkExisting(existing, name, type, labelNames, buckets);
      instrument = existing as T;
    }
    handedOut.add(instrument);
    return instrument;
  }

  const overflow = getOrCreate(
    'counter',
    CARDINALITY_OVERFLOW_METRIC,
    OVERFLOW_LABEL_NAMES,
    undefined,
    () => {
      return new CounterInstrument(
        {
          name: CARDINALITY_OVERFLOW_METRIC,
          help: 'Observations recorded under label values "other" because the metric reached its cap on label combinations.',
          labelNames: OVERFLOW_LABEL_NAMES,
          // Bounded by the number of instruments, and it must never fold into itself.
          maxSeries: Number.POSITIVE_INFINITY,
          aggregator: 'sum',
        },
        // Stryker disable next-line ObjectLiteral: an absent property reads as undefined too.
        { overflowCounter: undefined },
      );
    },
  );
  // Only now that nothing can throw does the registry itself change.
  if (defaultLabels !== undefined) registry.setDefaultLabels(defaultLabels);
  if (options.collectDefaultMetrics) {
    const config = options.collectDefaultMetrics === true ? {} : options.collectDefaultMetrics;
    // prom-client throws on a second registration; two Metrics objects may share a registry.
    if (registry.getSingleMetric(`${config.prefix ?? ''}process_cpu_user_seconds_total`) === undefined) {
      collectProcessMetrics({ ...config, register: registry });
    }
  }

  const context: InstrumentContext = {
    overflowCounter: (metricName) => overflow.bind({ metric: metricName }),
  };

  function prepare<L extends string>(options: InstrumentOptions<L>, type: InstrumentType, fullName: string) {
    validateMetricName(fullName, type);
    validateHelp(options.help, fullName);
    return {
      name: fullName,
      help: options.help,
      labelNames: validateLabelNames(options.labelNames, fullName),
      maxSeries: validateMaxSeries(options.maxSeries ?? defaultMaxSeries, `metric "${fullName}"`),
    };
  }

  function counterNamed<L extends string>(options: CounterOptions<L>, fullName: string): Counter<L> {
    const definition = prepare(options, 'counter', fullName);
    return getOrCreate(
      'counter',
      fullName,
      definition.labelNames,
      undefined,
      () => new CounterInstrument<L>({ ...definition, aggregator: 'sum' }, context),
    ) as CounterInstrument<L>;
  }

  function gaugeNamed<L extends string>(options: GaugeOptions<L>, fullName: string): Gauge<L> {
    const definition = prepare(options, 'gauge', fullName);
    const aggregator = options.aggregator ?? 'sum';
    if (!['sum', 'first', 'min', 'max', 'average', 'omit'].includes(aggregator)) {
      throw new InvalidMetricError(`Invalid aggregator "${String(aggregator)}" for "${fullName}"`, {
        metricName: fullName,
      });
    }
    return getOrCreate(
      'gauge',
      fullName,
      definition.labelNames,
      undefined,
      () => new GaugeInstrument<L>({ ...definition, aggregator }, context),
    ) as GaugeInstrument<L>;
  }

  function histogramNamed<L extends string>(
    options: HistogramOptions<L> & { partitionBy?: L; labelBudgets?: Partial<Record<L, number>> },
    fullName: string,
  ): Histogram<L> {
    const definition = prepare(options, 'histogram', fullName);
    const buckets = validateBuckets(options.buckets ?? defaultBuckets(fullName), fullName);
    const { partitionBy, labelBudgets } = options;
    return getOrCreate(
      'histogram',
      fullName,
      definition.labelNames,
      buckets,
      () =>
        new HistogramInstrument<L>(
          {
            ...definition,
            buckets,
            aggregator: 'sum',
            ...(partitionBy ? { partitionBy } : {}),
            ...(labelBudgets ? { labelBudgets } : {}),
          },
          context,
        ),
    ) as HistogramInstrument<L>;
  }

  const handler = createMetricsHandler(registry);

  const metrics: Metrics = {
    registry,
    prefix,
    maxSeries: defaultMaxSeries,
    get contentType() {
      return registry.contentType;
    },
    handler,
    text: () => registry.metrics(),
    counter(options) {
      assertOptions(options, 'counter');
      return counterNamed(options, prefix + options.name);
    },
    gauge(options) {
      assertOptions(options, 'gauge');
      return gaugeNamed(options, prefix + options.name);
    },
    histogram(options) {
      assertOptions(options, 'histogram');
      return histogramNamed(options, prefix + options.name);
    },
    operationDuration() {
      return histogramNamed(OPERATION_DURATION_DEFINITION, DB_CLIENT_OPERATION_DURATION);
    },
    name: metricName,
    packageInstruments(packageName) {
      return packageInstrumentsOf(metrics, packageName);
    },
    reset() {
      for (const instrument of handedOut) instrument.reset();
    },
  };
  return Object.freeze(metrics);
}
