import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'devalue'
import Fastify, { type LightMyRequestResponse } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { build, cookieOf, setCookieCount, CountingStore } from './helpers/app.js'
import { sessionKey } from './helpers/keys.js'

describe('record format and serializer', () => {
  it('devalue round-trips Date, Map, Set, BigInt, RegExp, URL, typed arrays, undefined and cycles', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/put', async (request) => {
        const cyclic: Record<string, unknown> = { name: 'loop' }
        cyclic.self = cyclic
        const shared = { n: 1 }
        request.session.set('values', {
          date: new Date('2026-11-26T10:00:00Z'),
          map: new Map([['a', 1]]),
          set: new Set(['x', 'y']),
          big: 12345678901234567890n,
          regexp: /ab+c/gi,
          url: new URL('https://example.com/path?q=1'),
          bytes: new Uint8Array([1, 2, 255]),
          missing: undefined,
          cyclic,
          twice: [shared, shared]
        })
        return 'ok'
      })
      app.get('/check', async (request) => {
        const v = request.session.get('values') as Record<string, any>
        return {
          date: v.date instanceof Date && v.date.toISOString(),
          map: v.map instanceof Map && v.map.get('a'),
          set: v.set instanceof Set && [...v.set],
          big: typeof v.big === 'bigint' && v.big.toString(),
          regexp: v.regexp instanceof RegExp && v.regexp.toString(),
          url: v.url instanceof URL && v.url.href,
          bytes: v.bytes instanceof Uint8Array && [...v.bytes],
          missing: 'missing' in v && v.missing === undefined,
          cyclic: v.cyclic.self === v.cyclic,
          twice: v.twice[0] === v.twice[1]
        }
      })
    })
    const set = cookieOf(await app.inject('/put'))
    assert.ok(set)
    const response = await app.inject({ url: '/check', headers: { cookie: set.pair } })
    assert.deepEqual(response.json(), {
      date: '2026-11-26T10:00:00.000Z',
      map: 1,
      set: ['x', 'y'],
      big: '12345678901234567890',
      regexp: '/ab+c/gi',
      url: 'https://example.com/path?q=1',
      bytes: [1, 2, 255],
      missing: true,
      cyclic: true,
      twice: true
    })
    assert.equal(store.count('cas'), 1, 'reading it back (unchanged) wrote nothing')
    await app.close()
  })

  it('the stored record is devalue text of { data } that another program can read', async () => {
    const store = new CountingStore()
    const app = await build({ store, keyPrefix: 'app:' }, (app) => {
      app.get('/set', async (request) => { request.session.set('user', { id: 'u1', name: 'Ada' }); return 'ok' })
      app.get('/forget', async (request) => { request.session.permanent = false; return 'ok' })
    })
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    const text = await store.peek(sessionKey(set.value, 'app:'))
    assert.ok(text)
    const record = parse(text)
    assert.deepEqual(Object.keys(record).sort(), ['created', 'data', 'touched'])
    assert.deepEqual({ ...record.data }, { user: { id: 'u1', name: 'Ada' } })
    const now = Math.floor(Date.now() / 1000)
    assert.ok(Math.abs(record.created - now) <= 2 && record.touched === record.created, 'created and touched are epoch seconds')
    await app.inject({ url: '/forget', headers: { cookie: set.pair } })
    assert.equal(parse((await store.peek(sessionKey(set.value, 'app:'))) as string).permanent, false)
    await app.close()
  })

  it('a custom serializer replaces devalue for records and the direct API', async () => {
    const store = new CountingStore()
    const app = await build({ store, serializer: { stringify: JSON.stringify, parse: JSON.parse } }, (app) => {
      app.get('/set', async (request) => { request.session.set('foo', 'json'); return 'ok' })
      app.get('/read', async (request) => request.session.get('foo') ?? 'none')
      app.get('/proto', async (request) => String(request.session.get('toString' as 'foo')))
    })
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    assert.match(await store.peek(sessionKey(set.value)) as string, /^\{"data":\{"foo":"json"\},"created":\d+,"touched":\d+\}$/)
    assert.equal((await app.inject({ url: '/read', headers: { cookie: set.pair } })).body, 'json')
    assert.equal((await app.inject({ url: '/proto', headers: { cookie: set.pair } })).body, 'undefined', 'no inherited keys')
    await app.sessionStore.set('k', { a: 1 })
    assert.equal(await store.peek('k'), '{"a":1}')
    await app.close()
  })

  it('a corrupt record gives a fresh session and a warning in the request log, never a 500', async () => {
    const store = new CountingStore()
    const lines: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
    await app.register(cookie)
    await app.register(quartSession, { store })
    app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
    app.get('/read', async (request) => ({ foo: request.session.get('foo') ?? null, isNew: request.session.isNew }))
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    for (const corrupt of ['{not devalue', '[1,2,3]', '[{"nodata":1},2]', '']) {
      await store.inner.set(sessionKey(set.value), corrupt, 60)
      lines.length = 0
      const response: LightMyRequestResponse = await app.inject({ url: '/read', headers: { cookie: set.pair } })
      assert.equal(response.statusCode, 200, corrupt)
      assert.deepEqual(response.json(), { foo: null, isNew: true })
      const warning = lines.map((l) => JSON.parse(l)).find((l) => l.level === 40)
      assert.ok(warning, `a warning for ${JSON.stringify(corrupt)}`)
      assert.match(warning.msg, /could not be read; starting a fresh session/)
      assert.equal(warning.err.code, 'FST_QUART_SESSION_CORRUPT_RECORD')
      assert.ok(warning.reqId, 'logged through request.log')
    }
    await app.close()
  })

  it('a value the serializer cannot store fails the request with a clear error and no cookie', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/bad', async (request) => { request.session.set('values', { fn () {} }); return 'ok' })
    })
    const response = await app.inject('/bad')
    assert.equal(response.statusCode, 500)
    assert.equal(response.json().code, 'FST_QUART_SESSION_SERIALIZE')
    assert.equal(setCookieCount(response), 0)
    assert.equal(store.count('cas'), 0)
    await app.close()
  })

  it('the key "__proto__" is refused with a clear error', async () => {
    const app = await build({ store: new CountingStore() }, (app) => {
      app.get('/proto', async (request) => { request.session.set('__proto__' as 'foo', 'x'); return 'ok' })
    })
    const response = await app.inject('/proto')
    assert.equal(response.statusCode, 500)
    assert.equal(response.json().code, 'FST_QUART_SESSION_INVALID_KEY')
    await app.close()
  })
})

