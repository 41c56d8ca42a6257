// Issue 21: records that versions before derived keys stored under keyPrefix + the id itself are
// read once and moved to the derived key (legacyKeys, default true in 0.x). The fallback never
// takes input that already looks like a derived key (the trap of migrations like
// activerecord-session_store's after CVE-2019-25025: a fallback that looks the raw cookie value up
// under the old scheme lets a hash read from the backend be sent back as a cookie). On memory and
// on a real redis-server.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { stringify } from 'devalue'
import type { FastifyInstance } from 'fastify'
import './helpers/session-data.js'
import type { QuartSessionOptions } from '../lib/index.js'
import { build, CountingStore, sessionOf, sessionRoutes } from './helpers/app.js'
import { useRedis } from './helpers/redis-server.js'
import { sessionKey } from './helpers/keys.js'
import { generateId } from '../lib/id.js'
import { StoreKeys } from '../lib/keys.js'

const KEY = 'an-encryption-key-that-is-long-enough-0123456789'

interface Raw {
  get: (key: string) => Promise<string | undefined>
  set: (key: string, text: string, ttl: number) => Promise<void>
}

/** A record as an earlier version wrote it, under session:<id>. */
function legacyRecord (foo: string, touched = Math.floor(Date.now() / 1000)): string {
  return stringify({ data: { foo }, created: touched, touched })
}

async function appWith (options: QuartSessionOptions): Promise<FastifyInstance> {
  return await build(options, sessionRoutes)
}

function suite (backend: () => { options: (extra?: QuartSessionOptions) => QuartSessionOptions, raw: Raw }): void {
  it('reads a record stored under the plain id and moves it to the derived key', async () => {
    const app = await appWith(backend().options())
    const id = generateId()
    await backend().raw.set(`session:${id}`, legacyRecord('from-0.0'), 600)
    const response = await app.inject({ url: '/read', headers: { cookie: `session=${id}` } })
    assert.equal(response.body, 'from-0.0')
    assert.equal(await backend().raw.get(`session:${id}`), undefined, 'the plain-id key is gone')
    assert.ok(await backend().raw.get(sessionKey(id)) !== undefined, 'the record is under the derived key')
    // And it goes on as a session: writes land under the derived key.
    await app.inject({ url: '/counter', headers: { cookie: `session=${id}` } })
    assert.equal((await app.inject({ url: '/read', headers: { cookie: `session=${id}` } })).body, 'from-0.0')
    await app.close()
  })

  it('moves it once under parallel first requests: every one sees the session, one record remains', async () => {
    const app = await appWith(backend().options())
    const id = generateId()
    await backend().raw.set(`session:${id}`, legacyRecord('parallel'), 600)
    const responses = await Promise.all(Array.from({ length: 6 }, () => app.inject({ url: '/read', headers: { cookie: `session=${id}` } })))
    assert.deepEqual(responses.map((r) => r.body), Array(6).fill('parallel'))
    assert.equal(await backend().raw.get(`session:${id}`), undefined)
    await app.close()
  })

  it('encrypts a moved record with encryptionKey', async () => {
    const app = await appWith(backend().options({ encryptionKey: KEY }))
    const id = generateId()
    await backend().raw.set(`session:${id}`, legacyRecord('to-encrypt'), 600)
    assert.equal((await app.inject({ url: '/read', headers: { cookie: `session=${id}` } })).body, 'to-encrypt')
    assert.match(await backend().raw.get(sessionKey(id)) as string, /^qse1\./)
    await app.close()
  })

  it('drops a legacy record past its lifetime instead of moving it', async () => {
    const app = await appWith(backend().options({ maxAge: 60 }))
    const id = generateId()
    await backend().raw.set(`session:${id}`, legacyRecord('stale', Math.floor(Date.now() / 1000) - 120), 600)
    assert.equal((await app.inject({ url: '/read', headers: { cookie: `session=${id}` } })).body, 'none')
    assert.equal(await backend().raw.get(sessionKey(id)), undefined)
    await app.close()
  })

  it('legacyKeys: false leaves plain-id records alone', async () => {
    const app = await appWith(backend().options({ legacyKeys: false }))
    const id = generateId()
    await backend().raw.set(`session:${id}`, legacyRecord('left'), 600)
    assert.equal((await app.inject({ url: '/read', headers: { cookie: `session=${id}` } })).body, 'none')
    assert.ok(await backend().raw.get(`session:${id}`) !== undefined)
    await app.close()
  })

  it('regression (CVE-2019-25025\'s trap): a derived key\'s hash sent as the cookie opens nothing', async () => {
    const app = await appWith(backend().options())
    const { id } = sessionOf(await app.inject('/set'))
    const hash = sessionKey(id).slice('session:'.length)
    // Someone who read the backend knows the hash; as a cookie it must not find the record.
    const response = await app.inject({ url: '/read', headers: { cookie: `session=${hash}` } })
    assert.equal(response.body, 'none')
    await app.close()
  })
}

describe('legacy keys', () => {
  it('legacyOf refuses input that already has the shape of a derived key', () => {
    const keys = new StoreKeys('session:')
    const id = generateId()
    assert.equal(keys.legacyOf(id), `session:${id}`)
    const hash = keys.of(id).slice('session:'.length)
    assert.equal(keys.legacyOf(hash), undefined)
    assert.equal(keys.legacyOf(hash.slice(0, 32)), 'session:' + hash.slice(0, 32), 'a 32-character id shape is an id')
    assert.equal(keys.legacyOf('../etc/passwd'), undefined)
  })

  describe('on memory', () => {
    const store = new CountingStore()
    suite(() => ({
      options: (extra = {}) => ({ store, ...extra }),
      raw: { get: async (key) => await store.peek(key), set: async (key, text, ttl) => { await store.inner.set(key, text, ttl) } }
    }))

    it('the hash as a cookie never reaches the backend', async () => {
      const app = await appWith({ store })
      const { id } = sessionOf(await app.inject('/set'))
      const hash = sessionKey(id).slice('session:'.length)
      store.reset()
      await app.inject({ url: '/read', headers: { cookie: `session=${hash}` } })
      assert.deepEqual(store.calls, [])
      await app.close()
    })
  })

  describe('on real Redis', () => {
    const redisServer = useRedis()
    suite(() => ({
      options: (extra = {}) => ({ type: 'redis', uri: redisServer.server.url, ...extra }),
      raw: {
        get: async (key) => (await redisServer.client.get(key)) ?? undefined,
        set: async (key, text, ttl) => { await redisServer.client.set(key, text, { expiration: { type: 'EX', value: ttl } }) }
      }
    }))
  })
})
