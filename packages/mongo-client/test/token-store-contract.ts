import { BSON, type ResumeToken } from 'mongodb';
import { expect, it } from 'vitest';
import type { ResumeTokenStore } from '../src/token-store.js';

export interface ContractSubject {
  store: ResumeTokenStore;
  /** How many tokens the store holds for this suite, to prove that refused input wrote nothing. */
  written(): Promise<number>;
  /** A stream name unique to this test run, so suites on shared servers never collide. */
  name(suffix: string): string;
}

export const BAD_STREAM_NAMES: unknown[] = [
  '',
  'a{b}',
  '{tag}',
  'a*',
  'a?b',
  'a[b]',
  'a b',
  'line\nbreak',
  'nul\u0000',
  '-leading-dash',
  'x'.repeat(129),
  42,
  null,
  undefined,
  { name: 'x' },
];

/** The behaviour every token store promises. Each store's suite calls this inside its own describe. */
export function tokenStoreContract(subject: () => ContractSubject): void {
  it('returns undefined for a stream that never saved a token', async () => {
    const { store, name } = subject();
    expect(await store.load(name('never'))).toBeUndefined();
  });

  it('returns the saved token, with its BSON types intact', async () => {
    const { store, name } = subject();
    const stream = name('round-trip');
    const token = { _data: '8263A1B2C3000000012B022C0100296E5A1004' };
    await store.save(stream, token);
    expect(await store.load(stream)).toEqual(token);
    // Resume tokens of MongoDB 3.6 carried binary data: it must come back as Binary, not as a plain object.
    const binary: ResumeToken = { _data: new BSON.Binary(Buffer.from([1, 2, 3, 250])) };
    await store.save(stream, binary);
    const loaded = (await store.load(stream)) as { _data: BSON.Binary };
    expect(loaded._data).toBeInstanceOf(BSON.Binary);
    expect(Buffer.from(loaded._data.buffer)).toEqual(Buffer.from([1, 2, 3, 250]));
  });

  it('replaces the previous token, keeps streams apart and forgets a deleted one', async () => {
    const { store, name } = subject();
    const first = name('first');
    const second = name('second');
    await store.save(first, { _data: 'a1' });
    await store.save(first, { _data: 'a2' });
    await store.save(second, { _data: 'b1' });
    expect(await store.load(first)).toEqual({ _data: 'a2' });
    expect(await store.load(second)).toEqual({ _data: 'b1' });
    await store.delete(first);
    expect(await store.load(first)).toBeUndefined();
    expect(await store.load(second)).toEqual({ _data: 'b1' });
    await store.delete(first);
  });

  it.each(BAD_STREAM_NAMES.map((value) => [JSON.stringify(value) ?? String(value), value]))(
    'refuses the stream name %s with E_INVALID_ARGUMENT and writes nothing',
    async (_label, bad) => {
      const { store, written } = subject();
      const before = await written();
      await expect(store.save(bad as string, { _data: 'x' })).rejects.toMatchObject({
        code: 'E_INVALID_ARGUMENT',
      });
      await expect(store.load(bad as string)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
      await expect(store.delete(bad as string)).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
      expect(await written()).toBe(before);
    },
  );

  it.each([
    ['null', null],
    ['a string', 'token'],
    ['an array', [1]],
    ['something too large to be a token', { _data: 'x'.repeat(70_000) }],
  ])('refuses %s as a token with E_TOKEN_STORE and writes nothing', async (_label, bad) => {
    const { store, written, name } = subject();
    const before = await written();
    await expect(store.save(name('bad-token'), bad as ResumeToken)).rejects.toMatchObject({
      code: 'E_TOKEN_STORE',
    });
    expect(await written()).toBe(before);
  });
}
