import { describe, expect, it } from 'vitest';
import { Reconnector } from '../src/reconnect.js';
import { activeTimers, recordingLogger, until } from './fakes.js';

function reconnector(connect: () => Promise<unknown>) {
  const logger = recordingLogger();
  const attempts: boolean[] = [];
  let closedAgain = 0;
  const subject = new Reconnector({
    connect,
    closeAgain: async () => {
      closedAgain++;
    },
    logger,
    client: 'api',
    initialDelayMs: 2,
    maxDelayMs: 10,
    onAttempt: (ok) => attempts.push(ok),
  });
  return { subject, logger, attempts, closedAgain: () => closedAgain };
}

describe('Reconnector', () => {
  it('retries connect() with backoff until it succeeds, then stops', async () => {
    let calls = 0;
    const { subject, logger, attempts } = reconnector(async () => {
      calls++;
      if (calls < 3) throw Object.assign(new Error('refused'), { name: 'MongoServerSelectionError' });
    });
    subject.trigger();
    subject.trigger(); // a second trigger while running starts nothing new
    await until(() => attempts.length === 3);
    expect(attempts).toEqual([false, false, true]);
    expect(calls).toBe(3);
    expect(logger.lines.map((line) => line.message)).toEqual([
      'MongoDB client cannot connect; retrying in the background.',
      'MongoDB client connected after its earlier connection attempts failed.',
    ]);
    expect(logger.lines[0]?.details).toMatchObject({ errorType: 'server_selection', client: 'api' });
  });

  it('stops at once when stopped during a wait, leaving no timer', async () => {
    const before = activeTimers();
    const { subject, attempts } = reconnector(async () => {
      throw new Error('refused');
    });
    subject.trigger();
    await until(() => attempts.length >= 1);
    await subject.stop();
    const count = attempts.length;
    expect(activeTimers()).toBeLessThanOrEqual(before);
    subject.trigger(); // after stop(), triggers are ignored
    await new Promise((resolve) => setImmediate(resolve));
    expect(attempts.length).toBe(count);
  });

  it('closes the client again when a connect in flight succeeds after stop()', async () => {
    let release: () => void = () => {};
    let inFlight = false;
    const { subject, closedAgain } = reconnector(
      () =>
        new Promise<void>((resolve) => {
          inFlight = true;
          release = resolve;
        }),
    );
    subject.trigger();
    await until(() => inFlight);
    const stopping = subject.stop();
    release();
    await stopping;
    expect(closedAgain()).toBe(1);
  });
});
