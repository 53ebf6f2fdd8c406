/*
 * The development default for MongoDB: without MONGODB_URL, try a single-node replica set from
 * mongodb-memory-server (a replica set, because the profile cache is invalidated by a change stream). It needs a
 * mongod binary, found locally or downloaded; where neither works (no network to the download host), Mongo features
 * are disabled and the service still starts. mongodb-memory-server-core is a dev dependency: a production image does
 * not have it, and production refuses to start without MONGODB_URL anyway.
 */

export type EmbeddedMongo =
  | { available: true; url: string; stop(): Promise<void> }
  | { available: false; reason: string };

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function shortReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').trim().slice(0, 200);
}

export async function startEmbeddedMongo(
  options: { binaryTimeoutMs?: number; startTimeoutMs?: number } = {},
): Promise<EmbeddedMongo> {
  let library: typeof import('mongodb-memory-server-core');
  try {
    library = await import('mongodb-memory-server-core');
  } catch {
    return { available: false, reason: 'mongodb-memory-server-core is not installed' };
  }
  // The downloader retries with backoff three times by default; one failed try says enough about reachability.
  process.env.MONGOMS_MAX_RETRIES ??= '1';
  try {
    // Resolving the binary first keeps a failure to one line: the replica set prints a warning block of its own.
    await withTimeout(
      library.MongoBinary.getPath({}),
      options.binaryTimeoutMs ?? 10_000,
      'finding or downloading mongod',
    );
  } catch (error) {
    return { available: false, reason: shortReason(error) };
  }
  try {
    const replSet = await withTimeout(
      library.MongoMemoryReplSet.create({ replSet: { count: 1, storageEngine: 'wiredTiger' } }),
      options.startTimeoutMs ?? 30_000,
      'starting mongodb-memory-server',
    );
    return {
      available: true,
      url: replSet.getUri(),
      stop: async () => {
        await replSet.stop({ doCleanup: true, force: false });
      },
    };
  } catch (error) {
    return { available: false, reason: shortReason(error) };
  }
}
