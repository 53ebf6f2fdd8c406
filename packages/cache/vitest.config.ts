import { vitestPreset } from '@austa/presets/vitest';

export default vitestPreset({ testTimeoutMs: 60_000 });
