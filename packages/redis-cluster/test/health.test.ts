import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkHealth, type HealthProbe } from '../src/health.js';
import type { SlotRange } from '../src/slot-map.js';

const never = () => new Promise<never>(() => {});

function probe(overrides: Partial<HealthProbe> = {}): HealthProbe {
  return {
    topology: 'cluster',
    timeoutMs: 50,
    now: () => 0,
    refresh: async () => {},
    masters: () => ({
      uncovered: [],
      masters: [
        { address: 'a:1', ranges: [[0, 8191]] as SlotRange[], ping: async () => 'PONG' },
        { address: 'b:2', ranges: [[8192, 16383]] as SlotRange[], ping: async () => 'PONG' },
      ],
    }),
    clusterInfo: async () => ({ cluster_state: 'ok', cluster_slots_ok: '16384' }),
    ...overrides,
  };
}

describe('checkHealth', () => {
  it('is healthy when every master answers and CLUSTER INFO is ok', async () => {
    const health = await checkHealth(probe());
    expect(health).toMatchObject({
      healthy: true,
      problems: [],
      clusterState: 'ok',
      slotsOk: 16384,
      uncoveredSlots: [],
    });
    expect(health.nodes.map((node) => node.ok)).toEqual([true, true]);
  });

  it('reports a CLUSTER INFO that fails', async () => {
    const health = await checkHealth(
      probe({
        clusterInfo: async () => {
          throw new Error('NOPERM no permissions');
        },
      }),
    );
    expect(health.healthy).toBe(false);
    expect(health.problems).toEqual(['CLUSTER INFO failed on a:1: NOPERM no permissions']);
  });

  it('reports a CLUSTER INFO that never answers, within the timeout', async () => {
    const health = await checkHealth(probe({ clusterInfo: never }));
    expect(health.problems).toEqual(['CLUSTER INFO failed on a:1: CLUSTER INFO timed out after 50 ms']);
  });

  it('names the slots no master serves, and the slots of a master that does not answer', async () => {
    const health = await checkHealth(
      probe({
        masters: () => ({
          uncovered: [[0, 99]],
          masters: [
            { address: 'a:1', ranges: [[100, 8191]], ping: never },
            { address: 'b:2', ranges: [[8192, 16383]], ping: async () => 'PONG' },
          ],
        }),
      }),
    );
    expect(health.healthy).toBe(false);
    expect(health.uncoveredSlots).toEqual([
      [0, 99],
      [100, 8191],
    ]);
    expect(health.problems).toContain('slots 0-99 have no master');
    expect(health.problems).toContain(
      'master a:1 (slots 100-8191) did not answer PING: PING timed out after 50 ms',
    );
    expect(health.nodes[0]).toMatchObject({ address: 'a:1', ok: false });
  });

  it('says the cluster state is unknown when no master answers', async () => {
    const health = await checkHealth(
      probe({
        masters: () => ({ uncovered: [], masters: [{ address: 'a:1', ranges: [[0, 16383]], ping: never }] }),
      }),
    );
    expect(health.problems).toContain('no master answered, so the cluster state is unknown');
  });

  it('reports a slot map that could not be refreshed', async () => {
    const health = await checkHealth(probe({ refresh: never }));
    expect(health.problems).toEqual([
      'the slot map could not be refreshed (refreshing the slot map timed out after 50 ms); the list of masters may be stale',
    ]);
  });

  it('reports an unexpected failure instead of throwing', async () => {
    const health = await checkHealth(
      probe({
        masters: () => {
          throw new Error('broken');
        },
      }),
    );
    expect(health).toMatchObject({ healthy: false, problems: ['health check failed: broken'], nodes: [] });
  });

  it('reports a cluster_state other than ok and a short slot count', async () => {
    const health = await checkHealth(
      probe({ clusterInfo: async () => ({ cluster_state: 'fail', cluster_slots_ok: '10000' }) }),
    );
    expect(health.problems).toEqual(['cluster_state is fail', 'only 10000 of 16384 slots are served']);
  });

  it('on a standalone server needs only PING', async () => {
    const health = await checkHealth({
      topology: 'standalone',
      timeoutMs: 50,
      now: () => 0,
      masters: () => ({
        uncovered: [],
        masters: [{ address: 's:1', ranges: [[0, 16383]], ping: async () => 'PONG' }],
      }),
    });
    expect(health).toMatchObject({ healthy: true, topology: 'standalone', problems: [] });
    expect(health.clusterState).toBeUndefined();
  });
});

