// A CommonJS consumer (Node 20.19+ can require() this ESM package).
import Fastify = require('fastify')
import plugin = require('fastify-quart-session')
import tstyche = require('tstyche')

const { expect, test } = tstyche

test('CommonJS consumers get the same types', () => {
  const app = Fastify.fastify()
  expect(app.register(plugin.default, { type: 'memory', maxAge: 3600 })).type.not.toRaiseError()
  expect(app.register(plugin.quartSession, { keyPrefix: 'x:' })).type.not.toRaiseError()
  app.get('/', async (request) => {
    expect(request.session.id).type.toBe<string>()
    return 'ok'
  })
})
