// The ioredis adapter against a real redis-server: the shared contract, one command per
// operation, wrong-type keys, boot, and an outage with recovery.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis, Cluster } from 'ioredis'
import * as runner from 'node:test'
import { storeContract } from './contract.js'
import { IoredisStore, type IoredisLike } from '../lib/stores/ioredis.js'
import { freePort } from './helpers/ports.js'
import { startRedis, startRedisCluster, resetCommandStats, commandCounts, type RedisServer, type RedisClusterServers } from './helpers/redis-server.js'
import { eventually, failedFast } from './helpers/assertions.js'

// Both ioredis client classes fit the adapter's structural type (checked by tsc).
export type RedisFits = Redis extends IoredisLike ? true : never
export type ClusterFits = Cluster extends IoredisLike ? true : never
const fits: [RedisFits, ClusterFits] = [true, true]
void fits

const server: RedisServer = await startRedis()
after(async () => { await server.stop() })

/** A client with ioredis defaults (offline queue on, endless reconnects), as users build them. */
function client (options: { port?: number, lazyConnect?: boolean, keyPrefix?: string } = {}): Redis {
  return new Redis({ host: '127.0.0.1', port: options.port ?? server.port, lazyConnect: options.lazyConnect, keyPrefix: options.keyPrefix })
}

const clients: Redis[] = []
function tracked (redis: Redis): Redis {
  clients.push(redis)
  return redis
}
after(() => { for (const redis of clients) redis.disconnect() })

// A fresh store per test on one connection: a supplied client outlives its stores.
const contractClient = tracked(client())
storeContract({
  name: 'ioredis',
  runner,
  capabilities: ['compareAndSet'],
  async create () {
    const store = new IoredisStore({ client: contractClient })
    await store.ready()
    return store
  }
})

describe('IoredisStore on a Redis Cluster (ioredis Cluster)', () => {
  let servers: RedisClusterServers
  let cluster: Cluster

  before(async () => {
    servers = await startRedisCluster()
    // lazyConnect: ready() is what connects it, as with a client built before the app starts.
    cluster = new Cluster(servers.ports.map((port) => ({ host: '127.0.0.1', port })), { lazyConnect: true })
  })
  after(async () => {
    cluster?.disconnect()
    await servers?.stop()
  })

  storeContract({
    name: 'ioredis Cluster',
    runner,
    capabilities: ['compareAndSet'],
    async create () {
      const store = new IoredisStore({ client: cluster })
      await store.ready()
      return store
    }
  })

  it('spreads keys over the masters, each written on the master of its slot', async () => {
    const store = new IoredisStore({ client: cluster })
    await store.ready()
    const keys = Array.from({ length: 30 }, (_, i) => `session:spread-${i}-${randomUUID()}`)
    for (const k of keys) assert.equal(await store.compareAndSet(k, undefined, k, 60), true)
    const perMaster = await Promise.all(servers.ports.map(async (port) => {
      const node = new Redis({ host: '127.0.0.1', port })
      try {
        return (await node.keys('session:spread-*')).length
      } finally {
        node.disconnect()
      }
    }))
    assert.equal(perMaster.reduce((a, b) => a + b, 0), keys.length)
    assert.ok(perMaster.every((n) => n > 0), `keys per master: ${perMaster.join(', ')}`)
    for (const k of keys) assert.equal(await store.get(k), k)
  })
})

