import type { SessionStore } from './store.js'
import type { Serializer } from './serializer.js'
import type { ResolvedOptions } from './options.js'
import type { CookieSigner } from './signing.js'
import { StoreKeys } from './keys.js'
import { type SessionCookieView, type Data, type SessionRecord, type Session, isEmpty } from './session.js'
import { type SessionCookie, type SessionCookieOptions, checkSessionCookieOptions } from './cookie.js'
import { UNCOMPARABLE, snapshot, unchanged } from './snapshot.js'
import {
  FST_QUART_SESSION_BACKEND, FST_QUART_SESSION_CONFLICT, FST_QUART_SESSION_CORRUPT_RECORD, FST_QUART_SESSION_SERIALIZE,
  FST_QUART_SESSION_VALUE_TOO_LARGE
} from './errors.js'
import {
  kChanged, kClearCookie, kCleared, kCookie, kCookieOptions, kCreated, kData, kDirty, kDisabled, kExposed, kHadCookie,
  kId, kNew, kPermanent, kPin, kSigned, kText, kTouch, kTouched
} from './symbols.js'

/**
 * A save that keeps losing the compare-and-set to other requests re-reads, merges and tries again
 * after a short random pause (so racing writers spread out instead of colliding in lockstep),
 * for at most this long; then the request fails with FST_QUART_SESSION_CONFLICT rather than hang.
 */
