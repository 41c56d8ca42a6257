// The three-way merge of session data on its own, without a Fastify app: what one side changed is
// kept at any depth, both sides' appends and removals survive, and on a clash ours wins.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { merge } from '../lib/merge.js'

const clone = <T>(value: T): T => structuredClone(value)

describe('three-way merge', () => {
  it('keeps what only one side changed, at any depth', () => {
    const base = { user: { id: 1, prefs: { theme: 'dark', lang: 'en' } }, n: 1 }
    const ours = clone(base)
    ours.user.prefs.theme = 'light'
    const theirs = clone(base)
    theirs.user.prefs.lang = 'fr'
    theirs.n = 2
    assert.deepEqual(merge(base, ours, theirs), { user: { id: 1, prefs: { theme: 'light', lang: 'fr' } }, n: 2 })
  })

  it('keeps the items both sides appended to an array, and drops what either removed', () => {
    const base = { cart: { items: ['a', 'b', 'c'] } }
    const ours = { cart: { items: ['a', 'c', 'x'] } }
    const theirs = { cart: { items: ['a', 'b', 'c', 'y'] } }
    assert.deepEqual(merge(base, ours, theirs), { cart: { items: ['a', 'c', 'y', 'x'] } })
  })

  it('merges arrays edited in place item by item when no side changed their length', () => {
    const base = { lines: [{ sku: 'a', qty: 1 }, { sku: 'b', qty: 1 }] }
    const ours = clone(base)
    ours.lines[0].qty = 2
    const theirs = clone(base)
    theirs.lines[1].qty = 5
    assert.deepEqual(merge(base, ours, theirs), { lines: [{ sku: 'a', qty: 2 }, { sku: 'b', qty: 5 }] })
  })

  it('merges Maps per key and Sets per member', () => {
    const base = { m: new Map([['a', 1]]), s: new Set(['x']) }
    const ours = { m: new Map([['a', 1], ['b', 2]]), s: new Set(['x', 'o']) }
    const theirs = { m: new Map([['a', 9]]), s: new Set<string>(['t']) }
    const merged = merge(base, ours, theirs) as { m: Map<string, number>, s: Set<string> }
    assert.deepEqual([...merged.m].sort(), [['a', 9], ['b', 2]])
    assert.deepEqual([...merged.s].sort(), ['o', 't'])
  })

  it('on the same scalar changed by both, ours wins; a key deleted by ours stays deleted', () => {
    assert.deepEqual(merge({ a: 1, b: 1 }, { a: 2 }, { a: 3, b: 1 }), { a: 2 })
    assert.deepEqual(merge({ a: 1 }, { a: 1 }, {}), {}, 'deleted by theirs, untouched by ours: gone')
  })

  it('keys ours replaced with set() are taken whole, not merged', () => {
    const base = { same: { list: ['o'] } }
    const merged = merge(base, { same: { list: ['A'] } }, { same: { list: ['B'] } }, new Set(['same']))
    assert.deepEqual(merged, { same: { list: ['A'] } })
  })

  it('keeps Dates, nested undefined and the inputs untouched', () => {
    const when = new Date(0)
    const base = { at: when, x: { y: undefined as unknown } }
    const ours = { at: new Date(0), x: { y: 1 } }
    const theirs = { at: new Date(5), x: { y: undefined } }
    const frozen = JSON.stringify([base, ours, theirs])
    const merged = merge(base, ours, theirs) as { at: Date, x: { y: unknown } }
    assert.equal(merged.at.getTime(), 5)
    assert.equal(merged.x.y, 1)
    assert.equal(JSON.stringify([base, ours, theirs]), frozen)
  })

  it('a __proto__ data key is data, never a prototype', () => {
    const base = JSON.parse('{"__proto__":{"a":1}}')
    const ours = JSON.parse('{"__proto__":{"a":1},"k":1}')
    const theirs = JSON.parse('{"__proto__":{"a":2}}')
    const merged = merge(base, ours, theirs)
    assert.equal(Object.getPrototypeOf(merged), Object.prototype)
    assert.deepEqual(Object.getOwnPropertyDescriptor(merged, '__proto__')?.value, { a: 2 })
    assert.equal(merged.k, 1)
  })

  // Property: two concurrent edits of distinct items, applied in either order, keep both.
  const key = fc.constantFrom('a', 'b', 'c', 'd', 'e')
  const leaf = fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.boolean())
  const doc = fc.dictionary(key, fc.oneof(leaf, fc.dictionary(key, leaf, { maxKeys: 3, noNullPrototype: true }), fc.array(leaf, { maxLength: 3 })), { maxKeys: 4, noNullPrototype: true })
  type Edit = { kind: 'set', path: [string, string], value: unknown } | { kind: 'push', key: string, value: unknown }
  const edit: fc.Arbitrary<Edit> = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), path: fc.tuple(key, key), value: leaf }),
    fc.record({ kind: fc.constant('push' as const), key, value: leaf })
  )
  const apply = (data: Record<string, any>, e: Edit): Record<string, any> => {
    const copy = clone(data)
    if (e.kind === 'set') {
      const [outer, inner] = e.path
      if (typeof copy[outer] !== 'object' || copy[outer] === null || Array.isArray(copy[outer])) copy[outer] = {}
      copy[outer][inner] = e.value
    } else {
      if (!Array.isArray(copy[e.key])) copy[e.key] = []
      copy[e.key].push(e.value)
    }
    return copy
  }
  const touches = (e: Edit): string => e.kind === 'set' ? e.path[0] : e.key

  it('property: two edits of distinct items, merged in either order, keep both', () => {
    fc.assert(fc.property(doc, edit, edit, (base, e1, e2) => {
      fc.pre(touches(e1) !== touches(e2))
      const one = apply(base, e1)
      const two = apply(base, e2)
      const expected = apply(apply(base, e1), e2)
      // Request two saves onto what request one stored, and the other way round.
      assert.deepEqual(merge(base, two, one), expected)
      assert.deepEqual(merge(base, one, two), expected)
    }), { numRuns: 500 })
  })

  it('property: appends to one array by both sides are all kept, in either order', () => {
    fc.assert(fc.property(fc.array(leaf, { maxLength: 4 }), leaf, leaf, (items, x, y) => {
      const base = { list: items }
      const ours = { list: [...items, x] }
      const theirs = { list: [...items, y] }
      for (const merged of [merge(base, ours, theirs), merge(base, theirs, ours)]) {
        const list = (merged as { list: unknown[] }).list
        assert.equal(list.length, items.length + 2)
        assert.ok(list.includes(x) && list.includes(y))
      }
    }), { numRuns: 300 })
  })
})
