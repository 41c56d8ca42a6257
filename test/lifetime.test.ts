// Sessions live as long as the user is active (rolling), at a bounded cost, and never longer
// than absoluteMaxAge.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { parse } from 'devalue'
import './helpers/session-data.js'
import { build, cookieOf, CountingStore, sessionRoutes, setCookieCount } from './helpers/app.js'
import { sessionKey } from './helpers/keys.js'

describe('rolling lifetime', () => {
  it('an unchanged session that is used is refreshed at most once per maxAge / 10, with its cookie', async () => {
    const store = new CountingStore()
    const app = await build({ store, maxAge: 10 }, sessionRoutes)
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    store.reset()
    const early = await app.inject({ url: '/read', headers: { cookie: set.pair } })
    assert.equal(early.body, 'bar')
    assert.deepEqual(store.calls.map((c) => c.op), ['get'], 'not due yet: one read, nothing else')
    assert.equal(setCookieCount(early), 0)
    await sleep(1100)
    store.reset()
    const due = await app.inject({ url: '/read', headers: { cookie: set.pair } })
    assert.deepEqual(store.calls.map((c) => c.op), ['get', 'cas'], 'one extra operation when due')
    assert.equal(store.calls[1].ttl, 10)
    const refreshed = cookieOf(due)
    assert.ok(refreshed, 'the cookie goes out with the refresh')
    assert.equal(refreshed.value, set.value)
    assert.equal(refreshed.attributes['max-age'], '10')
    store.reset()
    const after = await app.inject({ url: '/read', headers: { cookie: set.pair } })
    assert.deepEqual(store.calls.map((c) => c.op), ['get'])
    assert.equal(setCookieCount(after), 0)
    await app.close()
  })

  it('a user who only reads stays signed in past maxAge; with rolling: false the session ends maxAge after the last write', async () => {
    const rolling = await build({ maxAge: 2 }, sessionRoutes)
    const fixed = await build({ maxAge: 2, rolling: false }, sessionRoutes)
    const a = cookieOf(await rolling.inject('/set'))
    const b = cookieOf(await fixed.inject('/set'))
    assert.ok(a && b)
    for (let i = 0; i < 4; i++) {
      await sleep(1000)
      assert.equal((await rolling.inject({ url: '/read', headers: { cookie: a.pair } })).body, 'bar', `rolling, read ${i}`)
      await fixed.inject({ url: '/read', headers: { cookie: b.pair } })
    }
    // 4 s after the only write: the rolling session lives on, the fixed one is gone.
    assert.equal((await rolling.inject({ url: '/read', headers: { cookie: a.pair } })).body, 'bar')
    assert.equal((await fixed.inject({ url: '/read', headers: { cookie: b.pair } })).body, 'none')
    await rolling.close()
    await fixed.close()
  })

  it('rolling: false never refreshes an unchanged session', async () => {
    const store = new CountingStore()
    const app = await build({ store, maxAge: 10, rolling: false }, sessionRoutes)
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    await sleep(1100)
    store.reset()
    const response = await app.inject({ url: '/read', headers: { cookie: set.pair } })
    assert.deepEqual(store.calls.map((c) => c.op), ['get'])
    assert.equal(setCookieCount(response), 0)
    await app.close()
  })
})

