/*
 * Server-free micro-benchmark: what the instrumentation costs per event, in nanoseconds, on any machine.
 * - metrics listener: one commandStarted plus one commandSucceeded, through the listener the client attaches to the
 *   driver (collection lookup, requestId correlation, two histogram observations);
 * - field-path matcher: one update event checked against the watched fields of watchFields().
 * Each case runs ROUNDS times; the line reports the median round. The control case runs the same loop with empty
 * functions: subtract it to get the cost of the work alone.
 */
import { createMetrics } from '@austa/metrics';
import { CommandMetrics } from '../src/driver-events.js';
import { createFieldMatcher, type UpdateDescriptionLike } from '../src/field-paths.js';
import { collectionLabeler, createInstruments } from '../src/instruments.js';

const ROUNDS = Number(process.env.BENCH_MICRO_ROUNDS ?? 9);
const OPS = Number(process.env.BENCH_MICRO_OPS ?? 1_000_000);

interface Line {
  package: 'mongo-client';
  op: string;
  lib: string;
  ops: number;
  rounds: number;
  nsPerOp: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function measure(op: string, lib: string, body: (i: number) => void): Line {
  for (let i = 0; i < Math.min(OPS, 200_000); i++) body(i); // warm-up: let the JIT settle
  const rounds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < OPS; i++) body(i);
    rounds.push(Number(process.hrtime.bigint() - started) / OPS);
  }
  return {
    package: 'mongo-client',
    op,
    lib,
    ops: OPS,
    rounds: ROUNDS,
    nsPerOp: Math.round(median(rounds) * 10) / 10,
  };
}

function listenerCases(): Line[] {
  const metrics = createMetrics();
  const listener = new CommandMetrics(
    createInstruments(metrics, { client: 'bench', collectionLabel: collectionLabeler(true) }),
  );
  // Event objects are built once and mutated, as the driver builds its own: the loop times the listener only.
  const findStarted = {
    requestId: 0,
    commandName: 'find',
    command: { find: 'patients', filter: { _id: 1 }, limit: 1 },
  };
  const findSucceeded = {
    requestId: 0,
    commandName: 'find',
    duration: 0.42,
    reply: { ok: 1, cursor: { id: 0 } },
  };
  const insertStarted = {
    requestId: 0,
    commandName: 'insert',
    command: { insert: 'patients', documents: [{}] },
  };
  const insertSucceeded = { requestId: 0, commandName: 'insert', duration: 0.9, reply: { ok: 1, n: 1 } };
  const empty = (_event: unknown) => {};
  let requestId = 0;
  return [
    measure('metrics-listener:find(started+succeeded)', '@austa/mongo-client', () => {
      requestId++;
      findStarted.requestId = requestId;
      findSucceeded.requestId = requestId;
      listener.started(findStarted);
      listener.succeeded(findSucceeded);
    }),
    measure('metrics-listener:insert(started+succeeded)', '@austa/mongo-client', () => {
      requestId++;
      insertStarted.requestId = requestId;
      insertSucceeded.requestId = requestId;
      listener.started(insertStarted);
      listener.succeeded(insertSucceeded);
    }),
    measure('metrics-listener:find(started+succeeded)', 'empty listener (control)', () => {
      requestId++;
      findStarted.requestId = requestId;
      findSucceeded.requestId = requestId;
      empty(findStarted);
      empty(findSucceeded);
    }),
  ];
}

function matcherCases(): Line[] {
  const touches = createFieldMatcher(['status', 'address.city', 'items.price']);
  const unrelated: UpdateDescriptionLike = {
    updatedFields: { name: 'Ada', updatedAt: new Date(0), 'profile.bio': 'x' },
    removedFields: ['draft'],
    truncatedArrays: [],
  };
  const arrayHit: UpdateDescriptionLike = {
    updatedFields: { updatedAt: new Date(0), 'items.7.price': 12 },
    removedFields: [],
    truncatedArrays: [],
  };
  let sink = 0;
  const lines = [
    measure('field-matcher:update(no match, 4 paths x 3 fields)', '@austa/mongo-client', () => {
      if (touches(unrelated)) sink++;
    }),
    measure('field-matcher:update(array path match)', '@austa/mongo-client', () => {
      if (touches(arrayHit)) sink++;
    }),
    measure('field-matcher:update', 'empty predicate (control)', () => {
      if (unrelated.updatedFields === undefined) sink++;
    }),
  ];
  if (sink === -1) console.log(sink); // keeps the calls from being optimised away
  return lines;
}

export function runMicroBenchmarks(): Line[] {
  const lines = [...listenerCases(), ...matcherCases()];
  for (const line of lines) process.stdout.write(`${JSON.stringify(line)}\n`);
  return lines;
}
