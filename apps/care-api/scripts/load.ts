/**
 * `pnpm --filter @austa/care-api load`: autocannon against the built service (node dist/main.js) on loopback, with a
 * bare Fastify hello route in its own process as the control, measured in the same run, interleaved round by round.
 * Prints one JSON line per scenario (median of the rounds) and a summary line with the ratios and the machine.
 *
 * Knobs: LOAD_DURATION_SECONDS (10), LOAD_CONNECTIONS (50), LOAD_ROUNDS (3), LOAD_WARMUP_SECONDS (3); REDIS_URL or
 * REDIS_CLUSTER_NODES to use your Redis instead of the embedded development one.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const BARE = fileURLToPath(new URL('./bare-hello.mjs', import.meta.url));

function integer(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${name} must be a positive integer (got "${raw}")`);
  return value;
}

const durationSeconds = integer('LOAD_DURATION_SECONDS', 10);
const connections = integer('LOAD_CONNECTIONS', 50);
const rounds = integer('LOAD_ROUNDS', 3);
const warmupSeconds = integer('LOAD_WARMUP_SECONDS', 3);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

async function waitForHttp(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

interface Request {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

interface Scenario {
  name: string;
  /** What the scenario exercises, for the report. */
  description: string;
  base: 'bare' | 'service';
  /** Runs once before the rounds (log in, create a conversation) and returns the request to repeat. */
  prepare(baseUrl: string): Promise<Request>;
}

const SCENARIOS: Scenario[] = [
  {
    name: 'bare-fastify-hello',
    description: 'control: Fastify 5, one route, no plugins, no logging, its own process',
    base: 'bare',
    prepare: async () => ({ path: '/' }),
  },
  {
    name: 'care-api-liveness',
    description: 'GET /health/live: the service’s hooks (request id, metrics, no-store) without Redis',
    base: 'service',
    prepare: async () => ({ path: '/health/live' }),
  },
  {
    name: 'session-get-me',
    description:
      'GET /me with a session cookie: per-IP rate-limit check (@austa/rate-limit) + session lookup (@austa/session, encrypted) on Redis',
    base: 'service',
    prepare: async (baseUrl) => ({ path: '/me', headers: { cookie: await login(baseUrl, 'load-reader') } }),
  },
  {
    name: 'conversation-append',
    description:
      'POST /conversations/:id/messages: rate limits, session, history read, user + assistant messages, intent and entities (@austa/conversation-context, encrypted)',
    base: 'service',
    prepare: async (baseUrl) => {
      const cookie = await login(baseUrl, 'load-writer');
      const created = await fetch(`${baseUrl}/conversations`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'load' }),
      });
      if (created.status !== 201) throw new Error(`POST /conversations answered ${created.status}`);
      const { conversationId } = (await created.json()) as { conversationId: string };
      return {
        method: 'POST',
        path: `/conversations/${conversationId}/messages`,
        headers: { cookie, 'content-type': 'application/json' },
        body: JSON.stringify({ content: 'I need a refill of my metformin prescription before 2025-06-01' }),
      };
    },
  },
];

