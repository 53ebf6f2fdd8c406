import { OVERFLOW_LABEL_VALUE } from './constants.js';
import { InvalidLabelsError } from './errors.js';

/**
 * Label values for an instrument whose label names are `L`. A label left out is
 * exported with an empty value, which Prometheus treats the same as an absent label
 * (this is how `error_type` says "no error"). Numbers are exported as their decimal string.
 */
export type LabelValues<L extends string> = { readonly [K in L]?: string | number };

/** The frozen label object of one series, in the instrument's label-name order. */
export type SeriesLabels = Readonly<Record<string, string>>;

type LabelBag = Readonly<Record<string, unknown>>;

/** The exported string of a label value: numbers in decimal, a missing label as `''`. */
export function labelValue(value: unknown): string {
  // Stryker disable next-line StringLiteral: String() of a string is itself; this is only the fast path.
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  return String(value);
}

/**
 * Checks a label combination and returns its frozen series labels. Runs only when a new
 * series is created, never on the observe path.
 */
export function buildSeriesLabels(
  labelNames: readonly string[],
  labels: object | undefined,
  metricName: string,
): SeriesLabels {
  const bag = (labels ?? {}) as LabelBag;
  if (typeof bag !== 'object') {
    throw new InvalidLabelsError(`Labels for "${metricName}" must be an object`, { metricName });
  }
  for (const name of Object.keys(bag)) {
    if (!labelNames.includes(name)) {
      throw new InvalidLabelsError(
        `Unknown label "${name}" for "${metricName}"; its label names are [${labelNames.join(', ')}]`,
        { metricName },
      );
    }
  }
  const result: Record<string, string> = {};
  for (const name of labelNames) {
    const value = bag[name];
    const type = typeof value;
    if (
      value !== undefined &&
      value !== null &&
      type !== 'string' &&
      type !== 'number' &&
      type !== 'boolean'
    ) {
      throw new InvalidLabelsError(
        `Label "${name}" of "${metricName}" must be a string, number or boolean, got ${type}`,
        { metricName },
      );
    }
    result[name] = labelValue(value);
  }
  return Object.freeze(result);
}

/** The labels of the series that absorbs overflowing combinations: every value is `other`. */
export function overflowLabels(labelNames: readonly string[]): SeriesLabels {
  const result: Record<string, string> = {};
  for (const name of labelNames) result[name] = OVERFLOW_LABEL_VALUE;
  return Object.freeze(result);
}
