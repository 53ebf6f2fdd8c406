import { existsSync } from 'node:fs';
import type { Metrics } from '@austa/metrics';
import type { MongoClient, MongoClientOptions, ReadPreferenceMode } from 'mongodb';
import { MongoConfigError } from './errors.js';
import type { CollectionLabels } from './instruments.js';
import type { Logger } from './logger.js';
import type { SanitizeFilterOptions } from './sanitize.js';
import type { ResumeTokenStore } from './token-store.js';
import { assertDatabaseName, unknownKeys } from './validation.js';

/** TLS settings, when the URL does not carry them (`tls=true&tlsCAFile=…`). */
export interface MongoTlsOptions {
  /** PEM file of the certificate authority that signed the server certificates (private CAs). */
  caFile?: string;
  /** PEM file holding this client's certificate and key, for x.509 authentication. */
  certificateKeyFile?: string;
  /** Password of `certificateKeyFile`, when the key is encrypted. */
  certificateKeyFilePassword?: string;
  /** Accept any server certificate. Only for local testing: it allows a man in the middle. */
  allowInvalidCertificates?: boolean;
  /** Skip the host name check of the server certificate. Only for local testing. */
  allowInvalidHostnames?: boolean;
}

/** Write concern, when the URL does not carry one (`w=majority&journal=true`). */
export interface MongoWriteConcernOptions {
  /** Acknowledgements required: `'majority'` (default), a number of members, or a tag set name. */
  w?: number | 'majority' | string;
  /** Wait for the write to reach the on-disk journal. */
  journal?: boolean;
  /** How long the server waits for the acknowledgements before reporting a write concern error, in milliseconds. */
  wtimeoutMs?: number;
}

/** Options of {@link createMongoClient}. Give `url` (and connection options) or `client`, not both. */
export interface CreateMongoClientOptions {
  /**
   * `mongodb://` or `mongodb+srv://` connection string. Options in its query (`maxPoolSize`, `readPreference`, `w`,
   * `tls`…) win over this package's defaults; the named options below win over both.
   */
  url?: string;
  /**
   * A `MongoClient` you built. It is used as is, and `close()` never closes it. With `metrics`, it must have been
   * built with `monitorCommands: true`, because command metrics come from its command events.
   */
  client?: MongoClient;
  /** Database used by `db()`, `collection()` and the change-stream helpers when none is named. Default: the URL's database, else `test` (the driver's default). */
  dbName?: string;
  /**
   * Name of this client: the `client` label of pool metrics and the `appName` (`austa:<name>`) the server logs and
   * shows in `currentOp`. A short fixed word, never a user or tenant id. Default `default`.
   */
  name?: string;
  /** Metrics from `@austa/metrics`. Without it the client records nothing, and command monitoring stays off. */
  metrics?: Metrics;
  /** Where change-stream restarts, handler failures and fatal errors are reported. Default: `console`. */
  logger?: Logger;
  /** Which collection names may appear in metric labels. Default `true` (all). See {@link CollectionLabels}. */
  collectionLabels?: CollectionLabels;
  /**
   * Where change streams keep their resume tokens unless a stream names its own store. Default: one in-memory store
   * per client, so a stream created again under the same name resumes, but a new process starts from now.
   */
  tokenStore?: ResumeTokenStore;
  /**
   * Apply `sanitizeFilter` to the filter argument of `find`, `findOne`, `countDocuments`, `distinct`, `update*`,
   * `replaceOne`, `delete*` and `findOneAnd*` on collections from `collection()`. `true` accepts no operators at all;
   * pass `{ allowOperators: [...] }` to accept the ones your code writes. Default `false`.
   */
  sanitizeFilters?: boolean | SanitizeFilterOptions;
  /** Most connections per server. Default 100 (the driver's). */
  maxPoolSize?: number;
  /** Connections kept open per server even when idle. Default 0. */
  minPoolSize?: number;
  /** Close connections idle for longer than this, in milliseconds; 0 keeps them. Default 0. */
  maxIdleTimeMs?: number;
  /** Longest wait for a free pooled connection, in milliseconds. Default 10000. */
  waitQueueTimeoutMs?: number;
  /** Time allowed to open a connection (TCP, TLS, handshake), in milliseconds. Default 10000. */
  connectTimeoutMs?: number;
  /** Time a socket may stay silent during an operation, in milliseconds; 0 means no limit. Default 0. */
  socketTimeoutMs?: number;
  /** Longest wait for a suitable server (a primary for writes), in milliseconds. Default 15000. */
  serverSelectionTimeoutMs?: number;
  /** `true` for TLS with the system CAs, or TLS settings. Default: whatever the URL says (off for `mongodb://`). */
  tls?: boolean | MongoTlsOptions;
  /** Where reads go. Default `primary`. */
  readPreference?: ReadPreferenceMode;
  /** Write acknowledgement. Default `{ w: 'majority' }`. */
  writeConcern?: MongoWriteConcernOptions;
  /** Retry a write once after a failover or network error (needs a replica set). Default `true`. */
  retryWrites?: boolean;
  /** Retry a read once after a failover or network error. Default `true`. */
  retryReads?: boolean;
  /** Raw driver options, applied last. Prefer the named options above. */
  driverOptions?: MongoClientOptions;
}

