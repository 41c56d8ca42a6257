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

  it('refuses a maxEntries that is not a positive integer', () => {
    assert.throws(() => new MemoryStore({ maxEntries: 0 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
    assert.throws(() => new MemoryStore({ maxEntries: 1.5 }), { code: 'FST_QUART_SESSION_INVALID_OPTION' })
  })
})
