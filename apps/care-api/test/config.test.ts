import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cookieSettings } from '../src/auth/session.js';
import { type Config, ConfigError, type Env, loadConfig } from '../src/config.js';

const KEY = randomBytes(32).toString('base64');
const SECRET = 'x'.repeat(40);

const PRODUCTION: Env = {
  NODE_ENV: 'production',
  REDIS_URL: 'redis://redis:6379',
  MONGODB_URL: 'mongodb://mongo:27017/?replicaSet=rs0',
  SESSION_SECRET: SECRET,
  DATA_ENCRYPTION_KEYS: `k1:${KEY}`,
};

function problemsOf(env: Env, readFile?: (path: string) => string): ConfigError {
  try {
    loadConfig(env, readFile);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('loadConfig accepted the environment');
}

function variables(error: ConfigError): string[] {
  return error.problems.map((problem) => problem.variable).sort();
}

const noFiles = (path: string): string => {
  throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
};

describe('loadConfig', () => {
  it('starts with nothing configured: embedded Redis and Mongo, generated secrets, loopback only', () => {
    const config = loadConfig({});
    expect(config.nodeEnv).toBe('development');
    expect(config.redis).toEqual({ mode: 'embedded' });
    expect(config.mongo).toEqual({ mode: 'embedded', database: 'care' });
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(3000);
    expect(config.sessionSecret.source).toBe('generated');
    expect(config.sessionSecret.value.length).toBeGreaterThanOrEqual(32);
    expect(config.encryption.source).toBe('generated');
    expect(config.encryption.keys[config.encryption.currentKeyId]).toHaveLength(32);
    expect(config.shutdownTimeoutMs).toBe(10_000);
  });

  it('accepts a complete production environment and listens on every interface', () => {
    const config = loadConfig(PRODUCTION);
    expect(config.production).toBe(true);
    expect(config.host).toBe('0.0.0.0');
    expect(config.redis).toMatchObject({ mode: 'external', options: { url: 'redis://redis:6379' } });
    expect(config.mongo).toEqual({
      mode: 'external',
      options: { url: PRODUCTION.MONGODB_URL, dbName: 'care' },
      database: 'care',
    });
    expect(config.sessionSecret).toEqual({ value: SECRET, source: 'env' });
    expect(config.encryption.currentKeyId).toBe('k1');
  });

  it('refuses production without explicit URLs and secrets, naming each variable in one error', () => {
    const error = problemsOf({ NODE_ENV: 'production' });
    expect(variables(error)).toEqual(['DATA_ENCRYPTION_KEYS', 'MONGODB_URL', 'REDIS_URL', 'SESSION_SECRET']);
    expect(error.message).toContain('4 configuration problems');
    expect(error.message).toContain('embedded redis-server is for development only');
    for (const variable of variables(error)) expect(error.message).toContain(`  - ${variable}: `);
  });

  it('refuses the DEMO login in production, with no opt-in, naming the user lookup to plug in', () => {
    const demo = (env: Env): Config => loadConfig(env, noFiles, { demoLogin: true });
    let refused: unknown;
    try {
      demo(PRODUCTION);
    } catch (caught) {
      refused = caught;
    }
    expect(refused).toBeInstanceOf(ConfigError);
    const error = refused as ConfigError;
    expect(variables(error)).toEqual(['NODE_ENV']);
    expect(error.message).toContain('NODE_ENV=production refuses the DEMO login');
    expect(error.message).toContain('buildApp({ users })');
    // Reported together with every other problem.
    try {
      demo({ NODE_ENV: 'production' });
    } catch (caught) {
      expect(variables(caught as ConfigError)).toEqual([
        'DATA_ENCRYPTION_KEYS',
        'MONGODB_URL',
        'NODE_ENV',
        'REDIS_URL',
        'SESSION_SECRET',
      ]);
    }
    // Outside production the demo runs (with the same explicit dependencies: the compose demo stack).
    expect(demo({ ...PRODUCTION, NODE_ENV: 'development' }).production).toBe(false);
  });

  it('names every bad variable in a single message, format problems and missing ones together', () => {
    const error = problemsOf({
      NODE_ENV: 'production',
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      REDIS_URL: 'http://redis:6379',
      SHUTDOWN_TIMEOUT_MS: '10',
      REDIS_TLS: 'on',
      TRUST_PROXY: 'everyone',
      MONGODB_DB: 'bad name!',
      BODY_LIMIT_BYTES: '-1',
    });
    expect(variables(error)).toEqual([
      'BODY_LIMIT_BYTES',
      'DATA_ENCRYPTION_KEYS',
      'LOG_LEVEL',
      'MONGODB_DB',
      'MONGODB_URL',
      'PORT',
      'REDIS_TLS',
      'REDIS_URL',
      'SESSION_SECRET',
      'SHUTDOWN_TIMEOUT_MS',
      'TRUST_PROXY',
    ]);
    expect(error.message).toContain('PORT: must be a whole number (got "eighty")');
    expect(error.message).toContain('SHUTDOWN_TIMEOUT_MS: must be at least 1000 (got "10")');
    expect(error.message).toContain('REDIS_TLS: must be one of true, false, 1, 0, yes, no (got "on")');
  });

  it.each([
    ['PORT', '70000', 'must be at most 65535'],
    ['NODE_ENV', 'staging', 'must be development, production or test'],
    ['REDIS_CLUSTER_NODES', 'a:1,b', '"b" is not host:port'],
    ['REDIS_COMMAND_TIMEOUT_MS', '1.5', 'must be a whole number'],
    ['HEALTH_TIMEOUT_MS', '0', 'must be at least 50'],
    ['MONGODB_EMBEDDED', 'maybe', 'must be one of true, false'],
    ['DATA_ENCRYPTION_KEYS', 'k1:c2hvcnQ=', 'key "k1" must be 32 bytes in base64'],
    ['DATA_ENCRYPTION_KEYS', 'no-colon', 'entry 1 must be id:base64'],
    ['SESSION_SECRET', 'short', 'must be at least 32 characters'],
  ])('names %s=%s in the startup error', (variable, value, message) => {
    const error = problemsOf({ [variable]: value });
    expect(variables(error)).toEqual([variable]);
    expect(error.message).toContain(`${variable}: ${message}`);
  });

  it('never quotes a secret value in the error', () => {
    const error = problemsOf({
      SESSION_SECRET: 'hunter2-is-not-long-enough',
      MONGODB_URL: 'postgres://admin:s3cret@db',
      DATA_ENCRYPTION_KEYS: 'k1:bm90LWEta2V5',
    });
    expect(variables(error)).toEqual(['DATA_ENCRYPTION_KEYS', 'MONGODB_URL', 'SESSION_SECRET']);
    expect(error.message).not.toContain('hunter2');
    expect(error.message).not.toContain('s3cret');
    expect(error.message).not.toContain('bm90LWEta2V5');
  });

  it.each([
    ['REDIS_URL', 'redis://:Hunter2SuperSecret@', 'redis://***@'],
    ['REDIS_URL', 'http://admin:Hunter2SuperSecret@redis.internal:6379', 'http://***@redis.internal:6379'],
    ['REDIS_URL', 'redis://admin:Hunter2Super@Secret@', 'redis://***@'],
    ['REDIS_CLUSTER_NODES', 'admin:Hunter2SuperSecret@h:1', '"***@h:1" is not host:port'],
    ['REDIS_CLUSTER_NODES', 'ok:6379,admin:Hunter2SuperSecret@h:x', '"***@h:x" is not host:port'],
  ])('masks the credentials of %s=%s in the error', (variable, value, shown) => {
    const error = problemsOf({ [variable]: value });
    expect(variables(error)).toEqual([variable]);
    expect(error.message).toContain(shown);
    expect(error.message).not.toContain('Hunter2');
    expect(error.message).not.toContain('admin');
    expect(JSON.stringify(error.problems)).not.toContain('Hunter2');
  });

  it('reads secrets from <NAME>_FILE, without the trailing newline', () => {
    const files: Record<string, string> = {
      '/run/secrets/session': `${SECRET}\n`,
      '/run/secrets/keys': `k1:${KEY}\n`,
      '/run/secrets/mongo': 'mongodb://user:pw@mongo:27017/?replicaSet=rs0\n',
      '/run/secrets/redis': 'redis-pw\n',
    };
    const config = loadConfig(
      {
        NODE_ENV: 'production',
        REDIS_URL: 'redis://redis:6379',
        SESSION_SECRET_FILE: '/run/secrets/session',
        DATA_ENCRYPTION_KEYS_FILE: '/run/secrets/keys',
        MONGODB_URL_FILE: '/run/secrets/mongo',
        REDIS_PASSWORD_FILE: '/run/secrets/redis',
      },
      (path) => {
        const content = files[path];
        if (content === undefined) return noFiles(path);
        return content;
      },
    );
    expect(config.sessionSecret).toEqual({ value: SECRET, source: 'file' });
    expect(config.encryption.source).toBe('file');
    expect(config.encryption.keys.k1).toEqual(Buffer.from(KEY, 'base64'));
    expect(config.mongo).toMatchObject({
      mode: 'external',
      options: { url: 'mongodb://user:pw@mongo:27017/?replicaSet=rs0' },
    });
    expect(config.redis).toMatchObject({ mode: 'external', options: { password: 'redis-pw' } });
  });

  it('names an unreadable secret file and a secret set twice', () => {
    const error = problemsOf(
      {
        SESSION_SECRET_FILE: '/missing/session',
        DATA_ENCRYPTION_KEYS: `k1:${KEY}`,
        DATA_ENCRYPTION_KEYS_FILE: '/run/secrets/keys',
      },
      noFiles,
    );
    expect(variables(error)).toEqual(['DATA_ENCRYPTION_KEYS', 'SESSION_SECRET_FILE']);
    expect(error.message).toContain('SESSION_SECRET_FILE: cannot read /missing/session (ENOENT)');
    expect(error.message).toContain('both DATA_ENCRYPTION_KEYS and DATA_ENCRYPTION_KEYS_FILE are set');
  });

  it('does not report production requirements twice when the secret file is the problem', () => {
    const error = problemsOf(
      { ...PRODUCTION, SESSION_SECRET: undefined, SESSION_SECRET_FILE: '/nope' },
      noFiles,
    );
    expect(variables(error)).toEqual(['SESSION_SECRET_FILE']);
  });

  it('requires the current key id when several encryption keys are listed, and checks it is one of them', () => {
    const other = randomBytes(32).toString('base64');
    expect(variables(problemsOf({ DATA_ENCRYPTION_KEYS: `old:${KEY},new:${other}` }))).toEqual([
      'DATA_ENCRYPTION_KEY_ID',
    ]);
    const wrong = problemsOf({
      DATA_ENCRYPTION_KEYS: `old:${KEY},new:${other}`,
      DATA_ENCRYPTION_KEY_ID: 'newer',
    });
    expect(wrong.message).toContain('"newer" is not one of the ids in DATA_ENCRYPTION_KEYS (old, new)');
    const config = loadConfig({
      DATA_ENCRYPTION_KEYS: `old:${KEY},new:${other}`,
      DATA_ENCRYPTION_KEY_ID: 'new',
    });
    expect(config.encryption.currentKeyId).toBe('new');
    expect(Object.keys(config.encryption.keys)).toEqual(['old', 'new']);
  });

  it('refuses REDIS_URL and REDIS_CLUSTER_NODES together', () => {
    const error = problemsOf({ REDIS_URL: 'redis://a:1', REDIS_CLUSTER_NODES: 'b:2' });
    expect(variables(error)).toEqual(['REDIS_URL']);
  });

  it('reads a cluster from REDIS_CLUSTER_NODES with the TLS settings @austa/redis-cluster documents', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: 'r1:7000, r2:7001', REDIS_TLS: 'yes' });
    expect(config.redis).toMatchObject({
      mode: 'external',
      options: { cluster: { nodes: ['r1:7000', 'r2:7001'] }, tls: {} },
    });
  });

  it('passes the MONGODB_* settings @austa/mongo-client documents, and names each bad one', () => {
    const config = loadConfig({
      MONGODB_URL: 'mongodb://db:27017/records?replicaSet=rs0',
      MONGODB_MAX_POOL_SIZE: '20',
      MONGODB_WRITE_CONCERN: 'majority',
      MONGODB_READ_PREFERENCE: 'primaryPreferred',
    });
    expect(config.mongo).toEqual({
      mode: 'external',
      database: 'records',
      options: {
        url: 'mongodb://db:27017/records?replicaSet=rs0',
        dbName: 'records',
        maxPoolSize: 20,
        writeConcern: { w: 'majority' },
        readPreference: 'primaryPreferred',
      },
    });
    expect(loadConfig({ MONGODB_URL: 'mongodb://db/records', MONGODB_DB: 'care2' }).mongo.database).toBe(
      'care2',
    );
    const error = problemsOf({
      MONGODB_URL: 'mongodb://db:27017',
      MONGODB_MAX_POOL_SIZE: 'many',
      MONGODB_READ_PREFERENCE: 'fastest',
      MONGODB_WRITE_CONCERN: 'all',
    });
    expect(variables(error)).toEqual([
      'MONGODB_MAX_POOL_SIZE',
      'MONGODB_READ_PREFERENCE',
      'MONGODB_WRITE_CONCERN',
    ]);
  });

  it('treats empty variables as unset and MONGODB_EMBEDDED=false as Mongo disabled', () => {
    const config = loadConfig({ REDIS_URL: '', PORT: '', MONGODB_EMBEDDED: 'false' });
    expect(config.redis).toEqual({ mode: 'embedded' });
    expect(config.port).toBe(3000);
    expect(config.mongo).toEqual({ mode: 'disabled', database: 'care' });
  });

  it('parses TRUST_PROXY as a flag, a hop count or a list of proxies', () => {
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.1' }).trustProxy).toEqual([
      '10.0.0.0/8',
      '192.168.1.1',
    ]);
  });
});

