import type { SessionData } from '../types/index.js'
import type { Backend } from './backend.js'
import { FST_QUART_SESSION_DISABLED, FST_QUART_SESSION_INVALID_KEY } from './errors.js'
import { generateId } from './id.js'
import {
  kBackend, kClearCookie, kCookie, kData, kDirty, kDone, kExposed, kId, kNew, kPermanent, kPin, kSigned, kText, kTouch
} from './symbols.js'

/**
 * Session data as held in memory: a plain object, read only through own keys (`Object.hasOwn`), so
 * no key ever reaches Object.prototype. Plain rather than null-prototype: devalue writes and reads
 * it on its fast path, and the stored record stays plain JSON-like data for other programs.
 */
export type Data = Record<string, unknown>

/** What is stored in the backend under `keyPrefix + id`, through the serializer. */
export interface SessionRecord {
  data: Data
  /** Present (false) only for browser-session cookies. */
  permanent?: false
  /** Keyed hash of the client address, with `protection`. */
  pin?: string
}

/**
 * A session. Reads are plain property reads; `set`/`delete`/`clear` flip a dirty flag, and only
 * when `get` has handed out an object (which the caller may mutate) is the data serialized again
 * at the end of the request and compared with the text that was loaded.
 */
export class Session {
  [kBackend]: Backend
  [kId]: string
  [kData]: Data
  /** The record text as the backend holds it; undefined = nothing stored under this id. */
  [kText]: string | undefined
  [kNew]: boolean
  [kPermanent]: boolean
  [kPin]: string | undefined
  [kDirty]: boolean
  [kExposed]: boolean
  [kTouch]: boolean
  /** The cookie must be (re)sent at the end of the request. */
  [kCookie]: boolean
  /** The client holds a cookie for a session that no longer exists: expire it. */
  [kClearCookie]: boolean
  /** The save hook has run for this request. */
  [kDone]: boolean
  [kSigned]: string | undefined

  constructor (backend: Backend, id: string, data: Data, text: string | undefined, permanent: boolean, pin: string | undefined) {
    this[kBackend] = backend
    this[kId] = id
    this[kData] = data
    this[kText] = text
    this[kNew] = text === undefined
    this[kPermanent] = permanent
    this[kPin] = pin
    this[kDirty] = false
    this[kExposed] = false
    this[kTouch] = false
    this[kCookie] = false
    this[kClearCookie] = false
    this[kDone] = false
    this[kSigned] = undefined
  }

  /** The session id (the cookie carries it, signed when a secret is set). */
  get id (): string {
    // A fresh session gets its id when something needs it: most never do (nothing stored).
    if (this[kId] === '') this[kId] = generateId()
    return this[kId]
  }

  /** True when this session was not loaded from the backend in this request. */
  get isNew (): boolean { return this[kNew] }

  /** `false` makes the cookie a browser-session cookie (no Expires); the backend TTL still applies. */
  get permanent (): boolean { return this[kPermanent] }
  set permanent (value: boolean) {
    if (typeof value !== 'boolean') throw new TypeError('session.permanent must be a boolean')
    if (value === this[kPermanent]) return
    this[kPermanent] = value
    this[kDirty] = true
  }

  get<Key extends keyof SessionData> (key: Key): SessionData[Key] | undefined {
    const data = this[kData]
    const value = Object.hasOwn(data, key) ? data[key as string] : undefined
    // The caller may mutate what it gets back; remember to compare at the end of the request.
    if (typeof value === 'object' && value !== null) this[kExposed] = true
    return value as SessionData[Key] | undefined
  }

  set<Key extends keyof SessionData> (key: Key, value: SessionData[Key]): void {
    if (typeof key !== 'string' || (key as string) === '__proto__') throw new FST_QUART_SESSION_INVALID_KEY(String(key))
    const data = this[kData]
    // Setting a primitive to the value it already has changes nothing, so it costs no write.
    if (data[key] === value && (typeof value !== 'object' || value === null) && Object.hasOwn(data, key)) return
    data[key] = value
    this[kDirty] = true
  }

