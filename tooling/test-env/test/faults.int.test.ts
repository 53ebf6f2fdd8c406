import { type Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  clientKill,
  clusterTopology,
  createTestClient,
  deleteByPrefix,
  type FailoverMode,
  failover,
  keySlot,
  killNode,
  migrateSlot,
  pauseNode,
  type RedisClusterTarget,
  redisTargets,
  restartNode,
  restoreCluster,
  resumeNode,
  slotOwner,
  uniquePrefix,
  waitForPromotion,
} from '../src/vitest.js';

const targets = redisTargets();
const cluster: RedisClusterTarget = targets.cluster;

/** A master other than `port`. */
async function otherMaster(port: number): Promise<number> {
  const { masters } = await clusterTopology(cluster);
  const other = masters.find((master) => master.port !== port);
  if (!other) throw new Error('no second master');
  return other.port;
}

async function replicaOf(masterPort: number): Promise<number> {
  const { masters } = await clusterTopology(cluster);
  const replica = masters.find((master) => master.port === masterPort)?.replicaPorts[0];
  if (replica === undefined) throw new Error(`master ${masterPort} has no replica`);
  return replica;
}

describe('cluster fault helpers', () => {
  let client: Cluster;
  let prefix: string;

  beforeAll(() => {
    client = createTestClient(targets, 'cluster');
  });

  afterEach(async () => {
    await restoreCluster(cluster);
    await deleteByPrefix(client, prefix);
  });

  afterAll(async () => {
    await client.quit();
  });

  it('migrateSlot() stopped after importing makes the source answer ASK, and a Cluster client still reads the key', async () => {
    prefix = uniquePrefix('ask');
    const moved = `${prefix}:{ask}:moved`;
    const stayed = `${prefix}:{ask}:stayed`;
    await client.set(moved, 'm', 'EX', 60);
    await client.set(stayed, 's', 'EX', 60);
    const slot = keySlot(moved);
    const source = await slotOwner(cluster, slot);
    const target = await otherMaster(source);

    const result = await migrateSlot(cluster, slot, source, target, {
      keys: [moved],
      stopAfter: 'importing',
    });

    expect(result).toEqual({ slot, fromPort: source, toPort: target, movedKeys: 1, state: 'open' });
    const direct = new Redis({ host: '127.0.0.1', port: source });
    try {
      await expect(direct.get(moved)).rejects.toThrow(new RegExp(`^ASK ${slot} 127\\.0\\.0\\.1:${target}`));
      expect(await direct.get(stayed)).toBe('s');
    } finally {
      direct.disconnect();
    }
    expect(await client.get(moved)).toBe('m');
    expect(await client.get(stayed)).toBe('s');
    expect(await slotOwner(cluster, slot)).toBe(source);
  });

  it('migrateSlot() run to the end moves the slot and its keys, so the old owner answers MOVED', async () => {
    prefix = uniquePrefix('moved');
    const keys = [1, 2, 3].map((index) => `${prefix}:{moved}:${index}`);
    await Promise.all(keys.map((key) => client.set(key, key, 'EX', 60)));
    const slot = keySlot(keys[0] as string);
    const source = await slotOwner(cluster, slot);
    const target = await otherMaster(source);

    const result = await migrateSlot(cluster, slot, source, target);

    expect(result).toEqual({ slot, fromPort: source, toPort: target, movedKeys: 3, state: 'done' });
    expect(await slotOwner(cluster, slot)).toBe(target);
    const direct = new Redis({ host: '127.0.0.1', port: source });
    try {
      await expect(direct.get(keys[0] as string)).rejects.toThrow(
        new RegExp(`^MOVED ${slot} 127\\.0\\.0\\.1:${target}`),
      );
    } finally {
      direct.disconnect();
    }
    // The client's slot map is stale; it follows MOVED.
    expect(await Promise.all(keys.map((key) => client.get(key)))).toEqual(keys);
  });

  it('killNode() of a master: waitForPromotion() names its replica, acknowledged writes survive, restoreCluster() heals', async () => {
    prefix = uniquePrefix('kill');
    const key = `${prefix}:{kill}:k`;
    const master = await slotOwner(cluster, keySlot(key));
    const replica = await replicaOf(master);
    await client.set(key, 'kept', 'EX', 120);
    // WAIT makes the write acknowledged by the replica before we pull the plug.
    const node = client.nodes('master').find((candidate) => candidate.options.port === master) as Redis;
    expect(await node.wait(1, 2_000)).toBe(1);

    const started = Date.now();
    await killNode(cluster, master);
    const promoted = await waitForPromotion(cluster, master, 20_000);

    expect(promoted).toBe(replica);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await client.get(key)).toBe('kept');

    await restoreCluster(cluster);
    const topology = await clusterTopology(cluster);
    expect(topology.masters.find((entry) => entry.port === replica)?.replicaPorts).toEqual([master]);
  });

  it('restartNode() brings a killed replica back into the cluster', async () => {
    prefix = uniquePrefix('restart');
    const { masters } = await clusterTopology(cluster);
    const replica = masters[0]?.replicaPorts[0] as number;

    await killNode(cluster, replica);
    await restartNode(cluster, replica);

    const direct = new Redis({ host: '127.0.0.1', port: replica });
    try {
      expect(await direct.cluster('INFO')).toContain('cluster_state:ok');
      expect(await direct.info('replication')).toContain('role:slave');
    } finally {
      direct.disconnect();
    }
  });

  it('pauseNode() makes a master answer nothing until resumeNode()', async () => {
    prefix = uniquePrefix('pause');
    const key = `${prefix}:{pause}:k`;
    await client.set(key, 'v', 'EX', 60);
    const master = await slotOwner(cluster, keySlot(key));
    const impatient = createTestClient(targets, 'cluster', { commandTimeout: 300 });
    try {
      expect(await impatient.get(key)).toBe('v');

      await pauseNode(cluster, master);
      // Well under cluster-node-timeout (2 s), so no failover starts.
      await expect(impatient.get(key)).rejects.toThrow(/timed out/i);
      await resumeNode(cluster, master);

      expect(await impatient.get(key)).toBe('v');
      expect(await slotOwner(cluster, keySlot(key))).toBe(master);
    } finally {
      impatient.disconnect();
    }
  });

  it.each<FailoverMode>(['default', 'force', 'takeover'])(
    'failover(%s) promotes the replica and demotes its master',
    async (mode) => {
      prefix = uniquePrefix(`failover-${mode}`);
      const key = `${prefix}:{failover}:k`;
      await client.set(key, mode, 'EX', 60);
      const master = await slotOwner(cluster, keySlot(key));
      const replica = await replicaOf(master);

      await failover(cluster, replica, mode);

      expect(await slotOwner(cluster, keySlot(key))).toBe(replica);
      expect(await client.get(key)).toBe(mode);
      await restoreCluster(cluster);
      expect(await replicaOf(replica)).toBe(master);
    },
  );

  it('clientKill() by name drops the named connections on every node, and ioredis reconnects', async () => {
    prefix = uniquePrefix('client-kill');
    const name = `ck-${prefix.slice(-8)}`;
    const named = createTestClient(targets, 'cluster', { connectionName: name });
    try {
      // One key per master, so the client holds a connection to each of them.
      const { masters } = await clusterTopology(cluster);
      const keys = masters.map((master) => {
        for (let index = 0; ; index++) {
          const key = `${prefix}:${index}`;
          const slot = keySlot(key);
          if (master.slots.some(([first, last]) => slot >= first && slot <= last)) return key;
        }
      });
      await Promise.all(keys.map((key) => named.set(key, 'v', 'EX', 60)));

      const killed = await clientKill(cluster, { name });

      expect(killed).toBeGreaterThanOrEqual(3);
      expect(await clientKill(cluster, { name: `${name}-nobody` })).toBe(0);
      expect(await Promise.all(keys.map((key) => named.get(key)))).toEqual(keys.map(() => 'v'));
    } finally {
      named.disconnect();
    }
  });

  it('refuses to fault a cluster it does not own', async () => {
    prefix = uniquePrefix('not-owned');
    const borrowed = { ...cluster, owned: false };
    const port = cluster.nodes[0]?.port as number;
    const replica = cluster.nodes[3]?.port as number;
    const refusals: Array<[string, () => Promise<unknown>]> = [
      ['killNode', () => killNode(borrowed, port)],
      ['restartNode', () => restartNode(borrowed, port)],
      ['pauseNode', () => pauseNode(borrowed, port)],
      ['resumeNode', () => resumeNode(borrowed, port)],
      ['failover', () => failover(borrowed, replica)],
      ['waitForPromotion', () => waitForPromotion(borrowed, port, 1000)],
      ['clientKill', () => clientKill(borrowed, { name: 'x' })],
      ['migrateSlot', () => migrateSlot(borrowed, 0, port, replica)],
      ['restoreCluster', () => restoreCluster(borrowed)],
    ];
    for (const [helper, run] of refusals) {
      await expect(run(), helper).rejects.toThrow(
        new RegExp(`${helper} refused: .*never harms servers it did not start`),
      );
    }
    // Every node still answers and serves its slots: nothing was touched.
    expect(await slotOwner(cluster, 0)).toBeGreaterThan(0);
  });

  it('refuses to fault a standalone server it does not own', async () => {
    const borrowed = { ...targets.standalone, owned: false };
    await expect(pauseNode(borrowed)).rejects.toThrow(/pauseNode refused/);
    await expect(resumeNode(borrowed)).rejects.toThrow(/resumeNode refused/);
    await expect(clientKill(borrowed, { name: 'x' })).rejects.toThrow(/clientKill refused/);
  });
});

describe('standalone fault helpers', () => {
  it('clientKill() by name on the standalone server kills that one connection', async () => {
    const name = `ck-${uniquePrefix('standalone').slice(-8)}`;
    const named = createTestClient(targets, 'standalone', { connectionName: name });
    try {
      expect(await named.ping()).toBe('PONG');
      expect(await clientKill(targets.standalone, { name })).toBe(1);
      expect(await named.ping()).toBe('PONG');
    } finally {
      named.disconnect();
    }
  });
});