/** Defaults, exported so the README, the benchmark and the tests cite the numbers the code uses. */
export const DEFAULTS = Object.freeze({
  name: 'default',
  maxPoolSize: 100,
  minPoolSize: 0,
  maxIdleTimeMs: 0,
  waitQueueTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  socketTimeoutMs: 0,
  serverSelectionTimeoutMs: 15_000,
  readPreference: 'primary' as ReadPreferenceMode,
  writeConcern: Object.freeze({ w: 'majority' as const }),
  retryWrites: true,
  retryReads: true,
});

const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
const READ_PREFERENCES = new Set([
  'primary',
  'primaryPreferred',
  'secondary',
  'secondaryPreferred',
  'nearest',
]);
const CONNECTION_OPTION_KEYS = [
  'url',
  'maxPoolSize',
  'minPoolSize',
  'maxIdleTimeMs',
  'waitQueueTimeoutMs',
  'connectTimeoutMs',
  'socketTimeoutMs',
  'serverSelectionTimeoutMs',
  'tls',
  'readPreference',
  'writeConcern',
  'retryWrites',
  'retryReads',
  'driverOptions',
] as const;

/** Hides the password of a connection string in messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/?#]*)@/, '//***@');
}

/**
 * Throws `E_INVALID_CONFIG` unless `url` looks like a MongoDB connection string. The message shows at most the
 * scheme: a malformed string can hold its password anywhere (`mongodb:/ada:pw@host`), where no redaction finds it.
 */
function assertUrl(url: string): void {
  if (!/^mongodb(\+srv)?:\/\/[^/?#]+/.test(url)) {
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]{0,15}):/.exec(url)?.[1];
    throw new MongoConfigError(
      `url must be a mongodb:// or mongodb+srv:// connection string with a host (got ${scheme === undefined ? 'a string without a scheme' : `one starting with "${scheme}:"`}; the rest is not shown, as it may hold a password).`,
    );
  }
}

function nonNegativeInteger(value: unknown, field: string, allowZero: boolean): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new MongoConfigError(
      `${field} must be a ${allowZero ? 'non-negative' : 'positive'} integer (got ${String(value)}).`,
    );
  }
  return value;
}

/** Keys of the URL's query string, lower-cased as the driver reads them. */
function queryKeys(url: string): Set<string> {
  const start = url.indexOf('?');
  const keys = new Set<string>();
  if (start < 0) return keys;
  for (const pair of url.slice(start + 1).split('&')) {
    const key = pair.split('=')[0];
    if (key) keys.add(decodeURIComponent(key).toLowerCase());
  }
  return keys;
}

/** The client name after validation. */
export function resolveName(name: unknown): string {
  const resolved = name ?? DEFAULTS.name;
  if (typeof resolved !== 'string' || !NAME_PATTERN.test(resolved)) {
    throw new MongoConfigError(
      `Client name ${JSON.stringify(resolved)} must be 1-32 characters of a-z, 0-9, "_" or "-", starting with a letter.`,
    );
  }
  return resolved;
}

export interface ResolvedConnection {
  url: string;
  driverOptions: MongoClientOptions;
}

/**
 * Turns the public options into a connection string and driver options, failing early on anything that cannot
 * work. Our defaults apply only where neither the options nor the URL set a value.
 */
