import type { FastifyRequest } from 'fastify'
import { Recency } from './recency.js'
import { hmacSha256 } from './digest.js'

/** Stored as the pin when the address could not be told: it matches no address, ever. */
const UNKNOWN = '!unknown'
const PIN_CACHE_SIZE = 4096

/**
 * Session protection: a session is pinned to a keyed hash of the client address, so a stolen
 * cookie replayed from elsewhere is worthless and a leaked record reveals no address.
 */
export class AddressPin {
  readonly #macs: Array<(message: string, encoding: 'base64url') => string>
  readonly #reverseProxy: boolean
  // A client comes back with the same address: remember its pin rather than hash per request.
  readonly #pins = new Recency<string>()

  constructor (secrets: string[], reverseProxy: boolean) {
    this.#macs = secrets.map((secret) => hmacSha256(secret))
    this.#reverseProxy = reverseProxy
  }

  /** The client address, or undefined when it cannot be told. */
  address (request: FastifyRequest): string | undefined {
    if (this.#reverseProxy) {
      const forwarded = request.headers['x-forwarded-for']
      if (typeof forwarded === 'string') {
        // A proxy appends the peer it saw; anything left of that came from the client and proves nothing.
        const address = forwarded.slice(forwarded.lastIndexOf(',') + 1).trim()
        if (address.length > 0) return address
      }
    }
    // request.ip already honours Fastify's trustProxy.
    const ip = request.ip
    return typeof ip === 'string' && ip.length > 0 ? ip : undefined
  }

  /** The pin for an address (UNKNOWN when there is none). */
  pin (address: string | undefined): string {
    if (address === undefined) return UNKNOWN
    const pins = this.#pins
    let pin = pins.get(address)
    if (pin === undefined) {
      pin = this.#hash(address, 0)
      if (pins.size >= PIN_CACHE_SIZE) pins.dropOldest()
      pins.set(address, pin)
    }
    return pin
  }

  /** Does `pin` belong to `address`? Checks older secrets too, so a rotation drops no session. */
  matches (pin: string, address: string | undefined): boolean {
    if (address === undefined || pin === UNKNOWN) return false
    if (this.pin(address) === pin) return true
    for (let i = 1; i < this.#macs.length; i++) {
      if (this.#hash(address, i) === pin) return true
    }
    return false
  }

  /** HMAC under the `secret`th secret. */
  #hash (address: string, secret: number): string {
    return this.#macs[secret]('quart-session-pin\0' + address, 'base64url')
  }
}
