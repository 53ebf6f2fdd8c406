import { createTestClient, type RedisTopology, redisTargets } from '@austa/test-env/vitest';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { type Cache, type CacheOptions, createCache } from '../src/index.js';

export const silent = { warn: () => {} };

/** The error code a promise rejects with, or 'resolved'. */
export async function codeOf(promise: Promise<unknown> | (() => Promise<unknown>)): Promise<string> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
    return 'resolved';
  } catch (error) {
    return (error as { code?: string }).code ?? `uncoded: ${(error as Error).message}`;
  }
}

export async function eventually<T>(
  check: () => Promise<T> | T,
  accept: (value: T) => boolean,
  timeoutMs: number,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await check();
  while (!accept(last)) {
    if (Date.now() > deadline) return last;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    last = await check();
  }
  return last;
}

/** Settles within `ms` or reports the call as hanging. */
export function bounded<T>(promise: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<'hung'>((resolve) => {
      timer = setTimeout(() => resolve('hung'), ms);
    }),
  ]);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every key under `prefix` (SCAN of every master), for "nothing was written" checks. */
export async function keysUnder(client: Redis | Cluster, prefix: string): Promise<string[]> {
  const { scanKeys, escapeGlob } = await import('@austa/redis-cluster');
  const keys: string[] = [];
  for await (const key of scanKeys(client, `${escapeGlob(prefix)}*`)) keys.push(key);
  return [...new Set(keys)].sort();
}

/** A test client for a topology, plus caches built on it that the suite closes. */
export function suiteFor(topology: RedisTopology, redisOptions: RedisOptions = {}) {
  const client = createTestClient(redisTargets(), topology, redisOptions);
  const caches: Cache[] = [];
  const clients: Array<Redis | Cluster> = [client];
  return {
    client,
    make(
      options: Partial<CacheOptions> & { namespace: string; prefix: string },
      redis: Redis | Cluster = client,
    ) {
      const cache = createCache({ redis, defaultTtlSeconds: 60, logger: silent, ...options });
      caches.push(cache);
      return cache;
    },
    /** A second, independent connection (another "process"). */
    otherClient(options: RedisOptions = {}) {
      const other = createTestClient(redisTargets(), topology, options);
      clients.push(other);
      return other;
    },
    async close() {
      await Promise.all(caches.splice(0).map((cache) => cache.close()));
      await Promise.all(clients.splice(1).map((other) => other.quit().catch(() => undefined)));
    },
  };
}

/**
 * A getOrSet whose factory waits for `release`: resolves once the factory has started, so the caller can change the
 * key (here or elsewhere) while it computes.
 */
export async function heldGetOrSet(cache: Cache, key: string) {
  let release: (value: string) => void = () => {};
  let started = false;
  const result = cache.getOrSet(
    key,
    () =>
      new Promise<string>((resolve) => {
        started = true;
        release = resolve;
      }),
  );
  await eventually(
    () => started,
    (value) => value,
    2000,
    5,
  );
  return { result, release: (value: string) => release(value) };
}