export function resolveConnection(
  options: CreateMongoClientOptions,
  name: string,
  monitorCommands: boolean,
): ResolvedConnection {
  const url = options.url;
  if (typeof url !== 'string' || url.trim() === '') {
    throw new MongoConfigError(
      'createMongoClient needs { url: "mongodb://host:27017/db" } (or { client }); fromEnv() reads MONGODB_URL.',
    );
  }
  assertUrl(url);
  const inUrl = queryKeys(url);
  const driver: MongoClientOptions = {};
  const setDefault = <K extends keyof MongoClientOptions>(
    key: K,
    urlKey: string,
    value: MongoClientOptions[K],
  ) => {
    if (!inUrl.has(urlKey.toLowerCase())) driver[key] = value;
  };
  const setNumber = (
    key:
      | 'maxPoolSize'
      | 'minPoolSize'
      | 'maxIdleTimeMS'
      | 'waitQueueTimeoutMS'
      | 'connectTimeoutMS'
      | 'socketTimeoutMS'
      | 'serverSelectionTimeoutMS',
    value: number | undefined,
    fallback: number,
    field: string,
    allowZero: boolean,
  ) => {
    if (value !== undefined) driver[key] = nonNegativeInteger(value, field, allowZero);
    else setDefault(key, key, fallback);
  };
  setNumber('maxPoolSize', options.maxPoolSize, DEFAULTS.maxPoolSize, 'maxPoolSize', false);
  setNumber('minPoolSize', options.minPoolSize, DEFAULTS.minPoolSize, 'minPoolSize', true);
  setNumber('maxIdleTimeMS', options.maxIdleTimeMs, DEFAULTS.maxIdleTimeMs, 'maxIdleTimeMs', true);
  setNumber(
    'waitQueueTimeoutMS',
    options.waitQueueTimeoutMs,
    DEFAULTS.waitQueueTimeoutMs,
    'waitQueueTimeoutMs',
    true,
  );
  setNumber(
    'connectTimeoutMS',
    options.connectTimeoutMs,
    DEFAULTS.connectTimeoutMs,
    'connectTimeoutMs',
    false,
  );
  setNumber('socketTimeoutMS', options.socketTimeoutMs, DEFAULTS.socketTimeoutMs, 'socketTimeoutMs', true);
  setNumber(
    'serverSelectionTimeoutMS',
    options.serverSelectionTimeoutMs,
    DEFAULTS.serverSelectionTimeoutMs,
    'serverSelectionTimeoutMs',
    false,
  );
  const minPool = driver.minPoolSize ?? 0;
  const maxPool = driver.maxPoolSize ?? DEFAULTS.maxPoolSize;
  if (minPool > maxPool && maxPool !== 0) {
    throw new MongoConfigError(`minPoolSize (${minPool}) must not exceed maxPoolSize (${maxPool}).`);
  }

  if (options.readPreference !== undefined) {
    if (!READ_PREFERENCES.has(options.readPreference)) {
      throw new MongoConfigError(
        `readPreference must be one of ${[...READ_PREFERENCES].join(', ')} (got ${String(options.readPreference)}).`,
      );
    }
    driver.readPreference = options.readPreference;
  } else {
    setDefault('readPreference', 'readPreference', DEFAULTS.readPreference);
  }

  if (options.writeConcern !== undefined) {
    const { w, journal, wtimeoutMs } = options.writeConcern;
    if (w !== undefined && w !== 'majority' && typeof w !== 'string' && !(Number.isInteger(w) && w >= 0)) {
      throw new MongoConfigError(
        `writeConcern.w must be "majority", a tag name or a non-negative integer (got ${String(w)}).`,
      );
    }
    driver.writeConcern = {
      ...(w === undefined ? {} : { w: w as number | 'majority' }),
      ...(journal === undefined ? {} : { journal }),
      ...(wtimeoutMs === undefined
        ? {}
        : { wtimeoutMS: nonNegativeInteger(wtimeoutMs, 'writeConcern.wtimeoutMs', true) }),
    };
  } else if (!inUrl.has('w') && !inUrl.has('journal') && !inUrl.has('wtimeoutms')) {
    driver.writeConcern = { ...DEFAULTS.writeConcern };
  }

  if (options.retryWrites !== undefined) driver.retryWrites = options.retryWrites;
  if (options.retryReads !== undefined) driver.retryReads = options.retryReads;

  const tls = options.tls;
  if (tls !== undefined && typeof tls !== 'boolean' && (typeof tls !== 'object' || tls === null)) {
    throw new MongoConfigError('tls must be true, false or { caFile, certificateKeyFile, … }.');
  }
  if (tls === true) driver.tls = true;
  else if (tls === false) driver.tls = false;
  else if (tls !== undefined) {
    driver.tls = true;
    for (const [field, file] of [
      ['tls.caFile', tls.caFile],
      ['tls.certificateKeyFile', tls.certificateKeyFile],
    ] as const) {
      if (file !== undefined && !existsSync(file)) {
        throw new MongoConfigError(`${field} (${file}) does not exist.`);
      }
    }
    if (tls.caFile !== undefined) driver.tlsCAFile = tls.caFile;
    if (tls.certificateKeyFile !== undefined) driver.tlsCertificateKeyFile = tls.certificateKeyFile;
    if (tls.certificateKeyFilePassword !== undefined) {
      driver.tlsCertificateKeyFilePassword = tls.certificateKeyFilePassword;
    }
    if (tls.allowInvalidCertificates !== undefined) {
      driver.tlsAllowInvalidCertificates = tls.allowInvalidCertificates;
    }
    if (tls.allowInvalidHostnames !== undefined) driver.tlsAllowInvalidHostnames = tls.allowInvalidHostnames;
  }

  setDefault('appName', 'appName', `austa:${name}`);
  Object.assign(driver, options.driverOptions);
  // Command metrics come from command events; the driver builds them only when asked to.
  if (monitorCommands) driver.monitorCommands = true;
  return { url, driverOptions: driver };
}