describe('direct back-end use: fastify.sessionStore', () => {
  it('get/set/delete values with an expiry in seconds, through the serializer', async () => {
    const store = new CountingStore()
    const app = await build({ store }, (app) => {
      app.get('/cache', async function () {
        await this.sessionStore.set('random_key', 'val', 3600)
        return await this.sessionStore.get('random_key')
      })
    })
    assert.equal((await app.inject('/cache')).body, 'val')
    assert.deepEqual(store.calls.find((c) => c.op === 'set'), { op: 'set', key: 'random_key', ttl: 3600 })

    await app.sessionStore.set('map', new Map([['k', new Date(0)]]), 0.5)
    assert.equal(store.calls.at(-1)?.ttl, 1, 'fractions round up to whole seconds')
    const map = await app.sessionStore.get<Map<string, Date>>('map')
    assert.ok(map?.get('k') instanceof Date)

    await app.sessionStore.set('forever', 1)
    assert.equal(store.calls.at(-1)?.ttl, 0, 'no expiry when omitted')
    await app.sessionStore.delete('forever')
    assert.equal(await app.sessionStore.get('forever'), undefined)
    await app.close()
  })

  it('refuses an invalid key or expiry with a code', async () => {
    const app = await build({ store: new CountingStore() })
    await assert.rejects(app.sessionStore.set('k', 1, -5), { code: 'FST_QUART_SESSION_INVALID_ARGUMENT', message: /expirySeconds/ })
    await assert.rejects(app.sessionStore.set('k', 1, Number.NaN), { code: 'FST_QUART_SESSION_INVALID_ARGUMENT' })
    await assert.rejects(app.sessionStore.get(''), { code: 'FST_QUART_SESSION_INVALID_ARGUMENT', message: /key/ })
    await app.close()
  })

  it('backend failures surface as FST_QUART_SESSION_BACKEND with the cause', async () => {
    const store = new CountingStore()
    store.failing.add('get')
    const app = await build({ store })
    await assert.rejects(app.sessionStore.get('k'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'FST_QUART_SESSION_BACKEND')
      assert.match((err.cause as Error).message, /refused/)
      return true
    })
    await app.close()
  })
})

describe('routes without sessions and a failing backend', () => {
  async function appWith (store: CountingStore) {
    return await build({ store }, (app) => {
      app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
      app.get('/anon', { config: { session: false } }, async (request) => ({ foo: request.session.get('foo') ?? null, has: request.session.has('foo') }))
      app.get('/anon-write', { config: { session: false } }, async (request) => { request.session.set('foo', 'x'); return 'ok' })
    })
  }

  it('config.session = false: no backend call and no Set-Cookie even with a session cookie', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    store.reset()
    const response = await app.inject({ url: '/anon', headers: { cookie: set.pair } })
    assert.deepEqual(response.json(), { foo: null, has: false })
    assert.equal(store.count(), 0)
    assert.equal(setCookieCount(response), 0)
    await app.close()
  })

  it('writing to the session on such a route throws FST_QUART_SESSION_DISABLED', async () => {
    const app = await appWith(new CountingStore())
    const response = await app.inject('/anon-write')
    assert.equal(response.statusCode, 500)
    assert.equal(response.json().code, 'FST_QUART_SESSION_DISABLED')
    assert.match(response.json().message, /config: \{ session: false \}/)
    await app.close()
  })

  it('a backend that fails on read fails sessioned requests with 503, and opted-out routes keep working', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    store.failing.add('get')
    const failed = await app.inject({ url: '/set', headers: { cookie: set.pair } })
    assert.equal(failed.statusCode, 503)
    assert.equal(failed.json().code, 'FST_QUART_SESSION_BACKEND')
    assert.equal(setCookieCount(failed), 0)
    const anon = await app.inject({ url: '/anon', headers: { cookie: set.pair } })
    assert.equal(anon.statusCode, 200)
    store.failing.clear()
    const recovered = await app.inject({ url: '/set', headers: { cookie: set.pair } })
    assert.equal(recovered.statusCode, 200)
    await app.close()
  })
})
