import { randomBytes } from 'node:crypto';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { keySlot } from './key-slot.js';
import type { RedisTargets, RedisTopology } from './types.js';

/**
 * A prefix no other test (or run) shares: `t:<label>:<8 hex>`. The label is reduced to
 * `[A-Za-z0-9_.:-]` so the prefix never contains glob characters or a `{hash tag}`.
 */
export function uniquePrefix(label: string): string {
  const safe = label.replace(/[^A-Za-z0-9_.:-]+/g, '-').slice(0, 40) || 'test';
  return `t:${safe}:${randomBytes(4).toString('hex')}`;
}

/** Escapes `* ? [ ] \` so a literal string can be used in a SCAN MATCH pattern. */
export function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * An ioredis client for one topology. `redisOptions` apply to every connection (on a cluster,
 * through `redisOptions`); `clusterOptions` only to the Cluster. Quit it in afterAll.
 */
export function createTestClient(
  targets: RedisTargets,
  topology: 'standalone',
  redisOptions?: RedisOptions,
): Redis;
export function createTestClient(
  targets: RedisTargets,
  topology: 'cluster',
  redisOptions?: RedisOptions,
  clusterOptions?: ClusterOptions,
): Cluster;
export function createTestClient(
  targets: RedisTargets,
  topology: RedisTopology,
  redisOptions?: RedisOptions,
  clusterOptions?: ClusterOptions,
): Redis | Cluster;
export function createTestClient(
  targets: RedisTargets,
  topology: RedisTopology,
  redisOptions: RedisOptions = {},
  clusterOptions: ClusterOptions = {},
): Redis | Cluster {
  if (topology === 'standalone') return new Redis(targets.standalone.url, redisOptions);
  return new Cluster(targets.cluster.nodes, {
    ...clusterOptions,
    redisOptions: { ...clusterOptions.redisOptions, ...redisOptions },
  });
}

/**
 * The nodes to SCAN: the masters of a cluster (replicas hold copies), or the server itself. The
 * cluster's slot map is refreshed first: after a failover, a stale map would list the demoted node
 * and miss the promoted one.
 */
async function scanTargets(client: Redis | Cluster): Promise<Redis[]> {
  if (!(client instanceof Cluster)) return [client];
  if (client.status === 'end' || client.status === 'close') throw new Error('the Cluster client is closed');
  if (client.status === 'wait') await client.connect();
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve));
  await new Promise<void>((resolve, reject) =>
    client.refreshSlotsCache((error) => (error ? reject(error) : resolve())),
  );
  return client.nodes('master');
}

async function scanEach(client: Redis | Cluster, prefix: string, onPage: (keys: Buffer[]) => Promise<void>) {
  const match = `${escapeGlob(prefix)}*`;
  for (const node of await scanTargets(client)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scanBuffer(cursor, 'MATCH', match, 'COUNT', 1000);
      cursor = next.toString();
      if (keys.length > 0) await onPage(keys);
    } while (cursor !== '0');
  }
}

/**
 * Deletes every key under `prefix`: SCAN on each master, then UNLINK grouped by slot through the
 * client itself, so a cluster never sees a cross-slot command and redirects are followed. Never
 * KEYS, never FLUSHALL. Returns how many keys were removed.
 */
export async function deleteByPrefix(client: Redis | Cluster, prefix: string): Promise<number> {
  if (prefix === '') throw new Error('deleteByPrefix needs a non-empty prefix');
  let deleted = 0;
  await scanEach(client, prefix, async (keys) => {
    const bySlot = new Map<number, Buffer[]>();
    for (const key of keys) {
      const slot = keySlot(key);
      bySlot.set(slot, [...(bySlot.get(slot) ?? []), key]);
    }
    const counts = await Promise.all([...bySlot.values()].map((group) => client.unlink(...group)));
    deleted += counts.reduce((sum, count) => sum + count, 0);
  });
  return deleted;
}

/**
 * Keys under `prefix` that never expire (PTTL -1), sorted. The guide asks every key to have a TTL;
 * a suite asserts this is empty after it ran.
 */
export async function keysWithoutTtl(client: Redis | Cluster, prefix: string): Promise<string[]> {
  const found: string[] = [];
  await scanEach(client, prefix, async (keys) => {
    const ttls = await Promise.all(keys.map((key) => client.pttl(key)));
    keys.forEach((key, index) => {
      if (ttls[index] === -1) found.push(key.toString());
    });
  });
  return found.sort();
}
