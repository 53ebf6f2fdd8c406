import { createHash } from 'node:crypto';
import { AustaRedisError } from '@austa/redis-cluster';
import type { Cluster, Redis } from 'ioredis';
import { SessionError } from './errors.js';

export interface Script {
  lua: string;
  sha: string;
}

export function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

type Reply = unknown;
type PipelineResult = Array<[Error | null, unknown]> | null;

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/** Any failure of Redis or of the client becomes one typed error; the original is the `cause`. */
export function unavailable(error: unknown): SessionError {
  if (SessionError.isInstance(error)) return error;
  if (AustaRedisError.isInstance(error) && error.code === 'E_INCOMPLETE_SCAN') {
    return new SessionError('E_INCOMPLETE_SCAN', error.message, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SessionError('E_REDIS_UNAVAILABLE', `Redis did not complete the session operation: ${message}`, {
    cause: error,
  });
}

/**
 * Runs Lua scripts by SHA with an EVAL fallback after NOSCRIPT (a restart or failover empties the script cache),
 * without defining commands on the caller's client. With `replicated`, a write is followed by `WAIT 1 <timeout>` in
 * the same pipeline: a pipeline goes to one node, the master of the script's slot, which is the node WAIT must ask.
 */
export class ScriptRunner {
  constructor(
    private readonly client: Redis | Cluster,
    private readonly replicated: boolean,
    private readonly replicationTimeoutMs: number,
  ) {}

  async read(s: Script, keys: string[], args: Array<string | Buffer | number>): Promise<Reply> {
    try {
      return await this.client.callBuffer('EVALSHA', s.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!isNoScript(error)) throw unavailable(error);
      try {
        return await this.client.callBuffer('EVAL', s.lua, keys.length, ...keys, ...args);
      } catch (retryError) {
        throw unavailable(retryError);
      }
    }
  }

  /** A script that writes: with `replicated`, acknowledged only once a replica has it. */
  async write(s: Script, keys: string[], args: Array<string | Buffer | number>): Promise<Reply> {
    if (!this.replicated) return this.read(s, keys, args);
    let results = await this.pipelined(s, keys, args, true);
    if (results?.[0]?.[0] && isNoScript(results[0][0])) results = await this.pipelined(s, keys, args, false);
    const [scriptError, reply] = results?.[0] ?? [new Error('empty pipeline reply'), null];
    if (scriptError) throw unavailable(scriptError);
    this.checkReplicas(results?.[1]);
    return reply;
  }

  /** WAIT after a plain command (the pointer keys of caller-supplied ids). */
  async command(key: string, run: (pipeline: ReturnType<Redis['pipeline']>) => void): Promise<unknown> {
    const pipeline = this.client.pipeline();
    run(pipeline);
    if (this.replicated) pipeline.call('WAIT', 1, this.replicationTimeoutMs);
    let results: PipelineResult;
    try {
      results = await pipeline.exec();
    } catch (error) {
      throw unavailable(error);
    }
    const [error, reply] = results?.[0] ?? [new Error(`empty pipeline reply for ${key}`), null];
    if (error) throw unavailable(error);
    if (this.replicated) this.checkReplicas(results?.[results.length - 1]);
    return reply;
  }

  private async pipelined(
    s: Script,
    keys: string[],
    args: Array<string | Buffer | number>,
    bySha: boolean,
  ): Promise<PipelineResult> {
    const pipeline = this.client.pipeline();
    pipeline.callBuffer(bySha ? 'EVALSHA' : 'EVAL', bySha ? s.sha : s.lua, keys.length, ...keys, ...args);
    pipeline.call('WAIT', 1, this.replicationTimeoutMs);
    try {
      return await pipeline.exec();
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
