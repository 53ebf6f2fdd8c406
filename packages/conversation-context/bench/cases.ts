import { randomBytes } from 'node:crypto';
import { type BenchCase, type BenchContext, loadRival, type PreparedCase } from '@austa/bench';
import { createCodec } from '@austa/codec';
import { createMetrics } from '@austa/metrics';
import { scanKeys, unlinkKeys } from '@austa/redis-cluster';
import type { Cluster, Redis } from 'ioredis';
import { createConversationStore } from '../src/index.js';
import { toLangChainMessages } from '../src/langchain.js';

// Rivals and their client libraries come from the bench package's dependencies (see tooling/bench/package.json).
const ioredis = await loadRival<typeof import('ioredis')>('ioredis');
// Only the members used here are declared: the rivals' own types resolve from tooling/bench, not from this package.
interface NodeRedisClient {
  connect(): Promise<unknown>;
  quit(): Promise<unknown>;
  lTrim(key: string, start: number, stop: number): Promise<unknown>;
  unlink(keys: string[]): Promise<number>;
}
type HistoryClass = new (fields: { sessionId: string; sessionTTL: number; client: unknown }) => History;
const nodeRedis = await loadRival<{ createClient(options: { url: string }): NodeRedisClient }>('redis');
const langchainRedis = await loadRival<{ RedisChatMessageHistory: HistoryClass }>('@langchain/redis');
const langchainCommunity = await loadRival<{ RedisChatMessageHistory: HistoryClass }>(
  '@langchain/community/stores/message/ioredis',
);
const { HumanMessage } =
  await loadRival<typeof import('@langchain/core/messages')>('@langchain/core/messages');

/** Trimming cap of the addMessage op, and history length of the read op. */
export const TRIM_TO = 50;
export const READ_LIMIT = 20;
const TTL_SECONDS = 3600;
/**
 * One patient message of about 200 characters, the same for every library. LangChain stores it as JSON of its
 * StoredMessage ({"type":"human","data":{"content":…}}), we as a 40-byte header plus our binary format: within a few
 * percent of each other.
 */
const CONTENT =
  'I have had a headache for three days, mostly in the morning, and ibuprofen only helps for a few hours. ' +
  'Should I book an appointment or is there something else I can try first before I see a doctor?';

/**
 * The client settings every library gets. node-redis (used by @langchain/redis) writes all commands issued in one tick
 * together and has no command timeout by default; the ioredis clients get the same: auto-pipelining on, no timeout.
 */
function ioredisClient(context: BenchContext, autoPipelining = true): Redis | Cluster {
  if (context.target.topology === 'cluster') {
    return new ioredis.Cluster(context.target.nodes ?? [], { enableAutoPipelining: autoPipelining });
  }
  return new ioredis.Redis(context.target.url ?? '', { enableAutoPipelining: autoPipelining });
}

function conversationIds(context: BenchContext, lib: string): string[] {
  const slug = lib.replace(/[^a-z0-9]+/gi, '-');
  return context.keys.map((_, i) => `${context.prefix}:${slug}:c${i}`);
}

/** Runs `work` for every index below `count`, `concurrency` at a time (outside the timed loop). */
async function fill(count: number, work: (i: number) => Promise<unknown>, concurrency = 200): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < count; i = next++) await work(i);
    }),
  );
}

async function removeKeys(client: Redis | Cluster, pattern: string): Promise<void> {
  const keys: string[] = [];
  for await (const key of scanKeys(client, pattern, { count: 1000 })) keys.push(key);
  if (keys.length > 0) await unlinkKeys(client, keys);
}

type Operation = 'add' | 'read';

interface OursOptions {
  encrypted?: boolean;
  autoPipelining?: boolean;
  asLangChain?: boolean;
}

