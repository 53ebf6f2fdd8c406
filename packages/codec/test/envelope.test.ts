import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AustaCodecError, CodecConfigError, CodecError, createCodec, errors } from '../src/index.js';
import { codeOf, randomValue, seededRandom } from './support.js';

const KEY_1 = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const KEY_2 = randomBytes(32);
const record = { patientId: 'p-123', diagnosis: 'hypertension', visits: [new Date(1), new Date(2)] };

function encrypting(currentKeyId = 'k1', keys: Record<string, Uint8Array | string> = { k1: KEY_1 }) {
  return createCodec({ encryption: { currentKeyId, keys } });
}

describe('format versions', () => {
  // Written by format version 1 (the first release). Later versions must keep reading these bytes.
  const golden = {
    plain:
      '10090c060269640603702d31060261740c00e032864f42794206016e08048104feffffff050000000000000c4005000000000000704206036269670d0010616235346139386365623166306164320604746167730b0106016106016d0a018100060562797465730e020102060275380f010306046e6f6e6501060174030601660206017306084f6cc3a120e8aa9e',
    compressed: '1200000125e36464632949ad286197606460284a2d484d2c5118a5d0820000',
    encrypted:
      '1306676f6c64656ec0c9b5b2dfc9e938cc2ea5150ff53dfb457fcbf36e7fb33ae7fa136e6bb67b9d8b65cf2086cd0086a8b0cb1660cef0ab9ba5b5d70c1d1a35bde05e0f1f2c60fed486f65f41a8a85b4520c2ee8d35eaffbdcf05094c4dbd7eca8db0557f00f62eda263f3a6dc11fe003601987daa8bce6748dfca585aceaad71df39d910a4b7a974595005a63d73e661c6a83e2159167a1dc793f3fcc34d0cb894ab0ceba6221f68d125b617ae7890f347e33834ea1a23115a6fe16e33a1a4f14304a2ffdd22f113f07a50bd00',
  };
  const value = {
    id: 'p-1',
    at: new Date('2025-01-02T03:04:05.678Z'),
    n: [1, -2, 3.5, 2 ** 40],
    big: 12345678901234567890n,
    tags: new Set(['a']),
    m: new Map([[1, null]]),
    bytes: Buffer.from([1, 2]),
    u8: new Uint8Array([3]),
    none: undefined,
    t: true,
    f: false,
    s: 'Olá 語',
  };

  it('reads a clear value written by format version 1', () => {
    expect(createCodec().decode(Buffer.from(golden.plain, 'hex'))).toStrictEqual(value);
  });

  it('reads a compressed value written by format version 1', () => {
    expect(createCodec().decode(Buffer.from(golden.compressed, 'hex'))).toStrictEqual({
      text: 'repeat '.repeat(40),
    });
  });

  it('reads an encrypted and compressed value written by format version 1', () => {
    const codec = createCodec({
      encryption: { currentKeyId: 'other', keys: { other: KEY_2, golden: KEY_1 } },
    });
    expect(
      codec.decode(Buffer.from(golden.encrypted, 'hex'), { associatedData: 'austa:test:{u:1}:record' }),
    ).toStrictEqual({ text: 'repeat '.repeat(40), value });
  });

  it('writes version 1 today: same bytes for the same clear value', () => {
    expect(createCodec().encode(value).toString('hex')).toBe(golden.plain);
  });

  it('refuses a newer format version with E_DECODE and says to upgrade', () => {
    const newer = Buffer.from(golden.plain, 'hex');
    newer[0] = 0x20;
    expect(() => createCodec().decode(newer)).toThrow(/newer @austa\/codec/);
    expect(codeOf(() => createCodec().decode(newer))).toBe('E_DECODE');
  });

  it.each([
    ['empty input', ''],
    ['a header alone', '10'],
    ['a JSON string', Buffer.from('{"a":1}').toString('hex')],
    ['unknown flag bits', '1480'],
    ['an unknown type tag', '107f'],
    ['a trailing byte', '108001'],
    ['an array count past the end', '1008ff7f'],
    ['a string longer than the input', '100610616263'],
    ['an object key that is not a string', '10090180 80'.replace(' ', '')],
    ['a malformed BigInt', '100d00027a7a'],
    ['a compressed value with a bad stream', '1200000010ffffffff'],
    ['a compressed value that declares 4 GiB', '12ffffffff0300'],
  ])('refuses %s with E_DECODE', (_name, hex) => {
    expect(codeOf(() => createCodec().decode(Buffer.from(hex, 'hex')))).toBe('E_DECODE');
  });

  it('refuses a value nested deeper than MAX_DEPTH when decoding', () => {
    const deep = Buffer.concat([
      Buffer.from([0x10]),
      Buffer.alloc(2002, 0x08).map((_, index) => (index % 2 ? 1 : 8)),
      Buffer.from([0x80]),
    ]);
    expect(codeOf(() => createCodec().decode(deep))).toBe('E_DECODE');
  });

  it('refuses every truncation of a valid value with E_DECODE, never a partial value', () => {
    const full = Buffer.from(golden.plain, 'hex');
    for (let length = 0; length < full.length; length++) {
      expect(codeOf(() => createCodec().decode(full.subarray(0, length)))).toBe('E_DECODE');
    }
  });

  it('answers random bytes with a value or a codec error, never another kind of error', () => {
    const random = seededRandom(7);
    const codec = createCodec();
    for (let run = 0; run < 5000; run++) {
      const bytes = Buffer.alloc(1 + Math.floor(random() * 40));
      for (let index = 0; index < bytes.length; index++) bytes[index] = Math.floor(random() * 256);
      bytes[0] = 0x10 | (bytes[0] as number & 0x03);
      try {
        codec.decode(bytes);
      } catch (error) {
        expect(AustaCodecError.isInstance(error)).toBe(true);
      }
    }
  });

  it('decodes a Uint8Array view as well as a Buffer', () => {
    const encoded = createCodec().encode({ a: 1 });
    const copy = new Uint8Array(encoded.length + 4);
    copy.set(encoded, 2);
    expect(createCodec().decode(copy.subarray(2, 2 + encoded.length))).toStrictEqual({ a: 1 });
  });

  it('refuses a string instead of bytes with E_INVALID_ARGUMENT and names the Buffer commands', () => {
    const codec = createCodec();
    expect(codeOf(() => codec.decode('{"a":1}' as unknown as Uint8Array))).toBe('E_INVALID_ARGUMENT');
    expect(() => codec.decode('x' as unknown as Uint8Array)).toThrow(/getBuffer/);
  });
});

