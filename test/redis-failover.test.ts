// Redis Cluster failover on real processes: 3 masters with a replica each, cluster-node-timeout
// 1 s. One master is killed with SIGKILL, its replica takes over, and a running app (plugin with
// a node-redis cluster client as `client`) recovers by itself with the sessions it had written.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createCluster, type RedisClusterType } from 'redis'
import type { FastifyInstance } from 'fastify'
import { sessionOf } from './helpers/app.js'
import { backendApp } from './helpers/backend-app.js'
import { startRedisCluster, redisCli, readThroughFailover, type RedisClusterServers } from './helpers/redis-server.js'
import { sessionKey } from './helpers/keys.js'

// Far above the 1 s timeout of the app under test: "no hang", not a performance bar.
const ANSWER_BOUND_MS = 5000

describe('Redis Cluster failover under a running app', { timeout: 120_000 }, () => {
  let servers: RedisClusterServers
  let cluster: RedisClusterType
  let app: FastifyInstance

  before(async () => {
    servers = await startRedisCluster({ replicas: true, nodeTimeoutMs: 1000 })
    // As the docs advise for a cluster given as `client`: fail fast while a node is unreachable.
    cluster = createCluster({
      rootNodes: servers.urls.map((url) => ({ url })),
      defaults: {
        disableOfflineQueue: true,
        socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 1000) }
      }
    })
    // Reconnects to the dead master report errors; the plugin adds its own listener while it is
    // registered, and this one covers the client once the app is closed.
    cluster.on('error', () => {})
    app = await backendApp({ type: 'redis', client: cluster, timeout: 1 })
  })

  after(async () => {
    await app?.close()
    if (cluster?.isOpen) cluster.destroy()
    await servers?.stop()
  })

  it('the replica of a killed master takes over; 503s in between, then every session reads back', async (t) => {
    const [victim] = servers.ports
    const replica = servers.replicaPorts.get(victim)
    assert.ok(replica !== undefined, 'the victim has a replica')

    // Sessions land where their id hashes: make them until the victim holds three.
    const sessions: Array<{ cookie: string, id: string }> = []
    let onVictim = 0
    while (onVictim < 3) {
      const session = sessionOf(await app.inject('/set'))
      sessions.push(session)
      if (await redisCli(victim, 'exists', sessionKey(session.id)) === '1') onVictim++
    }
    assert.equal(await redisCli(victim, 'wait', '1', '5000'), '1', 'the replica acknowledged every write')

    await servers.kill(victim)
    const report = await readThroughFailover(app, sessions, { url: '/read', body: 'bar' }, ANSWER_BOUND_MS, Date.now())
    t.diagnostic(`cluster failover: all ${sessions.length} sessions (${onVictim} on the killed master) readable ${report.recoveredMs} ms after SIGKILL, ${report.unavailable} requests answered 503 meanwhile`)

    assert.match(await redisCli(replica, 'role'), /^master/, 'the replica was promoted')
    // Writes work on every master again, the promoted one included.
    for (const { cookie, id } of sessions) {
      assert.equal((await app.inject({ url: '/counter', headers: { cookie } })).body, '1', `write to session:${id}`)
    }
    let onPromoted = 0
    for (const { id } of sessions) if (await redisCli(replica, 'exists', sessionKey(id)) === '1') onPromoted++
    assert.equal(onPromoted, onVictim, 'the killed master\'s sessions live on its promoted replica')
  })
})
