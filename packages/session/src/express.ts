import session from 'express-session';
import { type AdapterOptions, adapterOperations } from './adapters/shared.js';
import type { SessionStore } from './store.js';

export type { AdapterOptions } from './adapters/shared.js';

type Callback = (error?: unknown) => void;

/**
 * An express-session `Store` on `@austa/session` (any ioredis client, standalone or Cluster): sessions get the store's
 * idle and absolute timeouts, per-user index and cap, encryption and audit events. `touch` is free: reads already
 * slide the expiry (throttled).
 * @example
 * app.use(session({ store: createExpressStore(sessions), secret, resave: false, saveUninitialized: false }));
 */
export function createExpressStore(store: SessionStore, options?: AdapterOptions): session.Store {
  const operations = adapterOperations(store, options);

  class AustaExpressStore extends session.Store {
    override get(sid: string, callback: (error: unknown, data?: session.SessionData | null) => void): void {
      operations.get(sid).then(
        (data) => callback(null, (data as unknown as session.SessionData | null) ?? null),
        (error: unknown) => callback(error),
      );
    }

    override set(sid: string, data: session.SessionData, callback?: Callback): void {
      operations.set(sid, data as unknown as Record<string, unknown>).then(
        () => callback?.(),
        (error: unknown) => callback?.(error),
      );
    }

    override destroy(sid: string, callback?: Callback): void {
      operations.destroy(sid).then(
        () => callback?.(),
        (error: unknown) => callback?.(error),
      );
    }

    override touch(_sid: string, _data: session.SessionData, callback?: Callback): void {
      // get() already touched the session (sliding expiration, throttled by touchIntervalSeconds).
      callback?.();
    }
  }

  return new AustaExpressStore();
}
