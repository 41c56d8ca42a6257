import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { sign } from '@fastify/cookie'
import './helpers/session-data.js'
import { build, cookieOf, setCookieCount, CountingStore, SECRET, OLD_SECRET } from './helpers/app.js'
import { generateId, isValidId } from '../lib/id.js'
import { sessionKey } from './helpers/keys.js'

function routes (app: Parameters<NonNullable<Parameters<typeof build>[1]>>[0]): void {
  app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
  app.get('/read', async (request) => ({ foo: request.session.get('foo') ?? null, id: request.session.id, isNew: request.session.isNew }))
}

describe('session ids', () => {
  it('are 192 random bits, base64url, and do not repeat', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 5000; i++) {
      const id = generateId()
      assert.match(id, /^[A-Za-z0-9_-]{32}$/)
      seen.add(id)
    }
    assert.equal(seen.size, 5000)
  })

  it('only ids of that shape are valid', () => {
    assert.equal(isValidId(generateId()), true)
    assert.equal(isValidId('short'), false)
    assert.equal(isValidId('a'.repeat(31) + '!'), false)
    assert.equal(isValidId('../../../../etc/passwd/aaaaaaaaaa'), false)
    assert.equal(isValidId('a'.repeat(33)), false)
  })
})

describe('unsigned cookies', () => {
  it('a made-up id of the right shape is never adopted: the client gets a fresh id', async () => {
    const store = new CountingStore()
    const app = await build({ store }, routes)
    const madeUp = 'A'.repeat(32)
    const response = await app.inject({ url: '/set', headers: { cookie: `session=${madeUp}` } })
    assert.equal(response.statusCode, 200)
    const cookie = cookieOf(response)
    assert.ok(cookie)
    assert.notEqual(cookie.value, madeUp)
    assert.equal(await store.peek(sessionKey(madeUp)), undefined, 'nothing stored under the planted id')
    assert.ok(await store.peek(sessionKey(cookie.value)))
    await app.close()
  })

  it('a malformed id is refused before any backend call', async () => {
    const store = new CountingStore()
    const app = await build({ store }, routes)
    for (const bad of ['x', '%00%00', 'A'.repeat(31) + '*', 'A'.repeat(200), '"quoted"']) {
      const response = await app.inject({ url: '/read', headers: { cookie: `session=${bad}` } })
      assert.equal(response.statusCode, 200, bad)
      assert.equal(response.json().isNew, true)
    }
    assert.equal(store.count(), 0)
    await app.close()
  })
})

describe('signed cookies', () => {
  it('the cookie value is the id with a signature that verifies', async () => {
    const store = new CountingStore()
    const app = await build({ store, secret: SECRET }, routes)
    const cookie = cookieOf(await app.inject('/set'))
    assert.ok(cookie)
    const [id] = cookie.value.split('.')
    assert.equal(cookie.value, sign(id, SECRET))
    const read = await app.inject({ url: '/read', headers: { cookie: cookie.pair } })
    assert.equal(read.json().foo, 'bar')
    await app.close()
  })

  it('a tampered signature gives a fresh session, no backend call and no 5xx', async () => {
    const store = new CountingStore()
    const app = await build({ store, secret: SECRET }, routes)
    const cookie = cookieOf(await app.inject('/set'))
    assert.ok(cookie)
    store.reset()
    const tampered = cookie.value.slice(0, -2) + (cookie.value.endsWith('AA') ? 'BB' : 'AA')
    const response = await app.inject({ url: '/read', headers: { cookie: `session=${tampered}` } })
    assert.equal(response.statusCode, 200)
    assert.equal(response.json().foo, null)
    assert.equal(response.json().isNew, true)
    assert.equal(store.count(), 0)
    await app.close()
  })

  it('an id signed with another secret, or not signed at all, is not adopted', async () => {
    const store = new CountingStore()
    const app = await build({ store, secret: SECRET }, routes)
    const cookie = cookieOf(await app.inject('/set'))
    assert.ok(cookie)
    const [id] = cookie.value.split('.')
    for (const value of [id, sign(id, 'someone-elses-secret-of-enough-length-000')]) {
      const response = await app.inject({ url: '/read', headers: { cookie: `session=${value}` } })
      assert.equal(response.json().foo, null)
      assert.notEqual(response.json().id, id)
    }
    await app.close()
  })

  it('a value signed with our own secret but not of our id shape is refused, every time (the shape is checked before a value is remembered)', async () => {
    const store = new CountingStore()
    const app = await build({ store, secret: SECRET }, routes)
    for (const id of ['short', 'A'.repeat(31) + '!', 'B'.repeat(33)]) {
      for (let i = 0; i < 2; i++) {
        const response = await app.inject({ url: '/read', headers: { cookie: `session=${sign(id, SECRET)}` } })
        assert.equal(response.statusCode, 200)
        assert.equal(response.json().foo, null)
        assert.notEqual(response.json().id, id)
      }
    }
    assert.equal(store.count(), 0)
    await app.close()
  })

  it('rotation: the first secret signs, older ones verify, and an old cookie is re-issued with the newest', async () => {
    const store = new CountingStore()
    const before = await build({ store, secret: OLD_SECRET }, routes)
    const old = cookieOf(await before.inject('/set'))
    assert.ok(old)
    await before.close()

    const after = await build({ store, secret: [SECRET, OLD_SECRET] }, routes)
    store.reset()
    const response = await after.inject({ url: '/read', headers: { cookie: old.pair } })
    assert.equal(response.json().foo, 'bar', 'old cookie still verifies')
    const reissued = cookieOf(response)
    assert.ok(reissued, 'cookie re-issued')
    const [id] = old.value.split('.')
    assert.equal(reissued.value, sign(id, SECRET))
    assert.deepEqual(store.calls.map((c) => c.op), ['get', 'cas'], 're-issued through a conditional rewrite of the record, which proves it still exists')
    const next = await after.inject({ url: '/read', headers: { cookie: reissued.pair } })
    assert.equal(next.json().foo, 'bar')
    assert.equal(setCookieCount(next), 0, 'a current cookie is not re-issued')
    // A client that ignores Set-Cookie and keeps the old cookie gets the new one once, not on every request.
    const stubborn = await after.inject({ url: '/read', headers: { cookie: old.pair } })
    assert.equal(stubborn.json().foo, 'bar')
    assert.equal(setCookieCount(stubborn), 0, 'an old cookie is re-issued once per cookie')
    await after.close()
  })
})

describe('reading the cookie', () => {
  it('works with @fastify/cookie registered with hook: false, among other cookies', async () => {
    const { default: Fastify } = await import('fastify')
    const { default: cookiePlugin } = await import('@fastify/cookie')
    const { default: quartSession } = await import('../lib/index.js')
    const store = new CountingStore()
    const app = Fastify()
    await app.register(cookiePlugin, { hook: false })
    await app.register(quartSession, { store, secret: SECRET })
    routes(app)
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    const headers = [
      `${set.pair}`,
      `theme=dark; ${set.pair}; lang=en`,
      `xsession=nope;${set.pair}`,
      `session_old=zzz; session="${set.value}"`
    ]
    for (const cookie of headers) {
      const response = await app.inject({ url: '/read', headers: { cookie } })
      assert.equal(response.json().foo, 'bar', cookie)
    }
    const other = await app.inject({ url: '/read', headers: { cookie: `xsession=${set.value}` } })
    assert.equal(other.json().foo, null, 'a cookie whose name merely ends in the session name is not ours')
    await app.close()
  })
})
