import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { redisBase, startTestService, TOPOLOGIES } from './support.js';

/** Connections named `austa:<name>` on every node of the topology. */
async function connectionsNamed(topology: (typeof TOPOLOGIES)[number], name: string): Promise<number> {
  const base = redisBase(topology);
  const nodes =
    'url' in base && base.url !== undefined
      ? [new Redis(base.url, { lazyConnect: true })]
      : (base.cluster?.nodes ?? []).map((node) => new Redis(`redis://${node}`, { lazyConnect: true }));
  try {
    let count = 0;
    for (const node of nodes) {
      const list = (await node.call('CLIENT', 'LIST')) as string;
      count += list.split('\n').filter((line) => line.includes(` name=austa:${name} `)).length;
    }
    return count;
  } finally {
    for (const node of nodes) node.disconnect();
  }
}

describe.each(TOPOLOGIES)('closing the service on %s Redis', (topology) => {
  it('ends every connection it opened: the command connection and the cache’s invalidation subscriber', async () => {
    const name = `care-close-${randomBytes(3).toString('hex')}`;
    const service = await startTestService(topology, {
      mongo: false,
      redis: { ...redisBase(topology), name },
    });
    // Traffic through every store, so that each has opened what it uses.
    const login = await service.app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { username: 'closer', password: 'demo' },
    });
    const cookie = String([login.headers['set-cookie']].flat()[0]).split(';')[0] ?? '';
    await service.app.inject({
      method: 'POST',
      url: '/conversations',
      headers: { cookie },
      payload: { message: 'hi' },
    });
    await service.app.stores.profiles.getOrSet('close-test', async () => 1);
    const deadline = Date.now() + 5000;
    let open = await connectionsNamed(topology, name);
    // The cache's subscriber connects in the background.
    while (open < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      open = await connectionsNamed(topology, name);
    }
    expect(open).toBeGreaterThanOrEqual(2);

    await service.close();
    let left = await connectionsNamed(topology, name);
    const closeDeadline = Date.now() + 2000;
    while (left > 0 && Date.now() < closeDeadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = await connectionsNamed(topology, name);
    }
    expect(left).toBe(0);
  });
});
