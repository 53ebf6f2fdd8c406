import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envBoolean, fromEnv, parseSeedNode, resolveOptions } from '../src/options.js';

function message(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect((error as { code?: string }).code).toBe('E_INVALID_CONFIG');
    return (error as Error).message;
  }
  throw new Error('expected a config error');
}

const BASE = {
  connectionName: 'austa:default',
  commandTimeout: 5000,
  connectTimeout: 5000,
  enableOfflineQueue: true,
  enableAutoPipelining: false,
  maxRetriesPerRequest: 3,
};

describe('standalone options', () => {
  it('defaults to 127.0.0.1:6379 with the documented settings', () => {
    expect(resolveOptions({})).toEqual({
      name: 'default',
      commandTimeoutMs: 5000,
      resendInFlightWrites: true,
      corkWrites: true,
      topology: 'standalone',
      redis: { ...BASE, host: '127.0.0.1', port: 6379 },
    });
  });

  it('maps every named option, and lets redisOptions override last', () => {
    const resolved = resolveOptions({
      host: 'cache.internal',
      port: 6380,
      db: 4,
      name: 'care-api_2',
      username: 'svc',
      password: 'pw',
      commandTimeoutMs: 1,
      connectTimeoutMs: 2_147_483_647,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: null,
      tls: { servername: 'cache.internal' },
      redisOptions: { keepAlive: 1000, port: 6381 },
    });
    expect(resolved).toEqual({
      name: 'care-api_2',
      commandTimeoutMs: 1,
      resendInFlightWrites: true,
      corkWrites: true,
      topology: 'standalone',
      redis: {
        connectionName: 'austa:care-api_2',
        commandTimeout: 1,
        connectTimeout: 2_147_483_647,
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        maxRetriesPerRequest: null,
        username: 'svc',
        password: 'pw',
        tls: { servername: 'cache.internal' },
        host: 'cache.internal',
        port: 6381,
        db: 4,
        keepAlive: 1000,
      },
    });
  });

  it('turns tls: true into Node defaults, and tls: false into no TLS', () => {
    expect(resolveOptions({ tls: true }).redis.tls).toEqual({});
    expect('tls' in resolveOptions({ tls: false }).redis).toBe(false);
    expect(resolveOptions({ maxRetriesPerRequest: 0 }).redis.maxRetriesPerRequest).toBe(0);
  });

  it('reads a URL: IPv6 host, default port, credentials alone, and the options that override them', () => {
    expect(resolveOptions({ url: 'redis://[::1]' }).redis).toMatchObject({ host: '::1', port: 6379 });
    expect(resolveOptions({ url: 'redis://[::1]' }).redis.db).toBeUndefined();
    const userOnly = resolveOptions({ url: 'redis://app@h:1' }).redis;
    expect(userOnly.username).toBe('app');
    expect(userOnly.password).toBeUndefined();
    const passwordOnly = resolveOptions({ url: 'redis://:p%20w@h:1' }).redis;
    expect(passwordOnly.username).toBeUndefined();
    expect(passwordOnly.password).toBe('p w');
    expect(
      resolveOptions({ url: 'redis://app:pw@h:1/3', username: 'other', password: 'secret', db: 5 }).redis,
    ).toMatchObject({ username: 'other', password: 'secret', db: 5 });
    expect(resolveOptions({ url: 'rediss://h', tls: { servername: 'x' } }).redis.tls).toEqual({
      servername: 'x',
    });
    expect(resolveOptions({ url: 'redis://h', tls: true }).redis.tls).toEqual({});
  });

  it('accepts the edges of the valid ranges', () => {
    expect(resolveOptions({ port: 1 }).redis.port).toBe(1);
    expect(resolveOptions({ port: 65535 }).redis.port).toBe(65535);
    expect(resolveOptions({ db: 0 }).redis.db).toBe(0);
    expect(resolveOptions({ name: `a${'b'.repeat(31)}` }).name).toHaveLength(32);
  });

  it.each([
    [{ commandTimeoutMs: 0 }, 'commandTimeoutMs must be a positive integer of at most 2147483647 (got 0).'],
    [
      { commandTimeoutMs: 1.5 },
      'commandTimeoutMs must be a positive integer of at most 2147483647 (got 1.5).',
    ],
    [{ connectTimeoutMs: 0 }, 'connectTimeoutMs must be a positive integer of at most 2147483647 (got 0).'],
    [{ enableOfflineQueue: 'no' }, 'enableOfflineQueue must be true or false (got "no").'],
    [{ maxRetriesPerRequest: 1.5 }, 'maxRetriesPerRequest must be a non-negative integer or null (got 1.5).'],
    [{ tls: null }, 'tls must be true, false or Node TLS options (an object).'],
    [{ tls: 1 }, 'tls must be true, false or Node TLS options (an object).'],
    [
      { name: 'x'.repeat(33) },
      `Client name "${'x'.repeat(33)}" must be 1-32 characters of a-z, 0-9, "_" or "-", starting with a letter.`,
    ],
    [{ name: '1abc' }, 'Client name "1abc" must be 1-32'],
    [{ name: 'ab c' }, 'Client name "ab c" must be 1-32'],
    [{ name: 'abc!' }, 'Client name "abc!" must be 1-32'],
    [{ host: '   ' }, 'host must be a host name or address (got "   ").'],
    [{ host: 'a/b' }, 'host must be a host name or address (got "a/b").'],
    [{ host: 5 }, 'host must be a host name or address (got 5).'],
    [{ port: 65536 }, 'port must be an integer between 1 and 65535 (got 65536).'],
    [{ port: 0 }, 'port must be an integer between 1 and 65535 (got 0).'],
    [{ port: 1.5 }, 'port must be an integer between 1 and 65535 (got 1.5).'],
    [{ db: 1.5 }, 'db must be a non-negative integer (got 1.5).'],
    [{ url: 'redis://h/x' }, 'db must be a non-negative integer (got NaN).'],
    [{ url: 'ftp://h' }, 'url must start with redis:// or rediss:// (got ftp://).'],
    [{ url: 'nope' }, 'url is not a valid URL; expected redis://[user:password@]host:port[/db].'],
  ])('refuses %j', (options, expected) => {
    expect(message(() => resolveOptions(options as never))).toContain(expected);
  });

  it('keeps the cause of an unparsable URL', () => {
    try {
      resolveOptions({ url: 'nope' });
    } catch (error) {
      expect((error as Error).cause).toBeInstanceOf(TypeError);
      return;
    }
    throw new Error('expected an error');
  });

  it('refuses what is not an options object', () => {
    expect(message(() => resolveOptions('redis://h' as never))).toBe(
      'createRedisClient needs an options object: { url } or { cluster: { nodes } }.',
    );
  });
});

