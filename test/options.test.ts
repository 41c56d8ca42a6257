import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { CountingStore, SECRET } from './helpers/app.js'

async function readyWith (options: unknown): Promise<void> {
  const app = Fastify()
  await app.register(cookie)
  app.register(quartSession, options as QuartSessionOptions)
  try {
    await app.ready()
  } finally {
    await app.close()
  }
}

describe('options are checked once, at registration', () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['unknown type', { type: 'mongodb' }, 'FST_QUART_SESSION_UNKNOWN_TYPE', /"type".*mongodb/],
    ['negative maxAge', { maxAge: -1 }, 'FST_QUART_SESSION_INVALID_OPTION', /"maxAge"/],
    ['fractional maxAge', { maxAge: 1.5 }, 'FST_QUART_SESSION_INVALID_OPTION', /"maxAge"/],
    ['maxAge as a string', { maxAge: '3600' }, 'FST_QUART_SESSION_INVALID_OPTION', /"maxAge"/],
    ['short secret', { secret: 'too-short' }, 'FST_QUART_SESSION_WEAK_SECRET', /"secret".*9 characters/],
    ['short signing secret in a rotation', { secret: ['short', SECRET] }, 'FST_QUART_SESSION_WEAK_SECRET', /"secret".*secret\[0\]/],
    ['empty secret array', { secret: [] }, 'FST_QUART_SESSION_WEAK_SECRET', /"secret"/],
    ['non-string secret', { secret: 42 }, 'FST_QUART_SESSION_INVALID_OPTION', /"secret"/],
    ['non-string older secret', { secret: [SECRET, 42] }, 'FST_QUART_SESSION_INVALID_OPTION', /"secret\[1\]"/],
    ['serializer without functions', { serializer: { stringify: 'x', parse: JSON.parse } }, 'FST_QUART_SESSION_INVALID_OPTION', /"serializer"/],
    ['serializer as a function', { serializer: JSON.stringify }, 'FST_QUART_SESSION_INVALID_OPTION', /"serializer"/],
    ['store without get', { store: { set () {}, delete () {} } }, 'FST_QUART_SESSION_INVALID_OPTION', /"store".*get/],
    ['keyPrefix as a number', { keyPrefix: 1 }, 'FST_QUART_SESSION_INVALID_OPTION', /"keyPrefix"/],
    ['cookieName with a space', { cookieName: 'my session' }, 'FST_QUART_SESSION_INVALID_OPTION', /"cookieName"/],
    ['cookie.sameSite', { cookie: { sameSite: 'sometimes' } }, 'FST_QUART_SESSION_INVALID_OPTION', /"cookie.sameSite"/],
    ['cookie.secure', { cookie: { secure: 'yes' } }, 'FST_QUART_SESSION_INVALID_OPTION', /"cookie.secure"/],
    ['cookie.path', { cookie: { path: 'relative' } }, 'FST_QUART_SESSION_INVALID_OPTION', /"cookie.path"/],
    ['cookie.priority', { cookie: { priority: 'urgent' } }, 'FST_QUART_SESSION_INVALID_OPTION', /"cookie.priority"/],
    ['cookie.maxAge points at maxAge', { cookie: { maxAge: 10 } }, 'FST_QUART_SESSION_INVALID_OPTION', /"cookie.maxAge".*top-level "maxAge"/],
    ['misspelt option', { cookiename: 'sid' }, 'FST_QUART_SESSION_INVALID_OPTION', /"cookiename".*unknown option/],
    ['@fastify/session saveUninitialized', { saveUninitialized: false }, 'FST_QUART_SESSION_INVALID_OPTION', /"saveUninitialized".*never stored.*remove it/],
    ['@fastify/session cookiePrefix', { cookiePrefix: 's:' }, 'FST_QUART_SESSION_INVALID_OPTION', /"cookiePrefix".*not supported/],
    ['express-session name', { name: 'sid' }, 'FST_QUART_SESSION_INVALID_OPTION', /"name".*"cookieName" here/],
    ['express-session resave', { resave: false }, 'FST_QUART_SESSION_INVALID_OPTION', /"resave".*only when it changed/],
    ['permanent as a string', { permanent: 'false' }, 'FST_QUART_SESSION_INVALID_OPTION', /"permanent"/],
    ['protection without secret', { protection: true }, 'FST_QUART_SESSION_INVALID_OPTION', /"protection".*secret/],
    ['timeout of 0', { timeout: 0 }, 'FST_QUART_SESSION_INVALID_OPTION', /"timeout"/],
    ['maxEntries of 0', { maxEntries: 0 }, 'FST_QUART_SESSION_INVALID_OPTION', /"maxEntries"/],
    ['uri that is not a URL', { type: 'redis', uri: 'localhost:6379' }, 'FST_QUART_SESSION_INVALID_OPTION', /"uri"/],
    ['uri with another scheme', { type: 'redis', uri: 'http://localhost:6379' }, 'FST_QUART_SESSION_INVALID_OPTION', /"uri".*http:/],
    ['uri on the memory store', { uri: 'redis://localhost:6379' }, 'FST_QUART_SESSION_INVALID_OPTION', /"uri".*redis/],
    ['servers on the memory store', { servers: '127.0.0.1:11211' }, 'FST_QUART_SESSION_INVALID_OPTION', /"servers".*memcached/],
    ['servers with a bad weight', { type: 'memcached', servers: { 'a:1': 'heavy' } }, 'FST_QUART_SESSION_INVALID_OPTION', /"servers"/],
    ['options that are not an object', 'redis', 'FST_QUART_SESSION_INVALID_OPTION', /"options"/]
  ]

  for (const [name, options, code, message] of cases) {
    it(`rejects ready() for ${name}`, async () => {
      await assert.rejects(readyWith(options), (err: Error & { code?: string }) => {
        assert.equal(err.code, code)
        assert.match(err.message, message)
        return true
      })
    })
  }

  it('rejects a route whose config.session is not a boolean', async () => {
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession, { store: new CountingStore() })
    assert.throws(() => app.get('/x', { config: { session: 'yes' as unknown as boolean } }, async () => 'x'),
      { code: 'FST_QUART_SESSION_INVALID_OPTION', message: /config.session of route \/x/ })
    await app.close()
  })

  it('needs @fastify/cookie registered first', async () => {
    const app = Fastify()
    app.register(quartSession)
    await assert.rejects(async () => { await app.ready() }, { code: 'FST_QUART_SESSION_NO_COOKIE_PLUGIN', message: /register @fastify\/cookie before/ })
    await app.close()
  })

  it('accepts a short older secret of a rotation (it only verifies)', async () => {
    await readyWith({ secret: [SECRET, 'old-short-one'] })
  })

  it('never changes the caller\'s options object', async () => {
    const options = Object.freeze({ secret: SECRET, cookie: Object.freeze({ path: '/app' }) })
    const copy = structuredClone(options)
    await readyWith(options)
    assert.deepEqual(options, copy)
  })

  it('accepts a full, valid configuration', async () => {
    await readyWith({
      type: 'memory',
      keyPrefix: 'app:',
      secret: [SECRET, SECRET + '-old'],
      cookieName: 'sid',
      cookie: { path: '/', domain: 'example.com', httpOnly: true, secure: 'auto', sameSite: 'strict', partitioned: false, priority: 'medium' },
      maxAge: 3600,
      permanent: false,
      protection: true,
      reverseProxy: true,
      staticFiles: true,
      serializer: { stringify: JSON.stringify, parse: JSON.parse },
      timeout: 1.5,
      maxEntries: 100
    })
  })

  it('warns at startup when the memory store is used with NODE_ENV=production', async () => {
    const lines: string[] = []
    const previous = process.env.NODE_ENV
    process.env.NODE_ENV = 'production'
    try {
      const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
      await app.register(cookie)
      await app.register(quartSession)
      await app.ready()
      await app.close()
    } finally {
      process.env.NODE_ENV = previous
    }
    assert.ok(lines.some((line) => /memory store keeps sessions in this process only/.test(line)), lines.join('\n'))
  })

  it('closes a store it created, and never a store the user supplied', async () => {
    let closed = 0
    const userStore = Object.assign(new CountingStore(), { close: async () => { closed++ } })
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession, { store: userStore })
    await app.ready()
    await app.close()
    assert.equal(closed, 0)
  })

  it('a store whose ready() fails makes ready() reject with FST_QUART_SESSION_CONNECT', async () => {
    const store = Object.assign(new CountingStore(), { ready: async () => { throw new Error('ECONNREFUSED') } })
    await assert.rejects(readyWith({ store }), { code: 'FST_QUART_SESSION_CONNECT', message: /ECONNREFUSED/ })
  })
})
