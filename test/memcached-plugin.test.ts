// The plugin with type 'memcached' against real memcached servers, through fastify.inject, with the
// backend checked by a separate client and by the servers' own stats.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'devalue'
import Memcached from 'memcached'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import './helpers/session-data.js'
import { cookieOf, sessionOf } from './helpers/app.js'
import { backendApp, assertOutageAndRecovery } from './helpers/backend-app.js'
import { eventually } from './helpers/assertions.js'
import type { QuartSessionOptions } from '../lib/index.js'
import { memcachedKey } from '../lib/stores/memcached.js'
import { freePort } from './helpers/ports.js'
import {
  startMemcached, remainingTtl, rawCommand, rawSet, readWith, counting, type MemcachedServer
} from './helpers/memcached-server.js'
import { sessionKey } from './helpers/keys.js'

const MAX_AGE = 31 * 24 * 60 * 60
// A long TTL becomes a Unix time from this process's clock; memcached counts the rest from its own.
const CLOCK_SLACK = 3

async function appWith (options: QuartSessionOptions): Promise<FastifyInstance> {
  return await backendApp({ type: 'memcached', ...options })
}

describe('plugin with type memcached', () => {
  let server: MemcachedServer

  before(async () => { server = await startMemcached() })
  after(async () => { await server?.stop() })

  describe('with servers', () => {
    let app: FastifyInstance
    let plain: Memcached

    before(async () => {
      app = await appWith({ servers: server.location })
      plain = new Memcached(server.location)
    })
    after(async () => {
      await app?.close()
      plain?.end()
    })

    it('stores a session under session:<id> as a devalue record, for the default 31 days', async () => {
      const response = await app.inject('/set')
      assert.equal(response.statusCode, 200)
      const { id } = sessionOf(response)
      const text = await readWith(plain, sessionKey(id))
      assert.ok(typeof text === 'string', 'a separate client reads the record')
      assert.deepEqual({ ...(parse(text) as { data: object }).data }, { foo: 'bar' })
      const ttl = await remainingTtl(server.port, sessionKey(id))
      assert.ok(ttl !== undefined && Math.abs(ttl - MAX_AGE) <= CLOCK_SLACK, `TTL ${ttl}`)
      const read = await app.inject({ url: '/read', headers: { cookie: sessionOf(response).cookie } })
      assert.equal(read.body, 'bar')
    })

    it('an unchanged read costs one get and nothing else', async () => {
      const { cookie } = sessionOf(await app.inject('/set'))
      let response: LightMyRequestResponse | undefined
      const counts = await counting(server, async () => { response = await app.inject({ url: '/read', headers: { cookie } }) })
      assert.equal(response?.body, 'bar')
      assert.equal(cookieOf(response as LightMyRequestResponse), undefined)
      assert.deepEqual(counts, { cmd_get: 1 })
    })

    it('a write costs one get and one set', async () => {
      const { cookie, id } = sessionOf(await app.inject('/counter'))
      let response: LightMyRequestResponse | undefined
      const counts = await counting(server, async () => { response = await app.inject({ url: '/counter', headers: { cookie } }) })
      assert.equal(response?.body, '2')
      assert.deepEqual(counts, { cmd_get: 1, cmd_set: 1 })
      const text = await readWith(plain, sessionKey(id))
      assert.equal((parse(text as string) as { data: { counter: number } }).data.counter, 2)
    })

    it('session.touch() costs one gets and one cas (the record is rewritten with its new time only if unchanged), and keeps the 31 days', async () => {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      const counts = await counting(server, async () => { await app.inject({ url: '/touch', headers: { cookie } }) })
      // memcached counts a cas as a set too.
      assert.deepEqual(counts, { cmd_get: 1, cmd_set: 1 })
      const ttl = await remainingTtl(server.port, sessionKey(id))
      assert.ok(ttl !== undefined && Math.abs(ttl - MAX_AGE) <= CLOCK_SLACK, `TTL ${ttl}`)
    })

    it('a visitor whose session stays empty costs no command at all', async () => {
      const counts = await counting(server, async () => {
        assert.equal((await app.inject('/nothing')).statusCode, 200)
      })
      assert.deepEqual(counts, {})
    })

    it('destroy deletes the item', async () => {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      assert.ok(await readWith(plain, sessionKey(id)) !== undefined)
      const counts = await counting(server, async () => { await app.inject({ url: '/logout', headers: { cookie } }) })
      assert.deepEqual(counts, { cmd_get: 1, delete_hits: 1 })
      assert.equal(await readWith(plain, sessionKey(id)), undefined)
    })

    it('fastify.sessionStore reads and writes memcached directly, with its expiry', async () => {
      const response = await app.inject('/cache')
      assert.equal(response.body, 'val')
      assert.equal(parse(await readWith(plain, 'random_key') as string), 'val')
      const ttl = await remainingTtl(server.port, 'random_key')
      assert.ok(ttl !== undefined && ttl >= 3598 && ttl <= 3600, `TTL ${ttl}`)
    })
  })

  it('a keyPrefix of 300 characters works: sessions are stored under the hashed key', async () => {
    const keyPrefix = `${'tenant-'.repeat(43)}:`
    assert.ok(keyPrefix.length >= 300)
    const app = await appWith({ servers: server.location, keyPrefix })
    const plain = new Memcached(server.location)
    try {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'bar')
      const text = await readWith(plain, memcachedKey(sessionKey(id, keyPrefix)))
      assert.deepEqual({ ...(parse(text as string) as { data: object }).data }, { foo: 'bar' })
    } finally {
      await app.close()
      plain.end()
    }
  })

  it('with a keyPrefix memcached cannot take (a space), a direct-store key cannot forge a session', async () => {
    const keyPrefix = 'my sessions:'
    const app = await appWith({ servers: server.location, keyPrefix })
    try {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      const stored = memcachedKey(sessionKey(id, keyPrefix))
      assert.match(stored, /^sha256:[0-9a-f]{64}$/, 'the session key is hashed for memcached')
      // The attacker knows the stored name and writes a record there through the direct store.
      const now = Math.floor(Date.now() / 1000)
      await app.sessionStore.set(stored, { data: { foo: 'forged' }, created: now, touched: now }, 600)
      assert.deepEqual(await app.sessionStore.get(stored), { data: { foo: 'forged' }, created: now, touched: now }, 'the direct key still works as a cache key')
      const read = await app.inject({ url: '/read', headers: { cookie } })
      assert.equal(read.statusCode, 200)
      assert.equal(read.body, 'bar', 'the session reads its own record')
    } finally {
      await app.close()
    }
  })

  describe('an item stored by another client with flags (JSON, binary, number) under a session key', () => {
    let app: FastifyInstance
    before(async () => { app = await appWith({ servers: server.location }) })
    after(async () => { await app?.close() })

    const items: Array<[string, number, string]> = [
      ['JSON', 2, '{"data":{"foo":"json"}}'],
      ['invalid JSON', 2, '{"data":'],
      ['binary', 4, 'binary bytes'],
      ['a number', 8, '42']
    ]
    for (const [name, flags, text] of items) {
      it(`${name} (flags ${flags}) gives a fresh session, not an error, and the next requests work`, async () => {
        const { cookie, id } = sessionOf(await app.inject('/counter'))
        await rawSet(server.port, sessionKey(id), flags, text)
        const response = await app.inject({ url: '/counter', headers: { cookie } })
        assert.equal(response.statusCode, 200, response.body)
        assert.equal(response.body, '1', 'a fresh session')
        const next = sessionOf(response)
        assert.notEqual(next.id, id, 'under a new id')
        assert.equal((await app.inject({ url: '/counter', headers: { cookie: next.cookie } })).body, '2')
        // The same cookie again: still a fresh session each time, never stuck on an error.
        assert.equal((await app.inject({ url: '/counter', headers: { cookie } })).statusCode, 200)
      })
    }
  })

  it('uses a memcached client the user built and leaves it working after close', async () => {
    const client = new Memcached(server.location)
    let ended = 0
    const end = client.end.bind(client)
    client.end = () => { ended++; end() }
    const app = await appWith({ client })
    const { cookie, id } = sessionOf(await app.inject('/set'))
    assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'bar')
    await app.close()
    assert.equal(ended, 0, 'the plugin did not end the client')
    assert.ok(await readWith(client, sessionKey(id)) !== undefined)
    client.end()
  })

  it('ready() rejects with FST_QUART_SESSION_CONNECT when no server answers', async () => {
    const port = await freePort()
    const error = await appWith({ servers: `127.0.0.1:${port}` }).then(() => undefined, (e: unknown) => e)
    assert.ok(error instanceof Error, 'ready() rejected')
    assert.equal((error as Error & { code?: string }).code, 'FST_QUART_SESSION_CONNECT')
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
  })

  describe('memcached stopped and restarted under a running app', { timeout: 120_000 }, () => {
    let app: FastifyInstance

    before(async () => { app = await appWith({ servers: server.location, timeout: 1 }) })
    after(async () => { await app?.close() })

    it('sessioned requests fail with a 503 error reply, opted-out routes still answer, and it recovers alone', async () => {
      await assertOutageAndRecovery(app, server)
    })
  })
})

