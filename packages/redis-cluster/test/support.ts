import type { Metrics } from '@austa/metrics';

/** Reads one sample from the exposition text; 0 when the series does not exist yet. */
export async function sample(
  metrics: Metrics,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const text = await metrics.text();
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const matches = wanted.every(([key, value]) => line.includes(`${key}="${value}"`));
    if (matches) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

/** How many times a Redis command was measured with the given error type ('' for success). */
export function measured(metrics: Metrics, operation: string, errorType = ''): Promise<number> {
  return sample(metrics, 'db_client_operation_duration_seconds_count', {
    db_system_name: 'redis',
    db_operation_name: operation,
    error_type: errorType,
  });
}

export async function eventually<T>(
  check: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await check();
  while (!accept(last)) {
    if (Date.now() > deadline) return last;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    last = await check();
  }
  return last;
}

/**
 * A loopback TCP proxy in front of a real Redis, so a test can take the network away (close the listener and every
 * connection) and give it back on the same port: the client goes through a real disconnect, offline queue and
 * reconnect, against a real server.
 */
export interface Proxy {
  port: number;
  /** Closes the listener and destroys every proxied connection; new connections are refused. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }, startDown = false): Promise<Proxy> {
  const { createServer, connect } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  let server = createServer();
  const handle = (client: import('node:net').Socket) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  };
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server = createServer(handle);
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  // A port below the kernel's ephemeral range: while the proxy is down, the client's reconnect attempts take local
  // ports from that range and could take ours, and up() would then fail with EADDRINUSE.
  let port = 0;
  for (let attempt = 0; port === 0; attempt++) {
    const candidate = 23_000 + Math.floor(Math.random() * 7000);
    try {
      port = await listen(candidate);
    } catch (error) {
      if (attempt > 50) throw error;
    }
  }
  const down = async () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  if (startDown) await down();
  return {
    port,
    down,
    up: async () => {
      await listen(port);
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** How many times a Redis command was measured, whatever its outcome. */
export async function measuredAll(metrics: Metrics, operation: string): Promise<number> {
  let total = 0;
  for (const line of (await metrics.text()).split('\n')) {
    if (
      line.startsWith('db_client_operation_duration_seconds_count{') &&
      line.includes('db_system_name="redis"') &&
      line.includes(`db_operation_name="${operation}"`)
    ) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}
