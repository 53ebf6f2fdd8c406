import { randomUUID } from 'node:crypto';
import type { Metrics } from '@austa/metrics';
import type { ManagedChangeStream } from '@austa/mongo-client';
import type { RedisClient } from '@austa/redis-cluster';
import ajvCompiler from '@fastify/ajv-compiler';
import swagger from '@fastify/swagger';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { type AssistantResponder, createEchoResponder } from './assistant/responder.js';
import { cookieSettings, prefetchSessions, sessionGuard } from './auth/session.js';
import { createDemoUserLookup, DEMO_LOOKUP_NAME, type UserLookup } from './auth/users.js';
import { type Config, ConfigError, demoLoginProblem } from './config.js';
import { HttpError, handleClientError, installErrorHandling, sendFrameworkError } from './http-errors.js';
import { registerHttpMetrics } from './http-metrics.js';
import { createLogger } from './logger.js';
import type { MongoDependency } from './mongo.js';
import { startProfileSync } from './profile-sync.js';
import { assistantRateLimit, clientKeys, installIpRateLimit } from './rate-limits.js';
import { authRoutes } from './routes/auth.js';
import { conversationRoutes } from './routes/conversations.js';
import { opsRoutes } from './routes/ops.js';
import { patientRoutes } from './routes/patients.js';
import { createStores, type Stores } from './stores.js';

export const SERVICE_VERSION = '0.0.0';

/** A route as registered: the catalog lets tests check that every route validates its input and is documented. */
export interface RouteEntry {
  method: string;
  url: string;
  schema: Record<string, unknown> | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    routeCatalog: readonly RouteEntry[];
    /** The stores the app built on the shared Redis client (tests and operators' scripts reach them here). */
    stores: Stores;
    /** The change stream that invalidates cached profiles; undefined without MongoDB. */
    profileSync: ManagedChangeStream | undefined;
  }
}

export interface AppOptions {
  config: Config;
  /** The process's one registry; `createServiceMetrics()` gives it the `service="care-api"` label. */
  metrics: Metrics;
  /** Used, never closed, by the app: whoever created it closes it after `app.close()`. */
  redis: RedisClient;
  mongo: MongoDependency;
  /** A pino logger; without one, nothing is logged (tests). */
  logger?: Logger;
  /**
   * Who may log in. Default: the DEMO lookup (any username, password `demo`), never for real patients. Required with
   * NODE_ENV=production: the demo lookup, default or passed, is refused there with a `ConfigError`.
   */
  users?: UserLookup;
  /** Where the assistant's replies come from. Default: the deterministic echo responder (no external AI). */
  responder?: AssistantResponder;
  /** Change-stream poll interval, in ms (tests shorten it). Default: the server's. */
  changeStreamMaxAwaitTimeMs?: number;
}

type ValidatorFactory = (
  externalSchemas: unknown,
  options: { customOptions?: Record<string, unknown> } & Record<string, unknown>,
) => (route: { schema: unknown; httpPart?: string }) => unknown;

/** Fastify's own validator factory, pinned to the version fastify depends on, so one ajv is installed. */
const fastifyAjvCompiler = ajvCompiler as unknown as () => ValidatorFactory;

/** The parts of a request that arrive as text: their numbers and booleans are coerced from strings. */
const COERCED_PARTS = new Set(['querystring', 'params', 'headers']);

/**
 * Two ajv instances: coercion for the URL and headers (`?limit=5` is the string "5"), none for JSON bodies, where
 * `{"content":12345}`, `["x"]` or `true` for a string is the client's mistake and must be refused, not stored.
 */
const buildValidator: ValidatorFactory = (externalSchemas, options) => {
  const compilerOf = (coerceTypes: false | 'array') =>
    fastifyAjvCompiler()(externalSchemas, {
      ...options,
      customOptions: { ...options.customOptions, coerceTypes },
    });
  const strict = compilerOf(false);
  const coercing = compilerOf('array');
  return (route) => (COERCED_PARTS.has(route.httpPart ?? '') ? coercing : strict)(route);
};

/** `application/json` bodies are read as UTF-8: any other declared charset is refused rather than misread. */
function jsonCharsetProblem(contentType: string | undefined): boolean {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType ?? '')?.[1]?.toLowerCase();
  return charset !== undefined && charset !== 'utf-8' && charset !== 'utf8';
}

/** Longest chat message a user may send, in characters: far below the store's 256 KiB per message. */
const MAX_MESSAGE_CHARS = 16_000;

/** A hop count trusts that many proxies nearest the service, as proxy-addr does for a number. */
function trustProxy(
  setting: Config['trustProxy'],
): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof setting !== 'number') return setting;
  return (_address, hop) => hop < setting;
}

/**
 * Throws a `ConfigError` when production would log users in with the DEMO lookup (the default when `users` is not
 * given, or `createDemoUserLookup()` passed explicitly). There is deliberately no switch to allow it.
 */
export function assertUserLookupAllowed(
  config: Pick<Config, 'production'>,
  users: UserLookup | undefined,
): void {
  if (config.production && (users === undefined || users.name === DEMO_LOOKUP_NAME)) {
    throw new ConfigError([demoLoginProblem()]);
  }
}