const OPTION_KEYS: ReadonlySet<string> = new Set([
  ...CONNECTION_OPTION_KEYS,
  'client',
  'dbName',
  'name',
  'metrics',
  'logger',
  'collectionLabels',
  'tokenStore',
  'sanitizeFilters',
] satisfies Array<keyof CreateMongoClientOptions>);

/**
 * Throws `E_INVALID_CONFIG` when both `client` and connection options are given, or neither, or when an option is
 * unknown (a driver spelling such as `serverSelectionTimeoutMS` would otherwise be silently ignored).
 */
export function assertClientOrUrl(options: CreateMongoClientOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new MongoConfigError('createMongoClient needs an options object: { url } or { client }.');
  }
  const unknown = unknownKeys(options, OPTION_KEYS);
  if (unknown.length > 0) {
    throw new MongoConfigError(
      `Unknown createMongoClient option ${unknown.join(', ')}. Raw driver options go in driverOptions.`,
    );
  }
  if (options.client === undefined) return;
  const extra = CONNECTION_OPTION_KEYS.filter((key) => options[key] !== undefined);
  if (extra.length > 0) {
    throw new MongoConfigError(
      `Pass either { client } or { url, ...connection options }, not both: ${extra.join(', ')} would be ignored with a client you built.`,
    );
  }
  const client = options.client as unknown as { db?: unknown; on?: unknown };
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof client.db !== 'function' ||
    typeof client.on !== 'function'
  ) {
    throw new MongoConfigError('client must be a MongoClient from the mongodb package.');
  }
}

type Env = Record<string, string | undefined>;

/**
 * `true`, `false` or `undefined` (unset or empty). Anything else is refused: a typo such as `MONGODB_TLS=ture` must
 * not silently send health data in clear text.
 */
function envFlag(env: Env, name: string): boolean | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new MongoConfigError(`${name} must be true or false (got "${raw.slice(0, 20)}").`);
}

function envInteger(env: Env, name: string): number | undefined {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw)))
    throw new MongoConfigError(`${name} must be a non-negative integer (got "${raw.slice(0, 20)}").`);
  return Number(raw);
}

