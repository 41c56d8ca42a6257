import * as runner from 'node:test'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { storeContract } from './contract.js'
import { MemoryStore } from '../lib/stores/memory.js'

storeContract({ name: 'memory', runner, create: () => new MemoryStore(), capabilities: ['compareAndSet', 'getLocal'] })

describe('MemoryStore bounds', () => {
  it('evicts the least recently used entry beyond maxEntries', async () => {
    const store = new MemoryStore({ maxEntries: 3 })
    await store.set('a', '1', 60)
    await store.set('b', '2', 60)
    await store.set('c', '3', 60)
    assert.equal(await store.get('a'), '1') // a is now the most recently used
    await store.set('d', '4', 60)
    assert.equal(await store.get('b'), undefined)
    assert.equal(await store.get('a'), '1')
    assert.equal(await store.get('c'), '3')
    assert.equal(await store.get('d'), '4')
    assert.equal(store.size, 3)
  })

  it('keeps exact recency across reads, rewrites, deletes and expiry: the entries evicted are the least recently used', async () => {
    const store = new MemoryStore({ maxEntries: 100 })
    for (let i = 0; i < 100; i++) await store.set(`k${i}`, String(i), 60)
    // Used again, in this order: k0 read, k1 rewritten, k2 deleted and set again, k3 compare-and-set.
    assert.equal(store.getLocal('k0'), '0')
    await store.set('k1', 'one', 60)
    await store.delete('k2')
    await store.set('k2', 'two', 60)
    assert.equal(await store.compareAndSet('k3', '3', 'three', 60), true)
    for (let i = 100; i < 196; i++) await store.set(`k${i}`, String(i), 60)
    // 100 kept: the 4 used ones and the 96 newest; k4..k99 went, oldest first.
    assert.equal(store.size, 100)
    for (const [key, value] of [['k0', '0'], ['k1', 'one'], ['k2', 'two'], ['k3', 'three'], ['k195', '195']]) {
      assert.equal(store.getLocal(key), value, key)
    }
    for (const key of ['k4', 'k50', 'k99']) assert.equal(store.getLocal(key), null, key)
    await store.delete('k195')
    await store.delete('k0')
    await store.set('new', 'n', 60)
    assert.equal(store.size, 99)
    assert.equal(store.getLocal('new'), 'n')
  })

  it('refuses a maxEntries that is not a positive integer', () => {
    assert.throws(() => new MemoryStore({ maxEntries: 0 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new MemoryStore({ maxEntries: 1.5 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
  })
})
