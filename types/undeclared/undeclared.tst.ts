// The program WITHOUT a SessionData declaration: every string key type-checks and values are
// `any`, so code written for @fastify/session (or a quick start) compiles before any typing work.
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import quartSession, { type Session } from 'fastify-quart-session'

const app = Fastify()

test('any string key is accepted, values are any', () => {
  app.register(quartSession)
  app.get('/', async (request) => {
    expect(request.session).type.toBeAssignableTo<Session>()
    expect(request.session.set).type.toBeCallableWith('foo', 'bar')
    expect(request.session.set).type.toBeCallableWith('visits', 1)
    expect(request.session.set).type.toBeCallableWith('cart', { items: [1, 2] })
    expect(request.session.get).type.toBeCallableWith('anything')
    expect(request.session.has).type.toBeCallableWith('anything')
    expect(request.session.delete).type.toBeCallableWith('anything')
    expect(request.session.regenerate).type.toBeCallableWith(['passport', 'anything'])
    // Keys are strings: numbers and symbols are not keys.
    expect(request.session.set).type.not.toBeCallableWith(1, 'bar')
    expect(request.session.get).type.not.toBeCallableWith(Symbol('k'))
    expect(request.session.delete).type.not.toBeCallableWith()
    return 'ok'
  })
})

test('values read back are any, so they flow into typed code without casts', () => {
  app.get('/visits', async (request) => {
    // `any` is what lets `(session.get('visits') ?? 0) + 1` compile without a declaration.
    const visits: number = (request.session.get('visits') ?? 0) + 1
    const name: string = request.session.get('user')?.name
    expect(visits).type.toBe<number>()
    expect(name).type.toBe<string>()
    return 'ok'
  })
})

test('the session members are still the session members', () => {
  app.get('/m', async (request) => {
    expect(request.session.id).type.toBe<string>()
    expect(request.session.isNew).type.toBe<boolean>()
    expect(request.session.regenerate()).type.toBe<Promise<void>>()
    expect(request.session.cookie.maxAge).type.toBe<number>()
    expect(request.session.data()).type.toBe<Record<string, unknown>>()
    return 'ok'
  })
})
