// Issue 21: a response that carries the session's Set-Cookie must not be stored with it by a
// shared cache (OWASP: Cache-Control: no-cache="Set-Cookie"); a publicly cacheable one is warned
// about once.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { cookieOf, sessionOf } from './helpers/app.js'

interface Logged { app: FastifyInstance, warnings: () => string[] }

async function appWith (): Promise<Logged> {
  const lines: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(line) } } } })
  await app.register(cookie)
  await app.register(quartSession, {})
  app.get('/set', async (request, reply) => {
    const value = (request.query as { cc?: string }).cc
    if (value !== undefined) reply.header('cache-control', value)
    request.session.set('foo', String(Math.random()))
    return 'ok'
  })
  app.get('/read', async (request, reply) => {
    reply.header('cache-control', 'public, max-age=600')
    return request.session.get('foo') ?? 'none'
  })
  app.get('/logout', async (request) => { await request.session.destroy(); return 'bye' })
  await app.ready()
  return {
    app,
    warnings: () => lines.map((line) => JSON.parse(line) as { level: number, msg: string }).filter((l) => l.level === 40).map((l) => l.msg)
  }
}

describe('Cache-Control on responses that set the session cookie', () => {
  it('adds no-cache="Set-Cookie" when the app set none', async () => {
    const { app } = await appWith()
    const response = await app.inject('/set')
    assert.ok(cookieOf(response))
    assert.equal(response.headers['cache-control'], 'no-cache="Set-Cookie"')
    await app.close()
  })

  it('leaves responses without a session cookie alone', async () => {
    const { app, warnings } = await appWith()
    const { cookie } = sessionOf(await app.inject('/set'))
    const response = await app.inject({ url: '/read', headers: { cookie } })
    assert.equal(response.headers['set-cookie'], undefined)
    assert.equal(response.headers['cache-control'], 'public, max-age=600')
    assert.deepEqual(warnings(), [])
    await app.close()
  })

  it('adds the directive to the app\'s own value, unless it is already private, no-store or no-cache', async () => {
    const { app } = await appWith()
    const cases: Array<[string, string]> = [
      ['max-age=60', 'max-age=60, no-cache="Set-Cookie"'],
      ['private, max-age=60', 'private, max-age=60'],
      ['no-store', 'no-store'],
      ['no-cache', 'no-cache']
    ]
    for (const [given, expected] of cases) {
      const response = await app.inject(`/set?cc=${encodeURIComponent(given)}`)
      assert.equal(response.headers['cache-control'], expected, given)
    }
    await app.close()
  })

  it('warns once when the app made such a response publicly cacheable, and still adds the directive', async () => {
    const { app, warnings } = await appWith()
    for (const value of ['public, max-age=600', 's-maxage=60', 'public']) {
      const response = await app.inject(`/set?cc=${encodeURIComponent(value)}`)
      assert.equal(response.headers['cache-control'], `${value}, no-cache="Set-Cookie"`)
    }
    const found = warnings().filter((w) => w.includes('publicly cacheable'))
    assert.equal(found.length, 1, warnings().join('\n'))
    await app.close()
  })

  it('marks the response that expires the cookie too', async () => {
    const { app } = await appWith()
    const { cookie } = sessionOf(await app.inject('/set'))
    const response = await app.inject({ url: '/logout', headers: { cookie } })
    assert.ok(cookieOf(response), 'the cookie is expired')
    assert.equal(response.headers['cache-control'], 'no-cache="Set-Cookie"')
    await app.close()
  })
})
