import { spawnSync } from 'node:child_process';
import { createMetrics } from '@austa/metrics';
import { createTestClient, deleteByPrefix, redisTargets, uniquePrefix } from '@austa/test-env/vitest';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createCache } from '../src/index.js';
import { eventually, silent, sleep } from './support.js';

describe('metrics', () => {
  const client = createTestClient(redisTargets(), 'standalone');
  const prefix = uniquePrefix('cache-metrics');
  afterAll(async () => {
    await deleteByPrefix(client, prefix);
    await client.quit();
  });

  it('every instrument, written to, passes promtool check metrics and carries no key or tag', async () => {
    const metrics = createMetrics();
    const options = { prefix, namespace: 'm', defaultTtlSeconds: 60, metrics, logger: silent };
    const reader = createCache({
      ...options,
      redis: client,
      name: 'patients',
      l1: true,
      lock: true,
      graceSeconds: 30,
    });
    const second = createTestClient(redisTargets(), 'standalone');
    const writer = createCache({ ...options, redis: second, name: 'patients', l1: true });
    const dead = new Redis({
      port: 1,
      lazyConnect: true,
      retryStrategy: () => null,
      enableOfflineQueue: false,
    });
    dead.on('error', () => {});
    const down = createCache({ ...options, redis: dead, name: 'down', timeoutMs: 100 });
    await sleep(200);
    await reader.getOrSet('secret-key-1', () => ({ v: 1 }), { tags: ['secret-tag'] });
    await reader.get('secret-key-1');
    await reader.get('secret-key-1');
    await writer.set('secret-key-1', { v: 2 }, { tags: ['secret-tag'] });
    await eventually(
      () => reader.get('secret-key-1'),
      (value) => (value as { v: number } | undefined)?.v === 2,
      2000,
    );
    await writer.invalidateByTags(['secret-tag']);
    await reader.getOrSet('x', () => Promise.reject(new Error('boom'))).catch(() => undefined);
    await reader.getOrSet('y', () => new Promise(() => {}), { hardTimeoutMs: 20 }).catch(() => undefined);
    await down.get('k');
    await eventually(
      () => reader.getStats().swept,
      (count) => count >= 0,
      100,
    );
    const text = await metrics.text();
    for (const name of [
      'austa_cache_requests_total',
      'austa_cache_operation_duration_seconds_bucket',
      'austa_cache_degraded_total',
      'austa_cache_factory_calls_total',
      'austa_cache_factory_duration_seconds_bucket',
      'austa_cache_lock_total',
      'austa_cache_invalidation_messages_total',
      'austa_cache_invalidation_delay_seconds_bucket',
      'austa_cache_l1_entries',
      'austa_cache_l1_bytes',
      'austa_cache_circuit_breakers_open',
      'db_client_operation_duration_seconds_bucket',
    ]) {
      expect(text, name).toMatch(new RegExp(`^${name}\\{`, 'm'));
    }
    expect(text).not.toMatch(/secret/);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(promtool.error).toBeUndefined();
    expect(`${promtool.stdout}${promtool.stderr}`.trim()).toBe('');
    expect(promtool.status).toBe(0);
    await Promise.all([reader.close(), writer.close(), down.close()]);
    dead.disconnect();
    await second.quit();
  });
});
