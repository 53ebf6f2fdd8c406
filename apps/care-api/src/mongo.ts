import { type Db, MongoClient } from 'mongodb';
import { DependencyUnavailableError } from './http-errors.js';

export interface MongoCheck {
  status: 'up' | 'down' | 'disabled';
  latencyMs?: number;
  /** Why Mongo is disabled (configuration), never a driver message. */
  reason?: string;
}

/** MongoDB as the routes see it: either a database, or disabled with the reason logged once at startup. */
export type MongoDependency =
  | {
      enabled: true;
      client: MongoClient;
      db: Db;
      check(timeoutMs: number): Promise<MongoCheck>;
    }
  | { enabled: false; reason: string; check(timeoutMs: number): Promise<MongoCheck> };

export function disabledMongo(reason: string): MongoDependency {
  return {
    enabled: false,
    reason,
    check: async () => ({ status: 'disabled', reason }),
  };
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`ping timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Wraps a client the caller owns (and closes). */
export function mongoDependency(client: MongoClient, database: string): MongoDependency {
  const db = client.db(database);
  return {
    enabled: true,
    client,
    db,
    async check(timeoutMs) {
      const started = performance.now();
      try {
        await withTimeout(db.command({ ping: 1 }), timeoutMs);
        return { status: 'up', latencyMs: Math.round((performance.now() - started) * 1000) / 1000 };
      } catch {
        return { status: 'down', latencyMs: Math.round((performance.now() - started) * 1000) / 1000 };
      }
    },
  };
}

/** The database, or a 503 that says Mongo is not available to this service. */
export function requireMongo(mongo: MongoDependency): Db {
  if (!mongo.enabled) {
    throw new DependencyUnavailableError(
      'mongodb',
      'Patient profiles need MongoDB, which is not configured on this service (set MONGODB_URL).',
    );
  }
  return mongo.db;
}

export function createMongoClient(url: string, options: { serverSelectionTimeoutMs: number }): MongoClient {
  return new MongoClient(url, {
    appName: 'care-api',
    // A request must not wait the driver's default 30 s for a primary: it answers 503 and the client retries.
    serverSelectionTimeoutMS: options.serverSelectionTimeoutMs,
  });
}
