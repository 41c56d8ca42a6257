// Issue 21: renewAfter / renewGrace. An id older than renewAfter is replaced on its next request
// (data kept, cookie replaced); the old id answers for renewGrace through a forward marker that
// names the new store key (never the new id), and then is dead. Two requests renewing at once end
// with one live session; destroy() through either id ends both. On memory and a real redis-server.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { parse, stringify } from 'devalue'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import './helpers/session-data.js'
import type { QuartSessionOptions } from '../lib/index.js'
import { build, cookieOf, CountingStore, sessionOf, sessionRoutes, setCookieCount } from './helpers/app.js'
import { useRedis } from './helpers/redis-server.js'
import { sessionKey } from './helpers/keys.js'
import { RENEWED } from '../lib/events.js'

/** The usual routes, and two that each set a key of their own (concurrent saves of distinct keys must all survive). */
function routes (app: FastifyInstance): void {
  sessionRoutes(app)
  app.get('/mark-a', async (request) => { request.session.set('other', 'a'); return 'marked' })
  app.get('/mark-b', async (request) => { request.session.set('values', 'b'); return 'marked' })
}

const RENEW_AFTER = 3600
const GRACE = 20

interface Raw {
  get: (key: string) => Promise<string | undefined>
  set: (key: string, text: string, ttl: number) => Promise<void>
}

interface Record {
  data: { [key: string]: unknown }
  created?: number
  touched?: number
  born?: number
  forward?: string
}

