import { inject } from 'vitest';
import { mongoRequired } from './mongo.js';
import type {} from './provided-context.js';
import type {
  MongoTarget,
  RedisClusterTarget,
  RedisStandaloneTarget,
  RedisTargets,
  RedisTopology,
} from './types.js';

export * from './index.js';

const MISSING_SETUP =
  "is not provided: add require.resolve('@austa/test-env/global-setup') to test.globalSetup " +
  "(vitestPreset() from '@austa/presets/vitest' does this when integration is on).";

/** The standalone server and the cluster of this run, as provided by '@austa/test-env/global-setup'. */
export function redisTargets(): RedisTargets {
  const standalone = inject('redisStandalone') as RedisStandaloneTarget | undefined;
  const cluster = inject('redisCluster') as RedisClusterTarget | undefined;
  if (!standalone) throw new Error(`redisStandalone ${MISSING_SETUP}`);
  if (!cluster) throw new Error(`redisCluster ${MISSING_SETUP}`);
  return { standalone, cluster };
}

/** The target for one topology, for `describe.each(['standalone', 'cluster'])` suites. */
export function redisTarget(topology: 'standalone'): RedisStandaloneTarget;
export function redisTarget(topology: 'cluster'): RedisClusterTarget;
export function redisTarget(topology: RedisTopology): RedisStandaloneTarget | RedisClusterTarget;
export function redisTarget(topology: RedisTopology): RedisStandaloneTarget | RedisClusterTarget {
  const targets = redisTargets();
  return topology === 'standalone' ? targets.standalone : targets.cluster;
}

/**
 * The MongoDB of this run. `{ available: false }` when none could be had or when
 * '@austa/test-env/global-setup-mongo' is not in globalSetup; gate suites with
 * `describe.runIf(mongoTarget().available)`. With `REQUIRE_MONGO` set, a missing setup throws
 * instead (the setup itself already fails when no MongoDB can be had).
 */
export function mongoTarget(): MongoTarget {
  const target = inject('mongo') as MongoTarget | undefined;
  if (target) return target;
  const reason = "'@austa/test-env/global-setup-mongo' is not in test.globalSetup";
  if (mongoRequired()) {
    throw new Error(`REQUIRE_MONGO is set but ${reason} (vitestPreset({ mongo: true }) adds it).`);
  }
  return { available: false, reason };
}
