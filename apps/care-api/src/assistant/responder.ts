/**
 * Where the assistant's replies come from. The service calls a responder for every user message and stores what it
 * returns (reply, intent, entities); plug in your model behind this interface. The default is deterministic and needs
 * no AI service: it classifies the message with keyword rules, picks out a few entities, and echoes the message back,
 * so the reference service, its tests and its load figures do not depend on anything external.
 */

export interface ResponderMessage {
  role: string;
  content: string;
}

export interface ResponderInput {
  conversationId: string;
  userId: string;
  /** The user's new message. */
  message: string;
  /** Messages before it that the store still holds, oldest first (the new message is not included). */
  history: readonly ResponderMessage[];
  /** The summary of messages older than `history`, if one was written. */
  summary?: string;
}

export interface ResponderIntent {
  name: string;
  /** 0 to 1. */
  confidence: number;
}

export interface ResponderEntity {
  name: string;
  value: string | number;
  /** 0 to 1. */
  confidence: number;
}

export interface ResponderOutput {
  reply: string;
  intent?: ResponderIntent;
  entities?: ResponderEntity[];
}

export interface AssistantResponder {
  /** Used in logs and the OpenAPI description; a fixed word, never user data. */
  readonly name: string;
  respond(input: ResponderInput, signal?: AbortSignal): Promise<ResponderOutput>;
  /**
   * Folds messages the store trimmed into the running summary, so "summary + recent messages" still covers the whole
   * conversation. Without it, trimmed messages are gone.
   */
  summarize?(input: { previous?: string; messages: readonly ResponderMessage[] }): Promise<string>;
}

const INTENT_RULES: Array<{ name: string; words: RegExp[] }> = [
  {
    name: 'appointment',
    words: [/\bappointments?\b/, /\bbook(ing)?\b/, /\b(re)?schedul(e|ing)\b/, /\bvisit\b/, /\bcancel\b/],
  },
  {
    name: 'medication',
    words: [
      /\bmedications?\b/,
      /\bmedicines?\b/,
      /\bprescriptions?\b/,
      /\brefills?\b/,
      /\bdose\b/,
      /\bpills?\b/,
    ],
  },
  {
    name: 'symptom',
    words: [
      /\bpain\b/,
      /\bfever\b/,
      /\bcough(ing)?\b/,
      /\bheadaches?\b/,
      /\bsymptoms?\b/,
      /\bnause(a|ous)\b/,
      /\bhurts?\b/,
    ],
  },
  { name: 'billing', words: [/\bbills?\b/, /\binvoices?\b/, /\bpayments?\b/, /\binsurance\b/, /\bcosts?\b/] },
  { name: 'greeting', words: [/^\s*(hi|hello|hey)\b/, /\bgood (morning|afternoon|evening)\b/] },
];

const MEDICATIONS = [
  'acetaminophen',
  'amoxicillin',
  'atorvastatin',
  'ibuprofen',
  'insulin',
  'lisinopril',
  'metformin',
  'paracetamol',
];

/** Keyword rules: the intent with most matching rules wins; ties go to the earlier rule. */
export function classifyIntent(message: string): ResponderIntent {
  const text = message.toLowerCase();
  let best: ResponderIntent = { name: 'general', confidence: 0.3 };
  let bestHits = 0;
  for (const rule of INTENT_RULES) {
    const hits = rule.words.filter((word) => word.test(text)).length;
    if (hits > bestHits) {
      bestHits = hits;
      best = { name: rule.name, confidence: Math.min(0.95, 0.5 + 0.15 * hits) };
    }
  }
  return best;
}

export function extractEntities(message: string): ResponderEntity[] {
  const entities: ResponderEntity[] = [];
  const date = /\b(\d{4}-\d{2}-\d{2})\b/.exec(message)?.[1];
  if (date !== undefined && !Number.isNaN(Date.parse(`${date}T00:00:00Z`))) {
    entities.push({ name: 'date', value: date, confidence: 0.9 });
  }
  const time = /\b([01]?\d|2[0-3]):([0-5]\d)\b/.exec(message);
  if (time)
    entities.push({ name: 'time', value: `${time[1]?.padStart(2, '0')}:${time[2]}`, confidence: 0.8 });
  const lower = message.toLowerCase();
  const medication = MEDICATIONS.find((name) => new RegExp(`\\b${name}\\b`).test(lower));
  if (medication !== undefined) entities.push({ name: 'medication', value: medication, confidence: 0.85 });
  const temperature = /\b(3\d|4[0-2])(?:[.,](\d))?\s*°?\s*c\b/i.exec(message);
  if (temperature) {
    entities.push({
      name: 'temperature_celsius',
      value: Number(`${temperature[1]}.${temperature[2] ?? '0'}`),
      confidence: 0.8,
    });
  }
  return entities;
}

const ECHO_LIMIT = 200;

function quoted(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > ECHO_LIMIT ? `${flat.slice(0, ECHO_LIMIT - 1)}…` : flat;
}

const NO_TOPIC = 'nothing in particular';
const SUMMARY = /^(\d+) earlier messages? \((\d+) from the user\) about (.*)\.$/;

/** The deterministic default: same input, same output. Not medical advice, and it says so. */
export function createEchoResponder(): AssistantResponder {
  return {
    name: 'echo',
    async respond(input) {
      const intent = classifyIntent(input.message);
      const entities = extractEntities(input.message);
      const earlier = input.history.filter((message) => message.role === 'user').length;
      const noted =
        entities.length > 0
          ? ` I noted ${entities.map((entity) => `${entity.name} ${entity.value}`).join(', ')}.`
          : '';
      const reply =
        `[demo assistant] This looks like a ${intent.name} question.${noted} You wrote: "${quoted(input.message)}". ` +
        `(${earlier} earlier message${earlier === 1 ? '' : 's'} from you in this conversation${input.summary ? ', plus a summary of older ones' : ''}.) ` +
        'This is a deterministic demo responder, not medical advice.';
      return { reply, intent, entities };
    },
    async summarize({ previous, messages }) {
      // Cumulative counts and a set of topics, not a growing list of lines: the summary stays a few dozen characters
      // however long the conversation runs (it is read and rewritten on every trim).
      const before = SUMMARY.exec(previous ?? '');
      const users = messages.filter((message) => message.role === 'user');
      const total = Number(before?.[1] ?? 0) + messages.length;
      const fromUser = Number(before?.[2] ?? 0) + users.length;
      const topics = new Set(before?.[3] && before[3] !== NO_TOPIC ? before[3].split(', ') : []);
      for (const message of users) topics.add(classifyIntent(message.content).name);
      const about = [...topics].sort().join(', ') || NO_TOPIC;
      return `${total} earlier message${total === 1 ? '' : 's'} (${fromUser} from the user) about ${about}.`;
    },
  };
}