describe('cluster options', () => {
  it('applies the documented defaults', () => {
    const resolved = resolveOptions({ cluster: { nodes: ['a:1'] } });
    expect(resolved.topology).toBe('cluster');
    expect(resolved.redis).toEqual(BASE);
    expect(resolved.cluster).toEqual({
      nodes: [{ host: 'a', port: 1 }],
      options: {
        redisOptions: BASE,
        scaleReads: 'master',
        retryDelayOnFailover: 500,
        retryDelayOnClusterDown: 300,
        retryDelayOnTryAgain: 100,
        maxRedirections: 64,
        enableOfflineQueue: true,
        enableAutoPipelining: false,
        slotsRefreshTimeout: 2000,
      },
    });
  });

  it('maps the named options, natMap, TLS and the extra options, which apply last', () => {
    const natMap = { '10.0.0.1:7000': { host: '127.0.0.1', port: 7000 } };
    const resolved = resolveOptions({
      cluster: {
        nodes: ['[::1]:7000'],
        natMap,
        scaleReads: 'slave',
        clusterNodeTimeoutMs: 1000,
        retryDelayOnFailoverMs: 100,
        retryDelayOnClusterDownMs: 50,
        maxRedirections: 11,
        clusterOptions: { maxRedirections: 12 },
      },
      db: 0,
      tls: true,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      redisOptions: { keepAlive: 5 },
    });
    const options = resolved.cluster?.options;
    expect(resolved.cluster?.nodes).toEqual([{ host: '::1', port: 7000 }]);
    expect(options).toMatchObject({
      natMap,
      scaleReads: 'slave',
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 50,
      maxRedirections: 12,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
    });
    expect(options?.redisOptions).toMatchObject({ tls: {}, keepAlive: 5, enableOfflineQueue: false });
    expect(resolved.redis).toBe(options?.redisOptions);
    // With TLS, seed host names are not resolved to addresses, so certificates that name the host still match.
    const lookup = options?.dnsLookup as (address: string, callback: (e: null, a: string) => void) => void;
    let resolvedTo: string | undefined;
    lookup('cache.example', (_error, address) => {
      resolvedTo = address;
    });
    expect(resolvedTo).toBe('cache.example');
    expect(
      resolveOptions({ cluster: { nodes: ['a:1'], scaleReads: 'all' } }).cluster?.options.scaleReads,
    ).toBe('all');
    expect(
      resolveOptions({ cluster: { nodes: ['a:1'], scaleReads: 'master' } }).cluster?.options.scaleReads,
    ).toBe('master');
    expect(resolveOptions({ cluster: { nodes: ['a:1'] } }).cluster?.options.dnsLookup).toBeUndefined();
  });

  it('needs a retry budget strictly longer than cluster-node-timeout', () => {
    expect(
      message(() =>
        resolveOptions({ cluster: { nodes: ['a:1'], retryDelayOnFailoverMs: 500, maxRedirections: 30 } }),
      ),
    ).toBe(
      'cluster.retryDelayOnFailoverMs × cluster.maxRedirections (500 × 30) must exceed cluster-node-timeout (15000 ms) so commands survive a master failover. Raise one of them.',
    );
    expect(
      resolveOptions({ cluster: { nodes: ['a:1'], retryDelayOnFailoverMs: 500, maxRedirections: 31 } })
        .cluster?.options.maxRedirections,
    ).toBe(31);
  });

  it.each([
    [{ cluster: { nodes: 'a:1' } }, 'cluster.nodes needs at least one seed node ("host:port").'],
    [{ cluster: { nodes: ['a:1'] }, db: 1 }, 'Redis Cluster only has database 0; remove the db option.'],
    [
      { cluster: { nodes: ['a:1'], retryDelayOnFailoverMs: 0 } },
      'cluster.retryDelayOnFailoverMs must be a positive integer',
    ],
    [
      { cluster: { nodes: ['a:1'], maxRedirections: 0 } },
      'cluster.maxRedirections must be a positive integer',
    ],
    [
      { cluster: { nodes: ['a:1'], clusterNodeTimeoutMs: 0 } },
      'cluster.clusterNodeTimeoutMs must be a positive integer',
    ],
    [
      { cluster: { nodes: ['a:1'], retryDelayOnClusterDownMs: 0 } },
      'cluster.retryDelayOnClusterDownMs must be a positive integer',
    ],
    [
      { cluster: { nodes: ['a:1'], scaleReads: 'replica' } },
      'cluster.scaleReads must be "master", "slave" or "all" (got "replica").',
    ],
  ])('refuses %j', (options, expected) => {
    expect(message(() => resolveOptions(options as never))).toContain(expected);
  });
});

