// Issue 9 point 7: options browsers reject, or that break the plugin, are refused at ready();
// SameSite=None and Partitioned with secure: 'auto' go out on https only.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { SECRET, cookieOf } from './helpers/app.js'

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

function refused (option: RegExp): (err: Error & { code?: string }) => boolean {
  return (err) => {
    assert.equal(err.code, 'FST_QUART_SESSION_INVALID_OPTION', String(err))
    assert.match(err.message, option)
    return true
  }
}

describe('cookieName must be an RFC 6265 token and not an Object.prototype member', () => {
  const notTokens = ['', 'a b', 'a;b', 'a=b', 'a,b', '"quoted"', 'a\tb', 'a\r\nb', 'sess(ion)', 'a/b', 'a@b', 'a:b', 'séance', '会话', 'a\u0000b', 'a[0]', 'a{b}', 'a?b', 'a\\b']
  for (const name of notTokens) {
    it(`refuses ${JSON.stringify(name)}`, async () => {
      await assert.rejects(readyWith({ cookieName: name }), refused(/"cookieName"/))
    })
  }

  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf']) {
    it(`refuses "${name}", with or without a secret`, async () => {
      await assert.rejects(readyWith({ cookieName: name }), refused(/"cookieName".*Object\.prototype/))
      await assert.rejects(readyWith({ cookieName: name, secret: SECRET }), refused(/"cookieName"/))
    })
  }

  it('accepts every token character', async () => {
    await readyWith({ cookieName: "Az09!#$%&'*+-.^_`|~" })
    await readyWith({ cookieName: '__Host-session', cookie: { secure: true } })
  })

  it('a non-string cookieName is refused', async () => {
    await assert.rejects(readyWith({ cookieName: 42 }), refused(/"cookieName"/))
  })
})

describe('SameSite=None and Partitioned need Secure', () => {
  it('sameSite "none" with secure: false is refused', async () => {
    await assert.rejects(readyWith({ cookie: { sameSite: 'none', secure: false } }), refused(/"cookie.sameSite".*secure/))
  })

  it('partitioned: true with secure: false is refused', async () => {
    await assert.rejects(readyWith({ cookie: { partitioned: true, secure: false } }), refused(/"cookie.partitioned".*secure/))
  })

  it('with secure: true or "auto" they are accepted', async () => {
    await readyWith({ cookie: { sameSite: 'none', partitioned: true, secure: true } })
    await readyWith({ cookie: { sameSite: 'none', partitioned: true, secure: 'auto' } })
    await readyWith({ cookie: { sameSite: 'none', partitioned: true } })
  })

  it('session.options() never makes a SameSite=None or Partitioned cookie without Secure', async () => {
    const app = await appWith({ cookie: { sameSite: 'lax', secure: false } })
    app.get('/explicit', async (request) => { request.session.options({ sameSite: 'none', secure: false }); return 'ok' })
    app.get('/inherited', async (request) => {
      request.session.set('foo', 'bar')
      request.session.options({ sameSite: 'none', partitioned: true })
      return 'ok'
    })
    const explicit = await app.inject('/explicit')
    assert.equal(explicit.statusCode, 500)
    assert.equal(explicit.json().code, 'FST_QUART_SESSION_INVALID_ARGUMENT')
    // secure: false comes from the plugin options here: the combination is refused all the same.
    const inherited = await app.inject('/inherited')
    assert.equal(inherited.statusCode, 500)
    assert.equal(inherited.json().code, 'FST_QUART_SESSION_INVALID_ARGUMENT')
    // The value set before the refused call is saved with the error reply, under the app's own attributes.
    const sent = cookieOf(inherited)
    assert.ok(sent)
    assert.notEqual(sent.attributes.samesite, 'None', sent.header)
    assert.equal(sent.attributes.partitioned, undefined, sent.header)
    await app.close()
  })

  async function appWith (options: QuartSessionOptions): Promise<FastifyInstance> {
    const app = Fastify({ trustProxy: true })
    await app.register(cookie)
    await app.register(quartSession, { store: new MemoryStore(), ...options })
    app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
    app.get('/logout', async (request) => { await request.session.destroy(); return 'bye' })
    return app
  }

  it('with secure: "auto", SameSite=None and Partitioned are sent on https only', async () => {
    const app = await appWith({ cookie: { sameSite: 'none', partitioned: true, secure: 'auto' } })
    const http = cookieOf(await app.inject('/set'))
    assert.ok(http)
    // Not None over plain http (the browser would refuse the cookie), and not left out either
    // (that is Lax in Chrome, None in Firefox and Safari): Lax, as the docs describe.
    assert.equal(http.attributes.samesite, 'Lax', http.header)
    assert.equal(http.attributes.partitioned, undefined)
    assert.equal(http.attributes.secure, undefined)

    const https = cookieOf(await app.inject({ url: '/set', headers: { 'x-forwarded-proto': 'https' } }))
    assert.ok(https)
    assert.equal(https.attributes.samesite, 'None')
    assert.equal(https.attributes.partitioned, true)
    assert.equal(https.attributes.secure, true)

    // The clearing cookie carries the same attributes as the one that set it.
    const cleared = cookieOf(await app.inject({ url: '/logout', headers: { cookie: https.pair, 'x-forwarded-proto': 'https' } }))
    assert.ok(cleared)
    assert.equal(cleared.attributes.samesite, 'None')
    assert.equal(cleared.attributes.partitioned, true)
    assert.equal(cleared.attributes.secure, true)
    await app.close()
  })

  // Bug (issue 19): sameSite 'none' with secure 'auto' sent no SameSite attribute at all on http.
  it('bug: with secure "auto" on plain http every sameSite setting sends its attribute (None as Lax)', async () => {
    const expected: Array<[QuartSessionOptions['cookie'], string | undefined]> = [
      [{ sameSite: 'none' }, 'Lax'],
      [{ sameSite: 'lax' }, 'Lax'],
      [{ sameSite: 'strict' }, 'Strict'],
      [{ sameSite: true }, 'Strict'],
      [{}, 'Lax'],
      [{ sameSite: false }, undefined]
    ]
    for (const [cookieOptions, sameSite] of expected) {
      const app = await appWith({ cookie: { ...cookieOptions, secure: 'auto' } })
      const set = cookieOf(await app.inject('/set'))
      assert.ok(set)
      assert.equal(set.attributes.samesite, sameSite, `${JSON.stringify(cookieOptions)}: ${set.header}`)
      assert.equal(set.attributes.secure, undefined)
      const cleared = cookieOf(await app.inject({ url: '/logout', headers: { cookie: set.pair } }))
      assert.ok(cleared)
      assert.equal(cleared.attributes.samesite, sameSite, `clearing cookie of ${JSON.stringify(cookieOptions)}: ${cleared.header}`)
      await app.close()
    }
  })

  it('session.options({ sameSite: "none" }) with secure "auto": Lax on http, None; Secure on https', async () => {
    const app = await appWith({})
    app.get('/cross-site', async (request) => {
      request.session.set('foo', 'bar')
      request.session.options({ sameSite: 'none' })
      return 'ok'
    })
    const http = cookieOf(await app.inject('/cross-site'))
    assert.ok(http)
    assert.equal(http.attributes.samesite, 'Lax', http.header)
    const https = cookieOf(await app.inject({ url: '/cross-site', headers: { 'x-forwarded-proto': 'https' } }))
    assert.ok(https)
    assert.equal(https.attributes.samesite, 'None', https.header)
    assert.equal(https.attributes.secure, true)
    await app.close()
  })

  it('with secure: true they are always sent', async () => {
    const app = await appWith({ cookie: { sameSite: 'none', partitioned: true, secure: true } })
    const http = cookieOf(await app.inject('/set'))
    assert.ok(http)
    assert.equal(http.attributes.samesite, 'None')
    assert.equal(http.attributes.partitioned, true)
    assert.equal(http.attributes.secure, true)
    await app.close()
  })
})

