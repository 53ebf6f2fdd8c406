export type { UIMessageLike } from './ai-sdk.js';
export { fromUIMessage, toUIMessage, toUIMessages } from './ai-sdk.js';
export type { ConversationErrorCode, ConversationErrorOptions } from './errors.js';
export {
  ConversationError,
  ConversationInputError,
  ConversationNotFoundError,
  ConversationOwnershipError,
  ConversationStoreError,
  errors,
} from './errors.js';
export { MAX_ID_LENGTH } from './keys.js';
export type { ContentPart, MessageInput, Role, StoredMessage, ToolCall, ToolResult } from './message.js';
export { estimateTokens, ROLES } from './message.js';
export { ConversationStore, createConversationStore, DEFAULTS } from './store.js';
export type {
  AddMessageOptions,
  AddMessageResult,
  CleanupReport,
  ConversationContext,
  ConversationStats,
  ConversationStoreOptions,
  DeleteUserConversationsOptions,
  Entity,
  EntityInput,
  EntityType,
  ErasureReport,
  GetMessagesOptions,
  Intent,
  IntentInput,
  Logger,
  Owner,
  OwnerOptions,
  RedactHook,
  RedactInfo,
  RedactKind,
  SetContextInput,
  SetSummaryOptions,
  Summary,
  SummaryInput,
  UserConversation,
} from './types.js';
