// @fastify/passport's local strategy on top of this plugin, driven over real HTTP the way a
// browser drives a login form: a visitor fills a cart, signs in (POST of a urlencoded form),
// reads a protected page and signs out. What is checked is what a user and an auditor would check:
// which cookie authenticates when, what the session holds after each step, and what is left in
// the store. Runs on the memory store and on a real redis-server.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'devalue'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import formbody from '@fastify/formbody'
import fastifyPassport from '@fastify/passport'
import { Strategy as LocalStrategy } from 'passport-local'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { SECRET, type ParsedCookie } from './helpers/app.js'
import { send } from './helpers/http.js'
import { useRedis } from './helpers/redis-server.js'
import { sessionKey } from './helpers/keys.js'

const { Authenticator } = fastifyPassport

declare module '../lib/index.js' {
  interface SessionData {
    theme: string
    /** What @fastify/passport stores: the serialized user. */
    passport: string
  }
}

interface User { id: string, name: string, password: string }
const USERS: User[] = [{ id: 'u1', name: 'Ada', password: 'correct horse battery staple' }]

/** The stored session data of an id, or undefined when the store holds no record for it. */
type Peek = (id: string) => Promise<Record<string, unknown> | undefined>

interface Backend {
  options: QuartSessionOptions
  peek: Peek
}


/** The session id inside a signed cookie value (`<id>.<signature>`). */
function idOf (cookie: ParsedCookie): string {
  return cookie.value.slice(0, cookie.value.lastIndexOf('.'))
}

/**
 * The app as @fastify/passport's README builds it: formbody for the login form, the session
 * plugin with a secret, `initialize()` and `secureSession()`, a local strategy, a serializer
 * pair. `theme` survives login (clearSessionIgnoreFields); everything else is dropped.
 */
async function buildApp (options: QuartSessionOptions): Promise<{ app: FastifyInstance, base: string }> {
  const passport = new Authenticator({ clearSessionIgnoreFields: ['theme'] })
  passport.use('local', new LocalStrategy((username, password, done) => {
    const user = USERS.find((u) => u.name === username)
    done(null, user !== undefined && user.password === password ? user : false)
  }))
  passport.registerUserSerializer(async (user: User) => user.id)
  passport.registerUserDeserializer(async (id: string) => USERS.find((u) => u.id === id) ?? null)

  const app = Fastify()
  await app.register(cookie)
  await app.register(formbody)
  await app.register(quartSession, { secret: SECRET, ...options })
  await app.register(passport.initialize())
  await app.register(passport.secureSession())

  app.get('/shop', async (request) => {
    const cart = request.session.get('cart') ?? { items: [] }
    cart.items.push('teapot')
    request.session.set('cart', cart)
    request.session.theme = 'dark'
    return 'added'
  })
  // As in passport's README: the redirect is the reply, so the handler is a no-op (sync, returning
  // nothing: an async one would send a second reply, see the last test).
  app.post('/login', {
    preValidation: passport.authenticate('local', { successRedirect: '/me', failureRedirect: '/login?failed' })
  }, () => {})
  app.post('/login-keep', {
    preValidation: passport.authenticate('local', { successRedirect: '/me', keepSessionInfo: true })
  }, () => {})
  app.post('/login-async', {
    preValidation: passport.authenticate('local', { successRedirect: '/me' })
  }, async () => {})
  app.get('/me', async (request, reply) => {
    if (!request.isAuthenticated()) return await reply.code(401).send('sign in first')
    return { name: (request.user as unknown as User).name, keys: Object.keys(request.session).sort() }
  })
  app.post('/logout', async (request) => {
    await request.logout()
    return 'signed out'
  })

  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  return { app, base: `http://127.0.0.1:${address.port}` }
}

