import type { SessionStore } from './store.js'
import type { SessionState, Update } from './state.js'
import type { StoreKeys } from './keys.js'
import type { Lifetime } from './lifetime.js'
import type { Renewal } from './renewal.js'
import { type Data, type Decoded, type Encoded, type RecordCodec, type SessionRecord, isEmpty } from './record.js'
import { nowSeconds } from './lifetime.js'
import { ABSENT, define, merge, mergeValue } from './merge.js'
import { UNCOMPARABLE, snapshot } from './snapshot.js'
import { isMarker } from './renewal.js'
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
export type Latest = Decoded & { key?: string }

// Job, Queue and Written are classes, not object literals: V8 tracks each literal's allocation
// site and, when most of one site's objects outlive a young-generation collection, allocates all
// its later objects in the old space for good ("pretenuring"). The write path runs unoptimized,
// leaving that trace, the first time a process writes at load (benchmarks/README.md, "sixth
// pass"): when the decision went that way, every later request's save objects were born old and
// each minor GC took 2-4 times as long. `new` of a class leaves no such trace, nor does an array
// made by Array.of (a builtin), where `[]` has a site of its own.

/** One session's save waiting in its key's queue. */
class Job {
  constructor (
    readonly state: SessionState,
    /** Taken when the job joined: changes made after that stay for the next save. */
    readonly version: number,
    readonly updates: Update[] | null,
    /** Copies of handed-out values as this save writes them (later mutations compare against them). */
    readonly baseline: Map<string, unknown> | null,
    readonly resolve: () => void,
    readonly reject: (error: unknown) => void
  ) {}
}

/**
 * The saves of one session key in this process. Saves that arrive while one is being written wait
 * and then go out together as one write, each applied in turn onto the result of the one before:
 * requests of one hot session never conflict with each other, and a burst costs one round trip.
 */
class Queue {
  waiting: Job[] = Array.of()
  /** What this process last wrote under the key while the queue was busy: the next batch starts from it. */
  latest: Decoded | undefined = undefined
}

/** A record this process wrote (Decoded, as a class for the reason above). */
class Written implements Decoded {
  constructor (readonly stored: string, readonly plain: string, readonly record: SessionRecord) {}
}

/**
 * How saves reach the store: a new session as one create-if-absent, a loaded one through its key's
 * queue, where the saves that arrive while one is being written go out together as one
 * compare-and-set, each merged in turn (lib/merge.ts) onto the result of the one before. A conflict
 * with another process re-reads, merges again and retries; a record that vanished makes every save
 * of the batch `gone`. The policy of when to save lives in lib/backend.ts.
 */
export class Writer {
  readonly store: SessionStore
  readonly codec: RecordCodec
  readonly keys: StoreKeys
  readonly lifetime: Lifetime
  readonly renewal: Renewal | undefined
  /** Adapters without compareAndSet: the last write wins (documented). */
  readonly atomic: boolean
  /** Where a session's record is (its id's key, or where a renewal marker points). */
  readonly keyOf: (state: SessionState) => string
  /** A new session was stored. */
  readonly created: (id: string, state: SessionState) => void
  readonly #queues = new Map<string, Queue>()

  constructor (init: {
    store: SessionStore
    codec: RecordCodec
    keys: StoreKeys
    lifetime: Lifetime
    renewal: Renewal | undefined
    keyOf: (state: SessionState) => string
    created: (id: string, state: SessionState) => void
  }) {
    this.store = init.store
    this.codec = init.codec
    this.keys = init.keys
    this.lifetime = init.lifetime
    this.renewal = init.renewal
    this.atomic = typeof init.store.compareAndSet === 'function'
    this.keyOf = init.keyOf
    this.created = init.created
  }

  /** Whether saves of `key` are in flight in this process (each of them restarts its lifetime). */
  busy (key: string): boolean {
    return this.#queues.has(key)
  }

