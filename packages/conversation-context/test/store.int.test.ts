import { execFileSync, spawnSync } from 'node:child_process';
import { createMetrics } from '@austa/metrics';
import {
  createTestClient,
  deleteByPrefix,
  keySlot,
  keysWithoutTtl,
  redisTargets,
  uniquePrefix,
} from '@austa/test-env/vitest';
import { AIMessage, HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import type { UIMessage } from 'ai';
import { Cluster, type Command, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConversationStoreOptions,
  createConversationStore,
  fromUIMessage,
  type MessageInput,
  toUIMessages,
} from '../src/index.js';
import { KeyLayout } from '../src/keys.js';
import { fromLangChainMessages, toLangChainMessages } from '../src/langchain.js';
import { INDEX_PRUNE } from '../src/scripts/lifecycle.js';
import { dump, encryptingCodec, expectRejectedUnchanged, layout, rawBytes, sample } from './support.js';

type Topology = 'standalone' | 'cluster';

const alice = { userId: 'alice' };
const bob = { userId: 'bob' };

describe.each<Topology>(['standalone', 'cluster'])('conversation store on %s', (topology) => {
  let client: Redis | Cluster;
  let prefix: string;
  let counter = 0;
  const base = () => `${prefix}:${++counter}`;
  const store = (options: Partial<ConversationStoreOptions> = {}) =>
    createConversationStore({ redis: client, prefix, ttlSeconds: 600, maxMessages: 50, ...options });

  beforeAll(() => {
    client = createTestClient(redisTargets(), topology);
    prefix = uniquePrefix(`conversation-${topology}`);
  });

  afterAll(async () => {
    expect(await keysWithoutTtl(client, prefix)).toEqual([]);
    await deleteByPrefix(client, prefix);
    await client.quit();
  });

  it('keeps all of one conversation in one hash slot and the user index apart', async () => {
    const conversations = store({ prefix: base() });
    await conversations.setContext('c-1', { userId: 'alice' });
    await conversations.addMessage('c-1', { role: 'user', content: 'hi' }, { owner: alice });
    await conversations.updateIntent('c-1', { name: 'greet' }, { owner: alice });
    const keys = (await dump(client, prefix)).map(([key]) => key).filter((key) => key.includes('{c:c-1}'));
    expect(keys).toHaveLength(3);
    expect(new Set(keys.map((key) => keySlot(key))).size).toBe(1);
  });

  it('setContext creates a conversation once, keeps its owner, and getContext returns everything but messages', async () => {
    const conversations = store({ prefix: base() });
    expect(await conversations.setContext('c', { userId: 'alice', data: { locale: 'pt-BR' } })).toMatchObject(
      {
        created: true,
      },
    );
    expect(await conversations.setContext('c', { userId: 'alice', data: { locale: 'en' } })).toMatchObject({
      created: false,
    });
    await expect(conversations.setContext('c', { userId: 'bob' })).rejects.toMatchObject({
      code: 'E_OWNERSHIP_MISMATCH',
    });
    const context = await conversations.getContext('c', { owner: alice });
    expect(context).toMatchObject({
      conversationId: 'c',
      userId: 'alice',
      data: { locale: 'en' },
      intent: null,
      intentHistory: [],
      entities: {},
      summary: null,
      messageCount: 0,
      lastSeq: 0,
    });
    expect(context?.ttlMs).toBeGreaterThan(590_000);
    await conversations.setContext('c', { userId: 'alice', data: null });
    expect((await conversations.getContext('c', { owner: alice }))?.data).toBeUndefined();
    expect(await conversations.getContext('missing', { owner: alice })).toBeNull();
  });

  it('addMessage numbers messages, trims the oldest beyond maxMessages and returns what it trimmed', async () => {
    const conversations = store({ prefix: base(), maxMessages: 3 });
    const results = [];
    for (let i = 1; i <= 5; i++) {
      results.push(await conversations.addMessage('c', { role: 'user', content: `m${i}` }, { owner: alice }));
    }
    expect(results.map((r) => r.message.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(results[0]?.created).toBe(true);
    expect(results.map((r) => r.trimmed.map((m) => m.content))).toEqual([[], [], [], ['m1'], ['m2']]);
    expect(results[4]?.messageCount).toBe(3);
    const recent = await conversations.getRecentMessages('c', 10, { owner: alice });
    expect(recent.map((m) => [m.seq, m.content])).toEqual([
      [3, 'm3'],
      [4, 'm4'],
      [5, 'm5'],
    ]);
    expect((await conversations.getRecentMessages('c', 2, { owner: alice })).map((m) => m.seq)).toEqual([
      4, 5,
    ]);
    expect(
      (await conversations.getRecentMessages('c', undefined, { owner: alice, afterSeq: 4 })).map(
        (m) => m.seq,
      ),
    ).toEqual([5]);
  });

  it('keeps pinned and system messages when trimming and refuses a pin that could never be trimmed', async () => {
    const conversations = store({ prefix: base(), maxMessages: 3 });
    await conversations.addMessage(
      'c',
      { role: 'system', content: 'You are a nurse assistant.' },
      { owner: alice },
    );
    await conversations.addMessage('c', { role: 'user', content: 'pin me', pinned: true }, { owner: alice });
    const trimmed: string[] = [];
    for (let i = 1; i <= 4; i++) {
      const result = await conversations.addMessage(
        'c',
        { role: 'user', content: `m${i}` },
        { owner: alice },
      );
      trimmed.push(...result.trimmed.map((m) => String(m.content)));
    }
    expect(trimmed).toEqual(['m1', 'm2', 'm3']);
    const messages = await conversations.getRecentMessages('c', undefined, { owner: alice });
    expect(messages.map((m) => [m.content, m.pinned])).toEqual([
      ['You are a nurse assistant.', false],
      ['pin me', true],
      ['m4', false],
    ]);
    await expectRejectedUnchanged(
      client,
      prefix,
      () =>
        conversations.addMessage(
          'c',
          { role: 'user', content: 'one pin too many', pinned: true },
          { owner: alice },
        ),
      'E_PINNED_LIMIT',
    );
    const stats = await conversations.getStats('c', { owner: alice });
    expect(stats).toMatchObject({ messageCount: 3, keptMessages: 2, addedMessages: 6, trimmedMessages: 3 });
  });

  it('trims by token budget with a pluggable counter, never the newest message', async () => {
    const conversations = store({
      prefix: base(),
      maxMessages: 100,
      maxTokens: 10,
      tokenCounter: (message) => String(message.content).length,
    });
    await conversations.addMessage('c', { role: 'user', content: 'aaaa' }, { owner: alice });
    await conversations.addMessage('c', { role: 'assistant', content: 'bbbb' }, { owner: alice });
    const third = await conversations.addMessage('c', { role: 'user', content: 'cccc' }, { owner: alice });
    expect(third.trimmed.map((m) => m.content)).toEqual(['aaaa']);
    expect(third.tokenCount).toBe(8);
    const big = await conversations.addMessage(
      'c',
      { role: 'user', content: 'x'.repeat(25) },
      { owner: alice },
    );
    expect(big.trimmed.map((m) => m.content)).toEqual(['bbbb', 'cccc']);
    expect(big).toMatchObject({ messageCount: 1, tokenCount: 25 });
    const explicit = await conversations.addMessage(
      'c',
      { role: 'user', content: 'y', tokens: 3 },
      { owner: alice },
    );
    expect(explicit.message.tokens).toBe(3);
    expect(explicit.trimmed.map((m) => m.content)).toEqual(['x'.repeat(25)]);
    expect(await conversations.getStats('c', { owner: alice })).toMatchObject({
      tokenCount: 3,
      messageCount: 1,
    });
  });

  it('trims by token budget alone when maxMessages is not set, and refuses a store with neither limit', async () => {
    const conversations = createConversationStore({
      redis: client,
      prefix: base(),
      ttlSeconds: 600,
      maxTokens: 10,
      tokenCounter: (message) => String(message.content).length,
    });
    for (let i = 0; i < 30; i++) {
      await conversations.addMessage('c', { role: 'user', content: `m${i}` }, { owner: alice });
    }
    await conversations.addMessage('c', { role: 'system', content: 'sys' }, { owner: alice });
    const last = await conversations.addMessage('c', { role: 'user', content: 'zz' }, { owner: alice });
    expect(last.tokenCount).toBeLessThanOrEqual(10);
    const kept = await conversations.getRecentMessages('c', undefined, { owner: alice });
    expect(kept.map((m) => m.content)).toEqual(['m29', 'sys', 'zz']);
    expect(() => createConversationStore({ redis: client, ttlSeconds: 5 } as never)).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_CONFIG' }),
    );
  });

  it('keeps 200 concurrent appends to one conversation: none lost, order kept, the cap exact', async () => {
    const conversations = store({ prefix: base(), maxMessages: 50 });
    await conversations.setContext('c', { userId: 'alice' });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        conversations.addMessage(
          'c',
          { role: i % 2 ? 'assistant' : 'user', content: `n${i}` },
          { owner: alice },
        ),
      ),
    );
    const seqs = results.map((r) => r.message.seq).sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const trimmed = results.flatMap((r) => r.trimmed.map((m) => m.seq)).sort((a, b) => a - b);
    expect(trimmed).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    expect(Math.max(...results.map((r) => r.messageCount))).toBe(50);
    const stored = await conversations.getRecentMessages('c', undefined, { owner: alice });
    expect(stored.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 151));
    // Each message landed in the order Redis ran the appends: its seq matches its content's issue order.
    const bySeq = new Map(results.map((r) => [r.message.seq, r.message.content]));
    for (const message of stored) expect(message.content).toBe(bySeq.get(message.seq));
    expect(await conversations.getStats('c', { owner: alice })).toMatchObject({
      messageCount: 50,
      addedMessages: 200,
    });
  });

  it('updateIntent keeps the current intent and a bounded history with confidence, source and time', async () => {
    const conversations = store({ prefix: base(), intentHistorySize: 3 });
    await conversations.setContext('c', { userId: 'alice' });
    for (const [i, name] of ['greet', 'symptoms', 'book', 'pay'].entries()) {
      const intent = await conversations.updateIntent(
        'c',
        { name, confidence: 0.5 + i / 10, sourceMessageSeq: i + 1 },
        { owner: alice },
      );
      expect(intent.recordedAtMs).toBeGreaterThan(0);
    }
    const context = await conversations.getContext('c', { owner: alice });
    expect(context?.intent).toMatchObject({ name: 'pay', confidence: 0.8, sourceMessageSeq: 4 });
    expect(context?.intentHistory.map((intent) => intent.name)).toEqual(['pay', 'book', 'symptoms']);
    await expect(
      conversations.updateIntent('missing', { name: 'x' }, { owner: alice }),
    ).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    });
  });

  it('updateEntities merges by name with typed values, confidence and source, within maxEntities', async () => {
    const conversations = store({ prefix: base(), maxEntities: 3 });
    await conversations.setContext('c', { userId: 'alice' });
    const onset = new Date('2025-03-01T08:00:00Z');
    await conversations.updateEntities(
      'c',
      [
        { name: 'medication', value: 'ibuprofen', confidence: 0.7, sourceMessageSeq: 2 },
        { name: 'onset', value: onset },
      ],
      { owner: alice },
    );
    const result = await conversations.updateEntities(
      'c',
      [
        { name: 'medication', value: 'paracetamol', confidence: 0.9, sourceMessageSeq: 5 },
        { name: 'dose', value: { mg: 500, timesPerDay: 3 }, type: 'json' },
      ],
      { owner: alice },
    );
    expect(result.entityCount).toBe(3);
    const entities = (await conversations.getContext('c', { owner: alice }))?.entities ?? {};
    expect(entities.medication).toMatchObject({
      value: 'paracetamol',
      type: 'string',
      confidence: 0.9,
      sourceMessageSeq: 5,
    });
    expect(entities.onset?.value).toEqual(onset);
    expect(entities.onset?.type).toBe('date');
    expect(entities.dose).toMatchObject({ value: { mg: 500, timesPerDay: 3 }, type: 'json' });
    await expectRejectedUnchanged(
      client,
      prefix,
      () => conversations.updateEntities('c', [{ name: 'fourth', value: 1 }], { owner: alice }),
      'E_TOO_MANY_ENTITIES',
    );
    await expectRejectedUnchanged(
      client,
      prefix,
      () =>
        conversations.updateEntities('c', [{ name: 'age', value: 'forty', type: 'number' }], {
          owner: alice,
        }),
      'E_INVALID_ARGUMENT',
    );
  });

  it('an entity or metadata key named __proto__ stays data and never becomes a prototype', async () => {
    const conversations = store({ prefix: base() });
    await conversations.setContext('c', {
      userId: 'alice',
      data: JSON.parse('{"__proto__": {"admin": true}}'),
    });
    await conversations.updateEntities('c', [{ name: '__proto__', value: { admin: true } }], {
      owner: alice,
    });
    const context = await conversations.getContext('c', { owner: alice });
    const entities = (context?.entities ?? {}) as Record<string, unknown>;
    const data = (context?.data ?? {}) as Record<string, unknown>;
    expect(Object.getPrototypeOf(entities)).toBe(Object.prototype);
    expect(Object.keys(entities)).toEqual(['__proto__']);
    expect(entities.admin).toBeUndefined();
    expect(data.admin).toBeUndefined();
    expect(Object.keys(data)).toEqual(['__proto__']);
  });

  it('summaries are versioned, say what they cover, and rebuild the conversation with the messages after them', async () => {
    const conversations = store({ prefix: base(), maxMessages: 4 });
    const folded: string[] = [];
    for (let i = 1; i <= 6; i++) {
      const result = await conversations.addMessage(
        'c',
        { role: 'user', content: `m${i}` },
        { owner: alice },
      );
      folded.push(...result.trimmed.map((m) => String(m.content)));
    }
    expect(await conversations.getSummary('c', { owner: alice })).toBeNull();
    expect(
      await conversations.setSummary('c', { text: folded.join(' '), upToSeq: 2 }, undefined, {
        owner: alice,
      }),
    ).toMatchObject({
      version: 1,
    });
    await expect(
      conversations.setSummary('c', { text: 'stale', upToSeq: 3 }, undefined, {
        owner: alice,
        expectedVersion: 0,
      }),
    ).rejects.toMatchObject({ code: 'E_SUMMARY_CONFLICT' });
    await expect(
      conversations.setSummary('c', { text: 'future', upToSeq: 7 }, undefined, { owner: alice }),
    ).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    const second = await conversations.setSummary('c', { text: 'm1 m2 m3', upToSeq: 3 }, 1200, {
      owner: alice,
      expectedVersion: 1,
    });
    expect(second.version).toBe(2);
    const summary = await conversations.getSummary('c', { owner: alice });
    expect(summary).toMatchObject({ text: 'm1 m2 m3', upToSeq: 3, version: 2 });
    const after = await conversations.getRecentMessages('c', undefined, {
      owner: alice,
      afterSeq: summary?.upToSeq,
    });
    expect(after.map((m) => m.content)).toEqual(['m4', 'm5', 'm6']);
    expect((await conversations.getStats('c', { owner: alice }))?.ttlMs).toBeGreaterThan(1_190_000);
    expect((await conversations.getContext('c', { owner: alice }))?.summary).toMatchObject({
      version: 2,
      upToSeq: 3,
    });
  });

  it('getStats reports counts, tokens, roles, first and last activity and the summary version', async () => {
    const conversations = store({ prefix: base(), tokenCounter: () => 7 });
    await conversations.addMessage('c', { role: 'system', content: 's' }, { owner: alice });
    await conversations.addMessage('c', { role: 'user', content: 'u' }, { owner: alice });
    await conversations.addMessage(
      'c',
      { role: 'assistant', content: '', toolCalls: [{ id: 't1', name: 'lookup', args: { q: 1 } }] },
      { owner: alice },
    );
    await conversations.addMessage(
      'c',
      { role: 'tool', content: '{"ok":true}', toolResults: [{ toolCallId: 't1' }] },
      { owner: alice },
    );
    await conversations.setSummary('c', { text: 'x', upToSeq: 1 }, undefined, { owner: alice });
    const stats = await conversations.getStats('c', { owner: alice });
    expect(stats).toMatchObject({
      messageCount: 4,
      tokenCount: 28,
      roles: { system: 1, user: 1, assistant: 1, tool: 1 },
      summaryVersion: 1,
    });
    expect(stats?.lastActivityMs).toBeGreaterThanOrEqual(stats?.firstActivityMs ?? Infinity);
    expect(await conversations.getStats('nothing', { owner: alice })).toBeNull();
  });

  it('getUserConversations lists a user’s live conversations by last activity, per tenant', async () => {
    const conversations = store({ prefix: base() });
    for (const id of ['a', 'b', 'c']) await conversations.setContext(id, { userId: 'alice' });
    await conversations.setContext('t', { userId: 'alice', tenantId: 'clinic-2' });
    await conversations.setContext('other', { userId: 'bob' });
    // Activity times are Redis milliseconds: a tie with c's creation would leave the order to the index.
    await new Promise((resolve) => setTimeout(resolve, 2));
    await conversations.addMessage('a', { role: 'user', content: 'latest' }, { owner: alice });
    await conversations.deleteContext('b', { owner: alice });
    const listed = await conversations.getUserConversations('alice', 10);
    expect(listed.map((c) => c.conversationId)).toEqual(['a', 'c']);
    expect(listed[0]).toMatchObject({ messageCount: 1 });
    expect((await conversations.getUserConversations('alice', 1)).map((c) => c.conversationId)).toEqual([
      'a',
    ]);
    expect(
      (await conversations.getUserConversations('alice', 10, { tenantId: 'clinic-2' })).map(
        (c) => c.conversationId,
      ),
    ).toEqual(['t']);
    expect(await conversations.getUserConversations('nobody', 10)).toEqual([]);
  });

  it('deleteContext removes every key and the index entry, and reports whether it existed', async () => {
    const conversations = store({ prefix: base() });
    await conversations.addMessage('c', { role: 'user', content: 'x' }, { owner: alice });
    await conversations.updateIntent('c', { name: 'x' }, { owner: alice });
    await expect(conversations.deleteContext('c', { owner: bob })).rejects.toMatchObject({
      code: 'E_OWNERSHIP_MISMATCH',
    });
    expect(await conversations.deleteContext('c', { owner: alice })).toBe(true);
    expect(await conversations.deleteContext('c', { owner: alice })).toBe(false);
    expect(
      (await dump(client, layout(conversations).prefix)).filter(([key]) => key.includes('{c:c}')),
    ).toEqual([]);
    expect(await conversations.getUserConversations('alice')).toEqual([]);
  });

  it('with only maxTokens, refuses a pin or system message once kept messages would fill the token budget', async () => {
    const conversations = store({ prefix: base(), maxMessages: undefined, maxTokens: 100 });
    for (let i = 0; i < 3; i++) {
      await conversations.addMessage(
        'c',
        { role: 'user', content: `pin ${i}`, pinned: true, tokens: 30 },
        { owner: alice },
      );
    }
    const before = await dump(client, prefix);
    await expect(
      conversations.addMessage('c', { role: 'system', content: 'one more', tokens: 30 }, { owner: alice }),
    ).rejects.toMatchObject({ code: 'E_PINNED_LIMIT', message: expect.stringContaining('maxTokens 100') });
    expect(await dump(client, prefix)).toEqual(before);
    // Messages that may be trimmed still come and go: the conversation stays within its budget.
    for (let i = 0; i < 5; i++) {
      await conversations.addMessage('c', { role: 'user', content: `m${i}`, tokens: 5 }, { owner: alice });
    }
    const stats = await conversations.getStats('c', { owner: alice });
    expect(stats).toMatchObject({ keptMessages: 3, messageCount: 5, tokenCount: 100 });
  });

  it('a write that gives the conversation a longer TTL than its index entry lasts extends the entry too', async () => {
    const conversations = store({ prefix: base(), ttlSeconds: 2, indexRefreshSeconds: 1 });
    await conversations.setContext('sum', { userId: 'alice' });
    await conversations.setContext('ctx', { userId: 'alice' });
    // Within the refresh interval, so only the longer TTL can make these writes update the index.
    await conversations.setSummary('sum', { text: 'summary', upToSeq: 0 }, 120, { owner: alice });
    await conversations.setContext('ctx', { userId: 'alice' }, { ttlSeconds: 120 });
    const index = layout(conversations).userIndex('alice', '');
    expect(await client.pttl(index)).toBeGreaterThan(100_000);
    const listed = await conversations.getUserConversations('alice');
    expect(listed.map((entry) => entry.conversationId).sort()).toEqual(['ctx', 'sum']);
  });

  it('keeps the index entry of a conversation created again while a reader was removing it as stale', async () => {
    const conversations = store({ prefix: base(), ttlSeconds: 1, indexRefreshSeconds: 1 });
    await conversations.addMessage('chat-1', { role: 'user', content: 'first' }, { owner: alice });
    // The conversation expires; its index entry (TTL + refresh interval) is still there, and stale.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const target = client as unknown as { sendCommand(command: Command): unknown };
    const original = target.sendCommand;
    let recreated = false;
    // The chat UI sends to the same id again between the reader's check and its removal of the entry.
    target.sendCommand = function (this: unknown, command: Command) {
      const removal =
        command.name === 'zrem' ||
        (command.name === 'evalsha' && String(command.args[0]) === INDEX_PRUNE.sha);
      if (!removal) return original.call(this, command);
      target.sendCommand = original;
      recreated = true;
      return conversations
        .addMessage('chat-1', { role: 'user', content: 'back again' }, { owner: alice })
        .then(() => original.call(this, command));
    };
    try {
      expect(await conversations.getUserConversations('alice')).toEqual([]);
    } finally {
      target.sendCommand = original;
    }
    expect(recreated).toBe(true);
    const listed = await conversations.getUserConversations('alice');
    expect(listed.map((entry) => entry.conversationId)).toEqual(['chat-1']);
    // Its 1 s TTL would otherwise end in the middle of a later test that compares every key before and after.
    expect(await conversations.deleteContext('chat-1', { owner: alice })).toBe(true);
  });

  it('one sliding TTL covers every key; extendTTL lengthens it and the absolute cap bounds it', async () => {
    const conversations = store({ prefix: base(), ttlSeconds: 60, maxLifetimeSeconds: 300 });
    await conversations.addMessage('c', { role: 'user', content: 'x' }, { owner: alice });
    await conversations.updateIntent('c', { name: 'x' }, { owner: alice });
    const keys = layout(conversations).conversation('c');
    const ttls = async () =>
      Promise.all([keys.meta, keys.messages, keys.intents].map((key) => client.pttl(key)));
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(55_000);
    expect(await conversations.extendTTL('c', 200, { owner: alice })).toBeGreaterThan(195_000);
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(195_000);
    // A later write does not shorten what extendTTL gave; the cap stops anything past 300 s after creation.
    await conversations.addMessage('c', { role: 'user', content: 'y' }, { owner: alice });
    for (const ttl of await ttls()) expect(ttl).toBeGreaterThan(190_000);
    const capped = await conversations.extendTTL('c', 3600, { owner: alice });
    expect(capped).toBeLessThanOrEqual(300_000);
    for (const ttl of await ttls()) expect(ttl).toBeLessThanOrEqual(300_000);
    await expect(conversations.extendTTL('missing', 10, { owner: alice })).rejects.toMatchObject({
      code: 'E_NOT_FOUND',
    });
  });

  it('addMessage slides the TTL of the conversation forward once it has used more than the slack', async () => {
    const conversations = store({ prefix: base(), ttlSeconds: 3 });
    await conversations.addMessage('c', { role: 'user', content: 'x' }, { owner: alice });
    const keys = layout(conversations).conversation('c');
    // 300 ms of slack: a write right away keeps the TTL, a write after it slides both keys.
    await conversations.addMessage('c', { role: 'user', content: 'y' }, { owner: alice });
    await new Promise((resolve) => setTimeout(resolve, 700));
    const before = await client.pttl(keys.messages);
    expect(before).toBeLessThan(2400);
    await conversations.addMessage('c', { role: 'user', content: 'z' }, { owner: alice });
    for (const key of [keys.meta, keys.messages]) expect(await client.pttl(key)).toBeGreaterThan(2700);
    // Short-lived keys would vanish under the other tests' "nothing was written" comparisons.
    await conversations.deleteContext('c', { owner: alice });
  });

  it('refuses every operation by another owner or tenant, writing and revealing nothing', async () => {
    const conversations = store({ prefix: base() });
    await conversations.setContext('c', { userId: 'alice', tenantId: 'clinic-1' });
    await conversations.addMessage(
      'c',
      { role: 'user', content: 'private' },
      { owner: { userId: 'alice', tenantId: 'clinic-1' } },
    );
    const intruders = [
      bob,
      alice,
      { userId: 'alice', tenantId: 'clinic-2' },
      { userId: 'ALICE', tenantId: 'clinic-1' },
    ];
    for (const owner of intruders) {
      const calls: Array<() => Promise<unknown>> = [
        () => conversations.getContext('c', { owner }),
        () => conversations.addMessage('c', { role: 'user', content: 'x' }, { owner }),
        () => conversations.getRecentMessages('c', 10, { owner }),
        () => conversations.updateIntent('c', { name: 'x' }, { owner }),
        () => conversations.updateEntities('c', [{ name: 'x', value: 1 }], { owner }),
        () => conversations.deleteContext('c', { owner }),
        () => conversations.extendTTL('c', 60, { owner }),
        () => conversations.getSummary('c', { owner }),
        () => conversations.setSummary('c', { text: 'x', upToSeq: 0 }, undefined, { owner }),
        () => conversations.getStats('c', { owner }),
        () => conversations.setContext('c', { ...owner, data: { x: 1 } }),
      ];
      for (const call of calls) await expectRejectedUnchanged(client, prefix, call, 'E_OWNERSHIP_MISMATCH');
    }
    for (const call of [
      () => conversations.getRecentMessages('c', 10),
      () => conversations.addMessage('c', { role: 'user', content: 'x' }),
    ]) {
      await expectRejectedUnchanged(client, prefix, call, 'E_OWNER_REQUIRED');
    }
    const trusting = store({ prefix: layout(conversations).prefix, requireOwner: false });
    expect(await trusting.getRecentMessages('c', 10)).toHaveLength(1);
  });

  it('crafted ids with hash tags, globs, separators and percent signs map to their own keys only', async () => {
    const conversations = store({ prefix: base() });
    const ids = ['a', 'a}', '{a}', 'a*', '*', 'a:b', 'a%7D', 'a?', '[a]', 'a\\', 'ünï', '😀'];
    for (const id of ids)
      await conversations.addMessage(id, { role: 'user', content: `for ${id}` }, { owner: alice });
    for (const id of ids) {
      const messages = await conversations.getRecentMessages(id, 10, { owner: alice });
      expect(messages.map((m) => m.content)).toEqual([`for ${id}`]);
    }
    const keys = (await dump(client, layout(conversations).prefix)).map(([key]) => key);
    for (const key of keys)
      expect(key.slice(layout(conversations).prefix.length)).not.toMatch(/[*?[\]\\]|\{[^cu]/);
    expect(
      (await conversations.getUserConversations('alice', 100)).map((c) => c.conversationId).sort(),
    ).toEqual([...ids].sort());
    // A user id that looks like another user's hash tag or a glob never reaches someone else's index.
    await conversations.setContext('x', { userId: 'u}:{u:alice' });
    await conversations.setContext('y', { userId: '*' });
    expect(
      (await conversations.getUserConversations('alice', 100)).map((c) => c.conversationId),
    ).not.toContain('x');
    expect((await conversations.getUserConversations('*', 100)).map((c) => c.conversationId)).toEqual(['y']);
    const erased = await conversations.deleteUserConversations('*');
    expect(erased.conversationIds).toEqual(['y']);
    expect(await conversations.getRecentMessages('a', 10, { owner: alice })).toHaveLength(1);
  });

  it('rejects bad input with a typed code and writes nothing', async () => {
    const conversations = store({ prefix: base() });
    await conversations.setContext('c', { userId: 'alice' });
    const cases: Array<[string, () => Promise<unknown>]> = [
      [
        'E_MESSAGE_TOO_LARGE',
        () =>
          conversations.addMessage('c', { role: 'user', content: 'x'.repeat(300 * 1024) }, { owner: alice }),
      ],
      [
        // Each entity is under maxMessageBytes; together they are not.
        'E_MESSAGE_TOO_LARGE',
        () =>
          conversations.updateEntities(
            'c',
            Array.from({ length: 4 }, (_, i) => ({ name: `note${i}`, value: 'x'.repeat(100 * 1024) })),
            { owner: alice },
          ),
      ],
      [
        'E_INVALID_ROLE',
        () => conversations.addMessage('c', { role: 'root', content: 'x' } as never, { owner: alice }),
      ],
      ['E_INVALID_ROLE', () => conversations.addMessage('c', { content: 'x' } as never, { owner: alice })],
      [
        'E_INVALID_CONVERSATION_ID',
        () => conversations.addMessage('', { role: 'user', content: 'x' }, { owner: alice }),
      ],
      [
        'E_INVALID_CONVERSATION_ID',
        () => conversations.addMessage('a\u0000b', { role: 'user', content: 'x' }, { owner: alice }),
      ],
      [
        'E_INVALID_CONVERSATION_ID',
        () => conversations.addMessage('   ', { role: 'user', content: 'x' }, { owner: alice }),
      ],
      [
        'E_INVALID_CONVERSATION_ID',
        () => conversations.addMessage('a\nb', { role: 'user', content: 'x' }, { owner: alice }),
      ],
      [
        'E_INVALID_CONVERSATION_ID',
        () => conversations.addMessage('x'.repeat(257), { role: 'user', content: 'x' }, { owner: alice }),
      ],
      ['E_INVALID_CONVERSATION_ID', () => conversations.getRecentMessages(42 as never, 10, { owner: alice })],
      [
        'E_INVALID_USER_ID',
        () => conversations.addMessage('c', { role: 'user', content: 'x' }, { owner: { userId: '' } }),
      ],
      ['E_INVALID_USER_ID', () => conversations.setContext('d', { userId: 'a\u001bb' })],
      ['E_INVALID_TTL', () => conversations.extendTTL('c', 0, { owner: alice })],
      ['E_INVALID_TTL', () => conversations.extendTTL('c', -5, { owner: alice })],
      ['E_INVALID_TTL', () => conversations.extendTTL('c', Number.NaN, { owner: alice })],
      ['E_INVALID_TTL', () => conversations.setSummary('c', { text: 'x', upToSeq: 0 }, 0, { owner: alice })],
      ['E_INVALID_TTL', () => conversations.setContext('d', { userId: 'alice' }, { ttlSeconds: -1 })],
      [
        'E_UNSERIALIZABLE',
        () =>
          conversations.addMessage(
            'c',
            { role: 'user', content: 'x', metadata: { f: () => 1 } },
            { owner: alice },
          ),
      ],
      [
        'E_UNSERIALIZABLE',
        () =>
          conversations.addMessage(
            'c',
            { role: 'user', content: [{ type: 'text', s: Symbol('x') }] },
            { owner: alice },
          ),
      ],
      [
        'E_INVALID_ARGUMENT',
        () => conversations.addMessage('c', { role: 'user', content: 5 } as never, { owner: alice }),
      ],
      [
        'E_INVALID_ARGUMENT',
        () => conversations.addMessage('c', { role: 'user', content: 'x', tokens: -1 }, { owner: alice }),
      ],
      ['E_INVALID_ARGUMENT', () => conversations.getRecentMessages('c', 0, { owner: alice })],
      ['E_INVALID_ARGUMENT', () => conversations.updateIntent('c', { name: '' }, { owner: alice })],
      [
        'E_INVALID_ARGUMENT',
        () => conversations.updateIntent('c', { name: 'x', confidence: 2 }, { owner: alice }),
      ],
      ['E_INVALID_ARGUMENT', () => conversations.updateEntities('c', [], { owner: alice })],
      [
        'E_INVALID_ARGUMENT',
        () => conversations.updateEntities('c', [{ name: 'x' } as never], { owner: alice }),
      ],
      [
        'E_INVALID_ARGUMENT',
        () => conversations.setSummary('c', { text: 'x' } as never, undefined, { owner: alice }),
      ],
    ];
    for (const [code, call] of cases) await expectRejectedUnchanged(client, prefix, call, code);
    expect(() => createConversationStore({ redis: client, ttlSeconds: 0, maxMessages: 5 })).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_CONFIG' }),
    );
    expect(() => createConversationStore({ redis: client, ttlSeconds: 5, maxMessages: 0 })).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_CONFIG' }),
    );
    expect(() =>
      createConversationStore({ redis: client, ttlSeconds: 5, maxMessages: 5, prefix: 'a{b}' }),
    ).toThrowError(expect.objectContaining({ code: 'E_INVALID_CONFIG' }));
    expect(() => createConversationStore({ redis: {} as never, ttlSeconds: 5, maxMessages: 5 })).toThrowError(
      expect.objectContaining({ code: 'E_INVALID_CONFIG' }),
    );
  });

  it('with encryption keys, no message, summary, entity, intent or context text is stored in clear', async () => {
    const conversations = store({ prefix: base(), codec: encryptingCodec(), maxMessages: 3 });
    const secrets = [
      'HIV-positive',
      'metformin',
      'Maria-Silva',
      'chest-pain',
      'suicidal',
      'appendectomy',
      'BRCA1',
    ];
    await conversations.setContext('c', { userId: 'alice', data: { name: 'Maria-Silva' } });
    await conversations.addMessage(
      'c',
      { role: 'user', content: 'I am HIV-positive and take metformin' },
      { owner: alice },
    );
    await conversations.addMessage(
      'c',
      {
        role: 'assistant',
        content: '',
        toolCalls: [{ id: 't', name: 'history', args: { condition: 'chest-pain' } }],
      },
      { owner: alice },
    );
    await conversations.addMessage(
      'c',
      {
        role: 'tool',
        content: 'appendectomy 2019',
        toolResults: [{ toolCallId: 't' }],
        metadata: { gene: 'BRCA1' },
      },
      { owner: alice },
    );
    await conversations.updateIntent('c', { name: 'suicidal-ideation-screen' }, { owner: alice });
    await conversations.updateEntities('c', [{ name: 'condition', value: 'HIV-positive' }], { owner: alice });
    await conversations.setSummary('c', { text: 'Patient Maria-Silva, metformin', upToSeq: 1 }, undefined, {
      owner: alice,
    });
    const trim = await conversations.addMessage('c', { role: 'user', content: 'more' }, { owner: alice });
    expect(trim.trimmed[0]?.content).toBe('I am HIV-positive and take metformin');
    const bytes = Buffer.concat(await rawBytes(client, layout(conversations).prefix));
    for (const secret of secrets) expect(bytes.includes(secret), secret).toBe(false);
    // Roles, counts and times stay readable for stats; the content reads back through the codec.
    expect(await conversations.getStats('c', { owner: alice })).toMatchObject({
      messageCount: 3,
      roles: { assistant: 1, tool: 1, user: 1 },
    });
    expect((await conversations.getContext('c', { owner: alice }))?.data).toEqual({ name: 'Maria-Silva' });
    // A message copied into another conversation does not decrypt there.
    const source = layout(conversations).conversation('c');
    const element = await client.lindexBuffer(source.messages, 0);
    await conversations.addMessage('d', { role: 'user', content: 'x' }, { owner: alice });
    const target = layout(conversations).conversation('d');
    await client.lset(target.messages, 0, element as Buffer);
    await expect(conversations.getRecentMessages('d', 10, { owner: alice })).rejects.toMatchObject({
      code: 'E_DECODE',
    });
  });

  it('runs the redact hook before every write of content, and a throwing hook writes nothing', async () => {
    const seen: string[] = [];
    const scrub = (text: string) => text.replace(/\d{3}-\d{2}-\d{4}/g, '[SSN]');
    const conversations = store({
      prefix: base(),
      redact: (value, info) => {
        seen.push(info.kind);
        if (info.kind === 'message') {
          const message = value as MessageInput;
          if (message.content === 'explode') throw new Error('no');
          return { ...message, content: scrub(String(message.content)) };
        }
        if (info.kind === 'summary')
          return { ...(value as object), text: scrub((value as { text: string }).text) };
        if (info.kind === 'entity') return { ...(value as object), value: '[redacted]' };
        return value;
      },
    });
    await conversations.setContext('c', { userId: 'alice', data: { a: 1 } });
    const added = await conversations.addMessage(
      'c',
      { role: 'user', content: 'my ssn is 123-45-6789' },
      { owner: alice },
    );
    expect(added.message.content).toBe('my ssn is [SSN]');
    await conversations.setSummary('c', { text: 'ssn 123-45-6789', upToSeq: 1 }, undefined, { owner: alice });
    await conversations.updateEntities('c', [{ name: 'ssn', value: '123-45-6789' }], { owner: alice });
    await conversations.updateIntent('c', { name: 'identify' }, { owner: alice });
    expect(seen).toEqual(['context', 'message', 'summary', 'entity', 'intent']);
    expect((await conversations.getRecentMessages('c', 1, { owner: alice }))[0]?.content).toBe(
      'my ssn is [SSN]',
    );
    expect((await conversations.getSummary('c', { owner: alice }))?.text).toBe('ssn [SSN]');
    expect((await conversations.getContext('c', { owner: alice }))?.entities.ssn?.value).toBe('[redacted]');
    const bytes = Buffer.concat(await rawBytes(client, layout(conversations).prefix));
    expect(bytes.includes('123-45-6789')).toBe(false);
    await expectRejectedUnchanged(
      client,
      prefix,
      () => conversations.addMessage('c', { role: 'user', content: 'explode' }, { owner: alice }),
      'E_INVALID_ARGUMENT',
    );
  });

  it('deleteUserConversations erases every conversation of a user, also ones the index missed, and reports them', async () => {
    const conversations = store({ prefix: base() });
    for (const id of ['p1', 'p2', 'p3']) {
      await conversations.addMessage(id, { role: 'user', content: 'x' }, { owner: alice });
      await conversations.updateIntent(id, { name: 'x' }, { owner: alice });
    }
    await conversations.addMessage('q', { role: 'user', content: 'keep me' }, { owner: bob });
    await conversations.addMessage(
      't',
      { role: 'user', content: 'other tenant' },
      { owner: { userId: 'alice', tenantId: 'k' } },
    );
    // As if the index update of p3 had been lost in a failover.
    await client.zrem(layout(conversations).userIndex('alice', ''), 'p3');
    const quick = await conversations.deleteUserConversations('alice', { thorough: false });
    expect(quick.conversationIds).toEqual(['p1', 'p2']);
    const report = await conversations.deleteUserConversations('alice');
    expect(report).toMatchObject({
      userId: 'alice',
      conversationIds: ['p3'],
      conversationsDeleted: 1,
      keysDeleted: 3,
      scanned: true,
    });
    const left = (await dump(client, layout(conversations).prefix)).map(([key]) => key);
    expect(left.some((key) => /\{c:p\d\}/.test(key))).toBe(false);
    expect(await conversations.getRecentMessages('q', 10, { owner: bob })).toHaveLength(1);
    expect(
      await conversations.getRecentMessages('t', 10, { owner: { userId: 'alice', tenantId: 'k' } }),
    ).toHaveLength(1);
  });

  it('cleanup repairs lost index entries, drops stale ones and removes lists whose meta hash was evicted', async () => {
    const conversations = store({ prefix: base() });
    await conversations.addMessage('live', { role: 'user', content: 'x' }, { owner: alice });
    await conversations.addMessage('orphan', { role: 'user', content: 'x' }, { owner: alice });
    const index = layout(conversations).userIndex('alice', '');
    await client.zrem(index, 'live');
    await client.zadd(index, Date.now(), 'ghost');
    await client.unlink(layout(conversations).conversation('orphan').meta);
    const report = await conversations.cleanup();
    expect(report).toMatchObject({ conversations: 1, indexEntriesRepaired: 1, orphanKeysRemoved: 1 });
    expect(report.indexEntriesRemoved).toBe(2);
    expect(await client.zrange(index, 0, -1)).toEqual(['live']);
    expect(await conversations.cleanup()).toMatchObject({
      indexEntriesRepaired: 0,
      indexEntriesRemoved: 0,
      orphanKeysRemoved: 0,
    });
  });

  it('a failed index update leaves the conversation written, is counted and logged without content, and cleanup repairs it', async () => {
    const metrics = createMetrics();
    const warnings: string[] = [];
    const prefix = base();
    const conversations = store({ prefix, metrics, logger: { warn: (message) => warnings.push(message) } });
    const index = new KeyLayout(prefix).userIndex('alice', '');
    // The index's shard "fails" for this write: a value of the wrong type makes the index script error.
    await client.set(index, 'not a sorted set', 'EX', 60);
    const result = await conversations.addMessage(
      'c',
      { role: 'user', content: 'sensitive words' },
      { owner: alice },
    );
    expect(result.created).toBe(true);
    expect(await sample(metrics, 'austa_conversation_index_update_failures_total')).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).not.toContain('sensitive');
    expect(warnings[0]).toContain('cleanup()');
    await client.unlink(index);
    expect(await conversations.getUserConversations('alice')).toEqual([]);
    expect((await conversations.cleanup()).indexEntriesRepaired).toBe(1);
    expect((await conversations.getUserConversations('alice')).map((c) => c.conversationId)).toEqual(['c']);
  });

  it('a new owner of an id whose meta hash was evicted never inherits the old messages', async () => {
    const conversations = store({ prefix: base() });
    await conversations.addMessage('c', { role: 'user', content: 'alice secret' }, { owner: alice });
    await client.unlink(layout(conversations).conversation('c').meta);
    await conversations.addMessage('c', { role: 'user', content: 'bob' }, { owner: bob });
    expect((await conversations.getRecentMessages('c', 10, { owner: bob })).map((m) => m.content)).toEqual([
      'bob',
    ]);
  });

  it('round-trips LangChain messages and AI SDK UIMessages with tool calls through the store', async () => {
    const conversations = store({ prefix: base() });
    const langchain = [
      new SystemMessage('You are careful.'),
      new HumanMessage({ content: 'What is my dose?', id: 'h1' }),
      new AIMessage({
        content: '',
        tool_calls: [{ id: 'call_1', name: 'dose_lookup', args: { drug: 'x', mg: 5 }, type: 'tool_call' }],
        response_metadata: { model: 'm' },
      }),
      new ToolMessage({
        content: '5 mg',
        tool_call_id: 'call_1',
        name: 'dose_lookup',
        artifact: { raw: [1] },
      }),
      new AIMessage('Take 5 mg.'),
    ];
    for (const message of fromLangChainMessages(langchain))
      await conversations.addMessage('lc', message, { owner: alice });
    const back = toLangChainMessages(
      await conversations.getRecentMessages('lc', undefined, { owner: alice }),
    );
    expect(back.map((m) => m.toDict())).toEqual(langchain.map((m) => m.toDict()));
    const ui: UIMessage[] = [
      { id: 'u1', role: 'user', parts: [{ type: 'text', text: 'Book me in' }], metadata: { at: 1 } },
      {
        id: 'a1',
        role: 'assistant',
        parts: [
          { type: 'step-start' },
          { type: 'text', text: 'Checking', state: 'done' },
          {
            type: 'tool-book',
            toolCallId: 'b1',
            state: 'output-available',
            input: { day: 'mon' },
            output: { ok: true },
          },
          {
            type: 'dynamic-tool',
            toolName: 'notify',
            toolCallId: 'n1',
            state: 'output-error',
            input: {},
            errorText: 'down',
          },
          { type: 'text', text: 'Booked.' },
        ],
      },
    ];
    for (const message of ui) await conversations.addMessage('ui', fromUIMessage(message), { owner: alice });
    expect(toUIMessages(await conversations.getRecentMessages('ui', undefined, { owner: alice }))).toEqual(
      ui,
    );
  });

  it('records messages by role, trims and latency without any identifier, and passes promtool', async () => {
    const metrics = createMetrics();
    const conversations = store({ prefix: base(), metrics, maxMessages: 2 });
    for (let i = 0; i < 3; i++)
      await conversations.addMessage('c', { role: 'user', content: 'secret-content' }, { owner: alice });
    await conversations.addMessage('c', { role: 'assistant', content: 'x' }, { owner: alice });
    await expect(conversations.getRecentMessages('c', 1, { owner: bob })).rejects.toBeTruthy();
    expect(await sample(metrics, 'austa_conversation_messages_total', { role: 'user' })).toBe(3);
    expect(await sample(metrics, 'austa_conversation_messages_total', { role: 'assistant' })).toBe(1);
    expect(await sample(metrics, 'austa_conversation_trims_total')).toBe(2);
    expect(await sample(metrics, 'austa_conversation_trimmed_messages_total')).toBe(2);
    expect(
      await sample(metrics, 'db_client_operation_duration_seconds_count', {
        db_operation_name: 'add_message',
        error_type: '',
      }),
    ).toBe(4);
    expect(
      await sample(metrics, 'austa_conversation_operations_total', {
        operation: 'get_recent_messages',
        result: 'rejected',
      }),
    ).toBe(1);
    const text = await metrics.text();
    for (const forbidden of ['secret-content', 'alice', 'bob', prefix]) expect(text).not.toContain(forbidden);
    const probe = spawnSync('promtool', ['--version']);
    if (probe.status === 0) {
      expect(execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })).toBe('');
    }
  });

  /** A client of this topology with auto-pipelining on (on a cluster, on the Cluster and every node connection). */
  const pipelinedClient = () =>
    createTestClient(
      redisTargets(),
      topology,
      { enableAutoPipelining: true },
      { enableAutoPipelining: true },
    );
  const pipelinedStore = (redis: Redis | Cluster) =>
    createConversationStore({ redis, prefix: base(), ttlSeconds: 60, maxMessages: 5 });

  it('works on a client with auto-pipelining, where ioredis mangles callBuffer', async () => {
    const pipelined = pipelinedClient();
    try {
      const conversations = pipelinedStore(pipelined);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          conversations.addMessage('c', { role: 'user', content: `${i}` }, { owner: alice }),
        ),
      );
      expect(results.map((r) => r.message.seq).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      expect(await conversations.getRecentMessages('c', 10, { owner: alice })).toHaveLength(5);
      // After a script cache flush (a restart or a new master) the EVAL fallback runs, also auto-pipelined.
      await Promise.all(
        (pipelined instanceof Object && 'nodes' in pipelined && typeof pipelined.nodes === 'function'
          ? (pipelined as Cluster).nodes('master')
          : [pipelined as Redis]
        ).map((node) => node.script('FLUSH')),
      );
      expect(await conversations.getRecentMessages('c', 10, { owner: alice })).toHaveLength(5);
    } finally {
      await pipelined.quit();
    }
  });

  it('hands scripts to the connection at once on an auto-pipelining client, corked to the end of the tick', async () => {
    const pipelined = pipelinedClient();
    type Connection = {
      sendCommand: (command: { name: string }, ...rest: unknown[]) => unknown;
      stream?: { writableCorked: number };
    };
    try {
      const conversations = pipelinedStore(pipelined);
      const ids = Array.from({ length: 6 }, (_, i) => `ap-${i}`);
      // Opens every connection and loads the script.
      await Promise.all(
        ids.map((id) => conversations.addMessage(id, { role: 'user', content: 'a' }, { owner: alice })),
      );
      const connections = (pipelined instanceof Cluster
        ? pipelined.nodes('master')
        : [pipelined]) as unknown as Connection[];
      const written: Connection[] = [];
      const originals = connections.map((connection) => connection.sendCommand);
      connections.forEach((connection, index) => {
        const original = originals[index] as Connection['sendCommand'];
        connection.sendCommand = function (this: unknown, command, ...rest) {
          if (command.name === 'evalsha') written.push(connection);
          return original.call(this, command, ...rest);
        };
      });
      try {
        const appends = ids.map((id) =>
          conversations.addMessage(id, { role: 'user', content: 'b' }, { owner: alice }),
        );
        // Still in the tick: every script is on its connection already (an auto-pipeline would hold them until the
        // next tick), and the connection holds its writes until the tick ends.
        expect(written).toHaveLength(ids.length);
        for (const connection of written) expect(connection.stream?.writableCorked).toBeGreaterThan(0);
        expect((await Promise.all(appends)).map((r) => r.message.seq)).toEqual(ids.map(() => 2));
      } finally {
        connections.forEach((connection, index) => {
          connection.sendCommand = originals[index] as Connection['sendCommand'];
        });
      }
    } finally {
      await pipelined.quit();
    }
  });

  it('after close() every call fails with E_STORE_CLOSED and the client stays open', async () => {
    const conversations = store({ prefix: base() });
    await conversations.close();
    await expect(conversations.getRecentMessages('c', 1, { owner: alice })).rejects.toMatchObject({
      code: 'E_STORE_CLOSED',
    });
    expect(await client.ping()).toBe('PONG');
  });
});
