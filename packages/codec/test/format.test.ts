import { describe, expect, it } from 'vitest';
import { AustaCodecError, createCodec, MAX_DEPTH } from '../src/index.js';
import { codeOf, randomValue, seededRandom } from './support.js';

const codec = createCodec();
const roundTrip = <T>(value: T): T => codec.decode<T>(codec.encode(value));

describe('serialization', () => {
  it.each([
    ['null', null],
    ['true', true],
    ['false', false],
    ['zero', 0],
    ['a small integer', 127],
    ['the first integer past the one-byte form', 128],
    ['a negative integer', -5],
    ['the smallest int32', -0x80000000],
    ['the largest int32', 0x7fffffff],
    ['an integer past int32', 2 ** 40],
    ['the largest safe integer', Number.MAX_SAFE_INTEGER],
    ['a fraction', 0.1 + 0.2],
    ['negative zero', -0],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['the empty string', ''],
    ['an ASCII string', 'patient-123'],
    ['a string with accents', 'Consulta clínica'],
    ['a string with emoji (surrogate pairs)', 'ok 👍🏽 done'],
    ['a string of 85 three-byte characters', '語'.repeat(85)],
    ['a string of 86 three-byte characters', '語'.repeat(86)],
    ['a string of 70 KiB', 'ab'.repeat(35 * 1024)],
    ['an empty object', {}],
    ['an empty array', []],
    ['a Date', new Date('2024-02-29T12:34:56.789Z')],
    ['a Date before 1970', new Date(-1e12)],
    ['0n', 0n],
    ['a negative BigInt', -42n],
    ['a BigInt past 64 bits', 2n ** 200n + 7n],
    ['a Buffer', Buffer.from([0, 1, 2, 255])],
    ['an empty Buffer', Buffer.alloc(0)],
    ['a Uint8Array', new Uint8Array([9, 8, 7])],
    [
      'a Map with mixed keys',
      new Map<unknown, unknown>([
        [1, 'one'],
        ['two', 2],
        [null, { nested: true }],
      ]),
    ],
    ['a Set', new Set([1, 'a', null, 2n])],
  ])('round-trips %s exactly', (_name, value) => {
    expect(roundTrip(value)).toStrictEqual(value);
  });

  it('round-trips undefined at the top level, in objects and in arrays', () => {
    expect(roundTrip(undefined)).toBeUndefined();
    const decoded = roundTrip({ a: undefined, list: [1, undefined, 3] });
    expect(Object.keys(decoded)).toEqual(['a', 'list']);
    expect(decoded).toStrictEqual({ a: undefined, list: [1, undefined, 3] });
  });

  it('decodes numbers, Dates and long strings from bytes that sit at an odd offset inside a larger buffer', () => {
    const value = {
      int: -123456789,
      float: 0.1 + 0.2,
      big: 2 ** 40,
      at: new Date(-1e12),
      text: 'x'.repeat(300),
    };
    const encoded = codec.encode(value);
    // A slice of a bigger allocation, as a Redis reply or a cache envelope hands over: multi-byte numbers must be
    // read relative to the slice, not to the underlying memory.
    const host = Buffer.alloc(encoded.length + 7, 0xee);
    encoded.copy(host, 3);
    expect(codec.decode(host.subarray(3, 3 + encoded.length))).toEqual(value);
    expect(codeOf(() => codec.decode(host.subarray(3, 3 + encoded.length - 1)))).toBe('E_DECODE');
  });

  it('keeps an invalid Date invalid', () => {
    const decoded = roundTrip(new Date('not a date'));
    expect(decoded).toBeInstanceOf(Date);
    expect(Number.isNaN(decoded.getTime())).toBe(true);
  });

  it('keeps Buffer and Uint8Array apart, and returns copies that do not share memory with the input', () => {
    const encoded = codec.encode({ buffer: Buffer.from('ab'), bytes: new Uint8Array([1]) });
    const decoded = codec.decode<{ buffer: Buffer; bytes: Uint8Array }>(encoded);
    expect(Buffer.isBuffer(decoded.buffer)).toBe(true);
    expect(Buffer.isBuffer(decoded.bytes)).toBe(false);
    expect(decoded.bytes.buffer.byteLength).toBe(1);
    encoded.fill(0);
    expect(decoded.buffer.toString()).toBe('ab');
  });

  it('round-trips a Map keyed by objects and a Set of Dates', () => {
    const value = { index: new Map([[{ id: 1 }, new Set([new Date(1), new Date(2)])]]) };
    expect(roundTrip(value)).toStrictEqual(value);
  });

  it('keeps a __proto__ key as data and never changes the prototype of the decoded object', () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}, "safe": 1}');
    const decoded = roundTrip(value) as Record<string, unknown>;
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.hasOwn(decoded, '__proto__')).toBe(true);
    expect(decoded.polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(decoded, '__proto__')?.value).toEqual({ polluted: true });
  });

  it('encodes a value shared by two branches twice, as JSON does (only cycles are refused)', () => {
    const shared = { x: 1 };
    const decoded = roundTrip({ a: shared, b: shared, list: [shared, shared] });
    expect(decoded).toStrictEqual({ a: { x: 1 }, b: { x: 1 }, list: [{ x: 1 }, { x: 1 }] });
  });

  it('reads array holes as undefined', () => {
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point of this test
    expect(roundTrip([1, , 3])).toStrictEqual([1, undefined, 3]);
  });

  it('uses toJSON for class instances that have one, and own enumerable fields for others', () => {
    class Money {
      constructor(readonly cents: number) {}
      toJSON() {
        return `${this.cents / 100} BRL`;
      }
    }
    class Point {
      x = 1;
      y = 2;
    }
    expect(roundTrip({ price: new Money(1250), at: new Point() })).toStrictEqual({
      price: '12.5 BRL',
      at: { x: 1, y: 2 },
    });
  });

  it('unwraps boxed primitives and stores subclasses of Map, Set and Date as their base type', () => {
    class Registry extends Map<string, number> {}
    class Stamp extends Date {}
    const decoded = roundTrip({
      s: new String('x'),
      n: new Number(2),
      r: new Registry([['a', 1]]),
      d: new Stamp(5),
    });
    expect(decoded).toStrictEqual({ s: 'x', n: 2, r: new Map([['a', 1]]), d: new Date(5) });
  });

  it('nests exactly MAX_DEPTH levels', () => {
    let value: unknown = 'leaf';
    for (let level = 0; level < MAX_DEPTH; level++) value = [value];
    expect(roundTrip(value)).toStrictEqual(value);
  });

  it('round-trips 2,000 random values of every supported type', () => {
    const random = seededRandom(20240601);
    for (let run = 0; run < 2000; run++) {
      const value = randomValue(random, 4);
      expect(roundTrip(value)).toStrictEqual(value);
    }
  });

  it('lets a toJSON that encodes with the same codec do so (re-entrant encode)', () => {
    const inner = { secret: 'nested' };
    const value = {
      before: 'a'.repeat(100),
      wrapped: {
        toJSON: () => codec.encode(inner).toString('base64'),
      },
      after: 'z',
    };
    const decoded = roundTrip(value) as unknown as { before: string; wrapped: string; after: string };
    expect(decoded.before).toBe(value.before);
    expect(decoded.after).toBe('z');
    expect(codec.decode(Buffer.from(decoded.wrapped, 'base64'))).toEqual(inner);
  });
});

