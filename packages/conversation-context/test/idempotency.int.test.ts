import { createMetrics } from '@austa/metrics';
import { createRedisClient, type RedisClient, type RedisClientOptions } from '@austa/redis-cluster';
import {
  createTestClient,
  deleteByPrefix,
  keySlot,
  keysWithoutTtl,
  redisTargets,
  slotOwner,
  uniquePrefix,
} from '@austa/test-env/vitest';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConversationStore } from '../src/index.js';
import {
  eventually,
  expectRejectedUnchanged,
  layout,
  type ReplyDroppingProxy,
  startProxy,
} from './support.js';

type Topology = 'standalone' | 'cluster';
const owner = { userId: 'patient-1' };
const silent = { warn: () => {}, error: () => {} };

describe.each<Topology>(['standalone', 'cluster'])('idempotent appends on %s', (topology) => {
  let plain: Redis | Cluster;
  let prefix: string;
  let counter = 0;
  const base = () => `${prefix}:${++counter}`;

  beforeAll(() => {
    plain = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`conversation-idem-${topology}`);
  });

  afterAll(async () => {
    expect(await keysWithoutTtl(plain, prefix)).toEqual([]);
    await deleteByPrefix(plain, prefix);
    await plain.quit();
  });

  it('an append repeated with the same idempotencyKey is stored once and answers with the first seq', async () => {
    const store = createConversationStore({ redis: plain, prefix: base(), ttlSeconds: 600, maxMessages: 3 });
    const first = await store.addMessage(
      'c',
      { role: 'user', content: 'a' },
      { owner, idempotencyKey: 'msg-1' },
    );
    await store.addMessage('c', { role: 'assistant', content: 'b' }, { owner, idempotencyKey: 'msg-2' });
    const again = await store.addMessage(
      'c',
      { role: 'user', content: 'a' },
      { owner, idempotencyKey: 'msg-1' },
    );
    expect(first).toMatchObject({ duplicate: false, created: true });
    expect(again).toMatchObject({ duplicate: true, created: false, trimmed: [], messageCount: 2 });
    expect(again.message.seq).toBe(first.message.seq);
    const stored = await store.getRecentMessages('c', undefined, { owner });
    expect(stored.map((m) => m.content)).toEqual(['a', 'b']);
    expect((await store.getStats('c', { owner }))?.addedMessages).toBe(2);
    // Another conversation does not share keys with this one.
    expect(
      (await store.addMessage('d', { role: 'user', content: 'a' }, { owner, idempotencyKey: 'msg-1' }))
        .duplicate,
    ).toBe(false);
  });

  it('concurrent appends with distinct keys are all stored, and their repeats none', async () => {
    const store = createConversationStore({
      redis: plain,
      prefix: base(),
      ttlSeconds: 600,
      maxMessages: 100,
    });
    const send = () =>
      Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          store.addMessage('c', { role: 'user', content: `m${i}` }, { owner, idempotencyKey: `k${i}` }),
        ),
      );
    const firsts = await send();
    const repeats = await send();
    expect(repeats.every((result) => result.duplicate)).toBe(true);
    expect(repeats.map((r) => r.message.seq)).toEqual(firsts.map((r) => r.message.seq));
    expect((await store.getStats('c', { owner }))?.messageCount).toBe(10);
  });

  it('remembers a key for at least the last 15 appends of the conversation', async () => {
    const store = createConversationStore({
      redis: plain,
      prefix: base(),
      ttlSeconds: 600,
      maxMessages: 100,
    });
    for (let i = 0; i < 15; i++) {
      await store.addMessage('c', { role: 'user', content: `m${i}` }, { owner, idempotencyKey: `key-${i}` });
    }
    const oldest = await store.addMessage(
      'c',
      { role: 'user', content: 'm0' },
      { owner, idempotencyKey: 'key-0' },
    );
    expect(oldest).toMatchObject({ duplicate: true, message: { seq: 1 } });
    expect((await store.getStats('c', { owner }))?.messageCount).toBe(15);
  });

  it('refuses an idempotencyKey that is not a 1-256 character string, writing nothing', async () => {
    const store = createConversationStore({ redis: plain, prefix: base(), ttlSeconds: 600, maxMessages: 3 });
    for (const idempotencyKey of ['', 'x'.repeat(257), 'a\nb', 42, null]) {
      await expectRejectedUnchanged(
        plain,
        prefix,
        () =>
          store.addMessage(
            'c',
            { role: 'user', content: 'a' },
            {
              owner,
              idempotencyKey: idempotencyKey as string,
            },
          ),
        'E_INVALID_ARGUMENT',
      );
    }
  });

  it('an append whose reply is lost fails with E_MAYBE_APPLIED on a @austa/redis-cluster client, and its retry with the same key does not duplicate it', async () => {
    const targets = redisTargets();
    const real = topology === 'cluster' ? targets.cluster.nodes : [targets.standalone];
    const proxies = new Map<number, ReplyDroppingProxy>();
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
            resendInFlightWrites: false,
          }
        : {
            url: `redis://127.0.0.1:${proxies.get(first.port)?.port}`,
            name: 'proxied',
            resendInFlightWrites: false,
          };
    const client: RedisClient = createRedisClient(options, { metrics: createMetrics(), logger: silent });
    try {
      await client.ready();
      const store = createConversationStore({
        redis: client.client,
        prefix: base(),
        ttlSeconds: 600,
        maxMessages: 50,
      });
      await store.addMessage('c', { role: 'user', content: 'before' }, { owner });
      const keys = layout(store).conversation('c');
      const port =
        topology === 'cluster'
          ? await slotOwner(targets.cluster, keySlot(keys.meta))
          : targets.standalone.port;
      const proxy = proxies.get(port) as ReplyDroppingProxy;
      proxy.swallowReplies = true;
      const message = { role: 'user' as const, content: 'lost reply' };
      const lost = store.addMessage('c', message, { owner, idempotencyKey: 'turn-2' }).then(
        () => 'acknowledged',
        (error: { code?: string }) => error.code ?? 'error',
      );
      // The append reaches Redis and runs; its reply is dropped, then the connection resets.
      expect(
        await eventually(
          () => plain.llen(keys.messages),
          (n) => n === 2,
          5000,
        ),
      ).toBe(2);
      proxy.swallowReplies = false;
      proxy.dropAll();
      expect(await lost).toBe('E_MAYBE_APPLIED');
      const retried = await eventually(
        () =>
          store.addMessage('c', message, { owner, idempotencyKey: 'turn-2' }).then(
            (result) => result,
            () => undefined,
          ),
        (result) => result !== undefined,
        5000,
      );
      expect(retried).toMatchObject({ duplicate: true, message: { seq: 2 } });
      const stored = await store.getRecentMessages('c', undefined, { owner });
      expect(stored.map((m) => m.content)).toEqual(['before', 'lost reply']);
    } finally {
      await client.close();
      await Promise.all([...proxies.values()].map((proxy) => proxy.close()));
    }
  });
});
