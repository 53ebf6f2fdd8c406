import { tsupPreset } from '@austa/presets/tsup';

// Annotated because tsc (declaration: true) cannot name the preset's inferred tsup type.
const config: ReturnType<typeof tsupPreset> = tsupPreset();

export default config;
