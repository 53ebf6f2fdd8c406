import { Command } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  blockingMs,
  boundReadyWaits,
  commandDeadlineMs,
  createHookContext,
  hookPipelines,
  hookSendCommand,
  isInternalCommand,
  isSafeToResend,
  MAX_TIMER_MS,
} from '../src/command-hook.js';
import { type CommandObserver, createTracker, deadlineOf, NO_TIMER } from '../src/tracker.js';

afterEach(() => {
  vi.useRealTimers();
});

type Fields = { _commandTimeoutTimer?: unknown; pipelineIndex?: number; isReadOnly?: boolean };
const fieldsOf = (command: Command) => command as unknown as Fields;

function recorder() {
  const calls: Array<{ name: string; outcome: string }> = [];
  const observer: CommandObserver = {
    ok: (name) => calls.push({ name, outcome: 'ok' }),
    error: (name, _seconds, error) => calls.push({ name, outcome: (error as Error).message }),
  };
  return { calls, observer };
}

function setup(options: { timeoutMs?: number; status?: string; node?: boolean; closed?: boolean } = {}) {
  const sent: Array<{ command: Command; stream: unknown }> = [];
  const connection = {
    status: options.status ?? 'ready',
    sendCommand(command: Command, stream?: unknown) {
      sent.push({ command, stream });
      return command.promise;
    },
  };
  const { calls, observer } = recorder();
  const tracker = createTracker(observer);
  let closed = options.closed ?? false;
  const context = createHookContext({
    commandTimeoutMs: options.timeoutMs ?? 1000,
    isClosed: () => closed,
    tracker,
  });
  hookSendCommand(connection as never, context, options.node ? { node: true } : {});
  const send = (command: Command, stream?: unknown) =>
    (connection.sendCommand as (command: Command, stream?: unknown) => Promise<unknown>).call(
      connection,
      command,
      stream,
    );
  return { connection, send, sent, calls, tracker, context, close: () => (closed = true) };
}

const settle = (promise: Promise<unknown>) =>
  promise.then(
    () => 'resolved',
    (error: Error & { code?: string }) => error.code ?? error.message,
  );

describe('blocking commands, more shapes', () => {
  it.each([
    ['brpoplpush', ['a', 'b', '3'], 3000],
    ['bzpopmin', ['z', '1'], 1000],
    ['bzpopmax', ['z', 0.5], 500],
    ['BLPOP', ['k', '1'], 1000],
    ['Wait', ['1', '20'], 20],
    ['XREAD', ['BLOCK', '5', 'STREAMS', 's', '0'], 5],
    // A stream named BLOCK after STREAMS is a key, not the option.
    ['xread', ['STREAMS', 'BLOCK', '0'], undefined],
    ['xread', ['BLOCK', 'soon', 'STREAMS', 's', '0'], undefined],
    ['blpop', ['k', '-1'], undefined],
    ['blpop', ['k', 'inf'], undefined],
    ['bitcount', ['k'], undefined],
    ['watch', ['k'], undefined],
    ['xadd', ['s', '*', 'f', 'v'], undefined],
    // Only XREAD and XREADGROUP take a BLOCK option: a stream field named block is data.
    ['xadd', ['s', '*', 'block', '5'], undefined],
    ['bitfield', ['k', 'BLOCK', '5'], undefined],
    ['set', ['k', 'v'], undefined],
  ])('%s %j blocks for %s ms', (name, args, expected) => {
    expect(blockingMs(name, args)).toBe(expected);
  });

  it('keeps a deadline that a timer can just hold', () => {
    const block = MAX_TIMER_MS - 500;
    expect(commandDeadlineMs(new Command('wait', ['1', String(block)]), 500)).toBe(MAX_TIMER_MS);
    expect(commandDeadlineMs(new Command('wait', ['1', String(block + 1)]), 500)).toBeUndefined();
  });
});

describe('commands ioredis sends on its own, more cases', () => {
  it.each([
    ['hello', 'connect', false, true],
    ['select', 'connect', false, true],
    ['readwrite', 'ready', false, true],
    ['cluster', 'ready', false, false],
    ['auth', undefined, false, false],
    ['quit', 'connect', false, false],
  ])('%s on a %s connection (node: %s) is internal: %s', (name, status, node, expected) => {
    expect(isInternalCommand(name, status, node)).toBe(expected);
  });
});

