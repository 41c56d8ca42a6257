// lib/recency.ts holds the order every in-process cache and the memory store evict by: the least
// recently used goes first, whatever mix of reads, writes, moves and evictions came before.
// Checked against a plain model (an array in use order) over random operations.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Recency } from '../lib/recency.js'

type Op = { op: 'set', key: string, value: number } | { op: 'use' | 'delete' | 'get', key: string } | { op: 'dropOldest' }

const key = fc.constantFrom('a', 'b', 'c', 'd', 'e')
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key, value: fc.integer() }),
  fc.record({ op: fc.constantFrom('use' as const, 'delete' as const, 'get' as const), key }),
  fc.record({ op: fc.constant('dropOldest' as const) })
)

describe('Recency', () => {
  it('keeps least-recently-used order like a model, through sets, uses, deletes and evictions', () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const recency = new Recency<number>()
      let model: Array<[string, number]> = []
      for (const o of ops) {
        const at = o.op === 'dropOldest' ? -1 : model.findIndex(([k]) => k === o.key)
        if (o.op === 'set') {
          recency.set(o.key, o.value)
          if (at !== -1) model.splice(at, 1)
          model.push([o.key, o.value])
        } else if (o.op === 'use') {
          assert.equal(recency.use(o.key), at === -1 ? undefined : model[at][1])
          if (at !== -1) model.push(model.splice(at, 1)[0])
        } else if (o.op === 'delete') {
          assert.equal(recency.delete(o.key), at === -1 ? undefined : model[at][1])
          if (at !== -1) model.splice(at, 1)
        } else if (o.op === 'get') {
          assert.equal(recency.get(o.key), at === -1 ? undefined : model[at][1])
        } else {
          recency.dropOldest()
          model = model.slice(1)
        }
        assert.equal(recency.size, model.length)
        assert.equal(recency.oldest(), model[0]?.[0])
        assert.deepEqual([...recency.values()].sort(), model.map(([, v]) => v).sort())
      }
      // Dropping the oldest again and again empties it in model order.
      for (const [k] of model) {
        assert.equal(recency.oldest(), k)
        recency.dropOldest()
        assert.equal(recency.get(k), undefined)
      }
      assert.equal(recency.size, 0)
      recency.dropOldest()
      assert.equal(recency.oldest(), undefined)
    }), { numRuns: 300 })
  })
})
