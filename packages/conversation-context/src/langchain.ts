import {
  AIMessage,
  type BaseMessage,
  ChatMessage,
  HumanMessage,
  SystemMessage,
  ToolMessage,
} from '@langchain/core/messages';
import { ConversationInputError } from './errors.js';
import type { ContentPart, MessageInput, Role, StoredMessage, ToolCall } from './message.js';

/**
 * LangChain fields with no counterpart in our message format, kept under `metadata.langchain` so that a message
 * comes back from the store as it went in.
 */
interface LangChainExtras {
  additional_kwargs?: Record<string, unknown>;
  response_metadata?: Record<string, unknown>;
  usage_metadata?: unknown;
  invalid_tool_calls?: unknown[];
  artifact?: unknown;
  status?: string;
  /** ChatMessage's free-form role. */
  role?: string;
}

function nonEmpty(value: Record<string, unknown> | undefined): value is Record<string, unknown> {
  return value !== undefined && Object.keys(value).length > 0;
}

const ROLE_OF: Record<string, Role> = { human: 'user', ai: 'assistant', system: 'system', tool: 'tool' };

/**
 * Maps a LangChain message (`HumanMessage`, `AIMessage` with `tool_calls`, `SystemMessage`, `ToolMessage`,
 * `ChatMessage`) to a message for `addMessage`, without loss: what our format has no field for (additional_kwargs,
 * response_metadata, usage_metadata, invalid tool calls, artifacts, a ChatMessage role) is kept in
 * `metadata.langchain`.
 */
export function fromLangChainMessage(message: BaseMessage): MessageInput {
  const type = message.getType();
  const extras: LangChainExtras = {};
  let role = ROLE_OF[type];
  if (type === 'generic') {
    const chatRole = (message as ChatMessage).role;
    extras.role = chatRole;
    role = 'user';
  }
  if (role === undefined) {
    throw new ConversationInputError(
      'E_INVALID_ROLE',
      `LangChain messages of type ${JSON.stringify(type)} cannot be stored (human, ai, system, tool and generic can).`,
    );
  }
  const input: MessageInput = {
    role,
    content: message.content as string | ContentPart[],
  };
  if (message.id !== undefined) input.id = message.id;
  if (message.name !== undefined) input.name = message.name;
  if (nonEmpty(message.additional_kwargs)) extras.additional_kwargs = message.additional_kwargs;
  if (nonEmpty(message.response_metadata)) extras.response_metadata = message.response_metadata;
  if (AIMessage.isInstance(message)) {
    const calls = message.tool_calls ?? [];
    if (calls.length > 0) {
      input.toolCalls = calls.map((call) => {
        const mapped: ToolCall = { id: call.id ?? '', name: call.name, args: call.args };
        if (call.type !== undefined) mapped.metadata = { type: call.type };
        return mapped;
      });
    }
    if (message.invalid_tool_calls !== undefined && message.invalid_tool_calls.length > 0) {
      extras.invalid_tool_calls = message.invalid_tool_calls;
    }
    if (message.usage_metadata !== undefined) extras.usage_metadata = message.usage_metadata;
  }
  if (ToolMessage.isInstance(message)) {
    input.toolResults = [
      { toolCallId: message.tool_call_id, ...(message.status === 'error' ? { isError: true } : {}) },
    ];
    if (message.artifact !== undefined) extras.artifact = message.artifact;
    if (message.status !== undefined) extras.status = message.status;
  }
  if (Object.keys(extras).length > 0) input.metadata = { langchain: extras };
  return input;
}

/** Maps a stored message back to the LangChain class of its role. */
export function toLangChainMessage(message: MessageInput | StoredMessage): BaseMessage {
  const extras = (message.metadata?.langchain ?? {}) as LangChainExtras;
  const common: Record<string, unknown> = { content: message.content };
  if (message.id !== undefined) common.id = message.id;
  if (message.name !== undefined) common.name = message.name;
  if (extras.additional_kwargs !== undefined) common.additional_kwargs = extras.additional_kwargs;
  if (extras.response_metadata !== undefined) common.response_metadata = extras.response_metadata;
  switch (message.role) {
    case 'user':
      if (extras.role !== undefined) return new ChatMessage({ ...common, role: extras.role } as never);
      return new HumanMessage(common as never);
    case 'system':
      return new SystemMessage(common as never);
    case 'assistant': {
      const fields: Record<string, unknown> = { ...common };
      if (message.toolCalls !== undefined) {
        fields.tool_calls = message.toolCalls.map((call) => {
          const mapped: Record<string, unknown> = { name: call.name, args: call.args };
          if (call.id !== '') mapped.id = call.id;
          if (call.metadata?.type !== undefined) mapped.type = call.metadata.type;
          return mapped;
        });
      }
      if (extras.invalid_tool_calls !== undefined) fields.invalid_tool_calls = extras.invalid_tool_calls;
      if (extras.usage_metadata !== undefined) fields.usage_metadata = extras.usage_metadata;
      return new AIMessage(fields as never);
    }
    case 'tool': {
      const fields: Record<string, unknown> = {
        ...common,
        tool_call_id: message.toolResults?.[0]?.toolCallId ?? '',
      };
      if (extras.artifact !== undefined) fields.artifact = extras.artifact;
      if (extras.status !== undefined) fields.status = extras.status;
      return new ToolMessage(fields as never);
    }
  }
}

export function fromLangChainMessages(messages: readonly BaseMessage[]): MessageInput[] {
  return messages.map(fromLangChainMessage);
}

export function toLangChainMessages(messages: ReadonlyArray<MessageInput | StoredMessage>): BaseMessage[] {
  return messages.map(toLangChainMessage);
}
