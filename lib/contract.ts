// The contract every SessionStore adapter must pass, split by capability after @keyv/test-suite:
// a basic suite and a TTL suite every store runs, and one suite per optional capability the store
// declares. The test runner is passed in (node:test, vitest, mocha: anything with describe/it), and
// each test gets a fresh store from the caller's factory.
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomUUID } from 'node:crypto'
import type { SessionStore } from './store.js'
import { FST_QUART_SESSION_INVALID_ARGUMENT } from './errors.js'

/**
 * What the suite needs from a test framework: `describe` and `it` as node:test, vitest, mocha and
 * jest spell them. Pass `import * as test from 'node:test'`, `import * as vitest from 'vitest'`,
 * or `{ describe, it }` from mocha's globals.
 */
export interface ContractRunner {
  describe (name: string, body: () => void): unknown
  it (name: string, body: () => Promise<void>): unknown
}

/**
 * The optional capabilities a store can declare, by name. A later suite (a per-user index, a
 * cipher at rest) adds its name here, by declaration merging or in this file, and registers its
 * tests with `defineContractSuite`.
 */
export interface ContractCapabilities {
  /** `compareAndSet`: atomic conditional writes, what makes concurrent saves lossless. */
  compareAndSet: true
  /** `getLocal`: answers from the process's memory that must agree with `get`. */
  getLocal: true
}
export type ContractCapability = keyof ContractCapabilities

export interface StoreContractOptions<S extends SessionStore = SessionStore> {
  /** The suite's name in the runner's report. */
  name: string
  /** The test framework's `describe` and `it`. */
  runner: ContractRunner
  /** A fresh store, ready to use (call its `ready()` here if it needs one); called once per test. */
  create (): S | Promise<S>
  /** Releases a store after its test, pass or fail. Default: the store's own `close()`, if any. */
  dispose? (store: S): void | Promise<void>
  /**
   * The optional capabilities the store has: `['compareAndSet']`, `['compareAndSet', 'getLocal']`…
   * Default none. The basic suite checks the claim against the store's methods both ways, so a
   * store cannot skip a suite it should run.
   */
  capabilities?: readonly ContractCapability[]
  /**
   * Whole seconds by which the store may expire an entry early or late. Default 1: memcached's
   * clock ticks once a second, connect-pg-simple rounds expiries up to the second. A store that
   * sweeps expired entries every n seconds and hides nothing in between needs n. The TTL tests
   * wait up to 3 × this + 0.2 s each: raise the runner's per-test timeout to match (mocha's default
   * of 2 s is too short even for 1).
   */
  ttlGranularity?: number
  /**
   * UTF-8 bytes of the large value the basic suite writes. Default 768 KiB, below memcached's
   * 1 MiB item size and the plugin's default `maxRecordBytes`.
   */
  largeValueBytes?: number
}

/** What a suite gets to register its tests with. */
export interface ContractContext {
  /** Registers one test: `body` gets a fresh store, disposed of after it, pass or fail. */
  test (name: string, body: (store: SessionStore) => Promise<void>): void
  /** A key no other test, run or process uses: `contract:<uuid>:<name>`. */
  key (name: string): string
  /** Whether the store declared `capability` (a suite may add tests that combine two). */
  has (capability: ContractCapability): boolean
  /** The TTL granularity in whole seconds. */
  readonly granularity: number
  /** Resolves once an entry written now with `ttlSeconds` has certainly expired (TTL + granularity + 0.2 s). */
  outlive (ttlSeconds: number): Promise<void>
  readonly largeValueBytes: number
}

export interface ContractSuite {
  /** A capability name, or `basic` / `ttl` for the suites every store runs. */
  readonly name: string
  /** The suite's heading in the runner's report. */
  readonly title: string
  /** Every store runs it, declared or not. */
  readonly required?: boolean
  /**
   * The optional `SessionStore` methods the capability stands for. A store that has them must
   * declare the capability, and one that declares it must have them.
   */
  readonly members: readonly string[]
  register (context: ContractContext): void
}

// Insertion order is the order suites run in.
const suites = new Map<string, ContractSuite>()

/** Adds a suite to the registry (the index and cipher suites of later releases come in this way). */
export function defineContractSuite (suite: ContractSuite): void {
  if (suites.has(suite.name)) {
    throw new FST_QUART_SESSION_INVALID_ARGUMENT('suite', `a contract suite named "${suite.name}" is already defined`)
  }
  suites.set(suite.name, suite)
}