function ours(operation: Operation, options: OursOptions = {}) {
  return async (context: BenchContext, lib: string): Promise<PreparedCase> => {
    const redis = ioredisClient(context, options.autoPipelining ?? true);
    const prefix = `${context.prefix}:${lib.replace(/[^a-z0-9]+/gi, '-')}`;
    const store = createConversationStore({
      redis,
      prefix,
      ttlSeconds: TTL_SECONDS,
      maxMessages: TRIM_TO,
      metrics: createMetrics(),
      ...(options.encrypted
        ? { codec: createCodec({ encryption: { currentKeyId: 'k', keys: { k: randomBytes(32) } } }) }
        : {}),
    });
    const ids = context.keys.map((_, i) => `c${i}`);
    const owners = ids.map((_, i) => ({ owner: { userId: `patient-${i}` } }));
    const history = operation === 'add' ? TRIM_TO : READ_LIMIT;
    await fill(ids.length * history, (n) =>
      store.addMessage(
        ids[n % ids.length] as string,
        { role: 'user', content: CONTENT },
        owners[n % ids.length],
      ),
    );
    const run =
      operation === 'add'
        ? (i: number) =>
            store.addMessage(
              ids[i % ids.length] as string,
              { role: 'user', content: CONTENT },
              owners[i % ids.length],
            )
        : options.asLangChain
          ? async (i: number) =>
              toLangChainMessages(
                await store.getRecentMessages(
                  ids[i % ids.length] as string,
                  READ_LIMIT,
                  owners[i % ids.length],
                ),
              )
          : (i: number) =>
              store.getRecentMessages(ids[i % ids.length] as string, READ_LIMIT, owners[i % ids.length]);
    return {
      run,
      teardown: async () => {
        await removeKeys(redis, `${prefix}:*`);
        await redis.quit();
      },
    };
  };
}

interface History {
  addMessage(message: unknown): Promise<void>;
  getMessages(): Promise<unknown[]>;
}

/**
 * `@langchain/redis` RedisChatMessageHistory: node-redis client, one history object per conversation (made outside
 * the timed loop), `addMessage` = LPUSH + EXPIRE, `getMessages` = LRANGE 0 -1. It has no trimming; `withTrim` adds
 * the LTRIM a LangChain user would issue after each append to keep the newest 50.
 */
function langchainRedisCase(operation: Operation, withTrim = false) {
  return async (context: BenchContext, lib: string): Promise<PreparedCase> => {
    if (context.target.topology !== 'standalone') {
      throw new Error(
        '@langchain/redis cannot use a node-redis cluster client (it calls connect() on every call).',
      );
    }
    const client = nodeRedis.createClient({ url: context.target.url ?? '' });
    await client.connect();
    const ids = conversationIds(context, lib);
    const histories = ids.map(
      (sessionId) =>
        new langchainRedis.RedisChatMessageHistory({
          sessionId,
          sessionTTL: TTL_SECONDS,
          client,
        }),
    );
    const history = operation === 'add' ? TRIM_TO : READ_LIMIT;
    await fill(ids.length * history, (n) =>
      (histories[n % ids.length] as History).addMessage(new HumanMessage(CONTENT)),
    );
    const run =
      operation === 'add'
        ? withTrim
          ? async (i: number) => {
              await (histories[i % ids.length] as History).addMessage(new HumanMessage(CONTENT));
              await client.lTrim(ids[i % ids.length] as string, 0, TRIM_TO - 1);
            }
          : (i: number) => (histories[i % ids.length] as History).addMessage(new HumanMessage(CONTENT))
        : (i: number) => (histories[i % ids.length] as History).getMessages();
    return {
      run,
      teardown: async () => {
        for (let i = 0; i < ids.length; i += 500) await client.unlink(ids.slice(i, i + 500));
        await client.quit();
      },
    };
  };
}

