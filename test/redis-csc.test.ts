// Client-side caching (RESP3 tracking): two app instances on one real Redis, and on the 3-master
// cluster. An unchanged read from a warm cache costs no Redis command; a change made elsewhere
// (the other instance, redis-cli) reaches the cache as an invalidation; compare-and-set always
// asks the server. The invalidation delay is measured and logged, not used as a pass mark.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { createCluster, type RedisClusterType } from 'redis'
import type { FastifyInstance } from 'fastify'
import type { QuartSessionOptions } from '../lib/index.js'
import { RedisStore } from '../lib/stores/redis.js'
import { build, sessionOf } from './helpers/app.js'
import { startRedis, resetCommandStats, commandCounts, redisCli, type RedisServer } from './helpers/redis-server.js'
import { startClusterWithClients, type ClusterWithClients } from './helpers/redis-cluster.js'
import { sessionKey } from './helpers/keys.js'

// A stale read longer than this is a failure; the delay itself is logged (loopback: well under 1 ms).
const STALE_BOUND_MS = 2000

async function instance (options: QuartSessionOptions): Promise<FastifyInstance> {
  return await build({ type: 'redis', timeout: 1, ...options }, (app) => {
    app.get('/put', async (request) => {
      request.session.set('foo', (request.query as { v: string }).v)
      return 'ok'
    })
    app.get('/read', async (request) => request.session.get('foo') ?? 'none')
    app.get('/logout', async (request) => { await request.session.destroy(); return 'bye' })
  })
}

/**
 * How long `read` kept answering `stale`: from the call until the start of the first read that did
 * not (0 when the first read was already fresh), polling on every turn of the event loop.
 */
async function staleFor (read: () => Promise<string>, stale: string): Promise<number> {
  const started = performance.now()
  for (;;) {
    const attempt = performance.now()
    if (await read() !== stale) return attempt - started
    const waited = performance.now() - started
    assert.ok(waited < STALE_BOUND_MS, `still ${stale} after ${Math.round(waited)} ms`)
    await nextTurn()
  }
}

function summary (delays: number[]): string {
  const sorted = [...delays].sort((a, b) => a - b)
  const at = (q: number): string => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(3)
  return `n=${sorted.length} median ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${sorted[sorted.length - 1].toFixed(3)} ms`
}

/** The cross-instance scenario, run on a single server and on the cluster alike. */
function twoInstances (name: string, setup: () => Promise<{
  a: FastifyInstance
  b: FastifyInstance
  /** Commands Redis served since the last reset, over all its servers. */
  commands: () => Promise<Record<string, number>>
  reset: () => Promise<void>
  /** redis-cli on the server holding `key`. */
  cli: (key: string, ...args: string[]) => Promise<string>
  close: () => Promise<void>
}>): void {
  describe(name, { timeout: 60_000 }, () => {
    let ctx: Awaited<ReturnType<typeof setup>>
    before(async () => { ctx = await setup() })
    after(async () => { await ctx?.close() })

    it('write on A, read on B; the second read on B costs no Redis command', async () => {
      const { cookie } = sessionOf(await ctx.a.inject('/put?v=one'))
      assert.equal((await ctx.b.inject({ url: '/read', headers: { cookie } })).body, 'one')
      await ctx.reset()
      for (let i = 0; i < 3; i++) {
        const response = await ctx.b.inject({ url: '/read', headers: { cookie } })
        assert.equal(response.body, 'one')
      }
      assert.deepEqual(await ctx.commands(), {}, 'served from the client-side cache')
    })

    it('a change on A, or by redis-cli, is seen on B', async () => {
      const { cookie, id } = sessionOf(await ctx.a.inject('/put?v=one'))
      assert.equal((await ctx.b.inject({ url: '/read', headers: { cookie } })).body, 'one')
      assert.equal((await ctx.a.inject({ url: '/read', headers: { cookie } })).body, 'one')
      assert.equal((await ctx.a.inject({ url: '/put?v=two', headers: { cookie } })).body, 'ok')
      assert.equal((await ctx.a.inject({ url: '/read', headers: { cookie } })).body, 'two', 'A sees its own write at once')
      const delay = await staleFor(async () => (await ctx.b.inject({ url: '/read', headers: { cookie } })).body, 'one')
      assert.equal((await ctx.b.inject({ url: '/read', headers: { cookie } })).body, 'two')
      assert.ok(delay < STALE_BOUND_MS)
      // Warm again on B, then another program deletes the record.
      assert.equal((await ctx.b.inject({ url: '/read', headers: { cookie } })).body, 'two')
      await ctx.cli(sessionKey(id), 'del', sessionKey(id))
      await staleFor(async () => (await ctx.b.inject({ url: '/read', headers: { cookie } })).body, 'two')
    })

    it('B writes over a value it read before A changed it: compare-and-set asks the server, nothing is lost', async () => {
      const { cookie } = sessionOf(await ctx.a.inject('/put?v=one'))
      assert.equal((await ctx.b.inject({ url: '/read', headers: { cookie } })).body, 'one')
      await ctx.a.inject({ url: '/put?v=two', headers: { cookie } })
      await ctx.reset()
      assert.equal((await ctx.b.inject({ url: '/put?v=three', headers: { cookie } })).body, 'ok')
      assert.ok((await ctx.commands()).evalsha >= 1, 'the write went to Redis')
      assert.equal((await ctx.a.inject({ url: '/read', headers: { cookie } })).body, 'three')
    })

    it('destroy() on A ends the session on B (delay measured over 50 sessions)', async (t) => {
      const delays: number[] = []
      for (let i = 0; i < 50; i++) {
        const { cookie } = sessionOf(await ctx.a.inject(`/put?v=s${i}`))
        assert.equal((await ctx.b.inject({ url: '/read', headers: { cookie } })).body, `s${i}`)
        assert.equal((await ctx.b.inject({ url: '/read', headers: { cookie } })).body, `s${i}`)
        assert.equal((await ctx.a.inject({ url: '/logout', headers: { cookie } })).body, 'bye')
        delays.push(await staleFor(async () => (await ctx.b.inject({ url: '/read', headers: { cookie } })).body, `s${i}`))
        // A's own cache: Redis sends the invalidation of a client's own write before its reply.
        assert.equal((await ctx.a.inject({ url: '/read', headers: { cookie } })).body, 'none')
      }
      t.diagnostic(`${name}: B served a destroyed session for ${summary(delays)} after A's logout answered (time to the first fresh read)`)
    })
  })
}

