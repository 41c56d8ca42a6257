// Issue 19: rotating away from an old short secret must not fail ready(); only the secret that
// signs must be strong. `secret: process.env.SESSION_SECRET` with the variable unset must not pass
// silently in production. Texts follow @fastify/session's for the same mistakes.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie, { sign } from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { SECRET, buildLogged, cookieOf, setCookieCount } from './helpers/app.js'

const SHORT_OLD = 'old-short-one'

/** An app whose warn-level log lines about secrets are kept: a user reads these at startup. */
async function appWith (options: QuartSessionOptions): Promise<{ app: FastifyInstance, warnings: () => string[] }> {
  const { app, warnings } = await buildLogged(options, (app) => {
    app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
    app.get('/read', async (request) => request.session.get('foo') ?? 'none')
  })
  return { app, warnings: () => warnings().filter((msg) => msg.includes('secret')) }
}

async function withNodeEnv<T> (value: string | undefined, run: () => Promise<T>): Promise<T> {
  const previous = process.env.NODE_ENV
  if (value === undefined) delete process.env.NODE_ENV
  else process.env.NODE_ENV = value
  try {
    return await run()
  } finally {
    if (previous === undefined) delete process.env.NODE_ENV
    else process.env.NODE_ENV = previous
  }
}

async function refusal (options: unknown): Promise<Error & { code?: string }> {
  const app = Fastify()
  await app.register(cookie)
  app.register(quartSession, options as QuartSessionOptions)
  try {
    await app.ready()
  } catch (err) {
    return err as Error & { code?: string }
  } finally {
    await app.close()
  }
  assert.fail(`ready() accepted ${JSON.stringify(options)}`)
}

describe('secret rotation with an old short secret', () => {
  it('ready() succeeds and a cookie signed with the old secret still opens its session, re-issued with the new one', async () => {
    const { app, warnings } = await appWith({ store: new MemoryStore(), secret: [SECRET, SHORT_OLD] })
    assert.equal(warnings().length, 1)
    const written = cookieOf(await app.inject('/set'))
    assert.ok(written)
    // The cookie the old deployment issued: the same session id, signed with the short secret.
    const [id] = written.value.split('.')
    const oldCookie = `session=${sign(id, SHORT_OLD)}`

    const response = await app.inject({ url: '/read', headers: { cookie: oldCookie } })
    assert.equal(response.body, 'bar', 'the cookie signed by the old short secret verifies')
    const reissued = cookieOf(response)
    assert.ok(reissued, 'the old cookie is replaced')
    assert.equal(reissued.value, sign(id, SECRET), 'the new cookie is signed with secret[0]')
    const next = await app.inject({ url: '/read', headers: { cookie: reissued.pair } })
    assert.equal(next.body, 'bar')
    assert.equal(setCookieCount(next), 0)
    // A forged cookie is still refused: the short secret verifies only what it signed.
    const forged = await app.inject({ url: '/read', headers: { cookie: `session=${sign(id, 'another-short')}` } })
    assert.equal(forged.body, 'none')
    await app.close()
  })

  it('warns once at registration, naming the weak secret by its position and never by its value', async () => {
    const { app, warnings } = await appWith({ store: new MemoryStore(), secret: [SECRET, 'x'.repeat(40), SHORT_OLD] })
    await app.inject('/set')
    await app.inject('/read')
    const lines = warnings()
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], /secret\[2\] is 13 characters long \(shorter than 32\)/)
    assert.ok(!lines[0].includes(SHORT_OLD), 'the secret itself is never logged')
    await app.close()
  })

  it('strong secrets only: no warning', async () => {
    const { app, warnings } = await appWith({ store: new MemoryStore(), secret: [SECRET, SECRET + '-old'] })
    assert.deepEqual(warnings(), [])
    await app.close()
  })

  it('the secret that signs must be strong: a short secret[0] fails ready(), in @fastify/session\'s words', async () => {
    const err = await refusal({ secret: [SHORT_OLD, SECRET] })
    assert.equal(err.code, 'FST_QUART_SESSION_WEAK_SECRET')
    assert.match(err.message, /secret\[0\]\) must have length 32 or greater, got 13 characters/)
  })

  it('a lone short string fails ready() with the message @fastify/session gives', async () => {
    const err = await refusal({ secret: 'too-short' })
    assert.equal(err.code, 'FST_QUART_SESSION_WEAK_SECRET')
    assert.match(err.message, /the secret must have length 32 or greater, got 9 characters/)
  })

  it('an empty array fails ready() with "at least one secret is required"', async () => {
    const err = await refusal({ secret: [] })
    assert.equal(err.code, 'FST_QUART_SESSION_WEAK_SECRET')
    assert.match(err.message, /at least one secret is required/)
  })

  it('an empty string is no secret, even as an older one', async () => {
    const err = await refusal({ secret: [SECRET, ''] })
    assert.equal(err.code, 'FST_QUART_SESSION_WEAK_SECRET')
    assert.match(err.message, /secret\[1\] is an empty string/)
  })

  it('a missing entry of the array (an unset variable) names its position', async () => {
    const err = await refusal({ secret: [SECRET, undefined] })
    assert.equal(err.code, 'FST_QUART_SESSION_INVALID_OPTION')
    assert.match(err.message, /"secret\[1\]": must be a String or an Array of Strings, got undefined/)
  })

  it('a signer object (accepted by @fastify/session) is refused with a message saying so', async () => {
    const err = await refusal({ secret: { sign: (v: string) => v, unsign: (v: string) => ({ valid: true, renew: false, value: v }) } })
    assert.equal(err.code, 'FST_QUART_SESSION_INVALID_OPTION')
    assert.match(err.message, /signer object with \.sign and \.unsign .* is not supported/)
  })
})

describe('secret: process.env.SESSION_SECRET with the variable unset', () => {
  const unset: QuartSessionOptions = { secret: process.env.QUART_TEST_VARIABLE_THAT_IS_NEVER_SET }

  it('in production: a warning at registration that cookies are not signed', async () => {
    const { app, warnings } = await withNodeEnv('production', async () => await appWith({ store: new MemoryStore(), ...unset }))
    const lines = warnings()
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], /"secret" option is present but undefined .* NOT signed/)
    // And that is what happens: the cookie carries the bare id.
    const sent = cookieOf(await app.inject('/set'))
    assert.ok(sent)
    assert.match(sent.value, /^[A-Za-z0-9_-]{32}$/)
    await app.close()
  })

  it('outside production, and without the option at all, nothing is logged', async () => {
    for (const [env, options] of [[undefined, unset], ['development', unset], ['production', {}]] as const) {
      const { app, warnings } = await withNodeEnv(env, async () => await appWith({ store: new MemoryStore(), ...options }))
      assert.deepEqual(warnings(), [], `NODE_ENV=${String(env)} ${JSON.stringify(options)}`)
      await app.close()
    }
  })
})
