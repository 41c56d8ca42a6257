// The program WITH a SessionData declaration: keys are strict, values typed. (A declaration merges
// program-wide, so the undeclared case lives in its own program: types/undeclared/.)
import Fastify, { type FastifyInstance } from 'fastify'
import { expect, test } from 'tstyche'
import quartSession, {
  type QuartSessionOptions, type Session, type SessionStore, type DirectStore, type ListedSession, MemoryStore, errors, connectStore
} from 'fastify-quart-session'
import { MemoryStore as ExpressMemoryStore } from 'express-session'
import { RedisStore as ConnectRedisStore } from 'connect-redis'
import type { createClient } from 'redis'
import { RedisStore } from 'fastify-quart-session/redis'
import { MemcachedStore } from 'fastify-quart-session/memcached'
import { FilesystemStore } from 'fastify-quart-session/filesystem'
import { IoredisStore } from 'fastify-quart-session/ioredis'
import { storeContract } from 'fastify-quart-session/contract'

declare module 'fastify-quart-session' {
  interface SessionData {
    user: { id: string, name: string }
    visits: number
  }
}

const app = Fastify()

type Callback = (err: Error | null) => void

test('the plugin registers with its options', () => {
  expect(app.register(quartSession, { type: 'redis', uri: 'redis://:pw@localhost:6379' })).type.not.toRaiseError()
  expect(app.register(quartSession, { secret: ['a'.repeat(32), 'b'.repeat(32)], cookie: { secure: 'auto', sameSite: 'lax' } })).type.not.toRaiseError()
  expect(app.register(quartSession, { store: new MemoryStore({ maxEntries: 10 }) })).type.not.toRaiseError()
  expect(app.register(quartSession)).type.not.toRaiseError()
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ type: 'mongodb' })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ maxAge: '1h' })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ cookie: { secure: 'yes' } })
})

test('the second-wave options', () => {
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ rolling: false, absoluteMaxAge: 12 * 3600, maxRecordBytes: 64 * 1024 })
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ type: 'filesystem' as const, directory: './sessions', fileMode: 0o600, maxEntries: 1000 })
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ type: 'redis' as const, sentinel: { name: 'mymaster', nodes: ['127.0.0.1:26379'] } })
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ type: 'redis' as const, clientSideCache: true })
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ type: 'redis' as const, clientSideCache: { maxEntries: 1000, ttl: 60_000 } })
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ cookieName: 'sid', cookie: { partitioned: true, priority: 'high' as const, sameSite: 'none' as const, secure: true } })
  expect(app.register(quartSession, { type: 'filesystem', directory: '/var/lib/app/sessions', fileMode: 0o640 })).type.not.toRaiseError()

  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ rolling: 'yes' })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ absoluteMaxAge: '12h' })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ fileMode: '0600' })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ sentinel: { name: 'mymaster' } })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ sentinel: { name: 'mymaster', nodes: [26379] } })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ clientSideCache: 'on' })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ clientSideCache: { size: 10 } })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ cookie: { priority: 'urgent' } })
})

test('the third-wave options', () => {
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ userId: 'userId', maxSessionsPerUser: 5, deviceInfo: true })
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ userId: (data: Record<string, unknown>) => (data.passport as { user?: string } | undefined)?.user, maxSessionsPerUser: { limit: 3, policy: 'refuse' as const } })
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ encryptionKey: ['a'.repeat(32), 'b'.repeat(32)], legacyKeys: false, renewAfter: 3600, renewGrace: 30 })
  expect<QuartSessionOptions>().type.toBeAssignableFrom({ clientSideCache: { maxBytes: 32 * 1024 * 1024 } })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ maxSessionsPerUser: { limit: 3, policy: 'kick' } })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ userId: 42 })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ encryptionKey: 42 })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ renewAfter: '1h' })
})

