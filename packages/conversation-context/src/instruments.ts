import { type BoundCounter, type BoundHistogram, DB_SYSTEM, type Metrics, NOOP_SERIES } from '@austa/metrics';
import { errorType } from '@austa/redis-cluster';
import { ConversationError } from './errors.js';
import { ROLES, type Role } from './message.js';

export const OPERATIONS = [
  'set_context',
  'get_context',
  'add_message',
  'get_recent_messages',
  'update_intent',
  'update_entities',
  'get_user_conversations',
  'delete_context',
  'extend_ttl',
  'get_summary',
  'set_summary',
  'get_stats',
  'cleanup',
  'delete_user_conversations',
] as const;
export type Operation = (typeof OPERATIONS)[number];

/**
 * `ok`, `miss` (no such conversation), `rejected` (bad input or ownership: nothing written), `conflict` (summary
 * version), `error` (Redis failed or stored data could not be decoded).
 */
export type Result = 'ok' | 'miss' | 'rejected' | 'conflict' | 'error';
const RESULTS: readonly Result[] = ['ok', 'miss', 'rejected', 'conflict', 'error'];

export interface Instruments {
  readonly enabled: boolean;
  record(operation: Operation, result: Result, startedAt: number, error?: unknown): void;
  message(role: Role): void;
  trimmed(count: number): void;
  indexFailure(): void;
}

const SILENT: Instruments = { enabled: false, record() {}, message() {}, trimmed() {}, indexFailure() {} };

/**
 * Counters and latency with labels from fixed sets only: operation names, results and roles. Never a conversation
 * id, user id or any content.
 */
export function createInstruments(metrics: Metrics | undefined): Instruments {
  if (!metrics) return SILENT;
  const conversation = metrics.packageInstruments('conversation');
  const operations = conversation.counter({
    name: 'operations_total',
    help: 'Conversation store operations by operation and result.',
    labelNames: ['operation', 'result'],
  });
  const messages = conversation.counter({
    name: 'messages_total',
    help: 'Messages added to conversations, by role.',
    labelNames: ['role'],
  });
  const trims = conversation.counter({
    name: 'trims_total',
    help: 'addMessage calls that trimmed older messages (by count or token budget).',
  });
  const trimmedMessages = conversation.counter({
    name: 'trimmed_messages_total',
    help: 'Messages removed by trimming.',
  });
  const indexFailures = conversation.counter({
    name: 'index_update_failures_total',
    help: 'Per-user index updates that failed after the conversation was written; cleanup() repairs them.',
  });
  const duration = metrics.operationDuration();
  const counters = new Map<Operation, Record<Result, BoundCounter>>();
  const okDurations = new Map<Operation, BoundHistogram>();
  for (const operation of OPERATIONS) {
    counters.set(
      operation,
      Object.fromEntries(RESULTS.map((result) => [result, operations.bind({ operation, result })])) as Record<
        Result,
        BoundCounter
      >,
    );
    okDurations.set(
      operation,
      duration.bind({ db_system_name: DB_SYSTEM.redis, db_operation_name: operation, error_type: '' }),
    );
  }
  const byRole = new Map<Role, BoundCounter>(ROLES.map((role) => [role, messages.bind({ role })]));
  const trimCounter = trims.bind({});
  const trimmedCounter = trimmedMessages.bind({});
  const indexCounter = indexFailures.bind({});
  return {
    enabled: true,
    record(operation, result, startedAt, error) {
      (counters.get(operation)?.[result] ?? NOOP_SERIES).inc();
      if (result === 'rejected') return;
      const seconds = (performance.now() - startedAt) / 1000;
      if (result === 'error') {
        const cause = ConversationError.isInstance(error) ? (error.cause ?? error) : error;
        duration.observe(
          {
            db_system_name: DB_SYSTEM.redis,
            db_operation_name: operation,
            error_type: ConversationError.isInstance(cause) ? cause.code : errorType(cause),
          },
          seconds,
        );
      } else {
        (okDurations.get(operation) ?? NOOP_SERIES).observe(seconds);
      }
    },
    message(role) {
      (byRole.get(role) ?? NOOP_SERIES).inc();
    },
    trimmed(count) {
      if (count <= 0) return;
      trimCounter.inc();
      trimmedCounter.inc(count);
    },
    indexFailure() {
      indexCounter.inc();
    },
  };
}
