// Issue 16: a client-side-cached instance must not serve a session past its lifetime. Redis sends
// the invalidation of an expired key only when its expiry reaches the key; here active expiry is
// switched off (DEBUG SET-ACTIVE-EXPIRE 0), so none arrives at all and only the plugin's own
// defences can end the session: the cache entry ends with the key's Redis TTL, and the core refuses
// a record past its own lifetime (the second is tested alone with a record that has no Redis TTL).
// Also the cache's byte bound (issue 16, LOW) on real Redis.
import { describe, it, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import './helpers/session-data.js'
import type { QuartSessionOptions } from '../lib/index.js'
import { RedisStore, DEFAULT_CACHE_BYTES } from '../lib/stores/redis.js'
import { build, sessionOf } from './helpers/app.js'
import { startRedis, resetCommandStats, commandCounts, redisCli, type RedisServer } from './helpers/redis-server.js'
import { sessionKey } from './helpers/keys.js'

const server: RedisServer = await startRedis(['--enable-debug-command', 'local'])
after(async () => { await server.stop() })

async function instance (options: QuartSessionOptions): Promise<FastifyInstance> {
  return await build({ type: 'redis', uri: server.url, clientSideCache: true, timeout: 1, ...options }, (app) => {
    app.get('/login', async (request) => {
      request.session.set('foo', 'alice')
      return 'welcome'
    })
    app.get('/read', async (request) => request.session.get('foo') ?? 'none')
    // What a state-changing request does as whoever the session says.
    app.post('/act', async (request) => {
      const user = request.session.get('foo')
      request.session.set('other', 'acted')
      return `acted as ${user ?? 'nobody'}`
    })
  })
}

/** Keys Redis still holds, expired ones included: DBSIZE does not reclaim them. */
async function keysHeld (): Promise<number> {
  return Number(await redisCli(server.port, 'dbsize'))
}

describe('a cached session past its lifetime, with no invalidation from Redis', { timeout: 60_000 }, () => {
  beforeEach(async () => {
    await redisCli(server.port, 'flushall')
    assert.equal(await redisCli(server.port, 'debug', 'set-active-expire', '0'), 'OK')
  })
  after(async () => { await redisCli(server.port, 'debug', 'set-active-expire', '1') })

  /**
   * Logs in, warms the cache (a read that costs no Redis command), waits past `maxAge` without a
   * request, then reads and POSTs with the old cookie. With `persist` the record loses its Redis
   * TTL after the login, so the cache holds it without an end and only the core's check is left.
   */
  async function scenario (rolling: boolean, persist: boolean): Promise<void> {
    const app = await instance({ maxAge: 2, rolling })
    try {
      // Lifetimes count in whole seconds and rolling refreshes at most once a second here: starting
      // at the top of a second keeps a refresh write (which empties the cache) out of the warm-up.
      await sleep(1000 - (Date.now() % 1000))
      const login = await app.inject('/login')
      const { cookie, id } = sessionOf(login)
      if (persist) assert.equal(await redisCli(server.port, 'persist', sessionKey(id)), '1')
      assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'alice')
      await resetCommandStats(server.port)
      assert.equal((await app.inject({ url: '/read', headers: { cookie } })).body, 'alice')
      assert.deepEqual(await commandCounts(server.port), {}, 'the session is served from the client-side cache')

      await sleep(3100)
      assert.equal(await keysHeld(), 1, 'Redis has not reclaimed the key, so it sent no invalidation')

      const read = await app.inject({ url: '/read', headers: { cookie } })
      assert.equal(read.statusCode, 200)
      assert.equal(read.body, 'none', 'the session is over')
      const post = await app.inject({ method: 'POST', url: '/act', headers: { cookie } })
      assert.equal(post.statusCode, 200)
      assert.equal(post.body, 'acted as nobody', 'a POST does not run as the user')
      const { id: fresh } = sessionOf(post)
      assert.notEqual(fresh, id, 'the POST got a fresh session id')
    } finally {
      await app.close()
    }
  }

  it('rolling: false, maxAge 2: after the lifetime the session is fresh', async () => {
    await scenario(false, false)
  })

  it('rolling: true, maxAge 2: after the idle time the first POST does not run as the user', async () => {
    await scenario(true, false)
  })

  it('a cached record without a Redis TTL (PERSISTed) is refused by the core after its lifetime, rolling: false', async () => {
    await scenario(false, true)
  })

  it('the same with rolling: true', async () => {
    await scenario(true, true)
  })

  it('the store: a cached entry ends with the TTL Redis gave the key, whoever wrote it', async () => {
    const store = new RedisStore({ uri: server.url, clientSideCache: {} })
    const writer = new RedisStore({ uri: server.url })
    await store.ready()
    await writer.ready()
    try {
      const mine = `session:${randomUUID()}`
      const theirs = `session:${randomUUID()}`
      const forever = `session:${randomUUID()}`
      await store.set(mine, 'mine', 1)
      await writer.set(theirs, 'theirs', 1)
      await writer.set(forever, 'forever', 0)
      for (const k of [mine, theirs, forever]) await store.get(k)
      assert.equal(store.getLocal(mine), 'mine')
      assert.equal(store.getLocal(theirs), 'theirs')
      await sleep(1100)
      assert.equal(await keysHeld(), 3, 'no key reclaimed, no invalidation sent')
      assert.equal(store.getLocal(mine), undefined, 'a key the store wrote')
      assert.equal(store.getLocal(theirs), undefined, 'a key another client wrote')
      assert.equal(store.getLocal(forever), 'forever', 'a key without a TTL stays until invalidated')
      assert.equal(await store.get(mine), undefined, 'Redis expires it lazily on the read')
    } finally {
      await store.close()
      await writer.close()
    }
  })
})