describe('absoluteMaxAge', () => {
  it('a session ends absoluteMaxAge after creation whatever its activity: fresh session, old record deleted, cookie replaced', async () => {
    const store = new CountingStore()
    // Whole seconds: a session ends between absoluteMaxAge - 1 and absoluteMaxAge seconds after creation.
    const app = await build({ store, maxAge: 3600, absoluteMaxAge: 3 }, sessionRoutes)
    const first = cookieOf(await app.inject('/counter'))
    assert.ok(first)
    for (let i = 0; i < 3; i++) {
      await sleep(500)
      const response: { body: string } = await app.inject({ url: '/counter', headers: { cookie: first.pair } })
      assert.equal(response.body, String(i + 2), 'writes keep working while young')
    }
    await sleep(2100)
    const late = await app.inject({ url: '/counter', headers: { cookie: first.pair } })
    assert.equal(late.body, '1', 'a fresh session')
    const replaced = cookieOf(late)
    assert.ok(replaced)
    assert.notEqual(replaced.value, first.value, 'the cookie is replaced')
    assert.equal(await store.peek(sessionKey(first.value)), undefined, 'the old record is deleted')
    await app.close()
  })

  it('the backend TTL and the cookie never outlast absoluteMaxAge', async () => {
    const store = new CountingStore()
    const app = await build({ store, maxAge: 3600, absoluteMaxAge: 60 }, sessionRoutes)
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    assert.ok(Number(set.attributes['max-age']) <= 60)
    assert.ok((store.calls.find((c) => c.op === 'cas')?.ttl ?? Infinity) <= 60)
    await app.close()
  })

  it('an expired session that is only read is gone, and its cookie, which expired with it, is left alone', async () => {
    const app = await build({ maxAge: 3600, absoluteMaxAge: 1 }, sessionRoutes)
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    assert.equal(set.attributes['max-age'], '1', 'the cookie never outlives absoluteMaxAge')
    await sleep(1100)
    const response = await app.inject({ url: '/read', headers: { cookie: set.pair } })
    assert.equal(response.body, 'none')
    assert.equal(setCookieCount(response), 0, 'a request that did not end the session does not touch its cookie')
    await app.close()
  })
})

describe('session.options()', () => {
  it('a longer maxAge for "remember me" sets this session\'s cookie lifetime and backend TTL, and it sticks', async () => {
    const store = new CountingStore()
    const app = await build({ store, maxAge: 600 }, (app) => {
      sessionRoutes(app)
      app.get('/remember', async (request) => {
        request.session.set('foo', 'remembered')
        request.session.options({ maxAge: 30 * 24 * 3600 })
        return 'ok'
      })
      app.get('/cookie', async (request) => request.session.cookie)
    })
    const response = await app.inject('/remember')
    const set = cookieOf(response)
    assert.ok(set)
    assert.equal(set.attributes['max-age'], String(30 * 24 * 3600))
    assert.equal(store.calls.find((c) => c.op === 'cas')?.ttl, 30 * 24 * 3600)
    const record = parse(await store.peek(sessionKey(set.value)) as string)
    assert.equal(record.cookie.maxAge, 30 * 24 * 3600)
    const view = (await app.inject({ url: '/cookie', headers: { cookie: set.pair } })).json()
    assert.equal(view.maxAge, 30 * 24 * 3600)
    assert.equal(view.path, '/')
    assert.equal(view.httpOnly, true)
    // The next write of this session keeps its own lifetime.
    store.reset()
    await app.inject({ url: '/counter', headers: { cookie: set.pair } })
    assert.equal(store.calls.find((c) => c.op === 'cas')?.ttl, 30 * 24 * 3600)
    await app.close()
  })

  it('writes re-send the cookie once its expiry is due (lifetime / 10), with the new expiry; in between they extend the record only', async () => {
    const store = new CountingStore()
    const app = await build({ store, maxAge: 10 }, sessionRoutes)
    const set = cookieOf(await app.inject('/counter'))
    assert.ok(set)
    assert.equal(setCookieCount(await app.inject({ url: '/counter', headers: { cookie: set.pair } })), 0)
    await sleep(1100)
    const due = await app.inject({ url: '/counter', headers: { cookie: set.pair } })
    assert.equal(cookieOf(due)?.value, set.value)
    assert.equal(cookieOf(due)?.attributes['max-age'], '10')
    assert.equal(setCookieCount(await app.inject({ url: '/counter', headers: { cookie: set.pair } })), 0, 'not again right after')
    // A read right after such writes is not due a refresh either: the cookie just went out.
    store.reset()
    await app.inject({ url: '/read', headers: { cookie: set.pair } })
    assert.deepEqual(store.calls.map((c) => c.op), ['get'])
    await app.close()
  })
})
