import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { pauseNode, redisTarget, resumeNode } from '@austa/test-env/vitest';
import { afterEach, describe, expect, it } from 'vitest';
import { runToExit, type ServiceProcess, startServiceProcess, stopServiceProcess } from './process.js';
import { eventually } from './prometheus.js';
import { samples } from './support.js';

function get(url: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.once('error', reject);
    req.end();
  });
}

async function waitForLog(service: ServiceProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!service.logs.some((entry) => pattern.test(String(entry.msg)))) {
    if (Date.now() > deadline) throw new Error(`no log line matching ${pattern} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('graceful shutdown', () => {
  const standalone = redisTarget('standalone');
  let service: ServiceProcess | undefined;
  let paused = false;

  afterEach(async () => {
    if (paused) await resumeNode(standalone);
    paused = false;
    if (service) await stopServiceProcess(service);
    service = undefined;
  });

  it.runIf(standalone.owned)(
    'SIGTERM during a request lets it complete, then the process exits 0 within SHUTDOWN_TIMEOUT_MS',
    async () => {
      // A slow dependency makes the request long: /health/ready waits for a paused Redis (up to HEALTH_TIMEOUT_MS),
      // and Redis is resumed only after the shutdown has begun, so the request completes during the drain.
      const healthTimeoutMs = 6000;
      const shutdownTimeoutMs = 10_000;
      service = await startServiceProcess({
        REDIS_URL: standalone.url,
        MONGODB_EMBEDDED: 'false',
        HEALTH_TIMEOUT_MS: String(healthTimeoutMs),
        REDIS_COMMAND_TIMEOUT_MS: String(healthTimeoutMs),
        SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
      });
      expect((await get(`${service.address}/health/ready`)).status).toBe(200);

      await pauseNode(standalone);
      paused = true;
      const inFlight = get(`${service.address}/health/ready`);
      // In flight: the service counts it in http_server_active_requests (the scrape itself is the other one).
      const address = service.address;
      await eventually(
        async () => samples((await get(`${address}/metrics`)).body, 'http_server_active_requests'),
        (series) => (series.find((s) => s.labels.http_request_method === 'GET')?.value ?? 0) >= 2,
        healthTimeoutMs,
        'the readiness request was not in flight',
      );
      const signalledAt = Date.now();
      service.child.kill('SIGTERM');
      await waitForLog(service, /^shutting down/, 5000);

      // New connections are refused while the request in flight is still being served.
      await expect(get(`${service.address}/health/live`)).rejects.toThrow(
        /ECONNREFUSED|ECONNRESET|socket hang up/,
      );
      await resumeNode(standalone);
      paused = false;

      const response = await inFlight;
      expect(Date.now() - signalledAt).toBeLessThan(healthTimeoutMs + 2000);
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body)).toMatchObject({
        status: 'ready',
        checks: { redis: { status: 'up' } },
      });

      const { code } = await service.exited;
      const exitedAfterMs = Date.now() - signalledAt;
      expect(code).toBe(0);
      expect(exitedAfterMs).toBeLessThan(shutdownTimeoutMs);
      const done = service.logs.find((entry) => entry.msg === 'shut down');
      expect(done?.clean).toBe(true);
      service = undefined;
    },
  );

  it('SIGTERM with idle keep-alive connections exits 0 at once, without waiting for them', async () => {
    service = await startServiceProcess({ MONGODB_EMBEDDED: 'false', REDIS_URL: standalone.url });
    const agent = new (await import('node:http')).Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${service?.address}/health/live`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.once('error', reject);
      req.end();
    });
    const { code, durationMs } = await stopServiceProcess(service);
    agent.destroy();
    expect(code).toBe(0);
    // Idle connections are closed at once; the bound is the shutdown timeout, with headroom for a loaded machine.
    expect(durationMs).toBeLessThan(10_000);
    service = undefined;
  });
});

describe('startup configuration errors', () => {
  it('names each bad variable in one message on stderr and exits 78 without starting anything', async () => {
    const result = await runToExit({
      NODE_ENV: 'production',
      PORT: 'http',
      REDIS_URL: 'localhost:6379',
      SESSION_SECRET: 'too-short',
      LOG_LEVEL: 'verbose',
    });
    expect(result.code).toBe(78);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trim().split('\n');
    expect(lines[0]).toBe('care-api cannot start: 7 configuration problems');
    const named = lines.slice(1).map((line) => /^ {2}- ([A-Z_]+): /.exec(line)?.[1]);
    expect(named.sort()).toEqual([
      'DATA_ENCRYPTION_KEYS',
      'LOG_LEVEL',
      'MONGODB_URL',
      'NODE_ENV',
      'PORT',
      'REDIS_URL',
      'SESSION_SECRET',
    ]);
    expect(result.stderr).not.toContain('too-short');
  });

  it('refuses a complete production configuration, because dist/main.js logs in with the DEMO lookup', async () => {
    const result = await runToExit({
      NODE_ENV: 'production',
      // Nothing listens there: the refusal comes before anything connects.
      REDIS_URL: 'redis://127.0.0.1:1',
      MONGODB_URL: 'mongodb://127.0.0.1:1/?replicaSet=rs0',
      SESSION_SECRET: randomBytes(32).toString('base64'),
      DATA_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    });
    expect(result.code).toBe(78);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('care-api cannot start: 1 configuration problem\n');
    expect(result.stderr).toContain('NODE_ENV: NODE_ENV=production refuses the DEMO login');
    expect(result.stderr).toContain('buildApp({ users })');
  });

  it('refuses production with nothing configured, explaining that the embedded servers are for development', async () => {
    const result = await runToExit({ NODE_ENV: 'production' });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('REDIS_URL: NODE_ENV=production needs REDIS_URL or REDIS_CLUSTER_NODES');
    expect(result.stderr).toContain('development only');
  });
});
