import { createHmac } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { ipv6Network, type LimitConfig, type RateLimiter, rateLimitHeaders } from '@austa/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authOf } from './auth/session.js';
import { HttpError } from './http-errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false`: the per-IP limit does not apply (health probes, scrapes). */
    rateLimit?: boolean;
  }
}

/** A 429 whose JSON body carries `retryAfterMs`, the exact wait, next to the whole seconds of `Retry-After`. */
export class TooManyRequestsError extends HttpError {
  readonly retryAfterMs: number;
  /** `what` names the requests counted, as a whole phrase: "requests from this address", "assistant requests". */
  constructor(retryAfterMs: number, what: string) {
    super(
      429,
      'E_RATE_LIMITED',
      `Too many ${what}: retry in ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s.`,
    );
    this.name = 'TooManyRequestsError';
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Headers of two limits on one response: IETF RateLimit fields are lists, so the policies of both limits are sent
 * side by side (`"ip";…, "assistant";…`), and a client sees which one is closer to running out.
 */
function addHeaders(reply: FastifyReply, headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) {
    const existing = reply.getHeader(name);
    if (name === 'Retry-After' || existing === undefined) reply.header(name, value);
    else reply.header(name, `${String(existing)}, ${value}`);
  }
}

/** Addresses whose key is remembered: the HMAC is on every request, and a busy service sees few addresses at once. */
const CLIENT_KEYS_CACHED = 4096;

/**
 * The limit's key of a client: a keyed hash of its address, so that no IP address (which identifies a person) is
 * written into Redis key names, where neither encryption nor a TTL hides it from whoever reads the keyspace. One
 * IPv6 client often holds a whole /64: limiting single addresses would let it rotate past the limit.
 */
export function clientKeys(secret: string): (ip: string) => string {
  const known = new Map<string, string>();
  return (ip) => {
    let key = known.get(ip);
    if (key === undefined) {
      const address = isIPv6(ip) ? ipv6Network(ip, 64) : ip;
      key = `ip:${createHmac('sha256', secret).update(address).digest('base64url').slice(0, 22)}`;
      // A hint cache: bounded, the oldest address forgotten first.
      if (known.size >= CLIENT_KEYS_CACHED) known.delete(known.keys().next().value as string);
      known.set(ip, key);
    }
    return key;
  };
}

/** The per-IP limit on every route whose config does not say `rateLimit: false`. */
export function installIpRateLimit(
  app: FastifyInstance,
  limiter: RateLimiter,
  limit: LimitConfig,
  keyOf: (ip: string) => string,
): void {
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.routeOptions.config?.rateLimit === false) return;
    const result = await limiter.checkLimit(keyOf(request.ip), limit, 'sliding-window');
    addHeaders(reply, rateLimitHeaders(result, limit, { policyNames: ['ip'] }));
    if (!result.allowed) throw new TooManyRequestsError(result.retryAfterMs, 'requests from this address');
  });
}

/** A preHandler after the session guard: the stricter per-user limit of the assistant routes. */
export function assistantRateLimit(limiter: RateLimiter, limit: LimitConfig) {
  return async function limitAssistant(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const { userId } = authOf(request);
    const result = await limiter.checkLimit(`user:${userId}`, limit, 'sliding-window');
    addHeaders(reply, rateLimitHeaders(result, limit, { policyNames: ['assistant'] }));
    if (!result.allowed) throw new TooManyRequestsError(result.retryAfterMs, 'assistant requests');
  };
}
