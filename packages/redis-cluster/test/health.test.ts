import { describe, expect, it } from 'vitest';
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
    expect(health.problems[0]).toMatch(/slot map could not be refreshed/);
  });

  it('reports an unexpected failure instead of throwing', async () => {
    const health = await checkHealth(
      probe({
        masters: () => {
          throw new Error('broken');
        },
      }),
    );
    expect(health).toMatchObject({ healthy: false, problems: ['health check failed: broken'] });
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
