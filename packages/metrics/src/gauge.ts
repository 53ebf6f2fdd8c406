import {
  Instrument,
  type InstrumentContext,
  type InstrumentDefinition,
  type InstrumentInfo,
  type MetricSample,
  type MetricSnapshot,
} from './instrument.js';
import { buildSeriesLabels, type LabelValues, overflowLabels, type SeriesLabels } from './labels.js';
import { type BoundCounter, type BoundGauge, GaugeSeries, OverflowGauge } from './series.js';
import { SeriesIndex } from './series-index.js';

/** Sets a series' value from inside an `onCollect` callback. */
export type GaugeSetter<L extends string> = (labels: LabelValues<L>, value: number) => void;

/**
 * Runs at scrape time and reports current values through `set`. May be async; a callback
 * that throws or rejects is skipped for that scrape (with a one-time process warning).
 */
export type GaugeCollectCallback<L extends string> = (set: GaugeSetter<L>) => void | Promise<void>;

/** A gauge: a value that goes up and down. Get one from `metrics.gauge()`. */
export interface Gauge<L extends string = string> extends InstrumentInfo<L, 'gauge'> {
  /** Returns the series for one label combination. Bind once and keep the handle. */
  bind(labels?: LabelValues<L>): BoundGauge;
  /** Sets the series for `labels`, looked up in a map on each call. */
  set(labels: LabelValues<L>, value: number): void;
  /** Adds `amount` (default 1) to the series for `labels`. */
  inc(labels: LabelValues<L>, amount?: number): void;
  /** Subtracts `amount` (default 1) from the series for `labels`. */
  dec(labels: LabelValues<L>, amount?: number): void;
  /**
   * Registers a callback that reports values when the registry is read (a scrape,
   * `metrics.text()`). Series set by callbacks are rebuilt from scratch on every read, so
   * a label combination a callback stops reporting disappears. Where a callback and a bound
   * handle report the same labels, the callback wins. Returns a function that unregisters
   * the callback.
   * @example
   * const stop = connections.onCollect((set) => {
   *   set({ role: 'master', status: 'ready' }, pool.readyCount());
   * });
   * // later, on close():
   * stop();
   */
  onCollect(callback: GaugeCollectCallback<L>): () => void;
  /** Zeroes every bound series; handles stay valid. Callbacks stay registered. */
  reset(): void;
}

interface Collector<L extends string> {
  callback: GaugeCollectCallback<L>;
  warned: boolean;
}

export class GaugeInstrument<L extends string>
  extends Instrument<L, GaugeSeries, BoundGauge>
  implements Gauge<L>
{
  readonly type = 'gauge' as const;
  private readonly collectors = new Set<Collector<L>>();

  constructor(definition: InstrumentDefinition<L>, context: InstrumentContext) {
    super(definition, context);
    this.initialize();
  }

  set(labels: LabelValues<L>, value: number): void {
    this.bind(labels).set(value);
  }

  inc(labels: LabelValues<L>, amount?: number): void {
    this.bind(labels).inc(amount);
  }

  dec(labels: LabelValues<L>, amount?: number): void {
    this.bind(labels).dec(amount);
  }

  onCollect(callback: GaugeCollectCallback<L>): () => void {
    if (typeof callback !== 'function') throw new TypeError('onCollect expects a function');
    const collector: Collector<L> = { callback, warned: false };
    this.collectors.add(collector);
    return () => {
      this.collectors.delete(collector);
    };
  }

  async get(): Promise<MetricSnapshot> {
    const collected = this.collectors.size === 0 ? undefined : await this.collect();
    const values: MetricSample[] = [];
    for (const series of this.series.all) {
      if (collected?.get(series.labels) === undefined) {
        values.push({ value: series.value, labels: series.labels });
      }
    }
    if (collected !== undefined) {
      for (const series of collected.all) values.push({ value: series.value, labels: series.labels });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  // Each read builds its own index, so two overlapping scrapes cannot see each other's
  // half-collected values. A callback's values are applied only once it has finished,
  // so one that fails part-way contributes nothing rather than a partial set.
  private async collect(): Promise<SeriesIndex<GaugeSeries>> {
    const reports = await Promise.all(
      [...this.collectors].map(async (collector) => {
        const report: Array<[SeriesLabels, number]> = [];
        try {
          await collector.callback((labels, value) => {
            // Checked here so that a bad label fails the callback, like any other throw.
            report.push([buildSeriesLabels(this.labelNames, labels, this.metricName), value]);
          });
          return report;
        } catch (error) {
          if (!collector.warned) {
            collector.warned = true;
            process.emitWarning(
              `An onCollect callback of gauge "${this.metricName}" failed; its values are left out of the scrape: ${String(error)}`,
              { type: 'AustaMetricsWarning', code: 'AUSTA_METRICS_COLLECT' },
            );
          }
          return [];
        }
      }),
    );
    const collected = new SeriesIndex<GaugeSeries>(this.labelNames);
    let other: GaugeSeries | undefined;
    for (const report of reports) {
      for (const [labels, value] of report) {
        let series = collected.get(labels);
        if (series === undefined) {
          const full = collected.size + this.series.size >= this.maxSeries;
          if (full && this.series.get(labels) === undefined) {
            // Past the cap, callback values are summed into `other`: for counts of things
            // (connections, keys) the total stays right even when the breakdown is lost.
            this.folded().inc();
            if (other === undefined) {
              const labelsOfOther = overflowLabels(this.labelNames);
              other = new GaugeSeries(labelsOfOther);
              collected.add(labelsOfOther, other);
            }
            other.value += value;
            continue;
          }
          series = new GaugeSeries(labels);
          collected.add(labels, series);
        }
        series.value = value;
      }
    }
    return collected;
  }

  protected newSeries(labels: SeriesLabels): GaugeSeries {
    return new GaugeSeries(labels);
  }

  protected zero(series: GaugeSeries): void {
    series.value = 0;
  }

  protected wrapOverflow(target: GaugeSeries, folded: BoundCounter): BoundGauge {
    return new OverflowGauge(target, folded);
  }
}
