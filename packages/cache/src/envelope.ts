import { randomBytes } from 'node:crypto';

/*
 * What an entry holds in Redis: a small binary header, then the value as @austa/codec encoded it.
 *
 *   byte 0      0xC1: envelope format 1 (a later version reads every earlier one)
 *   byte 1      flags (1 = has tags)
 *   bytes 2-5   grace period in ms, uint32 BE: the key's PTTL includes it, so fresh means PTTL > grace
 *   bytes 6-13  write id: 4 random bytes per cache instance + a 4-byte counter; lets a script act on "the entry I
 *               read" only (extendTTL, sweep) and never on one written since
 *   bytes 14-15 tag count, uint16 BE; then per tag: uint16 length, UTF-8 tag, uint8 length, ASCII version
 *   rest        the codec payload
 *
 * The header is fixed-offset where scripts read it (grace, write id). When the codec encrypts, the Redis key and the
 * whole header are the associated data of the ciphertext, so a value copied to another key, or a header edited to
 * revive an invalidated entry, fails to decrypt.
 */

export const ENVELOPE_VERSION = 0xc1;
const FLAG_TAGS = 1;
export const FIXED_HEADER_BYTES = 16;
export const GRACE_OFFSET = 2;
export const WRITE_ID_OFFSET = 6;
export const WRITE_ID_BYTES = 8;

export interface TagVersion {
  tag: string;
  version: string;
}

export interface EnvelopeHeader {
  graceMs: number;
  tags: TagVersion[];
  /** Offset of the codec payload. */
  payloadOffset: number;
}

/** Write ids: unique per cache instance and write, without a random draw per write. */
export class WriteIds {
  private readonly instance = randomBytes(4);
  private counter = 0;

  next(): Buffer {
    const id = Buffer.allocUnsafe(WRITE_ID_BYTES);
    this.instance.copy(id, 0);
    this.counter = (this.counter + 1) >>> 0;
    id.writeUInt32BE(this.counter, 4);
    return id;
  }
}

/** The header bytes for an entry. */
export function encodeHeader(graceMs: number, writeId: Buffer, tags: readonly TagVersion[]): Buffer {
  let size = FIXED_HEADER_BYTES;
  const encoded: Array<[Buffer, string]> = [];
  for (const { tag, version } of tags) {
    const bytes = Buffer.from(tag, 'utf8');
    encoded.push([bytes, version]);
    size += 2 + bytes.length + 1 + version.length;
  }
  const header = Buffer.allocUnsafe(size);
  header[0] = ENVELOPE_VERSION;
  header[1] = tags.length > 0 ? FLAG_TAGS : 0;
  header.writeUInt32BE(graceMs, GRACE_OFFSET);
  writeId.copy(header, WRITE_ID_OFFSET);
  header.writeUInt16BE(tags.length, 14);
  let offset = FIXED_HEADER_BYTES;
  for (const [bytes, version] of encoded) {
    header.writeUInt16BE(bytes.length, offset);
    offset += 2;
    bytes.copy(header, offset);
    offset += bytes.length;
    header[offset] = version.length;
    offset += 1;
    header.write(version, offset, 'latin1');
    offset += version.length;
  }
  return header;
}

const NO_TAGS: TagVersion[] = [];

/** Parses the header, or returns undefined for bytes that are not an envelope of a known version. */
export function decodeHeader(data: Buffer): EnvelopeHeader | undefined {
  if (data.length < FIXED_HEADER_BYTES || data[0] !== ENVELOPE_VERSION) return undefined;
  const graceMs = data.readUInt32BE(GRACE_OFFSET);
  if (((data[1] as number) & FLAG_TAGS) === 0) {
    return { graceMs, tags: NO_TAGS, payloadOffset: FIXED_HEADER_BYTES };
  }
  const count = data.readUInt16BE(14);
  const tags: TagVersion[] = [];
  let offset = FIXED_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (offset + 2 > data.length) return undefined;
    const length = data.readUInt16BE(offset);
    offset += 2;
    if (offset + length + 1 > data.length) return undefined;
    const tag = data.toString('utf8', offset, offset + length);
    offset += length;
    const versionLength = data[offset] as number;
    offset += 1;
    if (offset + versionLength > data.length) return undefined;
    tags.push({ tag, version: data.toString('latin1', offset, offset + versionLength) });
    offset += versionLength;
  }
  return { graceMs, tags, payloadOffset: offset };
}

/** A copy of an entry's write id (bytes 6-13), for scripts that act only on the entry that was read. */
export function writeIdOf(data: Buffer): Buffer {
  return Buffer.from(data.subarray(WRITE_ID_OFFSET, WRITE_ID_OFFSET + WRITE_ID_BYTES));
}
