// The shared contract every SessionStore adapter must pass. Each adapter's test file calls
// `storeContract(name, setup)` with a real backend behind the store.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomUUID } from 'node:crypto'
import type { SessionStore } from './store.js'

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
      // 2 s, not 1: memcached's clock ticks once a second and could expire a 1 s item before the touch.
      await store.set(k, 'touched', 2)
      await store.touch(k, 60)
      await sleep(2600)
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

    it('getLocal, where there is one, never disagrees with get', async (t) => {
      if (store.getLocal === undefined) return t.skip('adapter has no getLocal')
      const k = key('local')
      const agrees = async (): Promise<void> => {
        const remote = await store.get(k)
        const local = store.getLocal!(k)
        if (local === undefined) return
        assert.equal(local ?? undefined, remote)
      }
      await agrees()
      await store.set(k, 'one', 60)
      await agrees()
      await store.set(k, 'two', 60)
      await agrees()
      await store.delete(k)
      await agrees()
    })

    describe('compareAndSet', () => {
      const skip = (t: { skip: (why: string) => void }): boolean => {
        if (store.compareAndSet !== undefined) return false
        t.skip('adapter has no compareAndSet (last write wins)')
        return true
      }

      it('creates an entry only when none exists (expected undefined)', async (t) => {
        if (skip(t)) return
        const k = key('cas-create')
        assert.equal(await store.compareAndSet!(k, undefined, 'first', 60), true)
        assert.equal(await store.get(k), 'first')
        assert.equal(await store.compareAndSet!(k, undefined, 'second', 60), false)
        assert.equal(await store.get(k), 'first')
      })

      it('replaces only the expected value', async (t) => {
        if (skip(t)) return
        const k = key('cas-replace')
        await store.set(k, 'v1', 60)
        assert.equal(await store.compareAndSet!(k, 'other', 'v2', 60), false)
        assert.equal(await store.get(k), 'v1')
        assert.equal(await store.compareAndSet!(k, 'v1', 'v2', 60), true)
        assert.equal(await store.get(k), 'v2')
        // Once replaced, the old value no longer matches.
        assert.equal(await store.compareAndSet!(k, 'v1', 'v3', 60), false)
        assert.equal(await store.get(k), 'v2')
      })

      it('refuses to write back an entry that was deleted', async (t) => {
        if (skip(t)) return
        const k = key('cas-deleted')
        await store.set(k, 'loaded', 60)
        await store.delete(k)
        assert.equal(await store.compareAndSet!(k, 'loaded', 'resurrected', 60), false)
        assert.equal(await store.get(k), undefined)
      })

      it('deletes when value is undefined, only if the expected value is there', async (t) => {
        if (skip(t)) return
        const k = key('cas-delete')
        await store.set(k, 'v1', 60)
        assert.equal(await store.compareAndSet!(k, 'v0', undefined, 60), false)
        assert.equal(await store.get(k), 'v1')
        assert.equal(await store.compareAndSet!(k, 'v1', undefined, 60), true)
        assert.equal(await store.get(k), undefined)
      })

      it('treats an expired entry as absent', async (t) => {
        if (skip(t)) return
        const k = key('cas-expired')
        await store.set(k, 'old', 1)
        await sleep(2100)
        assert.equal(await store.compareAndSet!(k, 'old', 'new', 60), false)
        assert.equal(await store.compareAndSet!(k, undefined, 'fresh', 60), true)
        assert.equal(await store.get(k), 'fresh')
      })

      it('gives the written value its TTL', async (t) => {
        if (skip(t)) return
        const k = key('cas-ttl')
        assert.equal(await store.compareAndSet!(k, undefined, 'short', 1), true)
        await sleep(2100)
        assert.equal(await store.get(k), undefined)
      })

      it('round-trips values with odd characters exactly', async (t) => {
        if (skip(t)) return
        const k = key('cas-odd')
        const odd = '["snow ☃ \\u0000 \\"q\\"\r\n",{"a":1}]' + 'y'.repeat(3000)
        assert.equal(await store.compareAndSet!(k, undefined, odd, 60), true)
        assert.equal(await store.get(k), odd)
        assert.equal(await store.compareAndSet!(k, odd, odd + '!', 60), true)
        assert.equal(await store.get(k), odd + '!')
      })

      it('loses no update when 50 writers race on one key', async (t) => {
        if (skip(t)) return
        const k = key('cas-race')
        await store.set(k, '', 60)
        // Each writer appends its own mark with read, compare-and-set, retry: the classic lost-update race.
        await Promise.all(Array.from({ length: 50 }, async (_, i) => {
          for (let attempt = 0; attempt < 1000; attempt++) {
            const current = await store.get(k)
            const next = (current ?? '') + `<${i}>`
            if (await store.compareAndSet!(k, current, next, 60)) return
          }
          throw new Error(`writer ${i} never succeeded`)
        }))
        const final = await store.get(k) ?? ''
        for (let i = 0; i < 50; i++) assert.ok(final.includes(`<${i}>`), `mark ${i} lost`)
        assert.equal(final.length, Array.from({ length: 50 }, (_, i) => `<${i}>`).join('').length)
      })
    })
  })
}
