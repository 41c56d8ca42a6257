import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomUUID } from 'node:crypto'
import { createCluster, type RedisClientType } from 'redis'
import { RedisStore } from '../lib/stores/redis.js'
import * as runner from 'node:test'
import { storeContract } from './contract.js'
import { freePort } from './helpers/ports.js'
import { startClusterWithClients, type ClusterWithClients } from './helpers/redis-cluster.js'

type NodeClient = RedisClientType

const redisCluster: ClusterWithClients = await startClusterWithClients()
after(async () => { await redisCluster.close() })

// The contract's keys land on all three masters; compareAndSet's script is routed by its one key.
const contractCluster = createCluster({ rootNodes: redisCluster.servers.urls.map((url) => ({ url })) })
describe('contract on one cluster client', () => {
  // A supplied client stays open after its stores close: it is the test's to close.
  after(async () => { if (contractCluster.isOpen) await contractCluster.close() })
  storeContract({
    name: 'redis cluster (3 masters)',
    runner,
    capabilities: ['compareAndSet', 'getLocal'],
    async create () {
      const store = new RedisStore({ client: contractCluster })
      await store.ready()
      return store
    }
  })
})

describe('RedisStore on a 3-master Redis Cluster', () => {
  let store: RedisStore
  /** One key per master: `session:<random>` keys hashed into each master's slots. */
  let keys: Map<number, string>

  before(async () => {
    keys = await keysOnEveryMaster(redisCluster.nodes.values().next().value as NodeClient, redisCluster.servers.ports)
    store = new RedisStore({ client: redisCluster.cluster })
    await store.ready()
  })

  after(async () => {
    await store?.close()
  })

  it('the cluster client was connected by ready()', () => {
    assert.equal(redisCluster.cluster.isReady, true)
  })

  it('writes keys to different masters and reads them back', async () => {
    for (const [port, key] of keys) {
      await store.set(key, `on ${port}`, 60)
      assert.equal(await redisCluster.holder(key), port)
      assert.equal(await store.get(key), `on ${port}`)
      const ttl = await redisCluster.nodes.get(port)?.ttl(key)
      assert.ok(ttl !== undefined && ttl >= 59 && ttl <= 60, `TTL ${ttl}`)
    }
    assert.equal(new Set(keys.keys()).size, 3)
  })

  it('deletes keys on every master', async () => {
    for (const [port, key] of keys) {
      await store.set(key, 'to delete', 60)
      assert.equal(await redisCluster.holder(key), port)
      await store.delete(key)
      assert.equal(await redisCluster.holder(key), undefined)
      assert.equal(await store.get(key), undefined)
    }
  })

  it('expires keys on every master, and a key refreshed by compare-and-set outlives its first TTL', async () => {
    const touched = new Map<number, string>()
    for (const [port, key] of keys) {
      await store.set(key, 'short-lived', 1)
      const other = `${key}:touched`
      touched.set(port, other)
      await store.set(other, 'kept', 1)
      // How the core refreshes a rolling session: the same value again, with a new TTL.
      assert.equal(await store.compareAndSet(other, 'kept', 'kept', 60), true)
    }
    await sleep(2100)
    for (const [port, key] of keys) {
      assert.equal(await store.get(key), undefined)
      assert.equal(await redisCluster.nodes.get(port)?.exists(key), 0)
      assert.equal(await store.get(touched.get(port) as string), 'kept')
    }
  })

  it('compareAndSet runs on the master of each key, which loads the script on first use', async () => {
    for (const [port, key] of keys) {
      assert.equal(await store.compareAndSet(key, undefined, `v1 on ${port}`, 60), true)
      assert.equal(await redisCluster.holder(key), port)
      assert.equal(await store.compareAndSet(key, 'stale', 'lost', 60), false)
      assert.equal(await store.compareAndSet(key, `v1 on ${port}`, undefined, 60), true)
      assert.equal(await redisCluster.holder(key), undefined)
    }
  })

  it('a hash under a session key is a corrupt record on every master, and compareAndSet leaves it', async () => {
    for (const [port, key] of keys) {
      const node = redisCluster.nodes.get(port) as NodeClient
      await node.hSet(key, 'role', 'admin')
      await assert.rejects(store.get(key), { code: 'FST_QUART_SESSION_CORRUPT_RECORD' })
      assert.equal(await store.compareAndSet(key, undefined, 'mine', 60), false)
      assert.equal(await node.type(key), 'hash')
      await node.del(key)
    }
  })

  it('a cluster that cannot be reached fails ready() and is left closed', async () => {
    const port = await freePort()
    const unreachable = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${port}` }] })
    const failing = new RedisStore({ client: unreachable, timeout: 1 })
    await assert.rejects(failing.ready(), { code: 'FST_QUART_SESSION_CONNECT' })
    assert.equal(unreachable.isOpen, false)
  })
})

/**
 * Picks a random `session:` key for each master. The hash tag trick is avoided on purpose: these
 * are keys shaped like real session keys, spread by Redis' own slot hashing.
 */
async function keysOnEveryMaster (client: NodeClient, ports: number[]): Promise<Map<number, string>> {
  const slots = await client.sendCommand(['CLUSTER', 'SLOTS']) as Array<[number, number, [string, number, ...unknown[]]]>
  const owner = (slot: number): number | undefined => slots.find(([start, end]) => slot >= start && slot <= end)?.[2][1]
  const keys = new Map<number, string>()
  while (keys.size < ports.length) {
    const key = `session:${randomUUID()}`
    const slot = await client.sendCommand(['CLUSTER', 'KEYSLOT', key]) as number
    const port = owner(slot)
    if (port !== undefined && !keys.has(port)) keys.set(port, key)
  }
  return keys
}
