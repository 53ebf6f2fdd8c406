import { spawnSync } from 'node:child_process';
import { createCodec } from '@austa/codec';
import { createMetrics } from '@austa/metrics';
import { keySlot, keysWithoutTtl } from '@austa/test-env/vitest';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createSessionStore, type SessionStoreOptions } from '../src/index.js';
import { codeOf, eventually, harness, sleep, type Topology } from './support.js';

const device = {
  userAgent: 'Mozilla/5.0 (Linux; Android 14) Chrome/124.0',
  ip: '203.0.113.77',
  deviceId: 'device-1',
  platform: 'android',
};

describe.each(['standalone', 'cluster'] as const)('session store on %s', (topology: Topology) => {
  const h = harness(topology, `session-${topology}`);
  const store = h.store();
  const issued: string[] = [];
  const remember = <T extends { token: string }>(created: T) => {
    issued.push(created.token);
    return created;
  };

  afterAll(async () => {
    // Every key the suite left must expire by itself, and no raw token may be anywhere in Redis.
    expect(await keysWithoutTtl(h.client, h.prefix)).toEqual([]);
    const everything: Buffer[] = [];
    for (const key of await h.keys()) {
      everything.push(Buffer.from(key));
      const type = await h.client.type(key);
      if (type === 'hash') everything.push(...Object.values(await h.client.hgetallBuffer(key)));
      if (type === 'hash')
        everything.push(...Object.keys(await h.client.hgetall(key)).map((f) => Buffer.from(f)));
      if (type === 'zset') everything.push(...(await h.client.zrangeBuffer(key, 0, -1)));
      if (type === 'string') everything.push((await h.client.getBuffer(key)) ?? Buffer.alloc(0));
    }
    expect(issued.length).toBeGreaterThan(50);
    for (const token of issued) {
      const secretPart = token.slice(token.indexOf('.') + 1);
      for (const bytes of everything) {
        expect(bytes.includes(token)).toBe(false);
        expect(bytes.includes(secretPart)).toBe(false);
      }
    }
    await h.cleanup();
    await h.client.quit();
  });

  it('createSession issues a 256-bit base64url token that carries the user slot, and getSession reads it back', async () => {
    const created = remember(
      await store.createSession({ userId: 'u-1', data: { role: 'patient', since: new Date(5) }, device }),
    );
    const [tag, secret] = created.token.split('.');
    expect(Buffer.from(secret ?? '', 'base64url')).toHaveLength(32);
    expect(tag).toHaveLength(22);
    expect(created.handle).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(created.evicted).toBe(0);
    const session = await store.getSession(created.token);
    expect(session).toMatchObject({
      handle: created.handle,
      userId: 'u-1',
      data: { role: 'patient', since: new Date(5) },
      device: { userAgent: device.userAgent, ip: '203.0.113.0', deviceId: 'device-1', platform: 'android' },
      version: 1,
      createdAtMs: created.createdAtMs,
    });
    expect(session?.expiresAtMs).toBe(created.createdAtMs + 600_000);
    expect(session?.absoluteExpiresAtMs).toBe(created.createdAtMs + 3_600_000);
    const other = remember(await store.createSession({ userId: 'u-1' }));
    expect(other.token).not.toBe(created.token);
  });

  it("keeps a user's sessions and index in one hash slot, with no user id or token in any key name", async () => {
    const created = remember(await store.createSession({ userId: 'patient@example.org', device }));
    const keys = (await h.keys()).filter((key) => key.includes(created.token.slice(0, 22)));
    expect(keys.length).toBe(3);
    expect(new Set(keys.map((key) => keySlot(key))).size).toBe(1);
    for (const key of keys) {
      expect(key).not.toContain('patient@example.org');
      expect(key).not.toContain(created.token.slice(23));
    }
  });

  it('encrypts session data and device details at rest; the index holds only hashes', async () => {
    const created = remember(
      await store.createSession({ userId: 'u-enc', data: { diagnosis: 'hypertension' }, device }),
    );
    for (const key of (await h.keys()).filter((k) => k.includes(created.token.slice(0, 22)))) {
      const type = await h.client.type(key);
      const values =
        type === 'hash'
          ? [...Object.values(await h.client.hgetallBuffer(key))]
          : type === 'zset'
            ? await h.client.zrangeBuffer(key, 0, -1)
            : [(await h.client.getBuffer(key)) ?? Buffer.alloc(0)];
      for (const value of values) {
        for (const secret of ['hypertension', 'Android', '203.0.113', 'device-1', 'u-enc']) {
          expect(value.includes(secret)).toBe(false);
        }
      }
    }
  });

  it.each([
    ['an unknown token', 'AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    ['the empty string', ''],
    ['a glob', '*'],
    ['a hash tag', '{u:1}.abc'],
    ['control characters', 'abc\u0000def\r\n'],
    ['a 100 KiB string', 'a'.repeat(100 * 1024)],
    ['a number', 42],
    ['null', null],
    ['an object', { token: 'x' }],
  ])('getSession returns null for %s and writes nothing', async (_name, token) => {
    const before = new Set(await h.keys());
    expect(await store.getSession(token as string)).toBeNull();
    // Keys of earlier tests may expire meanwhile; none may appear.
    expect((await h.keys()).filter((key) => !before.has(key))).toEqual([]);
  });

  it('throttles touches: a read writes only once touchIntervalSeconds have passed, then slides the expiry', async () => {
    const touchy = h.store({ idleTimeoutSeconds: 10, touchIntervalSeconds: 0.3 });
    const created = remember(await touchy.createSession({ userId: 'u-touch' }));
    const first = await touchy.getSession(created.token);
    expect(first?.lastSeenAtMs).toBe(created.createdAtMs);
    expect(h.events.some((e) => e.type === 'touch' && e.sessionRef === created.handle)).toBe(false);
    await sleep(400);
    const second = await touchy.getSession(created.token);
    expect(second?.lastSeenAtMs).toBeGreaterThanOrEqual(created.createdAtMs + 300);
    expect(second?.expiresAtMs).toBe((second?.lastSeenAtMs ?? 0) + 10_000);
    expect(
      h.events.some((e) => e.type === 'touch' && e.sessionRef === created.handle && e.userId === 'u-touch'),
    ).toBe(true);
    const key = `${h.prefix}:s:{${created.token.slice(0, 22)}}:${created.handle}`;
    expect(await h.client.pttl(key)).toBeGreaterThan(9_000);
    expect((await touchy.getSession(created.token, { touch: false }))?.lastSeenAtMs).toBe(
      second?.lastSeenAtMs,
    );
  });

  it('expires an idle session after idleTimeoutSeconds', async () => {
    const short = h.store({ idleTimeoutSeconds: 0.6, absoluteTimeoutSeconds: 30 });
    const created = remember(await short.createSession({ userId: 'u-idle' }));
    expect(await short.getSession(created.token, { touch: false })).not.toBeNull();
    expect(
      await eventually(async () => (await short.getSession(created.token, { touch: false })) === null, 3_000),
    ).toBe(true);
    expect(await short.getSessionCount('u-idle')).toBe(0);
  });

  it('ends an active session at absoluteTimeoutSeconds however often it is used, with a TTL never past it', async () => {
    const short = h.store({ idleTimeoutSeconds: 0.8, absoluteTimeoutSeconds: 1.5, touchIntervalSeconds: 0 });
    const created = remember(await short.createSession({ userId: 'u-abs' }));
    const key = `${h.prefix}:s:{${created.token.slice(0, 22)}}:${created.handle}`;
    let alive = 0;
    const deadline = Date.now() + 3_500;
    while (Date.now() < deadline) {
      const session = await short.getSession(created.token);
      if (!session) break;
      alive++;
      const ttl = await h.client.pttl(key);
      expect(ttl).toBeLessThanOrEqual(session.absoluteExpiresAtMs - session.lastSeenAtMs);
      await sleep(200);
    }
    expect(alive).toBeGreaterThanOrEqual(4);
    expect(Date.now()).toBeLessThan(deadline);
    expect(await short.getSession(created.token)).toBeNull();
  });

  it('updateSession merges a patch, applies an updater, and bumps the version', async () => {
    const created = remember(await store.createSession({ userId: 'u-upd', data: { a: 1, b: 2 } }));
    const patched = await store.updateSession(created.token, { b: undefined, c: 3 });
    expect(patched.data).toEqual({ a: 1, c: 3 });
    expect(patched.version).toBe(2);
    const updated = await store.updateSession<{ a: number }>(created.token, (data) => ({
      ...data,
      a: data.a + 1,
    }));
    expect(updated.version).toBe(3);
    expect((await store.getSession(created.token))?.data).toEqual({ a: 2, c: 3 });
    expect(h.events.filter((e) => e.type === 'update' && e.sessionRef === created.handle)).toHaveLength(2);
  });

  it('updateSession keeps a "__proto__" key of a patch (a parsed request body) as data, never as a prototype', async () => {
    const created = remember(await store.createSession({ userId: 'u-proto', data: { role: 'patient' } }));
    const patch = JSON.parse('{"__proto__": {"isAdmin": true}, "x": 1}') as Record<string, unknown>;
    const updated = await store.updateSession<Record<string, unknown>>(created.token, patch);
    expect(Object.getPrototypeOf(updated.data)).toBe(Object.prototype);
    expect(updated.data.isAdmin).toBeUndefined();
    const read = await store.getSession<Record<string, unknown>>(created.token);
    expect(read?.data.isAdmin).toBeUndefined();
    expect(Object.getPrototypeOf(read?.data)).toBe(Object.prototype);
    expect(Object.hasOwn(read?.data ?? {}, '__proto__')).toBe(true);
    expect(read?.data.role).toBe('patient');
    expect(read?.data.x).toBe(1);
  });

  it('updateSession with a stale expectedVersion fails with E_CONFLICT and writes nothing', async () => {
    const created = remember(await store.createSession({ userId: 'u-cas', data: { n: 1 } }));
    await store.updateSession(created.token, { n: 2 });
    expect(await codeOf(() => store.updateSession(created.token, { n: 99 }, { expectedVersion: 1 }))).toBe(
      'E_CONFLICT',
    );
    expect(await store.getSession(created.token)).toMatchObject({ data: { n: 2 }, version: 2 });
    expect((await store.updateSession(created.token, { n: 3 }, { expectedVersion: 2 })).version).toBe(3);
  });

  it('loses none of 20 concurrent updates of one session', async () => {
    const created = remember(await store.createSession({ userId: 'u-concurrent', data: {} }));
    await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        store.updateSession(created.token, { [`field${index}`]: index }),
      ),
    );
    const session = await store.getSession<Record<string, number>>(created.token);
    expect(Object.keys(session?.data ?? {})).toHaveLength(20);
    expect(session?.version).toBe(21);
  });

  it('never revives a deleted session through a late update or touch (revoke-versus-update race)', async () => {
    for (let round = 0; round < 25; round++) {
      const created = remember(await store.createSession({ userId: 'u-race', data: { round } }));
      const results = await Promise.allSettled([
        store.updateSession(created.token, { late: true }),
        store.deleteSession(created.token),
        store.updateSession(created.token, { later: true }),
        store.getSession(created.token),
        store.extendSession(created.token),
      ]);
      for (const result of [results[0], results[2]]) {
        if (result?.status === 'rejected') {
          expect((result.reason as { code?: string }).code).toBe('E_SESSION_NOT_FOUND');
        }
      }
      expect(results[1]).toEqual({ status: 'fulfilled', value: true });
      expect(await store.getSession(created.token)).toBeNull();
      const key = `${h.prefix}:s:{${created.token.slice(0, 22)}}:${created.handle}`;
      expect(await h.client.exists(key)).toBe(0);
      expect(await codeOf(() => store.updateSession(created.token, { revived: true }))).toBe(
        'E_SESSION_NOT_FOUND',
      );
      expect(await h.client.exists(key)).toBe(0);
    }
  });

  it('deleteSession logs out once, audits the revoke, and then answers false', async () => {
    const created = remember(await store.createSession({ userId: 'u-del', device }));
    expect(await store.deleteSession(created.token)).toBe(true);
    expect(await store.deleteSession(created.token)).toBe(false);
    expect(await store.getSession(created.token)).toBeNull();
    expect(await store.getSessionCount('u-del')).toBe(0);
    const revoke = h.events.find((e) => e.type === 'revoke' && e.sessionRef === created.handle);
    expect(revoke).toMatchObject({ userId: 'u-del', reason: 'logout', device: { deviceId: 'device-1' } });
    expect(JSON.stringify(h.events)).not.toContain(created.token);
  });

  it('extendSession slides the idle deadline now, capped by the absolute deadline', async () => {
    const short = h.store({ idleTimeoutSeconds: 2, absoluteTimeoutSeconds: 3 });
    const created = remember(await short.createSession({ userId: 'u-ext' }));
    await sleep(300);
    const extended = await short.extendSession(created.token);
    expect(extended?.expiresAtMs).toBeGreaterThanOrEqual(created.expiresAtMs + 250);
    await sleep(1200);
    const capped = await short.extendSession(created.token);
    expect(capped?.expiresAtMs).toBe(created.absoluteExpiresAtMs);
    expect(
      await short.extendSession('AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
    ).toBeNull();
  });

  it('getUserSessions lists devices newest first with revocable handles and no tokens', async () => {
    const first = remember(await store.createSession({ userId: 'u-list', device: { platform: 'web' } }));
    const second = remember(await store.createSession({ userId: 'u-list', device: { platform: 'ios' } }));
    const sessions = await store.getUserSessions('u-list');
    expect(sessions.map((s) => s.handle)).toEqual([second.handle, first.handle]);
    expect(sessions[0]?.device).toEqual({ platform: 'ios' });
    expect(JSON.stringify(sessions)).not.toContain(first.token.slice(23));
    expect(await store.deleteUserSession('u-list', first.handle)).toBe(true);
    expect(await store.deleteUserSession('u-list', first.handle)).toBe(false);
    expect(await store.getSession(first.token)).toBeNull();
    expect(await store.getSession(second.token)).not.toBeNull();
    expect(await store.getUserSessions('u-nobody')).toEqual([]);
  });

  it('deleteUserSessions revokes every session of the user, or all but the current one', async () => {
    const tokens = [];
    for (let i = 0; i < 4; i++) tokens.push(remember(await store.createSession({ userId: 'u-all' })).token);
    const other = remember(await store.createSession({ userId: 'u-other' }));
    expect(await store.deleteUserSessions('u-all', { except: tokens[3] })).toBe(3);
    expect(await store.getSessionCount('u-all')).toBe(1);
    expect(await store.getSession(tokens[3] as string)).not.toBeNull();
    expect(await store.deleteUserSessions('u-all')).toBe(1);
    for (const token of tokens) expect(await store.getSession(token)).toBeNull();
    expect(await store.getSession(other.token)).not.toBeNull();
    expect(
      h.events.filter((e) => e.type === 'revoke' && e.reason === 'revoke-all' && e.userId === 'u-all'),
    ).toHaveLength(4);
  });

  it('evicts the oldest session past maxSessionsPerUser and counts and audits it', async () => {
    const metrics = createMetrics();
    const capped = h.store({ maxSessionsPerUser: 3, metrics });
    const created = [];
    for (let i = 0; i < 5; i++)
      created.push(remember(await capped.createSession({ userId: 'u-cap', device: { deviceId: `d${i}` } })));
    expect(created.map((c) => c.evicted)).toEqual([0, 0, 0, 1, 1]);
    expect(await capped.getSessionCount('u-cap')).toBe(3);
    expect(await capped.getSession(created[0]?.token as string)).toBeNull();
    expect(await capped.getSession(created[1]?.token as string)).toBeNull();
    expect(await capped.getSession(created[2]?.token as string)).not.toBeNull();
    const evictions = h.events.filter((e) => e.type === 'evict' && e.userId === 'u-cap');
    expect(evictions.map((e) => e.sessionRef)).toEqual([created[0]?.handle, created[1]?.handle]);
    expect(evictions[0]?.device).toEqual({ deviceId: 'd0' });
    expect(await metrics.text()).toContain('austa_session_evictions_total 2');
  });

  it('past the cap, drops index entries of sessions that already expired before evicting a live one', async () => {
    const capped = h.store({
      maxSessionsPerUser: 2,
      idleTimeoutSeconds: 0.5,
      absoluteTimeoutSeconds: 60,
      touchIntervalSeconds: 0,
    });
    const active = remember(await capped.createSession({ userId: 'u-dead-entry' }));
    const idle = remember(await capped.createSession({ userId: 'u-dead-entry' }));
    // The older session stays in use; the newer one is left alone past its idle timeout.
    for (let i = 0; i < 4; i++) {
      await sleep(200);
      expect(await capped.getSession(active.token)).not.toBeNull();
    }
    expect(await capped.getSession(idle.token, { touch: false })).toBeNull();
    const third = remember(await capped.createSession({ userId: 'u-dead-entry' }));
    expect(third.evicted).toBe(0);
    expect(await capped.getSession(active.token)).not.toBeNull();
    expect(await capped.getSessionCount('u-dead-entry')).toBe(2);
    expect(h.events.filter((e) => e.type === 'evict' && e.userId === 'u-dead-entry')).toEqual([]);
    // Leaves nothing that would expire during the cleanup test below.
    expect(await capped.deleteUserSessions('u-dead-entry')).toBe(2);
  });

  it('past the cap, evicts the least recently active session, not the one in use', async () => {
    const capped = h.store({ maxSessionsPerUser: 2, touchIntervalSeconds: 0 });
    const first = remember(await capped.createSession({ userId: 'u-lru' }));
    const second = remember(await capped.createSession({ userId: 'u-lru' }));
    await sleep(5);
    expect(await capped.getSession(first.token)).not.toBeNull();
    const third = remember(await capped.createSession({ userId: 'u-lru' }));
    expect(third.evicted).toBe(1);
    expect(await capped.getSession(second.token)).toBeNull();
    expect(await capped.getSession(first.token)).not.toBeNull();
  });

  it("keeps the user index alive at least as long as any of the user's sessions, also after a revoke-all", async () => {
    const indexed = h.store({ idleTimeoutSeconds: 30, absoluteTimeoutSeconds: 60 });
    const first = remember(await indexed.createSession({ userId: 'u-index-ttl' }));
    const index = `${h.prefix}:u:{${first.token.slice(0, 22)}}`;
    expect(await h.client.pttl(index)).toBeGreaterThanOrEqual(60_000);
    // The revoke deletes the index; the next create, soon after, must give the new index its TTL again.
    expect(await indexed.deleteUserSessions('u-index-ttl')).toBe(1);
    remember(await indexed.createSession({ userId: 'u-index-ttl' }));
    expect(await h.client.pttl(index)).toBeGreaterThanOrEqual(60_000);
    remember(await indexed.createSession({ userId: 'u-index-ttl' }));
    expect(await h.client.pttl(index)).toBeGreaterThanOrEqual(60_000 - 1_000);
  });

  it('leaves exactly the cap after 50 concurrent creates for one user, and every evicted token is invalid', async () => {
    const capped = h.store({ maxSessionsPerUser: 5 });
    const created = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        capped.createSession({ userId: 'u-burst', data: { i } }).then(remember),
      ),
    );
    expect(await capped.getSessionCount('u-burst')).toBe(5);
    const live = [];
    for (const session of created) if (await capped.getSession(session.token)) live.push(session.handle);
    expect(live).toHaveLength(5);
    expect(created.reduce((sum, c) => sum + c.evicted, 0)).toBe(45);
    expect((await capped.getUserSessions('u-burst')).map((s) => s.handle).sort()).toEqual(live.sort());
    expect(await h.client.zcard(`${h.prefix}:u:{${created[0]?.token.slice(0, 22)}}`)).toBe(5);
  });

  it('cleanupExpiredSessions removes index entries of expired sessions on every master and audits them', async () => {
    const short = h.store({ idleTimeoutSeconds: 0.3, absoluteTimeoutSeconds: 60 });
    const users = Array.from({ length: 12 }, (_, i) => `u-cleanup-${i}`);
    for (const userId of users) remember(await short.createSession({ userId }));
    const live = remember(await store.createSession({ userId: 'u-cleanup-0' }));
    await sleep(500);
    const result = await short.cleanupExpiredSessions();
    // Other tests of this suite may have left expired entries of their own users: count this test's by their events.
    expect(result.entriesRemoved).toBeGreaterThanOrEqual(12);
    expect(result.usersScanned).toBeGreaterThanOrEqual(12);
    const expired = h.events.filter((e) => e.type === 'expire' && e.userId?.startsWith('u-cleanup-'));
    expect(expired).toHaveLength(12);
    expect(new Set(expired.map((e) => e.userId))).toEqual(new Set(users));
    expect(await store.getSession(live.token)).not.toBeNull();
    expect(await store.getSessionCount('u-cleanup-0')).toBe(1);
    // A second pass finds nothing more of this test's users (other tests' sessions may expire meanwhile).
    const seen = h.events.length;
    await short.cleanupExpiredSessions();
    expect(
      h.events.slice(seen).filter((e) => e.type === 'expire' && e.userId?.startsWith('u-cleanup-')),
    ).toEqual([]);
  });

  it('accepts a caller-supplied session id, finds it with one extra lookup, and refuses a duplicate', async () => {
    const sessionId = 'caller-supplied-id-0123456789abcdef';
    const created = await store.createSession({ userId: 'u-own', sessionId, data: { x: 1 } });
    expect(created.token).toBe(sessionId);
    expect((await store.getSession(sessionId))?.data).toEqual({ x: 1 });
    expect(await codeOf(() => store.createSession({ userId: 'u-own', sessionId }))).toBe('E_SESSION_EXISTS');
    expect((await store.updateSession(sessionId, { x: 2 })).data).toEqual({ x: 2 });
    expect(await store.deleteSession(sessionId)).toBe(true);
    expect(await store.getSession(sessionId)).toBeNull();
    // What is left of the id is a tombstone that expires by itself: a late adapter save cannot bring it back.
    const pointers = (await h.keys()).filter((key) => key.includes(':p:'));
    expect(pointers).toHaveLength(1);
    expect(await h.client.get(pointers[0] as string)).toBe('-');
    expect(await h.client.pttl(pointers[0] as string)).toBeGreaterThan(0);
    expect(await codeOf(() => store.createSession({ userId: 'u-own', sessionId }))).toBe('E_SESSION_EXISTS');
  });

  it("refuses a sessionId another user holds with E_SESSION_EXISTS, writing nothing and leaving the owner's session", async () => {
    const sessionId = 'cross-user-id-0123456789abcdef';
    const beforeCreate = new Set(await h.keys());
    await store.createSession({ userId: 'u-holder', sessionId, data: { who: 'holder' } });
    const before = await h.keys();
    const pointer = before.find((key) => key.includes(':p:') && !beforeCreate.has(key)) as string;
    const holderTag = await h.client.get(pointer);
    expect(
      await codeOf(() => store.createSession({ userId: 'u-taker', sessionId, data: { who: 'taker' } })),
    ).toBe('E_SESSION_EXISTS');
    expect((await h.keys()).filter((key) => !before.includes(key))).toEqual([]);
    expect(await h.client.get(pointer)).toBe(holderTag);
    expect(await store.getSession(sessionId, { touch: false })).toMatchObject({
      userId: 'u-holder',
      data: { who: 'holder' },
    });
    expect(await store.getSessionCount('u-taker')).toBe(0);
    expect(await store.getSessionCount('u-holder')).toBe(1);
    expect(await store.deleteSession(sessionId)).toBe(true);
    expect(await store.getSessionCount('u-holder')).toBe(0);
  });

  it('with maxSessionsPerUser 1, every create leaves the user index with a TTL', async () => {
    const single = h.store({ maxSessionsPerUser: 1 });
    const first = remember(await single.createSession({ userId: 'u-cap-one' }));
    const index = `${h.prefix}:u:{${first.token.slice(0, 22)}}`;
    for (let i = 0; i < 3; i++) {
      expect(remember(await single.createSession({ userId: 'u-cap-one' })).evicted).toBe(1);
      expect(await h.client.pttl(index)).toBeGreaterThan(0);
    }
    // A store that has never seen this user (no hints) too.
    remember(await h.store({ maxSessionsPerUser: 1 }).createSession({ userId: 'u-cap-one' }));
    expect(await h.client.pttl(index)).toBeGreaterThan(0);
    expect(await single.getSessionCount('u-cap-one')).toBe(1);
  });

  it('audits as expire the expired entries that getSessionCount, getUserSessions and a create at the cap prune', async () => {
    const short = h.store({ idleTimeoutSeconds: 0.3, absoluteTimeoutSeconds: 60, maxSessionsPerUser: 1 });
    const counted = remember(await short.createSession({ userId: 'u-expire-count' }));
    const listed = remember(await short.createSession({ userId: 'u-expire-list' }));
    const popped = remember(await short.createSession({ userId: 'u-expire-pop' }));
    await sleep(500);
    expect(await short.getSessionCount('u-expire-count')).toBe(0);
    expect(await short.getUserSessions('u-expire-list')).toEqual([]);
    const next = remember(await short.createSession({ userId: 'u-expire-pop' }));
    expect(next.evicted).toBe(0);
    const expired = h.events.filter((e) => e.type === 'expire' && e.userId?.startsWith('u-expire-'));
    expect(expired.map((e) => [e.userId, e.sessionRef]).sort()).toEqual(
      [
        ['u-expire-count', counted.handle],
        ['u-expire-list', listed.handle],
        ['u-expire-pop', popped.handle],
      ].sort(),
    );
    expect(h.events.filter((e) => e.type === 'evict' && e.userId === 'u-expire-pop')).toEqual([]);
    expect(await short.deleteUserSessions('u-expire-pop')).toBe(1);
  });

  it('getUserSessions lists newest first by creation, also after the older session was used', async () => {
    const touching = h.store({ touchIntervalSeconds: 0 });
    const older = remember(await touching.createSession({ userId: 'u-order', device: { platform: 'web' } }));
    await sleep(5);
    const newer = remember(await touching.createSession({ userId: 'u-order', device: { platform: 'ios' } }));
    await sleep(5);
    // The touch moves the older session's deadline past the newer one's in the index.
    expect(await touching.getSession(older.token)).not.toBeNull();
    expect((await touching.getUserSessions('u-order')).map((s) => s.handle)).toEqual([
      newer.handle,
      older.handle,
    ]);
  });

  it('keeps an active session alive on a host whose clock is behind the Redis clock by more than the idle timeout', async () => {
    const writer = h.store({ idleTimeoutSeconds: 1.5, absoluteTimeoutSeconds: 60 });
    const realNow = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 3_000);
    try {
      const created = remember(await writer.createSession({ userId: 'u-clock' }));
      // One store learned the Redis clock from its create; the other has seen nothing from Redis yet.
      const reader = h.store({ idleTimeoutSeconds: 1.5, absoluteTimeoutSeconds: 60 });
      const started = realNow();
      while (realNow() - started < 2_500) {
        await sleep(300);
        expect(await writer.getSession(created.token)).not.toBeNull();
        await sleep(300);
        expect(await reader.getSession(created.token)).not.toBeNull();
      }
    } finally {
      spy.mockRestore();
    }
  });

  describe('bad input gets a typed error and writes nothing', () => {
    const expectNothingWritten = async (action: () => Promise<unknown>, code: string) => {
      const before = new Set(await h.keys());
      expect(await codeOf(action)).toBe(code);
      // Keys of earlier tests may expire meanwhile; none may appear.
      expect((await h.keys()).filter((key) => !before.has(key))).toEqual([]);
    };

    it.each([
      ['an empty user id', ''],
      ['a user id with a glob', 'user*'],
      ['a user id with a question mark', 'user?'],
      ['a user id with brackets', 'user[1]'],
      ['a user id with a hash tag', '{user}'],
      ['a user id with a newline', 'user\n1'],
      ['a user id with a NUL', 'user\u00001'],
      ['a user id with a space', 'user 1'],
      ['a 257-character user id', 'u'.repeat(257)],
      ['a numeric user id', 42],
      ['a missing user id', undefined],
    ])('createSession refuses %s with E_INVALID_USER_ID', async (_name, userId) => {
      await expectNothingWritten(
        () => store.createSession({ userId: userId as string }),
        'E_INVALID_USER_ID',
      );
    });

    it.each([
      ['a short id', 'abc'],
      ['an id with a glob', `${'a'.repeat(30)}*`],
      ['an id with braces', `{${'a'.repeat(30)}}`],
      ['an id with a control character', `${'a'.repeat(30)}\u0007`],
      ['an id with a dot', `${'a'.repeat(30)}.b`],
    ])('createSession refuses %s as sessionId with E_INVALID_SESSION_ID', async (_name, sessionId) => {
      await expectNothingWritten(
        () => store.createSession({ userId: 'u-bad', sessionId }),
        'E_INVALID_SESSION_ID',
      );
    });

    it('refuses data that cannot be serialized with E_UNSERIALIZABLE', async () => {
      await expectNothingWritten(
        () => store.createSession({ userId: 'u-bad', data: { f: () => 1 } }),
        'E_UNSERIALIZABLE',
      );
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      await expectNothingWritten(
        () => store.createSession({ userId: 'u-bad', data: cyclic }),
        'E_UNSERIALIZABLE',
      );
      const created = remember(await store.createSession({ userId: 'u-unserializable', data: { ok: true } }));
      await expectNothingWritten(
        () => store.updateSession(created.token, { callback: () => 1 }),
        'E_UNSERIALIZABLE',
      );
      expect(await store.getSession(created.token, { touch: false })).toMatchObject({
        data: { ok: true },
        version: 1,
      });
    });

    it('refuses data over 64 KiB with E_VALUE_TOO_LARGE, on create and on update', async () => {
      await expectNothingWritten(
        () => store.createSession({ userId: 'u-bad', data: { blob: 'x'.repeat(65 * 1024) } }),
        'E_VALUE_TOO_LARGE',
      );
      const created = remember(await store.createSession({ userId: 'u-big', data: { small: true } }));
      await expectNothingWritten(
        () => store.updateSession(created.token, { blob: 'x'.repeat(65 * 1024) }),
        'E_VALUE_TOO_LARGE',
      );
      expect((await store.getSession(created.token))?.data).toEqual({ small: true });
    });

    it('refuses device fields that are too long or carry control characters with E_INVALID_ARGUMENT', async () => {
      await expectNothingWritten(
        () => store.createSession({ userId: 'u-bad', device: { userAgent: 'x'.repeat(600) } }),
        'E_INVALID_ARGUMENT',
      );
      await expectNothingWritten(
        () => store.createSession({ userId: 'u-bad', device: { platform: 'ios\r\nX-Injected: 1' } }),
        'E_INVALID_ARGUMENT',
      );
      for (const character of ['\u0085', '\u009b', '\u2028', '\u2029']) {
        await expectNothingWritten(
          () => store.createSession({ userId: 'u-bad', device: { userAgent: `Mozilla${character}5.0` } }),
          'E_INVALID_ARGUMENT',
        );
      }
    });

    it.each([
      ['0', 0],
      ['-1', -1],
      ['1.5', 1.5],
      ['NaN', Number.NaN],
      ['a string', '10'],
      ['over 100000', 100_001],
    ])('cleanupExpiredSessions refuses count %s with E_INVALID_ARGUMENT', async (_name, count) => {
      await expectNothingWritten(
        () => store.cleanupExpiredSessions({ count: count as number }),
        'E_INVALID_ARGUMENT',
      );
    });

    it('refuses malformed ids in update, delete and extend with E_INVALID_SESSION_ID, and a missing session with E_SESSION_NOT_FOUND', async () => {
      await expectNothingWritten(() => store.updateSession('*', { a: 1 }), 'E_INVALID_SESSION_ID');
      await expectNothingWritten(() => store.deleteSession('{x}'), 'E_INVALID_SESSION_ID');
      await expectNothingWritten(() => store.extendSession('a\u0000'), 'E_INVALID_SESSION_ID');
      await expectNothingWritten(
        () =>
          store.updateSession('AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', { a: 1 }),
        'E_SESSION_NOT_FOUND',
      );
      await expectNothingWritten(
        () => store.deleteUserSession('u-x', 'not-a-handle'),
        'E_INVALID_SESSION_ID',
      );
      await expectNothingWritten(() => store.getUserSessions('bad*user'), 'E_INVALID_USER_ID');
      await expectNothingWritten(() => store.deleteUserSessions('{bad}'), 'E_INVALID_USER_ID');
      await expectNothingWritten(() => store.getSessionCount('bad\nuser'), 'E_INVALID_USER_ID');
    });

    it.each([
      ['idleTimeoutSeconds 0', { idleTimeoutSeconds: 0 }],
      ['idleTimeoutSeconds -1', { idleTimeoutSeconds: -1 }],
      ['idleTimeoutSeconds NaN', { idleTimeoutSeconds: Number.NaN }],
      ['idleTimeoutSeconds Infinity', { idleTimeoutSeconds: Number.POSITIVE_INFINITY }],
      ['absoluteTimeoutSeconds 0', { absoluteTimeoutSeconds: 0 }],
      [
        'absoluteTimeoutSeconds below the idle timeout',
        { idleTimeoutSeconds: 60, absoluteTimeoutSeconds: 30 },
      ],
      ['maxSessionsPerUser 0', { maxSessionsPerUser: 0 }],
      ['maxSessionsPerUser 1.5', { maxSessionsPerUser: 1.5 }],
      ['a prefix with a glob', { prefix: 'sessions*' }],
      ['a prefix with a hash tag', { prefix: '{sessions}' }],
      ['a short tokenSecret', { tokenSecret: 'short' }],
      ['no redis client', { redis: undefined }],
      ['a metrics option that is not @austa/metrics', { metrics: {} }],
      ['metrics that is a string', { metrics: 'prometheus' }],
      [
        "ipAddress 'hash' without tokenSecret (an unkeyed hash of an IP is reversible)",
        { ipAddress: 'hash' },
      ],
    ])('createSessionStore refuses %s with E_INVALID_CONFIG', async (_name, overrides) => {
      await expectNothingWritten(
        async () => h.store(overrides as Partial<SessionStoreOptions>),
        'E_INVALID_CONFIG',
      );
    });
  });

  it('reports metrics by operation and result, with no user id or token in any label, and passes promtool', async () => {
    const metrics = createMetrics();
    const measuredStore = h.store({ metrics });
    const created = remember(await measuredStore.createSession({ userId: 'u-metrics' }));
    await measuredStore.getSession(created.token);
    await measuredStore.getSession('nope');
    await codeOf(() => measuredStore.createSession({ userId: 'bad*' }));
    const text = await metrics.text();
    expect(text).toContain('austa_session_operations_total{operation="create_session",result="ok"} 1');
    expect(text).toContain('austa_session_operations_total{operation="get_session",result="ok"} 1');
    expect(text).toContain('austa_session_operations_total{operation="get_session",result="miss"} 1');
    expect(text).toContain('austa_session_operations_total{operation="create_session",result="rejected"} 1');
    // The store's own latency, per operation; refused input never reached Redis and is not timed.
    expect(text).toContain('austa_session_operation_duration_seconds_count{operation="get_session"} 2');
    expect(text).toContain('austa_session_operation_duration_seconds_count{operation="create_session"} 1');
    // Redis latency goes to the shared histogram under the Redis command: one GET per read, one script per create.
    expect(text).toContain(
      'db_client_operation_duration_seconds_count{db_system_name="redis",db_operation_name="get",db_collection_name="",error_type=""} 1',
    );
    expect(text).toContain(
      'db_client_operation_duration_seconds_count{db_system_name="redis",db_operation_name="evalsha",db_collection_name="",error_type=""} 1',
    );
    expect(text).not.toMatch(/db_operation_name="(get|create)_session"/);
    expect(text).not.toContain('u-metrics');
    expect(text).not.toContain(created.token.slice(0, 22));
    expect(text).not.toContain(created.handle);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(promtool.error, 'promtool must be installed (apt-get install -y prometheus)').toBeUndefined();
    expect(`${promtool.stdout}${promtool.stderr}`).toBe('');
    expect(promtool.status).toBe(0);
  });

  it("with durability 'replicated', acknowledges writes a replica confirmed, and refuses them without replicas", async () => {
    const replicated = h.store({ durability: 'replicated', replicationTimeoutMs: 200 });
    if (topology === 'standalone') {
      // test-env's standalone server has no replica: WAIT 1 answers 0 after the timeout.
      expect(await codeOf(() => replicated.createSession({ userId: 'u-replicated' }))).toBe(
        'E_NOT_REPLICATED',
      );
      return;
    }
    const created = remember(await replicated.createSession({ userId: 'u-replicated', data: { a: 1 } }));
    expect((await replicated.updateSession(created.token, { b: 2 })).data).toEqual({ a: 1, b: 2 });
    expect(await replicated.extendSession(created.token)).not.toBeNull();
    expect(await replicated.deleteSession(created.token)).toBe(true);
    expect(await replicated.getSession(created.token)).toBeNull();
  });

  it('works with a codec without encryption and with an HMAC token secret', async () => {
    const plain = h.store({ codec: createCodec(), tokenSecret: 'x'.repeat(32) });
    const created = remember(await plain.createSession({ userId: 'u-plain', data: { ok: true } }));
    expect((await plain.getSession(created.token))?.data).toEqual({ ok: true });
    // Another secret hashes the token to another key: the session is not found.
    const otherSecret = h.store({ codec: createCodec(), tokenSecret: 'y'.repeat(32) });
    expect(await otherSecret.getSession(created.token)).toBeNull();
  });

  it('close() stops the store without quitting the client', async () => {
    const closing = createSessionStore({
      redis: h.client,
      prefix: h.prefix,
      idleTimeoutSeconds: 60,
      absoluteTimeoutSeconds: 120,
      maxSessionsPerUser: 2,
    });
    await closing.close();
    expect(await codeOf(() => closing.getSession('x'))).toBe('E_CLOSED');
    expect(await h.client.ping()).toBe('PONG');
  });
});
