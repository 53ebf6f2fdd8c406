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

function clientKey(ip: string): string {
  // One IPv6 client often holds a whole /64: limiting single addresses would let it rotate past the limit.
  return isIPv6(ip) ? `ip:${ipv6Network(ip, 64)}` : `ip:${ip}`;
}

/** The per-IP limit on every route whose config does not say `rateLimit: false`. */
export function installIpRateLimit(app: FastifyInstance, limiter: RateLimiter, limit: LimitConfig): void {
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.routeOptions.config?.rateLimit === false) return;
    const result = await limiter.checkLimit(clientKey(request.ip), limit, 'sliding-window');
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
