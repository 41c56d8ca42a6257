// Issue 21: encryptionKey. Records (and direct-store values) are AES-256-GCM at rest, bound to
// their store key; a record no key opens is a fresh session and a warning, never a 5xx; an
// unchanged read writes nothing. On memory and on a real redis-server.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { CountingStore, buildLogged, sessionOf } from './helpers/app.js'
import { useRedis } from './helpers/redis-server.js'
import { sessionKey } from './helpers/keys.js'

const KEY = 'an-encryption-key-that-is-long-enough-0123456789'
const NEXT_KEY = 'the-next-encryption-key-long-enough-9876543210'
const OTHER_KEY = 'somebody-elses-encryption-key-long-enough-000000'

async function appWith (options: QuartSessionOptions): Promise<{ app: FastifyInstance, warnings: () => string[] }> {
  return await buildLogged(options, (app) => {
    app.get('/set', async (request) => { request.session.set('foo', 'secret-value'); return 'ok' })
    app.get('/read', async (request) => request.session.get('foo') ?? 'none')
    app.get('/direct-set', async function () { await this.sessionStore.set('cache:a', { token: 'direct-secret' }, 60); return 'ok' })
    app.get('/direct-get', async function () { return await this.sessionStore.get('cache:a') ?? 'none' })
  })
}

interface Backend {
  name: string
  options: (extra: QuartSessionOptions) => QuartSessionOptions
  raw: { get: (key: string) => Promise<string | undefined>, set: (key: string, text: string) => Promise<void> }
}

function suite (backend: () => Backend): void {
  it('stores the record encrypted: the backend never holds the data', async () => {
    const { app } = await appWith(backend().options({ encryptionKey: KEY }))
    const { id, cookie } = sessionOf(await app.inject('/set'))
    const text = await backend().raw.get(sessionKey(id))
    assert.ok(text !== undefined, 'stored under the derived key')
    assert.match(text, /^qse1\.[A-Za-z0-9_-]{4}\.[A-Za-z0-9_-]+$/)
    assert.ok(!text.includes('secret-value') && !text.includes('foo'), 'no plaintext in the store')
    assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'secret-value')
    await app.close()
  })

  it('refuses a record copied under another session\'s key: a fresh session and a warning, not a 5xx', async () => {
    const { app, warnings } = await appWith(backend().options({ encryptionKey: KEY }))
    const victim = sessionOf(await app.inject('/set'))
    const attacker = sessionOf(await app.inject('/set'))
    await backend().raw.set(sessionKey(attacker.id), (await backend().raw.get(sessionKey(victim.id))) as string)
    const response = await app.inject({ url: '/read', headers: { cookie: attacker.cookie } })
    assert.equal(response.statusCode, 200)
    assert.equal(response.body, 'none', 'the copied record is not opened')
    assert.ok(warnings().some((w) => w.includes('could not be read')), warnings().join('\n'))
    // The victim's own session is untouched.
    assert.equal((await app.inject({ url: '/read', headers: { cookie: victim.cookie } })).body, 'secret-value')
    await app.close()
  })

  it('a record no key opens (another key, or plaintext) is a fresh session, never a 5xx', async () => {
    const { app: before } = await appWith(backend().options({ encryptionKey: OTHER_KEY }))
    const { cookie } = sessionOf(await before.inject('/set'))
    await before.close()
    const { app, warnings } = await appWith(backend().options({ encryptionKey: KEY }))
    const response = await app.inject({ url: '/read', headers: { cookie } })
    assert.equal(response.statusCode, 200)
    assert.equal(response.body, 'none')
    assert.ok(warnings().length > 0)
    await app.close()
    // A plaintext record (written before encryption was turned on) is refused too: accepting it
    // would let anyone who can write the backend plant session data.
    const { app: plain } = await appWith(backend().options({}))
    const old = sessionOf(await plain.inject('/set'))
    await plain.close()
    const { app: encrypted } = await appWith(backend().options({ encryptionKey: KEY }))
    const read = await encrypted.inject({ url: '/read', headers: { cookie: old.cookie } })
    assert.equal(read.statusCode, 200)
    assert.equal(read.body, 'none')
    await encrypted.close()
  })

  it('rotates: records of an older key still open, new writes use the first key', async () => {
    const { app: before } = await appWith(backend().options({ encryptionKey: KEY }))
    const { id, cookie } = sessionOf(await before.inject('/set'))
    const old = await backend().raw.get(sessionKey(id)) as string
    await before.close()
    const { app } = await appWith(backend().options({ encryptionKey: [NEXT_KEY, KEY] }))
    assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'secret-value')
    await app.inject({ url: '/set', headers: { cookie } })
    const fresh = sessionOf(await app.inject('/set'))
    const written = await backend().raw.get(sessionKey(fresh.id)) as string
    assert.notEqual(written.slice(0, 9), old.slice(0, 9), 'another key id: the first key encrypts')
    await app.close()
    // Once the old key is dropped, its records no longer open (they are fresh sessions).
    const { app: later } = await appWith(backend().options({ encryptionKey: NEXT_KEY }))
    assert.equal((await later.inject({ url: '/read', headers: { cookie: `session=${fresh.id}` } })).body, 'secret-value')
    await later.close()
  })

  it('encrypts direct-store values too, bound to their key', async () => {
    const { app } = await appWith(backend().options({ encryptionKey: KEY }))
    await app.inject('/direct-set')
    const text = await backend().raw.get('cache:a') as string
    assert.ok(!text.includes('direct-secret'))
    assert.deepEqual(JSON.parse((await app.inject('/direct-get')).body), { token: 'direct-secret' })
    await backend().raw.set('cache:b', text)
    await assert.rejects(app.sessionStore.get('cache:b'), { code: 'FST_QUART_SESSION_CORRUPT_RECORD' })
    await app.close()
  })
}