test('request.session is typed through SessionData', () => {
  app.get('/', async (request) => {
    expect(request.session).type.toBeAssignableTo<Session>()
    expect(request.session.get('user')).type.toBe<{ id: string, name: string } | undefined>()
    expect(request.session.get('visits')).type.toBe<number | undefined>()
    expect(request.session.update('visits', (v) => (v ?? 0) + 1)).type.toBe<Promise<number>>()
    expect(request.session.update).type.not.toBeCallableWith('visits', (v: number | undefined) => 'one')
    expect(request.session.update).type.not.toBeCallableWith('nope', (v: unknown) => v)
    expect(request.session.set).type.toBeCallableWith('visits', 1)
    expect(request.session.set).type.not.toBeCallableWith('visits', 'one')
    expect(request.session.set).type.not.toBeCallableWith('user', { id: 1 })
    expect(request.session.get).type.not.toBeCallableWith('undeclared')
    expect(request.session.set).type.not.toBeCallableWith('undeclared', 1)
    expect(request.session.delete).type.toBeCallableWith('visits')
    expect(request.session.delete).type.not.toBeCallableWith('undeclared')
    expect(request.session.delete).type.not.toBeCallableWith()
    expect(request.session.has).type.not.toBeCallableWith('undeclared')
    expect(request.session.id).type.toBe<string>()
    expect(request.session.isNew).type.toBe<boolean>()
    expect(request.session.permanent).type.toBe<boolean>()
    expect(request.session.destroy()).type.toBe<Promise<void>>()
    expect(request.session.save()).type.toBe<Promise<void>>()
    expect(request.session.reload()).type.toBe<Promise<void>>()
    expect(request.session.touch()).type.toBe<void>()
    expect(request.session.clear()).type.toBe<void>()
    expect(request.session.has('user')).type.toBe<boolean>()
    return 'ok'
  })
})

test('property access to the data is typed like get/set', () => {
  app.get('/props', async (request) => {
    expect(request.session.user).type.toBe<{ id: string, name: string } | undefined>()
    expect(request.session.visits).type.toBe<number | undefined>()
    request.session.visits = 2
    request.session.user = { id: 'u1', name: 'Ada' }
    delete request.session.user
    // @ts-expect-error Type 'string' is not assignable to type 'number'
    request.session.visits = 'two'
    // @ts-expect-error Property 'undeclared' does not exist
    request.session.undeclared = 1
    expect(request.session).type.toHaveProperty('visits')
    expect(request.session).type.not.toHaveProperty('undeclared')
    return 'ok'
  })
})

test('regenerate: promise and callback overloads', () => {
  app.post('/login', async (request) => {
    expect(request.session.regenerate()).type.toBe<Promise<void>>()
    expect(request.session.regenerate(['user'])).type.toBe<Promise<void>>()
    expect(request.session.regenerate((err) => { expect(err).type.toBe<Error | null>() })).type.toBe<void>()
    expect(request.session.regenerate(['user'], (err) => { expect(err).type.toBe<Error | null>() })).type.toBe<void>()
    expect(request.session.regenerate).type.not.toBeCallableWith('user')
    expect(request.session.regenerate).type.not.toBeCallableWith([1])
    expect(request.session.regenerate).type.not.toBeCallableWith(['user'], 'callback')
    return 'ok'
  })
})

test('destroy, save and reload take a Node callback too', () => {
  app.post('/verbs', async (request) => {
    const done: Callback = () => {}
    expect(request.session.destroy(done)).type.toBe<void>()
    expect(request.session.save(done)).type.toBe<void>()
    expect(request.session.reload(done)).type.toBe<void>()
    expect(request.session.save).type.not.toBeCallableWith('now')
    expect(request.session.destroy).type.not.toBeCallableWith(done, done)
    return 'ok'
  })
})

