import { tsupPreset } from '@austa/presets/tsup';

export default tsupPreset();