const RETRY_FOR_MS = 5000
const MAX_PAUSE_MS = 20
const pause = async (attempt: number): Promise<void> => {
  const ms = Math.random() * Math.min(MAX_PAUSE_MS, 2 ** attempt)
  await new Promise((resolve) => setTimeout(resolve, ms))
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

// The parsed-record cache: at most this many records, of texts at most this long (about 4 MB).
const DECODED_MAX = 1024
const DECODED_TEXT_MAX = 4096

/**
 * Sits between sessions and the adapter: key names, the record format, error mapping, the save
 * decision, the merge of concurrent saves and the lifetime policy live here once, so adapters
 * only move strings.
 */
export class Backend {
  readonly store: SessionStore
  readonly serializer: Serializer
  readonly keys: StoreKeys
  /** Seconds a session lives after its last use (rolling) or write. */
  readonly maxAge: number
  /** Default of `session.permanent` for new sessions. */
  readonly permanent: boolean
  readonly rolling: boolean
  readonly absoluteMaxAge: number
  readonly maxRecordBytes: number
  readonly cookie: SessionCookie
  readonly signer: CookieSigner | undefined
  /** Adapters without compareAndSet: the last write wins (documented). */
  readonly atomic: boolean
  readonly #getLocal: ((key: string) => string | null | undefined) | undefined
  /** Records recently parsed, by their text; never handed out, only copied. */
  readonly #decoded = new Map<string, SessionRecord>()

  constructor (store: SessionStore, options: ResolvedOptions, cookie: SessionCookie, signer: CookieSigner | undefined) {
    this.store = store
    this.serializer = options.serializer
    this.keys = new StoreKeys(options.keyPrefix)
    this.maxAge = options.maxAge
    this.permanent = options.permanent
    this.rolling = options.rolling
    this.absoluteMaxAge = options.absoluteMaxAge
    this.maxRecordBytes = options.maxRecordBytes
    this.cookie = cookie
    this.signer = signer
    this.atomic = typeof store.compareAndSet === 'function'
    this.#getLocal = typeof store.getLocal === 'function' ? store.getLocal.bind(store) : undefined
  }

  /** The stored text of a session; adapter errors come as they are (map them with `backendError`). */
  read (id: string): Promise<string | undefined> {
    // No async wrapper: the load path awaits the adapter's own promise, one hop fewer per request.
    return this.store.get(this.keys.of(id))
  }

  /** The stored text when the adapter holds it in this process (`null`: known absent); undefined: ask `read`. */
  readLocal (id: string): string | null | undefined {
    return this.#getLocal?.(this.keys.of(id))
  }

  async remove (id: string): Promise<void> {
    try {
      await this.store.delete(this.keys.of(id))
    } catch (err) {
      throw backendError('delete', err)
    }
  }

  /** Seconds this session lives after a use or write. */
  lifetimeOf (session: Session): number {
    return session[kCookieOptions]?.maxAge ?? this.maxAge
  }

  /** Whether the record's lifetime should be restarted now (rolling, at most once per maxAge / 10). */
  refreshDue (session: Session, now: number): boolean {
    return this.rolling && now - session[kTouched] >= Math.max(1, Math.floor(this.lifetimeOf(session) / 10))
  }

  /** Seconds left from `from`, the backend TTL and cookie Max-Age alike; absoluteMaxAge caps it. */
  ttl (session: Session, from: number, now: number): number {
    let ttl = from + this.lifetimeOf(session) - now
    if (this.absoluteMaxAge > 0) ttl = Math.min(ttl, session[kCreated] + this.absoluteMaxAge - now)
    return Math.max(1, ttl)
  }

  /**
   * Whether a record has outlived its lifetime: `maxAge` (or its own) after its last write or
   * refresh, or `absoluteMaxAge` after its creation. Checked by the core on every record it reads,
   * whatever the store or a cache in front of it says: a store without TTLs, or a client-side cache
   * whose invalidation comes only when Redis's expiry cycle reaches the key, must never hand back a
   * session that has ended.
   */
  expired (record: SessionRecord, now: number): boolean {
    const touched = record.touched
    if (touched !== undefined && touched + (record.cookie?.maxAge ?? this.maxAge) <= now) return true
    return this.absoluteMaxAge > 0 && record.created !== undefined && record.created + this.absoluteMaxAge <= now
  }

  encode (session: Session, touched: number): string {
    const record: SessionRecord = { data: session[kData] }
    if (!session[kPermanent]) record.permanent = false
    if (session[kPin] !== undefined) record.pin = session[kPin]
    record.created = session[kCreated]
    record.touched = touched
    if (session[kCookieOptions] !== undefined) record.cookie = session[kCookieOptions]
    try {
      return this.serializer.stringify(record)
    } catch (err) {
      throw Object.assign(new FST_QUART_SESSION_SERIALIZE((err as Error)?.message ?? String(err)), { cause: err })
    }
  }

  /**
   * A record for a session to own: parsed, or copied from the record last parsed from the same
   * text. Sessions are read far more often than written, so the same text comes back again and
   * again; a deep copy of plain data costs a fraction of parsing it.
   */
  open (text: string): SessionRecord {
    const decoded = this.#decoded
    const known = decoded.get(text)
    if (known !== undefined) return { ...known, data: snapshot(known.data) as Data }
    const record = this.decode(text)
    if (text.length <= DECODED_TEXT_MAX) {
      const copy = snapshot(record.data)
      if (copy !== UNCOMPARABLE) {
        if (decoded.size >= DECODED_MAX) decoded.delete(decoded.keys().next().value as string)
        decoded.set(text, { ...record, data: copy as Data })
      }
    }
    return record
  }

  /** Parse a stored record; throws FST_QUART_SESSION_CORRUPT_RECORD when it is not one of ours. */
  decode (text: string): SessionRecord {
    const max = this.maxRecordBytes
    // Checked before parsing: a huge record costs nothing but this comparison.
    if (text.length > max || (text.length * 3 > max && Buffer.byteLength(text) > max)) {
      throw new FST_QUART_SESSION_CORRUPT_RECORD(`the record is larger than maxRecordBytes (${max} bytes)`)
    }
    let record: unknown
    try {
      record = this.serializer.parse(text)
    } catch (err) {
      throw Object.assign(new FST_QUART_SESSION_CORRUPT_RECORD((err as Error)?.message ?? String(err)), { cause: err })
    }
    if (!isRecord(record)) throw new FST_QUART_SESSION_CORRUPT_RECORD('not a session record ({ data: {...} })')
    return record
  }

  /** The cookie value for the session: the id, signed when a secret is set. */
  cookieValue (session: Session): string {
    const id = session.id
    const signer = this.signer
    if (signer === undefined) return id
    const signed = session[kSigned]
    // The client's own signed value goes back as it came: no HMAC per response.
    if (signed !== undefined && signed.startsWith(id) && signed.charCodeAt(id.length) === 46) return signed
    return signer.sign(id)
  }

  cookieView (session: Session): SessionCookieView {
    const options = { ...this.cookie.options, ...session[kCookieOptions] }
    const maxAge = this.lifetimeOf(session)
    const now = nowSeconds()
    const touched = session[kText] === undefined ? now : session[kTouched]
    return Object.freeze({
      expires: session[kPermanent] ? new Date((now + this.ttl(session, touched, now)) * 1000) : null,
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
  isModified (session: Session): boolean {
    if (session[kDirty] || session[kChanged] !== null || session[kCleared]) return true
    return session[kExposed] !== null && this.#exposedChanged(session)
  }

  /** Whether an object handed out by `get` was mutated since. */
  #exposedChanged (session: Session): boolean {
    const data = session[kData]
    for (const [key, copy] of session[kExposed] as Map<string, unknown>) {
      // Values the copy cannot compare: the serializer's text decides, for the whole record.
      if (copy === UNCOMPARABLE) return this.encode(session, session[kTouched]) !== session[kText]
      if (!unchanged(copy, data[key])) return true
    }
    return false
  }

  /**
   * Write the session if it changed, delete it if it was emptied, refresh its lifetime when due.
   * Records on the session whether the cookie must be sent or expired.
   */
  async persist (session: Session): Promise<void> {
    if (session[kDisabled] !== undefined) return
    const now = nowSeconds()
    let modified = session[kDirty] || session[kChanged] !== null || session[kCleared]
    if (!modified && session[kExposed] !== null) {
      // Objects were handed out: unchanged unless one of them was mutated.
      modified = this.#exposedChanged(session)
      if (!modified) session[kExposed] = null
    }
    if (modified) {
      await this.#write(session, now)
    } else if (session[kText] !== undefined && (session[kTouch] || this.refreshDue(session, now))) {
      await this.#refresh(session, now)
    }
    session[kTouch] = false
  }

  /** Apply this request's changes, compare-and-set against what was read, merge and retry on conflict. */
  async #write (session: Session, now: number): Promise<void> {
    const store = this.store
    let expected = session[kText]
    // Keys whose handed-out objects were mutated: worked out on the first conflict only.
    let mutated: string[] | undefined
    let deadline = 0
    for (let attempt = 1; ; attempt++) {
      const empty = isEmpty(session[kData])
      if (empty && expected === undefined) {
        // Nothing stored and nothing to store: a new session that stayed empty.
        this.#settled(session, undefined, now)
        return
      }
      const text = empty ? undefined : this.#checkSize(this.encode(session, now))
      const key = this.keys.of(session.id)
      const ttl = this.ttl(session, now, now)
      let written: boolean
      try {
        written = await this.#put(key, expected, text, ttl, session[kText] === undefined)
      } catch (err) {
        throw backendError('save', err)
      }
      if (written) {
        this.#settled(session, text, now)
        return
      }
      if (attempt === 1) deadline = Date.now() + RETRY_FOR_MS
      else if (Date.now() > deadline) throw new FST_QUART_SESSION_CONFLICT(attempt)
      else await pause(attempt)
      let latest: string | undefined
      try {
        latest = await store.get(key)
      } catch (err) {
        throw backendError('save', err)
      }
      if (expected === undefined && latest !== undefined && session[kText] === undefined) {
        // A new id that is taken (192 random bits: practically never): take another.
        session[kId] = ''
        continue
      }
      let record: SessionRecord | undefined
      try {
        record = latest === undefined ? undefined : this.decode(latest)
      } catch {
        record = undefined
      }
      if (record !== undefined && this.expired(record, now)) record = undefined
      if (record === undefined) {
        // Destroyed, regenerated or expired since this request read it: the changes die with it,
        // and the id is never written back.
        this.#gone(session)
        return
      }
      mutated ??= this.#mutatedKeys(session)
      session[kData] = this.#merge(session, record.data, mutated)
      if (record.created !== undefined) session[kCreated] = Math.min(record.created, session[kCreated])
      if (session[kCookieOptions] === undefined && record.cookie !== undefined) session[kCookieOptions] = record.cookie
      session[kText] = latest
      expected = latest
    }
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

  /** Restart the record's lifetime: the record is rewritten with its new `touched`, only if it is still the one loaded. */
  async #refresh (session: Session, now: number): Promise<void> {
    const stored = session[kText] as string
    const text = this.encode(session, now)
    const key = this.keys.of(session[kId])
    let latest: string | undefined
    try {
      if (await this.#put(key, stored, text, this.ttl(session, now, now), false)) {
        this.#settled(session, text, now)
        return
      }
      latest = await this.store.get(key)
    } catch (err) {
      throw backendError('save', err)
    }
    // Another request wrote it meanwhile, which refreshed it; or it is gone.
    if (latest === undefined) this.#gone(session)
  }

  #settled (session: Session, text: string | undefined, now: number): void {
    const stored = session[kText]
    session[kDirty] = false
    session[kChanged] = null
    session[kCleared] = false
    session[kExposed] = null
    session[kTouch] = false
    if (text === undefined) {
      if (stored !== undefined) session[kClearCookie] = true
      session[kText] = undefined
      session[kCookie] = false
      return
    }
    session[kText] = text
    session[kTouched] = now
    session[kNew] = false
    session[kCookie] = true
    session[kClearCookie] = false
  }

  /** The session vanished from the backend while this request held it. */
  #gone (session: Session): void {
    session[kId] = ''
    session[kData] = {}
    session[kText] = undefined
    session[kNew] = true
    session[kDirty] = false
    session[kChanged] = null
    session[kCleared] = false
    session[kExposed] = null
    session[kTouch] = false
    session[kCookie] = false
    session[kSigned] = undefined
    session[kClearCookie] = session[kHadCookie] || session[kClearCookie]
  }

  /** Exposed keys whose values now differ from what they were when handed out. */
  #mutatedKeys (session: Session): string[] {
    const exposed = session[kExposed]
    if (exposed === null) return []
    const data = session[kData]
    let original: Data | undefined
    const mutated: string[] = []
    for (const [key, copy] of exposed) {
      if (copy !== UNCOMPARABLE) {
        if (!unchanged(copy, data[key])) mutated.push(key)
        continue
      }
      // No copy to compare with: compare the serializer's text with the record this request loaded.
      if (original === undefined) {
        try {
          original = session[kText] === undefined ? {} : this.decode(session[kText]).data
        } catch {
          original = {}
        }
      }
      if (Object.hasOwn(data, key) !== Object.hasOwn(original, key) ||
          this.serializer.stringify(data[key]) !== this.serializer.stringify(original[key])) mutated.push(key)
    }
    return mutated
  }

  /** This request's changes, key by key, on top of the latest stored data. */
  #merge (session: Session, latest: Data, mutated: string[]): Data {
    const data = session[kData]
    const merged: Data = session[kCleared] ? {} : latest
    const apply = (key: string): void => {
      if (Object.hasOwn(data, key)) merged[key] = data[key]
      else delete merged[key]
    }
    const changed = session[kChanged]
    if (changed !== null) for (const key of changed) apply(key)
    for (const key of mutated) apply(key)
    return merged
  }

  #checkSize (text: string): string {
    const max = this.maxRecordBytes
    if (text.length * 3 > max) {
      const bytes = Buffer.byteLength(text)
      if (bytes > max) throw new FST_QUART_SESSION_VALUE_TOO_LARGE(bytes, max)
    }
    return text
  }

  /** New id, old record removed, data emptied except `keep`. */
  async regenerate (session: Session, keep: string[] | undefined): Promise<void> {
    const stored = session[kText]
    if (stored !== undefined) await this.remove(session[kId])
    if (stored !== undefined || session[kHadCookie]) session[kClearCookie] = true
    const data = session[kData]
    const kept: Data = {}
    if (keep !== undefined) for (const key of keep) if (Object.hasOwn(data, key)) kept[key] = data[key]
    const now = nowSeconds()
    session[kId] = ''
    session[kData] = kept
    session[kText] = undefined
    session[kNew] = true
    session[kSigned] = undefined
    session[kChanged] = null
    session[kCleared] = false
    session[kExposed] = null
    session[kCookie] = false
    session[kCreated] = now
    session[kTouched] = now
    session[kDirty] = true
  }

  /** Remove the record now and empty the session; its cookie is expired at the end of the request. */
  async destroy (session: Session): Promise<void> {
    const stored = session[kText]
    if (stored !== undefined) await this.remove(session[kId])
    const hadCookie = stored !== undefined || session[kHadCookie] || session[kClearCookie]
    const now = nowSeconds()
    this.#gone(session)
    session[kClearCookie] = hadCookie
    session[kPermanent] = this.permanent
    session[kCreated] = now
    session[kTouched] = now
  }

  /** Discard unsaved changes and read the session again. */
  async reload (session: Session): Promise<void> {
    const stored = session[kText]
    let text: string | undefined
    try {
      text = stored === undefined ? undefined : await this.read(session[kId])
    } catch (err) {
      throw backendError('read', err)
    }
    let record: SessionRecord | undefined
    try {
      record = text === undefined ? undefined : this.decode(text)
    } catch {
      record = undefined
    }
    if (record !== undefined && this.expired(record, nowSeconds())) record = undefined
    if (record === undefined && stored !== undefined) {
      this.#gone(session)
      return
    }
    const now = nowSeconds()
    session[kData] = record?.data ?? {}
    session[kPermanent] = record === undefined ? this.permanent : record.permanent !== false
    session[kText] = record === undefined ? undefined : text
    session[kNew] = record === undefined
    session[kCreated] = record?.created ?? now
    session[kTouched] = record?.touched ?? now
    session[kCookieOptions] = record?.cookie
    session[kDirty] = false
    session[kChanged] = null
    session[kCleared] = false
    session[kExposed] = null
  }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function isTime (value: unknown): boolean {
  return value === undefined || (typeof value === 'number' && Number.isFinite(value))
}

