/**
 * A session-like value of about 1 KiB once serialized (1,012 bytes in this format, 1,244 as JSON): ids, a device record, dates, roles,
 * preferences and a short list, the shape the AUSTA session service stores per login.
 */
export function sessionValue(): Record<string, unknown> {
  const now = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
  return {
    userId: 'user-7f3a9c21-5b7e-4d0a-9c1e-2f4b6d8a0e13',
    tenantId: 'hospital-sao-lucas',
    roles: ['patient', 'caregiver'],
    createdAt: new Date(now),
    lastSeenAt: new Date(now + 60_000),
    expiresAt: new Date(now + 8 * 3600_000),
    device: {
      userAgent:
        'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36',
      ip: '203.0.113.77',
      deviceId: 'device-2b9f0c7e',
      platform: 'android',
    },
    csrfToken: 'q9Zk2m8vXc4LrT7wYp1bN6sHd3Fg5Je0',
    mfa: { verified: true, method: 'totp', verifiedAt: new Date(now + 5_000) },
    preferences: { locale: 'pt-BR', timeZone: 'America/Sao_Paulo', theme: 'dark', notifications: true },
    consent: { version: 3, acceptedAt: new Date(now - 86_400_000) },
    recentViews: Array.from({ length: 4 }, (_, index) => ({
      resource: `appointment/${1000 + index}`,
      at: new Date(now - index * 1000),
      title: `Consulta clínica geral ${index}`,
    })),
    assistant: { conversationId: 'conv-91c2', turns: 14, lastIntent: 'reschedule_appointment' },
  };
}
