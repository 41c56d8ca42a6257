import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import fastifyStatic from '@fastify/static'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { cookieOf, setCookieCount, CountingStore } from './helpers/app.js'
import { sessionKey } from './helpers/keys.js'

let root: string

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'quart-static-'))
  await writeFile(join(root, 'app.css'), 'body { color: teal }')
  await writeFile(join(root, 'index.html'), '<h1>hello</h1>')
})
after(async () => { await rm(root, { recursive: true, force: true }) })

async function appWith (store: CountingStore, options: QuartSessionOptions = {}, wildcard = true): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(cookie)
  await app.register(quartSession, { store, ...options })
  await app.register(fastifyStatic, { root, prefix: '/public/', wildcard })
  app.get('/login', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
  app.get('/file-in-handler', async (request, reply) => reply.sendFile('app.css'))
  app.get('/file-opted-out', { config: { session: false } }, async (request, reply) => reply.sendFile('app.css'))
  app.get('/file-after-change', async (request, reply) => {
    request.session.set('foo', 'changed-before-file')
    return reply.sendFile('index.html')
  })
  await app.ready()
  return app
}

async function sessionCookie (app: FastifyInstance): Promise<string> {
  const cookie = cookieOf(await app.inject('/login'))
  assert.ok(cookie)
  return cookie.pair
}

describe('static files never touch the session', () => {
  for (const wildcard of [true, false]) {
    it(`@fastify/static files (wildcard: ${wildcard}) with a valid session cookie: no backend call, no Set-Cookie`, async () => {
      const store = new CountingStore()
      const app = await appWith(store, {}, wildcard)
      const cookie = await sessionCookie(app)
      store.reset()
      for (const url of ['/public/app.css', '/public/index.html']) {
        const response = await app.inject({ url, headers: { cookie } })
        assert.equal(response.statusCode, 200, url)
        assert.ok(response.body.length > 0)
        assert.equal(setCookieCount(response), 0, url)
      }
      const head = await app.inject({ method: 'HEAD', url: '/public/app.css', headers: { cookie } })
      assert.equal(head.statusCode, 200)
      assert.equal(setCookieCount(head), 0)
      assert.equal(store.count(), 0)
      await app.close()
    })
  }

  it('a static file without any cookie starts no session', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const response = await app.inject('/public/app.css')
    assert.equal(response.statusCode, 200)
    assert.equal(setCookieCount(response), 0)
    assert.equal(store.count(), 0)
    await app.close()
  })

  it('staticFiles: true opts static routes back in: the session is loaded', async () => {
    const store = new CountingStore()
    const app = await appWith(store, { staticFiles: true })
    const cookie = await sessionCookie(app)
    store.reset()
    const response = await app.inject({ url: '/public/app.css', headers: { cookie } })
    assert.equal(response.statusCode, 200)
    assert.deepEqual(store.calls.map((c) => c.op), ['get'])
    assert.equal(setCookieCount(response), 0, 'unchanged: still no Set-Cookie')
    await app.close()
  })

  it('reply.sendFile in a route: no Set-Cookie and no write for an unchanged session', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await sessionCookie(app)
    store.reset()
    const response = await app.inject({ url: '/file-in-handler', headers: { cookie } })
    assert.equal(response.statusCode, 200)
    assert.equal(response.body, 'body { color: teal }')
    assert.equal(setCookieCount(response), 0)
    assert.equal(store.count('cas'), 0)
    await app.close()
  })

  it('reply.sendFile in a route with config.session = false: no backend call at all', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const cookie = await sessionCookie(app)
    store.reset()
    const response = await app.inject({ url: '/file-opted-out', headers: { cookie } })
    assert.equal(response.statusCode, 200)
    assert.equal(setCookieCount(response), 0)
    assert.equal(store.count(), 0)
    await app.close()
  })

  it('a handler that changes the session and then sends a file keeps the change', async () => {
    const store = new CountingStore()
    const app = await appWith(store)
    const response = await app.inject('/file-after-change')
    assert.equal(response.statusCode, 200)
    const cookie = cookieOf(response)
    assert.ok(cookie, 'the new session is not lost')
    assert.ok((await store.peek(sessionKey(cookie.value)))?.includes('changed-before-file'))
    await app.close()
  })

  it('config.session = false wins over staticFiles: true', async () => {
    const store = new CountingStore()
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession, { store, staticFiles: true })
    await app.register(fastifyStatic, { root, prefix: '/public/' })
    app.get('/login', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
    app.get('/off', { config: { session: false } }, async (request) => request.session.get('foo') ?? 'none')
    const pair = cookieOf(await app.inject('/login'))?.pair as string
    store.reset()
    const off = await app.inject({ url: '/off', headers: { cookie: pair } })
    assert.equal(off.body, 'none')
    assert.equal(store.count(), 0)
    await app.close()
  })
})
