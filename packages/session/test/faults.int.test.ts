import { scanKeys } from '@austa/redis-cluster';
import {
  clusterTopology,
  createTestClient,
  deleteByPrefix,
  failover,
  keySlot,
  killNode,
  migrateSlot,
  pauseNode,
  redisTarget,
  redisTargets,
  restoreCluster,
  resumeNode,
  slotOwner,
  uniquePrefix,
  waitForPromotion,
} from '@austa/test-env/vitest';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createSessionStore, type SessionStore, type SessionStoreOptions } from '../src/index.js';
import { createHasher, KeyBuilder } from '../src/keys.js';
import { codeOf, sleep } from './support.js';

const COMMAND_TIMEOUT_MS = 600;

function storeOn(
  client: Redis | Cluster,
  prefix: string,
  overrides: Partial<SessionStoreOptions> = {},
): SessionStore {
  return createSessionStore({
    redis: client,
    prefix,
    idleTimeoutSeconds: 600,
    absoluteTimeoutSeconds: 3600,
    maxSessionsPerUser: 1000,
    ...overrides,
  });
}

/** Every store call, for the "Redis is down" checks. */
function everyCall(store: SessionStore, token: string): Array<[string, () => Promise<unknown>]> {
  return [
    ['createSession', () => store.createSession({ userId: 'u-down' })],
    ['getSession', () => store.getSession(token)],
    ['updateSession', () => store.updateSession(token, { a: 1 })],
    ['deleteSession', () => store.deleteSession(token)],
    ['extendSession', () => store.extendSession(token)],
    ['getUserSessions', () => store.getUserSessions('u-down')],
    ['deleteUserSessions', () => store.deleteUserSessions('u-down')],
    ['getSessionCount', () => store.getSessionCount('u-down')],
  ];
}

async function expectFastTypedFailures(store: SessionStore, token: string, boundMs: number) {
  for (const [name, call] of everyCall(store, token)) {
    const started = Date.now();
    const code = await codeOf(call);
    const elapsed = Date.now() - started;
    expect({ name, code }).toEqual({ name, code: 'E_REDIS_UNAVAILABLE' });
    expect(elapsed, `${name} took ${elapsed} ms`).toBeLessThan(boundMs);
  }
}

/** A cluster client that gives up quickly: a short command timeout and almost no redirection retries. */
function fastFailingCluster(): Cluster {
  return createTestClient(
    redisTargets(),
    'cluster',
    { commandTimeout: COMMAND_TIMEOUT_MS },
    { maxRedirections: 2, retryDelayOnFailover: 100 },
  );
}

/** Runs `action` while a cluster node is stopped (SIGSTOP), then resumes it and waits for a healthy cluster. */
async function whilePaused(port: number, action: () => Promise<void>): Promise<void> {
  const cluster = redisTarget('cluster');
  await pauseNode(cluster, port);
  try {
    await action();
  } finally {
    await resumeNode(cluster, port);
    await restoreCluster(cluster);
  }
}

/** Drops a client that may hold dead connections, and removes the test's keys through a fresh one. */
async function discardCluster(client: Redis | Cluster, prefix: string): Promise<void> {
  client.disconnect();
  const fresh = createTestClient(redisTargets(), 'cluster');
  await deleteByPrefix(fresh, prefix);
  await fresh.quit();
}

describe('session store when Redis is down', () => {
  const prefix = uniquePrefix('session-down');

  it('answers every call on a paused standalone server with E_REDIS_UNAVAILABLE within the command timeout', async () => {
    const target = redisTarget('standalone');
    const client = createTestClient(redisTargets(), 'standalone', {
      commandTimeout: COMMAND_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
    });
    const store = storeOn(client, prefix);
    const { token } = await store.createSession({ userId: 'u-down' });
    await pauseNode(target);
    try {
      // Each call may wait for at most one command timeout per round trip it makes (at most two); plus headroom.
      await expectFastTypedFailures(store, token, 2 * COMMAND_TIMEOUT_MS + 1000);
    } finally {
      await resumeNode(target);
    }
    // Commands already written to the paused server run when it resumes (deleteSession among them): check that the
    // store works again, not that the first session survived.
    const after = await store.createSession({ userId: 'u-down' });
    expect(await store.getSession(after.token)).not.toBeNull();
    await deleteByPrefix(client, prefix);
    client.disconnect();
  });

  it('answers every call for a user whose cluster master is paused with E_REDIS_UNAVAILABLE within the command timeout', async () => {
    const cluster = redisTarget('cluster');
    const client = fastFailingCluster();
    const store = storeOn(client, prefix);
    const { token } = await store.createSession({ userId: 'u-down' });
    const master = await slotOwner(cluster, keySlot(`${prefix}:u:{${token.slice(0, 22)}}`));
    await whilePaused(master, () => expectFastTypedFailures(store, token, 2 * COMMAND_TIMEOUT_MS + 1000));
    await discardCluster(client, prefix);
  });
});