describe('a read after the store\'s own write', { timeout: 60_000 }, () => {
  beforeEach(async () => {
    await redisCli(server.port, 'flushall')
    assert.equal(await redisCli(server.port, 'debug', 'set-active-expire', '0'), 'OK')
  })
  after(async () => { await redisCli(server.port, 'debug', 'set-active-expire', '1') })

  it('sends GET alone, and the entry still ends with the TTL that write set', async () => {
    const store = new RedisStore({ uri: server.url, clientSideCache: {} })
    await store.ready()
    try {
      const key = `session:${randomUUID()}`
      await store.set(key, 'v1', 2)
      assert.equal(await store.get(key), 'v1')
      // Tracked now: a compare-and-set by this store invalidates its own entry.
      assert.equal(await store.compareAndSet(key, 'v1', 'v2', 1), true)
      assert.equal(store.getLocal(key), undefined, 'the write invalidated the entry')
      await resetCommandStats(server.port)
      assert.equal(await store.get(key), 'v2')
      assert.deepEqual(await commandCounts(server.port), { get: 1 }, 'no PTTL after its own write')
      assert.equal(store.getLocal(key), 'v2', 'cached')
      await sleep(1100)
      assert.equal(await keysHeld(), 1, 'no key reclaimed, no invalidation sent')
      assert.equal(store.getLocal(key), undefined, 'the entry ended with the TTL of the write')
    } finally {
      await store.close()
    }
  })

  it('asks PTTL when another client wrote the key since, and the entry ends with that TTL', async () => {
    const store = new RedisStore({ uri: server.url, clientSideCache: {} })
    const writer = new RedisStore({ uri: server.url })
    await store.ready()
    await writer.ready()
    try {
      const key = `session:${randomUUID()}`
      await store.set(key, 'mine', 60)
      await writer.set(key, 'theirs', 1)
      await resetCommandStats(server.port)
      assert.equal(await store.get(key), 'theirs')
      assert.deepEqual(await commandCounts(server.port), { get: 1, pttl: 1 })
      assert.equal(store.getLocal(key), 'theirs')
      await sleep(1100)
      assert.equal(store.getLocal(key), undefined, 'ended with their 1 s, not the 60 s this store set')
    } finally {
      await store.close()
      await writer.close()
    }
  })
})