describe('encryptionKey', () => {
  describe('options', () => {
    for (const [name, value] of [
      ['a short key', 'too-short'], ['an empty array', []], ['a number', 42], ['a short older key', [KEY, 'short']]
    ] as const) {
      it(`refuses ${name}`, async () => {
        const app = Fastify()
        await app.register(cookie)
        app.register(quartSession, { encryptionKey: value as string })
        await assert.rejects(async () => { await app.ready() }, { code: 'FST_QUART_SESSION_INVALID_OPTION' })
      })
    }
  })

  describe('on memory', () => {
    const store = new CountingStore()
    suite(() => ({
      name: 'memory',
      options: (extra) => ({ store, ...extra }),
      raw: { get: async (key) => await store.peek(key), set: async (key, text) => { await store.inner.set(key, text, 60) } }
    }))

    it('an unchanged read of an encrypted session writes nothing (one read, no set, no compare-and-set)', async () => {
      const { app } = await appWith({ store, encryptionKey: KEY })
      const { cookie } = sessionOf(await app.inject('/set'))
      for (let i = 0; i < 3; i++) {
        store.reset()
        const response = await app.inject({ url: '/read', headers: { cookie } })
        assert.equal(response.body, 'secret-value')
        assert.equal(response.headers['set-cookie'], undefined, 'no cookie for an unchanged session')
        assert.deepEqual(store.calls.map((c) => c.op), ['get'])
      }
      await app.close()
    })
  })

  describe('on real Redis', () => {
    const redisServer = useRedis()
    suite(() => ({
      name: 'redis',
      options: (extra) => ({ type: 'redis', uri: redisServer.server.url, ...extra }),
      raw: {
        get: async (key) => (await redisServer.client.get(key)) ?? undefined,
        set: async (key, text) => { await redisServer.client.set(key, text, { expiration: { type: 'EX', value: 60 } }) }
      }
    }))
  })
})
