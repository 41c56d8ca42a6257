// Issue 9: no request can crash the process, and clients never see backend internals.
// Every case runs over real HTTP against every built-in backend on a real server.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import cookie, { Signer } from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions, type SessionStore } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { SECRET, OLD_SECRET, cookieOf } from './helpers/app.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'
import { startMemcached, type MemcachedServer } from './helpers/memcached-server.js'
import { CrashWatch } from './helpers/fuzz-watch.js'

// Header values Node refuses in writeHead (ERR_INVALID_CHAR): what a handler copies from a request.
const BAD_HEADERS = {
  'redirect to a CJK path': '/bad?how=redirect&next=/%E4%B8%AD',
  'redirect with CR/LF': '/bad?how=redirect&next=/a%0D%0ASet-Cookie:%20admin=1',
  'Content-Disposition with a CJK file name': '/bad?how=disposition'
} as const

type SessionUse = 'set' | 'touch' | 'read'

function replyWithBadHeader (request: FastifyRequest, reply: FastifyReply): unknown {
  const query = request.query as { how: string, next: string }
  if (query.how === 'redirect') return reply.redirect(query.next)
  reply.header('content-disposition', 'attachment; filename="請求書.pdf"')
  return 'file'
}

function routes (app: FastifyInstance): void {
  app.get('/start', async (request) => { request.session.set('foo', 'bar'); return 'started' })
  app.get('/read', async (request) => request.session.get('foo') ?? 'none')
  app.get('/bad', async (request, reply) => {
    const use = request.headers['x-use'] as SessionUse
    if (use === 'set') request.session.set('counter', 1)
    else if (use === 'touch') request.session.touch()
    else request.session.get('foo')
    return replyWithBadHeader(request, reply)
  })
}

async function appOn (options: QuartSessionOptions): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await app.register(cookie)
  await app.register(quartSession, { secret: [SECRET, OLD_SECRET], ...options })
  routes(app)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url }
}

async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string, setCookie: string | null }> {
  const response = await fetch(url, { headers, redirect: 'manual' })
  return { status: response.status, body: await response.text(), setCookie: response.headers.get('set-cookie') }
}

/** A new session stored in the backend; its cookie signed with the current secret and with the old one. */
async function startSession (url: string): Promise<{ current: string, old: string }> {
  const response = await get(url + '/start')
  assert.equal(response.status, 200)
  assert.ok(response.setCookie, 'the session was stored')
  const parsed = cookieOf({ headers: { 'set-cookie': response.setCookie } })
  assert.ok(parsed)
  const signed = decodeURIComponent(parsed.value)
  const id = signed.slice(0, signed.lastIndexOf('.'))
  return { current: `session=${signed}`, old: `session=${new Signer([OLD_SECRET], 'sha256').sign(id)}` }
}

interface BackendCase {
  name: string
  options: () => QuartSessionOptions
}

