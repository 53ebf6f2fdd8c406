import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  // Stryker resolves plugin names from its own install; under pnpm that cannot see the runner, so pass its path.
  plugins: [require.resolve('@stryker-mutator/vitest-runner')],
  packageManager: 'pnpm',
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.unit.config.ts' },
  mutate: [
    'src/command-hook.ts',
    'src/tracker.ts',
    'src/options.ts',
    'src/glob.ts',
    'src/error-type.ts',
    'src/health.ts',
    'src/slot-map.ts',
  ],
  coverageAnalysis: 'perTest',
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  // Later runs re-test only the mutants whose code or covering tests changed.
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  thresholds: { high: 90, low: 80, break: 80 },
  tempDirName: '.stryker-tmp',
  concurrency: 2,
};
