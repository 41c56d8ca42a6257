// @fastify/csrf-protection on top of this plugin, in both of its session modes:
// '@fastify/session' reads and writes `request.session._csrf` as a property, and
// '@fastify/secure-session' uses get/set and `session.options(opts)`. The hook sits where its
// README puts it: a route's `onRequest`, an app-level `onRequest` added after the plugin, and
// `preHandler`. What a user checks: a valid token passes (200), a missing or wrong one is
// refused (403). Also the hook-order guarantee those placements rely on (issue 9, point 2): any
// onRequest hook added after the plugin, app-level or route-level, sees the loaded session.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type HookHandlerDoneFunction } from 'fastify'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import csrf from '@fastify/csrf-protection'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { SECRET, cookieOf } from './helpers/app.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'

declare module '../lib/index.js' {
  interface SessionData {
    /** The secret @fastify/csrf-protection keeps in the session (its default sessionKey). */
    _csrf: string
  }
}

type SessionPlugin = '@fastify/session' | '@fastify/secure-session'
type Placement = 'route onRequest' | 'app onRequest' | 'scope onRequest' | 'route preHandler'

const MODES: SessionPlugin[] = ['@fastify/session', '@fastify/secure-session']
const PLACEMENTS: Placement[] = ['route onRequest', 'app onRequest', 'scope onRequest', 'route preHandler']

/** Unsafe methods only: the page that hands out the token is a GET and must not need one. */
function unlessSafe (app: FastifyInstance) {
  return function csrfUnlessSafe (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (request.method === 'GET' || request.method === 'HEAD') {
      done()
      return
    }
    app.csrfProtection(request, reply, done)
  }
}

/**
 * GET /form hands out a token (creating the secret in the session), POST /submit is protected
 * with the hook at `placement`. On preHandler the token comes in the urlencoded body (`_csrf`),
 * as a form sends it; on onRequest the body is not parsed yet, so it comes in a header.
 */
async function buildApp (
  sessionPlugin: SessionPlugin,
  placement: Placement,
  { sessionOptions = {}, routes }: { sessionOptions?: QuartSessionOptions, routes?: (app: FastifyInstance) => void } = {}
): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(cookie)
  await app.register(formbody)
  await app.register(quartSession, { secret: SECRET, ...sessionOptions })
  await app.register(csrf, { sessionPlugin })

  app.get('/form', async (request, reply) => ({ token: reply.generateCsrf() }))
  const submit = async (): Promise<string> => 'accepted'
  switch (placement) {
    case 'route onRequest':
      app.post('/submit', { onRequest: app.csrfProtection }, submit)
      break
    case 'app onRequest':
      app.addHook('onRequest', unlessSafe(app))
      app.post('/submit', submit)
      break
    case 'scope onRequest':
      // app.csrfProtection itself as the hook, in a scope that holds only protected routes.
      await app.register(async (scope) => {
        scope.addHook('onRequest', app.csrfProtection)
        scope.post('/submit', submit)
      })
      break
    case 'route preHandler':
      app.post('/submit', { preHandler: app.csrfProtection }, submit)
      break
  }
  routes?.(app)
  await app.ready()
  return app
}

interface Visitor { cookie: string, token: string }

async function visitForm (app: FastifyInstance): Promise<Visitor> {
  const response = await app.inject('/form')
  assert.equal(response.statusCode, 200, response.body)
  const set = cookieOf(response)
  assert.ok(set, 'handing out a token stores its secret in the session')
  return { cookie: set.pair, token: JSON.parse(response.body).token }
}

async function submit (app: FastifyInstance, placement: Placement, cookie: string | undefined, token: string | undefined): Promise<number> {
  const headers: Record<string, string> = {}
  if (cookie !== undefined) headers.cookie = cookie
  if (placement === 'route preHandler') {
    headers['content-type'] = 'application/x-www-form-urlencoded'
    const payload = new URLSearchParams(token === undefined ? { text: 'hi' } : { text: 'hi', _csrf: token }).toString()
    return (await app.inject({ method: 'POST', url: '/submit', headers, payload })).statusCode
  }
  if (token !== undefined) headers['csrf-token'] = token
  return (await app.inject({ method: 'POST', url: '/submit', headers })).statusCode
}

