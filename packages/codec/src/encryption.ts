import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomFillSync,
} from 'node:crypto';
import { CodecConfigError, CodecError } from './errors.js';

/** Options for AES-256-GCM encryption at rest. */
export interface EncryptionOptions {
  /** Id of the key that encrypts new values. Must be one of `keys`. */
  currentKeyId: string;
  /**
   * Every key that may have encrypted a stored value, by id. Ids are 1-32 characters of `A-Z a-z 0-9 . _ -`
   * (they are stored in each value, in clear). A key is 32 bytes: a `Uint8Array`, or a string of 64 hex digits,
   * or base64 / base64url of 32 bytes (`openssl rand -base64 32`). Keep retired keys listed until no stored value
   * uses them.
   */
  keys: Record<string, Uint8Array | string>;
  /**
   * Also decode values written without encryption, for the weeks of a migration from a plain store. Off by
   * default: otherwise anyone able to write to Redis could plant a value the application would trust.
   */
  acceptUnencrypted?: boolean;
}

const KEY_ID = /^[A-Za-z0-9._-]{1,32}$/;
const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/;
const KEY_BYTES = 32;
export const IV_BYTES = 12;
export const TAG_BYTES = 16;
/** Random IVs are drawn from a pool refilled in one call, instead of one CSPRNG call per value. */
const IV_POOL_BYTES = IV_BYTES * 256;

function keyBytes(id: string, key: Uint8Array | string): Buffer {
  let bytes: Buffer;
  if (key instanceof Uint8Array) {
    bytes = Buffer.from(key);
  } else if (typeof key === 'string' && HEX_KEY.test(key)) {
    bytes = Buffer.from(key, 'hex');
  } else if (typeof key === 'string' && BASE64_KEY.test(key)) {
    bytes = Buffer.from(key, 'base64');
  } else {
    // Never echo the key material: the message ends up in logs.
    throw new CodecConfigError(
      `encryption.keys["${id}"] must be 32 bytes: a Uint8Array, 64 hex digits, or base64 of 32 bytes ` +
        '(generate one with `openssl rand -base64 32`).',
    );
  }
  if (bytes.length !== KEY_BYTES) {
    throw new CodecConfigError(
      `encryption.keys["${id}"] is ${bytes.length} bytes; AES-256 needs exactly 32.`,
    );
  }
  if (bytes.every((byte) => byte === bytes[0])) {
    throw new CodecConfigError(
      `encryption.keys["${id}"] repeats one byte 32 times: that is a placeholder, not a key.`,
    );
  }
  return bytes;
}

/** The configured keys. Encrypts with the current one, decrypts with whichever id a value names. */
export class KeyRing {
  readonly currentKeyId: string;
  readonly acceptUnencrypted: boolean;
  private readonly keys = new Map<string, KeyObject>();
  private readonly currentKey: KeyObject;
  private readonly currentIdBytes: Buffer;
  private readonly ivPool = Buffer.allocUnsafeSlow(IV_POOL_BYTES);
  private ivOffset = IV_POOL_BYTES;

