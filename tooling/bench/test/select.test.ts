import { describe, expect, it } from 'vitest';
import { checkCases, groupByOp, selectCases } from '../src/select.js';

const cases = [
  { op: 'GET', lib: 'ioredis' },
  { op: 'GET', lib: 'ioredis (control)', vs: 'ioredis' },
  { op: 'GET', lib: '@austa/cache', vs: 'ioredis' },
  { op: 'SET', lib: 'ioredis' },
  { op: 'SET', lib: '@austa/cache', vs: 'ioredis' },
  { op: 'SET', lib: 'raw script (ceiling)', vs: '@austa/cache' },
];

describe('selectCases()', () => {
  it('keeps every case when there is no filter', () => {
    expect(selectCases(cases, '@austa/cache')).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('keeps the cases whose op matches', () => {
    expect(selectCases(cases, '@austa/cache', /^set$/i)).toEqual([3, 4, 5]);
  });

  it('adds the rival a chosen case is compared to, from the same op only', () => {
    // The ceiling is compared to @austa/cache of SET, which is compared to ioredis of SET: one level is added, the
    // case the chosen one names; nothing of GET comes along.
    expect(selectCases(cases, '@austa/cache', /ceiling/i)).toEqual([4, 5]);
    expect(selectCases(cases, '@austa/cache', /control/i)).toEqual([0, 1]);
  });

  it('matches the package name, so one package of a `pnpm bench` can be picked', () => {
    expect(selectCases(cases, '@austa/cache', /austa\/cache/)).toHaveLength(6);
    expect(selectCases(cases, '@austa/session', /^nothing$/)).toEqual([]);
  });
});

describe('groupByOp()', () => {
  it('groups chosen cases by op in first-seen order and keeps their positions in the file', () => {
    const groups = groupByOp(cases, [0, 2, 3, 5]);
    expect(groups.map((group) => group.map(({ benchCase, index }) => `${index}:${benchCase.lib}`))).toEqual([
      ['0:ioredis', '2:@austa/cache'],
      ['3:ioredis', '5:raw script (ceiling)'],
    ]);
  });
});

describe('checkCases()', () => {
  it('accepts a file whose every vs names a case of the same op', () => {
    expect(() => checkCases(cases, 'cache.bench.ts', 'cases')).not.toThrow();
  });

  it('refuses a vs that names no case of its op, which would leave a ratio out without a word', () => {
    const wrong = [...cases, { op: 'GET', lib: 'cache-manager', vs: 'raw script (ceiling)' }];
    expect(() => checkCases(wrong, 'cache.bench.ts', 'cases')).toThrow(
      'cache.bench.ts: cases case "cache-manager" of op "GET" is compared to "raw script (ceiling)", which is no case of that op.',
    );
  });

  it('refuses two cases with the same op and lib', () => {
    expect(() => checkCases([...cases, { op: 'SET', lib: 'ioredis' }], 'cache.bench.ts', 'micro')).toThrow(
      'cache.bench.ts: micro has two cases with op "SET" and lib "ioredis".',
    );
  });
});