/** Logs a demo user in and returns its `cookie` header. */
async function login(baseUrl: string, username: string): Promise<string> {
  const response = await fetch(`${baseUrl}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: 'demo' }),
  });
  if (response.status !== 200) throw new Error(`login answered ${response.status}`);
  const cookie = response.headers.get('set-cookie')?.split(';')[0];
  if (!cookie) throw new Error('login set no cookie');
  return cookie;
}

/** The target: the session-authenticated, rate-limited GET at no less than half the bare route's req/s. */
const TARGETS: Record<string, number> = { 'session-get-me': 0.5 };

interface RoundResult {
  reqPerSec: number;
  /** CPU time (user + system, every thread) the answering process spent per request; null off Linux. */
  serverCpuUsPerReq: number | null;
  /** The same for the embedded redis-server (a child of the service); null when Redis is elsewhere. */
  redisCpuUsPerReq: number | null;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  non2xx: number;
}

/** The median of the values known (CPU figures are null off Linux). */
function medianOf(values: (number | null)[]): number | null {
  const known = values.filter((value): value is number => value !== null);
  return known.length > 0 ? median(known) : null;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/**
 * CPU seconds a process has used, from /proc (Linux). Req/s on a small machine also measures the load generator and
 * Redis sharing the cores; CPU per request is what the answering process itself costs, wherever it runs.
 */
function cpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in clock ticks.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

// USER_HZ: 100 on every Linux architecture Node runs on.
const CLOCK_TICKS = 100;

/** The embedded redis-server the service started, if any: its only redis-server child. */
function redisChildOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    return children
      .map(Number)
      .find((child) => readFileSync(`/proc/${child}/comm`, 'utf8').trim().startsWith('redis-server'));
  } catch {
    return undefined;
  }
}

function perRequest(before: number | null, after: number | null, requests: number): number | null {
  if (before === null || after === null || requests === 0) return null;
  return Math.round(((after - before) * 1e6 * 10) / requests) / 10;
}

async function run(
  baseUrl: string,
  request: Request,
  seconds: number,
  pids: { server?: number; redis?: number } = {},
): Promise<RoundResult> {
  const serverBefore = cpuSeconds(pids.server);
  const redisBefore = cpuSeconds(pids.redis);
  const result = await autocannon({
    url: baseUrl,
    connections,
    duration: seconds,
    requests: [
      { method: request.method ?? 'GET', path: request.path, headers: request.headers, body: request.body },
    ],
  });
  return {
    reqPerSec: result.requests.average,
    serverCpuUsPerReq: perRequest(serverBefore, cpuSeconds(pids.server), result.requests.total),
    redisCpuUsPerReq: perRequest(redisBefore, cpuSeconds(pids.redis), result.requests.total),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

async function main(): Promise<void> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run pnpm --filter @austa/care-api build first`);
  const [servicePort, barePort] = await Promise.all([freePort(), freePort()]);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'development',
    PORT: String(servicePort),
    LOG_LEVEL: 'warn',
    MONGODB_EMBEDDED: process.env.MONGODB_EMBEDDED ?? 'false',
    // Every request comes from one loopback address and one user: the limits are raised so that every request is
    // checked (the cost being measured) and none is rejected (a 429 is cheaper and would flatter the figures).
    RATE_LIMIT_IP_PER_MINUTE: '100000000',
    RATE_LIMIT_ASSISTANT_PER_MINUTE: '1000000',
  };
  const service = spawn(process.execPath, [MAIN], {
    cwd: APP_DIR,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const bare = spawn(process.execPath, [BARE, String(barePort)], {
    cwd: APP_DIR,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const urls = { service: `http://127.0.0.1:${servicePort}`, bare: `http://127.0.0.1:${barePort}` };
  try {
    await Promise.all([
      waitForHttp(`${urls.service}/health/ready`, service, 60_000),
      waitForHttp(`${urls.bare}/`, bare, 30_000),
    ]);
    const pids = {
      bare: { server: bare.pid },
      service: { server: service.pid, redis: redisChildOf(service.pid) },
    };
    const requests = new Map<string, Request>();
    for (const scenario of SCENARIOS)
      requests.set(scenario.name, await scenario.prepare(urls[scenario.base]));

    for (const scenario of SCENARIOS) {
      await run(urls[scenario.base], requests.get(scenario.name) as Request, warmupSeconds);
    }
    const results = new Map<string, RoundResult[]>(SCENARIOS.map((scenario) => [scenario.name, []]));
    // Round by round, so a burst of load from elsewhere on the machine hits every scenario alike.
    for (let round = 0; round < rounds; round++) {
      for (const scenario of SCENARIOS) {
        const result = await run(
          urls[scenario.base],
          requests.get(scenario.name) as Request,
          durationSeconds,
          pids[scenario.base],
        );
        results.get(scenario.name)?.push(result);
        process.stderr.write(
          `[load] round ${round + 1}/${rounds} ${scenario.name}: ${Math.round(result.reqPerSec)} req/s, p99 ${result.p99Ms} ms\n`,
        );
      }
    }

    // The ratio is the median of per-round ratios: each round's scenarios ran back to back under the same load.
    const bareRounds = results.get('bare-fastify-hello') ?? [];
    const bareCpuUsPerReq = medianOf(bareRounds.map((result) => result.serverCpuUsPerReq));
    let failed = false;
    const summary: Record<string, number> = {};
    for (const scenario of SCENARIOS) {
      const list = results.get(scenario.name) ?? [];
      const reqPerSec = median(list.map((result) => result.reqPerSec));
      const errors = list.reduce((sum, result) => sum + result.errors, 0);
      const non2xx = list.reduce((sum, result) => sum + result.non2xx, 0);
      if (errors > 0 || non2xx > 0) failed = true;
      const ratios = list.map(
        (result, round) => result.reqPerSec / (bareRounds[round]?.reqPerSec ?? Number.NaN),
      );
      summary[scenario.name] = Math.round(median(ratios) * 1000) / 1000;
      const serverCpuUsPerReq = medianOf(list.map((result) => result.serverCpuUsPerReq));
      const redisCpuUsPerReq = medianOf(list.map((result) => result.redisCpuUsPerReq));
      console.log(
        JSON.stringify({
          scenario: scenario.name,
          description: scenario.description,
          reqPerSec: Math.round(reqPerSec),
          p50Ms: median(list.map((result) => result.p50Ms)),
          p99Ms: median(list.map((result) => result.p99Ms)),
          vsBareFastify: summary[scenario.name],
          serverCpuUsPerReq,
          redisCpuUsPerReq,
          // Requests one core serves relative to the bare route's, counting only the answering process's CPU: what
          // the ratio would approach where the load generator and Redis have cores of their own.
          cpuVsBareFastify:
            serverCpuUsPerReq !== null && bareCpuUsPerReq !== null
              ? Math.round((bareCpuUsPerReq / serverCpuUsPerReq) * 1000) / 1000
              : null,
          requests: list.reduce((sum, result) => sum + result.requests, 0),
          errors,
          non2xx,
          connections,
          durationSeconds,
          rounds,
        }),
      );
    }
    const cpuList = cpus();
    console.log(
      JSON.stringify({
        summary: 'req/s relative to the bare Fastify hello route: median of the per-round ratios of this run',
        ratios: summary,
        targets: Object.fromEntries(
          Object.entries(TARGETS).map(([name, target]) => [
            name,
            { atLeast: target, met: (summary[name] ?? 0) >= target },
          ]),
        ),
        machine: {
          cpu: cpuList[0]?.model ?? 'unknown',
          cores: cpuList.length,
          memoryGiB: Math.round(totalmem() / 2 ** 30),
          loadAverage1m: Math.round((loadavg()[0] ?? 0) * 10) / 10,
          node: process.version,
          redis: process.env.REDIS_CLUSTER_NODES
            ? 'cluster (REDIS_CLUSTER_NODES)'
            : process.env.REDIS_URL
              ? 'REDIS_URL'
              : 'embedded redis-server',
        },
      }),
    );
    if (failed) {
      process.stderr.write(
        '[load] some requests failed or were not 2xx: the figures above are not comparable\n',
      );
      process.exitCode = 1;
    }
  } finally {
    await Promise.all([stop(service), stop(bare)]);
  }
}

await main();
