/*
 * Server-free micro-benchmark, run on every machine: what the instrumentation costs per event.
 * - metrics listener: one commandStarted plus one commandSucceeded through the listener the client attaches to the
 *   driver (collection lookup, requestId correlation, two histogram observations);
 * - field-path matcher: one update event checked against the watched fields of watchFields().
 * Each op has a floor case doing the same loop with nothing in it, so the figure of the work alone is the
 * difference, and the floor's drift shows the noise of the run.
 */
import { defineBench, type MicroCase } from '@austa/bench';
import { createMetrics } from '@austa/metrics';
import { CommandMetrics } from '../src/driver-events.js';
import { createFieldMatcher, type UpdateDescriptionLike } from '../src/field-paths.js';
import { collectionLabeler, createInstruments } from '../src/instruments.js';

function listenerCases(op: string, commandName: string, command: object, reply: object): MicroCase[] {
  // Event objects are built once and mutated, as the driver builds its own: the loop times the listener only.
  const events = () => ({
    started: { requestId: 0, commandName, command: command as Record<string, unknown> },
    succeeded: { requestId: 0, commandName, duration: 0.42, reply },
  });
  return [
    {
      op,
      lib: '@austa/mongo-client',
      setup() {
        const listener = new CommandMetrics(
          createInstruments(createMetrics(), { client: 'bench', collectionLabel: collectionLabeler(true) }),
        );
        const { started, succeeded } = events();
        return {
          run(i) {
            started.requestId = i + 1;
            succeeded.requestId = i + 1;
            listener.started(started);
            listener.succeeded(succeeded);
            return succeeded;
          },
        };
      },
    },
    {
      op,
      lib: 'no listener (floor)',
      setup() {
        const { started, succeeded } = events();
        return {
          run(i) {
            started.requestId = i + 1;
            succeeded.requestId = i + 1;
            return started.requestId + succeeded.requestId;
          },
        };
      },
    },
  ];
}

function matcherCases(op: string, update: UpdateDescriptionLike): MicroCase[] {
  return [
    {
      op,
      lib: '@austa/mongo-client',
      setup() {
        const touches = createFieldMatcher(['status', 'address.city', 'items.price']);
        return { run: () => touches(update) };
      },
    },
    {
      op,
      lib: 'no matcher (floor)',
      setup: () => ({ run: () => update.updatedFields !== undefined }),
    },
  ];
}

export default defineBench({
  package: 'mongo-client',
  micro: [
    ...listenerCases(
      'metrics listener: find (started+succeeded)',
      'find',
      { find: 'patients', filter: { _id: 1 }, limit: 1 },
      { ok: 1, cursor: { id: 0, firstBatch: [] } },
    ),
    ...listenerCases(
      'metrics listener: insert (started+succeeded)',
      'insert',
      { insert: 'patients', documents: [{}] },
      { ok: 1, n: 1 },
    ),
    ...matcherCases('field matcher: update touching no watched field', {
      updatedFields: { name: 'Ada', updatedAt: new Date(0), 'profile.bio': 'x' },
      removedFields: ['draft'],
      truncatedArrays: [],
    }),
    ...matcherCases('field matcher: update matching through an array position', {
      updatedFields: { updatedAt: new Date(0), 'items.7.price': 12 },
      removedFields: [],
      truncatedArrays: [],
    }),
  ],
});
