/*
 * findOne by _id and insertOne through @austa/mongo-client against the raw mongodb driver, in the same run.
 * bench/run.ts finds a MongoDB (MONGODB_URL / BENCH_MONGODB_URL, mongodb-memory-server, Docker) and runs the
 * harness with MONGODB_URL set; without a MongoDB it says "skipped: no MongoDB" and these cases are left out.
 *
 * Fairness: the raw driver is built with exactly the options createMongoClient applies (DEFAULTS), documents are
 * the same for every case, keys (_id values) are made before timing, and each case runs in its own process.
 */
import { type BenchCase, type BenchContext, defineBench, loadRival, type PreparedCase } from '@austa/bench';
import { createMetrics } from '@austa/metrics';
import { createMongoClient, DEFAULTS } from '@austa/mongo-client';
import type { Collection, Document, MongoClient, MongoClientOptions } from 'mongodb';

const mongodb = await loadRival<typeof import('mongodb')>('mongodb');
const DATABASE = 'austa_bench';

function url(): string {
  const value = process.env.MONGODB_URL;
  if (!value)
    throw new Error('driver.bench.ts needs MONGODB_URL; run it through `pnpm bench` (bench/run.ts).');
  return value;
}

// The same settings createMongoClient derives from DEFAULTS, so the ratio is the cost of the instrumentation alone.
function rawOptions(): MongoClientOptions {
  return {
    appName: 'austa:bench',
    maxPoolSize: DEFAULTS.maxPoolSize,
    minPoolSize: DEFAULTS.minPoolSize,
    maxIdleTimeMS: DEFAULTS.maxIdleTimeMs,
    waitQueueTimeoutMS: DEFAULTS.waitQueueTimeoutMs,
    connectTimeoutMS: DEFAULTS.connectTimeoutMs,
    socketTimeoutMS: DEFAULTS.socketTimeoutMs,
    serverSelectionTimeoutMS: DEFAULTS.serverSelectionTimeoutMs,
    readPreference: DEFAULTS.readPreference,
    writeConcern: { ...DEFAULTS.writeConcern },
  };
}

function collectionName(context: BenchContext, kind: string, lib?: string): string {
  const run = context.prefix.replace(/[^A-Za-z0-9]/g, '_');
  return lib === undefined ? `${kind}_${run}` : `${kind}_${run}_${lib.replace(/[^A-Za-z0-9]/g, '_')}`;
}

/** Writes the documents findOne reads; idempotent, so every case's setup can run it. */
async function prepare(collection: Collection<Document>, context: BenchContext): Promise<void> {
  await collection.bulkWrite(
    context.keys.map((key) => ({
      replaceOne: { filter: { _id: key as never }, replacement: { value: context.value }, upsert: true },
    })),
    { ordered: false },
  );
}

type Operation = 'findOne' | 'insertOne';

function runner(collection: Collection<Document>, operation: Operation, context: BenchContext) {
  const { keys, value } = context;
  return operation === 'findOne'
    ? (i: number) => collection.findOne({ _id: keys[i % keys.length] as never })
    : () => collection.insertOne({ value });
}

async function prepared(
  client: MongoClient,
  close: () => Promise<void>,
  operation: Operation,
  context: BenchContext,
  lib: string,
): Promise<PreparedCase> {
  const database = client.db(DATABASE);
  const name =
    operation === 'findOne' ? collectionName(context, 'find') : collectionName(context, 'insert', lib);
  const collection = database.collection<Document>(name);
  if (operation === 'findOne') await prepare(collection, context);
  else await database.command({ ping: 1 });
  return {
    run: runner(collection, operation, context),
    teardown: async () => {
      await collection.drop().catch(() => undefined);
      await close();
    },
  };
}

function cases(operation: Operation): BenchCase[] {
  const raw = (lib: string): BenchCase => ({
    op: operation,
    lib,
    ...(lib === 'mongodb' ? {} : { vs: 'mongodb' }),
    async setup(context) {
      const client = new mongodb.MongoClient(url(), rawOptions());
      return prepared(client, () => client.close(), operation, context, lib);
    },
  });
  const ours = (lib: string, withMetrics: boolean): BenchCase => ({
    op: operation,
    lib,
    vs: 'mongodb',
    async setup(context) {
      const mongo = createMongoClient({
        url: url(),
        name: 'bench',
        ...(withMetrics ? { metrics: createMetrics() } : {}),
      });
      return prepared(mongo.client, () => mongo.close(), operation, context, lib);
    },
  });
  return [
    raw('mongodb'),
    // The raw driver again: its ratio to 'mongodb' is the noise floor of this run.
    raw('mongodb (control)'),
    ours('@austa/mongo-client', true),
    ours('@austa/mongo-client (no metrics)', false),
  ];
}

export default defineBench({
  package: 'mongo-client',
  // MongoDB has no topology axis: one run is enough (the harness prepares its Redis keys, unused here).
  topologies: ['standalone'],
  // bench/run.ts sets MONGODB_URL when it found a MongoDB, and says "skipped: no MongoDB" otherwise.
  cases: process.env.MONGODB_URL ? [...cases('findOne'), ...cases('insertOne')] : [],
});
