import type { SessionStore } from './store.js'
import type { Serializer } from './serializer.js'
import type { StoreKeys } from './keys.js'
import type { ListOptions, ListedSession, RevokeOptions, UserSessions } from './users.js'
import type { RecordCipher } from './record.js'
import { FST_QUART_SESSION_CORRUPT_RECORD, FST_QUART_SESSION_INVALID_ARGUMENT, FST_QUART_SESSION_NO_USER_INDEX, backendError } from './errors.js'

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
  readonly #users: UserSessions | undefined
  /** With `encryptionKey`: values are encrypted too, bound to their key. */
  readonly #cipher: RecordCipher | undefined

  constructor (adapter: SessionStore, serializer: Serializer, keys: StoreKeys, cipher?: RecordCipher, users?: UserSessions) {
    this.adapter = adapter
    this.#serializer = serializer
    this.#keys = keys
    this.#cipher = cipher
    this.#users = users
  }

  #index (verb: string): UserSessions {
    if (this.#users === undefined) throw new FST_QUART_SESSION_NO_USER_INDEX(verb)
    return this.#users
  }

  /**
   * The user's live sessions, most recently seen first: what a "your devices" page shows. Pass
   * `{ current: request.session.handle }` to have the asking session marked `current`.
   */
  async listSessions (userId: string | number, options?: ListOptions): Promise<ListedSession[]> {
    return await this.#index('listSessions').list(userId, options)
  }

  /** End one of the user's sessions now, finally (like its own destroy()); resolves whether it was one of theirs. */
  async revokeSession (userId: string | number, handle: string): Promise<boolean> {
    return await this.#index('revokeSession').revoke(userId, handle)
  }

  /** End all of the user's sessions but `except` (a handle); resolves with how many ended. */
  async revokeUserSessions (userId: string | number, options?: RevokeOptions): Promise<number> {
    return await this.#index('revokeUserSessions').revokeAll(userId, options)
  }

  #check (key: unknown): asserts key is string {
    if (typeof key !== 'string' || key.length === 0) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', 'must be a non-empty string')
    }
    if (this.#keys.isSessionKey(key)) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', 'the key has the shape of a session record\'s key (keyPrefix + a session id or its hash); choose keys outside that namespace')
    }
    const prefix = this.#keys.prefix
    if (key.startsWith(prefix + 'users:') || key.startsWith(prefix + 'due:')) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', `"${key}" is in the namespace of the per-user session index (keyPrefix + "users:" or "due:"); choose keys outside it`)
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
