import type { IncomingHttpHeaders } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import { checkCost, compilePlan, type LimitConfig, type Strategy } from './config.js';
import { RateLimitConfigError } from './errors.js';
import { type HeaderStyle, rateLimitHeaders } from './headers.js';
import { typeOf } from './keys.js';
import type { RateLimiter, RateLimitResult } from './limiter.js';

/** What the middleware reads from a request: the framework's request object has these. */
export interface HttpRequestLike {
  ip?: string;
  headers: IncomingHttpHeaders;
  user?: { id?: unknown } | null;
}

/** Options shared by the Express middleware and the Fastify plugin. */
export interface HttpRateLimitOptions<Request = HttpRequestLike> {
  /** The limiter (from `createRateLimiter`). It is not closed by the middleware. */
  limiter: RateLimiter;
  /** The limit, or limits applied together, for each request. */
  limits: LimitConfig | readonly LimitConfig[];
  strategy: Strategy;
  /**
   * Whom to limit: `ip` (default, the framework's `request.ip`, so set Express' `trust proxy` or Fastify's
   * `trustProxy` behind a proxy), `user` (`request.user.id`, falling back to the IP for anonymous requests), or a
   * function returning the key; a function returning `undefined` leaves that request unlimited.
   */
  key?: 'ip' | 'user' | ((request: Request) => string | undefined | Promise<string | undefined>);
  /** Namespace of the keys, so two middlewares with different limits keep apart: `<scope>:ip:<address>`. Default `http`. */
  scope?: string;
  /** Units each request uses, or a function of the request. Default 1. */
  cost?: number | ((request: Request) => number);
  /** Rate limit headers on every response; see `rateLimitHeaders`. Default `ietf`. */
  headers?: HeaderStyle;
  /** Policy names for the `RateLimit` headers, one per limit. */
  policyNames?: readonly string[];
  /** Return `true` to let a request through without counting it (health checks, internal callers). */
  skip?: (request: Request) => boolean | Promise<boolean>;
  /** `message` of the 429 JSON body. Default `Too many requests, retry in N seconds.` */
  message?: string;
  /**
   * IPv6 clients are limited per network of this prefix length, since one client often holds a whole /64. `false`
   * limits each address on its own. Default 64.
   */
  ipv6Subnet?: number | false;
}

/** The JSON body of a 429 response. */
export interface TooManyRequestsBody {
  error: 'Too Many Requests';
  message: string;
  retryAfterSeconds: number;
}

export interface HttpDecision {
  result: RateLimitResult;
  headers: Record<string, string>;
  /** The 429 body when the request was rejected. */
  body?: TooManyRequestsBody;
}

const SCOPE = /^[A-Za-z0-9_.:-]{1,64}$/;

/** The /n network of an IPv6 address, written in full (`2001:db8:0:0::/64`); IPv4-mapped addresses become IPv4. */
export function ipv6Network(address: string, bits: number): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return mapped[1];
  const zone = address.indexOf('%');
  const plain = zone >= 0 ? address.slice(0, zone) : address;
  const [head = '', tail] = plain.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (::1.2.3.4) holds two groups.
  const last = tailGroups.length > 0 ? tailGroups : headGroups;
  const lastGroup = last[last.length - 1];
  if (lastGroup?.includes('.')) {
    const octets = lastGroup.split('.').map(Number);
    last.splice(
      last.length - 1,
      1,
      (((octets[0] ?? 0) << 8) | (octets[1] ?? 0)).toString(16),
      (((octets[2] ?? 0) << 8) | (octets[3] ?? 0)).toString(16),
    );
  }
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups = [
    ...headGroups,
    ...Array.from({ length: tail === undefined ? 0 : missing }, () => '0'),
    ...tailGroups,
  ];
  const values = groups.map((group) => Number.parseInt(group || '0', 16));
  const kept: string[] = [];
  for (let i = 0; i < 8; i++) {
    const used = Math.min(16, Math.max(0, bits - i * 16));
    const mask = used === 0 ? 0 : (0xffff << (16 - used)) & 0xffff;
    kept.push(((values[i] ?? 0) & mask).toString(16));
  }
  return `${kept.join(':')}/${bits}`;
}

