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
import { startMemcached, rawCommand, readWith, type MemcachedServer } from './helpers/memcached-server.js'
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

  /** Sets 200 keys through the store and sorts them by the server that holds them. */
  async function placed (prefix: string): Promise<{ onA: string[], onB: string[] }> {
    const keys = Array.from({ length: 200 }, () => `${prefix}:${randomUUID()}`)
    for (const key of keys) await store.set(key, `value of ${key}`, 600)
    const onA: string[] = []
    const onB: string[] = []
    for (const key of keys) {
      const inA = (await rawCommand(a.port, `get ${key}`)).startsWith('VALUE')
      const inB = (await rawCommand(b.port, `get ${key}`)).startsWith('VALUE')
      assert.ok(inA !== inB, `${key} is on exactly one server`)
      ;(inA ? onA : onB).push(key)
    }
    assert.ok(onA.length > 0 && onB.length > 0, `both servers got keys: ${onA.length} + ${onB.length}`)
    return { onA, onB }
  }

  it('places keys where the memcached package places them (same ring)', async () => {
    const { onA, onB } = await placed('session')
    const plain = new Memcached([a.location, b.location])
    try {
      for (const key of [...onA.slice(0, 20), ...onB.slice(0, 20)]) assert.equal(await readWith(plain, key), `value of ${key}`)
    } finally {
      plain.end()
    }
  })

  it('with one stopped: its keys read as misses within 5 s, new keys go to the live server, and all is fine once it is back', async () => {
    const { onA, onB } = await placed('session')
    await b.stop()
    const stopped = Date.now()
    // The first read meets the refused connection and is answered by the live server (a miss).
    assert.equal(await store.get(onB[0]), undefined)
    assert.ok(Date.now() - stopped < 5000, `failed over after ${Date.now() - stopped} ms`)
    for (const key of onB.slice(1)) assert.equal(await store.get(key), undefined)
    for (const key of onA) assert.equal(await store.get(key), `value of ${key}`)

    // New entries and writes of the stopped server's keys land on the live one, as do CAS writes.
    const before = await a.stats()
    const fresh = Array.from({ length: 50 }, () => `session:${randomUUID()}`)
    for (const key of fresh) assert.equal(await store.compareAndSet(key, undefined, `new ${key}`, 600), true)
    for (const key of fresh) assert.equal(await store.get(key), `new ${key}`)
    assert.equal(Number((await a.stats()).cmd_set) - Number(before.cmd_set), fresh.length, 'every new entry went to the live server')
    await store.set(onB[1], 'moved', 600)
    assert.equal(await store.get(onB[1]), 'moved')
    assert.equal(await store.compareAndSet(onB[1], 'moved', 'moved again', 600), true)
    assert.equal(await store.compareAndSet(onA[0], `value of ${onA[0]}`, 'rewritten', 600), true)
    assert.equal(await store.get(onA[0]), 'rewritten')

    await b.restart()
    // Back in the ring within the check interval; no operation fails meanwhile.
    await eventually(async () => {
      const counted = await b.stats()
      await store.get(onB[2])
      assert.equal(Number((await b.stats()).cmd_get) - Number(counted.cmd_get), 1, 'the read went to the restarted server')
    }, POLL_MS)
    // The restarted server is empty: its keys, including those written elsewhere meanwhile, are
    // clean misses; everything on the other server is still there.
    assert.equal(await store.get(onB[1]), undefined)
    assert.equal(await store.compareAndSet(onB[1], undefined, 'back home', 600), true)
    assert.equal((await rawCommand(b.port, `get ${onB[1]}`)).includes('back home'), true)
    for (const key of fresh) {
      const value = await store.get(key)
      assert.ok(value === undefined || value === `new ${key}`, `${key}: ${String(value)}`)
    }
    assert.equal(await store.get(onA[0]), 'rewritten')
    assert.equal(await store.get(onA[1]), `value of ${onA[1]}`)
  })

  it('with one frozen (no answer): its keys read as misses after one timeout, then at once', async () => {
    const { onA, onB } = await placed('frozen')
    await b.freeze()
    try {
      assert.equal(await store.get(onB[0]), undefined)
      const started = Date.now()
      assert.equal(await store.get(onB[1]), undefined)
      assert.ok(Date.now() - started < 500, 'the frozen server is skipped')
      assert.equal(await store.get(onA[0]), `value of ${onA[0]}`)
    } finally {
      b.thaw()
    }
    // Back after a check; its keys are there again (it kept its items).
    await eventually(async () => { assert.equal(await store.get(onB[2]), `value of ${onB[2]}`) }, POLL_MS)
  })

  it('with both stopped, operations fail fast with the code, and it recovers', async () => {
    const k = `session:${randomUUID()}`
    await a.stop()
    await b.stop()
    try {
      for (let round = 0; round < 3; round++) {
        const started = Date.now()
        await assert.rejects(store.get(k), failedFast('any'))
        await assert.rejects(store.compareAndSet(k, undefined, 'v', 60), failedFast('any'))
        assert.ok(Date.now() - started < 2000, 'never waits more than the timeout')
      }
    } finally {
      await a.restart()
      await b.restart()
    }
    await eventually(async () => { assert.equal(await store.compareAndSet(k, undefined, 'v', 60), true) }, POLL_MS)
    assert.equal(await store.get(k), 'v')
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
          await assert.rejects(store.compareAndSet('session:x', undefined, 'value', 60), failedFast('any'))
          await sleep(150)
        }

        await server.restart()
        await eventually(async () => { await store.set('session:after', 'value', 60) }, POLL_MS)
        assert.equal(await store.get('session:after'), 'value')
        assert.equal(await store.compareAndSet('session:after', 'value', 'changed', 120), true)
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
        await eventually(async () => { assert.ok(reconnecting > seen + 1, `reconnect attempts go on (${reconnecting})`) }, POLL_MS)

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

describe('a pool flap never brings back sessions already treated as gone', { timeout: 120_000 }, () => {
  let a: MemcachedServer
  let b: MemcachedServer

  before(async () => {
    a = await startMemcached()
    b = await startMemcached()
  })
  after(async () => {
    await a?.stop()
    await b?.stop()
  })

  /** Keys whose home on the ring is `home` (checked on the servers themselves). */
  async function homedOn (store: MemcachedStore, home: MemcachedServer, count: number): Promise<string[]> {
    const keys: string[] = []
    while (keys.length < count) {
      const key = `session:${randomUUID()}`
      await store.set(key, 'placed', 60)
      if ((await rawCommand(home.port, `get ${key}`)).startsWith('VALUE')) keys.push(key)
      await store.delete(key)
    }
    return keys
  }

  /** Waits until `store` sends keys homed on `server` to it again. */
  async function usedAgain (store: MemcachedStore, server: MemcachedServer, key: string): Promise<void> {
    await eventually(async () => {
      const counted = await server.stats()
      await store.get(key)
      assert.equal(Number((await server.stats()).cmd_get) - Number(counted.cmd_get), 1, 'the read went to the restarted server')
    }, POLL_MS)
  }

  it('A fails, its sessions are written to B, A returns empty, A fails again: none of them is back', async () => {
    const store = new MemcachedStore({ servers: [a.location, b.location], timeout: 1, retry: 0.2 })
    try {
      await store.ready()
      const keys = await homedOn(store, a, 17)
      await a.stop()
      for (const key of keys) await store.set(key, `written during the outage: ${key}`, 600)
      for (const key of keys) assert.ok((await rawCommand(b.port, `get ${key}`)).startsWith('VALUE'), 'stood in for by B')

      await a.restart()
      await usedAgain(store, a, keys[0])
      // A came back empty: every one of them is gone now, and the user of one logs out.
      for (const key of keys) assert.equal(await store.get(key), undefined)
      await store.delete(keys[1])
      // The copies B held are removed, as a user would check on B itself.
      await eventually(async () => {
        for (const key of keys) assert.equal(await rawCommand(b.port, `get ${key}`), 'END\r\n', `${key} is off B`)
      }, POLL_MS)

      await a.stop()
      for (const key of keys) assert.equal(await store.get(key), undefined, `${key} stays gone`)
    } finally {
      await store.close()
      await a.restart()
    }
  })

  it('a delete through another store that saw the outage removes the stand-in copy (the writer is gone)', async () => {
    const writer = new MemcachedStore({ servers: [a.location, b.location], timeout: 1, retry: 0.2 })
    const other = new MemcachedStore({ servers: [a.location, b.location], timeout: 1, retry: 0.2 })
    try {
      await writer.ready()
      await other.ready()
      // Both write (as every app process does): placing the keys is their first write.
      const [key, probe] = await homedOn(other, a, 2)
      await a.stop()
      // Both stores meet the outage; only the writer stores the session on B, then its process ends.
      assert.equal(await other.get(probe), undefined)
      await writer.set(key, 'written during the outage', 600)
      await writer.close()
      assert.ok((await rawCommand(b.port, `get ${key}`)).startsWith('VALUE'), 'stood in for by B')

      await a.restart()
      await usedAgain(other, a, probe)
      assert.equal(await other.get(key), undefined, 'A came back empty')
      await other.delete(key)
      assert.equal(await rawCommand(b.port, `get ${key}`), 'END\r\n', 'the delete reached the server that stood in')

      await a.stop()
      assert.equal(await other.get(key), undefined, 'the logged-out session stays gone')
    } finally {
      await writer.close()
      await other.close()
      await a.restart()
    }
  })
})
