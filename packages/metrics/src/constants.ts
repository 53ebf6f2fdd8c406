/**
 * Name of the shared database operation histogram: OpenTelemetry's
 * `db.client.operation.duration` (unit `s`) mapped to Prometheus naming.
 * Never prefixed, so one dashboard works for every service.
 */
export const DB_CLIENT_OPERATION_DURATION = 'db_client_operation_duration_seconds';

/** Label names used across `@austa` packages. Reuse them rather than inventing synonyms. */
export const LABEL = Object.freeze({
  /** `db_system_name`: `redis` or `mongodb` (OpenTelemetry `db.system.name`). */
  dbSystemName: 'db_system_name',
  /** `db_operation_name`: the command or operation, lower case (`get`, `evalsha`, `find`). */
  dbOperationName: 'db_operation_name',
  /** `db_collection_name`: the collection (MongoDB) an operation touched; empty where there is none (Redis). */
  dbCollectionName: 'db_collection_name',
  /** `error_type`: empty when the operation succeeded, else a short, low-cardinality class of error. */
  errorType: 'error_type',
  /** `result`: outcome of an operation, e.g. `hit` / `miss`, `allowed` / `denied`, `ok` / `error`. */
  result: 'result',
  /** `operation`: a package-level operation name (`getOrSet`, `checkLimit`). */
  operation: 'operation',
} as const);

/** Label names of {@link DB_CLIENT_OPERATION_DURATION}, in exposition order. */
export const DB_OPERATION_LABEL_NAMES = Object.freeze([
  LABEL.dbSystemName,
  LABEL.dbOperationName,
  LABEL.dbCollectionName,
  LABEL.errorType,
] as const);

/** Label names of {@link DB_CLIENT_OPERATION_DURATION}. */
export type DbOperationLabel = (typeof DB_OPERATION_LABEL_NAMES)[number];

/** Values of the `db_system_name` label. */
export const DB_SYSTEM = Object.freeze({ redis: 'redis', mongodb: 'mongodb' } as const);

/** A value of the `db_system_name` label. */
export type DbSystemName = (typeof DB_SYSTEM)[keyof typeof DB_SYSTEM];

/** Bucket sets, upper bounds in the unit named by the key. */
export const BUCKETS = Object.freeze({
  /**
   * Database operations, in seconds: starts at 0.1 ms because a local Redis answers in
   * 0.1–0.5 ms, and ends at 10 s where client timeouts usually sit.
   */
  dbOperationSeconds: Object.freeze([
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  ]),
  /** Request-level work (HTTP handlers, jobs), in seconds: 1 ms to 10 s. */
  requestSeconds: Object.freeze([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
  /** Payload sizes, in bytes: 64 B to 16 MiB by powers of four. */
  payloadBytes: Object.freeze([64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216]),
} as const);

/** Default cap on label combinations per instrument (see the cardinality guard in the README). */
export const DEFAULT_MAX_SERIES = 500;

/** Label value given to every label of the series that absorbs overflowing label combinations. */
export const OVERFLOW_LABEL_VALUE = 'other';

/**
 * Counter of observations folded into the `other` series, labelled `metric`.
 * Never prefixed, so one alert rule works for every service.
 */
export const CARDINALITY_OVERFLOW_METRIC = 'austa_metrics_cardinality_overflow_total';

/** Prefix of every package metric name built by `metricName()`. */
export const PACKAGE_METRIC_PREFIX = 'austa_';

/** The one definition of the shared database histogram, used by real and no-op metrics alike. */
export const OPERATION_DURATION_DEFINITION = Object.freeze({
  name: DB_CLIENT_OPERATION_DURATION,
  help: 'Duration of database client operations, in seconds (OpenTelemetry db.client.operation.duration).',
  labelNames: DB_OPERATION_LABEL_NAMES,
  buckets: BUCKETS.dbOperationSeconds,
  partitionBy: LABEL.dbSystemName,
});