/** The names of the registered suites, in the order they run. */
export function contractSuites (): string[] {
  return [...suites.keys()]
}

/** Registers the contract for one store: the required suites, then one per declared capability. */
export function storeContract<S extends SessionStore> (options: StoreContractOptions<S>): void {
  const { name, runner, capabilities = [] } = options
  if (typeof runner?.describe !== 'function' || typeof runner.it !== 'function') {
    throw new FST_QUART_SESSION_INVALID_ARGUMENT('runner', 'must have describe() and it(), e.g. `import * as test from \'node:test\'`')
  }
  if (typeof options.create !== 'function') {
    throw new FST_QUART_SESSION_INVALID_ARGUMENT('create', 'must be a function that returns a fresh store')
  }
  const granularity = options.ttlGranularity ?? 1
  if (!Number.isSafeInteger(granularity) || granularity < 1) {
    throw new FST_QUART_SESSION_INVALID_ARGUMENT('ttlGranularity', 'must be a whole number of seconds, 1 or more')
  }
  const largeValueBytes = options.largeValueBytes ?? 768 * 1024
  if (!Number.isSafeInteger(largeValueBytes) || largeValueBytes < 1) {
    throw new FST_QUART_SESSION_INVALID_ARGUMENT('largeValueBytes', 'must be a positive whole number of bytes')
  }
  for (const capability of capabilities) {
    const suite = suites.get(capability)
    if (suite === undefined || suite.required === true) {
      const known = [...suites.values()].filter((s) => s.required !== true).map((s) => s.name).join(', ')
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('capabilities', `"${String(capability)}" is not a capability; known: ${known}`)
    }
  }
  const declared = new Set<string>(capabilities)
  const dispose = async (store: S): Promise<void> => {
    if (options.dispose !== undefined) await options.dispose(store)
    else await store.close?.()
  }

  const context: ContractContext = {
    test (title, body) {
      runner.it(title, async () => {
        const store = await options.create()
        let failure: unknown
        try {
          await body(store)
        } catch (error) {
          failure = error
        }
        // A failed test reports its own failure, not the tear-down's that may follow from it.
        try {
          await dispose(store)
        } catch (error) {
          failure ??= error
        }
        if (failure !== undefined) throw failure
      })
    },
    key: (k) => `contract:${randomUUID()}:${k}`,
    has: (capability) => declared.has(capability),
    granularity,
    outlive: async (ttlSeconds) => { await sleep((ttlSeconds + granularity) * 1000 + 200) },
    largeValueBytes
  }

  runner.describe(`SessionStore contract: ${name}`, () => {
    for (const suite of suites.values()) {
      if (suite.required !== true && !declared.has(suite.name)) continue
      runner.describe(suite.title, () => { suite.register(context) })
    }
  })
}

// ---------------------------------------------------------------------------------------------
// basic: get, set, delete, values and keys of every kind

/** Strings a store must hand back exactly: what JSON records hold, and what they never escape. */
const ODD_VALUES: ReadonlyArray<[string, string]> = [
  ['ASCII', 'plain ascii 0123456789 ~!@#%^&*()_+=-`[]{}|;\':",./<>?'],
  ['JSON with escapes', '["snow ☃ \\u0000 \\"quoted\\" \\\\ back",{"a":1,"b":null}]'],
  ['BMP characters', 'Grüße, 日本語, Ελληνικά, עברית, العربية, ☃'],
  ['astral characters', '😀 🏳️‍🌈 𝄞 𠜎 — surrogate pairs and a ZWJ sequence'],
  ['combining marks', 'e\u0301 a\u0308 n\u0303: not normalized'],
  ['line and paragraph separators', 'a\u2028b\u2029c'],
  ['control characters', 'nul \u0000 bell \u0007 tab \t cr \r lf \n crlf \r\n del \u007f end'],
  ['a BOM and surrounding space', '\uFEFF  padded  \t'],
  ['words a parser could take', 'null'],
  ['a number', '12345'],
  ['a JSON object of its own', '{"v":"nested","cookie":{"expires":null}}'],
  ['one character', 'x']
]

