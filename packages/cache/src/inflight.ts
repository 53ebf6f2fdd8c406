/**
 * Tells whether an invalidation touched a key while a read or write of it was in flight, so the L1 is never filled
 * with a value that an invalidation received meanwhile has already made stale (the classic race: read the old value
 * from Redis, receive the invalidation for the new one, then store the old one in memory).
 */
export interface Ticket {
  readonly key: string;
  readonly record: { count: number; version: number };
  readonly version: number;
  readonly global: number;
}

export class InflightTracker {
  private global = 0;
  private readonly keys = new Map<string, { count: number; version: number }>();

  begin(key: string): Ticket {
    let record = this.keys.get(key);
    if (record === undefined) {
      record = { count: 0, version: 0 };
      this.keys.set(key, record);
    }
    record.count++;
    return { key, record, version: record.version, global: this.global };
  }

  /** Ends the ticket; true when nothing invalidated its key since it began. */
  end(ticket: Ticket): boolean {
    const clean = ticket.record.version === ticket.version && ticket.global === this.global;
    if (--ticket.record.count === 0) this.keys.delete(ticket.key);
    return clean;
  }

  /** Whether the ticket is still clean, without ending it. */
  clean(ticket: Ticket): boolean {
    return ticket.record.version === ticket.version && ticket.global === this.global;
  }

  invalidateKey(key: string): void {
    const record = this.keys.get(key);
    if (record !== undefined) record.version++;
  }

  invalidateAll(): void {
    this.global++;
  }
}
