// An app that declares fastify's own `interface Session` (what @fastify/session users write, and
// what @fastify/passport's types read) next to this plugin. types/index.ts once typed
// `request.session` as a bare `Session` inside `declare module 'fastify'`, which then resolved to
// this interface: `request.session.set` "does not exist". Our session must stay ours.
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import quartSession, { type Session as QuartSession } from 'fastify-quart-session'

declare module 'fastify' {
  interface Session {
    foo: string
    passport?: unknown
  }
}

const app = Fastify()

test("request.session is this plugin's Session, not fastify.Session", () => {
  app.register(quartSession)
  app.get('/', async (request) => {
    expect(request.session).type.toBeAssignableTo<QuartSession>()
    expect(request.session.set).type.toBeCallableWith('foo', 1)
    expect(request.session.get).type.toBeCallableWith('foo')
    expect(request.session.regenerate()).type.toBe<Promise<void>>()
    expect(request.session.id).type.toBe<string>()
    request.session.set('foo', 1)
    return 'ok'
  })
})
