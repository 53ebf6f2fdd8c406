import { vitestPreset } from '@austa/presets/vitest';

export default vitestPreset({ integration: false });