for (const mode of MODES) {
  describe(`@fastify/csrf-protection with sessionPlugin '${mode}'`, () => {
    for (const placement of PLACEMENTS) {
      describe(placement, () => {
        let app: FastifyInstance
        before(async () => { app = await buildApp(mode, placement) })
        after(async () => { await app?.close() })

        it('a valid token passes, and keeps passing on later requests', async () => {
          const visitor = await visitForm(app)
          assert.equal(await submit(app, placement, visitor.cookie, visitor.token), 200)
          assert.equal(await submit(app, placement, visitor.cookie, visitor.token), 200)
        })

        it('a missing token is refused with 403', async () => {
          const visitor = await visitForm(app)
          assert.equal(await submit(app, placement, visitor.cookie, undefined), 403)
        })

        it('a wrong token is refused with 403: garbage, or a valid token of another session', async () => {
          const visitor = await visitForm(app)
          const other = await visitForm(app)
          assert.equal(await submit(app, placement, visitor.cookie, 'not-a-token'), 403)
          assert.equal(await submit(app, placement, visitor.cookie, other.token), 403)
        })

        it('a token without its session cookie is refused with 403', async () => {
          const visitor = await visitForm(app)
          assert.equal(await submit(app, placement, undefined, visitor.token), 403)
        })
      })
    }
  })
}

describe('@fastify/csrf-protection specifics', () => {
  it("'@fastify/session' mode: the secret is stored as the session's _csrf key, and one secret serves many tokens", async () => {
    const app = await buildApp('@fastify/session', 'route onRequest', {
      routes: (app) => { app.get('/secret', async (request) => ({ property: request.session._csrf, get: request.session.get('_csrf') })) }
    })
    const visitor = await visitForm(app)
    const secret = JSON.parse((await app.inject({ url: '/secret', headers: { cookie: visitor.cookie } })).body)
    assert.equal(typeof secret.property, 'string')
    assert.equal(secret.property, secret.get, 'property access and get() see the same key')
    const second = await app.inject({ url: '/form', headers: { cookie: visitor.cookie } })
    assert.equal(cookieOf(second), undefined, 'a second token reuses the stored secret: no write, no cookie')
    assert.equal(await submit(app, 'route onRequest', visitor.cookie, JSON.parse(second.body).token), 200)
    await app.close()
  })

  it("'@fastify/secure-session' mode: generateCsrf(opts) hands its cookie options to session.options() (maxAge in seconds)", async () => {
    const app = await buildApp('@fastify/secure-session', 'route onRequest', {
      routes: (app) => { app.get('/form-long', async (request, reply) => ({ token: reply.generateCsrf({ maxAge: 3600, path: '/' }) })) }
    })
    const response = await app.inject('/form-long')
    assert.equal(response.statusCode, 200, response.body)
    const set = cookieOf(response)
    assert.ok(set)
    assert.equal(set.attributes['max-age'], '3600')
    assert.equal(await submit(app, 'route onRequest', set.pair, JSON.parse(response.body).token), 200)
    await app.close()
  })

  it('logout (destroy) invalidates the tokens of the session', async () => {
    const app = await buildApp('@fastify/session', 'route onRequest', {
      routes: (app) => { app.post('/logout', async (request) => { await request.session.destroy(); return 'bye' }) }
    })
    const visitor = await visitForm(app)
    assert.equal(await submit(app, 'route onRequest', visitor.cookie, visitor.token), 200)
    assert.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie: visitor.cookie } })).statusCode, 200)
    assert.equal(await submit(app, 'route onRequest', visitor.cookie, visitor.token), 403)
    await app.close()
  })

  for (const mode of MODES) {
    it(`un-awaited registration (cookie, session, csrf), routes right after ('${mode}')`, async () => {
      const app = Fastify()
      app.register(cookie)
      app.register(quartSession, { secret: SECRET })
      app.register(csrf, { sessionPlugin: mode })
      app.get('/form', async (request, reply) => ({ token: reply.generateCsrf() }))
      // app.csrfProtection does not exist yet at this line (csrf is not loaded), so the route
      // hook reaches it when it runs; the app-level hook is added once the plugins loaded.
      app.post('/submit', { onRequest: (request, reply, done) => { app.csrfProtection(request, reply, done) } }, async () => 'accepted')
      app.register(async (scope) => {
        scope.addHook('onRequest', unlessSafe(app))
        scope.post('/scoped', async () => 'accepted')
      })
      app.addHook('onRequest', unlessSafe(app))
      app.post('/global', async () => 'accepted')

      const visitor = await visitForm(app)
      for (const url of ['/submit', '/scoped', '/global']) {
        const ok = await app.inject({ method: 'POST', url, headers: { cookie: visitor.cookie, 'csrf-token': visitor.token } })
        assert.equal(ok.statusCode, 200, `${url}: ${ok.body}`)
        const missing = await app.inject({ method: 'POST', url, headers: { cookie: visitor.cookie } })
        assert.equal(missing.statusCode, 403, url)
        const wrong = await app.inject({ method: 'POST', url, headers: { cookie: visitor.cookie, 'csrf-token': 'x' + visitor.token } })
        assert.equal(wrong.statusCode, 403, url)
      }
      await app.close()
    })
  }
})