function isRecord (value: unknown): value is SessionRecord {
  if (!isPlainObject(value)) return false
  const { data, permanent, pin, created, touched, cookie } = value
  if (!isPlainObject(data) || (permanent !== undefined && permanent !== false) ||
      (pin !== undefined && typeof pin !== 'string') || !isTime(created) || !isTime(touched)) return false
  if (cookie === undefined) return true
  try {
    return isPlainObject(cookie) && checkSessionCookieOptions(cookie) !== undefined
  } catch {
    return false
  }
}

// Errors whose message is safe for a client to read, as they come.
const PUBLIC_CODES = new Set(['FST_QUART_SESSION_TIMEOUT', 'FST_QUART_SESSION_VALUE_TOO_LARGE', 'FST_QUART_SESSION_CONFLICT', 'FST_QUART_SESSION_CORRUPT_RECORD', 'FST_QUART_SESSION_SERIALIZE'])

/**
 * The error a request fails with when the backend does: a code and a short message, the
 * backend's own words kept in `cause` for the log, never in the reply.
 */
export function backendError (operation: string, err: unknown): Error {
  const code = (err as { code?: unknown })?.code
  if (typeof code === 'string' && PUBLIC_CODES.has(code)) return err as Error
  return Object.assign(new FST_QUART_SESSION_BACKEND(operation), { cause: err })
}

export type { Data, SessionCookieOptions }
