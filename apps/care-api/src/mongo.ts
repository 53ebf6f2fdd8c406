import type { AustaMongoClient, ChangeStreamStatus } from '@austa/mongo-client';
import { DependencyUnavailableError } from './http-errors.js';

export interface MongoCheck {
  status: 'up' | 'down' | 'disabled';
  /** `hello` round trip, in milliseconds. */
  latencyMs?: number;
  /** Why Mongo is disabled (configuration), never a driver message. */
  reason?: string;
  /** The change streams the service runs (profile cache invalidation), by name and state. */
  changeStreams?: Array<{ name: string; state: string; lagSeconds: number | null }>;
}

/** MongoDB as the routes see it: an instrumented client, or disabled with the reason logged once at startup. */
export type MongoDependency =
  | { enabled: true; mongo: AustaMongoClient; check(timeoutMs: number): Promise<MongoCheck> }
  | { enabled: false; reason: string; check(timeoutMs: number): Promise<MongoCheck> };

export function disabledMongo(reason: string): MongoDependency {
  return { enabled: false, reason, check: async () => ({ status: 'disabled', reason }) };
}

function streamSummary(stream: ChangeStreamStatus) {
  return { name: stream.name, state: stream.state, lagSeconds: stream.lagSeconds };
}

/** Wraps a client the caller owns (and closes). `health()` never throws; its problems are for the log. */
export function mongoDependency(
  mongo: AustaMongoClient,
  onProblems: (problems: string[]) => void = () => {},
): MongoDependency {
  return {
    enabled: true,
    mongo,
    async check(timeoutMs) {
      const health = await mongo.health({ timeoutMs });
      if (!health.healthy) onProblems(health.problems);
      const check: MongoCheck = { status: health.healthy ? 'up' : 'down' };
      if (health.ping.durationMs !== null) check.latencyMs = Math.round(health.ping.durationMs * 1000) / 1000;
      if (health.changeStreams.length > 0) check.changeStreams = health.changeStreams.map(streamSummary);
      return check;
    },
  };
}

/** The client, or a 503 that says MongoDB is not available to this service. */
export function requireMongo(dependency: MongoDependency): AustaMongoClient {
  if (!dependency.enabled) {
    throw new DependencyUnavailableError(
      'mongodb',
      'Patient profiles need MongoDB, which this service runs without (set MONGODB_URL).',
    );
  }
  return dependency.mongo;
}
