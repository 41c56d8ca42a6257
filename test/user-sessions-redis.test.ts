import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Redis as Redis5 } from 'ioredis5'
import { userSessionSuite, deviceApp, login } from './helpers/user-sessions.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'
import { startSentinelSetup, type SentinelSetup } from './helpers/redis-sentinel.js'
import { startClusterWithClients, type ClusterWithClients } from './helpers/redis-cluster.js'
import { sessionKey } from './helpers/keys.js'

const server: RedisServer = await startRedis()
after(async () => { await server.stop() })

userSessionSuite('Redis, node-redis (uri)', async () => {
  await server.restart()
  return { options: { type: 'redis', uri: server.url }, close: async () => {} }
})

userSessionSuite('Redis, ioredis 5 client', async () => {
  await server.restart()
  const client = new Redis5(server.url)
  return { options: { type: 'redis', client }, close: async () => { client.disconnect() } }
})

userSessionSuite('Redis Sentinel', async () => {
  const setup: SentinelSetup = await startSentinelSetup()
  return { options: { type: 'redis', sentinel: { name: setup.name, nodes: setup.nodes } }, close: async () => { await setup.stop() } }
})

let cluster: ClusterWithClients
userSessionSuite('Redis Cluster, 3 masters', async () => {
  cluster = await startClusterWithClients()
  await cluster.cluster.connect()
  return { options: { type: 'redis', client: cluster.cluster }, close: async () => { await cluster.close() } }
})

describe('per-user sessions: Redis Cluster layout', () => {
  it('index items and sessions on different masters stay correct, and every index key expires', async () => {
    cluster = await startClusterWithClients()
    await cluster.cluster.connect()
    const app = await deviceApp({ type: 'redis', client: cluster.cluster, maxAge: 3, rolling: false })
    try {
      const clients = await Promise.all(Array.from({ length: 6 }, async () => await login(app, 'ada-cluster')))
      const userItem = 'session:users:' + createHash('sha256').update('ada-cluster').digest('base64url')
      const itemHolder = await cluster.holder(userItem)
      assert.ok(itemHolder !== undefined, 'the user item is stored')
      const holders = new Set(await Promise.all(clients.map(async (c) => await cluster.holder(sessionKey(c.id)))))
      holders.delete(itemHolder)
      assert.ok(holders.size > 0, 'some sessions live on another master than their user item')
      assert.equal((await app.sessionStore.listSessions('ada-cluster')).length, 6)
      assert.equal(await app.sessionStore.revokeUserSessions('ada-cluster', { except: clients[0].handle }), 5)
      for (const c of clients.slice(1)) assert.equal(await cluster.holder(sessionKey(c.id)), undefined)
      // Nothing in the index namespace lives forever: a user item and the expiry slots all carry a TTL.
      for (const node of cluster.nodes.values()) {
        for (const key of [...await node.keys('session:users:*'), ...await node.keys('session:due:*')]) {
          const ttl = await node.pTTL(key)
          assert.ok(ttl > 0, `${key} has a TTL (got ${ttl})`)
        }
      }
    } finally {
      await app.close()
      await cluster.close()
    }
  })
})