// Bug (found while fuzzing): a lifetime past the range of Date, e.g. Number.MAX_SAFE_INTEGER
// seconds, passed the checks and every cookie then went out with "Expires=Invalid Date". Either the
// value is refused (ready() / session.options()) or the cookie carries a real date.
describe('bug: a maxAge past the range of Date sends Expires=Invalid Date', () => {
  const HUGE = Number.MAX_SAFE_INTEGER

  function assertValidLifetime (header: string): void {
    assert.ok(!/Invalid Date/.test(header), header)
    const expires = /; Expires=([^;]+)/.exec(header)?.[1]
    if (expires !== undefined) assert.ok(!Number.isNaN(Date.parse(expires)), header)
  }

  it('the plugin option: refused at ready(), or a real Expires', async () => {
    const app = Fastify()
    await app.register(cookie)
    app.register(quartSession, { store: new MemoryStore(), maxAge: HUGE })
    app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'ok' })
    let refused = false
    try {
      await app.ready()
    } catch (err) {
      assert.equal((err as { code?: string }).code, 'FST_QUART_SESSION_INVALID_OPTION')
      refused = true
    }
    if (!refused) {
      const sent = cookieOf(await app.inject('/set'))
      assert.ok(sent)
      assertValidLifetime(sent.header)
    }
    await app.close()
  })

  it('session.options({ maxAge }): refused, or a real Expires', async () => {
    const app = Fastify()
    await app.register(cookie)
    await app.register(quartSession, { store: new MemoryStore() })
    app.get('/set', async (request) => {
      request.session.set('foo', 'bar')
      request.session.options({ maxAge: HUGE })
      return 'ok'
    })
    const response = await app.inject('/set')
    if (response.statusCode === 500) {
      assert.equal(response.json().code, 'FST_QUART_SESSION_INVALID_ARGUMENT')
    } else {
      const sent = cookieOf(response)
      assert.ok(sent)
      assertValidLifetime(sent.header)
    }
    await app.close()
  })
})