describe('the stores’ settings', () => {
  it('defaults: 30 min idle / 12 h absolute sessions, 10 per user, 600 requests/min per IP, 20 assistant requests/min', () => {
    const config = loadConfig({});
    expect(config.sessions).toEqual({
      idleTimeoutSeconds: 1800,
      absoluteTimeoutSeconds: 43_200,
      maxPerUser: 10,
    });
    expect(config.rateLimits).toEqual({ ipPerMinute: 600, assistantPerMinute: 20 });
    expect(config.conversations).toEqual({ ttlSeconds: 604_800, maxMessages: 100 });
    expect(config.profileCacheTtlSeconds).toBe(300);
  });

  it('names each bad store variable in one error', () => {
    const error = problemsOf({
      SESSION_IDLE_TIMEOUT_SECONDS: 'soon',
      SESSION_MAX_PER_USER: '0',
      RATE_LIMIT_IP_PER_MINUTE: '-5',
      RATE_LIMIT_ASSISTANT_PER_MINUTE: '1.5',
      CONVERSATION_TTL_SECONDS: '10',
      CONVERSATION_MAX_MESSAGES: '100000',
      PROFILE_CACHE_TTL_SECONDS: '',
    });
    expect(variables(error)).toEqual([
      'CONVERSATION_MAX_MESSAGES',
      'CONVERSATION_TTL_SECONDS',
      'RATE_LIMIT_ASSISTANT_PER_MINUTE',
      'RATE_LIMIT_IP_PER_MINUTE',
      'SESSION_IDLE_TIMEOUT_SECONDS',
      'SESSION_MAX_PER_USER',
    ]);
    expect(error.message).toContain('SESSION_IDLE_TIMEOUT_SECONDS: must be a whole number (got "soon")');
    expect(error.message).toContain('SESSION_MAX_PER_USER: must be at least 1 (got "0")');
    expect(error.message).toContain('CONVERSATION_MAX_MESSAGES: must be at most 10000 (got "100000")');
  });

  it('refuses an absolute session timeout shorter than the idle one', () => {
    const error = problemsOf({
      SESSION_IDLE_TIMEOUT_SECONDS: '3600',
      SESSION_ABSOLUTE_TIMEOUT_SECONDS: '600',
    });
    expect(variables(error)).toEqual(['SESSION_ABSOLUTE_TIMEOUT_SECONDS']);
    expect(error.message).toContain('must be at least SESSION_IDLE_TIMEOUT_SECONDS (3600)');
  });
});

describe('the session cookie', () => {
  it('is __Host- prefixed and Secure in production, plain on development http', () => {
    expect(cookieSettings(true)).toEqual({ name: '__Host-care_session', secure: true });
    expect(cookieSettings(false)).toEqual({ name: 'care_session', secure: false });
  });
});
