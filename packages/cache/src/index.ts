export type {
  Cache,
  CacheEntry,
  CacheStats,
  Factory,
  FactoryContext,
  GetOrSetOptions,
  SetOptions,
  TierStats,
  WarmUpOptions,
  WarmUpResult,
} from './cache.js';
export { createCache } from './cache.js';
export type { CacheErrorCode } from './errors.js';
export {
  AustaCacheError,
  CacheClosedError,
  CacheConfigError,
  CacheIncompleteScanError,
  CacheInputError,
  CacheUnavailableError,
  errors,
  FactoryTimeoutError,
} from './errors.js';
export type { CacheLogger, CacheOptions, CircuitBreakerOptions, L1Options, LockOptions } from './options.js';
export { DEFAULTS } from './options.js';
