import type { Cache } from '@austa/cache';
import type { FastifyInstance, preHandlerAsyncHookHandler } from 'fastify';
import { authOf } from '../auth/session.js';
import { mayAccessPatient } from '../auth/users.js';
import { HttpError } from '../http-errors.js';
import { type MongoDependency, requireMongo } from '../mongo.js';
import { errorResponses, idParam } from '../schemas.js';

/** The MongoDB collection of patient profiles, `_id` = patient id. */
export const PROFILES_COLLECTION = 'patient_profiles';

export interface ProfileDocument {
  _id: string;
  name: string;
  birthDate: string;
  allergies: string[];
  medications: string[];
  notes?: string;
  updatedAt: Date;
}

export interface ProfileView {
  patientId: string;
  name: string;
  birthDate: string;
  allergies: string[];
  medications: string[];
  notes?: string;
  updatedAt: string;
}

/** The cache key and the tag a profile is invalidated by (the change stream and PUT both use it). */
export const profileKey = (patientId: string) => `patient:${patientId}`;
export const profileTag = (patientId: string) => `patient:${patientId}`;

export function profileView(document: ProfileDocument): ProfileView {
  return {
    patientId: document._id,
    name: document.name,
    birthDate: document.birthDate,
    allergies: document.allergies ?? [],
    medications: document.medications ?? [],
    ...(document.notes !== undefined ? { notes: document.notes } : {}),
    updatedAt: new Date(document.updatedAt).toISOString(),
  };
}

const PROFILE = {
  type: 'object',
  required: ['patientId', 'name', 'birthDate', 'allergies', 'medications', 'updatedAt'],
  properties: {
    patientId: { type: 'string' },
    name: { type: 'string' },
    birthDate: { type: 'string', format: 'date' },
    allergies: { type: 'array', items: { type: 'string' } },
    medications: { type: 'array', items: { type: 'string' } },
    notes: { type: 'string' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;

const shortList = {
  type: 'array',
  maxItems: 50,
  items: { type: 'string', minLength: 1, maxLength: 200 },
} as const;

export interface PatientRoutesOptions {
  mongo: MongoDependency;
  profiles: Cache;
  requireSession: preHandlerAsyncHookHandler;
}

function checkAccess(request: Parameters<typeof authOf>[0], patientId: string): void {
  const auth = authOf(request);
  if (!mayAccessPatient(auth, patientId)) {
    throw new HttpError(403, 'E_FORBIDDEN', 'You may read and write only your own profile.');
  }
}

/**
 * Profiles live in MongoDB and are read through the cache. A write here invalidates the entry at once; writes made
 * elsewhere (another instance, a migration, the shell) reach the cache through the change stream (see `profileSync`).
 */
export async function patientRoutes(app: FastifyInstance, options: PatientRoutesOptions): Promise<void> {
  const { mongo, profiles, requireSession } = options;

  app.get(
    '/patients/:id/profile',
    {
      preHandler: requireSession,
      schema: {
        tags: ['patients'],
        summary: 'A patient profile, from the cache or MongoDB. Patients read their own; clinicians any.',
        params: idParam('The patient id.'),
        response: { 200: PROFILE, ...errorResponses(400, 401, 403, 404, 429, 503) },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      checkAccess(request, id);
      const client = requireMongo(mongo);
      // Missing profiles are cached too (as null, briefly): a burst of reads of a missing id costs one query.
      const view = await profiles.getOrSet<ProfileView | null>(
        profileKey(id),
        async () => {
          const document = await client.executeWithMetrics(PROFILES_COLLECTION, 'findProfile', (collection) =>
            collection.findOne<ProfileDocument>({ _id: id as never }),
          );
          return document === null ? null : profileView(document);
        },
        { tags: [profileTag(id)] },
      );
      if (view === null) throw new HttpError(404, 'E_PROFILE_NOT_FOUND', 'This patient has no profile yet.');
      return view;
    },
  );

  app.put(
    '/patients/:id/profile',
    {
      preHandler: requireSession,
      schema: {
        tags: ['patients'],
        summary: 'Create or replace a patient profile in MongoDB; the cached copy is invalidated.',
        params: idParam('The patient id.'),
        body: {
          type: 'object',
          required: ['name', 'birthDate'],
          additionalProperties: false,
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 200 },
            birthDate: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}$' },
            allergies: shortList,
            medications: shortList,
            notes: { type: 'string', maxLength: 4000 },
          },
        },
        response: { 200: PROFILE, ...errorResponses(400, 401, 403, 413, 415, 429, 503) },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      checkAccess(request, id);
      const client = requireMongo(mongo);
      const body = request.body as Omit<ProfileDocument, '_id' | 'updatedAt'>;
      if (Number.isNaN(Date.parse(`${body.birthDate}T00:00:00Z`))) {
        throw new HttpError(400, 'E_VALIDATION', 'birthDate is not a calendar date (YYYY-MM-DD).');
      }
      const document: ProfileDocument = {
        _id: id,
        name: body.name,
        birthDate: body.birthDate,
        allergies: body.allergies ?? [],
        medications: body.medications ?? [],
        ...(body.notes !== undefined ? { notes: body.notes } : {}),
        updatedAt: new Date(),
      };
      await client.executeWithMetrics(PROFILES_COLLECTION, 'replaceProfile', (collection) =>
        collection.replaceOne({ _id: id as never }, document, { upsert: true }),
      );
      // The writer's next read must see its write even before the change stream's event arrives.
      await profiles.invalidateByTags([profileTag(id)]);
      return profileView(document);
    },
  );
}
