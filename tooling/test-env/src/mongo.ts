import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { dockerAnswers } from './docker.js';
import type { MongoTarget } from './types.js';

/*
 * MongoDB is optional where Redis is not: a machine without mongod, without network access to
 * download one and without Docker still runs every Redis test. Each way of getting a MongoDB is
 * bounded in time so that finding out costs seconds, not the minutes the libraries' own retries take.
 */

export interface MongoHandle {
  target: MongoTarget;
  /** Stops what this handle started; a no-op for MONGODB_URL or when unavailable. */
  stop(): Promise<void>;
}

/** The memory-server attempt (binary lookup or download, then start) must end within this. */
const MEMORY_SERVER_BINARY_TIMEOUT_MS = 8_000;
const MEMORY_SERVER_START_TIMEOUT_MS = 30_000;
/** Pulling an image on a cold Docker can be slow; a working engine is worth the wait. */
const DOCKER_START_TIMEOUT_MS = 120_000;

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function shortReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').trim().slice(0, 240);
}

async function pingMongo(url: string, timeoutMs: number): Promise<void> {
  const { MongoClient } = await import('mongodb');
  const client = new MongoClient(url, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs });
  try {
    await client.db('admin').command({ ping: 1 });
  } finally {
    await client.close();
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^@/]+)@/, '//***@');
}

function mongodOnPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'mongod'), constants.X_OK);
      return join(dir, 'mongod');
    } catch {
      // Not here.
    }
  }
  return undefined;
}

async function fromMemoryServer(): Promise<MongoHandle> {
  // The downloader retries with backoff 3 times by default; one try says enough about reachability.
  process.env.MONGOMS_MAX_RETRIES ??= '1';
  const { MongoBinary, MongoMemoryReplSet } = await import('mongodb-memory-server-core');
  const systemBinary = process.env.MONGOMS_SYSTEM_BINARY ? undefined : mongodOnPath();
  const binary = systemBinary ? { systemBinary } : {};
  // Resolving (or downloading) the binary first keeps a failure quiet: MongoMemoryReplSet.create
  // prints a multi-line warning of its own when it fails, and leaves a temp dir behind.
  await withTimeout(MongoBinary.getPath(binary), MEMORY_SERVER_BINARY_TIMEOUT_MS, 'mongod binary download');
  const replSet = await withTimeout(
    MongoMemoryReplSet.create({ binary, replSet: { count: 1, storageEngine: 'wiredTiger' } }),
    MEMORY_SERVER_START_TIMEOUT_MS,
    'mongodb-memory-server start',
  );
  const url = replSet.getUri();
  try {
    await pingMongo(url, 5_000);
  } catch (error) {
    await replSet.stop();
    throw error;
  }
  return {
    target: { available: true, url, source: 'memory-server', owned: true },
    stop: async () => {
      await replSet.stop();
    },
  };
}

async function fromDocker(): Promise<MongoHandle> {
  const { MongoDBContainer } = await import('@testcontainers/mongodb');
  const container = await withTimeout(
    new MongoDBContainer('mongo:7').start(),
    DOCKER_START_TIMEOUT_MS,
    'MongoDB container start',
  );
  const url = `${container.getConnectionString()}?directConnection=true`;
  return {
    target: { available: true, url, source: 'docker', owned: true },
    stop: async () => {
      await container.stop();
    },
  };
}

const TRUE_WORDS = new Set(['true', '1', 'yes']);
const FALSE_WORDS = new Set(['false', '0', 'no', '']);

/**
 * `REQUIRE_MONGO`: true/1/yes makes a run without MongoDB fail instead of skipping the Mongo tests (for CI where
 * MongoDB exists, so a broken setup cannot pass as "skipped"). Unset, empty, false/0/no: skip when unavailable.
 * Any other value throws: a typo must not quietly mean "not required".
 */
export function mongoRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = env.REQUIRE_MONGO;
  if (raw === undefined) return false;
  const word = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw new Error(`REQUIRE_MONGO must be one of true, false, 1, 0, yes, no (got ${JSON.stringify(raw)}).`);
}

const PING_TIMEOUT_MS = 5_000;

/**
 * Finds a MongoDB for tests, in this order: `MONGODB_URL` (must answer; never stopped), a
 * single-node replica set from mongodb-memory-server, a `mongo:7` container when Docker answers.
 * When none works the target is `{ available: false, reason }` listing why each failed, unless
 * `REQUIRE_MONGO` is set (see `mongoRequired`): then it throws with the same reasons.
 * A `MONGODB_URL` that does not answer always throws: an explicit server that is down is a broken
 * setup, never a reason to skip.
 */
export async function resolveMongo(env: NodeJS.ProcessEnv = process.env): Promise<MongoHandle> {
  const required = mongoRequired(env);
  const envUrl = env.MONGODB_URL;
  if (envUrl) {
    try {
      await pingMongo(envUrl, PING_TIMEOUT_MS);
    } catch (error) {
      throw new Error(
        `MONGODB_URL=${redact(envUrl)} is set but MongoDB there did not answer ping within ${PING_TIMEOUT_MS} ms ` +
          `(${shortReason(error)}). Start that server or fix the URL; unset MONGODB_URL to let test-env find or ` +
          'start one (Mongo tests are then skipped if none can be had).',
      );
    }
    return { target: { available: true, url: envUrl, source: 'env', owned: false }, stop: async () => {} };
  }
  const reasons: string[] = [];
  try {
    return await fromMemoryServer();
  } catch (error) {
    reasons.push(`mongodb-memory-server: ${shortReason(error)}`);
  }
  const docker = await dockerAnswers();
  if (docker.ok) {
    try {
      return await fromDocker();
    } catch (error) {
      reasons.push(`Docker: ${shortReason(error)}`);
    }
  } else {
    reasons.push(docker.reason);
  }
  reasons.push('MONGODB_URL not set');
  if (required) {
    throw new Error(
      `REQUIRE_MONGO=${env.REQUIRE_MONGO} but no MongoDB could be had (${reasons.join('; ')}). Set MONGODB_URL ` +
        'to a reachable server (a replica set, for change streams), or unset REQUIRE_MONGO to skip the Mongo tests.',
    );
  }
  return { target: { available: false, reason: reasons.join('; ') }, stop: async () => {} };
}

export function describeMongo(target: MongoTarget): string {
  if (!target.available) {
    return `[test-env] MongoDB not reachable (${target.reason}): Mongo integration tests are skipped.`;
  }
  const where = {
    env: 'from MONGODB_URL',
    'memory-server': 'mongodb-memory-server',
    docker: 'Docker mongo:7',
  }[target.source];
  return `[test-env] MongoDB ${redact(target.url)} (${where})`;
}
