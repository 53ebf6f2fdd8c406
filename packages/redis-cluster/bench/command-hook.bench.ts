import { defineBench, loadRival, type MicroCase } from '@austa/bench';
import { createMetrics } from '@austa/metrics';
import { createRedisClient, DEFAULTS } from '@austa/redis-cluster';
import type { Redis } from 'ioredis';

// The rival comes from the bench package's dependencies; @austa/redis-cluster only has ioredis as a peer.
const ioredis = await loadRival<typeof import('ioredis')>('ioredis');

/*
 * The cost of the command hook alone, with no I/O: each case's client writes to a stub stream that accepts every
 * write, and the reply is handed back at once, the way ioredis' parser would. What is left is the client-side work per
 * command: building the Command, sendCommand, the hook (deadline, tracking, measurement), the reply and the promise.
 * Whole-process runs on this machine move by ±15% between identical cases; this figure can show a few percent.
 */

const REPLY = Buffer.from('value');

type Internals = {
  stream: unknown;
  status: string;
  condition: unknown;
  commandQueue: { shift(): { command: { resolve(value: unknown): void } } | undefined };
};

function stubbed(client: Redis): Redis & Internals {
  const internals = client as unknown as Internals;
  internals.stream = { writable: true, _writableState: { ended: false }, write: () => true };
  internals.status = 'ready';
  internals.condition = { select: 0, auth: undefined, subscriber: false };
  return client as Redis & Internals;
}

/** Resolves every command written so far, in order, as the parser would on a reply. */
function answer(client: Internals): void {
  for (let item = client.commandQueue.shift(); item !== undefined; item = client.commandQueue.shift()) {
    item.command.resolve(REPLY);
  }
}

// Plain ioredis with the options our factory applies, so only the hook differs.
const plain = () =>
  stubbed(
    new ioredis.Redis({
      lazyConnect: true,
      commandTimeout: DEFAULTS.commandTimeoutMs,
      maxRetriesPerRequest: DEFAULTS.maxRetriesPerRequest,
      enableOfflineQueue: DEFAULTS.enableOfflineQueue,
    }),
  );

const ours = (withMetrics: boolean) =>
  stubbed(
    createRedisClient(
      { host: '127.0.0.1', port: 6379, name: 'bench', redisOptions: { lazyConnect: true } },
      withMetrics ? { metrics: createMetrics() } : {},
    ).client as Redis,
  );

const KEYS = Array.from({ length: 1000 }, (_, i) => `bench:key:${i}`);

function get(client: Redis & Internals) {
  return (i: number) => {
    const reply = client.get(KEYS[i % KEYS.length] as string);
    answer(client);
    return reply;
  };
}

function pipeline(client: Redis & Internals) {
  return (i: number) => {
    const batch = client.pipeline();
    for (let k = 0; k < 10; k++) batch.get(KEYS[(i + k) % KEYS.length] as string);
    const results = batch.exec();
    answer(client);
    return results;
  };
}

function cases(op: string, run: (client: Redis & Internals) => (i: number) => unknown): MicroCase[] {
  return [
    { op, lib: 'ioredis', setup: () => ({ run: run(plain()) }) },
    // The same plain ioredis again: its ratio is the noise floor of this run.
    { op, lib: 'ioredis (control)', vs: 'ioredis', setup: () => ({ run: run(plain()) }) },
    { op, lib: '@austa/redis-cluster (no metrics)', vs: 'ioredis', setup: () => ({ run: run(ours(false)) }) },
    { op, lib: '@austa/redis-cluster', vs: 'ioredis', setup: () => ({ run: run(ours(true)) }) },
  ];
}

export default defineBench({
  package: 'redis-cluster',
  micro: [...cases('GET:stub-stream', get), ...cases('pipeline-10-GET:stub-stream', pipeline)],
});
