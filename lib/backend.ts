import type { SessionStore } from './store.js'
import type { ResolvedOptions } from './options.js'
import type { CookieSigner } from './signing.js'
import type { SessionCookie } from './cookie.js'
import type { SessionCookieView } from './session.js'
import type { SessionState } from './state.js'
import { type Data, type Decoded, RecordCodec } from './record.js'
import { StoreKeys, handleOf, idHash } from './keys.js'
import { publish } from './events.js'
import { Lifetime, nowSeconds } from './lifetime.js'
import { Writer } from './writer.js'
import type { UserSessions } from './users.js'
import { moveLegacy } from './legacy.js'
import { Renewal } from './renewal.js'
import { backendError } from './errors.js'

/**
 * The save and load policy between sessions and the adapter: when to write, refresh or delete,
 * how concurrent saves of one session combine, and what a vanished record means. Records, keys,
 * lifetimes and merges each have a module of their own; adapters only move strings.
 */
export class Backend {
  readonly store: SessionStore
  readonly codec: RecordCodec
  readonly keys: StoreKeys
  readonly lifetime: Lifetime
  /** Default of `session.permanent` for new sessions. */
  readonly permanent: boolean
  readonly cookie: SessionCookie
  readonly signer: CookieSigner | undefined
  /** Adapters without compareAndSet: the last write wins (documented). */
  readonly atomic: boolean
  readonly writer: Writer
  /** Look for records under plain ids (earlier versions) on a miss, and move them. */
  readonly legacyKeys: boolean
  /** With `renewAfter`: replaces old ids, follows forward markers. */
  readonly renewal: Renewal | undefined
  readonly #getLocal: ((key: string) => string | null | undefined) | undefined
  /** The per-user index (the `userId` option); undefined: sessions belong to nobody, at no cost. */
  users: UserSessions | undefined = undefined

  constructor (store: SessionStore, options: ResolvedOptions, cookie: SessionCookie, signer: CookieSigner | undefined, codec?: RecordCodec) {
    this.store = store
    this.codec = codec ?? new RecordCodec(options.serializer, options.maxRecordBytes)
    this.keys = new StoreKeys(options.keyPrefix)
    this.lifetime = new Lifetime(options.maxAge, options.rolling, options.absoluteMaxAge)
    this.permanent = options.permanent
    this.cookie = cookie
    this.signer = signer
    this.atomic = typeof store.compareAndSet === 'function'
    this.legacyKeys = options.legacyKeys
    this.renewal = options.renewAfter > 0 ? new Renewal(store, this.codec, this.keys, this.lifetime, options.renewAfter, options.renewGrace) : undefined
    this.#getLocal = typeof store.getLocal === 'function' ? store.getLocal.bind(store) : undefined
    this.writer = new Writer({
      store,
      codec: this.codec,
      keys: this.keys,
      lifetime: this.lifetime,
      renewal: this.renewal,
      keyOf: (state) => this.keyOf(state),
      created: (id, state) => { publish('created', () => ({ idHash: idHash(id), user: this.users?.userOrNone(state.data), at: Date.now() })) }
    })
  }

  /** The stored text of a session; adapter errors come as they are (map them with `backendError`). */
  read (id: string): Promise<string | undefined> {
    // No async wrapper: the load path awaits the adapter's own promise, one hop fewer per request.
    return this.store.get(this.keys.of(id))
  }

  /** The stored text when the adapter holds it in this process (`null`: known absent); undefined: ask `read`. */
  readLocal (id: string): string | null | undefined {
    const local = this.#getLocal?.(this.keys.of(id))
    // Absent under the derived key: `read` looks under the legacy one.
    return local === null && this.legacyKeys ? undefined : local
  }

  /** Where a session's record is: under its id's key, or where the marker of its renewed id points. */
  keyOf (state: SessionState): string {
    return state.forward ?? this.keys.of(state.id)
  }

  /** On a miss of `read`: a record of an earlier version under the plain id (legacyKeys), moved to the derived key. */
  readLegacy (id: string): Promise<string | undefined> {
    return moveLegacy(this.store, this.keys, this.codec, this.lifetime, id)
  }

