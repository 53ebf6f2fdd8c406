export type { DbOperationLabel, DbSystemName } from './constants.js';
export {
  BUCKETS,
  CARDINALITY_OVERFLOW_METRIC,
  DB_CLIENT_OPERATION_DURATION,
  DB_OPERATION_LABEL_NAMES,
  DB_SYSTEM,
  DEFAULT_MAX_SERIES,
  LABEL,
  OVERFLOW_LABEL_VALUE,
  PACKAGE_METRIC_PREFIX,
} from './constants.js';
export type { Counter } from './counter.js';
export type { MetricsErrorCode, MetricsErrorOptions } from './errors.js';
export {
  AustaMetricsError,
  errors,
  InvalidLabelsError,
  InvalidMetricError,
  MetricConflictError,
} from './errors.js';
export type { Gauge, GaugeCollectCallback, GaugeSetter } from './gauge.js';
export type {
  ClusterMetricsSource,
  MetricsHandlerOptions,
  MetricsRequestHandler,
  MetricsSource,
} from './handler.js';
export { createClusterMetricsHandler, createMetricsHandler } from './handler.js';
export type { Histogram } from './histogram.js';
export type { Aggregator, InstrumentInfo } from './instrument.js';
export type { LabelValues } from './labels.js';
export type {
  CounterOptions,
  CreateMetricsOptions,
  DefaultMetricsOptions,
  GaugeOptions,
  HistogramOptions,
  InstrumentOptions,
  Metrics,
  MetricsRegistry,
  PackageInstruments,
} from './metrics.js';
export { createMetrics } from './metrics.js';
export { noopMetrics } from './noop.js';
export type { BoundCounter, BoundGauge, BoundHistogram, NoopSeries } from './series.js';
export { NOOP_SERIES } from './series.js';
export { metricName } from './validation.js';
