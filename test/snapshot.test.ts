// Mutations of handed-out objects are found, through the cheap copy or the serializer fallback.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { snapshot, unchanged, UNCOMPARABLE } from '../lib/snapshot.js'
import './helpers/session-data.js'
import { build, cookieOf, CountingStore } from './helpers/app.js'

describe('snapshot and unchanged', () => {
  const cases: Array<[string, unknown, (v: any) => void]> = [
    ['nested push', { items: ['a'] }, (v) => { v.items.push('b') }],
    ['key added', { a: 1 }, (v) => { v.b = 2 }],
    ['key deleted', { a: 1, b: 2 }, (v) => { delete v.b }],
    ['key replaced by another', { a: 1 }, (v) => { delete v.a; v.b = 1 }],
    ['array shortened', [1, 2, 3], (v) => { v.length = 2 }],
    ['type change', { a: 1 }, (v) => { v.a = '1' }],
    ['object to array', { a: {} }, (v) => { v.a = [] }],
    ['deep change', { a: { b: { c: { d: 1 } } } }, (v) => { v.a.b.c.d = 2 }],
    ['undefined added', { a: 1 }, (v) => { v.b = undefined }]
  ]
  for (const [name, value, mutate] of cases) {
    it(`finds a mutation: ${name}`, () => {
      const copy = snapshot(value)
      assert.notEqual(copy, UNCOMPARABLE)
      assert.equal(unchanged(copy, value), true, 'equal before')
      mutate(value)
      assert.equal(unchanged(copy, value), false, 'different after')
    })
  }

  it('a copy equals its source at every depth and shares no object with it, "__proto__" keys included', () => {
    // Keys a record can hold, "__proto__" among them (JSON.parse makes it an own data key).
    const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'constructor', '0', '10'))
    const value = fc.letrec((tie) => ({
      leaf: fc.oneof(fc.string({ maxLength: 4 }), fc.double(), fc.boolean(), fc.constant(null)),
      node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(key, tie('node'), { maxKeys: 6 }))
    })).node
    const objects = (v: unknown, seen: object[] = []): object[] => {
      if (typeof v === 'object' && v !== null) {
        seen.push(v)
        for (const k of Object.keys(v)) objects((v as Record<string, unknown>)[k], seen)
      }
      return seen
    }
    fc.assert(fc.property(value, (source) => {
      // Through JSON, as a record's data arrives: "__proto__" an own key, not the prototype.
      const data = JSON.parse(JSON.stringify(source) ?? 'null')
      const copy = snapshot(data)
      assert.deepStrictEqual(copy, data)
      assert.ok(unchanged(copy, data))
      const theirs = new Set(objects(data))
      for (const mine of objects(copy)) {
        assert.ok(!theirs.has(mine), 'an object of the copy is the source\'s own')
        if (!Array.isArray(mine)) assert.equal(Object.getPrototypeOf(mine), Object.prototype)
      }
    }), { numRuns: 300 })
  })

  it('NaN and -0 compare as themselves', () => {
    const value = { n: NaN, z: -0 }
    assert.equal(unchanged(snapshot(value), value), true)
  })

  it('Dates, Maps, class instances, holes and cycles are left to the serializer', () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    // eslint-disable-next-line no-sparse-arrays
    for (const value of [{ d: new Date() }, { m: new Map() }, { u: new URL('http://x/') }, [1, , 3], cyclic]) {
      assert.equal(snapshot(value), UNCOMPARABLE)
    }
  })
})

describe('handed-out objects of other types', () => {
  it('a Date mutated in place (setTime) and a Map grown in place are saved', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/init', async (request) => { request.session.set('values', { when: new Date(0), seen: new Map([['a', 1]]) }); return 'ok' })
      app.get('/mutate', async (request) => {
        const values = request.session.get('values') as { when: Date, seen: Map<string, number> }
        values.when.setTime(1000)
        values.seen.set('b', 2)
        return 'ok'
      })
      app.get('/read-only', async (request) => { void request.session.get('values'); return 'ok' })
      app.get('/show', async (request) => {
        const values = request.session.get('values') as { when: Date, seen: Map<string, number> }
        return { when: values.when.getTime(), seen: [...values.seen] }
      })
    })
    const set = cookieOf(await app.inject('/init'))
    assert.ok(set)
    store.reset()
    await app.inject({ url: '/read-only', headers: { cookie: set.pair } })
    assert.equal(store.count('cas'), 0, 'reading without changing writes nothing')
    await app.inject({ url: '/mutate', headers: { cookie: set.pair } })
    assert.equal(store.count('cas'), 1)
    const shown = (await app.inject({ url: '/show', headers: { cookie: set.pair } })).json()
    assert.deepEqual(shown, { when: 1000, seen: [['a', 1], ['b', 2]] })
    await app.close()
  })
})

