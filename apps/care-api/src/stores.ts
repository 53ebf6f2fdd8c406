import { type Cache, createCache } from '@austa/cache';
import { type Codec, createCodec } from '@austa/codec';
import { type ConversationStore, createConversationStore } from '@austa/conversation-context';
import type { Metrics } from '@austa/metrics';
import { createRateLimiter, type LimitConfig, type RateLimiter } from '@austa/rate-limit';
import type { RedisClient } from '@austa/redis-cluster';
import { createSessionStore, type SessionStore } from '@austa/session';
import type { Config } from './config.js';

/** The four Redis stores of the service, on one Redis client and one metrics registry. */
export interface Stores {
  codec: Codec;
  sessions: SessionStore;
  /** Per client IP, every route but operations. */
  ipLimiter: RateLimiter;
  ipLimit: LimitConfig;
  /** Per user, assistant routes, on top of the IP limit. */
  assistantLimiter: RateLimiter;
  assistantLimit: LimitConfig;
  conversations: ConversationStore;
  /** Patient profiles read from MongoDB. */
  profiles: Cache;
  /** Ends the stores' timers and subscribers. The Redis client stays open: it is not theirs. */
  close(): Promise<void>;
}

export interface StoreLogger {
  warn(message: string): void;
}

/**
 * Builds every store on the shared client. Patient data (session devices, messages, profiles) is encrypted at rest
 * with one codec; each store binds its ciphertexts to their keys, so a value copied elsewhere does not decode.
 */
export function createStores(options: {
  config: Config;
  redis: RedisClient;
  metrics: Metrics;
  logger: StoreLogger;
}): Stores {
  const { config, redis, metrics, logger } = options;
  const client = redis.client;
  const codec = createCodec({
    encryption: { currentKeyId: config.encryption.currentKeyId, keys: config.encryption.keys },
  });
  const sessions = createSessionStore({
    redis: client,
    prefix: 'care:session',
    idleTimeoutSeconds: config.sessions.idleTimeoutSeconds,
    absoluteTimeoutSeconds: config.sessions.absoluteTimeoutSeconds,
    maxSessionsPerUser: config.sessions.maxPerUser,
    codec,
    // Token hashes keyed by the secret: a copy of Redis alone does not let anyone test guessed tokens offline.
    tokenSecret: config.sessionSecret.value,
    metrics,
  });
  // Insurance (an in-memory limiter per process) while Redis is away: requests still flow, abuse is still bounded.
  const ipLimiter = createRateLimiter({
    redis: client,
    name: 'ip',
    prefix: 'care:rate-limit',
    failurePolicy: 'insurance',
    metrics,
  });
  const assistantLimiter = createRateLimiter({
    redis: client,
    name: 'assistant',
    prefix: 'care:rate-limit',
    failurePolicy: 'insurance',
    metrics,
  });
  const conversations = createConversationStore({
    redis: client,
    prefix: 'care:conversation',
    ttlSeconds: config.conversations.ttlSeconds,
    maxMessages: config.conversations.maxMessages,
    codec,
    metrics,
    requireOwner: true,
    logger,
  });
  const profiles = createCache({
    redis: client,
    prefix: 'care:cache',
    namespace: 'profiles',
    defaultTtlSeconds: config.profileCacheTtlSeconds,
    codec,
    metrics,
    // In-process copies, kept coherent across instances over pub/sub; bounded so a lost message heals quickly.
    l1: { maxEntries: 10_000, maxTtlSeconds: 30 },
    logger,
  });
  let closing: Promise<void> | undefined;
  return {
    codec,
    sessions,
    ipLimiter,
    ipLimit: { limit: config.rateLimits.ipPerMinute, windowSeconds: 60 },
    assistantLimiter,
    assistantLimit: { limit: config.rateLimits.assistantPerMinute, windowSeconds: 60 },
    conversations,
    profiles,
    close() {
      closing ??= Promise.allSettled([
        sessions.close(),
        ipLimiter.close(),
        assistantLimiter.close(),
        conversations.close(),
        profiles.close(),
      ]).then(() => undefined);
      return closing;
    },
  };
}
