import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { CodecConfigError, CodecError } from './errors.js';

/** Options for compressing serialized values before they are (optionally) encrypted and stored. */
export interface CompressionOptions {
  /** Values whose serialized form is at least this many bytes are compressed. Default 1024. */
  thresholdBytes?: number;
  /** zlib level, 1 (fastest) to 9 (smallest). Default 1. */
  level?: number;
}

export interface CompressionSettings {
  thresholdBytes: number;
  level: number;
}

export const COMPRESSION_DEFAULTS: CompressionSettings = { thresholdBytes: 1024, level: 1 };

/** Uncompressed length, stored in front of the deflate stream so the reader can bound its output exactly. */
const LENGTH_BYTES = 4;

export function compressionSettings(
  options: false | CompressionOptions | undefined,
): CompressionSettings | null {
  if (options === undefined || options === false) return null;
  if (typeof options !== 'object' || options === null) {
    throw new CodecConfigError('compression must be false or { thresholdBytes?, level? }.');
  }
  const thresholdBytes = options.thresholdBytes ?? COMPRESSION_DEFAULTS.thresholdBytes;
  const level = options.level ?? COMPRESSION_DEFAULTS.level;
  if (!Number.isSafeInteger(thresholdBytes) || thresholdBytes < 0) {
    throw new CodecConfigError('compression.thresholdBytes must be an integer >= 0.');
  }
  if (!Number.isInteger(level) || level < 1 || level > 9) {
    throw new CodecConfigError('compression.level must be an integer from 1 to 9.');
  }
  return { thresholdBytes, level };
}

/** `[uint32 BE length][deflate-raw]`, or null when compressing does not make the value smaller. */
export function compress(serialized: Buffer, level: number): Buffer | null {
  const deflated = deflateRawSync(serialized, { level });
  if (deflated.length + LENGTH_BYTES >= serialized.length) return null;
  const output = Buffer.allocUnsafe(LENGTH_BYTES + deflated.length);
  output.writeUInt32BE(serialized.length, 0);
  deflated.copy(output, LENGTH_BYTES);
  return output;
}

/** Inflates at most the declared length, so a forged value cannot make us allocate more (a zip bomb). */
export function decompress(data: Buffer, maxBytes: number): Buffer {
  if (data.length < LENGTH_BYTES + 1) throw corrupt('the compressed value is truncated');
  const declared = data.readUInt32BE(0);
  if (declared > maxBytes) {
    throw new CodecError(
      'E_DECODE',
      `Cannot decode the value: it declares ${declared} bytes once decompressed, above maxDecompressedBytes (${maxBytes}).`,
    );
  }
  let inflated: Buffer;
  try {
    inflated = inflateRawSync(data.subarray(LENGTH_BYTES), { maxOutputLength: Math.max(declared, 1) });
  } catch (error) {
    throw corrupt('the compressed bytes do not inflate', error);
  }
  if (inflated.length !== declared) throw corrupt('the compressed value has the wrong length');
  return inflated;
}

function corrupt(reason: string, cause?: unknown): CodecError {
  return new CodecError('E_DECODE', `Cannot decode the value: ${reason}.`, { cause });
}