describe('isSafeToResend', () => {
  it('trusts a script defined read-only, the flags Redis gives commands and commands that change nothing, in any case', () => {
    const script = new Command('evalsha', ['sha', '0']);
    fieldsOf(script).isReadOnly = true;
    expect(isSafeToResend(script)).toBe(true);
    expect(isSafeToResend(new Command('GET', ['k']))).toBe(true);
    expect(isSafeToResend(new Command('PING', []))).toBe(true);
    expect(isSafeToResend(new Command('incr', ['k']))).toBe(false);
    expect(isSafeToResend(new Command('publish', ['c', 'm']))).toBe(false);
    expect(isSafeToResend(new Command('nosuchcommand', []))).toBe(false);
  });
});

describe('hookSendCommand, more paths', () => {
  it('fails every command with the fatal error of an unusable connection, and sends nothing', async () => {
    const { send, sent, context } = setup();
    context.fatal = new Error('ERR DB index is out of range');
    expect(await settle(send(new Command('get', ['k'])))).toBe('ERR DB index is out of range');
    expect(sent).toEqual([]);
  });

  it('rejects with E_CLIENT_CLOSED once closed, and records it', async () => {
    const { send, sent, calls, close } = setup();
    close();
    expect(await settle(send(new Command('get', ['k'])))).toBe('E_CLIENT_CLOSED');
    expect(sent).toEqual([]);
    expect(calls).toEqual([]);
  });

  it('with corkWrites, corks a ready socket once per tick for direct commands and uncorks it before the next tick', async () => {
    const stream = {
      writable: true,
      writableCorked: 0,
      corks: 0,
      cork() {
        stream.writableCorked += 1;
        stream.corks += 1;
      },
      uncork() {
        stream.writableCorked -= 1;
      },
    };
    const connection = { status: 'ready', stream, sendCommand: (command: Command) => command.promise };
    const context = createHookContext({ commandTimeoutMs: 1000, isClosed: () => false, corkWrites: true });
    hookSendCommand(connection as never, context);
    const commands = ['a', 'b', 'c'].map((key) => new Command('get', [key]));
    for (const command of commands) void connection.sendCommand(command);
    expect(stream.corks).toBe(1);
    expect(stream.writableCorked).toBe(1);
    // A pipeline's batch is one write already: its commands do not cork.
    void (connection.sendCommand as (command: Command, stream: unknown) => unknown)(
      new Command('get', ['p']),
      {
        isPipeline: true,
        write() {},
      },
    );
    expect(stream.corks).toBe(1);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(stream.writableCorked).toBe(0);
    connection.status = 'connecting';
    void connection.sendCommand(new Command('get', ['d']));
    expect(stream.corks).toBe(1);
    for (const command of commands) command.resolve(Buffer.from('v'));
  });

  it('without corkWrites, never corks', () => {
    const stream = { writable: true, writableCorked: 0, cork: vi.fn(), uncork: vi.fn() };
    const connection = { status: 'ready', stream, sendCommand: (command: Command) => command.promise };
    hookSendCommand(
      connection as never,
      createHookContext({ commandTimeoutMs: 1000, isClosed: () => false }),
    );
    void connection.sendCommand(new Command('get', ['a']));
    expect(stream.cork).not.toHaveBeenCalled();
  });

  it("does not measure close()'s own QUIT, and measures a caller's QUIT", async () => {
    const { send, calls, context } = setup();
    const callers = new Command('quit', []);
    void send(callers);
    context.quitting = true;
    const closing = new Command('quit', []);
    void send(closing);
    context.quitting = false;
    callers.resolve(Buffer.from('OK'));
    closing.resolve(Buffer.from('OK'));
    await Promise.all([callers.promise, closing.promise]);
    expect(calls).toEqual([{ name: 'quit', outcome: 'ok' }]);
  });

  it('keeps a timer ioredis or an earlier send already armed', () => {
    const { send } = setup();
    const command = new Command('get', ['k']);
    const armed = { earlier: true };
    fieldsOf(command)._commandTimeoutTimer = armed;
    void send(command);
    expect(deadlineOf(command)).toBe(armed);
  });

  it('leaves the deadline and measurement of pipelined commands to the pipeline, except to watch scripts', async () => {
    const { send, tracker, calls } = setup();
    const command = new Command('get', ['k']);
    fieldsOf(command).pipelineIndex = 0;
    void send(command);
    expect(deadlineOf(command)).toBe(NO_TIMER);
    expect(tracker.pending).toBe(0);
    command.resolve(Buffer.from('v'));
    await command.promise;
    class CustomScriptCommand extends Command {}
    const script = new CustomScriptCommand('evalsha', ['sha', '0']);
    fieldsOf(script).pipelineIndex = 1;
    void send(script);
    // Tracked only to follow a NOSCRIPT fallback: the pipeline records its outcome, so nothing here.
    expect(tracker.pending).toBe(0);
    script.resolve(Buffer.from('1'));
    await script.promise;
    expect(calls).toEqual([]);
  });

  it('does not measure the handshake ioredis sends while connecting, on the client or its nodes', async () => {
    const client = setup({ status: 'connect' });
    const setname = new Command('client', ['SETNAME', 'austa:x']);
    void client.send(setname);
    expect(client.tracker.pending).toBe(0);
    expect(client.context.untracked.has(setname)).toBe(true);
    // The node connection sharing the context sees the same command and leaves it alone too.
    const node = { status: 'ready', sendCommand: (command: Command) => command.promise };
    hookSendCommand(node as never, client.context, { node: true });
    void (node.sendCommand as (command: Command) => unknown)(setname);
    expect(client.tracker.pending).toBe(0);
    setname.resolve(Buffer.from('OK'));
    await setname.promise;
    expect(client.calls).toEqual([]);
  });

  it('does not measure the QUIT a cluster sends to its nodes, but does measure a caller QUIT on a client', () => {
    const node = setup({ node: true });
    void node.send(new Command('quit', []));
    expect(node.tracker.pending).toBe(0);
    const client = setup();
    void client.send(new Command('quit', []));
    expect(client.tracker.pending).toBe(1);
  });

  it('a node connection measures a command it sees first (a cluster command routed straight to it)', () => {
    const node = setup({ node: true });
    void node.send(new Command('get', ['k']));
    expect(node.tracker.pending).toBe(1);
  });

  it('does not time out a command that already has its answer, and tells onExpire about the ones it times out', async () => {
    vi.useFakeTimers();
    const { send, context } = setup({ timeoutMs: 100 });
    const expired: Command[] = [];
    context.onExpire = (command) => expired.push(command);
    const answered = new Command('get', ['k']);
    void send(answered);
    answered.isResolved = true;
    const waiting = new Command('get', ['k2']);
    void send(waiting);
    const outcome = settle(waiting.promise);
    vi.advanceTimersByTime(100);
    expect(await outcome).toBe('Command timed out');
    expect(expired).toEqual([waiting]);
    expect(context.dead.has(answered)).toBe(false);
  });

  it('after refusing a write of a pipeline batch, refuses the rest of that batch and keeps its write count', async () => {
    const { send, sent, context } = setup();
    const writes: string[] = [];
    const stream = {
      isPipeline: true,
      destination: { redis: {} },
      write: (data: string) => writes.push(data),
    };
    const lost = new Command('incr', ['k']);
    context.inFlight.add(lost);
    const next = new Command('get', ['k']);
    const outcomes = [settle(send(lost, stream)), settle(send(next, stream))];
    expect(await Promise.all(outcomes)).toEqual(['E_MAYBE_APPLIED', 'E_MAYBE_APPLIED']);
    expect(sent).toEqual([]);
    expect(writes).toEqual(['', '']);
    expect(context.inFlight.has(lost)).toBe(false);
    // Another batch is not affected.
    const other = new Command('get', ['k']);
    void send(other, { isPipeline: true, destination: { redis: {} }, write: () => {} });
    expect(sent.map((entry) => entry.command)).toEqual([other]);
  });

  it('lets a read-only command that was in flight go again, once', () => {
    const { send, sent, context } = setup();
    const read = new Command('get', ['k']);
    context.inFlight.add(read);
    void send(read);
    expect(sent.map((entry) => entry.command)).toEqual([read]);
    expect(context.inFlight.has(read)).toBe(false);
  });
});

