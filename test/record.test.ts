// The record codec on its own: what is stored, what is compared, the size limit, foreign text,
// and the parse cache handing out copies nobody else holds.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { RecordCodec, type RecordCipher } from '../lib/record.js'
import { devalueSerializer } from '../lib/serializer.js'
import { Lifetime } from '../lib/lifetime.js'

const KEY = 'session:abc'

describe('record codec', () => {
  it('round-trips a record through the serializer; stored and compared text are the same without a cipher', () => {
    const codec = new RecordCodec(devalueSerializer, 1024 * 1024)
    const record = { data: { when: new Date(0), tags: new Set(['a']) }, created: 1, touched: 2 }
    const encoded = codec.encode(record, KEY)
    assert.equal(encoded.stored, encoded.plain)
    const decoded = codec.open(encoded.stored, KEY)
    assert.equal((decoded.record.data.when as Date).getTime(), 0)
    assert.deepEqual([...(decoded.record.data.tags as Set<string>)], ['a'])
    assert.equal(decoded.plain, encoded.plain)
  })

  it('the parse cache hands out copies: mutating one read never shows in the next', () => {
    const codec = new RecordCodec(devalueSerializer, 1024 * 1024)
    const text = codec.encode({ data: { cart: { items: [1] } }, created: 1, touched: 1 }, KEY).stored
    const first = codec.open(text, KEY)
    ;(first.record.data.cart as { items: number[] }).items.push(2)
    assert.deepEqual(codec.open(text, KEY).record.data, { cart: { items: [1] } })
  })

  it('the parse cache is per store key and checked by text: a changed record is parsed again, a written one is not', () => {
    let parses = 0
    const counting = { stringify: devalueSerializer.stringify, parse: (text: string) => { parses++; return devalueSerializer.parse(text) } }
    const codec = new RecordCodec(counting, 1024 * 1024)
    const one = codec.encode({ data: { n: 1 }, touched: 1 }, KEY).stored
    const two = codec.encode({ data: { n: 2 }, touched: 1 }, KEY).stored
    // A text read from a backend is a new string each time, equal in content.
    const fresh = (text: string): string => Buffer.from(text).toString()
    assert.deepEqual(codec.open(fresh(one), KEY).record.data, { n: 1 })
    assert.deepEqual(codec.open(fresh(one), KEY).record.data, { n: 1 })
    assert.equal(parses, 1)
    // Another record under the key: never the one cached before.
    assert.deepEqual(codec.open(fresh(two), KEY).record.data, { n: 2 })
    assert.equal(parses, 2)
    // The text before it stays known (a read of a hot session answered before a write landed).
    assert.deepEqual(codec.open(fresh(one), KEY).record.data, { n: 1 })
    assert.deepEqual(codec.open(fresh(two), KEY).record.data, { n: 2 })
    assert.equal(parses, 2)
    // Two texts per key: a third pushes the oldest out.
    const three = codec.encode({ data: { n: 3 }, touched: 1 }, KEY).stored
    assert.deepEqual(codec.open(fresh(three), KEY).record.data, { n: 3 })
    assert.deepEqual(codec.open(fresh(one), KEY).record.data, { n: 1 })
    assert.equal(parses, 4)
    // The same text under another key has an entry of its own.
    assert.deepEqual(codec.open(fresh(one), 'session:other').record.data, { n: 1 })
    assert.equal(parses, 5)
    // What this process wrote is read back without parsing, and a later change of it does not show.
    const record = { data: { cart: { items: ['a'] } }, touched: 2 }
    const written = codec.encode(record, KEY)
    codec.remember(KEY, written, record)
    record.data.cart.items.push('changed after the write')
    assert.deepEqual(codec.open(fresh(written.stored), KEY).record.data, { cart: { items: ['a'] } })
    assert.equal(parses, 5)
    // A record too long to keep replaces nothing stale: the next read of the key parses.
    const long = { data: { big: 'x'.repeat(5000) }, touched: 3 }
    codec.remember(KEY, codec.encode(long, KEY), long)
    assert.deepEqual(codec.open(fresh(written.stored), KEY).record.data, { cart: { items: ['a'] } })
    assert.equal(parses, 6)
  })

  it('a JSON serializer and a "__proto__" data key: every read, cached or not, gives the data back as data', () => {
    const codec = new RecordCodec(JSON, 1024 * 1024)
    const text = '{"data":{"__proto__":{"admin":true},"n":1},"created":1,"touched":1}'
    for (let i = 0; i < 3; i++) {
      const { data } = codec.open(text, KEY).record
      assert.equal(typeof data, 'object', `read ${i}`)
      assert.equal(Object.getPrototypeOf(data), Object.prototype)
      assert.equal(data.n, 1)
      assert.deepEqual(Object.getOwnPropertyDescriptor(data, '__proto__')?.value, { admin: true })
      assert.equal(({} as Record<string, unknown>).admin, undefined, 'Object.prototype untouched')
    }
  })

  it('refuses text that is no record, or larger than maxRecordBytes, without quoting it', () => {
    const codec = new RecordCodec(devalueSerializer, 64)
    for (const text of ['sk_live_51secretsecret', '[1]', devalueSerializer.stringify({ data: [] })]) {
      assert.throws(() => codec.open(text, KEY), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FST_QUART_SESSION_CORRUPT_RECORD')
        assert.ok(!err.message.includes('sk_live'), err.message)
        return true
      })
    }
    assert.throws(() => codec.open('x'.repeat(65), KEY), /larger than maxRecordBytes/)
    assert.throws(() => codec.encode({ data: { big: 'x'.repeat(100) } }, KEY), (err: Error & { code?: string }) => err.code === 'FST_QUART_SESSION_VALUE_TOO_LARGE')
  })

  it('with a cipher, the stored text differs from what is compared, and the cipher sees the store key', () => {
    const seen: string[] = []
    const cipher: RecordCipher = {
      seal: (plain, key) => { seen.push(key); return Buffer.from(plain).toString('base64') + '.' + String(Math.random()) },
      open: (stored, key) => { seen.push(key); return Buffer.from(stored.split('.')[0], 'base64').toString() }
    }
    const codec = new RecordCodec(devalueSerializer, 1024 * 1024, cipher)
    const a = codec.encode({ data: { n: 1 } }, KEY)
    const b = codec.encode({ data: { n: 1 } }, KEY)
    assert.notEqual(a.stored, b.stored, 'a random nonce changes the stored text')
    assert.equal(a.plain, b.plain, 'what change detection compares stays the same')
    assert.deepEqual(codec.open(a.stored, KEY).record.data, { n: 1 })
    assert.deepEqual(seen, [KEY, KEY, KEY])
  })
})

