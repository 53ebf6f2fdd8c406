import type { SessionStore } from '@austa/session';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  authOf,
  type CookieSettings,
  clearSessionCookie,
  presentedToken,
  type SessionData,
  setSessionCookie,
} from '../auth/session.js';
import type { UserLookup } from '../auth/users.js';
import { HttpError } from '../http-errors.js';
import { errorResponses, idParam } from '../schemas.js';

export interface AuthRoutesOptions {
  sessions: SessionStore;
  users: UserLookup;
  cookie: CookieSettings;
  absoluteTimeoutSeconds: number;
  /** The app's session guard (one instance, so that `prefetchSessions` recognises the routes it guards). */
  requireSession: (request: FastifyRequest) => Promise<void>;
}

const iso = (ms: number) => new Date(ms).toISOString();

const SESSION_SUMMARY = {
  type: 'object',
  required: ['id', 'expiresAt'],
  properties: {
    id: { type: 'string', description: 'The session handle: lists and revokes it, never authenticates.' },
    expiresAt: { type: 'string', format: 'date-time' },
  },
} as const;

const ME = {
  type: 'object',
  required: ['userId', 'roles', 'demo', 'session'],
  properties: {
    userId: { type: 'string' },
    roles: { type: 'array', items: { type: 'string' } },
    patientId: { type: 'string' },
    demo: { type: 'boolean', description: 'True for users of the demo login: never real patients.' },
    session: SESSION_SUMMARY,
  },
} as const;

const DEVICE = {
  type: 'object',
  properties: {
    userAgent: { type: 'string' },
    ip: { type: 'string', description: 'Truncated (IPv4 /24, IPv6 /48) before it is stored.' },
    deviceId: { type: 'string' },
    platform: { type: 'string' },
  },
} as const;

