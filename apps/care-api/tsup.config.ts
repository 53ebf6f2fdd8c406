import { tsupPreset } from '@austa/presets/tsup';

// An application, not a library: ESM only, no declarations. mongodb-memory-server-core is a dev dependency loaded
// only by the embedded development default; it must stay an import at run time, never bundled.
export default tsupPreset({
  entry: ['src/main.ts', 'src/index.ts'],
  format: ['esm'],
  dts: false,
  external: ['mongodb-memory-server-core'],
});
