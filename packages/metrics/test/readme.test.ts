import { fileURLToPath } from 'node:url';
import { runReadmeQuickstart } from '@austa/test-env';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('quickstart runs and prints the exposition', async () => {
    const output = await runReadmeQuickstart(fileURLToPath(new URL('..', import.meta.url)));
    expect(output).toContain('# TYPE db_client_operation_duration_seconds histogram');
    expect(output).toContain('austa_cache_requests_total{result="hit",service="quickstart"} 1');
  });
});
