import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { AustaMongoError } from '@austa/mongo-client';
import { AustaRedisError } from '@austa/redis-cluster';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** The JSON body of every error response: a stable `code` for programs, a `message` for people. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  code: string;
  message: string;
  requestId: string;
  /** With 429: the exact wait before the next request may pass, in milliseconds. */
  retryAfterMs?: number;
  /** Validation failures: where the input is wrong (never the value sent). */
  details?: Array<{ location: string; path: string; message: string }>;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};

export function reasonPhrase(statusCode: number): string {
  return REASONS[statusCode] ?? (statusCode >= 500 ? 'Internal Server Error' : 'Bad Request');
}

/** An error whose status, code and message are meant for the client. Anything else is answered with a generic 500. */
export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(
    statusCode: number,
    code: string,
    message: string,
    options: { headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'HttpError';
    this.statusCode = statusCode;
    this.code = code;
    this.headers = options.headers ?? {};
  }
}

/** A dependency (Redis, MongoDB) cannot serve this request now: 503, retry later. */
export class DependencyUnavailableError extends HttpError {
  readonly dependency: 'redis' | 'mongodb';

  constructor(dependency: 'redis' | 'mongodb', message?: string, options: { cause?: unknown } = {}) {
    super(
      503,
      dependency === 'redis' ? 'E_REDIS_UNAVAILABLE' : 'E_MONGODB_UNAVAILABLE',
      message ??
        (dependency === 'redis'
          ? 'The session and cache store is unavailable; retry in a few seconds.'
          : 'The patient database is unavailable; retry in a few seconds.'),
      { headers: { 'retry-after': '5' }, cause: options.cause },
    );
    this.name = 'DependencyUnavailableError';
    this.dependency = dependency;
  }
}

const REDIS_CLIENT_CODES = new Set(['E_REDIS_UNAVAILABLE', 'E_CLIENT_CLOSED', 'E_INCOMPLETE_SCAN']);
/** Codes the @austa stores give when Redis cannot answer (their own error classes, same meaning). */
const STORE_UNAVAILABLE_CODES = new Set(['E_REDIS_UNAVAILABLE']);
const REDIS_UNAVAILABLE_NAMES = new Set(['MaxRetriesPerRequestError', 'ClusterAllFailedError']);
const REDIS_UNAVAILABLE_MESSAGES = [
  'Command timed out',
  'Connection is closed',
  "Stream isn't writeable",
  'Failed to refresh slots cache',
  'None of startup nodes is available',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'MASTERDOWN',
  'LOADING',
];
const MONGO_UNAVAILABLE_NAMES = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MongoOperationTimeoutError',
  'MongoClientClosedError',
]);

/**
 * Which dependency an error says is down, looking through `cause` chains (stores wrap driver errors). Undefined for
 * anything else: a bug stays a 500 rather than hiding as "unavailable".
 */
export function unavailableDependency(error: unknown): 'redis' | 'mongodb' | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current instanceof DependencyUnavailableError) return current.dependency;
    if (AustaMongoError.isInstance(current) && current.code === 'E_CLIENT_CLOSED') return 'mongodb';
    if (AustaRedisError.isInstance(current) && REDIS_CLIENT_CODES.has(current.code)) return 'redis';
    const name = current.name;
    if (
      MONGO_UNAVAILABLE_NAMES.has(name) ||
      (name.startsWith('Mongo') && /timed out|closed/i.test(current.message))
    ) {
      return 'mongodb';
    }
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && STORE_UNAVAILABLE_CODES.has(code)) return 'redis';
    if (REDIS_UNAVAILABLE_NAMES.has(name)) return 'redis';
    if (
      REDIS_UNAVAILABLE_MESSAGES.some((text) => current instanceof Error && current.message.startsWith(text))
    ) {
      return 'redis';
    }
    current = current.cause;
  }
  return undefined;
}

export interface LoggedError {
  type: string;
  code?: string | number;
  message?: string;
  /** Stack frames without the first line, which repeats the message. */
  stack?: string;
  cause?: LoggedError;
}

/**
 * An error as it goes to the log. Messages are left out unless asked for: driver and store messages can quote
 * values (a duplicate-key error quotes the key, a parse error the payload), and in this service values are patient
 * data. Name, code and stack frames are enough to find the place; LOG_ERROR_MESSAGES=true adds the messages.
 */
