import { Command } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type CommandObserver,
  createTracker,
  deadlineOf,
  isScriptCommand,
  NO_TIMER,
  operationName,
  recordPipeline,
} from '../src/tracker.js';

afterEach(() => {
  vi.restoreAllMocks();
});

function recorder() {
  const calls: Array<{ name: string; outcome: string; seconds: number }> = [];
  const redirects: string[] = [];
  const observer: CommandObserver = {
    ok: (name, seconds) => calls.push({ name, outcome: 'ok', seconds }),
    error: (name, seconds, error) => calls.push({ name, outcome: (error as Error).message, seconds }),
    unfollowedRedirect: (kind) => redirects.push(kind),
  };
  return { calls, redirects, observer };
}

const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

class CustomScriptCommand extends Command {}

function clock(...times: number[]) {
  const spy = vi.spyOn(performance, 'now');
  for (const time of times) spy.mockReturnValueOnce(time);
  return spy;
}

describe('createTracker', () => {
  it('measures from the first track to the outcome, in seconds', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    clock(1000, 1250);
    const command = new Command('get', ['k']);
    tracker.track(command);
    command.resolve(Buffer.from('v'));
    await command.promise;
    expect(calls).toEqual([{ name: 'get', outcome: 'ok', seconds: 0.25 }]);
  });

  it('measures an error from the first track too', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    clock(2000, 2500);
    const command = new Command('incr', ['k']);
    tracker.track(command);
    command.reject(reply('ERR not an integer'));
    await expect(command.promise).rejects.toThrow();
    expect(calls).toEqual([{ name: 'incr', outcome: 'ERR not an integer', seconds: 0.5 }]);
  });

  it('counts a command once however often it is tracked, and keeps its start across a retried promise', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    clock(0, 3000);
    const command = new Command('get', ['k']);
    tracker.track(command);
    tracker.track(command);
    expect(tracker.pending).toBe(1);
    // A pipeline retry initialises the promise again: the new functions are wrapped, the start is kept.
    (command as unknown as { initPromise(): void }).initPromise();
    tracker.track(command);
    expect(tracker.pending).toBe(1);
    command.resolve(Buffer.from('v'));
    await command.promise;
    expect(calls).toEqual([{ name: 'get', outcome: 'ok', seconds: 3 }]);
    expect(tracker.pending).toBe(0);
  });

  it('gives the command its own functions back once settled, so late calls reach ioredis only', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    const command = new Command('get', ['k']);
    const own = { resolve: command.resolve, reject: command.reject };
    tracker.track(command);
    expect(command.resolve).not.toBe(own.resolve);
    command.resolve(Buffer.from('v'));
    expect(command.resolve).toBe(own.resolve);
    expect(command.reject).toBe(own.reject);
    await command.promise;
    command.reject(new Error('late'));
    expect(calls.map((call) => call.outcome)).toEqual(['ok']);
  });

  it('returns what ioredis returns from resolve and reject', async () => {
    const { observer } = recorder();
    const tracker = createTracker(observer);
    const command = new Command('get', ['k']);
    tracker.track(command);
    expect(command.resolve(Buffer.from('v'))).toBe(command.promise);
    const failing = new Command('get', ['k']);
    tracker.track(failing);
    expect(failing.reject(new Error('x'))).toBeUndefined();
    await expect(failing.promise).rejects.toThrow('x');
  });

  it('does nothing for a wrapper called on a command it does not track', () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    const tracked = new Command('get', ['k']);
    tracker.track(tracked);
    const other = new Command('get', ['k']);
    expect(tracked.resolve.call(other, Buffer.from('v'))).toBeUndefined();
    expect(tracked.reject.call(other, new Error('x'))).toBeUndefined();
    expect(calls).toEqual([]);
    expect(tracker.pending).toBe(1);
  });

  it('keeps a pipelined script out of the counts, also after its NOSCRIPT fallback', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    const first = new CustomScriptCommand('evalsha', ['sha', '0']);
    (first as unknown as { pipelineIndex: number }).pipelineIndex = 0;
    tracker.track(first);
    expect(tracker.pending).toBe(0);
    first.reject(reply('NOSCRIPT No matching script.'));
    await expect(first.promise).rejects.toThrow();
    expect(tracker.pending).toBe(0);
    const resend = new CustomScriptCommand('eval', ['body', '0']);
    tracker.track(resend);
    expect(tracker.pending).toBe(0);
    resend.resolve(Buffer.from('1'));
    await resend.promise;
    expect(calls).toEqual([]);
  });

  it('gives each script class its own fallback queue, first in first out', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    class OtherScript extends Command {}
    Object.defineProperty(OtherScript, 'name', { value: 'CustomScriptCommand' });
    const now = vi.spyOn(performance, 'now');
    const a1 = new CustomScriptCommand('evalsha', ['a', '0']);
    const a2 = new CustomScriptCommand('evalsha', ['a', '0']);
    now.mockReturnValue(100);
    tracker.track(a1);
    now.mockReturnValue(200);
    tracker.track(a2);
    a1.reject(reply('NOSCRIPT No matching script.'));
    a2.reject(reply('NOSCRIPT No matching script.'));
    await Promise.allSettled([a1.promise, a2.promise]);
    now.mockReturnValue(1000);
    // A script of another class does not take their starts.
    const b = new OtherScript('evalsha', ['b', '0']);
    tracker.track(b);
    const retry1 = new CustomScriptCommand('eval', ['a', '0']);
    const retry2 = new CustomScriptCommand('eval', ['a', '0']);
    tracker.track(retry1);
    tracker.track(retry2);
    retry1.resolve(Buffer.from('1'));
    retry2.resolve(Buffer.from('1'));
    b.resolve(Buffer.from('1'));
    await Promise.all([retry1.promise, retry2.promise, b.promise]);
    expect(calls).toEqual([
      { name: 'evalsha', outcome: 'ok', seconds: 0.9 },
      { name: 'evalsha', outcome: 'ok', seconds: 0.8 },
      { name: 'evalsha', outcome: 'ok', seconds: 0 },
    ]);
  });

  it('hands a NOSCRIPT start to the re-send of that call only, not to another call issued in between', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    const now = vi.spyOn(performance, 'now');
    now.mockReturnValue(100);
    const first = new CustomScriptCommand('evalsha', ['sha', '1', 'key:a']);
    tracker.track(first);
    first.reject(reply('NOSCRIPT No matching script.'));
    await first.promise.catch(() => {});
    now.mockReturnValue(500);
    // Another caller's call of the same script, issued before ioredis re-sends the first.
    const other = new CustomScriptCommand('evalsha', ['sha', '1', 'key:b']);
    tracker.track(other);
    const resend = new CustomScriptCommand('eval', ['return 1', '1', 'key:a']);
    tracker.track(resend);
    now.mockReturnValue(600);
    other.resolve(Buffer.from('1'));
    resend.resolve(Buffer.from('1'));
    await Promise.all([other.promise, resend.promise]);
    expect(calls).toEqual([
      { name: 'evalsha', outcome: 'ok', seconds: 0.1 },
      { name: 'evalsha', outcome: 'ok', seconds: 0.5 },
    ]);
  });

  it("keeps the first attempt's deadline for the re-send after NOSCRIPT instead of arming a new one", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const { calls, observer } = recorder();
      const tracker = createTracker(observer);
      const expire = (command: Command) => command.reject(new Error('Command timed out'));
      const first = new CustomScriptCommand('evalsha', ['sha', '0']);
      tracker.track(first, { ms: 1000, expire });
      vi.advanceTimersByTime(600);
      first.reject(reply('NOSCRIPT No matching script.'));
      await first.promise.catch(() => {});
      const resend = new CustomScriptCommand('eval', ['return 1', '0']);
      tracker.track(resend, { ms: 1000, expire });
      const outcome = resend.promise.then(
        () => 'ok',
        (error: Error) => error.message,
      );
      vi.advanceTimersByTime(399);
      await Promise.resolve();
      expect(calls).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(await outcome).toBe('Command timed out');
      expect(calls).toEqual([{ name: 'evalsha', outcome: 'Command timed out', seconds: 1 }]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps "no deadline" for the re-send of a script that blocks forever, and a fresh one for an unrelated call', async () => {
    const { observer } = recorder();
    const tracker = createTracker(observer);
    const expire = (command: Command) => command.reject(new Error('Command timed out'));
    const first = new CustomScriptCommand('evalsha', ['sha', '0', 'forever']);
    tracker.track(first, { ms: null, expire });
    expect(deadlineOf(first)).toBe(NO_TIMER);
    first.reject(reply('NOSCRIPT No matching script.'));
    await first.promise.catch(() => {});
    const other = new CustomScriptCommand('evalsha', ['sha', '0', 'other']);
    tracker.track(other, { ms: 1000, expire });
    expect(deadlineOf(other)).not.toBe(NO_TIMER);
    const resend = new CustomScriptCommand('eval', ['return 1', '0', 'forever']);
    tracker.track(resend, { ms: 1000, expire });
    expect(deadlineOf(resend)).toBe(NO_TIMER);
    for (const command of [other, resend]) command.resolve(Buffer.from('1'));
    await Promise.all([other.promise, resend.promise]);
  });

  it('records a NOSCRIPT that is the outcome the caller saw when no fallback follows, only once', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    const command = new Command('evalsha', ['sha', '0']);
    tracker.track(command);
    command.reject(reply('NOSCRIPT No matching script.'));
    command.reject(reply('NOSCRIPT again'));
    await expect(command.promise).rejects.toThrow();
    expect(calls.map((call) => call.outcome)).toEqual(['NOSCRIPT No matching script.']);
  });
});

