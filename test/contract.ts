// The shared contract every SessionStore adapter must pass. Each adapter's test file calls
// `storeContract(name, setup)` with a real backend behind the store.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomUUID } from 'node:crypto'
import type { SessionStore } from '../lib/store.js'

export interface ContractSetup {
  /** A store ready to use; called once for the suite. */
  create (): Promise<SessionStore>
  /** Tear-down after the suite (close clients the test made). */
  destroy? (store: SessionStore): Promise<void>
}

export function storeContract (name: string, setup: ContractSetup): void {
  describe(`SessionStore contract: ${name}`, () => {
    let store: SessionStore
    // Unique keys per run so a shared server never leaks state between tests.
    const key = (k: string): string => `contract:${randomUUID()}:${k}`

    before(async () => { store = await setup.create() })
    after(async () => {
      if (setup.destroy !== undefined) await setup.destroy(store)
      else await store.close?.()
    })

    it('returns undefined for a missing key', async () => {
      assert.equal(await store.get(key('missing')), undefined)
    })

    it('round-trips a string value exactly', async () => {
      const k = key('roundtrip')
      const value = '["snow ☃ \\u0000 \\"quoted\\"",{"a":1}]' + 'x'.repeat(2000)
      await store.set(k, value, 60)
      assert.equal(await store.get(k), value)
    })

    it('overwrites an existing value', async () => {
      const k = key('overwrite')
      await store.set(k, 'first', 60)
      await store.set(k, 'second', 60)
      assert.equal(await store.get(k), 'second')
    })

    it('deletes a key, and deleting a missing key is not an error', async () => {
      const k = key('delete')
      await store.set(k, 'value', 60)
      await store.delete(k)
      assert.equal(await store.get(k), undefined)
      await store.delete(k)
      await store.delete(key('never-set'))
    })

    it('expires a value after its TTL', async () => {
      const k = key('ttl')
      await store.set(k, 'short-lived', 1)
      assert.equal(await store.get(k), 'short-lived')
      await sleep(2100)
      assert.equal(await store.get(k), undefined)
    })

    it('keeps a value with TTL 0 (no expiry)', async () => {
      const k = key('forever')
      await store.set(k, 'kept', 0)
      await sleep(1100)
      assert.equal(await store.get(k), 'kept')
      await store.delete(k)
    })

    it('set restarts the TTL', async () => {
      const k = key('reset')
      await store.set(k, 'v1', 1)
      await store.set(k, 'v2', 60)
      await sleep(1600)
      assert.equal(await store.get(k), 'v2')
    })

    it('touch extends the TTL without changing the value', async (t) => {
      if (store.touch === undefined) return t.skip('adapter has no touch')
      const k = key('touch')
      await store.set(k, 'touched', 1)
      await store.touch(k, 60)
      await sleep(1600)
      assert.equal(await store.get(k), 'touched')
    })

    it('touch on a missing key is not an error and creates nothing', async (t) => {
      if (store.touch === undefined) return t.skip('adapter has no touch')
      const k = key('touch-missing')
      await store.touch(k, 60)
      assert.equal(await store.get(k), undefined)
    })

    it('keeps keys apart', async () => {
      const a = key('a')
      const b = key('b')
      await store.set(a, 'A', 60)
      await store.set(b, 'B', 60)
      assert.equal(await store.get(a), 'A')
      assert.equal(await store.get(b), 'B')
    })
  })
}
