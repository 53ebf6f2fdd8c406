export type {
  ClientStats,
  HealthResult,
  NodeHealth,
  NodeInfo,
  NodeStats,
  RedisClient,
  RedisClientDependencies,
  ScanOptions,
} from './client.js';
export { createRedisClient, escapeGlob } from './client.js';
export { errorType } from './error-type.js';
export type { RedisErrorCode } from './errors.js';
export {
  AustaRedisError,
  errors,
  RedisArgumentError,
  RedisClientClosedError,
  RedisConfigError,
  RedisUnavailableError,
} from './errors.js';
export type { ParsedInfo } from './info.js';
export type { ClusterConnectionOptions, RedisClientOptions, SeedNode } from './options.js';
export { DEFAULTS, fromEnv } from './options.js';
export type { Logger, MessageHandler, PatternMessageHandler, Unsubscribe } from './pubsub.js';
