import { createHttpDecider, type HttpRateLimitOptions, type HttpRequestLike } from './http.js';

export type { HttpDecision, HttpRateLimitOptions, TooManyRequestsBody } from './http.js';

/** The parts of an Express response the middleware uses. */
export interface ExpressResponseLike {
  setHeader(name: string, value: string): unknown;
  status(code: number): { json(body: unknown): unknown };
  locals?: Record<string, unknown>;
}

export type ExpressNext = (error?: unknown) => void;

/**
 * Express middleware: checks each request against the limits, sets the rate limit headers, and answers 429 with a
 * JSON body (and `Retry-After`) when the limit is exceeded. The result is left in `res.locals.rateLimit`.
 * @example app.use(rateLimit({ limiter, limits: { limit: 100, windowSeconds: 60 }, strategy: 'sliding-window' }))
 */
export function rateLimit<Request extends HttpRequestLike = HttpRequestLike>(
  options: HttpRateLimitOptions<Request>,
): (request: Request, response: ExpressResponseLike, next: ExpressNext) => void {
  const decide = createHttpDecider(options);
  return function austaRateLimit(request, response, next) {
    decide(request).then((decision) => {
      if (decision === undefined) {
        next();
        return;
      }
      for (const name in decision.headers) response.setHeader(name, decision.headers[name] as string);
      if (response.locals !== undefined) response.locals.rateLimit = decision.result;
      if (decision.body === undefined) next();
      else response.status(429).json(decision.body);
    }, next);
  };
}