describe('checkHealth details', () => {
  it('measures each PING with the given clock, and stamps the check', async () => {
    let clock = 100;
    const before = Date.now();
    const health = await checkHealth(
      probe({
        now: () => clock,
        masters: () => ({
          uncovered: [],
          masters: [
            {
              address: 'a:1',
              ranges: [[0, 16383]],
              ping: async () => {
                clock += 7;
                return 'PONG';
              },
            },
          ],
        }),
      }),
    );
    expect(health.nodes).toEqual([{ address: 'a:1', ok: true, latencyMs: 7 }]);
    expect(health.checkedAt).toBeGreaterThanOrEqual(before);
    expect(health.checkedAt).toBeLessThanOrEqual(Date.now());
    expect(health.topology).toBe('cluster');
  });

  it('reads CLUSTER INFO from the first master that answered', async () => {
    const asked: string[] = [];
    const health = await checkHealth(
      probe({
        masters: () => ({
          uncovered: [],
          masters: [
            { address: 'a:1', ranges: [[0, 8191]], ping: () => Promise.reject(new Error('down')) },
            { address: 'b:2', ranges: [[8192, 16383]], ping: async () => 'PONG' },
          ],
        }),
        clusterInfo: async (address) => {
          asked.push(address);
          return { cluster_state: 'ok', cluster_slots_ok: '16384' };
        },
      }),
    );
    expect(asked).toEqual(['b:2']);
    expect(health.nodes).toEqual([
      { address: 'a:1', ok: false, error: 'down' },
      { address: 'b:2', ok: true, latencyMs: 0 },
    ]);
    expect(health.problems).toEqual(['master a:1 (slots 0-8191) did not answer PING: down']);
    expect(health.uncoveredSlots).toEqual([[0, 8191]]);
  });

  it('sorts the uncovered ranges by their first slot', async () => {
    const health = await checkHealth(
      probe({
        masters: () => ({
          uncovered: [[9000, 9999]],
          masters: [
            { address: 'a:1', ranges: [[10000, 16383]], ping: async () => 'PONG' },
            { address: 'b:2', ranges: [[0, 8999]], ping: () => Promise.reject('refused') },
          ],
        }),
      }),
    );
    expect(health.uncoveredSlots).toEqual([
      [0, 8999],
      [9000, 9999],
    ]);
    expect(health.problems).toEqual([
      'slots 9000-9999 have no master',
      'master b:2 (slots 0-8999) did not answer PING: refused',
    ]);
  });

  it('reports a CLUSTER INFO without fields as an unknown state with no slots served', async () => {
    const health = await checkHealth(probe({ clusterInfo: async () => ({}) }));
    expect(health.clusterState).toBeUndefined();
    expect(health.slotsOk).toBe(0);
    expect(health.problems).toEqual(['cluster_state is unknown', 'only 0 of 16384 slots are served']);
  });

  it('says the state is unknown when the probe cannot read CLUSTER INFO', async () => {
    const health = await checkHealth(probe({ clusterInfo: undefined }));
    expect(health.problems).toEqual(['no master answered, so the cluster state is unknown']);
    expect(health.healthy).toBe(false);
  });

  it('says so when no master is known', async () => {
    const health = await checkHealth(probe({ masters: () => ({ uncovered: [], masters: [] }) }));
    expect(health.problems).toEqual([
      'no master is known: the client has no slot map yet',
      'no master answered, so the cluster state is unknown',
    ]);
  });

  it('names the refresh error and still checks the masters it knows', async () => {
    const health = await checkHealth(
      probe({
        refresh: () => Promise.reject(new Error('Failed to refresh slots cache.')),
      }),
    );
    expect(health.problems).toEqual([
      'the slot map could not be refreshed (Failed to refresh slots cache.); the list of masters may be stale',
    ]);
    expect(health.nodes).toHaveLength(2);
    expect(health.clusterState).toBe('ok');
  });

  it('on a standalone server, names the server that did not answer and ignores slot coverage', async () => {
    const health = await checkHealth({
      topology: 'standalone',
      timeoutMs: 50,
      now: () => 0,
      masters: () => ({
        uncovered: [[0, 16383]],
        masters: [
          { address: 's:1', ranges: [[0, 16383]], ping: () => Promise.reject(new Error('ECONNREFUSED')) },
        ],
      }),
    });
    expect(health).toMatchObject({
      healthy: false,
      problems: ['s:1 did not answer PING: ECONNREFUSED'],
      nodes: [{ address: 's:1', ok: false, error: 'ECONNREFUSED' }],
    });
    expect(health.uncoveredSlots).toBeUndefined();
    expect(health.slotsOk).toBeUndefined();
  });
});

describe('checkHealth timers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('leaves no timer behind once every step answered', async () => {
    vi.useFakeTimers();
    await checkHealth(probe());
    expect(vi.getTimerCount()).toBe(0);
  });
});
