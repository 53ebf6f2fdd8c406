import { AustaCodecError, type Codec } from '@austa/codec';
import { ConversationError, ConversationInputError, ConversationStoreError } from './errors.js';
import type { MessageBody, Role } from './message.js';

const PIPE = 0x7c;

/** Encodes a value to store; codec failures become the store's typed input errors (nothing was written). */
export function encodeValue(
  codec: Codec,
  value: unknown,
  associatedData: string,
  maxBytes: number,
  what: string,
): Buffer {
  try {
    return codec.encode(value, { associatedData, maxBytes });
  } catch (error) {
    if (AustaCodecError.isInstance(error) && error.code === 'E_VALUE_TOO_LARGE') {
      throw new ConversationInputError(
        'E_MESSAGE_TOO_LARGE',
        `${what} is larger than ${maxBytes} bytes once encoded; nothing was written.`,
        { cause: error },
      );
    }
    if (AustaCodecError.isInstance(error) && error.code === 'E_UNSERIALIZABLE') {
      throw new ConversationInputError(
        'E_UNSERIALIZABLE',
        `${what} holds something that cannot be stored (${error.message}); nothing was written.`,
        { cause: error },
      );
    }
    throw new ConversationInputError(
      'E_INVALID_ARGUMENT',
      `${what} could not be encoded; nothing was written.`,
      {
        cause: error,
      },
    );
  }
}

/** Decodes stored bytes; a failure (tampered, other key, wrong key id) is `E_DECODE` with the codec error as cause. */
export function decodeValue<T>(codec: Codec, data: Uint8Array, associatedData: string, what: string): T {
  try {
    return codec.decode<T>(data, { associatedData });
  } catch (error) {
    if (ConversationError.isInstance(error)) throw error;
    const code = AustaCodecError.isInstance(error) ? error.code : 'unknown';
    throw new ConversationStoreError('E_DECODE', `Stored ${what} could not be decoded (${code}).`, {
      cause: error,
    });
  }
}

export interface ElementHeader {
  seq: number;
  createdAtMs: number;
  role: Role;
  tokens: number;
  flags: string;
  body: Buffer;
}

function corrupt(): never {
  throw new ConversationStoreError('E_DECODE', 'A stored message has a malformed header.');
}

const ROLE_BY_FIRST_BYTE: Record<number, Role> = { 115: 'system', 117: 'user', 97: 'assistant', 116: 'tool' };
const ROLE_BYTES: Record<Role, Buffer> = {
  system: Buffer.from('system'),
  user: Buffer.from('user'),
  assistant: Buffer.from('assistant'),
  tool: Buffer.from('tool'),
};
const ZERO = 0x30;

/** Reads the decimal number in `element[from, to)`; NaN when it holds anything but digits. */
function digits(element: Buffer, from: number, to: number): number {
  if (to <= from) return Number.NaN;
  let value = 0;
  for (let i = from; i < to; i++) {
    const digit = (element[i] as number) - ZERO;
    if (digit < 0 || digit > 9) return Number.NaN;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * Splits a list element `seq|createdMs|role|tokens|flags|body` without copying the body. Runs for every message read,
 * so it walks the header bytes instead of making strings of them.
 */
export function parseElement(element: Buffer): ElementHeader {
  const a = element.indexOf(PIPE);
  const b = a < 0 ? -1 : element.indexOf(PIPE, a + 1);
  const c = b < 0 ? -1 : element.indexOf(PIPE, b + 1);
  const d = c < 0 ? -1 : element.indexOf(PIPE, c + 1);
  const e = d < 0 ? -1 : element.indexOf(PIPE, d + 1);
  if (e < 0) corrupt();
  const role = ROLE_BY_FIRST_BYTE[element[b + 1] as number];
  if (role === undefined || ROLE_BYTES[role].compare(element, b + 1, c) !== 0) corrupt();
  const seq = digits(element, 0, a);
  const createdAtMs = digits(element, a + 1, b);
  const tokens = digits(element, c + 1, d);
  if (Number.isNaN(seq) || Number.isNaN(createdAtMs) || Number.isNaN(tokens)) corrupt();
  return {
    seq,
    createdAtMs,
    role,
    tokens,
    flags: e === d + 1 ? '' : element.toString('latin1', d + 1, e),
    body: element.subarray(e + 1),
  };
}

/** Associated data of a message body: its list, and the clear header fields a reader acts on. */
export function messageAad(messagesKey: string, role: string, flags: string): string {
  return `${messagesKey}|${role}|${flags}`;
}

/** Splits a `timeMs|body` value (intents, entities). */
export function splitTimed(value: Buffer): { atMs: number; body: Buffer } {
  const at = value.indexOf(PIPE);
  if (at < 0) throw new ConversationStoreError('E_DECODE', 'A stored value has a malformed header.');
  return { atMs: Number(value.toString('latin1', 0, at)), body: value.subarray(at + 1) };
}

export type { MessageBody };
