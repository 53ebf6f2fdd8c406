import { Command } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  blockingMs,
  commandDeadlineMs,
  createHookContext,
  hookSendCommand,
  isInternalCommand,
  isSafeToResend,
} from '../src/command-hook.js';
import { type CommandObserver, createTracker, deadlineOf, NO_TIMER, recordPipeline } from '../src/tracker.js';

afterEach(() => {
  vi.useRealTimers();
});

// A stand-in for an ioredis connection: the hook only touches sendCommand, so the fake records what reaches it.
function fakeConnection() {
  const sent: Command[] = [];
  const connection = {
    sendCommand(command: Command) {
      sent.push(command);
      return command.promise;
    },
  };
  return { connection, sent };
}

function recorder() {
  const calls: Array<{ name: string; outcome: string }> = [];
  const observer: CommandObserver = {
    ok: (name) => calls.push({ name, outcome: 'ok' }),
    error: (name, _seconds, error) => calls.push({ name, outcome: (error as Error).message }),
  };
  return { calls, observer };
}

function hooked(options: { closed?: boolean; withTracker?: boolean; timeoutMs?: number } = {}) {
  const { connection, sent } = fakeConnection();
  const { calls, observer } = recorder();
  const tracker = createTracker(observer);
  const context = createHookContext({
    commandTimeoutMs: options.timeoutMs ?? 1000,
    isClosed: () => options.closed ?? false,
    ...(options.withTracker === false ? {} : { tracker }),
  });
  hookSendCommand(connection as never, context);
  return { connection, sent, calls, tracker, context };
}

function reply(error: string): Error {
  return Object.assign(new Error(error), { name: 'ReplyError' });
}

