// ioredis 5 is inside the peer range (^5 || ^6): the same adapter with an ioredis@5 client (the
// dev dependency `ioredis5`, an npm alias) on a real redis-server: the shared contract, the plugin
// round trip, one command per operation, a key of another type, boot and an outage.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'devalue'
import { Redis as Redis5, Cluster as Cluster5 } from 'ioredis5'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import './helpers/session-data.js'
import quartSession from '../lib/index.js'
import { storeContract } from './contract.js'
import { IoredisStore, type IoredisLike } from '../lib/stores/ioredis.js'
import { sessionOf, cookieOf } from './helpers/app.js'
import { freePort } from './helpers/ports.js'
import { startRedis, startRedisCluster, resetCommandStats, commandCounts, type RedisServer } from './helpers/redis-server.js'
import { eventually, failedFast } from './helpers/assertions.js'
import { sessionKey } from './helpers/keys.js'

// Both ioredis 5 client classes fit the adapter's structural type (checked by tsc).
export type Redis5Fits = Redis5 extends IoredisLike ? true : never
export type Cluster5Fits = Cluster5 extends IoredisLike ? true : never
const fits: [Redis5Fits, Cluster5Fits] = [true, true]
void fits

const server: RedisServer = await startRedis()
const clients: Redis5[] = []
function client (options: { port?: number, lazyConnect?: boolean } = {}): Redis5 {
  const redis = new Redis5({ host: '127.0.0.1', port: options.port ?? server.port, lazyConnect: options.lazyConnect })
  clients.push(redis)
  return redis
}
after(async () => {
  for (const redis of clients) redis.disconnect()
  await server.stop()
})

// A fresh store per test on one connection: a supplied client outlives its stores.
const contractClient = client()
storeContract({
  name: 'ioredis 5',
  runner: { describe, it },
  capabilities: ['compareAndSet'],
  async create () {
    const store = new IoredisStore({ client: contractClient })
    await store.ready()
    return store
  }
})

describe('the plugin with an ioredis 5 client', () => {
  let app: FastifyInstance
  let plain: Redis5

  before(async () => {
    plain = client()
    app = Fastify()
    await app.register(cookie)
    await app.register(quartSession, { type: 'redis', client: client({ lazyConnect: true }), timeout: 1 })
    app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'set' })
    app.get('/read', async (request) => request.session.get('foo') ?? 'not found')
    await app.ready()
  })
  after(async () => { await app?.close() })

  it('is recognised as ioredis and round-trips a session, stored under its key with a TTL', async () => {
    assert.ok(app.sessionStore.adapter instanceof IoredisStore)
    const first = await app.inject('/set')
    const { cookie: pair, id } = sessionOf(first)
    const second = await app.inject({ url: '/read', headers: { cookie: pair } })
    assert.equal(second.body, 'bar')
    const text = await plain.get(sessionKey(id))
    assert.ok(text !== null)
    assert.deepEqual({ ...(parse(text) as { data: object }).data }, { foo: 'bar' })
    assert.ok(await plain.ttl(sessionKey(id)) > 0)
  })

  it('an unchanged read is one GET; a write is one EVALSHA', async () => {
    const { cookie: pair } = sessionOf(await app.inject('/set'))
    await resetCommandStats(server.port)
    const read = await app.inject({ url: '/read', headers: { cookie: pair } })
    assert.equal(read.body, 'bar')
    assert.equal(cookieOf(read), undefined)
    assert.deepEqual(await commandCounts(server.port), { get: 1 })
    await resetCommandStats(server.port)
    assert.equal((await app.inject('/set')).statusCode, 200)
    const counts = await commandCounts(server.port)
    assert.equal(counts.evalsha, 1, JSON.stringify(counts))
    assert.equal(counts.eval, undefined, JSON.stringify(counts))
  })

  it('a key of another type gives a fresh session and is left alone', async () => {
    const { cookie: pair, id } = sessionOf(await app.inject('/set'))
    await plain.del(sessionKey(id))
    await plain.hset(sessionKey(id), 'field', 'not ours')
    const read = await app.inject({ url: '/read', headers: { cookie: pair } })
    assert.equal(read.statusCode, 200)
    assert.equal(read.body, 'not found')
    assert.equal(await plain.type(sessionKey(id)), 'hash')
  })

  it('fails ready() with FST_QUART_SESSION_CONNECT when Redis is unreachable, leaving the client stopped', async () => {
    const unreachable = client({ port: await freePort(), lazyConnect: true })
    const own = Fastify()
    await own.register(cookie)
    await assert.rejects(async () => {
      await own.register(quartSession, { type: 'redis', client: unreachable, timeout: 1 })
      await own.ready()
    }, { code: 'FST_QUART_SESSION_CONNECT' })
    assert.equal(unreachable.status, 'end')
    await own.close().catch(() => {})
  })
})

describe('IoredisStore with ioredis 5 while Redis is down', { timeout: 60_000 }, () => {
  it('fails every operation at once, and works again once Redis is back', async () => {
    const down = await startRedis()
    const redis = client({ port: down.port })
    const store = new IoredisStore({ client: redis, timeout: 1 })
    try {
      await store.ready()
      await store.set('session:v5', 'value', 60)
      await down.stop()
      await eventually(async () => { assert.notEqual(redis.status, 'ready') }, 10)
      await assert.rejects(store.get('session:v5'), failedFast())
      await assert.rejects(store.compareAndSet('session:v5', undefined, 'value', 60), failedFast())
      await down.restart()
      await eventually(async () => { assert.equal(await store.compareAndSet('session:v5', undefined, 'again', 60), true) })
      assert.equal(await store.get('session:v5'), 'again')
    } finally {
      await store.close()
      await down.stop()
    }
  })
})

describe('an ioredis 5 Cluster', () => {
  it('passes through the plugin: connected by ready(), a session round-trips', async () => {
    const servers = await startRedisCluster()
    const cluster = new Cluster5(servers.ports.map((port) => ({ host: '127.0.0.1', port })), { lazyConnect: true })
    const app = Fastify()
    try {
      await app.register(cookie)
      await app.register(quartSession, { type: 'redis', client: cluster })
      app.get('/set', async (request) => { request.session.set('foo', 'bar'); return 'set' })
      app.get('/read', async (request) => request.session.get('foo') ?? 'not found')
      await app.ready()
      assert.ok(app.sessionStore.adapter instanceof IoredisStore)
      assert.equal(cluster.status, 'ready')
      const { cookie: pair, id } = sessionOf(await app.inject('/set'))
      assert.equal((await app.inject({ url: '/read', headers: { cookie: pair } })).body, 'bar')
      assert.ok((await cluster.get(sessionKey(id))) !== null)
    } finally {
      await app.close()
      cluster.disconnect()
      await servers.stop()
    }
  })
})
