import { createHash } from 'node:crypto';
import { type BenchCase, type BenchContext, defineBench, loadRival, type PreparedCase } from '@austa/bench';
import { createCodec } from '@austa/codec';
import { DEFAULTS, scanKeys, unlinkKeys } from '@austa/redis-cluster';
import { createSessionStore, type SessionStore } from '@austa/session';
import type { Cluster, Redis, RedisOptions } from 'ioredis';

/*
 * getSession and createSession against connect-redis@8's get and set, on the same ioredis client options, with the
 * same data (the harness' value, BENCH_VALUE_BYTES, default 256 bytes, plus a user id). connect-redis is run twice
 * (the control shows the noise floor), and a plain ioredis GET / SET of the same value is the ceiling no store can
 * pass. `createSession` runs at the cap: 1,000 users with maxSessionsPerUser 5, so after the warm-up every create
 * also evicts the user's oldest session, the expensive path. `createSession:under-cap` is the common case: the same
 * 1,000 users, each far from a cap of 1,000.
 */

const ioredis = await loadRival<typeof import('ioredis')>('ioredis');

// connect-redis is loaded from the bench package; these are the parts of its API this file uses.
interface ConnectRedisStore {
  get(sid: string): Promise<unknown>;
  set(sid: string, session: object): Promise<unknown>;
}
const { RedisStore } = await loadRival<{
  RedisStore: new (options: { client: unknown; prefix: string; ttl: number }) => ConnectRedisStore;
}>('connect-redis');

const USERS = 1000;
const IDLE_SECONDS = 900;
const ABSOLUTE_SECONDS = 3600;
const KEY = createHash('sha256').update('austa session bench key').digest();

// The same client for every case: the settings @austa/redis-cluster applies by default, on plain ioredis.
function client(context: BenchContext): Redis | Cluster {
  const redisOptions: RedisOptions = {
    commandTimeout: DEFAULTS.commandTimeoutMs,
    connectTimeout: DEFAULTS.connectTimeoutMs,
    maxRetriesPerRequest: DEFAULTS.maxRetriesPerRequest,
    enableOfflineQueue: DEFAULTS.enableOfflineQueue,
  };
  if (context.target.topology === 'cluster') {
    return new ioredis.Cluster(context.target.nodes ?? [], {
      redisOptions,
      retryDelayOnFailover: DEFAULTS.retryDelayOnFailoverMs,
      retryDelayOnClusterDown: DEFAULTS.retryDelayOnClusterDownMs,
      maxRedirections: DEFAULTS.maxRedirections,
      slotsRefreshTimeout: DEFAULTS.slotsRefreshTimeoutMs,
    });
  }
  return new ioredis.Redis(context.target.url ?? '', redisOptions);
}

/** Removes what a case wrote under its prefix (every master), then quits its client. */
async function teardown(redis: Redis | Cluster, prefix: string): Promise<void> {
  const keys: string[] = [];
  for await (const key of scanKeys(redis, `${prefix}*`)) keys.push(key);
  await unlinkKeys(redis, keys);
  await redis.quit();
}

const userIds = Array.from({ length: USERS }, (_, index) => `bench-user-${index}`);
// 32 base64url characters, as express-session generates them.
const sessionIds = Array.from({ length: USERS }, (_, index) =>
  createHash('sha256').update(`sid-${index}`).digest('base64url').slice(0, 32),
);

function expressSession(context: BenchContext, index: number) {
  return {
    cookie: {
      originalMaxAge: IDLE_SECONDS * 1000,
      expires: new Date(Date.now() + 900_000),
      httpOnly: true,
      path: '/',
    },
    userId: userIds[index],
    value: context.value,
  };
}

type Op = 'getSession' | 'createSession' | 'createSession:under-cap';

function connectRedisCase(op: Op, lib: string, vs?: string): BenchCase {
  return {
    op,
    lib,
    vs,
    async setup(context): Promise<PreparedCase> {
      const redis = client(context);
      const prefix = `${context.prefix}:cr:${lib.length}:`;
      const store = new RedisStore({ client: redis, prefix, ttl: IDLE_SECONDS });
      const sessions = sessionIds.map((_, index) => expressSession(context, index));
      await Promise.all(sessionIds.map((sid, index) => store.set(sid, sessions[index] as object)));
      const run =
        op === 'getSession'
          ? (i: number) => store.get(sessionIds[i % USERS] as string)
          : (i: number) => store.set(sessionIds[i % USERS] as string, sessions[i % USERS] as object);
      return { run, teardown: () => teardown(redis, prefix) };
    },
  };
}

function austaCase(op: Op, lib: string, encrypted: boolean): BenchCase {
  return {
    op,
    lib,
    vs: 'connect-redis',
    async setup(context): Promise<PreparedCase> {
      const redis = client(context);
      const prefix = `${context.prefix}:austa:${encrypted ? 'e' : 'p'}`;
      const store: SessionStore = createSessionStore({
        redis,
        prefix,
        idleTimeoutSeconds: IDLE_SECONDS,
        absoluteTimeoutSeconds: ABSOLUTE_SECONDS,
        maxSessionsPerUser: op === 'createSession:under-cap' ? 1000 : 5,
        ...(encrypted
          ? { codec: createCodec({ encryption: { currentKeyId: 'bench', keys: { bench: KEY } } }) }
          : {}),
      });
      const data = userIds.map(() => ({ value: context.value }));
      const device = { userAgent: 'Mozilla/5.0 (bench)', ip: '203.0.113.7', platform: 'web' };
      const tokens = await Promise.all(
        userIds.map(
          async (userId, index) => (await store.createSession({ userId, data: data[index], device })).token,
        ),
      );
      const run =
        op === 'getSession'
          ? (i: number) => store.getSession(tokens[i % USERS] as string)
          : (i: number) =>
              store.createSession({ userId: userIds[i % USERS] as string, data: data[i % USERS], device });
      return { run, teardown: () => teardown(redis, prefix) };
    },
  };
}

function ceilingCase(op: Op): BenchCase {
  return {
    op,
    lib: `ioredis ${op === 'getSession' ? 'GET' : 'SET'} (ceiling)`,
    vs: 'connect-redis',
    async setup(context): Promise<PreparedCase> {
      const redis = client(context);
      const { keys, value } = context;
      const run =
        op === 'getSession'
          ? (i: number) => redis.getBuffer(keys[i % keys.length] as string)
          : (i: number) => redis.set(keys[i % keys.length] as string, value, 'EX', 900);
      return { run, teardown: async () => void (await redis.quit()) };
    },
  };
}

function cases(op: Op): BenchCase[] {
  const full = op !== 'createSession:under-cap';
  return [
    connectRedisCase(op, 'connect-redis'),
    connectRedisCase(op, 'connect-redis (control)', 'connect-redis'),
    austaCase(op, '@austa/session', false),
    ...(full ? [austaCase(op, '@austa/session (encrypted)', true), ceilingCase(op)] : []),
  ];
}

export default defineBench({
  package: 'session',
  cases: [...cases('getSession'), ...cases('createSession'), ...cases('createSession:under-cap')],
});
