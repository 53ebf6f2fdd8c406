import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.js';

/**
 * JSON logs (pino). Requests are logged by method and route template only. Cookies, authorization headers and Set-Cookie are redacted wherever a serializer or a caller
 * would log them: a session token in a log is a session anyone with log access can use.
 */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'care-api' },
    serializers: {
      // The route template, never the URL: URLs carry patient, conversation and session ids. No client address
      // either: an IP identifies a person as much as a name does.
      req: (request: { method?: string; routeOptions?: { url?: string } }) => ({
        method: request.method,
        route: request.routeOptions?.url ?? '(no route)',
      }),
    },
    redact: {
      paths: [
        'req.headers.cookie',
        'req.headers.authorization',
        'res.headers["set-cookie"]',
        'headers.cookie',
        'headers.authorization',
      ],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
