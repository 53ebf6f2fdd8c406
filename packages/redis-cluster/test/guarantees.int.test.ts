import { createMetrics } from '@austa/metrics';
import {
  createTestClient,
  deleteByPrefix,
  keySlot,
  pauseNode,
  redisTargets,
  resumeNode,
  slotOwner,
  uniquePrefix,
} from '@austa/test-env/vitest';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient, type RedisClientOptions } from '../src/index.js';
import { eventually, measured, measuredAll, startProxy, type TcpProxy } from './support.js';

type Topology = 'standalone' | 'cluster';

const silent = { warn: () => {}, error: () => {} };

/**
 * A client that reaches every node through its own loopback proxy (a cluster announces the real ports; natMap sends
 * them to the proxies), so a test can lose replies and reset connections under a real server.
 */
async function proxied(topology: Topology, extra: Partial<RedisClientOptions> = {}) {
  const targets = redisTargets();
  const real = topology === 'cluster' ? targets.cluster.nodes : [targets.standalone];
  const proxies = new Map<number, TcpProxy>();
  for (const node of real) proxies.set(node.port, await startProxy(node));
  const natMap = Object.fromEntries(
    real.map((node) => [
      `${node.host}:${node.port}`,
      { host: '127.0.0.1', port: proxies.get(node.port)?.port ?? 0 },
    ]),
  );
  const first = real[0] as { port: number };
  const options: RedisClientOptions =
    topology === 'cluster'
      ? {
          cluster: { nodes: [`127.0.0.1:${proxies.get(first.port)?.port}`], natMap },
          name: 'proxied',
          ...extra,
        }
      : { url: `redis://127.0.0.1:${proxies.get(first.port)?.port}`, name: 'proxied', ...extra };
  const metrics = createMetrics();
  const client = createRedisClient(options, { metrics, logger: silent });
  return {
    client,
    metrics,
    proxies,
    close: () => Promise.all([...proxies.values()].map((proxy) => proxy.close())),
  };
}

