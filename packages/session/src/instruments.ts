import { type BoundCounter, type BoundHistogram, DB_SYSTEM, type Metrics, NOOP_SERIES } from '@austa/metrics';
import { errorType } from '@austa/redis-cluster';
import { SessionError } from './errors.js';

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
  record(operation: Operation, result: Result, startedAt: number, error?: unknown): void;
  evicted(count: number): void;
}

const SILENT: Instruments = { enabled: false, record() {}, evicted() {} };

/** Operation counts and latency with labels from fixed sets only: never a user id, token or key. */
export function createInstruments(metrics: Metrics | undefined): Instruments {
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
  const duration = metrics.operationDuration();
  const counters = new Map<string, BoundCounter>();
  const okDurations = new Map<Operation, BoundHistogram>();
  for (const operation of OPERATIONS) {
    for (const result of RESULTS)
      counters.set(`${operation}|${result}`, operations.bind({ operation, result }));
    okDurations.set(
      operation,
      duration.bind({ db_system_name: DB_SYSTEM.redis, db_operation_name: operation, error_type: '' }),
    );
  }
  const evictionCounter = evictions.bind({});
  return {
    enabled: true,
    record(operation, result, startedAt, error) {
      (counters.get(`${operation}|${result}`) ?? NOOP_SERIES).inc();
      if (result === 'rejected') return;
      const seconds = (performance.now() - startedAt) / 1000;
      if (result === 'error') {
        const cause = SessionError.isInstance(error) ? (error.cause ?? error) : error;
        duration.observe(
          {
            db_system_name: DB_SYSTEM.redis,
            db_operation_name: operation,
            error_type: SessionError.isInstance(cause) ? cause.code : errorType(cause),
          },
          seconds,
        );
      } else {
        (okDurations.get(operation) ?? NOOP_SERIES).observe(seconds);
      }
    },
    evicted(count) {
      if (count > 0) evictionCounter.inc(count);
    },
  };
}
