import type { Document, MongoClient } from 'mongodb';
import type { ChangeStreamStatus } from './change-stream.js';
import { errorType } from './error-type.js';

/** What `health()` reports. It never throws: every failure is in `problems`. */
export interface MongoHealth {
  /** `true` when the server answered, a primary is known (replica sets), and no change stream failed. */
  healthy: boolean;
  /** `hello` round trip. */
  ping: { ok: boolean; durationMs: number | null; errorType?: string };
  topology: {
    /** The driver's topology type (`ReplicaSetWithPrimary`, `ReplicaSetNoPrimary`, `Single`, `Sharded`, `LoadBalanced`…), else derived from `hello`. */
    type: string;
    /** Replica set name, or `null`. */
    setName: string | null;
    /** Servers the driver knows, with their types (`RSPrimary`, `RSSecondary`, `Mongos`, `Standalone`, `Unknown`…). */
    servers: Array<{ address: string; type: string }>;
  };
  /** `host:port` of the primary (the server itself for a standalone), or `null` when there is none. */
  primary: string | null;
  /** Every managed change stream of the client. */
  changeStreams: ChangeStreamStatus[];
  /** Why the client is unhealthy, in words an operator can act on. */
  problems: string[];
  /** When the check ran (epoch milliseconds). */
  checkedAt: number;
}

/** The parts of the driver's topology description `health()` reads (from `topologyDescriptionChanged`). */
export interface TopologyDescriptionLike {
  type: string;
  setName?: string | null;
  servers: Map<string, { type: string }>;
}

interface HelloReply {
  setName?: string;
  primary?: string;
  me?: string;
  msg?: string;
  isWritablePrimary?: boolean;
  hosts?: string[];
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error('health check timed out'), { name: 'HealthTimeout' })),
      timeoutMs,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface HealthInputs {
  client: MongoClient;
  closed: boolean;
  topology: TopologyDescriptionLike | undefined;
  changeStreams: ChangeStreamStatus[];
  timeoutMs: number;
}

/**
 * Sends `hello` to the admin database with read preference `primaryPreferred`, so the check answers during an
 * election (and reports the missing primary) instead of waiting for server selection to give up.
 */
export async function checkHealth(inputs: HealthInputs): Promise<MongoHealth> {
  const problems: string[] = [];
  const result: MongoHealth = {
    healthy: false,
    ping: { ok: false, durationMs: null },
    topology: {
      type: inputs.topology?.type ?? 'Unknown',
      setName: inputs.topology?.setName ?? null,
      servers: [],
    },
    primary: null,
    changeStreams: inputs.changeStreams,
    problems,
    checkedAt: Date.now(),
  };
  if (inputs.closed) {
    problems.push('the client is closed');
    return result;
  }
  try {
    const started = performance.now();
    let hello: HelloReply | undefined;
    try {
      hello = (await withTimeout(
        inputs.client
          .db('admin')
          .command({ hello: 1 }, { readPreference: 'primaryPreferred' }) as Promise<Document>,
        inputs.timeoutMs,
      )) as HelloReply;
      result.ping = { ok: true, durationMs: performance.now() - started };
    } catch (error) {
      const type = errorType(error);
      const timedOut = (error as Error | undefined)?.name === 'HealthTimeout';
      result.ping = { ok: false, durationMs: null, errorType: timedOut ? 'timeout' : type };
      problems.push(
        timedOut
          ? `no server answered hello within ${inputs.timeoutMs} ms`
          : `hello failed (${type}); check the URL, credentials, TLS and the network`,
      );
    }
    const description = inputs.topology;
    if (description) {
      result.topology.servers = [...description.servers].map(([address, server]) => ({
        address,
        type: server.type,
      }));
    } else if (hello?.hosts) {
      result.topology.servers = hello.hosts.map((address) => ({ address, type: 'Unknown' }));
    }
    if (hello) {
      result.topology.setName = hello.setName ?? result.topology.setName;
      if (!description) {
        result.topology.type = hello.msg === 'isdbgrid' ? 'Sharded' : hello.setName ? 'ReplicaSet' : 'Single';
      }
      if (hello.setName) {
        result.primary = hello.primary ?? null;
        if (result.primary === null)
          problems.push(`replica set ${hello.setName} has no primary: writes fail until one is elected`);
      } else if (hello.isWritablePrimary) {
        result.primary = hello.me ?? result.topology.servers[0]?.address ?? null;
      }
    }
    if (
      description?.type === 'ReplicaSetNoPrimary' &&
      !problems.some((problem) => problem.includes('no primary'))
    ) {
      problems.push('the driver sees no primary: writes fail until one is elected');
    }
    for (const stream of inputs.changeStreams) {
      if (stream.state === 'failed') {
        problems.push(
          `change stream "${stream.name}" failed (${stream.error?.reason ?? 'unknown'}) and needs an operator`,
        );
      } else if (stream.state === 'stopped') {
        problems.push(`change stream "${stream.name}" stopped after its collection was dropped or renamed`);
      }
    }
  } catch (error) {
    problems.push(`health check failed (${errorType(error)})`);
  }
  result.healthy = problems.length === 0;
  return result;
}