describe('the client-side cache is bounded by bytes', { timeout: 120_000 }, () => {
  const key = (name: string): string => `session:${randomUUID()}:${name}`
  let writer: RedisStore
  before(async () => {
    await redisCli(server.port, 'flushall')
    writer = new RedisStore({ uri: server.url })
    await writer.ready()
  })
  after(async () => { await writer?.close() })

  it('keeps what fits in maxBytes, the oldest stored going first, and never counts more', async () => {
    const maxBytes = 64 * 1024
    const store = new RedisStore({ uri: server.url, clientSideCache: { maxBytes } })
    await store.ready()
    try {
      // Each about 3.2 KB as counted (2 per character): about 20 fit.
      const keys = Array.from({ length: 40 }, (_, i) => key(`fit-${i}`))
      for (const k of keys) await writer.set(k, k + 'x'.repeat(1500), 60)
      for (const k of keys) {
        await store.get(k)
        const usage = store.cacheUsage
        assert.ok(usage !== undefined && usage.bytes <= maxBytes, `counted ${usage?.bytes} of ${maxBytes}`)
      }
      const usage = store.cacheUsage!
      assert.ok(usage.entries >= 15 && usage.entries < 40, `${usage.entries} entries`)
      assert.equal(store.getLocal(keys[39]), keys[39] + 'x'.repeat(1500), 'the newest is cached')
      assert.equal(store.getLocal(keys[0]), undefined, 'the oldest was evicted')
      await resetCommandStats(server.port)
      assert.equal(await store.get(keys[0]), keys[0] + 'x'.repeat(1500))
      assert.deepEqual(await commandCounts(server.port), { get: 1, pttl: 1 }, 'read from Redis again')
    } finally {
      await store.close()
    }
  })

  it('records this instance wrote count against maxBytes too, until their next read', async () => {
    const maxBytes = 64 * 1024
    const store = new RedisStore({ uri: server.url, clientSideCache: { maxBytes } })
    await store.ready()
    try {
      const keys = Array.from({ length: 40 }, (_, i) => key(`own-${i}`))
      for (const k of keys) {
        await store.set(k, k + 'w'.repeat(1500), 60)
        const usage = store.cacheUsage
        assert.ok(usage !== undefined && usage.bytes <= maxBytes, `counted ${usage?.bytes} of ${maxBytes}`)
      }
      assert.ok(store.cacheUsage!.bytes > maxBytes / 2, 'the recent writes are held')
      await resetCommandStats(server.port)
      assert.equal(await store.get(keys[39]), keys[39] + 'w'.repeat(1500))
      assert.deepEqual(await commandCounts(server.port), { get: 1 }, 'the newest write is still known: GET alone')
      await resetCommandStats(server.port)
      assert.equal(await store.get(keys[0]), keys[0] + 'w'.repeat(1500))
      assert.deepEqual(await commandCounts(server.port), { get: 1, pttl: 1 }, 'the oldest was let go: PTTL asked')
    } finally {
      await store.close()
    }
  })

  it('a record above 1/16 of maxBytes is not cached: every read asks Redis', async () => {
    const store = new RedisStore({ uri: server.url, clientSideCache: { maxBytes: 64 * 1024 } })
    await store.ready()
    try {
      const big = key('big')
      const value = 'y'.repeat(3000)
      await writer.set(big, value, 60)
      await resetCommandStats(server.port)
      assert.equal(await store.get(big), value)
      assert.equal(await store.get(big), value)
      assert.equal(store.getLocal(big), undefined)
      assert.deepEqual(await commandCounts(server.port), { get: 2, pttl: 2 })
      assert.equal(store.cacheUsage?.entries, 0)
    } finally {
      await store.close()
    }
  })

  it('the default holds 64 MiB: 50 sessions of 880 KiB stay within it (measured heap logged)', async (t) => {
    const store = new RedisStore({ uri: server.url, clientSideCache: {} })
    await store.ready()
    try {
      const keys = Array.from({ length: 50 }, (_, i) => key(`large-${i}`))
      const record = 'z'.repeat(880 * 1024)
      for (const k of keys) await writer.set(k, record, 60)
      global.gc?.()
      const heapBefore = process.memoryUsage().heapUsed
      for (const k of keys) assert.equal((await store.get(k))?.length, record.length)
      global.gc?.()
      const grown = process.memoryUsage().heapUsed - heapBefore
      const usage = store.cacheUsage!
      assert.ok(usage.bytes <= DEFAULT_CACHE_BYTES, `counted ${usage.bytes}`)
      assert.ok(usage.entries < 50 && usage.entries >= 30, `${usage.entries} entries of 50`)
      t.diagnostic(`default bound: ${usage.entries} of 50 records of 880 KiB cached, counted ${(usage.bytes / 2 ** 20).toFixed(1)} MiB; heap grew ${(grown / 2 ** 20).toFixed(1)} MiB${global.gc === undefined ? ' (no --expose-gc: garbage included)' : ''}`)
    } finally {
      await store.close()
      for (const k of await redisCli(server.port, 'keys', 'session:*large*').then((out) => out.split('\n').filter(Boolean))) {
        await writer.delete(k)
      }
    }
  })

  it('maxBytes goes through the plugin: a large session is read from Redis every time, a small one from the cache', async () => {
    const app = await build({ type: 'redis', uri: server.url, clientSideCache: { maxBytes: 64 * 1024 } }, (a) => {
      a.get('/big', async (request) => { request.session.set('foo', 'b'.repeat(10_000)); return 'ok' })
      a.get('/small', async (request) => { request.session.set('foo', 'small'); return 'ok' })
      a.get('/read', async (request) => request.session.get('foo')?.length ?? 0)
    })
    try {
      const big = sessionOf(await app.inject('/big')).cookie
      const small = sessionOf(await app.inject('/small')).cookie
      for (const cookie of [big, small]) await app.inject({ url: '/read', headers: { cookie } })
      await resetCommandStats(server.port)
      assert.equal((await app.inject({ url: '/read', headers: { cookie: small } })).body, '5')
      assert.deepEqual(await commandCounts(server.port), {}, 'the small one from the cache')
      await resetCommandStats(server.port)
      assert.equal((await app.inject({ url: '/read', headers: { cookie: big } })).body, '10000')
      // Too large to cache, so not held as this instance's own write either: GET and PTTL each time.
      assert.deepEqual(await commandCounts(server.port), { get: 1, pttl: 1 }, 'the large one from Redis')
      await resetCommandStats(server.port)
      assert.equal((await app.inject({ url: '/read', headers: { cookie: big } })).body, '10000')
      assert.deepEqual(await commandCounts(server.port), { get: 1, pttl: 1 }, 'the large one from Redis again')
    } finally {
      await app.close()
    }
  })

  it('bad cache settings are invalid options, in the plugin and in the store alike', async () => {
    for (const clientSideCache of [{ maxBytes: 0 }, { maxBytes: 1.5 }, { maxBytes: '64MB' }, { maxBytes: -1 }, { maxbytes: 1 }]) {
      await assert.rejects(build({ type: 'redis', uri: server.url, clientSideCache: clientSideCache as never }),
        { code: 'FST_QUART_SESSION_INVALID_OPTION', message: /clientSideCache\.max[bB]ytes/ }, JSON.stringify(clientSideCache))
    }
    for (const clientSideCache of [{ maxBytes: 0 }, { maxBytes: 1.5 }, { maxBytes: '64MB' }]) {
      assert.throws(() => new RedisStore({ uri: server.url, clientSideCache: clientSideCache as never }),
        { code: 'FST_QUART_SESSION_INVALID_OPTION', message: /clientSideCache\.maxBytes/ })
    }
    await assert.rejects(build({ type: 'redis', sentinel: { name: 'm', nodes: ['127.0.0.1:1'] }, clientSideCache: { maxBytes: 1024 } }),
      { code: 'FST_QUART_SESSION_INVALID_OPTION', message: /clientSideCache\.maxBytes.*sentinel/ })
    assert.throws(() => new RedisStore({ sentinel: { name: 'm', nodes: ['127.0.0.1:1'] }, clientSideCache: { maxBytes: 1024 } }),
      { code: 'FST_QUART_SESSION_INVALID_OPTION', message: /clientSideCache\.maxBytes.*sentinel/ })
  })
})
