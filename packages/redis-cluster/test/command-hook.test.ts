import { Command } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { type CommandObserver, createTracker, hookSendCommand } from '../src/command-hook.js';

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

function hooked(options: { isCluster?: boolean; closed?: boolean; withTracker?: boolean } = {}) {
  const { connection, sent } = fakeConnection();
  const { calls, observer } = recorder();
  const tracker = createTracker(observer, options.isCluster ?? false);
  hookSendCommand(connection as never, {
    isCluster: options.isCluster ?? false,
    isClosed: () => options.closed ?? false,
    commandTimeoutMs: 1000,
    ...(options.withTracker === false ? {} : { tracker }),
  });
  return { connection, sent, calls, tracker };
}

function recorder() {
  const calls: Array<{ name: string; outcome: string }> = [];
  const observer: CommandObserver = {
    ok: (name) => calls.push({ name, outcome: 'ok' }),
    error: (name, _seconds, error) => calls.push({ name, outcome: (error as Error).message }),
  };
  return { calls, observer };
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
    const { connection, calls } = hooked();
    const command = new Command('incr', ['k']);
    void connection.sendCommand(command);
    command.reject(new Error('Command timed out'));
    await expect(command.promise).rejects.toThrow('Command timed out');
    expect(calls).toEqual([{ name: 'incr', outcome: 'Command timed out' }]);
  });

  it('keeps measuring a cluster pipeline command across its MOVED retry', async () => {
    const { connection, calls, tracker } = hooked({ isCluster: true });
    const command = new Command('set', ['k', 'v']) as Command & { pipelineIndex?: number };
    command.pipelineIndex = 0;
    void connection.sendCommand(command);
    const moved = Object.assign(new Error('MOVED 1234 127.0.0.1:7001'), { name: 'ReplyError' });
    command.reject(moved);
    await expect(command.promise).rejects.toThrow('MOVED');
    expect(calls).toEqual([]);
    // ioredis' Pipeline re-initialises the promise and sends the same Command object again.
    (command as unknown as { initPromise(): void }).initPromise();
    void connection.sendCommand(command);
    command.resolve(Buffer.from('OK'));
    await command.promise;
    expect(calls).toEqual([{ name: 'set', outcome: 'ok' }]);
    expect(tracker.pending).toBe(0);
  });

  it('measures a command once when a Cluster and its node connection share the tracker', async () => {
    const { connection: cluster, calls, tracker } = hooked({ isCluster: true });
    const { connection: node } = fakeConnection();
    hookSendCommand(node as never, {
      isCluster: false,
      isClosed: () => false,
      commandTimeoutMs: 1000,
      tracker,
    });
    const command = new Command('get', ['k']);
    void cluster.sendCommand(command);
    void node.sendCommand(command);
    command.resolve(Buffer.from('v'));
    await command.promise;
    expect(calls).toEqual([{ name: 'get', outcome: 'ok' }]);
    expect(tracker.pending).toBe(0);
  });

  it('rejects with E_CLIENT_CLOSED and sends nothing once closed', async () => {
    const { connection, sent } = hooked({ closed: true, withTracker: false });
    const command = new Command('get', ['k']);
    await expect(connection.sendCommand(command)).rejects.toMatchObject({ code: 'E_CLIENT_CLOSED' });
    expect(sent).toHaveLength(0);
  });
});
