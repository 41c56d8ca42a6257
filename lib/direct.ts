import type { SessionStore } from './store.js'
import type { Serializer } from './serializer.js'
import type { StoreKeys } from './keys.js'
import type { RecordCipher } from './record.js'
import { FST_QUART_SESSION_CORRUPT_RECORD, FST_QUART_SESSION_INVALID_ARGUMENT, backendError } from './errors.js'

/**
 * `fastify.sessionStore`: the session backend used directly, as a cache (Quart-Session's
 * `app.session_interface`). Values go through the session serializer; keys are used as given
 * (no `keyPrefix`), and a key that has the shape of a session record's key (`keyPrefix` + an id)
 * is refused, so nothing stored here can ever be read as a session.
 */
export class DirectStore {
  /** The adapter underneath, for what this API does not cover. */
  readonly adapter: SessionStore
  readonly #serializer: Serializer
  readonly #keys: StoreKeys
  /** With `encryptionKey`: values are encrypted too, bound to their key. */
  readonly #cipher: RecordCipher | undefined

  constructor (adapter: SessionStore, serializer: Serializer, keys: StoreKeys, cipher?: RecordCipher) {
    this.adapter = adapter
    this.#serializer = serializer
    this.#keys = keys
    this.#cipher = cipher
  }

  #check (key: unknown): asserts key is string {
    if (typeof key !== 'string' || key.length === 0) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', 'must be a non-empty string')
    }
    if (this.#keys.isSessionKey(key)) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', 'the key has the shape of a session record\'s key (keyPrefix + a session id or its hash); choose keys outside that namespace')
    }
  }

  async get<T = unknown> (key: string): Promise<T | undefined> {
    this.#check(key)
    let text: string | undefined
    try {
      text = await this.adapter.get(key)
    } catch (err) {
      throw backendError('read', err)
    }
    if (text === undefined) return undefined
    // Refused (FST_QUART_SESSION_CORRUPT_RECORD) when no key opens it, or it was copied from another key.
    if (this.#cipher !== undefined) text = this.#cipher.open(text, key)
    try {
      return this.#serializer.parse(text) as T
    } catch (err) {
      // The parser's message quotes the text (a foreign value may be a secret): it stays in the cause.
      throw Object.assign(new FST_QUART_SESSION_CORRUPT_RECORD(`the value under "${key}" is not one the serializer can read`), { cause: err })
    }
  }

  /** Store `value` under `key`; it expires after `expirySeconds` (rounded up), or never when omitted. */
  async set (key: string, value: unknown, expirySeconds?: number): Promise<void> {
    this.#check(key)
    let ttl = 0
    if (expirySeconds !== undefined) {
      if (typeof expirySeconds !== 'number' || !Number.isFinite(expirySeconds) || expirySeconds <= 0) {
        throw new FST_QUART_SESSION_INVALID_ARGUMENT('expirySeconds', 'must be a number of seconds above 0, or omitted for no expiry')
      }
      ttl = Math.ceil(expirySeconds)
    }
    const plain = this.#serializer.stringify(value)
    const text = this.#cipher === undefined ? plain : this.#cipher.seal(plain, key)
    try {
      await this.adapter.set(key, text, ttl)
    } catch (err) {
      throw backendError('write', err)
    }
  }

  async delete (key: string): Promise<void> {
    this.#check(key)
    try {
      await this.adapter.delete(key)
    } catch (err) {
      throw backendError('delete', err)
    }
  }
}
