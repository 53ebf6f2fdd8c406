import type { Metrics } from '@austa/metrics';
import { createRedisClient, type RedisClient } from '@austa/redis-cluster';
import { redisTargets } from '@austa/test-env/vitest';

export type Topology = 'standalone' | 'cluster';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A client built by @austa/redis-cluster with settings that ride out the test cluster's failovers
 * (cluster-node-timeout 2000 ms). No metrics: the limiter records its own.
 */
export function houseClient(
  topology: Topology,
  extra: { commandTimeoutMs?: number; name?: string } = {},
): RedisClient {
  const targets = redisTargets();
  const common = {
    name: extra.name ?? 'ratelimit',
    commandTimeoutMs: extra.commandTimeoutMs ?? 2000,
  };
  return topology === 'cluster'
    ? createRedisClient(
        {
          ...common,
          cluster: {
            nodes: targets.cluster.nodes,
            clusterNodeTimeoutMs: 2000,
            retryDelayOnFailoverMs: 200,
            maxRedirections: 32,
          },
        },
        { logger: { warn: () => {}, error: () => {} } },
      )
    : createRedisClient(
        { ...common, url: targets.standalone.url },
        { logger: { warn: () => {}, error: () => {} } },
      );
}

/** Polls `check` until `accept` holds or `timeoutMs` passes; returns the last value either way. */
export async function eventually<T>(
  check: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await check();
  while (!accept(last) && Date.now() < deadline) {
    await sleep(intervalMs);
    last = await check();
  }
  return last;
}

/** One sample from the exposition text; 0 when the series does not exist. */
export async function sample(
  metrics: Metrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const text = await metrics.text();
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every(([key, value]) => line.includes(`${key}="${value}"`))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return 0;
}

/** Milliseconds a promise took to settle, and how. */
export async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}
