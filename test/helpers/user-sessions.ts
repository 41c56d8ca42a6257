// The per-user index scenarios (issue 20), run against every backend that supports it. Each
// backend's test file passes the plugin options for a fresh backend; the scenarios drive real
// requests and check what a user of a "your devices" page would.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import type {} from '../../lib/index.js'
import { build, cookieOf } from './app.js'
import { sessionKey } from './keys.js'
import type { QuartSessionOptions, SessionStore } from '../../lib/index.js'

declare module '../../lib/index.js' {
  interface SessionData {
    account: string
  }
}

export interface Backend {
  options: QuartSessionOptions
}

export type Events = Record<string, Array<Record<string, unknown>>>

/** Collect the lifecycle events while `fn` runs. */
export function recordEvents (): { events: Events, stop: () => void } {
  const events: Events = {}
  const names = ['created', 'regenerated', 'destroyed', 'revoked', 'expired']
  const handlers = names.map((name) => {
    events[name] = []
    const handler = (message: unknown): void => { events[name].push(message as Record<string, unknown>) }
    subscribe(`fastify-quart-session:${name}`, handler)
    return [name, handler] as const
  })
  return { events, stop: () => { for (const [name, handler] of handlers) unsubscribe(`fastify-quart-session:${name}`, handler) } }
}

/** The app of the scenarios: login, whoami, devices, revoke, revoke-all, logout, password change. */
export async function deviceApp (options: QuartSessionOptions): Promise<FastifyInstance> {
  return await build({ userId: 'account', ...options }, (app) => {
    app.post('/login/:user', async (request) => {
      await request.session.regenerate()
      request.session.set('account', (request.params as { user: string }).user)
      return { handle: request.session.handle }
    })
    app.get('/me', async (request) => ({ user: request.session.get('account') ?? null, handle: request.session.handle }))
    app.get('/devices', async (request) => {
      const user = request.session.get('account')
      if (user === undefined) return []
      return await request.sessionStore.listSessions(user, { current: request.session.handle })
    })
    app.post('/revoke/:handle', async (request) => {
      const user = request.session.get('account') as string
      return { revoked: await request.sessionStore.revokeSession(user, (request.params as { handle: string }).handle) }
    })
    app.post('/revoke-all', async (request) => {
      const user = request.session.get('account') as string
      return { count: await request.sessionStore.revokeUserSessions(user, { except: request.session.handle }) }
    })
    app.post('/logout', async (request) => { await request.session.destroy(); return 'bye' })
    app.post('/note', async (request) => { request.session.set('foo', 'note'); return 'ok' })
  })
}

export interface Client { cookie: string, handle: string, id: string }

export async function login (app: FastifyInstance, user: string, headers: Record<string, string> = {}): Promise<Client> {
  const response = await app.inject({ method: 'POST', url: `/login/${user}`, headers })
  assert.equal(response.statusCode, 200, response.body)
  const cookie = cookieOf(response)
  assert.ok(cookie, 'login sets a cookie')
  return { cookie: cookie.pair, id: cookie.value, handle: response.json().handle }
}

export async function whoami (app: FastifyInstance, client: Client): Promise<string | null> {
  return (await app.inject({ url: '/me', headers: { cookie: client.cookie } })).json().user
}

