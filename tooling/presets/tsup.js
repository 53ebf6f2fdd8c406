import { defineConfig } from 'tsup';

/**
 * The build every publishable package uses: ESM + CJS, each with its own
 * declaration file (.d.ts / .d.cts) so both resolution modes get correct types.
 * @param {import('tsup').Options} [overrides]
 */
export function tsupPreset(overrides = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    splitting: false,
    treeshake: true,
    ...overrides,
  });
}
