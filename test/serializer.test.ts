// The default serializer writes plain data itself (lib/serializer.ts stringifyPlain) and must
// write exactly devalue's text: other programs and earlier versions read the records with devalue,
// and a compare-and-set compares the text.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { parse, stringify } from 'devalue'
import { stringifyPlain } from '../lib/serializer.js'

// Every UTF-16 code unit, lone surrogates, quotes, `<` and line separators included.
const anyText = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength: 12 })
const trickyText = fc.constantFrom('', '__proto__', 'constructor', 'then', '<script>', '\u2028', '"', '\\', '\ud800', '0', '-1', 'a'.repeat(70))
const key = fc.oneof(anyText, trickyText)
const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1e21, 5e-324))

/** The same outcome from both: the same text, or an error with the same message. Returns the text. */
function sameAsDevalue (value: unknown): string | undefined {
  let expected: string | Error
  try {
    expected = stringify(value)
  } catch (error) {
    expected = error as Error
  }
  if (typeof expected === 'string') {
    assert.equal(stringifyPlain(value), expected)
    return expected
  }
  assert.throws(() => stringifyPlain(value), { message: expected.message })
  return undefined
}

describe('stringifyPlain writes devalue\'s text', () => {
  it('for generated plain data, in a session record', () => {
    const plain = fc.anything({ key, values: [anyText, trickyText, number, fc.boolean(), fc.constant(null), fc.constant(undefined)], maxDepth: 4 })
    fc.assert(fc.property(plain, fc.integer({ min: 0, max: 2 ** 31 }), (data, created) => {
      const record = { data: { value: data }, created, touched: created }
      const text = sameAsDevalue(record)
      if (text !== undefined) assert.deepEqual(parse(text), record)
    }), { numRuns: 2000 })
  })

  it('for generated values of every kind devalue writes (Date, Map, Set, BigInt, typed arrays, null prototypes, sparse arrays, boxed values)', () => {
    const rich = fc.anything({
      key,
      maxDepth: 3,
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true
    })
    fc.assert(fc.property(rich, (value) => { sameAsDevalue({ data: { value } }) }), { numRuns: 2000 })
  })

  it('for repeated values: shared objects, cycles, and more distinct values than the scan holds', () => {
    const shared = { id: 7 }
    const cyclic: Record<string, unknown> = { name: 'loop' }
    cyclic.self = cyclic
    const many = Array.from({ length: 40 }, (_, i) => i % 25)
    const strings = Array.from({ length: 40 }, (_, i) => `s${i % 30}`)
    for (const value of [
      { a: shared, b: shared, list: [shared, shared] },
      cyclic,
      { many, strings, again: many },
      { created: 1796000000, touched: 1796000000 },
      [undefined, null, -0, 0, NaN, Infinity, -Infinity, true, false, 'true', 1, '1'],
      'just a string',
      undefined,
      -0,
      42
    ]) sameAsDevalue(value)
  })

  it('for what devalue refuses: the same error', () => {
    class User { name = 'x' }
    const withSymbol = { [Symbol('s')]: 1 }
    const withProto = JSON.parse('{"__proto__": 1}') as object
    const taggedArray = Object.assign([1, 2], { [Symbol.toStringTag]: 'Thing' })
    for (const value of [{ data: { f: () => 1 } }, { data: new User() }, { data: withSymbol }, { data: withProto }, { data: Symbol('x') }, { then () {} }, { data: Promise.resolve(1) }, { data: taggedArray }]) {
      sameAsDevalue(value)
    }
  })
})
