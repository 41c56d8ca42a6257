// Three-way merge of session data: `base` is what a request loaded, `ours` what it ends with,
// `theirs` the latest stored data (another request's save). What only one side changed is taken
// from that side, at any depth; plain objects and Maps merge per key, arrays and Sets keep the items
// both sides appended and drop the items either side removed; where both changed the same value,
// ours (this request's) wins. Pure: the inputs are never changed.

/** A key missing on one side. */
export const ABSENT: unique symbol = Symbol('quart-session.absent')
type Value = unknown

const MAX_DEPTH = 64

/**
 * The merged data (a plain object). `replaced`: top-level keys ours gave a whole new value (or
 * removed): they are taken from ours as they are, not merged.
 */
export function merge (base: Record<string, unknown>, ours: Record<string, unknown>, theirs: Record<string, unknown>, replaced?: ReadonlySet<string> | null): Record<string, unknown> {
  const merged = merge3(base, ours, theirs, 0) as Record<string, unknown>
  if (replaced == null) return merged
  const result = merged === theirs || merged === ours ? { ...merged } : merged
  for (const key of replaced) {
    if (Object.hasOwn(ours, key)) define(result, key, ours[key])
    else delete result[key]
  }
  return result
}

/** One value merged: `base`, `ours`, `theirs` may each be ABSENT (no such key); ABSENT out: remove the key. */
export function mergeValue (base: unknown, ours: unknown, theirs: unknown): unknown {
  return merge3(base, ours, theirs, 1)
}

export function define (object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
  else object[key] = value
}

function merge3 (base: Value, ours: Value, theirs: Value, depth: number): Value {
  if (equal(ours, base, 0)) return theirs
  if (equal(theirs, base, 0) || depth === MAX_DEPTH) return ours
  if (ours === ABSENT || theirs === ABSENT || base === ABSENT) {
    // Added on both sides (base absent): merge the two additions like edits of an empty value.
    if (base === ABSENT && ours !== ABSENT && theirs !== ABSENT) {
      const empty = emptyLike(ours)
      if (empty !== ABSENT) return merge3(empty, ours, theirs, depth + 1)
    }
    // Deleted by ours and changed by theirs, or the other way round: ours wins.
    return ours
  }
  if (isPlain(ours) && isPlain(theirs)) return mergeObjects(isPlain(base) ? base : {}, ours, theirs, depth)
  if (Array.isArray(ours) && Array.isArray(theirs)) return mergeArrays(Array.isArray(base) ? base : [], ours, theirs, depth)
  if (ours instanceof Map && theirs instanceof Map) return mergeMaps(base instanceof Map ? base : new Map(), ours, theirs, depth)
  if (ours instanceof Set && theirs instanceof Set) return mergeSets(base instanceof Set ? base : new Set(), ours, theirs)
  return ours
}

function emptyLike (value: Value): Value {
  if (isPlain(value)) return {}
  if (Array.isArray(value)) return []
  if (value instanceof Map) return new Map()
  if (value instanceof Set) return new Set()
  return ABSENT
}

function mergeObjects (base: Record<string, unknown>, ours: Record<string, unknown>, theirs: Record<string, unknown>, depth: number): Record<string, unknown> {
  const merged: Record<string, unknown> = Object.getPrototypeOf(theirs) === null ? Object.create(null) : {}
  const put = (key: string): void => {
    const value = merge3(own(base, key), own(ours, key), own(theirs, key), depth + 1)
    if (value !== ABSENT) define(merged, key, value)
  }
  for (const key of Object.keys(theirs)) put(key)
  for (const key of Object.keys(ours)) if (!Object.hasOwn(theirs, key)) put(key)
  // Keys in base only: deleted by both, or by one side while the other left them: gone either way.
  return merged
}

function mergeMaps (base: Map<unknown, unknown>, ours: Map<unknown, unknown>, theirs: Map<unknown, unknown>, depth: number): Map<unknown, unknown> {
  const baseByKey = byCanon(base)
  const oursByKey = byCanon(ours)
  const theirsByKey = byCanon(theirs)
  const merged = new Map<unknown, unknown>()
  const put = (canonKey: string, key: unknown): void => {
    const b = baseByKey.has(canonKey) ? base.get(baseByKey.get(canonKey)) : ABSENT
    const o = oursByKey.has(canonKey) ? ours.get(oursByKey.get(canonKey)) : ABSENT
    const t = theirsByKey.has(canonKey) ? theirs.get(theirsByKey.get(canonKey)) : ABSENT
    const value = merge3(b, o, t, depth + 1)
    if (value !== ABSENT) merged.set(key, value)
  }
  for (const [canonKey, key] of theirsByKey) put(canonKey, key)
  for (const [canonKey, key] of oursByKey) if (!theirsByKey.has(canonKey)) put(canonKey, key)
  return merged
}

function byCanon (map: Map<unknown, unknown>): Map<string, unknown> {
  const keys = new Map<string, unknown>()
  for (const key of map.keys()) keys.set(canon(key), key)
  return keys
}

function mergeArrays (base: unknown[], ours: unknown[], theirs: unknown[], depth: number): unknown[] {
  // Same length everywhere: edits in place (items[0].qty++), merged item by item.
  if (base.length === ours.length && base.length === theirs.length) {
    return ours.map((item, i) => merge3(i in base ? base[i] : ABSENT, item, theirs[i], depth + 1))
  }
  // Otherwise a list of items: theirs, less what ours removed, plus what ours appended.
  const { removed, added } = diff(base, ours)
  const merged: unknown[] = []
  for (const item of theirs) {
    const key = canon(item)
    const count = removed.get(key)
    if (count !== undefined && count > 0) {
      removed.set(key, count - 1)
      continue
    }
    merged.push(item)
  }
  for (const item of added) merged.push(item)
  return merged
}