describe('seed nodes', () => {
  it.each([
    ['10.0.0.1:7000', { host: '10.0.0.1', port: 7000 }],
    ['[fe80::1]:7001', { host: 'fe80::1', port: 7001 }],
    ['h:65535', { host: 'h', port: 65535 }],
    ['h:1', { host: 'h', port: 1 }],
  ])('%s', (node, expected) => {
    expect(parseSeedNode(node)).toEqual(expected);
  });

  it('accepts { host, port } at the edges of the port range', () => {
    expect(parseSeedNode({ host: 'h', port: 1 })).toEqual({ host: 'h', port: 1 });
    expect(parseSeedNode({ host: 'h', port: 65535 })).toEqual({ host: 'h', port: 65535 });
  });

  it.each([':7000', '[]:7000', 'h:0', 'h:65536', 'h:1.5', 'h:', 'h:x'])('refuses %s', (node) => {
    expect(message(() => parseSeedNode(node))).toBe(`Cluster seed node "${node}" is not "host:port".`);
  });

  it.each([
    { host: '', port: 1 },
    { host: 'h', port: 0 },
    { host: 'h', port: 65536 },
    { host: 'h x', port: 1 },
  ])('refuses %j', (node) => {
    expect(message(() => parseSeedNode(node))).toBe(
      'A cluster seed node needs a host and a port between 1 and 65535.',
    );
  });

  it('refuses null and numbers', () => {
    expect(message(() => parseSeedNode(null as never))).toBe('A cluster seed node must be "host:port".');
    expect(message(() => parseSeedNode(7000 as never))).toBe('A cluster seed node must be "host:port".');
  });
});

