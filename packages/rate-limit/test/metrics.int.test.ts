import { spawnSync } from 'node:child_process';
import { createMetrics } from '@austa/metrics';
import { createTestClient, deleteByPrefix, redisTargets, uniquePrefix } from '@austa/test-env/vitest';
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../src/index.js';
import { sample } from './support.js';

describe('metrics', () => {
  it('pass promtool check metrics once every instrument has been written to', async () => {
    const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    if (probe.error !== undefined || probe.status !== 0) {
      throw new Error('promtool is not installed; install it with: apt-get install -y prometheus');
    }
    const client = createTestClient(redisTargets(), 'standalone');
    const prefix = uniquePrefix('rl-metrics');
    const metrics = createMetrics({ defaultLabels: { service: 'care-api' } });
    await client.ping();
    const limiter = createRateLimiter({
      redis: client,
      prefix,
      metrics,
      name: 'api',
      blockCache: true,
      timeoutMs: 5000,
    });
    const config = { limit: 1, windowSeconds: 60 };
    try {
      await limiter.checkLimit('a', config, 'fixed-window');
      await limiter.checkLimit('a', config, 'fixed-window');
      await limiter.checkLimit(
        'b',
        [config, { limit: 5, windowSeconds: 60, strategy: 'token-bucket' }],
        'fixed-window',
      );
      await limiter.block('a', 30);
      await limiter.checkLimit('a', config, 'fixed-window');
      // A Redis error answered by the insurance policy: a fallback, and an evalsha with an error type.
      await client.set(`${prefix}:tb:{wrong}:60000:5:5`, 'not a number', 'EX', 60);
      const fallback = await limiter.checkLimit('wrong', { limit: 5, windowSeconds: 60 }, 'token-bucket');
      expect(fallback.fallback).toBe('insurance');
      const input = await metrics.text();
      expect(
        await sample(metrics, 'austa_rate_limit_fallbacks_total', { policy: 'insurance', reason: 'error' }),
      ).toBe(1);
      expect(
        await sample(metrics, 'austa_rate_limit_decisions_total', {
          strategy: 'multiple',
          result: 'allowed',
        }),
      ).toBe(1);
      expect(await sample(metrics, 'austa_rate_limit_block_cache_hits_total', { limiter: 'api' })).toBe(1);
      expect(input).toMatch(/db_client_operation_duration_seconds_count\{[^}]*error_type="ERR"/);
      const result = spawnSync('promtool', ['check', 'metrics'], { input, encoding: 'utf8' });
      expect(`${result.stdout}${result.stderr}`).toBe('');
      expect(result.status).toBe(0);
    } finally {
      await limiter.close();
      await deleteByPrefix(client, prefix);
      await client.quit();
    }
  });
});