/**
 * Builds the service: plugins, hooks and routes, nothing listening yet. `app.close()` stops what the app started
 * (stores' timers, change streams, subscribers) and leaves Redis and MongoDB to their owner.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config, metrics, redis, mongo } = options;
  assertUserLookupAllowed(config, options.users);
  const app: FastifyInstance = Fastify({
    loggerInstance: (options.logger ?? createLogger('silent')) as FastifyBaseLogger,
    // Our own ids: a client-chosen id header would let a caller forge log correlation.
    genReqId: () => randomUUID(),
    logController: new LogController({
      requestIdLogLabel: 'requestId',
      // Probes and scrapes every few seconds would drown the request log.
      disableRequestLogging: (request: { url?: string }) =>
        request.url === '/metrics' || request.url?.startsWith('/health/') === true,
    }),
    // A client that sends its request slower than this is cut off (slowloris); no real request needs longer.
    requestTimeout: 30_000,
    bodyLimit: config.bodyLimitBytes,
    trustProxy: trustProxy(config.trustProxy),
    // Requests that arrive on kept-alive connections during shutdown get our JSON 503 (below), not Fastify's.
    return503OnClosing: false,
    ajv: {
      customOptions: {
        // Unknown fields are refused, not silently dropped: a typo in a field name should be an error the client sees.
        removeAdditional: false,
        // Per part (buildValidator above): the URL and headers are coerced, JSON bodies never.
        coerceTypes: false,
        useDefaults: true,
        allErrors: true,
      },
    },
    schemaController: { compilersFactory: { buildValidator: buildValidator as never } },
    // A URL that does not decode, or a path segment over the router's limit: our JSON error, never the URL echoed.
    frameworkErrors: (error, request, reply) =>
      sendFrameworkError(error, request as FastifyRequest, reply as FastifyReply, config.bodyLimitBytes),
    // Malformed HTTP and oversized headers (431) never reach a route: answered with the same JSON error shape.
    clientErrorHandler: handleClientError,
  });

  // JSON only, in UTF-8: Fastify's text/plain parser is dropped, so any other media type is a 415.
  app.removeAllContentTypeParsers();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (jsonCharsetProblem(request.headers['content-type'])) {
      done(
        new HttpError(415, 'E_UNSUPPORTED_MEDIA_TYPE', 'Send the request body as application/json in UTF-8.'),
        undefined,
      );
      return;
    }
    parseJson(request, body as string, done);
  });

  const routes: RouteEntry[] = [];
  app.decorate('routeCatalog', routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD')
        routes.push({ method, url: route.url, schema: route.schema as RouteEntry['schema'] });
    }
  });

  installErrorHandling(app, {
    bodyLimitBytes: config.bodyLimitBytes,
    logErrorMessages: config.logErrorMessages,
  });
  registerHttpMetrics(app, metrics);

  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    if (closing) {
      reply.header('connection', 'close');
      done(new HttpError(503, 'E_SHUTTING_DOWN', 'The service is shutting down; retry the request.'));
      return;
    }
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    // Responses carry patient data: no shared cache may keep them.
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    done(null, payload);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'care-api',
        version: SERVICE_VERSION,
        description:
          'The @austa reference service: sessions, rate limits, AI-assistant conversations and cached patient profiles on Redis and MongoDB.',
      },
      tags: [
        {
          name: 'auth',
          description: 'Login (a DEMO login unless a user lookup is plugged in), sessions, devices.',
        },
        {
          name: 'conversations',
          description: 'Chat with the assistant; every conversation is checked against its owner.',
        },
        { name: 'patients', description: 'Patient profiles in MongoDB, read through the cache.' },
        { name: 'operations', description: 'Health, metrics and this document.' },
      ],
    },
  });

  const logger = app.log;
  const stores = createStores({
    config,
    redis,
    metrics,
    logger: { warn: (message) => logger.warn({ component: 'store' }, message) },
  });
  app.decorate('stores', stores);
  const profileStream = mongo.enabled
    ? startProfileSync({
        mongo: mongo.mongo,
        profiles: stores.profiles,
        redis: redis.client,
        ...(options.changeStreamMaxAwaitTimeMs !== undefined
          ? { maxAwaitTimeMs: options.changeStreamMaxAwaitTimeMs }
          : {}),
      })
    : undefined;
  app.decorate('profileSync', profileStream);
  // After in-flight requests have finished: the change stream first (its handler uses the cache), then the stores.
  app.addHook('onClose', async () => {
    await profileStream?.close();
    await stores.close();
  });

  const cookie = cookieSettings(config.production);
  const requireSession = sessionGuard(stores.sessions, cookie);
  // The per-IP limit first: a request it rejects (429) never reaches the session lookup, which would cost a Redis
  // round trip and touch the session. See prefetchSessions for why the two no longer overlap.
  installIpRateLimit(app, stores.ipLimiter, stores.ipLimit, clientKeys(config.sessionSecret.value));
  prefetchSessions(app, stores.sessions, cookie, requireSession);
  const users = options.users ?? createDemoUserLookup();
  if (users.name === 'demo') {
    logger.warn(
      'DEMO login active: any username logs in with the password "demo", as the patient of that id or (clinician*) as a clinician: made-up data only; NODE_ENV=production refuses it (plug in a UserLookup: buildApp({ users }))',
    );
  }

  await app.register(authRoutes, {
    sessions: stores.sessions,
    requireSession,
    users,
    cookie,
    absoluteTimeoutSeconds: config.sessions.absoluteTimeoutSeconds,
  });
  await app.register(conversationRoutes, {
    conversations: stores.conversations,
    responder: options.responder ?? createEchoResponder(),
    requireSession,
    limitAssistant: assistantRateLimit(stores.assistantLimiter, stores.assistantLimit),
    maxMessageChars: MAX_MESSAGE_CHARS,
  });
  await app.register(patientRoutes, { mongo, profiles: stores.profiles, requireSession });
  await app.register(opsRoutes, { metrics, redis, mongo, healthTimeoutMs: config.healthTimeoutMs });
  return app;
}
