// Regression tests for the holes an adversarial review found in the core (issue 16): each test
// is named after the attack it pins. Store-specific ones live with their store's tests.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { sign } from '@fastify/cookie'
import './helpers/session-data.js'
import type { SessionStore } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { build, cookieOf, CountingStore, OLD_SECRET, SECRET, sessionRoutes, setCookieCount } from './helpers/app.js'
import { sessionKey } from './helpers/keys.js'

/** A store that keeps values forever, ignoring TTLs, as some custom stores do. */
class ForeverStore implements SessionStore {
  readonly map = new Map<string, string>()
  async get (key: string): Promise<string | undefined> { return this.map.get(key) }
  async set (key: string, value: string): Promise<void> { this.map.set(key, value) }
  async delete (key: string): Promise<void> { this.map.delete(key) }
}

describe('a session is unusable once its lifetime has passed, whatever the store says', () => {
  for (const rolling of [false, true]) {
    it(`a store without TTLs still holds it (rolling: ${String(rolling)}): fresh session, and a POST runs as nobody`, async () => {
      const store = new ForeverStore()
      const app = await build({ store, maxAge: 1, rolling }, (app) => {
        sessionRoutes(app)
        app.post('/whoami', async (request) => request.session.get('foo') ?? 'nobody')
      })
      const set = cookieOf(await app.inject('/set'))
      assert.ok(set)
      await sleep(2100)
      assert.ok(store.map.has(sessionKey(set.value)), 'the store still hands the record back')
      assert.equal((await app.inject({ url: '/read', headers: { cookie: set.pair } })).body, 'none')
      assert.equal((await app.inject({ method: 'POST', url: '/whoami', headers: { cookie: set.pair } })).body, 'nobody')
      await app.close()
    })
  }
})

describe('the login race: a request never expires or re-sends a cookie it did not issue', () => {
  it('a slow read-only request with the pre-login cookie, answered after the login, sends no Set-Cookie', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    const app = await build({ secret: SECRET }, (app) => {
      app.get('/visit', async (request) => { request.session.set('cart', { items: ['x'] }); return 'ok' })
      app.get('/slow', async (request) => { await gate; return request.session.get('cart')?.items.length ?? 0 })
      app.post('/login', async (request) => { await request.session.regenerate(['cart']); request.session.set('user', { id: 'u', name: 'U' }); return 'in' })
    })
    const before = cookieOf(await app.inject('/visit'))
    assert.ok(before)
    const slow = app.inject({ url: '/slow', headers: { cookie: before.pair } })
    await sleep(20)
    const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: before.pair } })
    const after = cookieOf(login)
    assert.ok(after && after.value !== before.value, 'the login sets a new cookie')
    release()
    const late = await slow
    assert.equal(late.statusCode, 200)
    assert.equal(setCookieCount(late), 0, 'the late response leaves the browser\'s new login cookie alone')
    await app.close()
  })

  it('a request that loaded the session before a regenerate and writes finds it gone: its write dies, no cookie either way', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => { release = resolve })
    const app = await build({ secret: SECRET }, (app) => {
      app.get('/visit', async (request) => { request.session.set('foo', 'one'); return 'ok' })
      app.get('/slow-write', async (request) => { await gate; request.session.set('foo', 'late'); return 'ok' })
      app.post('/login', async (request) => { await request.session.regenerate(); request.session.set('user', { id: 'u', name: 'U' }); return 'in' })
      app.get('/foo', async (request) => request.session.get('foo') ?? 'none')
    })
    const before = cookieOf(await app.inject('/visit'))
    assert.ok(before)
    const slow = app.inject({ url: '/slow-write', headers: { cookie: before.pair } })
    await sleep(20)
    const after = cookieOf(await app.inject({ method: 'POST', url: '/login', headers: { cookie: before.pair } }))
    assert.ok(after)
    release()
    const late = await slow
    assert.equal(setCookieCount(late), 0)
    assert.equal((await app.inject({ url: '/foo', headers: { cookie: before.pair } })).body, 'none', 'the old id stays dead')
    assert.equal((await app.inject({ url: '/foo', headers: { cookie: after.pair } })).body, 'none', 'the late write did not reach the new session')
    await app.close()
  })

  it('an old-secret cookie of a session destroyed meanwhile is not re-issued', async () => {
    const store = new MemoryStore()
    const before = await build({ store, secret: OLD_SECRET }, sessionRoutes)
    const old = cookieOf(await before.inject('/set'))
    assert.ok(old)
    await before.close()
    const id = old.value.split('.')[0]
    const after = await build({ store, secret: [SECRET, OLD_SECRET] }, sessionRoutes)
    await store.delete(sessionKey(id))
    const response = await after.inject({ url: '/read', headers: { cookie: old.pair } })
    assert.equal(response.body, 'none')
    assert.equal(setCookieCount(response), 0, `no cookie for a destroyed id (would be ${sign(id, SECRET)})`)
    await after.close()
  })
})