describe('operation names', () => {
  it('records scripts as evalsha whichever form ioredis sent', () => {
    expect(operationName(new CustomScriptCommand('eval', ['body', '0']))).toBe('evalsha');
    expect(operationName(new Command('eval', ['body', '0']))).toBe('eval');
    expect(isScriptCommand(new Command('evalsha', []))).toBe(false);
  });
});

type Queued = Command & { inTransaction?: boolean; ignore?: boolean };
function queued(name: string, inTransaction = false): Queued {
  const command = new Command(name, []) as Queued;
  command.inTransaction = inTransaction;
  return command;
}

describe('recordPipeline, more shapes', () => {
  it('finds the replies of a MULTI that follows plain commands in the same pipeline', () => {
    const { calls, observer } = recorder();
    const wrong = reply('WRONGTYPE x');
    recordPipeline(
      observer,
      {
        queue: [
          queued('get'),
          queued('multi', true),
          queued('incr', true),
          queued('set', true),
          queued('exec'),
        ],
        results: [
          [null, 'v'],
          [null, 'OK'],
          [null, 'QUEUED'],
          [null, 'QUEUED'],
          [null, [wrong, 'OK']],
        ],
      },
      0.001,
    );
    expect(calls.map((call) => [call.name, call.outcome])).toEqual([
      ['get', 'ok'],
      ['multi', 'ok'],
      ['incr', 'WRONGTYPE x'],
      ['set', 'ok'],
      ['exec', 'ok'],
    ]);
  });

  it('keeps the own error of a command that failed to queue, and skips what ioredis ignores or routes', () => {
    const { calls, observer } = recorder();
    const abort = reply('EXECABORT Transaction discarded because of previous errors.');
    const readonly = queued('readonly');
    const readwrite = queued('readwrite');
    const ignored = queued('get');
    ignored.ignore = true;
    recordPipeline(
      observer,
      {
        queue: [readonly, readwrite, ignored, queued('multi', true), queued('set', true), queued('exec')],
        results: [[null, 'OK'], [null, 'OK'], [null, 'x'], [null, 'OK'], [null, 'QUEUED'], [abort]],
      },
      0.001,
    );
    expect(calls.map((call) => [call.name, call.outcome])).toEqual([
      ['multi', 'ok'],
      ['set', abort.message],
      ['exec', abort.message],
    ]);
  });

  it('treats a missing result as success and reports MOVED replies it did not follow', () => {
    const { calls, redirects, observer } = recorder();
    recordPipeline(
      observer,
      { queue: [queued('get'), queued('set')], results: [[reply('MOVED 1 127.0.0.1:7001')]] },
      0.002,
    );
    expect(calls).toEqual([
      { name: 'get', outcome: 'MOVED 1 127.0.0.1:7001', seconds: 0.002 },
      { name: 'set', outcome: 'ok', seconds: 0.002 },
    ]);
    expect(redirects).toEqual(['moved']);
  });

  it('does not report other errors as redirects, and works without a redirect callback', () => {
    const { calls, redirects, observer } = recorder();
    recordPipeline(observer, { queue: [queued('get')], results: [[reply('TRYAGAIN x')]] }, 0.001);
    expect(redirects).toEqual([]);
    const { unfollowedRedirect: _, ...bare } = observer;
    recordPipeline(bare, { queue: [queued('get')], results: [[reply('ASK 1 a:1')]] }, 0.001);
    expect(calls.map((call) => call.outcome)).toEqual(['TRYAGAIN x', 'ASK 1 a:1']);
  });

  it('skips ignored and routing commands when the whole pipeline failed', () => {
    const { calls, observer } = recorder();
    const ignored = queued('get');
    ignored.ignore = true;
    recordPipeline(
      observer,
      { queue: [queued('asking'), ignored, queued('set')], error: new Error('Connection is closed.') },
      0.001,
    );
    expect(calls.map((call) => call.name)).toEqual(['set']);
  });

  it('gives a command of an aborted transaction that queued fine the error of EXEC', () => {
    const { calls, observer } = recorder();
    const closed = new Error('Connection is closed.');
    recordPipeline(
      observer,
      {
        queue: [queued('multi', true), queued('incr', true), queued('exec')],
        results: [[null, 'OK'], [null, 'QUEUED'], [closed]],
      },
      0.001,
    );
    expect(calls.map((call) => call.outcome)).toEqual([
      'ok',
      'Connection is closed.',
      'Connection is closed.',
    ]);
  });
});
