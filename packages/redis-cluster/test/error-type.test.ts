import { describe, expect, it } from 'vitest';
import { clusterErrorKind, errorType, isNoScript, TIMEOUT_MESSAGE } from '../src/error-type.js';
import { RedisMaybeAppliedError } from '../src/errors.js';

const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

describe('errorType of Redis replies', () => {
  it.each([
    'ERR',
    'WRONGTYPE',
    'NOSCRIPT',
    'MOVED',
    'ASK',
    'TRYAGAIN',
    'CLUSTERDOWN',
    'CROSSSLOT',
    'LOADING',
    'BUSY',
    'BUSYKEY',
    'BUSYGROUP',
    'NOGROUP',
    'NOAUTH',
    'WRONGPASS',
    'NOPERM',
    'NOPROTO',
    'READONLY',
    'MASTERDOWN',
    'MISCONF',
    'EXECABORT',
    'OOM',
    'NOREPLICAS',
    'NOTBUSY',
    'UNBLOCKED',
    'UNKILLABLE',
    'NOTFOUND',
  ])('keeps the kind Redis replies with: %s', (kind) => {
    expect(errorType(reply(`${kind} something went wrong`))).toBe(kind);
  });

  it('records a made-up upper-case word as other, so scripts cannot flood the label', () => {
    expect(errorType(reply('MYAPPCODE bad input'))).toBe('other');
    expect(errorType(reply('E_PATIENT not found'))).toBe('other');
  });

  it('reads the kind only from the first word', () => {
    expect(errorType(reply('something WRONGTYPE'))).toBe('ERR');
    expect(errorType(reply('WRONGTYPEX glued'))).toBe('other');
    // A word longer than any Redis kind is not a kind.
    expect(errorType(reply(`${'A'.repeat(30)} x`))).toBe('ERR');
    expect(errorType(reply('A single letter'))).toBe('ERR');
  });

  it('is a reply error only by name: the same message from the client is mapped as a client error', () => {
    expect(errorType(new Error('WRONGTYPE Operation against a key'))).toBe('client_error');
  });
});

describe('errorType of client-side failures', () => {
  it.each([
    [TIMEOUT_MESSAGE, 'timeout'],
    ['Connection is closed.', 'connection_closed'],
    ["Stream isn't writeable and enableOfflineQueue options is false", 'offline'],
    ['enableOfflineQueue option is false', 'offline'],
    ['Too many Cluster redirections. Last error: Error: Connection is closed.', 'max_redirections'],
    [
      'Reached the max retries per request limit (which is 3). Refer to "maxRetriesPerRequest"',
      'max_retries',
    ],
    ['Failed to refresh slots cache.', 'cluster_unavailable'],
    ['None of startup nodes is available', 'cluster_unavailable'],
    ['Cluster is ended.', 'cluster_unavailable'],
    ['This Redis client was closed', 'client_closed'],
    ['Connection in subscriber mode, only subscriber commands may be used', 'subscriber_mode'],
    ['Transaction aborted by WATCH: EXEC returned null and ran no command.', 'watch_aborted'],
    ['The connection closed after incr was sent: Redis may have run it.', 'maybe_applied'],
  ])('%s is %s', (message, type) => {
    expect(errorType(new Error(message))).toBe(type);
  });

  it('matches the start of a message where ioredis starts it, so a quoted message is not mistaken', () => {
    expect(errorType(new Error('x Command timed out'))).toBe('client_error');
    expect(errorType(new Error('x Connection is closed.'))).toBe('client_error');
    expect(errorType(new Error('x Too many Cluster redirections'))).toBe('client_error');
    expect(errorType(new Error('x Reached the max retries per request limit'))).toBe('client_error');
    expect(errorType(new Error('x Failed to refresh slots cache'))).toBe('client_error');
    expect(errorType(new Error('x None of startup nodes is available'))).toBe('client_error');
    expect(errorType(new Error('x Cluster is ended'))).toBe('client_error');
    expect(errorType(new Error('x This Redis client was closed'))).toBe('client_error');
    expect(errorType(new Error('x Transaction aborted by WATCH'))).toBe('client_error');
    expect(errorType(new Error('x The connection closed after get was sent'))).toBe('client_error');
  });

  it('uses the class name of other errors, cut to 40 characters', () => {
    expect(errorType(new TypeError('x'))).toBe('TypeError');
    expect(errorType(new RedisMaybeAppliedError('incr'))).toBe('maybe_applied');
    const long = Object.assign(new Error('x'), { name: `${'N'.repeat(50)}` });
    expect(errorType(long)).toBe('N'.repeat(40));
    expect(errorType(undefined)).toBe('unknown');
  });
});

describe('clusterErrorKind', () => {
  it.each([
    ['MOVED 3999 127.0.0.1:7001', 'moved'],
    ['ASK 3999 127.0.0.1:7001', 'ask'],
    ['TRYAGAIN Multiple keys request during rehashing of slot', 'tryagain'],
    ['CLUSTERDOWN The cluster is down', 'clusterdown'],
    ['Connection is closed.', 'connection_closed'],
    ['MOVEDX 1', undefined],
    ['ASKING', undefined],
    ['ERR MOVED 1 a:1', undefined],
    ['x TRYAGAIN', undefined],
    ['x CLUSTERDOWN', undefined],
    ['x Connection is closed.', undefined],
  ])('%s is %s', (message, kind) => {
    expect(clusterErrorKind(message)).toBe(kind);
  });
});

describe('isNoScript', () => {
  it('is true only for errors that carry NOSCRIPT', () => {
    expect(isNoScript(reply('NOSCRIPT No matching script. Please use EVAL.'))).toBe(true);
    expect(isNoScript(reply('ERR unknown command'))).toBe(false);
    expect(isNoScript('NOSCRIPT')).toBe(false);
  });
});