describe('encryption', () => {
  it('round-trips with the associated data and reports the key id', () => {
    const codec = encrypting();
    const encoded = codec.encode(record, { associatedData: 'austa:session:{u:1}:s:abc' });
    expect(codec.decode(encoded, { associatedData: 'austa:session:{u:1}:s:abc' })).toStrictEqual(record);
    expect(codec.encrypts).toBe(true);
    expect(codec.currentKeyId).toBe('k1');
    expect(codec.inspect(encoded)).toEqual({
      formatVersion: 1,
      encrypted: true,
      compressed: false,
      keyId: 'k1',
      reencrypt: false,
    });
  });

  it('never stores the clear text, and encrypting the same value twice gives different bytes', () => {
    const codec = encrypting();
    const first = codec.encode(record);
    const second = codec.encode(record);
    expect(first.equals(second)).toBe(false);
    for (const encoded of [first, second]) {
      expect(encoded.includes('hypertension')).toBe(false);
      expect(encoded.includes('p-123')).toBe(false);
    }
  });

  it('refuses a value moved under another key (other associated data) with E_DECRYPT', () => {
    const codec = encrypting();
    const encoded = codec.encode(record, { associatedData: 'record:1' });
    expect(codeOf(() => codec.decode(encoded, { associatedData: 'record:2' }))).toBe('E_DECRYPT');
    expect(codeOf(() => codec.decode(encoded))).toBe('E_DECRYPT');
    expect(codec.decode(encoded, { associatedData: Buffer.from('record:1') })).toStrictEqual(record);
  });

  it('treats string and byte associated data alike', () => {
    const codec = encrypting();
    const encoded = codec.encode(record, { associatedData: new TextEncoder().encode('r:1') });
    expect(codec.decode(encoded, { associatedData: 'r:1' })).toStrictEqual(record);
  });

  it('refuses every single-bit change of an encrypted value, never returning garbage', () => {
    const codec = encrypting('k1', { k1: KEY_1, k2: KEY_2 });
    const encoded = codec.encode({ small: 'value' }, { associatedData: 'r' });
    for (let index = 0; index < encoded.length; index++) {
      for (const bit of [0x01, 0x80]) {
        const tampered = Buffer.from(encoded);
        tampered[index] = (tampered[index] as number) ^ bit;
        const code = codeOf(() => codec.decode(tampered, { associatedData: 'r' }));
        expect(['E_DECRYPT', 'E_DECODE', 'E_UNKNOWN_KEY']).toContain(code);
      }
    }
  });

  it('rotates: the new codec encrypts with the new key and still reads values of the old one', () => {
    const before = encrypting('k1', { k1: KEY_1 });
    const after = encrypting('k2', { k1: KEY_1, k2: KEY_2 });
    const old = before.encode(record);
    expect(after.decode(old)).toStrictEqual(record);
    expect(after.inspect(old)).toMatchObject({ keyId: 'k1', reencrypt: true });
    const fresh = after.encode(record);
    expect(after.inspect(fresh)).toMatchObject({ keyId: 'k2', reencrypt: false });
    expect(codeOf(() => before.decode(fresh))).toBe('E_UNKNOWN_KEY');
  });

  it('refuses a value whose key id is known but whose key is another with E_DECRYPT', () => {
    const encoded = encrypting('k1', { k1: KEY_1 }).encode(record);
    expect(codeOf(() => encrypting('k1', { k1: KEY_2 }).decode(encoded))).toBe('E_DECRYPT');
  });

  it('refuses clear values unless acceptUnencrypted is set, and encrypted values without keys', () => {
    const clear = createCodec().encode(record);
    expect(codeOf(() => encrypting().decode(clear))).toBe('E_DECRYPT');
    const migrating = createCodec({
      encryption: { currentKeyId: 'k1', keys: { k1: KEY_1 }, acceptUnencrypted: true },
    });
    expect(migrating.decode(clear)).toStrictEqual(record);
    expect(migrating.inspect(clear)).toMatchObject({ encrypted: false, reencrypt: true });
    expect(codeOf(() => createCodec().decode(encrypting().encode(record)))).toBe('E_UNKNOWN_KEY');
  });

  it('accepts keys as bytes, hex, base64 and base64url, and they are the same key', () => {
    const encoded = encrypting('k', { k: KEY_1 }).encode(record);
    for (const form of [
      KEY_1.toString('hex'),
      KEY_1.toString('base64'),
      KEY_1.toString('base64').replace(/=+$/, ''),
      KEY_1.toString('base64url'),
      new Uint8Array(KEY_1),
    ]) {
      expect(encrypting('k', { k: form }).decode(encoded)).toStrictEqual(record);
    }
  });

  it("copies the keys: changing the caller's buffer later changes nothing", () => {
    const key = Buffer.from(KEY_2);
    const codec = encrypting('k', { k: key });
    const encoded = codec.encode(record);
    key.fill(1);
    expect(codec.decode(encoded)).toStrictEqual(record);
  });

  it.each([
    ['no keys', { currentKeyId: 'a', keys: {} }],
    ['a current key id that is not listed', { currentKeyId: 'b', keys: { a: KEY_1 } }],
    ['a 16-byte key', { currentKeyId: 'a', keys: { a: randomBytes(16) } }],
    ['a 33-byte key', { currentKeyId: 'a', keys: { a: randomBytes(33) } }],
    ['a key that is a passphrase', { currentKeyId: 'a', keys: { a: 'correct horse battery staple' } }],
    ['a base64 string of 31 bytes', { currentKeyId: 'a', keys: { a: randomBytes(31).toString('base64') } }],
    ['an all-zero placeholder key', { currentKeyId: 'a', keys: { a: Buffer.alloc(32) } }],
    ['a key id with a space', { currentKeyId: 'a b', keys: { 'a b': KEY_1 } }],
    [
      'a key id longer than 32 characters',
      { currentKeyId: 'k'.repeat(33), keys: { ['k'.repeat(33)]: KEY_1 } },
    ],
    ['a non-boolean acceptUnencrypted', { currentKeyId: 'a', keys: { a: KEY_1 }, acceptUnencrypted: 'yes' }],
  ])('refuses %s with E_INVALID_CONFIG', (_name, encryption) => {
    let caught: unknown;
    try {
      createCodec({ encryption: encryption as never });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CodecConfigError);
    expect((caught as CodecConfigError).code).toBe('E_INVALID_CONFIG');
  });

  it('never puts key material in an error message', () => {
    const secret = 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw';
    try {
      createCodec({ encryption: { currentKeyId: 'a', keys: { a: secret } } });
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).not.toContain(secret);
    }
  });
});