describe('cleanupExpiredSessions with an unreachable master', () => {
  it('fails whole with E_INCOMPLETE_SCAN within the scan timeout, never with a partial cleanup', async () => {
    const cluster = redisTarget('cluster');
    const client = fastFailingCluster();
    const prefix = uniquePrefix('session-cleanup-down');
    const store = storeOn(client, prefix, { idleTimeoutSeconds: 0.2, absoluteTimeoutSeconds: 60 });
    for (let i = 0; i < 10; i++) await store.createSession({ userId: `u-${i}` });
    const master = (await clusterTopology(cluster)).masters[0]?.port ?? 0;
    await whilePaused(master, async () => {
      const started = Date.now();
      expect(await codeOf(() => store.cleanupExpiredSessions())).toBe('E_INCOMPLETE_SCAN');
      // scanKeys bounds its reachability check by its own timeout (5 s by default).
      expect(Date.now() - started).toBeLessThan(5_000 + 2_000);
    });
    await discardCluster(client, prefix);
  });
});

describe('session store during cluster failovers and slot migrations', () => {
  const cluster = redisTarget('cluster');
  const clients: Array<Redis | Cluster> = [];
  const client = () => {
    const created = createTestClient(
      redisTargets(),
      'cluster',
      { commandTimeout: 5000 },
      {
        // Outlast a failover at cluster-node-timeout 2000 ms: 300 ms x 40 = 12 s of retries.
        retryDelayOnFailover: 300,
        retryDelayOnClusterDown: 300,
        maxRedirections: 40,
      },
    );
    clients.push(created);
    return created;
  };

  afterEach(async () => {
    await restoreCluster(cluster);
  });

  afterAll(async () => {
    for (const created of clients) created.disconnect();
  });

  /**
   * Creates and reads sessions in a loop while the master of one user's slot is killed; returns the tokens whose
   * createSession was acknowledged and how many of those are readable after the promotion.
   */
  async function killDuringLoop(replicated: boolean) {
    const redis = client();
    const prefix = uniquePrefix(`session-kill-${replicated ? 'replicated' : 'default'}`);
    const store = storeOn(
      redis,
      prefix,
      replicated ? { durability: 'replicated', replicationTimeoutMs: 2000 } : {},
    );
    const userId = 'u-failover';
    const probe = await store.createSession({ userId });
    const slot = keySlot(`${prefix}:u:{${probe.token.slice(0, 22)}}`);
    const master = await slotOwner(cluster, slot);
    const acknowledged: string[] = [probe.token];
    const failures: Record<string, number> = {};
    const firstMessages: Record<string, string> = {};
    const started = Date.now();
    const loop = (async () => {
      while (Date.now() - started < 9_000) {
        try {
          const created = await store.createSession({ userId, data: { at: Date.now() } });
          acknowledged.push(created.token);
          await store.getSession(created.token);
        } catch (error) {
          const code = (error as { code?: string }).code ?? 'untyped';
          failures[code] = (failures[code] ?? 0) + 1;
          const cause =
            (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
          if (failures[code] === 1) firstMessages[code] = cause.slice(0, 120);
        }
        // Stay below maxSessionsPerUser (1000): an eviction must not be mistaken for a loss.
        if (acknowledged.length >= 950) break;
      }
    })();
    await sleep(400);
    await killNode(cluster, master);
    const promoted = await waitForPromotion(cluster, master, 20_000);
    await loop;
    let readable = 0;
    for (const token of acknowledged) {
      if (await store.getSession(token, { touch: false })) readable++;
    }
    // On a quiet machine the loop can reach its count before the kill: a session created now shows the store works
    // on the promoted master whatever the loop saw. (Not with 'replicated': the promoted master has no replica yet.)
    let recovered: boolean | undefined;
    if (!replicated) {
      const after = await store.createSession({ userId });
      recovered = (await store.getSession(after.token, { touch: false })) !== null;
    }
    await deleteByPrefix(redis, prefix);
    return {
      acknowledged: acknowledged.length,
      readable,
      recovered,
      failures,
      firstMessages,
      promoted,
      master,
    };
  }

  it("with durability 'replicated', every acknowledged session survives the kill of its master", async () => {
    const result = await killDuringLoop(true);
    console.log(`[session failover, replicated] ${JSON.stringify(result)}`);
    expect(Object.keys(result.failures).every((code) => code.startsWith('E_'))).toBe(true);
    expect(result.promoted).not.toBe(result.master);
    expect(result.acknowledged).toBeGreaterThan(5);
    expect(result.readable).toBe(result.acknowledged);
  });

  it('without it, the loop recovers after the promotion and the count of lost sessions is reported', async () => {
    const result = await killDuringLoop(false);
    const lost = result.acknowledged - result.readable;
    console.log(
      `[session failover, default durability] lost ${lost} of ${result.acknowledged} acknowledged sessions ${JSON.stringify(result)}`,
    );
    expect(result.acknowledged).toBeGreaterThan(5);
    expect(lost).toBeGreaterThanOrEqual(0);
    // A session created after the promotion is readable: the store recovered.
    expect(result.recovered).toBe(true);
  });

  it("with durability 'replicated', writes follow the user's slot and an id's pointer to their new masters", async () => {
    const redis = client();
    const prefix = uniquePrefix('session-replicated-moved');
    const store = storeOn(redis, prefix, {
      durability: 'replicated',
      replicationTimeoutMs: 2000,
      maxSessionsPerUser: 3,
    });
    const userId = 'u-replicated-moved';
    const first = await store.createSession({ userId });
    const sessionId = 'replicated-moved-id-0123456789';
    await store.createSession({ userId: 'u-replicated-pointer', sessionId });
    const topology = await clusterTopology(cluster);
    const elsewhere = async (slot: number) => {
      const from = await slotOwner(cluster, slot);
      const to = topology.masters.find((master) => master.port !== from)?.port ?? 0;
      await migrateSlot(cluster, slot, from, to);
      return to;
    };
    // The user's slot moves to another master (the client's slot map still names the old one)...
    const userSlot = keySlot(`${prefix}:u:{${first.token.slice(0, 22)}}`);
    await elsewhere(userSlot);
    // ...and so does the slot of the caller-supplied id's pointer (written by a plain command, not a script).
    let pointer = '';
    for await (const key of scanKeys(redis, `${prefix}:p:*`)) pointer = key;
    const pointerSlot = keySlot(pointer);
    if (pointerSlot !== userSlot) await elsewhere(pointerSlot);
    const created = await store.createSession({ userId });
    expect(await store.getSession(created.token, { touch: false })).not.toBeNull();
    expect((await store.updateSession(first.token, { step: 1 })).data).toEqual({ step: 1 });
    expect(await store.extendSession(first.token)).not.toBeNull();
    expect(await store.deleteSession(sessionId)).toBe(true);
    // Then a failover of the shard that now holds the user's slot: writes follow the promoted replica.
    const owner = await slotOwner(cluster, userSlot);
    const replica = (await clusterTopology(cluster)).masters.find((master) => master.port === owner)
      ?.replicaPorts[0];
    expect(replica).toBeDefined();
    await failover(cluster, replica as number);
    const afterFailover = await store.createSession({ userId });
    expect(await store.getSession(afterFailover.token, { touch: false })).not.toBeNull();
    expect(await store.deleteUserSessions(userId)).toBe(3);
    await deleteByPrefix(redis, prefix);
  });

  it("with durability 'replicated', a claim refused while the replica lags leaves the id's tombstone, and a failed create keeps its claim", async () => {
    const redis = client();
    const prefix = uniquePrefix('session-replicated-claim');
    const store = storeOn(redis, prefix, { durability: 'replicated', replicationTimeoutMs: 300 });
    const sessionId = 'replicated-claim-id-0123456789';
    await store.createSession({ userId: 'u-claim-alice', sessionId });
    expect(await store.deleteSession(sessionId)).toBe(true);
    let pointer = '';
    for await (const key of scanKeys(redis, `${prefix}:p:*`)) pointer = key;
    expect(await redis.get(pointer)).toBe('-');
    const replicaOf = async (key: string) => {
      const owner = await slotOwner(cluster, keySlot(key));
      return (await clusterTopology(cluster)).masters.find((master) => master.port === owner)
        ?.replicaPorts[0] as number;
    };
    const replica = await replicaOf(pointer);
    await pauseNode(cluster, replica);
    let code: string | undefined;
    try {
      code = await codeOf(() => store.createSession({ userId: 'u-claim-bob', sessionId }));
    } finally {
      await resumeNode(cluster, replica);
    }
    // The SET NX was refused (the id is tombstoned): whatever WAIT said, the tombstone is not this call's to remove.
    expect(code).toBe('E_NOT_REPLICATED');
    expect(await redis.get(pointer)).toBe('-');
    expect(await store.saveSession(sessionId, { userId: 'u-claim-alice', data: { back: true } })).toBe(false);
    expect(await store.getSession(sessionId)).toBeNull();

    // A new id whose create runs on the master only: the session may be there, so the id stays claimed by its user.
    const layout = new KeyBuilder(prefix, createHasher(undefined));
    const userIndex = layout.index(layout.user('u-claim-carol').tag);
    const userMaster = await slotOwner(cluster, keySlot(userIndex));
    let second = '';
    for (let i = 0; second === ''; i++) {
      const candidate = `replicated-claim-second-${i}-0123456789`;
      const candidatePointer = layout.pointer(layout.sessionRef(candidate));
      if ((await slotOwner(cluster, keySlot(candidatePointer))) !== userMaster) second = candidate;
    }
    const userReplica = await replicaOf(userIndex);
    await pauseNode(cluster, userReplica);
    let secondCode: string | undefined;
    try {
      secondCode = await codeOf(() => store.createSession({ userId: 'u-claim-carol', sessionId: second }));
    } finally {
      await resumeNode(cluster, userReplica);
    }
    expect(secondCode).toBe('E_NOT_REPLICATED');
    expect(await codeOf(() => store.createSession({ userId: 'u-claim-dave', sessionId: second }))).toBe(
      'E_SESSION_EXISTS',
    );
    await deleteByPrefix(redis, prefix);
  });

  it("keeps the cap and every session through a slot migration of the user's slot", async () => {
    const redis = client();
    const prefix = uniquePrefix('session-migrate');
    const store = storeOn(redis, prefix, { maxSessionsPerUser: 4 });
    const userId = 'u-migrate';
    const first = await store.createSession({ userId });
    const slot = keySlot(`${prefix}:u:{${first.token.slice(0, 22)}}`);
    const from = await slotOwner(cluster, slot);
    const to = (await clusterTopology(cluster)).masters.find((master) => master.port !== from)?.port ?? 0;
    const tokens = [first.token];
    const loop = (async () => {
      for (let i = 0; i < 40; i++) {
        tokens.push((await store.createSession({ userId, data: { i } })).token);
        await sleep(10);
      }
    })();
    await sleep(100);
    await migrateSlot(cluster, slot, from, to);
    await loop;
    expect(await slotOwner(cluster, slot)).toBe(to);
    expect(await store.getSessionCount(userId)).toBe(4);
    const live = [];
    for (const token of tokens) if (await store.getSession(token, { touch: false })) live.push(token);
    expect(live).toEqual(tokens.slice(-4));
    await deleteByPrefix(redis, prefix);
  });

  it('half-way through a migration (ASK), calls either succeed correctly or fail with a typed error', async () => {
    const redis = client();
    const prefix = uniquePrefix('session-ask');
    const store = storeOn(redis, prefix, { maxSessionsPerUser: 3 });
    const userId = 'u-ask';
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) tokens.push((await store.createSession({ userId })).token);
    const slot = keySlot(`${prefix}:u:{${tokens[0]?.slice(0, 22)}}`);
    const from = await slotOwner(cluster, slot);
    const to = (await clusterTopology(cluster)).masters.find((master) => master.port !== from)?.port ?? 0;
    // Move one session key only, then stop: the slot is open, keys are split across two masters.
    const moved = `${prefix}:s:{${tokens[0]?.slice(0, 22)}}:${(await store.getUserSessions(userId)).at(-1)?.handle}`;
    await migrateSlot(cluster, slot, from, to, { keys: [moved], stopAfter: 'importing' });
    const outcomes: string[] = [];
    for (const call of [
      () => store.getSession(tokens[0] as string),
      () => store.createSession({ userId }),
      () => store.getUserSessions(userId),
      () => store.deleteUserSessions(userId),
    ]) {
      outcomes.push(
        await call().then(
          () => 'ok',
          (error: { code?: string }) => error.code ?? 'untyped',
        ),
      );
    }
    for (const outcome of outcomes) expect(['ok', 'E_REDIS_UNAVAILABLE', 'E_CONFLICT']).toContain(outcome);
    await restoreCluster(cluster);
    // After the migration closes, the user's state is consistent: the index only lists live sessions, within the cap.
    const count = await store.getSessionCount(userId);
    expect(count).toBeLessThanOrEqual(3);
    expect((await store.getUserSessions(userId)).length).toBe(count);
    await deleteByPrefix(redis, prefix);
  });
});