describe('IoredisStore against redis-server', () => {
  let store: IoredisStore
  let plain: Redis
  const key = (name: string): string => `session:${randomUUID()}:${name}`

  before(async () => {
    store = new IoredisStore({ client: tracked(client()) })
    await store.ready()
    plain = tracked(client())
  })
  after(async () => { await store.close() })

  it('stores under the key it is given, with the TTL in the same command', async () => {
    const k = key('exact')
    await store.set(k, 'value', 3600)
    assert.equal(await plain.get(k), 'value')
    const ttl = await plain.ttl(k)
    assert.ok(ttl >= 3599 && ttl <= 3600, `TTL ${ttl}`)
  })

  it('stores TTL 0 without expiry, and a write with 0 removes an expiry', async () => {
    const k = key('persist')
    await store.set(k, 'value', 0)
    assert.equal(await plain.ttl(k), -1)
    await store.set(k, 'value', 60)
    await store.set(k, 'value', 0)
    assert.equal(await plain.ttl(k), -1)
    await store.delete(k)
  })

  it('compareAndSet writes TTL 0 without expiry', async () => {
    const k = key('cas-persist')
    assert.equal(await store.compareAndSet(k, undefined, 'kept', 0), true)
    assert.equal(await plain.ttl(k), -1)
    assert.equal(await store.compareAndSet(k, 'kept', '', 60), true)
    assert.equal(await plain.get(k), '', 'the empty string is a value, not an absence')
    assert.equal(await store.compareAndSet(k, undefined, 'x', 60), false)
    assert.equal(await store.compareAndSet(k, '', 'x', 60), true)
    const ttl = await plain.ttl(k)
    assert.ok(ttl >= 59 && ttl <= 60, `TTL ${ttl}`)
  })

  it('works through a client with a keyPrefix (ioredis adds it to every command and the script)', async () => {
    const prefixed = tracked(client({ keyPrefix: 'app1:' }))
    const own = new IoredisStore({ client: prefixed })
    await own.ready()
    const k = key('prefixed')
    await own.set(k, 'v1', 60)
    assert.equal(await plain.get(`app1:${k}`), 'v1')
    assert.equal(await own.compareAndSet(k, 'v1', 'v2', 60), true)
    assert.equal(await plain.get(`app1:${k}`), 'v2')
    assert.equal(await plain.get(k), null)
    await own.close()
  })

  describe('a key of another Redis type', () => {
    it('get rejects with FST_QUART_SESSION_CORRUPT_RECORD naming the type', async () => {
      const k = key('hash')
      await plain.hset(k, 'field', 'value')
      await assert.rejects(store.get(k), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_CORRUPT_RECORD')
        assert.match(error.message, /the key holds a Redis hash, not a string/)
        return true
      })
    })

    it('compareAndSet resolves false and leaves the key alone', async () => {
      const k = key('list')
      await plain.rpush(k, 'item')
      assert.equal(await store.compareAndSet(k, undefined, 'value', 60), false)
      assert.equal(await store.compareAndSet(k, 'item', undefined, 60), false)
      assert.equal(await plain.type(k), 'list')
    })

    it('set replaces it, as SET does', async () => {
      const k = key('set-over')
      await plain.sadd(k, 'member')
      await store.set(k, 'value', 60)
      assert.equal(await store.get(k), 'value')
    })
  })

  describe('one command per operation (INFO commandstats)', () => {
    it('get is one GET, for a stored and for a missing key', async () => {
      const k = key('count-get')
      await plain.set(k, 'value')
      await resetCommandStats(server.port)
      assert.equal(await store.get(k), 'value')
      assert.deepEqual(await commandCounts(server.port), { get: 1 })
      await resetCommandStats(server.port)
      assert.equal(await store.get(key('count-missing')), undefined)
      assert.deepEqual(await commandCounts(server.port), { get: 1 })
    })

    it('set is one SET, with or without a TTL', async () => {
      await resetCommandStats(server.port)
      await store.set(key('count-set'), 'value', 60)
      assert.deepEqual(await commandCounts(server.port), { set: 1 })
      await resetCommandStats(server.port)
      await store.set(key('count-set-0'), 'value', 0)
      assert.deepEqual(await commandCounts(server.port), { set: 1 })
    })

    it('delete is one DEL; there is no touch() (a rolling refresh is a compare-and-set)', async () => {
      assert.equal('touch' in store, false)
      const k = key('count-del')
      await plain.set(k, 'value')
      await resetCommandStats(server.port)
      await store.delete(k)
      assert.deepEqual(await commandCounts(server.port), { del: 1 })
    })

    // Commands a script runs inside Redis are counted too, under their own names: what the
    // client sent is the one EVALSHA; the GET and SET/DEL beside it ran in the script.
    it('compareAndSet is one EVALSHA once the server knows the script', async () => {
      await store.compareAndSet(key('count-warm'), undefined, 'value', 60)
      const k = key('count-cas')
      await resetCommandStats(server.port)
      assert.equal(await store.compareAndSet(k, undefined, 'v1', 60), true)
      assert.deepEqual(await commandCounts(server.port), { evalsha: 1, get: 1, set: 1 })
      await resetCommandStats(server.port)
      assert.equal(await store.compareAndSet(k, 'other', 'v2', 60), false)
      assert.deepEqual(await commandCounts(server.port), { evalsha: 1, get: 1 })
      await resetCommandStats(server.port)
      assert.equal(await store.compareAndSet(k, 'v1', undefined, 60), true)
      assert.deepEqual(await commandCounts(server.port), { evalsha: 1, get: 1, del: 1 })
    })

    it('compareAndSet sends the script itself when the server has forgotten it (SCRIPT FLUSH)', async () => {
      await plain.script('FLUSH')
      const k = key('count-flushed')
      await resetCommandStats(server.port)
      assert.equal(await store.compareAndSet(k, undefined, 'v1', 60), true)
      assert.deepEqual(await commandCounts(server.port), { evalsha: 1, eval: 1, get: 1, set: 1 })
      assert.equal(await plain.get(k), 'v1')
      await resetCommandStats(server.port)
      assert.equal(await store.compareAndSet(k, 'v1', 'v2', 60), true)
      assert.deepEqual(await commandCounts(server.port), { evalsha: 1, get: 1, set: 1 })
    })
  })

  describe('the client', () => {
    it('is not closed by close()', async () => {
      const redis = tracked(client())
      const own = new IoredisStore({ client: redis })
      await own.ready()
      await own.close()
      assert.equal(redis.status, 'ready')
      assert.equal(await redis.ping(), 'PONG')
    })

    it('created with lazyConnect is connected by ready()', async () => {
      const redis = tracked(client({ lazyConnect: true }))
      assert.equal(redis.status, 'wait')
      const own = new IoredisStore({ client: redis })
      await own.ready()
      assert.equal(redis.status, 'ready')
      const k = key('lazy')
      await own.set(k, 'value', 60)
      assert.equal(await own.get(k), 'value')
    })

    it('still connecting when ready() is called is waited for', async () => {
      const redis = tracked(client())
      assert.equal(redis.status, 'connecting')
      const own = new IoredisStore({ client: redis })
      await own.ready()
      assert.equal(redis.status, 'ready')
    })

    it('a missing or foreign client, or a bad timeout, is an invalid option', () => {
      assert.throws(() => new IoredisStore({ client: {} as never }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
      assert.throws(() => new IoredisStore(undefined as never), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
      const lazy = client({ lazyConnect: true })
      for (const timeout of [0, -1, Number.NaN, Infinity, '2']) {
        assert.throws(() => new IoredisStore({ client: lazy, timeout: timeout as number }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
      }
    })
  })

  describe('boot with an unreachable server', () => {
    it('a lazyConnect client fails ready() with FST_QUART_SESSION_CONNECT and is left disconnected', async () => {
      const port = await freePort()
      const redis = tracked(client({ port, lazyConnect: true }))
      const own = new IoredisStore({ client: redis, timeout: 1 })
      const error = await own.ready().then(() => undefined, (e: unknown) => e) as Error & { code?: string }
      assert.equal(error?.code, 'FST_QUART_SESSION_CONNECT')
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
      assert.match(error.message, /ECONNREFUSED/)
      assert.ok(error.cause instanceof Error, 'the connection error is attached as cause')
      assert.equal(redis.status, 'end', 'no reconnects in the background')
      // Longer than ioredis' first reconnect delays: still nothing retrying.
      await sleep(300)
      assert.equal(redis.status, 'end')
    })

    it('a client already connecting fails ready() and is left to its owner', async () => {
      const port = await freePort()
      const redis = tracked(client({ port }))
      const own = new IoredisStore({ client: redis, timeout: 1 })
      await assert.rejects(own.ready(), { code: 'FST_QUART_SESSION_CONNECT' })
      assert.notEqual(redis.status, 'end')
    })

    it('a client that was quit fails ready(), and every operation at once', async () => {
      const redis = client()
      await redis.ping()
      await redis.quit()
      await eventually(async () => { assert.equal(redis.status, 'end') }, 10)
      const own = new IoredisStore({ client: redis })
      await assert.rejects(own.ready(), { code: 'FST_QUART_SESSION_CONNECT' })
      await assert.rejects(own.get('session:any'), failedFast())
    })
  })
})

describe('IoredisStore while Redis is down', { timeout: 60_000 }, () => {
  let down: RedisServer
  let store: IoredisStore
  let redis: Redis

  before(async () => {
    down = await startRedis()
    // ioredis defaults: commands wait in the offline queue while reconnecting, unless the store
    // refuses them first.
    redis = tracked(new Redis({ host: '127.0.0.1', port: down.port }))
    store = new IoredisStore({ client: redis, timeout: 1 })
    await store.ready()
  })
  after(async () => {
    await store?.close()
    await down?.stop()
  })

  it('every operation fails at once with a 503 error when the server is stopped', async () => {
    await store.set('session:before', 'value', 60)
    await down.stop()
    await eventually(async () => { assert.notEqual(redis.status, 'ready') }, 10)
    const started = Date.now()
    await assert.rejects(store.get('session:before'), failedFast())
    await assert.rejects(store.set('session:x', 'value', 60), failedFast())
    await assert.rejects(store.delete('session:x'), failedFast())
    await assert.rejects(store.compareAndSet('session:x', undefined, 'value', 60), failedFast())
    // Generous: "at once" rather than five timeouts of 1 s each.
    assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`)
  })

  it('the same store works again once the server is back, without a restart', async () => {
    await down.restart()
    await eventually(async () => {
      await store.set('session:after', 'value', 60)
    })
    assert.equal(await store.get('session:after'), 'value')
    assert.equal(await store.compareAndSet('session:after', 'value', 'next', 60), true)
    assert.equal(await store.get('session:after'), 'next')
    await store.delete('session:after')
    assert.equal(await store.get('session:after'), undefined)
  })

  it('a server that stops answering (process frozen) fails operations with a timeout', async () => {
    await store.set('session:frozen', 'value', 60)
    down.freeze()
    try {
      await assert.rejects(store.get('session:frozen'), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_TIMEOUT')
        assert.match(error.message, /Redis GET/)
        return true
      })
      // Expects another value, so it changes nothing when Redis runs it after the thaw.
      await assert.rejects(store.compareAndSet('session:frozen', 'other', 'x', 60), { code: 'FST_QUART_SESSION_TIMEOUT' })
    } finally {
      down.thaw()
    }
    await eventually(async () => {
      assert.equal(await store.get('session:frozen'), 'value')
    })
  })
})
