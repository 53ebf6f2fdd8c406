import { createHash } from 'node:crypto';
import { SessionError } from '../errors.js';
import type { SessionStore } from '../store.js';

/** Options shared by the express-session and @fastify/session stores. */
export interface AdapterOptions {
  /**
   * Reads the user id from the framework's session object. Default: its `userId` field. Sessions without one (before
   * login) are kept under a per-session anonymous id, so they count against no user's cap.
   */
  userIdOf?: (session: Record<string, unknown>) => string | undefined;
}

export function anonymousUserId(sessionId: string): string {
  // One pseudo-user per anonymous session: its own slot, its own cap of one, nothing shared with real users.
  return `anonymous:${createHash('sha256').update(sessionId).digest('base64url').slice(0, 32)}`;
}

/** The three operations both frameworks need, on top of a SessionStore, as promises. */
export function adapterOperations(store: SessionStore, options: AdapterOptions = {}) {
  const userIdOf =
    options.userIdOf ??
    ((session: Record<string, unknown>) => (typeof session.userId === 'string' ? session.userId : undefined));
  return {
    async get(sessionId: string): Promise<Record<string, unknown> | null> {
      const session = await store.getSession<Record<string, unknown>>(sessionId);
      return session ? session.data : null;
    },
    async set(sessionId: string, data: Record<string, unknown>): Promise<void> {
      const userId = userIdOf(data) ?? anonymousUserId(sessionId);
      await store.saveSession(sessionId, { userId, data });
    },
    async destroy(sessionId: string): Promise<void> {
      try {
        await store.deleteSession(sessionId);
      } catch (error) {
        // A cookie carrying an id we never issue cannot name a stored session: there is nothing to destroy.
        if (SessionError.isInstance(error) && error.code === 'E_INVALID_SESSION_ID') return;
        throw error;
      }
    },
  };
}
