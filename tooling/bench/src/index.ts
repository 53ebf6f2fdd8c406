export { defineBench } from './define.js';
export { measure, percentile } from './measure.js';
export type {
  BenchCase,
  BenchContext,
  BenchDefinition,
  BenchResult,
  BenchTarget,
  PreparedCase,
  Topology,
} from './types.js';
