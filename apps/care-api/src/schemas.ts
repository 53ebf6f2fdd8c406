/** JSON schemas shared by the routes; they validate input, serialize output and become the OpenAPI document. */

export const ERROR_RESPONSE = {
  type: 'object',
  description: 'Every error: a stable `code` for programs, a `message` for people, never internals.',
  required: ['statusCode', 'error', 'code', 'message', 'requestId'],
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    code: { type: 'string', examples: ['E_VALIDATION', 'E_NOT_FOUND', 'E_REDIS_UNAVAILABLE'] },
    message: { type: 'string' },
    requestId: { type: 'string' },
    retryAfterMs: {
      type: 'integer',
      description: 'With 429: how long to wait before the next request, in milliseconds.',
    },
    details: {
      type: 'array',
      items: {
        type: 'object',
        required: ['location', 'path', 'message'],
        properties: {
          location: { type: 'string', enum: ['body', 'params', 'querystring', 'headers', 'request'] },
          path: { type: 'string' },
          message: { type: 'string' },
        },
      },
    },
  },
} as const;

/** Ids taken from URLs: opaque, short, no glob or hash-tag characters, so they are safe in keys and logs. */
export const ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';

export const idParam = (description: string) =>
  ({
    type: 'object',
    required: ['id'],
    additionalProperties: false,
    properties: { id: { type: 'string', pattern: ID_PATTERN, description } },
  }) as const;

/** The error responses a route can give besides its own, for the OpenAPI document and serialization. */
export function errorResponses(...statuses: number[]): Record<number, typeof ERROR_RESPONSE> {
  const responses: Record<number, typeof ERROR_RESPONSE> = {};
  for (const status of [...statuses, 500]) responses[status] = ERROR_RESPONSE;
  return responses;
}
