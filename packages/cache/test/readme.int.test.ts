import { fileURLToPath } from 'node:url';
import { redisTargets, runReadmeQuickstart } from '@austa/test-env/vitest';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('quickstart runs against a real Redis: one query for 50 callers, tags, a cached null, metrics', async () => {
    const output = await runReadmeQuickstart(fileURLToPath(new URL('..', import.meta.url)), {
      REDIS_URL: redisTargets().standalone.url,
    });
    expect(output).toContain('queries: 1 seenAt is a Date: true');
    expect(output).toContain('after invalidation: undefined');
    expect(output).toContain('cached null: null miss: undefined');
    expect(output).toMatch(/austa_cache_requests_total\{cache="quickstart",tier="l2",result="hit"\} [1-9]/);
  });
});
