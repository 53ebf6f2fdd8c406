import type { Cluster, Redis } from 'ioredis';

/**
 * The same client, with `callBuffer('EVALSHA' | 'EVAL', …)` sent through ioredis' own `evalshaBuffer` /
 * `evalBuffer`. Why: with `enableAutoPipelining`, ioredis 5 drops the command name of `callBuffer` (the server then
 * sees the script's SHA as the command), and @austa/session runs its scripts with `callBuffer`. The named methods
 * are auto-pipelined correctly. Everything else goes to the client untouched, and nothing is patched on it: the other
 * stores, which already avoid `callBuffer`, keep the plain client. Remove once the session store avoids it.
 */
export function withAutoPipelinedScripts<T extends Redis | Cluster>(client: T): T {
  // ioredis generates a `<command>Buffer` method for every command; its typings list only some of them.
  const methods = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const named = {
    EVALSHA: (methods.evalshaBuffer as (...args: unknown[]) => Promise<unknown>).bind(client),
    EVAL: (methods.evalBuffer as (...args: unknown[]) => Promise<unknown>).bind(client),
  };
  const callBuffer = (methods.callBuffer as (...args: unknown[]) => Promise<unknown>).bind(client);
  return new Proxy(client, {
    get(target, property) {
      if (property === 'callBuffer') {
        return (command: unknown, ...args: unknown[]) => {
          const run =
            typeof command === 'string' ? named[command.toUpperCase() as keyof typeof named] : undefined;
          return run ? run(...args) : callBuffer(command, ...args);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
