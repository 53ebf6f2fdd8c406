import type { SeriesLabels } from './labels.js';

/** A counter series bound to one label combination. Bind once, keep the handle, call `inc`. */
export interface BoundCounter {
  /**
   * Adds `amount` (default 1). Negative, NaN and infinite amounts are dropped: a counter
   * only goes up, and the observe path never throws.
   */
  inc(amount?: number): void;
}

/** A gauge series bound to one label combination. */
export interface BoundGauge {
  /** Sets the value. */
  set(value: number): void;
  /** Adds `amount` (default 1). */
  inc(amount?: number): void;
  /** Subtracts `amount` (default 1). */
  dec(amount?: number): void;
}

/** A histogram series bound to one label combination. */
export interface BoundHistogram {
  /**
   * Records one value in the histogram's unit (seconds for `_seconds` names).
   * NaN and infinite values are dropped rather than poisoning `_sum`.
   */
  observe(value: number): void;
}

/** The no-op handle: every method of every bound series, doing nothing. */
export type NoopSeries = BoundCounter & BoundGauge & BoundHistogram;

/**
 * A frozen handle whose methods do nothing, for packages that prefer
 * `this.hits = metrics ? counter.bind(labels) : NOOP_SERIES` over branching on every call.
 */
export const NOOP_SERIES: NoopSeries = Object.freeze({
  inc(): void {},
  dec(): void {},
  set(): void {},
  observe(): void {},
});

export class CounterSeries implements BoundCounter {
  value = 0;

  constructor(readonly labels: SeriesLabels) {}

  inc(amount = 1): void {
    if (amount >= 0 && amount < Number.POSITIVE_INFINITY) this.value += amount;
  }
}

export class GaugeSeries implements BoundGauge {
  value = 0;

  constructor(readonly labels: SeriesLabels) {}

  set(value: number): void {
    this.value = value;
  }

  inc(amount = 1): void {
    this.value += amount;
  }

  dec(amount = 1): void {
    this.value -= amount;
  }
}

export class HistogramSeries implements BoundHistogram {
  /** Per-bucket counts, not cumulative; the last slot is the `+Inf` bucket. */
  readonly counts: Float64Array;
  sum = 0;

  constructor(
    readonly labels: SeriesLabels,
    private readonly bounds: Float64Array,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    // x - x is 0 for every finite number and NaN for NaN and ±Infinity: one test for both.
    if (value - value !== 0) return;
    const bounds = this.bounds;
    const last = bounds.length;
    let index = 0;
    // A linear scan beats binary search here: most database calls land in the first few
    // buckets, so the loop usually exits after two or three comparisons.
    while (index < last && value > bounds[index]!) index++;
    this.counts[index]! += 1;
    this.sum += value;
  }
}

// Overflow handles forward to the shared `other` series and count each folded
// observation, so the cost of the guard falls only on series that overflowed.

export class OverflowCounter implements BoundCounter {
  constructor(
    private readonly target: BoundCounter,
    private readonly folded: BoundCounter,
  ) {}

  inc(amount?: number): void {
    this.folded.inc();
    this.target.inc(amount);
  }
}

export class OverflowGauge implements BoundGauge {
  constructor(
    private readonly target: BoundGauge,
    private readonly folded: BoundCounter,
  ) {}

  set(value: number): void {
    this.folded.inc();
    this.target.set(value);
  }

  inc(amount?: number): void {
    this.folded.inc();
    this.target.inc(amount);
  }

  dec(amount?: number): void {
    this.folded.inc();
    this.target.dec(amount);
  }
}

export class OverflowHistogram implements BoundHistogram {
  constructor(
    private readonly target: BoundHistogram,
    private readonly folded: BoundCounter,
  ) {}

  observe(value: number): void {
    this.folded.inc();
    this.target.observe(value);
  }
}
