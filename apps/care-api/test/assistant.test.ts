import { describe, expect, it } from 'vitest';
import { classifyIntent, createEchoResponder, extractEntities } from '../src/assistant/responder.js';
import { createDemoUserLookup, mayAccessPatient } from '../src/auth/users.js';

describe('the deterministic echo responder', () => {
  const responder = createEchoResponder();

  it('classifies intents by keyword, the rule with most hits winning', () => {
    expect(classifyIntent('Can I book an appointment to reschedule my visit?')).toEqual({
      name: 'appointment',
      confidence: 0.95,
    });
    expect(classifyIntent('I need a refill of my prescription')).toEqual({
      name: 'medication',
      confidence: 0.8,
    });
    expect(classifyIntent('I have a fever and a headache')).toEqual({ name: 'symptom', confidence: 0.8 });
    expect(classifyIntent('Hello there')).toEqual({ name: 'greeting', confidence: 0.65 });
    expect(classifyIntent('What is the weather like?')).toEqual({ name: 'general', confidence: 0.3 });
  });

  it('extracts dates, times, known medications and temperatures', () => {
    expect(extractEntities('Fever of 38.5 °C since 2025-03-14 at 9:30, took ibuprofen')).toEqual([
      { name: 'date', value: '2025-03-14', confidence: 0.9 },
      { name: 'time', value: '09:30', confidence: 0.8 },
      { name: 'medication', value: 'ibuprofen', confidence: 0.85 },
      { name: 'temperature_celsius', value: 38.5, confidence: 0.8 },
    ]);
    expect(extractEntities('nothing to see')).toEqual([]);
    expect(extractEntities('not a date: 2025-13-45')).toEqual([]);
  });

  it('answers the same input with the same output, echoing the message and saying it is a demo', async () => {
    const input = {
      conversationId: 'c1',
      userId: 'u1',
      message: 'I need a refill of metformin',
      history: [
        { role: 'user', content: 'hello' },
        { role: 'assistant', content: 'hi' },
      ],
    };
    const first = await responder.respond(input);
    expect(await responder.respond(input)).toEqual(first);
    expect(first.intent).toEqual({ name: 'medication', confidence: 0.65 });
    expect(first.entities).toEqual([{ name: 'medication', value: 'metformin', confidence: 0.85 }]);
    expect(first.reply).toContain('You wrote: "I need a refill of metformin"');
    expect(first.reply).toContain('1 earlier message from you');
    expect(first.reply).toContain('not medical advice');
  });

  it('cuts long messages in the echo', async () => {
    const output = await responder.respond({
      conversationId: 'c',
      userId: 'u',
      message: 'a'.repeat(1000),
      history: [],
    });
    expect(output.reply.length).toBeLessThan(500);
    expect(output.reply).toContain('…');
  });

  it('folds trimmed messages into a running summary', async () => {
    const first = await responder.summarize?.({
      messages: [
        { role: 'user', content: 'book an appointment' },
        { role: 'assistant', content: 'ok' },
      ],
    });
    expect(first).toBe('2 earlier messages (1 from the user) about appointment.');
    const second = await responder.summarize?.({
      previous: first,
      messages: [{ role: 'user', content: 'my bill is wrong' }],
    });
    expect(second).toBe('3 earlier messages (2 from the user) about appointment, billing.');
    // Bounded: folding the same topics again changes only the counts.
    let summary = second;
    for (let i = 0; i < 1000; i++) {
      summary = await responder.summarize?.({
        previous: summary,
        messages: [{ role: 'user', content: 'my bill is wrong' }],
      });
    }
    expect(summary).toBe('1003 earlier messages (1002 from the user) about appointment, billing.');
  });
});

describe('the demo user lookup', () => {
  const users = createDemoUserLookup();

  it('accepts any well-formed username with the password demo, as a patient of that name', async () => {
    expect(await users.authenticate({ username: 'ada', password: 'demo' })).toEqual({
      id: 'demo-ada',
      patientId: 'ada',
      roles: ['patient'],
      demo: true,
    });
    expect(await users.authenticate({ username: 'clinician.bob', password: 'demo' })).toEqual({
      id: 'demo-clinician_bob',
      roles: ['clinician'],
      demo: true,
    });
  });

  it('refuses a wrong password and usernames that could reach into keys or logs', async () => {
    expect(await users.authenticate({ username: 'ada', password: 'Demo' })).toBeUndefined();
    expect(await users.authenticate({ username: 'ada', password: '' })).toBeUndefined();
    for (const username of ['', 'Ada', 'a*', 'a{b}', 'a b', 'a\nb', 'x'.repeat(41)]) {
      expect(await users.authenticate({ username, password: 'demo' }), username).toBeUndefined();
    }
  });

  it('lets patients reach only their own record, clinicians every record', () => {
    expect(mayAccessPatient({ patientId: 'ada', roles: ['patient'] }, 'ada')).toBe(true);
    expect(mayAccessPatient({ patientId: 'ada', roles: ['patient'] }, 'bob')).toBe(false);
    expect(mayAccessPatient({ roles: ['clinician'] }, 'bob')).toBe(true);
  });
});
