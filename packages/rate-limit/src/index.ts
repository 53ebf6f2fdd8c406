export type { LimitConfig, Strategy } from './config.js';
export { MAX_EXACT_LIMIT, MAX_LIMITS_PER_CHECK, STRATEGIES } from './config.js';
export type { RateLimitErrorCode } from './errors.js';
export {
  AustaRateLimitError,
  errors,
  RateLimitArgumentError,
  RateLimitConfigError,
  RateLimiterClosedError,
  RateLimitRedisError,
} from './errors.js';
export type { HeaderOptions, HeaderStyle } from './headers.js';
export { rateLimitHeaders } from './headers.js';
export type { HttpDecision, HttpRateLimitOptions, HttpRequestLike, TooManyRequestsBody } from './http.js';
export { ipv6Network } from './http.js';
export { MAX_KEY_BYTES } from './keys.js';
export type {
  CheckOptions,
  FailurePolicy,
  LimitResult,
  RateLimiter,
  RateLimiterOptions,
  RateLimitResult,
} from './limiter.js';
export { createRateLimiter, DEFAULTS } from './limiter.js';
