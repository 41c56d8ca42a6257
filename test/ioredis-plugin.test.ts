// The plugin with `type: 'redis'` and an ioredis client as `client` (one the app built, and the one
// @fastify/redis decorates), against a real redis-server, through fastify.inject.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'devalue'
import { Redis, Cluster } from 'ioredis'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import fastifyRedis from '@fastify/redis'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { IoredisStore } from '../lib/stores/ioredis.js'
import { sessionOf, cookieOf } from './helpers/app.js'
import { freePort } from './helpers/ports.js'
import { startRedis, startRedisCluster, resetCommandStats, commandCounts, type RedisServer } from './helpers/redis-server.js'
import { eventually } from './helpers/assertions.js'
import { sessionKey } from './helpers/keys.js'

function routes (app: FastifyInstance): void {
  app.get('/set', async (request) => {
    request.session.set('foo', 'bar')
    return 'set'
  })
  app.get('/read', async (request) => request.session.get('foo') ?? 'not found')
  app.get('/free', { config: { session: false } }, async () => 'no session here')
}

/** Sets a session on one request, reads it back on the next with the cookie, checks Redis. */
async function assertRoundTrip (app: FastifyInstance, redis: Redis): Promise<void> {
  const first = await app.inject('/set')
  assert.equal(first.statusCode, 200)
  const { cookie, id } = sessionOf(first)
  const second = await app.inject({ url: '/read', headers: { cookie } })
  assert.equal(second.statusCode, 200)
  assert.equal(second.body, 'bar')
  const text = await redis.get(sessionKey(id))
  assert.ok(text !== null, 'the record is in Redis under session:<id>')
  assert.deepEqual({ ...(parse(text) as { data: object }).data }, { foo: 'bar' })
  assert.ok(await redis.ttl(sessionKey(id)) > 0, 'with a TTL')
}

