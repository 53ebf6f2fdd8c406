import type { Metrics } from '@austa/metrics';
import type { Cluster, Redis } from 'ioredis';
import { errorType } from './error-type.js';

/** Set on every client (and connection) this package instruments; `Symbol.for` so duplicate installs agree. */
export const INSTRUMENTED = Symbol.for('@austa/redis-cluster.instrumented');

/** True for a client built by `createRedisClient` with metrics: it already records every command it sends. */
export function isInstrumented(client: Redis | Cluster): boolean {
  return (client as unknown as Record<symbol, unknown>)[INSTRUMENTED] === true;
}

export interface CommandTimer {
  /**
   * Runs one Redis round trip and records it in `db_client_operation_duration_seconds` under `command` (the Redis
   * command, lower case: `evalsha`, `get`), with its outcome; a no-op wrapper when there is nothing to record.
   */
  time<T>(command: string, run: () => Promise<T>): Promise<T>;
}

const passThrough: CommandTimer = { time: (_command, run) => run() };

/**
 * How a store (session, cache, rate limiter…) gets its Redis latency into the shared histogram with any ioredis
 * client: a client from `createRedisClient` with metrics records every command already, so the timer records nothing
 * and costs one call; a plain ioredis client gets its round trips timed here. Without metrics it does nothing.
 */
export function commandTimer(client: Redis | Cluster, metrics: Metrics | undefined): CommandTimer {
  if (metrics === undefined || isInstrumented(client)) return passThrough;
  const duration = metrics.operationDuration();
  const ok = new Map<string, { observe(value: number): void }>();
  const failed = new Map<string, { observe(value: number): void }>();
  const series = (cache: typeof ok, command: string, type: string) => {
    const key = type === '' ? command : `${command}\u0000${type}`;
    let bound = cache.get(key);
    if (bound === undefined) {
      bound = duration.bind({ db_system_name: 'redis', db_operation_name: command, error_type: type });
      cache.set(key, bound);
    }
    return bound;
  };
  return {
    async time(command, run) {
      const started = performance.now();
      try {
        const result = await run();
        series(ok, command, '').observe((performance.now() - started) / 1000);
        return result;
      } catch (error) {
        series(failed, command, errorType(error)).observe((performance.now() - started) / 1000);
        throw error;
      }
    },
  };
}
