export type { Codec, CodecOptions, DecodeOptions, EncodedInfo, EncodeOptions } from './codec.js';
export { CODEC_DEFAULTS, createCodec } from './codec.js';
export type { CompressionOptions } from './compression.js';
export type { EncryptionOptions } from './encryption.js';
export type { CodecErrorCode } from './errors.js';
export { AustaCodecError, CodecConfigError, CodecError, errors } from './errors.js';
export { MAX_DEPTH } from './format.js';
