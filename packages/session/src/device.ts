import { isIP } from 'node:net';
import { SessionError } from './errors.js';
import type { Hasher } from './keys.js';
import type { DeviceInfo, ResolvedOptions } from './options.js';

const LIMITS: Record<keyof DeviceInfo, number> = { userAgent: 512, ip: 64, deviceId: 128, platform: 32 };
function hasControlCharacter(value: string): boolean {
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    // C0, DEL, C1, and the line and paragraph separators that JSON logs and JavaScript sources treat as line breaks.
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029) return true;
  }
  return false;
}

function truncateIp(ip: string): string {
  const version = isIP(ip);
  if (version === 4) return `${ip.split('.').slice(0, 3).join('.')}.0`;
  if (version === 6) {
    // Keep the /48 (the site); drop the subnet and interface parts that single out a device.
    const [head = ''] = ip.split('::');
    const groups = head.split(':').filter((group) => group !== '');
    return `${groups.slice(0, 3).join(':')}::`;
  }
  return '';
}

/** Validates device fields and applies the IP policy. Throws E_INVALID_ARGUMENT; nothing is written then. */
export function normalizeDevice(
  device: unknown,
  policy: ResolvedOptions['ipAddress'],
  hash: Hasher,
): DeviceInfo {
  if (device === undefined || device === null) return {};
  if (typeof device !== 'object') throw new SessionError('E_INVALID_ARGUMENT', 'device must be an object.');
  const result: DeviceInfo = {};
  for (const [field, limit] of Object.entries(LIMITS) as Array<[keyof DeviceInfo, number]>) {
    const value = (device as Record<string, unknown>)[field];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length > limit || hasControlCharacter(value)) {
      throw new SessionError(
        'E_INVALID_ARGUMENT',
        `device.${field} must be a string of at most ${limit} characters without control characters.`,
      );
    }
    result[field] = value;
  }
  if (result.ip !== undefined) {
    if (policy === 'omit') delete result.ip;
    else if (policy === 'hash') result.ip = hash('ip\0', result.ip).slice(0, 22);
    else if (policy === 'truncate') result.ip = truncateIp(result.ip);
  }
  return result;
}