describe('plugin with type redis and an ioredis client', () => {
  let server: RedisServer
  let plain: Redis

  before(async () => {
    server = await startRedis()
    plain = new Redis({ host: '127.0.0.1', port: server.port })
  })
  after(async () => {
    plain?.disconnect()
    await server?.stop()
  })

  describe('a client the app built', () => {
    let app: FastifyInstance
    let client: Redis

    before(async () => {
      client = new Redis({ host: '127.0.0.1', port: server.port })
      app = Fastify()
      await app.register(cookie)
      await app.register(quartSession, { type: 'redis', client })
      routes(app)
      await app.ready()
    })
    after(async () => {
      await app?.close()
      client?.disconnect()
    })

    it('is recognised as ioredis and used by an IoredisStore', () => {
      assert.ok(app.sessionStore.adapter instanceof IoredisStore)
    })

    it('round-trips a session over two requests, stored under session:<id>', async () => {
      await assertRoundTrip(app, plain)
    })

    it('an unchanged read is one GET; a write is GET and one EVALSHA', async () => {
      const { cookie } = sessionOf(await app.inject('/set'))
      await resetCommandStats(server.port)
      const read = await app.inject({ url: '/read', headers: { cookie } })
      assert.equal(read.body, 'bar')
      assert.equal(cookieOf(read), undefined)
      assert.deepEqual(await commandCounts(server.port), { get: 1 })
      await resetCommandStats(server.port)
      const write = await app.inject({ url: '/set' })
      assert.equal(write.statusCode, 200)
      const counts = await commandCounts(server.port)
      // The script's own GET and SET are counted too; the client sent only the EVALSHA.
      assert.equal(counts.evalsha, 1, JSON.stringify(counts))
      assert.equal(counts.eval, undefined, JSON.stringify(counts))
    })

    it('a session key that holds another Redis type gives a fresh session, and is not overwritten', async () => {
      const { cookie, id } = sessionOf(await app.inject('/set'))
      await plain.del(sessionKey(id))
      await plain.hset(sessionKey(id), 'field', 'not ours')
      const read = await app.inject({ url: '/read', headers: { cookie } })
      assert.equal(read.statusCode, 200)
      assert.equal(read.body, 'not found')
      const write = await app.inject({ url: '/set', headers: { cookie } })
      assert.equal(write.statusCode, 200)
      assert.notEqual(sessionOf(write).id, id, 'a fresh id')
      assert.equal(await plain.type(sessionKey(id)), 'hash')
    })

    it('leaves the client open after app.close()', async () => {
      const other = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true })
      const own = Fastify()
      await own.register(cookie)
      await own.register(quartSession, { type: 'redis', client: other })
      await own.ready()
      assert.equal(other.status, 'ready', 'ready() connected the lazy client')
      await own.close()
      assert.equal(other.status, 'ready')
      assert.equal(await other.ping(), 'PONG')
      other.disconnect()
    })

    it('fails ready() with FST_QUART_SESSION_CONNECT when Redis is unreachable', async () => {
      const port = await freePort()
      const unreachable = new Redis({ host: '127.0.0.1', port, lazyConnect: true })
      const own = Fastify()
      await own.register(cookie)
      await assert.rejects(async () => {
        await own.register(quartSession, { type: 'redis', client: unreachable, timeout: 1 })
        await own.ready()
      }, { code: 'FST_QUART_SESSION_CONNECT' })
      assert.equal(unreachable.status, 'end', 'the client ready() connected is not left reconnecting')
      await own.close().catch(() => {})
      unreachable.disconnect()
    })

    it('answers 503 while Redis is down and recovers by itself', { timeout: 60_000 }, async () => {
      const { cookie } = sessionOf(await app.inject('/set'))
      await server.stop()
      try {
        await eventually(async () => { assert.notEqual(client.status, 'ready') }, 10)
        const down = await app.inject({ url: '/read', headers: { cookie } })
        assert.equal(down.statusCode, 503)
        assert.match(down.json<{ code: string }>().code, /^FST_QUART_SESSION_(BACKEND|TIMEOUT)$/)
        assert.doesNotMatch(down.body, /ECONNREFUSED|ioredis|not connected/, 'no backend details in the reply')
        assert.equal((await app.inject('/free')).statusCode, 200, 'routes without a session keep working')
      } finally {
        await server.restart()
      }
      await eventually(async () => {
        assert.equal((await app.inject('/set')).statusCode, 200)
      })
      await assertRoundTrip(app, plain)
    })
  })

  describe('the client @fastify/redis decorates', () => {
    let app: FastifyInstance

    before(async () => {
      app = Fastify()
      await app.register(cookie)
      await app.register(fastifyRedis, { host: '127.0.0.1', port: server.port })
      await app.register(quartSession, { type: 'redis', client: app.redis })
      routes(app)
      await app.ready()
    })
    after(async () => { await app?.close() })

    it('round-trips a session over two requests, stored under session:<id>', async () => {
      assert.ok(app.sessionStore.adapter instanceof IoredisStore)
      await assertRoundTrip(app, plain)
    })

    it('shares the connection with the app: app.redis sees the session record', async () => {
      const { id } = sessionOf(await app.inject('/set'))
      assert.ok((await app.redis.get(sessionKey(id))) !== null)
    })
  })

  describe('an ioredis Cluster', () => {
    it('is recognised as ioredis, connected by ready(), and round-trips a session', async () => {
      const servers = await startRedisCluster()
      const cluster = new Cluster(servers.ports.map((port) => ({ host: '127.0.0.1', port })), { lazyConnect: true })
      const app = Fastify()
      try {
        await app.register(cookie)
        await app.register(quartSession, { type: 'redis', client: cluster })
        routes(app)
        await app.ready()
        assert.ok(app.sessionStore.adapter instanceof IoredisStore)
        assert.equal(cluster.status, 'ready')
        const { cookie: pair, id } = sessionOf(await app.inject('/set'))
        assert.equal((await app.inject({ url: '/read', headers: { cookie: pair } })).body, 'bar')
        assert.ok((await cluster.get(sessionKey(id))) !== null, 'the record is in the cluster under session:<id>')
      } finally {
        await app.close()
        cluster.disconnect()
        await servers.stop()
      }
    })
  })
})
