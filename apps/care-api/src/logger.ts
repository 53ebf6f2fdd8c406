import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.js';

/**
 * JSON logs (pino). Cookies, authorization headers and Set-Cookie are redacted wherever a serializer or a caller
 * would log them: a session token in a log is a session anyone with log access can use.
 */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'care-api' },
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
