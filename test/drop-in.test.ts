// Code written for @fastify/session, run against this plugin: the behaviours the issue found
// different, each checked the way that code checks it.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import { Authenticator } from '@fastify/passport'
import { Strategy as LocalStrategy } from 'passport-local'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { build, cookieOf, CountingStore, SECRET, sessionRoutes, setCookieCount } from './helpers/app.js'

/** Log lines an app writes, parsed. */
function capture (): { lines: Array<{ level: number, msg: string, err?: { message?: string } }>, stream: Writable } {
  const lines: Array<{ level: number, msg: string }> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
      done()
    }
  })
  return { lines, stream }
}

async function app (options: QuartSessionOptions, routes: (app: FastifyInstance) => void, stream?: Writable): Promise<FastifyInstance> {
  const instance = Fastify(stream === undefined ? {} : { logger: { level: 'info', stream } })
  await instance.register(cookie)
  await instance.register(quartSession, options)
  routes(instance)
  await instance.ready()
  return instance
}

describe('behaviour code written for @fastify/session relies on', () => {
  it('"remember me": session.options({ maxAge }) makes a browser-session cookie persistent', async () => {
    const instance = await app({ secret: SECRET, permanent: false }, (a) => {
      a.post('/login', async (request) => {
        request.session.set('user', { id: 'u', name: 'U' })
        if ((request.query as { remember?: string }).remember === '1') request.session.options({ maxAge: 3600 })
        return { expires: request.session.cookie.expires }
      })
    })
    const plain = await instance.inject({ method: 'POST', url: '/login' })
    assert.equal(cookieOf(plain)?.attributes['max-age'], undefined, 'without remember me: a browser-session cookie')
    assert.equal(plain.json().expires, null)
    const remembered = await instance.inject({ method: 'POST', url: '/login?remember=1' })
    assert.equal(cookieOf(remembered)?.attributes['max-age'], '3600')
    assert.ok(cookieOf(remembered)?.attributes.expires)
    assert.ok(Date.parse(remembered.json().expires) > Date.now() + 3500 * 1000)
    await instance.close()
  })

  it('request.sessionStore is fastify.sessionStore', async () => {
    const instance = await app({}, (a) => {
      a.get('/same', async function (request) {
        await request.sessionStore.set('note', 'x', 60)
        return { same: request.sessionStore === this.sessionStore, note: await this.sessionStore.get('note') }
      })
    })
    assert.deepEqual((await instance.inject('/same')).json(), { same: true, note: 'x' })
    await instance.close()
  })

  it('cookie.path is enforced on the server: a request outside it gets no session, as in @fastify/session', async () => {
    const store = new CountingStore()
    const instance = await app({ store, cookie: { path: '/check' } }, (a) => {
      a.get('/check', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
      a.get('/check/sub', async (request) => request.session.get('foo') ?? 'none')
      a.get('/check_page1', async (request) => request.session.get('foo') ?? 'none')
      a.get('/check_page1/write', async (request) => {
        try { request.session.set('foo', 'x'); return 'written' } catch (err) { return (err as { code: string }).code }
      })
    })
    const set = cookieOf(await instance.inject('/check'))
    assert.ok(set)
    assert.equal(set.attributes.path, '/check')
    assert.equal((await instance.inject({ url: '/check/sub', headers: { cookie: set.pair } })).body, 'bar')
    store.reset()
    assert.equal((await instance.inject({ url: '/check_page1', headers: { cookie: set.pair } })).body, 'none')
    assert.equal(store.count(), 0, 'not even read')
    assert.equal((await instance.inject({ url: '/check_page1/write', headers: { cookie: set.pair } })).body, 'FST_QUART_SESSION_DISABLED')
    await instance.close()
  })

  it('cookie.secure: true on plain http: the Secure cookie still goes out (TLS-terminating proxies), with a one-time hint in the log', async () => {
    const { lines, stream } = capture()
    const instance = await app({ cookie: { secure: true } }, sessionRoutes, stream)
    for (let i = 0; i < 3; i++) {
      const response = await instance.inject('/set')
      assert.ok(cookieOf(response)?.attributes.secure, 'Secure cookie sent')
    }
    const hints = lines.filter((l) => l.msg.includes('Secure session cookie went out on a plain-http request'))
    assert.equal(hints.length, 1)
    assert.equal(hints[0].level, 40)
    await instance.close()
  })

  it('a backend failure logs one line that says what failed, without repeating itself', async () => {
    const { lines, stream } = capture()
    const store = new CountingStore()
    const instance = await app({ store }, sessionRoutes, stream)
    const set = cookieOf(await instance.inject('/set'))
    assert.ok(set)
    store.failing = new Set(['get'])
    const response = await instance.inject({ url: '/read', headers: { cookie: set.pair } })
    assert.equal(response.statusCode, 503)
    assert.ok(!response.body.includes('refused (test)'), 'the client never sees the backend\'s words')
    const errors = lines.filter((l) => l.level >= 50)
    assert.equal(errors.length, 1, JSON.stringify(errors))
    const text = errors[0].err?.message ?? ''
    assert.match(text, /during read/)
    assert.match(text, /backend get refused \(test\)/)
    assert.equal(text.split('Session backend failed').length - 1, 1, `said once: ${text}`)
    await instance.close()
  })
})

describe('@fastify/passport with successRedirect and an async handler', () => {
  it('logs nothing: the duplicate send while the save is in flight is dropped quietly, and the login works', async () => {
    const { lines, stream } = capture()
    const passport = new Authenticator()
    passport.use('local', new LocalStrategy((username, password, done) => { done(null, username === 'ada' && password === 'pw' ? { id: 'u1' } : false) }))
    passport.registerUserSerializer(async (user: { id: string }) => user.id)
    passport.registerUserDeserializer(async (id: string) => ({ id }))
    const instance = Fastify({ logger: { level: 'info', stream } })
    await instance.register(cookie)
    await instance.register(formbody)
    await instance.register(quartSession, { secret: SECRET, store: new CountingStore() })
    await instance.register(passport.initialize())
    await instance.register(passport.secureSession())
    instance.post('/login', { preValidation: passport.authenticate('local', { successRedirect: '/me' }) }, async () => '')
    instance.get('/me', async (request) => request.isAuthenticated() ? 'in' : 'out')
    const base = await instance.listen({ port: 0, host: '127.0.0.1' })
    for (let i = 0; i < 3; i++) {
      const login = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=ada&password=pw' })
      assert.equal(login.status, 302)
      const set = login.headers.getSetCookie().find((c) => c.startsWith('session='))
      assert.ok(set, 'the redirect carries the session cookie')
      assert.equal(await (await fetch(`${base}/me`, { headers: { cookie: set.split(';')[0] } })).text(), 'in')
    }
    const noisy = lines.filter((l) => l.level >= 40)
    assert.deepEqual(noisy.map((l) => l.msg), [])
    await instance.close()
  })
})

describe('what a request leaves alone', () => {
  it('an unknown cookie gets a fresh session and no Set-Cookie until something is stored', async () => {
    const instance = await build({}, sessionRoutes)
    const response = await instance.inject({ url: '/read', headers: { cookie: 'session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } })
    assert.equal(response.body, 'none')
    assert.equal(setCookieCount(response), 0)
    await instance.close()
  })
})