function mergeSets (base: Set<unknown>, ours: Set<unknown>, theirs: Set<unknown>): Set<unknown> {
  const { removed, added } = diff([...base], [...ours])
  const merged = new Set<unknown>()
  const seen = new Set<string>()
  for (const item of theirs) {
    const key = canon(item)
    if ((removed.get(key) ?? 0) > 0) continue
    seen.add(key)
    merged.add(item)
  }
  for (const item of added) {
    const key = canon(item)
    if (seen.has(key)) continue
    seen.add(key)
    merged.add(item)
  }
  return merged
}

/** Multiset difference: items of base that ours lacks (counted), items of ours that base lacks (in order). */
function diff (base: unknown[], ours: unknown[]): { removed: Map<string, number>, added: unknown[] } {
  const remaining = new Map<string, number>()
  for (const item of base) {
    const key = canon(item)
    remaining.set(key, (remaining.get(key) ?? 0) + 1)
  }
  const added: unknown[] = []
  for (const item of ours) {
    const key = canon(item)
    const count = remaining.get(key)
    if (count !== undefined && count > 0) remaining.set(key, count - 1)
    else added.push(item)
  }
  return { removed: remaining, added }
}

function own (object: Record<string, unknown>, key: string): Value {
  return Object.hasOwn(object, key) ? object[key] : ABSENT
}

function isPlain (value: Value): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** Deep equality of session values (plain data, Date, Map, Set, RegExp, URL, typed arrays); other objects by identity. */
export function equal (a: Value, b: Value, depth: number): boolean {
  if (Object.is(a, b)) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (depth === MAX_DEPTH) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) {
      if ((i in a) !== (i in b) || !equal(a[i], b[i], depth + 1)) return false
    }
    return true
  }
  if (Array.isArray(b)) return false
  const proto = Object.getPrototypeOf(a)
  if (proto !== Object.getPrototypeOf(b)) return false
  if (proto === Object.prototype || proto === null) {
    const keys = Object.keys(a)
    if (keys.length !== Object.keys(b).length) return false
    for (const key of keys) {
      if (!Object.hasOwn(b, key) || !equal((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], depth + 1)) return false
    }
    return true
  }
  if (a instanceof Date) return a.getTime() === (b as Date).getTime() || (Number.isNaN(a.getTime()) && Number.isNaN((b as Date).getTime()))
  if (a instanceof RegExp || a instanceof URL) return String(a) === String(b)
  if (a instanceof Map) {
    const other = b as Map<unknown, unknown>
    if (a.size !== other.size) return false
    const keys = byCanon(other)
    for (const [key, value] of a) {
      const k = canon(key)
      if (!keys.has(k) || !equal(value, other.get(keys.get(k)), depth + 1)) return false
    }
    return true
  }
  if (a instanceof Set) {
    const other = b as Set<unknown>
    if (a.size !== other.size) return false
    const keys = new Set<string>()
    for (const item of other) keys.add(canon(item))
    for (const item of a) if (!keys.has(canon(item))) return false
    return true
  }
  if (ArrayBuffer.isView(a)) {
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
    const y = new Uint8Array((b as ArrayBufferView).buffer, (b as ArrayBufferView).byteOffset, (b as ArrayBufferView).byteLength)
    return x.length === y.length && x.every((byte, i) => byte === y[i])
  }
  return false
}

const identities = new WeakMap<object, number>()
let nextIdentity = 0

/** A text that two deep-equal values share and unequal ones do not: items of lists and Sets, Map keys. */
export function canon (value: Value, depth = 0): string {
  switch (typeof value) {
    case 'string': return 's' + JSON.stringify(value)
    case 'number': return Object.is(value, -0) ? 'n-0' : 'n' + String(value)
    case 'bigint': return 'b' + String(value)
    case 'boolean': return value ? 't' : 'f'
    case 'undefined': return 'u'
    case 'symbol': return 'y' + String(value.description)
    case 'function': return 'i' + identity(value)
  }
  if (value === null) return 'z'
  return canonObject(value as object, depth)
}

function canonObject (value: object, depth: number): string {
  if (depth === MAX_DEPTH) return 'i' + identity(value)
  if (Array.isArray(value)) {
    let text = '['
    for (let i = 0; i < value.length; i++) text += (i in value ? canon(value[i], depth + 1) : '~') + ','
    return text + ']'
  }
  const proto = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) {
    const keys = Object.keys(value).sort()
    let text = '{'
    for (const key of keys) text += JSON.stringify(key) + ':' + canon((value as Record<string, unknown>)[key], depth + 1) + ','
    return text + '}'
  }
  if (value instanceof Date) return 'd' + String(value.getTime())
  if (value instanceof RegExp || value instanceof URL) return 'r' + String(value)
  if (value instanceof Map) return 'M' + [...value].map(([k, v]) => canon(k, depth + 1) + '=>' + canon(v, depth + 1)).sort().join(',')
  if (value instanceof Set) return 'S' + [...value].map((v) => canon(v, depth + 1)).sort().join(',')
  if (ArrayBuffer.isView(value)) return 'a' + value.constructor.name + Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
  return 'i' + identity(value)
}

function identity (value: object): number {
  let id = identities.get(value)
  if (id === undefined) {
    id = nextIdentity++
    identities.set(value, id)
  }
  return id
}