describe('compression', () => {
  const text = { notes: 'Paciente relata dor de cabeça. '.repeat(100) };

  it('compresses values at or above the threshold and leaves smaller ones alone', () => {
    const codec = createCodec({ compression: { thresholdBytes: 512 } });
    const big = codec.encode(text);
    expect(codec.inspect(big).compressed).toBe(true);
    expect(big.length).toBeLessThan(createCodec().encode(text).length / 5);
    expect(codec.decode(big)).toStrictEqual(text);
    expect(codec.inspect(codec.encode({ a: 1 })).compressed).toBe(false);
  });

  it('keeps a value uncompressed when deflate does not make it smaller', () => {
    const codec = createCodec({ compression: { thresholdBytes: 0 } });
    const noise = { bytes: randomBytes(2000) };
    const encoded = codec.encode(noise);
    expect(codec.inspect(encoded).compressed).toBe(false);
    expect(codec.decode(encoded)).toStrictEqual(noise);
  });

  it('compresses before encrypting, and round-trips random values that way', () => {
    const codec = createCodec({
      encryption: { currentKeyId: 'k1', keys: { k1: KEY_1 } },
      compression: { thresholdBytes: 64 },
    });
    const encoded = codec.encode(text, { associatedData: 'r' });
    expect(codec.inspect(encoded)).toMatchObject({ encrypted: true, compressed: true });
    expect(codec.decode(encoded, { associatedData: 'r' })).toStrictEqual(text);
    const random = seededRandom(99);
    for (let run = 0; run < 300; run++) {
      const value = randomValue(random, 4);
      expect(
        codec.decode(codec.encode(value, { associatedData: 'r' }), { associatedData: 'r' }),
      ).toStrictEqual(value);
    }
  });

  it('refuses a compressed value that inflates past maxDecompressedBytes (a zip bomb)', () => {
    const writer = createCodec({ compression: { thresholdBytes: 0 } });
    const bomb = writer.encode({ zeros: Buffer.alloc(1024 * 1024) });
    expect(bomb.length).toBeLessThan(10_000);
    const reader = createCodec({ maxDecompressedBytes: 64 * 1024 });
    expect(codeOf(() => reader.decode(bomb))).toBe('E_DECODE');
  });

  it('refuses a compressed value whose stream is longer than it declares', () => {
    const encoded = createCodec({ compression: { thresholdBytes: 0 } }).encode(text);
    encoded.writeUInt32BE(encoded.readUInt32BE(1) - 10, 1);
    expect(codeOf(() => createCodec().decode(encoded))).toBe('E_DECODE');
  });
});

