import { CodecError } from './errors.js';

/*
 * The serialized form of a value: one tag byte, then the tag's body. Little-endian, no alignment.
 *
 *   0x00 null            0x01 undefined        0x02 false            0x03 true
 *   0x04 int32 (4 B)     0x05 float64 (8 B)    0x06 string, 1-byte length      0x07 string, 4-byte length
 *   0x08 array (varint count, then values)     0x09 object (varint count, then string key + value pairs)
 *   0x0a Map (varint count, key + value)        0x0b Set (varint count, values)
 *   0x0c Date (float64 ms since epoch; NaN for an invalid date)
 *   0x0d BigInt (sign byte 0/1, then a 1-byte-length string of lower-case hex digits of the magnitude)
 *   0x0e Buffer (varint length, bytes)          0x0f Uint8Array (varint length, bytes)
 *   0x80-0xff the integers 0..127 in the tag itself
 *
 * Tags are never renumbered: a new type gets a new tag, and a reader meeting a tag it does not know fails with
 * E_DECODE instead of guessing. Object keys are strings (tag 0x06/0x07). Strings are UTF-8; a lone surrogate
 * (invalid UTF-16) is written as U+FFFD, as every UTF-8 encoder does.
 */
const NULL = 0x00;
const UNDEFINED = 0x01;
const FALSE = 0x02;
const TRUE = 0x03;
const INT32 = 0x04;
const FLOAT64 = 0x05;
const STRING8 = 0x06;
const STRING32 = 0x07;
const ARRAY = 0x08;
const OBJECT = 0x09;
const MAP = 0x0a;
const SET = 0x0b;
const DATE = 0x0c;
const BIGINT = 0x0d;
const BUFFER = 0x0e;
const BYTES = 0x0f;
const SMALL_INT = 0x80;

/**
 * Deepest nesting of objects, arrays, Maps and Sets that is encoded or decoded. It bounds recursion, so a crafted
 * stored value cannot overflow the stack of the process that reads it.
 */
export const MAX_DEPTH = 1000;

/** Strings of up to this many UTF-16 units fit a 1-byte length even when every unit takes 3 UTF-8 bytes. */
const SHORT_STRING_UNITS = 85;
/** The working buffer is kept between calls unless one value made it larger than this. */
const KEEP_BUFFER_BYTES = 1 << 20;
const INITIAL_BUFFER_BYTES = 8192;

type FastBuffer = Buffer & {
  // Node's Buffer has these natively (the public write/toString wrap them after argument checks); both are hot
  // in every encode and decode. Feature-checked at startup, so a runtime without them uses the public methods.
  utf8Write?: (value: string, offset: number, length: number) => number;
  utf8Slice?: (start: number, end: number) => string;
};

const probe = Buffer.alloc(1) as FastBuffer;
const hasFastUtf8 = typeof probe.utf8Write === 'function' && typeof probe.utf8Slice === 'function';

function writeUtf8(buffer: FastBuffer, value: string, offset: number, length: number): number {
  return hasFastUtf8
    ? (buffer.utf8Write as NonNullable<FastBuffer['utf8Write']>)(value, offset, length)
    : buffer.write(value, offset, length, 'utf8');
}

function readUtf8(buffer: FastBuffer, start: number, end: number): string {
  return hasFastUtf8
    ? (buffer.utf8Slice as NonNullable<FastBuffer['utf8Slice']>)(start, end)
    : buffer.toString('utf8', start, end);
}

function unserializable(what: string): CodecError {
  return new CodecError(
    'E_UNSERIALIZABLE',
    `Cannot encode ${what}. Supported: plain objects, arrays, strings, numbers, booleans, null, undefined, ` +
      'Date, BigInt, Map, Set, Buffer and Uint8Array (and objects with a toJSON() method).',
  );
}

function describe(value: object): string {
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' ? `a ${name}` : 'this object';
}

/** Writes values into a growing working buffer. One per codec; a re-entrant call (from toJSON) gets its own. */
export class Encoder {
  private buffer: FastBuffer = Buffer.allocUnsafeSlow(INITIAL_BUFFER_BYTES);
  private view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
  private position = 0;
  private limit = 0;
  private readonly ancestors: object[] = [];
  private tooLarge: (size: number) => CodecError = () => new CodecError('E_VALUE_TOO_LARGE', '');

  /**
   * Serializes `value` after `reserve` bytes left for the caller's header. Returns the working buffer and the end
   * offset; the bytes are valid until the next call, so the caller copies them out. Throws E_VALUE_TOO_LARGE as
   * soon as the output passes `limit` bytes, without serializing the rest.
   */
  encode(
    value: unknown,
    reserve: number,
    limit: number,
    tooLarge: (size: number) => CodecError,
  ): { buffer: Buffer; end: number } {
    this.position = reserve;
    this.limit = limit + reserve;
    this.tooLarge = tooLarge;
    this.ancestors.length = 0;
    this.write(value);
    return { buffer: this.buffer, end: this.position };
  }

