export type { ClientStats, RedisClient, RedisClientDependencies } from './client.js';
export { createRedisClient } from './client.js';
export type { CommandTimer } from './command-timer.js';
export { commandTimer, isInstrumented } from './command-timer.js';
export type { NodeRouter, TickCorker } from './cork.js';
export { keySlot, nodeRouter, tickCorker } from './cork.js';
export { errorType, withoutCommandArguments } from './error-type.js';
export type { RedisErrorCode } from './errors.js';
export {
  AustaRedisError,
  errors,
  RedisArgumentError,
  RedisClientClosedError,
  RedisConfigError,
  RedisIncompleteScanError,
  RedisMaybeAppliedError,
  RedisUnavailableError,
} from './errors.js';
export { escapeGlob } from './glob.js';
export type { HealthResult, NodeHealth } from './health.js';
export type { ParsedInfo } from './info.js';
export type { NodeInfo, NodeStats } from './ops.js';
export type { ClusterConnectionOptions, RedisClientOptions, SeedNode } from './options.js';
export { DEFAULTS, fromEnv } from './options.js';
export type {
  BufferMessageHandler,
  BufferPatternMessageHandler,
  Logger,
  MessageHandler,
  PatternMessageHandler,
  SubscribeOptions,
  Unsubscribe,
} from './pubsub.js';
export type { ScanOptions } from './scan.js';
export { scanKeys, unlinkKeys } from './scan.js';
export type { RedisScript, RunScriptOptions } from './script.js';
export { defineScript, runScript } from './script.js';
export type { SlotRange } from './slot-map.js';
