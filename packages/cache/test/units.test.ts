import { describe, expect, it } from 'vitest';
import { Breaker } from '../src/breaker.js';
import { decodeHeader, encodeHeader, WriteIds } from '../src/envelope.js';
import { CacheConfigError, CacheInputError } from '../src/errors.js';
import { InflightTracker } from '../src/inflight.js';
import { checkPart, decodePart, encodePart, keyLayout, translateGlob } from '../src/keys.js';
import { L1Store } from '../src/l1.js';
import { RedisIo } from '../src/redis-io.js';

function code(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('keys', () => {
  it('percent-encodes only %, { and } so a user key can never carry a hash tag', () => {
    expect(encodePart('user:42')).toBe('user:42');
    expect(encodePart('a{b}c%')).toBe('a%7Bb%7Dc%25');
    expect(decodePart(encodePart('a{b}c%7B'))).toBe('a{b}c%7B');
    expect(encodePart('%7B')).not.toBe(encodePart('{'));
  });

  it('lays out entry, lock and tag keys under the namespace, tag keys sharing the tag as hash tag', () => {
    const layout = keyLayout('austa:cache', 'ns');
    expect(layout.entry('k{1}')).toBe('austa:cache:ns:e:k%7B1%7D');
    expect(layout.lock('k')).toBe('austa:cache:ns:l:k');
    expect(layout.tagVersion('t}x')).toBe('austa:cache:ns:t:{t%7Dx}:v');
    expect(layout.tagMembers('t}x')).toBe('austa:cache:ns:t:{t%7Dx}:k');
    expect(layout.userKey('austa:cache:ns:e:k%7B1%7D')).toBe('k{1}');
    expect(layout.allPattern).toBe('austa:cache:ns:*');
  });

  it('translates a user glob into one over stored keys, escaping the namespace', () => {
    const exact = (glob: string) => {
      const { pattern, filter } = translateGlob(glob);
      expect(filter).toBeUndefined();
      return pattern;
    };
    expect(exact('user:*')).toBe('user:*');
    expect(exact('a{b}*')).toBe('a%7Bb%7D*');
    expect(exact('a\\*b')).toBe('a\\*b');
    expect(exact('a\\{')).toBe('a%7B');
    expect(keyLayout('p.x', 'n').entryPattern('*')).toEqual({ pattern: 'p.x:n:e:*', filter: undefined });
    expect(code(() => translateGlob('a['))).toBe('E_INVALID_PATTERN');
    expect(code(() => translateGlob('a[^'))).toBe('E_INVALID_PATTERN');
    expect(code(() => translateGlob('a[\\]'))).toBe('E_INVALID_PATTERN');
    expect(code(() => translateGlob('a\\'))).toBe('E_INVALID_PATTERN');
  });

  it('matches ? and [...] against characters of the user key, also %, { and } that are stored as three', () => {
    const matches = (glob: string, keys: string[]) => {
      const { pattern, filter } = translateGlob(glob);
      // SCAN gets a wider pattern; the filter decides.
      expect(pattern).not.toMatch(/[?[]/);
      return keys.filter((key) => filter?.(key));
    };
    expect(matches('x?', ['x%', 'x{', 'xa', 'x', 'xab', 'x}}'])).toEqual(['x%', 'x{', 'xa']);
    expect(matches('x???', ['x%', 'x{}', 'x{}%', 'xabc'])).toEqual(['x{}%', 'xabc']);
    expect(matches('[{}%]*', ['{a', '}b', '%c', 'd{'])).toEqual(['{a', '}b', '%c']);
    expect(matches('[^a-c]?', ['ax', 'dx', '{x', 'd'])).toEqual(['dx', '{x']);
    expect(matches('[c-a]', ['b', 'd'])).toEqual(['b']);
    // Classes as Redis reads them: `]` first ends an (empty) class, a range may end with `]`.
    expect(matches('[]]', [']', 'a', ']]'])).toEqual([]);
    expect(matches('[^]]', [']', 'x]', 'ab'])).toEqual(['x]']);
    expect(matches('[a-]]', ['a', ']', '^', '-', 'b'])).toEqual(['a', ']', '^']);
    expect(matches('a[\\-\\]]b', ['a-b', 'a]b', 'a\\b'])).toEqual(['a-b', 'a]b']);
    // Regex syntax in a glob is literal.
    expect(matches('(a|b).?', ['(a|b).x', 'a'])).toEqual(['(a|b).x']);
    // One character is one code point, also outside the BMP.
    expect(matches('x?', ['x\u{1F600}', 'x\u{1F600}a'])).toEqual(['x\u{1F600}']);
    expect(matches('[\u{1F600}-\u{1F64F}]?', ['\u{1F610}a', 'aa'])).toEqual(['\u{1F610}a']);
  });

  it('matches a glob with many stars against a long key in linear-ish time (no backtracking blow-up)', () => {
    const { filter } = translateGlob(`${'*a'.repeat(40)}?b`);
    // Exponential backtracking would not finish within the test timeout.
    expect(filter?.('a'.repeat(1000))).toBe(false);
    expect(filter?.(`${'a'.repeat(1000)}xb`)).toBe(true);
  });

  it('never puts the content of a bad key, tag or pattern in the error message (keys carry patient identifiers)', () => {
    const messageOf = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    };
    for (const kind of ['key', 'tag', 'pattern'] as const) {
      for (const bad of [
        'patient:Maria Silva\n',
        'patient:Maria Silva\ud800',
        'patient:Maria Silva\u0000x',
      ]) {
        const message = messageOf(() => checkPart(bad, kind, 1024));
        expect(message).not.toBe('');
        expect(message).not.toContain('Maria');
      }
    }
    // It still says where the offending character is.
    expect(messageOf(() => checkPart('ab\ncd', 'key', 1024))).toContain('U+000A at index 2');
    // A pattern that is well formed as a key but not as a glob: the position, never the text.
    for (const glob of ['patient-Maria*[', 'patient-Maria[^', 'patient-Maria\\']) {
      const message = messageOf(() => translateGlob(glob));
      expect(message).not.toBe('');
      expect(message).not.toContain('Maria');
    }
    expect(messageOf(() => translateGlob('Maria*['))).toContain('index 6');
  });

  it('refuses empty, oversized, control-character and malformed keys with E_INVALID_KEY', () => {
    expect(code(() => checkPart('', 'key', 10))).toBe('E_INVALID_KEY');
    expect(code(() => checkPart(5, 'key', 10))).toBe('E_INVALID_KEY');
    expect(code(() => checkPart('x'.repeat(11), 'key', 10))).toBe('E_INVALID_KEY');
    expect(code(() => checkPart('é'.repeat(6), 'key', 10))).toBe('E_INVALID_KEY');
    expect(code(() => checkPart('a\nb', 'key', 10))).toBe('E_INVALID_KEY');
    expect(code(() => checkPart('a\u0000', 'key', 10))).toBe('E_INVALID_KEY');
    expect(code(() => checkPart('\ud800', 'key', 10))).toBe('E_INVALID_KEY');
    expect(code(() => checkPart('x\tx', 'tag', 10))).toBe('E_INVALID_TAG');
    expect(code(() => checkPart('ok key', 'key', 10))).toBeUndefined();
  });

  it('errors are typed and recognised across copies by isInstance', () => {
    const error = new CacheInputError('E_INVALID_KEY', 'x');
    expect(error.code).toBe('E_INVALID_KEY');
    expect(CacheConfigError.isInstance({ [Symbol.for('@austa/cache.error')]: true })).toBe(true);
    expect(CacheConfigError.isInstance(new Error('x'))).toBe(false);
  });
});

describe('envelope', () => {
  it('round-trips grace, write id and tag versions, and rejects foreign bytes', () => {
    const ids = new WriteIds();
    const id = ids.next();
    expect(ids.next().equals(id)).toBe(false);
    const header = encodeHeader(1500, id, [
      { tag: 'clinic:9', version: '1700000000000001' },
      { tag: 'ünï', version: '7' },
    ]);
    const data = Buffer.concat([header, Buffer.from('payload')]);
    const parsed = decodeHeader(data);
    expect(parsed?.graceMs).toBe(1500);
    expect(data.subarray(6, 14).equals(id)).toBe(true);
    expect(parsed?.tags).toEqual([
      { tag: 'clinic:9', version: '1700000000000001' },
      { tag: 'ünï', version: '7' },
    ]);
    expect(data.subarray(parsed?.payloadOffset).toString()).toBe('payload');
    expect(decodeHeader(Buffer.from('plain string value'))).toBeUndefined();
    expect(decodeHeader(header.subarray(0, header.length - 3))).toBeUndefined();
  });
});

describe('L1 store', () => {
  const entry = (size: number, tags: string[] = []) => ({
    bytes: undefined,
    value: 1,
    size,
    freshUntil: 0,
    staleUntil: 0,
    trustUntil: 0,
    generation: 0,
    tags: tags.map((tag) => ({ tag, version: '1' })),
  });

  it('evicts the least recently used entry past maxEntries', () => {
    const l1 = new L1Store(2, 1000);
    l1.set('a', entry(1));
    l1.set('b', entry(1));
    l1.get('a');
    l1.set('c', entry(1));
    expect(l1.get('b')).toBeUndefined();
    expect(l1.get('a')).toBeDefined();
    expect(l1.evictions).toBe(1);
  });

  it('evicts past maxBytes and never holds an entry larger than maxBytes', () => {
    const l1 = new L1Store(100, 100);
    l1.set('a', entry(60));
    l1.set('b', entry(60));
    expect(l1.size).toBe(1);
    expect(l1.bytes).toBe(60);
    l1.set('huge', entry(101));
    expect(l1.get('huge')).toBeUndefined();
  });

  it('with frequency admission, a scan of one-off keys does not push out a hot key', () => {
    const lru = new L1Store(10, 1e9, 'lru');
    const tiny = new L1Store(10, 1e9, 'frequency');
    for (const l1 of [lru, tiny]) {
      for (let i = 0; i < 10; i++) {
        l1.get('hot');
        l1.set(`warm${i}`, entry(1));
      }
      l1.set('hot', entry(1));
      for (let i = 0; i < 50; i++) {
        l1.get(`once${i}`);
        l1.set(`once${i}`, entry(1));
      }
    }
    expect(lru.get('hot')).toBeUndefined();
    expect(tiny.get('hot')).toBeDefined();
    expect(tiny.rejections).toBeGreaterThan(0);
  });

  it('with frequency admission, a newcomer asked for more often than a warm entry gets in, and the hot oldest entry stays', () => {
    const l1 = new L1Store(4, 1e9, 'frequency');
    for (let i = 0; i < 10; i++) l1.get('hot');
    l1.set('hot', entry(1));
    for (const key of ['w1', 'w2', 'w3']) {
      l1.get(key);
      l1.set(key, entry(1));
    }
    // 'hot' is now the least recently used entry, and the most asked for.
    for (let i = 0; i < 3; i++) l1.get('new');
    l1.set('new', entry(1));
    expect(l1.size).toBe(4);
    expect(l1.get('new')).toBeDefined();
    expect(l1.get('hot')).toBeDefined();
  });

  it('with frequency admission, an L1 of 10% of 100k keys holds 80% of Zipf(1.0) lookups once warm', () => {
    const keys = 100_000;
    let state = 7;
    const random = () => {
      state = (state * 1664525 + 1013904223) >>> 0;
      return state / 2 ** 32;
    };
    const cdf = new Float64Array(keys);
    let sum = 0;
    for (let rank = 0; rank < keys; rank++) cdf[rank] = sum += 1 / (rank + 1);
    const draw = () => {
      const target = random() * sum;
      let low = 0;
      let high = keys - 1;
      while (low < high) {
        const middle = (low + high) >>> 1;
        if ((cdf[middle] as number) < target) low = middle + 1;
        else high = middle;
      }
      return `z:${low}`;
    };
    const l1 = new L1Store(keys / 10, 1e12, 'frequency');
    let hits = 0;
    const warm = 1_000_000;
    const measured = 500_000;
    for (let n = 0; n < warm + measured; n++) {
      const key = draw();
      if (l1.get(key) !== undefined) {
        if (n >= warm) hits++;
      } else l1.set(key, entry(1));
    }
    // The best any policy can do knowing only frequencies is the 10k most likely keys: 81%.
    expect(hits / measured).toBeGreaterThanOrEqual(0.8);
  });

  it('evicts every entry of a tag', () => {
    const l1 = new L1Store(100, 1000);
    l1.set('a', entry(1, ['t']));
    l1.set('b', entry(1, ['t', 'u']));
    l1.set('c', entry(1, ['u']));
    expect(l1.deleteTags(['t'])).toBe(2);
    expect(l1.size).toBe(1);
    expect(l1.deleteTags(['u'])).toBe(1);
  });
});

describe('breaker and in-flight tracker', () => {
  it('opens after the threshold, lets one probe through after openMs, and closes on success', () => {
    const breaker = new Breaker(3, 100);
    for (let i = 0; i < 3; i++) breaker.failure(0);
    expect(breaker.allow(50)).toBe(false);
    expect(breaker.allow(150)).toBe(true);
    expect(breaker.allow(151)).toBe(false);
    breaker.success();
    expect(breaker.allow(152)).toBe(true);
  });

  it('marks a ticket dirty when its key or everything was invalidated while it was in flight', () => {
    const tracker = new InflightTracker();
    const a = tracker.begin('k');
    tracker.invalidateKey('k');
    const b = tracker.begin('k');
    expect(tracker.end(a)).toBe(false);
    expect(tracker.end(b)).toBe(true);
    const c = tracker.begin('x');
    tracker.invalidateAll();
    expect(tracker.end(c)).toBe(false);
    tracker.invalidateKey('gone');
  });
});

describe('RedisIo', () => {
  it('expires only the unanswered commands, whatever order the others were answered in', async () => {
    const sent: Array<{
      resolve(value: unknown): void;
      toWritable(): string;
      name: string;
      args: unknown[];
    }> = [];
    const client = { sendCommand: (command: (typeof sent)[number]) => sent.push(command) };
    const io = new RedisIo(client as never, { timeoutMs: 50, failureThreshold: 100, openMs: 1000 });
    const outcomes = ['a', 'b', 'c', 'd', 'e'].map((key) =>
      io.send('get', [key], key).then(
        (value) => `ok ${String(value)}`,
        (error: { reason?: string }) => `failed ${error.reason}`,
      ),
    );
    // Answered out of order: the first, the last and the middle one; b and d never are.
    for (const index of [0, 4, 2]) sent[index]?.resolve(`v${index}`);
    const started = performance.now();
    expect(await Promise.all(outcomes)).toEqual([
      'ok v0',
      'failed timeout',
      'ok v2',
      'failed timeout',
      'ok v4',
    ]);
    expect(performance.now() - started).toBeLessThan(50 + 100);
    // What ioredis may still hold of an expired command goes out as a harmless PING.
    expect(sent[1]?.toWritable()).toContain('PING');
    expect(sent[0]?.toWritable()).toContain('get');
  });

  it('drops the arguments ioredis hangs on a failed command, so a key and value never reach a log through the cause', async () => {
    const client = {
      sendCommand(command: { name: string; args: unknown[]; reject(error: Error): void }) {
        const error = Object.assign(
          new Error('WRONGTYPE Operation against a key holding the wrong kind of value'),
          {
            name: 'ReplyError',
            command: { name: command.name, args: command.args },
          },
        );
        command.reject(error);
      },
    };
    const io = new RedisIo(client as never, { timeoutMs: 1000, failureThreshold: 5, openMs: 1000 });
    const error = await io
      .send('set', ['patient:Maria Silva', 'diagnosis: flu'], 'patient:Maria Silva')
      .catch((failure: unknown) => failure);
    const printed = (await import('node:util')).inspect(error, { depth: 10 });
    expect(printed).toContain('WRONGTYPE');
    expect(printed).not.toContain('Maria');
    expect(printed).not.toContain('flu');
  });
});
