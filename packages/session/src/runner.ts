import {
  AustaRedisError,
  type CommandTimer,
  defineScript,
  type RedisScript,
  type TickCorker,
  tickCorker,
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
    cause: error,
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

  constructor(
    private readonly client: Redis | Cluster,
    private readonly replicated: boolean,
    private readonly replicationTimeoutMs: number,
    private readonly timer: CommandTimer,
  ) {
    this.corker = tickCorker(client);
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
  ): Promise<unknown> {
    const pipeline = this.client.pipeline();
    run(pipeline);
    if (this.replicated) pipeline.call('WAIT', 1, this.replicationTimeoutMs);
    let results: PipelineResult;
    const send = () => {
      this.cork(key);
      return this.timer.time(this.replicated ? `${name}+wait` : name, () => pipeline.exec());
    };
    try {
      results = await send();
    } catch (error) {
      // SET and UNLINK of a pointer are idempotent: one more try when the first may or may not have run.
      if (!isMaybeApplied(error)) throw unavailable(error);
      try {
        results = await send();
      } catch (retryError) {
        throw unavailable(retryError);
      }
    }
    const [error, reply] = results?.[0] ?? [new Error(`empty pipeline reply for ${key}`), null];
    if (error) throw unavailable(error);
    if (this.replicated) this.checkReplicas(results?.[results.length - 1]);
    return reply;
  }

  private async pipelined(
    s: Script,
    keys: string[],
    args: Argument[],
    bySha: boolean,
  ): Promise<PipelineResult> {
    const pipeline = this.client.pipeline() as BufferPipeline;
    if (bySha) pipeline.evalshaBuffer(s.sha, keys.length, ...keys, ...args);
    else pipeline.evalBuffer(s.lua, keys.length, ...keys, ...args);
    pipeline.call('WAIT', 1, this.replicationTimeoutMs);
    this.cork(keys[0] as string);
    try {
      return await this.timer.time(bySha ? 'evalsha+wait' : 'eval+wait', () => pipeline.exec());
    } catch (error) {
      throw unavailable(error);
    }
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