  /** A session not stored yet: one conditional create (SET NX); its id is new, so nothing can race it. */
  async create (state: SessionState, now: number): Promise<void> {
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
        const key = this.keys.ofNew(state.ensureId())
        const encoded = this.codec.encode(state.toRecord(now), key)
        let written: boolean
        try {
          written = await this.put(key, undefined, encoded.stored, this.lifetime.ttl(state, now, now), true)
        } catch (err) {
          throw backendError('save', err)
        }
        if (written) {
          state.written(encoded, now, version, baseline)
          settleUpdates(updates, state.data)
          this.created(state.id, state)
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
  enqueue (state: SessionState): Promise<void> {
    const key = this.keyOf(state)
    return new Promise<void>((resolve, reject) => {
      const job = new Job(state, state.changes.version, state.takeUpdates(), state.done ? null : state.baseline(), resolve, reject)
      const queue = this.#queues.get(key)
      if (queue !== undefined) {
        queue.waiting.push(job)
        return
      }
      const fresh = new Queue()
      this.#queues.set(key, fresh)
      void this.#drain(key, fresh, Array.of(job))
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
      queue.waiting = Array.of()
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
        // Without a record of its own write, the queue starts from what the first job loaded, which
        // that job's changes replace (its shortcut in #apply): no need to parse it.
        data = current === undefined ? {} : current.record.data
        if (current?.record.created !== undefined) created = Math.min(created, current.record.created)
        // Only the first job can have loaded exactly the starting record; the others merge onto the result.
        let theirs: string | undefined = current?.stored ?? expected
        for (const job of batch) {
          data = this.#apply(job, data, theirs)
          theirs = undefined
        }
      }
      const empty = isEmpty(data)
      // The browser holds this session's cookie: a write re-sends it only when its expiry is due.
      let cookie = false
      let sent = 0
      for (const job of batch) {
        cookie ||= this.#cookieDue(job.state, now)
        sent = Math.max(sent, job.state.sent)
      }
      if (cookie) sent = now
      const record = last.toRecord(now, sent, data, created)
      const encoded = empty ? undefined : this.codec.encode(record, key)
      // Known before it is sent: the reads of a hot session whose replies come right behind the
      // write's may be handled before the code after the write runs. A text that then does not get
      // written costs nothing: the cache answers only for exactly that text.
      if (encoded !== undefined) this.codec.remember(key, encoded, record)
      let written: boolean
      try {
        written = await this.put(key, expected, encoded?.stored, this.lifetime.ttl(last, now, now), false)
      } catch (err) {
        throw backendError('save', err)
      }
      if (written) {
        // Not `{ ...encoded, record }`: a spread then a new property costs V8 (Node 20) about 0.8 µs.
        queue.latest = encoded === undefined ? undefined : new Written(encoded.stored, encoded.plain, record)
        for (const job of batch) this.#settle(job, encoded, data, now, cookie)
        return
      }
      if (attempt === 1) deadline = Date.now() + RETRY_FOR_MS
      else if (Date.now() > deadline) throw new FST_QUART_SESSION_CONFLICT(attempt)
      else await pause(attempt)
      const latest = await this.latest(key, now)
      current = latest
      if (latest?.key !== undefined) {
        // Renewed by another request meanwhile: these saves go on through its marker, under the new key.
        key = latest.key
        // The renewed record's id time comes along, or the next request would renew it again.
        for (const job of batch) job.state.forwarded(key, latest.record.born)
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
    else data = this.#changesOnto(state, theirs)
    if (job.updates !== null) applyUpdates(data, job.updates)
    return data
  }

  /**
   * This request's changes onto `theirs`, touching only the keys it changed: the keys it set or
   * deleted, taken whole, and the objects it mutated in place, merged at every depth against the
   * copy taken when they were handed out (what it loaded). Nothing else can differ from what it
   * loaded, so the rest of the data is not compared, and the loaded record is not parsed again.
   */
  #changesOnto (state: SessionState, theirs: Data): Data {
    const { replaced, exposed } = state.changes
    const ours = state.data
    const data: Data = { ...theirs }
    if (exposed !== null) {
      for (const [key, copy] of exposed) {
        if (replaced?.has(key) === true) continue
        // No copy to merge from (a Date, a Map, a class instance): the whole loaded record is the base.
        if (copy === UNCOMPARABLE) return merge(this.#base(state), ours, theirs, replaced)
        const value = mergeValue(copy, Object.hasOwn(ours, key) ? ours[key] : ABSENT, Object.hasOwn(theirs, key) ? theirs[key] : ABSENT)
        if (value === ABSENT) delete data[key]
        else define(data, key, value)
      }
    }
    if (replaced !== null) {
      for (const key of replaced) {
        if (Object.hasOwn(ours, key)) define(data, key, ours[key])
        else delete data[key]
      }
    }
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
  async latest (key: string, now: number): Promise<Latest | undefined> {
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

  /** Whether a save of a session the client holds a cookie for must re-send it. */
  #cookieDue (state: SessionState, now: number): boolean {
    return state.changes.cookie || !state.hadCookie || this.lifetime.cookieDue(state, now)
  }

  #settle (job: Job, encoded: Encoded | undefined, data: Data, now: number, cookie: boolean): void {
    const state = job.state
    // A save in the middle of a request (save(), update()): the handler goes on with a copy of the merged data.
    const merged = state.done ? undefined : encoded === undefined ? {} : this.codec.open(encoded.stored, this.keyOf(state)).record.data
    state.written(encoded, now, job.version, job.baseline, merged, cookie)
    settleUpdates(job.updates, data)
    job.resolve()
  }

  /** One conditional write; without compareAndSet, the last write wins (but never revives a record that is gone). */
  put (key: string, expected: string | undefined, text: string | undefined, ttl: number, isNew: boolean): Promise<boolean> {
    // The adapter's own promise: no async wrapper, one promise and microtask fewer per save.
    if (this.atomic) return (this.store.compareAndSet as NonNullable<SessionStore['compareAndSet']>)(key, expected, text, ttl)
    return this.#overwrite(key, expected, text, ttl, isNew)
  }

  async #overwrite (key: string, expected: string | undefined, text: string | undefined, ttl: number, isNew: boolean): Promise<boolean> {
    const store = this.store
    if (!isNew && expected !== undefined && await store.get(key) === undefined) return false
    if (text === undefined) await store.delete(key)
    else await store.set(key, text, ttl)
    return true
  }
}

/** Each update's function on the value as it stands; its result is what the update resolves with. */
function applyUpdates (data: Data, updates: Update[]): void {
  for (const update of updates) {
    const current = Object.hasOwn(data, update.key) ? data[update.key] : undefined
    // `fn` should be pure; one that mutates the object it is given and returns it must still not
    // reach an object the data shares (with the parse cache, with the record last written).
    const value = update.fn(typeof current === 'object' && current !== null ? ownCopy(current) : current)
    update.value = value
    if (value === undefined) delete data[update.key]
    else data[update.key] = value
  }
}

/** A copy of plain data; a value a copy cannot make (a Date, a Map) as it is. */
function ownCopy (value: object): unknown {
  const copy = snapshot(value)
  return copy === UNCOMPARABLE ? value : copy
}

function settleUpdates (updates: Update[] | null, _data: Data): void {
  if (updates !== null) for (const update of updates) update.applied(update.value)
}

function failUpdates (updates: Update[] | null, error: unknown): void {
  if (updates !== null) for (const update of updates) update.failed(error as Error)
}
