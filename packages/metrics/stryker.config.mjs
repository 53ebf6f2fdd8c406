import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// Stryker resolves plugin names from its own install; under pnpm that cannot see the runner, so pass its path.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  plugins: [require.resolve('@stryker-mutator/vitest-runner')],
  ...{
    packageManager: 'pnpm',
    testRunner: 'vitest',
    vitest: {
      configFile: 'vitest.unit.config.ts',
    },
    mutate: ['src/**/*.ts', '!src/index.ts'],
    coverageAnalysis: 'perTest',
    reporters: ['clear-text', 'progress', 'html'],
    htmlReporter: {
      fileName: 'reports/mutation/index.html',
    },
    thresholds: {
      high: 90,
      low: 80,
      break: 80,
    },
    tempDirName: '.stryker-tmp',
    concurrency: 2,
  },
};
