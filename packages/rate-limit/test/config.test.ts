import { describe, expect, it } from 'vitest';
import { checkCost, compilePlan, type LimitConfig, PlanCache } from '../src/config.js';
import { AustaRateLimitError } from '../src/errors.js';
import { encodeKey, MAX_KEY_BYTES, validatePrefix } from '../src/keys.js';

function codeOf(work: () => unknown): string | undefined {
  try {
    work();
  } catch (error) {
    expect(AustaRateLimitError.isInstance(error)).toBe(true);
    return (error as AustaRateLimitError).code;
  }
  return undefined;
}

describe('limit configs', () => {
  const bad: Array<[string, unknown]> = [
    ['a zero limit', { limit: 0, windowSeconds: 1 }],
    ['a negative limit', { limit: -5, windowSeconds: 1 }],
    ['a NaN limit', { limit: Number.NaN, windowSeconds: 1 }],
    ['an infinite limit', { limit: Number.POSITIVE_INFINITY, windowSeconds: 1 }],
    ['a string limit', { limit: '10', windowSeconds: 1 }],
    ['a zero window', { limit: 10, windowSeconds: 0 }],
    ['a negative window', { limit: 10, windowSeconds: -1 }],
    ['a NaN window', { limit: 10, windowSeconds: Number.NaN }],
    ['a window under a millisecond', { limit: 10, windowSeconds: 0.0004 }],
    ['a missing window', { limit: 10 }],
    ['a fractional window limit', { limit: 2.5, windowSeconds: 1 }],
    ['burst on a window strategy', { limit: 10, windowSeconds: 1, burst: 5 }],
    ['precision on fixed-window', { limit: 10, windowSeconds: 1, precision: 'exact' }],
    ['a zero block duration', { limit: 10, windowSeconds: 1, blockDurationSeconds: 0 }],
    ['a NaN block duration', { limit: 10, windowSeconds: 1, blockDurationSeconds: Number.NaN }],
    ['a non-boolean countRejected', { limit: 10, windowSeconds: 1, countRejected: 'yes' }],
    ['null', null],
    ['a number', 10],
  ];

  it.each(bad)('rejects %s with E_INVALID_CONFIG', (_, config) => {
    expect(codeOf(() => compilePlan(config as never, 'fixed-window', 'p'))).toBe('E_INVALID_CONFIG');
  });

  it('rejects an unknown strategy with E_UNKNOWN_STRATEGY, also as a per-limit override', () => {
    expect(codeOf(() => compilePlan({ limit: 1, windowSeconds: 1 }, 'sliding-log' as never, 'p'))).toBe(
      'E_UNKNOWN_STRATEGY',
    );
    expect(codeOf(() => compilePlan({ limit: 1, windowSeconds: 1 }, undefined as never, 'p'))).toBe(
      'E_UNKNOWN_STRATEGY',
    );
    expect(
      codeOf(() =>
        compilePlan([{ limit: 1, windowSeconds: 1, strategy: 'gcra' as never }], 'fixed-window', 'p'),
      ),
    ).toBe('E_UNKNOWN_STRATEGY');
  });

  it('allows fractional rates: through the window for every strategy, through the limit for buckets', () => {
    const halfPerSecond = compilePlan({ limit: 1, windowSeconds: 2 }, 'fixed-window', 'p');
    expect(halfPerSecond.limits[0]?.windowMs).toBe(2000);
    const bucket = compilePlan({ limit: 0.5, windowSeconds: 1, burst: 1 }, 'leaky-bucket', 'p');
    expect(bucket.limits[0]?.capacity).toBe(1);
    // Without a burst the bucket would hold half a request, which could never be allowed.
    expect(codeOf(() => compilePlan({ limit: 0.5, windowSeconds: 1 }, 'token-bucket', 'p'))).toBe(
      'E_INVALID_CONFIG',
    );
  });

  it('caps exact sliding windows, whose memory grows with the limit', () => {
    expect(
      codeOf(() =>
        compilePlan({ limit: 200_000, windowSeconds: 60, precision: 'exact' }, 'sliding-window', 'p'),
      ),
    ).toBe('E_INVALID_CONFIG');
    expect(compilePlan({ limit: 200_000, windowSeconds: 60 }, 'sliding-window', 'p').limits[0]?.kind).toBe(
      'swa',
    );
  });

  it('refuses two limits of one check that would share a state key', () => {
    expect(
      codeOf(() =>
        compilePlan(
          [
            { limit: 10, windowSeconds: 60 },
            { limit: 20, windowSeconds: 60 },
          ],
          'fixed-window',
          'p',
        ),
      ),
    ).toBe('E_INVALID_CONFIG');
    expect(codeOf(() => compilePlan([], 'fixed-window', 'p'))).toBe('E_INVALID_CONFIG');
  });

  it('builds keys with the caller key inside one hash tag', () => {
    const plan = compilePlan(
      [
        { limit: 10, windowSeconds: 1 },
        { limit: 1000, windowSeconds: 3600, strategy: 'token-bucket', burst: 50 },
      ],
      'sliding-window',
      'austa:rate-limit',
    );
    const keys = plan.limits.map((limit) => `${limit.keyHead}user-1${limit.keyTail}`);
    expect(keys).toEqual([
      'austa:rate-limit:swa:{user-1}:1000',
      'austa:rate-limit:tb:{user-1}:3600000:1000:50',
    ]);
    expect(plan.strategyLabel).toBe('multiple');
    expect(plan.maxCost).toBe(10);
  });

  it('notices a cached config object that was changed after first use', () => {
    const cache = new PlanCache('p');
    const config = { limit: 10, windowSeconds: 1 };
    const first = cache.get(config, 'fixed-window');
    expect(cache.get(config, 'fixed-window')).toBe(first);
    config.limit = 20;
    expect(cache.get(config, 'fixed-window').limits[0]?.limit).toBe(20);
    expect(cache.get(config, 'token-bucket').limits[0]?.strategy).toBe('token-bucket');
  });

  it('finds the plan of a configuration written inline by its values, and tells different values apart', () => {
    const cache = new PlanCache('p');
    const first = cache.get({ limit: 10, windowSeconds: 1 }, 'fixed-window');
    expect(cache.get({ limit: 10, windowSeconds: 1 }, 'fixed-window')).toBe(first);
    expect(cache.get({ windowSeconds: 1, limit: 10, burst: undefined }, 'fixed-window')).toBe(first);
    const variants: Array<[unknown, unknown]> = [
      [{ limit: 11, windowSeconds: 1 }, 'fixed-window'],
      [{ limit: 10, windowSeconds: 2 }, 'fixed-window'],
      [{ limit: 10, windowSeconds: 1 }, 'token-bucket'],
      [{ limit: 10, windowSeconds: 1, burst: 5 }, 'token-bucket'],
      [{ limit: 10, windowSeconds: 1, precision: 'approximate' }, 'sliding-window'],
      [{ limit: 10, windowSeconds: 1, blockDurationSeconds: 60 }, 'fixed-window'],
      [{ limit: 10, windowSeconds: 1, countRejected: true }, 'fixed-window'],
      [{ limit: 10, windowSeconds: 1, strategy: 'leaky-bucket' }, 'fixed-window'],
      [
        [
          { limit: 10, windowSeconds: 1 },
          { limit: 100, windowSeconds: 60 },
        ],
        'fixed-window',
      ],
    ];
    const plans = variants.map(([config, strategy]) => cache.get(config as LimitConfig, strategy));
    expect(new Set([first, ...plans]).size).toBe(variants.length + 1);
    expect(plans[0]?.limits[0]?.limit).toBe(11);
    expect(plans[3]?.limits[0]?.strategy).toBe('token-bucket');
    expect(plans[7]?.limits[0]?.strategy).toBe('leaky-bucket');
  });

  it('never answers from its cache a configuration that only shares its text with a cached one', () => {
    const cache = new PlanCache('p');
    // Each pair would share a cache text; the second of each is invalid and must still be refused.
    cache.get({ limit: 10, windowSeconds: 1 }, 'fixed-window');
    expect(
      codeOf(() => cache.get({ limit: 10, windowSeconds: 1, strategy: '' } as never, 'fixed-window')),
    ).toBe('E_UNKNOWN_STRATEGY');
    expect(
      codeOf(() => cache.get({ limit: 10, windowSeconds: 1, precision: '' } as never, 'fixed-window')),
    ).toBe('E_INVALID_CONFIG');
    const two = [
      { limit: 10, windowSeconds: 1 },
      { limit: 100, windowSeconds: 60 },
    ];
    expect(cache.get(two, 'fixed-window').limits).toHaveLength(2);
    const oneWithBar = { limit: 10, windowSeconds: 1, strategy: '|100,60,,,,,' } as never;
    expect(codeOf(() => cache.get(oneWithBar, 'fixed-window'))).toBe('E_UNKNOWN_STRATEGY');
  });

  it('never answers from its cache a configuration whose values have the wrong type', () => {
    const cache = new PlanCache('p');
    cache.get({ limit: 10, windowSeconds: 1 }, 'fixed-window');
    expect(codeOf(() => cache.get({ limit: '10', windowSeconds: 1 } as never, 'fixed-window'))).toBe(
      'E_INVALID_CONFIG',
    );
    expect(codeOf(() => cache.get({ limit: 10, windowSeconds: '1' } as never, 'fixed-window'))).toBe(
      'E_INVALID_CONFIG',
    );
  });
});

