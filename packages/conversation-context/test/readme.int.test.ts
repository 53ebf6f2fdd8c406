import { fileURLToPath } from 'node:url';
import { redisTargets, runReadmeQuickstart } from '@austa/test-env/vitest';
import { describe, expect, it } from 'vitest';

describe('README', () => {
  it('quickstart runs against a real Redis: trims, keeps the system prompt, refuses another owner, erases', async () => {
    // A fresh tsx process on a loaded CI machine can take longer than the helper's default 30 s; the test's own
    // timeout (90 s) stays the bound.
    const output = await runReadmeQuickstart(
      fileURLToPath(new URL('..', import.meta.url)),
      { REDIS_URL: redisTargets().standalone.url },
      80_000,
    );
    expect(output).toContain("trimmed: [ 'I have a headache' ]");
    expect(output).toContain("trimmed: [ 'Since Monday' ]");
    expect(output).toContain('kept: 1:system 4:user 5:user 6:assistant');
    expect(output).toContain("ui parts: [ 'text', 'tool-history' ]");
    expect(output).toMatch(
      /messageCount: 4,\s+tokenCount: \d+,\s+roles: \{ system: 1, user: 2, assistant: 1 \}/,
    );
    expect(output).toContain('conversations: 1');
    expect(output).toContain('other user: E_OWNERSHIP_MISMATCH');
    expect(output).toMatch(/conversationIds: \[ 'conv-1' \],\s+conversationsDeleted: 1,\s+keysDeleted: 4/);
  });
});
