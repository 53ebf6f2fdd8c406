import { timingSafeEqual } from 'node:crypto';

/**
 * Who may log in. care-api has no identity provider of its own: plug yours in behind `UserLookup` (an OIDC token
 * exchange, your user table, an LDAP bind) and pass it to `buildApp({ users })`. The demo lookup below exists so that
 * the reference service runs out of the box; it accepts made-up users and must never face real patients.
 */

export interface UserRecord {
  /** Stable, opaque id: it keys the user's sessions and conversations. 1-64 of A-Z a-z 0-9 _ - */
  id: string;
  /** The patient record this user may read and write, if the user is a patient. */
  patientId?: string;
  /** `clinician` may read and write every patient profile. */
  roles: readonly string[];
  /** True for users of the demo lookup: the API marks their sessions as demo. */
  demo?: boolean;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface UserLookup {
  /** A fixed word for logs and the OpenAPI description. */
  readonly name: string;
  /** The user these credentials identify, or `undefined`. Must take about the same time either way. */
  authenticate(credentials: Credentials): Promise<UserRecord | undefined>;
}

export const DEMO_PASSWORD = 'demo';
/** The `name` of the demo lookup: refused with NODE_ENV=production (see `buildApp`). */
export const DEMO_LOOKUP_NAME = 'demo';
const DEMO_USERNAME = /^[a-z0-9][a-z0-9._-]{0,39}$/;

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  if (left.length !== right.length) return false;
  return timingSafeEqual(left, right);
}

/**
 * DEMO ONLY: any username of 1-40 lower-case letters, digits, `.`, `_` or `-` logs in with the password `demo`.
 * The user is a patient whose record is their username; usernames starting with `clinician` get the clinician role.
 *
 * So whoever knows a patient id logs in as that patient (username `p-123` reads and writes profile `p-123`), and
 * anyone logs in as a clinician: with real patient data behind it that is an open door. `buildApp` therefore refuses
 * this lookup when NODE_ENV=production, and a service running it must only ever hold made-up data.
 */
export function createDemoUserLookup(): UserLookup {
  return {
    name: DEMO_LOOKUP_NAME,
    async authenticate({ username, password }) {
      const passwordOk = sameText(password, DEMO_PASSWORD);
      if (!DEMO_USERNAME.test(username) || !passwordOk) return undefined;
      const clinician = username.startsWith('clinician');
      const id = `demo-${username.replace(/\./g, '_')}`;
      return clinician
        ? { id, roles: ['clinician'], demo: true }
        : { id, patientId: username.replace(/\./g, '_'), roles: ['patient'], demo: true };
    },
  };
}

/** The profile of `patientId` is the user's own, or the user is a clinician. */
export function mayAccessPatient(user: Pick<UserRecord, 'patientId' | 'roles'>, patientId: string): boolean {
  return user.patientId === patientId || user.roles.includes('clinician');
}
