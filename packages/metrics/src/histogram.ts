import {
  Instrument,
  type InstrumentContext,
  type InstrumentDefinition,
  type InstrumentInfo,
  type MetricSample,
  type MetricSnapshot,
} from './instrument.js';
import type { LabelValues, SeriesLabels } from './labels.js';
import { type BoundCounter, type BoundHistogram, HistogramSeries, OverflowHistogram } from './series.js';

/** A histogram: counts observations in buckets, plus their sum. Get one from `metrics.histogram()`. */
export interface Histogram<L extends string = string> extends InstrumentInfo<L, 'histogram'> {
  /** Upper bounds, in the metric's unit, without `+Inf` (always added). */
  readonly buckets: readonly number[];
  /**
   * Returns the series for one label combination. Bind once and keep the handle:
   * `observe()` on it finds the bucket and adds, with no label hashing.
   * @example
   * const getOk = duration.bind({ db_system_name: 'redis', db_operation_name: 'get', error_type: '' });
   * getOk.observe(0.00021);
   */
  bind(labels?: LabelValues<L>): BoundHistogram;
  /** Records `value` in the series for `labels`, looked up in a map on each call. */
  observe(labels: LabelValues<L>, value: number): void;
}

export interface HistogramDefinition<L extends string> extends InstrumentDefinition<L> {
  buckets: readonly number[];
}

const EMPTY_LABELS: SeriesLabels = Object.freeze({});
const INF_LABELS = Object.freeze({ le: '+Inf' });

export class HistogramInstrument<L extends string>
  extends Instrument<L, HistogramSeries, BoundHistogram>
  implements Histogram<L>
{
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  private readonly bounds: Float64Array;
  // One frozen `{ le }` object per bucket, shared by every series and scrape.
  private readonly bucketLabels: ReadonlyArray<Readonly<{ le: number }>>;

  constructor(definition: HistogramDefinition<L>, context: InstrumentContext) {
    super(definition, context);
    this.buckets = definition.buckets;
    this.bounds = Float64Array.from(definition.buckets);
    this.bucketLabels = definition.buckets.map((le) => Object.freeze({ le }));
    this.initialize();
  }

  observe(labels: LabelValues<L>, value: number): void {
    this.bind(labels).observe(value);
  }

  // Read by Registry.metrics(): bucket samples carry `{ le }` as labels and the series
  // labels as sharedLabels, the layout prom-client's own Histogram uses, so the text is
  // formatted identically (le first) and each series' label string is cached by the registry.
  async getForPromString(): Promise<MetricSnapshot> {
    const values: MetricSample[] = [];
    const bucketName = `${this.name}_bucket`;
    const sumName = `${this.name}_sum`;
    const countName = `${this.name}_count`;
    const bucketLabels = this.bucketLabels;
    for (const series of this.series.all) {
      const shared = series.labels;
      const counts = series.counts;
      let cumulative = 0;
      for (let index = 0; index < bucketLabels.length; index++) {
        cumulative += counts[index]!;
        values.push({
          value: cumulative,
          labels: bucketLabels[index]!,
          sharedLabels: shared,
          metricName: bucketName,
        });
      }
      cumulative += counts[bucketLabels.length]!;
      values.push({ value: cumulative, labels: INF_LABELS, sharedLabels: shared, metricName: bucketName });
      values.push({ value: series.sum, labels: EMPTY_LABELS, sharedLabels: shared, metricName: sumName });
      values.push({ value: cumulative, labels: EMPTY_LABELS, sharedLabels: shared, metricName: countName });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  // Read by getMetricsAsJSON() and so by AggregatorRegistry, which keys samples on
  // `labels` alone: series labels must be merged in.
  async get(): Promise<MetricSnapshot> {
    const snapshot = await this.getForPromString();
    snapshot.values = snapshot.values.map(({ value, labels, sharedLabels, metricName }) => ({
      value,
      labels: { ...labels, ...sharedLabels },
      metricName,
    }));
    return snapshot;
  }

  protected newSeries(labels: SeriesLabels): HistogramSeries {
    return new HistogramSeries(labels, this.bounds);
  }

  protected zero(series: HistogramSeries): void {
    series.counts.fill(0);
    series.sum = 0;
  }

  protected wrapOverflow(target: HistogramSeries, folded: BoundCounter): BoundHistogram {
    return new OverflowHistogram(target, folded);
  }
}
