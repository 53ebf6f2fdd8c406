import { type BoundCounter, type BoundHistogram, BUCKETS, type Metrics, NOOP_SERIES } from '@austa/metrics';
import { type CommandTimer, commandTimer } from '@austa/redis-cluster';
import type { Cluster, Redis } from 'ioredis';

export const OPERATIONS = [
  'create_session',
  'get_session',
  'update_session',
  'delete_session',
  'extend_session',
  'get_user_sessions',
  'delete_user_sessions',
  'get_session_count',
  'cleanup_expired_sessions',
] as const;
export type Operation = (typeof OPERATIONS)[number];

/** `ok`, `miss` (no such session), `rejected` (bad input: nothing sent), `conflict`, `error` (Redis failed). */
export type Result = 'ok' | 'miss' | 'rejected' | 'conflict' | 'error';
const RESULTS: Result[] = ['ok', 'miss', 'rejected', 'conflict', 'error'];

export interface Instruments {
  readonly enabled: boolean;
  /**
   * Times each Redis round trip into the shared `db_client_operation_duration_seconds` (by Redis command), unless the
   * client records its commands itself (a `createRedisClient` client with metrics).
   */
  readonly redis: CommandTimer;
  record(operation: Operation, result: Result, startedAt: number): void;
  evicted(count: number): void;
}

const UNTIMED: CommandTimer = { time: (_command, run) => run() };
const SILENT: Instruments = { enabled: false, redis: UNTIMED, record() {}, evicted() {} };

/**
 * The store's own series are about sessions (`austa_session_*`: operations by name and outcome, their duration as the
 * caller saw it, evictions); Redis latency goes to the shared histogram under the Redis command's name, as every
 * `@austa` store does, so one dashboard reads them all. Labels come from fixed sets only: never a user id, token or key.
 */
export function createInstruments(metrics: Metrics | undefined, redis: Redis | Cluster): Instruments {
  if (!metrics) return SILENT;
  const session = metrics.packageInstruments('session');
  const operations = session.counter({
    name: 'operations_total',
    help: 'Session store operations by operation and result.',
    labelNames: ['operation', 'result'],
  });
  const evictions = session.counter({
    name: 'evictions_total',
    help: 'Sessions evicted because their user reached maxSessionsPerUser.',
  });
  const duration = session.histogram({
    name: 'operation_duration_seconds',
    help: 'Time of each session store operation as its caller saw it (every Redis round trip of it and the codec), refused input excluded.',
    labelNames: ['operation'],
    buckets: BUCKETS.dbOperationSeconds,
  });
  const counters = new Map<string, BoundCounter>();
  const durations = new Map<Operation, BoundHistogram>();
  for (const operation of OPERATIONS) {
    for (const result of RESULTS)
      counters.set(`${operation}|${result}`, operations.bind({ operation, result }));
    durations.set(operation, duration.bind({ operation }));
  }
  const evictionCounter = evictions.bind({});
  return {
    enabled: true,
    redis: commandTimer(redis, metrics),
    record(operation, result, startedAt) {
      (counters.get(`${operation}|${result}`) ?? NOOP_SERIES).inc();
      // Refused input never reached Redis: its (tiny) time would only dilute the latency of real operations.
      if (result === 'rejected') return;
      (durations.get(operation) ?? NOOP_SERIES).observe((performance.now() - startedAt) / 1000);
    },
    evicted(count) {
      if (count > 0) evictionCounter.inc(count);
    },
  };
}