describe('lifetime', () => {
  it('a record is expired maxAge (or its own maxAge) after its last write, and absoluteMaxAge after creation', () => {
    const lifetime = new Lifetime(10, true, 100)
    assert.equal(lifetime.expired({ data: {}, created: 0, touched: 50 }, 59), false)
    assert.equal(lifetime.expired({ data: {}, created: 0, touched: 50 }, 60), true)
    assert.equal(lifetime.expired({ data: {}, created: 0, touched: 50, cookie: { maxAge: 30 } }, 79), false)
    assert.equal(lifetime.expired({ data: {}, created: 0, touched: 95 }, 100), true, 'absoluteMaxAge')
    assert.equal(lifetime.expired({ data: {} }, 1e12), false, 'records without times are left to the store')
  })

  it('the TTL never passes absoluteMaxAge; a refresh is due once per lifetime / 10', () => {
    const lifetime = new Lifetime(100, true, 30)
    assert.equal(lifetime.ttl({ created: 0, touched: 0, cookieOptions: undefined }, 0, 0), 30)
    assert.equal(lifetime.refreshDue({ created: 0, touched: 0, cookieOptions: undefined }, 9), false)
    assert.equal(lifetime.refreshDue({ created: 0, touched: 0, cookieOptions: undefined }, 10), true)
    assert.equal(new Lifetime(100, false, 0).refreshDue({ created: 0, touched: 0, cookieOptions: undefined }, 1000), false)
  })
})