describe.each<Topology>(['standalone', 'cluster'])('what the client promises, on %s', (topology) => {
  let plain: Redis | Cluster;
  let prefix: string;
  const clients: RedisClient[] = [];

  beforeAll(() => {
    plain = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`promise-${topology}`);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });
  afterAll(async () => {
    await deleteByPrefix(plain, prefix);
    await plain.quit();
  });

  /**
   * Sends an INCR through the proxy of its master, lets Redis run it while its reply is swallowed, then resets the
   * connection: the write was applied and its caller has no answer yet.
   */
  async function loseIncrReply(client: RedisClient, proxies: Map<number, TcpProxy>, tag: string) {
    const key = `${prefix}:{${tag}}:n`;
    await client.client.get(key);
    const port =
      topology === 'cluster'
        ? await slotOwner(redisTargets().cluster, keySlot(tag))
        : redisTargets().standalone.port;
    const proxy = proxies.get(port) as TcpProxy;
    proxy.swallowReplies = true;
    const outcome = client.client.incr(key).then(
      (value) => `ok ${value}`,
      (error: { code?: string }) => error.code ?? 'error',
    );
    await eventually(
      () => plain.get(key),
      (value) => value === '1',
      5000,
      20,
    );
    proxy.swallowReplies = false;
    proxy.dropAll();
    return { key, proxy, outcome };
  }

  it('with resendInFlightWrites: false, does not send again a write whose reply was lost with its connection: E_MAYBE_APPLIED, applied once', async () => {
    const { client, metrics, proxies, close } = await proxied(topology, { resendInFlightWrites: false });
    clients.push(client);
    try {
      await client.ready();
      const { key, proxy, outcome } = await loseIncrReply(client, proxies, 'lost');
      expect(await outcome).toBe('E_MAYBE_APPLIED');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await plain.get(key)).toBe('1');
      expect(await measured(metrics, 'incr', 'maybe_applied')).toBe(1);
      // A read lost the same way is simply sent again.
      proxy.swallowReplies = true;
      const read = client.client.get(key);
      await new Promise((resolve) => setTimeout(resolve, 100));
      proxy.swallowReplies = false;
      proxy.dropAll();
      expect(await read).toBe('1');
    } finally {
      await plain.expire(`${prefix}:{lost}:n`, 60);
      await close();
    }
  });

  it('by default sends such a write again, as ioredis does: it runs twice', async () => {
    const { client, proxies, close } = await proxied(topology);
    clients.push(client);
    try {
      await client.ready();
      const { key, outcome } = await loseIncrReply(client, proxies, 'resent');
      // At-least-once: the INCR went again after the reconnect, and its reply is the second run.
      expect(await outcome).toBe('ok 2');
      expect(await plain.get(key)).toBe('2');
    } finally {
      await plain.expire(`${prefix}:{resent}:n`, 60);
      await close();
    }
  });

  // ioredis' own suite sends a PING and leaves its promise alone while the socket times out: it must not reject.
  it('sends again a PING or ECHO whose reply was lost with its connection: they change nothing', async () => {
    const { client, metrics, proxies, close } = await proxied(topology);
    clients.push(client);
    try {
      await client.ready();
      for (const proxy of proxies.values()) proxy.swallowReplies = true;
      const ping = client.client.ping();
      const echo = client.client.echo('still here');
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const proxy of proxies.values()) {
        proxy.swallowReplies = false;
        proxy.dropAll();
      }
      expect(await ping).toBe('PONG');
      expect(await echo).toBe('still here');
      expect(await measured(metrics, 'ping')).toBe(1);
      expect(await measured(metrics, 'echo')).toBe(1);
      expect(await measuredAll(metrics, 'ping')).toBe(1);
    } finally {
      await close();
    }
  });

  it('cuts off a command that timed out behind a blocking command, so it never runs when the block ends', async () => {
    const metrics = createMetrics();
    const options: RedisClientOptions =
      topology === 'cluster'
        ? { cluster: { nodes: redisTargets().cluster.nodes }, commandTimeoutMs: 500 }
        : { url: redisTargets().standalone.url, commandTimeoutMs: 500 };
    const client = createRedisClient(options, { metrics, logger: silent });
    clients.push(client);
    await client.ready();
    const counter = `${prefix}:{hol}:n`;
    const queue = `${prefix}:{hol}:q`;
    await plain.set(counter, '0', 'EX', 60);
    const blocked = client.client.blpop(queue, 2).then(
      () => 'returned',
      (error: { code?: string; message: string }) => error.code ?? error.message,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    await expect(client.client.incr(counter)).rejects.toThrow(/timed out/);
    // The BLPOP ends after 2 s; an INCR still queued behind it on the server would run then.
    await blocked;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(await plain.get(counter)).toBe('0');
    expect(await client.client.ping()).toBe('PONG');
  });

  it('refuses a duplicate() once close() has started', async () => {
    const client = createRedisClient(
      topology === 'cluster'
        ? { cluster: { nodes: redisTargets().cluster.nodes } }
        : { url: redisTargets().standalone.url },
      { logger: silent },
    );
    await client.ready();
    await client.close();
    expect(() => client.client.duplicate()).toThrowError(
      expect.objectContaining({ code: 'E_CLIENT_CLOSED' }),
    );
  });

  it('close() returns only once in-flight commands have failed and the sockets are closed', async () => {
    const target = topology === 'cluster' ? redisTargets().cluster : redisTargets().standalone;
    const client = createRedisClient(
      topology === 'cluster'
        ? { cluster: { nodes: redisTargets().cluster.nodes }, commandTimeoutMs: 800 }
        : { url: redisTargets().standalone.url, commandTimeoutMs: 800 },
      { logger: silent },
    );
    await client.ready();
    const key = `${prefix}:{closing}:q`;
    const copy = client.client.duplicate() as Redis | Cluster;
    await copy.ping();
    const port =
      topology === 'cluster' ? await slotOwner(redisTargets().cluster, keySlot('closing')) : undefined;
    await pauseNode(target, port);
    let settled = false;
    const inFlight = copy.blpop(key, 5).finally(() => {
      settled = true;
    });
    inFlight.catch(() => undefined);
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      await client.close();
      const closedAfter = Date.now() - started;
      await Promise.resolve();
      expect(closedAfter).toBeLessThan(800 + 500);
      expect(settled).toBe(true);
      // A Cluster reports "close" again once its last node connection is gone; either way nothing is connected.
      expect(['end', 'close']).toContain(copy.status);
      expect(['end', 'close']).toContain(client.client.status);
      const nodes = topology === 'cluster' ? (copy as Cluster).nodes('all') : [copy as Redis];
      expect(nodes.filter((node) => node.status !== 'end')).toEqual([]);
    } finally {
      await resumeNode(target, port);
    }
  });

  it('does not record the commands ioredis sends on its own (ready check, client setup)', async () => {
    const metrics = createMetrics();
    const client = createRedisClient(
      topology === 'cluster'
        ? { cluster: { nodes: redisTargets().cluster.nodes }, enableAutoPipelining: true }
        : { url: redisTargets().standalone.url, enableAutoPipelining: true },
      { metrics, logger: silent },
    );
    clients.push(client);
    await client.ready();
    await client.client.get(`${prefix}:{internal}:a`);
    const copy = client.client.duplicate() as Redis | Cluster;
    await copy.get(`${prefix}:{internal}:a`);
    for (const name of ['cluster', 'info', 'client', 'readonly', 'asking', 'select', 'auth']) {
      expect(await measuredAll(metrics, name), name).toBe(0);
    }
    expect(await measured(metrics, 'get')).toBe(2);
  });
});

