import { createHttpDecider, type HttpRateLimitOptions, type HttpRequestLike } from './http.js';

export type { HttpDecision, HttpRateLimitOptions, TooManyRequestsBody } from './http.js';

/** The parts of a Fastify request the hook uses. */
export interface FastifyRequestLike extends HttpRequestLike {
  routeOptions?: { config?: { rateLimit?: unknown } };
}

/** The parts of a Fastify reply the hook uses. */
export interface FastifyReplyLike {
  header(name: string, value: string): unknown;
  code(statusCode: number): FastifyReplyLike;
  send(payload?: unknown): unknown;
}

export type RateLimitHook<Request extends FastifyRequestLike = FastifyRequestLike> = (
  request: Request,
  reply: FastifyReplyLike,
) => Promise<unknown>;

/**
 * A Fastify `onRequest` hook for chosen routes: `app.get('/login', { onRequest: rateLimitHook({...}) }, handler)`.
 * Sets the rate limit headers and answers 429 with a JSON body (and `Retry-After`) when the limit is exceeded.
 */
export function rateLimitHook<Request extends FastifyRequestLike = FastifyRequestLike>(
  options: HttpRateLimitOptions<Request>,
): RateLimitHook<Request> {
  const decide = createHttpDecider(options);
  return async function austaRateLimit(request, reply) {
    if (request.routeOptions?.config?.rateLimit === false) return undefined;
    const decision = await decide(request);
    if (decision === undefined) return undefined;
    for (const name in decision.headers) reply.header(name, decision.headers[name] as string);
    if (decision.body === undefined) return undefined;
    reply.code(429).send(decision.body);
    // Returning the reply tells Fastify the response was sent and the route handler must not run.
    return reply;
  };
}

interface FastifyInstanceLike {
  addHook(name: 'onRequest', hook: RateLimitHook<never>): unknown;
}

/**
 * Fastify plugin: limits every route of the instance it is registered on (and of its children). A route opts out
 * with `{ config: { rateLimit: false } }`. Registered with `skip-override` (as `fastify-plugin` would), so it
 * applies to the routes of the instance you register it on rather than only inside its own context.
 * @example await app.register(fastifyRateLimit, { limiter, limits: { limit: 100, windowSeconds: 60 }, strategy: 'token-bucket' })
 */
export const fastifyRateLimit = Object.assign(
  function austaRateLimitPlugin(
    instance: FastifyInstanceLike,
    options: HttpRateLimitOptions<FastifyRequestLike>,
    done: (error?: Error) => void,
  ): void {
    let hook: RateLimitHook;
    try {
      hook = rateLimitHook(options);
    } catch (error) {
      done(error as Error);
      return;
    }
    instance.addHook('onRequest', hook as RateLimitHook<never>);
    done();
  },
  {
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: '@austa/rate-limit',
  },
);
