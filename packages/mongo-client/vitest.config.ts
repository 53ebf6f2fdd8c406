import { createRequire } from 'node:module';
import { vitestPreset } from '@austa/presets/vitest';

const require = createRequire(import.meta.url);
const config = vitestPreset({ testTimeoutMs: 60_000 });

// Redis (for the Redis token store) and MongoDB (for the integration suite, skipped with one printed line when
// none can be had; a MONGODB_URL that does not answer fails the run).
config.test = {
  ...config.test,
  globalSetup: [
    ...((config.test?.globalSetup as string[] | undefined) ?? []),
    require.resolve('@austa/test-env/global-setup-mongo'),
  ],
};

export default config;
