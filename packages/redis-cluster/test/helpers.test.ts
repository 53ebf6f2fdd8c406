import { describe, expect, it } from 'vitest';
import { errorType, escapeGlob } from '../src/index.js';
import { parseInfo } from '../src/info.js';

describe('escapeGlob', () => {
  it('escapes every glob character so a user part matches only itself', () => {
    expect(escapeGlob('a*b?c[d]e\\f')).toBe('a\\*b\\?c\\[d\\]e\\\\f');
    expect(escapeGlob('plain-id_42')).toBe('plain-id_42');
  });

  it('rejects non-strings with a typed error', () => {
    expect(() => escapeGlob(42 as never)).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_ARGUMENT', message: 'escapeGlob expects a string.' }),
    );
  });
});

describe('errorType', () => {
  const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

  it('uses the Redis error prefix for reply errors', () => {
    expect(errorType(reply('WRONGTYPE Operation against a key holding the wrong kind of value'))).toBe(
      'WRONGTYPE',
    );
    expect(errorType(reply('NOSCRIPT No matching script'))).toBe('NOSCRIPT');
    expect(errorType(reply('weird lower case'))).toBe('ERR');
  });

  it('maps client-side failures to a fixed set', () => {
    expect(errorType(new Error('Command timed out'))).toBe('timeout');
    expect(errorType(new Error('Connection is closed.'))).toBe('connection_closed');
    expect(errorType(new Error("Stream isn't writeable and enableOfflineQueue options is false"))).toBe(
      'offline',
    );
    expect(errorType(new Error('Too many Cluster redirections. Last error: x'))).toBe('max_redirections');
    expect(errorType(new Error('something new'))).toBe('client_error');
    expect(errorType('not an error')).toBe('unknown');
  });
});

describe('parseInfo', () => {
  it('splits sections and fields', () => {
    const info = parseInfo(
      '# Server\r\nredis_version:7.0.15\r\nrole:x:y\r\n\r\n# Clients\r\nconnected_clients:3\r\n',
    );
    expect(info).toEqual({
      server: { redis_version: '7.0.15', role: 'x:y' },
      clients: { connected_clients: '3' },
    });
  });

  it('keeps fields without a section header (CLUSTER INFO)', () => {
    expect(parseInfo('cluster_state:ok\r\ncluster_slots_ok:16384\r\n')).toEqual({
      default: { cluster_state: 'ok', cluster_slots_ok: '16384' },
    });
  });
});
