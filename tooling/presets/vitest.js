import { createRequire } from 'node:module';
import { defineProject } from 'vitest/config';

const require = createRequire(import.meta.url);

/**
 * `.only` is refused whenever CI is set (to anything), as vitest's own default does: a committed `.only` would
 * otherwise turn a suite into one test and still pass. Stated here so no config can inherit a different default.
 */
export const allowOnly = !process.env.CI;

/**
 * Test settings every package uses. Integration tests (`*.int.test.ts`) get the
 * real services from `@austa/test-env` through its globalSetup; unit tests need no network.
 * `mongo: true` adds the MongoDB globalSetup (`mongoTarget()` in '@austa/test-env/vitest').
 * @param {{ integration?: boolean, mongo?: boolean, testTimeoutMs?: number }} [options]
 */
export function vitestPreset(options = {}) {
  const integration = options.integration ?? true;
  const globalSetup = integration ? [require.resolve('@austa/test-env/global-setup')] : [];
  if (options.mongo) globalSetup.push(require.resolve('@austa/test-env/global-setup-mongo'));
  return defineProject({
    test: {
      include: ['test/**/*.test.ts'],
      globalSetup,
      allowOnly,
      testTimeout: options.testTimeoutMs ?? 30_000,
      hookTimeout: 120_000,
      // Fault tests kill and pause shared Redis nodes; running files one at a time
      // keeps one file's failover from surprising another file's assertions.
      fileParallelism: false,
      pool: 'forks',
    },
  });
}
