import { defineScript, RedisMaybeAppliedError } from '@austa/redis-cluster';
import { keysWithoutTtl } from '@austa/test-env/vitest';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import express from 'express';
import expressSession from 'express-session';
import Fastify from 'fastify';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { createExpressStore } from '../src/express.js';
import { createFastifyStore } from '../src/fastify.js';
import { CREATE } from '../src/scripts/create.js';
import { TAKE } from '../src/scripts/repoint.js';
import { codeOf, everythingStored, harness, sleep, type Topology } from './support.js';

const SECRET = 'a-test-secret-that-is-at-least-32-characters-long';

/** The last cookie the response set with a value (a regenerate may first clear the old one). */
function cookieOf(setCookie: string | string[] | undefined): string {
  const headers = (Array.isArray(setCookie) ? setCookie : [setCookie ?? '']).map(
    (c) => c.split(';')[0] ?? '',
  );
  return headers.filter((pair) => !pair.endsWith('=')).at(-1) ?? '';
}

/** Every session id the frameworks handed out, to look for in Redis afterwards. */
const issuedIds: string[] = [];

/** The session id inside a signed cookie (`s:<id>.<signature>`, URL-encoded for express). */
function sessionIdOf(setCookie: string | string[] | undefined, name: string): string {
  const pair = cookieOf(setCookie);
  const value = decodeURIComponent(pair.startsWith(`${name}=`) ? pair.slice(name.length + 1) : '');
  const unsigned = value.startsWith('s:') ? value.slice(2) : value;
  const id = unsigned.slice(0, unsigned.lastIndexOf('.'));
  issuedIds.push(id);
  return id;
}