/** Validates the options once and returns the per-request decision. */
export function createHttpDecider<Request extends HttpRequestLike>(
  options: HttpRateLimitOptions<Request>,
): (request: Request) => Promise<HttpDecision | undefined> {
  if (typeof options !== 'object' || options === null) {
    throw new RateLimitConfigError('The rate limit middleware needs options: { limiter, limits, strategy }.');
  }
  const { limiter, limits, strategy } = options;
  if (typeof limiter?.checkLimit !== 'function') {
    throw new RateLimitConfigError('limiter must be a rate limiter from createRateLimiter().');
  }
  // Compile once now, so a bad limit fails at startup rather than on the first request.
  const plan = compilePlan(limits, strategy, limiter.prefix);
  const scope = options.scope ?? 'http';
  if (!SCOPE.test(scope)) {
    throw new RateLimitConfigError(
      `scope must be 1-64 characters of A-Z, a-z, 0-9, "_", ".", ":" or "-" (got ${typeOf(scope)}).`,
    );
  }
  const keyOption = options.key ?? 'ip';
  if (keyOption !== 'ip' && keyOption !== 'user' && typeof keyOption !== 'function') {
    throw new RateLimitConfigError(`key must be 'ip', 'user' or a function (got ${typeOf(keyOption)}).`);
  }
  const subnet = options.ipv6Subnet ?? 64;
  if (subnet !== false && (!Number.isInteger(subnet) || subnet < 1 || subnet > 128)) {
    throw new RateLimitConfigError(
      `ipv6Subnet must be a whole number from 1 to 128, or false (got ${typeOf(subnet)}).`,
    );
  }
  const costOption = options.cost ?? 1;
  if (typeof costOption === 'number') checkCost(costOption, plan);
  else if (typeof costOption !== 'function') {
    throw new RateLimitConfigError(`cost must be a number or a function (got ${typeOf(costOption)}).`);
  }
  const style = options.headers ?? 'ietf';
  if (style !== false && style !== 'ietf' && style !== 'legacy' && style !== 'both') {
    throw new RateLimitConfigError(
      `headers must be 'ietf', 'legacy', 'both' or false (got ${typeOf(style)}).`,
    );
  }
  const headerOptions = { style, policyNames: options.policyNames };
  // Fail at startup on policy names that do not fit the limits.
  if (options.policyNames !== undefined) {
    rateLimitHeaders(
      {
        allowed: true,
        limit: 1,
        remaining: 0,
        resetAtMs: 0,
        retryAfterMs: 0,
        blocked: false,
        fallback: null,
      },
      limits,
      headerOptions,
    );
  }

  const ipKey = (request: Request): string => {
    const ip = request.ip;
    if (typeof ip !== 'string' || ip === '') return `${scope}:ip:unknown`;
    if (subnet !== false && isIPv6(ip)) return `${scope}:ip:${ipv6Network(ip, subnet)}`;
    return `${scope}:ip:${isIPv4(ip) || isIPv6(ip) ? ip : 'unknown'}`;
  };

  const keyOf = async (request: Request): Promise<string | undefined> => {
    if (keyOption === 'ip') return ipKey(request);
    if (keyOption === 'user') {
      const id = request.user?.id;
      if ((typeof id === 'string' && id !== '') || typeof id === 'number') return `${scope}:user:${id}`;
      return ipKey(request);
    }
    const key = await keyOption(request);
    return key === undefined || key === '' ? undefined : `${scope}:${key}`;
  };

  return async (request) => {
    if (options.skip !== undefined && (await options.skip(request))) return undefined;
    const key = await keyOf(request);
    if (key === undefined) return undefined;
    const cost = typeof costOption === 'number' ? costOption : costOption(request);
    const result = await limiter.checkLimit(key, limits, strategy, cost === 1 ? undefined : { cost });
    const headers = rateLimitHeaders(result, limits, headerOptions);
    if (result.allowed) return { result, headers };
    const retryAfterSeconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
    return {
      result,
      headers,
      body: {
        error: 'Too Many Requests',
        message: options.message ?? `Too many requests, retry in ${retryAfterSeconds} seconds.`,
        retryAfterSeconds,
      },
    };
  };
}
