import {
  type CompressionOptions,
  type CompressionSettings,
  compress,
  compressionSettings,
  decompress,
} from './compression.js';
import { type EncryptionOptions, KeyRing, keyIdOf } from './encryption.js';
import { AustaCodecError, CodecConfigError, CodecError } from './errors.js';
import { Decoder, Encoder } from './format.js';

/** Options of {@link createCodec}. */
export interface CodecOptions {
  /** AES-256-GCM at rest with key ids and rotation. Without it values are stored in clear. */
  encryption?: EncryptionOptions;
  /**
   * Deflate serialized values of at least `thresholdBytes` (default 1024) before encrypting them. Off by default:
   * small values do not shrink enough to pay for it, and see the README on compressing secrets.
   */
  compression?: false | CompressionOptions;
  /**
   * `encode()` refuses values whose encoded size (what would be stored) exceeds this many bytes, with
   * `E_VALUE_TOO_LARGE`. Default 1 MiB. Stores pass their own cap per call.
   */
  maxBytes?: number;
  /**
   * `decode()` refuses compressed values that would inflate past this many bytes, and `encode()` refuses to
   * compress values it could not decode. Default 64 MiB.
   */
  maxDecompressedBytes?: number;
}

/** Per-call options of `encode()`. */
export interface EncodeOptions {
  /**
   * Binds the ciphertext to its record: pass the Redis key or record id. A value copied under another key then
   * fails to decode with `E_DECRYPT`. Used only when encrypting; `decode()` must get the same bytes.
   */
  associatedData?: string | Uint8Array;
  /** Overrides the codec's `maxBytes` for this call. */
  maxBytes?: number;
}

/** Per-call options of `decode()`. */
export interface DecodeOptions {
  /** The associated data the value was encoded with. */
  associatedData?: string | Uint8Array;
}

/** What the header of an encoded value says, read without decrypting it. */
export interface EncodedInfo {
  /** Format version that wrote the value. */
  formatVersion: number;
  encrypted: boolean;
  compressed: boolean;
  /** Id of the key that encrypted the value; null when not encrypted. */
  keyId: string | null;
  /**
   * True when this codec would write the value differently: encrypted with a key other than the current one, or
   * stored in clear while this codec encrypts. Rotation jobs re-encode such values.
   */
  reencrypt: boolean;
}

/** Turns values into bytes for Redis and back. Synchronous: no promise per value. */
export interface Codec {
  /**
   * Serializes (and compresses and encrypts, as configured) a value. Throws `CodecError` with `E_UNSERIALIZABLE`
   * (function, symbol, cycle, unsupported built-in) or `E_VALUE_TOO_LARGE`; never returns partial output.
   */
  encode(value: unknown, options?: EncodeOptions): Buffer;
  /**
   * Reads bytes written by `encode()` of this or an earlier format version. Throws `CodecError` with `E_DECODE`
   * (corrupt, truncated, unknown format), `E_DECRYPT` (tampered, other associated data, refused clear value) or
   * `E_UNKNOWN_KEY`; never returns a guess.
   */
  decode<T = unknown>(data: Uint8Array, options?: DecodeOptions): T;
  /** Reads the header of an encoded value (format version, encryption key id) without decrypting it. */
  inspect(data: Uint8Array): EncodedInfo;
  /** True when encryption keys are configured. */
  readonly encrypts: boolean;
  /** Id of the key new values are encrypted with; null without encryption. */
  readonly currentKeyId: string | null;
  /** The default cap of `encode()`, in bytes. */
  readonly maxBytes: number;
}

/** Format version 1: the high nibble of the first byte. The low nibble holds flags. */
const FORMAT_VERSION = 1;
const HEADER = FORMAT_VERSION << 4;
const ENCRYPTED = 0x01;
const COMPRESSED = 0x02;
const KNOWN_FLAGS = ENCRYPTED | COMPRESSED;

export const CODEC_DEFAULTS = {
  maxBytes: 1024 * 1024,
  maxDecompressedBytes: 64 * 1024 * 1024,
} as const;

function positiveInteger(value: unknown, name: string, make: (message: string) => Error): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw make(`${name} must be a positive integer number of bytes (got ${String(value)}).`);
  }
  return value as number;
}

function associatedBytes(value: string | Uint8Array | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new CodecError('E_INVALID_ARGUMENT', 'associatedData must be a string or a Uint8Array.');
}

function asBuffer(data: Uint8Array): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new CodecError(
    'E_INVALID_ARGUMENT',
    `decode() expects the stored bytes as a Buffer or Uint8Array (got ${data === null ? 'null' : typeof data}); ` +
      'read values with the *Buffer commands of ioredis (getBuffer, hgetBuffer…).',
  );
}

function readHeader(data: Buffer): { version: number; flags: number } {
  if (data.length < 2) {
    throw new CodecError('E_DECODE', 'Cannot decode the value: it is shorter than any encoded value.');
  }
  const header = data[0] as number;
  const version = header >> 4;
  const flags = header & 0x0f;
  if (version !== FORMAT_VERSION || (flags & ~KNOWN_FLAGS) !== 0) {
    throw new CodecError(
      'E_DECODE',
      version > FORMAT_VERSION && version < 8
        ? `Cannot decode the value: it was written by a newer @austa/codec (format ${version}); upgrade this one.`
        : `Cannot decode the value: it does not start with an @austa/codec header (first byte 0x${header.toString(16).padStart(2, '0')}).`,
    );
  }
  return { version, flags };
}

/**
 * Creates a codec. Nothing is shared between codecs: each owns its working buffers and keys.
 * @example
 * const codec = createCodec({ encryption: { currentKeyId: '2025-01', keys: { '2025-01': process.env.KEY! } } });
 * const bytes = codec.encode({ at: new Date() }, { associatedData: key });
 * const value = codec.decode<{ at: Date }>(bytes, { associatedData: key });
 */