describe('environment', () => {
  it('reads booleans in any case and with spaces, and leaves an unset one undefined', () => {
    expect(envBoolean({ X: ' Yes ' }, 'X')).toBe(true);
    expect(envBoolean({ X: 'FALSE' }, 'X')).toBe(false);
    expect(envBoolean({}, 'X')).toBeUndefined();
    expect(message(() => envBoolean({ X: 'on' }, 'X'))).toBe(
      'X must be one of true, false, 1, 0, yes, no (got "on"); unset it for the default.',
    );
  });

  it('splits cluster nodes, dropping empty entries, and prefers them to REDIS_URL', () => {
    expect(fromEnv({ REDIS_CLUSTER_NODES: ' a:1,, b:2 ,', REDIS_URL: 'redis://x' })).toEqual({
      cluster: { nodes: ['a:1', 'b:2'] },
    });
    expect(fromEnv({ REDIS_CLUSTER_NODES: '  ', REDIS_URL: ' redis://x ' })).toEqual({ url: 'redis://x' });
  });

  it('ignores empty credentials, and lets overrides win', () => {
    expect(fromEnv({ REDIS_URL: 'redis://x', REDIS_USERNAME: '', REDIS_PASSWORD: '' })).toEqual({
      url: 'redis://x',
    });
    expect(fromEnv({ REDIS_URL: 'redis://x', REDIS_PASSWORD: 'a' }, { password: 'b', name: 'api' })).toEqual({
      url: 'redis://x',
      password: 'b',
      name: 'api',
    });
  });

  it('reads the CA file for TLS', () => {
    const directory = mkdtempSync(join(tmpdir(), 'austa-ca-'));
    const file = join(directory, 'ca.pem');
    writeFileSync(file, 'PEM');
    const options = fromEnv({ REDIS_URL: 'redis://h', REDIS_TLS: 'true', REDIS_TLS_CA_FILE: file });
    expect(options.tls).toEqual({ ca: Buffer.from('PEM') });
    expect(
      message(() => fromEnv({ REDIS_URL: 'rediss://h', REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' })),
    ).toBe('REDIS_TLS_CA_FILE (/nonexistent/ca.pem) cannot be read.');
    try {
      fromEnv({ REDIS_URL: 'rediss://h', REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' });
    } catch (error) {
      expect(((error as Error).cause as { code?: string }).code).toBe('ENOENT');
    }
  });

  it('names every TLS setting given without TLS, and says when REDIS_TLS is false', () => {
    expect(
      message(() =>
        fromEnv({
          REDIS_URL: 'redis://h',
          REDIS_TLS_CA_FILE: 'x',
          REDIS_TLS_SERVERNAME: 'y',
          REDIS_TLS: 'false',
        }),
      ),
    ).toBe(
      'REDIS_TLS_CA_FILE, REDIS_TLS_SERVERNAME are set but TLS is off: set REDIS_TLS=true or use a rediss:// URL (REDIS_TLS is false).',
    );
    expect(message(() => fromEnv({ REDIS_URL: 'redis://h', REDIS_TLS_SERVERNAME: 'y' }))).toBe(
      'REDIS_TLS_SERVERNAME is set but TLS is off: set REDIS_TLS=true or use a rediss:// URL.',
    );
    // Empty settings are as good as unset.
    expect(fromEnv({ REDIS_URL: 'redis://h', REDIS_TLS_CA_FILE: '', REDIS_TLS_SERVERNAME: '' })).toEqual({
      url: 'redis://h',
    });
  });

  it('turns TLS on for a cluster with REDIS_TLS', () => {
    expect(fromEnv({ REDIS_CLUSTER_NODES: 'a:1', REDIS_TLS: '1' }).tls).toEqual({});
    expect(fromEnv({ REDIS_CLUSTER_NODES: 'a:1' }).tls).toBeUndefined();
  });
});
