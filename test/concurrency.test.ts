// Racing requests over real HTTP, on every backend: concurrent writers of distinct keys keep all
// their keys, a nested value mutated in place by parallel requests keeps every change, update()
// is an atomic read-modify-write, the later of two set()s of one key wins with a whole value, and
// destroy() is final for requests that loaded the session before it. Each suite runs against two
// app instances on one backend too, so saves also race across instances (compare-and-set and merge),
// not only inside one (the per-key write queue).
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import { createCluster } from 'redis'
import './helpers/session-data.js'
import quartSession, { type QuartSessionOptions, type SessionStore } from '../lib/index.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { SECRET } from './helpers/app.js'
import { startRedis, startRedisCluster, type RedisServer, type RedisClusterServers } from './helpers/redis-server.js'
import { startMemcached, type MemcachedServer } from './helpers/memcached-server.js'

const WRITERS = 50
const CART = 20

interface Running {
  app: FastifyInstance
  url: string
  /** Requests parked in /hold, released by the test. */
  release: (name: string) => void
  parked: (name: string) => Promise<void>
}

async function start (options: QuartSessionOptions): Promise<Running> {
  const app = Fastify()
  await app.register(cookie)
  await app.register(quartSession, { secret: SECRET, ...options })
  const gates = new Map<string, { open: () => void, opened: Promise<void>, arrived: () => void, arrival: Promise<void> }>()
  const gate = (name: string): NonNullable<ReturnType<typeof gates.get>> => {
    let g = gates.get(name)
    if (g === undefined) {
      let open!: () => void
      let arrived!: () => void
      const opened = new Promise<void>((resolve) => { open = resolve })
      const arrival = new Promise<void>((resolve) => { arrived = resolve })
      g = { open, opened, arrived, arrival }
      gates.set(name, g)
    }
    return g
  }
  const key = (name: string): 'values' => name as 'values'

  app.post('/login', async (request) => {
    request.session.set('user', { id: 'u1', name: 'Ada' })
    request.session.set('cart', { items: ['first'], owner: 'u1' })
    return 'ok'
  })
  app.post('/cart/:i', async (request) => {
    const { i } = request.params as { i: string }
    const delay = Number((request.query as { delay?: string }).delay ?? 0)
    if (delay > 0) await sleep(delay)
    // The README's example: a nested value mutated in place, no set().
    ;(request.session.get('cart') as { items: unknown[] }).items.push(Number(i))
    return 'ok'
  })
  app.post('/visit', async (request) => {
    const delay = Number((request.query as { delay?: string }).delay ?? 0)
    if (delay > 0) await sleep(delay)
    const n = await request.session.update('visits', (v) => ((v as number | undefined) ?? 0) + 1)
    return { n }
  })
  app.post('/mark/:i', async (request) => {
    const { i } = request.params as { i: string }
    const delay = Number((request.query as { delay?: string }).delay ?? 0)
    if (delay > 0) await sleep(delay)
    request.session.set(key(`k${i}`), Number(i))
    return 'ok'
  })
  app.post('/same/:v', async (request) => {
    const { v } = request.params as { v: string }
    const delay = Number((request.query as { delay?: string }).delay ?? 0)
    if (delay > 0) await sleep(delay)
    // A whole value, large enough that a mix of two writes would show.
    request.session.set(key('same'), { v, copy: v.repeat(200), list: Array.from({ length: 20 }, () => v) })
    return 'ok'
  })
  app.get('/data', async (request) => ({ isNew: request.session.isNew, data: request.session.data() }))
  app.post('/hold/:name', async (request) => {
    const { name } = request.params as { name: string }
    const g = gate(name)
    // The session is loaded (onRequest ran); wait while the test logs out elsewhere.
    g.arrived()
    await g.opened
    const action = (request.query as { action?: string }).action
    if (action === 'set') request.session.set('other', 'written-after-logout')
    if (action === 'touch') request.session.touch()
    if (action === 'mutate') (request.session.get('user') as { name: string }).name = 'Mallory'
    return 'done'
  })
  app.post('/logout', async (request) => { await request.session.destroy(); return 'bye' })
  app.post('/regenerate', async (request) => { await request.session.regenerate(['user']); return 'ok' })

  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    app,
    url,
    release: (name) => { gate(name).open() },
    parked: async (name) => { await gate(name).arrival }
  }
}

