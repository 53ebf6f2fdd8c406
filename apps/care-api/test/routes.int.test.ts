import { randomBytes } from 'node:crypto';
import { scanKeys } from '@austa/redis-cluster';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEchoResponder } from '../src/assistant/responder.js';
import { createDemoUserLookup, type UserLookup } from '../src/auth/users.js';
import { ConfigError } from '../src/config.js';
import { capturingLogger, samples, startTestService, type TestService, TOPOLOGIES } from './support.js';

const COOKIE = 'care_session';

/** A username no earlier run used: suites share test-env's Redis across files and runs. */
function username(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** An address of TEST-NET-2 no other test uses, so each rate-limit test has its own counters. */
function freshIp(): string {
  const bytes = randomBytes(2);
  return `198.51.${bytes[0]}.${bytes[1]}`;
}

function sessionCookie(response: LightMyRequestResponse): string {
  const header = [response.headers['set-cookie'] ?? []].flat().find((line) => line.startsWith(`${COOKIE}=`));
  if (header === undefined) throw new Error(`no ${COOKIE} cookie in ${response.statusCode} ${response.body}`);
  return header;
}

function tokenOf(response: LightMyRequestResponse): string {
  return (
    sessionCookie(response)
      .split(';')[0]
      ?.slice(COOKIE.length + 1) ?? ''
  );
}

/** A production environment; the URLs only satisfy the checks: the test service connects to test-env's servers. */
const PRODUCTION_ENV = () => ({
  NODE_ENV: 'production',
  REDIS_URL: 'redis://unused:6379',
  MONGODB_URL: 'mongodb://unused:27017/?replicaSet=rs0',
  SESSION_SECRET: randomBytes(32).toString('base64'),
  DATA_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
});

/** A stand-in for a real identity provider: any username with this one password, as a patient of that name. */
function directory(password: string): UserLookup {
  return {
    name: 'directory',
    async authenticate(credentials) {
      return credentials.password === password
        ? { id: `dir-${credentials.username}`, patientId: credentials.username, roles: ['patient'] }
        : undefined;
    },
  };
}

describe.each(TOPOLOGIES)('care-api routes on %s Redis', (topology) => {
  let service: TestService;
  const log = capturingLogger();

  beforeAll(async () => {
    service = await startTestService(topology, { logger: log.logger, mongo: false });
  });
  afterAll(async () => {
    await service.close();
  });

  const inject = (options: InjectOptions): Promise<LightMyRequestResponse> => service.app.inject(options);

  /** Logs `user` in, on the suite's service unless `on` names another instance. */
  async function login(
    user: string,
    extra: {
      cookie?: string;
      userAgent?: string;
      platform?: string;
      on?: TestService;
      remoteAddress?: string;
    } = {},
  ): Promise<{ token: string; response: LightMyRequestResponse }> {
    const response = await (extra.on?.app ?? service.app).inject({
      method: 'POST',
      url: '/auth/login',
      ...(extra.remoteAddress ? { remoteAddress: extra.remoteAddress } : {}),
      headers: {
        ...(extra.userAgent ? { 'user-agent': extra.userAgent } : {}),
        ...(extra.cookie ? { cookie: `${COOKIE}=${extra.cookie}` } : {}),
      },
      payload: { username: user, password: 'demo', ...(extra.platform ? { platform: extra.platform } : {}) },
    });
    expect(response.statusCode, response.body).toBe(200);
    return { token: tokenOf(response), response };
  }

  const as = (token: string) => ({ cookie: `${COOKIE}=${token}` });

  describe('sessions', () => {
    it('login sets an HttpOnly, SameSite=Strict session cookie (not Secure outside production) and GET /me reads it', async () => {
      const user = username('ana');
      const { token, response } = await login(user);
      const cookie = sessionCookie(response);
      expect(cookie).toMatch(/; HttpOnly/);
      expect(cookie).toMatch(/; SameSite=Strict/);
      expect(cookie).toMatch(/; Path=\//);
      expect(cookie).not.toMatch(/Secure/);
      expect(response.json()).toMatchObject({
        userId: `demo-${user}`,
        roles: ['patient'],
        patientId: user,
        demo: true,
      });
      const me = await inject({ method: 'GET', url: '/me', headers: as(token) });
      expect(me.statusCode).toBe(200);
      expect(me.json()).toMatchObject({
        userId: `demo-${user}`,
        session: { id: response.json().session.id },
      });
      // The same token as a bearer works for clients without cookies.
      const bearer = await inject({
        method: 'GET',
        url: '/me',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(bearer.statusCode).toBe(200);
      // The scheme is case-insensitive (RFC 9110 §11.1); anything but a bearer token is still refused.
      for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
        const cased = await inject({
          method: 'GET',
          url: '/me',
          headers: { authorization: `${scheme} ${token}` },
        });
        expect(cased.statusCode, scheme).toBe(200);
      }
      for (const authorization of [`Basic ${token}`, `Bearer`, `Bearer ${token} extra`, `Bearer${token}`]) {
        const refused = await inject({ method: 'GET', url: '/me', headers: { authorization } });
        expect(refused.statusCode, authorization).toBe(401);
      }
    });

    it('in production the cookie is __Host-care_session and Secure', async () => {
      const production = await startTestService(topology, {
        mongo: false,
        env: PRODUCTION_ENV(),
        // Production refuses the demo login: a real lookup is plugged in.
        app: { users: directory('ava-pw') },
      });
      try {
        const response = await production.app.inject({
          method: 'POST',
          url: '/auth/login',
          payload: { username: username('ava'), password: 'ava-pw' },
        });
        expect(response.statusCode).toBe(200);
        const cookie = String([response.headers['set-cookie']].flat()[0]);
        expect(cookie).toMatch(
          /^__Host-care_session=[\w.-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/,
        );
        const token = cookie.split(';')[0]?.split('=')[1];
        const me = await production.app.inject({
          method: 'GET',
          url: '/me',
          headers: { cookie: `__Host-care_session=${token}` },
        });
        expect(me.statusCode).toBe(200);
      } finally {
        await production.close();
      }
    });

    it('production refuses the DEMO login, by default or passed explicitly, before anything is built', async () => {
      for (const users of [undefined, createDemoUserLookup()]) {
        const attempt = startTestService(topology, {
          mongo: false,
          env: PRODUCTION_ENV(),
          ...(users ? { app: { users } } : {}),
        });
        await expect(attempt).rejects.toBeInstanceOf(ConfigError);
        await expect(attempt).rejects.toThrow(
          /NODE_ENV=production refuses the DEMO login.*buildApp\(\{ users \}\)/,
        );
      }
    });

    it('login → list devices → revoke one → its old cookie is rejected, the other still works', async () => {
      const user = username('ben');
      const phone = await login(user, { userAgent: 'PhoneApp/1.0', platform: 'ios' });
      const laptop = await login(user, { userAgent: 'Mozilla/5.0 (X11)', platform: 'web' });

      const list = await inject({ method: 'GET', url: '/me/sessions', headers: as(laptop.token) });
      expect(list.statusCode).toBe(200);
      const sessions = list.json().sessions as Array<{
        id: string;
        current: boolean;
        device: Record<string, string>;
      }>;
      expect(sessions).toHaveLength(2);
      const current = sessions.find((session) => session.current);
      const other = sessions.find((session) => !session.current);
      expect(current?.device).toMatchObject({ userAgent: 'Mozilla/5.0 (X11)', platform: 'web' });
      expect(other?.device).toMatchObject({ userAgent: 'PhoneApp/1.0', platform: 'ios' });
      // Stored truncated (/24), never the full address.
      expect(other?.device.ip).toBe('127.0.0.0');
      expect(JSON.stringify(list.json())).not.toContain(phone.token);

      const revoke = await inject({
        method: 'DELETE',
        url: `/me/sessions/${other?.id}`,
        headers: as(laptop.token),
      });
      expect(revoke.statusCode).toBe(204);
      const old = await inject({ method: 'GET', url: '/me', headers: as(phone.token) });
      expect(old.statusCode).toBe(401);
      expect(old.json()).toMatchObject({ statusCode: 401, code: 'E_UNAUTHENTICATED' });
      expect((await inject({ method: 'GET', url: '/me', headers: as(laptop.token) })).statusCode).toBe(200);
      // Revoking it again: gone.
      const again = await inject({
        method: 'DELETE',
        url: `/me/sessions/${other?.id}`,
        headers: as(laptop.token),
      });
      expect(again.statusCode).toBe(404);
      expect(again.json().code).toBe('E_SESSION_NOT_FOUND');
    });

    it("a user cannot revoke another user's session by its id", async () => {
      const victim = await login(username('carl'));
      const attacker = await login(username('dora'));
      const victimHandle = victim.response.json().session.id as string;
      const response = await inject({
        method: 'DELETE',
        url: `/me/sessions/${victimHandle}`,
        headers: as(attacker.token),
      });
      expect(response.statusCode).toBe(404);
      expect((await inject({ method: 'GET', url: '/me', headers: as(victim.token) })).statusCode).toBe(200);
    });

    it('100 concurrent authenticated requests of 20 users all succeed (session reads and limiter scripts batched)', async () => {
      const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => login(username(`load${i}`))));
      const responses = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          inject({ method: 'GET', url: '/me', headers: as((tokens[i % 20] as { token: string }).token) }),
        ),
      );
      expect(responses.map((response) => response.statusCode)).toEqual(Array(100).fill(200));
    });

    it('login regenerates the session id: the cookie sent with the login request stops working', async () => {
      const user = username('eve');
      const first = await login(user);
      const second = await login(user, { cookie: first.token });
      expect(second.token).not.toBe(first.token);
      expect((await inject({ method: 'GET', url: '/me', headers: as(first.token) })).statusCode).toBe(401);
      expect((await inject({ method: 'GET', url: '/me', headers: as(second.token) })).statusCode).toBe(200);
    });

    it('logout ends the session on the server and clears the cookie', async () => {
      const { token } = await login(username('finn'));
      const logout = await inject({ method: 'POST', url: '/auth/logout', headers: as(token) });
      expect(logout.statusCode).toBe(204);
      expect(sessionCookie(logout)).toMatch(/^care_session=; .*Max-Age=0/);
      expect((await inject({ method: 'GET', url: '/me', headers: as(token) })).statusCode).toBe(401);
    });

    it('DELETE /me/sessions revokes every session of the user and says how many', async () => {
      const user = username('gus');
      const a = await login(user);
      const b = await login(user);
      const c = await login(user);
      const response = await inject({ method: 'DELETE', url: '/me/sessions', headers: as(b.token) });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ revoked: 3 });
      for (const token of [a.token, b.token, c.token]) {
        expect((await inject({ method: 'GET', url: '/me', headers: as(token) })).statusCode).toBe(401);
      }
    });

    it('wrong credentials, unknown fields and missing sessions are 4xx JSON errors', async () => {
      const wrong = await inject({
        method: 'POST',
        url: '/auth/login',
        payload: { username: username('hal'), password: 'nope' },
      });
      expect(wrong.statusCode).toBe(401);
      expect(wrong.json()).toMatchObject({ code: 'E_INVALID_CREDENTIALS' });
      const extra = await inject({
        method: 'POST',
        url: '/auth/login',
        payload: { username: 'x', password: 'demo', admin: true },
      });
      expect(extra.statusCode).toBe(400);
      expect(extra.json()).toMatchObject({ code: 'E_VALIDATION', details: [{ path: '/admin' }] });
      for (const [method, url] of [
        ['GET', '/me'],
        ['GET', '/me/sessions'],
        ['DELETE', '/me/sessions'],
        ['POST', '/auth/logout'],
        ['GET', '/me/conversations'],
        ['GET', '/conversations/abc'],
        ['GET', '/patients/abc/profile'],
      ] as const) {
        const response = await inject({ method, url, headers: as('A'.repeat(43)) });
        expect(response.statusCode, `${method} ${url}`).toBe(401);
        expect(response.json().code).toBe('E_UNAUTHENTICATED');
      }
      const garbage = await inject({ method: 'GET', url: '/me', headers: { cookie: `${COOKIE}=a{b}*` } });
      expect(garbage.statusCode).toBe(401);
      const { token } = await login(username('ida'));
      const badId = await inject({ method: 'DELETE', url: '/me/sessions/a%7Bb%7D', headers: as(token) });
      expect(badId.statusCode).toBe(400);
      expect(badId.json().code).toBe('E_VALIDATION');
    });
  });

  describe('conversations', () => {
    it('start with a first message, append, and read context, messages and the user’s list', async () => {
      const { token } = await login(username('jo'));
      const created = await inject({
        method: 'POST',
        url: '/conversations',
        headers: as(token),
        payload: { title: 'Knee', message: 'Hello, I need to book an appointment' },
      });
      expect(created.statusCode, created.body).toBe(201);
      const body = created.json();
      const id = body.conversationId as string;
      expect(created.headers.location).toBe(`/conversations/${id}`);
      expect(body.exchange.message).toMatchObject({ seq: 1, role: 'user' });
      expect(body.exchange.reply).toMatchObject({ seq: 2, role: 'assistant' });
      expect(body.exchange.intent.name).toBe('appointment');

      const append = await inject({
        method: 'POST',
        url: `/conversations/${id}/messages`,
        headers: as(token),
        payload: { content: 'My knee pain started on 2025-03-01, I take ibuprofen' },
      });
      expect(append.statusCode, append.body).toBe(201);
      expect(append.json()).toMatchObject({
        conversationId: id,
        message: { seq: 3, role: 'user', content: 'My knee pain started on 2025-03-01, I take ibuprofen' },
        reply: { seq: 4, role: 'assistant' },
        intent: { name: 'symptom' },
      });

      const context = await inject({ method: 'GET', url: `/conversations/${id}`, headers: as(token) });
      expect(context.statusCode).toBe(200);
      const ctx = context.json();
      expect(ctx).toMatchObject({
        conversationId: id,
        title: 'Knee',
        messageCount: 4,
        intent: { name: 'symptom' },
      });
      expect(ctx.entities).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ name: 'date', value: '2025-03-01' }),
          expect.objectContaining({ name: 'medication', value: 'ibuprofen' }),
        ]),
      );
      expect(ctx.summary).toBeNull();

      const messages = await inject({
        method: 'GET',
        url: `/conversations/${id}/messages?limit=3`,
        headers: as(token),
      });
      expect(messages.statusCode).toBe(200);
      expect(messages.json().messages.map((message: { seq: number }) => message.seq)).toEqual([2, 3, 4]);

      const list = await inject({ method: 'GET', url: '/me/conversations', headers: as(token) });
      expect(list.statusCode).toBe(200);
      expect(list.json().conversations).toEqual([
        expect.objectContaining({ conversationId: id, messageCount: 4 }),
      ]);
    });

    it("ownership is enforced: another user's conversation reads, lists and appends as not found", async () => {
      const owner = await login(username('kim'));
      const other = await login(username('lou'));
      const created = await inject({
        method: 'POST',
        url: '/conversations',
        headers: as(owner.token),
        payload: { message: 'private question about my medication' },
      });
      const id = created.json().conversationId as string;
      for (const request of [
        { method: 'GET' as const, url: `/conversations/${id}` },
        { method: 'GET' as const, url: `/conversations/${id}/messages` },
        { method: 'POST' as const, url: `/conversations/${id}/messages`, payload: { content: 'hi' } },
      ]) {
        const response = await inject({ ...request, headers: as(other.token) });
        expect(response.statusCode, `${request.method} ${request.url}`).toBe(404);
        expect(response.json().code).toBe('E_CONVERSATION_NOT_FOUND');
        expect(response.body).not.toContain('medication');
      }
      const otherList = await inject({ method: 'GET', url: '/me/conversations', headers: as(other.token) });
      expect(otherList.json().conversations).toEqual([]);
      // Nothing was appended by the failed attempt.
      const context = await inject({ method: 'GET', url: `/conversations/${id}`, headers: as(owner.token) });
      expect(context.json().messageCount).toBe(2);
    });

    it('message bodies are not coerced: a number, array or boolean for the content is a 400 and nothing is stored', async () => {
      const { token } = await login(username('cory'));
      const id = (
        await inject({
          method: 'POST',
          url: '/conversations',
          headers: as(token),
          payload: { title: 'types' },
        })
      ).json().conversationId as string;
      for (const payload of [
        '{"content":12345}',
        '{"content":["x"]}',
        '{"content":true}',
        '{"title":["secret"]}',
      ]) {
        const url = payload.includes('title') ? '/conversations' : `/conversations/${id}/messages`;
        const response = await inject({
          method: 'POST',
          url,
          headers: { ...as(token), 'content-type': 'application/json' },
          payload,
        });
        expect(response.statusCode, payload).toBe(400);
        expect(response.json().code).toBe('E_VALIDATION');
      }
      const messages = await inject({
        method: 'GET',
        url: `/conversations/${id}/messages`,
        headers: as(token),
      });
      expect(messages.json().messages).toEqual([]);
      const mine = await inject({ method: 'GET', url: '/me/conversations', headers: as(token) });
      expect(mine.json().conversations).toHaveLength(1);
    });

    it('missing conversations, bad ids, bad limits and empty messages are 4xx JSON', async () => {
      const { token } = await login(username('max'));
      const missing = await inject({
        method: 'POST',
        url: '/conversations/no-such-conversation/messages',
        headers: as(token),
        payload: { content: 'hello' },
      });
      expect(missing.statusCode).toBe(404);
      const badId = await inject({ method: 'GET', url: '/conversations/a*b', headers: as(token) });
      expect(badId.statusCode).toBe(400);
      expect(badId.json().code).toBe('E_VALIDATION');
      const badLimit = await inject({
        method: 'GET',
        url: '/conversations/abc/messages?limit=1000',
        headers: as(token),
      });
      expect(badLimit.statusCode).toBe(400);
      const created = await inject({
        method: 'POST',
        url: '/conversations',
        headers: as(token),
        payload: {},
      });
      expect(created.statusCode).toBe(201);
      const empty = await inject({
        method: 'POST',
        url: `/conversations/${created.json().conversationId}/messages`,
        headers: as(token),
        payload: { content: '' },
      });
      expect(empty.statusCode).toBe(400);
      const notJson = await inject({
        method: 'POST',
        url: `/conversations/${created.json().conversationId}/messages`,
        headers: { ...as(token), 'content-type': 'application/json' },
        payload: '{"content": ',
      });
      expect(notJson.statusCode).toBe(400);
      expect(notJson.json().code).toBe('E_INVALID_JSON');
    });
  });

  describe('rate limits', () => {
    it('the per-IP limit answers 429 JSON with retryAfterMs and IETF RateLimit headers; probes are never limited', async () => {
      const limited = await startTestService(topology, {
        env: { RATE_LIMIT_IP_PER_MINUTE: '3' },
        mongo: false,
      });
      try {
        const remoteAddress = freshIp();
        const statuses: number[] = [];
        let last: LightMyRequestResponse | undefined;
        for (let i = 0; i < 4; i++) {
          last = await limited.app.inject({ method: 'GET', url: '/me', remoteAddress });
          statuses.push(last.statusCode);
        }
        expect(statuses).toEqual([401, 401, 401, 429]);
        // The limit's keys name no address: an IP identifies a person.
        const rateLimitKeys: string[] = [];
        for await (const key of scanKeys(limited.redis.client, 'care:rate-limit:*')) rateLimitKeys.push(key);
        expect(rateLimitKeys.length).toBeGreaterThan(0);
        expect(rateLimitKeys.filter((key) => key.includes(remoteAddress))).toEqual([]);
        const response = last as LightMyRequestResponse;
        expect(response.headers['ratelimit-policy']).toBe('"ip";q=3;w=60');
        expect(response.headers.ratelimit).toMatch(/^"ip";r=0;t=\d+$/);
        expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        const body = response.json();
        expect(body).toMatchObject({ statusCode: 429, code: 'E_RATE_LIMITED' });
        expect(body.message).toMatch(/^Too many requests from this address: retry in \d+ s\.$/);
        expect(body.retryAfterMs).toBeGreaterThan(0);
        // The approximate sliding window weighs the previous window too: a full current window frees up within two.
        expect(body.retryAfterMs).toBeLessThanOrEqual(120_000);
        expect(Number(response.headers['retry-after'])).toBe(Math.ceil(body.retryAfterMs / 1000));
        // Another address is not affected; health and metrics are not limited at all.
        expect(
          (await limited.app.inject({ method: 'GET', url: '/me', remoteAddress: freshIp() })).statusCode,
        ).toBe(401);
        for (const url of ['/health/live', '/health/ready', '/metrics']) {
          const probe = await limited.app.inject({ method: 'GET', url, remoteAddress });
          expect(probe.statusCode, url).toBe(200);
          expect(probe.headers.ratelimit).toBeUndefined();
        }
      } finally {
        await limited.close();
      }
    });

    it('a request the per-IP limit rejects never looks its session up (no Redis read, no touch)', async () => {
      const limited = await startTestService(topology, {
        env: { RATE_LIMIT_IP_PER_MINUTE: '3' },
        mongo: false,
      });
      try {
        const { token } = await login(username('lee'), { on: limited, remoteAddress: freshIp() });
        const sessions = limited.app.stores.sessions;
        const lookups: string[] = [];
        const getSession = sessions.getSession.bind(sessions);
        sessions.getSession = ((presented: string, ...rest: unknown[]) => {
          lookups.push(presented);
          return (getSession as (...args: unknown[]) => unknown)(presented, ...rest);
        }) as typeof sessions.getSession;
        const remoteAddress = freshIp();
        const statuses: number[] = [];
        for (let i = 0; i < 8; i++) {
          const response = await limited.app.inject({
            method: 'GET',
            url: '/me',
            remoteAddress,
            headers: as(token),
          });
          statuses.push(response.statusCode);
        }
        expect(statuses).toEqual([200, 200, 200, 429, 429, 429, 429, 429]);
        // One lookup per allowed request; the five rejected ones cost none.
        expect(lookups).toHaveLength(3);
      } finally {
        await limited.close();
      }
    });

    it('the assistant routes have a stricter per-user limit, reported next to the IP limit', async () => {
      const limited = await startTestService(topology, {
        env: { RATE_LIMIT_ASSISTANT_PER_MINUTE: '2' },
        mongo: false,
      });
      try {
        const response = await limited.app.inject({
          method: 'POST',
          url: '/auth/login',
          payload: { username: username('ned'), password: 'demo' },
        });
        const token = tokenOf(response);
        const statuses: number[] = [];
        let last: LightMyRequestResponse | undefined;
        for (let i = 0; i < 3; i++) {
          last = await limited.app.inject({
            method: 'POST',
            url: '/conversations',
            headers: as(token),
            payload: { message: 'hello' },
          });
          statuses.push(last.statusCode);
        }
        expect(statuses).toEqual([201, 201, 429]);
        const rejected = last as LightMyRequestResponse;
        expect(rejected.headers['ratelimit-policy']).toBe('"ip";q=1000000;w=60, "assistant";q=2;w=60');
        expect(rejected.headers.ratelimit).toMatch(/^"ip";r=\d+;t=\d+, "assistant";r=0;t=\d+$/);
        expect(rejected.json()).toMatchObject({ code: 'E_RATE_LIMITED' });
        expect(rejected.json().message).toMatch(/^Too many assistant requests: retry in \d+ s\.$/);
        expect(rejected.json().retryAfterMs).toBeGreaterThan(0);
        // Reading is not an assistant request: still allowed.
        const list = await limited.app.inject({
          method: 'GET',
          url: '/me/conversations',
          headers: as(token),
        });
        expect(list.statusCode).toBe(200);
        expect(list.json().conversations).toHaveLength(2);
      } finally {
        await limited.close();
      }
    });
  });

  describe('summaries', () => {
    it('messages trimmed past CONVERSATION_MAX_MESSAGES are folded into the summary', async () => {
      const small = await startTestService(topology, {
        env: { CONVERSATION_MAX_MESSAGES: '4' },
        mongo: false,
      });
      try {
        const token = tokenOf(
          await small.app.inject({
            method: 'POST',
            url: '/auth/login',
            payload: { username: username('ola'), password: 'demo' },
          }),
        );
        const created = await small.app.inject({
          method: 'POST',
          url: '/conversations',
          headers: as(token),
          payload: { message: 'I have a fever' },
        });
        const id = created.json().conversationId as string;
        for (const content of ['my bill is wrong', 'book an appointment']) {
          const response = await small.app.inject({
            method: 'POST',
            url: `/conversations/${id}/messages`,
            headers: as(token),
            payload: { content },
          });
          expect(response.statusCode).toBe(201);
        }
        const context = (
          await small.app.inject({ method: 'GET', url: `/conversations/${id}`, headers: as(token) })
        ).json();
        expect(context.messageCount).toBe(4);
        expect(context.summary).toMatchObject({ upToSeq: 2, version: 1 });
        expect(context.summary.text).toContain('2 earlier messages');
        const messages = (
          await small.app.inject({ method: 'GET', url: `/conversations/${id}/messages`, headers: as(token) })
        ).json().messages;
        expect(messages.map((message: { seq: number }) => message.seq)).toEqual([3, 4, 5, 6]);
      } finally {
        await small.close();
      }
    });
    it('a summary written out of order by appends on two instances still folds every trimmed message (compare-and-set)', async () => {
      const echo = createEchoResponder();
      // Two instances of the service on one Redis: folds of one instance wait for each other, so only another
      // instance's summary can be written between this one's read and its write.
      const shared = {
        CONVERSATION_MAX_MESSAGES: '4',
        SESSION_SECRET: randomBytes(32).toString('base64'),
        DATA_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
      };
      const other = await startTestService(topology, { env: shared, mongo: false });
      let slowStarted!: () => void;
      const started = new Promise<void>((resolve) => {
        slowStarted = resolve;
      });
      let releaseSlow!: () => void;
      const released = new Promise<void>((resolve) => {
        releaseSlow = resolve;
      });
      const small = await startTestService(topology, {
        env: shared,
        mongo: false,
        app: {
          responder: {
            name: 'slow-summary',
            respond: (input) => echo.respond(input),
            // The append that trims the first exchange summarizes slowly: the next append's summary is written first.
            async summarize(input) {
              if (input.messages.some((message) => message.content.includes('slow start'))) {
                slowStarted();
                await Promise.race([released, new Promise((resolve) => setTimeout(resolve, 10_000))]);
              }
              return (echo.summarize as NonNullable<typeof echo.summarize>)(input);
            },
          },
        },
      });
      try {
        const { token } = await login(username('oto'), { on: small });
        const append = (content: string, instance = small) =>
          instance.app.inject({
            method: 'POST',
            url: `/conversations/${id}/messages`,
            headers: as(token),
            payload: { content },
          });
        const id = (
          await small.app.inject({ method: 'POST', url: '/conversations', headers: as(token), payload: {} })
        ).json().conversationId as string;
        expect((await append('slow start: my head hurts')).statusCode).toBe(201); // seqs 1, 2
        expect((await append('a fever too')).statusCode).toBe(201); // seqs 3, 4
        const slow = append('book an appointment'); // trims 1, 2; its summary waits
        await started;
        const fast = await append('refill my prescription', other); // trims 3, 4; its summary is written first
        expect(fast.statusCode).toBe(201);
        releaseSlow();
        expect((await slow).statusCode).toBe(201);
        const context = (
          await small.app.inject({ method: 'GET', url: `/conversations/${id}`, headers: as(token) })
        ).json();
        const kept = (
          await small.app.inject({ method: 'GET', url: `/conversations/${id}/messages`, headers: as(token) })
        ).json().messages as Array<{ seq: number }>;
        expect(kept.map((message) => message.seq)).toEqual([5, 6, 7, 8]);
        // Both appends' trimmed messages are in: 4 messages (2 from the user), both topics.
        expect(context.summary).toMatchObject({ upToSeq: 4, version: 2 });
        expect(context.summary.text).toMatch(/^4 earlier messages \(2 from the user\) about /);
      } finally {
        releaseSlow();
        await small.close();
        await other.close();
      }
    });

    it('bursts of concurrent appends lose no trimmed message from the summary', async () => {
      const small = await startTestService(topology, {
        env: { CONVERSATION_MAX_MESSAGES: '4', RATE_LIMIT_ASSISTANT_PER_MINUTE: '100000' },
        mongo: false,
      });
      try {
        const { token } = await login(username('uma'), { on: small });
        const id = (
          await small.app.inject({ method: 'POST', url: '/conversations', headers: as(token), payload: {} })
        ).json().conversationId as string;
        for (let round = 0; round < 5; round++) {
          const responses = await Promise.all(
            Array.from({ length: 8 }, (_, index) =>
              small.app.inject({
                method: 'POST',
                url: `/conversations/${id}/messages`,
                headers: as(token),
                payload: { content: `pain ${round}-${index}` },
              }),
            ),
          );
          expect(responses.map((response) => response.statusCode)).toEqual(Array(8).fill(201));
        }
        const context = (
          await small.app.inject({ method: 'GET', url: `/conversations/${id}`, headers: as(token) })
        ).json();
        const kept = (
          await small.app.inject({ method: 'GET', url: `/conversations/${id}/messages`, headers: as(token) })
        ).json().messages as Array<{ seq: number; role: string }>;
        expect(kept.map((message) => message.seq)).toEqual([77, 78, 79, 80]);
        // 80 messages (40 from the user), 4 kept: the summary counts the other 76 and their user messages. Replies
        // interleave with other requests' messages, so which roles were kept varies.
        const userKept = kept.filter((message) => message.role === 'user').length;
        expect(context.summary.text).toMatch(
          new RegExp(`^76 earlier messages \\(${40 - userKept} from the user\\) about `),
        );
        expect(context.summary.upToSeq).toBe(76);
      } finally {
        await small.close();
      }
    });
  });

  it('without MongoDB the profile routes answer 503 JSON naming MongoDB, after the session check', async () => {
    const user = username('pia');
    const { token } = await login(user);
    const read = await inject({ method: 'GET', url: `/patients/${user}/profile`, headers: as(token) });
    expect(read.statusCode).toBe(503);
    expect(read.json()).toMatchObject({ statusCode: 503, code: 'E_MONGODB_UNAVAILABLE' });
    expect(read.headers['retry-after']).toBe('5');
    const write = await inject({
      method: 'PUT',
      url: `/patients/${user}/profile`,
      headers: as(token),
      payload: { name: 'Pia', birthDate: '1990-01-02' },
    });
    expect(write.statusCode).toBe(503);
    // Authorization comes first: someone else's profile is 403 whether or not MongoDB is there.
    const other = await inject({ method: 'GET', url: '/patients/somebody-else/profile', headers: as(token) });
    expect(other.statusCode).toBe(403);
  });

  it("every package's metrics are on the one registry, with no user or session ids as label values", async () => {
    const user = username('quin');
    const { token } = await login(user);
    await inject({ method: 'POST', url: '/conversations', headers: as(token), payload: { message: 'hi' } });
    const text = (await inject({ method: 'GET', url: '/metrics' })).body;
    expect(samples(text, 'austa_session_operations_total').length).toBeGreaterThan(0);
    expect(samples(text, 'austa_rate_limit_decisions_total').map((sample) => sample.labels.limiter)).toEqual(
      expect.arrayContaining(['ip', 'assistant']),
    );
    expect(samples(text, 'austa_conversation_messages_total').map((sample) => sample.labels.role)).toEqual(
      expect.arrayContaining(['user', 'assistant']),
    );
    expect(text).toMatch(/^austa_cache_/m);
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      expect(line).not.toContain(user);
      expect(line).not.toContain(token);
      expect(line).toMatch(/service="care-api"|^$/);
    }
  });

  it('logs carry no message text, token, password or profile data', async () => {
    const secret = `SECRET-${randomBytes(6).toString('hex')}`;
    const user = username('rae');
    const { token } = await login(user);
    const created = await inject({
      method: 'POST',
      url: '/conversations',
      headers: as(token),
      payload: { message: `my diagnosis is ${secret}` },
    });
    await inject({
      method: 'POST',
      url: `/conversations/${created.json().conversationId}/messages`,
      headers: as(token),
      payload: { content: `${secret} again` },
    });
    await inject({
      method: 'POST',
      url: '/auth/login',
      payload: { username: user, password: secret },
    });
    await inject({ method: 'GET', url: `/patients/${user}/profile`, headers: as(token) });
    expect(log.lines.length).toBeGreaterThan(0);
    const all = JSON.stringify(log.lines);
    expect(all).not.toContain(secret);
    expect(all).not.toContain(token);
    // Request lines name the route template, never the URL with its ids, nor the client address.
    expect(all).not.toContain(created.json().conversationId);
    expect(all).not.toContain(user);
    expect(all).not.toContain('127.0.0.1');
    expect(log.lines).toContainEqual(
      expect.objectContaining({ req: { method: 'GET', route: '/patients/:id/profile' } }),
    );
  });
});

