// MemcachedStore against a real memcached, checked with a separate client and the server's stats.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import Memcached from 'memcached'
import * as runner from 'node:test'
import { storeContract } from './contract.js'
import {
  MemcachedStore, memcachedKey, DEFAULT_MAX_VALUE_BYTES, MAX_RELATIVE_EXPIRY
} from '../lib/stores/memcached.js'
import { freePort } from './helpers/ports.js'
import { eventually } from './helpers/assertions.js'
import {
  startMemcached, remainingTtl, rawCommand, rawSet, readWith, counting, CAS_COUNTERS, type MemcachedServer
} from './helpers/memcached-server.js'

const DAY = 24 * 60 * 60
// A long TTL becomes a Unix time from this process's clock; memcached counts the rest from its
// own, which ticks once a second.
const CLOCK_SLACK = 3

const server: MemcachedServer = await startMemcached()
after(async () => { await server.stop() })

storeContract({
  name: 'memcached',
  runner,
  capabilities: ['compareAndSet'],
  // memcached's clock ticks once a second.
  ttlGranularity: 1,
  async create () {
    const store = new MemcachedStore({ servers: server.location })
    await store.ready()
    return store
  }
})

describe('MemcachedStore against memcached', () => {
  let store: MemcachedStore
  let plain: Memcached
  const key = (name: string): string => `session:${randomUUID()}:${name}`

  before(async () => {
    store = new MemcachedStore({ servers: server.location })
    await store.ready()
    plain = new Memcached(server.location)
  })
  after(async () => {
    await store.close()
    plain.end()
  })

  it('stores under the key it is given: a separate client reads the same value', async () => {
    const k = key('exact')
    assert.equal(memcachedKey(k), k)
    await store.set(k, '{"data":{"foo":"bar"}}', 60)
    assert.equal(await readWith(plain, k), '{"data":{"foo":"bar"}}')
  })

  it('sets the TTL with the value', async () => {
    const k = key('ttl')
    await store.set(k, 'value', 3600)
    const ttl = await remainingTtl(server.port, k)
    assert.ok(ttl !== undefined && ttl >= 3598 && ttl <= 3600, `TTL ${ttl}`)
  })

  it('stores TTL 0 without expiry', async () => {
    const k = key('forever')
    await store.set(k, 'value', 0)
    assert.equal(await remainingTtl(server.port, k), -1)
    await store.delete(k)
  })

  describe('the 30-day rule: memcached reads a longer expiry as a Unix time', () => {
    it('a 31-day item (the default maxAge) is stored, readable, and expires in 31 days', async () => {
      const k = key('31-days')
      await store.set(k, 'month', 31 * DAY)
      assert.equal(await store.get(k), 'month')
      assert.equal(await readWith(plain, k), 'month')
      const ttl = await remainingTtl(server.port, k)
      assert.ok(ttl !== undefined && Math.abs(ttl - 31 * DAY) <= CLOCK_SLACK, `TTL ${ttl}`)
    })

    it('exactly 30 days is still sent as seconds from now', async () => {
      const k = key('30-days')
      await store.set(k, 'thirty', MAX_RELATIVE_EXPIRY)
      assert.equal(await store.get(k), 'thirty')
      const ttl = await remainingTtl(server.port, k)
      assert.ok(ttl !== undefined && ttl >= MAX_RELATIVE_EXPIRY - 5 && ttl <= MAX_RELATIVE_EXPIRY, `TTL ${ttl}`)
    })
  })

  describe('keys memcached cannot take as they are', () => {
    it('a 300-character key prefix works, under sha256:<hex of the key>', async () => {
      const k = 'p'.repeat(300) + randomUUID()
      const stored = memcachedKey(k)
      assert.match(stored, /^sha256:[0-9a-f]{64}$/)
      await store.set(k, 'long', 60)
      assert.equal(await store.get(k), 'long')
      assert.equal(await readWith(plain, stored), 'long')
      assert.equal(await store.compareAndSet(k, 'long', 'longer', 120), true)
      assert.equal(await readWith(plain, stored), 'longer')
      assert.ok(((await remainingTtl(server.port, stored)) ?? 0) > 60, 'the write reached the hashed key')
      await store.delete(k)
      assert.equal(await store.get(k), undefined)
    })

    it('keys with spaces, control characters, non-ASCII or $ are hashed and kept apart', async () => {
      const id = randomUUID()
      const keys = [`with space ${id}`, `tab\t${id}`, `new\r\nline ${id}`, `é ${id}`, `price$'${id}`, `x$&${id}`, '']
      for (const [i, k] of keys.entries()) {
        assert.match(memcachedKey(k), /^sha256:/, JSON.stringify(k))
        await store.set(k, `value ${i}`, 60)
      }
      for (const [i, k] of keys.entries()) assert.equal(await store.get(k), `value ${i}`, JSON.stringify(k))
      await store.delete('')
    })

    it('a key that starts with sha256: is hashed too: no key given can name the item of another', async () => {
      const k = `with space ${randomUUID()}`
      const stored = memcachedKey(k)
      assert.notEqual(memcachedKey(stored), stored)
      assert.match(memcachedKey(stored), /^sha256:[0-9a-f]{64}$/)
      await store.set(k, 'mine', 60)
      await store.set(stored, 'forged', 60)
      assert.equal(await store.get(k), 'mine')
      assert.equal(await store.get(stored), 'forged')
      assert.equal(await readWith(plain, stored), 'mine', 'the hashed name holds the first key only')
    })

    it('250 bytes of printable ASCII is used as is; 251 is hashed', async () => {
      const at = randomUUID() + 'k'.repeat(250 - 36)
      const over = at + 'k'
      assert.equal(memcachedKey(at), at)
      assert.notEqual(memcachedKey(over), over)
      await store.set(at, 'at the limit', 60)
      await store.set(over, 'over the limit', 60)
      assert.equal(await readWith(plain, at), 'at the limit')
      assert.equal(await store.get(over), 'over the limit')
    })
  })

  describe('item size limit', () => {
    it('a value of maxValueBytes with a 250-byte key is stored whole (the default fits memcached -I 1m)', async () => {
      const k = randomUUID() + 'k'.repeat(250 - 36)
      const value = 'v'.repeat(DEFAULT_MAX_VALUE_BYTES)
      await store.set(k, value, 60)
      assert.equal(await store.get(k), value)
      await store.delete(k)
    })

    it('a larger value fails with FST_QUART_SESSION_VALUE_TOO_LARGE, stores nothing, and the server stays in use', async () => {
      const k = key('too-large')
      await store.set(k, 'small', 60)
      const value = 'é'.repeat(DEFAULT_MAX_VALUE_BYTES / 2 + 1) // UTF-8 bytes count, not characters
      await assert.rejects(store.set(k, value, 60), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_VALUE_TOO_LARGE')
        assert.match(error.message, new RegExp(`${DEFAULT_MAX_VALUE_BYTES + 2} bytes`))
        return true
      })
      assert.equal(await store.get(k), 'small', 'the old value is untouched')
      const other = key('after')
      await store.set(other, 'still works', 60)
      assert.equal(await store.get(other), 'still works')
    })

    it('counts the backslash the client adds before each CR and LF', async () => {
      const small = new MemcachedStore({ servers: server.location, maxValueBytes: 100 })
      try {
        await small.set(key('fits'), 'x'.repeat(100), 60)
        await assert.rejects(small.set(key('escaped'), '\n'.repeat(51), 60), { code: 'FST_QUART_SESSION_VALUE_TOO_LARGE' })
        const k = key('newlines')
        await small.set(k, 'a\r\nb\nc\r', 60)
        assert.equal(await small.get(k), 'a\r\nb\nc\r')
      } finally {
        await small.close()
      }
    })

    it('an item the server refuses (its -I is smaller than maxValueBytes) is an error, not a silent drop', async () => {
      const big = new MemcachedStore({ servers: server.location, maxValueBytes: 4 * 1024 * 1024, retry: 0.1 })
      try {
        await assert.rejects(big.set(key('refused'), 'v'.repeat(2 * 1024 * 1024), 60), { code: 'FST_QUART_SESSION_BACKEND' })
      } finally {
        await big.close()
      }
    })
  })

  describe('one command per operation (memcached stats)', () => {
    it('get is one cmd_get, and no set or touch', async () => {
      const k = key('count-get')
      await store.set(k, 'value', 60)
      assert.deepEqual(await counting(server, async () => assert.equal(await store.get(k), 'value')), { cmd_get: 1 })
    })

    it('a get of a missing key is one cmd_get', async () => {
      assert.deepEqual(await counting(server, async () => assert.equal(await store.get(key('none')), undefined)), { cmd_get: 1 })
    })

    it('set is one cmd_set (the expiry goes with it)', async () => {
      assert.deepEqual(await counting(server, async () => await store.set(key('count-set'), 'value', 31 * DAY)), { cmd_set: 1 })
    })

    it('delete is one delete command, hit or miss', async () => {
      const k = key('count-delete')
      await store.set(k, 'value', 60)
      assert.deepEqual(await counting(server, async () => await store.delete(k)), { delete_hits: 1 })
      assert.deepEqual(await counting(server, async () => await store.delete(k)), { delete_misses: 1 })
    })
  })

  describe('compareAndSet with gets/cas', () => {
    it('after a get, an uncontended write is one cas: no second read', async () => {
      const k = key('cas-one-trip')
      await store.set(k, 'v1', 60)
      assert.deepEqual(await counting(server, async () => assert.equal(await store.get(k), 'v1'), CAS_COUNTERS), { cmd_get: 1 })
      const counts = await counting(server, async () => assert.equal(await store.compareAndSet(k, 'v1', 'v2', 60), true), CAS_COUNTERS)
      assert.deepEqual(counts, { cmd_set: 1, cas_hits: 1 })
      assert.equal(await readWith(plain, k), 'v2')
    })

    it('without a remembered read, it is gets then cas', async () => {
      const k = key('cas-two-trips')
      await store.set(k, 'v1', 60)
      const counts = await counting(server, async () => assert.equal(await store.compareAndSet(k, 'v1', 'v2', 60), true), CAS_COUNTERS)
      assert.deepEqual(counts, { cmd_get: 1, cmd_set: 1, cas_hits: 1 })
    })

    it('a new entry is one add', async () => {
      const k = key('cas-add')
      const counts = await counting(server, async () => assert.equal(await store.compareAndSet(k, undefined, 'new', 60), true), CAS_COUNTERS)
      assert.deepEqual(counts, { cmd_set: 1 })
      assert.equal(await readWith(plain, k), 'new')
    })

    it('a change by another client since the get makes it false, and nothing is written', async () => {
      const k = key('cas-changed')
      await store.set(k, 'v1', 60)
      assert.equal(await store.get(k), 'v1')
      await new Promise((resolve, reject) => plain.set(k, 'theirs', 60, (error) => { if (error !== undefined && error !== null) reject(error); else resolve(undefined) }))
      assert.equal(await store.compareAndSet(k, 'v1', 'mine', 60), false)
      assert.equal(await readWith(plain, k), 'theirs')
      assert.equal(await store.compareAndSet(k, 'v1', undefined, 60), false)
      assert.equal(await readWith(plain, k), 'theirs')
    })

    it('an item rewritten with the same text still matches (the outdated token is checked again)', async () => {
      const k = key('cas-same-text')
      await store.set(k, 'same', 60)
      assert.equal(await store.get(k), 'same')
      await new Promise((resolve, reject) => plain.set(k, 'same', 60, (error) => { if (error !== undefined && error !== null) reject(error); else resolve(undefined) }))
      assert.equal(await store.compareAndSet(k, 'same', 'next', 60), true)
      assert.equal(await readWith(plain, k), 'next')
    })

    it('a conditional delete is one cas to an expired item: the key is gone, and another client sees a miss', async () => {
      const k = key('cas-delete')
      await store.set(k, 'v1', 60)
      assert.equal(await store.get(k), 'v1')
      const counts = await counting(server, async () => assert.equal(await store.compareAndSet(k, 'v1', undefined, 60), true), CAS_COUNTERS)
      assert.deepEqual(counts, { cmd_set: 1, cas_hits: 1 })
      assert.equal(await readWith(plain, k), undefined)
      assert.equal(await rawCommand(server.port, `get ${k}`), 'END\r\n')
      // The key is free again for a new entry.
      assert.equal(await store.compareAndSet(k, undefined, 'again', 60), true)
    })

    it('writes 31-day items with the 30-day rule', async () => {
      const k = key('cas-31-days')
      assert.equal(await store.compareAndSet(k, undefined, 'v1', 31 * DAY), true)
      assert.equal(await store.compareAndSet(k, 'v1', 'v2', 31 * DAY), true)
      assert.equal(await store.get(k), 'v2')
      const ttl = await remainingTtl(server.port, k)
      assert.ok(ttl !== undefined && Math.abs(ttl - 31 * DAY) <= CLOCK_SLACK, `TTL ${ttl}`)
    })

    it('refuses an oversize value before sending anything', async () => {
      const k = key('cas-too-large')
      await store.set(k, 'small', 60)
      const counts = await counting(server, async () => {
        await assert.rejects(store.compareAndSet(k, 'small', 'v'.repeat(DEFAULT_MAX_VALUE_BYTES + 1), 60), { code: 'FST_QUART_SESSION_VALUE_TOO_LARGE' })
      }, CAS_COUNTERS)
      assert.deepEqual(counts, {})
      assert.equal(await store.get(k), 'small')
    })

    it('keys named cas and __proto__ (fields of the package\'s gets reply) are hashed and round-trip', async () => {
      for (const k of ['cas', '__proto__']) {
        assert.match(memcachedKey(k), /^sha256:/)
        await store.set(k, `value of ${k}`, 60)
        assert.equal(await store.get(k), `value of ${k}`)
        assert.equal(await store.compareAndSet(k, `value of ${k}`, 'next', 60), true)
        assert.equal(await store.get(k), 'next')
        await store.delete(k)
      }
    })

    it('works with a client the user built', async () => {
      const client = new Memcached(server.location)
      const userStore = new MemcachedStore({ client })
      try {
        const k = key('cas-user-client')
        assert.equal(await userStore.compareAndSet(k, undefined, 'v1', 60), true)
        assert.equal(await userStore.get(k), 'v1')
        assert.equal(await userStore.compareAndSet(k, 'v1', 'v2', 60), true)
        assert.equal(await userStore.compareAndSet(k, 'v1', 'v3', 60), false)
        assert.equal(await readWith(plain, k), 'v2')
      } finally {
        await userStore.close()
        client.end()
      }
    })
  })

  it('a burst of 50 concurrent reads on a store with no connection yet all succeed', async () => {
    const k = key('burst')
    await store.set(k, 'value', 60)
    // No ready(): the store has no connection yet, as after the package closed idle ones.
    const cold = new MemcachedStore({ servers: server.location })
    try {
      const results = await Promise.allSettled(Array.from({ length: 50 }, async () => await cold.get(k)))
      const failed = results.filter((result) => result.status === 'rejected')
      assert.deepEqual(failed, [])
      assert.ok(results.every((result) => result.status === 'fulfilled' && result.value === 'value'), 'every read found the value')
    } finally {
      await cold.close()
    }
  })

  it('uses a client the user built and never ends it', async () => {
    const client = new Memcached(server.location)
    let ended = 0
    const end = client.end.bind(client)
    client.end = () => { ended++; end() }
    const userStore = new MemcachedStore({ client })
    await userStore.ready()
    const k = key('user-client')
    await userStore.set(k, 'mine', 60)
    assert.equal(await readWith(plain, k), 'mine')
    await userStore.close()
    assert.equal(ended, 0, 'close() did not end the user client')
    assert.equal(client.listenerCount('issue'), 0, 'the store took its listeners back')
    assert.equal(await readWith(client, k), 'mine')
    client.end()
  })

  it('a server that stops answering (process frozen) fails operations with FST_QUART_SESSION_TIMEOUT', async () => {
    const k = key('frozen')
    const quick = new MemcachedStore({ servers: server.location, timeout: 0.5 })
    await quick.set(k, 'value', 60)
    await server.freeze()
    try {
      await assert.rejects(quick.get(k), (error: Error & { code?: string, statusCode?: number }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_TIMEOUT')
        assert.equal(error.statusCode, 503)
        assert.match(error.message, /memcached get/)
        return true
      })
    } finally {
      server.thaw()
    }
    // The store skips the server until a check answers (`retry`). A connection the timed-out
    // command was written to may still deliver its reply late; the next commands must not get it
    // in their place.
    const other = key('after-freeze')
    await eventually(async () => { await quick.set(other, 'fresh', 60) }, 50)
    assert.equal(await quick.get(other), 'fresh')
    assert.equal(await quick.get(k), 'value')
    await quick.close()
  })

  describe('items another client stored with flags (the package decodes 2 as JSON, 4 as binary, 8 as a number)', () => {
    const items: Array<[number, string]> = [[2, '{"data":{"foo":"json"}}'], [2, '{"data":'], [2, ''], [4, 'binary'], [8, '42'], [16, 'other flags']]

    it('are read as the text memcached holds, and never take the process down', async () => {
      for (const [flags, text] of items) {
        const k = key(`flags-${flags}`)
        await rawSet(server.port, k, flags, text)
        assert.equal(await store.get(k), text, `flags ${flags}: ${text}`)
      }
    })

    it('a compare-and-set over one is a refusal (it is not what was expected), never an error', async () => {
      for (const [flags, text] of items) {
        const k = key(`flags-cas-${flags}`)
        await rawSet(server.port, k, flags, text)
        assert.equal(await store.compareAndSet(k, 'a record read before', 'mine', 60), false)
        assert.equal(await store.compareAndSet(k, undefined, 'mine', 60), false)
        // What the store read is what it compares: the write goes through against that text.
        assert.equal(await store.compareAndSet(k, text, 'mine', 60), true)
        assert.equal(await store.get(k), 'mine')
      }
    })

    it('with a client the user built: the package still decodes JSON for the user, the store gets text, and JSON that does not parse cannot crash', async () => {
      const client = new Memcached(server.location)
      const userStore = new MemcachedStore({ client })
      try {
        const json = key('user-json')
        await rawSet(server.port, json, 2, '{"a":1}')
        assert.equal(await userStore.get(json), '{"a":1}')
        assert.deepEqual(await readWith(client, json), { a: 1 }, 'the user\'s own reads still decode JSON')
        const broken = key('user-broken')
        await rawSet(server.port, broken, 2, '{"a":')
        assert.equal(await userStore.get(broken), '{"a":')
        const binary = key('user-binary')
        await rawSet(server.port, binary, 4, 'bytes')
        assert.equal(await userStore.get(binary), 'bytes')
        assert.equal(await userStore.compareAndSet(binary, 'something else', 'mine', 60), false)
      } finally {
        await userStore.close()
        client.end()
      }
    })
  })

  it('has no touch(): the core never calls it', () => {
    assert.equal('touch' in store, false)
  })

  it('the raw record is the exact string that was stored (no flags, no JSON)', async () => {
    const k = key('raw')
    await store.set(k, '["a",1]', 60)
    assert.equal(await rawCommand(server.port, `get ${k}`), `VALUE ${k} 0 7\r\n["a",1]\r\nEND\r\n`)
  })
})

describe('MemcachedStore boot and options', () => {
  it('ready() rejects with FST_QUART_SESSION_CONNECT for a closed port, naming the server', async () => {
    const port = await freePort()
    const store = new MemcachedStore({ servers: `127.0.0.1:${port}` })
    try {
      await assert.rejects(store.ready(), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'FST_QUART_SESSION_CONNECT')
        assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
        assert.match(error.message, /ECONNREFUSED/)
        return true
      })
    } finally {
      await store.close()
    }
  })

  it('ready() resolves when one server of a pool answers', async () => {
    const port = await freePort()
    const store = new MemcachedStore({ servers: [server.location, `127.0.0.1:${port}`] })
    try {
      await store.ready()
    } finally {
      await store.close()
    }
  })

  it('refuses servers together with client, and bad numbers', () => {
    const client = new Memcached(server.location)
    assert.throws(() => new MemcachedStore({ servers: server.location, client }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    client.end()
    assert.throws(() => new MemcachedStore({ client: {} as never }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new MemcachedStore({ servers: [] }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new MemcachedStore({ servers: { 'a:1': 0 } }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new MemcachedStore({ timeout: 0 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new MemcachedStore({ retry: -1 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new MemcachedStore({ maxValueBytes: 1.5 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
  })
})
