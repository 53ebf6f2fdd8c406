import { Socket } from 'node:net';

/**
 * A minimal RESP2 client for admin commands on servers we own.
 *
 * ioredis is built for applications: it queues commands while offline, retries, and runs a ready
 * check, which is the opposite of what polling a node that may be dead, paused or still loading
 * needs. Here every call has a hard deadline and a dead node is an immediate error.
 */

export type RespValue = string | number | Buffer | null | RespValue[];

export class RespReplyError extends Error {
  override name = 'RespReplyError';
}

export interface RedisAddress {
  host: string;
  port: number;
}

const CRLF = '\r\n';

function encode(args: ReadonlyArray<string | number | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}${CRLF}`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
    parts.push(Buffer.from(`$${bytes.length}${CRLF}`), bytes, Buffer.from(CRLF));
  }
  return Buffer.concat(parts);
}

type Parsed = { value: RespValue | RespReplyError; next: number } | null;

function parse(buffer: Buffer, offset: number): Parsed {
  const lineEnd = buffer.indexOf(CRLF, offset);
  if (lineEnd === -1) return null;
  const type = String.fromCharCode(buffer[offset] ?? 0);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next: afterLine };
    case '-':
      return { value: new RespReplyError(line), next: afterLine };
    case ':':
      return { value: Number(line), next: afterLine };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next: afterLine };
      if (buffer.length < afterLine + length + 2) return null;
      return { value: buffer.subarray(afterLine, afterLine + length), next: afterLine + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next: afterLine };
      const items: RespValue[] = [];
      let next = afterLine;
      for (let index = 0; index < count; index++) {
        const item = parse(buffer, next);
        if (item === null) return null;
        // Nested errors only come from EXEC, which we never send; flatten them to text.
        items.push(item.value instanceof RespReplyError ? item.value.message : item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new RespReplyError(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

interface Pending {
  resolve: (value: RespValue) => void;
  reject: (error: Error) => void;
}

export class RespConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly pending: Pending[] = [];
  private failure: Error | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly address: RedisAddress,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error(`connection to ${address.host}:${address.port} closed`)));
  }

  static connect(address: RedisAddress, timeoutMs: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${address.host}:${address.port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.connect(address.port, address.host, () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setNoDelay(true);
        resolve(new RespConnection(socket, address));
      });
    });
  }

  /** Sends one command; rejects on an error reply, a closed socket or when `timeoutMs` passes. */
  command(args: ReadonlyArray<string | number | Buffer>, timeoutMs = 5_000): Promise<RespValue> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const name = args.slice(0, 2).join(' ');
        // A reply that arrives after the deadline would shift every later reply onto the wrong
        // caller, so the connection is unusable from here on.
        this.fail(
          new Error(`${name} on ${this.address.host}:${this.address.port} timed out after ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.pending.push({
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.socket.write(encode(args));
    });
  }

  close(): void {
    this.failure ??= new Error('connection closed by caller');
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let offset = 0;
    for (;;) {
      let parsed: Parsed;
      try {
        parsed = parse(this.buffer, offset);
      } catch (error) {
        this.fail(error as Error);
        return;
      }
      if (parsed === null) break;
      offset = parsed.next;
      const waiter = this.pending.shift();
      if (!waiter) continue;
      if (parsed.value instanceof RespReplyError) waiter.reject(parsed.value);
      else waiter.resolve(parsed.value);
    }
    this.buffer = this.buffer.subarray(offset);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.socket.destroy();
    for (const waiter of this.pending.splice(0)) waiter.reject(this.failure);
  }
}

/** Opens a connection, runs one command and closes it. */
export async function redisCommand(
  address: RedisAddress,
  args: ReadonlyArray<string | number | Buffer>,
  timeoutMs = 5_000,
): Promise<RespValue> {
  const connection = await RespConnection.connect(address, timeoutMs);
  try {
    return await connection.command(args, timeoutMs);
  } finally {
    connection.close();
  }
}

export function asText(value: RespValue): string {
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  throw new TypeError(`expected a text reply, got ${JSON.stringify(value)}`);
}

export function asInteger(value: RespValue): number {
  if (typeof value === 'number') return value;
  throw new TypeError(`expected an integer reply, got ${JSON.stringify(value)}`);
}

export function asBuffers(value: RespValue): Buffer[] {
  if (!Array.isArray(value)) throw new TypeError(`expected an array reply, got ${JSON.stringify(value)}`);
  return value.map((item) => (Buffer.isBuffer(item) ? item : Buffer.from(asText(item))));
}

/** Parses `INFO` / `CLUSTER INFO` text into a field map. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

export async function ping(address: RedisAddress, timeoutMs = 1_000): Promise<boolean> {
  try {
    return asText(await redisCommand(address, ['PING'], timeoutMs)) === 'PONG';
  } catch {
    return false;
  }
}