test("@fastify/session's surface: ids, cookie view, options(), isModified/isSaved/data", () => {
  app.get('/surface', async (request) => {
    const session = request.session
    expect(session.sessionId).type.toBe<string>()
    expect(session.encryptedSessionId).type.toBe<string>()
    expect(session.isModified()).type.toBe<boolean>()
    expect(session.isSaved()).type.toBe<boolean>()
    expect(session.data()).type.toBe<Record<string, unknown>>()
    expect(session.options({ maxAge: 30 * 24 * 3600 })).type.toBe<void>()
    expect(session.options).type.toBeCallableWith({ maxAge: 3600, secure: true, sameSite: 'strict', domain: 'example.com' })
    expect(session.options).type.not.toBeCallableWith('remember-me')
    expect(session.options).type.not.toBeCallableWith()

    const cookie = session.cookie
    expect(cookie.expires).type.toBe<Date | null>()
    expect(cookie.maxAge).type.toBe<number>()
    expect(cookie.originalMaxAge).type.toBe<number>()
    expect(cookie.path).type.toBe<string>()
    expect(cookie.domain).type.toBe<string | undefined>()
    expect(cookie.httpOnly).type.toBe<boolean>()
    expect(cookie.secure).type.toBe<boolean | 'auto'>()
    expect(cookie.sameSite).type.toBe<'lax' | 'strict' | 'none' | boolean>()
    expect(cookie.partitioned).type.toBe<boolean | undefined>()
    expect(cookie.priority).type.toBe<'low' | 'medium' | 'high' | undefined>()
    // The view is read-only: options() changes the cookie.
    // @ts-expect-error Cannot assign to 'maxAge' because it is a read-only property
    cookie.maxAge = 10
    // @ts-expect-error Cannot assign to 'sessionId' because it is a read-only property
    session.sessionId = 'chosen-by-client'
    // @ts-expect-error Cannot assign to 'cookie' because it is a read-only property
    session.cookie = cookie
    session.permanent = false
    return 'ok'
  })
})

test('routes opt in and out through config.session', () => {
  expect(app.get('/a', { config: { session: false } }, async () => 'a')).type.not.toRaiseError()
  expect(app.get('/b', { config: { session: true } }, async () => 'b')).type.not.toRaiseError()
  expect(app.get('/c', { config: { session: 'no' } }, async () => 'c')).type.toRaiseError()
})

test('fastify.sessionStore is the direct back-end API', () => {
  const fastify = app as FastifyInstance
  expect(fastify.sessionStore).type.toBe<DirectStore>()
  expect(fastify.sessionStore.get<string>('k')).type.toBe<Promise<string | undefined>>()
  expect(fastify.sessionStore.get('k')).type.toBe<Promise<unknown>>()
  expect(fastify.sessionStore.set).type.toBeCallableWith('k', { any: 'value' }, 3600)
  expect(fastify.sessionStore.set).type.toBeCallableWith('k', 'v')
  expect(fastify.sessionStore.set).type.not.toBeCallableWith('k', 'v', '1h')
  expect(fastify.sessionStore.set).type.not.toBeCallableWith(1, 'v')
  expect(fastify.sessionStore.delete('k')).type.toBe<Promise<void>>()
  app.get('/request-store', async (request) => {
    expect(request.sessionStore).type.toBe<DirectStore>()
    return 'ok'
  })
  app.get('/devices', async (request) => {
    expect(request.session.handle).type.toBe<string>()
    expect(request.sessionStore.listSessions('u1', { current: request.session.handle })).type.toBe<Promise<ListedSession[]>>()
    expect(request.sessionStore.revokeSession('u1', 'handle')).type.toBe<Promise<boolean>>()
    expect(request.sessionStore.revokeUserSessions(42, { except: request.session.handle })).type.toBe<Promise<number>>()
    expect(request.sessionStore.revokeUserSessions).type.not.toBeCallableWith({ id: 'u1' })
    return 'ok'
  })
  app.get('/cache', async function () {
    expect(this.sessionStore).type.toBe<DirectStore>()
    return 'ok'
  })
})

