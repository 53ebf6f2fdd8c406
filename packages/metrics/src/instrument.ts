import { CARDINALITY_OVERFLOW_METRIC, OVERFLOW_LABEL_VALUE } from './constants.js';
import { buildSeriesLabels, type LabelValues, type SeriesLabels } from './labels.js';
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
  /**
   * A label whose values each get their own `maxSeries` budget and are never folded while they fit in
   * `MAX_PARTITIONS`: the shared database histogram is partitioned by `db_system_name`, so one client library cannot
   * use up another's series.
   */
  partitionBy?: L;
  /**
   * Distinct values each label may take (per partition) before its new values are recorded as `other`, so one runaway
   * label (made-up error codes, say) folds alone and cannot use up the series the other labels need.
   */
  labelBudgets?: Partial<Record<L, number>>;
}

/** Distinct values of the partition label, past which new values fold into `other` too. */
export const MAX_PARTITIONS = 16;

interface Partition {
  count: number;
  /** Values seen per label, for folding only the labels whose values are new. */
  seen: Map<string, Set<string>>;
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
  private readonly partitionBy: L | undefined;
  private readonly labelBudgets: Partial<Record<L, number>> | undefined;
  private readonly partitions = new Map<string, Partition>();
  private readonly overflowHandles = new Map<Series, Bound>();
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
    this.partitionBy = definition.partitionBy;
    this.labelBudgets = definition.labelBudgets;
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

  // Runs only when a combination is seen for the first time, never on the observe path.
  protected createSeries(labels: LabelValues<L> | undefined): Bound {
    let seriesLabels = buildSeriesLabels(this.labelNames, labels, this.metricName);
    // Stryker disable next-line StringLiteral: the key of the one partition is any constant; every label has a value.
    const key = this.partitionBy === undefined ? '' : (seriesLabels[this.partitionBy] ?? '');
    const partition = this.partitions.get(key);
    if (partition === undefined && this.partitionBy !== undefined && this.partitions.size >= MAX_PARTITIONS) {
      return this.fold(seriesLabels, undefined);
    }
    let overBudget = false;
    // maxSeries: Infinity turns the whole guard off, label budgets included.
    if (
      partition !== undefined &&
      this.labelBudgets !== undefined &&
      this.maxSeries !== Number.POSITIVE_INFINITY
    ) {
      const budgeted = this.withinBudgets(seriesLabels, partition);
      if (budgeted !== seriesLabels) {
        overBudget = true;
        seriesLabels = budgeted;
        const existing = this.series.get(seriesLabels);
        if (existing !== undefined) return this.overflowHandle(existing);
      }
    }
    if (partition === undefined || partition.count < this.maxSeries) {
      const series = this.add(seriesLabels, partition ?? this.newPartition(key));
      return overBudget ? this.overflowHandle(series) : series;
    }
    return this.fold(seriesLabels, partition);
  }

  /** The labels with every value that is new and over its label's budget replaced by `other`. */
  private withinBudgets(labels: SeriesLabels, partition: Partition): SeriesLabels {
    let result: Record<string, string> | undefined;
    for (const name of this.labelNames) {
      // Stryker disable next-line OptionalChaining: only called when there are budgets.
      const budget = this.labelBudgets?.[name];
      if (budget === undefined) continue;
      const value = labels[name] ?? '';
      // An empty value means the label is absent ("no error"): one value, never a cardinality risk.
      if (value === '') continue;
      const seen = partition.seen.get(name);
      if (seen === undefined || seen.has(value) || seen.size < budget) continue;
      result ??= { ...labels };
      result[name] = OVERFLOW_LABEL_VALUE;
    }
    return result === undefined ? labels : Object.freeze(result);
  }

  private overflowHandle(target: Series): Bound {
    let handle = this.overflowHandles.get(target);
    if (handle === undefined) {
      handle = this.wrapOverflow(target, this.folded());
      this.overflowHandles.set(target, handle);
    }
    return handle;
  }

  private newPartition(key: string): Partition {
    const partition: Partition = {
      count: 0,
      seen: new Map(this.labelNames.map((name) => [name, new Set()])),
    };
    this.partitions.set(key, partition);
    return partition;
  }

  private add(labels: SeriesLabels, partition: Partition): Series {
    const series = this.newSeries(labels);
    this.series.add(labels, series);
    partition.count += 1;
    // Stryker disable next-line OptionalChaining,StringLiteral: every partition has a set for every label, and every label a value.
    for (const name of this.labelNames) partition.seen.get(name)?.add(labels[name] ?? '');
    return series;
  }

  /**
   * Past the cap, only the labels whose values are new to the partition become `other`; values already in use are
   * kept, so one runaway label (an unknown command name, say) folds alone and the others stay readable. A new mix
   * of known values is still created up to twice the cap; past that every label but the partition's folds.
   */
  private fold(labels: SeriesLabels, partition: Partition | undefined): Bound {
    const folded: Record<string, string> = {};
    let changed = false;
    for (const name of this.labelNames) {
      // Stryker disable next-line StringLiteral: series labels have a value for every label.
      const value = labels[name] ?? '';
      // Stryker disable OptionalChaining,BooleanLiteral: a partition has a set for every label.
      const keep =
        partition === undefined
          ? false
          : name === this.partitionBy || (partition.seen.get(name)?.has(value) ?? false);
      // Stryker restore OptionalChaining,BooleanLiteral
      folded[name] = keep ? value : OVERFLOW_LABEL_VALUE;
      if (!keep) changed = true;
    }
    if (!changed && partition !== undefined && partition.count < 2 * this.maxSeries) {
      return this.add(labels, partition);
    }
    if (!changed) {
      for (const name of this.labelNames) if (name !== this.partitionBy) folded[name] = OVERFLOW_LABEL_VALUE;
    }
    const frozen = Object.freeze(folded);
    let target = this.series.get(frozen);
    if (target === undefined) {
      target = this.newSeries(frozen);
      this.series.add(frozen, target);
    }
    return this.overflowHandle(target);
  }

  /** The overflow counter's handle for this metric; warns the first time this metric overflows. */
  protected folded(): BoundCounter {
    if (this.foldedHandle === undefined) {
      // Stryker disable next-line OptionalChaining: only the overflow counter has none, and its cap is Infinity.
      this.foldedHandle = this.context.overflowCounter?.(this.metricName) ?? NOOP_SERIES;
      process.emitWarning(
        `Metric "${this.metricName}" reached its cap of ${this.maxSeries} label combinations. New label values are recorded as "${OVERFLOW_LABEL_VALUE}" (values already in use are kept) and counted in ${CARDINALITY_OVERFLOW_METRIC}. Remove unbounded label values or raise maxSeries.`,
        { type: 'AustaMetricsWarning', code: 'AUSTA_METRICS_CARDINALITY' },
      );
    }
    return this.foldedHandle;
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
