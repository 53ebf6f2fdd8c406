import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { isAlive, readPidfile } from '../src/processes.js';
import { clusterTopology, redisTargets, startRedisStandalone } from '../src/vitest.js';

describe('globalSetup servers', () => {
  it('provides a standalone server we own that answers PING', async () => {
    const { standalone } = redisTargets();
    expect(standalone).toMatchObject({
      topology: 'standalone',
      host: '127.0.0.1',
      owned: true,
      source: 'process',
    });
    expect(standalone.url).toBe(`redis://127.0.0.1:${standalone.port}`);
    const client = new Redis(standalone.url);
    try {
      expect(await client.ping()).toBe('PONG');
      // Cluster mode off: this is the standalone topology, not a cluster node.
      expect(await client.info('cluster')).toContain('cluster_enabled:0');
    } finally {
      await client.quit();
    }
  });

  it('provides a 6-node cluster in cluster_state:ok with 3 masters, each with one replica', async () => {
    const { cluster } = redisTargets();
    expect(cluster).toMatchObject({ topology: 'cluster', owned: true, source: 'process' });
    expect(cluster.nodes).toHaveLength(6);
    for (const node of cluster.nodes) {
      const client = new Redis(node);
      try {
        expect(await client.cluster('INFO')).toMatch(/cluster_state:ok[\s\S]*cluster_slots_ok:16384/);
      } finally {
        await client.quit();
      }
    }
    const topology = await clusterTopology(cluster);
    expect(topology.masters).toHaveLength(3);
    const covered = topology.masters
      .flatMap((master) => master.slots)
      .reduce((sum, [a, b]) => sum + b - a + 1, 0);
    expect(covered).toBe(16384);
    for (const master of topology.masters) expect(master.replicaPorts).toHaveLength(1);
    const members = topology.masters.flatMap((master) => [master.port, ...master.replicaPorts]).sort();
    expect(members).toEqual(cluster.nodes.map((node) => node.port).sort());
  });

  it('startRedisStandalone() runs a server that stop() kills and cleans up', async () => {
    const handle = await startRedisStandalone();
    const stateDir = handle.stateDir as string;
    const pid = readPidfile(stateDir, handle.port);
    expect(pid).not.toBeNull();
    expect(isAlive(pid as number)).toBe(true);
    const client = new Redis(handle.url);
    expect(await client.ping()).toBe('PONG');
    client.disconnect();
    await handle.stop();
    expect(isAlive(pid as number)).toBe(false);
    expect(existsSync(stateDir)).toBe(false);
  });
});
