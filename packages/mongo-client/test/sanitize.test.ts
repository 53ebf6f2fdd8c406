import { BSON } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { MongoArgumentError, UnsafeFilterError } from '../src/errors.js';
import { FORBIDDEN_OPERATORS, sanitizeFilter } from '../src/sanitize.js';

function refusal(filter: unknown, options?: Parameters<typeof sanitizeFilter>[1]) {
  try {
    sanitizeFilter(filter, options);
  } catch (error) {
    return error;
  }
  throw new Error('sanitizeFilter accepted the filter');
}

describe('sanitizeFilter', () => {
  it('returns the same filter for plain equality lookups', () => {
    const id = new BSON.ObjectId();
    const filter = {
      email: 'ada@example.org',
      age: 36,
      active: true,
      deletedAt: null,
      _id: id,
      createdAt: new Date(0),
      avatar: Buffer.from('x'),
      address: { city: 'London', zip: 'N1' },
      'profile.name': 'Ada',
      tags: ['a', 'b'],
      balance: new BSON.Decimal128('1.5'),
    };
    expect(sanitizeFilter(filter)).toBe(filter);
  });

  it.each([
    ['an operator where an email was expected', { email: { $ne: null } }, 'email.$ne'],
    ['$gt smuggled into a nested value', { address: { zip: { $gt: '' } } }, 'address.zip.$gt'],
    ['a top-level $or', { $or: [{ a: 1 }] }, '$or'],
    ['an operator inside an array element', { tags: [{ $regex: '.*' }] }, 'tags.0.$regex'],
    ['$where', { $where: 'sleep(10000)' }, '$where'],
    ['$expr', { $expr: { $gt: ['$a', 1] } }, '$expr'],
    ['$function deep down', { a: { b: { c: { $function: {} } } } }, 'a.b.c.$function'],
    ['$accumulator', { a: { $accumulator: {} } }, 'a.$accumulator'],
  ])('refuses %s, naming the path', (_label, filter, path) => {
    const error = refusal(filter) as UnsafeFilterError;
    expect(UnsafeFilterError.isInstance(error)).toBe(true);
    expect(error.code).toBe('E_UNSAFE_FILTER');
    expect(error.path).toBe(path);
    expect(error.message).toContain(path);
  });

  it('accepts the operators listed in allowOperators, at any depth', () => {
    const filter = { status: { $in: ['a', 'b'] }, $or: [{ age: { $gt: 18 } }, { vip: true }] };
    expect(sanitizeFilter(filter, { allowOperators: ['$in', '$or', '$gt'] })).toBe(filter);
    expect((refusal(filter, { allowOperators: ['$in', '$or'] }) as UnsafeFilterError).path).toBe(
      '$or.0.age.$gt',
    );
  });

  it('refuses $where, $expr, $function and $accumulator even when allowed', () => {
    for (const operator of FORBIDDEN_OPERATORS) {
      const error = refusal({ [operator]: 'x' }, { allowOperators: [operator] }) as UnsafeFilterError;
      expect(error.code).toBe('E_UNSAFE_FILTER');
      expect(error.message).toContain('never accepted');
    }
  });

  it('refuses regular expressions and JavaScript code values unless $regex is allowed', () => {
    expect((refusal({ email: /.*/ }) as UnsafeFilterError).path).toBe('email');
    expect((refusal({ email: new BSON.BSONRegExp('.*') }) as UnsafeFilterError).path).toBe('email');
    expect(
      (refusal({ note: new BSON.Code('return 1') }, { allowOperators: ['$regex'] }) as UnsafeFilterError)
        .path,
    ).toBe('note');
    expect(sanitizeFilter({ email: /^ada/ }, { allowOperators: ['$regex'] })).toEqual({ email: /^ada/ });
  });

  it('checks the entries of a Map and refuses objects with toBSON(), which the serializer would expand unchecked', () => {
    expect((refusal({ email: new Map([['$ne', null]]) }) as UnsafeFilterError).path).toBe('email.$ne');
    expect((refusal({ email: { toBSON: () => ({ $ne: null }) } }) as UnsafeFilterError).path).toBe('email');
    expect((refusal(new Map([['$where', 'sleep(1)']])) as UnsafeFilterError).path).toBe('$where');
    const plain = { tags: new Map([['a', 1]]) };
    expect(sanitizeFilter(plain)).toBe(plain);
  });

  it('refuses functions, symbols and NUL in field names', () => {
    expect((refusal({ a: () => 1 }) as UnsafeFilterError).path).toBe('a');
    expect((refusal({ a: Symbol('x') }) as UnsafeFilterError).path).toBe('a');
    expect((refusal({ 'a\u0000b': 1 }) as UnsafeFilterError).code).toBe('E_UNSAFE_FILTER');
  });

  it('refuses input nested deeper than maxDepth instead of recursing without bound', () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 10_000; i++) deep = { a: deep };
    expect((refusal(deep) as UnsafeFilterError).message).toContain('deeper than 32');
    expect((refusal({ a: { b: { c: 1 } } }, { maxDepth: 2 }) as UnsafeFilterError).path).toBe('a.b');
  });

  it('never puts the offending value in the message', () => {
    const error = refusal({ ssn: { $ne: '123-45-6789' } }) as UnsafeFilterError;
    expect(error.message).not.toContain('123-45-6789');
  });

  it('rejects a filter that is not an object, and bad options, with E_INVALID_ARGUMENT', () => {
    for (const filter of [null, undefined, 'email', 42, [{ a: 1 }]]) {
      expect(MongoArgumentError.isInstance(refusal(filter))).toBe(true);
    }
    expect((refusal({}, { allowOperators: ['in'] }) as MongoArgumentError).code).toBe('E_INVALID_ARGUMENT');
    expect((refusal({}, { maxDepth: 0 }) as MongoArgumentError).code).toBe('E_INVALID_ARGUMENT');
  });
});
