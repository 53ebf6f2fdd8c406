/** The fixed-width ASCII header in front of every stored session (see scripts/common.ts, which writes it). */
export const HEADER_BYTES = 60;

export interface Header {
  createdAtMs: number;
  absoluteExpiresAtMs: number;
  idleMs: number;
  lastSeenAtMs: number;
  version: number;
}

function digits(value: Buffer, start: number, length: number): number {
  let result = 0;
  for (let index = start; index < start + length; index++) {
    const digit = (value[index] as number) - 48;
    if (digit < 0 || digit > 9) return Number.NaN;
    result = result * 10 + digit;
  }
  return result;
}

/** The header of a stored session, or null when the value is not one (too short, not digits). */
export function readHeader(value: Buffer): Header | null {
  if (value.length < HEADER_BYTES) return null;
  const header = {
    createdAtMs: digits(value, 0, 13),
    absoluteExpiresAtMs: digits(value, 13, 13),
    idleMs: digits(value, 26, 11),
    lastSeenAtMs: digits(value, 37, 13),
    version: digits(value, 50, 10),
  };
  return Number.isNaN(
    header.createdAtMs + header.absoluteExpiresAtMs + header.idleMs + header.lastSeenAtMs + header.version,
  )
    ? null
    : header;
}
