import { createRedisClient } from '@austa/redis-cluster';
import {
  clusterTopology,
  createTestClient,
  deleteByPrefix,
  failover,
  keySlot,
  keysWithoutTtl,
  killNode,
  migrateSlot,
  pauseNode,
  redisTargets,
  restartNode,
  restoreCluster,
  resumeNode,
  slotOwner,
  uniquePrefix,
  waitForPromotion,
} from '@austa/test-env/vitest';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConversationError, type ConversationStore, createConversationStore } from '../src/index.js';
import { layout } from './support.js';

const owner = { userId: 'patient-1' };
const COMMAND_TIMEOUT_MS = 1000;

interface Outcome {
  seq?: number;
  content: string;
  error?: unknown;
  elapsedMs: number;
}

/** Appends to one conversation one message at a time until `stop()`; every outcome is recorded. */
function appendLoop(store: ConversationStore, conversationId: string) {
  const outcomes: Outcome[] = [];
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      const content = `message ${i}`;
      const started = Date.now();
      try {
        const result = await store.addMessage(conversationId, { role: 'user', content }, { owner });
        outcomes.push({ seq: result.message.seq, content, elapsedMs: Date.now() - started });
      } catch (error) {
        outcomes.push({ content, error, elapsedMs: Date.now() - started });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  })();
  return {
    outcomes,
    acknowledged: () => outcomes.filter((o) => o.seq !== undefined),
    async until(count: number, timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (this.acknowledged().length < count && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(this.acknowledged().length).toBeGreaterThanOrEqual(count);
    },
    async stop() {
      running = false;
      await done;
    },
  };
}

