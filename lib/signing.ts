import { Signer } from '@fastify/cookie'
import { Recency } from './recency.js'

/** How many verified cookie values are remembered. */
const CACHE_SIZE = 2048

/**
 * Signs session ids and verifies signed cookie values (HMAC-SHA256 through @fastify/cookie's
 * timing-safe signer). A returning client sends the same signed value on every request, so the
 * values that verified recently are remembered: a Map lookup instead of an HMAC per request.
 * Only values that verified against the current secret are kept, so the cache can never accept
 * anything the signer would refuse.
 */
export class CookieSigner {
  readonly #signer: InstanceType<typeof Signer>
  readonly #verified = new Recency<string>()
  /** Whether the last `verify` matched an older secret of a rotation (re-issue the cookie). */
  renew = false

  constructor (secrets: string[]) {
    this.#signer = new Signer(secrets, 'sha256')
  }

  sign (id: string): string {
    return this.#signer.sign(id)
  }

  /** The id a signed cookie value carries, or undefined when the signature does not verify. */
  verify (value: string): string | undefined {
    const cached = this.#verified.get(value)
    if (cached !== undefined) {
      this.renew = false
      return cached
    }
    const result = this.#signer.unsign(value)
    this.renew = result.renew
    if (!result.valid) return undefined
    const id = result.value as string
    if (!result.renew) {
      const verified = this.#verified
      // Oldest first out (lib/recency.ts: O(1), where a Map walks the holes of its evictions).
      if (verified.size >= CACHE_SIZE) verified.delete(verified.oldest() as string)
      verified.set(value, id)
    }
    return id
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
