import {
  createTestClient,
  deleteByPrefix,
  escapeGlob,
  keysWithoutTtl,
  redisTargets,
  uniquePrefix,
} from '@austa/test-env/vitest';
import { Cluster, type Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisTokenStore } from '../src/redis-token-store.js';
import { tokenStoreContract } from './token-store-contract.js';

async function countKeys(client: Redis | Cluster, prefix: string): Promise<number> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  let count = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
  }
  return count;
}

describe.each(['standalone', 'cluster'] as const)('redis token store on %s', (topology) => {
  const client = createTestClient(redisTargets(), topology);
  const prefix = uniquePrefix(`mongo-token-${topology}`);
  const ttlSeconds = 3600;
  const store = createRedisTokenStore({ redis: client, prefix, ttlSeconds });

  afterAll(async () => {
    expect(await keysWithoutTtl(client, prefix)).toEqual([]);
    await deleteByPrefix(client, prefix);
    await client.quit();
  });

  tokenStoreContract(() => ({
    store,
    written: () => countKeys(client, prefix),
    name: (suffix) => `${topology}-${suffix}`,
  }));

  it('keeps each token in <prefix>:token:{<stream>} with the TTL, renewed on every save', async () => {
    const stream = `${topology}-layout`;
    await store.save(stream, { _data: '82AB' });
    const key = `${prefix}:token:{${stream}}`;
    expect(await client.get(key)).toBe('{"_data":"82AB"}');
    await client.expire(key, 10);
    await store.save(stream, { _data: '82AC' });
    const ttl = await client.ttl(key);
    expect(ttl).toBeGreaterThan(ttlSeconds - 60);
    expect(ttl).toBeLessThanOrEqual(ttlSeconds);
  });

  it('reports a corrupt stored value as E_TOKEN_STORE', async () => {
    const stream = `${topology}-corrupt`;
    await client.set(`${prefix}:token:{${stream}}`, 'not json', 'EX', 60);
    await expect(store.load(stream)).rejects.toMatchObject({ code: 'E_TOKEN_STORE' });
  });

  it('never touches keys of a stream whose name only looks like another', async () => {
    await store.save(`${topology}-a`, { _data: '1' });
    await store.save(`${topology}-a.b`, { _data: '2' });
    await store.delete(`${topology}-a`);
    expect(await store.load(`${topology}-a.b`)).toEqual({ _data: '2' });
  });
});