/** Login, logout and the "active devices" screen, on `@austa/session`. */
export async function authRoutes(app: FastifyInstance, options: AuthRoutesOptions): Promise<void> {
  const { sessions, users, cookie, requireSession } = options;

  app.post(
    '/auth/login',
    {
      schema: {
        tags: ['auth'],
        summary: `Log in: a new session and its HttpOnly cookie. The ${users.name} user lookup decides who may.`,
        description:
          users.name === 'demo'
            ? 'DEMO LOGIN: any lower-case username logs in with the password `demo`; usernames starting with `clinician` are clinicians. Replace the user lookup before real patients use the service: NODE_ENV=production refuses this one.'
            : undefined,
        body: {
          type: 'object',
          required: ['username', 'password'],
          additionalProperties: false,
          properties: {
            username: { type: 'string', minLength: 1, maxLength: 254 },
            password: { type: 'string', minLength: 1, maxLength: 1024 },
            deviceId: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
            platform: { type: 'string', pattern: '^[a-z0-9_-]{1,32}$' },
          },
        },
        response: { 200: ME, ...errorResponses(400, 401, 429, 503) },
      },
    },
    async (request, reply) => {
      const body = request.body as {
        username: string;
        password: string;
        deviceId?: string;
        platform?: string;
      };
      const user = await users.authenticate({ username: body.username, password: body.password });
      if (user === undefined) {
        throw new HttpError(401, 'E_INVALID_CREDENTIALS', 'The username or password is wrong.');
      }
      // A new id at every login: a token planted before login (session fixation) is ended, never promoted.
      const previous = presentedToken(request, cookie);
      if (previous !== undefined && /^[A-Za-z0-9_.-]{16,128}$/.test(previous)) {
        await sessions.deleteSession(previous);
      }
      const userAgent = request.headers['user-agent'];
      const data: SessionData = {
        roles: [...user.roles],
        ...(user.patientId !== undefined ? { patientId: user.patientId } : {}),
        demo: user.demo === true,
      };
      const created = await sessions.createSession<SessionData>({
        userId: user.id,
        data,
        device: {
          ...(userAgent !== undefined ? { userAgent: userAgent.slice(0, 512) } : {}),
          ip: request.ip,
          ...(body.deviceId !== undefined ? { deviceId: body.deviceId } : {}),
          ...(body.platform !== undefined ? { platform: body.platform } : {}),
        },
      });
      setSessionCookie(reply, cookie, created.token, options.absoluteTimeoutSeconds);
      request.log.info({ session: created.handle, demo: data.demo }, 'logged in');
      return {
        userId: user.id,
        roles: data.roles,
        ...(data.patientId !== undefined ? { patientId: data.patientId } : {}),
        demo: data.demo === true,
        session: { id: created.handle, expiresAt: iso(created.expiresAtMs) },
      };
    },
  );

  app.post(
    '/auth/logout',
    {
      preHandler: requireSession,
      schema: {
        tags: ['auth'],
        summary: 'Log out: this session ends on the server and the cookie is cleared.',
        response: { 204: { type: 'null' }, ...errorResponses(401, 429, 503) },
      },
    },
    async (request, reply) => {
      await sessions.deleteSession(authOf(request).token);
      clearSessionCookie(reply, cookie);
      return reply.code(204).send();
    },
  );

  app.get(
    '/me',
    {
      preHandler: requireSession,
      schema: {
        tags: ['auth'],
        summary: 'Who the session belongs to.',
        response: { 200: ME, ...errorResponses(401, 429, 503) },
      },
    },
    async (request) => {
      const auth = authOf(request);
      return {
        userId: auth.userId,
        roles: auth.roles,
        ...(auth.patientId !== undefined ? { patientId: auth.patientId } : {}),
        demo: auth.demo,
        session: { id: auth.handle, expiresAt: iso(auth.expiresAtMs) },
      };
    },
  );

  app.get(
    '/me/sessions',
    {
      preHandler: requireSession,
      schema: {
        tags: ['auth'],
        summary: 'The devices the user is logged in on, newest first.',
        response: {
          200: {
            type: 'object',
            required: ['sessions'],
            properties: {
              sessions: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'current', 'device', 'createdAt', 'lastSeenAt', 'expiresAt'],
                  properties: {
                    id: { type: 'string' },
                    current: { type: 'boolean', description: 'The session of this request.' },
                    device: DEVICE,
                    createdAt: { type: 'string', format: 'date-time' },
                    lastSeenAt: { type: 'string', format: 'date-time' },
                    expiresAt: { type: 'string', format: 'date-time' },
                  },
                },
              },
            },
          },
          ...errorResponses(401, 429, 503),
        },
      },
    },
    async (request) => {
      const auth = authOf(request);
      const list = await sessions.getUserSessions(auth.userId);
      return {
        sessions: list.map((session) => ({
          id: session.handle,
          current: session.handle === auth.handle,
          device: session.device,
          createdAt: iso(session.createdAtMs),
          lastSeenAt: iso(session.lastSeenAtMs),
          expiresAt: iso(session.expiresAtMs),
        })),
      };
    },
  );

  app.delete(
    '/me/sessions/:id',
    {
      preHandler: requireSession,
      schema: {
        tags: ['auth'],
        summary: 'Revoke one of the user’s sessions (log a device out).',
        params: idParam('A session id from GET /me/sessions.'),
        response: { 204: { type: 'null' }, ...errorResponses(400, 401, 404, 429, 503) },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      const { id } = request.params as { id: string };
      // The store checks the handle belongs to this user: another user's handle is "not found", never revoked.
      const revoked = /^[A-Za-z0-9_-]{43}$/.test(id) && (await sessions.deleteUserSession(auth.userId, id));
      if (!revoked) throw new HttpError(404, 'E_SESSION_NOT_FOUND', 'No such session of yours.');
      if (id === auth.handle) clearSessionCookie(reply, cookie);
      return reply.code(204).send();
    },
  );

  app.delete(
    '/me/sessions',
    {
      preHandler: requireSession,
      schema: {
        tags: ['auth'],
        summary: 'Revoke every session of the user, this one included (log out everywhere).',
        response: {
          200: {
            type: 'object',
            required: ['revoked'],
            properties: { revoked: { type: 'integer', description: 'Sessions ended.' } },
          },
          ...errorResponses(401, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const revoked = await sessions.deleteUserSessions(authOf(request).userId);
      clearSessionCookie(reply, cookie);
      return { revoked };
    },
  );
}
