import { vitestPreset } from '@austa/presets/vitest';

// The codec needs no network; the README quickstart runs as a plain program.
export default vitestPreset({ integration: false });
