// Issue 21: logs never carry a raw session id. Every path that logs (a record that is not ours,
// one no key opens, protection, a backend that fails and quotes its key) runs with the logger at
// trace, and no line may contain an id the test saw.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions } from '../lib/index.js'
import { CountingStore, SECRET, sessionOf, sessionRoutes } from './helpers/app.js'
import { sessionKey } from './helpers/keys.js'
import { generateId } from '../lib/id.js'

const KEY = 'an-encryption-key-that-is-long-enough-0123456789'

async function logged (options: QuartSessionOptions): Promise<{ app: ReturnType<typeof Fastify>, lines: string[] }> {
  const lines: string[] = []
  const app = Fastify({ trustProxy: true, logger: { level: 'trace', stream: { write: (line: string) => { lines.push(line) } } } })
  await app.register(cookie)
  await app.register(quartSession, options)
  sessionRoutes(app)
  await app.ready()
  return { app, lines }
}

/** A store whose errors quote the key, as a filesystem path or a command echo would. */
class QuotingStore extends CountingStore {
  override async get (key: string): Promise<string | undefined> {
    if (!key.startsWith('session:') || key.length > 'session:'.length + 32) return await super.get(key)
    throw new Error(`EACCES: permission denied, open '/var/sessions/${key}'`)
  }
}

describe('no raw session id in the logs', () => {
  it('records that are not ours, that no key opens, protection and logout', async () => {
    const store = new CountingStore()
    const ids: string[] = []
    const { app, lines } = await logged({ store, secret: SECRET, protection: true, encryptionKey: KEY })
    const first = sessionOf(await app.inject({ url: '/set', headers: { 'x-forwarded-for': '10.0.0.1' } }))
    ids.push(first.id.split('.')[0])
    // Another address: the session is deleted (logged at info).
    await app.inject({ url: '/read', headers: { cookie: first.cookie, 'x-forwarded-for': '10.0.0.2' } })
    const second = sessionOf(await app.inject({ url: '/set', headers: { 'x-forwarded-for': '10.0.0.1' } }))
    const id = second.id.split('.')[0]
    ids.push(id)
    // Garbage under its key: a warning.
    await store.inner.set(sessionKey(id), 'qse1.AAAA.garbage', 60)
    await app.inject({ url: '/read', headers: { cookie: second.cookie, 'x-forwarded-for': '10.0.0.1' } })
    const third = sessionOf(await app.inject({ url: '/set', headers: { 'x-forwarded-for': '10.0.0.1' } }))
    ids.push(third.id.split('.')[0])
    await app.inject({ url: '/logout', headers: { cookie: third.cookie, 'x-forwarded-for': '10.0.0.1' } })
    await app.close()
    assert.ok(lines.length > 5)
    for (const line of lines) for (const seen of ids) assert.ok(!line.includes(seen), `a log line carries an id: ${line}`)
  })

  it('a failing legacy read whose error quotes the plain-id key is logged with a hash', async () => {
    const { app, lines } = await logged({ store: new QuotingStore() })
    const id = generateId()
    const response = await app.inject({ url: '/read', headers: { cookie: `session=${id}` } })
    assert.equal(response.statusCode, 503)
    assert.ok(!response.body.includes(id))
    await app.close()
    assert.ok(lines.some((line) => line.includes('EACCES')), 'the failure is logged')
    for (const line of lines) assert.ok(!line.includes(id), `a log line carries the id: ${line}`)
  })
})
