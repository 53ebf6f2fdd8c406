import type { LimitConfig } from './config.js';
import { RateLimitArgumentError } from './errors.js';
import type { RateLimitResult } from './limiter.js';

/**
 * Which rate limit headers to send:
 * - `ietf`: `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers, structured fields);
 * - `legacy`: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix time in seconds);
 * - `both`; or `false` for none. `Retry-After` is sent on every rejection regardless.
 */
export type HeaderStyle = 'ietf' | 'legacy' | 'both' | false;

export interface HeaderOptions {
  /** Default `ietf`. */
  style?: HeaderStyle;
  /**
   * Names of the policies in `RateLimit-Policy` and `RateLimit`, one per limit, in order. Default `default` for one
   * limit, `limit-1`, `limit-2`… for several. Letters, digits, `_ . : -`, at most 64 characters.
   */
  policyNames?: readonly string[];
  /** Current time in ms since 1970, on the clock `resetAtMs` was expressed in. Default `Date.now()`. */
  now?: number;
}

const POLICY_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

function policyNamesFor(count: number, names: readonly string[] | undefined): string[] {
  if (names === undefined) {
    return count === 1 ? ['default'] : Array.from({ length: count }, (_, i) => `limit-${i + 1}`);
  }
  if (names.length !== count || !names.every((name) => typeof name === 'string' && POLICY_NAME.test(name))) {
    throw new RateLimitArgumentError(
      'E_INVALID_ARGUMENT',
      `policyNames needs one name per limit (${count}), each 1-64 characters of A-Z, a-z, 0-9, "_", ".", ":" or "-".`,
    );
  }
  return [...names];
}

/**
 * A limit as a quota policy: `q` units per `w` seconds, both integers. A fractional rate is spread over a longer
 * window (0.5 per second is `q=1;w=2`).
 */
function quota(config: LimitConfig): { q: number; w: number } {
  const q = Math.max(1, Math.floor(config.limit));
  return { q, w: Math.max(1, Math.round((config.windowSeconds * q) / config.limit)) };
}

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/**
 * The response headers for a check's result: rate limit headers in the chosen style, and `Retry-After` (whole
 * seconds, rounded up) when the request was rejected. Pass the same limits that were checked.
 * @example for (const [name, value] of Object.entries(rateLimitHeaders(result, limits))) res.setHeader(name, value)
 */
export function rateLimitHeaders(
  result: RateLimitResult,
  limits: LimitConfig | readonly LimitConfig[],
  options: HeaderOptions = {},
): Record<string, string> {
  const list = Array.isArray(limits) ? (limits as readonly LimitConfig[]) : [limits as LimitConfig];
  const style = options.style ?? 'ietf';
  const headers: Record<string, string> = {};
  const now = options.now ?? Date.now();
  if (style === 'ietf' || style === 'both') {
    const names = policyNamesFor(list.length, options.policyNames);
    headers['RateLimit-Policy'] = list
      .map((config, i) => {
        const { q, w } = quota(config);
        return `"${names[i]}";q=${q};w=${w}`;
      })
      .join(', ');
    const outcomes = result.limits ?? [result];
    headers.RateLimit = outcomes
      .map((outcome, i) => {
        // While rejected, `t` is when the client may retry; otherwise when the quota is fully restored.
        const t = outcome.allowed ? seconds(outcome.resetAtMs - now) : seconds(outcome.retryAfterMs);
        return `"${names[i] ?? names[0]}";r=${outcome.remaining};t=${t}`;
      })
      .join(', ');
  }
  if (style === 'legacy' || style === 'both') {
    headers['X-RateLimit-Limit'] = String(Math.floor(result.limit));
    headers['X-RateLimit-Remaining'] = String(result.remaining);
    headers['X-RateLimit-Reset'] = String(Math.ceil(result.resetAtMs / 1000));
  }
  if (!result.allowed) headers['Retry-After'] = String(Math.max(1, seconds(result.retryAfterMs)));
  return headers;
}
