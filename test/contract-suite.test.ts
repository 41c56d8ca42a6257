// The contract suite itself: it runs under any runner that has describe/it, gives each test a
// fresh store, runs the suites a store declares, and fails on stores that break the contract in
// the ways real backends do. A suite that passes a broken store would be worth nothing.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as tick } from 'node:timers/promises'
import {
  storeContract, defineContractSuite, contractSuites,
  type ContractCapability, type StoreContractOptions
} from '../lib/contract.js'
import type { SessionStore } from '../lib/store.js'
import { MemoryStore } from '../lib/stores/memory.js'

interface Collected { title: string, suite: string, run: () => Promise<void> }

/** A runner of our own, as a vitest or mocha user would hand theirs in: it only collects. */
function collect (options: Omit<StoreContractOptions, 'runner'>): Collected[] {
  const tests: Collected[] = []
  const path: string[] = []
  storeContract({
    ...options,
    runner: {
      describe (name, body) {
        path.push(name)
        body()
        path.pop()
      },
      it (name, body) { tests.push({ title: name, suite: path.at(-1) ?? '', run: body }) }
    }
  })
  return tests
}

function find (tests: Collected[], title: string): Collected {
  const found = tests.find((test) => test.title.startsWith(title))
  assert.ok(found !== undefined, `no test "${title}" among ${tests.map((t) => t.title).join(' | ')}`)
  return found
}

/** The test `title` of the contract for the store `create` makes must fail. */
async function failsOn (title: string, create: () => SessionStore, capabilities: ContractCapability[] = []): Promise<Error> {
  const test = find(collect({ name: 'broken', create, capabilities }), title)
  let failure: unknown
  await test.run().catch((error: unknown) => { failure = error })
  assert.ok(failure instanceof Error, `"${title}" passed a store that breaks it`)
  return failure
}

/** Only what every store has: get, set, delete. */
function plain (inner = new MemoryStore()): SessionStore {
  return {
    get: async (key) => await inner.get(key),
    set: async (key, value, ttl) => { await inner.set(key, value, ttl) },
    delete: async (key) => { await inner.delete(key) }
  }
}

