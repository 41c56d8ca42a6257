import type { SessionCookieOptions } from './cookie.js'
import type { Dated } from './lifetime.js'
import { type Data, type Encoded, type SessionRecord, isEmpty } from './record.js'
import { UNCOMPARABLE, snapshot, unchanged } from './snapshot.js'
import { generateId } from './id.js'

/** A read-modify-write of one key waiting for the next save (session.update). */
export interface Update {
  key: string
  fn: (value: unknown) => unknown
  /** Called with the value stored, once the save that applied it succeeded. */
  applied: (value: unknown) => void
  /** Called when it cannot apply: the session ended before the save, or the save failed. */
  failed: (error: Error) => void
  /** The value fn returned on the attempt being written. */
  value?: unknown
}

/**
 * What a request changed since the session was loaded or last written: one object, one reset.
 * `version` counts changes, so a save that ran while the handler went on changing the session
 * (an un-awaited `save()`) leaves those later changes to the next save instead of forgetting them.
 */
export class Changes {
  /** Something changed (a key set or deleted, permanent, cookie options, regenerate). */
  dirty = false
  /** `clear()` ran: what was there before is gone, whatever other requests wrote meanwhile. */
  cleared = false
  /**
   * Keys given a whole new value by `set` or removed by `delete` (null: none): a concurrent save
   * keeps this request's value of them whole; only mutations in place merge deeply.
   */
  replaced: Set<string> | null = null
  /** Keys whose object value was handed out, with a copy of what it was then (null: none). */
  exposed: Map<string, unknown> | null = null
  /** Restart the record's lifetime at the end of the request, even if nothing changed. */
  touch = false
  /** The cookie's own settings changed (`permanent`, `options()`): the next write re-sends it. */
  cookie = false
  /** Read-modify-writes to apply at the next save. */
  updates: Update[] | null = null
  version = 0

  reset (): void {
    this.dirty = false
    this.cleared = false
    this.replaced = null
    this.exposed = null
    this.touch = false
    this.cookie = false
    this.updates = null
  }

  /** Whether a save has anything to look at (set, delete, clear, handed-out objects, updates). */
  get pending (): boolean {
    return this.dirty || this.cleared || this.exposed !== null || this.updates !== null
  }
}

/** What a session starts from: nothing (a fresh session), or a record loaded under `id`. */
export interface StateInit {
  /** Omitted for a fresh session: it gets an id when one is needed. */
  id?: string
  record?: SessionRecord
  /** The record's text as stored and as compared (what `record` was opened from). */
  encoded?: Encoded
  /** The parse cache's data whose objects `record.data` shares (Decoded.shared). */
  shared?: Data
  /** The default of `permanent` for a fresh session. */
  permanent: boolean
  pin?: string
  /** Seconds since the epoch. */
  now: number
}

/**
 * The private state of one session, with the transitions the core makes on it (loaded, written,
 * gone, restarted, destroyed). The session object owns it; the backend changes it only through
 * these methods, which is where lifecycle events hook on.
 */
