import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'devalue'
import './helpers/session-data.js'
import { build, cookieOf, setCookieCount, sessionRoutes, CountingStore } from './helpers/app.js'
import { sessionKey } from './helpers/keys.js'

const MAX_AGE = 31 * 24 * 60 * 60

async function appWith (store: CountingStore, options = {}) {
  return await build({ store, ...options }, (app) => {
    sessionRoutes(app)
    app.get('/cart/init', async (request) => { request.session.set('cart', { items: [] }); return 'ok' })
    app.get('/cart/add/:item', async (request) => {
      request.session.get('cart')?.items.push((request.params as { item: string }).item)
      return request.session.get('cart')
    })
    app.get('/cart', async (request) => request.session.get('cart') ?? null)
    app.get('/same', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
    app.get('/empty', async (request) => { request.session.delete('foo'); request.session.delete('cart'); return 'ok' })
    app.get('/clear', async (request) => { request.session.clear(); return 'ok' })
    app.get('/set-then-delete', async (request) => {
      request.session.set('foo', 'x')
      request.session.delete('foo')
      return 'ok'
    })
    app.get('/info', async (request) => ({
      id: request.session.id, isNew: request.session.isNew, has: request.session.has('foo'), permanent: request.session.permanent
    }))
    app.get('/login', async (request) => {
      const before = request.session.id
      await request.session.regenerate((request.query as { keep?: string }).keep?.split(','))
      request.session.set('user', { id: 'u1', name: 'Ada' })
      return { before, after: request.session.id }
    })
    app.get('/browser-session', async (request) => { request.session.permanent = false; request.session.set('foo', 'b'); return 'ok' })
    app.get('/redirect', async (request, reply) => {
      request.session.set('foo', 'after-redirect')
      return await reply.redirect('/read')
    })
    app.get('/save-then-fail', async (request) => {
      request.session.set('foo', 'saved-early')
      await request.session.save()
      throw new Error('handler failed after save')
    })
    app.get('/reload', async (request) => {
      request.session.set('foo', 'unsaved')
      await request.session.reload()
      return request.session.get('foo') ?? 'none'
    })
  })
}

async function login (app: Awaited<ReturnType<typeof appWith>>, url = '/set') {
  const response = await app.inject(url)
  const cookie = cookieOf(response)
  assert.ok(cookie, `expected ${url} to set the session cookie`)
  return cookie
}

describe('session lifecycle', () => {
  it('a new session that stays empty is never stored and gets no cookie', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const response = await app.inject('/nothing')
    assert.equal(response.statusCode, 200)
    assert.equal(setCookieCount(response), 0)
    assert.equal(store.count(), 0, 'no backend call without a cookie')
    const info = await app.inject('/info')
    assert.equal(info.json().isNew, true)
    assert.equal(setCookieCount(info), 0)
    await app.close()
  })

  it('a new session holding data is written once and gets a cookie with the default attributes', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const before = Date.now()
    const response = await app.inject('/set')
    const cookie = cookieOf(response)
    assert.ok(cookie)
    assert.equal(store.count('cas'), 1)
    assert.equal(store.count('get'), 0)
    assert.match(cookie.value, /^[A-Za-z0-9_-]{32}$/)
    assert.equal(cookie.attributes.path, '/')
    assert.equal(cookie.attributes.httponly, true)
    assert.equal(cookie.attributes.samesite, 'Lax')
    assert.equal(cookie.attributes.secure, undefined, 'no Secure over plain http with secure: auto')
    assert.equal(cookie.attributes['max-age'], String(MAX_AGE))
    const expires = Date.parse(cookie.attributes.expires as string)
    assert.ok(Math.abs(expires - (before + MAX_AGE * 1000)) < 5000, 'Expires is maxAge from now')
    // The backend holds the record under keyPrefix + id with TTL = maxAge.
    const call = store.calls.find((c) => c.op === 'cas')
    assert.equal(call?.key, sessionKey(cookie.value))
    assert.equal(call?.ttl, MAX_AGE)
    const record = parse((await store.peek(sessionKey(cookie.value))) as string)
    assert.deepEqual({ ...record.data }, { foo: 'bar' })
    await app.close()
  })

  it('an unchanged read costs one backend read, no write and no Set-Cookie', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app)
    store.reset()
    const response = await app.inject({ url: '/read', headers: { cookie: cookie.pair } })
    assert.equal(response.body, 'bar')
    assert.equal(setCookieCount(response), 0)
    assert.deepEqual(store.calls.map((c) => c.op), ['get'])
    await app.close()
  })

  it('a change to an existing session is written; the cookie the browser holds is not re-sent until its expiry is due', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const first = cookieOf(await app.inject('/counter'))
    assert.ok(first)
    store.reset()
    const second = await app.inject({ url: '/counter', headers: { cookie: first.pair } })
    assert.equal(second.body, '2')
    assert.deepEqual(store.calls.map((c) => c.op), ['get', 'cas'])
    assert.equal(setCookieCount(second), 0, 'the same cookie, far from expiring: no Set-Cookie')
    const third = await app.inject({ url: '/counter', headers: { cookie: first.pair } })
    assert.equal(third.body, '3')
    await app.close()
  })

  it('a nested mutation through get() is detected and persisted', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app, '/cart/init')
    await app.inject({ url: '/cart/add/apple', headers: { cookie: cookie.pair } })
    await app.inject({ url: '/cart/add/pear', headers: { cookie: cookie.pair } })
    const cart = await app.inject({ url: '/cart', headers: { cookie: cookie.pair } })
    assert.deepEqual(cart.json(), { items: ['apple', 'pear'] })
    await app.close()
  })

  it('reading an object without changing it costs no write', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app, '/cart/init')
    store.reset()
    const response = await app.inject({ url: '/cart', headers: { cookie: cookie.pair } })
    assert.deepEqual(response.json(), { items: [] })
    assert.equal(store.count('cas'), 0)
    assert.equal(setCookieCount(response), 0)
    await app.close()
  })

  it('setting a value to what it already is costs no write', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app)
    store.reset()
    const response = await app.inject({ url: '/same', headers: { cookie: cookie.pair } })
    assert.equal(store.count('cas'), 0)
    assert.equal(setCookieCount(response), 0)
    await app.close()
  })

  it('a value set and deleted in the same request leaves nothing behind', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const response = await app.inject('/set-then-delete')
    assert.equal(store.count(), 0)
    assert.equal(setCookieCount(response), 0)
    await app.close()
  })

  it('a session emptied by the handler deletes its record and expires its cookie', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app)
    store.reset()
    const response = await app.inject({ url: '/empty', headers: { cookie: cookie.pair } })
    assert.deepEqual(store.calls.map((c) => c.op), ['get', 'cas'])
    assert.equal(await store.peek(sessionKey(cookie.value)), undefined)
    const cleared = cookieOf(response)
    assert.ok(cleared)
    assert.equal(cleared.value, '')
    assert.equal(cleared.attributes['max-age'], '0')
    assert.equal(cleared.attributes.path, '/')
    // clear() does the same
    const again = await login(app)
    const cleared2 = cookieOf(await app.inject({ url: '/clear', headers: { cookie: again.pair } }))
    assert.equal(cleared2?.attributes['max-age'], '0')
    assert.equal(await store.peek(sessionKey(again.value)), undefined)
    await app.close()
  })

  it('isNew, id, has and permanent describe the session', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const fresh = (await app.inject('/info')).json()
    assert.equal(fresh.isNew, true)
    assert.equal(fresh.has, false)
    assert.equal(fresh.permanent, true)
    const cookie = await login(app)
    const known = (await app.inject({ url: '/info', headers: { cookie: cookie.pair } })).json()
    assert.equal(known.isNew, false)
    assert.equal(known.has, true)
    assert.equal(known.id, cookie.value)
    await app.close()
  })

  it('regenerate() drops the data under a new id and removes the old record', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app)
    const response = await app.inject({ url: '/login', headers: { cookie: cookie.pair } })
    const { before, after } = response.json()
    assert.equal(before, cookie.value)
    assert.notEqual(after, before)
    const next = cookieOf(response)
    assert.equal(next?.value, after)
    assert.equal(await store.peek(sessionKey(before)), undefined, 'old record removed')
    const read = await app.inject({ url: '/read', headers: { cookie: next?.pair } })
    assert.equal(read.body, 'none', 'data set before regenerate() is gone')
    await app.close()
  })

  it('regenerate(keepKeys) keeps the listed keys under a new id and removes the old record', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app)
    const response = await app.inject({ url: '/login?keep=foo', headers: { cookie: cookie.pair } })
    const { before, after } = response.json()
    assert.equal(before, cookie.value)
    assert.notEqual(after, before)
    const next = cookieOf(response)
    assert.equal(next?.value, after)
    assert.equal(await store.peek(sessionKey(before)), undefined, 'old record removed')
    const read = await app.inject({ url: '/read', headers: { cookie: next?.pair } })
    assert.equal(read.body, 'bar', 'data kept under the new id')
    const oldCookie = await app.inject({ url: '/read', headers: { cookie: cookie.pair } })
    assert.equal(oldCookie.body, 'none', 'the old id no longer works')
    await app.close()
  })

  it('destroy() removes the record and clears the cookie with the attributes it was set with', async () => {
    const store = new CountingStore()
    const cookieOptions = { path: '/', domain: 'example.test', sameSite: 'none' as const, secure: true, partitioned: true, priority: 'high' as const }
    const app = await appWith(store, { cookie: cookieOptions })
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    const response = await app.inject({ url: '/logout', headers: { cookie: set.pair } })
    const cleared = cookieOf(response)
    assert.ok(cleared)
    assert.equal(await store.peek(sessionKey(set.value)), undefined)
    assert.equal(cleared.value, '')
    assert.equal(cleared.attributes['max-age'], '0')
    for (const name of ['path', 'domain', 'samesite', 'secure', 'partitioned', 'priority', 'httponly']) {
      assert.equal(cleared.attributes[name], set.attributes[name], `${name} matches`)
    }
    assert.equal(set.attributes.domain, 'example.test')
    assert.equal(set.attributes.samesite, 'None')
    assert.equal(set.attributes.priority, 'High')
    assert.equal(set.attributes.partitioned, true)
    await app.close()
  })

  it('touch() restarts the lifetime of an unchanged session: one touch and a fresh cookie', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app)
    store.reset()
    const response = await app.inject({ url: '/touch', headers: { cookie: cookie.pair } })
    assert.deepEqual(store.calls.map((c) => c.op), ['get', 'cas'])
    assert.equal(store.calls[1].ttl, MAX_AGE)
    assert.equal(cookieOf(response)?.value, cookie.value)
    await app.close()
  })

  it('permanent: false gives a browser-session cookie while the backend TTL still applies', async () => {
    const store = new CountingStore()
    const app = await appWith(store, { permanent: false, maxAge: 600 })
    const cookie = cookieOf(await app.inject('/set'))
    assert.ok(cookie)
    assert.equal(cookie.attributes.expires, undefined)
    assert.equal(cookie.attributes['max-age'], undefined)
    assert.equal(store.calls.find((c) => c.op === 'cas')?.ttl, 600)
    await app.close()
  })

  it('session.permanent = false makes that session a browser-session cookie, and it stays so', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = cookieOf(await app.inject('/browser-session'))
    assert.ok(cookie)
    assert.equal(cookie.attributes.expires, undefined)
    const info = await app.inject({ url: '/info', headers: { cookie: cookie.pair } })
    assert.equal(info.json().permanent, false)
    const next = cookieOf(await app.inject({ url: '/counter', headers: { cookie: cookie.pair } }))
    assert.equal(next?.attributes.expires, undefined)
    await app.close()
  })

  it('a redirect right after a change carries the cookie, and the record exists when it arrives', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const response = await app.inject('/redirect')
    assert.equal(response.statusCode, 302)
    const cookie = cookieOf(response)
    assert.ok(cookie)
    const followed = await app.inject({ url: response.headers.location as string, headers: { cookie: cookie.pair } })
    assert.equal(followed.body, 'after-redirect')
    await app.close()
  })

  it('Set-Cookie is not sent when the write fails, and the request fails with a backend error', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    store.failing.add('cas')
    const response = await app.inject('/set')
    assert.equal(response.statusCode, 503)
    assert.equal(response.json().code, 'FST_QUART_SESSION_BACKEND')
    assert.equal(setCookieCount(response), 0)
    await app.close()
  })

  it('save() writes before the end of the request; a later handler error keeps it', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const response = await app.inject('/save-then-fail')
    assert.equal(response.statusCode, 500)
    const cookie = cookieOf(response)
    assert.ok(cookie, 'the saved session still gets its cookie on the error reply')
    const read = await app.inject({ url: '/read', headers: { cookie: cookie.pair } })
    assert.equal(read.body, 'saved-early')
    assert.equal(store.count('cas'), 1, 'written once')
    await app.close()
  })

  it('reload() discards unsaved changes', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await login(app)
    const response = await app.inject({ url: '/reload', headers: { cookie: cookie.pair } })
    assert.equal(response.body, 'bar')
    const read = await app.inject({ url: '/read', headers: { cookie: cookie.pair } })
    assert.equal(read.body, 'bar')
    await app.close()
  })

  it('an expired session comes back as a fresh one', async () => {
    const store = new CountingStore()
    const app = await appWith(store, { maxAge: 1 })
    const cookie = await login(app)
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const response = await app.inject({ url: '/info', headers: { cookie: cookie.pair } })
    assert.equal(response.json().isNew, true)
    assert.notEqual(response.json().id, cookie.value)
    await app.close()
  })

  it('secure: auto sets Secure on https requests', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
    }, { trustProxy: true })
    const response = await app.inject({ url: '/set', headers: { 'x-forwarded-proto': 'https' } })
    assert.equal(cookieOf(response)?.attributes.secure, true)
    await app.close()
  })

  it('cookieName names the cookie', async () => {
    const store = new CountingStore()
    const app = await appWith(store, { cookieName: 'sid' })
    const response = await app.inject('/set')
    assert.ok(cookieOf(response, 'sid'))
    assert.equal(cookieOf(response, 'session'), undefined)
    await app.close()
  })

  it('other cookies set by the handler are kept next to the session cookie', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/both', async (request, reply) => {
        reply.setCookie('theme', 'dark')
        request.session.set('foo', 'bar')
        return 'ok'
      })
    })
    const response = await app.inject('/both')
    assert.ok(cookieOf(response, 'theme'))
    assert.ok(cookieOf(response, 'session'))
    await app.close()
  })
})
