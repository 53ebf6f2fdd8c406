import {
  AustaRedisError,
  type CommandTimer,
  defineScript,
  type NodeRouter,
  nodeRouter,
  type RedisScript,
  type TickCorker,
  tickCorker,
  withoutCommandArguments,
} from '@austa/redis-cluster';
import type { Cluster, Redis } from 'ioredis';
import { SessionError } from './errors.js';

export type Script = RedisScript;

export function script(lua: string): Script {
  return defineScript(lua);
}

type Argument = string | Buffer | number;
type PipelineResult = Array<[Error | null, unknown]> | null;

/** ioredis defines Buffer variants of every command at run time but declares few of them. */
type BufferPipeline = ReturnType<Redis['pipeline']> & {
  evalshaBuffer(sha: string, numberOfKeys: number, ...rest: Argument[]): unknown;
  evalBuffer(lua: string, numberOfKeys: number, ...rest: Argument[]): unknown;
};

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.includes('NOSCRIPT');
}

/**
 * The replies a cluster node gives instead of running a command (MOVED, ASK, TRYAGAIN, CLUSTERDOWN). ioredis follows
 * them for a pipeline only when every command of it got the same one, and WAIT (keyless) never does: the store
 * follows them itself. The command did not run, so sending it again is safe even for a write that must run once.
 */
export type Redirect = { kind: 'moved' } | { kind: 'ask'; node: string } | { kind: 'retry' };

export function redirectOf(error: unknown): Redirect | undefined {
  if (!(error instanceof Error)) return undefined;
  const message = error.message;
  if (message.startsWith('MOVED ')) return { kind: 'moved' };
  if (message.startsWith('ASK ')) {
    const node = message.split(' ')[2];
    return node ? { kind: 'ask', node } : { kind: 'retry' };
  }
  if (message.startsWith('TRYAGAIN') || message.startsWith('CLUSTERDOWN')) return { kind: 'retry' };
  return undefined;
}

/** A slot-map refresh that does not answer in this long is left running; the next attempt tells whether it helped. */
const REFRESH_WAIT_MS = 2000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * True when `@austa/redis-cluster` refused to send a write again after its connection closed with the write on the
 * wire: Redis may or may not have run it.
 */
export function isMaybeApplied(error: unknown): boolean {
  for (let cause = error, depth = 0; cause !== undefined && depth < 4; depth++) {
    if (AustaRedisError.isInstance(cause) && cause.code === 'E_MAYBE_APPLIED') return true;
    cause = (cause as { cause?: unknown } | null)?.cause;
  }
  return false;
}

