import type { SessionStore } from './store.js'
import type { ResolvedOptions } from './options.js'
import type { CookieSigner } from './signing.js'
import type { SessionCookie } from './cookie.js'
import type { SessionCookieView } from './session.js'
import type { SessionState, Update } from './state.js'
import { type Data, type Decoded, type Encoded, RecordCodec, isEmpty } from './record.js'
import { StoreKeys, handleOf, idHash } from './keys.js'
import { publish } from './events.js'
import { Lifetime, nowSeconds } from './lifetime.js'
import { merge } from './merge.js'
import type { UserSessions } from './users.js'
import { moveLegacy } from './legacy.js'
import { Renewal, isMarker } from './renewal.js'
import { FST_QUART_SESSION_CONFLICT, FST_QUART_SESSION_GONE, backendError } from './errors.js'

/**
 * A save that keeps losing the compare-and-set to other processes re-reads, merges and tries again
 * after a short random pause (so racing writers spread out instead of colliding in lockstep),
 * for at most this long; then the request fails with FST_QUART_SESSION_CONFLICT rather than hang.
 */
const RETRY_FOR_MS = 5000
const MAX_PAUSE_MS = 20
const pause = async (attempt: number): Promise<void> => {
  const ms = Math.random() * Math.min(MAX_PAUSE_MS, 2 ** attempt)
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** A record read back by a save; `key` when it was found through a forward marker (renewal). */
type Latest = Decoded & { key?: string }

/** One session's save waiting in its key's queue. */
interface Job {
  state: SessionState
  /** Taken when the job joined: changes made after that stay for the next save. */
  version: number
  updates: Update[] | null
  /** Copies of handed-out values as this save writes them (later mutations compare against them). */
  baseline: Map<string, unknown> | null
  resolve: () => void
  reject: (error: unknown) => void
}

/**
 * The saves of one session key in this process. Saves that arrive while one is being written wait
 * and then go out together as one write, each applied in turn onto the result of the one before:
 * requests of one hot session never conflict with each other, and a burst costs one round trip.
 */
interface Queue {
  waiting: Job[]
  /** What this process last wrote under the key while the queue was busy: the next batch starts from it. */
  latest: Decoded | undefined
}

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
  /** Look for records under plain ids (earlier versions) on a miss, and move them. */
  readonly legacyKeys: boolean
  /** With `renewAfter`: replaces old ids, follows forward markers. */
  readonly renewal: Renewal | undefined
  readonly #getLocal: ((key: string) => string | null | undefined) | undefined
  readonly #queues = new Map<string, Queue>()
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

  /** A stored text as a record this session may own; throws FST_QUART_SESSION_CORRUPT_RECORD. */
  open (id: string, stored: string): Decoded {
    return this.codec.open(stored, this.keys.of(id))
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
      else if (state.stored === undefined) await this.#create(state, now)
      else await this.#enqueue(state)
    } else if (state.stored !== undefined && (changes.touch || this.lifetime.refreshDue(state, now))) {
      await this.#refresh(state, now)
    }
    changes.touch = false
  }

  /** A changed session with the per-user index on: the write, then its user's list if its user changed. */
  async #writeIndexed (state: SessionState, now: number, users: UserSessions): Promise<void> {
    const before = users.before(state)
    if (state.stored === undefined) await this.#create(state, now)
    else await this.#enqueue(state)
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

  /** A session not stored yet: one conditional create (SET NX); its id is new, so nothing can race it. */
  async #create (state: SessionState, now: number): Promise<void> {
    const version = state.changes.version
    const updates = state.takeUpdates()
    try {
      if (updates !== null) applyUpdates(state.data, updates)
      if (isEmpty(state.data)) {
        state.written(undefined, now, version, null)
        settleUpdates(updates, state.data)
        return
      }
      const baseline = state.done ? null : state.baseline()
      for (;;) {
        const key = this.keys.of(state.ensureId())
        const encoded = this.codec.encode(state.toRecord(now), key)
        let written: boolean
        try {
          written = await this.#put(key, undefined, encoded.stored, this.lifetime.ttl(state, now, now), true)
        } catch (err) {
          throw backendError('save', err)
        }
        if (written) {
          state.written(encoded, now, version, baseline)
          settleUpdates(updates, state.data)
          const id = state.id
          publish('created', () => ({ idHash: idHash(id), user: this.users?.userOrNone(state.data), at: Date.now() }))
          return
        }
        // A new id that is taken (192 random bits: practically never): take another.
        state.collided()
      }
    } catch (err) {
      failUpdates(updates, err)
      throw err
    }
  }

  /** Join (or open) the queue of this session's key; the queue writes waiting saves together. */
  #enqueue (state: SessionState): Promise<void> {
    const key = this.keyOf(state)
    return new Promise<void>((resolve, reject) => {
      const job: Job = {
        state, version: state.changes.version, updates: state.takeUpdates(), baseline: state.done ? null : state.baseline(), resolve, reject
      }
      const queue = this.#queues.get(key)
      if (queue !== undefined) {
        queue.waiting.push(job)
        return
      }
      const fresh: Queue = { waiting: [], latest: undefined }
      this.#queues.set(key, fresh)
      void this.#drain(key, fresh, [job])
    })
  }

  async #drain (key: string, queue: Queue, first: Job[]): Promise<void> {
    let batch = first
    while (batch.length > 0) {
      try {
        await this.#commit(key, queue, batch)
      } catch (err) {
        for (const job of batch) {
          failUpdates(job.updates, err)
          job.reject(err)
        }
      }
      batch = queue.waiting
      queue.waiting = []
    }
    this.#queues.delete(key)
  }

  /**
   * Write a batch of saves of one key as one compare-and-set: each job's changes (from the record
   * it loaded to the data it ends with) merged in turn onto the latest record, then its updates
   * applied. On a conflict with another process: read the latest, merge again, retry.
   */
  async #commit (key: string, queue: Queue, batch: Job[]): Promise<void> {
    const now = nowSeconds()
    const last = batch[batch.length - 1].state
    // The latest record as far as this process knows: its own last write, or what the first job loaded.
    let current: Decoded | undefined = queue.latest
    let deadline = 0
    for (let attempt = 1; ; attempt++) {
      const expected = current?.stored ?? batch[0].state.stored
      let data: Data
      let created = last.created
      if (batch.length === 1 && (current === undefined || current.stored === last.stored)) {
        // The common case: one save of what is stored. Its data is the result, no merge.
        data = last.data
        if (batch[0].updates !== null) {
          data = { ...data }
          applyUpdates(data, batch[0].updates)
        }
      } else {
        data = current === undefined ? this.#base(batch[0].state) : current.record.data
        if (current?.record.created !== undefined) created = Math.min(created, current.record.created)
        // Only the first job can have loaded exactly the starting record; the others merge onto the result.
        let theirs: string | undefined = current?.stored ?? expected
        for (const job of batch) {
          data = this.#apply(job, data, theirs)
          theirs = undefined
        }
      }
      const empty = isEmpty(data)
      const record = { ...last.toRecord(now), data, created }
      const encoded = empty ? undefined : this.codec.encode(record, key)
      let written: boolean
      try {
        written = await this.#put(key, expected, encoded?.stored, this.lifetime.ttl(last, now, now), false)
      } catch (err) {
        throw backendError('save', err)
      }
      if (written) {
        queue.latest = encoded === undefined ? undefined : { ...encoded, record }
        for (const job of batch) this.#settle(job, encoded, data, now)
        return
      }
      if (attempt === 1) deadline = Date.now() + RETRY_FOR_MS
      else if (Date.now() > deadline) throw new FST_QUART_SESSION_CONFLICT(attempt)
      else await pause(attempt)
      const latest = await this.#latest(key, now)
      current = latest
      if (latest?.key !== undefined) {
        // Renewed by another request meanwhile: these saves go on through its marker, under the new key.
        key = latest.key
        for (const job of batch) {
          job.state.forward = key
          // The renewed record's id time, or the next request would renew it again.
          job.state.born = latest.record.born ?? job.state.born
        }
      }
      if (current === undefined) {
        // Destroyed, regenerated, revoked or expired since these requests read it: their changes
        // die with it, and the id is never written back.
        queue.latest = undefined
        for (const job of batch) {
          job.state.gone()
          failUpdates(job.updates, new FST_QUART_SESSION_GONE('update'))
          job.resolve()
        }
        return
      }
    }
  }

  /** One job's changes onto `theirs`: a three-way merge from what it loaded, then its updates. */
  #apply (job: Job, theirs: Data, theirsStored: string | undefined): Data {
    const state = job.state
    let data: Data
    if (state.changes.cleared) data = { ...state.data }
    else if (state.stored === theirsStored) data = { ...state.data }
    else data = merge(this.#base(state), state.data, theirs, state.changes.replaced)
    if (job.updates !== null) applyUpdates(data, job.updates)
    return data
  }

  /** The data a session loaded (its stored record), for a merge; {} when unreadable. */
  #base (state: SessionState): Data {
    if (state.stored === undefined) return {}
    try {
      return this.codec.open(state.stored, this.keyOf(state)).record.data
    } catch {
      return {}
    }
  }

  /** The record under `key` now, unless it is gone, unreadable or past its lifetime. */
  async #latest (key: string, now: number): Promise<Latest | undefined> {
    let text: string | undefined
    try {
      text = await this.store.get(key)
    } catch (err) {
      throw backendError('save', err)
    }
    if (text === undefined) return undefined
    let decoded: Decoded
    try {
      decoded = this.codec.open(text, key)
    } catch {
      return undefined
    }
    if (isMarker(decoded.record)) return await this.#follow(decoded, now)
    return this.lifetime.expired(decoded.record, now) ? undefined : decoded
  }

  /** A forward marker met by a save or reload: the renewed record and its key (renewal off: gone). */
  async #follow (marker: Decoded, now: number): Promise<Latest | undefined> {
    if (this.renewal === undefined) return undefined
    let outcome
    try {
      outcome = await this.renewal.follow(marker.record, now)
    } catch (err) {
      throw backendError('save', err)
    }
    return outcome.kind === 'forward' ? { ...outcome.decoded, key: outcome.key } : undefined
  }

  #settle (job: Job, encoded: Encoded | undefined, data: Data, now: number): void {
    const state = job.state
    // A save in the middle of a request (save(), update()): the handler goes on with a copy of the merged data.
    const merged = state.done ? undefined : encoded === undefined ? {} : this.codec.open(encoded.stored, this.keyOf(state)).record.data
    state.written(encoded, now, job.version, job.baseline, merged)
    settleUpdates(job.updates, data)
    job.resolve()
  }

  /** One conditional write; without compareAndSet, the last write wins (but never revives a record that is gone). */
  async #put (key: string, expected: string | undefined, text: string | undefined, ttl: number, isNew: boolean): Promise<boolean> {
    const store = this.store
    if (this.atomic) return await (store.compareAndSet as NonNullable<SessionStore['compareAndSet']>)(key, expected, text, ttl)
    if (!isNew && expected !== undefined && await store.get(key) === undefined) return false
    if (text === undefined) await store.delete(key)
    else await store.set(key, text, ttl)
    return true
  }

  /** Restart the record's lifetime: rewritten with its new `touched`, only if it is still the one loaded. */
  async #refresh (state: SessionState, now: number): Promise<void> {
    const key = this.keyOf(state)
    // Saves of this session are in flight here: each of them restarts the lifetime anyway.
    if (this.#queues.has(key)) return
    const stored = state.stored as string
    const version = state.changes.version
    const encoded = this.codec.encode(state.toRecord(now), key)
    let latest: string | undefined
    try {
      if (await this.#put(key, stored, encoded.stored, this.lifetime.ttl(state, now, now), false)) {
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
    const decoded = await this.#latest(this.keyOf(state), nowSeconds()).catch((err: unknown) => {
      throw backendError('read', err)
    })
    if (decoded === undefined) state.gone()
    else state.reloaded(decoded.record, decoded, this.permanent, nowSeconds())
  }
}

/** Each update's function on the value as it stands; its result is what the update resolves with. */
function applyUpdates (data: Data, updates: Update[]): void {
  for (const update of updates) {
    const value = update.fn(Object.hasOwn(data, update.key) ? data[update.key] : undefined)
    update.value = value
    if (value === undefined) delete data[update.key]
    else data[update.key] = value
  }
}

function settleUpdates (updates: Update[] | null, _data: Data): void {
  if (updates !== null) for (const update of updates) update.applied(update.value)
}

function failUpdates (updates: Update[] | null, error: unknown): void {
  if (updates !== null) for (const update of updates) update.failed(error as Error)
}
