import { describe, expect, it } from 'vitest';
import { AustaRedisError, DEFAULTS, fromEnv } from '../src/index.js';
import { resolveOptions } from '../src/options.js';

function configError(run: () => unknown): AustaRedisError {
  try {
    run();
  } catch (error) {
    expect(AustaRedisError.isInstance(error)).toBe(true);
    return error as AustaRedisError;
  }
  throw new Error('expected a config error');
}

describe('resolveOptions', () => {
  it('parses a redis:// URL with ACL credentials and a database', () => {
    const resolved = resolveOptions({ url: 'redis://app:s%40cret@cache.internal:6380/2' });
    expect(resolved.topology).toBe('standalone');
    expect(resolved.redis).toMatchObject({
      host: 'cache.internal',
      port: 6380,
      username: 'app',
      password: 's@cret',
      db: 2,
    });
    expect(resolved.redis.tls).toBeUndefined();
  });

  it('turns on TLS for rediss:// URLs', () => {
    expect(resolveOptions({ url: 'rediss://cache.internal' }).redis.tls).toEqual({});
  });

  it('applies the documented defaults', () => {
    const resolved = resolveOptions({ host: '127.0.0.1' });
    expect(resolved.redis).toMatchObject({
      commandTimeout: DEFAULTS.commandTimeoutMs,
      connectTimeout: DEFAULTS.connectTimeoutMs,
      enableOfflineQueue: true,
      enableAutoPipelining: false,
      maxRetriesPerRequest: 3,
      connectionName: 'austa:default',
    });
  });

  it('corks writes per tick unless told not to, and refuses a non-boolean', () => {
    expect(resolveOptions({}).corkWrites).toBe(true);
    expect(resolveOptions({ corkWrites: false }).corkWrites).toBe(false);
    expect(resolveOptions({ cluster: { nodes: ['127.0.0.1:7000'] }, corkWrites: false }).corkWrites).toBe(
      false,
    );
    expect(() => resolveOptions({ corkWrites: 1 as never })).toThrow(/corkWrites must be true or false/);
  });

  it('resends in-flight writes as ioredis does unless told not to, by our option or an explicit ioredis one', () => {
    expect(resolveOptions({}).resendInFlightWrites).toBe(true);
    expect(resolveOptions({ resendInFlightWrites: false }).resendInFlightWrites).toBe(false);
    expect(
      resolveOptions({ redisOptions: { autoResendUnfulfilledCommands: false } }).resendInFlightWrites,
    ).toBe(false);
    expect(
      resolveOptions({ resendInFlightWrites: true, redisOptions: { autoResendUnfulfilledCommands: false } })
        .resendInFlightWrites,
    ).toBe(true);
    expect(
      resolveOptions({ cluster: { nodes: ['127.0.0.1:7000'] }, resendInFlightWrites: false })
        .resendInFlightWrites,
    ).toBe(false);
    expect(() => resolveOptions({ resendInFlightWrites: 'yes' as never })).toThrow(
      /resendInFlightWrites must be true or false/,
    );
  });

  it('builds cluster options whose retry budget outlasts a failover', () => {
    const resolved = resolveOptions({ cluster: { nodes: ['10.0.0.1:7000', { host: 'b', port: 7001 }] } });
    expect(resolved.topology).toBe('cluster');
    expect(resolved.cluster?.nodes).toEqual([
      { host: '10.0.0.1', port: 7000 },
      { host: 'b', port: 7001 },
    ]);
    const options = resolved.cluster?.options;
    expect((options?.retryDelayOnFailover ?? 0) * (options?.maxRedirections ?? 0)).toBeGreaterThan(
      DEFAULTS.clusterNodeTimeoutMs,
    );
    expect(options?.scaleReads).toBe('master');
  });

  it('refuses a retry budget shorter than cluster-node-timeout', () => {
    const error = configError(() =>
      resolveOptions({ cluster: { nodes: ['a:1'], retryDelayOnFailoverMs: 100, maxRedirections: 16 } }),
    );
    expect(error.code).toBe('E_INVALID_CONFIG');
    expect(error.message).toMatch(/must exceed cluster-node-timeout/);
  });

  it.each([
    [{}, /needs at least one|Set REDIS_URL/],
    [{ cluster: { nodes: [] } }, /at least one seed node/],
    [{ cluster: { nodes: ['no-port'] } }, /is not "host:port"/],
    [{ cluster: { nodes: ['a:1'] }, db: 3 }, /only has database 0/],
    [{ url: 'http://x' }, /redis:\/\/ or rediss:\/\//],
    [{ url: 'not a url' }, /not a valid URL/],
    [{ url: 'redis://x', commandTimeoutMs: -1 }, /commandTimeoutMs must be a positive integer/],
    [
      { url: 'redis://x', commandTimeoutMs: 2 ** 31 },
      /commandTimeoutMs must be a positive integer of at most/,
    ],
    [{ url: 'redis://x', connectTimeoutMs: 3e9 }, /connectTimeoutMs must be a positive integer of at most/],
    [{ host: 'x', port: -1 }, /port must be an integer between 1 and 65535/],
    [{ host: 'x', port: 70000 }, /port must be an integer between 1 and 65535/],
    [{ host: 'x', port: '24000x' }, /port must be an integer between 1 and 65535/],
    [{ url: 'redis://x:0' }, /port must be an integer between 1 and 65535/],
    [{ host: '' }, /host must be a host name/],
    [{ host: 'a b' }, /host must be a host name/],
    [{ host: 'x', maxRetriesPerRequest: -5 }, /maxRetriesPerRequest must be a non-negative integer or null/],
    [{ host: 'x', enableOfflineQueue: 'false' }, /enableOfflineQueue must be true or false/],
    [{ host: 'x', enableAutoPipelining: 1 }, /enableAutoPipelining must be true or false/],
    [{ host: 'x', tls: 'false' }, /tls must be true, false or Node TLS options/],
    [{ cluster: { nodes: [{ host: 'a', port: 70000 }] } }, /port between 1 and 65535/],
    [{ cluster: { nodes: ['a:1'], scaleReads: 'slaves' } }, /scaleReads must be "master", "slave" or "all"/],
    [{ url: 'redis://x', name: 'User 42!' }, /Client name/],
    [{ host: 'x', db: -1 }, /db must be a non-negative integer/],
  ])('rejects %j with E_INVALID_CONFIG', (options, message) => {
    if (Object.keys(options).length === 0) {
      // An empty object is a valid standalone default (127.0.0.1:6379), so check null instead.
      const error = configError(() => resolveOptions(null as never));
      expect(error.code).toBe('E_INVALID_CONFIG');
      return;
    }
    const error = configError(() => resolveOptions(options as never));
    expect(error.code).toBe('E_INVALID_CONFIG');
    expect(error.message).toMatch(message);
  });
});

describe('fromEnv', () => {
  it('prefers REDIS_CLUSTER_NODES and reads ACL credentials', () => {
    const options = fromEnv({
      REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001',
      REDIS_URL: 'redis://ignored',
      REDIS_USERNAME: 'svc',
      REDIS_PASSWORD: 'pw',
    });
    expect(options).toEqual({
      cluster: { nodes: ['10.0.0.1:7000', '10.0.0.2:7001'] },
      username: 'svc',
      password: 'pw',
    });
  });

  it('reads REDIS_URL and TLS settings', () => {
    const options = fromEnv({
      REDIS_URL: 'redis://h:1',
      REDIS_TLS: 'true',
      REDIS_TLS_SERVERNAME: 'h.example',
    });
    expect(options.url).toBe('redis://h:1');
    expect(options.tls).toEqual({ servername: 'h.example' });
  });

  it.each(['', 'on', 'y', 'enabled', ' off '])(
    'refuses REDIS_TLS_REJECT_UNAUTHORIZED=%j instead of turning certificate checks off',
    (value) => {
      const error = configError(() =>
        fromEnv({ REDIS_URL: 'rediss://h', REDIS_TLS_REJECT_UNAUTHORIZED: value }),
      );
      expect(error.code).toBe('E_INVALID_CONFIG');
      expect(error.message).toContain('REDIS_TLS_REJECT_UNAUTHORIZED');
    },
  );

  it.each(['on', '', 'enable', 'Y'])(
    'refuses REDIS_TLS=%j instead of silently connecting without TLS',
    (value) => {
      const error = configError(() => fromEnv({ REDIS_URL: 'redis://h', REDIS_TLS: value }));
      expect(error.code).toBe('E_INVALID_CONFIG');
      expect(error.message).toContain('REDIS_TLS');
    },
  );

  it.each([
    ['TRUE', true],
    ['1', true],
    ['Yes', true],
    ['false', false],
    ['0', false],
    ['NO', false],
  ])('reads REDIS_TLS=%j as %s', (value, expected) => {
    const options = fromEnv({ REDIS_URL: 'redis://h', REDIS_TLS: value });
    expect(options.tls !== undefined).toBe(expected);
  });

  it('turns certificate checks off only for an explicit false, and keeps them for true', () => {
    expect(fromEnv({ REDIS_URL: 'rediss://h', REDIS_TLS_REJECT_UNAUTHORIZED: 'false' }).tls).toEqual({
      rejectUnauthorized: false,
    });
    expect(fromEnv({ REDIS_URL: 'rediss://h', REDIS_TLS_REJECT_UNAUTHORIZED: 'true' }).tls).toEqual({});
    expect(fromEnv({ REDIS_URL: 'rediss://h' }).tls).toEqual({});
  });

  it.each(['REDIS_TLS_CA_FILE', 'REDIS_TLS_SERVERNAME', 'REDIS_TLS_REJECT_UNAUTHORIZED'])(
    'refuses %s on a redis:// URL without REDIS_TLS, instead of connecting in plaintext',
    (name) => {
      const error = configError(() =>
        fromEnv({ REDIS_URL: 'redis://h', [name]: name.endsWith('UNAUTHORIZED') ? 'true' : 'x' }),
      );
      expect(error.code).toBe('E_INVALID_CONFIG');
      expect(error.message).toContain(name);
      expect(error.message).toMatch(/REDIS_TLS=true or use a rediss:\/\/ URL/);
    },
  );

  it('says which variables to set when none is', () => {
    const error = configError(() => fromEnv({}));
    expect(error.code).toBe('E_INVALID_CONFIG');
    expect(error.message).toMatch(/REDIS_URL.*REDIS_CLUSTER_NODES/);
  });

  it('fails clearly on an unreadable CA file', () => {
    const error = configError(() =>
      fromEnv({ REDIS_URL: 'rediss://h', REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' }),
    );
    expect(error.message).toMatch(/REDIS_TLS_CA_FILE/);
  });
});