/** `@langchain/community` RedisChatMessageHistory on ioredis (works with a Cluster client passed as `client`). */
function langchainCommunityCase(operation: Operation) {
  return async (context: BenchContext, lib: string): Promise<PreparedCase> => {
    const redis = ioredisClient(context);
    const ids = conversationIds(context, lib);
    const histories = ids.map(
      (sessionId) =>
        new langchainCommunity.RedisChatMessageHistory({
          sessionId,
          sessionTTL: TTL_SECONDS,
          client: redis,
        }),
    );
    const history = operation === 'add' ? TRIM_TO : READ_LIMIT;
    await fill(ids.length * history, (n) =>
      (histories[n % ids.length] as History).addMessage(new HumanMessage(CONTENT)),
    );
    const run =
      operation === 'add'
        ? (i: number) => (histories[i % ids.length] as History).addMessage(new HumanMessage(CONTENT))
        : (i: number) => (histories[i % ids.length] as History).getMessages();
    return {
      run,
      teardown: async () => {
        await unlinkKeys(redis, ids);
        await redis.quit();
      },
    };
  };
}

function withLib(
  op: string,
  lib: string,
  vs: string | undefined,
  make: (c: BenchContext, lib: string) => Promise<PreparedCase>,
): BenchCase {
  return { op, lib, ...(vs === undefined ? {} : { vs }), setup: (context) => make(context, lib) };
}

export const OPS = {
  add: `addMessage:trim-${TRIM_TO}`,
  read: `getRecentMessages:${READ_LIMIT}-of-${READ_LIMIT}`,
} as const;

const OURS = '@austa/conversation-context';
const LANGCHAIN_REDIS = '@langchain/redis';
const COMMUNITY = '@langchain/community (ioredis)';

/** Standalone: the main rival is @langchain/redis; the ioredis-based community history runs beside it. */
export function standaloneCases(): BenchCase[] {
  const cases: BenchCase[] = [];
  for (const operation of ['add', 'read'] as const) {
    const op = OPS[operation];
    cases.push(
      withLib(op, LANGCHAIN_REDIS, undefined, langchainRedisCase(operation)),
      withLib(op, `${LANGCHAIN_REDIS} (control)`, LANGCHAIN_REDIS, langchainRedisCase(operation)),
      withLib(op, COMMUNITY, LANGCHAIN_REDIS, langchainCommunityCase(operation)),
      withLib(op, OURS, LANGCHAIN_REDIS, ours(operation)),
      withLib(op, `${OURS} (encrypted)`, LANGCHAIN_REDIS, ours(operation, { encrypted: true })),
      withLib(op, `${OURS} (autopipeline off)`, LANGCHAIN_REDIS, ours(operation, { autoPipelining: false })),
    );
    if (operation === 'add') {
      cases.push(
        withLib(
          op,
          `${LANGCHAIN_REDIS} + LTRIM ${TRIM_TO}`,
          LANGCHAIN_REDIS,
          langchainRedisCase(operation, true),
        ),
      );
    } else {
      cases.push(
        withLib(
          op,
          `${OURS} (as LangChain messages)`,
          LANGCHAIN_REDIS,
          ours(operation, { asLangChain: true }),
        ),
      );
    }
  }
  return cases;
}

/** Cluster: @langchain/redis cannot run there, so the main rival is the ioredis-based community history. */
export function clusterCases(): BenchCase[] {
  const cases: BenchCase[] = [];
  for (const operation of ['add', 'read'] as const) {
    const op = OPS[operation];
    cases.push(
      withLib(op, COMMUNITY, undefined, langchainCommunityCase(operation)),
      withLib(op, `${COMMUNITY} (control)`, COMMUNITY, langchainCommunityCase(operation)),
      withLib(op, OURS, COMMUNITY, ours(operation)),
      withLib(op, `${OURS} (encrypted)`, COMMUNITY, ours(operation, { encrypted: true })),
      withLib(op, `${OURS} (autopipeline off)`, COMMUNITY, ours(operation, { autoPipelining: false })),
    );
  }
  return cases;
}