/** Runs a check of the factory on one variable, so its error names the variable rather than the option. */
function checkEnv(name: string, check: () => void): void {
  try {
    check();
  } catch (cause) {
    throw new MongoConfigError(`${name}: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Reads connection options from the environment:
 * - `MONGODB_URL` (required): the connection string; its query options apply;
 * - `MONGODB_DB`: the default database;
 * - `MONGODB_MAX_POOL_SIZE`, `MONGODB_MIN_POOL_SIZE`, `MONGODB_SERVER_SELECTION_TIMEOUT_MS`,
 *   `MONGODB_CONNECT_TIMEOUT_MS`, `MONGODB_SOCKET_TIMEOUT_MS`, `MONGODB_WAIT_QUEUE_TIMEOUT_MS`;
 * - `MONGODB_READ_PREFERENCE`, `MONGODB_WRITE_CONCERN` (`majority` or a number);
 * - `MONGODB_TLS=true`, `MONGODB_TLS_CA_FILE`, `MONGODB_TLS_CERT_KEY_FILE`, `MONGODB_TLS_ALLOW_INVALID_CERTIFICATES=true`
 *   (local testing only).
 * `overrides` (metrics, logger, name…) are applied last.
 * @example const mongo = createMongoClient(fromEnv(process.env, { metrics }));
 */
export function fromEnv(
  env: Env = process.env,
  overrides: Partial<CreateMongoClientOptions> = {},
): CreateMongoClientOptions {
  const url = env.MONGODB_URL?.trim();
  if (!url) {
    throw new MongoConfigError(
      'Set MONGODB_URL, e.g. mongodb://127.0.0.1:27017/app?replicaSet=rs0 (change streams and transactions need a replica set).',
    );
  }
  checkEnv('MONGODB_URL', () => assertUrl(url));
  const options: CreateMongoClientOptions = { url };
  const dbName = env.MONGODB_DB?.trim();
  if (dbName) {
    checkEnv('MONGODB_DB', () => assertDatabaseName(dbName));
    options.dbName = dbName;
  }
  const numbers: Array<[keyof CreateMongoClientOptions, string]> = [
    ['maxPoolSize', 'MONGODB_MAX_POOL_SIZE'],
    ['minPoolSize', 'MONGODB_MIN_POOL_SIZE'],
    ['serverSelectionTimeoutMs', 'MONGODB_SERVER_SELECTION_TIMEOUT_MS'],
    ['connectTimeoutMs', 'MONGODB_CONNECT_TIMEOUT_MS'],
    ['socketTimeoutMs', 'MONGODB_SOCKET_TIMEOUT_MS'],
    ['waitQueueTimeoutMs', 'MONGODB_WAIT_QUEUE_TIMEOUT_MS'],
  ];
  for (const [key, name] of numbers) {
    const value = envInteger(env, name);
    if (value !== undefined) (options as Record<string, unknown>)[key] = value;
  }
  const readPreference = env.MONGODB_READ_PREFERENCE?.trim();
  if (readPreference) {
    if (!READ_PREFERENCES.has(readPreference)) {
      throw new MongoConfigError(
        `MONGODB_READ_PREFERENCE must be one of ${[...READ_PREFERENCES].join(', ')} (got "${readPreference.slice(0, 20)}").`,
      );
    }
    options.readPreference = readPreference as ReadPreferenceMode;
  }
  const writeConcern = env.MONGODB_WRITE_CONCERN?.trim();
  if (writeConcern) {
    options.writeConcern = { w: /^\d+$/.test(writeConcern) ? Number(writeConcern) : writeConcern };
  }
  const caFile = env.MONGODB_TLS_CA_FILE?.trim();
  const certificateKeyFile = env.MONGODB_TLS_CERT_KEY_FILE?.trim();
  const allowInvalid = envFlag(env, 'MONGODB_TLS_ALLOW_INVALID_CERTIFICATES') === true;
  const tlsFlag = envFlag(env, 'MONGODB_TLS');
  if (tlsFlag === false) {
    if (caFile || certificateKeyFile || allowInvalid) {
      throw new MongoConfigError(
        'MONGODB_TLS=false contradicts the MONGODB_TLS_* settings also set; remove one or the other.',
      );
    }
    // Left to the URL: mongodb+srv:// and ?tls=true mean TLS, and a flag left at false must never undo that.
  } else if (tlsFlag === true || caFile || certificateKeyFile || allowInvalid) {
    const tls: MongoTlsOptions = {};
    if (caFile) tls.caFile = caFile;
    if (certificateKeyFile) tls.certificateKeyFile = certificateKeyFile;
    if (allowInvalid) tls.allowInvalidCertificates = true;
    options.tls = tls;
  }
  return { ...options, ...overrides };
}
