import { type BoundCounter, type BoundHistogram, type Metrics, noopMetrics } from '@austa/metrics';
import { errorType } from '@austa/redis-cluster';
import { STRATEGY_LABELS } from './config.js';

export type Decision = 'allowed' | 'rejected' | 'blocked';
export type FallbackReason = 'timeout' | 'error' | 'deadline';
export type FailurePolicy = 'fail-open' | 'fail-closed' | 'insurance';

const DECISIONS: readonly Decision[] = ['allowed', 'rejected', 'blocked'];

/**
 * The package's instruments, bound once per limiter. Without `metrics` every handle is a no-op, and the limiter
 * skips the clock reads that latency needs.
 */
export class Instruments {
  readonly enabled: boolean;
  private readonly decisions: BoundCounter[];
  private readonly fallbacks: Record<FallbackReason, BoundCounter>;
  private readonly blockCacheHits: BoundCounter;
  private readonly duration;
  private readonly latency = new Map<string, BoundHistogram>();
  private readonly checkOk: BoundHistogram;

  constructor(metrics: Metrics | undefined, limiter: string, policy: FailurePolicy) {
    this.enabled = metrics !== undefined;
    const source = metrics ?? noopMetrics;
    const decisions = source.counter({
      name: source.name('rate-limit', 'decisions_total'),
      help: 'Rate limit decisions by limiter, strategy and result (allowed, rejected, blocked).',
      labelNames: ['limiter', 'strategy', 'result'],
    });
    this.decisions = STRATEGY_LABELS.flatMap((strategy) =>
      DECISIONS.map((result) => decisions.bind({ limiter, strategy, result })),
    );
    const fallbacks = source.counter({
      name: source.name('rate-limit', 'fallbacks_total'),
      help: 'Checks answered by the failure policy instead of Redis, by policy and reason (timeout, error, deadline).',
      labelNames: ['limiter', 'policy', 'reason'],
    });
    this.fallbacks = {
      timeout: fallbacks.bind({ limiter, policy, reason: 'timeout' }),
      error: fallbacks.bind({ limiter, policy, reason: 'error' }),
      deadline: fallbacks.bind({ limiter, policy, reason: 'deadline' }),
    };
    this.blockCacheHits = source
      .counter({
        name: source.name('rate-limit', 'block_cache_hits_total'),
        help: 'Checks answered from the in-memory cache of blocked keys, without a Redis call.',
        labelNames: ['limiter'],
      })
      .bind({ limiter });
    this.duration = source.operationDuration();
    this.checkOk = this.duration.bind({
      db_system_name: 'redis',
      db_operation_name: 'evalsha',
      error_type: '',
    });
  }

  /** A check script that answered: the hot path, one bound series. */
  checkAnswered(seconds: number): void {
    this.checkOk.observe(seconds);
  }

  decision(strategy: number, result: number): void {
    (this.decisions[strategy * 3 + result] as BoundCounter).inc();
  }

  fallback(reason: FallbackReason): void {
    this.fallbacks[reason].inc();
  }

  blockCacheHit(): void {
    this.blockCacheHits.inc();
  }

  /** Records one Redis operation in the shared `db_client_operation_duration_seconds` histogram. */
  redis(operation: string, seconds: number, error?: unknown): void {
    const type = error === undefined ? '' : error === 'timeout' ? 'timeout' : errorType(error);
    const id = `${operation}\u0000${type}`;
    let series = this.latency.get(id);
    if (series === undefined) {
      series = this.duration.bind({
        db_system_name: 'redis',
        db_operation_name: operation,
        error_type: type,
      });
      this.latency.set(id, series);
    }
    series.observe(seconds);
  }
}

export const RESULT_INDEX: Record<Decision, number> = { allowed: 0, rejected: 1, blocked: 2 };
