import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createClient, type RedisClientType } from 'redis'
import { RedisStore } from '../lib/stores/redis.js'
import { startRedis, type RedisServer } from './helpers/redis-server.js'
import { eventually, failedFast } from './helpers/assertions.js'

describe('RedisStore while Redis is down', { timeout: 120_000 }, () => {
  let server: RedisServer
  let store: RedisStore
  let userClient: RedisClientType
  let userStore: RedisStore

  before(async () => {
    server = await startRedis()
    store = new RedisStore({ uri: server.url, timeout: 1 })
    await store.ready()
    // A client with node-redis defaults (offline queue on, default reconnects), as a user may pass.
    userClient = createClient({ url: server.url })
    userStore = new RedisStore({ client: userClient, timeout: 1 })
    await userStore.ready()
  })

  after(async () => {
    await store?.close()
    await userStore?.close()
    userClient?.destroy()
    await server?.stop()
  })

  it('every operation rejects with a 503 error when the server is stopped', async () => {
    await store.set('session:before', 'value', 60)
    await server.stop()
    for (const s of [store, userStore]) {
      await assert.rejects(s.get('session:before'), failedFast())
      await assert.rejects(s.set('session:x', 'value', 60), failedFast())
      await assert.rejects(s.delete('session:x'), failedFast())
      await assert.rejects(s.compareAndSet('session:x', undefined, 'value', 60), failedFast())
    }
  })

  it('the same store works again once the server is back on the same port', async () => {
    await server.restart()
    for (const s of [store, userStore]) {
      await eventually(async () => {
        await s.set('session:after', 'value', 60)
      })
      assert.equal(await s.get('session:after'), 'value')
      assert.equal(await s.compareAndSet('session:after', 'value', 'again', 60), true)
      await s.delete('session:after')
      assert.equal(await s.get('session:after'), undefined)
    }
  })

  it('a server that stops answering (process frozen) fails operations with a timeout', async () => {
    await store.set('session:frozen', 'value', 60)
    server.freeze()
    try {
      for (const s of [store, userStore]) {
        await assert.rejects(s.get('session:frozen'), (error: Error & { code?: string }) => {
          assert.equal(error.code, 'FST_QUART_SESSION_TIMEOUT')
          assert.match(error.message, /Redis GET/)
          return true
        })
        // A write that timed out still runs once Redis thaws: this one's comparison fails then.
        await assert.rejects(s.compareAndSet('session:frozen', 'not stored', 'next', 60), (error: Error & { code?: string }) => {
          assert.equal(error.code, 'FST_QUART_SESSION_TIMEOUT')
          assert.match(error.message, /Redis EVALSHA/)
          return true
        })
      }
    } finally {
      server.thaw()
    }
    await eventually(async () => {
      assert.equal(await store.get('session:frozen'), 'value')
      assert.equal(await userStore.get('session:frozen'), 'value')
    })
  })
})