  /**
   * A stored text as the record of a session a request loads, its objects possibly shared with the
   * parse cache (RecordCodec.share: the session copies what it hands out); throws
   * FST_QUART_SESSION_CORRUPT_RECORD.
   */
  open (id: string, stored: string): Decoded {
    return this.codec.share(stored, this.keys.of(id))
  }

  /** Remove a record; `expected`: only if it is still that text (an expired record another process may just have renewed). */
  async remove (id: string, expected?: string): Promise<void> {
    const key = this.keys.of(id)
    try {
      if (expected !== undefined && this.atomic) await (this.store.compareAndSet as NonNullable<SessionStore['compareAndSet']>)(key, expected, undefined, 0)
      else await this.store.delete(key)
    } catch (err) {
      throw backendError('delete', err)
    }
  }

  handleOf (id: string): string {
    return handleOf(id)
  }

  /** Whether the cookie carries an expiry: permanent sessions, and any with a lifetime of their own ("remember me"). */
  persistent (state: SessionState): boolean {
    return state.permanent || state.cookieOptions?.maxAge !== undefined
  }

  /** Seconds the cookie lives from now (Max-Age), the same arithmetic as the record's TTL. */
  cookieLifetime (state: SessionState, now: number): number {
    return this.lifetime.ttl(state, state.stored === undefined ? now : state.touched, now)
  }

  /** The cookie value for the session: the id, signed when a secret is set. */
  cookieValue (state: SessionState): string {
    const id = state.id
    const signer = this.signer
    if (signer === undefined) return id
    const signed = state.signed
    // The client's own signed value goes back as it came: no HMAC per response.
    if (signed !== undefined && signed.startsWith(id) && signed.charCodeAt(id.length) === 46) return signed
    return signer.sign(id)
  }

  cookieView (state: SessionState): SessionCookieView {
    const options = { ...this.cookie.options, ...state.cookieOptions }
    const maxAge = this.lifetime.of(state.cookieOptions)
    const now = nowSeconds()
    return Object.freeze({
      expires: this.persistent(state) ? new Date((now + this.cookieLifetime(state, now)) * 1000) : null,
      maxAge,
      originalMaxAge: maxAge * 1000,
      path: options.path,
      domain: options.domain,
      httpOnly: options.httpOnly,
      secure: options.secure,
      sameSite: options.sameSite,
      partitioned: options.partitioned,
      priority: options.priority
    })
  }

  /**
   * Whether a save would find nothing changed: nothing set, deleted or cleared, no update, and the
   * objects handed out equal to their copies (then forgotten, as the save would).
   */
  unchanged (state: SessionState): boolean {
    const changes = state.changes
    if (changes.dirty || changes.cleared || changes.updates !== null) return false
    if (changes.exposed === null) return true
    if (this.isModified(state)) return false
    changes.exposed = null
    return true
  }

  /** Whether the data differs from what is stored, or the session is new and holds data. */
  isModified (state: SessionState): boolean {
    return state.modified((record) => this.codec.stringify(record))
  }

  /**
   * Write the session if it changed, delete it if it was emptied, refresh its lifetime when due.
   * Records on the state whether the cookie must be sent or expired. A save already in flight for
   * this session (an un-awaited `save()`) finishes first.
   */
  async persist (state: SessionState): Promise<void> {
    if (state.disabled !== undefined) return
    while (state.saving !== undefined) await state.saving.catch(() => {})
    const saving = this.#persist(state)
    state.saveStarted(saving)
    try {
      await saving
    } finally {
      state.saveEnded(saving)
    }
  }