describe('what the client promises in odd configurations', () => {
  const clients: RedisClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
  });

  it('refuses a database the server does not have instead of writing to database 0', async () => {
    const standalone = redisTargets().standalone;
    const client = createRedisClient({ url: `${standalone.url}/999` }, { logger: silent });
    clients.push(client);
    await expect(client.ready(5000)).rejects.toMatchObject({ code: 'E_INVALID_CONFIG' });
    const key = `${uniquePrefix('db999')}:k`;
    await expect(client.client.set(key, 'v', 'EX', 60)).rejects.toMatchObject({ code: 'E_INVALID_CONFIG' });
    const plain = createTestClient(redisTargets(), 'standalone');
    try {
      expect(await plain.exists(key)).toBe(0);
    } finally {
      await plain.quit();
    }
    expect((await client.health()).problems[0]).toMatch(/Database 999 does not exist/);
  });

  it('records a MULTI that fails before any slot map with the error its caller got, EXEC included', async () => {
    const proxy = await startProxy(
      { host: '127.0.0.1', port: redisTargets().cluster.nodes[0]?.port ?? 0 },
      true,
    );
    const metrics = createMetrics();
    const client = createRedisClient(
      { cluster: { nodes: [`127.0.0.1:${proxy.port}`] }, commandTimeoutMs: 500 },
      { metrics, logger: silent },
    );
    clients.push(client);
    try {
      const seen = await client.client
        .multi()
        .incr('t:multi-noslots:{a}')
        .exec()
        .then(
          () => 'ok',
          (error: Error) => error.message,
        );
      expect(seen).not.toBe('ok');
      for (const name of ['multi', 'incr', 'exec']) expect(await measuredAll(metrics, name), name).toBe(1);
      expect(await measured(metrics, 'multi')).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('times MULTI and XREAD by what they really do: no block inside MULTI, a stream named "block" is a stream', async () => {
    const standalone = redisTargets().standalone;
    const client = createRedisClient({ url: standalone.url, commandTimeoutMs: 500 }, { logger: silent });
    clients.push(client);
    await client.ready();
    await pauseNode(standalone);
    try {
      const started = Date.now();
      const outcomes = await Promise.all([
        client.client
          .multi()
          .blpop('t:noblock:q', 0)
          .exec()
          .then(
            () => 'ok',
            (error: Error) => error.message,
          ),
        client.client.xread('STREAMS', 'block', '0').then(
          () => 'ok',
          (error: Error) => error.message,
        ),
      ]);
      expect(outcomes.every((outcome) => /timed out/.test(outcome))).toBe(true);
      expect(Date.now() - started).toBeLessThan(500 + 1500);
    } finally {
      await resumeNode(standalone);
    }
  });
});