describe('parsed records are copied, never shared', () => {
  it('a request mutating its session data cannot change what the next request with the same record text gets', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/init', async (request) => { request.session.set('cart', { items: ['apple'] }); return 'ok' })
      // Mutates its copy, then discards the change: the stored text stays the same.
      app.get('/scribble', async (request) => {
        (request.session.get('cart') as { items: string[] }).items.push('stolen')
        await request.session.reload()
        return 'ok'
      })
      app.get('/show', async (request) => request.session.get('cart'))
    })
    const set = cookieOf(await app.inject('/init'))
    assert.ok(set)
    assert.deepEqual((await app.inject({ url: '/show', headers: { cookie: set.pair } })).json(), { items: ['apple'] })
    await app.inject({ url: '/scribble', headers: { cookie: set.pair } })
    assert.deepEqual((await app.inject({ url: '/show', headers: { cookie: set.pair } })).json(), { items: ['apple'] })
    await app.close()
  })

  // A loaded session's data shares the parse cache's objects until one is handed out: every way a
  // handler reaches an object must give it a copy, or the next request would see what this one
  // scribbled (reload() reads the same text back, served by the cache).
  const paths: Array<[string, (session: any) => { items: string[] }]> = [
    ['get()', (session) => session.get('cart')],
    ['data()', (session) => session.data().cart],
    ['a property (@fastify/session style)', (session) => session.cart],
    ['a spread of the session', (session) => ({ ...session }).cart],
    ['Object.entries of the session', (session) => Object.fromEntries(Object.entries(session)).cart]
  ]
  for (const [name, reach] of paths) {
    it(`an object reached through ${name} and mutated is the request's own`, async () => {
      const store = new CountingStore()
      const app = await build({ store }, (app) => {
        app.get('/init', async (request) => { request.session.set('cart', { items: ['apple'] }); request.session.set('counter', 1); return 'ok' })
        app.get('/scribble', async (request) => {
          reach(request.session).items.push('stolen')
          await request.session.reload()
          return request.session.get('cart')
        })
        app.get('/show', async (request) => request.session.get('cart'))
      })
      const set = cookieOf(await app.inject('/init'))
      assert.ok(set)
      // Twice: the first read parses and fills the cache, the second is served from it.
      for (let i = 0; i < 2; i++) assert.deepEqual((await app.inject({ url: '/show', headers: { cookie: set.pair } })).json(), { items: ['apple'] })
      store.reset()
      assert.deepEqual((await app.inject({ url: '/scribble', headers: { cookie: set.pair } })).json(), { items: ['apple'] })
      assert.deepEqual((await app.inject({ url: '/show', headers: { cookie: set.pair } })).json(), { items: ['apple'] })
      assert.equal(store.count('cas'), 0, 'nothing changed, so nothing was written')
      await app.close()
    })
  }

  it('an update() whose function mutates the object it is given leaves the cached record alone', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/init', async (request) => { request.session.set('cart', { items: ['apple'] }); return 'ok' })
      app.get('/add', async (request) => {
        // Not pure, against the documentation, and common: it must still store exactly its result.
        return await request.session.update('cart', (cart: any) => { cart.items.push('pear'); return cart })
      })
      // Mutates, then fails: nothing is written, so the stored text (served by the cache) stays.
      app.get('/fail', async (request) => {
        try {
          await request.session.update('cart', (cart: any) => { cart.items.push('plum'); throw new Error('changed my mind') })
        } catch {}
        return 'ok'
      })
      app.get('/show', async (request) => request.session.get('cart'))
    })
    const set = cookieOf(await app.inject('/init'))
    assert.ok(set)
    for (let i = 0; i < 2; i++) await app.inject({ url: '/show', headers: { cookie: set.pair } })
    await app.inject({ url: '/fail', headers: { cookie: set.pair } })
    assert.deepEqual((await app.inject({ url: '/show', headers: { cookie: set.pair } })).json(), { items: ['apple'] })
    assert.deepEqual((await app.inject({ url: '/add', headers: { cookie: set.pair } })).json(), { items: ['apple', 'pear'] })
    assert.deepEqual((await app.inject({ url: '/show', headers: { cookie: set.pair } })).json(), { items: ['apple', 'pear'] })
    assert.deepEqual((await app.inject({ url: '/add', headers: { cookie: set.pair } })).json(), { items: ['apple', 'pear', 'pear'] })
    await app.close()
  })

  it('a set() over a loaded object, then a mutation of the loaded one read before, is compared against what was loaded', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/init', async (request) => { request.session.set('cart', { items: ['apple'] }); return 'ok' })
      // The same value set back: no change, no write.
      app.get('/same', async (request) => { request.session.set('cart', { items: ['apple'] }); return 'ok' })
      app.get('/other', async (request) => { request.session.set('cart', { items: ['kiwi'] }); return 'ok' })
      app.get('/show', async (request) => request.session.get('cart'))
    })
    const set = cookieOf(await app.inject('/init'))
    assert.ok(set)
    for (let i = 0; i < 2; i++) await app.inject({ url: '/show', headers: { cookie: set.pair } })
    store.reset()
    await app.inject({ url: '/same', headers: { cookie: set.pair } })
    assert.equal(store.count('cas'), 0)
    await app.inject({ url: '/other', headers: { cookie: set.pair } })
    assert.equal(store.count('cas'), 1)
    assert.deepEqual((await app.inject({ url: '/show', headers: { cookie: set.pair } })).json(), { items: ['kiwi'] })
    await app.close()
  })
})
