import { fileURLToPath } from 'node:url';
import {
  createTestClient,
  deleteByPrefix,
  keysWithoutTtl,
  redisTargets,
  runReadmeQuickstart,
} from '@austa/test-env/vitest';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('quickstart runs against a real Redis: create, read, update, list, logout, with audit events', async () => {
    const output = await runReadmeQuickstart(fileURLToPath(new URL('..', import.meta.url)), {
      REDIS_URL: redisTargets().standalone.url,
    });
    expect(output).toContain('audit: create patient-42');
    expect(output).toContain('user: patient-42 ip: 203.0.113.0 consent: 2025-01-02T10:00:00.000Z');
    expect(output).toContain('audit: update patient-42');
    expect(output).toContain("devices: [ 'web' ]");
    expect(output).toContain('audit: revoke patient-42');
    expect(output).toContain('after logout: null');
    const client = createTestClient(redisTargets(), 'standalone');
    expect(await keysWithoutTtl(client, 'readme-quickstart')).toEqual([]);
    await deleteByPrefix(client, 'readme-quickstart');
    await client.quit();
  });
});
