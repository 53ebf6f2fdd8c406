import {
  Instrument,
  type InstrumentContext,
  type InstrumentDefinition,
  type InstrumentInfo,
  type MetricSample,
  type MetricSnapshot,
} from './instrument.js';
import type { LabelValues, SeriesLabels } from './labels.js';
import { type BoundCounter, CounterSeries, OverflowCounter } from './series.js';

/** A counter: a value that only goes up. Get one from `metrics.counter()`. */
export interface Counter<L extends string = string> extends InstrumentInfo<L, 'counter'> {
  /**
   * Returns the series for one label combination. Bind once (at construction) and keep
   * the handle: `inc()` on it is a plain addition.
   * @example
   * const hits = requests.bind({ cache: 'sessions', result: 'hit' });
   * hits.inc();
   */
  bind(labels?: LabelValues<L>): BoundCounter;
  /** Adds `amount` (default 1) to the series for `labels`, looked up in a map on each call. */
  inc(labels: LabelValues<L>, amount?: number): void;
}

export class CounterInstrument<L extends string>
  extends Instrument<L, CounterSeries, BoundCounter>
  implements Counter<L>
{
  readonly type = 'counter' as const;

  constructor(definition: InstrumentDefinition<L>, context: InstrumentContext) {
    super(definition, context);
    this.initialize();
  }

  inc(labels: LabelValues<L>, amount?: number): void {
    this.bind(labels).inc(amount);
  }

  async get(): Promise<MetricSnapshot> {
    const values: MetricSample[] = [];
    for (const series of this.series.all) values.push({ value: series.value, labels: series.labels });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  protected newSeries(labels: SeriesLabels): CounterSeries {
    return new CounterSeries(labels);
  }

  protected zero(series: CounterSeries): void {
    series.value = 0;
  }

  protected wrapOverflow(target: CounterSeries, folded: BoundCounter): BoundCounter {
    return new OverflowCounter(target, folded);
  }
}
