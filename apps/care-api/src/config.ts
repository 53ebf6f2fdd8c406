import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type CreateMongoClientOptions, fromEnv as mongoFromEnv } from '@austa/mongo-client';
import { fromEnv, type RedisClientOptions } from '@austa/redis-cluster';
import { z } from 'zod';

export type Env = Record<string, string | undefined>;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Where a secret came from: generated ones exist only in development and die with the process. */
export type SecretSource = 'env' | 'file' | 'generated';

export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  production: boolean;
  host: string;
  port: number;
  logLevel: LogLevel;
  /** Include error messages in logs (they can quote patient data); name, code and stack are always logged. */
  logErrorMessages: boolean;
  /** Passed to Fastify's `trustProxy`: false, true, a hop count, or the proxies' addresses/CIDRs. */
  trustProxy: boolean | number | string[];
  bodyLimitBytes: number;
  /** SIGTERM/SIGINT to exit: draining, then closing every dependency, must fit in this. */
  shutdownTimeoutMs: number;
  /** Per-dependency bound of `/health/ready`. */
  healthTimeoutMs: number;
  /** `embedded`: no REDIS_URL / REDIS_CLUSTER_NODES, so a local redis-server child is started (development only). */
  redis: { mode: 'embedded' } | { mode: 'external'; options: RedisClientOptions };
  redisCommandTimeoutMs: number;
  /**
   * `embedded`: no MONGODB_URL, so mongodb-memory-server is tried; `disabled`: MONGODB_EMBEDDED=false;
   * `external`: @austa/mongo-client's options from the MONGODB_* variables it documents.
   */
  mongo:
    | { mode: 'embedded'; database: string }
    | { mode: 'disabled'; database: string }
    | { mode: 'external'; options: CreateMongoClientOptions; database: string };
  sessionSecret: { value: string; source: SecretSource };
  encryption: { currentKeyId: string; keys: Record<string, Buffer>; source: SecretSource };
  sessions: {
    /** A session unused this long expires. */
    idleTimeoutSeconds: number;
    /** A session ends this long after login, however active. */
    absoluteTimeoutSeconds: number;
    /** A login past this many sessions evicts the user's oldest. */
    maxPerUser: number;
  };
  rateLimits: {
    /** Requests per minute per client IP (IPv6: per /64), every route but operations. */
    ipPerMinute: number;
    /** Assistant requests (new conversation, new message) per minute per user, on top of the IP limit. */
    assistantPerMinute: number;
  };
  conversations: {
    /** Sliding lifetime of a conversation: every message gives it this long again. */
    ttlSeconds: number;
    /** Messages kept per conversation; older ones are folded into the summary. */
    maxMessages: number;
  };
  /** How long a patient profile stays in the cache (the change stream invalidates it sooner on a write). */
  profileCacheTtlSeconds: number;
}

export interface ConfigProblem {
  variable: string;
  message: string;
}

/** Every problem found in the environment, reported together so one restart fixes them all. */
export class ConfigError extends Error {
  readonly code = 'E_INVALID_CONFIG';
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    // Messages are masked once more here: a package's fromEnv error may quote a URL with its credentials.
    const masked = problems.map((problem) => ({ ...problem, message: maskCredentials(problem.message) }));
    const lines = masked.map((problem) => `  - ${problem.variable}: ${problem.message}`);
    super(
      `care-api cannot start: ${problems.length} configuration ${problems.length === 1 ? 'problem' : 'problems'}\n${lines.join('\n')}`,
    );
    this.name = 'ConfigError';
    this.problems = masked;
  }
}

/**
 * Secrets may come from the variable itself or from a file named by `<NAME>_FILE` (Docker and Kubernetes secrets).
 * Their values are never quoted in an error message.
 */
export const SECRET_VARIABLES = [
  'SESSION_SECRET',
  'DATA_ENCRYPTION_KEYS',
  'REDIS_PASSWORD',
  'MONGODB_URL',
] as const;

