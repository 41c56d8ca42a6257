// @fastify/flash on top of this plugin, over real HTTP: the post/redirect/get pattern a form
// handler uses. A message flashed before a 302 is shown once by the page the browser is sent to,
// and not again. Runs on the memory store and on a real redis-server.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import flash from '@fastify/flash'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { SECRET } from './helpers/app.js'
import { send } from './helpers/http.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'

declare module '../lib/index.js' {
  interface SessionData {
    /** Where @fastify/flash keeps pending messages, by type. */
    flash: Record<string, string[]>
  }
}


/** A tiny notes app: POST /notes flashes and redirects; GET /notes shows the flashed messages. */
async function buildApp (options: QuartSessionOptions): Promise<{ app: FastifyInstance, base: string }> {
  const app = Fastify()
  await app.register(cookie)
  await app.register(formbody)
  await app.register(quartSession, { secret: SECRET, ...options })
  await app.register(flash)

  app.post<{ Body: { text?: string } }>('/notes', async (request, reply) => {
    if (request.body.text === undefined || request.body.text === '') {
      request.flash('error', 'A note needs some text')
    } else {
      request.flash('info', `Saved "${request.body.text}"`)
      request.flash('info', 'You have %s note(s)', '1')
    }
    return reply.redirect('/notes')
  })
  app.get('/notes', async (request, reply) => ({ info: reply.flash('info'), error: reply.flash('error') }))
  app.get('/peek', async (request) => request.session.get('flash') ?? null)

  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  return { app, base: `http://127.0.0.1:${address.port}` }
}

function flashFlows (name: string, options: () => QuartSessionOptions): void {
  describe(`@fastify/flash across a redirect (${name})`, () => {
    let app: FastifyInstance
    let base: string
    before(async () => { ({ app, base } = await buildApp(options())) })
    after(async () => { await app?.close() })

    it('a first-time visitor: the 302 carries the new session cookie, the next page shows the message once', async () => {
      const post = await send(base, '/notes', { method: 'POST', form: { text: 'milk' } })
      assert.equal(post.status, 302)
      assert.equal(post.location, '/notes')
      assert.ok(post.cookie, 'the redirect sets the session cookie that holds the flash')
      const cookie = post.cookie.pair

      const shown = await send(base, post.location, { cookie })
      assert.equal(shown.status, 200)
      assert.deepEqual(JSON.parse(shown.body), { info: ['Saved "milk"', 'You have 1 note(s)'], error: [] })

      const again = await send(base, '/notes', { cookie })
      assert.equal(again.status, 200)
      assert.deepEqual(JSON.parse(again.body), { info: [], error: [] }, 'a flash message is shown once')
    })

    it('a returning visitor keeps their session id; each type is consumed on its own', async () => {
      const first = await send(base, '/notes', { method: 'POST', form: { text: 'eggs' } })
      assert.ok(first.cookie)
      const cookie = first.cookie.pair
      await send(base, '/notes', { cookie })

      const post = await send(base, '/notes', { method: 'POST', cookie, form: { text: '' } })
      assert.equal(post.status, 302)
      assert.ok(post.cookie === undefined || post.cookie.value === first.cookie.value, 'the same session carries the new message')
      assert.deepEqual(await (await fetch(`${base}/peek`, { headers: { cookie } })).json(), { error: ['A note needs some text'] })

      const shown = await send(base, '/notes', { cookie })
      assert.deepEqual(JSON.parse(shown.body), { info: [], error: ['A note needs some text'] })
      assert.deepEqual(JSON.parse((await send(base, '/notes', { cookie })).body), { info: [], error: [] })
    })

    // Core gap against "writes only on change": reply.flash() always stores a new object, even
    // `{}` over `{}`; set() of an object counts as a change without comparing it with what was
    // loaded, so every page that reads flash messages rewrites the session and re-sends the
    // cookie. (@fastify/session rewrites here too, but it saves on every request by default.)
    it('bug: a page that finds no flash messages rewrites the session (set() of an equal object is a change)', async () => {
      const post = await send(base, '/notes', { method: 'POST', form: { text: 'tea' } })
      assert.ok(post.cookie)
      const cookie = post.cookie.pair
      await send(base, '/notes', { cookie })
      const idle = await send(base, '/notes', { cookie })
      assert.deepEqual(JSON.parse(idle.body), { info: [], error: [] })
      assert.equal(idle.cookie, undefined, 'nothing changed: no write, no Set-Cookie')
    })

    it('two visitors never see each other\'s messages', async () => {
      const alice = await send(base, '/notes', { method: 'POST', form: { text: 'alice' } })
      const bob = await send(base, '/notes', { method: 'POST', form: { text: 'bob' } })
      assert.ok(alice.cookie && bob.cookie)
      assert.notEqual(alice.cookie.value, bob.cookie.value)
      assert.deepEqual(JSON.parse((await send(base, '/notes', { cookie: bob.cookie.pair })).body).info[0], 'Saved "bob"')
      assert.deepEqual(JSON.parse((await send(base, '/notes', { cookie: alice.cookie.pair })).body).info[0], 'Saved "alice"')
    })
  })
}

flashFlows('memory store', () => ({}))

describe('on a real redis-server', () => {
  let server: RedisServer
  before(async () => { server = await startRedis() })
  after(async () => { await server?.stop() })
  flashFlows('type redis', () => ({ type: 'redis', uri: server.url }))
})
