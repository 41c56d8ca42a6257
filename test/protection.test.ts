import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'devalue'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { cookieOf, CountingStore, SECRET, OLD_SECRET } from './helpers/app.js'
import { sessionKey } from './helpers/keys.js'

const A = '203.0.113.10'
const B = '198.51.100.77'

async function appWith (store: CountingStore, options: QuartSessionOptions = {}, server: FastifyServerOptions = {}, lines?: string[]): Promise<FastifyInstance> {
  const app = Fastify({
    ...server,
    ...(lines === undefined ? {} : { logger: { level: 'info', stream: { write: (l: string) => { lines.push(l) } } } })
  })
  await app.register(cookie)
  await app.register(quartSession, { store, secret: SECRET, protection: true, ...options })
  app.get('/login', async (request) => { request.session.set('user', { id: 'u1', name: 'Ada' }); return 'ok' })
  app.get('/me', async (request) => ({ user: request.session.get('user') ?? null, id: request.session.id, isNew: request.session.isNew }))
  app.get('/count', async (request) => {
    request.session.set('counter', (request.session.get('counter') ?? 0) + 1)
    return request.session.get('counter')
  })
  await app.ready()
  return app
}

function idOf (pair: string): string {
  return pair.slice(pair.indexOf('=') + 1).split('.')[0]
}