async function until (what: string, check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** The scenarios; `make` gives a fresh backend (and closes it with `close`). */
export function userSessionSuite (name: string, make: () => Promise<Backend & { close: () => Promise<void> }>, caps: { atomic?: boolean } = {}): void {
  describe(`per-user sessions: ${name}`, () => {
    let backend: Backend & { close: () => Promise<void> }
    before(async () => { backend = await make() })
    after(async () => { await backend?.close() })

    it('lists a user\'s sessions with handles, never ids, the asking one marked current', async () => {
      const app = await deviceApp(backend.options)
      try {
        const a = await login(app, 'ada-list')
        const b = await login(app, 'ada-list')
        await login(app, 'bob-list')
        const response = await app.inject({ url: '/devices', headers: { cookie: a.cookie } })
        const list = response.json() as Array<Record<string, unknown>>
        assert.equal(list.length, 2)
        assert.deepEqual(new Set(list.map((s) => s.handle)), new Set([a.handle, b.handle]))
        assert.deepEqual(list.filter((s) => s.current === true).map((s) => s.handle), [a.handle])
        for (const s of list) {
          assert.ok(typeof s.created === 'number' && s.created > Date.now() - 60_000 && s.created <= Date.now(), 'created in epoch ms')
          assert.ok(typeof s.lastSeen === 'number' && s.lastSeen >= (s.created as number) - 1000)
        }
        assert.ok(!response.body.includes(a.id) && !response.body.includes(b.id), 'no session id in the list')
        assert.ok(!response.body.includes(sessionKey(b.id)), 'no store key in the list')
      } finally { await app.close() }
    })

    it('revoking one session from another signs it out on its next request; its record is deleted', async () => {
      const app = await deviceApp(backend.options)
      try {
        const a = await login(app, 'ada-revoke')
        const b = await login(app, 'ada-revoke')
        const response = await app.inject({ method: 'POST', url: `/revoke/${b.handle}`, headers: { cookie: a.cookie } })
        assert.deepEqual(response.json(), { revoked: true })
        assert.equal(await app.sessionStore.adapter.get(sessionKey(b.id)), undefined)
        assert.equal(await whoami(app, b), null)
        assert.equal(await whoami(app, a), 'ada-revoke')
        const list = (await app.inject({ url: '/devices', headers: { cookie: a.cookie } })).json() as Array<{ handle: string }>
        assert.deepEqual(list.map((s) => s.handle), [a.handle])
        const again = await app.inject({ method: 'POST', url: `/revoke/${b.handle}`, headers: { cookie: a.cookie } })
        assert.deepEqual(again.json(), { revoked: false }, 'a handle revokes once')
      } finally { await app.close() }
    })

    it('a handle of another user\'s session revokes nothing', async () => {
      const app = await deviceApp(backend.options)
      try {
        const a = await login(app, 'ada-other')
        const mallory = await login(app, 'mallory-other')
        const response = await app.inject({ method: 'POST', url: `/revoke/${a.handle}`, headers: { cookie: mallory.cookie } })
        assert.deepEqual(response.json(), { revoked: false })
        assert.equal(await whoami(app, a), 'ada-other')
      } finally { await app.close() }
    })

    it('revokeUserSessions ends all but the current one and resolves with the count', async () => {
      const app = await deviceApp(backend.options)
      try {
        const clients = [await login(app, 'ada-all'), await login(app, 'ada-all'), await login(app, 'ada-all')]
        const response = await app.inject({ method: 'POST', url: '/revoke-all', headers: { cookie: clients[0].cookie } })
        assert.deepEqual(response.json(), { count: 2 })
        assert.equal(await whoami(app, clients[0]), 'ada-all')
        assert.equal(await whoami(app, clients[1]), null)
        assert.equal(await whoami(app, clients[2]), null)
        assert.equal(await app.sessionStore.revokeUserSessions('ada-all'), 1, 'log out everywhere')
        assert.equal(await whoami(app, clients[0]), null)
        assert.deepEqual(await app.sessionStore.listSessions('ada-all'), [])
      } finally { await app.close() }
    })

    it('a request of a revoked session that was in flight cannot write it back', async () => {
      let release: () => void = () => {}
      const gate = new Promise<void>((resolve) => { release = resolve })
      let entered: () => void = () => {}
      const inside = new Promise<void>((resolve) => { entered = resolve })
      const slow = await build({ userId: 'account', ...backend.options }, (server) => {
        server.post('/login/:user', async (request) => {
          await request.session.regenerate()
          request.session.set('account', (request.params as { user: string }).user)
          return { handle: request.session.handle }
        })
        server.get('/me', async (request) => ({ user: request.session.get('account') ?? null }))
        server.post('/slow', async (request) => {
          entered()
          await gate
          request.session.set('foo', 'written after the revoke')
          return 'done'
        })
      })
      try {
        const b = await login(slow, 'ada-inflight')
        const pending = slow.inject({ method: 'POST', url: '/slow', headers: { cookie: b.cookie } })
        await inside
        assert.equal(await slow.sessionStore.revokeSession('ada-inflight', b.handle), true)
        release()
        const response = await pending
        assert.equal(response.statusCode, 200)
        assert.equal(cookieOf(response), undefined, 'no cookie for a revoked session')
        assert.equal(await slow.sessionStore.adapter.get(sessionKey(b.id)), undefined, 'the record stays deleted')
        assert.equal(await whoami(slow, b), null)
        assert.deepEqual(await slow.sessionStore.listSessions('ada-inflight'), [])
      } finally { await slow.close() }
    })

    it('logout and a user change take the session out of the list', async () => {
      const app = await deviceApp(backend.options)
      try {
        const a = await login(app, 'ada-logout')
        const b = await login(app, 'ada-logout')
        await app.inject({ method: 'POST', url: '/logout', headers: { cookie: b.cookie } })
        assert.deepEqual((await app.sessionStore.listSessions('ada-logout')).map((s) => s.handle), [a.handle])
        // The same browser signs in as someone else (regenerate: a new id).
        const c = await login(app, 'eve-logout', { cookie: a.cookie })
        assert.deepEqual(await app.sessionStore.listSessions('ada-logout'), [])
        assert.deepEqual((await app.sessionStore.listSessions('eve-logout')).map((s) => s.handle), [c.handle])
      } finally { await app.close() }
    })

    it('events: created, revoked, destroyed with the user and a hash of the id, never the id', async () => {
      const app = await deviceApp(backend.options)
      const { events, stop } = recordEvents()
      try {
        const a = await login(app, 'ada-events')
        const b = await login(app, 'ada-events')
        await app.sessionStore.revokeSession('ada-events', b.handle)
        await app.inject({ method: 'POST', url: '/logout', headers: { cookie: a.cookie } })
        const mine = (name: string): Array<Record<string, unknown>> => events[name].filter((e) => e.user === 'ada-events')
        assert.equal(mine('created').length, 2)
        assert.equal(mine('revoked').length, 1)
        assert.equal(mine('destroyed').length, 1)
        assert.notEqual(mine('revoked')[0].idHash, mine('destroyed')[0].idHash)
        const text = JSON.stringify(events)
        assert.ok(!text.includes(a.id) && !text.includes(b.id), 'no raw id in any event')
      } finally { stop(); await app.close() }
    })

    it('an ended session is never listed, and its expired event fires within 10 s without keyspace notifications', async () => {
      const app = await deviceApp({ ...backend.options, maxAge: 2, rolling: false })
      const { events, stop } = recordEvents()
      try {
        const a = await login(app, 'ada-expiry')
        const ended = Date.now() + 2000
        await until('the session ends', async () => (await app.sessionStore.listSessions('ada-expiry')).length === 0 || Date.now() > ended + 1500, 5000)
        assert.ok(Date.now() >= ended - 1000, 'listed while it lived')
        // Someone else's session that ends is found by the sweep, without a list read.
        const b = await login(app, 'bob-expiry')
        await until('bob\'s expired event', () => events.expired.some((e) => e.user === 'bob-expiry'), 12_000)
        assert.equal(events.expired.filter((e) => e.user === 'bob-expiry').length, 1, 'fired once')
        assert.equal(events.expired.filter((e) => e.user === 'ada-expiry').length, 1, 'fired once')
        assert.ok(!JSON.stringify(events.expired).includes(b.id) && !JSON.stringify(events.expired).includes(a.id))
      } finally { stop(); await app.close() }
    })

    it('maxSessionsPerUser: n drops the oldest session', async () => {
      const app = await deviceApp({ ...backend.options, maxSessionsPerUser: 2 })
      const { events, stop } = recordEvents()
      try {
        const first = await login(app, 'ada-limit')
        await new Promise((resolve) => setTimeout(resolve, 5))
        const second = await login(app, 'ada-limit')
        const third = await login(app, 'ada-limit')
        assert.equal(await whoami(app, first), null)
        assert.equal(await whoami(app, second), 'ada-limit')
        assert.equal(await whoami(app, third), 'ada-limit')
        assert.deepEqual(new Set((await app.sessionStore.listSessions('ada-limit')).map((s) => s.handle)), new Set([second.handle, third.handle]))
        assert.deepEqual(events.revoked.filter((e) => e.user === 'ada-limit').map((e) => e.reason), ['limit'])
      } finally { stop(); await app.close() }
    })

    it('maxSessionsPerUser with policy refuse: the login fails with 409 and a code, no cookie', async () => {
      const app = await deviceApp({ ...backend.options, maxSessionsPerUser: { limit: 1, policy: 'refuse' } })
      try {
        const first = await login(app, 'ada-refuse')
        const response = await app.inject({ method: 'POST', url: '/login/ada-refuse' })
        assert.equal(response.statusCode, 409)
        assert.equal(response.json().code, 'FST_QUART_SESSION_TOO_MANY_SESSIONS')
        assert.equal(cookieOf(response), undefined)
        assert.equal(await whoami(app, first), 'ada-refuse')
        assert.equal((await app.sessionStore.listSessions('ada-refuse')).length, 1)
        // After signing out there, the login goes through.
        await app.inject({ method: 'POST', url: '/logout', headers: { cookie: first.cookie } })
        await login(app, 'ada-refuse')
      } finally { await app.close() }
    })

    // Stores without compareAndSet (connectStore) get last-write-wins on the index: documented.
    it('concurrent logins of one user all end up listed (compare-and-set on the index)', { skip: caps.atomic === false && 'the store has no compareAndSet' }, async () => {
      const app = await deviceApp(backend.options)
      try {
        const clients = await Promise.all(Array.from({ length: 8 }, async () => await login(app, 'ada-race')))
        const listed = new Set((await app.sessionStore.listSessions('ada-race')).map((s) => s.handle))
        assert.deepEqual(listed, new Set(clients.map((c) => c.handle)))
      } finally { await app.close() }
    })
  })
}

export type { SessionStore }
