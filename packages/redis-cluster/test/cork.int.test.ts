import { createTestClient, deleteByPrefix, redisTargets, uniquePrefix } from '@austa/test-env/vitest';
import calculateSlot from 'cluster-key-slot';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeRouter, tickCorker } from '../src/index.js';

type Topology = 'standalone' | 'cluster';
type Socket = { writableCorked: number; writableLength: number };

/** The socket of the connection that serves `key`: the client's own, or its slot master's on a cluster. */
function socketFor(client: Redis | Cluster, key: string): Socket {
  if (!(client instanceof Cluster)) return (client as unknown as { stream: Socket }).stream;
  const owner = (client as unknown as { slots: string[][] }).slots[calculateSlot(key)]?.[0];
  const node = client
    .nodes('master')
    .find((master) => `${master.options.host}:${master.options.port}` === owner);
  return (node as unknown as { stream: Socket }).stream;
}

describe.each<Topology>(['standalone', 'cluster'])('tickCorker on %s', (topology) => {
  let client: Redis | Cluster;
  let prefix: string;

  beforeAll(async () => {
    client = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`cork-${topology}`);
    // A cluster opens a master's connection with its first command: open them all, so every key's can be corked.
    await client.ping();
    if (client instanceof Cluster) await Promise.all(client.nodes('master').map((master) => master.ping()));
  });
  afterAll(async () => {
    await deleteByPrefix(client, prefix);
    await client.quit();
  });

  it("holds the key's connection's writes until the end of the tick, then every command gets its answer", async () => {
    const corker = tickCorker(client);
    const keys = Array.from({ length: 20 }, (_, i) => `${prefix}:{k${i}}`);
    for (const key of keys) {
      corker.cork(key);
      expect(socketFor(client, key).writableCorked).toBe(1);
    }
    const replies = keys.map((key) => client.set(key, 'v', 'EX', 60));
    // Still corked within the tick: nothing of this tick has been written yet.
    expect(socketFor(client, keys[0] as string).writableCorked).toBe(1);
    await new Promise((resolve) => process.nextTick(resolve));
    for (const key of keys) expect(socketFor(client, key).writableCorked).toBe(0);
    expect(await Promise.all(replies)).toEqual(keys.map(() => 'OK'));
    expect(await client.get(keys[19] as string)).toBe('v');
  });

  it('flush(key) writes what the tick holds on that connection now and keeps it corked for the rest', async () => {
    const corker = tickCorker(client);
    const key = `${prefix}:{flush}`;
    corker.cork(key);
    const socket = socketFor(client, key);
    const first = client.set(key, 'one', 'EX', 60);
    expect(socket.writableLength).toBeGreaterThan(0);
    corker.flush(key);
    expect(socket.writableLength).toBe(0);
    expect(socket.writableCorked).toBe(1);
    // What is issued after the flush is held again until the tick ends (or the next flush).
    const second = client.get(key);
    expect(socket.writableLength).toBeGreaterThan(0);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(socket.writableCorked).toBe(0);
    expect(await Promise.all([first, second])).toEqual(['OK', 'one']);
  });

  it('flushAll() writes what every connection it corked holds, and leaves uncorked ones alone', async () => {
    const corker = tickCorker(client);
    const keys = Array.from({ length: 12 }, (_, i) => `${prefix}:{all${i}}`);
    for (const key of keys) corker.cork(key);
    const replies = keys.map((key) => client.set(key, 'v', 'EX', 60));
    expect(keys.some((key) => socketFor(client, key).writableLength > 0)).toBe(true);
    corker.flushAll();
    for (const key of keys) {
      expect(socketFor(client, key).writableLength).toBe(0);
      expect(socketFor(client, key).writableCorked).toBe(1);
    }
    await new Promise((resolve) => process.nextTick(resolve));
    expect(await Promise.all(replies)).toEqual(keys.map(() => 'OK'));
  });

  it("flush leaves alone a connection another corker holds: that hold is the other's to end", async () => {
    const holder = tickCorker(client);
    const other = tickCorker(client);
    const key = `${prefix}:{held}`;
    holder.cork(key);
    const reply = client.set(key, 'v', 'EX', 60);
    const socket = socketFor(client, key);
    const held = socket.writableLength;
    expect(held).toBeGreaterThan(0);
    other.flush(key);
    other.flushAll();
    expect(socket.writableLength).toBe(held);
    expect(socket.writableCorked).toBe(1);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(await reply).toBe('OK');
  });

  it('leaves a connection that is not ready alone, so ioredis queues as usual', async () => {
    const idle = createTestClient(redisTargets(), topology, { lazyConnect: true }, { lazyConnect: true });
    try {
      const corker = tickCorker(idle);
      expect(() => corker.cork(`${prefix}:{idle}`)).not.toThrow();
      expect(() => corker.corkNode(undefined)).not.toThrow();
      // A node the cluster's pool does not know (yet, or any more) has no connection to cork.
      expect(() => corker.corkNode('127.0.0.1:1')).not.toThrow();
      expect(await idle.set(`${prefix}:{idle}`, 'v', 'EX', 60)).toBe('OK');
    } finally {
      idle.disconnect();
    }
  });

  it("nodeRouter finds a key's master and its ready connection, which serves the key", async () => {
    const router = nodeRouter(client);
    const key = `${prefix}:{routed}`;
    if (!(client instanceof Cluster)) {
      expect(router.nodeOf(key)).toBeUndefined();
      expect(router.readyConnection(undefined)).toBe(client);
      return;
    }
    const node = router.nodeOf(key) as string;
    const [host, port] = node.split(':');
    const master = client.nodes('master').find((m) => `${m.options.port}` === port);
    expect(master).toBeDefined();
    expect(Number(await master?.cluster('COUNTKEYSINSLOT', calculateSlot(key)))).toBeGreaterThanOrEqual(0);
    const connection = router.readyConnection(node) as Redis;
    expect(connection.options.host).toBe(host);
    // Written straight to that connection, with no routing: no MOVED.
    expect(await connection.set(key, 'v', 'EX', 60)).toBe('OK');
    expect(await client.get(key)).toBe('v');
    expect(router.readyConnection('127.0.0.1:1')).toBeUndefined();
    expect(router.readyConnection(undefined)).toBeUndefined();
  });

  it('nodeRouter gives no connection for a node that is not connected yet', async () => {
    const idle = createTestClient(redisTargets(), topology, { lazyConnect: true }, { lazyConnect: true });
    try {
      const router = nodeRouter(idle);
      expect(router.readyConnection(router.nodeOf(`${prefix}:{idle}`))).toBeUndefined();
    } finally {
      idle.disconnect();
    }
  });
});
