import type { SessionKey, SessionValue } from '../types/index.js'
import type { Backend } from './backend.js'
import { FST_QUART_SESSION_CALLBACK, FST_QUART_SESSION_DISABLED, FST_QUART_SESSION_INVALID_ARGUMENT, FST_QUART_SESSION_INVALID_KEY } from './errors.js'
import { generateId } from './id.js'
import { UNCOMPARABLE, snapshot } from './snapshot.js'
import { type SessionCookieOptions, checkSessionCookieOptions } from './cookie.js'
import {
  kBackend, kChanged, kClearCookie, kCleared, kCookie, kCookieOptions, kCreated, kData, kDirty, kDisabled, kDone,
  kExposed, kHadCookie, kId, kNew, kPermanent, kPin, kProxy, kSigned, kText, kTouch, kTouched
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
  /** Seconds since the epoch: creation or last `regenerate()` (for `absoluteMaxAge`). */
  created?: number
  /** Seconds since the epoch: last write or refresh (the lifetime counts from here). */
  touched?: number
  /** Cookie settings given by `session.options()`; `maxAge` in seconds. */
  cookie?: SessionCookieOptions
}

/** A Node callback, taken by every asynchronous verb as its last argument. */
export type Callback = (err: Error | null) => void

/** The session's cookie as it is (or will be) sent; read-only. Durations in seconds. */
export interface SessionCookieView {
  readonly expires: Date | null
  /** Seconds the session lives after its last use (`rolling`) or write. */
  readonly maxAge: number
  /** `maxAge` in milliseconds, as express-session names it. */
  readonly originalMaxAge: number
  readonly path: string
  readonly domain: string | undefined
  readonly httpOnly: boolean
  readonly secure: boolean | 'auto'
  readonly sameSite: 'lax' | 'strict' | 'none' | boolean
  readonly partitioned: boolean | undefined
  readonly priority: 'low' | 'medium' | 'high' | undefined
}

const NO_CALLBACK = undefined

/**
 * A session. Reads are plain property reads; `set`/`delete`/`clear` record the keys they change,
 * and only when `get` has handed out an object (which the caller may mutate) is that data
 * serialized again at the end of the request and compared with the text that was loaded. The
 * names of changed keys are what lets a save merge onto a record another request wrote meanwhile.
 *
 * `request.session` is this object behind a Proxy that maps property access (`session.user = x`,
 * `delete session.user`) onto the same methods; the plugin's own code uses the object itself.
 */
export class Session {
  [kBackend]: Backend
  [kId]: string
  [kData]: Data
  [kText]: string | undefined
  [kNew]: boolean
  [kPermanent]: boolean
  [kPin]: string | undefined
  [kDirty]: boolean
  [kChanged]: Set<string> | null
  [kCleared]: boolean
  /** Keys whose object value was handed out, with a copy of what it was then. */
  [kExposed]: Map<string, unknown> | null
  [kTouch]: boolean
  [kCookie]: boolean
  [kClearCookie]: boolean
  [kDone]: boolean
  [kSigned]: string | undefined
  [kCreated]: number
  [kTouched]: number
  [kCookieOptions]: SessionCookieOptions | undefined
  [kProxy]: Session | undefined
  [kDisabled]: string | undefined
  [kHadCookie]: boolean

  constructor (backend: Backend, id: string, data: Data, text: string | undefined, permanent: boolean, pin: string | undefined, created: number, touched: number) {
    this[kBackend] = backend
    this[kId] = id
    this[kData] = data
    this[kText] = text
    this[kNew] = text === undefined
    this[kPermanent] = permanent
    this[kPin] = pin
    this[kDirty] = false
    this[kChanged] = null
    this[kCleared] = false
    this[kExposed] = null
    this[kTouch] = false
    this[kCookie] = false
    this[kClearCookie] = false
    this[kDone] = false
    this[kSigned] = undefined
    this[kCreated] = created
    this[kTouched] = touched
    this[kCookieOptions] = undefined
    this[kProxy] = undefined
    this[kDisabled] = undefined
    this[kHadCookie] = false
  }

  /** The session id (the cookie carries it, signed when a secret is set). */
  get id (): string {
    // A fresh session gets its id when something needs it: most never do (nothing stored).
    if (this[kId] === '') this[kId] = generateId()
    return this[kId]
  }

  /** The session id, as @fastify/session names it. */
  get sessionId (): string { return this.id }

  /** The cookie value: the id, signed when a secret is set. */
  get encryptedSessionId (): string { return this[kBackend].cookieValue(this) }

  /** True when this session was not loaded from the backend in this request. */
  get isNew (): boolean { return this[kNew] }

  /** `false` makes the cookie a browser-session cookie (no Expires); the backend TTL still applies. */
  get permanent (): boolean { return this[kPermanent] }
  set permanent (value: boolean) {
    if (typeof value !== 'boolean') throw new FST_QUART_SESSION_INVALID_ARGUMENT('permanent', 'must be true or false')
    if (value === this[kPermanent]) return
    this[kPermanent] = value
    this[kDirty] = true
  }

