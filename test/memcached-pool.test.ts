// MemcachedStore with real memcached servers going away and coming back: a two-server pool with
// one stopped, a single server stopped and restarted, and the package's `ping` path without ping.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Memcached from 'memcached'
import { MemcachedStore } from '../lib/stores/memcached.js'
import { startMemcached, rawCommand, type MemcachedServer } from './helpers/memcached-server.js'
import { eventually, failedFast } from './helpers/assertions.js'

const POLL_MS = 50

/** Runs `action` with a PATH holding nothing, so a spawned `ping` fails with ENOENT. */
async function withoutPingOnPath (action: () => Promise<void>): Promise<void> {
  const empty = await mkdtemp(join(tmpdir(), 'quart-session-no-ping-'))
  const saved = process.env.PATH
  process.env.PATH = empty
  try {
    await action()
  } finally {
    process.env.PATH = saved
    await rm(empty, { recursive: true, force: true })
  }
}

describe('a pool of two memcached servers', { timeout: 120_000 }, () => {
  let a: MemcachedServer
  let b: MemcachedServer
  let store: MemcachedStore

  before(async () => {
    a = await startMemcached()
    b = await startMemcached()
    store = new MemcachedStore({ servers: [a.location, b.location], timeout: 1, retry: 0.2 })
    await store.ready()
  })
  after(async () => {
    await store?.close()
    await a?.stop()
    await b?.stop()
  })

  it('spreads keys over both; with one stopped, keys on the other still read and those on the stopped one fail fast', async () => {
    const keys = Array.from({ length: 200 }, () => `session:${randomUUID()}`)
    const before = [await a.stats(), await b.stats()]
    for (const key of keys) await store.set(key, `value of ${key}`, 600)
    const sets = [await a.stats(), await b.stats()].map((after, i) => Number(after.cmd_set) - Number(before[i].cmd_set))
    assert.ok(sets[0] > 0 && sets[1] > 0, `both servers got keys: ${sets.join(' + ')}`)
    assert.equal(sets[0] + sets[1], keys.length)

    // Where each key lives, asked of each server directly.
    const onA: string[] = []
    const onB: string[] = []
    for (const key of keys) {
      const inA = (await rawCommand(a.port, `get ${key}`)).startsWith('VALUE')
      const inB = (await rawCommand(b.port, `get ${key}`)).startsWith('VALUE')
      assert.ok(inA !== inB, `${key} is on exactly one server`)
      ;(inA ? onA : onB).push(key)
    }

    await b.stop()
    for (const key of onA) assert.equal(await store.get(key), `value of ${key}`)
    for (const key of onB) await assert.rejects(store.get(key), failedFast('any'))
    // Writes follow the same split: the live server takes its keys, the stopped one's fail.
    await store.set(onA[0], 'rewritten', 600)
    assert.equal(await store.get(onA[0]), 'rewritten')
    await assert.rejects(store.set(onB[0], 'lost', 600), failedFast('any'))

    await b.restart()
    // A restarted memcached is empty: the keys it held are misses now, not errors.
    await eventually(async () => { assert.equal(await store.get(onB[1]), undefined) }, POLL_MS)
    await store.set(onB[1], 'back', 600)
    assert.equal(await store.get(onB[1]), 'back')
    assert.equal(await store.get(onA[1]), `value of ${onA[1]}`)
  })
})

describe('one memcached server stopped and restarted', { timeout: 120_000 }, () => {
  let server: MemcachedServer

  before(async () => { server = await startMemcached() })
  after(async () => { await server?.stop() })

  it('operations fail with the code while it is down, and the same store works again after (no ping on PATH)', async () => {
    await withoutPingOnPath(async () => {
      const store = new MemcachedStore({ servers: server.location, timeout: 1, retry: 0.2 })
      try {
        await store.ready()
        await store.set('session:before', 'value', 60)
        await server.stop()
        // Several rounds: the first meets the refused connect, the next ones the skipped server,
        // later ones the retry after the delay.
        for (let round = 0; round < 3; round++) {
          await assert.rejects(store.get('session:before'), failedFast('any'))
          await assert.rejects(store.set('session:x', 'value', 60), failedFast('any'))
          await assert.rejects(store.delete('session:x'), failedFast('any'))
          await assert.rejects(store.touch('session:x', 60), failedFast('any'))
          await sleep(150)
        }

        await server.restart()
        await eventually(async () => { await store.set('session:after', 'value', 60) }, POLL_MS)
        assert.equal(await store.get('session:after'), 'value')
        await store.touch('session:after', 120)
        await store.delete('session:after')
        assert.equal(await store.get('session:after'), undefined)
      } finally {
        await store.close()
      }
    })
  })

  it('a user client that gives the server up (where the package spawns ping) survives without ping and recovers', async () => {
    await withoutPingOnPath(async () => {
      // Settings that reach the package's reconnect path quickly: one failure marks the server
      // dead, and each reconnect attempt would spawn `ping`.
      const options = { retries: 0, failures: 1, retry: 50, reconnect: 100, failuresTimeout: 200, timeout: 500 }
      const client = new Memcached(server.location, options as Memcached.options)
      let reconnecting = 0
      client.on('reconnecting', () => { reconnecting++ })
      const store = new MemcachedStore({ client, timeout: 1 })
      try {
        await store.ready()
        await server.stop()
        await eventually(async () => {
          await assert.rejects(store.get('session:gone'), failedFast('any'))
          assert.ok(reconnecting > 0, 'the client went through its reconnect path')
        }, POLL_MS)
        // Attempts go on while the server is down; none may take the process down.
        const seen = reconnecting
        await eventually(async () => { assert.ok(reconnecting > seen + 1) }, POLL_MS)

        await server.restart()
        await eventually(async () => { await store.set('session:again', 'value', 60) }, POLL_MS)
        assert.equal(await store.get('session:again'), 'value')
      } finally {
        await store.close()
        client.end()
      }
    })
  })
})
