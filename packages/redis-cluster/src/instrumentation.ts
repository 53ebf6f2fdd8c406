import type { Metrics } from '@austa/metrics';
import { Redis } from 'ioredis';
import { errorType } from './error-type.js';
import type { CommandObserver } from './tracker.js';

interface Observe {
  observe(value: number): void;
}
interface Increment {
  inc(value?: number): void;
}

/** The package's own instruments, created once per client on the registry the caller passed in. */
export interface RedisInstruments {
  observer: CommandObserver;
  redirection(type: 'moved' | 'ask'): void;
  clusterRetry(reason: RetryReason): void;
  reconnect(scope: 'client' | 'node' | 'subscriber'): void;
  pubsubMessage(kind: PubSubKind, direction: 'published' | 'received', channel: string): void;
  pubsubHandlerError(kind: PubSubKind): void;
  onCollectConnections(collect: () => Array<{ role: string; status: string }>): () => void;
}

export type PubSubKind = 'message' | 'pmessage' | 'smessage';
type RetryReason = 'tryagain' | 'clusterdown' | 'connection_closed';

/** Operation names are label values: anything outside the commands ioredis knows is recorded as `other`. */
function operationLabeller(): (name: string) => string {
  const known = new Set(Redis.prototype.getBuiltinCommands());
  return (name) => {
    const lower = name.toLowerCase();
    return known.has(lower) ? lower : 'other';
  };
}

export interface InstrumentOptions {
  client: string;
  /** Put channel names in pub/sub message labels. Off by default: channel names often carry ids. */
  channelLabels: boolean;
}

export function createInstruments(metrics: Metrics, options: InstrumentOptions): RedisInstruments {
  const client = options.client;
  const duration = metrics.operationDuration();
  const operationLabel = operationLabeller();
  const okSeries = new Map<string, Observe>();
  const errorSeries = new Map<string, Observe>();

  const observer: CommandObserver = {
    ok(name, seconds) {
      let series = okSeries.get(name);
      if (series === undefined) {
        series = duration.bind({
          db_system_name: 'redis',
          db_operation_name: operationLabel(name),
          error_type: '',
        });
        okSeries.set(name, series);
      }
      series.observe(seconds);
    },
    error(name, seconds, error) {
      const type = errorType(error);
      const key = `${name}\u0000${type}`;
      let series = errorSeries.get(key);
      if (series === undefined) {
        series = duration.bind({
          db_system_name: 'redis',
          db_operation_name: operationLabel(name),
          error_type: type,
        });
        errorSeries.set(key, series);
      }
      series.observe(seconds);
    },
    unfollowedRedirect(kind) {
      redirection(kind);
    },
  };

  const redirections = metrics.counter({
    name: metrics.name('redis', 'redirections_total'),
    help: 'Cluster redirections (MOVED, ASK) answered for commands of this client.',
    labelNames: ['client', 'type'],
  });
  const retries = metrics.counter({
    name: metrics.name('redis', 'cluster_retries_total'),
    help: 'Commands retried by the cluster client after TRYAGAIN, CLUSTERDOWN or a node connection closing.',
    labelNames: ['client', 'reason'],
  });
  const reconnects = metrics.counter({
    name: metrics.name('redis', 'reconnects_total'),
    help: 'Reconnections of the client, of a cluster node connection, or of a subscriber connection.',
    labelNames: ['client', 'scope'],
  });
  const messages = metrics.counter({
    name: metrics.name('redis', 'pubsub_messages_total'),
    help: 'Pub/sub messages published and received, by kind. channel is empty unless channel labels are enabled.',
    labelNames: ['client', 'kind', 'direction', 'channel'],
  });
  const handlerErrors = metrics.counter({
    name: metrics.name('redis', 'pubsub_handler_errors_total'),
    help: 'Errors thrown or rejected by pub/sub message handlers. The subscription stays active.',
    labelNames: ['client', 'kind'],
  });
  const connections = metrics.gauge({
    name: metrics.name('redis', 'connections'),
    help: 'Connections of this client by node role and ioredis status, read at scrape time.',
    labelNames: ['client', 'role', 'status'],
  });

  const counterFor = <K extends string>(
    counter: { bind(labels: Record<string, string>): Increment },
    label: string,
  ) => {
    const cache = new Map<K, Increment>();
    return (value: K) => {
      let series = cache.get(value);
      if (series === undefined) {
        series = counter.bind({ client, [label]: value });
        cache.set(value, series);
      }
      series.inc();
    };
  };

  const redirection = counterFor<'moved' | 'ask'>(redirections, 'type');
  return {
    observer,
    redirection,
    clusterRetry: counterFor<RetryReason>(retries, 'reason'),
    reconnect: counterFor<'client' | 'node' | 'subscriber'>(reconnects, 'scope'),
    pubsubMessage(kind, direction, channel) {
      messages.inc({ client, kind, direction, channel: options.channelLabels ? channel : '' });
    },
    pubsubHandlerError: counterFor<PubSubKind>(handlerErrors, 'kind'),
    onCollectConnections(collect) {
      return connections.onCollect((set) => {
        const counts = new Map<string, { role: string; status: string; count: number }>();
        for (const { role, status } of collect()) {
          const key = `${role}\u0000${status}`;
          const entry = counts.get(key);
          if (entry) entry.count += 1;
          else counts.set(key, { role, status, count: 1 });
        }
        for (const { role, status, count } of counts.values()) set({ client, role, status }, count);
      });
    },
  };
}