  async #persist (state: SessionState): Promise<void> {
    const now = nowSeconds()
    const changes = state.changes
    let modified = changes.dirty || changes.cleared || changes.updates !== null
    if (!modified && changes.exposed !== null) {
      // Objects were handed out: unchanged unless one of them was mutated.
      modified = this.isModified(state)
      if (!modified) changes.exposed = null
    }
    if (modified) {
      if (this.users !== undefined) await this.#writeIndexed(state, now, this.users)
      else if (state.stored === undefined) await this.writer.create(state, now)
      else await this.writer.enqueue(state)
    } else if (state.stored !== undefined && (changes.touch || this.lifetime.refreshDue(state, now))) {
      await this.#refresh(state, now)
    }
    changes.touch = false
  }

  /** A changed session with the per-user index on: the write, then its user's list if its user changed. */
  async #writeIndexed (state: SessionState, now: number, users: UserSessions): Promise<void> {
    const before = users.before(state)
    if (state.stored === undefined) await this.writer.create(state, now)
    else await this.writer.enqueue(state)
    try {
      await users.saved(state, before)
    } catch (err) {
      if ((err as { code?: unknown }).code === 'FST_QUART_SESSION_TOO_MANY_SESSIONS' && state.id !== '') {
        // maxSessionsPerUser refused this login: the record just written goes, and no cookie names it.
        await this.remove(state.id)
        state.gone()
      }
      throw err
    }
  }

  /** Restart the record's lifetime: rewritten with its new `touched`, only if it is still the one loaded. */
  async #refresh (state: SessionState, now: number): Promise<void> {
    const key = this.keyOf(state)
    // Saves of this session are in flight here: each of them restarts the lifetime anyway.
    if (this.writer.busy(key)) return
    const stored = state.stored as string
    const version = state.changes.version
    const encoded = this.codec.encode(state.toRecord(now), key)
    let latest: string | undefined
    try {
      if (await this.writer.put(key, stored, encoded.stored, this.lifetime.ttl(state, now, now), false)) {
        state.written(encoded, now, version, null)
        return
      }
      latest = await this.store.get(key)
    } catch (err) {
      throw backendError('save', err)
    }
    // Another request wrote it meanwhile, which refreshed it; or it is gone.
    if (latest === undefined) state.gone()
  }

  /** New id, old record removed, data emptied except `keep`. */
  async regenerate (state: SessionState, keep: string[] | undefined): Promise<void> {
    const previous = state.stored === undefined ? undefined : state.id
    const user = previous === undefined ? undefined : this.#storedUser(state)
    if (previous !== undefined) {
      await this.#removeAll(state)
      await this.#unlist(previous, user)
    }
    const data = state.data
    const kept: Data = {}
    if (keep !== undefined) for (const key of keep) if (Object.hasOwn(data, key)) kept[key] = data[key]
    state.restarted(kept, nowSeconds())
    if (previous !== undefined) {
      const id = state.id
      publish('regenerated', () => ({ idHash: idHash(id), previousIdHash: idHash(previous), user, at: Date.now() }))
    }
  }

  /** Remove the record now and empty the session; its cookie is expired at the end of the request. */
  async destroy (state: SessionState): Promise<void> {
    const previous = state.stored === undefined ? undefined : state.id
    const user = previous === undefined ? undefined : this.#storedUser(state)
    if (previous !== undefined) {
      await this.#removeAll(state)
      await this.#unlist(previous, user)
    }
    state.destroyed(nowSeconds(), this.permanent)
    if (previous !== undefined) publish('destroyed', () => ({ idHash: idHash(previous), user, at: Date.now() }))
  }

  /** The user the stored record of a session names (per-user index on), for its entry and events. */
  #storedUser (state: SessionState): string | undefined {
    const users = this.users
    if (users === undefined || state.stored === undefined) return undefined
    try {
      return users.userOrNone(this.codec.open(state.stored, this.keyOf(state)).record.data)
    } catch {
      return undefined
    }
  }

  /** A session ended here: out of its user's list (the record is already gone). */
  async #unlist (id: string, user: string | undefined): Promise<void> {
    if (user === undefined || this.users === undefined) return
    try {
      await this.users.ended(id, user)
    } catch (err) {
      throw backendError('delete', err)
    }
  }

  /** destroy() and regenerate(): the record, and with renewal every id that answers for it. */
  async #removeAll (state: SessionState): Promise<void> {
    const renewal = this.renewal
    if (renewal === undefined) return await this.remove(state.id)
    try {
      await renewal.remove(this.keys.of(state.id), state.forward)
    } catch (err) {
      throw backendError('delete', err)
    }
  }

  /** Discard unsaved changes and read the session again. */
  async reload (state: SessionState): Promise<void> {
    if (state.stored === undefined) {
      state.reloaded(undefined, undefined, this.permanent, nowSeconds())
      return
    }
    const decoded = await this.writer.latest(this.keyOf(state), nowSeconds()).catch((err: unknown) => {
      throw backendError('read', err)
    })
    if (decoded === undefined) state.gone()
    else state.reloaded(decoded.record, decoded, this.permanent, nowSeconds())
  }
}

