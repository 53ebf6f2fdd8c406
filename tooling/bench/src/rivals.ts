/**
 * Loads a rival library from the bench package's own dependencies, so rivals never become dependencies of the
 * packages they are compared with (a bench file lives in that package and would otherwise resolve from there).
 * @example const { Redis } = await loadRival<typeof import('ioredis')>('ioredis');
 */
export async function loadRival<T>(name: string): Promise<T> {
  return (await import(name)) as T;
}
