import { describe, expect, it } from 'vitest';
import { ipv6Network } from '../src/http.js';
import { type RateLimitResult, rateLimitHeaders } from '../src/index.js';

const NOW = 1_700_000_000_000;

function result(overrides: Partial<RateLimitResult> = {}): RateLimitResult {
  return {
    allowed: true,
    limit: 100,
    remaining: 42,
    resetAtMs: NOW + 30_500,
    retryAfterMs: 0,
    blocked: false,
    fallback: null,
    ...overrides,
  };
}

describe('rateLimitHeaders()', () => {
  const limit = { limit: 100, windowSeconds: 60 };

  it('writes the IETF RateLimit-Policy and RateLimit fields by default', () => {
    expect(rateLimitHeaders(result(), limit, { now: NOW })).toEqual({
      'RateLimit-Policy': '"default";q=100;w=60',
      RateLimit: '"default";r=42;t=31',
    });
  });

  it('writes the legacy X-RateLimit fields with a Unix reset time', () => {
    expect(rateLimitHeaders(result(), limit, { style: 'legacy', now: NOW })).toEqual({
      'X-RateLimit-Limit': '100',
      'X-RateLimit-Remaining': '42',
      'X-RateLimit-Reset': String(Math.ceil((NOW + 30_500) / 1000)),
    });
  });

  it('adds Retry-After in whole seconds, rounded up, to every rejection, even with headers off', () => {
    const rejected = result({ allowed: false, remaining: 0, retryAfterMs: 1_200 });
    expect(rateLimitHeaders(rejected, limit, { style: false, now: NOW })).toEqual({ 'Retry-After': '2' });
    const both = rateLimitHeaders(rejected, limit, { style: 'both', now: NOW });
    expect(both.RateLimit).toBe('"default";r=0;t=2');
    expect(both['X-RateLimit-Remaining']).toBe('0');
    expect(both['Retry-After']).toBe('2');
    expect(
      rateLimitHeaders(result({ allowed: false, retryAfterMs: 3 }), limit, { now: NOW })['Retry-After'],
    ).toBe('1');
  });

  it('lists every policy of a multi-limit check and expresses fractional rates as whole quotas', () => {
    const limits = [
      { limit: 10, windowSeconds: 1 },
      { limit: 0.5, windowSeconds: 1, burst: 1, strategy: 'token-bucket' as const },
    ];
    const multi = result({
      limits: [
        {
          strategy: 'fixed-window',
          limit: 10,
          windowSeconds: 1,
          allowed: true,
          remaining: 9,
          resetAtMs: NOW + 1000,
          retryAfterMs: 0,
        },
        {
          strategy: 'token-bucket',
          limit: 0.5,
          windowSeconds: 1,
          allowed: true,
          remaining: 0,
          resetAtMs: NOW + 2000,
          retryAfterMs: 0,
        },
      ],
    });
    const headers = rateLimitHeaders(multi, limits, { now: NOW, policyNames: ['burst', 'slow'] });
    expect(headers['RateLimit-Policy']).toBe('"burst";q=10;w=1, "slow";q=1;w=2');
    expect(headers.RateLimit).toBe('"burst";r=9;t=1, "slow";r=0;t=2');
    expect(() => rateLimitHeaders(multi, limits, { policyNames: ['only-one'] })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
    expect(() => rateLimitHeaders(multi, limits, { policyNames: ['a"b', 'c'] })).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT' }),
    );
  });
});

describe('ipv6Network()', () => {
  it('keeps the first bits of an address, whatever its notation', () => {
    expect(ipv6Network('2001:db8:85a3:8d3:1319:8a2e:370:7348', 64)).toBe('2001:db8:85a3:8d3:0:0:0:0/64');
    expect(ipv6Network('2001:db8:85a3:8d3::1', 64)).toBe('2001:db8:85a3:8d3:0:0:0:0/64');
    expect(ipv6Network('2001:DB8::', 48)).toBe('2001:db8:0:0:0:0:0:0/48');
    expect(ipv6Network('::1', 128)).toBe('0:0:0:0:0:0:0:1/128');
    expect(ipv6Network('fe80::1%eth0', 64)).toBe('fe80:0:0:0:0:0:0:0/64');
    expect(ipv6Network('2001:db8:ffff::', 36)).toBe('2001:db8:f000:0:0:0:0:0/36');
    expect(ipv6Network('::ffff:192.0.2.1', 64)).toBe('192.0.2.1');
    expect(ipv6Network('64:ff9b::192.0.2.1', 128)).toBe('64:ff9b:0:0:0:0:c000:201/128');
  });
});
