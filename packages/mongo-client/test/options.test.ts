import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics } from '@austa/metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { type AustaMongoClient, createMongoClient } from '../src/client.js';
import { MongoConfigError } from '../src/errors.js';
import { DEFAULTS, fromEnv, redactUrl } from '../src/options.js';
import { activeTimers, FakeMongoClient } from './fakes.js';

const open: AustaMongoClient[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((client) => client.close()));
});

function build(options: Parameters<typeof createMongoClient>[0]) {
  const client = createMongoClient(options);
  open.push(client);
  return client;
}

function configError(create: () => unknown): MongoConfigError {
  try {
    create();
  } catch (error) {
    if (MongoConfigError.isInstance(error)) return error;
    throw error;
  }
  throw new Error('no error thrown');
}

describe('createMongoClient options', () => {
  it('applies the package defaults when neither the options nor the URL set them', () => {
    const mongo = build({ url: 'mongodb://db-0:27017/app' });
    const options = mongo.client.options;
    expect(options.maxPoolSize).toBe(DEFAULTS.maxPoolSize);
    expect(options.minPoolSize).toBe(0);
    expect(options.waitQueueTimeoutMS).toBe(10_000);
    expect(options.connectTimeoutMS).toBe(10_000);
    expect(options.socketTimeoutMS).toBe(0);
    expect(options.serverSelectionTimeoutMS).toBe(15_000);
    expect(options.writeConcern?.w).toBe('majority');
    expect(options.readPreference.mode).toBe('primary');
    expect(options.retryWrites).toBe(true);
    expect(options.retryReads).toBe(true);
    expect(options.monitorCommands).toBe(false);
    expect(mongo.name).toBe('default');
  });

  it('lets options in the URL win over the package defaults', () => {
    const mongo = build({
      url: 'mongodb://db-0:27017/app?maxPoolSize=7&serverSelectionTimeoutMS=1000&w=1&readPreference=secondaryPreferred&appName=billing',
    });
    const options = mongo.client.options;
    expect(options.maxPoolSize).toBe(7);
    expect(options.serverSelectionTimeoutMS).toBe(1000);
    expect(options.writeConcern?.w).toBe(1);
    expect(options.readPreference.mode).toBe('secondaryPreferred');
  });

  it('lets named options win over the URL, and driverOptions over both', () => {
    const mongo = build({
      url: 'mongodb://db-0:27017/app?maxPoolSize=7',
      maxPoolSize: 3,
      waitQueueTimeoutMs: 250,
      readPreference: 'nearest',
      writeConcern: { w: 2, journal: true, wtimeoutMs: 5000 },
      retryWrites: false,
      driverOptions: { connectTimeoutMS: 1234 },
    });
    const options = mongo.client.options;
    expect(options.maxPoolSize).toBe(3);
    expect(options.waitQueueTimeoutMS).toBe(250);
    expect(options.readPreference.mode).toBe('nearest');
    expect(options.writeConcern).toMatchObject({ w: 2, journal: true, wtimeoutMS: 5000 });
    expect(options.retryWrites).toBe(false);
    expect(options.connectTimeoutMS).toBe(1234);
  });

  it('turns command monitoring on only when metrics are given', () => {
    expect(
      build({ url: 'mongodb://db-0/app', metrics: createMetrics() }).client.options.monitorCommands,
    ).toBe(true);
  });

  it('maps TLS options and refuses a CA file that does not exist', () => {
    const ca = join(tmpdir(), `austa-ca-${process.pid}.pem`);
    writeFileSync(ca, 'not a real certificate; never read in this test');
    const mongo = build({ url: 'mongodb://db-0/app', tls: { caFile: ca, allowInvalidHostnames: true } });
    expect(mongo.client.options.tls).toBe(true);
    expect(mongo.client.options.tlsCAFile).toBe(ca);
    // The driver turns allowInvalidHostnames into a checkServerIdentity that accepts any host.
    expect(typeof (mongo.client.options as { checkServerIdentity?: unknown }).checkServerIdentity).toBe(
      'function',
    );
    expect(
      configError(() => build({ url: 'mongodb://db-0/app', tls: { caFile: '/nonexistent/ca.pem' } })).message,
    ).toContain('/nonexistent/ca.pem');
  });

  it.each([
    ['no options', undefined],
    ['no url and no client', {}],
    ['an empty url', { url: '  ' }],
    ['an http url', { url: 'http://db-0:27017' }],
    ['a url without a host', { url: 'mongodb://' }],
    ['a url the driver cannot parse', { url: 'mongodb://db-0:99999/' }],
    ['an unsupported url option', { url: 'mongodb://db-0/?foo=bar' }],
    ['a zero maxPoolSize', { url: 'mongodb://db-0', maxPoolSize: 0 }],
    ['a negative timeout', { url: 'mongodb://db-0', connectTimeoutMs: -1 }],
    ['a fractional timeout', { url: 'mongodb://db-0', serverSelectionTimeoutMs: 1.5 }],
    ['minPoolSize above maxPoolSize', { url: 'mongodb://db-0', minPoolSize: 5, maxPoolSize: 2 }],
    ['an unknown read preference', { url: 'mongodb://db-0', readPreference: 'fastest' }],
    ['a negative w', { url: 'mongodb://db-0', writeConcern: { w: -1 } }],
    ['a client name with capitals', { url: 'mongodb://db-0', name: 'Api' }],
    ['a client name that is an id', { url: 'mongodb://db-0', name: 'x'.repeat(40) }],
    ['a database name with a dot', { url: 'mongodb://db-0', dbName: 'a.b' }],
    ['collectionLabels that are not names', { url: 'mongodb://db-0', collectionLabels: [1] }],
    ['a token store without save()', { url: 'mongodb://db-0', tokenStore: { load() {} } }],
    [
      'sanitizeFilters allowing a non-operator',
      { url: 'mongodb://db-0', sanitizeFilters: { allowOperators: ['in'] } },
    ],
    ['sanitizeFilters that is a string', { url: 'mongodb://db-0', sanitizeFilters: 'yes' }],
    ['a logger without error()', { url: 'mongodb://db-0', logger: { warn() {} } }],
    ['tls that is a string', { url: 'mongodb://db-0', tls: 'on' }],
  ])('refuses %s with E_INVALID_CONFIG', (_label, options) => {
    let thrown: unknown;
    try {
      build(options as never);
    } catch (error) {
      thrown = error;
    }
    expect(MongoConfigError.isInstance(thrown)).toBe(true);
    expect(thrown).toMatchObject({ code: 'E_INVALID_CONFIG' });
  });

  it('never echoes the password of a URL in an error', () => {
    const error = configError(() => build({ url: 'mongodb://ada:s3cret-pw@db-0:99999/app' }));
    expect(error.message).not.toContain('s3cret-pw');
    expect(redactUrl('mongodb+srv://ada:pw@cluster0.example.net/app')).toBe(
      'mongodb+srv://***@cluster0.example.net/app',
    );
  });

  it('refuses a client together with connection options, and a client without monitoring when metrics are on', () => {
    const fake = new FakeMongoClient();
    expect(configError(() => build({ client: fake as never, url: 'mongodb://db-0' })).message).toContain(
      'url',
    );
    expect(configError(() => build({ client: fake as never, maxPoolSize: 3 })).message).toContain(
      'maxPoolSize',
    );
    expect(configError(() => build({ client: {} as never })).message).toContain('MongoClient');
    const quiet = new FakeMongoClient();
    quiet.monitorCommands = false;
    expect(configError(() => build({ client: quiet as never, metrics: createMetrics() })).message).toContain(
      'monitorCommands: true',
    );
  });

  it('connects nothing at creation and leaves no handle after close()', async () => {
    const before = activeTimers();
    const mongo = createMongoClient({ url: 'mongodb://db-0:27017/app', metrics: createMetrics() });
    await mongo.close();
    expect(activeTimers()).toBeLessThanOrEqual(before);
    expect(mongo.client.listenerCount('commandStarted')).toBe(0);
    expect(mongo.client.listenerCount('connectionCheckedOut')).toBe(0);
    expect(mongo.client.listenerCount('topologyDescriptionChanged')).toBe(0);
  });
});

