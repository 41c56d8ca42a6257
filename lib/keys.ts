import { sha256 } from './digest.js'
import { isValidId } from './id.js'
import { Recency } from './recency.js'

// Store keys are derived from session ids, never the ids themselves: whoever can list or read the
// backend (KEYS, a dump, a backup, a slow log, an invalidation broadcast) sees only hashes, which
// cannot be sent back as cookies. Other programs find a session from its cookie the same way:
// keyPrefix + base64url(SHA-256(id)), no padding (43 characters).

/** Length of the hash part of a session key. */
export const DERIVED_LENGTH = 43
const DERIVED = /^[A-Za-z0-9_-]{43}$/

/** Ids hashed recently, so a returning client costs a Map lookup rather than a SHA-256. */
const CACHE_SIZE = 4096

/** `keyPrefix` + base64url(SHA-256(id)): the store key of a session, computed once per id. */
export function deriveKey (keyPrefix: string, id: string): string {
  return keyPrefix + sha256(id, 'base64url')
}

/**
 * The one place that turns an id into a store key, and tells session keys from direct-store keys.
 */
export class StoreKeys {
  readonly prefix: string
  readonly #cache = new Recency<string>()
  // The last id asked: a request asks for its key several times in a row (the local read, the
  // parse, the save), and a comparison is cheaper than a Map lookup.
  #lastId: string | undefined = undefined
  #lastKey = ''

  constructor (prefix: string) {
    this.prefix = prefix
  }

  /** The key a session's record lives under. */
  of (id: string): string {
    if (id === this.#lastId) return this.#lastKey
    const key = this.#derived(id)
    this.#lastId = id
    this.#lastKey = key
    return key
  }

  /**
   * The key of an id just made here. Not cached: the client it goes to sends it back on a later
   * request, which caches it then, and a new session per request (sign-ups, bots without cookies)
   * would otherwise fill the cache with ids that never come back and evict the ones that do.
   */
  ofNew (id: string): string {
    if (id === this.#lastId) return this.#lastKey
    const key = deriveKey(this.prefix, id)
    this.#lastId = id
    this.#lastKey = key
    return key
  }

  #derived (id: string): string {
    const cache = this.#cache
    let key = cache.get(id)
    if (key === undefined) {
      key = deriveKey(this.prefix, id)
      // Oldest first out (lib/recency.ts: O(1), where a Map walks the holes of its evictions).
      if (cache.size >= CACHE_SIZE) cache.dropOldest()
      cache.set(id, key)
    }
    return key
  }

  /**
   * Where versions before derived keys stored the record (`keyPrefix` + the id itself), read once
   * and moved. Only ever built from an id of our own shape: never from input that already looks
   * like a derived key, so a hash read from the backend cannot be replayed as a cookie.
   */
  legacyOf (id: string): string | undefined {
    return isValidId(id) && !DERIVED.test(id) ? this.prefix + id : undefined
  }

  /** Whether `key` is a derived session key of this prefix (what a forward marker may name). */
  isDerivedKey (key: string): boolean {
    return key.length === this.prefix.length + DERIVED_LENGTH && key.startsWith(this.prefix) && DERIVED.test(key.slice(this.prefix.length))
  }

  /** Whether `key` has the shape of a session record's key (derived, or the legacy plain id). */
  isSessionKey (key: string): boolean {
    const prefix = this.prefix
    if (!key.startsWith(prefix)) return false
    const rest = key.slice(prefix.length)
    return DERIVED.test(rest) || isValidId(rest)
  }
}

/**
 * The handle of a session in its user's list: another hash of the id than its store key, so a
 * "your devices" page can name sessions without handing out anything that opens or finds one.
 */
export function handleOf (id: string): string {
  return sha256('fastify-quart-session handle\0' + id, 'base64url').slice(0, 22)
}

/** A short hash of an id for logs and lifecycle events: never the id itself. */
export function idHash (id: string): string {
  return sha256('fastify-quart-session log\0' + id, 'base64url').slice(0, 16)
}
