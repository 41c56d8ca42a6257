// Redis behind Sentinel on real processes (a master, a replica, three sentinels): the store's own
// sentinel client, a sentinel client the user built, and a running app that lives through a
// failover (master killed with SIGKILL, replica promoted) without a restart.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { createSentinel } from 'redis'
import type { FastifyInstance } from 'fastify'
import { RedisStore } from '../lib/stores/redis.js'
import { sessionOf } from './helpers/app.js'
import { backendApp } from './helpers/backend-app.js'
import { redisCli, readThroughFailover, resetCommandStats, commandCounts } from './helpers/redis-server.js'
import { eventually } from './helpers/assertions.js'
import { startSentinelSetup, type SentinelSetup } from './helpers/redis-sentinel.js'
import { sessionKey } from './helpers/keys.js'

// Far above the 1 s timeout of the app under test: "no hang", not a performance bar.
const ANSWER_BOUND_MS = 5000

describe('Redis behind Sentinel', { timeout: 120_000 }, () => {
  let setup: SentinelSetup
  const key = (name: string): string => `session:${randomUUID()}:${name}`

  before(async () => { setup = await startSentinelSetup() })
  after(async () => { await setup?.stop() })

  it('the store with the sentinel option reads and writes the master, and closes its client', async () => {
    const store = new RedisStore({ sentinel: { name: setup.name, nodes: setup.nodes }, timeout: 1 })
    await store.ready()
    const k = key('store')
    assert.equal(await store.compareAndSet(k, undefined, 'v1', 60), true)
    assert.equal(await store.compareAndSet(k, 'v0', 'lost', 60), false)
    assert.equal(await store.get(k), 'v1')
    assert.equal(await redisCli(setup.masterPort, 'get', k), 'v1', 'written on the master')
    await store.set(k, 'v2', 60)
    assert.equal(await store.compareAndSet(k, 'v2', 'v2', 120), true)
    assert.equal(await store.get(k), 'v2')
    await store.delete(k)
    assert.equal(await store.get(k), undefined)
    const before = clientsOf(await redisCli(setup.masterPort, 'client', 'list'))
    await store.close()
    const after = clientsOf(await redisCli(setup.masterPort, 'client', 'list'))
    assert.ok(after < before, `the store's connections to the master are closed (${before} → ${after})`)
  })

  it('with clientSideCache, a repeated read costs the master no command and a change elsewhere is seen', async () => {
    const store = new RedisStore({ sentinel: { name: setup.name, nodes: setup.nodes }, clientSideCache: {}, timeout: 1 })
    await store.ready()
    try {
      const k = key('cached')
      await redisCli(setup.masterPort, 'set', k, 'v1')
      assert.equal(await store.get(k), 'v1')
      await resetCommandStats(setup.masterPort)
      assert.equal(await store.get(k), 'v1')
      // The sentinels PING, INFO and PUBLISH to the master all along: only the GET matters here.
      assert.equal((await commandCounts(setup.masterPort)).get, undefined, 'served from the cache')
      await redisCli(setup.masterPort, 'set', k, 'v2')
      await eventually(async () => { assert.equal(await store.get(k), 'v2') }, 1)
    } finally {
      await store.close()
    }
  })

  it('a master name the sentinels do not know fails ready() with FST_QUART_SESSION_CONNECT', async () => {
    const store = new RedisStore({ sentinel: { name: 'no-such-master', nodes: setup.nodes }, timeout: 1 })
    await assert.rejects(store.ready(), { code: 'FST_QUART_SESSION_CONNECT' })
    await store.close()
  })

  it('takes a sentinel client the user built, and leaves it open', async () => {
    const client = createSentinel({
      name: setup.name,
      sentinelRootNodes: setup.nodes.map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) }))
    })
    const store = new RedisStore({ client })
    await store.ready()
    const k = key('user-sentinel')
    assert.equal(await store.compareAndSet(k, undefined, 'mine', 60), true)
    assert.equal(await store.get(k), 'mine')
    await store.close()
    assert.equal(client.isOpen, true)
    assert.equal(await client.get(k), 'mine')
    await client.close()
  })

  describe('a running app when the master is killed', () => {
    let app: FastifyInstance

    before(async () => {
      app = await backendApp({ type: 'redis', sentinel: { name: setup.name, nodes: setup.nodes }, timeout: 1 })
    })
    after(async () => { await app?.close() })

    it('answers fast 503s during the failover, then recovers alone with the replicated sessions', async (t) => {
      const sessions: Array<{ cookie: string, id: string }> = []
      for (let i = 0; i < 5; i++) sessions.push(sessionOf(await app.inject('/set')))
      await setup.replicated()

      await setup.killMaster()
      const report = await readThroughFailover(app, sessions, { url: '/read', body: 'bar' }, ANSWER_BOUND_MS, Date.now())
      t.diagnostic(`sentinel failover: all sessions readable ${report.recoveredMs} ms after SIGKILL, ${report.unavailable} requests answered 503 meanwhile`)

      assert.equal(await setup.currentMasterPort(), setup.replicaPort, 'Sentinel promoted the replica')
      // Writes go to the new master.
      const { cookie } = sessions[0]
      assert.equal((await app.inject({ url: '/counter', headers: { cookie } })).body, '1')
      assert.equal((await app.inject({ url: '/counter', headers: { cookie } })).body, '2')
      const fresh = sessionOf(await app.inject('/set'))
      assert.equal((await app.inject({ url: '/read', headers: { cookie: fresh.cookie } })).body, 'bar')
      assert.ok(await redisCli(setup.replicaPort, 'exists', sessionKey(fresh.id)) === '1', 'the new session is on the promoted replica')
    })
  })
})

function clientsOf (list: string): number {
  return list.split('\n').filter((line) => line.includes('cmd=')).length
}
