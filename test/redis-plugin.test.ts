// The plugin with type 'redis' against a real redis-server (and a real Redis Cluster), through
// fastify.inject, with the backend checked by a plain client.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { parse } from 'devalue'
import { createClient, type RedisClientType } from 'redis'
import type { FastifyInstance } from 'fastify'
import './helpers/session-data.js'
import { cookieOf, sessionOf } from './helpers/app.js'
import { backendApp, assertOutageAndRecovery } from './helpers/backend-app.js'
import type { QuartSessionOptions } from '../lib/index.js'
import { freePort } from './helpers/ports.js'
import { startRedis, resetCommandStats, commandCounts, type RedisServer } from './helpers/redis-server.js'
import { startClusterWithClients, type ClusterWithClients } from './helpers/redis-cluster.js'
import { sessionKey } from './helpers/keys.js'

const MAX_AGE = 31 * 24 * 60 * 60

async function appWith (options: QuartSessionOptions): Promise<FastifyInstance> {
  return await backendApp({ type: 'redis', ...options })
}

describe('plugin with type redis', () => {
  let server: RedisServer

  before(async () => { server = await startRedis() })

  after(async () => { await server?.stop() })

  describe('with uri', () => {
    let app: FastifyInstance
    let redis: RedisClientType

    before(async () => {
      app = await appWith({ uri: server.url })
      redis = createClient({ url: server.url })
      await redis.connect()
    })
    after(async () => {
      await app?.close()
      await redis?.close()
    })

    it('stores a session under session:<id> with the TTL of maxAge, as a devalue record', async () => {
      const response = await app.inject('/set')
      assert.equal(response.statusCode, 200)
      const { id } = sessionOf(response)
      const text = await redis.get(sessionKey(id))
      assert.ok(text !== null, 'the record is in Redis')
      assert.deepEqual({ ...(parse(text) as { data: object }).data }, { foo: 'bar' })
      const ttl = await redis.ttl(sessionKey(id))
      assert.ok(ttl >= MAX_AGE - 1 && ttl <= MAX_AGE, `TTL ${ttl}`)
    })

    it('an unchanged read costs one GET and nothing else', async () => {
      const { cookie } = sessionOf(await app.inject('/set'))
      await resetCommandStats(server.port)
      const response = await app.inject({ url: '/read', headers: { cookie } })
      assert.equal(response.body, 'bar')
      assert.equal(cookieOf(response), undefined)
      assert.deepEqual(await commandCounts(server.port), { get: 1 })
    })

    it('a write costs one GET and one EVALSHA (compare-and-set)', async () => {
      const { cookie, id } = sessionOf(await app.inject('/counter'))
      // The first write of a loaded session in a process loads the script (NOSCRIPT, then EVAL).
      assert.equal((await app.inject({ url: '/counter', headers: { cookie } })).body, '2')
      await resetCommandStats(server.port)
      const response = await app.inject({ url: '/counter', headers: { cookie } })
      assert.equal(response.body, '3')
      // Two round trips; INFO commandstats also counts the GET and SET the script runs inside Redis.
      assert.deepEqual(await commandCounts(server.port), { get: 2, evalsha: 1, set: 1 })
      const text = await redis.get(sessionKey(id))
      assert.equal((parse(text as string) as { data: { counter: number } }).data.counter, 3)
    })

    it('a new session costs one SET NX', async () => {
      await resetCommandStats(server.port)
      const { id } = sessionOf(await app.inject('/counter'))
      assert.deepEqual(await commandCounts(server.port), { set: 1 })
      assert.ok(await redis.get(sessionKey(id)))
    })

    it('a visitor whose session stays empty costs no command at all', async () => {
      await resetCommandStats(server.port)
      const response = await app.inject('/nothing')
      assert.equal(response.statusCode, 200)
      assert.deepEqual(await commandCounts(server.port), {})
    })

    it('destroy deletes the key', async () => {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      assert.equal(await redis.exists(sessionKey(id)), 1)
      await app.inject({ url: '/logout', headers: { cookie } })
      assert.equal(await redis.exists(sessionKey(id)), 0)
    })

    it('a hash under the session key gives a fresh session, not a 503 on every request', async () => {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      await redis.del(sessionKey(id))
      await redis.hSet(sessionKey(id), 'role', 'admin')
      for (let i = 0; i < 2; i++) {
        const read = await app.inject({ url: '/read', headers: { cookie } })
        assert.equal(read.statusCode, 200)
        assert.equal(read.body, 'none')
      }
      const written = await app.inject({ url: '/set', headers: { cookie } })
      assert.equal(written.statusCode, 200)
      const fresh = sessionOf(written)
      assert.notEqual(fresh.id, id, 'a fresh id, never the one holding the hash')
      assert.equal(await redis.type(sessionKey(id)), 'hash', 'the foreign key is left alone')
    })

    it('fastify.sessionStore reads and writes Redis directly, with its expiry', async () => {
      const response = await app.inject('/cache')
      assert.equal(response.body, 'val')
      assert.equal(parse(await redis.get('random_key') as string), 'val')
      const ttl = await redis.ttl('random_key')
      assert.ok(ttl >= 3599 && ttl <= 3600, `TTL ${ttl}`)
    })
  })

  it('keyPrefix and maxAge shape the key and its TTL', async () => {
    const app = await appWith({ uri: server.url, keyPrefix: 'shop:sess:', maxAge: 600 })
    const redis = createClient({ url: server.url })
    await redis.connect()
    try {
      const { id } = sessionOf(await app.inject('/set'))
      assert.equal(await redis.exists(sessionKey(id)), 0)
      const ttl = await redis.ttl(sessionKey(id, 'shop:sess:'))
      assert.ok(ttl >= 599 && ttl <= 600, `TTL ${ttl}`)
    } finally {
      await app.close()
      await redis.close()
    }
  })

  it('uses a client the user built and leaves it open after close', async () => {
    const client = createClient({ url: server.url })
    await client.connect()
    const app = await appWith({ client })
    const { cookie, id } = sessionOf(await app.inject('/set'))
    assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'bar')
    await app.close()
    assert.equal(client.isOpen, true)
    assert.ok(await client.get(sessionKey(id)) !== null)
    await client.close()
  })

  it('connects a user client that is not connected yet', async () => {
    const client = createClient({ url: server.url })
    const app = await appWith({ client })
    assert.equal(client.isReady, true)
    const { cookie } = sessionOf(await app.inject('/set'))
    assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'bar')
    await app.close()
    assert.equal(client.isOpen, true)
    await client.close()
  })

  it('ready() rejects with FST_QUART_SESSION_CONNECT for a refused uri, without the password', async () => {
    const port = await freePort()
    const error = await appWith({ uri: `redis://:pa55word@127.0.0.1:${port}` }).then(() => undefined, (e: unknown) => e)
    assert.ok(error instanceof Error, 'ready() rejected')
    assert.equal((error as Error & { code?: string }).code, 'FST_QUART_SESSION_CONNECT')
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
    assert.doesNotMatch(error.message, /pa55word/)
  })

  describe('Redis stopped and restarted under a running app', { timeout: 120_000 }, () => {
    let app: FastifyInstance

    before(async () => {
      app = await appWith({ uri: server.url, timeout: 1 })
    })
    after(async () => { await app?.close() })

    it('sessioned requests fail with a 503 error reply, opted-out routes still answer, and it recovers alone', async () => {
      await assertOutageAndRecovery(app, server)
    })
  })
})

