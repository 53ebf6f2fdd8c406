import { AustaCodecError, type Codec } from '@austa/codec';
import { ConversationError, ConversationInputError, ConversationStoreError } from './errors.js';
import { type MessageBody, ROLES, type Role } from './message.js';

const PIPE = 0x7c;
const ROLE_SET: ReadonlySet<string> = new Set(ROLES);

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

/** Splits a list element `seq|createdMs|role|tokens|flags|body` without copying the body. */
export function parseElement(element: Buffer): ElementHeader {
  const cuts: number[] = [];
  let from = 0;
  for (let i = 0; i < 5; i++) {
    const at = element.indexOf(PIPE, from);
    if (at < 0) corrupt();
    cuts.push(at);
    from = at + 1;
  }
  const [a, b, c, d, e] = cuts as [number, number, number, number, number];
  const role = element.toString('latin1', b + 1, c);
  if (!ROLE_SET.has(role)) corrupt();
  return {
    seq: Number(element.toString('latin1', 0, a)),
    createdAtMs: Number(element.toString('latin1', a + 1, b)),
    role: role as Role,
    tokens: Number(element.toString('latin1', c + 1, d)),
    flags: element.toString('latin1', d + 1, e),
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