describe('conversation store on a cluster under faults', () => {
  let client: Cluster;
  let prefix: string;
  let counter = 0;
  const cluster = () => redisTargets().cluster;
  const store = () =>
    createConversationStore({
      redis: client,
      prefix: `${prefix}:${++counter}`,
      ttlSeconds: 600,
      maxMessages: 100_000,
    });

  beforeAll(() => {
    prefix = uniquePrefix('conversation-faults');
  });

  afterEach(async () => {
    await client?.quit().catch(() => client.disconnect());
    await restoreCluster(cluster(), 60_000);
  });

  afterAll(async () => {
    const check = createTestClient(redisTargets(), 'cluster');
    expect(await keysWithoutTtl(check, prefix)).toEqual([]);
    await deleteByPrefix(check, prefix);
    await check.quit();
  });

  const connect = () => {
    client = createTestClient(
      redisTargets(),
      'cluster',
      { commandTimeout: COMMAND_TIMEOUT_MS, maxRetriesPerRequest: 3 },
      { retryDelayOnFailover: 100, retryDelayOnClusterDown: 100 },
    );
    return client;
  };

  async function replicaOf(masterPort: number): Promise<number> {
    const topology = await clusterTopology(cluster());
    const replica = topology.masters.find((master) => master.port === masterPort)?.replicaPorts[0];
    if (replica === undefined) throw new Error(`master ${masterPort} has no replica`);
    return replica;
  }

  it('an append loop across a manual failover of its master loses no acknowledged message and keeps order', async () => {
    connect();
    const conversations = store();
    const id = 'failover-loop';
    const slot = keySlot(layout(conversations).conversation(id).meta);
    const loop = appendLoop(conversations, id);
    await loop.until(30, 20_000);
    const master = await slotOwner(cluster(), slot);
    await failover(cluster(), await replicaOf(master), 'default');
    const promoted = loop.acknowledged().length;
    await loop.until(promoted + 30, 20_000);
    await loop.stop();
    const acknowledged = loop.acknowledged();
    const stored = await conversations.getRecentMessages(id, undefined, { owner });
    const storedBySeq = new Map(stored.map((m) => [m.seq, m.content]));
    for (const outcome of acknowledged) expect(storedBySeq.get(outcome.seq as number)).toBe(outcome.content);
    expect(stored.map((m) => m.seq)).toEqual([...stored.map((m) => m.seq)].sort((a, b) => a - b));
    for (const outcome of loop.outcomes) {
      if (outcome.error !== undefined) expect(ConversationError.isInstance(outcome.error)).toBe(true);
    }
    expect(await slotOwner(cluster(), slot)).not.toBe(master);
  });

  it('on a @austa/redis-cluster client, appends retried with their idempotency key across a master kill are stored at most once, in order', async () => {
    const redis = createRedisClient(
      {
        cluster: {
          nodes: cluster().nodes,
          clusterNodeTimeoutMs: 2000,
          retryDelayOnFailoverMs: 100,
          maxRedirections: 64,
        },
        name: 'idempotent-failover',
        commandTimeoutMs: COMMAND_TIMEOUT_MS,
      },
      { logger: { warn: () => {}, error: () => {} } },
    );
    try {
      await redis.ready();
      const conversations = createConversationStore({
        redis: redis.client,
        prefix: `${prefix}:${++counter}`,
        ttlSeconds: 600,
        maxMessages: 100_000,
      });
      const id = 'idempotent-failover';
      const slot = keySlot(layout(conversations).conversation(id).meta);
      const sent: string[] = [];
      const errors = new Set<string>();

      let running = true;
      const loop = (async () => {
        for (let i = 0; running; i++) {
          const content = `message ${i}`;
          sent.push(content);
          // Each message is retried with the same key until it is acknowledged, as a careful caller would.
          for (;;) {
            try {
              await conversations.addMessage(
                'idempotent-failover',
                { role: 'user', content },
                {
                  owner,
                  idempotencyKey: `m-${i}`,
                },
              );
              break;
            } catch (error) {
              errors.add((error as { code?: string }).code ?? 'unknown');
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          }
        }
      })();
      while (sent.length < 30) await new Promise((resolve) => setTimeout(resolve, 20));
      const victim = await slotOwner(cluster(), slot);
      await killNode(cluster(), victim);
      await waitForPromotion(cluster(), victim, 30_000);
      const atPromotion = sent.length;
      while (sent.length < atPromotion + 30) await new Promise((resolve) => setTimeout(resolve, 20));
      running = false;
      await loop;
      const stored = (await conversations.getRecentMessages(id, undefined, { owner })).map((m) =>
        String(m.content),
      );
      // Never twice, always in the order sent. Replication is asynchronous, so a write the dead master acknowledged
      // but had not passed on may be missing; every message sent once the replica took over is there.
      expect(new Set(stored).size).toBe(stored.length);
      const positions = stored.map((content) => sent.indexOf(content));
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
      for (const content of sent.slice(atPromotion)) expect(stored).toContain(content);
      expect(errors.size).toBeGreaterThan(0);
      for (const code of errors) expect(['E_MAYBE_APPLIED', 'E_REDIS_UNAVAILABLE']).toContain(code);
      await restartNode(cluster(), victim);
    } finally {
      await redis.close();
    }
  });

  it('when its master dies, appends fail fast with E_REDIS_UNAVAILABLE and resume once the replica is promoted', async () => {
    connect();
    const conversations = store();
    const id = 'kill-loop';
    const slot = keySlot(layout(conversations).conversation(id).meta);
    const loop = appendLoop(conversations, id);
    await loop.until(20, 20_000);
    const victim = await slotOwner(cluster(), slot);
    // Let the replica catch up, so what we compare afterwards is not a replication-lag artefact.
    await client
      .nodes('master')
      .find((node) => node.options.port === victim)
      ?.call('WAIT', 1, 2000);
    const killedAt = Date.now();
    await killNode(cluster(), victim);
    await waitForPromotion(cluster(), victim, 30_000);
    const acknowledgedAtPromotion = loop.acknowledged().length;
    await loop.until(acknowledgedAtPromotion + 20, 20_000);
    await loop.stop();
    // No call hung: each settled within the command timeout plus retry pacing.
    for (const outcome of loop.outcomes) expect(outcome.elapsedMs).toBeLessThan(COMMAND_TIMEOUT_MS + 2000);
    const failures = loop.outcomes.filter((o) => o.error !== undefined);
    // The loop did run into the outage.
    expect(failures.length).toBeGreaterThan(0);
    for (const failure of failures) expect(failure.error).toMatchObject({ code: 'E_REDIS_UNAVAILABLE' });
    const stored = await conversations.getRecentMessages(id, undefined, { owner });
    const seqs = stored.map((m) => m.seq);
    expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
    // Everything stored was sent by the loop; writes acknowledged after the kill are all there.
    const sent = new Set(loop.outcomes.map((o) => o.content));
    for (const message of stored) expect(sent.has(String(message.content))).toBe(true);
    const storedContents = new Set(stored.map((m) => m.content));
    const lateAcks = loop.acknowledged().filter((_, index) => index >= acknowledgedAtPromotion);
    for (const outcome of lateAcks) expect(storedContents.has(outcome.content)).toBe(true);
    expect(Date.now() - killedAt).toBeLessThan(60_000);
    await restartNode(cluster(), victim);
  });

  it('a paused master makes calls fail within the command timeout, and they work again after it resumes', async () => {
    connect();
    const conversations = store();
    const id = 'paused';
    await conversations.addMessage(id, { role: 'user', content: 'before' }, { owner });
    const victim = await slotOwner(cluster(), keySlot(layout(conversations).conversation(id).meta));
    await pauseNode(cluster(), victim);
    const started = Date.now();
    await expect(
      conversations.addMessage(id, { role: 'user', content: 'during' }, { owner }),
    ).rejects.toMatchObject({
      code: 'E_REDIS_UNAVAILABLE',
    });
    await expect(conversations.getRecentMessages(id, 10, { owner })).rejects.toMatchObject({
      code: 'E_REDIS_UNAVAILABLE',
    });
    expect(Date.now() - started).toBeLessThan(2 * COMMAND_TIMEOUT_MS + 1500);
    await resumeNode(cluster(), victim);
    await conversations.addMessage(id, { role: 'user', content: 'after' }, { owner });
    const contents = (await conversations.getRecentMessages(id, 10, { owner })).map((m) => m.content);
    // "during" timed out on our side but reached the paused server: it may or may not be stored, never twice.
    expect(contents[0]).toBe('before');
    expect(contents.at(-1)).toBe('after');
    expect(contents.filter((c) => c === 'during').length).toBeLessThanOrEqual(1);
  });

  it('an append loop across a slot migration of its conversation loses nothing', async () => {
    connect();
    const conversations = store();
    const id = 'migrating';
    const slot = keySlot(layout(conversations).conversation(id).meta);
    const loop = appendLoop(conversations, id);
    await loop.until(20, 20_000);
    const from = await slotOwner(cluster(), slot);
    const to = (await clusterTopology(cluster())).masters.find((master) => master.port !== from)
      ?.port as number;
    await migrateSlot(cluster(), slot, from, to);
    const migrated = loop.acknowledged().length;
    await loop.until(migrated + 20, 20_000);
    await loop.stop();
    const stored = await conversations.getRecentMessages(id, undefined, { owner });
    const storedBySeq = new Map(stored.map((m) => [m.seq, m.content]));
    for (const outcome of loop.acknowledged())
      expect(storedBySeq.get(outcome.seq as number)).toBe(outcome.content);
    expect(await slotOwner(cluster(), slot)).toBe(to);
  });

  it('reads and writes a conversation whose slot is half migrated, with its keys split between two masters', async () => {
    connect();
    const conversations = store();
    const id = 'half-migrated';
    const keys = layout(conversations).conversation(id);
    for (let i = 0; i < 5; i++)
      await conversations.addMessage(id, { role: 'user', content: `m${i}` }, { owner });
    await conversations.updateIntent(id, { name: 'x' }, { owner });
    const slot = keySlot(keys.meta);
    const from = await slotOwner(cluster(), slot);
    const to = (await clusterTopology(cluster())).masters.find((master) => master.port !== from)
      ?.port as number;
    // Only the message list moves: the source answers ASK for it and TRYAGAIN for commands that need both.
    await migrateSlot(cluster(), slot, from, to, { keys: [keys.messages], stopAfter: 'importing' });
    // Caught in the split, each call retries (ioredis for the script, the store for the MULTI) and completes once the
    // migration finishes, well within the command timeout.
    const calls = Promise.allSettled([
      conversations.getRecentMessages(id, 10, { owner }),
      conversations.addMessage(id, { role: 'user', content: 'during' }, { owner }),
      conversations.getStats(id, { owner }),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await migrateSlot(cluster(), slot, from, to, { keys: [keys.meta, keys.intents] }).catch(() => undefined);
    const outcomes = await calls;
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(await slotOwner(cluster(), slot)).toBe(to);
    const messages = await conversations.getRecentMessages(id, 10, { owner });
    expect(messages.slice(0, 5).map((m) => m.content)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    if (outcomes[1]?.status === 'fulfilled') expect(messages.at(-1)?.content).toBe('during');
    await conversations.addMessage(id, { role: 'user', content: 'after' }, { owner });
    expect((await conversations.getStats(id, { owner }))?.messageCount).toBe(messages.length + 1);
  });

  it('connections killed server-side during an append loop neither lose nor duplicate a message', async () => {
    connect();
    const conversations = store();
    const id = 'client-kill';
    await conversations.addMessage(id, { role: 'user', content: 'first' }, { owner });
    const port = await slotOwner(cluster(), keySlot(layout(conversations).conversation(id).meta));
    const admin = new Redis(port, '127.0.0.1');
    // ioredis re-sends a command whose connection closed before its reply came, and Redis may have run it already.
    const killer = setInterval(() => {
      void admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes').catch(() => 0);
    }, 50);
    const acknowledged: number[] = [];
    const failures: unknown[] = [];
    for (let i = 0; i < 300; i++) {
      try {
        acknowledged.push(
          (await conversations.addMessage(id, { role: 'user', content: `m${i}` }, { owner })).message.seq,
        );
      } catch (error) {
        failures.push(error);
      }
    }
    clearInterval(killer);
    await admin.quit();
    const stored = (await conversations.getRecentMessages(id, undefined, { owner })).map((m) =>
      String(m.content),
    );
    for (const failure of failures) expect(ConversationError.isInstance(failure)).toBe(true);
    // Every acknowledged message is there exactly once; a failed one at most once.
    expect(stored.length).toBe(new Set(stored).size);
    expect(stored.length).toBeGreaterThanOrEqual(1 + acknowledged.length);
    expect(stored.length).toBeLessThanOrEqual(1 + acknowledged.length + failures.length);
    expect(new Set(acknowledged).size).toBe(acknowledged.length);
  });

  it('erasure and cleanup refuse to run with a shard down instead of reporting a partial result', async () => {
    connect();
    const conversations = store();
    for (let i = 0; i < 30; i++)
      await conversations.addMessage(`e${i}`, { role: 'user', content: 'x' }, { owner });
    await Promise.all(client.nodes('master').map((node) => node.call('WAIT', 1, 2000)));
    const victim = await slotOwner(cluster(), 0);
    await killNode(cluster(), victim);
    await expect(conversations.deleteUserConversations(owner.userId)).rejects.toMatchObject({
      code: 'E_INCOMPLETE_SCAN',
    });
    await expect(conversations.cleanup()).rejects.toMatchObject({ code: 'E_INCOMPLETE_SCAN' });
    await waitForPromotion(cluster(), victim, 30_000);
    const report = await conversations.deleteUserConversations(owner.userId);
    expect(report.conversationsDeleted).toBe(30);
    await restartNode(cluster(), victim);
  });
});