const BOOLEAN_WORDS: Record<string, boolean> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
};

const booleanVar = z
  .string()
  .trim()
  .transform((value, context) => {
    const parsed = BOOLEAN_WORDS[value.toLowerCase()];
    if (parsed === undefined) {
      context.addIssue({ code: 'custom', message: 'must be one of true, false, 1, 0, yes, no' });
      return z.NEVER;
    }
    return parsed;
  });

function integerVar(min: number, max: number) {
  return z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
}

/**
 * Masks the userinfo of URLs and `user:password@host` nodes before a value is quoted in an error:
 * `redis://admin:pw@host:6379` → `redis://***@host:6379`, `admin:pw@h:1` → `***@h:1`. Greedy up to the last `@` of
 * a token, so a password holding `@` or `/` is masked whole; masking too much is the safe side.
 */
export function maskCredentials(text: string): string {
  return text.replace(/(^|[\s"'`,;(])([A-Za-z][A-Za-z0-9+.-]*:\/\/)?[^\s"'`,;]*@/g, '$1$2***@');
}

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

const redisNodesVar = z
  .string()
  .trim()
  .transform((value, context) => {
    const nodes = value
      .split(',')
      .map((node) => node.trim())
      .filter(Boolean);
    if (nodes.length === 0) context.addIssue({ code: 'custom', message: 'must list at least one host:port' });
    for (const node of nodes) {
      const match = HOST_PORT.exec(node);
      const port = Number(match?.[1]);
      if (!match || port < 1 || port > 65535) {
        // A node written as user:password@host:port must not have its password quoted back.
        context.addIssue({
          code: 'custom',
          message: `"${maskCredentials(node)}" is not host:port (port 1-65535)`,
        });
      }
    }
    return nodes;
  });

const redisUrlVar = z
  .string()
  .trim()
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be a redis:// or rediss:// URL with a host (redis://host:6379)');

// Mongo URLs carry credentials: the message never quotes the value.
const mongoUrlVar = z
  .string()
  .trim()
  .refine((value) => {
    if (!/^mongodb(\+srv)?:\/\//.test(value)) return false;
    try {
      return new URL(value).hostname !== '';
    } catch {
      return false;
    }
  }, 'must be a mongodb:// or mongodb+srv:// URL with a host');

const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;

/** `id:base64,id:base64`: each key 32 bytes (AES-256). */
const encryptionKeysVar = z
  .string()
  .trim()
  .transform((value, context) => {
    const keys: Record<string, Buffer> = {};
    const entries = value
      .split(',')
      .map((entry) => entry.trim())
      .filter(Boolean);
    if (entries.length === 0) {
      context.addIssue({ code: 'custom', message: 'must list at least one key as id:base64' });
    }
    entries.forEach((entry, index) => {
      const colon = entry.indexOf(':');
      const id = colon > 0 ? entry.slice(0, colon) : '';
      const material = colon > 0 ? entry.slice(colon + 1) : '';
      if (!KEY_ID.test(id)) {
        context.addIssue({
          code: 'custom',
          message: `entry ${index + 1} must be id:base64 with an id of 1-32 characters A-Z a-z 0-9 . _ -`,
        });
        return;
      }
      const bytes = Buffer.from(material, 'base64');
      if (bytes.length !== 32 || !/^[A-Za-z0-9+/_-]+={0,2}$/.test(material)) {
        context.addIssue({
          code: 'custom',
          message: `key "${id}" must be 32 bytes in base64 (openssl rand -base64 32)`,
        });
        return;
      }
      if (id in keys) context.addIssue({ code: 'custom', message: `key id "${id}" is listed twice` });
      keys[id] = bytes;
    });
    return keys;
  });

const schema = z.object({
  NODE_ENV: z
    .enum(['development', 'production', 'test'], 'must be development, production or test')
    .default('development'),
  HOST: z.string().trim().min(1, 'must not be empty').optional(),
  PORT: integerVar(0, 65535).default(3000),
  LOG_LEVEL: z
    .enum(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      'must be fatal, error, warn, info, debug, trace or silent',
    )
    .default('info'),
  LOG_ERROR_MESSAGES: booleanVar.default(false),
  TRUST_PROXY: z
    .string()
    .trim()
    .transform((value, context): boolean | number | string[] => {
      const word = BOOLEAN_WORDS[value.toLowerCase()];
      if (word !== undefined && !/^\d+$/.test(value)) return word;
      if (/^\d+$/.test(value)) return Number(value);
      const proxies = value
        .split(',')
        .map((part) => part.trim())
        .filter(Boolean);
      if (proxies.length === 0 || proxies.some((part) => !/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/.test(part))) {
        context.addIssue({
          code: 'custom',
          message: 'must be true, false, a hop count, or a comma-separated list of proxy IPs/CIDRs',
        });
      }
      return proxies;
    })
    .default(false),
  BODY_LIMIT_BYTES: integerVar(1024, 16 * 1024 * 1024).default(512 * 1024),
  SHUTDOWN_TIMEOUT_MS: integerVar(1000, 120_000).default(10_000),
  HEALTH_TIMEOUT_MS: integerVar(50, 30_000).default(1000),
  REDIS_URL: redisUrlVar.optional(),
  REDIS_CLUSTER_NODES: redisNodesVar.optional(),
  REDIS_TLS: booleanVar.optional(),
  REDIS_TLS_REJECT_UNAUTHORIZED: booleanVar.optional(),
  REDIS_COMMAND_TIMEOUT_MS: integerVar(10, 60_000).default(2000),
  MONGODB_URL: mongoUrlVar.optional(),
  MONGODB_DB: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9_-]{1,63}$/, 'must be 1-63 characters of A-Z a-z 0-9 _ -')
    .optional(),
  MONGODB_EMBEDDED: booleanVar.default(true),
  // Read by @austa/mongo-client's fromEnv; checked here too so that every problem is reported at once.
  MONGODB_MAX_POOL_SIZE: integerVar(1, 10_000).optional(),
  MONGODB_MIN_POOL_SIZE: integerVar(0, 10_000).optional(),
  MONGODB_SERVER_SELECTION_TIMEOUT_MS: integerVar(1, 600_000).optional(),
  MONGODB_CONNECT_TIMEOUT_MS: integerVar(1, 600_000).optional(),
  MONGODB_SOCKET_TIMEOUT_MS: integerVar(0, 600_000).optional(),
  MONGODB_WAIT_QUEUE_TIMEOUT_MS: integerVar(1, 600_000).optional(),
  MONGODB_READ_PREFERENCE: z
    .enum(
      ['primary', 'primaryPreferred', 'secondary', 'secondaryPreferred', 'nearest'],
      'must be primary, primaryPreferred, secondary, secondaryPreferred or nearest',
    )
    .optional(),
  MONGODB_WRITE_CONCERN: z
    .string()
    .trim()
    .regex(/^(majority|\d+)$/, 'must be majority or a number of members')
    .optional(),
  MONGODB_TLS: booleanVar.optional(),
  MONGODB_TLS_ALLOW_INVALID_CERTIFICATES: booleanVar.optional(),
  SESSION_SECRET: z.string().min(32, 'must be at least 32 characters (openssl rand -base64 48)').optional(),
  DATA_ENCRYPTION_KEYS: encryptionKeysVar.optional(),
  DATA_ENCRYPTION_KEY_ID: z
    .string()
    .trim()
    .regex(KEY_ID, 'must be 1-32 characters A-Z a-z 0-9 . _ -')
    .optional(),
  SESSION_IDLE_TIMEOUT_SECONDS: integerVar(60, 7 * 24 * 3600).default(30 * 60),
  SESSION_ABSOLUTE_TIMEOUT_SECONDS: integerVar(60, 90 * 24 * 3600).default(12 * 3600),
  SESSION_MAX_PER_USER: integerVar(1, 1000).default(10),
  RATE_LIMIT_IP_PER_MINUTE: integerVar(1, 100_000_000).default(600),
  RATE_LIMIT_ASSISTANT_PER_MINUTE: integerVar(1, 1_000_000).default(20),
  CONVERSATION_TTL_SECONDS: integerVar(60, 365 * 24 * 3600).default(7 * 24 * 3600),
  CONVERSATION_MAX_MESSAGES: integerVar(4, 10_000).default(100),
  PROFILE_CACHE_TTL_SECONDS: integerVar(1, 24 * 3600).default(300),
});

/**
 * The DEMO login (any username, the password `demo`, any role clinicians included) never runs in production: not
 * by default, not when passed explicitly. There is no opt-in; a demo deployment runs with NODE_ENV=development.
 */
export function demoLoginProblem(): ConfigProblem {
  return {
    variable: 'NODE_ENV',
    message:
      'NODE_ENV=production refuses the DEMO login (any username with the password "demo", clinicians included). ' +
      'dist/main.js has no other user lookup: plug in your identity provider with buildApp({ users }) or ' +
      'startService(config, logger, { users }) from your own entry point; to run the demo, use NODE_ENV=development',
  };
}

export interface LoadConfigOptions {
  /**
   * The entry point will log users in with the DEMO lookup (dist/main.js does). In production that is a
   * configuration problem, reported with the others.
   */
  demoLogin?: boolean;
}

/** A package's fromEnv error names its variable first ("REDIS_TLS_CA_FILE (…) cannot be read"): report it under that name. */
function problemFrom(error: unknown, fallback: string): ConfigProblem {
  const message = error instanceof Error ? error.message : String(error);
  const named = /^([A-Z][A-Z0-9_]+)\b/.exec(message)?.[1];
  return named?.includes('_')
    ? { variable: named, message: message.slice(named.length).replace(/^[\s:]+/, '') }
    : { variable: fallback, message };
}

function isSecret(variable: string): boolean {
  return (SECRET_VARIABLES as readonly string[]).includes(variable);
}

/** `<NAME>_FILE` wins only when `<NAME>` is unset; both set is a mistake worth stopping for. */
function resolveSecretFiles(
  env: Env,
  readFile: (path: string) => string,
  problems: ConfigProblem[],
): { env: Env; sources: Record<string, SecretSource> } {
  const resolved: Env = { ...env };
  const sources: Record<string, SecretSource> = {};
  for (const name of SECRET_VARIABLES) {
    const direct = env[name];
    const file = env[`${name}_FILE`];
    if (direct !== undefined && direct !== '' && file !== undefined && file !== '') {
      problems.push({ variable: name, message: `both ${name} and ${name}_FILE are set; keep one` });
      continue;
    }
    if (file !== undefined && file !== '') {
      try {
        resolved[name] = readFile(file).replace(/\r?\n$/, '');
        sources[name] = 'file';
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
        problems.push({ variable: `${name}_FILE`, message: `cannot read ${file} (${reason})` });
      }
    } else if (direct !== undefined && direct !== '') {
      sources[name] = 'env';
    }
  }
  return { env: resolved, sources };
}

/** Empty strings mean "unset": compose files and shells often export `VAR=` for an optional setting. */
function withoutEmpty(env: Env): Env {
  const result: Env = {};
  for (const [name, value] of Object.entries(env))
    if (value !== undefined && value !== '') result[name] = value;
  return result;
}

/**
 * Reads and checks the whole configuration. Throws one `ConfigError` naming every bad or missing variable; nothing
 * connects or starts here.
 */
export function loadConfig(
  rawEnv: Env = process.env,
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
  options: LoadConfigOptions = {},
): Config {
  const problems: ConfigProblem[] = [];
  const { env, sources } = resolveSecretFiles(withoutEmpty(rawEnv), readFile, problems);
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const variable = String(issue.path[0] ?? 'environment');
      const raw = env[variable];
      // URLs and node lists may carry `user:password@`: quoted only with the userinfo masked.
      const quoted =
        raw !== undefined && !isSecret(variable) ? ` (got ${JSON.stringify(maskCredentials(raw))})` : '';
      problems.push({ variable, message: `${issue.message}${quoted}` });
    }
  }
  // Presence rules read the raw variables, so they are reported together with the format problems above.
  const production = env.NODE_ENV === 'production';
  const hasRedis = env.REDIS_URL !== undefined || env.REDIS_CLUSTER_NODES !== undefined;
  if (env.REDIS_URL !== undefined && env.REDIS_CLUSTER_NODES !== undefined) {
    problems.push({
      variable: 'REDIS_URL',
      message:
        'both REDIS_URL and REDIS_CLUSTER_NODES are set; set REDIS_URL for a standalone server or REDIS_CLUSTER_NODES for a cluster',
    });
  }
  if (production) {
    if (options.demoLogin === true) problems.push(demoLoginProblem());
    if (!hasRedis) {
      problems.push({
        variable: 'REDIS_URL',
        message:
          'NODE_ENV=production needs REDIS_URL or REDIS_CLUSTER_NODES: the embedded redis-server is for development only',
      });
    }
    if (env.MONGODB_URL === undefined && !rawEnv.MONGODB_URL_FILE) {
      problems.push({
        variable: 'MONGODB_URL',
        message:
          'NODE_ENV=production needs MONGODB_URL (or MONGODB_URL_FILE): the embedded MongoDB is for development only',
      });
    }
    if (env.SESSION_SECRET === undefined && !rawEnv.SESSION_SECRET_FILE) {
      problems.push({
        variable: 'SESSION_SECRET',
        message: 'NODE_ENV=production needs SESSION_SECRET or SESSION_SECRET_FILE (at least 32 characters)',
      });
    }
    if (env.DATA_ENCRYPTION_KEYS === undefined && !rawEnv.DATA_ENCRYPTION_KEYS_FILE) {
      problems.push({
        variable: 'DATA_ENCRYPTION_KEYS',
        message:
          'NODE_ENV=production needs DATA_ENCRYPTION_KEYS or DATA_ENCRYPTION_KEYS_FILE (id:base64 of 32 bytes): patient data is encrypted at rest',
      });
    }
  }
  if (!parsed.success) throw new ConfigError(problems);
  const values = parsed.data;
  if (values.SESSION_ABSOLUTE_TIMEOUT_SECONDS < values.SESSION_IDLE_TIMEOUT_SECONDS) {
    problems.push({
      variable: 'SESSION_ABSOLUTE_TIMEOUT_SECONDS',
      message: `must be at least SESSION_IDLE_TIMEOUT_SECONDS (${values.SESSION_IDLE_TIMEOUT_SECONDS}): the absolute limit is the outer one`,
    });
  }

  let encryption: Config['encryption'];
  if (values.DATA_ENCRYPTION_KEYS !== undefined) {
    const ids = Object.keys(values.DATA_ENCRYPTION_KEYS);
    const currentKeyId = values.DATA_ENCRYPTION_KEY_ID ?? (ids.length === 1 ? ids[0] : undefined);
    if (currentKeyId === undefined) {
      problems.push({
        variable: 'DATA_ENCRYPTION_KEY_ID',
        message: `DATA_ENCRYPTION_KEYS lists ${ids.length} keys: name the one to encrypt with (${ids.join(', ')})`,
      });
    } else if (!ids.includes(currentKeyId)) {
      problems.push({
        variable: 'DATA_ENCRYPTION_KEY_ID',
        message: `"${currentKeyId}" is not one of the ids in DATA_ENCRYPTION_KEYS (${ids.join(', ')})`,
      });
    }
    encryption = {
      currentKeyId: currentKeyId ?? '',
      keys: values.DATA_ENCRYPTION_KEYS,
      source: sources.DATA_ENCRYPTION_KEYS ?? 'env',
    };
  } else {
    if (values.DATA_ENCRYPTION_KEY_ID !== undefined) {
      problems.push({
        variable: 'DATA_ENCRYPTION_KEY_ID',
        message: 'is set but DATA_ENCRYPTION_KEYS is not',
      });
    }
    encryption = { currentKeyId: 'dev', keys: { dev: randomBytes(32) }, source: 'generated' };
  }

  let redis: Config['redis'] = { mode: 'embedded' };
  if (hasRedis && problems.length === 0) {
    try {
      // fromEnv reads the same variables @austa/redis-cluster documents (TLS, CA file, ACL user), so the service
      // accepts exactly what the package accepts.
      redis = { mode: 'external', options: fromEnv(env) };
    } catch (error) {
      problems.push(problemFrom(error, 'REDIS_URL'));
    }
  }

  // The database: MONGODB_DB, else the one the URL names, else `care`.
  let database = values.MONGODB_DB ?? 'care';
  let mongoOptions: CreateMongoClientOptions | undefined;
  if (values.MONGODB_URL !== undefined && problems.length === 0) {
    try {
      // fromEnv reads every variable @austa/mongo-client documents (pool, timeouts, TLS, read preference).
      mongoOptions = mongoFromEnv(env);
      const path = new URL(values.MONGODB_URL.replace(/^mongodb(\+srv)?:/, 'http:')).pathname.slice(1);
      database = values.MONGODB_DB ?? (path !== '' ? decodeURIComponent(path) : 'care');
      mongoOptions.dbName = database;
    } catch (error) {
      problems.push(problemFrom(error, 'MONGODB_URL'));
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);

  return {
    nodeEnv: values.NODE_ENV,
    production,
    // Containers need every interface; a developer's laptop should not expose the service to the network.
    host: values.HOST ?? (production ? '0.0.0.0' : '127.0.0.1'),
    port: values.PORT,
    logLevel: values.LOG_LEVEL,
    logErrorMessages: values.LOG_ERROR_MESSAGES,
    trustProxy: values.TRUST_PROXY,
    bodyLimitBytes: values.BODY_LIMIT_BYTES,
    shutdownTimeoutMs: values.SHUTDOWN_TIMEOUT_MS,
    healthTimeoutMs: values.HEALTH_TIMEOUT_MS,
    redis,
    redisCommandTimeoutMs: values.REDIS_COMMAND_TIMEOUT_MS,
    mongo:
      mongoOptions !== undefined
        ? { mode: 'external', options: mongoOptions, database }
        : values.MONGODB_EMBEDDED
          ? { mode: 'embedded', database }
          : { mode: 'disabled', database },
    sessionSecret:
      values.SESSION_SECRET !== undefined
        ? { value: values.SESSION_SECRET, source: sources.SESSION_SECRET ?? 'env' }
        : { value: randomBytes(48).toString('base64url'), source: 'generated' },
    encryption,
    sessions: {
      idleTimeoutSeconds: values.SESSION_IDLE_TIMEOUT_SECONDS,
      absoluteTimeoutSeconds: values.SESSION_ABSOLUTE_TIMEOUT_SECONDS,
      maxPerUser: values.SESSION_MAX_PER_USER,
    },
    rateLimits: {
      ipPerMinute: values.RATE_LIMIT_IP_PER_MINUTE,
      assistantPerMinute: values.RATE_LIMIT_ASSISTANT_PER_MINUTE,
    },
    conversations: {
      ttlSeconds: values.CONVERSATION_TTL_SECONDS,
      maxMessages: values.CONVERSATION_MAX_MESSAGES,
    },
    profileCacheTtlSeconds: values.PROFILE_CACHE_TTL_SECONDS,
  };
}