describe('fromEnv', () => {
  it('reads the URL, database, pool, timeouts, read preference, write concern and TLS', () => {
    const options = fromEnv(
      {
        MONGODB_URL: ' mongodb://db-0/app ',
        MONGODB_DB: 'care',
        MONGODB_MAX_POOL_SIZE: '20',
        MONGODB_MIN_POOL_SIZE: '2',
        MONGODB_SERVER_SELECTION_TIMEOUT_MS: '5000',
        MONGODB_CONNECT_TIMEOUT_MS: '3000',
        MONGODB_SOCKET_TIMEOUT_MS: '0',
        MONGODB_WAIT_QUEUE_TIMEOUT_MS: '100',
        MONGODB_READ_PREFERENCE: 'secondaryPreferred',
        MONGODB_WRITE_CONCERN: '2',
        MONGODB_TLS: 'true',
        MONGODB_TLS_CA_FILE: '/etc/ca.pem',
      },
      { name: 'api' },
    );
    expect(options).toEqual({
      url: 'mongodb://db-0/app',
      dbName: 'care',
      maxPoolSize: 20,
      minPoolSize: 2,
      serverSelectionTimeoutMs: 5000,
      connectTimeoutMs: 3000,
      socketTimeoutMs: 0,
      waitQueueTimeoutMs: 100,
      readPreference: 'secondaryPreferred',
      writeConcern: { w: 2 },
      tls: { caFile: '/etc/ca.pem' },
      name: 'api',
    });
    expect(
      fromEnv({ MONGODB_URL: 'mongodb://db-0', MONGODB_WRITE_CONCERN: 'majority' }).writeConcern,
    ).toEqual({
      w: 'majority',
    });
  });

  it('requires MONGODB_URL and refuses numbers that are not numbers', () => {
    expect(configError(() => fromEnv({})).message).toContain('MONGODB_URL');
    expect(
      configError(() => fromEnv({ MONGODB_URL: 'mongodb://db-0', MONGODB_MAX_POOL_SIZE: '10k' })).message,
    ).toContain('MONGODB_MAX_POOL_SIZE');
  });
});