describe('small holes', () => {
  it("session['__proto__'][k] = v cannot reach Session.prototype", async () => {
    const app = await build({}, (app) => {
      app.get('/gadget', async (request) => {
        const proto = (request.session as unknown as Record<string, unknown>).__proto__
        if (proto !== undefined && proto !== null) (proto as Record<string, unknown>).polluted = 'yes'
        return String(proto)
      })
      app.get('/probe', async (request) => String((request.session as unknown as Record<string, unknown>).polluted))
    })
    assert.equal((await app.inject('/gadget')).body, 'undefined')
    assert.equal((await app.inject('/probe')).body, 'undefined')
    await app.close()
  })

  it('sessionStore.get of a foreign value fails with a code and without the value in the message', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/cache', async function () { return await this.sessionStore.get('api-key') })
    })
    await store.inner.set('api-key', 'sk_live_51secretvalue', 0)
    const response = await app.inject('/cache')
    assert.equal(response.json().code, 'FST_QUART_SESSION_CORRUPT_RECORD')
    assert.ok(!response.body.includes('sk_live'), response.body)
    await app.close()
  })

  for (const verb of ['destroy', 'regenerate', 'save'] as const) {
    it(`an un-awaited ${verb}() with a failing backend fails the request, not the process`, async () => {
      const store = new CountingStore()
      const app = await build({ store }, (app) => {
        sessionRoutes(app)
        app.get('/forget', async (request) => {
          request.session.set('foo', 'changed')
          void request.session[verb]()
          return 'ok'
        })
      })
      const set = cookieOf(await app.inject('/set'))
      assert.ok(set)
      store.failing = new Set(['delete', 'cas', 'set'])
      const response = await app.inject({ url: '/forget', headers: { cookie: set.pair } })
      assert.equal(response.statusCode, 503, response.body)
      await sleep(10)
      store.failing = new Set()
      assert.equal((await app.inject({ url: '/read', headers: { cookie: set.pair } })).statusCode, 200, 'the app still serves')
      await app.close()
    })
  }

  it('a callback that throws fails the request, not the process', async () => {
    const app = await build({}, (app) => {
      sessionRoutes(app)
      app.get('/cb', (request, reply) => {
        request.session.save(() => { throw new Error('app bug in a callback') })
        setTimeout(() => { void reply.send('ok') }, 20)
      })
    })
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    const response = await app.inject({ url: '/cb', headers: { cookie: set.pair } })
    assert.equal(response.statusCode, 500)
    assert.equal((await app.inject({ url: '/read', headers: { cookie: set.pair } })).body, 'bar')
    await app.close()
  })

  it('an un-awaited save() followed by a change: the change is stored too', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      sessionRoutes(app)
      app.get('/two', async (request) => {
        request.session.set('foo', 'first')
        void request.session.save()
        request.session.set('counter', 7)
        ;(request.session.get('user') as { name: string } | undefined)?.name
        return 'ok'
      })
      app.get('/both', async (request) => `${String(request.session.get('foo'))}/${String(request.session.get('counter'))}`)
    })
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    assert.equal((await app.inject({ url: '/two', headers: { cookie: set.pair } })).statusCode, 200)
    assert.equal((await app.inject({ url: '/both', headers: { cookie: set.pair } })).body, 'first/7')
    await app.close()
  })
})