describe('boundReadyWaits', () => {
  function cluster() {
    const waiting: Array<(error?: Error) => void> = [];
    const target = { delayUntilReady: (callback: (error?: Error) => void) => waiting.push(callback) };
    boundReadyWaits(target as never, 100);
    return { target, waiting };
  }

  it('fails a wait for a cluster that is not ready in time, and ignores the late ready signal', () => {
    vi.useFakeTimers();
    const { target, waiting } = cluster();
    const results: Array<string | undefined> = [];
    target.delayUntilReady((error) => results.push(error?.message));
    vi.advanceTimersByTime(99);
    expect(results).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(results).toEqual(['Command timed out']);
    waiting[0]?.();
    expect(results).toEqual(['Command timed out']);
  });

  it('passes the ready signal through once, and then the timer does nothing', () => {
    vi.useFakeTimers();
    const { target, waiting } = cluster();
    const results: Array<string | undefined> = [];
    target.delayUntilReady((error) => results.push(error?.message ?? 'ready'));
    waiting[0]?.();
    waiting[0]?.(new Error('again'));
    vi.advanceTimersByTime(1000);
    expect(results).toEqual(['ready']);
    expect(vi.getTimerCount()).toBe(0);
  });
});

// A stand-in for an ioredis Pipeline with the fields the hook reads and wraps.
function fakePipeline(queue: Array<Command & { inTransaction?: boolean }>, transactions = 0) {
  let resolvePromise: (value: unknown) => void = () => {};
  let rejectPromise: (error: Error) => void = () => {};
  const promise = new Promise((resolve, reject) => {
    resolvePromise = resolve;
    rejectPromise = reject;
  });
  const pipeline = {
    promise,
    _transactions: transactions,
    _queue: queue,
    _result: [] as Array<[Error | null, unknown?]>,
    replyPending: 0,
    execCalls: 0,
    exec(): unknown {
      pipeline.execCalls += 1;
      return pipeline.promise;
    },
    resolve: (value: unknown) => resolvePromise(value),
    reject: (error: Error) => rejectPromise(error),
  };
  return pipeline;
}

