import { escapeGlob } from '@austa/redis-cluster';
import { type ConversationErrorCode, ConversationInputError } from './errors.js';

/** Longest conversation, user or tenant id accepted, in UTF-16 code units. */
export const MAX_ID_LENGTH = 256;

// Characters kept as they are in key parts. Everything else, `%` included, is percent-encoded (UTF-8), so that the
// encoding is one-to-one and a key part never holds `{`, `}` (a hash tag), `:` (our separator) or a glob character.
const SAFE = /^[A-Za-z0-9._~@+=-]*$/;
// C0 and C1 control characters and DEL: never a legitimate id, often an injection attempt or a logging hazard.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
export function hasControlCharacter(value: string): boolean {
  return CONTROL.test(value);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Checks an id that comes from a caller (conversation, user or tenant id) and returns it unchanged. Refuses
 * non-strings, empty or blank strings, more than 256 characters, control characters and invalid UTF-16, with `code`.
 */
export function validateId(value: unknown, what: string, code: ConversationErrorCode): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConversationInputError(code, `${what} must be a non-empty string.`);
  }
  if (value.length > MAX_ID_LENGTH) {
    throw new ConversationInputError(code, `${what} is longer than ${MAX_ID_LENGTH} characters.`);
  }
  // Most ids (UUIDs, ULIDs, e-mail addresses) are plain ASCII: nothing more to check.
  if (SAFE.test(value)) return value;
  // A blank id is a caller's bug (an unset form field, a template gone wrong), never a conversation or a user.
  if (value.trim() === '') {
    throw new ConversationInputError(code, `${what} must not be blank.`);
  }
  if (CONTROL.test(value)) {
    throw new ConversationInputError(code, `${what} contains a control character.`);
  }
  if (LONE_SURROGATE.test(value)) {
    throw new ConversationInputError(code, `${what} is not valid UTF-16 (a lone surrogate).`);
  }
  return value;
}

/** Percent-encodes an id for use inside a key: one-to-one, and free of `{ } : * ? [ ] \`. */
export function encodeKeyPart(id: string): string {
  if (SAFE.test(id)) return id;
  let out = '';
  for (const char of id) {
    if (SAFE.test(char)) out += char;
    else
      for (const byte of Buffer.from(char, 'utf8'))
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Inverse of {@link encodeKeyPart}. */
export function decodeKeyPart(part: string): string {
  return part.includes('%') ? decodeURIComponent(part) : part;
}

/** The keys of one conversation: they share the hash tag `{c:<id>}`, so one script can touch them all. */
export interface ConversationKeys {
  meta: string;
  messages: string;
  intents: string;
}

export class KeyLayout {
  readonly prefix: string;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  conversation(conversationId: string): ConversationKeys {
    const tag = `{c:${encodeKeyPart(conversationId)}}`;
    return {
      meta: `${this.prefix}:meta:${tag}`,
      messages: `${this.prefix}:msgs:${tag}`,
      intents: `${this.prefix}:intents:${tag}`,
    };
  }

  /** The per-user index. The tenant is part of the owner's identity, so it is inside the hash tag too. */
  userIndex(userId: string, tenantId: string): string {
    return `${this.prefix}:user:{u:${encodeKeyPart(tenantId)}:${encodeKeyPart(userId)}}`;
  }

  /** SCAN pattern for every key of this store. */
  everything(): string {
    return `${escapeGlob(this.prefix)}:*`;
  }

  /** Classifies a key found by a scan: which kind, and the conversation id (or owner) it belongs to. */
  parse(
    key: string,
  ):
    | { kind: 'meta' | 'msgs' | 'intents'; conversationId: string }
    | { kind: 'user'; tenantId: string; userId: string }
    | undefined {
    if (!key.startsWith(`${this.prefix}:`)) return undefined;
    const rest = key.slice(this.prefix.length + 1);
    const match = /^(meta|msgs|intents):\{c:([^{}:]+)\}$/.exec(rest);
    if (match) {
      try {
        return {
          kind: match[1] as 'meta' | 'msgs' | 'intents',
          conversationId: decodeKeyPart(match[2] ?? ''),
        };
      } catch {
        return undefined;
      }
    }
    const user = /^user:\{u:([^{}:]*):([^{}:]+)\}$/.exec(rest);
    if (user) {
      try {
        return { kind: 'user', tenantId: decodeKeyPart(user[1] ?? ''), userId: decodeKeyPart(user[2] ?? '') };
      } catch {
        return undefined;
      }
    }
    return undefined;
  }
}

/** A prefix is ours to choose, but it must not carry a hash tag or glob characters of its own. */
export function validatePrefix(prefix: unknown): string {
  if (
    typeof prefix !== 'string' ||
    prefix.length === 0 ||
    prefix.length > 128 ||
    !/^[A-Za-z0-9._:-]+$/.test(prefix)
  ) {
    throw new ConversationInputError(
      'E_INVALID_CONFIG',
      'prefix must be 1-128 characters of A-Z a-z 0-9 . _ : - (no hash tag, no glob characters).',
    );
  }
  return prefix;
}
