import { tsupPreset } from '@austa/presets/tsup';

export default tsupPreset({ entry: ['src/index.ts', 'src/express.ts', 'src/fastify.ts'] });
