import { inspect } from 'node:util';
import { createCodec } from '@austa/codec';
import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConversationError, errors, estimateTokens } from '../src/index.js';
import { decodeKeyPart, encodeKeyPart, KeyLayout, validateId } from '../src/keys.js';
import { storeError } from '../src/runner.js';
import { parseElement } from '../src/values.js';

describe('key parts', () => {
  it('encodes ids one-to-one into parts without hash tags, separators or glob characters', () => {
    const ids = [
      'a',
      'a}',
      '{a}',
      'a%7D',
      'a%',
      '%',
      'a:b',
      'a*',
      '?',
      '[x]',
      'a\\b',
      'ümlaut',
      '😀',
      'a b',
      'a|b',
    ];
    const encoded = ids.map(encodeKeyPart);
    expect(new Set(encoded).size).toBe(ids.length);
    for (const [i, part] of encoded.entries()) {
      expect(part).toMatch(/^[A-Za-z0-9._~@+=%-]+$/);
      expect(decodeKeyPart(part)).toBe(ids[i]);
    }
    expect(encodeKeyPart('user-42@clinic.example')).toBe('user-42@clinic.example');
  });

  it('refuses empty, blank, overlong, control-character and invalid UTF-16 ids', () => {
    for (const bad of [
      '',
      ' ',
      '   ',
      '\u00a0\u2003',
      'x'.repeat(257),
      'a\u0000',
      'a\r\nb',
      'a\u0085',
      '\ud800x',
      5,
      null,
    ]) {
      expect(() => validateId(bad, 'id', 'E_INVALID_CONVERSATION_ID')).toThrowError(
        expect.objectContaining({ code: 'E_INVALID_CONVERSATION_ID' }),
      );
    }
    expect(validateId('x'.repeat(256), 'id', 'E_INVALID_CONVERSATION_ID')).toHaveLength(256);
  });

  it('puts one conversation in one hash tag and parses keys back', () => {
    const layout = new KeyLayout('app');
    const keys = layout.conversation('a{b}');
    expect(keys).toEqual({
      meta: 'app:meta:{c:a%7Bb%7D}',
      messages: 'app:msgs:{c:a%7Bb%7D}',
      intents: 'app:intents:{c:a%7Bb%7D}',
    });
    expect(layout.parse(keys.messages)).toEqual({ kind: 'msgs', conversationId: 'a{b}' });
    expect(layout.parse(layout.userIndex('u:1', 't'))).toEqual({
      kind: 'user',
      tenantId: 't',
      userId: 'u:1',
    });
    expect(layout.parse('app:other')).toBeUndefined();
  });
});

describe('default token estimate', () => {
  it('counts a quarter token per character of content, tool arguments and outputs, plus 4 per message', () => {
    expect(estimateTokens({ role: 'user', content: '' })).toBe(4);
    expect(estimateTokens({ role: 'user', content: 'abcdefgh' })).toBe(6);
    expect(
      estimateTokens({
        role: 'user',
        content: [
          { type: 'text', text: 'abcd' },
          { type: 'text', text: 'ef' },
        ],
      }),
    ).toBe(6);
    expect(
      estimateTokens({
        role: 'assistant',
        content: '',
        toolCalls: [{ id: '1', name: 'abcd', args: { q: 'x' } }],
      }),
    ).toBe(4 + Math.ceil((4 + '{"q":"x"}'.length) / 4));
    expect(
      estimateTokens({ role: 'tool', content: '', toolResults: [{ toolCallId: '1', output: 'abcd' }] }),
    ).toBe(5);
  });
});

describe('stored elements', () => {
  it('parses the clear header and leaves the body as bytes', () => {
    const body = createCodec().encode({ c: 'hi|there' });
    const element = Buffer.concat([Buffer.from('12|1700000000000|assistant|7|p|'), body]);
    expect(parseElement(element)).toEqual({
      seq: 12,
      createdAtMs: 1700000000000,
      role: 'assistant',
      tokens: 7,
      flags: 'p',
      body,
    });
    expect(() => parseElement(Buffer.from('1|2|root|3||x'))).toThrowError(
      expect.objectContaining({ code: 'E_DECODE' }),
    );
    for (const malformed of [
      'garbage',
      '',
      '|1|user|3||x',
      '1||user|3||x',
      '1|2|user||x',
      '1|2|user|3|',
      '1|2|users|3||x',
      '1|2|use|3||x',
      '1|2|uxer|3||x',
      '1|2|assistanx|3||x',
      '1x|2|user|3||x',
      '1|2|user|3',
    ]) {
      expect(() => parseElement(Buffer.from(malformed)), malformed).toThrowError(
        expect.objectContaining({ code: 'E_DECODE' }),
      );
    }
    expect(parseElement(Buffer.from('1|2|tool|0||'))).toMatchObject({ role: 'tool', flags: '', tokens: 0 });
  });
});

describe('errors', () => {
  it('are recognised across copies by a registered symbol and carry stable codes', () => {
    const error = new errors.ConversationNotFoundError('c');
    expect(ConversationError.isInstance(error)).toBe(true);
    expect(error.code).toBe('E_NOT_FOUND');
    const foreign = Object.assign(new Error('x'), {
      [Symbol.for('@austa/conversation-context.error')]: true,
    });
    expect(ConversationError.isInstance(foreign)).toBe(true);
    expect(ConversationError.isInstance(new Error('x'))).toBe(false);
  });

  it('keep no command arguments in their cause: message bodies and user ids must not reach a log', () => {
    const reply = Object.assign(new ReplyError('OOM command not allowed when used memory > maxmemory.'), {
      command: {
        name: 'evalsha',
        args: ['0123abcd', 3, 'meta', 'patient-42', 'clinic-7', Buffer.from('I was diagnosed last week')],
      },
    });
    const error = storeError(reply);
    expect(error.code).toBe('E_REDIS_UNAVAILABLE');
    const cause = error.cause as Error & { code?: unknown; command?: unknown };
    expect(cause.name).toBe('ReplyError');
    expect(cause.message).toContain('OOM');
    expect(cause.command).toEqual({ name: 'evalsha' });
    const logged = `${inspect(error, { depth: 10 })} ${JSON.stringify(error)} ${JSON.stringify(cause)}`;
    for (const secret of ['patient-42', 'clinic-7', 'diagnosed', 'I was'])
      expect(logged).not.toContain(secret);
  });
});
