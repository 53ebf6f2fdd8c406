import type { TestProject } from 'vitest/node';
import type {} from './provided-context.js';
import { type ClusterHandle, resolveRedisCluster } from './redis-cluster.js';
import { resolveRedis, type StandaloneHandle } from './redis-standalone.js';

function describeStandalone(handle: StandaloneHandle): string {
  const how =
    handle.source === 'env' ? 'from REDIS_URL' : handle.source === 'docker' ? 'Docker redis:7' : 'started';
  return `redis standalone ${handle.host}:${handle.port} (${how})`;
}

function describeCluster(handle: ClusterHandle): string {
  const ports = handle.nodes.map((node) => node.port);
  const first = ports[0];
  const consecutive = ports.every((port, index) => port === (first ?? 0) + index);
  const hosts = new Set(handle.nodes.map((node) => node.host));
  const list =
    consecutive && hosts.size === 1
      ? `${[...hosts][0]}:${first}..${ports.at(-1)}`
      : handle.nodes.map((node) => `${node.host}:${node.port}`).join(',');
  const how = handle.source === 'env' ? 'from REDIS_CLUSTER_NODES' : 'started';
  return `redis cluster ${handle.nodes.length} nodes ${list} (${how})`;
}

/**
 * Vitest globalSetup: a standalone Redis and a 6-node Redis Cluster for the whole run, provided to
 * tests as `redisStandalone` and `redisCluster` (see `redisTargets()` in '@austa/test-env/vitest').
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [standalone, cluster] = await Promise.allSettled([resolveRedis(), resolveRedisCluster()]);
  if (standalone.status === 'rejected' || cluster.status === 'rejected') {
    // One came up and the other did not: stop the survivor before failing the run.
    if (standalone.status === 'fulfilled') await standalone.value.stop();
    if (cluster.status === 'fulfilled') await cluster.value.stop();
    throw standalone.status === 'rejected' ? standalone.reason : (cluster as PromiseRejectedResult).reason;
  }
  project.provide('redisStandalone', standalone.value.target);
  project.provide('redisCluster', cluster.value.target);
  process.stdout.write(
    `[test-env] ${describeStandalone(standalone.value)} · ${describeCluster(cluster.value)}\n`,
  );
  return async () => {
    // stop() verifies by pid that nothing it started survives, and throws otherwise.
    const results = await Promise.allSettled([standalone.value.stop(), cluster.value.stop()]);
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
  };
}
