import { fileURLToPath } from 'node:url';
import { redisTargets, runReadmeQuickstart } from '@austa/test-env/vitest';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('quickstart runs against a real Redis and prints its metrics', async () => {
    const output = await runReadmeQuickstart(fileURLToPath(new URL('..', import.meta.url)), {
      REDIS_URL: redisTargets().standalone.url,
    });
    expect(output).toContain('hello');
    expect(output).toContain('got hi');
    expect(output).toMatch(/healthy: true/);
    expect(output).toContain(
      'db_client_operation_duration_seconds_count{db_system_name="redis",db_operation_name="set"',
    );
  });
});