describe('no request can crash the process: header values Node refuses, on every backend, over HTTP', { timeout: 120_000 }, () => {
  const watch = new CrashWatch()
  let redis: RedisServer
  let memcached: MemcachedServer
  let directory: string

  before(async () => {
    watch.install()
    ;[redis, memcached, directory] = await Promise.all([
      startRedis(),
      startMemcached(),
      mkdtemp(join(tmpdir(), 'quart-crash-safety-'))
    ])
  })

  after(async () => {
    watch.uninstall()
    await Promise.all([redis?.stop(), memcached?.stop(), directory === undefined ? undefined : rm(directory, { recursive: true, force: true })])
  })

  const backends: BackendCase[] = [
    { name: 'memory', options: () => ({ store: new MemoryStore() }) },
    { name: 'redis', options: () => ({ type: 'redis', uri: redis.url }) },
    { name: 'memcached', options: () => ({ type: 'memcached', servers: memcached.location }) },
    { name: 'filesystem', options: () => ({ type: 'filesystem', directory }) }
  ]

  for (const backend of backends) {
    it(`${backend.name}: set, touch() and an old-secret cookie, each with a refused header → 500, process alive, next request works`, async () => {
      const { app, url } = await appOn(backend.options())
      try {
        for (const [what, path] of Object.entries(BAD_HEADERS)) {
          for (const use of ['set', 'touch', 'read'] as const) {
            const session = await startSession(url)
            // 'read' sends the cookie of the older secret: the plugin re-issues it on this reply.
            const sent = use === 'read' ? session.old : session.current
            const bad = await get(url + path, { 'x-use': use, cookie: sent })
            assert.equal(bad.status, 500, `${what} (${use}): ${bad.body}`)
            assert.equal(JSON.parse(bad.body).code, 'ERR_INVALID_CHAR', 'Fastify\'s own error for the header')
            await watch.assertNone()

            const next = await get(url + '/read', { cookie: sent })
            assert.equal(next.status, 200, `the server still answers after ${what} (${use})`)
            assert.equal(next.body, 'bar', 'the session survived the failed reply')
          }
          const fresh = await get(url + '/start')
          assert.equal(fresh.status, 200)
          assert.ok(fresh.setCookie)
        }
      } finally {
        await app.close()
      }
      await watch.assertNone()
    })
  }

  it('without a secret (memory): the same replies, no crash', async () => {
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession, { store: new MemoryStore() })
    routes(app)
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      for (const path of Object.values(BAD_HEADERS)) {
        for (const use of ['set', 'touch', 'read'] as const) {
          const bad = await get(url + path, { 'x-use': use })
          assert.equal(bad.status, 500)
          await watch.assertNone()
          assert.equal((await get(url + '/read')).status, 200)
        }
      }
    } finally {
      await app.close()
    }
  })
})

// The words of real backend errors, which name hosts, ports and server state.
const BACKEND_WORDS = [
  'connect ECONNREFUSED 10.1.2.3:6379',
  "READONLY You can't write against a read only replica.",
  'WRONGTYPE Operation against a key holding the wrong kind of value'
]
const LEAKS = ['ECONNREFUSED', '10.1.2.3', '6379', 'READONLY', 'replica', 'WRONGTYPE', 'wrong kind']

