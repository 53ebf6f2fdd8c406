/**
 * Where the package reports what an operator should see. Messages and details never carry document contents or
 * server error messages (a duplicate-key message quotes the key, which may be health data): only names, codes,
 * counts and the stream's own labels.
 */
export interface Logger {
  warn(message: string, details?: Record<string, unknown>): void;
  error(message: string, details?: Record<string, unknown>): void;
}

export const consoleLogger: Logger = {
  warn: (message, details) => console.warn(message, details ?? ''),
  error: (message, details) => console.error(message, details ?? ''),
};