describe('session protection (pinning to the client address)', () => {
  it('the same address keeps its session', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = cookieOf(await app.inject({ url: '/login', remoteAddress: A }))
    assert.ok(cookie)
    const me = await app.inject({ url: '/me', remoteAddress: A, headers: { cookie: cookie.pair } })
    assert.deepEqual(me.json().user, { id: 'u1', name: 'Ada' })
    await app.close()
  })

  it('the session used from another address: new empty session, old record deleted, original client loses it too', async () => {
    const store = new CountingStore()
    const lines: string[] = []
    const app = await appWith(store, {}, {}, lines)
    const cookie = cookieOf(await app.inject({ url: '/login', remoteAddress: A }))
    assert.ok(cookie)
    const id = idOf(cookie.pair)

    const stolen = await app.inject({ url: '/me', remoteAddress: B, headers: { cookie: cookie.pair } })
    assert.equal(stolen.statusCode, 200)
    assert.equal(stolen.json().user, null)
    assert.equal(stolen.json().isNew, true)
    assert.notEqual(stolen.json().id, id)
    assert.equal(await store.peek(sessionKey(id)), undefined, 'old record deleted')
    assert.ok(lines.some((l) => /used from another client address/.test(l)), 'logged')

    const original = await app.inject({ url: '/me', remoteAddress: A, headers: { cookie: cookie.pair } })
    assert.equal(original.json().user, null)
    assert.equal(original.json().isNew, true)
    await app.close()
  })

  it('the stored record holds a keyed hash of the address, never the raw address', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = cookieOf(await app.inject({ url: '/login', remoteAddress: A }))
    assert.ok(cookie)
    const text = await store.peek(sessionKey(idOf(cookie.pair))) as string
    assert.ok(!text.includes(A), 'raw address absent')
    assert.ok(!text.includes('203.0.113'), 'no part of it either')
    const record = parse(text)
    assert.match(record.pin, /^[A-Za-z0-9_-]{43}$/)
    await app.close()
  })

  it('reverseProxy: the right-most X-Forwarded-For entry counts, so a spoofed left-most one does not defeat pinning', async () => {
    const store = new CountingStore()
    const app = await appWith(store, { reverseProxy: true })
    const proxy = '10.0.0.1'
    // The proxy appends the address it saw.
    const cookie = cookieOf(await app.inject({ url: '/login', remoteAddress: proxy, headers: { 'x-forwarded-for': A } }))
    assert.ok(cookie)
    const same = await app.inject({ url: '/me', remoteAddress: proxy, headers: { cookie: cookie.pair, 'x-forwarded-for': `${B}, ${A}` } })
    assert.ok(same.json().user, 'client A, whatever it put on the left, keeps its session')
    const spoofed = await app.inject({ url: '/me', remoteAddress: proxy, headers: { cookie: cookie.pair, 'x-forwarded-for': `${A}, ${B}` } })
    assert.equal(spoofed.json().user, null, 'attacker B claiming A on the left gets nothing')
    await app.close()
  })

  it("Fastify's trustProxy is honoured through request.ip", async () => {
    const store = new CountingStore()
    const app = await appWith(store, {}, { trustProxy: '127.0.0.1' })
    const cookie = cookieOf(await app.inject({ url: '/login', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': A } }))
    assert.ok(cookie)
    const same = await app.inject({ url: '/me', remoteAddress: '127.0.0.1', headers: { cookie: cookie.pair, 'x-forwarded-for': A } })
    assert.ok(same.json().user)
    const other = await app.inject({ url: '/me', remoteAddress: '127.0.0.1', headers: { cookie: cookie.pair, 'x-forwarded-for': B } })
    assert.equal(other.json().user, null)
    await app.close()
  })

  it('a session from before protection was on is pinned on its next write, not dropped', async () => {
    const store = new CountingStore()
    const plain = Fastify()
    await plain.register(cookie)
    await plain.register(quartSession, { store, secret: SECRET })
    plain.get('/login', async (request) => { request.session.set('user', { id: 'u1', name: 'Ada' }); return 'ok' })
    const earlier = cookieOf(await plain.inject({ url: '/login', remoteAddress: A }))
    assert.ok(earlier)
    await plain.close()
    const id = idOf(earlier.pair)
    assert.equal(parse(await store.peek(sessionKey(id)) as string).pin, undefined)

    const app = await appWith(store)
    const me = await app.inject({ url: '/me', remoteAddress: A, headers: { cookie: earlier.pair } })
    assert.ok(me.json().user, 'kept')
    await app.inject({ url: '/count', remoteAddress: A, headers: { cookie: earlier.pair } })
    assert.ok(parse(await store.peek(sessionKey(id)) as string).pin, 'pinned on the write')
    const other = await app.inject({ url: '/me', remoteAddress: B, headers: { cookie: earlier.pair } })
    assert.equal(other.json().user, null, 'now pinned to A')
    await app.close()
  })

  it('a secret rotation keeps pinned sessions', async () => {
    const store = new CountingStore()
    const before = await appWith(store, { secret: OLD_SECRET })
    const cookie = cookieOf(await before.inject({ url: '/login', remoteAddress: A }))
    assert.ok(cookie)
    await before.close()
    const after = await appWith(store, { secret: [SECRET, OLD_SECRET] })
    const me = await after.inject({ url: '/me', remoteAddress: A, headers: { cookie: cookie.pair } })
    assert.ok(me.json().user)
    await after.close()
  })

  it('an unknown client address is logged and treated as a mismatch', async () => {
    const store = new CountingStore()
    const lines: string[] = []
    const app = Fastify({ logger: { level: 'info', stream: { write: (l: string) => { lines.push(l) } } } })
    await app.register(cookie)
    // A socket that closed before the request was read has no address: request.ip is undefined.
    app.addHook('onRequest', async (request) => {
      if (request.headers['x-no-address'] !== undefined) Object.defineProperty(request, 'ip', { value: undefined })
    })
    await app.register(quartSession, { store, secret: SECRET, protection: true })
    app.get('/login', async (request) => { request.session.set('user', { id: 'u1', name: 'Ada' }); return 'ok' })
    app.get('/me', async (request) => ({ user: request.session.get('user') ?? null }))
    const pinned = cookieOf(await app.inject({ url: '/login', remoteAddress: A }))
    assert.ok(pinned)
    const response = await app.inject({ url: '/me', headers: { cookie: pinned.pair, 'x-no-address': '1' } })
    assert.equal(response.statusCode, 200)
    assert.equal(response.json().user, null)
    assert.ok(lines.some((l) => /client address is unknown/.test(l) && /"level":40/.test(l)), lines.join('\n'))
    // A session started without an address is pinned to nothing: it matches no later request.
    const unknown = cookieOf(await app.inject({ url: '/login', headers: { 'x-no-address': '1' } }))
    assert.ok(unknown)
    const later = await app.inject({ url: '/me', remoteAddress: A, headers: { cookie: unknown.pair } })
    assert.equal(later.json().user, null)
    await app.close()
  })
})