  /** The cookie this session sends: attributes, lifetime in seconds, expiry. Read-only. */
  get cookie (): SessionCookieView { return this[kBackend].cookieView(this) }

  get<Key extends SessionKey> (key: Key): SessionValue<Key> | undefined {
    const data = this[kData]
    const value = Object.hasOwn(data, key) ? data[key] : undefined
    // The caller may mutate what it gets back: compare it at the end of the request.
    if (typeof value === 'object' && value !== null) expose(this, key, value)
    return value as SessionValue<Key> | undefined
  }

  /** Store `value` under `key`; `undefined` removes the key, like `delete`. */
  set<Key extends SessionKey> (key: Key, value: SessionValue<Key>): void {
    if (typeof key !== 'string' || (key as string) === '__proto__') throw new FST_QUART_SESSION_INVALID_KEY(String(key))
    if (value === undefined) {
      this.delete(key)
      return
    }
    const data = this[kData]
    const had = Object.hasOwn(data, key)
    if (typeof value !== 'object' || value === null) {
      // Setting a primitive to the value it already has changes nothing, so it costs no write.
      if (had && data[key] === value) return
    } else if (had && this[kChanged]?.has(key) !== true) {
      // An object in place of the loaded one (`set('flash', {})` on every page) is a change only if
      // it differs: compared at the end, like an object handed out by `get`.
      const exposed = this[kExposed] ??= new Map()
      const baseline = exposed.has(key) ? exposed.get(key) : snapshot(data[key])
      if (baseline !== UNCOMPARABLE) {
        exposed.set(key, baseline)
        data[key] = value
        return
      }
    }
    data[key] = value
    changed(this).add(key)
  }

  delete<Key extends SessionKey> (key: Key): void {
    if (key === undefined) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', 'session.delete() needs the key to remove; to end the whole session call session.destroy()')
    }
    const data = this[kData]
    if (!Object.hasOwn(data, key)) return
    delete data[key]
    changed(this).add(key)
  }

  has<Key extends SessionKey> (key: Key): boolean {
    return Object.hasOwn(this[kData], key)
  }

  /** Remove every key. A stored session emptied this way is deleted at the end of the request. */
  clear (): void {
    if (isEmpty(this[kData])) return
    this[kData] = {}
    this[kCleared] = true
    this[kChanged] = null
    this[kExposed] = null
  }

  /** Restart the session's lifetime at the end of this request, even if nothing changed. */
  touch (): void {
    this[kTouch] = true
  }

  /** A shallow copy of the data (the values are the session's own: mutations are detected). */
  data (): Data {
    const data = this[kData]
    for (const key in data) {
      const value = data[key]
      if (typeof value === 'object' && value !== null) expose(this, key, value)
    }
    return { ...data }
  }

  /** Whether the data differs from what is stored (or the session is new and holds data). */
  isModified (): boolean {
    return this[kBackend].isModified(this)
  }

  /** Whether the session is stored and this request changed nothing since. */
  isSaved (): boolean {
    return this[kText] !== undefined && !this[kBackend].isModified(this)
  }

  /**
   * Settings for this session's cookie: `maxAge` (seconds: the session's own lifetime, e.g. a
   * longer one for "remember me") and the cookie attributes. Stored with the session. Names that
   * are not cookie settings are ignored, so plugins written for @fastify/secure-session work.
   */
  options (cookieOptions: Record<string, unknown>): void {
    const picked = checkSessionCookieOptions(cookieOptions, { ...this[kBackend].cookie.options, ...this[kCookieOptions] })
    if (picked === undefined) return
    this[kCookieOptions] = { ...this[kCookieOptions], ...picked }
    this[kDirty] = true
  }

  /**
   * Give the session a new id and remove the old record now; the data is emptied except the keys
   * listed (call it at login: an id planted before login is worthless after it). To keep
   * everything, Flask-Session style: `session.regenerate(Object.keys(session.data()))`.
   */
  regenerate (keepKeys?: string[]): Promise<void>
  regenerate (callback: Callback): void
  regenerate (keepKeys: string[] | undefined, callback: Callback): void
  regenerate (keepKeysOrCallback?: string[] | Callback, callback?: Callback): Promise<void> | undefined {
    const keep = typeof keepKeysOrCallback === 'function' ? undefined : keepKeysOrCallback
    const cb = typeof keepKeysOrCallback === 'function' ? keepKeysOrCallback : callback
    if (keep !== undefined && (!Array.isArray(keep) || !keep.every((k) => typeof k === 'string'))) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('keepKeys', 'must be an array of key names')
    }
    return settle('regenerate', this[kBackend].regenerate(this, keep), cb)
  }

  /** Remove the record now and empty the session; the cookie is expired at the end of the request. */
  destroy (): Promise<void>
  destroy (callback: Callback): void
  destroy (callback?: Callback): Promise<void> | undefined {
    return settle('destroy', this[kBackend].destroy(this), callback)
  }

  /** Write the session now if it changed (the save hook would do it at the end of the request). */
  save (): Promise<void>
  save (callback: Callback): void
  save (callback?: Callback): Promise<void> | undefined {
    return settle('save', this[kBackend].persist(this), callback)
  }

  /** Discard unsaved changes and read the session again from the backend. */
  reload (): Promise<void>
  reload (callback: Callback): void
  reload (callback?: Callback): Promise<void> | undefined {
    return settle('reload', this[kBackend].reload(this), callback)
  }
}