  delete<Key extends keyof SessionData> (key: Key): void {
    const data = this[kData]
    if (!Object.hasOwn(data, key)) return
    delete data[key as string]
    this[kDirty] = true
  }

  has<Key extends keyof SessionData> (key: Key): boolean {
    return Object.hasOwn(this[kData], key)
  }

  /** Remove every key. A stored session emptied this way is deleted at the end of the request. */
  clear (): void {
    if (isEmpty(this[kData])) return
    this[kData] = {}
    this[kDirty] = true
  }

  /** Restart the session's lifetime at the end of this request, even if nothing changed. */
  touch (): void {
    this[kTouch] = true
  }

  /**
   * Give the session a new id, keeping its data, and remove the old record now. Call it when
   * the user's privileges change (log in) so an id planted before login is worthless after it.
   */
  async regenerate (): Promise<void> {
    const backend = this[kBackend]
    if (this[kText] !== undefined) {
      await backend.remove(this[kId])
      // Should the data end up empty, the client's cookie would point at nothing.
      this[kClearCookie] = true
    }
    this[kId] = ''
    this[kText] = undefined
    this[kNew] = true
    this[kDirty] = true
  }

  /** Remove the record now and empty the session; the cookie is expired at the end of the request. */
  async destroy (): Promise<void> {
    const backend = this[kBackend]
    if (this[kText] !== undefined) {
      await backend.remove(this[kId])
      this[kClearCookie] = true
    }
    this[kId] = ''
    this[kData] = {}
    this[kText] = undefined
    this[kNew] = true
    this[kPermanent] = backend.permanent
    this[kDirty] = false
    this[kExposed] = false
    this[kTouch] = false
    this[kCookie] = false
  }

  /** Write the session now if it changed (the save hook would do it at the end of the request). */
  async save (): Promise<void> {
    await this[kBackend].persist(this)
  }

  /** Discard unsaved changes and read the session again from the backend. */
  async reload (): Promise<void> {
    const backend = this[kBackend]
    const text = this[kText] === undefined ? undefined : await backend.read(this[kId])
    let record: SessionRecord | undefined
    try {
      record = text === undefined ? undefined : backend.decode(text)
    } catch {
      record = undefined
    }
    this[kData] = record?.data ?? {}
    this[kPermanent] = record === undefined ? backend.permanent : record.permanent !== false
    this[kText] = record === undefined ? undefined : text
    this[kNew] = record === undefined
    this[kDirty] = false
    this[kExposed] = false
  }
}

export function isEmpty (data: Data): boolean {
  for (const _ in data) return false
  return true
}

/**
 * What `request.session` is on routes without sessions (static files, `config.session: false`):
 * reads find nothing, writes throw, so a missing opt-in is loud instead of silently lost.
 */
export class DisabledSession extends Session {
  constructor (backend: Backend) {
    super(backend, '', Object.freeze({}) as Data, undefined, backend.permanent, undefined)
  }

  override get id (): string { return '' }
  override get permanent (): boolean { return false }
  override set permanent (_value: boolean) { throw new FST_QUART_SESSION_DISABLED('permanent') }
  override set (): void { throw new FST_QUART_SESSION_DISABLED('set') }
  override delete (): void { throw new FST_QUART_SESSION_DISABLED('delete') }
  override clear (): void { throw new FST_QUART_SESSION_DISABLED('clear') }
  override touch (): void { throw new FST_QUART_SESSION_DISABLED('touch') }
  override async regenerate (): Promise<void> { throw new FST_QUART_SESSION_DISABLED('regenerate') }
  override async destroy (): Promise<void> { throw new FST_QUART_SESSION_DISABLED('destroy') }
  override async save (): Promise<void> { throw new FST_QUART_SESSION_DISABLED('save') }
  override async reload (): Promise<void> { throw new FST_QUART_SESSION_DISABLED('reload') }
}
