import { allowOnly } from '@austa/presets/vitest';
import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./src/global-setup.ts', './src/global-setup-mongo.ts'],
    allowOnly,
    pool: 'forks',
    // Fault tests kill and pause nodes of the one shared cluster.
    fileParallelism: false,
    hookTimeout: 120_000,
    testTimeout: 60_000,
  },
});
