import { randomBytes } from 'node:crypto';
import { createCodec } from '@austa/codec';
import type { Metrics } from '@austa/metrics';
import { scanKeys } from '@austa/redis-cluster';
import { escapeGlob } from '@austa/test-env/vitest';
import type { Cluster, Redis } from 'ioredis';
import { expect } from 'vitest';
import type { KeyLayout } from '../src/keys.js';
import type { ConversationStore } from '../src/store.js';

/** The store's key layout (private), for tests that look at or damage raw keys. */
export function layout(store: ConversationStore): KeyLayout {
  return (store as unknown as { keys: KeyLayout }).keys;
}

export function encryptingCodec() {
  return createCodec({ encryption: { currentKeyId: 'test-1', keys: { 'test-1': randomBytes(32) } } });
}

/** Every key under `prefix` with its type, TTL and raw contents, sorted: what a "nothing was written" check compares. */
export async function dump(
  client: Redis | Cluster,
  prefix: string,
): Promise<Array<[string, string, unknown]>> {
  const keys: string[] = [];
  for await (const key of scanKeys(client, `${escapeGlob(prefix)}*`)) keys.push(key);
  keys.sort();
  return Promise.all(
    keys.map(async (key): Promise<[string, string, unknown]> => {
      const type = await client.type(key);
      if (type === 'hash') return [key, type, await client.hgetallBuffer(key)];
      if (type === 'list') return [key, type, await client.lrangeBuffer(key, 0, -1)];
      if (type === 'zset') return [key, type, await client.zrange(key, 0, -1, 'WITHSCORES')];
      return [key, type, await client.getBuffer(key)];
    }),
  );
}

/** Every byte stored under `prefix`, keys, fields and values, as one buffer per item. */
export async function rawBytes(client: Redis | Cluster, prefix: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const [key, , value] of await dump(client, prefix)) {
    out.push(Buffer.from(key));
    if (Array.isArray(value)) for (const item of value) out.push(Buffer.from(item as Buffer | string));
    else if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
      for (const [field, item] of Object.entries(value as Record<string, Buffer>)) {
        out.push(Buffer.from(field), item);
      }
    } else if (value) out.push(value as Buffer);
  }
  return out;
}

/** Asserts that `work` fails with `code` and leaves everything under `prefix` exactly as it was. */
export async function expectRejectedUnchanged(
  client: Redis | Cluster,
  prefix: string,
  work: () => Promise<unknown>,
  code: string,
): Promise<void> {
  const before = await dump(client, prefix);
  await expect(work()).rejects.toMatchObject({ code });
  expect(await dump(client, prefix)).toEqual(before);
}

/** Reads one sample from the exposition text; 0 when the series does not exist yet. */
export async function sample(
  metrics: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const wanted = Object.entries(labels);
  for (const line of (await metrics.text()).split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every(([key, value]) => line.includes(`${key}="${value}"`))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return 0;
}

/**
 * A loopback TCP proxy in front of a real Redis node, so a test can lose replies (the request still reaches Redis
 * and runs) and then reset the connection: what a network failure does to a write in flight.
 */
export interface ReplyDroppingProxy {
  port: number;
  /** While true, replies from Redis are dropped. */
  swallowReplies: boolean;
  /** Destroys every proxied connection (a reset) and keeps listening. */
  dropAll(): void;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }): Promise<ReplyDroppingProxy> {
  const { createServer, connect } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const state = { swallowReplies: false };
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.on('data', (data: Buffer) => {
      if (!state.swallowReplies) client.write(data);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get swallowReplies() {
      return state.swallowReplies;
    },
    set swallowReplies(value: boolean) {
      state.swallowReplies = value;
    },
    dropAll() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Polls `read` until `done` holds or `timeoutMs` passes; returns the last value read. */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    value = await read();
  }
  return value;
}