  /** Drops an oversized working buffer so one large value does not pin its memory forever. */
  release(): void {
    this.ancestors.length = 0;
    if (this.buffer.length > KEEP_BUFFER_BYTES)
      this.replaceBuffer(Buffer.allocUnsafeSlow(INITIAL_BUFFER_BYTES));
  }

  private replaceBuffer(buffer: Buffer): void {
    this.buffer = buffer;
    this.view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  private ensure(bytes: number): void {
    if (this.position + bytes > this.buffer.length) this.grow(this.position + bytes);
  }

  private grow(needed: number): void {
    // Checked when the buffer grows, so a huge value is refused after about `limit` bytes of work, not all of it.
    if (this.position > this.limit) throw this.tooLarge(this.position);
    let size = this.buffer.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafeSlow(size);
    this.buffer.copy(grown, 0, 0, this.position);
    this.replaceBuffer(grown);
  }

  private write(value: unknown): void {
    switch (typeof value) {
      case 'string':
        this.writeString(value);
        return;
      case 'number':
        this.writeNumber(value);
        return;
      case 'boolean':
        this.ensure(1);
        this.buffer[this.position++] = value ? TRUE : FALSE;
        return;
      case 'undefined':
        this.ensure(1);
        this.buffer[this.position++] = UNDEFINED;
        return;
      case 'object':
        if (value === null) {
          this.ensure(1);
          this.buffer[this.position++] = NULL;
        } else {
          this.writeObjectLike(value);
        }
        return;
      case 'bigint':
        this.writeBigInt(value);
        return;
      default:
        // function, symbol
        throw unserializable(`a ${typeof value}`);
    }
  }

  private writeNumber(value: number): void {
    this.ensure(9);
    if (Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff && !Object.is(value, -0)) {
      if (value >= 0 && value < 128) {
        this.buffer[this.position++] = SMALL_INT | value;
      } else {
        this.buffer[this.position++] = INT32;
        this.view.setInt32(this.position, value, true);
        this.position += 4;
      }
      return;
    }
    // Non-integers, large integers, -0, NaN and ±Infinity keep their exact bits.
    this.buffer[this.position++] = FLOAT64;
    this.view.setFloat64(this.position, value, true);
    this.position += 8;
  }

  private writeString(value: string): void {
    const units = value.length;
    if (units <= SHORT_STRING_UNITS) {
      this.ensure(2 + units * 3);
      const buffer = this.buffer;
      const start = this.position + 2;
      let position = start;
      // ASCII is the common case (keys, ids, enums): copying it in JS beats a call into C++ for short strings.
      for (let index = 0; index < units; index++) {
        const unit = value.charCodeAt(index);
        if (unit >= 0x80) {
          position = start + writeUtf8(buffer, value, start, units * 3);
          break;
        }
        buffer[position++] = unit;
      }
      buffer[this.position] = STRING8;
      buffer[this.position + 1] = position - start;
      this.position = position;
    } else {
      this.ensure(5 + units * 3);
      const written = writeUtf8(this.buffer, value, this.position + 5, units * 3);
      this.buffer[this.position] = STRING32;
      this.view.setUint32(this.position + 1, written, true);
      this.position += 5 + written;
    }
  }

  private writeVarint(tag: number, count: number): void {
    this.ensure(6);
    const buffer = this.buffer;
    buffer[this.position++] = tag;
    let rest = count;
    while (rest >= 0x80) {
      buffer[this.position++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    buffer[this.position++] = rest;
  }

  private writeBytes(tag: number, bytes: Uint8Array): void {
    this.writeVarint(tag, bytes.length);
    this.ensure(bytes.length);
    this.buffer.set(bytes, this.position);
    this.position += bytes.length;
  }

  private writeBigInt(value: bigint): void {
    const negative = value < 0n;
    const digits = (negative ? -value : value).toString(16);
    if (digits.length > 255) throw unserializable('a BigInt longer than 1020 bits');
    this.ensure(3 + digits.length);
    this.buffer[this.position++] = BIGINT;
    this.buffer[this.position++] = negative ? 1 : 0;
    this.buffer[this.position++] = digits.length;
    for (let index = 0; index < digits.length; index++) {
      this.buffer[this.position++] = digits.charCodeAt(index);
    }
  }

  private writeObjectLike(value: object): void {
    const ancestors = this.ancestors;
    if (ancestors.includes(value)) throw unserializable('a value that contains itself (a cycle)');
    if (ancestors.length >= MAX_DEPTH) throw unserializable(`a value nested deeper than ${MAX_DEPTH} levels`);
    ancestors.push(value);
    const prototype = Object.getPrototypeOf(value);
    if (prototype === Object.prototype || prototype === null) {
      // A toJSON method is honoured on plain objects too, as JSON.stringify does.
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') this.writeOther(value);
      else this.writePlainObject(value as Record<string, unknown>);
    } else if (Array.isArray(value)) {
      this.writeVarint(ARRAY, value.length);
      // Index loop, not for...of: holes read as undefined, as JSON reads them as null.
      for (let index = 0; index < value.length; index++) this.write(value[index]);
    } else if (prototype === Date.prototype) {
      this.writeDate(value as Date);
    } else if (prototype === Buffer.prototype) {
      this.writeBytes(BUFFER, value as Buffer);
    } else if (prototype === Uint8Array.prototype) {
      this.writeBytes(BYTES, value as Uint8Array);
    } else if (prototype === Map.prototype) {
      this.writeMap(value as Map<unknown, unknown>);
    } else if (prototype === Set.prototype) {
      this.writeSet(value as Set<unknown>);
    } else {
      this.writeOther(value);
    }
    ancestors.pop();
  }

  private writeDate(value: Date): void {
    this.ensure(9);
    this.buffer[this.position++] = DATE;
    this.view.setFloat64(this.position, value.getTime(), true);
    this.position += 8;
  }

  private writeMap(value: Map<unknown, unknown>): void {
    this.writeVarint(MAP, value.size);
    for (const [key, entry] of value) {
      this.write(key);
      this.write(entry);
    }
  }

  private writeSet(value: Set<unknown>): void {
    this.writeVarint(SET, value.size);
    for (const entry of value) this.write(entry);
  }

  private writePlainObject(value: Record<string, unknown>): void {
    const keys = Object.keys(value);
    this.writeVarint(OBJECT, keys.length);
    for (const key of keys) {
      this.writeString(key);
      this.write(value[key]);
    }
  }

  /** Subclasses of the supported built-ins, class instances, and built-ins that are not in the format. */
  private writeOther(value: object): void {
    // A subclass is stored as its base type: the format has no class names to revive it by.
    if (value instanceof Date) this.writeDate(value);
    else if (Buffer.isBuffer(value)) this.writeBytes(BUFFER, value);
    else if (value instanceof Uint8Array) this.writeBytes(BYTES, value);
    else if (value instanceof Map) this.writeMap(value);
    else if (value instanceof Set) this.writeSet(value);
    else this.writeInstance(value);
  }

  private writeInstance(value: object): void {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') {
      // Decimal, ObjectId, Luxon and friends describe themselves, as they do for JSON.stringify.
      const replacement = toJSON.call(value);
      if (replacement === value) this.writePlainObject(value as Record<string, unknown>);
      else this.write(replacement);
      return;
    }
    if (value instanceof String || value instanceof Number || value instanceof Boolean) {
      this.write(value.valueOf());
      return;
    }
    if (
      ArrayBuffer.isView(value) ||
      value instanceof ArrayBuffer ||
      value instanceof Error ||
      value instanceof WeakRef ||
      value instanceof RegExp ||
      value instanceof Promise ||
      value instanceof WeakMap ||
      value instanceof WeakSet
    ) {
      // Encoding these as plain objects would silently lose them (an Error's message is not enumerable).
      throw unserializable(describe(value));
    }
    // Other class instances keep their own enumerable properties and become plain objects, as with JSON.
    this.writePlainObject(value as Record<string, unknown>);
  }
}

function corrupt(reason: string): CodecError {
  return new CodecError(
    'E_DECODE',
    `Cannot decode the value: ${reason}. The stored bytes are corrupt or not ours.`,
  );
}

// What an idle Decoder holds: shared, so that letting go of the caller's bytes allocates nothing per decode.
const NO_BYTES: FastBuffer = Buffer.alloc(0);
const NO_VIEW = new DataView(new ArrayBuffer(0));

/** Reads one serialized value. Every length is checked against the bytes present before anything is allocated. */
export class Decoder {
  private buffer: FastBuffer = NO_BYTES;
  private view: DataView = NO_VIEW;
  private position = 0;
  private end = 0;
  private depth = 0;

  decode(buffer: Buffer, start: number, end: number): unknown {
    this.buffer = buffer;
    this.view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    this.position = start;
    this.end = end;
    this.depth = 0;
    try {
      const value = this.read();
      if (this.position !== end) throw corrupt(`${end - this.position} bytes follow the value`);
      return value;
    } finally {
      // Do not keep the caller's bytes (possibly decrypted PHI) reachable from the codec.
      this.buffer = NO_BYTES;
      this.view = NO_VIEW;
    }
  }

  private need(bytes: number): void {
    if (this.position + bytes > this.end) throw corrupt('it ends in the middle of a value');
  }

  private readCount(minimumBytesEach: number): number {
    let count = 0;
    let shift = 0;
    for (;;) {
      this.need(1);
      const byte = this.buffer[this.position++] as number;
      if (shift === 28 && byte > 0x0f) throw corrupt('a length does not fit 32 bits');
      count += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    // Each element takes at least this many bytes, so a forged count cannot make us allocate more than we read.
    if (count * minimumBytesEach > this.end - this.position) throw corrupt('a length runs past the end');
    return count;
  }

  private read(): unknown {
    this.need(1);
    const tag = this.buffer[this.position++] as number;
    if (tag >= SMALL_INT) return tag & 0x7f;
    switch (tag) {
      case NULL:
        return null;
      case UNDEFINED:
        return undefined;
      case FALSE:
        return false;
      case TRUE:
        return true;
      case INT32: {
        this.need(4);
        const value = this.view.getInt32(this.position, true);
        this.position += 4;
        return value;
      }
      case FLOAT64: {
        this.need(8);
        const value = this.view.getFloat64(this.position, true);
        this.position += 8;
        return value;
      }
      case STRING8:
      case STRING32:
        return this.readStringBody(tag);
      case ARRAY: {
        const count = this.readCount(1);
        this.enter();
        const array = new Array(count);
        for (let index = 0; index < count; index++) array[index] = this.read();
        this.depth--;
        return array;
      }
      case OBJECT:
        return this.readObject();
      case MAP: {
        const count = this.readCount(2);
        this.enter();
        const map = new Map<unknown, unknown>();
        for (let index = 0; index < count; index++) {
          const key = this.read();
          map.set(key, this.read());
        }
        this.depth--;
        return map;
      }
      case SET: {
        const count = this.readCount(1);
        this.enter();
        const set = new Set<unknown>();
        for (let index = 0; index < count; index++) set.add(this.read());
        this.depth--;
        return set;
      }
      case DATE: {
        this.need(8);
        const time = this.view.getFloat64(this.position, true);
        this.position += 8;
        return new Date(time);
      }
      case BIGINT:
        return this.readBigInt();
      case BUFFER:
      case BYTES: {
        const length = this.readCount(1);
        // A copy: the caller's buffer may be reused (a pooled socket read) or hold other values' bytes.
        const slice = this.buffer.subarray(this.position, this.position + length);
        this.position += length;
        return tag === BUFFER ? Buffer.from(slice) : new Uint8Array(slice);
      }
      default:
        throw corrupt(`unknown type tag 0x${tag.toString(16).padStart(2, '0')}`);
    }
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw corrupt(`it is nested deeper than ${MAX_DEPTH} levels`);
  }

  private readObject(): Record<string, unknown> {
    const count = this.readCount(3);
    this.enter();
    const object: Record<string, unknown> = {};
    for (let index = 0; index < count; index++) {
      this.need(1);
      const tag = this.buffer[this.position++] as number;
      if (tag !== STRING8 && tag !== STRING32) throw corrupt('an object key is not a string');
      const key = this.readStringBody(tag);
      const value = this.read();
      if (key === '__proto__') {
        // Plain assignment would replace the prototype; the key is data, so it becomes an own property.
        Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
      } else {
        object[key] = value;
      }
    }
    this.depth--;
    return object;
  }

  private readStringBody(tag: number): string {
    let length: number;
    if (tag === STRING8) {
      this.need(1);
      length = this.buffer[this.position++] as number;
    } else {
      this.need(4);
      length = this.view.getUint32(this.position, true);
      this.position += 4;
    }
    this.need(length);
    const start = this.position;
    const end = start + length;
    this.position = end;
    if (length <= 16) {
      // Short ASCII (keys, ids, enums) is cheaper to build in JS than through a call into C++.
      const buffer = this.buffer;
      let text = '';
      for (let index = start; index < end; index++) {
        const byte = buffer[index] as number;
        if (byte >= 0x80) return readUtf8(buffer, start, end);
        text += String.fromCharCode(byte);
      }
      return text;
    }
    return readUtf8(this.buffer, start, end);
  }

  private readBigInt(): bigint {
    this.need(2);
    const sign = this.buffer[this.position++] as number;
    const length = this.buffer[this.position++] as number;
    this.need(length);
    if (sign > 1 || length === 0) throw corrupt('a BigInt is malformed');
    const digits = this.buffer.toString('latin1', this.position, this.position + length);
    this.position += length;
    if (!/^[0-9a-f]+$/.test(digits)) throw corrupt('a BigInt is malformed');
    const magnitude = BigInt(`0x${digits}`);
    return sign === 1 ? -magnitude : magnitude;
  }
}