function suite (backend: () => { options: (extra?: QuartSessionOptions) => QuartSessionOptions, raw: Raw }): void {
  const raw = (): Raw => backend().raw
  const read = async (key: string): Promise<Record | undefined> => {
    const text = await raw().get(key)
    return text === undefined ? undefined : parse(text) as Record
  }
  /** Make a session's id `seconds` older, as if it had been issued that long ago. */
  const age = async (id: string, seconds: number): Promise<void> => {
    const record = await read(sessionKey(id)) as Record
    const then = Math.floor(Date.now() / 1000) - seconds
    await raw().set(sessionKey(id), stringify({ ...record, created: then, born: then }), 600)
  }
  const app = async (extra: QuartSessionOptions = {}): Promise<FastifyInstance> =>
    await build(backend().options({ renewAfter: RENEW_AFTER, renewGrace: GRACE, ...extra }), routes)
  const get = async (server: FastifyInstance, url: string, cookie: string): Promise<LightMyRequestResponse> =>
    await server.inject({ url, headers: { cookie } })

  /** A session with foo=bar whose id is past renewAfter. */
  async function oldSession (server: FastifyInstance): Promise<{ id: string, cookie: string }> {
    const session = sessionOf(await server.inject('/set'))
    await age(session.id, RENEW_AFTER + 10)
    return session
  }

  it('a young id is left alone', async () => {
    const server = await app()
    const { cookie } = sessionOf(await server.inject('/set'))
    const response = await get(server, '/read', cookie)
    assert.equal(response.body, 'bar')
    assert.equal(setCookieCount(response), 0)
    await server.close()
  })

  it('an id past renewAfter gets a new id on its next request: data kept, cookie replaced, a marker naming the new store key', async () => {
    const server = await app()
    const old = await oldSession(server)
    const events: unknown[] = []
    const listener = (message: unknown): void => { events.push(message) }
    subscribe(RENEWED, listener)
    const response = await get(server, '/read', old.cookie)
    unsubscribe(RENEWED, listener)
    assert.equal(response.body, 'bar')
    const fresh = sessionOf(response)
    assert.notEqual(fresh.id, old.id)
    const renewed = await read(sessionKey(fresh.id)) as Record
    assert.deepEqual(renewed.data, { foo: 'bar' })
    assert.ok(renewed.born !== undefined && renewed.born > (renewed.created as number), 'the id time is new, the session keeps its creation time')
    const markerText = await raw().get(sessionKey(old.id)) as string
    assert.ok(!markerText.includes(fresh.id), 'the marker never holds the new id')
    assert.equal((parse(markerText) as Record).forward, sessionKey(fresh.id))
    assert.equal(events.length, 1)
    assert.ok(!JSON.stringify(events).includes(fresh.id) && !JSON.stringify(events).includes(old.id), 'the event carries hashes only')
    // The new id is a session like any other, and young: no second renewal.
    const next = await get(server, '/read', fresh.cookie)
    assert.equal(next.body, 'bar')
    assert.equal(setCookieCount(next), 0)
    await server.close()
  })

  it('the old id answers during renewGrace, writes through the marker, and never sends a cookie', async () => {
    const server = await app()
    const old = await oldSession(server)
    const fresh = sessionOf(await get(server, '/read', old.cookie))
    const during = await get(server, '/counter', old.cookie)
    assert.equal(during.body, '1')
    assert.equal(setCookieCount(during), 0, 'no cookie for the old id')
    assert.equal((await get(server, '/counter', fresh.cookie)).body, '2', 'the write went to the renewed session')
    assert.equal((await get(server, '/read', old.cookie)).body, 'bar')
    await server.close()
  })

  it('after renewGrace the old id is dead', async () => {
    const server = await app()
    const old = await oldSession(server)
    const fresh = sessionOf(await get(server, '/read', old.cookie))
    // The marker as if written longer ago than the grace (whatever the store's TTL says).
    const marker = await read(sessionKey(old.id)) as Record
    await raw().set(sessionKey(old.id), stringify({ ...marker, touched: (marker.touched as number) - GRACE - 1 }), 600)
    const response = await get(server, '/read', old.cookie)
    assert.equal(response.body, 'none')
    assert.equal((await get(server, '/read', fresh.cookie)).body, 'bar')
    await server.close()
  })

  it('two requests renewing at once end with one live session, and both writes kept', async () => {
    const server = await app()
    const old = await oldSession(server)
    const responses = await Promise.all([get(server, '/mark-a', old.cookie), get(server, '/mark-b', old.cookie)])
    assert.deepEqual(responses.map((r) => r.statusCode), [200, 200])
    const cookies = responses.map((r) => cookieOf(r)).filter((c) => c !== undefined)
    assert.equal(cookies.length, 1, 'one new id went out')
    const newId = cookies[0].value
    assert.equal((await read(sessionKey(old.id)))?.forward, sessionKey(newId), 'the marker names the one renewed session')
    assert.deepEqual((await read(sessionKey(newId)))?.data, { foo: 'bar', other: 'a', values: 'b' }, 'no write lost')
    await server.close()
  })

  it('destroy() through the old id during the grace ends both ids', async () => {
    const server = await app()
    const old = await oldSession(server)
    const fresh = sessionOf(await get(server, '/read', old.cookie))
    assert.equal((await get(server, '/logout', old.cookie)).statusCode, 200)
    assert.equal((await get(server, '/read', fresh.cookie)).body, 'none')
    assert.equal((await get(server, '/read', old.cookie)).body, 'none')
    assert.equal(await raw().get(sessionKey(fresh.id)), undefined)
    assert.equal(await raw().get(sessionKey(old.id)), undefined)
    await server.close()
  })

  it('destroy() through the new id ends the old one too', async () => {
    const server = await app()
    const old = await oldSession(server)
    const fresh = sessionOf(await get(server, '/read', old.cookie))
    await get(server, '/logout', fresh.cookie)
    assert.equal((await get(server, '/read', old.cookie)).body, 'none')
    // And a write through the old id never brings it back.
    await get(server, '/counter', old.cookie)
    assert.equal((await get(server, '/read', fresh.cookie)).body, 'none')
    assert.equal(await raw().get(sessionKey(fresh.id)), undefined)
    await server.close()
  })

  it('destroy() racing a renewal leaves no live id', async () => {
    const server = await app()
    const old = await oldSession(server)
    const [renewing] = await Promise.all([get(server, '/read', old.cookie), get(server, '/logout', old.cookie)])
    const renewed = cookieOf(renewing)
    if (renewed !== undefined && renewed.value !== '') {
      assert.equal((await get(server, '/read', renewed.pair)).body, 'none', 'the renewed id died with the destroy')
    }
    assert.equal((await get(server, '/read', old.cookie)).body, 'none')
    await server.close()
  })

  it('works with encryptionKey (the marker is encrypted and bound to the old key)', async () => {
    const server = await app({ encryptionKey: 'an-encryption-key-that-is-long-enough-0123456789', renewAfter: 2, renewGrace: 1 })
    const old = sessionOf(await server.inject('/set'))
    await new Promise((resolve) => setTimeout(resolve, 2100))
    const response = await get(server, '/read', old.cookie)
    assert.equal(response.body, 'bar')
    const fresh = sessionOf(response)
    assert.match(await raw().get(sessionKey(old.id)) as string, /^qse1\./)
    assert.equal((await get(server, '/read', old.cookie)).body, 'bar')
    assert.equal((await get(server, '/read', fresh.cookie)).body, 'bar')
    await server.close()
  })
}

