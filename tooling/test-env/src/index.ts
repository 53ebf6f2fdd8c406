// Plain Node entry (the bench harness loads it with tsx): nothing here may import vitest.
// Test files use '@austa/test-env/vitest', which adds the inject()-based helpers.

export type { ClusterNodeEntry } from './cluster-state.js';
export type {
  ClientKillFilter,
  ClusterDescriptor,
  ClusterTopology,
  FailoverMode,
  MigrateSlotOptions,
  MigrateSlotResult,
  ServerDescriptor,
} from './faults.js';
export {
  clientKill,
  clusterTopology,
  failover,
  killNode,
  migrateSlot,
  pauseNode,
  restartNode,
  restoreCluster,
  resumeNode,
  slotOwner,
  waitForPromotion,
} from './faults.js';
export { createTestClient, deleteByPrefix, escapeGlob, keysWithoutTtl, uniquePrefix } from './isolation.js';
export { keySlot } from './key-slot.js';
export type { MongoHandle } from './mongo.js';
export { mongoRequired, resolveMongo } from './mongo.js';
export { runReadmeQuickstart } from './quickstart.js';
export type { ClusterHandle } from './redis-cluster.js';
export { resolveRedisCluster, startRedisCluster } from './redis-cluster.js';
export type { StandaloneHandle } from './redis-standalone.js';
export { resolveRedis, startRedisStandalone } from './redis-standalone.js';
export type {
  MongoTarget,
  RedisClusterTarget,
  RedisNodeAddress,
  RedisSource,
  RedisStandaloneTarget,
  RedisTarget,
  RedisTargets,
  RedisTopology,
} from './types.js';
