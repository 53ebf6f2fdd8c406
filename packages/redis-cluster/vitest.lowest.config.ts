import { createRequire } from 'node:module';
import { mergeConfig } from 'vitest/config';
import base from './vitest.config';

const require = createRequire(import.meta.url);

// The package reads a few ioredis internals (see src/command-hook.ts), so the whole suite also runs against the
// lowest ioredis of the peer range; the default config runs the newest we pin.
export default mergeConfig(base, {
  resolve: { alias: { ioredis: require.resolve('ioredis-lowest') } },
  test: { name: 'ioredis-5.9.0' },
});
