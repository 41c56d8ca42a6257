// Issue 19: @fastify/cookie registered after the plugin gave Fastify's generic "dependency … is not
// registered", and a second registration "The decorator 'sessionStore' has already been added!".
// Both now fail ready() with our code and say what to do; every layout that works keeps working.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { SECRET, cookieOf } from './helpers/app.js'

async function readyError (app: FastifyInstance): Promise<Error & { code?: string }> {
  try {
    await app.ready()
  } catch (err) {
    return err as Error & { code?: string }
  } finally {
    await app.close()
  }
  assert.fail('ready() succeeded')
}

function routes (app: FastifyInstance): void {
  app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
  app.get('/read', async (request) => request.session.get('foo') ?? 'none')
}

/** A session written on one request is read on the next. */
async function assertSessionsWork (app: FastifyInstance, prefix = ''): Promise<void> {
  const set = cookieOf(await app.inject(`${prefix}/set`))
  assert.ok(set, 'the write sent a session cookie')
  assert.equal((await app.inject({ url: `${prefix}/read`, headers: { cookie: set.pair } })).body, 'bar')
}

describe('@fastify/cookie missing or registered after the plugin', () => {
  const layouts: Array<[string, (app: FastifyInstance) => void]> = [
    ['registered after the plugin', (app) => { app.register(quartSession); app.register(cookie) }],
    ['awaited plugin, cookie after', (app) => { app.register(quartSession).after(() => { app.register(cookie) }) }],
    ['not registered at all', (app) => { app.register(quartSession) }],
    ['registered in a sibling scope', (app) => {
      app.register(async (scope) => { await scope.register(cookie) })
      app.register(quartSession)
    }]
  ]
  for (const [name, layout] of layouts) {
    it(`${name}: ready() fails with FST_QUART_SESSION_NO_COOKIE_PLUGIN saying what to do`, async () => {
      const app = Fastify()
      layout(app)
      const err = await readyError(app)
      assert.equal(err.code, 'FST_QUART_SESSION_NO_COOKIE_PLUGIN', String(err))
      assert.match(err.message, /register @fastify\/cookie before fastify-quart-session/)
      // The words Fastify's own check used, so a search for the old message still finds this one.
      assert.match(err.message, /The dependency '@fastify\/cookie' of plugin 'fastify-quart-session' is not registered/)
    })
  }

  it('the un-awaited layout of Fastify\'s docs (cookie first, neither awaited) keeps working', async () => {
    const app = Fastify()
    app.register(cookie)
    app.register(quartSession, { store: new MemoryStore(), secret: SECRET })
    routes(app)
    await assertSessionsWork(app)
    await app.close()
  })

  it('cookie in a parent scope, the plugin in a child scope', async () => {
    const app = Fastify()
    app.register(cookie)
    app.register(async (scope) => {
      scope.register(quartSession, { store: new MemoryStore() })
      scope.after(() => { routes(scope) })
    }, { prefix: '/child' })
    await assertSessionsWork(app, '/child')
    await app.close()
  })
})

describe('the plugin registered twice, or next to another session plugin', () => {
  it('twice at the root: FST_QUART_SESSION_ALREADY_REGISTERED, register it once', async () => {
    const app = Fastify()
    app.register(cookie)
    app.register(quartSession)
    app.register(quartSession)
    const err = await readyError(app)
    assert.equal(err.code, 'FST_QUART_SESSION_ALREADY_REGISTERED', String(err))
    assert.match(err.message, /already provided by an earlier registration of fastify-quart-session/)
    assert.match(err.message, /register one session plugin, once, at the root of the app/)
  })

  it('at the root and again in a child scope (awaited): the same error', async () => {
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession)
    app.register(async (scope) => { await scope.register(quartSession, { cookieName: 'other' }) })
    const err = await readyError(app)
    assert.equal(err.code, 'FST_QUART_SESSION_ALREADY_REGISTERED', String(err))
  })

  it('after @fastify/session: names it', async () => {
    // Loaded without its types: they and ours both declare FastifyRequest.session.
    const { default: fastifySession } = await import('@fastify/session' as string) as { default: FastifyPluginAsync<{ secret: string }> }
    const app = Fastify()
    app.register(cookie)
    app.register(fastifySession, { secret: SECRET })
    app.register(quartSession)
    const err = await readyError(app)
    assert.equal(err.code, 'FST_QUART_SESSION_ALREADY_REGISTERED', String(err))
    assert.match(err.message, /already provided by @fastify\/session/)
  })

  it('once in each of two sibling scopes is fine: each scope has its own sessions', async () => {
    const app = Fastify()
    app.register(cookie)
    for (const prefix of ['/a', '/b']) {
      app.register(async (scope) => {
        await scope.register(quartSession, { store: new MemoryStore() })
        routes(scope)
      }, { prefix })
    }
    await assertSessionsWork(app, '/a')
    await assertSessionsWork(app, '/b')
    // Separate stores: a cookie of /a names nothing in /b.
    const set = cookieOf(await app.inject('/a/set'))
    assert.ok(set)
    assert.equal((await app.inject({ url: '/b/read', headers: { cookie: set.pair } })).body, 'none')
    await app.close()
  })
})
