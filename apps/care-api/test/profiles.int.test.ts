import { randomBytes } from 'node:crypto';
import { mongoTarget } from '@austa/test-env/vitest';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROFILES_COLLECTION } from '../src/routes/patients.js';
import { samples, startTestService, type TestService, TOPOLOGIES } from './support.js';

const mongo = mongoTarget();

function cookieOf(response: LightMyRequestResponse): string {
  return String([response.headers['set-cookie']].flat()[0]).split(';')[0] ?? '';
}

// Where no MongoDB is reachable, global-setup-mongo printed one line saying why and this file is reported skipped;
// the 503 answers of the profile routes without MongoDB are tested in routes.int.test.ts. Never a fake server.
describe.runIf(mongo.available).each(TOPOLOGIES)('patient profiles on MongoDB and %s Redis', (topology) => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(topology);
    await service.app.profileSync?.ready();
  });
  afterAll(async () => {
    await service?.close();
  });

  const inject = (options: InjectOptions): Promise<LightMyRequestResponse> => service.app.inject(options);

  async function login(username: string): Promise<string> {
    const response = await inject({
      method: 'POST',
      url: '/auth/login',
      payload: { username, password: 'demo' },
    });
    expect(response.statusCode).toBe(200);
    return cookieOf(response);
  }

  const cacheHits = async () => {
    const text = (await inject({ method: 'GET', url: '/metrics' })).body;
    return samples(text, 'austa_cache_requests_total')
      .filter((sample) => sample.labels.result === 'hit')
      .reduce((sum, sample) => sum + sample.value, 0);
  };

  it('PUT writes through MongoDB, GET reads through the cache, and a write made in MongoDB is seen on the next read', async () => {
    const patient = `p${randomBytes(4).toString('hex')}`;
    const cookie = await login(patient);
    const missing = await inject({ method: 'GET', url: `/patients/${patient}/profile`, headers: { cookie } });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('E_PROFILE_NOT_FOUND');

    const put = await inject({
      method: 'PUT',
      url: `/patients/${patient}/profile`,
      headers: { cookie },
      payload: { name: 'Ada', birthDate: '1990-04-01', allergies: ['penicillin'] },
    });
    expect(put.statusCode, put.body).toBe(200);
    // The negative entry cached by the 404 above was invalidated by the write.
    const first = await inject({ method: 'GET', url: `/patients/${patient}/profile`, headers: { cookie } });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ patientId: patient, name: 'Ada', allergies: ['penicillin'] });
    const hitsBefore = await cacheHits();
    const second = await inject({ method: 'GET', url: `/patients/${patient}/profile`, headers: { cookie } });
    expect(second.json()).toEqual(first.json());
    expect(await cacheHits()).toBeGreaterThan(hitsBefore);

    // Another writer (a migration, another service) changes MongoDB directly: the change stream invalidates the tag.
    if (!service.mongo.enabled) throw new Error('MongoDB should be enabled here');
    await service.mongo.mongo
      .collection(PROFILES_COLLECTION)
      .updateOne({ _id: patient as never }, { $set: { name: 'Ada L.' } });
    const deadline = Date.now() + 10_000;
    let name = '';
    while (Date.now() < deadline) {
      name = (
        await inject({ method: 'GET', url: `/patients/${patient}/profile`, headers: { cookie } })
      ).json().name;
      if (name === 'Ada L.') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(name).toBe('Ada L.');
  });

  it("patients read only their own profile; clinicians read anyone's", async () => {
    const patient = `p${randomBytes(4).toString('hex')}`;
    const own = await login(patient);
    await inject({
      method: 'PUT',
      url: `/patients/${patient}/profile`,
      headers: { cookie: own },
      payload: { name: 'Bo', birthDate: '1985-12-31' },
    });
    const stranger = await login(`p${randomBytes(4).toString('hex')}`);
    const denied = await inject({
      method: 'GET',
      url: `/patients/${patient}/profile`,
      headers: { cookie: stranger },
    });
    expect(denied.statusCode).toBe(403);
    const clinician = await login(`clinician-${randomBytes(3).toString('hex')}`);
    const allowed = await inject({
      method: 'GET',
      url: `/patients/${patient}/profile`,
      headers: { cookie: clinician },
    });
    expect(allowed.statusCode).toBe(200);
    expect(allowed.json().name).toBe('Bo');
    const bad = await inject({
      method: 'PUT',
      url: `/patients/${patient}/profile`,
      headers: { cookie: own },
      payload: { name: 'Bo', birthDate: '1985-13-45' },
    });
    expect(bad.statusCode).toBe(400);
  });

  it('/health/ready shows MongoDB up and the profile change stream running', async () => {
    const body = (await inject({ method: 'GET', url: '/health/ready' })).json();
    expect(body.checks.mongodb.status).toBe('up');
    expect(body.checks.mongodb.changeStreams).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'care-api-profiles', state: 'running' })]),
    );
  });
});
