export { defineBench } from './define.js';
export { measure, percentile } from './measure.js';
export { loadRival } from './rivals.js';
export type {
  BenchCase,
  BenchContext,
  BenchDefinition,
  BenchResult,
  BenchTarget,
  MicroCase,
  MicroMeasurement,
  MicroResult,
  PreparedCase,
  PreparedMicroCase,
  Topology,
} from './types.js';
