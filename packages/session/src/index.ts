export type { SessionErrorCode } from './errors.js';
export { errors, SessionError } from './errors.js';
export type { DeviceInfo, SessionAuditEvent, SessionStoreOptions } from './options.js';
export { DEFAULTS } from './options.js';
export type {
  CleanupResult,
  CreatedSession,
  CreateSessionInput,
  Session,
  SessionInfo,
  SessionStore,
  UpdateOptions,
} from './store.js';
export { createSessionStore } from './store.js';