describe('costs', () => {
  const plan = compilePlan({ limit: 10, windowSeconds: 1 }, 'fixed-window', 'p');
  it.each([0, -1, 1.5, Number.NaN, '2', null])('rejects cost %s with E_INVALID_COST', (cost) => {
    expect(codeOf(() => checkCost(cost, plan))).toBe('E_INVALID_COST');
  });
  it('rejects a cost above the capacity with E_COST_EXCEEDS_LIMIT', () => {
    expect(codeOf(() => checkCost(11, plan))).toBe('E_COST_EXCEEDS_LIMIT');
    expect(checkCost(10, plan)).toBe(10);
  });
});

describe('keys', () => {
  it.each<[string, unknown]>([
    ['empty', ''],
    ['oversized', 'k'.repeat(MAX_KEY_BYTES + 1)],
    ['oversized in UTF-8 bytes', 'é'.repeat(MAX_KEY_BYTES / 2 + 1)],
    ['with a newline', 'user\n1'],
    ['with NUL', 'user\u00001'],
    ['with a C1 control', 'user\u00851'],
    ['not a string', 42],
    ['undefined', undefined],
  ])('rejects a key that is %s with E_INVALID_KEY', (_, key) => {
    expect(codeOf(() => encodeKey(key))).toBe('E_INVALID_KEY');
  });

  it('percent-encodes braces so a key can never choose its hash tag, and keeps encodings distinct', () => {
    expect(encodeKey('a{b}c')).toBe('a%7Bb%7Dc');
    expect(encodeKey('a%7Bb')).toBe('a%257Bb');
    expect(encodeKey('{}')).not.toBe(encodeKey('%7B%7D'));
    expect(encodeKey('user@example.com')).toBe('user@example.com');
    expect(encodeKey('ünïcode-✓')).toBe('ünïcode-✓');
    expect(encodeKey('k'.repeat(MAX_KEY_BYTES))).toHaveLength(MAX_KEY_BYTES);
  });

  it('accepts only plain prefixes', () => {
    expect(validatePrefix('austa:rate-limit')).toBe('austa:rate-limit');
    for (const prefix of ['', 'a{b}', 'a*', 'ends:', 'x'.repeat(65), 'sp ace']) {
      expect(codeOf(() => validatePrefix(prefix))).toBe('E_INVALID_CONFIG');
    }
  });
});
