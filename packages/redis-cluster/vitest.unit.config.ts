import { vitestPreset } from '@austa/presets/vitest';
import { mergeConfig } from 'vitest/config';

// Unit tests only (no Redis): what `pnpm mutate` runs for every mutant.
export default mergeConfig(vitestPreset({ integration: false }), {
  test: { exclude: ['test/**/*.int.test.ts', 'test/readme*.test.ts', 'node_modules/**'] },
});