test('adapters implement SessionStore', () => {
  expect<SessionStore>().type.toBeAssignableFrom(new MemoryStore())
  expect<SessionStore>().type.toBeAssignableFrom(new RedisStore({ uri: 'redis://localhost:6379' }))
  expect<SessionStore>().type.toBeAssignableFrom(new MemcachedStore({ servers: ['a:11211', 'b:11211'], maxValueBytes: 2 ** 21 }))
  expect<SessionStore>().type.toBeAssignableFrom(new FilesystemStore({ directory: './sessions', fileMode: 0o600, maxEntries: 100 }))
  expect(IoredisStore).type.toBeConstructableWith({ client: {} as ConstructorParameters<typeof IoredisStore>[0]['client'], timeout: 2 })
  expect(IoredisStore).type.not.toBeConstructableWith({})
  expect(app.register(quartSession, { store: new MemcachedStore({ servers: 'localhost:11211', retry: 2 }) })).type.not.toRaiseError()
  const minimal = {
    async get (_key: string): Promise<string | undefined> { return undefined },
    async set (_key: string, _value: string, _ttl: number): Promise<void> {},
    async delete (_key: string): Promise<void> {}
  }
  expect<SessionStore>().type.toBeAssignableFrom(minimal)
  expect<SessionStore>().type.toBeAssignableFrom({
    ...minimal,
    async compareAndSet (_key: string, _expected: string | undefined, _value: string | undefined, _ttl: number): Promise<boolean> { return true }
  })
  expect<SessionStore>().type.not.toBeAssignableFrom({ ...minimal, async compareAndSet (): Promise<void> {} })
  expect<SessionStore>().type.not.toBeAssignableFrom({ get: async () => 1 })
})

test('connectStore makes express-session/connect stores a SessionStore', () => {
  expect(connectStore(new ExpressMemoryStore())).type.toBe<SessionStore>()
  expect(connectStore(new ConnectRedisStore({ client: {} as ReturnType<typeof createClient> }), { timeout: 5 })).type.toBe<SessionStore>()
  expect(app.register(quartSession, { store: connectStore(new ExpressMemoryStore()) })).type.not.toRaiseError()
  const callbackStore = {
    get (_sid: string, cb: (err: unknown, session?: unknown) => void) { cb(null) },
    set (_sid: string, _session: object, cb?: (err?: unknown) => void) { cb?.() },
    destroy (_sid: string, cb?: (err?: unknown) => void) { cb?.() }
  }
  expect(connectStore).type.toBeCallableWith(callbackStore)
  expect(connectStore).type.not.toBeCallableWith({ get: callbackStore.get, set: callbackStore.set })
  expect(connectStore).type.not.toBeCallableWith(callbackStore, { timeout: '2s' })
  expect(connectStore).type.not.toBeCallableWith(new MemoryStore())
})

test('the store contract suite is exported for custom-store authors', () => {
  const runner = { describe: (_name: string, body: () => void) => { body() }, it: (_name: string, _body: () => Promise<void>) => {} }
  expect(storeContract).type.toBeCallableWith({ name: 'my store', runner, create: () => new MemoryStore() })
  expect(storeContract).type.toBeCallableWith({
    name: 'my store',
    runner,
    create: async () => new MemoryStore(),
    dispose: async (store: MemoryStore) => { await store.close() },
    capabilities: ['compareAndSet', 'getLocal'] as const,
    ttlGranularity: 2
  })
  expect(storeContract).type.not.toBeCallableWith({ name: 'my store', runner, create: async () => ({}) })
  expect(storeContract).type.not.toBeCallableWith({ name: 'my store', create: () => new MemoryStore() })
  expect(storeContract).type.not.toBeCallableWith({ name: 'my store', runner, create: () => new MemoryStore(), capabilities: ['touch'] })
  expect(storeContract).type.not.toBeCallableWith('my store', { create: async () => new MemoryStore() })
})

test('errors carry their codes and their message arguments', () => {
  expect(new errors.FST_QUART_SESSION_BACKEND('Redis GET').code).type.toBe<'FST_QUART_SESSION_BACKEND'>()
  expect(new errors.FST_QUART_SESSION_BACKEND('Redis GET').statusCode).type.toBe<number>()
  expect(errors.FST_QUART_SESSION_BACKEND).type.not.toBeConstructableWith('Redis GET', 'details go in cause')
  expect(errors.FST_QUART_SESSION_INVALID_OPTION).type.toBeConstructableWith('maxAge', 'must be a number')
  expect(errors.FST_QUART_SESSION_TIMEOUT).type.not.toBeConstructableWith('Redis GET', '2')
  expect(new errors.FST_QUART_SESSION_CONFLICT(5)).type.toBeAssignableTo<Error>()
})