async function post (url: string, cookieHeader?: string): Promise<Response> {
  return await fetch(url, { method: 'POST', headers: cookieHeader === undefined ? {} : { cookie: cookieHeader } })
}

function sessionCookie (response: Response): string | undefined {
  for (const header of response.headers.getSetCookie()) {
    if (header.startsWith('session=')) return header.split(';')[0]
  }
  return undefined
}

async function dataOf (running: Running, cookieHeader: string): Promise<{ isNew: boolean, data: Record<string, unknown> }> {
  const response = await fetch(`${running.url}/data`, { headers: { cookie: cookieHeader } })
  assert.equal(response.status, 200)
  return await response.json() as { isNew: boolean, data: Record<string, unknown> }
}

async function login (running: Running): Promise<string> {
  const response = await post(`${running.url}/login`)
  assert.equal(response.status, 200)
  const c = sessionCookie(response)
  assert.ok(c, 'login sets a cookie')
  return c
}

function raceSuite (name: string, options: () => QuartSessionOptions): void {
  describe(`racing requests: ${name}`, () => {
    let running: Running
    // A second app instance on the same backend, as a second process would be.
    let second: Running
    before(async () => {
      const shared = options()
      running = await start(shared)
      second = await start(shared)
    })
    after(async () => { await Promise.all([running.app.close(), second.app.close()]) })

    it(`${WRITERS} concurrent requests on one session, each setting its own key: all ${WRITERS} keys stored`, async () => {
      const c = await login(running)
      const responses = await Promise.all(Array.from({ length: WRITERS }, async (_, i) => await post(`${running.url}/mark/${i}`, c)))
      for (const response of responses) assert.equal(response.status, 200, await response.text())
      const { data } = await dataOf(running, c)
      for (let i = 0; i < WRITERS; i++) assert.equal(data[`k${i}`], i, `key k${i} lost`)
      assert.deepEqual(data.user, { id: 'u1', name: 'Ada' })
    })

    it(`${CART} parallel requests pushing onto one nested array (cart.items.push): every item kept, on one instance and across two`, async () => {
      for (const target of [running, second]) {
        const c = await login(running)
        const responses = await Promise.all(Array.from({ length: CART }, async (_, i) =>
          await post(`${(i % 2 === 0 ? running : target).url}/cart/${i}?delay=${Math.floor(Math.random() * 10)}`, c)))
        for (const response of responses) assert.equal(response.status, 200, await response.text())
        const { data } = await dataOf(running, c)
        const cart = data.cart as { items: unknown[], owner: string }
        assert.equal(cart.owner, 'u1')
        assert.deepEqual([...cart.items].sort(), ['first', ...Array.from({ length: CART }, (_, i) => i)].sort(), `items of ${target === running ? 'one instance' : 'two instances'}`)
      }
    })

    it(`${WRITERS} parallel update('visits', v => v + 1): ends at ${WRITERS}, and the handlers got 1..${WRITERS} once each`, async () => {
      for (const target of [running, second]) {
        const c = await login(running)
        const responses = await Promise.all(Array.from({ length: WRITERS }, async (_, i) =>
          await post(`${(i % 2 === 0 ? running : target).url}/visit?delay=${Math.floor(Math.random() * 10)}`, c)))
        const seen: number[] = []
        for (const response of responses) {
          assert.equal(response.status, 200)
          seen.push((await response.json() as { n: number }).n)
        }
        assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: WRITERS }, (_, i) => i + 1))
        assert.equal((await dataOf(running, c)).data.visits, WRITERS)
      }
    })

    it('the same with random handler delays', async () => {
      const c = await login(running)
      const responses = await Promise.all(Array.from({ length: WRITERS }, async (_, i) =>
        await post(`${running.url}/mark/${i}?delay=${Math.floor(Math.random() * 30)}`, c)))
      for (const response of responses) assert.equal(response.status, 200, await response.text())
      const { data } = await dataOf(running, c)
      for (let i = 0; i < WRITERS; i++) assert.equal(data[`k${i}`], i, `key k${i} lost`)
    })

    it('two writers of one key: the later save wins, with a whole value', async () => {
      const c = await login(running)
      // The first request waits longer in its handler, so it saves last.
      const [slow, fast] = await Promise.all([post(`${running.url}/same/A?delay=150`, c), post(`${running.url}/same/B`, c)])
      assert.equal(slow.status, 200)
      assert.equal(fast.status, 200)
      const { data } = await dataOf(running, c)
      assert.deepEqual(data.same, { v: 'A', copy: 'A'.repeat(200), list: Array.from({ length: 20 }, () => 'A') })
    })

    for (const action of ['set', 'touch', 'mutate'] as const) {
      it(`destroy() is final: a request that loaded the session before logout cannot bring it back (${action})`, async () => {
        const c = await login(running)
        const name = `${action}-${Math.random()}`
        const held = post(`${running.url}/hold/${name}?action=${action}`, c)
        await running.parked(name)
        const logout = await post(`${running.url}/logout`, c)
        assert.equal(logout.status, 200)
        assert.match(logout.headers.getSetCookie().join('\n'), /session=;.*Max-Age=0/)
        running.release(name)
        const late = await held
        assert.equal(late.status, 200)
        // No cookie for the destroyed id goes out again.
        assert.equal(sessionCookie(late) ?? 'session=', 'session=', 'the destroyed id is not re-sent')
        const after = await dataOf(running, c)
        assert.equal(after.isNew, true, 'the old cookie is logged out for good')
        assert.deepEqual(after.data, {})
      })
    }

    it('regenerate() is final for the old id too', async () => {
      const c = await login(running)
      const name = `regen-${Math.random()}`
      const held = post(`${running.url}/hold/${name}?action=set`, c)
      await running.parked(name)
      const regenerated = await post(`${running.url}/regenerate`, c)
      const fresh = sessionCookie(regenerated)
      assert.ok(fresh && fresh !== c, 'a new id')
      running.release(name)
      assert.equal((await held).status, 200)
      assert.equal((await dataOf(running, c)).isNew, true, 'the old id stays dead')
      const kept = await dataOf(running, fresh)
      assert.deepEqual(kept.data, { user: { id: 'u1', name: 'Ada' } })
    })
  })
}

