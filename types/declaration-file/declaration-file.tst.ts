// Issue 19: a SessionData declaration in a .d.ts file without import or export is a global script,
// where `declare module 'fastify-quart-session'` replaces the package's types instead of adding to
// them: `app.register(quartSession)` then fails with "No overload matches this call", far from the
// cause. The README snippet (fixtures/session-data.d.ts) has the import that makes it an
// augmentation; here it types the session and leaves the plugin whole.
import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import quartSession, { type QuartSessionOptions } from 'fastify-quart-session'

const app = Fastify()

test('the plugin still registers with its options', () => {
  expect(app.register(quartSession)).type.not.toRaiseError()
  expect(app.register(quartSession, { secret: 'a'.repeat(32), maxAge: 3600 })).type.not.toRaiseError()
  expect<QuartSessionOptions>().type.not.toBeAssignableFrom({ maxAge: '1h' })
})

test('the declared keys are typed', () => {
  app.get('/', async (request) => {
    expect(request.session.get('user')).type.toBe<{ id: string, name: string } | undefined>()
    expect(request.session.get('visits')).type.toBe<number | undefined>()
    expect(request.session.set).type.toBeCallableWith('visits', 1)
    expect(request.session.set).type.not.toBeCallableWith('visits', 'one')
    expect(request.session.set).type.not.toBeCallableWith('undeclared', 1)
    expect(request.session.user).type.toBe<{ id: string, name: string } | undefined>()
    return 'ok'
  })
})