describe.each(TOPOLOGIES)('pluggable user lookup and responder on %s Redis', (topology) => {
  it('logs in through the given lookup (the demo password no longer works) and stores the given responder’s reply', async () => {
    const userId = `org-${randomBytes(4).toString('hex')}`;
    const service = await startTestService(topology, {
      mongo: false,
      app: {
        users: {
          name: 'directory',
          async authenticate({ username, password }) {
            return username === 'alice' && password === 's3cret'
              ? { id: userId, roles: ['clinician'] }
              : undefined;
          },
        },
        responder: {
          name: 'fixed',
          async respond({ message }) {
            return {
              reply: `model says: ${message.length} characters`,
              intent: { name: 'triage', confidence: 0.9 },
            };
          },
        },
      },
    });
    try {
      const demo = await service.app.inject({
        method: 'POST',
        url: '/auth/login',
        payload: { username: 'alice', password: 'demo' },
      });
      expect(demo.statusCode).toBe(401);
      const login = await service.app.inject({
        method: 'POST',
        url: '/auth/login',
        payload: { username: 'alice', password: 's3cret' },
      });
      expect(login.statusCode).toBe(200);
      expect(login.json()).toMatchObject({ userId, roles: ['clinician'], demo: false });
      const created = await service.app.inject({
        method: 'POST',
        url: '/conversations',
        headers: { cookie: sessionCookie(login).split(';')[0] as string },
        payload: { message: 'hello' },
      });
      expect(created.json().exchange).toMatchObject({
        reply: { role: 'assistant', content: 'model says: 5 characters' },
        intent: { name: 'triage', confidence: 0.9 },
      });
      const docs = (await service.app.inject({ method: 'GET', url: '/docs/json' })).json();
      expect(docs.paths['/auth/login'].post.summary).toContain('directory');
      expect(docs.paths['/auth/login'].post.description ?? '').not.toContain('DEMO');
    } finally {
      await service.close();
    }
  });
});

describe.each(TOPOLOGIES)('care-api with Redis down (%s client settings)', (topology) => {
  it('session routes answer 503 JSON within the command timeout; the rate limiter falls back to its insurance', async () => {
    const { closedPort } = await import('./support.js');
    const port = await closedPort();
    const down = await startTestService(topology, {
      redis: { url: `redis://127.0.0.1:${port}`, maxRetriesPerRequest: 0 },
      env: { REDIS_COMMAND_TIMEOUT_MS: '200' },
      mongo: false,
    });
    try {
      const started = Date.now();
      const response = await down.app.inject({
        method: 'POST',
        url: '/auth/login',
        payload: { username: username('sam'), password: 'demo' },
      });
      expect(response.statusCode).toBe(503);
      expect(response.json()).toMatchObject({ code: 'E_REDIS_UNAVAILABLE' });
      expect(response.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|at /);
      // The limiter waits at most its 500 ms timeout, the store at most the 200 ms command timeout, each retry aside.
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await down.close();
    }
  });
});
