import Fastify, { type FastifyInstance } from 'fastify'
import { expect, test } from 'tstyche'
import quartSession, {
  type QuartSessionOptions, type Session, type SessionStore, type DirectStore, MemoryStore, errors
} from 'fastify-quart-session'
import { RedisStore } from 'fastify-quart-session/redis'
import { MemcachedStore } from 'fastify-quart-session/memcached'

declare module 'fastify-quart-session' {
  interface SessionData {
    user: { id: string, name: string }
    visits: number
  }
}

const app = Fastify()

test('the plugin registers with its options', () => {
  expect(app.register(quartSession, { type: 'redis', uri: 'redis://:pw@localhost:6379' })).type.not.toRaiseError()
  expect(app.register(quartSession, { secret: ['a'.repeat(32), 'b'.repeat(32)], cookie: { secure: 'auto', sameSite: 'lax' } })).type.not.toRaiseError()
  expect(app.register(quartSession, { store: new MemoryStore({ maxEntries: 10 }) })).type.not.toRaiseError()
  expect(app.register(quartSession)).type.not.toRaiseError()
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ type: 'mongodb' })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ maxAge: '1h' })
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ cookie: { secure: 'yes' } })
})

test('request.session is typed through SessionData', () => {
  app.get('/', async (request) => {
    expect(request.session).type.toBe<Session>()
    expect(request.session.get('user')).type.toBe<{ id: string, name: string } | undefined>()
    expect(request.session.get('visits')).type.toBe<number | undefined>()
    expect(request.session.set).type.toBeCallableWith('visits', 1)
    expect(request.session.set).type.not.toBeCallableWith('visits', 'one')
    expect(request.session.set).type.not.toBeCallableWith('user', { id: 1 })
    expect(request.session.get).type.not.toBeCallableWith('undeclared')
    expect(request.session.set).type.not.toBeCallableWith('undeclared', 1)
    expect(request.session.id).type.toBe<string>()
    expect(request.session.isNew).type.toBe<boolean>()
    expect(request.session.permanent).type.toBe<boolean>()
    expect(request.session.regenerate()).type.toBe<Promise<void>>()
    expect(request.session.destroy()).type.toBe<Promise<void>>()
    expect(request.session.save()).type.toBe<Promise<void>>()
    expect(request.session.reload()).type.toBe<Promise<void>>()
    expect(request.session.touch()).type.toBe<void>()
    expect(request.session.has('user')).type.toBe<boolean>()
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
  expect(fastify.sessionStore.set).type.toBeCallableWith('k', { any: 'value' }, 3600)
  expect(fastify.sessionStore.set).type.toBeCallableWith('k', 'v')
  expect(fastify.sessionStore.set).type.not.toBeCallableWith('k', 'v', '1h')
  expect(fastify.sessionStore.delete('k')).type.toBe<Promise<void>>()
})

test('adapters implement SessionStore', () => {
  expect<SessionStore>().type.toBeAssignableFrom(new MemoryStore())
  expect<SessionStore>().type.toBeAssignableFrom(new RedisStore({ uri: 'redis://localhost:6379' }))
  expect<SessionStore>().type.toBeAssignableFrom(new MemcachedStore({ servers: ['a:11211', 'b:11211'], maxValueBytes: 2 ** 21 }))
  expect(app.register(quartSession, { store: new MemcachedStore({ servers: 'localhost:11211', retry: 2 }) })).type.not.toRaiseError()
  const minimal = {
    async get (_key: string): Promise<string | undefined> { return undefined },
    async set (_key: string, _value: string, _ttl: number): Promise<void> {},
    async delete (_key: string): Promise<void> {}
  }
  expect<SessionStore>().type.toBeAssignableFrom(minimal)
  expect<SessionStore>().type.not.toBeAssignableFrom({ get: async () => 1 })
})

test('errors carry their codes', () => {
  expect(new errors.FST_QUART_SESSION_BACKEND('read', 'down').code).type.toBe<'FST_QUART_SESSION_BACKEND'>()
})
