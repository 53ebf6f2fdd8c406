import type { Session, SessionStore } from '@austa/session';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from '../http-errors.js';

/** What a session holds besides the user id: enough to authorize without asking the identity provider again. */
export interface SessionData {
  roles: string[];
  patientId?: string;
  demo?: boolean;
}

/** The caller, once `requireSession` has run. */
export interface AuthContext {
  userId: string;
  roles: readonly string[];
  patientId?: string;
  demo: boolean;
  /** The session's handle: safe to show and log, never usable as a credential. */
  handle: string;
  /** The raw token the client presented (to log out this session). Never logged. */
  token: string;
  expiresAtMs: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth?: AuthContext;
    /** The session lookup started in onRequest (see `prefetchSessions`), awaited by the guard. */
    sessionLookup?: { token: string; session: Promise<Session<SessionData> | null> };
  }
  interface FastifyContextConfig {
    /** Set by `prefetchSessions` on routes guarded by the session guard. */
    session?: boolean;
  }
}

export interface CookieSettings {
  name: string;
  secure: boolean;
}

/**
 * `__Host-` in production: browsers accept it only with Secure, Path=/ and no Domain, so a sibling subdomain cannot
 * plant or overwrite it. Development runs on plain http, where a Secure cookie would never come back.
 */
export function cookieSettings(production: boolean): CookieSettings {
  return production ? { name: '__Host-care_session', secure: true } : { name: 'care_session', secure: false };
}

/** The raw session token of a request: the cookie, else `Authorization: Bearer <token>` (scripts, mobile apps). */
export function presentedToken(request: FastifyRequest, cookie: CookieSettings): string | undefined {
  const header = request.headers.cookie;
  if (header !== undefined) {
    for (const part of header.split(';')) {
      const index = part.indexOf('=');
      if (index < 0) continue;
      if (part.slice(0, index).trim() === cookie.name) {
        const value = part.slice(index + 1).trim();
        if (value !== '') return value;
      }
    }
  }
  // The scheme is case-insensitive (RFC 9110 §11.1): `bearer x` and `BEARER x` are `Bearer x`.
  const bearer = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(request.headers.authorization ?? '');
  if (bearer?.[1] !== undefined) return bearer[1];
  return undefined;
}

/** HttpOnly (no script reads it), SameSite=Strict (no cross-site request carries it), Secure in production. */
export function setSessionCookie(
  reply: FastifyReply,
  cookie: CookieSettings,
  token: string,
  maxAgeSeconds: number,
): void {
  const parts = [
    `${cookie.name}=${token}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`,
  ];
  if (cookie.secure) parts.push('Secure');
  reply.header('set-cookie', parts.join('; '));
}

export function clearSessionCookie(reply: FastifyReply, cookie: CookieSettings): void {
  setSessionCookie(reply, cookie, '', 0);
}

// Tokens are base64url parts joined by a dot; anything else is refused before it reaches Redis.
const TOKEN = /^[A-Za-z0-9_.-]{16,128}$/;

const unauthenticated = () =>
  new HttpError(401, 'E_UNAUTHENTICATED', 'Log in first: this route needs a valid session.', {
    headers: { 'www-authenticate': 'Bearer realm="care-api"' },
  });

/** A preHandler: sets `request.auth` from a live session, or answers 401. */
export function sessionGuard(sessions: SessionStore, cookie: CookieSettings) {
  return async function requireSession(request: FastifyRequest): Promise<void> {
    const prefetched = request.sessionLookup;
    const token = prefetched?.token ?? presentedToken(request, cookie);
    if (token === undefined || !TOKEN.test(token)) throw unauthenticated();
    const session = await (prefetched?.session ?? sessions.getSession<SessionData>(token));
    if (session === null) throw unauthenticated();
    const data = session.data;
    request.auth = {
      userId: session.userId,
      roles: Array.isArray(data.roles) ? data.roles : [],
      ...(typeof data.patientId === 'string' ? { patientId: data.patientId } : {}),
      demo: data.demo === true,
      handle: session.handle,
      token,
      expiresAtMs: session.expiresAtMs,
    };
  };
}

/**
 * Starts the session lookup of guarded routes in onRequest, so it runs while the body is read and parsed; the guard
 * awaits it. Install it AFTER the per-IP rate limit: a request the limit rejects (429) then never looks its session
 * up. Starting the lookup before the limit decided (so the two Redis round trips overlap) was measurably faster, but
 * made rejected requests cost a session lookup and touch the session's idle timer: a flood of 429s would still load
 * Redis and keep a stolen session alive. Correctness wins over that overlap here.
 */
export function prefetchSessions(
  app: FastifyInstance,
  sessions: SessionStore,
  cookie: CookieSettings,
  guard: (request: FastifyRequest) => Promise<void>,
): void {
  app.addHook('onRoute', (route) => {
    const handlers = [route.preHandler ?? []].flat();
    if (handlers.includes(guard as never)) route.config = { ...(route.config ?? {}), session: true };
  });
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.routeOptions.config?.session === true) {
      const token = presentedToken(request, cookie);
      if (token !== undefined && TOKEN.test(token)) {
        const session = sessions.getSession<SessionData>(token);
        // Awaited by the guard; a request failing before it (a bad body) never awaits it, and its failure must not
        // be reported as unhandled.
        session.catch(() => {});
        request.sessionLookup = { token, session };
      }
    }
    done();
  });
}

/** The caller set by `requireSession`; a route without the guard calling this is a bug (500). */
export function authOf(request: FastifyRequest): AuthContext {
  if (request.auth === undefined) throw new Error('route reads auth without the session guard');
  return request.auth;
}