describe('renewAfter and renewGrace', () => {
  describe('options', () => {
    for (const [name, options] of [
      ['renewGrace without renewAfter', { renewGrace: 10 }],
      ['renewGrace not shorter than renewAfter', { renewAfter: 10, renewGrace: 10 }],
      ['a negative renewAfter', { renewAfter: -1 }],
      ['a fractional renewGrace', { renewAfter: 100, renewGrace: 1.5 }]
    ] as const) {
      it(`refuses ${name}`, async () => {
        await assert.rejects(async () => { await build(options as QuartSessionOptions) }, { code: 'FST_QUART_SESSION_INVALID_OPTION' })
      })
    }
  })

  describe('on memory', () => {
    const store = new CountingStore()
    suite(() => ({
      options: (extra = {}) => ({ store, ...extra }),
      raw: { get: async (key) => await store.peek(key), set: async (key, text, ttl) => { await store.inner.set(key, text, ttl) } }
    }))
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

    it('a save that loaded the record before another process renewed it lands on the renewed session', async () => {
      let release: () => void = () => {}
      const gate = new Promise<void>((resolve) => { release = resolve })
      let loaded: () => void = () => {}
      const entered = new Promise<void>((resolve) => { loaded = resolve })
      // Two processes on one Redis: the slow one loaded the record before the other renewed its id.
      const slow = await build({ type: 'redis', uri: redisServer.server.url, renewAfter: 10 * RENEW_AFTER, renewGrace: GRACE }, (app) => {
        sessionRoutes(app)
        app.get('/slow', async (request) => { loaded(); await gate; request.session.set('values', 'slow'); return 'slow' })
      })
      const renewing = await build({ type: 'redis', uri: redisServer.server.url, renewAfter: RENEW_AFTER, renewGrace: GRACE }, sessionRoutes)
      const old = sessionOf(await renewing.inject('/set'))
      const record = parse(await redisServer.client.get(sessionKey(old.id)) as string) as Record
      const then = Math.floor(Date.now() / 1000) - RENEW_AFTER - 10
      await redisServer.client.set(sessionKey(old.id), stringify({ ...record, created: then, born: then }), { expiration: { type: 'EX', value: 600 } })
      const pending = slow.inject({ url: '/slow', headers: { cookie: old.cookie } })
      await entered
      const fresh = sessionOf(await renewing.inject({ url: '/read', headers: { cookie: old.cookie } }))
      release()
      const response = await pending
      assert.equal(response.statusCode, 200)
      assert.equal(setCookieCount(response), 0, 'the old id is not sent back')
      const renewed = parse(await redisServer.client.get(sessionKey(fresh.id)) as string) as Record
      assert.deepEqual(renewed.data, { foo: 'bar', values: 'slow' })
      assert.ok((renewed.born as number) > then, 'still the renewed id\'s time: no second renewal')
      await slow.close()
      await renewing.close()
    })

    it('the marker lives renewGrace in Redis (its TTL), the renewed record its full lifetime', async () => {
      const app = await build({ type: 'redis', uri: redisServer.server.url, renewAfter: RENEW_AFTER, renewGrace: GRACE, maxAge: 900 }, sessionRoutes)
      const old = sessionOf(await app.inject('/set'))
      const record = parse(await redisServer.client.get(sessionKey(old.id)) as string) as Record
      const then = Math.floor(Date.now() / 1000) - RENEW_AFTER - 10
      await redisServer.client.set(sessionKey(old.id), stringify({ ...record, created: then, born: then, touched: Math.floor(Date.now() / 1000) }), { expiration: { type: 'EX', value: 600 } })
      const fresh = sessionOf(await app.inject({ url: '/read', headers: { cookie: old.cookie } }))
      const markerTtl = await redisServer.client.ttl(sessionKey(old.id))
      assert.ok(markerTtl > 0 && markerTtl <= GRACE, `marker TTL ${markerTtl}`)
      assert.ok(await redisServer.client.ttl(sessionKey(fresh.id)) > GRACE)
      await app.close()
    })
  })
})
