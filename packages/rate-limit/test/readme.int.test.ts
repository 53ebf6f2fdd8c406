import { fileURLToPath } from 'node:url';
import { createTestClient, keysWithoutTtl, redisTargets, runReadmeQuickstart } from '@austa/test-env/vitest';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('quickstart runs against a real Redis and limits the fourth request', async () => {
    const output = await runReadmeQuickstart(fileURLToPath(new URL('..', import.meta.url)), {
      REDIS_URL: redisTargets().standalone.url,
    });
    expect(output).toContain('request 1: allowed, 2 left');
    expect(output).toContain('request 3: allowed, 0 left');
    expect(output).toMatch(/request 4: rejected, retry in \d+ ms, 0 left/);
    expect(output).toContain('both limits: true [ 9, 999 ]');
    const client = createTestClient(redisTargets(), 'standalone');
    try {
      expect(await keysWithoutTtl(client, 'austa:rate-limit:')).toEqual([]);
    } finally {
      await client.quit();
    }
  });
});