export function loggedError(error: unknown, withMessages: boolean, depth = 0): LoggedError {
  if (!(error instanceof Error)) return { type: typeof error };
  const code = (error as { code?: unknown }).code;
  const entry: LoggedError = { type: error.name };
  if (typeof code === 'string' || typeof code === 'number') entry.code = code;
  if (withMessages) entry.message = error.message;
  const frames = error.stack?.split('\n').filter((line) => /^\s+at /.test(line));
  if (frames && frames.length > 0) entry.stack = frames.slice(0, 15).join('\n');
  if (error.cause !== undefined && depth < 3) entry.cause = loggedError(error.cause, withMessages, depth + 1);
  return entry;
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function validationDetails(error: FastifyError): ErrorBody['details'] {
  const location = (error as { validationContext?: string }).validationContext ?? 'request';
  return ((error.validation ?? []) as ValidationIssue[]).slice(0, 20).map((issue) => {
    // Ajv reports a missing or unknown property on the parent: name it, so the client knows which field.
    const property =
      (issue.params?.missingProperty as string | undefined) ??
      (issue.params?.additionalProperty as string | undefined);
    const path = `${issue.instancePath ?? ''}${property !== undefined ? `/${property}` : ''}` || '/';
    return { location, path, message: issue.message ?? 'is invalid' };
  });
}

/** Fastify's own 4xx errors, mapped to our codes and to messages that say what to fix and nothing internal. */
function frameworkClientError(
  error: FastifyError,
  bodyLimitBytes: number,
): { status: number; code: string; message: string } | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, code: 'E_INVALID_JSON', message: 'The request body is not valid JSON.' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return {
        status: 400,
        code: 'E_INVALID_JSON',
        message: 'The request body is empty; send a JSON object.',
      };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        code: 'E_BODY_TOO_LARGE',
        message: `The request body is larger than ${bodyLimitBytes} bytes.`,
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        code: 'E_UNSUPPORTED_MEDIA_TYPE',
        message: 'Send the request body as application/json.',
      };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return {
        status: 400,
        code: 'E_BAD_REQUEST',
        message: 'The Content-Length header does not match the body.',
      };
    case 'FST_ERR_BAD_URL':
      return { status: 400, code: 'E_BAD_URL', message: 'The request URL is malformed.' };
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return { status: 414, code: 'E_URL_TOO_LONG', message: 'A path segment of the URL is too long.' };
    default:
      break;
  }
  // JSON.parse errors raised by the parser come as SyntaxError with a 400 status in some Fastify versions.
  if (error instanceof SyntaxError && error.statusCode === 400) {
    return { status: 400, code: 'E_INVALID_JSON', message: 'The request body is not valid JSON.' };
  }
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return { status: error.statusCode, code: 'E_BAD_REQUEST', message: `${reasonPhrase(error.statusCode)}.` };
  }
  return undefined;
}

function send(
  reply: FastifyReply,
  request: FastifyRequest,
  status: number,
  code: string,
  message: string,
  extra: Partial<ErrorBody> = {},
): FastifyReply {
  const body: ErrorBody = {
    statusCode: status,
    error: reasonPhrase(status),
    code,
    message,
    requestId: request.id,
    ...extra,
  };
  return reply.code(status).type('application/json; charset=utf-8').send(body);
}

/**
 * Errors Fastify raises before a route is found (a URL that does not decode, a path parameter over the router's
 * limit): no hook runs for them, so the request id and no-store are set here, and the URL is never quoted.
 */
export function sendFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
  bodyLimitBytes: number,
): void {
  reply.header('x-request-id', request.id);
  reply.header('cache-control', 'no-store');
  const client = frameworkClientError(error, bodyLimitBytes);
  if (client !== undefined) {
    request.log.info({ code: error.code, statusCode: client.status }, client.message);
    send(reply, request, client.status, client.code, client.message);
    return;
  }
  request.log.error({ error: loggedError(error, false) }, 'request failed before routing');
  send(reply, request, 500, 'E_INTERNAL', 'The request failed on our side; it has been logged.');
}

/** Connection-level errors Node's HTTP parser raises: no request exists, so the response is written raw. */
const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: 'E_HEADERS_TOO_LARGE',
    message: 'The request headers are too large.',
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    code: 'E_REQUEST_TIMEOUT',
    message: 'The request was not received in time.',
  },
};

/**
 * Fastify's `clientErrorHandler`: malformed HTTP, oversized headers, a request sent too slowly. Answered with the
 * service's JSON error (a fresh request id, in the body and `x-request-id`, and no-store), then the connection is
 * closed, as Node does: after a parse error the connection's state is unknown.
 */
export function handleClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const known = error.code !== undefined ? CLIENT_ERRORS[error.code] : undefined;
  const { status, code, message } = known ?? {
    status: 400,
    code: 'E_BAD_REQUEST',
    message: 'The request is not valid HTTP.',
  };
  const requestId = randomUUID();
  const body = JSON.stringify({ statusCode: status, error: reasonPhrase(status), code, message, requestId });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n` +
        'content-type: application/json; charset=utf-8\r\n' +
        `content-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${requestId}\r\n` +
        'cache-control: no-store\r\n' +
        'connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy(error);
}

/**
 * Every error becomes a JSON body: validation and framework errors a 4xx naming what to fix, a dependency that is down
 * a 503, anything else a 500 saying only that it failed (the error itself goes to the log with the request id).
 */
export function installErrorHandling(
  app: FastifyInstance,
  options: { bodyLimitBytes: number; logErrorMessages: boolean },
): void {
  const logged = (error: unknown) => loggedError(error, options.logErrorMessages);
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) {
      return send(reply, request, 400, 'E_VALIDATION', 'The request is invalid: see details.', {
        details: validationDetails(error),
      });
    }
    if (error instanceof HttpError) {
      if (error.statusCode >= 500)
        request.log.warn({ error: logged(error.cause ?? error), code: error.code }, error.message);
      for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
      const retryAfterMs = (error as { retryAfterMs?: unknown }).retryAfterMs;
      return send(
        reply,
        request,
        error.statusCode,
        error.code,
        error.message,
        typeof retryAfterMs === 'number' ? { retryAfterMs } : {},
      );
    }
    const dependency = unavailableDependency(error);
    if (dependency !== undefined) {
      const unavailable = new DependencyUnavailableError(dependency);
      request.log.warn({ error: logged(error), dependency }, 'dependency unavailable');
      for (const [name, value] of Object.entries(unavailable.headers)) reply.header(name, value);
      return send(reply, request, 503, unavailable.code, unavailable.message);
    }
    const client = frameworkClientError(error, options.bodyLimitBytes);
    if (client !== undefined) {
      request.log.info({ code: error.code, statusCode: client.status }, client.message);
      return send(reply, request, client.status, client.code, client.message);
    }
    request.log.error({ error: logged(error) }, 'request failed');
    return send(reply, request, 500, 'E_INTERNAL', 'The request failed on our side; it has been logged.');
  });

  app.setNotFoundHandler((request, reply) =>
    send(reply, request, 404, 'E_NOT_FOUND', 'No route matches this method and path.'),
  );
}