describe('hookSendCommand', () => {
  it('measures a command once even when it is sent again (reconnect resend)', async () => {
    const { connection, sent, calls } = hooked();
    const command = new Command('get', ['k']);
    void connection.sendCommand(command);
    void connection.sendCommand(command);
    command.resolve(Buffer.from('v'));
    // A late second reply (after a timeout fired, say) must not be counted again.
    command.resolve(Buffer.from('v'));
    await command.promise;
    expect(sent).toHaveLength(2);
    expect(calls).toEqual([{ name: 'get', outcome: 'ok' }]);
  });

  it('records the error outcome of a failed command', async () => {
    const { connection, calls, tracker } = hooked();
    const command = new Command('incr', ['k']);
    void connection.sendCommand(command);
    expect(tracker.pending).toBe(1);
    command.reject(reply('WRONGTYPE Operation against a key holding the wrong kind of value'));
    await expect(command.promise).rejects.toThrow('WRONGTYPE');
    expect(calls).toEqual([
      { name: 'incr', outcome: 'WRONGTYPE Operation against a key holding the wrong kind of value' },
    ]);
    expect(tracker.pending).toBe(0);
  });

  it('times a command out from its first send and never sends it again afterwards', async () => {
    vi.useFakeTimers();
    const { connection, sent, calls, context } = hooked({ timeoutMs: 500 });
    const command = new Command('incr', ['k']);
    void connection.sendCommand(command);
    const outcome = command.promise.then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    vi.advanceTimersByTime(499);
    expect(context.dead.has(command)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(await outcome).toBe('Command timed out');
    expect(context.dead.has(command)).toBe(true);
    // An offline queue flushing later, or a cluster retry, sends it again: it must not reach the connection.
    void connection.sendCommand(command);
    expect(sent).toHaveLength(1);
    expect(calls).toEqual([{ name: 'incr', outcome: 'Command timed out' }]);
  });

  it('drops a timed-out pipelined command without touching the batch, which may not know its connection yet', () => {
    const { connection, context } = hooked();
    const command = new Command('set', ['k', 'v']);
    context.dead.add(command);
    const writes: string[] = [];
    const send = connection.sendCommand as (command: Command, stream?: unknown) => unknown;
    // A cluster pipeline's batch before routing: its destination has no connection, and writing to it would throw.
    void send.call(connection, command, {
      isPipeline: true,
      destination: {},
      write: (data: string) => writes.push(data),
    });
    expect(writes).toEqual([]);
  });

  it('refuses to send again a write that was in flight when its connection closed, and lets a read go', async () => {
    const { connection, sent, context } = hooked();
    const write = new Command('incr', ['k']);
    const read = new Command('get', ['k']);
    context.inFlight.add(write);
    context.inFlight.add(read);
    const outcome = write.promise.then(
      () => 'sent',
      (error: { code?: string }) => error.code,
    );
    void connection.sendCommand(write);
    void connection.sendCommand(read);
    expect(await outcome).toBe('E_MAYBE_APPLIED');
    expect(sent).toEqual([read]);
  });

  it('does not arm a timer for a block without end, and arms block time plus the timeout otherwise', () => {
    vi.useFakeTimers();
    const { connection } = hooked({ timeoutMs: 500 });
    const forever = new Command('blpop', ['q', '0']);
    void connection.sendCommand(forever);
    expect(deadlineOf(forever)).toBe(NO_TIMER);
    const bounded = new Command('brpop', ['q', '2']);
    void connection.sendCommand(bounded);
    const settled = vi.fn();
    bounded.promise.then(settled, settled);
    vi.advanceTimersByTime(2499);
    expect(settled).not.toHaveBeenCalled();
  });

  describe('shared deadline timers', () => {
    // The tracker groups commands by the clock it measures with, so these tests fake it too.
    const fakeClock = () =>
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    /** Sends a GET through the hooked connection and returns its command. */
    const sendGet = (connection: { sendCommand(command: Command): unknown }, key: string) => {
      const command = new Command('get', [key]);
      void connection.sendCommand(command);
      return command;
    };
    const outcomeOf = (command: Command) =>
      command.promise.then(
        () => 'ok',
        (error: Error) => error.message,
      );

    it('arms one timer for commands sent within 0.1 ms, and still times out each that got no answer', async () => {
      fakeClock();
      const { connection, calls } = hooked({ timeoutMs: 500 });
      const commands = ['a', 'b', 'c'].map((key) => new Command('get', [key]));
      for (const command of commands) void connection.sendCommand(command);
      expect(vi.getTimerCount()).toBe(1);
      const outcomes = commands.map(outcomeOf);
      commands[1]?.resolve(Buffer.from('v'));
      vi.advanceTimersByTime(499);
      await Promise.resolve();
      expect(calls).toEqual([{ name: 'get', outcome: 'ok' }]);
      vi.advanceTimersByTime(1);
      expect(await Promise.all(outcomes)).toEqual(['Command timed out', 'ok', 'Command timed out']);
    });

    it('gives a command sent a millisecond later its own timer and its whole deadline', async () => {
      fakeClock();
      const { connection } = hooked({ timeoutMs: 500 });
      const first = sendGet(connection, 'a');
      vi.advanceTimersByTime(1);
      const second = sendGet(connection, 'b');
      expect(vi.getTimerCount()).toBe(2);
      const outcomes = [outcomeOf(first), outcomeOf(second)];
      vi.advanceTimersByTime(499);
      second.resolve(Buffer.from('late but in time'));
      expect(await Promise.all(outcomes)).toEqual(['Command timed out', 'ok']);
    });

    it('times a command that joined a shared timer out no more than 0.1 ms before its own deadline', async () => {
      fakeClock();
      const { connection } = hooked({ timeoutMs: 500 });
      const first = sendGet(connection, 'a');
      vi.advanceTimersByTime(0.05);
      const joined = sendGet(connection, 'b');
      expect(vi.getTimerCount()).toBe(1);
      const settled = vi.fn();
      joined.promise.then(settled, settled);
      vi.advanceTimersByTime(499.9);
      await Promise.resolve();
      expect(settled).not.toHaveBeenCalled();
      vi.advanceTimersByTime(0.05);
      expect(await outcomeOf(joined)).toBe('Command timed out');
      expect(await outcomeOf(first)).toBe('Command timed out');
    });

    it('never groups commands with different deadlines (a blocking command keeps its block time)', async () => {
      fakeClock();
      const { connection } = hooked({ timeoutMs: 500 });
      const plain = new Command('get', ['a']);
      const blocking = new Command('blpop', ['q', '1']);
      void connection.sendCommand(plain);
      void connection.sendCommand(blocking);
      expect(vi.getTimerCount()).toBe(2);
      const outcomes = [outcomeOf(plain), outcomeOf(blocking)];
      vi.advanceTimersByTime(500);
      await Promise.resolve();
      blocking.resolve(Buffer.from('job'));
      expect(await Promise.all(outcomes)).toEqual(['Command timed out', 'ok']);
    });

    it('reuses a timer emptied within the tick, and lets it go at the end of the tick', async () => {
      fakeClock();
      const { connection, calls } = hooked({ timeoutMs: 500 });
      const first = sendGet(connection, 'a');
      first.resolve(Buffer.from('v'));
      // Answered in the same tick: the next command of the tick joins the same timer.
      const second = sendGet(connection, 'b');
      expect(vi.getTimerCount()).toBe(1);
      second.resolve(Buffer.from('v'));
      await Promise.all([first.promise, second.promise]);
      await new Promise((resolve) => process.nextTick(resolve));
      // Nothing left waiting: no timer stays behind (ioredis' own suite counts them).
      expect(vi.getTimerCount()).toBe(0);
      expect(calls).toHaveLength(2);
    });

    it('clears an older timer as soon as its last command is answered, once a newer one took over', async () => {
      fakeClock();
      const { connection } = hooked({ timeoutMs: 500 });
      const first = sendGet(connection, 'a');
      vi.advanceTimersByTime(1);
      const second = sendGet(connection, 'b');
      expect(vi.getTimerCount()).toBe(2);
      first.resolve(Buffer.from('v'));
      await first.promise;
      expect(vi.getTimerCount()).toBe(1);
      second.resolve(Buffer.from('v'));
      await second.promise;
      await new Promise((resolve) => process.nextTick(resolve));
      expect(vi.getTimerCount()).toBe(0);
    });

    it('keeps an emptied timer that a command of the same tick joined, and still times that command out', async () => {
      fakeClock();
      const { connection } = hooked({ timeoutMs: 500 });
      const first = sendGet(connection, 'a');
      first.resolve(Buffer.from('v'));
      const joined = sendGet(connection, 'b');
      await new Promise((resolve) => process.nextTick(resolve));
      expect(vi.getTimerCount()).toBe(1);
      const outcome = outcomeOf(joined);
      vi.advanceTimersByTime(500);
      expect(await outcome).toBe('Command timed out');
      expect(vi.getTimerCount()).toBe(0);
    });

    it('does not keep the process alive once every command of the timer has its answer', async () => {
      const { connection } = hooked({ timeoutMs: 60_000 });
      const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
      const before = timers();
      const command = sendGet(connection, 'a');
      expect(timers()).toBe(before + 1);
      command.resolve(Buffer.from('v'));
      await command.promise;
      await new Promise((resolve) => process.nextTick(resolve));
      expect(timers()).toBe(before);
      // A command joining the emptied timer makes it hold the process again until its answer.
      const next = sendGet(connection, 'b');
      const joined = timers();
      next.resolve(Buffer.from('v'));
      await next.promise;
      await new Promise((resolve) => process.nextTick(resolve));
      // Joined within the millisecond, or got a timer of its own: either way one timer holds the process.
      expect(joined).toBe(before + 1);
      expect(timers()).toBe(before);
    });
  });

  it('rejects with E_CLIENT_CLOSED and sends nothing once closed', async () => {
    const { connection, sent } = hooked({ closed: true, withTracker: false });
    const command = new Command('get', ['k']);
    await expect(connection.sendCommand(command)).rejects.toMatchObject({ code: 'E_CLIENT_CLOSED' });
    expect(sent).toHaveLength(0);
  });

  it('measures a command once when a Cluster and its node connection share the context', async () => {
    const { connection: cluster, calls, tracker, context } = hooked();
    const { connection: node } = fakeConnection();
    hookSendCommand(node as never, context);
    const command = new Command('get', ['k']);
    void cluster.sendCommand(command);
    void node.sendCommand(command);
    command.resolve(Buffer.from('v'));
    await command.promise;
    expect(calls).toEqual([{ name: 'get', outcome: 'ok' }]);
    expect(tracker.pending).toBe(0);
  });
});

describe('createTracker', () => {
  it('passes a throwing reply transformer through as a rejection and records it as the error', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    const command = new Command('hgetall', ['k']);
    const original = (command as unknown as { transformReply: (value: unknown) => unknown }).transformReply;
    (command as unknown as { transformReply: () => never }).transformReply = () => {
      throw new Error('transformer failed');
    };
    tracker.track(command);
    command.resolve(['a', 'b']);
    await expect(command.promise).rejects.toThrow('transformer failed');
    expect(calls).toEqual([{ name: 'hgetall', outcome: 'transformer failed' }]);
    expect(original).toBeTypeOf('function');
  });

  it('records a script call once when its EVALSHA gets NOSCRIPT and ioredis sends it again', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    class CustomScriptCommand extends Command {}
    const first = new CustomScriptCommand('evalsha', ['sha', '0']);
    tracker.track(first);
    first.reject(reply('NOSCRIPT No matching script.'));
    await expect(first.promise).rejects.toThrow('NOSCRIPT');
    expect(calls).toEqual([]);
    expect(tracker.pending).toBe(0);
    const resend = new CustomScriptCommand('evalsha', ['sha', '0']);
    resend.name = 'eval';
    tracker.track(resend);
    expect(tracker.pending).toBe(1);
    resend.resolve(Buffer.from('1'));
    await resend.promise;
    expect(calls).toEqual([{ name: 'evalsha', outcome: 'ok' }]);
  });

  it('records NOSCRIPT of a plain EVALSHA the caller sent, since nothing retries it', async () => {
    const { calls, observer } = recorder();
    const tracker = createTracker(observer);
    const command = new Command('evalsha', ['sha', '0']);
    tracker.track(command);
    command.reject(reply('NOSCRIPT No matching script.'));
    await expect(command.promise).rejects.toThrow();
    expect(calls).toEqual([{ name: 'evalsha', outcome: 'NOSCRIPT No matching script.' }]);
  });
});