/** A backend whose every operation fails with `message`, as a real client reports it. */
class BrokenStore implements SessionStore {
  constructor (readonly message: string) {}
  #fail (): never { throw Object.assign(new Error(this.message), { code: 'ECONNREFUSED', address: '10.1.2.3', port: 6379 }) }
  async get (): Promise<string | undefined> { this.#fail() }
  async set (): Promise<void> { this.#fail() }
  async delete (): Promise<void> { this.#fail() }
  async touch (): Promise<void> { this.#fail() }
  async compareAndSet (): Promise<boolean> { this.#fail() }
}

function logCapture (): { lines: string[], logger: { level: string, stream: { write: (line: string) => void } } } {
  const lines: string[] = []
  return { lines, logger: { level: 'info', stream: { write: (line: string) => { lines.push(line) } } } }
}

function assertNoInternals (response: { statusCode: number, body: string }, words: string[] = LEAKS): void {
  assert.equal(response.statusCode, 503, response.body)
  const body = JSON.parse(response.body) as { code: string, message: string }
  assert.ok(['FST_QUART_SESSION_BACKEND', 'FST_QUART_SESSION_TIMEOUT'].includes(body.code), body.code)
  assert.ok(body.message.length < 120, `a short message: ${body.message}`)
  for (const word of words) assert.ok(!response.body.includes(word), `the reply leaks "${word}": ${response.body}`)
}

describe('clients never see backend internals', { timeout: 60_000 }, () => {
  for (const message of BACKEND_WORDS) {
    it(`"${message.slice(0, 30)}…": 503 with the code and a generic message; the details are in the log`, async () => {
      const { lines, logger } = logCapture()
      const app = Fastify({ logger })
      await app.register(cookie)
      await app.register(quartSession, { store: new BrokenStore(message), secret: SECRET })
      routes(app)
      app.get('/logout', async (request) => { await request.session.destroy(); return 'bye' })
      app.get('/cache', async function () { return await this.sessionStore.get('random_key') ?? 'none' })
      await app.ready()
      const cookieHeader = `session=${new Signer([SECRET], 'sha256').sign('A'.repeat(32))}`

      const responses = {
        'read with a cookie': await app.inject({ url: '/read', headers: { cookie: cookieHeader } }),
        'write a new session': await app.inject('/start'),
        'destroy()': await app.inject({ url: '/logout', headers: { cookie: cookieHeader } }),
        'fastify.sessionStore.get': await app.inject('/cache')
      }
      for (const [what, response] of Object.entries(responses)) {
        assert.equal(response.statusCode, 503, what)
        assertNoInternals(response)
        assert.equal(response.headers['set-cookie'], undefined, `${what}: no cookie for a session that was not stored`)
      }
      const logged = lines.join('\n')
      assert.ok(logged.includes(message.slice(0, 20)), 'the backend\'s own words are in the log')
      await app.close()
    })
  }

  it('a real Redis that is stopped: 503 without its address or port; the details are in the log', async () => {
    const server = await startRedis()
    const { lines, logger } = logCapture()
    const app = Fastify({ logger })
    await app.register(cookie)
    await app.register(quartSession, { type: 'redis', uri: server.url, timeout: 1 })
    routes(app)
    const url = await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      const started = await get(url + '/start')
      assert.equal(started.status, 200)
      const parsed = cookieOf({ headers: { 'set-cookie': started.setCookie ?? '' } })
      assert.ok(parsed)
      await server.stop()
      lines.length = 0
      for (const [path, headers] of [['/read', { cookie: parsed.pair }], ['/start', {}]] as const) {
        const response = await get(url + path, headers)
        assertNoInternals({ statusCode: response.status, body: response.body }, ['127.0.0.1', String(server.port), 'ECONNREFUSED', 'Socket', 'closed'])
        assert.equal(response.setCookie, null)
      }
      assert.ok(lines.some((line) => JSON.parse(line).level >= 50), 'the failure is logged as an error')
      assert.ok(lines.some((line) => line.includes('"err"') && (line.includes(String(server.port)) || /ECONNREFUSED|closed|offline|timeout|answer/i.test(line))),
        'the log carries the client\'s own error')
    } finally {
      await app.close()
      await server.stop()
    }
  })
})

describe('the inert session of an opted-out route belongs to one request', () => {
  it('a write attempted on one request is never visible to another', async () => {
    const seen: Array<{ code?: string, csrf: unknown, get: unknown, has: boolean, same: boolean }> = []
    let previous: unknown
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession, { store: new MemoryStore() })
    app.get('/anon', { config: { session: false } }, async (request) => {
      const session = request.session as unknown as Record<string, unknown> & typeof request.session
      const entry = {
        csrf: session._csrf,
        get: session.get('_csrf' as 'foo'),
        has: '_csrf' in session,
        same: session === previous,
        code: undefined as string | undefined
      }
      previous = session
      try {
        session._csrf = 'token-of-request-' + String(seen.length)
      } catch (err) {
        entry.code = (err as { code?: string }).code
      }
      // Whatever the write did, replacing a member on this request's object must not reach the next.
      try { (session as { get: unknown }).get = () => 'planted' } catch {}
      seen.push(entry)
      return 'ok'
    })
    await app.ready()
    for (let i = 0; i < 3; i++) assert.equal((await app.inject('/anon')).statusCode, 200)
    for (const entry of seen) {
      assert.equal(entry.code, 'FST_QUART_SESSION_DISABLED', 'the write is refused, loudly')
      assert.equal(entry.csrf, undefined)
      assert.equal(entry.get, undefined, 'nothing planted by an earlier request')
      assert.equal(entry.has, false)
      assert.equal(entry.same, false, 'each request has its own inert session')
    }
    await app.close()
  })
})