export function createCodec(options: CodecOptions = {}): Codec {
  if (typeof options !== 'object' || options === null) {
    throw new CodecConfigError('createCodec options must be an object.');
  }
  const config = (message: string) => new CodecConfigError(message);
  const maxBytes = positiveInteger(options.maxBytes ?? CODEC_DEFAULTS.maxBytes, 'maxBytes', config);
  const maxDecompressedBytes = positiveInteger(
    options.maxDecompressedBytes ?? CODEC_DEFAULTS.maxDecompressedBytes,
    'maxDecompressedBytes',
    config,
  );
  const keyRing = options.encryption === undefined ? null : new KeyRing(options.encryption);
  const compression: CompressionSettings | null = compressionSettings(options.compression);
  const decoder = new Decoder();
  // One idle encoder is kept; a re-entrant encode() (a toJSON that encodes) takes a fresh one.
  let idleEncoder: Encoder | null = new Encoder();

  function encode(value: unknown, encodeOptions?: EncodeOptions): Buffer {
    const limit =
      encodeOptions?.maxBytes === undefined
        ? maxBytes
        : positiveInteger(
            encodeOptions.maxBytes,
            'maxBytes',
            (message) => new CodecError('E_INVALID_ARGUMENT', message),
          );
    const associatedData = keyRing ? associatedBytes(encodeOptions?.associatedData) : undefined;
    const tooLarge = (size: number) =>
      new CodecError(
        'E_VALUE_TOO_LARGE',
        `The value encodes to at least ${size} bytes, above the limit of ${limit} bytes. Store less, or raise maxBytes.`,
      );
    const overhead = 1 + (keyRing ? keyRing.overhead : 0);
    // Compressed values may serialize past the cap and still fit once deflated.
    const serializedLimit = compression ? maxDecompressedBytes : Math.max(limit - overhead, 0);

    const encoder = idleEncoder ?? new Encoder();
    idleEncoder = null;
    try {
      // In clear, serialize right after a reserved header byte so the output needs one copy only.
      const reserve = keyRing ? 0 : 1;
      const { buffer, end } = encoder.encode(value, reserve, serializedLimit, tooLarge);
      let payload = buffer.subarray(reserve, end);
      let flags = 0;
      if (compression && payload.length >= compression.thresholdBytes) {
        const compressed = compress(payload, compression.level);
        if (compressed) {
          payload = compressed;
          flags |= COMPRESSED;
        }
      }
      const size = overhead + payload.length;
      if (size > limit) {
        if (keyRing) buffer.fill(0, 0, end);
        throw tooLarge(size);
      }
      if (keyRing) {
        const output = keyRing.encrypt(HEADER | ENCRYPTED | flags, payload, associatedData);
        // Best effort: do not leave the clear text of an encrypted value in a buffer we keep.
        buffer.fill(0, 0, end);
        return output;
      }
      if (flags === 0) {
        buffer[0] = HEADER;
        return Buffer.from(buffer.subarray(0, end));
      }
      const output = Buffer.allocUnsafe(1 + payload.length);
      output[0] = HEADER | flags;
      payload.copy(output, 1);
      return output;
    } catch (error) {
      if (AustaCodecError.isInstance(error)) throw error;
      // A getter or toJSON that threw, or a stack overflow while nesting: the value cannot be encoded.
      throw new CodecError(
        'E_UNSERIALIZABLE',
        `Cannot encode the value: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    } finally {
      encoder.release();
      idleEncoder = encoder;
    }
  }

  function decode<T>(data: Uint8Array, decodeOptions?: DecodeOptions): T {
    const input = asBuffer(data);
    const { flags } = readHeader(input);
    let plain = input;
    let start = 1;
    let wipe = false;
    if (flags & ENCRYPTED) {
      if (!keyRing) {
        throw new CodecError(
          'E_UNKNOWN_KEY',
          `The value is encrypted (key id ${JSON.stringify(keyIdOf(input))}) but this codec has no encryption keys.`,
        );
      }
      plain = keyRing.decrypt(input, associatedBytes(decodeOptions?.associatedData));
      start = 0;
      wipe = true;
    } else if (keyRing && !keyRing.acceptUnencrypted) {
      throw new CodecError(
        'E_DECRYPT',
        'The value is not encrypted, and this codec only accepts encrypted values ' +
          '(set encryption.acceptUnencrypted during a migration from clear values).',
      );
    }
    try {
      if (flags & COMPRESSED) {
        const inflated = decompress(plain.subarray(start), maxDecompressedBytes);
        if (wipe) plain.fill(0);
        plain = inflated;
        start = 0;
        wipe = true;
      }
      return decoder.decode(plain, start, plain.length) as T;
    } catch (error) {
      if (AustaCodecError.isInstance(error)) throw error;
      throw new CodecError('E_DECODE', `Cannot decode the value: ${(error as Error).message}`, {
        cause: error,
      });
    } finally {
      if (wipe) plain.fill(0);
    }
  }

  function inspect(data: Uint8Array): EncodedInfo {
    const input = asBuffer(data);
    const { version, flags } = readHeader(input);
    const encrypted = (flags & ENCRYPTED) !== 0;
    const keyId = encrypted ? keyIdOf(input) : null;
    return {
      formatVersion: version,
      encrypted,
      compressed: (flags & COMPRESSED) !== 0,
      keyId,
      reencrypt: keyRing ? keyId !== keyRing.currentKeyId : encrypted,
    };
  }

  return {
    encode,
    decode,
    inspect,
    encrypts: keyRing !== null,
    currentKeyId: keyRing?.currentKeyId ?? null,
    maxBytes,
  };
}