describe('size limits', () => {
  it('accepts a value of exactly maxBytes and refuses one byte more with E_VALUE_TOO_LARGE', () => {
    const exact = createCodec().encode('x'.repeat(1000)).length;
    expect(createCodec({ maxBytes: exact }).encode('x'.repeat(1000)).length).toBe(exact);
    expect(codeOf(() => createCodec({ maxBytes: exact - 1 }).encode('x'.repeat(1000)))).toBe(
      'E_VALUE_TOO_LARGE',
    );
  });

  it('counts the encryption envelope in the size', () => {
    const clearSize = createCodec().encode('x'.repeat(100)).length;
    const codec = createCodec({
      maxBytes: clearSize + 10,
      encryption: { currentKeyId: 'k1', keys: { k1: KEY_1 } },
    });
    expect(codeOf(() => codec.encode('x'.repeat(100)))).toBe('E_VALUE_TOO_LARGE');
  });

  it('takes a per-call maxBytes over the codec default', () => {
    const codec = createCodec();
    expect(codeOf(() => codec.encode({ a: 'x'.repeat(200) }, { maxBytes: 100 }))).toBe('E_VALUE_TOO_LARGE');
    expect(codec.encode({ a: 'x'.repeat(200) }).length).toBeGreaterThan(200);
    expect(codeOf(() => codec.encode(1, { maxBytes: 0 }))).toBe('E_INVALID_ARGUMENT');
  });

  it('measures the compressed size against maxBytes', () => {
    const codec = createCodec({ maxBytes: 1000, compression: { thresholdBytes: 0 } });
    const value = { text: 'a'.repeat(50_000) };
    expect(codec.decode(codec.encode(value))).toStrictEqual(value);
  });

  it('stops serializing a huge value soon after it passes the limit', () => {
    const codec = createCodec({ maxBytes: 64 * 1024 });
    const huge = Array.from({ length: 200_000 }, (_, index) => ({ index, text: 'row' }));
    expect(() => codec.encode(huge)).toThrow(/at least \d+ bytes/);
    const message = (() => {
      try {
        codec.encode(huge);
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    })();
    const reported = Number(/at least (\d+) bytes/.exec(message)?.[1]);
    expect(reported).toBeLessThan(4 * 64 * 1024);
  });

  it.each([
    ['maxBytes 0', { maxBytes: 0 }],
    ['maxBytes -1', { maxBytes: -1 }],
    ['maxBytes 1.5', { maxBytes: 1.5 }],
    ['maxBytes NaN', { maxBytes: Number.NaN }],
    ['maxDecompressedBytes Infinity', { maxDecompressedBytes: Number.POSITIVE_INFINITY }],
    ['compression level 0', { compression: { level: 0 } }],
    ['compression level 10', { compression: { level: 10 } }],
    ['a negative compression threshold', { compression: { thresholdBytes: -1 } }],
    ['compression true', { compression: true }],
  ])('refuses %s with E_INVALID_CONFIG', (_name, options) => {
    expect(codeOf(() => createCodec(options as never))).toBe('E_INVALID_CONFIG');
  });
});

describe('errors', () => {
  it('carry a stable code, are recognised by isInstance and are exported in the errors map', () => {
    let caught: unknown;
    try {
      createCodec().encode(() => 1);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CodecError);
    expect(AustaCodecError.isInstance(caught)).toBe(true);
    expect(AustaCodecError.isInstance(new Error('x'))).toBe(false);
    expect(AustaCodecError.isInstance({ code: 'E_DECODE' })).toBe(false);
    expect(errors).toEqual({ AustaCodecError, CodecError, CodecConfigError });
  });

  it('are recognised across two copies of the package through the registered symbol', () => {
    const foreign = Object.assign(new Error('from another copy'), {
      [Symbol.for('@austa/codec.error')]: true,
      code: 'E_DECODE',
    });
    expect(AustaCodecError.isInstance(foreign)).toBe(true);
  });
});
