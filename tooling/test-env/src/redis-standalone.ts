import { Redis } from 'ioredis';
import { dockerAnswers } from './docker.js';
import { OwnedServers } from './owned-servers.js';
import { findRedisServer, LOOPBACK, REDIS_MISSING_MESSAGE } from './redis-node.js';
import type { RedisStandaloneTarget } from './types.js';

export interface StandaloneHandle extends RedisStandaloneTarget {
  /** The same fields as a plain object, safe to pass to `project.provide()`. */
  target: RedisStandaloneTarget;
  /** Stops what this handle started; a no-op for servers from REDIS_URL. */
  stop(): Promise<void>;
}

function handleOf(target: RedisStandaloneTarget, stop: () => Promise<void>): StandaloneHandle {
  return { ...target, target: { ...target }, stop };
}

/**
 * Starts a throwaway redis-server on a free loopback port (no persistence) and waits for PING.
 * Falls back to a `redis:7` container when the binary is missing and Docker answers.
 */
export async function startRedisStandalone(): Promise<StandaloneHandle> {
  const binary = findRedisServer();
  if (binary === null) return startInDocker();
  const servers = await OwnedServers.start(binary, 1, false);
  const port = servers.ports[0] as number;
  return handleOf(
    {
      topology: 'standalone',
      url: `redis://${LOOPBACK}:${port}`,
      host: LOOPBACK,
      port,
      owned: true,
      source: 'process',
      stateDir: servers.stateDir,
    },
    () => servers.stop(),
  );
}

async function startInDocker(): Promise<StandaloneHandle> {
  const docker = await dockerAnswers();
  if (!docker.ok) throw new Error(`${REDIS_MISSING_MESSAGE} (${docker.reason})`);
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer('redis:7')
    .withCommand(['redis-server', '--save', '', '--appendonly', 'no'])
    .withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
    .start();
  const host = container.getHost();
  const port = container.getMappedPort(6379);
  let stopped = false;
  return handleOf(
    {
      topology: 'standalone',
      url: `redis://${host}:${port}`,
      host,
      port,
      owned: true,
      source: 'docker',
      stateDir: null,
    },
    async () => {
      if (stopped) return;
      stopped = true;
      await container.stop();
    },
  );
}

/** `REDIS_URL` when set (checked with PING, never flushed or stopped), else our own server. */
export async function resolveRedis(): Promise<StandaloneHandle> {
  const url = process.env.REDIS_URL;
  if (!url) return startRedisStandalone();
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // ioredis reports the socket error as an event and rejects with a generic "Connection is closed".
  let socketError: Error | undefined;
  client.on('error', (error: Error) => {
    socketError = error;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new Error(
      `REDIS_URL=${redact(url)} did not answer PING: ${(socketError ?? (error as Error)).message}`,
    );
  } finally {
    client.disconnect();
  }
  const parsed = new URL(url);
  return handleOf(
    {
      topology: 'standalone',
      url,
      host: parsed.hostname,
      port: Number(parsed.port || 6379),
      owned: false,
      source: 'env',
      stateDir: null,
    },
    async () => {},
  );
}

export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}
