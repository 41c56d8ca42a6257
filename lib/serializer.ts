import { parse, stringify } from 'devalue'

/** Turns a session record into text for the backend and back. */
export interface Serializer {
  stringify (value: unknown): string
  parse (text: string): unknown
}

/**
 * devalue: Date, Map, Set, BigInt, RegExp, URL, typed arrays, undefined, repeated and cyclic
 * references survive the round trip, which JSON loses silently. Writing goes through
 * `stringifyPlain` first, which makes devalue's text itself for plain data.
 */
export const devalueSerializer: Serializer = { stringify: stringifyPlain, parse }

// devalue's codes for values that have no entry of their own (devalue/src/constants.js).
const UNDEFINED = -1
const NAN = -3
const POSITIVE_INFINITY = -4
const NEGATIVE_INFINITY = -5
const NEGATIVE_ZERO = -6

/** Thrown inside the walk when the value holds something only devalue knows how to write. */
const NOT_PLAIN: unknown = Object.freeze({ notPlain: true })

// Repeated values are found by a scan of the ones seen up to this many, then through a Map.
const SCAN_MAX = 16

// Characters devalue's stringify_string escapes (devalue/src/utils.js), and the ones of those
// that JSON.stringify leaves raw.
const NEEDS_ESCAPE = /["<\\\u0000-\u001f\u2028\u2029]/
const JSON_LEAVES_RAW = /[<\u2028\u2029]/g
const RAW_ESCAPES: Record<string, string> = { '<': '\\u003C', '\u2028': '\\u2028', '\u2029': '\\u2029' }
const escapeRaw = (char: string): string => RAW_ESCAPES[char]

// String.prototype.isWellFormed is ES2024 (in Node since 20); the project compiles against ES2022.
type Text = string & { isWellFormed: () => boolean }

function quote (text: string): string {
  if (!NEEDS_ESCAPE.test(text) && (text as Text).isWellFormed()) return `"${text}"`
  return JSON.stringify(text).replace(JSON_LEAVES_RAW, escapeRaw)
}

// Property names repeat on every write (data, created, user…): their quoted form is kept, bounded
// as devalue bounds its own.
const QUOTED_KEYS_MAX = 1024
const QUOTED_KEY_LENGTH_MAX = 64
const quotedKeys = new Map<string, string>()
function quoteKey (key: string): string {
  if (key.length > QUOTED_KEY_LENGTH_MAX) return quote(key)
  let quoted = quotedKeys.get(key)
  if (quoted === undefined) {
    if (quotedKeys.size >= QUOTED_KEYS_MAX) quotedKeys.clear()
    quoted = quote(key)
    quotedKeys.set(key, quoted)
  }
  return quoted
}

/**
 * One walk: devalue's flattened form, an entry per distinct value in the order they are first
 * met, objects pointing at their members by index. `seen[i]` is the value of entry i; past
 * SCAN_MAX of them, `indexes` finds them instead of a scan.
 */
interface Walk {
  entries: string[]
  seen: unknown[]
  indexes: Map<unknown, number> | undefined
}

function flatten (walk: Walk, thing: unknown): number {
  if (thing === undefined) return UNDEFINED
  const type = typeof thing
  if (type === 'number') {
    const number = thing as number
    if (Number.isNaN(number)) return NAN
    if (number === Infinity) return POSITIVE_INFINITY
    if (number === -Infinity) return NEGATIVE_INFINITY
    if (number === 0 && 1 / number < 0) return NEGATIVE_ZERO
  }
  // What remains compares under === as devalue's Map compares it (SameValueZero).
  const seen = walk.seen
  const indexes = walk.indexes
  if (indexes === undefined) {
    for (let i = 0; i < seen.length; i++) if (seen[i] === thing) return i
  } else {
    const known = indexes.get(thing)
    if (known !== undefined) return known
  }
  const index = seen.length
  seen.push(thing)
  if (indexes !== undefined) indexes.set(thing, index)
  else if (index === SCAN_MAX) walk.indexes = new Map(seen.map((value, i) => [value, i]))
  const entries = walk.entries
  if (type === 'string') {
    entries[index] = quote(thing as string)
  } else if (type === 'number' || type === 'boolean' || thing === null) {
    entries[index] = String(thing)
  } else if (type !== 'object') {
    // bigint, function, symbol: devalue writes the first and names the error of the others.
    throw NOT_PLAIN
  } else {
    // Filled before its members fill the entries after it, so the array never has a hole (V8 keeps it packed).
    entries[index] = ''
    entries[index] = Array.isArray(thing) ? flattenArray(walk, thing) : flattenObject(walk, thing as Record<string, unknown>)
  }
  return index
}

function flattenArray (walk: Walk, array: unknown[]): string {
  // An own symbol could be a Symbol.toStringTag, which makes devalue see something else.
  if (Object.getPrototypeOf(array) !== Array.prototype || Object.getOwnPropertySymbols(array).length > 0 || typeof (array as { then?: unknown }).then === 'function') throw NOT_PLAIN
  let text = '['
  for (let i = 0; i < array.length; i++) {
    // Holes: devalue chooses between two encodings of them.
    if (!Object.hasOwn(array, i)) throw NOT_PLAIN
    if (i > 0) text += ','
    text += flatten(walk, array[i])
  }
  return text + ']'
}

function flattenObject (walk: Walk, object: Record<string, unknown>): string {
  // Only plain objects: the rest (Date, Map, class instances, null prototypes, thenables) is devalue's.
  if (Object.getPrototypeOf(object) !== Object.prototype || Object.getOwnPropertySymbols(object).length > 0 || typeof object.then === 'function') throw NOT_PLAIN
  const keys = Object.keys(object)
  let text = '{'
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]
    if (key === '__proto__') throw NOT_PLAIN
    if (i > 0) text += ','
    text += quoteKey(key) + ':' + flatten(walk, object[key])
  }
  return text + '}'
}

/**
 * devalue's `stringify`, the same text byte for byte, for values made of plain objects, dense
 * arrays, strings, numbers, booleans, null and undefined (what sessions hold nearly always), in
 * about two thirds of devalue's time (0.85 against 1.25 µs for a /write record on Node 20): it
 * skips the work devalue does for every value to find out what it is (a type tag string, a
 * prototype walk, an error path). Any other value, anywhere in
 * the data, sends the whole value to devalue, which writes it or names the error. test/serializer
 * compares the two on generated values.
 */
export function stringifyPlain (value: unknown): string {
  const walk: Walk = { entries: [], seen: [], indexes: undefined }
  let index: number
  try {
    index = flatten(walk, value)
  } catch (error) {
    if (error === NOT_PLAIN) return stringify(value)
    throw error
  }
  return index < 0 ? String(index) : `[${walk.entries.join(',')}]`
}
