// Sessions in every registration layout Fastify's own docs use. Each layout is built the way a
// user writes it; the assertion is what the user sees: a value set on one request is read on
// the next with the cookie, and nothing answers FST_QUART_SESSION_DISABLED.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { cookieOf } from './helpers/app.js'

async function roundTrip (app: FastifyInstance, prefix = ''): Promise<void> {
  const first = await app.inject(`${prefix}/set`)
  assert.equal(first.statusCode, 200, first.body)
  const set = cookieOf(first)
  assert.ok(set, 'the write sent a session cookie')
  const second = await app.inject({ url: `${prefix}/get`, headers: { cookie: set.pair } })
  assert.equal(second.statusCode, 200, second.body)
  assert.equal(second.body, 'bar')
}

function routes (app: FastifyInstance): void {
  app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
  app.get('/get', async (request) => request.session.get('foo') ?? 'none')
}

describe('registration layouts', () => {
  it('un-awaited register followed by routes in the same scope (Fastify docs style)', async () => {
    const app = Fastify()
    app.register(cookie)
    app.register(quartSession)
    routes(app)
    await roundTrip(app)
    await app.close()
  })

  it('routes declared before the plugin is registered', async () => {
    const app = Fastify()
    routes(app)
    await app.register(cookie)
    await app.register(quartSession)
    await roundTrip(app)
    await app.close()
  })

  it('routes in a later register scope, and in a nested one', async () => {
    const app = Fastify()
    app.register(cookie)
    app.register(quartSession)
    app.register(async (child) => {
      routes(child)
      child.register(async (grandchild) => { routes(grandchild) }, { prefix: '/deeper' })
    }, { prefix: '/child' })
    await roundTrip(app, '/child')
    await roundTrip(app, '/child/deeper')
    await app.close()
  })

  it('the plugin registered inside a scope serves that scope and its children', async () => {
    const app = Fastify()
    app.register(async (scope) => {
      scope.register(cookie)
      scope.register(quartSession)
      routes(scope)
      scope.register(async (child) => { routes(child) }, { prefix: '/inner' })
    }, { prefix: '/app' })
    await roundTrip(app, '/app')
    await roundTrip(app, '/app/inner')
    await app.close()
  })

  it('a route outside the plugin\'s scope gets an error that names the scope, not static files', async () => {
    const app = Fastify()
    app.register(async (scope) => {
      await scope.register(cookie)
      await scope.register(quartSession)
    })
    app.get('/outside', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
    const response = await app.inject('/outside')
    // Outside the scope the request has no session decorator at all, or an inert one that says why.
    assert.equal(response.statusCode, 500)
    assert.doesNotMatch(response.body, /static file/)
    await app.close()
  })

  it('setNotFoundHandler: the 404 page reads and writes the session', async () => {
    const app = Fastify()
    app.register(cookie)
    app.register(quartSession)
    routes(app)
    app.setNotFoundHandler(async (request, reply) => {
      const misses = (request.session.get('counter') ?? 0) + 1
      request.session.set('counter', misses)
      return await reply.code(404).send({ misses, foo: request.session.get('foo') ?? null })
    })
    const set = cookieOf(await app.inject('/set'))
    assert.ok(set)
    const first = await app.inject({ url: '/nowhere', headers: { cookie: set.pair } })
    assert.equal(first.statusCode, 404)
    assert.deepEqual(first.json(), { misses: 1, foo: 'bar' })
    const second = await app.inject({ url: '/nowhere/else', headers: { cookie: set.pair } })
    assert.deepEqual(second.json(), { misses: 2, foo: 'bar' })
    await app.close()
  })

  it('error-handler replies save the session and carry its cookie', async () => {
    const app = Fastify()
    app.register(cookie)
    app.register(quartSession)
    routes(app)
    app.get('/fail', async (request) => {
      request.session.set('foo', 'set-before-error')
      throw Object.assign(new Error('teapot'), { statusCode: 418 })
    })
    app.setErrorHandler(async (error, request, reply) => {
      request.session.set('other', 'set-in-error-handler')
      return await reply.code((error as { statusCode?: number }).statusCode ?? 500).send({ handled: true })
    })
    const failed = await app.inject('/fail')
    assert.equal(failed.statusCode, 418)
    const set = cookieOf(failed)
    assert.ok(set, 'the error reply carries the cookie')
    const read = await app.inject({ url: '/get', headers: { cookie: set.pair } })
    assert.equal(read.body, 'set-before-error')
    await app.close()
  })

  it('config: { session: true } on a route still works, and config.session of another type fails at registration', async () => {
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession)
    app.get('/explicit', { config: { session: true } }, async (request) => { request.session.set('foo', 'x'); return 'ok' })
    assert.throws(() => app.get('/bad', { config: { session: 'yes' as never } }, async () => 'x'), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.ok(cookieOf(await app.inject('/explicit')))
    await app.close()
  })

  it('CommonJS: require() of the package, un-awaited register, routes after', async () => {
    const script = fileURLToPath(new URL('./fixtures/commonjs-app.cjs', import.meta.url))
    const { stdout } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 })
    assert.equal(stdout.trim(), 'bar')
  })
})

describe('hook order', () => {
  for (const awaited of [true, false]) {
    it(`onRequest hooks added after the plugin see the session (${awaited ? 'awaited' : 'un-awaited'} register)`, async () => {
      const app = Fastify()
      const seen: string[] = []
      if (awaited) {
        await app.register(cookie)
        await app.register(quartSession)
      } else {
        app.register(cookie)
        app.register(quartSession)
      }
      app.addHook('onRequest', async (request) => { seen.push(`app:${request.session.get('foo') ?? 'none'}`) })
      routes(app)
      app.get('/guarded', {
        onRequest: async (request) => { seen.push(`route:${request.session.get('foo') ?? 'none'}`) }
      }, async (request) => request.session.get('foo') ?? 'none')
      const set = cookieOf(await app.inject('/set'))
      assert.ok(set)
      seen.length = 0
      const response = await app.inject({ url: '/guarded', headers: { cookie: set.pair } })
      assert.equal(response.body, 'bar')
      assert.deepEqual(seen, ['app:bar', 'route:bar'])
      await app.close()
    })
  }
})