export class SessionState implements Dated {
  /** '' until something needs an id: most fresh sessions never do (nothing stored). */
  id: string
  data: Data
  /**
   * The parse cache's data that `data`'s object values came from as they are (the cache's own
   * objects, which nobody mutates): such a value is copied before it is handed out. Kept for the
   * session's life: values kept across regenerate() are still the cache's.
   */
  readonly shared: Data | undefined
  /** The text the backend holds for this id (what a compare-and-set expects); undefined: nothing stored. */
  stored: string | undefined
  /** The serializer's text of that record (what change detection compares). */
  plain: string | undefined
  isNew: boolean
  permanent: boolean
  pin: string | undefined
  created: number
  touched: number
  /** When the cookie last went out with its expiry (lib/lifetime.ts cookieDue). */
  sent: number
  /** When this id was issued (renewAfter counts from here). */
  born: number
  /**
   * Set while the request came with an id renewed by another request (renewGrace): the store key
   * of the session's record under its new id, which this request reads and writes through. Such a
   * request never sends a cookie: it does not know the new id, and the old one must not come back.
   */
  forward: string | undefined = undefined
  cookieOptions: SessionCookieOptions | undefined
  /** The signed cookie value the client sent for this id, sent back unchanged while the id stays. */
  signed: string | undefined = undefined
  /** The client sent a cookie naming this session (or one it replaced). */
  hadCookie = false
  /** The cookie must be (re)sent at the end of the request. */
  sendCookie = false
  /** The cookie of a session this request ended must be expired at the end of the request. */
  clearCookie = false
  /** The save hook has run for this request (an error reply runs onSend a second time). */
  done = false
  /** The save hook's save is in flight (a second send meanwhile is a duplicate). */
  hookSaving = false
  /** Why sessions are off, on an inert session. */
  disabled: string | undefined = undefined
  /** A verb that failed while nobody awaited it: the save hook fails the request with it. */
  failure: Error | undefined = undefined
  /** A save in flight (an un-awaited `save()`): the next one waits for it. */
  saving: Promise<void> | undefined = undefined
  readonly changes = new Changes()

  constructor (init: StateInit) {
    const { record, encoded, now } = init
    this.id = init.id ?? ''
    this.data = record?.data ?? {}
    this.shared = init.shared
    this.stored = encoded?.stored
    this.plain = encoded?.plain
    this.isNew = encoded === undefined
    this.permanent = record === undefined ? init.permanent : record.permanent !== false
    this.pin = init.pin
    this.created = record?.created ?? now
    this.touched = record === undefined ? now : record.touched ?? 0
    this.sent = record?.sent ?? this.touched
    this.born = record === undefined ? now : record.born ?? this.created
    this.cookieOptions = record?.cookie
  }

  /** The id, made now if the session has none yet (most fresh sessions never need one). */
  ensureId (): string {
    if (this.id === '') this.id = generateId()
    return this.id
  }

  /** A new id in place of one that is taken (192 random bits: practically never). */
  collided (): void {
    this.id = generateId()
  }

  /** Saving: the save in flight, which the next one waits for (undefined: done). */
  saveStarted (saving: Promise<void>): void {
    this.saving = saving
  }

  saveEnded (saving: Promise<void>): void {
    if (this.saving === saving) this.saving = undefined
  }

  /** The read-modify-writes to apply at this save; later ones wait for the next. */
  takeUpdates (): Update[] | null {
    const updates = this.changes.updates
    this.changes.updates = null
    return updates
  }

  /**
   * Another request renewed this session's id meanwhile (renewAfter): its record now lives under
   * `key`, which saves of this request go on through (sending no cookie), with the renewed id's time.
   */
  forwarded (key: string, born: number | undefined): void {
    this.forward = key
    if (born !== undefined) this.born = born
  }

  /**
   * The record this session would store now, last written or refreshed at `touched`; the cookie last
   * sent at `sent`. `data` and `created`: what a merged save writes in place of this session's own.
   */
  toRecord (touched: number, sent = touched, data = this.data, created = this.created): SessionRecord {
    // Filled from an empty literal, which V8 allocates without a site to pretenure by (see Job in
    // lib/writer.ts); the keys keep the order records are written in.
    const record = {} as SessionRecord
    record.data = data
    if (!this.permanent) record.permanent = false
    if (this.pin !== undefined) record.pin = this.pin
    record.created = created
    record.touched = touched
    if (sent !== touched) record.sent = sent
    if (this.cookieOptions !== undefined) record.cookie = this.cookieOptions
    // Written only once renewal made it differ: until then the id is as old as the session.
    if (this.born !== this.created) record.born = this.born
    return record
  }

  /** Whether the data differs from what is stored. `stringify`: the serializer, for values a copy cannot compare. */
  modified (stringify: (record: SessionRecord) => string): boolean {
    const changes = this.changes
    if (changes.dirty || changes.cleared || changes.updates !== null) return true
    const exposed = changes.exposed
    if (exposed === null) return false
    const data = this.data
    for (const [key, copy] of exposed) {
      // Values the copy cannot compare: the serializer's text decides, for the whole record.
      if (copy === UNCOMPARABLE) return stringify(this.toRecord(this.touched)) !== this.plain
      if (!unchanged(copy, data[key])) return true
    }
    return false
  }

