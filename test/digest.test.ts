// The hand-assembled HMAC (lib/digest.ts) and the cookie signer built on it must give exactly what
// node:crypto and @fastify/cookie give: cookies signed by either verify with the other, and a
// rotation keeps its meaning. Properties over any secret and message, including non-ASCII text,
// lone surrogates and secrets longer than SHA-256's 64-byte block.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import fc from 'fast-check'
import { Signer } from '@fastify/cookie'
import { hmacSha256, sha256 } from '../lib/digest.js'
import { CookieSigner } from '../lib/signing.js'
import { generateId } from '../lib/id.js'

const text = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 120 }), fc.string({ unit: 'grapheme', maxLength: 40 }))
const secret = fc.oneof(fc.string({ minLength: 1, maxLength: 100 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 90 }))

describe('HMAC-SHA256 of lib/digest.ts', () => {
  it('equals createHmac for any secret and message, call after call (the buffers are reused)', () => {
    fc.assert(fc.property(secret, fc.array(text, { minLength: 1, maxLength: 6 }), fc.constantFrom('base64' as const, 'base64url' as const, 'hex' as const), (key, messages, encoding) => {
      const mac = hmacSha256(key)
      for (const message of messages) {
        assert.equal(mac(message, encoding), createHmac('sha256', key).update(message).digest(encoding))
      }
    }), { numRuns: 400 })
  })

  it('the RFC 4231 test vectors (key longer than the block, text longer than the buffer)', () => {
    // Test case 2 and 6 of RFC 4231 (HMAC-SHA256).
    assert.equal(hmacSha256('Jefe')('what do ya want for nothing?', 'hex'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843')
    const longKey = '\xaa'.repeat(131)
    assert.equal(createHmac('sha256', Buffer.from(longKey, 'utf8')).update('Test Using Larger Than Block-Size Key - Hash Key First').digest('hex'),
      hmacSha256(longKey)('Test Using Larger Than Block-Size Key - Hash Key First', 'hex'))
    const long = 'x'.repeat(10_000) + '\u{1F600}'.repeat(500)
    assert.equal(hmacSha256('k')(long, 'base64'), createHmac('sha256', 'k').update(long).digest('base64'))
    assert.equal(hmacSha256('k')('short again', 'base64'), createHmac('sha256', 'k').update('short again').digest('base64'))
  })

  it('sha256 equals createHash', () => {
    fc.assert(fc.property(text, (value) => {
      assert.equal(sha256(value, 'base64url'), createHash('sha256').update(value).digest('base64url'))
    }), { numRuns: 200 })
  })

})

describe('the cookie signer', () => {
  it('signs exactly as @fastify/cookie', () => {
    fc.assert(fc.property(secret, fc.oneof(text, fc.constant(generateId())), (key, value) => {
      assert.equal(new CookieSigner([key]).sign(value), new Signer([key], 'sha256').sign(value))
    }), { numRuns: 300 })
  })

  it('verifies exactly as @fastify/cookie: valid, tampered and made-up values, with a rotation', () => {
    const signed = fc.tuple(secret, text).map(([key, value]) => new Signer([key], 'sha256').sign(value))
    const tampered = fc.tuple(signed, fc.nat(), fc.string({ minLength: 1, maxLength: 2 })).map(([value, at, insert]) => {
      const i = at % (value.length + 1)
      return value.slice(0, i) + insert + value.slice(i + 1)
    })
    fc.assert(fc.property(fc.array(secret, { minLength: 1, maxLength: 3 }), fc.oneof(signed, tampered, text), (secrets, value) => {
      const theirs = new Signer(secrets, 'sha256').unsign(value)
      const ours = new CookieSigner(secrets)
      const id = ours.verify(value)
      assert.equal(id, theirs.valid ? theirs.value : undefined)
      assert.equal(ours.renew, theirs.renew)
    }), { numRuns: 400 })
    // Values the secrets did sign, through each position of the rotation.
    fc.assert(fc.property(fc.uniqueArray(secret, { minLength: 2, maxLength: 3 }), fc.nat(), text, (secrets, pick, value) => {
      const by = secrets[pick % secrets.length]
      const cookie = new Signer([by], 'sha256').sign(value)
      const theirs = new Signer(secrets, 'sha256').unsign(cookie)
      const ours = new CookieSigner(secrets)
      assert.equal(ours.verify(cookie), theirs.value)
      assert.equal(ours.renew, theirs.renew)
      assert.equal(ours.renew, by !== secrets[0])
    }), { numRuns: 200 })
  })
})