describe('the contract suite', () => {
  it('has a basic and a TTL suite that always run, and one suite per capability', () => {
    assert.deepEqual(contractSuites().slice(0, 4), ['basic', 'ttl', 'compareAndSet', 'getLocal'])
    const suites = (capabilities: ContractCapability[]): string[] =>
      [...new Set(collect({ name: 'memory', create: () => new MemoryStore(), capabilities }).map((t) => t.suite))]
    assert.deepEqual(suites([]), ['basic: get, set, delete', 'TTL'])
    assert.deepEqual(suites(['compareAndSet', 'getLocal']), ['basic: get, set, delete', 'TTL', 'compareAndSet', 'getLocal agrees with get'])
  })

  it('gives every test a fresh store and disposes of each, pass or fail', async () => {
    const made: SessionStore[] = []
    const disposed: SessionStore[] = []
    const tests = collect({
      name: 'counted',
      create: () => { const store = new MemoryStore(); made.push(store); return store },
      dispose: (store) => { disposed.push(store) },
      capabilities: ['compareAndSet', 'getLocal']
    }).filter((test) => test.suite.startsWith('basic'))
    assert.equal(made.length, 0, 'no store is made before a test runs')
    for (const test of tests) await test.run()
    assert.equal(made.length, tests.length)
    assert.equal(new Set(made).size, tests.length, 'one store per test')
    assert.deepEqual(disposed, made)
  })

  it('reports the test\'s own failure when the tear-down fails after it', async () => {
    const failure = await failsOn('stores the empty string', () => {
      const store = plain()
      return { ...store, get: async (key) => (await store.get(key)) || undefined, close: async () => { throw new Error('close failed (test)') } }
    })
    assert.equal(failure.name, 'AssertionError')
  })

  it('fails a store whose tear-down fails', async () => {
    const failure = await failsOn('returns undefined for a missing key', () => ({ ...plain(), close: async () => { throw new Error('close failed (test)') } }))
    assert.match(failure.message, /close failed/)
  })

  it('fails a store that has a capability it does not declare, or declares one it lacks', async () => {
    const undeclared = await failsOn('declares exactly', () => new MemoryStore())
    assert.match(undeclared.message, /add 'compareAndSet' to capabilities/)
    const lacking = await failsOn('declares exactly', () => plain(), ['compareAndSet'])
    assert.match(lacking.message, /declares compareAndSet but lacks compareAndSet/)
  })

  it('fails a store that reads the empty string as missing', async () => {
    await failsOn('stores the empty string', () => {
      const store = plain()
      return { ...store, get: async (key) => (await store.get(key)) || undefined }
    })
  })

  it('fails a store whose keys are case-insensitive', async () => {
    await failsOn('keeps keys apart', () => {
      const store = plain()
      return {
        get: async (key) => await store.get(key.toLowerCase()),
        set: async (key, value, ttl) => { await store.set(key.toLowerCase(), value, ttl) },
        delete: async (key) => { await store.delete(key.toLowerCase()) }
      }
    })
  })

  it('fails a store that mangles characters or truncates large values', async () => {
    await failsOn('round-trips strings of every kind', () => {
      const store = plain()
      return { ...store, set: async (key, value, ttl) => { await store.set(key, value.replaceAll('\r\n', '\n'), ttl) } }
    })
    await failsOn('round-trips a large value', () => {
      const store = plain()
      return { ...store, set: async (key, value, ttl) => { await store.set(key, value.slice(0, 64 * 1024), ttl) } }
    })
  })

  it('fails a store that ignores the TTL', async () => {
    await failsOn('expires an entry once its TTL has passed', () => {
      const store = plain()
      return { ...store, set: async (key, value) => { await store.set(key, value, 0) } }
    })
  })

  it('fails a compareAndSet that is not atomic', async () => {
    await failsOn('loses no update when 50 writers race', () => {
      const inner = new MemoryStore()
      return {
        ...plain(inner),
        async compareAndSet (key, expected, value, ttl) {
          if (await inner.get(key) !== expected) return false
          await tick() // another writer runs between the comparison and the write
          if (value === undefined) await inner.delete(key)
          else await inner.set(key, value, ttl)
          return true
        }
      }
    }, ['compareAndSet'])
  })

  it('fails a compareAndSet that takes "" for no entry', async () => {
    await failsOn('tells the empty string from no entry', () => {
      const inner = new MemoryStore()
      return {
        ...plain(inner),
        async compareAndSet (key, expected, value, ttl) {
          if ((await inner.get(key) ?? '') !== (expected ?? '')) return false
          if (value === undefined) await inner.delete(key)
          else await inner.set(key, value, ttl)
          return true
        }
      }
    }, ['compareAndSet'])
  })

  it('fails a getLocal that keeps answering after a delete', async () => {
    await failsOn('after set, overwrite and delete', () => {
      const inner = plain()
      const cache = new Map<string, string>()
      return {
        ...inner,
        set: async (key, value, ttl) => { cache.set(key, value); await inner.set(key, value, ttl) },
        getLocal: (key) => cache.get(key)
      }
    }, ['getLocal'])
  })

  it('refuses options it cannot run with, naming them', () => {
    const create = (): SessionStore => new MemoryStore()
    const noop = { describe: () => {}, it: () => {} }
    assert.throws(() => { storeContract({ name: 'x', create } as unknown as StoreContractOptions) }, { code: 'FST_QUART_SESSION_INVALID_ARGUMENT', message: /"runner"/ })
    assert.throws(() => { storeContract({ name: 'x', runner: noop, create, ttlGranularity: 0.5 }) }, { code: 'FST_QUART_SESSION_INVALID_ARGUMENT', message: /"ttlGranularity"/ })
    assert.throws(() => { storeContract({ name: 'x', runner: noop, create, capabilities: ['ttl' as ContractCapability] }) }, { message: /"ttl" is not a capability; known: compareAndSet, getLocal/ })
    assert.throws(() => { storeContract({ name: 'x', runner: noop, create, capabilities: ['cas' as ContractCapability] }) }, { code: 'FST_QUART_SESSION_INVALID_ARGUMENT' })
  })

  it('takes new suites (an index, a cipher) and runs them for stores that declare them', async () => {
    let ran = 0
    defineContractSuite({
      name: 'example',
      title: 'example capability',
      members: ['example'],
      register ({ test }) { test('runs', async (store) => { assert.equal(typeof (store as unknown as { example: unknown }).example, 'function'); ran++ }) }
    })
    assert.throws(() => { defineContractSuite({ name: 'example', title: 'again', members: [], register () {} }) }, { code: 'FST_QUART_SESSION_INVALID_ARGUMENT' })
    const withIt = collect({ name: 'x', create: () => Object.assign(plain(), { example () {} }), capabilities: ['example' as ContractCapability] })
    await find(withIt, 'runs').run()
    await find(withIt, 'declares exactly').run()
    assert.equal(ran, 1)
    const without = collect({ name: 'x', create: () => plain() })
    assert.equal(without.some((test) => test.suite === 'example capability'), false)
    await assert.rejects(find(collect({ name: 'x', create: () => Object.assign(plain(), { example () {} }) }), 'declares exactly').run(), /add 'example'/)
  })
})
