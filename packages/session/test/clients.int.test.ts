import { createMetrics } from '@austa/metrics';
import { createRedisClient, type RedisClient, RedisMaybeAppliedError } from '@austa/redis-cluster';
import { keysWithoutTtl, redisTargets } from '@austa/test-env/vitest';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { codeOf, harness, type Topology } from './support.js';

function austaClient(topology: Topology, metrics: ReturnType<typeof createMetrics>): RedisClient {
  const targets = redisTargets();
  const common = {
    name: 'session-test',
    commandTimeoutMs: 2000,
    enableAutoPipelining: true,
    resendInFlightWrites: false,
  };
  const dependencies = { metrics, logger: { warn: () => {}, error: () => {} } };
  return topology === 'cluster'
    ? createRedisClient({ ...common, cluster: { nodes: targets.cluster.nodes } }, dependencies)
    : createRedisClient({ ...common, url: targets.standalone.url }, dependencies);
}

/**
 * The client, except that the script calls for which `loseReply()` answers true run on Redis and then fail as
 * `@austa/redis-cluster` fails a write whose connection closed before its reply: applied, but not acknowledged.
 */
function losingReplies(client: Redis | Cluster, loseReply: (keys: string[]) => boolean): Redis | Cluster {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'evalshaBuffer' && property !== 'evalBuffer') return value;
      return async (script: string, count: number, ...rest: unknown[]) => {
        const reply = await (value as (...args: unknown[]) => Promise<unknown>).call(
          target,
          script,
          count,
          ...rest,
        );
        if (loseReply(rest.slice(0, count).map(String))) throw new RedisMaybeAppliedError('evalsha');
        return reply;
      };
    },
  });
}

describe.each(['standalone', 'cluster'] as const)(
  'session store on %s with other clients',
  (topology: Topology) => {
    const h = harness(topology, `session-clients-${topology}`);
    const metrics = createMetrics();
    const austa = austaClient(topology, metrics);

    afterAll(async () => {
      expect(await keysWithoutTtl(h.client, h.prefix)).toEqual([]);
      await h.cleanup();
      await h.client.quit();
      await austa.close();
    });

    it('works on a createRedisClient client with auto-pipelining, and times nothing twice', async () => {
      const store = h.store({ redis: austa.client, metrics });
      const created = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.createSession({ userId: `u-auto-${i % 4}`, data: { i } })),
      );
      const reads = await Promise.all(created.map((c) => store.getSession(c.token)));
      expect(reads.map((r) => (r?.data as { i: number } | undefined)?.i)).toEqual(created.map((_, i) => i));
      const updated = await store.updateSession(created[0]?.token as string, { extra: true });
      expect(updated.data).toEqual({ i: 0, extra: true });
      expect(await store.extendSession(created[1]?.token as string)).not.toBeNull();
      expect(await store.getSessionCount('u-auto-0')).toBe(5);
      expect((await store.getUserSessions('u-auto-1')).length).toBe(5);
      expect(await store.deleteSession(created[2]?.token as string)).toBe(true);
      expect(await store.deleteUserSessions('u-auto-3')).toBe(5);
      // The client records its own commands, and the store adds none: 20 reads, the read of the update and the one
      // extend makes for its audit event are 22 GETs, not 44.
      const text = await metrics.text();
      expect(text).toContain(
        'db_client_operation_duration_seconds_count{db_system_name="redis",db_operation_name="get",db_collection_name="",error_type=""} 22',
      );
      expect(text).toContain('austa_session_operations_total{operation="get_session",result="ok"} 20');
    });

    it('sends a create of ours again when its reply was lost, and counts the session once', async () => {
      let lose = 1;
      const client = losingReplies(h.client, () => lose-- > 0);
      const store = h.store({ redis: client, maxSessionsPerUser: 3 });
      const created = await store.createSession({ userId: 'u-lost-create', data: { n: 1 } });
      expect(lose).toBe(-1);
      expect((await store.getSession(created.token))?.data).toEqual({ n: 1 });
      expect(await store.getSessionCount('u-lost-create')).toBe(1);
    });

    it('reports E_MAYBE_APPLIED for an update whose reply was lost, having applied it once', async () => {
      const store = h.store();
      const created = await store.createSession({ userId: 'u-lost-update', data: { count: 0 } });
      let lose = false;
      const losing = h.store({ redis: losingReplies(h.client, () => lose) });
      lose = true;
      expect(
        await codeOf(() =>
          losing.updateSession<{ count: number }>(created.token, (data) => ({ count: data.count + 1 })),
        ),
      ).toBe('E_MAYBE_APPLIED');
      lose = false;
      const session = await store.getSession<{ count: number }>(created.token);
      expect(session?.data).toEqual({ count: 1 });
      expect(session?.version).toBe(2);
    });

    it('sends a logout again when its reply was lost: the session is gone', async () => {
      const store = h.store();
      const created = await store.createSession({ userId: 'u-lost-delete' });
      let lose = 1;
      const losing = h.store({ redis: losingReplies(h.client, () => lose-- > 0) });
      await losing.deleteSession(created.token);
      expect(lose).toBe(-1);
      expect(await store.getSession(created.token)).toBeNull();
      expect(await store.getSessionCount('u-lost-delete')).toBe(0);
    });
  },
);
