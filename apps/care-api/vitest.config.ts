import { vitestPreset } from '@austa/presets/vitest';

export default vitestPreset({ mongo: true, testTimeoutMs: 60_000 });
