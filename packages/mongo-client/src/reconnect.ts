import { backoffMs, delay } from './delay.js';
import { errorType } from './error-type.js';
import type { Logger } from './logger.js';

/*
 * With driver 7, a MongoClient whose connection attempt fails (the service started while MongoDB was down, say)
 * closes its topology, and from then on every operation fails at once with MongoTopologyClosedError, never trying
 * the server again, until something calls connect(). A client that did connect once rides out later outages by
 * itself (server selection waits and retries). So for clients this package created, a closed topology that nobody
 * asked to close is reopened in the background, with backoff, until connect() succeeds.
 */

export interface ReconnectorOptions {
  connect: () => Promise<unknown>;
  /** Closes the client again if a connect that was in flight succeeded after close(). */
  closeAgain: () => Promise<unknown>;
  logger: Logger;
  client: string;
  initialDelayMs: number;
  maxDelayMs: number;
  onAttempt?: (ok: boolean) => void;
}

export class Reconnector {
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private attempt = 0;

  constructor(private readonly options: ReconnectorOptions) {}

  /** Starts reconnecting unless a loop is already running or the client is closing. */
  trigger(): void {
    if (this.loop !== undefined || this.abort.signal.aborted) return;
    this.loop = this.run().finally(() => {
      this.loop = undefined;
    });
  }

  /** Stops reconnecting; resolves once no connect attempt is in flight any more. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { logger, client } = this.options;
    while (!this.abort.signal.aborted) {
      this.attempt++;
      const waitMs = backoffMs(this.attempt, this.options.initialDelayMs, this.options.maxDelayMs);
      if (!(await delay(waitMs, this.abort.signal))) return;
      try {
        await this.options.connect();
        this.options.onAttempt?.(true);
        if (this.abort.signal.aborted) {
          // close() ran while this attempt was in flight and the attempt won: close the client again.
          await this.options.closeAgain().catch(() => undefined);
          return;
        }
        logger.warn('MongoDB client connected after its earlier connection attempts failed.', {
          client,
          attempts: this.attempt,
        });
        this.attempt = 0;
        return;
      } catch (error) {
        this.options.onAttempt?.(false);
        // One line for the first failure, then one per ten, so an outage does not flood the log.
        if (this.attempt === 1 || this.attempt % 10 === 0) {
          logger.warn('MongoDB client cannot connect; retrying in the background.', {
            client,
            attempt: this.attempt,
            errorType: errorType(error),
          });
        }
      }
    }
  }
}