function changed (session: Session): Set<string> {
  return session[kChanged] ??= new Set()
}

/** Remember what an object was when it was first handed out, to compare at the end of the request. */
function expose (session: Session, key: string, value: unknown): void {
  const exposed = session[kExposed] ??= new Map()
  if (!exposed.has(key)) exposed.set(key, snapshot(value))
}

/** Promise, or Node callback when one is given (errors then go to the callback, never thrown). */
function settle (verb: string, promise: Promise<void>, callback: Callback | undefined): Promise<void> | undefined {
  if (callback === NO_CALLBACK) return promise
  if (typeof callback !== 'function') {
    promise.catch(() => {})
    throw new FST_QUART_SESSION_CALLBACK(verb)
  }
  promise.then(() => { callback(null) }, (err: Error) => { callback(err) })
  return undefined
}

/** Whether a save has anything to look at (set, delete, clear, handed-out objects, other changes). */
export function mayHaveChanged (session: Session): boolean {
  return session[kDirty] || session[kChanged] !== null || session[kCleared] || session[kExposed] !== null
}

export function isEmpty (data: Data): boolean {
  for (const _ in data) return false
  return true
}

const disabledVerb = (session: Session, verb: string): Error => new FST_QUART_SESSION_DISABLED(verb, session[kDisabled] as string)
const rejectDisabled = (session: Session, verb: string, callback?: Callback | string[]): Promise<void> | undefined => {
  const cb = typeof callback === 'function' ? callback : undefined
  return settle(verb, Promise.reject(disabledVerb(session, verb)), cb)
}

/**
 * What `request.session` is where a request has no session (static files, `config.session:
 * false`, a route outside the plugin's scope): one per request, reads find nothing, writes throw
 * an error that names the reason, so a missing opt-in is loud instead of silently lost.
 */
export class DisabledSession extends Session {
  constructor (backend: Backend, reason: string) {
    super(backend, '', Object.freeze({}) as Data, undefined, false, undefined, 0, 0)
    this[kDisabled] = reason
    this[kDone] = true
  }

  override get id (): string { return '' }
  override get permanent (): boolean { return false }
  override set permanent (_value: boolean) { throw disabledVerb(this, 'permanent') }
  override set (): void { throw disabledVerb(this, 'set') }
  override delete (): void { throw disabledVerb(this, 'delete') }
  override clear (): void { throw disabledVerb(this, 'clear') }
  override touch (): void { throw disabledVerb(this, 'touch') }
  override options (): void { throw disabledVerb(this, 'options') }
  override isModified (): boolean { return false }
  override isSaved (): boolean { return false }
  override regenerate (a?: string[] | Callback, b?: Callback): any { return rejectDisabled(this, 'regenerate', typeof a === 'function' ? a : b) }
  override destroy (cb?: Callback): any { return rejectDisabled(this, 'destroy', cb) }
  override save (cb?: Callback): any { return rejectDisabled(this, 'save', cb) }
  override reload (cb?: Callback): any { return rejectDisabled(this, 'reload', cb) }
}

/**
 * Property access to the data, for code written for @fastify/session (`session.user = x`,
 * `delete session.user`, `'user' in session`, `Object.keys(session)`). Names of the session's own
 * members (`id`, `get`, `cookie`…) stay members: use `get`/`set` for data keys of those names.
 */
const dataAccess: ProxyHandler<Session> = {
  get (target, prop) {
    if (typeof prop === 'symbol' || prop in target) {
      const value = (target as any)[prop]
      // Methods run on the session itself: their private state is then read without a trap each.
      return typeof value === 'function' && prop !== 'constructor' ? value.bind(target) : value
    }
    return target.get(prop as SessionKey)
  },
  set (target, prop, value) {
    if (typeof prop === 'symbol' || prop in target) {
      (target as any)[prop] = value
      return true
    }
    target.set(prop as SessionKey, value)
    return true
  },
  deleteProperty (target, prop) {
    if (typeof prop === 'symbol' || prop in target) return false
    target.delete(prop as SessionKey)
    return true
  },
  has (target, prop) {
    return prop in target || (typeof prop === 'string' && target.has(prop as SessionKey))
  },
  ownKeys (target) {
    return Object.keys(target[kData])
  },
  getOwnPropertyDescriptor (target, prop) {
    if (typeof prop !== 'string' || !Object.hasOwn(target[kData], prop)) return undefined
    return { value: target.get(prop as SessionKey), writable: true, enumerable: true, configurable: true }
  },
  defineProperty (target, prop, descriptor) {
    if (typeof prop === 'symbol' || !('value' in descriptor)) return false
    target.set(prop as SessionKey, descriptor.value)
    return true
  }
}

/** The object `request.session` gives out. */
export function exposeSession (session: Session): Session {
  return session[kProxy] ??= new Proxy(session, dataAccess)
}