type Queued = Command & { inTransaction?: boolean; ignore?: boolean };

function queued(name: string, inTransaction = false): Queued {
  const command = new Command(name, []) as Queued;
  command.inTransaction = inTransaction;
  return command;
}

describe('recordPipeline', () => {
  function record(queue: Queued[], results: Array<[Error | null, unknown?]>) {
    const { calls, observer } = recorder();
    recordPipeline(observer, { queue, results }, 0.001);
    return calls;
  }

  it('takes the outcome of commands inside MULTI from the reply of EXEC', () => {
    const wrong = reply('ERR value is not an integer or out of range');
    const calls = record(
      [queued('multi', true), queued('set', true), queued('incr', true), queued('exec')],
      [
        [null, 'OK'],
        [null, 'QUEUED'],
        [null, 'QUEUED'],
        [null, ['OK', wrong]],
      ],
    );
    expect(calls).toEqual([
      { name: 'multi', outcome: 'ok' },
      { name: 'set', outcome: 'ok' },
      { name: 'incr', outcome: wrong.message },
      { name: 'exec', outcome: 'ok' },
    ]);
  });

  it('gives every command of an aborted transaction the error that aborted it', () => {
    const abort = reply('EXECABORT Transaction discarded because of previous errors.');
    const arity = reply("ERR wrong number of arguments for 'set' command");
    const calls = record(
      [queued('multi', true), queued('set', true), queued('get', true), queued('exec')],
      [[null, 'OK'], [arity], [null, 'QUEUED'], [abort]],
    );
    expect(calls.map((call) => call.outcome)).toEqual(['ok', arity.message, abort.message, abort.message]);
  });

  it('records the commands of a transaction that WATCH aborted as not run', () => {
    const calls = record(
      [queued('multi', true), queued('incr', true), queued('exec')],
      [
        [null, 'OK'],
        [null, 'QUEUED'],
        [null, null],
      ],
    );
    expect(calls[1]?.outcome).toMatch(/aborted by WATCH/);
    expect(calls[2]).toEqual({ name: 'exec', outcome: 'ok' });
  });

  it('skips the ASKING commands ioredis adds and reports unfollowed redirects', () => {
    const { calls, observer } = recorder();
    const redirects: string[] = [];
    observer.unfollowedRedirect = (kind) => redirects.push(kind);
    const asking = queued('asking');
    asking.ignore = true;
    recordPipeline(
      observer,
      {
        queue: [asking, queued('incr'), queued('incr')],
        results: [[null, 'OK'], [reply('ASK 12 127.0.0.1:7001')], [null, 3]],
      },
      0.001,
    );
    expect(calls).toEqual([
      { name: 'incr', outcome: 'ASK 12 127.0.0.1:7001' },
      { name: 'incr', outcome: 'ok' },
    ]);
    expect(redirects).toEqual(['ask']);
  });

  it('gives every command the error that failed the whole pipeline', () => {
    const { calls, observer } = recorder();
    recordPipeline(
      observer,
      { queue: [queued('get'), queued('set')], error: new Error('Command timed out') },
      0.5,
    );
    expect(calls).toEqual([
      { name: 'get', outcome: 'Command timed out' },
      { name: 'set', outcome: 'Command timed out' },
    ]);
  });
});

