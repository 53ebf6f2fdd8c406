import { fileURLToPath } from 'node:url';
import { runReadmeQuickstart } from '@austa/test-env';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('quickstart runs as written and shows encryption bound to the key', async () => {
    const output = await runReadmeQuickstart(fileURLToPath(new URL('..', import.meta.url)));
    expect(output).toContain('stored bytes contain the id in clear: false');
    expect(output).toContain("round trip: 2025-01-02T10:00:00.000Z [ 'penicillin' ] 12n");
    expect(output).toContain('moved to another key: E_DECRYPT');
  });
});
