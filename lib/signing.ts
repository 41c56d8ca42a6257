import { timingSafeEqual } from 'node:crypto'
import { hmacSha256 } from './digest.js'
import { Recency } from './recency.js'

/** How many verified cookie values are remembered. */
const CACHE_SIZE = 2048

/** Length of an HMAC-SHA256 in base64 without its one padding `=`. */
const SIGNATURE_LENGTH = 43

/**
 * Signs session ids and verifies signed cookie values, in @fastify/cookie's format and with its
 * rules (`value.base64(HMAC-SHA256(value))` without padding; the signature compared in constant
 * time, each secret in turn; `renew` when an older one matched), so cookies signed by either
 * verify with the other. The HMAC is lib/digest.ts's, twice as fast as the createHmac the signer
 * calls. A returning client sends the same signed value on every request, so the values that
 * verified recently are remembered: a Map lookup instead of an HMAC per request. Only values that
 * verified against the current secret are kept, so the cache can never accept anything the
 * signer would refuse.
 */
export class CookieSigner {
  readonly #secrets: string[]
  readonly #macs: Array<(message: string, encoding: 'base64') => string>
  readonly #verified = new Recency<string>()
  /** Which signed values `verify` hands back (an id of the plugin's shape): checked once per cached value. */
  readonly #accept: (value: string) => boolean
  /** Whether the last `verify` matched an older secret of a rotation (re-issue the cookie). */
  renew = false

  constructor (secrets: string[], accept: (value: string) => boolean = () => true) {
    this.#secrets = secrets
    this.#macs = secrets.map((secret) => hmacSha256(secret))
    this.#accept = accept
  }

  sign (id: string): string {
    return id + '.' + this.#macs[0](id, 'base64').slice(0, SIGNATURE_LENGTH)
  }

  /**
   * The id a signed cookie value carries, or undefined when the signature does not verify or the
   * id is not one `accept` takes. A remembered value was accepted when it was first verified, so
   * a returning client costs one lookup, not a lookup and a pattern test.
   */
  verify (value: string): string | undefined {
    const cached = this.#verified.get(value)
    if (cached !== undefined) {
      this.renew = false
      return cached
    }
    const id = this.#unsign(value)
    if (id === undefined || !this.#accept(id)) return undefined
    if (!this.renew) {
      const verified = this.#verified
      // Oldest first out (lib/recency.ts: O(1), where a Map walks the holes of its evictions).
      if (verified.size >= CACHE_SIZE) verified.dropOldest()
      verified.set(value, id)
    }
    return id
  }

  /** The value before the last dot when the signature after it is one of our secrets' (sets `renew`). */
  #unsign (signed: string): string | undefined {
    this.renew = false
    const dot = signed.lastIndexOf('.')
    if (dot === -1 || dot === signed.length - 1) return undefined
    const value = signed.slice(0, dot)
    const actual = Buffer.from(signed.slice(dot + 1))
    // Every expected signature is this long: anything else cannot match (no HMAC spent on it).
    if (actual.length !== SIGNATURE_LENGTH) return undefined
    const secrets = this.#secrets
    for (let i = 0; i < secrets.length; i++) {
      const expected = Buffer.from(this.#macs[i](value, 'base64').slice(0, SIGNATURE_LENGTH))
      if (timingSafeEqual(expected, actual)) {
        this.renew = secrets[i] !== secrets[0]
        return value
      }
    }
    return undefined
  }
}

/**
 * The value of cookie `name=` in a Cookie header, for apps that registered @fastify/cookie with
 * `hook: false` (then `request.cookies` is not filled): one scan, no object of all cookies.
 */
export function readCookie (header: string | undefined, needle: string): string | undefined {
  if (header === undefined) return undefined
  let from = 0
  while (true) {
    const at = header.indexOf(needle, from)
    if (at === -1) return undefined
    const before = at === 0 ? 59 : header.charCodeAt(at - 1)
    if (before === 59 || before === 32 || before === 9) {
      const start = at + needle.length
      let end = header.indexOf(';', start)
      if (end === -1) end = header.length
      let value = header.slice(start, end).trim()
      if (value.length > 1 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34) value = value.slice(1, -1)
      if (value.includes('%')) {
        try { value = decodeURIComponent(value) } catch { /* keep it raw, as @fastify/cookie does */ }
      }
      return value
    }
    from = at + 1
  }
}
