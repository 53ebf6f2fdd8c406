import { CARDINALITY_OVERFLOW_METRIC, OVERFLOW_LABEL_VALUE } from './constants.js';
import { buildSeriesLabels, type LabelValues, overflowLabels, type SeriesLabels } from './labels.js';
import { type BoundCounter, NOOP_SERIES } from './series.js';
import { SeriesIndex } from './series-index.js';
import type { InstrumentType } from './validation.js';

/**
 * Marks objects created by any copy of this package, so get-or-create can tell its
 * own instruments from prom-client metrics registered under the same name.
 */
export const INSTRUMENT_MARKER = Symbol.for('@austa/metrics.instrument');

/** How prom-client aggregates a metric across cluster workers (`AggregatorRegistry`). */
export type Aggregator = 'sum' | 'first' | 'min' | 'max' | 'average' | 'omit';

/** One sample in the shape prom-client's `Registry` and `AggregatorRegistry` read. */
export interface MetricSample {
  value: number;
  labels: Readonly<Record<string, string | number>>;
  /** Set on histogram samples: `<name>_bucket`, `<name>_sum` or `<name>_count`. */
  metricName?: string;
  /** Labels prom-client appends after `labels` when it formats text; see histogram export. */
  sharedLabels?: SeriesLabels;
}

/** A metric family in the shape of prom-client's `MetricObjectWithValues`. */
export interface MetricSnapshot {
  name: string;
  help: string;
  type: InstrumentType;
  aggregator: Aggregator;
  values: MetricSample[];
}

/** What an instrument needs from the `Metrics` object that created it. */
export interface InstrumentContext {
  /** The overflow counter's series for `metricName`; absent for the overflow counter itself. */
  overflowCounter: ((metricName: string) => BoundCounter) | undefined;
}

export interface InstrumentDefinition<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  maxSeries: number;
  aggregator: Aggregator;
}

/**
 * The part of prom-client's metric interface that `Registry` uses: `name`, `help`,
 * `type`, `aggregator`, `get()` and `reset()`; plus the label-bound series store and
 * the cardinality guard shared by all three kinds.
 */
export abstract class Instrument<L extends string, Series extends Bound, Bound> {
  readonly [INSTRUMENT_MARKER] = true;
  abstract readonly type: InstrumentType;
  /**
   * Writable because prom-client's `Registry.metrics()` strips `_total` from counter
   * names in place when it serves OpenMetrics; the definition is kept in `metricName`.
   */
  name: string;
  readonly metricName: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly maxSeries: number;
  readonly aggregator: Aggregator;
  protected readonly series: SeriesIndex<Series>;
  private overflowHandle: Bound | undefined;
  private foldedHandle: BoundCounter | undefined;

  constructor(
    definition: InstrumentDefinition<L>,
    private readonly context: InstrumentContext,
  ) {
    this.name = definition.name;
    this.metricName = definition.name;
    this.help = definition.help;
    this.labelNames = definition.labelNames;
    this.maxSeries = definition.maxSeries;
    this.aggregator = definition.aggregator;
    this.series = new SeriesIndex(definition.labelNames);
  }

  /** Call at the end of subclass constructors: a label-less metric is exported as 0 from the start. */
  protected initialize(): void {
    if (this.labelNames.length === 0) this.bind();
  }

  /** Returns the series for `labels`, creating it on first use. Keep the handle. */
  bind(labels?: LabelValues<L>): Bound {
    return this.series.get(labels) ?? this.createSeries(labels);
  }

  /** Zeroes every series in place, so handles bound earlier keep reporting. */
  reset(): void {
    for (const series of this.series.all) this.zero(series);
  }

  abstract get(): Promise<MetricSnapshot>;

  protected abstract newSeries(labels: SeriesLabels): Series;
  protected abstract zero(series: Series): void;
  protected abstract wrapOverflow(target: Series, folded: BoundCounter): Bound;

  protected createSeries(labels: LabelValues<L> | undefined): Bound {
    const seriesLabels = buildSeriesLabels(this.labelNames, labels, this.metricName);
    if (this.series.size >= this.maxSeries) return this.overflow();
    const series = this.newSeries(seriesLabels);
    this.series.add(seriesLabels, series);
    return series;
  }

  /** The `other` series, created past the cap; its handle is shared by every overflowing combination. */
  protected otherSeries(): Series {
    const labels = overflowLabels(this.labelNames);
    let series = this.series.get(labels);
    if (series === undefined) {
      series = this.newSeries(labels);
      this.series.add(labels, series);
    }
    return series;
  }

  /** The overflow counter's handle for this metric; warns the first time this metric overflows. */
  protected folded(): BoundCounter {
    if (this.foldedHandle === undefined) {
      this.foldedHandle = this.context.overflowCounter?.(this.metricName) ?? NOOP_SERIES;
      process.emitWarning(
        `Metric "${this.metricName}" reached its cap of ${this.maxSeries} label combinations. New combinations are recorded with every label set to "${OVERFLOW_LABEL_VALUE}" and counted in ${CARDINALITY_OVERFLOW_METRIC}. Remove unbounded label values or raise maxSeries.`,
        { type: 'AustaMetricsWarning', code: 'AUSTA_METRICS_CARDINALITY' },
      );
    }
    return this.foldedHandle;
  }

  private overflow(): Bound {
    if (this.overflowHandle === undefined) {
      this.overflowHandle = this.wrapOverflow(this.otherSeries(), this.folded());
    }
    return this.overflowHandle;
  }
}

/** What every instrument exposes about itself; `Counter`, `Gauge` and `Histogram` add their operations. */
export interface InstrumentInfo<L extends string, T extends 'counter' | 'gauge' | 'histogram'> {
  /** Full metric name (with the `prefix` option applied). */
  readonly name: string;
  readonly help: string;
  readonly type: T;
  readonly labelNames: readonly L[];
  /** Label combinations kept before new ones fold into `other`. */
  readonly maxSeries: number;
  /** Zeroes every series; handles stay valid. */
  reset(): void;
}