  constructor(options: EncryptionOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new CodecConfigError('encryption must be { currentKeyId, keys }.');
    }
    const { currentKeyId, keys } = options;
    if (typeof keys !== 'object' || keys === null || Object.keys(keys).length === 0) {
      throw new CodecConfigError('encryption.keys must list at least one key, by id.');
    }
    for (const [id, key] of Object.entries(keys)) {
      if (!KEY_ID.test(id)) {
        throw new CodecConfigError(
          `encryption key id ${JSON.stringify(id)} must be 1-32 characters of A-Z a-z 0-9 . _ - (it is stored in clear in every value).`,
        );
      }
      const bytes = keyBytes(id, key);
      this.keys.set(id, createSecretKey(bytes));
      bytes.fill(0);
    }
    const current = typeof currentKeyId === 'string' ? this.keys.get(currentKeyId) : undefined;
    if (!current) {
      throw new CodecConfigError(
        `encryption.currentKeyId ${JSON.stringify(currentKeyId)} is not one of encryption.keys (${[...this.keys.keys()].join(', ')}).`,
      );
    }
    if (options.acceptUnencrypted !== undefined && typeof options.acceptUnencrypted !== 'boolean') {
      throw new CodecConfigError('encryption.acceptUnencrypted must be a boolean.');
    }
    this.currentKeyId = currentKeyId;
    this.currentKey = current;
    this.currentIdBytes = Buffer.from(currentKeyId, 'latin1');
    this.acceptUnencrypted = options.acceptUnencrypted ?? false;
  }

  /** Bytes added around the plaintext: key id length byte, key id, IV, tag (the header byte not included). */
  get overhead(): number {
    return 1 + this.currentIdBytes.length + IV_BYTES + TAG_BYTES;
  }

  private nextIv(target: Buffer, offset: number): void {
    if (this.ivOffset + IV_BYTES > IV_POOL_BYTES) {
      randomFillSync(this.ivPool);
      this.ivOffset = 0;
    }
    this.ivPool.copy(target, offset, this.ivOffset, this.ivOffset + IV_BYTES);
    // Used IVs are wiped from the pool: nothing keeps a copy to hand out twice.
    this.ivPool.fill(0, this.ivOffset, this.ivOffset + IV_BYTES);
    this.ivOffset += IV_BYTES;
  }

  /**
   * `[header][id length][id][iv][ciphertext][tag]`. The header, id length and id are authenticated with the
   * associated data, so neither the flags nor the key id can be changed without failing decryption.
   */
  encrypt(header: number, plaintext: Buffer, associatedData: Buffer | undefined): Buffer {
    const id = this.currentIdBytes;
    const prefixBytes = 2 + id.length;
    const output = Buffer.allocUnsafe(prefixBytes + IV_BYTES + plaintext.length + TAG_BYTES);
    output[0] = header;
    output[1] = id.length;
    id.copy(output, 2);
    this.nextIv(output, prefixBytes);
    const cipher = createCipheriv(
      'aes-256-gcm',
      this.currentKey,
      output.subarray(prefixBytes, prefixBytes + IV_BYTES),
      { authTagLength: TAG_BYTES },
    );
    cipher.setAAD(authenticated(output.subarray(0, prefixBytes), associatedData));
    const ciphertext = cipher.update(plaintext);
    ciphertext.copy(output, prefixBytes + IV_BYTES);
    cipher.final();
    cipher.getAuthTag().copy(output, output.length - TAG_BYTES);
    return output;
  }

  /** Returns the plaintext, or throws E_UNKNOWN_KEY / E_DECRYPT / E_DECODE. Never returns unauthenticated bytes. */
  decrypt(data: Buffer, associatedData: Buffer | undefined): Buffer {
    const idLength = data[1] ?? 0;
    const prefixBytes = 2 + idLength;
    if (idLength === 0 || data.length < prefixBytes + IV_BYTES + TAG_BYTES) {
      throw new CodecError('E_DECODE', 'Cannot decode the value: its encryption envelope is truncated.');
    }
    const id = data.toString('latin1', 2, prefixBytes);
    const key = this.keys.get(id);
    if (!key) {
      throw new CodecError(
        'E_UNKNOWN_KEY',
        `The value was encrypted with key id ${JSON.stringify(id)}, which is not in encryption.keys. ` +
          'Add that key back (retire a key only after every value it encrypted has expired or been rewritten).',
      );
    }
    const decipher = createDecipheriv(
      'aes-256-gcm',
      key,
      data.subarray(prefixBytes, prefixBytes + IV_BYTES),
      {
        authTagLength: TAG_BYTES,
      },
    );
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    decipher.setAAD(authenticated(data.subarray(0, prefixBytes), associatedData));
    const plaintext = decipher.update(data.subarray(prefixBytes + IV_BYTES, data.length - TAG_BYTES));
    try {
      decipher.final();
    } catch (error) {
      plaintext.fill(0);
      throw new CodecError(
        'E_DECRYPT',
        'The value failed authentication: it was changed, or it belongs to another record (different associated ' +
          'data), or the key under its id is not the key that encrypted it.',
        { cause: error },
      );
    }
    return plaintext;
  }
}

/** Stored key id of an encrypted value, without decrypting it. */
export function keyIdOf(data: Buffer): string | null {
  const idLength = data[1] ?? 0;
  if (idLength === 0 || data.length < 2 + idLength) return null;
  return data.toString('latin1', 2, 2 + idLength);
}

function authenticated(prefix: Buffer, associatedData: Buffer | undefined): Buffer {
  return associatedData === undefined || associatedData.length === 0
    ? prefix
    : Buffer.concat([prefix, associatedData]);
}