describe('plugin with a pool of two memcached servers, one stopped', { timeout: 120_000 }, () => {
  let a: MemcachedServer
  let b: MemcachedServer
  let app: FastifyInstance

  before(async () => {
    a = await startMemcached()
    b = await startMemcached()
    app = await appWith({ servers: { [a.location]: 1, [b.location]: 1 }, timeout: 1 })
  })
  after(async () => {
    await app?.close()
    await a?.stop()
    await b?.stop()
  })

  it('sessions on the stopped server start fresh within 5 s (no 503), new sessions land on the live one, and all is fine once it is back', async () => {
    // Session ids are random: create sessions until each server holds a few.
    const onA: string[] = []
    const onB: string[] = []
    while (onA.length < 3 || onB.length < 3) {
      const { cookie, id } = sessionOf(await app.inject('/counter'))
      const inA = (await rawCommand(a.port, `get ${sessionKey(id)}`)).startsWith('VALUE')
      const inB = (await rawCommand(b.port, `get ${sessionKey(id)}`)).startsWith('VALUE')
      assert.ok(inA !== inB, `session ${id} is on exactly one server`)
      ;(inA ? onA : onB).push(cookie)
    }

    await b.stop()
    const stopped = Date.now()
    const fresh: string[] = []
    for (const cookie of onB) {
      const response = await app.inject({ url: '/counter', headers: { cookie } })
      assert.equal(response.statusCode, 200, response.body)
      assert.equal(response.body, '1', 'a fresh session in place of the unreachable one')
      const next = sessionOf(response)
      assert.notEqual(next.cookie, cookie, 'with a new id')
      fresh.push(next.cookie)
      assert.ok((await rawCommand(a.port, `get ${sessionKey(next.id)}`)).startsWith('VALUE'), 'the fresh session is stored on the live server')
    }
    assert.ok(Date.now() - stopped < 5000, `fresh sessions after ${Date.now() - stopped} ms`)
    for (const cookie of onA) {
      const response = await app.inject({ url: '/counter', headers: { cookie } })
      assert.equal(response.body, '2', 'the session on the live server was loaded and written')
    }
    // The fresh sessions live on the live server and keep working.
    for (const cookie of fresh) assert.equal((await app.inject({ url: '/counter', headers: { cookie } })).body, '2')

    await b.restart()
    // Once it is back: no error replies; sessions stored meanwhile are still there or cleanly
    // missing (a fresh session again), and those on the other server are untouched.
    await eventually(async () => {
      const counted = await b.stats()
      await app.inject({ url: '/counter', headers: { cookie: onB[0] } })
      assert.ok(Number((await b.stats()).cmd_get) > Number(counted.cmd_get), 'the restarted server is used again')
    })
    for (const cookie of [...onA, ...onB, ...fresh]) {
      const response = await app.inject({ url: '/counter', headers: { cookie } })
      assert.equal(response.statusCode, 200, response.body)
    }
    assert.equal((await app.inject({ url: '/counter', headers: { cookie: onA[0] } })).body, '4')
  })
})