raceSuite('memory', () => ({ store: new MemoryStore() }))

/** A custom store with only get/set/delete: the last write wins, but a destroyed session stays destroyed. */
class PlainStore implements SessionStore {
  readonly #inner = new MemoryStore()
  async get (key: string): Promise<string | undefined> { return await this.#inner.get(key) }
  async set (key: string, value: string, ttl: number): Promise<void> { await this.#inner.set(key, value, ttl) }
  async delete (key: string): Promise<void> { await this.#inner.delete(key) }
}

describe('a custom store without compareAndSet or touch', () => {
  let running: Running
  before(async () => { running = await start({ store: new PlainStore(), maxAge: 10 }) })
  after(async () => { await running.app.close() })

  for (const action of ['set', 'touch'] as const) {
    it(`a ${action} from a request that loaded the session before logout does not resurrect it`, async () => {
      const c = await login(running)
      const name = `plain-${action}-${Math.random()}`
      const held = post(`${running.url}/hold/${name}?action=${action}`, c)
      await running.parked(name)
      await post(`${running.url}/logout`, c)
      running.release(name)
      assert.equal((await held).status, 200)
      assert.equal((await dataOf(running, c)).isNew, true)
    })
  }
})

describe('racing requests on real servers', () => {
  let redis: RedisServer
  let cluster: RedisClusterServers
  let memcached: MemcachedServer
  let directory: string
  const clusterClient = { client: undefined as ReturnType<typeof createCluster> | undefined }

  before(async () => {
    [redis, cluster, memcached] = await Promise.all([startRedis(), startRedisCluster(), startMemcached()])
    directory = await mkdtemp(join(tmpdir(), 'quart-race-fs-'))
    clusterClient.client = createCluster({ rootNodes: cluster.urls.map((url) => ({ url })) })
    await clusterClient.client.connect()
  })
  after(async () => {
    await clusterClient.client?.close()
    await Promise.all([redis?.stop(), cluster?.stop(), memcached?.stop()])
    await rm(directory, { recursive: true, force: true })
  })

  raceSuite('redis', () => ({ type: 'redis', uri: redis.url }))
  raceSuite('redis cluster (3 masters)', () => ({ type: 'redis', client: clusterClient.client }))
  raceSuite('memcached', () => ({ type: 'memcached', servers: memcached.location }))
  raceSuite('filesystem', () => ({ type: 'filesystem', directory }))
})
