import { createRequire } from 'node:module';
import { defineProject } from 'vitest/config';

const require = createRequire(import.meta.url);

/**
 * Test settings every package uses. Integration tests (`*.int.test.ts`) get the
 * real services from `@austa/test-env` through its globalSetup; unit tests need no network.
 * @param {{ integration?: boolean, testTimeoutMs?: number }} [options]
 */
export function vitestPreset(options = {}) {
  const integration = options.integration ?? true;
  return defineProject({
    test: {
      include: ['test/**/*.test.ts'],
      globalSetup: integration ? [require.resolve('@austa/test-env/global-setup')] : [],
      testTimeout: options.testTimeoutMs ?? 30_000,
      hookTimeout: 120_000,
      // Fault tests kill and pause shared Redis nodes; running files one at a time
      // keeps one file's failover from surprising another file's assertions.
      fileParallelism: false,
      pool: 'forks',
    },
  });
}
