import { type AdapterOptions, adapterOperations } from './adapters/shared.js';
import type { SessionStore } from './store.js';

export type { AdapterOptions } from './adapters/shared.js';

type Callback = (error?: unknown) => void;

/**
 * The store interface @fastify/session expects (`SessionStore` in its types). The session type is a parameter so the
 * store fits @fastify/session's own `Session` type without a cast; it is stored through @austa/codec as an object.
 */
export interface FastifySessionStore<S extends object = object> {
  set(sessionId: string, session: S, callback: Callback): void;
  get(sessionId: string, callback: (error: unknown, session?: S | null) => void): void;
  destroy(sessionId: string, callback: Callback): void;
}

/**
 * A @fastify/session store on `@austa/session`: idle and absolute timeouts, per-user index and cap, encryption and
 * audit events, on any ioredis client, standalone or Cluster.
 * @example
 * await app.register(fastifySession, { secret, store: createFastifyStore(sessions) });
 */
// biome-ignore lint/suspicious/noExplicitAny: the default fits @fastify/session's own Session type without a cast
export function createFastifyStore<S extends object = any>(
  store: SessionStore,
  options?: AdapterOptions,
): FastifySessionStore<S> {
  const operations = adapterOperations(store, options);
  return {
    set(sessionId, session, callback) {
      operations
        .set(sessionId, session as unknown as Record<string, unknown>)
        .then(() => callback(), callback);
    },
    get(sessionId, callback) {
      operations.get(sessionId).then(
        // @fastify/session restores its Session from the stored fields (cookie and your values).
        (data) => callback(null, data as unknown as S | null),
        (error: unknown) => callback(error),
      );
    },
    destroy(sessionId, callback) {
      operations.destroy(sessionId).then(() => callback(), callback);
    },
  };
}
