import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { isNoScript } from './error-type.js';
import { RedisArgumentError } from './errors.js';

type Argument = string | Buffer | number;

/** ioredis defines a Buffer variant of every command at run time but declares none of these. */
type EvalClient = {
  evalsha(sha: string, numberOfKeys: number, ...rest: Argument[]): Promise<unknown>;
  evalshaBuffer(sha: string, numberOfKeys: number, ...rest: Argument[]): Promise<unknown>;
  eval(lua: string, numberOfKeys: number, ...rest: Argument[]): Promise<unknown>;
  evalBuffer(lua: string, numberOfKeys: number, ...rest: Argument[]): Promise<unknown>;
};

export interface RedisScript {
  /** SHA-1 of the script, what EVALSHA sends. */
  readonly sha: string;
  readonly lua: string;
  /**
   * Runs the script with EVALSHA and falls back to EVAL when the server answers NOSCRIPT (its script cache is empty
   * after a restart or a failover). `keys` are the script's KEYS (on a cluster they must share one hash slot; the
   * command is routed by the first). With `buffers: true` string replies come back as Buffers.
   */
  run(
    client: Redis | Cluster,
    keys: readonly string[],
    args: readonly Argument[],
    options?: { buffers?: boolean },
  ): Promise<unknown>;
}

/**
 * A Lua script for any ioredis client, without `defineCommand` on the caller's client (which would add a method to an
 * object the store does not own). Uses the `evalsha`/`evalshaBuffer` methods, which stay correct with auto-pipelining
 * (ioredis 5 drops the command name of `callBuffer` in an auto-pipeline).
 * @example
 * const touch = defineScript("return redis.call('PEXPIRE', KEYS[1], ARGV[1])");
 * await touch.run(redis, [key], [60_000]);
 */
export function defineScript(lua: string): RedisScript {
  if (typeof lua !== 'string' || lua.trim() === '')
    throw new RedisArgumentError('lua must be a non-empty string.');
  const sha = createHash('sha1').update(lua).digest('hex');
  return {
    sha,
    lua,
    async run(client, keys, args, options) {
      const redis = client as unknown as EvalClient;
      const buffers = options?.buffers === true;
      try {
        return await (buffers
          ? redis.evalshaBuffer(sha, keys.length, ...keys, ...args)
          : redis.evalsha(sha, keys.length, ...keys, ...args));
      } catch (error) {
        if (!isNoScript(error)) throw error;
        return buffers
          ? redis.evalBuffer(lua, keys.length, ...keys, ...args)
          : redis.eval(lua, keys.length, ...keys, ...args);
      }
    },
  };
}
