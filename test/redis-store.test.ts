import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomUUID } from 'node:crypto'
import { createClient } from 'redis'
import * as runner from 'node:test'
import { storeContract } from './contract.js'
import { RedisStore } from '../lib/stores/redis.js'
import { freePort } from './helpers/ports.js'
import { startRedis, resetCommandStats, commandCounts, type RedisServer } from './helpers/redis-server.js'

const server: RedisServer = await startRedis()
after(async () => { await server.stop() })

storeContract({
  name: 'redis',
  runner,
  capabilities: ['compareAndSet', 'getLocal'],
  async create () {
    const store = new RedisStore({ uri: server.url })
    await store.ready()
    return store
  }
})

describe('RedisStore against redis-server', () => {
  let store: RedisStore
  const plain = createClient({ url: server.url })
  const key = (name: string): string => `session:${randomUUID()}:${name}`

  before(async () => {
    store = new RedisStore({ uri: server.url })
    await store.ready()
    await plain.connect()
  })
  after(async () => {
    await store.close()
    await plain.close()
  })

  it('stores under the key it is given, without adding a prefix', async () => {
    const k = key('exact')
    await store.set(k, 'value', 60)
    assert.equal(await plain.get(k), 'value')
  })

  it('sets the TTL with the value', async () => {
    const k = key('ttl')
    await store.set(k, 'value', 3600)
    const ttl = await plain.ttl(k)
    assert.ok(ttl >= 3599 && ttl <= 3600, `TTL ${ttl}`)
  })

  it('stores TTL 0 without expiry, and a write with 0 removes an expiry', async () => {
    const k = key('persist')
    await store.set(k, 'value', 0)
    assert.equal(await plain.ttl(k), -1)
    await store.set(k, 'value', 60)
    assert.equal(await store.compareAndSet(k, 'value', 'value', 0), true)
    assert.equal(await plain.ttl(k), -1)
    await store.delete(k)
  })

  it('has no touch(): a rolling refresh is a compare-and-set of the record, which restarts the TTL', async () => {
    assert.equal('touch' in store, false)
    const k = key('refresh')
    await store.set(k, 'value', 10)
    assert.equal(await store.compareAndSet(k, 'value', 'value', 7200), true)
    const ttl = await plain.ttl(k)
    assert.ok(ttl >= 7199 && ttl <= 7200, `TTL ${ttl}`)
    assert.equal(await plain.get(k), 'value')
  })

  describe('one command per operation (INFO commandstats)', () => {
    it('get is one GET', async () => {
      const k = key('count-get')
      await plain.set(k, 'value')
      await resetCommandStats(server.port)
      assert.equal(await store.get(k), 'value')
      assert.deepEqual(await commandCounts(server.port), { get: 1 })
    })

    it('a get of a missing key is one GET', async () => {
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

    it('delete is one DEL', async () => {
      const k = key('count-del')
      await plain.set(k, 'value')
      await resetCommandStats(server.port)
      await store.delete(k)
      assert.deepEqual(await commandCounts(server.port), { del: 1 })
    })
  })

  describe('compareAndSet', () => {
    it('is one SET NX for a new key, one EVALSHA once the script is known, and loads it with EVAL after a NOSCRIPT', async () => {
      await plain.scriptFlush()
      const k = key('cas-count')
      await resetCommandStats(server.port)
      // A new key needs no script: SET NX.
      assert.equal(await store.compareAndSet(k, undefined, 'v1', 60), true)
      assert.deepEqual(await commandCounts(server.port), { set: 1 })
      assert.equal(await store.compareAndSet(k, undefined, 'v0', 60), false)
      await resetCommandStats(server.port)
      assert.equal(await store.compareAndSet(k, 'v1', 'v2', 60), true)
      // The first call after a flush finds no script: one failed EVALSHA, one EVAL that caches it.
      assert.deepEqual(await commandCounts(server.port), { evalsha: 1, eval: 1, get: 1, set: 1 })
      await resetCommandStats(server.port)
      assert.equal(await store.compareAndSet(k, 'v2', 'v3', 60), true)
      assert.deepEqual(await commandCounts(server.port), { evalsha: 1, get: 1, set: 1 })
      assert.equal(await plain.get(k), 'v3')
    })

    it('writes the TTL with the value, and TTL 0 means no expiry', async () => {
      const k = key('cas-ttl')
      assert.equal(await store.compareAndSet(k, undefined, 'v1', 3600), true)
      const ttl = await plain.ttl(k)
      assert.ok(ttl >= 3599 && ttl <= 3600, `TTL ${ttl}`)
      assert.equal(await store.compareAndSet(k, 'v1', 'v2', 0), true)
      assert.equal(await plain.ttl(k), -1)
      await plain.del(k)
    })

    it('with value undefined deletes the key', async () => {
      const k = key('cas-del')
      await plain.set(k, 'loaded')
      assert.equal(await store.compareAndSet(k, 'loaded', undefined, 60), true)
      assert.equal(await plain.exists(k), 0)
      // Deleting what is already gone, expecting "absent": nothing to compare against, true.
      assert.equal(await store.compareAndSet(k, undefined, undefined, 60), true)
    })
  })

  describe('a key of another Redis type under a session key', () => {
    it('get rejects with FST_QUART_SESSION_CORRUPT_RECORD naming the type, not a 503', async () => {
      const k = key('hash')
      await plain.hSet(k, 'role', 'admin')
      await assert.rejects(store.get(k), (error: Error & { code?: string, statusCode?: number }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_CORRUPT_RECORD')
        assert.match(error.message, /holds a Redis hash, not a string/)
        assert.ok(error.cause instanceof Error && /WRONGTYPE/.test(error.cause.message), 'the WRONGTYPE reply is the cause')
        return true
      })
      const list = key('list')
      await plain.rPush(list, 'x')
      await assert.rejects(store.get(list), /holds a Redis list, not a string/)
    })

    it('compareAndSet resolves false and leaves the key alone, whatever it expected', async () => {
      const k = key('hash-cas')
      await plain.hSet(k, 'role', 'admin')
      assert.equal(await store.compareAndSet(k, undefined, 'mine', 60), false)
      assert.equal(await store.compareAndSet(k, 'anything', 'mine', 60), false)
      assert.equal(await store.compareAndSet(k, 'anything', undefined, 60), false)
      assert.deepEqual({ ...await plain.hGetAll(k) }, { role: 'admin' })
    })
  })

  describe('a client the user supplies', () => {
    it('is used and not closed by close()', async () => {
      const client = createClient({ url: server.url })
      await client.connect()
      const own = new RedisStore({ client })
      await own.ready()
      const k = key('user-client')
      await own.set(k, 'value', 60)
      assert.equal(await plain.get(k), 'value')
      await own.close()
      assert.equal(client.isOpen, true)
      assert.equal(await client.get(k), 'value')
      await client.close()
    })

    it('is connected by ready() when it is not yet', async () => {
      const client = createClient({ url: server.url })
      const own = new RedisStore({ client })
      await own.ready()
      assert.equal(client.isReady, true)
      const k = key('unconnected-client')
      await own.set(k, 'value', 60)
      assert.equal(await own.get(k), 'value')
      await own.close()
      assert.equal(client.isOpen, true)
      await client.close()
    })

    it('that cannot connect fails ready() and is left closed, not retrying', async () => {
      const port = await freePort()
      const client = createClient({ url: `redis://127.0.0.1:${port}` })
      const own = new RedisStore({ client, timeout: 1 })
      await assert.rejects(own.ready(), { code: 'FST_QUART_SESSION_CONNECT' })
      assert.equal(client.isOpen, false)
    })
  })

  describe('boot', () => {
    it('a refused uri fails ready() with the URI, without its password', async () => {
      const port = await freePort()
      const store = new RedisStore({ uri: `redis://alice:s3cr3t-pw@127.0.0.1:${port}/2` })
      const error = await store.ready().then(() => undefined, (e: unknown) => e)
      assert.ok(error instanceof Error)
      assert.equal((error as Error & { code?: string }).code, 'FST_QUART_SESSION_CONNECT')
      assert.match(error.message, new RegExp(`redis://alice@127\\.0\\.0\\.1:${port}/2`))
      assert.doesNotMatch(error.message, /s3cr3t-pw/)
      assert.ok(error.cause instanceof Error, 'the connection error is attached as cause')
      await store.close()
    })

    it('a refused uri leaves no client reconnecting behind', async () => {
      const port = await freePort()
      const store = new RedisStore({ uri: `redis://127.0.0.1:${port}` })
      await assert.rejects(store.ready(), { code: 'FST_QUART_SESSION_CONNECT' })
      // Now something listens on that port: a client still retrying would connect within its
      // longest reconnect delay (1 s).
      const connections: Socket[] = []
      const listener = createServer((socket) => { connections.push(socket) })
      await new Promise<void>((resolve) => listener.listen(port, '127.0.0.1', resolve))
      await sleep(2500)
      for (const socket of connections) socket.destroy()
      await new Promise((resolve) => listener.close(resolve))
      assert.equal(connections.length, 0)
    })

    it('a uri that is not a redis URL is an invalid option', () => {
      assert.throws(() => new RedisStore({ uri: 'http://u:hidden@127.0.0.1:6379' }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_INVALID_OPTION')
        assert.doesNotMatch(error.message, /hidden/)
        return true
      })
      assert.throws(() => new RedisStore({ uri: 'not a url' }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    })

    it('uri and client together, a bad client, or a bad timeout are invalid options', () => {
      const client = createClient({ url: server.url })
      assert.throws(() => new RedisStore({ uri: server.url, client }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
      assert.throws(() => new RedisStore({ client: {} as never }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
      for (const timeout of [0, -1, Number.NaN, Infinity]) {
        assert.throws(() => new RedisStore({ uri: server.url, timeout }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
      }
    })

    it('sentinel with uri or client, bad sentinel nodes, or a cache on a supplied client are invalid options', () => {
      const client = createClient({ url: server.url })
      const sentinel = { name: 'mymaster', nodes: ['127.0.0.1:26379'] }
      const invalid = { code: 'FST_QUART_SESSION_INVALID_OPTION' }
      assert.throws(() => new RedisStore({ uri: server.url, sentinel }), invalid)
      assert.throws(() => new RedisStore({ client, sentinel }), invalid)
      for (const nodes of [[], ['127.0.0.1'], ['127.0.0.1:0'], ['127.0.0.1:port'], [':26379']]) {
        assert.throws(() => new RedisStore({ sentinel: { name: 'mymaster', nodes } }), invalid)
      }
      assert.throws(() => new RedisStore({ sentinel: { name: '', nodes: ['127.0.0.1:26379'] } }), invalid)
      assert.throws(() => new RedisStore({ client, clientSideCache: {} }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_INVALID_OPTION')
        assert.match(error.message, /clientSideCache/)
        return true
      })
      for (const clientSideCache of [{ maxEntries: 0 }, { maxEntries: 1.5 }, { ttl: -1 }]) {
        assert.throws(() => new RedisStore({ uri: server.url, clientSideCache }), invalid)
      }
    })
  })
})
