// A registered symbol, not a class identity check: two copies of this package
// (duplicate installs, CJS next to ESM) must still recognise each other's errors.
const marker = Symbol.for('@austa/metrics.error');

/** Stable codes carried by every error this package throws. */
export type MetricsErrorCode = 'E_INVALID_METRIC' | 'E_INVALID_LABELS' | 'E_METRIC_CONFLICT';

/** Options shared by the error constructors. */
export interface MetricsErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** The full metric name the error is about, when there is one. */
  metricName?: string;
}

/**
 * Base class of every error thrown by `@austa/metrics`. Match on `code`, or use
 * `AustaMetricsError.isInstance(error)`, which also works across duplicate installs.
 */
export class AustaMetricsError extends Error {
  readonly [marker] = true;
  /** Stable, machine-readable error code. */
  readonly code: MetricsErrorCode;
  /** The full metric name the error is about, when there is one. */
  readonly metricName: string | undefined;

  constructor(code: MetricsErrorCode, message: string, options: MetricsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AustaMetricsError';
    this.code = code;
    this.metricName = options.metricName;
  }

  /** True for any error thrown by any copy of `@austa/metrics`. */
  static isInstance(error: unknown): error is AustaMetricsError {
    return typeof error === 'object' && error !== null && (error as { [marker]?: unknown })[marker] === true;
  }
}

function hasCode(error: unknown, code: MetricsErrorCode): boolean {
  return AustaMetricsError.isInstance(error) && error.code === code;
}

/**
 * A metric name, label name, bucket list, prefix or option breaks the naming rules
 * (Prometheus syntax, `_total` on counters, base units, reserved labels…).
 */
export class InvalidMetricError extends AustaMetricsError {
  declare readonly code: 'E_INVALID_METRIC';

  constructor(message: string, options?: MetricsErrorOptions) {
    super('E_INVALID_METRIC', message, options);
    this.name = 'InvalidMetricError';
  }

  static override isInstance(error: unknown): error is InvalidMetricError {
    return hasCode(error, 'E_INVALID_METRIC');
  }
}

/** Labels passed when binding or observing do not match the instrument's label names. */
export class InvalidLabelsError extends AustaMetricsError {
  declare readonly code: 'E_INVALID_LABELS';

  constructor(message: string, options?: MetricsErrorOptions) {
    super('E_INVALID_LABELS', message, options);
    this.name = 'InvalidLabelsError';
  }

  static override isInstance(error: unknown): error is InvalidLabelsError {
    return hasCode(error, 'E_INVALID_LABELS');
  }
}

/**
 * A metric with the same name already exists in the registry with a different type,
 * label names or buckets, or it was registered by something other than `@austa/metrics`.
 */
export class MetricConflictError extends AustaMetricsError {
  declare readonly code: 'E_METRIC_CONFLICT';

  constructor(message: string, options?: MetricsErrorOptions) {
    super('E_METRIC_CONFLICT', message, options);
    this.name = 'MetricConflictError';
  }

  static override isInstance(error: unknown): error is MetricConflictError {
    return hasCode(error, 'E_METRIC_CONFLICT');
  }
}

/** Every error class of the package, for `instanceof`-free matching. */
export const errors = Object.freeze({
  AustaMetricsError,
  InvalidMetricError,
  InvalidLabelsError,
  MetricConflictError,
});
