import { ConfigError, loadConfig } from './config.js';
import { loggedError } from './http-errors.js';
import { createLogger } from './logger.js';
import { startService } from './server.js';

/*
 * The process entry point: configuration, the service, and signals. Everything else is importable and testable
 * without starting a process (`buildApp`, `loadConfig`, `startService` from './index.js').
 */

let config: ReturnType<typeof loadConfig>;
try {
  // This entry point logs users in with the DEMO lookup: production refuses it, together with any other problem.
  config = loadConfig(process.env, undefined, { demoLogin: true });
} catch (error) {
  if (error instanceof ConfigError) {
    // One message with every problem, on stderr, before any logger exists: the operator fixes them all at once.
    process.stderr.write(`${error.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}

const logger = createLogger(config.logLevel);
if (config.sessionSecret.source === 'generated' || config.encryption.source === 'generated') {
  logger.warn(
    'SESSION_SECRET / DATA_ENCRYPTION_KEYS not set: using random ones for this process (development only; sessions and encrypted data do not survive a restart)',
  );
}

// A crash is logged as JSON like everything else (without the message unless LOG_ERROR_MESSAGES), then the process
// exits: the orchestrator restarts it, and the 'exit' handlers stop the development servers.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (error: unknown) => {
    logger.fatal({ error: loggedError(error, config.logErrorMessages), event }, 'care-api crashed');
    process.exit(1);
  });
}

let service: Awaited<ReturnType<typeof startService>> | undefined;
let signals = 0;
function onSignal(signal: NodeJS.Signals) {
  signals += 1;
  if (signals > 1) {
    logger.warn({ signal }, 'second signal during shutdown: exiting now');
    process.exit(1);
  }
  // The watchdog: whatever hangs, the process is gone shortly after the configured timeout.
  setTimeout(() => {
    logger.error({ shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutdown did not finish in time: exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs + 500).unref();
  // A signal during startup is handled once the service is up, so the development servers are stopped too.
  if (service !== undefined) void service.shutdown(signal).then(() => process.exit(0));
}
// Installed before anything starts: a SIGTERM while the embedded Redis is starting must still stop it.
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

try {
  service = await startService(config, logger);
} catch (error) {
  // Startup errors are ours or connection errors (no patient data yet): their messages say what to fix.
  logger.fatal({ error: loggedError(error, true) }, 'care-api could not start');
  process.exit(1);
}
logger.info({ address: service.address, nodeEnv: config.nodeEnv }, 'care-api listening');
if (signals > 0) void service.shutdown('signal during startup').then(() => process.exit(0));