function passportFlows (name: string, backend: () => Backend): void {
  describe(`@fastify/passport local strategy (${name})`, () => {
    let app: FastifyInstance
    let base: string
    let store: Backend

    before(async () => {
      store = backend()
      ;({ app, base } = await buildApp(store.options))
    })
    after(async () => { await app?.close() })

    it('login drops pre-login data except kept keys, changes the id, and logout ends everything', async () => {
      const shop = await send(base, '/shop')
      assert.equal(shop.status, 200, shop.body)
      const preLogin = shop.cookie
      assert.ok(preLogin, 'the visit with a cart set a session cookie')
      const preId = idOf(preLogin)
      assert.deepEqual(await store.peek(preId), { cart: { items: ['teapot'] }, theme: 'dark' })

      assert.equal((await send(base, '/me', { cookie: preLogin.pair })).status, 401, 'not signed in yet')

      const login = await send(base, '/login', {
        method: 'POST', cookie: preLogin.pair, form: { username: 'Ada', password: 'correct horse battery staple' }
      })
      assert.equal(login.status, 302, login.body)
      assert.equal(login.location, '/me')
      const loggedIn = login.cookie
      assert.ok(loggedIn, 'login sent a session cookie')
      const loggedInId = idOf(loggedIn)
      assert.notEqual(loggedInId, preId, 'the session id changes at login')
      assert.equal(await store.peek(preId), undefined, 'the pre-login record is gone from the store')
      assert.deepEqual(await store.peek(loggedInId), { theme: 'dark', passport: 'u1' }, 'the cart is dropped, theme kept')

      const me = await send(base, '/me', { cookie: loggedIn.pair })
      assert.equal(me.status, 200, me.body)
      assert.deepEqual(JSON.parse(me.body), { name: 'Ada', keys: ['passport', 'theme'] })
      assert.equal(me.cookie, undefined, 'reading a protected page writes nothing')
      assert.equal((await send(base, '/me', { cookie: preLogin.pair })).status, 401, 'the pre-login cookie does not authenticate')

      const logout = await send(base, '/logout', { method: 'POST', cookie: loggedIn.pair })
      assert.equal(logout.status, 200, logout.body)
      assert.ok(logout.cookie, 'logout sends a Set-Cookie')
      assert.equal(logout.cookie.value, '')
      assert.equal(logout.cookie.attributes['max-age'], '0', 'logout expires the cookie')
      assert.equal(logout.cookie.attributes.path, '/')

      assert.equal((await send(base, '/me', { cookie: loggedIn.pair })).status, 401, 'the logged-in cookie no longer authenticates')
      assert.equal((await send(base, '/me', { cookie: preLogin.pair })).status, 401, 'nor does the pre-login cookie')
      assert.equal(await store.peek(loggedInId), undefined, 'the logged-in record is gone from the store')
      assert.equal(await store.peek(preId), undefined)
    })

    it('a failed login keeps the visitor signed out and their cart in place', async () => {
      const preLogin = (await send(base, '/shop')).cookie
      assert.ok(preLogin)
      const login = await send(base, '/login', { method: 'POST', cookie: preLogin.pair, form: { username: 'Ada', password: 'wrong' } })
      assert.equal(login.status, 302)
      assert.equal(login.location, '/login?failed')
      assert.equal((await send(base, '/me', { cookie: preLogin.pair })).status, 401)
      assert.deepEqual(await store.peek(idOf(preLogin)), { cart: { items: ['teapot'] }, theme: 'dark' })
    })

    it('keepSessionInfo: true keeps the whole pre-login session under the new id', async () => {
      const preLogin = (await send(base, '/shop')).cookie
      assert.ok(preLogin)
      const login = await send(base, '/login-keep', {
        method: 'POST', cookie: preLogin.pair, form: { username: 'Ada', password: 'correct horse battery staple' }
      })
      assert.equal(login.status, 302, login.body)
      assert.ok(login.cookie)
      assert.notEqual(idOf(login.cookie), idOf(preLogin), 'the id changes even when the data is kept')
      assert.equal(await store.peek(idOf(preLogin)), undefined)
      assert.deepEqual(await store.peek(idOf(login.cookie)), { cart: { items: ['teapot'] }, theme: 'dark', passport: 'u1' })
      assert.equal((await send(base, '/me', { cookie: preLogin.pair })).status, 401)
      assert.equal((await send(base, '/me', { cookie: login.cookie.pair })).status, 200)
    })

    it('a forged or tampered cookie never authenticates', async () => {
      const login = await send(base, '/login', { method: 'POST', form: { username: 'Ada', password: 'correct horse battery staple' } })
      assert.ok(login.cookie)
      const id = idOf(login.cookie)
      assert.equal((await send(base, '/me', { cookie: `session=${id}` })).status, 401, 'the bare id without its signature')
      const tampered = login.cookie.value.slice(0, -2) + (login.cookie.value.endsWith('AA') ? 'BB' : 'AA')
      assert.equal((await send(base, '/me', { cookie: `session=${tampered}` })).status, 401, 'a wrong signature')
      assert.equal((await send(base, '/me', { cookie: login.cookie.pair })).status, 200)
    })

    // Core bug: passport's successRedirect sends the reply from preValidation; while the save
    // (onSend) awaits the store, reply.sent is still false, so Fastify runs the async handler and
    // sends a second time; that send passes the save hook (session already marked done) and is
    // written first, without the Set-Cookie the first one was about to add.
    it('bug: a second send while the save is in flight goes out without the session cookie (successRedirect + async handler)', async () => {
      const login = await send(base, '/login-async', { method: 'POST', form: { username: 'Ada', password: 'correct horse battery staple' } })
      assert.equal(login.status, 302)
      assert.ok(login.cookie, 'the login reply carries the new session cookie')
      assert.equal((await send(base, '/me', { cookie: login.cookie.pair })).status, 200)
    })
  })
}

function recordData (text: string | undefined | null): Record<string, unknown> | undefined {
  if (text === undefined || text === null) return undefined
  return { ...(parse(text) as { data: Record<string, unknown> }).data }
}

const memory = new MemoryStore()
passportFlows('memory store', () => ({
  options: { store: memory },
  peek: async (id) => recordData(await memory.get(sessionKey(id)))
}))

describe('on a real redis-server', () => {
  const redis = useRedis()
  passportFlows('type redis', () => ({
    options: { type: 'redis', uri: redis.server.url },
    peek: async (id) => recordData(await redis.client.get(sessionKey(id)))
  }))
})