describe('plugin with a Redis Cluster client', () => {
  let redisCluster: ClusterWithClients

  before(async () => {
    redisCluster = await startClusterWithClients()
    await redisCluster.cluster.connect()
  })

  after(async () => { await redisCluster?.close() })

  it('sessions on every master are read back, expire, and are deleted', async () => {
    const app = await appWith({ client: redisCluster.cluster, maxAge: 3 })
    try {
      // Session ids are random: create sessions until each master holds at least two.
      const byMaster = new Map<number, Array<{ cookie: string, id: string }>>()
      while ([...byMaster.values()].filter((list) => list.length >= 2).length < 3) {
        const session = sessionOf(await app.inject('/set'))
        const port = await redisCluster.holder(sessionKey(session.id))
        assert.ok(port !== undefined, 'the session is stored on a master')
        byMaster.set(port, [...(byMaster.get(port) ?? []), session])
      }
      assert.equal(byMaster.size, 3)

      for (const [port, [kept, deleted]] of byMaster) {
        const read = await app.inject({ url: '/read', headers: { cookie: kept.cookie } })
        assert.equal(read.body, 'bar', `read back from ${port}`)
        await app.inject({ url: '/logout', headers: { cookie: deleted.cookie } })
        assert.equal(await redisCluster.holder(sessionKey(deleted.id)), undefined, `deleted on ${port}`)
      }

      await sleep(4100)
      for (const [port, [kept]] of byMaster) {
        assert.equal(await redisCluster.nodes.get(port)?.exists(sessionKey(kept.id)), 0, `expired on ${port}`)
        const read = await app.inject({ url: '/read', headers: { cookie: kept.cookie } })
        assert.equal(read.body, 'none')
      }
    } finally {
      await app.close()
    }
    assert.equal(redisCluster.cluster.isOpen, true, 'the plugin does not close a cluster it was given')
  })
})
