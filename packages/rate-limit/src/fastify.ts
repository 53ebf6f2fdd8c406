import type { FastifyPluginCallback, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { createHttpDecider, type HttpRateLimitOptions } from './http.js';

export type { HttpDecision, HttpRateLimitOptions, TooManyRequestsBody } from './http.js';

/** Options of the Fastify plugin and hook: the shared HTTP options, with Fastify's request type. */
export type FastifyRateLimitOptions = HttpRateLimitOptions<FastifyRequest>;

/**
 * A Fastify `onRequest` hook for chosen routes: `app.get('/login', { onRequest: rateLimitHook({...}) }, handler)`.
 * Sets the rate limit headers and answers 429 with a JSON body (and `Retry-After`) when the limit is exceeded.
 * A route opts out with `{ config: { rateLimit: false } }`.
 */
export function rateLimitHook(options: FastifyRateLimitOptions): onRequestAsyncHookHandler {
  const decide = createHttpDecider(options);
  return async function austaRateLimit(request: FastifyRequest, reply: FastifyReply) {
    if ((request.routeOptions.config as { rateLimit?: unknown } | undefined)?.rateLimit === false) return;
    const decision = await decide(request);
    if (decision === undefined) return;
    for (const name in decision.headers) reply.header(name, decision.headers[name]);
    if (decision.body === undefined) return;
    reply.code(429).send(decision.body);
    // Returning the reply tells Fastify the response was sent and the route handler must not run.
    return reply;
  };
}

/**
 * Fastify plugin: limits every route of the instance it is registered on (and of its children). A route opts out
 * with `{ config: { rateLimit: false } }`. Marked `skip-override` (as `fastify-plugin` does), so its hook applies to
 * the instance you register it on rather than only inside its own encapsulated context.
 * @example await app.register(fastifyRateLimit, { limiter, limits: { limit: 100, windowSeconds: 60 }, strategy: 'token-bucket' })
 */
export const fastifyRateLimit: FastifyPluginCallback<FastifyRateLimitOptions> = Object.assign(
  function austaRateLimitPlugin(
    instance: Parameters<FastifyPluginCallback<FastifyRateLimitOptions>>[0],
    options: FastifyRateLimitOptions,
    done: (error?: Error) => void,
  ): void {
    let hook: onRequestAsyncHookHandler;
    try {
      hook = rateLimitHook(options);
    } catch (error) {
      done(error as Error);
      return;
    }
    instance.addHook('onRequest', hook);
    done();
  },
  {
    [Symbol.for('skip-override')]: true,
    [Symbol.for('fastify.display-name')]: '@austa/rate-limit',
  },
);