  /** Copies of the handed-out values as they are now, about to be written: later mutations compare against them. */
  baseline (): Map<string, unknown> | null {
    const exposed = this.changes.exposed
    if (exposed === null) return null
    const copies = new Map<string, unknown>()
    for (const key of exposed.keys()) copies.set(key, snapshot(this.data[key]))
    return copies
  }

  get empty (): boolean {
    return isEmpty(this.data)
  }

  /**
   * The record was written as `encoded` (undefined: deleted, the session was emptied). `version`
   * and `baseline` were taken when the write began: changes made since stay pending.
   */
  written (encoded: Encoded | undefined, now: number, version: number, baseline: Map<string, unknown> | null, data?: Data, cookie = true): void {
    // A save in the middle of a request (save(), update()): the handler goes on with the merged data.
    if (data !== undefined) this.data = data
    const changes = this.changes
    const later = changes.version !== version
    // Updates still listed came after this write took its own.
    const updates = changes.updates
    changes.reset()
    changes.updates = updates
    // Handed-out objects the handler may still mutate compare against what was just written.
    changes.exposed = baseline
    if (later) changes.dirty = true
    if (encoded === undefined) {
      // An emptied session: its record is gone, and the client's cookie with it.
      if (this.stored !== undefined) this.clearCookie = true
      this.stored = undefined
      this.plain = undefined
      this.sendCookie = false
      return
    }
    this.stored = encoded.stored
    this.plain = encoded.plain
    this.touched = now
    this.isNew = false
    if (cookie) this.sent = now
    // A cookie an earlier write of this request owes the response stays owed.
    this.sendCookie = (this.sendCookie || cookie) && this.forward === undefined
    this.clearCookie = false
  }

  /**
   * The session vanished from the backend while this request held it (destroyed, regenerated,
   * revoked or expired elsewhere). Its changes die with it, and its cookie is left alone: the
   * request that ended it sent what the browser should hold (a slow request must never expire
   * the cookie a login just set).
   */
  gone (): void {
    this.id = ''
    this.data = {}
    this.stored = undefined
    this.plain = undefined
    this.isNew = true
    this.signed = undefined
    this.forward = undefined
    this.sendCookie = false
    this.changes.reset()
    this.changes.version++
  }

  /** regenerate(): a new id, the data emptied except `kept`; the old cookie is replaced or expired. */
  restarted (kept: Data, now: number): void {
    const had = this.stored !== undefined || this.hadCookie
    this.gone()
    if (had) {
      this.clearCookie = true
      // Made now, so the event can name it; nothing is stored under it before the save.
      this.id = generateId()
    }
    this.data = kept
    this.created = now
    this.touched = now
    this.sent = now
    this.born = now
    this.changes.dirty = true
  }

  /** destroy(): removed, emptied, and the cookie expired at the end of the request. */
  destroyed (now: number, permanent: boolean): void {
    const had = this.stored !== undefined || this.hadCookie || this.clearCookie
    this.gone()
    this.clearCookie = had
    this.permanent = permanent
    this.created = now
    this.touched = now
    this.sent = now
    this.born = now
  }

  /** reload(): the record as stored now (undefined: none). */
  reloaded (record: SessionRecord | undefined, encoded: Encoded | undefined, permanent: boolean, now: number): void {
    this.data = record?.data ?? {}
    this.permanent = record === undefined ? permanent : record.permanent !== false
    this.stored = encoded?.stored
    this.plain = encoded?.plain
    this.isNew = record === undefined
    this.created = record?.created ?? now
    this.touched = record?.touched ?? now
    this.sent = record?.sent ?? this.touched
    this.born = record?.born ?? this.created
    this.cookieOptions = record?.cookie
    this.changes.reset()
    this.changes.version++
  }
}
