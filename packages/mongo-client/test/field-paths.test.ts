import { describe, expect, it } from 'vitest';
import { MongoArgumentError } from '../src/errors.js';
import { assertFieldPaths, createFieldMatcher, fieldPathTouched } from '../src/field-paths.js';

describe('fieldPathTouched', () => {
  it.each([
    ['status', 'status', true],
    ['status', 'statusCode', false],
    ['status', 'stat', false],
    ['address', 'address.city', true],
    ['address.city', 'address.city', true],
    ['address.city', 'address', true],
    ['address.city', 'address.zip', false],
    ['address.city', 'addresses.city', false],
    ['a.b.c', 'a.b', true],
    ['a.b.c', 'a.bc', false],
    ['a.b', 'a.b.c.d', true],
    // Array positions.
    ['items', 'items.0', true],
    ['items.0', 'items.0.price', true],
    ['items.0', 'items.1', false],
    ['items.0', 'items', true],
    ['items.price', 'items.3.price', true],
    ['items.price', 'items.3', true],
    ['items.price', 'items.3.qty', false],
    ['items.price', 'items.12.price.amount', true],
    ['orders.items.price', 'orders.0.items.5.price', true],
    ['orders.items.price', 'orders.0.items.5.qty', false],
    ['matrix.0.1', 'matrix.0.1', true],
    ['matrix.0.1', 'matrix.0.2', false],
    // A top-level field named with digits is a field, not an array position.
    ['a', '0.a', false],
    ['0', '0.a', true],
  ])('watching %s, an update of %s touches it: %s', (watched, touched, expected) => {
    expect(fieldPathTouched(watched, touched)).toBe(expected);
  });
});

describe('createFieldMatcher', () => {
  const matcher = createFieldMatcher(['status', 'address.city', 'items.price']);

  it('fires for updated, removed and truncated paths under, at or above a watched field', () => {
    expect(matcher({ updatedFields: { status: 'done' }, removedFields: [] })).toBe(true);
    expect(matcher({ updatedFields: { 'address.city': 'Paris' } })).toBe(true);
    expect(matcher({ updatedFields: { address: { city: 'Paris' } } })).toBe(true);
    expect(matcher({ updatedFields: { 'items.2.price': 5 } })).toBe(true);
    expect(matcher({ updatedFields: {}, removedFields: ['status'] })).toBe(true);
    expect(
      matcher({
        updatedFields: {},
        removedFields: [],
        truncatedArrays: [{ field: 'items', newSize: 1 } as { field: string }],
      }),
    ).toBe(true);
  });

  it('ignores entries of an odd shape instead of throwing', () => {
    expect(
      matcher({
        updatedFields: {},
        removedFields: [42 as never],
        truncatedArrays: [{} as { field: string }],
      }),
    ).toBe(false);
  });

  it('stays quiet for updates elsewhere', () => {
    expect(
      matcher({
        updatedFields: { name: 'Ada', 'address.zip': 'N1', 'items.2.qty': 1 },
        removedFields: ['note'],
      }),
    ).toBe(false);
    expect(matcher({})).toBe(false);
    expect(matcher(undefined)).toBe(false);
  });
});

describe('assertFieldPaths', () => {
  it.each([
    ['an empty list', []],
    ['a non-array', 'status'],
    ['an operator', ['$set']],
    ['a positional path', ['items.$.price']],
    ['an all-positional path', ['items.$[].price']],
    ['an empty segment', ['a..b']],
    ['a leading dot', ['.a']],
    ['an empty string', ['']],
    ['a number', [1]],
  ])('rejects %s with E_INVALID_ARGUMENT', (_label, fields) => {
    expect(() => assertFieldPaths(fields)).toThrow(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT', name: MongoArgumentError.name }),
    );
  });
});
