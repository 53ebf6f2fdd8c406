export type {
  ChangeHandler,
  ChangeHandlerContext,
  ChangeStreamEnd,
  ChangeStreamState,
  ChangeStreamStatus,
  DeadLetterHandler,
  InvalidatePolicy,
  ManagedChangeStream,
  ManagedChangeStreamOptions,
} from './change-stream.js';
export { STREAM_DEFAULTS } from './change-stream.js';
export type { AustaMongoClient, CreateChangeStreamOptions } from './client.js';
export { createMongoClient } from './client.js';
export { errorType } from './error-type.js';
export type { ChangeStreamFatalReason, MongoClientErrorCode } from './errors.js';
export {
  AustaMongoError,
  errors,
  FatalChangeStreamError,
  MongoArgumentError,
  MongoClientClosedError,
  MongoConfigError,
  TokenStoreError,
  UnsafeFilterError,
} from './errors.js';
export { fieldPathTouched } from './field-paths.js';
export type { MongoHealth } from './health.js';
export type { CollectionLabels } from './instruments.js';
export type { Logger } from './logger.js';
export type { MongoTokenStore, MongoTokenStoreOptions } from './mongo-token-store.js';
export { createMongoTokenStore } from './mongo-token-store.js';
export type { CreateMongoClientOptions, MongoTlsOptions, MongoWriteConcernOptions } from './options.js';
export { DEFAULTS, fromEnv } from './options.js';
export type { RedisTokenStoreOptions } from './redis-token-store.js';
export { createRedisTokenStore } from './redis-token-store.js';
export type { SanitizeFilterOptions } from './sanitize.js';
export { FORBIDDEN_OPERATORS, sanitizeFilter } from './sanitize.js';
export type { ResumeToken, ResumeTokenStore } from './token-store.js';
export { createMemoryTokenStore, DEFAULT_TOKEN_TTL_SECONDS } from './token-store.js';
export type { ChangeOperationType, WatchFieldsOptions } from './watch-pipelines.js';