/** A value of `bytes` UTF-8 bytes mixing one-, two-, three- and four-byte characters. */
function largeValue (bytes: number): string {
  const unit = 'abc é ☃ 😀 ' // 1+1+1+1+2+1+3+1+4+1 = 16 bytes
  const whole = Math.floor(bytes / 16)
  return unit.repeat(whole) + 'x'.repeat(bytes - whole * 16)
}

defineContractSuite({
  name: 'basic',
  title: 'basic: get, set, delete',
  required: true,
  members: [],
  register ({ test, key, has, largeValueBytes }) {
    test('declares exactly the optional capabilities it has', async (store) => {
      for (const suite of suites.values()) {
        if (suite.required === true || suite.members.length === 0) continue
        const present = suite.members.filter((member) => typeof (store as unknown as Record<string, unknown>)[member] === 'function')
        const claimed = has(suite.name as ContractCapability)
        if (claimed) assert.deepEqual(present, suite.members, `declares ${suite.name} but lacks ${suite.members.filter((m) => !present.includes(m)).join(', ')}`)
        else assert.deepEqual(present, [], `has ${present.join(', ')}: add '${suite.name}' to capabilities so its suite runs`)
      }
    })

    test('returns undefined for a missing key', async (store) => {
      assert.equal(await store.get(key('missing')), undefined)
    })

    test('round-trips strings of every kind exactly', async (store) => {
      const written = ODD_VALUES.map(([what, value]) => ({ what, value, k: key(what) }))
      for (const { k, value } of written) await store.set(k, value, 60)
      for (const { k, value, what } of written) assert.equal(await store.get(k), value, what)
    })

    test('stores the empty string as a value, not as a missing key', async (store) => {
      const k = key('empty')
      await store.set(k, '', 60)
      assert.equal(await store.get(k), '')
      await store.set(k, 'then something', 60)
      assert.equal(await store.get(k), 'then something')
      await store.set(k, '', 60)
      assert.equal(await store.get(k), '')
    })

    test(`round-trips a large value (${largeValueBytes} bytes of mixed UTF-8)`, async (store) => {
      const k = key('large')
      const value = largeValue(largeValueBytes)
      assert.equal(Buffer.byteLength(value), largeValueBytes)
      await store.set(k, value, 60)
      const back = await store.get(k)
      assert.equal(back?.length, value.length, 'length')
      assert.ok(back === value, 'the value read back differs from the one written')
    })

    test('overwrites an existing value', async (store) => {
      const k = key('overwrite')
      await store.set(k, 'first', 60)
      await store.set(k, 'second', 60)
      assert.equal(await store.get(k), 'second')
    })

    test('deletes a key, and deleting a missing key is not an error', async (store) => {
      const k = key('delete')
      await store.set(k, 'value', 60)
      await store.delete(k)
      assert.equal(await store.get(k), undefined)
      await store.delete(k)
      await store.delete(key('never-set'))
      await store.set(k, 'again', 60)
      assert.equal(await store.get(k), 'again', 'a deleted key can be written again')
    })

    test('keeps keys apart, keys that differ only in letter case too', async (store) => {
      // Session keys are base64url, where `a` and `A` are different digits: a case-insensitive
      // backend (a MySQL table with a *_ci collation) would hand one user another's session.
      const base = key('case')
      const keys = [base + '-aBc', base + '-abc', base + '-ABC', base + '-a', base + '-b']
      for (const [i, k] of keys.entries()) await store.set(k, `value ${i}`, 60)
      for (const [i, k] of keys.entries()) assert.equal(await store.get(k), `value ${i}`, k)
      await store.delete(keys[0])
      assert.equal(await store.get(keys[0]), undefined)
      assert.equal(await store.get(keys[1]), 'value 1')
    })

    test('takes keys of every shape the plugin sends', async (store) => {
      // Session keys are keyPrefix + 43 base64url characters; keys of `fastify.sessionStore` are
      // any non-empty string the application chooses.
      const id = randomUUID().replaceAll('-', '')
      const shapes = [
        `session:${'Ab0-_'.repeat(8)}${id.slice(0, 3)}`,
        `${randomUUID()}`,
        `app/${id}/cache.entry`,
        `with space ${id}`,
        `ünïcødé ☃ ${id}`,
        `${id}:${'k'.repeat(300)}`
      ]
      for (const [i, k] of shapes.entries()) await store.set(k, `shape ${i}`, 60)
      for (const [i, k] of shapes.entries()) assert.equal(await store.get(k), `shape ${i}`, k)
      for (const k of shapes) await store.delete(k)
      for (const k of shapes) assert.equal(await store.get(k), undefined, k)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// ttl: value and expiry written together

defineContractSuite({
  name: 'ttl',
  title: 'TTL',
  required: true,
  members: [],
  register ({ test, key, granularity, outlive }) {
    // An entry with a TTL of t lives between t - g and t + g; 2g is the shortest TTL that must
    // still be there when read at once.
    const short = 2 * granularity

    test('expires an entry once its TTL has passed, one that had no expiry before too', async (store) => {
      const fresh = key('ttl')
      const wasForever = key('ttl-after-0')
      await store.set(fresh, 'short-lived', short)
      await store.set(wasForever, 'kept', 0)
      await store.set(wasForever, 'now short-lived', short)
      assert.equal(await store.get(fresh), 'short-lived')
      assert.equal(await store.get(wasForever), 'now short-lived')
      await outlive(short)
      assert.equal(await store.get(fresh), undefined)
      assert.equal(await store.get(wasForever), undefined, 'a set with a TTL replaces "no expiry"')
    })

    test('keeps an entry with TTL 0 (no expiry)', async (store) => {
      const k = key('forever')
      await store.set(k, 'kept', 0)
      // Long enough for a store that takes 0 as "expire now" or as the shortest TTL it has.
      await outlive(0)
      assert.equal(await store.get(k), 'kept')
      await store.delete(k)
    })

    test('set restarts the TTL', async (store) => {
      const k = key('restart')
      await store.set(k, 'v1', granularity)
      await store.set(k, 'v2', 60)
      await outlive(granularity)
      assert.equal(await store.get(k), 'v2')
    })
  }
})

// ---------------------------------------------------------------------------------------------
// compareAndSet

defineContractSuite({
  name: 'compareAndSet',
  title: 'compareAndSet',
  members: ['compareAndSet'],
  register ({ test, key, outlive, granularity }) {
    const cas = (store: SessionStore): NonNullable<SessionStore['compareAndSet']> => store.compareAndSet!.bind(store)
    const short = 2 * granularity

    test('creates an entry only when none exists (expected undefined)', async (store) => {
      const k = key('cas-create')
      assert.equal(await cas(store)(k, undefined, 'first', 60), true)
      assert.equal(await store.get(k), 'first')
      assert.equal(await cas(store)(k, undefined, 'second', 60), false)
      assert.equal(await store.get(k), 'first')
    })

    test('replaces only the expected value', async (store) => {
      const k = key('cas-replace')
      await store.set(k, 'v1', 60)
      assert.equal(await cas(store)(k, 'other', 'v2', 60), false)
      assert.equal(await store.get(k), 'v1')
      assert.equal(await cas(store)(k, 'v1', 'v2', 60), true)
      assert.equal(await store.get(k), 'v2')
      // Once replaced, the old value no longer matches.
      assert.equal(await cas(store)(k, 'v1', 'v3', 60), false)
      assert.equal(await store.get(k), 'v2')
    })

    test('tells the empty string from no entry', async (store) => {
      const k = key('cas-empty')
      assert.equal(await cas(store)(k, '', 'from nothing', 60), false, 'no entry is not ""')
      assert.equal(await store.get(k), undefined)
      await store.set(k, '', 60)
      assert.equal(await cas(store)(k, undefined, 'over ""', 60), false, '"" is an entry')
      assert.equal(await cas(store)(k, '', 'from ""', 60), true)
      assert.equal(await store.get(k), 'from ""')
      assert.equal(await cas(store)(k, 'from ""', '', 60), true)
      assert.equal(await store.get(k), '')
    })

    test('refuses to write back an entry that was deleted', async (store) => {
      const k = key('cas-deleted')
      await store.set(k, 'loaded', 60)
      await store.delete(k)
      assert.equal(await cas(store)(k, 'loaded', 'resurrected', 60), false)
      assert.equal(await store.get(k), undefined)
    })

    test('deletes when value is undefined, only if the expected value is there', async (store) => {
      const k = key('cas-delete')
      await store.set(k, 'v1', 60)
      assert.equal(await cas(store)(k, 'v0', undefined, 60), false)
      assert.equal(await store.get(k), 'v1')
      assert.equal(await cas(store)(k, 'v1', undefined, 60), true)
      assert.equal(await store.get(k), undefined)
      assert.equal(await cas(store)(k, undefined, undefined, 60), true, 'deleting nothing when nothing is expected holds')
      assert.equal(await store.get(k), undefined)
    })

    test('treats an expired entry as absent', async (store) => {
      const k = key('cas-expired')
      await store.set(k, 'old', granularity)
      await outlive(granularity)
      assert.equal(await cas(store)(k, 'old', 'new', 60), false)
      assert.equal(await cas(store)(k, undefined, 'fresh', 60), true)
      assert.equal(await store.get(k), 'fresh')
    })

    test('gives the written value its TTL, and TTL 0 no expiry', async (store) => {
      const expiring = key('cas-ttl')
      const kept = key('cas-ttl-0')
      assert.equal(await cas(store)(expiring, undefined, 'short', short), true)
      assert.equal(await cas(store)(kept, undefined, 'kept', 0), true)
      assert.equal(await store.get(expiring), 'short')
      await outlive(short)
      assert.equal(await store.get(expiring), undefined)
      assert.equal(await store.get(kept), 'kept')
    })

    test('round-trips values of every kind exactly', async (store) => {
      const k = key('cas-odd')
      let previous: string | undefined
      for (const [what, value] of ODD_VALUES) {
        assert.equal(await cas(store)(k, previous, value, 60), true, what)
        assert.equal(await store.get(k), value, what)
        previous = value
      }
    })

    test('loses no update when 50 writers race on one key', async (store) => {
      const k = key('cas-race')
      await store.set(k, '', 60)
      // Each writer appends its own mark with read, compare-and-set, retry: the classic lost-update race.
      await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        for (let attempt = 0; attempt < 1000; attempt++) {
          const current = await store.get(k)
          const next = (current ?? '') + `<${i}>`
          if (await cas(store)(k, current, next, 60)) return
        }
        throw new Error(`writer ${i} never succeeded`)
      }))
      const final = await store.get(k) ?? ''
      for (let i = 0; i < 50; i++) assert.ok(final.includes(`<${i}>`), `mark ${i} lost`)
      assert.equal(final.length, Array.from({ length: 50 }, (_, i) => `<${i}>`).join('').length)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// getLocal

defineContractSuite({
  name: 'getLocal',
  title: 'getLocal agrees with get',
  members: ['getLocal'],
  register ({ test, key, has, granularity, outlive }) {
    /** A local answer may be "ask get" (undefined); when it answers, it must be get's answer. */
    const agrees = async (store: SessionStore, k: string, when: string): Promise<void> => {
      const remote = await store.get(k)
      const local = store.getLocal!(k)
      if (local === undefined) return
      assert.equal(local ?? undefined, remote, `getLocal disagrees with get ${when}`)
    }

    test('after set, overwrite and delete', async (store) => {
      const k = key('local')
      await agrees(store, k, 'before anything was written')
      await store.set(k, 'one', 60)
      await agrees(store, k, 'after set')
      await store.set(k, 'two', 60)
      await agrees(store, k, 'after an overwrite')
      await store.set(k, '', 60)
      await agrees(store, k, 'after writing ""')
      await store.delete(k)
      await agrees(store, k, 'after delete')
    })

    test('after the entry expired', async (store) => {
      const k = key('local-expired')
      await store.set(k, 'short', granularity)
      await agrees(store, k, 'after set')
      await outlive(granularity)
      assert.equal(await store.get(k), undefined)
      const local = store.getLocal!(k)
      assert.ok(local === undefined || local === null, `getLocal still answers ${JSON.stringify(local)} after expiry`)
    })

    if (has('compareAndSet')) {
      test('after compareAndSet writes and deletes', async (store) => {
        const k = key('local-cas')
        const cas = store.compareAndSet!.bind(store)
        await cas(k, undefined, 'one', 60)
        await agrees(store, k, 'after a compareAndSet create')
        await cas(k, 'one', 'two', 60)
        await agrees(store, k, 'after a compareAndSet replace')
        await cas(k, 'stale', 'three', 60)
        await agrees(store, k, 'after a refused compareAndSet')
        await cas(k, 'two', undefined, 60)
        await agrees(store, k, 'after a compareAndSet delete')
      })
    }
  }
})
