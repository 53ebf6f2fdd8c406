import type { BenchDefinition } from './types.js';

/** Declares a benchmark file's cases. The harness runs them; the file itself does nothing on import. */
export function defineBench(definition: BenchDefinition): BenchDefinition {
  return definition;
}