describe('values that cannot be encoded', () => {
  const cyclic: Record<string, unknown> = { name: 'a' };
  cyclic.self = cyclic;
  const cyclicThroughMap = new Map<string, unknown>();
  cyclicThroughMap.set('me', { list: [cyclicThroughMap] });
  const cyclicThroughSet = new Set<unknown>();
  cyclicThroughSet.add([cyclicThroughSet]);

  it.each([
    ['a function', { callback: () => 1 }],
    ['a symbol', { tag: Symbol('x') }],
    ['a function at the top level', () => 1],
    ['an object that contains itself', cyclic],
    ['a Map that contains itself', cyclicThroughMap],
    ['a Set that contains itself', cyclicThroughSet],
    ['an Error', { error: new Error('boom') }],
    ['a RegExp', /x/],
    ['a Float32Array', new Float32Array(2)],
    ['an ArrayBuffer', new ArrayBuffer(2)],
    ['a DataView', new DataView(new ArrayBuffer(2))],
    ['a WeakMap', new WeakMap()],
    ['a Promise', Promise.resolve(1)],
    ['a BigInt longer than 1020 bits', 2n ** 1100n],
  ])('refuses %s with E_UNSERIALIZABLE', (_name, value) => {
    expect(codeOf(() => codec.encode(value))).toBe('E_UNSERIALIZABLE');
  });

  it('refuses a value nested deeper than MAX_DEPTH', () => {
    let value: unknown = 1;
    for (let level = 0; level <= MAX_DEPTH; level++) value = { next: value };
    expect(codeOf(() => codec.encode(value))).toBe('E_UNSERIALIZABLE');
  });

  it('reports a getter or toJSON that throws as E_UNSERIALIZABLE with the cause attached', () => {
    const failure = new Error('getter failed');
    const value = {
      get broken() {
        throw failure;
      },
    };
    let caught: unknown;
    try {
      codec.encode(value);
    } catch (error) {
      caught = error;
    }
    expect(AustaCodecError.isInstance(caught)).toBe(true);
    expect((caught as AustaCodecError).code).toBe('E_UNSERIALIZABLE');
    expect((caught as Error).cause).toBe(failure);
    expect(
      codeOf(() =>
        codec.encode({
          x: {
            toJSON: () => {
              throw failure;
            },
          },
        }),
      ),
    ).toBe('E_UNSERIALIZABLE');
  });

  it('still encodes normally after a failed encode', () => {
    expect(codeOf(() => codec.encode({ a: 'x'.repeat(5000), f: () => 1 }))).toBe('E_UNSERIALIZABLE');
    expect(roundTrip({ ok: true })).toStrictEqual({ ok: true });
  });
});
