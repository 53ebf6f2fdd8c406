import { createServer, type Server } from 'node:net';

/*
 * Ports come from 20000-22767 rather than from binding port 0. Port 0 hands out ephemeral ports
 * (32768-60999 on Linux), the same range the kernel uses for outgoing connections: while a node is
 * killed, a client's reconnect loop can take its port as a local port (or even connect to itself),
 * and restarting the node then fails with EADDRINUSE. Keeping clear of that range also leaves
 * room for the cluster bus at port + 10000 (30000-32767), which Redis 6 requires.
 */
const FIRST_PORT = 20_000;
const LAST_PORT = 22_767;
export const BUS_PORT_OFFSET = 10_000;

function listen(port: number): Promise<Server | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Finds `count` consecutive free loopback ports whose bus ports (+10000) are free as well.
 * Consecutive ports make the one-line summary readable (`127.0.0.1:21000..21005`).
 */
export async function findFreePortBlock(count: number, attempts = 100): Promise<number> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const base = FIRST_PORT + Math.floor(Math.random() * (LAST_PORT - FIRST_PORT - count));
    const wanted: number[] = [];
    for (let offset = 0; offset < count; offset++)
      wanted.push(base + offset, base + offset + BUS_PORT_OFFSET);
    const servers = await Promise.all(wanted.map(listen));
    await Promise.all(servers.map((server) => (server ? close(server) : undefined)));
    if (servers.every((server) => server !== null)) return base;
  }
  throw new Error(`no block of ${count} free loopback ports found in ${FIRST_PORT}-${LAST_PORT}`);
}