function pipelines(
  queue: Array<Command & { inTransaction?: boolean }>,
  options: { transactions?: number } = {},
) {
  const { calls, observer } = recorder();
  const tracker = createTracker(observer);
  const context = createHookContext({ commandTimeoutMs: 100, isClosed: () => false, tracker });
  const pipeline = fakePipeline(queue, options.transactions);
  const connection = { pipeline: () => pipeline, multi: () => pipeline };
  hookPipelines(connection as never, context);
  return { connection, pipeline, calls, context };
}

describe('pipelines', () => {
  it('records every command once when the pipeline resolves', async () => {
    const queue = [new Command('get', ['a']), new Command('set', ['b', '1'])];
    const { connection, pipeline, calls } = pipelines(queue);
    const created = connection.pipeline() as typeof pipeline;
    void created.exec();
    pipeline._result = [
      [null, 'x'],
      [null, 'OK'],
    ];
    created.resolve([]);
    created.resolve([]);
    await pipeline.promise;
    expect(calls).toEqual([
      { name: 'get', outcome: 'ok' },
      { name: 'set', outcome: 'ok' },
    ]);
  });

  it('records nothing for a pipeline that was never executed', () => {
    const { connection, pipeline, calls } = pipelines([new Command('get', ['a'])]);
    const created = connection.pipeline() as typeof pipeline;
    pipeline.promise.catch(() => {});
    created.reject(new Error('discarded'));
    expect(calls).toEqual([]);
  });

  it('gives a MULTI that failed before EXEC was queued an exec observation too', async () => {
    const queue = [new Command('multi', []), new Command('incr', ['k'])];
    const { connection, pipeline, calls } = pipelines(queue, { transactions: 1 });
    const created = connection.multi() as typeof pipeline;
    void created.exec();
    pipeline.promise.catch(() => {});
    created.reject(new Error('Connection is closed.'));
    expect(calls.map((call) => call.name)).toEqual(['multi', 'incr', 'exec']);
    expect(new Set(calls.map((call) => call.outcome))).toEqual(new Set(['Connection is closed.']));
  });

  it('arms no deadline for the exec() of a plain pipeline that only queues EXEC, and arms it on the one that sends', () => {
    vi.useFakeTimers();
    const queue = [
      new Command('multi', []),
      new Command('set', ['a', '1']) as Command & { inTransaction?: boolean },
    ];
    const { connection, pipeline, calls } = pipelines(queue, { transactions: 1 });
    const created = connection.pipeline() as typeof pipeline;
    void created.exec();
    expect(vi.getTimerCount()).toBe(0);
    // The caller takes longer than the timeout before the exec() that sends: nothing may have expired meanwhile.
    vi.advanceTimersByTime(500);
    pipeline._transactions = 0;
    void created.exec();
    expect(vi.getTimerCount()).toBe(1);
    pipeline.promise.catch(() => {});
    expect(calls).toEqual([]);
  });

  it("runs an auto-pipeline's deadline from its first queued command, not from exec()", async () => {
    vi.useFakeTimers();
    const queue: Command[] = [];
    const { connection, pipeline, calls } = pipelines(queue);
    (pipeline as unknown as { sendCommand(command: Command): unknown }).sendCommand = (command: Command) =>
      queue.push(command);
    const created = connection.pipeline() as typeof pipeline & { sendCommand(command: Command): unknown };
    created.sendCommand(new Command('get', ['a']));
    // ioredis runs an auto-pipeline only once the one before it to the same node is done.
    vi.advanceTimersByTime(60);
    void created.exec();
    const outcome = settle(pipeline.promise);
    vi.advanceTimersByTime(39);
    await Promise.resolve();
    expect(calls).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(await outcome).toBe('Command timed out');
    expect(calls).toEqual([{ name: 'get', outcome: 'Command timed out' }]);
  });

  it('records each command of a pipeline re-sent after ASK with its own result, past the ASKINGs ioredis added', async () => {
    const asking = () => Object.assign(new Command('asking', []), { ignore: true });
    const queue = [
      asking(),
      new Command('get', ['a']),
      asking(),
      new Command('hgetall', ['b']),
      asking(),
      new Command('get', ['c']),
    ];
    const { connection, pipeline, calls } = pipelines(queue);
    const created = connection.pipeline() as typeof pipeline;
    void created.exec();
    const wrongType = Object.assign(
      new Error('WRONGTYPE Operation against a key holding the wrong kind of value'),
      {
        name: 'ReplyError',
      },
    );
    // What ioredis leaves in _result once it shifted the results over the ignored ASKINGs (the tail is stale).
    pipeline._result = [[null, 'v'], [wrongType], [null, 'w'], [null, 'OK'], [null, 'w'], [null, 'OK']];
    created.resolve([]);
    await pipeline.promise;
    expect(calls).toEqual([
      { name: 'get', outcome: 'ok' },
      { name: 'hgetall', outcome: wrongType.message },
      { name: 'get', outcome: 'ok' },
    ]);
  });

  it('times a pipeline out whole before it was written: rejects it and never sends its commands', async () => {
    vi.useFakeTimers();
    const queue = [new Command('get', ['a'])];
    const { connection, pipeline, calls, context } = pipelines(queue);
    const created = connection.pipeline() as typeof pipeline;
    void created.exec();
    const outcome = settle(pipeline.promise);
    vi.advanceTimersByTime(99);
    expect(context.dead.has(queue[0] as Command)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(await outcome).toBe('Command timed out');
    expect(context.dead.has(queue[0] as Command)).toBe(true);
    expect(calls).toEqual([{ name: 'get', outcome: 'Command timed out' }]);
  });

  it('times out each command of a written pipeline that waits for replies', async () => {
    vi.useFakeTimers();
    const queue = [new Command('get', ['a']), new Command('get', ['b'])];
    const { connection, pipeline, context } = pipelines(queue);
    const created = connection.pipeline() as typeof pipeline;
    void created.exec();
    pipeline.replyPending = 2;
    const outcomes = queue.map((command) => settle(command.promise));
    vi.advanceTimersByTime(100);
    expect(await Promise.all(outcomes)).toEqual(['Command timed out', 'Command timed out']);
    expect(queue.every((command) => context.dead.has(command))).toBe(true);
  });

  it('gives a pipeline the longest deadline of its blocking commands, and none for a block without end', () => {
    vi.useFakeTimers();
    const blocking = pipelines([new Command('get', ['a']), new Command('blpop', ['q', '1'])]);
    void (blocking.connection.pipeline() as ReturnType<typeof fakePipeline>).exec();
    const outcome = vi.fn();
    blocking.pipeline.promise.then(outcome, outcome);
    vi.advanceTimersByTime(1099);
    expect(blocking.context.dead.has(blocking.pipeline._queue[0] as Command)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(blocking.context.dead.has(blocking.pipeline._queue[0] as Command)).toBe(true);

    const forever = pipelines([new Command('blpop', ['q', '0'])]);
    void (forever.connection.pipeline() as ReturnType<typeof fakePipeline>).exec();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('ignores the block time of commands inside MULTI, which never block', () => {
    vi.useFakeTimers();
    const inner = new Command('blpop', ['q', '0']) as Command & { inTransaction?: boolean };
    inner.inTransaction = true;
    const multi = pipelines([inner]);
    void (multi.connection.multi() as ReturnType<typeof fakePipeline>).exec();
    multi.pipeline.promise.catch(() => {});
    vi.advanceTimersByTime(100);
    expect(multi.context.dead.has(inner)).toBe(true);
  });

  it('refuses a cluster re-send of a pipeline whose write may have run', async () => {
    const write = new Command('incr', ['k']);
    const { connection, pipeline, context } = pipelines([new Command('get', ['a']), write]);
    const created = connection.pipeline() as typeof pipeline;
    void created.exec();
    context.inFlight.add(write);
    const outcome = settle(created.exec() as Promise<unknown>);
    expect(await outcome).toBe('E_MAYBE_APPLIED');
    expect(pipeline.execCalls).toBe(1);
  });

  it('lets a cluster re-send a pipeline whose in-flight commands are reads', () => {
    const read = new Command('get', ['k']);
    const { connection, pipeline, context } = pipelines([read]);
    const created = connection.pipeline() as typeof pipeline;
    void created.exec();
    context.inFlight.add(read);
    void created.exec();
    expect(pipeline.execCalls).toBe(2);
  });

  it('records a MULTI whose own promise failed, when the pipeline promise never settles', async () => {
    const queue = [new Command('multi', []), new Command('incr', ['k'])];
    const { connection, pipeline, calls } = pipelines(queue, { transactions: 1 });
    const failed = Promise.reject(new Error('Cluster is ended.'));
    failed.catch(() => {});
    pipeline.exec = () => failed;
    const created = connection.multi() as typeof pipeline;
    await settle(created.exec() as Promise<unknown>);
    await Promise.resolve();
    expect(calls.map((call) => call.name)).toEqual(['multi', 'incr', 'exec']);
  });

  it('leaves multi({ pipeline: false }), which returns a promise, alone', async () => {
    const { calls, observer } = recorder();
    const context = createHookContext({
      commandTimeoutMs: 100,
      isClosed: () => false,
      tracker: createTracker(observer),
    });
    const plain = Promise.resolve('OK');
    const connection = { pipeline: () => null, multi: () => plain };
    hookPipelines(connection as never, context);
    expect(connection.multi()).toBe(plain);
    expect(calls).toEqual([]);
  });
});

describe('hook details a caller cannot see directly', () => {
  it('sends commands through untouched when the client has no metrics', async () => {
    const sent: Command[] = [];
    const connection = { sendCommand: (command: Command) => sent.push(command) };
    hookSendCommand(connection as never, createHookContext({ commandTimeoutMs: 100, isClosed: () => false }));
    const command = new Command('get', ['k']);
    const pipelined = new Command('set', ['k', 'v']);
    fieldsOf(pipelined).pipelineIndex = 0;
    (connection.sendCommand as (command: Command) => unknown)(command);
    (connection.sendCommand as (command: Command) => unknown)(pipelined);
    expect(sent).toEqual([command, pipelined]);
    command.resolve(Buffer.from('v'));
    pipelined.resolve(Buffer.from('OK'));
    await Promise.all([command.promise, pipelined.promise]);
  });

  it('keeps the deadline a pipelined command already has', () => {
    const { send } = setup();
    const command = new Command('get', ['k']);
    fieldsOf(command).pipelineIndex = 0;
    const armed = { pipeline: true };
    fieldsOf(command)._commandTimeoutTimer = armed;
    void send(command);
    expect(deadlineOf(command)).toBe(armed);
  });

  it('follows a pipelined script through its NOSCRIPT fallback without counting it', async () => {
    const { send, tracker, calls } = setup();
    class CustomScriptCommand extends Command {}
    const first = new CustomScriptCommand('evalsha', ['sha', '0']);
    fieldsOf(first).pipelineIndex = 0;
    void send(first);
    first.reject(Object.assign(new Error('NOSCRIPT No matching script.'), { name: 'ReplyError' }));
    await first.promise.catch(() => {});
    // ioredis sends the fallback EVAL on its own, outside the pipeline: the pipeline still records the outcome.
    const fallback = new CustomScriptCommand('eval', ['body', '0']);
    void send(fallback);
    expect(tracker.pending).toBe(0);
    fallback.resolve(Buffer.from('1'));
    await fallback.promise;
    expect(calls).toEqual([]);
  });

  it('refuses a lost write of a batch that has no connection yet without writing to it', async () => {
    const { send, context } = setup();
    const writes: string[] = [];
    const lost = new Command('incr', ['k']);
    context.inFlight.add(lost);
    const unrouted = { isPipeline: true, destination: {}, write: (data: string) => writes.push(data) };
    expect(await settle(send(lost, unrouted))).toBe('E_MAYBE_APPLIED');
    const again = new Command('incr', ['k']);
    context.inFlight.add(again);
    const bare = { isPipeline: true, write: (data: string) => writes.push(data) };
    expect(await settle(send(again, bare))).toBe('E_MAYBE_APPLIED');
    expect(writes).toEqual([]);
  });

  it('multi({ pipeline: false }) gets nothing added to the promise it returns', () => {
    const context = createHookContext({ commandTimeoutMs: 100, isClosed: () => false });
    const plain = Promise.resolve('OK');
    const connection = { pipeline: () => null, multi: () => plain };
    hookPipelines(connection as never, context);
    connection.multi();
    expect(Object.keys(plain)).toEqual([]);
  });

  it('clears the pipeline deadline when it settles, and records its time in seconds', async () => {
    vi.useFakeTimers();
    const now = vi.spyOn(performance, 'now').mockReturnValue(1000);
    const queue = [new Command('get', ['a'])];
    const { connection, pipeline, calls } = pipelinesWithSeconds(queue);
    const created = connection.pipeline() as typeof pipeline;
    void created.exec();
    expect(vi.getTimerCount()).toBe(1);
    now.mockReturnValue(1500);
    pipeline._result = [[null, 'x']];
    created.resolve([]);
    await pipeline.promise;
    expect(vi.getTimerCount()).toBe(0);
    expect(calls).toEqual([{ name: 'get', seconds: 0.5 }]);
    now.mockRestore();
  });

  it('takes the longest deadline of a pipeline whatever the order of its commands', () => {
    vi.useFakeTimers();
    const first = new Command('blpop', ['q', '1']);
    const blocking = pipelines([first, new Command('get', ['a'])]);
    void (blocking.connection.pipeline() as ReturnType<typeof fakePipeline>).exec();
    blocking.pipeline.promise.catch(() => {});
    vi.advanceTimersByTime(1099);
    expect(blocking.context.dead.has(first)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(blocking.context.dead.has(first)).toBe(true);
  });

  it('settles a pipeline without metrics', async () => {
    const context = createHookContext({ commandTimeoutMs: 100, isClosed: () => false });
    const pipeline = fakePipeline([new Command('get', ['a'])]);
    const connection = { pipeline: () => pipeline, multi: () => pipeline };
    hookPipelines(connection as never, context);
    const created = connection.pipeline();
    void created.exec();
    created.resolve(['x']);
    await expect(pipeline.promise).resolves.toEqual(['x']);
  });
});

function pipelinesWithSeconds(queue: Command[]) {
  const calls: Array<{ name: string; seconds: number }> = [];
  const observer: CommandObserver = {
    ok: (name, seconds) => calls.push({ name, seconds }),
    error: (name, seconds) => calls.push({ name, seconds }),
  };
  const context = createHookContext({
    commandTimeoutMs: 100,
    isClosed: () => false,
    tracker: createTracker(observer),
  });
  const pipeline = fakePipeline(queue);
  const connection = { pipeline: () => pipeline, multi: () => pipeline };
  hookPipelines(connection as never, context);
  return { connection, pipeline, calls };
}