describe('isSafeToResend', () => {
  it('lets reads and commands that change nothing go again, never a write or what acts without a write flag', () => {
    for (const name of ['get', 'PING', 'echo', 'info', 'select', 'subscribe', 'ssubscribe', 'unsubscribe']) {
      expect(isSafeToResend(new Command(name, []))).toBe(true);
    }
    for (const name of [
      'set',
      'incr',
      'publish',
      'eval',
      'evalsha',
      'script',
      'exec',
      'client',
      'blpop',
      'bogus',
    ]) {
      expect(isSafeToResend(new Command(name, []))).toBe(false);
    }
    const readOnlyScript = Object.assign(new Command('evalsha', []), { isReadOnly: true });
    expect(isSafeToResend(readOnlyScript)).toBe(true);
  });
});

describe('blocking commands', () => {
  it.each([
    ['blpop', ['a', 'b', '2.5'], 2500],
    ['BRPOP', ['a', 0], null],
    ['blmove', ['a', 'b', 'LEFT', 'RIGHT', '1'], 1000],
    ['blmpop', ['3', '1', 'a', 'LEFT'], 3000],
    ['bzmpop', [0, '1', 'a', 'MIN'], null],
    ['wait', ['1', '250'], 250],
    ['waitaof', ['1', '0', '100'], 100],
    ['xread', ['COUNT', '1', 'BLOCK', '700', 'STREAMS', 's', '$'], 700],
    ['xreadgroup', ['GROUP', 'g', 'c', 'block', 0, 'STREAMS', 's', '>'], null],
    ['xread', ['STREAMS', 's', '0'], undefined],
    ['get', ['k'], undefined],
    ['blpop', ['k', 'soon'], undefined],
  ])('%s %j blocks for %s ms', (name, args, expected) => {
    expect(blockingMs(name as string, args as unknown[])).toBe(expected);
  });

  it('adds commandTimeoutMs to the block, and has no deadline for a block without end', () => {
    expect(commandDeadlineMs(new Command('blpop', ['q', '2']), 500)).toBe(2500);
    expect(commandDeadlineMs(new Command('blpop', ['q', '0']), 500)).toBeUndefined();
    expect(commandDeadlineMs(new Command('get', ['q']), 500)).toBe(500);
  });

  it('treats a block longer than any timer can hold as a block without end, instead of firing at once', () => {
    expect(commandDeadlineMs(new Command('blpop', ['q', String(30 * 24 * 3600)]), 500)).toBeUndefined();
    expect(commandDeadlineMs(new Command('wait', ['1', String(2 ** 31)]), 500)).toBeUndefined();
    expect(commandDeadlineMs(new Command('blpop', ['q', '86400']), 500)).toBe(86_400_500);
  });
});

describe('commands ioredis sends on its own', () => {
  it.each([
    ['asking', 'ready', false, true],
    ['readonly', 'ready', true, true],
    ['client', 'connect', false, true],
    ['info', 'connect', true, true],
    ['cluster', 'connect', false, true],
    ['auth', 'connect', false, true],
    ['quit', 'ready', true, true],
    ['quit', 'ready', false, false],
    ['client', 'ready', false, false],
    ['info', 'ready', false, false],
    ['get', 'connect', false, false],
  ])('%s on a %s connection (node: %s) is internal: %s', (name, status, node, expected) => {
    expect(isInternalCommand(name as string, status as string, node as boolean)).toBe(expected);
  });
});
