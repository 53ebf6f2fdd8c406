import { createHash } from 'node:crypto';
import { type Cluster, Command, type Redis } from 'ioredis';
import { isNoScript } from './error-type.js';
import { RedisArgumentError } from './errors.js';

type Argument = string | Buffer | number;

/** ioredis defines a Buffer variant of every command at run time but declares none of these. */
type EvalClient = Record<
  'evalsha' | 'evalshaBuffer' | 'eval' | 'evalBuffer',
  (body: string, ...argv: Argument[]) => Promise<unknown>
>;

/**
 * Whether a script must skip ioredis' auto-pipeline: a Cluster's auto-pipeline is grouped by the slot of a command's
 * first key, and ioredis before 5.11 took EVALSHA's first argument (the SHA) for it, so one tick's scripts on keys of
 * different masters failed whole ("All keys in the pipeline should belong to the same slots allocation group").
 * Sent on its own, a command is routed by its real key on every version.
 */
export function skipsAutoPipeline(client: Redis | Cluster): boolean {
  return (client as Cluster).isCluster === true && client.options.enableAutoPipelining === true;
}

/**
 * Runs a script on any ioredis client by EVALSHA, falling back to EVAL when the server answers NOSCRIPT (its script
 * cache is empty after a restart or a failover). `argv` is the key count, the keys, then the arguments, for stores that
 * build it in one array. Through the `evalsha`/`evalshaBuffer` methods, not `callBuffer`: ioredis 5 drops the command
 * name of `callBuffer` in an auto-pipeline.
 */
export function runScript(
  client: Redis | Cluster,
  script: { readonly sha: string; readonly lua: string },
  argv: readonly Argument[],
  buffers = false,
  options: RunScriptOptions = {},
): Promise<unknown> {
  const now = options.now === true;
  return send(client, 'evalsha', script.sha, argv, buffers, now).catch((error: unknown) => {
    if (!isNoScript(error)) throw error;
    return send(client, 'eval', script.lua, argv, buffers, now);
  });
}

export interface RunScriptOptions {
  /**
   * Hand the script to the connection now, even when auto-pipelining is on (which would hold it to the end of the
   * tick): for a caller writing to a cluster node's connection itself, whose later commands for that node go through
   * the Cluster, which writes them to the connection at once. Without this they would overtake the script.
   */
  now?: boolean;
}

function send(
  client: Redis | Cluster,
  name: 'evalsha' | 'eval',
  body: string,
  argv: readonly Argument[],
  buffers: boolean,
  now: boolean,
): Promise<unknown> {
  if (skipsAutoPipeline(client) || (now && client.options.enableAutoPipelining === true)) {
    const command = new Command(name, [body, ...argv], {
      keyPrefix: (client.options as { keyPrefix?: string }).keyPrefix,
      ...(buffers ? {} : { replyEncoding: 'utf8' }),
    });
    return client.sendCommand(command) as Promise<unknown>;
  }
  const redis = client as unknown as EvalClient;
  return redis[buffers ? (`${name}Buffer` as const) : name](body, ...argv);
}

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
    run(client, keys, args, options) {
      return runScript(client, { sha, lua }, [keys.length, ...keys, ...args], options?.buffers === true);
    },
  };
}