describe('@fastify/csrf-protection on a real redis-server', () => {
  let server: RedisServer
  before(async () => { server = await startRedis() })
  after(async () => { await server?.stop() })

  for (const mode of MODES) {
    it(`valid token 200, missing or wrong 403 ('${mode}', route onRequest)`, async () => {
      const app = await buildApp(mode, 'route onRequest', { sessionOptions: { type: 'redis', uri: server.url } })
      const visitor = await visitForm(app)
      const other = await visitForm(app)
      assert.equal(await submit(app, 'route onRequest', visitor.cookie, visitor.token), 200)
      assert.equal(await submit(app, 'route onRequest', visitor.cookie, undefined), 403)
      assert.equal(await submit(app, 'route onRequest', visitor.cookie, other.token), 403)
      await app.close()
    })
  }
})

describe('hook order: onRequest hooks added after the plugin see the loaded session', () => {
  for (const awaited of [true, false]) {
    const layout = awaited ? 'awaited' : 'un-awaited'

    it(`app-level and route-level onRequest, async and callback style (${layout} register)`, async () => {
      const seen: string[] = []
      const app = Fastify()
      if (awaited) {
        await app.register(cookie)
        await app.register(quartSession)
      } else {
        app.register(cookie)
        app.register(quartSession)
      }
      app.addHook('onRequest', async (request) => { seen.push(`app async:${request.session.get('foo') ?? 'none'}`) })
      app.addHook('onRequest', (request, reply, done) => {
        seen.push(`app callback:${request.session.get('foo') ?? 'none'}`)
        done()
      })
      app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
      app.get('/read', {
        onRequest: [
          async (request) => { seen.push(`route async:${request.session.get('foo') ?? 'none'}`) },
          (request, reply, done) => {
            seen.push(`route callback:${request.session.foo ?? 'none'}`)
            done()
          }
        ]
      }, async () => 'read')

      const set = cookieOf(await app.inject('/set'))
      assert.ok(set)
      seen.length = 0
      const read = await app.inject({ url: '/read', headers: { cookie: set.pair } })
      assert.equal(read.statusCode, 200, read.body)
      assert.deepEqual(seen, ['app async:bar', 'app callback:bar', 'route async:bar', 'route callback:bar'])
      await app.close()
    })

    it(`an onRequest hook can write the session and the handler sees it (${layout} register)`, async () => {
      const app = Fastify()
      if (awaited) {
        await app.register(cookie)
        await app.register(quartSession)
      } else {
        app.register(cookie)
        app.register(quartSession)
      }
      app.addHook('onRequest', async (request) => {
        request.session.set('counter', (request.session.get('counter') ?? 0) + 1)
      })
      app.get('/count', async (request) => request.session.get('counter'))
      const first = await app.inject('/count')
      assert.equal(first.body, '1')
      const set = cookieOf(first)
      assert.ok(set)
      const second = await app.inject({ url: '/count', headers: { cookie: set.pair } })
      assert.equal(second.body, '2')
      await app.close()
    })
  }
})
