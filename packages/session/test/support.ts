import { createCodec } from '@austa/codec';
import { escapeGlob, scanKeys } from '@austa/redis-cluster';
import { createTestClient, deleteByPrefix, redisTargets, uniquePrefix } from '@austa/test-env/vitest';
import type { Cluster, Redis } from 'ioredis';
import {
  createSessionStore,
  type SessionAuditEvent,
  SessionError,
  type SessionStoreOptions,
} from '../src/index.js';

export type Topology = 'standalone' | 'cluster';

export const KEY = Buffer.from('8f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0', 'hex');

/** Runs `action` and returns the `code` of the SessionError it threw; fails for anything else. */
export async function codeOf(action: () => Promise<unknown>): Promise<string> {
  try {
    await action();
  } catch (error) {
    if (SessionError.isInstance(error)) return error.code;
    throw new Error(`expected a SessionError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected a SessionError, but the call succeeded');
}

export interface Harness {
  client: Redis | Cluster;
  prefix: string;
  events: SessionAuditEvent[];
  store(overrides?: Partial<SessionStoreOptions>): ReturnType<typeof createSessionStore>;
  /** Every key under the prefix (SCAN on every master). */
  keys(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export function harness(topology: Topology, label: string): Harness {
  const client = createTestClient(redisTargets(), topology, { commandTimeout: 5000 });
  const prefix = uniquePrefix(label);
  const events: SessionAuditEvent[] = [];
  return {
    client,
    prefix,
    events,
    store(overrides = {}) {
      return createSessionStore({
        redis: client,
        prefix,
        idleTimeoutSeconds: 600,
        absoluteTimeoutSeconds: 3600,
        maxSessionsPerUser: 5,
        codec: createCodec({ encryption: { currentKeyId: 'k1', keys: { k1: KEY } } }),
        onAudit: (event) => events.push(event),
        ...overrides,
      });
    },
    keys: () => scanKeysOf(client, prefix),
    async cleanup() {
      await deleteByPrefix(client, prefix);
    },
  };
}

async function scanKeysOf(client: Redis | Cluster, prefix: string): Promise<string[]> {
  const found = new Set<string>();
  for await (const key of scanKeys(client, `${escapeGlob(prefix)}*`)) found.add(key);
  return [...found].sort();
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

/** Every key name under the harness' prefix and every value stored there (strings, hash fields, zset members). */
export async function everythingStored(h: Harness): Promise<Buffer[]> {
  const everything: Buffer[] = [];
  for (const key of await h.keys()) {
    everything.push(Buffer.from(key));
    const type = await h.client.type(key);
    if (type === 'hash') {
      const fields = await h.client.hgetallBuffer(key);
      everything.push(...Object.values(fields), ...Object.keys(fields).map((field) => Buffer.from(field)));
    }
    if (type === 'zset') everything.push(...(await h.client.zrangeBuffer(key, 0, -1)));
    if (type === 'string') everything.push((await h.client.getBuffer(key)) ?? Buffer.alloc(0));
  }
  return everything;
}