/** Any failure of Redis or of the client becomes one typed error; the original is the `cause`. */
export function unavailable(error: unknown): SessionError {
  if (SessionError.isInstance(error)) return error;
  if (AustaRedisError.isInstance(error) && error.code === 'E_INCOMPLETE_SCAN') {
    return new SessionError('E_INCOMPLETE_SCAN', error.message, { cause: error });
  }
  if (isMaybeApplied(error)) {
    return new SessionError(
      'E_MAYBE_APPLIED',
      'The connection to Redis closed while this write was on the wire: it may or may not have been applied. ' +
        'Read the session again before retrying.',
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SessionError('E_REDIS_UNAVAILABLE', `Redis did not complete the session operation: ${message}`, {
    cause: withoutCommandArguments(error),
  });
}

/**
 * Every Redis round trip of the store: scripts by SHA with an EVAL fallback after NOSCRIPT (`defineScript`, safe with
 * auto-pipelining), reads, and with `replicated` a `WAIT 1 <timeout>` after each write in the same pipeline (a
 * pipeline goes to one node, the master of the script's slot, which is the node WAIT must ask). Each round trip is
 * timed into the shared histogram by the command timer.
 */
export class ScriptRunner {
  /**
   * The commands the store's callers send in one tick leave in one write() instead of one syscall each: at 100
   * callers in flight this halved the client CPU of getSession and made Redis read many commands per read().
   */
  private readonly corker: TickCorker;
  private readonly router: NodeRouter;

  constructor(
    private readonly client: Redis | Cluster,
    private readonly replicated: boolean,
    private readonly replicationTimeoutMs: number,
    private readonly timer: CommandTimer,
  ) {
    this.corker = tickCorker(client);
    this.router = nodeRouter(client);
  }

  private cork(key: string): void {
    this.corker.cork(key);
  }

  /** GET as a Buffer (session values are binary). */
  async get(key: string): Promise<Buffer | null> {
    this.cork(key);
    try {
      return await this.timer.time('get', () => this.client.getBuffer(key));
    } catch (error) {
      throw unavailable(error);
    }
  }

  /** GET as a string. */
  async getString(key: string): Promise<string | null> {
    this.cork(key);
    try {
      return await this.timer.time('get', () => this.client.get(key));
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * Runs a script. `idempotent`: running it twice has the effect of running it once, so when its connection closed
   * with it on the wire (E_MAYBE_APPLIED) it is sent once more; otherwise that error reaches the caller.
   */
  async read(s: Script, keys: string[], args: Argument[], idempotent = true): Promise<unknown> {
    try {
      return await this.evaluate(s, keys, args);
    } catch (error) {
      if (!idempotent || !isMaybeApplied(error)) throw unavailable(error);
    }
    try {
      return await this.evaluate(s, keys, args);
    } catch (error) {
      throw unavailable(error);
    }
  }

  private evaluate(s: Script, keys: string[], args: Argument[]): Promise<unknown> {
    this.cork(keys[0] as string);
    return this.timer.time('evalsha', () => s.run(this.client, keys, args, { buffers: true }));
  }

  /** A script that writes: with `replicated`, acknowledged only once a replica has it. */
  async write(s: Script, keys: string[], args: Argument[], idempotent = true): Promise<unknown> {
    if (!this.replicated) return this.read(s, keys, args, idempotent);
    try {
      return await this.writeReplicated(s, keys, args);
    } catch (error) {
      if (!idempotent || !isMaybeApplied(error)) throw unavailable(error);
    }
    return this.writeReplicated(s, keys, args);
  }

  private async writeReplicated(s: Script, keys: string[], args: Argument[]): Promise<unknown> {
    let results = await this.pipelined(s, keys, args, true);
    if (results?.[0]?.[0] && isNoScript(results[0][0])) results = await this.pipelined(s, keys, args, false);
    const [scriptError, reply] = results?.[0] ?? [new Error('empty pipeline reply'), null];
    if (scriptError) throw unavailable(scriptError);
    this.checkReplicas(results?.[1]);
    return reply;
  }

  /** A plain command (the pointer keys of caller-supplied ids), with WAIT after it when `replicated`. */
  async command(
    key: string,
    name: string,
    run: (pipeline: ReturnType<Redis['pipeline']>) => void,
    idempotent = true,
  ): Promise<unknown> {
    let results: PipelineResult;
    const send = () =>
      this.exchange(key, this.replicated ? `${name}+wait` : name, (pipeline) => {
        run(pipeline);
        if (this.replicated) pipeline.call('WAIT', 1, this.replicationTimeoutMs);
      });
    try {
      results = await send();
    } catch (error) {
      // Overwriting a pointer is idempotent: one more try when the first may or may not have run. A claim (SET NX)
      // is not: its second try would find its own first one.
      if (!idempotent || !isMaybeApplied(error)) throw unavailable(error);
      try {
        results = await send();
      } catch (retryError) {
        throw unavailable(retryError);
      }
    }
    const [error, reply] = results?.[0] ?? [new Error(`empty pipeline reply for ${key}`), null];
    if (error) throw unavailable(error);
    if (this.replicated) {
      try {
        this.checkReplicas(results?.[results.length - 1]);
      } catch (replicaError) {
        // The command ran on the master: its reply tells the caller what it did (a refused SET NX wrote nothing).
        throw Object.assign(replicaError as Error, { reply });
      }
    }
    return reply;
  }

  private async pipelined(
    s: Script,
    keys: string[],
    args: Argument[],
    bySha: boolean,
  ): Promise<PipelineResult> {
    try {
      return await this.exchange(keys[0] as string, bySha ? 'evalsha+wait' : 'eval+wait', (pipeline) => {
        if (bySha) pipeline.evalshaBuffer(s.sha, keys.length, ...keys, ...args);
        else pipeline.evalBuffer(s.lua, keys.length, ...keys, ...args);
        pipeline.call('WAIT', 1, this.replicationTimeoutMs);
      });
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * Sends one pipeline (a write, then WAIT on the same connection, so WAIT counts the replicas that have that write)
   * and follows a cluster redirect of its first command, which ioredis leaves to us (see `redirectOf`): MOVED
   * refreshes the slot map and sends again (after a failover or a finished migration the map stays stale otherwise,
   * and every write to the slot would fail), ASK sends to the importing node after ASKING, TRYAGAIN and CLUSTERDOWN
   * wait and send again. As many times as the client's `maxRedirections`, with its retry delays, so a call still
   * ends in bounded time.
   */
  private async exchange(
    key: string,
    name: string,
    build: (pipeline: BufferPipeline) => void,
  ): Promise<PipelineResult> {
    const options = (this.client as Cluster).options as
      | { maxRedirections?: number; retryDelayOnTryAgain?: number; retryDelayOnFailover?: number }
      | undefined;
    const maxRedirections = options?.maxRedirections ?? 16;
    let askNode: string | undefined;
    for (let attempt = 0; ; attempt++) {
      const connection = askNode === undefined ? this.client : this.router.readyConnection(askNode);
      let redirect: Redirect | undefined;
      let results: PipelineResult = null;
      if (connection === undefined) {
        // The importing node is not in the pool yet: learn the map again and retry through it.
        redirect = { kind: 'moved' };
      } else {
        const pipeline = connection.pipeline() as BufferPipeline;
        if (askNode !== undefined) pipeline.call('ASKING');
        build(pipeline);
        if (askNode === undefined) this.cork(key);
        results = await this.timer.time(name, () => pipeline.exec());
        if (askNode !== undefined && results) results = results.slice(1);
        redirect = redirectOf(results?.[0]?.[0]);
      }
      if (redirect === undefined || attempt >= maxRedirections) {
        return results ?? [[new Error(`Too many cluster redirections for ${key}`), null]];
      }
      askNode = undefined;
      if (redirect.kind === 'ask') askNode = redirect.node;
      else if (redirect.kind === 'moved') {
        if (attempt > 0) await sleep(options?.retryDelayOnFailover ?? 100);
        await this.refreshSlots();
      } else await sleep(options?.retryDelayOnTryAgain ?? 100);
    }
  }

  private refreshSlots(): Promise<void> {
    const cluster = this.client as Partial<Cluster>;
    if (typeof cluster.refreshSlotsCache !== 'function') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, REFRESH_WAIT_MS);
      cluster.refreshSlotsCache?.(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private checkReplicas(result: [Error | null, unknown] | undefined): void {
    const [error, replicas] = result ?? [new Error('no WAIT reply'), 0];
    if (error) throw unavailable(error);
    if (typeof replicas !== 'number' || replicas < 1) {
      throw new SessionError(
        'E_NOT_REPLICATED',
        `No replica confirmed the write within ${this.replicationTimeoutMs} ms (WAIT 1). It is on the master only ` +
          'and could be lost in a failover; treat the operation as failed.',
      );
    }
  }
}