describe('client-side caching on one Redis', () => {
  let server: RedisServer
  before(async () => { server = await startRedis() })
  after(async () => { await server?.stop() })

  twoInstances('two app instances with clientSideCache', async () => {
    const a = await instance({ uri: server.url, clientSideCache: true })
    const b = await instance({ uri: server.url, clientSideCache: { maxEntries: 100 } })
    return {
      a,
      b,
      commands: async () => await commandCounts(server.port),
      reset: async () => { await resetCommandStats(server.port) },
      cli: async (_key, ...args) => await redisCli(server.port, ...args),
      async close () {
        await a.close()
        await b.close()
      }
    }
  })

  describe('the store', () => {
    const key = (name: string): string => `session:${randomUUID()}:${name}`
    let store: RedisStore
    let other: RedisStore
    before(async () => {
      store = new RedisStore({ uri: server.url, clientSideCache: { maxEntries: 2 } })
      other = new RedisStore({ uri: server.url })
      await store.ready()
      await other.ready()
    })
    after(async () => {
      await store?.close()
      await other?.close()
    })

    it('measures the invalidation delay: a delete elsewhere to a miss here (200 keys)', async (t) => {
      const delays: number[] = []
      const local = new RedisStore({ uri: server.url, clientSideCache: {} })
      await local.ready()
      try {
        for (let i = 0; i < 200; i++) {
          const k = key(`delay-${i}`)
          await other.set(k, 'v', 60)
          assert.equal(await local.get(k), 'v')
          await other.delete(k)
          delays.push(await staleFor(async () => await local.get(k) ?? 'gone', 'v'))
        }
      } finally {
        await local.close()
      }
      t.diagnostic(`store: a cached key read stale for ${summary(delays)} after another client's DEL answered (time to the first fresh read)`)
    })

    it('a compareAndSet against a value changed elsewhere is refused by the server', async () => {
      const k = key('cas')
      await other.set(k, 'v1', 60)
      assert.equal(await store.get(k), 'v1')
      await other.set(k, 'v2', 60)
      assert.equal(await store.compareAndSet(k, 'v1', 'mine', 60), false)
      assert.equal(await store.get(k), 'v2')
      assert.equal(await store.compareAndSet(k, 'v2', 'mine', 60), true)
      assert.equal(await other.get(k), 'mine')
    })

    it('keeps at most maxEntries keys: an evicted key is read from Redis again', async () => {
      const keys = [key('e1'), key('e2'), key('e3')]
      for (const k of keys) await other.set(k, k, 60)
      for (const k of keys) assert.equal(await store.get(k), k)
      await resetCommandStats(server.port)
      assert.equal(await store.get(keys[2]), keys[2])
      assert.deepEqual(await commandCounts(server.port), {}, 'the newest is cached')
      await resetCommandStats(server.port)
      assert.equal(await store.get(keys[0]), keys[0])
      assert.deepEqual(await commandCounts(server.port), { get: 1, pttl: 1 }, 'the oldest was evicted, read again with its TTL')
    })
  })
})

describe('client-side caching on a 3-master Redis Cluster (clients built by the user)', () => {
  let redisCluster: ClusterWithClients
  const clusters: RedisClusterType[] = []
  before(async () => { redisCluster = await startClusterWithClients() })
  after(async () => {
    for (const cluster of clusters) if (cluster.isOpen) await cluster.close()
    await redisCluster?.close()
  })

  const cachingCluster = (): RedisClusterType => {
    const cluster = createCluster({
      rootNodes: redisCluster.servers.urls.map((url) => ({ url })),
      RESP: 3,
      clientSideCache: { maxEntries: 1000 }
    }) as unknown as RedisClusterType
    clusters.push(cluster)
    return cluster
  }

  it('clientSideCache together with a client is an invalid option: caching is set on the client', async () => {
    await assert.rejects(instance({ client: cachingCluster(), clientSideCache: true }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
  })

  twoInstances('two app instances with caching cluster clients', async () => {
    const a = await instance({ client: cachingCluster() })
    const b = await instance({ client: cachingCluster() })
    const ports = redisCluster.servers.ports
    return {
      a,
      b,
      async commands () {
        const total: Record<string, number> = {}
        for (const port of ports) {
          for (const [name, calls] of Object.entries(await commandCounts(port))) {
            // The cluster client refreshes its slot map now and then; that is not a session read.
            if (name.startsWith('cluster')) continue
            total[name] = (total[name] ?? 0) + calls
          }
        }
        return total
      },
      async reset () { for (const port of ports) await resetCommandStats(port) },
      async cli (key, ...args) {
        const port = await redisCluster.holder(key)
        assert.ok(port !== undefined, `${key} is on a master`)
        return await redisCli(port, ...args)
      },
      async close () {
        await a.close()
        await b.close()
      }
    }
  })
})