describe.each(['standalone', 'cluster'] as const)('framework adapters on %s', (topology: Topology) => {
  const h = harness(topology, `session-adapters-${topology}`);
  const store = h.store();

  afterAll(async () => {
    // What the frameworks stored expires by itself, and no session id they issued is in Redis: only its hash.
    expect(await keysWithoutTtl(h.client, h.prefix)).toEqual([]);
    const stored = await everythingStored(h);
    expect(stored.length).toBeGreaterThan(0);
    expect(issuedIds.length).toBeGreaterThanOrEqual(4);
    for (const id of issuedIds) for (const bytes of stored) expect(bytes.includes(id)).toBe(false);
    await h.cleanup();
    await h.client.quit();
  });

  describe('express-session', () => {
    const app = express();
    app.use(
      expressSession({
        store: createExpressStore(store),
        secret: SECRET,
        resave: false,
        saveUninitialized: false,
      }),
    );
    app.get('/visit', (req, res) => {
      const session = req.session as unknown as Record<string, unknown>;
      session.views = ((session.views as number | undefined) ?? 0) + 1;
      res.json({ views: session.views });
    });
    app.post('/login', (req, res, next) => {
      req.session.regenerate((error) => {
        if (error) return next(error);
        (req.session as unknown as Record<string, unknown>).userId = 'u-express';
        req.session.save((saveError) => (saveError ? next(saveError) : res.json({ ok: true })));
      });
    });
    app.get('/me', (req, res) => {
      res.json({ userId: (req.session as unknown as Record<string, unknown>).userId ?? null });
    });
    app.post('/logout', (req, res, next) => {
      req.session.destroy((error) => (error ? next(error) : res.json({ ok: true })));
    });

    it('keeps an anonymous session, and regenerate() at login destroys the old id on the server', async () => {
      const visit = await request(app).get('/visit').expect(200);
      const anonymousCookie = cookieOf(visit.headers['set-cookie']);
      const anonymousId = sessionIdOf(visit.headers['set-cookie'], 'connect.sid');
      expect((await request(app).get('/visit').set('Cookie', anonymousCookie)).body).toEqual({ views: 2 });
      expect(await store.getSession(anonymousId)).not.toBeNull();

      const login = await request(app).post('/login').set('Cookie', anonymousCookie).expect(200);
      const userCookie = cookieOf(login.headers['set-cookie']);
      const userId = sessionIdOf(login.headers['set-cookie'], 'connect.sid');
      expect(userId).not.toBe(anonymousId);
      expect(await store.getSession(anonymousId)).toBeNull();
      expect((await request(app).get('/me').set('Cookie', anonymousCookie)).body).toEqual({ userId: null });
      expect((await request(app).get('/me').set('Cookie', userCookie)).body).toEqual({ userId: 'u-express' });
      const listed = await store.getUserSessions('u-express');
      expect(listed.map((s) => s.handle)).toContain((await store.getSession(userId))?.handle);
    });

    it('logout destroys the session on the server: the old cookie no longer authenticates', async () => {
      const login = await request(app).post('/login').expect(200);
      const cookie = cookieOf(login.headers['set-cookie']);
      const id = sessionIdOf(login.headers['set-cookie'], 'connect.sid');
      expect((await request(app).get('/me').set('Cookie', cookie)).body).toEqual({ userId: 'u-express' });
      await request(app).post('/logout').set('Cookie', cookie).expect(200);
      expect(await store.getSession(id)).toBeNull();
      expect((await request(app).get('/me').set('Cookie', cookie)).body).toEqual({ userId: null });
    });

    it('revoking the user elsewhere (deleteUserSessions) logs the browser out', async () => {
      const login = await request(app).post('/login').expect(200);
      const cookie = cookieOf(login.headers['set-cookie']);
      expect(await store.deleteUserSessions('u-express')).toBeGreaterThan(0);
      expect((await request(app).get('/me').set('Cookie', cookie)).body).toEqual({ userId: null });
    });
  });

  describe('a save that races a logout (the connect-redis #328 race)', () => {
    // express-session's and @fastify/session's calls, as promises: a request loads the session, another logs out or
    // revokes, then the first one ends and saves what it loaded.
    const call = <R>(run: (callback: (error?: unknown, value?: R) => void) => void) =>
      new Promise<R>((resolve, reject) =>
        run((error, value) => (error ? reject(error) : resolve(value as R))),
      );
    const express = createExpressStore(store);
    const fastify = createFastifyStore(store);
    const stores = [
      ['express', express.get.bind(express), express.set.bind(express), express.destroy.bind(express)],
      ['fastify', fastify.get.bind(fastify), fastify.set.bind(fastify), fastify.destroy.bind(fastify)],
    ] as const;

    it.each(stores)(
      '%s: a late save after logout or revoke-all writes nothing',
      async (name, get, set, destroy) => {
        const id = `late-save-${name}-${topology}-0123456789`;
        const userId = `u-late-${name}`;
        await call((cb) => set(id, { cookie: {}, userId, page: '/a' } as never, cb));
        const loaded = await call<Record<string, unknown>>((cb) => get(id, cb as never));
        expect(loaded).toMatchObject({ userId, page: '/a' });
        await call((cb) => destroy(id, cb));
        await call((cb) => set(id, { ...loaded, page: '/b' } as never, cb));
        expect(await store.getSession(id)).toBeNull();
        expect(await store.getSessionCount(userId)).toBe(0);

        const revokedId = `late-revoke-${name}-${topology}-0123456789`;
        await call((cb) => set(revokedId, { cookie: {}, userId, page: '/a' } as never, cb));
        const again = await call<Record<string, unknown>>((cb) => get(revokedId, cb as never));
        expect(await store.deleteUserSessions(userId)).toBe(1);
        await call((cb) => set(revokedId, again as never, cb));
        expect(await store.getSession(revokedId)).toBeNull();
        expect(await store.getSessionCount(userId)).toBe(0);
      },
    );

    it('a save after the absolute deadline neither brings the session back nor gives it a new deadline', async () => {
      const short = h.store({ idleTimeoutSeconds: 1, absoluteTimeoutSeconds: 1.5, touchIntervalSeconds: 0 });
      const adapter = createExpressStore(short);
      const id = `late-absolute-${topology}-0123456789`;
      await call((cb) => adapter.set(id, { cookie: {}, userId: 'u-late-absolute' } as never, cb));
      const first = await short.getSession(id, { touch: false });
      expect(first).not.toBeNull();
      await sleep(900);
      const loaded = await call<Record<string, unknown>>((cb) => adapter.get(id, cb as never));
      expect(loaded).not.toBeNull();
      // A save before the deadline keeps the deadline of the creation.
      await call((cb) => adapter.set(id, loaded as never, cb));
      expect((await short.getSession(id, { touch: false }))?.absoluteExpiresAtMs).toBe(
        first?.absoluteExpiresAtMs,
      );
      await sleep(800);
      await call((cb) => adapter.set(id, loaded as never, cb));
      expect(await short.getSession(id, { touch: false })).toBeNull();
    });

    it('an anonymous session that logs in without regenerate() moves to the user with its absolute deadline', async () => {
      const id = `late-move-${topology}-0123456789abcdef`;
      const adapter = createExpressStore(store);
      await call((cb) => adapter.set(id, { cookie: {}, views: 1 } as never, cb));
      const anonymous = await store.getSession(id, { touch: false });
      await call((cb) => adapter.set(id, { cookie: {}, views: 2, userId: 'u-late-move' } as never, cb));
      const moved = await store.getSession(id, { touch: false });
      expect(moved).toMatchObject({ userId: 'u-late-move', data: { views: 2 } });
      expect(moved?.absoluteExpiresAtMs).toBe(anonymous?.absoluteExpiresAtMs);
      expect(moved?.createdAtMs).toBe(anonymous?.createdAtMs);
      expect(await store.getSessionCount('u-late-move')).toBe(1);
      expect(await store.deleteSession(id)).toBe(true);
    });
  });

  describe('saveSession', () => {
    const big = { blob: 'x'.repeat(70 * 1024) };

    it('a login save refused for its data leaves the anonymous session as it was, and a later save moves it', async () => {
      const id = `refused-move-${topology}-0123456789abcdef`;
      expect(await store.saveSession(id, { userId: 'anonymous', data: { views: 1 } })).toBe(true);
      const anonymous = await store.getSession(id, { touch: false });
      await expect(store.saveSession(id, { userId: 'u-refused-move', data: big })).rejects.toMatchObject({
        code: 'E_VALUE_TOO_LARGE',
      });
      expect(await store.getSession(id, { touch: false })).toMatchObject({
        userId: 'anonymous',
        data: { views: 1 },
      });
      expect(await store.saveSession(id, { userId: 'u-refused-move', data: { views: 2 } })).toBe(true);
      const moved = await store.getSession(id, { touch: false });
      expect(moved).toMatchObject({ userId: 'u-refused-move', data: { views: 2 } });
      expect(moved?.createdAtMs).toBe(anonymous?.createdAtMs);
      expect(await store.deleteSession(id)).toBe(true);
    });

    it('concurrent login saves of one id for one user move it once and keep it', async () => {
      const id = `double-move-${topology}-0123456789abcdef`;
      expect(await store.saveSession(id, { userId: 'anonymous', data: { views: 1 } })).toBe(true);
      const saved = await Promise.all(
        Array.from({ length: 8 }, (_, i) => store.saveSession(id, { userId: 'u-double-move', data: { i } })),
      );
      expect(saved).toContain(true);
      expect(await store.getSession(id, { touch: false })).toMatchObject({ userId: 'u-double-move' });
      expect(await store.getSessionCount('u-double-move')).toBe(1);
      expect(await store.saveSession(id, { userId: 'u-double-move', data: { after: true } })).toBe(true);
      expect(await store.deleteSession(id)).toBe(true);
    });

    /** Runs `work` while the store's calls of one script go through `intercept` instead of the client. */
    async function intercepting<T>(
      lua: string,
      intercept: (send: () => Promise<unknown>) => Promise<unknown>,
      work: () => Promise<T>,
    ): Promise<T> {
      const sha = defineScript(lua).sha;
      const target = h.client as unknown as { evalshaBuffer(...args: unknown[]): Promise<unknown> };
      const original = target.evalshaBuffer;
      target.evalshaBuffer = function (this: unknown, ...args: unknown[]) {
        const send = () => original.apply(this, args);
        return args[0] === sha ? intercept(send) : send();
      };
      try {
        return await work();
      } finally {
        target.evalshaBuffer = original;
      }
    }

    it('a login move whose take never ran, revoked before it is sent again, brings nothing back', async () => {
      const id = `lost-take-${topology}-0123456789abcdef`;
      expect(await store.saveSession(id, { userId: 'u-lost-take-old', data: { views: 1 } })).toBe(true);
      let lost = false;
      const saved = await intercepting(
        TAKE,
        async (send) => {
          if (lost) return send();
          lost = true;
          // The connection closed before the take was written; a revoke of the old user runs meanwhile.
          expect(await store.deleteUserSessions('u-lost-take-old')).toBe(1);
          throw new RedisMaybeAppliedError('evalsha');
        },
        () => store.saveSession(id, { userId: 'u-lost-take-new', data: { views: 2 } }),
      );
      expect(lost).toBe(true);
      expect(saved).toBe(false);
      expect(await store.getSession(id, { touch: false })).toBeNull();
      expect(await store.getSessionCount('u-lost-take-new')).toBe(0);
    });

    it('a first save whose create may have run keeps the id claimed when its retry fails', async () => {
      const id = `maybe-create-${topology}-0123456789abcdef`;
      let attempts = 0;
      const code = await codeOf(() =>
        intercepting(
          CREATE,
          async (send) => {
            attempts++;
            if (attempts === 1) {
              await send();
              throw new RedisMaybeAppliedError('evalsha');
            }
            throw new Error('connection reset');
          },
          () => store.saveSession(id, { userId: 'u-maybe-create', data: { ok: true } }),
        ),
      );
      expect(code).toBe('E_REDIS_UNAVAILABLE');
      expect(attempts).toBe(2);
      // The first attempt wrote the session: its id must still lead to it, and to nobody else's.
      expect(await store.getSession(id, { touch: false })).toMatchObject({ userId: 'u-maybe-create' });
      expect(await store.deleteSession(id)).toBe(true);
    });

    it('a first save refused for its data does not keep the id: the next save stores it', async () => {
      const id = `refused-first-${topology}-0123456789abcdef`;
      await expect(store.saveSession(id, { userId: 'u-refused-first', data: big })).rejects.toMatchObject({
        code: 'E_VALUE_TOO_LARGE',
      });
      expect(await store.saveSession(id, { userId: 'u-refused-first', data: { ok: true } })).toBe(true);
      expect(await store.getSession(id, { touch: false })).toMatchObject({ data: { ok: true } });
      expect(await store.deleteSession(id)).toBe(true);
    });

    it('a logout that located the session before it moved still ends it, in its new slot, and audits it', async () => {
      const id = `logout-move-${topology}-0123456789abcdef`;
      expect(await store.saveSession(id, { userId: 'anonymous', data: { views: 1 } })).toBe(true);
      // The logout reads the pointer first; the move runs before the logout's delete.
      const target = h.client as unknown as { get(key: string): Promise<string | null> };
      const original = target.get;
      let moved: Promise<boolean> | undefined;
      target.get = async function (this: unknown, key: string) {
        const value = await original.call(this, key);
        if (moved === undefined && key.includes(':p:')) {
          target.get = original;
          moved = store.saveSession(id, { userId: 'u-logout-move', data: { views: 2 } });
          await moved;
        }
        return value;
      };
      const revokesBefore = h.events.filter((e) => e.type === 'revoke').length;
      let loggedOut: boolean;
      try {
        loggedOut = await store.deleteSession(id);
      } finally {
        target.get = original;
      }
      expect(await moved).toBe(true);
      expect(loggedOut).toBe(true);
      expect(await store.getSession(id, { touch: false })).toBeNull();
      expect(await store.getSessionCount('u-logout-move')).toBe(0);
      expect(h.events.filter((e) => e.type === 'revoke').length).toBe(revokesBefore + 1);
    });
  });

  describe('@fastify/session', () => {
    async function app() {
      const fastify = Fastify();
      await fastify.register(fastifyCookie);
      await fastify.register(fastifySession, {
        secret: SECRET,
        store: createFastifyStore(store),
        cookie: { secure: false },
        saveUninitialized: false,
      });
      fastify.get('/visit', async (req) => {
        const views = ((req.session.get('views' as never) as number | undefined) ?? 0) + 1;
        req.session.set('views' as never, views as never);
        return { views };
      });
      fastify.post('/login', async (req) => {
        await req.session.regenerate();
        req.session.set('userId' as never, 'u-fastify' as never);
        await req.session.save();
        return { ok: true };
      });
      fastify.get('/me', async (req) => ({ userId: req.session.get('userId' as never) ?? null }));
      fastify.post('/logout', async (req) => {
        await req.session.destroy();
        return { ok: true };
      });
      return fastify;
    }

    it('regenerate() at login destroys the old id, and logout invalidates on the server', async () => {
      const fastify = await app();
      const visit = await fastify.inject({ method: 'GET', url: '/visit' });
      const anonymousCookie = cookieOf(visit.headers['set-cookie']);
      const anonymousId = sessionIdOf(visit.headers['set-cookie'], 'sessionId');
      expect(await store.getSession(anonymousId)).not.toBeNull();
      const second = await fastify.inject({
        method: 'GET',
        url: '/visit',
        headers: { cookie: anonymousCookie },
      });
      expect(second.json()).toEqual({ views: 2 });

      const login = await fastify.inject({
        method: 'POST',
        url: '/login',
        headers: { cookie: anonymousCookie },
      });
      const userCookie = cookieOf(login.headers['set-cookie']);
      const userSessionId = sessionIdOf(login.headers['set-cookie'], 'sessionId');
      expect(userSessionId).not.toBe(anonymousId);
      expect(await store.getSession(anonymousId)).toBeNull();
      expect(
        (await fastify.inject({ method: 'GET', url: '/me', headers: { cookie: userCookie } })).json(),
      ).toEqual({
        userId: 'u-fastify',
      });
      expect((await store.getUserSessions('u-fastify')).length).toBeGreaterThan(0);

      await fastify.inject({ method: 'POST', url: '/logout', headers: { cookie: userCookie } });
      expect(await store.getSession(userSessionId)).toBeNull();
      expect(
        (await fastify.inject({ method: 'GET', url: '/me', headers: { cookie: userCookie } })).json(),
      ).toEqual({
        userId: null,
      });
      await fastify.close();
    });
  });
});
