// A CommonJS consumer (Node 20.19+ can require() this ESM package). It shares the program of
// index.tst.ts, so the SessionData declared there applies here too.
import Fastify = require('fastify')
import plugin = require('fastify-quart-session')
import filesystem = require('fastify-quart-session/filesystem')
import tstyche = require('tstyche')

const { expect, test } = tstyche

test('CommonJS consumers get the same types', () => {
  const app = Fastify.fastify()
  expect(app.register(plugin.default, { type: 'memory', maxAge: 3600 })).type.not.toRaiseError()
  expect(app.register(plugin.quartSession, { keyPrefix: 'x:', rolling: false })).type.not.toRaiseError()
  expect(app.register(plugin.default, { store: new filesystem.FilesystemStore({ directory: './sessions' }) })).type.not.toRaiseError()
  app.get('/', async (request) => {
    expect(request.session.id).type.toBe<string>()
    expect(request.session.get('visits')).type.toBe<number | undefined>()
    expect(request.session.set).type.not.toBeCallableWith('visits', 'one')
    expect(request.session.regenerate(['user'])).type.toBe<Promise<void>>()
    return 'ok'
  })
  expect(new plugin.errors.FST_QUART_SESSION_BACKEND('Redis GET').code).type.toBe<'FST_QUART_SESSION_BACKEND'>()
})
