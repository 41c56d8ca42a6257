import type { SessionKey, SessionValue } from '../types/index.js'
import type { Backend } from './backend.js'
import type { Data } from './record.js'
import { FST_QUART_SESSION_CALLBACK, FST_QUART_SESSION_DISABLED, FST_QUART_SESSION_INVALID_ARGUMENT, FST_QUART_SESSION_INVALID_KEY } from './errors.js'
import { UNCOMPARABLE, snapshot } from './snapshot.js'
import { define } from './merge.js'
import { type SessionCookieOptions, checkSessionCookieOptions } from './cookie.js'
import { SessionState } from './state.js'
import { kBackend, kProxy, kState } from './symbols.js'

export type { Data, SessionRecord } from './record.js'

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
 * A session. Reads are plain property reads; `set`/`delete`/`clear` mark the session changed, and
 * only when `get` has handed out an object (which the caller may mutate) is that value compared
 * at the end of the request with a copy taken when it was handed out. Its state (lib/state.ts) is
 * one object the backend changes through named transitions.
 *
 * `request.session` is this object behind a Proxy that maps property access (`session.user = x`,
 * `delete session.user`) onto the same methods; the plugin's own code uses the object itself.
 */
export class Session {
  [kBackend]: Backend
  [kState]: SessionState
  [kProxy]: Session | undefined

  constructor (backend: Backend, state: SessionState) {
    this[kBackend] = backend
    this[kState] = state
    this[kProxy] = undefined
  }

  /** The session id (the cookie carries it, signed when a secret is set). */
  get id (): string {
    return this[kState].ensureId()
  }

  /** The session id, as @fastify/session names it. */
  get sessionId (): string { return this.id }

  /** The cookie value: the id, signed when a secret is set. */
  get encryptedSessionId (): string {
    this.id
    return this[kBackend].cookieValue(this[kState])
  }

  /** Opaque handle of this session in its user's list (not the id: it can only revoke). */
  get handle (): string { return this[kBackend].handleOf(this.id) }

  /** True when this session was not loaded from the backend in this request. */
  get isNew (): boolean { return this[kState].isNew }

  /** `false` makes the cookie a browser-session cookie (no Expires); the backend TTL still applies. */
  get permanent (): boolean { return this[kState].permanent }
  set permanent (value: boolean) {
    if (typeof value !== 'boolean') throw new FST_QUART_SESSION_INVALID_ARGUMENT('permanent', 'must be true or false')
    const state = this[kState]
    if (value === state.permanent) return
    state.permanent = value
    state.changes.cookie = true
    changed(state)
  }

  /** The cookie this session sends: attributes, lifetime in seconds, expiry. Read-only. */
  get cookie (): SessionCookieView { return this[kBackend].cookieView(this[kState]) }

  get<Key extends SessionKey> (key: Key): SessionValue<Key> | undefined {
    const state = this[kState]
    const data = state.data
    const value = Object.hasOwn(data, key) ? data[key] : undefined
    // The caller may mutate what it gets back: compare it at the end of the request.
    if (typeof value === 'object' && value !== null) return handOut(state, key, value) as SessionValue<Key>
    return value as SessionValue<Key> | undefined
  }

  /** Store `value` under `key`; `undefined` removes the key, like `delete`. */
  set<Key extends SessionKey> (key: Key, value: SessionValue<Key>): void {
    if (typeof key !== 'string' || (key as string) === '__proto__') throw new FST_QUART_SESSION_INVALID_KEY(String(key))
    if (value === undefined) {
      this.delete(key)
      return
    }
    const state = this[kState]
    const data = state.data
    const changes = state.changes
    const had = Object.hasOwn(data, key)
    if (typeof value !== 'object' || value === null) {
      // Setting a primitive to the value it already has changes nothing, so it costs no write.
      if (had && data[key] === value) return
    } else if (had && !changes.dirty) {
      // An object in place of the loaded one (`set('flash', {})` on every page) is a change only if
      // it differs: compared at the end, like an object handed out by `get`.
      const exposed = changes.exposed ??= new Map()
      const loaded = data[key]
      // The parse cache's own object is never mutated: it is its own baseline.
      const baseline = exposed.has(key) ? exposed.get(key) : isShared(state, key, loaded) ? loaded : snapshot(loaded)
      if (baseline !== UNCOMPARABLE) {
        exposed.set(key, baseline)
        data[key] = value
        replaced(state, key)
        return
      }
    }
    data[key] = value
    replaced(state, key)
    changed(state)
  }

  delete<Key extends SessionKey> (key: Key): void {
    if (key === undefined) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('key', 'session.delete() needs the key to remove; to end the whole session call session.destroy()')
    }
    const state = this[kState]
    if (!Object.hasOwn(state.data, key)) return
    delete state.data[key]
    replaced(state, key)
    changed(state)
  }

  has<Key extends SessionKey> (key: Key): boolean {
    return Object.hasOwn(this[kState].data, key)
  }

  /** Remove every key. A stored session emptied this way is deleted at the end of the request. */
  clear (): void {
    const state = this[kState]
    if (state.empty) return
    state.data = {}
    state.changes.cleared = true
    state.changes.exposed = null
    state.changes.version++
  }

  /** Restart the session's lifetime at the end of this request, even if nothing changed. */
  touch (): void {
    this[kState].changes.touch = true
  }

  /** A shallow copy of the data (the values are the session's own: mutations are detected). */
  data (): Data {
    const state = this[kState]
    const data = state.data
    for (const key in data) {
      const value = data[key]
      if (typeof value === 'object' && value !== null) handOut(state, key, value)
    }
    return { ...data }
  }

  /** Whether the data differs from what is stored (or the session is new and holds data). */
  isModified (): boolean {
    return this[kBackend].isModified(this[kState])
  }

  /** Whether the session is stored and this request changed nothing since. */
  isSaved (): boolean {
    const state = this[kState]
    return state.stored !== undefined && !this[kBackend].isModified(state)
  }

  /**
   * Settings for this session's cookie: `maxAge` (seconds: the session's own lifetime, e.g. a
   * longer one for "remember me", which also makes a browser-session cookie persistent) and the
   * cookie attributes. Stored with the session. Names that are not cookie settings are ignored, so
   * plugins written for @fastify/secure-session work.
   */
  options (cookieOptions: Record<string, unknown>): void {
    const state = this[kState]
    const picked = checkSessionCookieOptions(cookieOptions, { ...this[kBackend].cookie.options, ...state.cookieOptions })
    if (picked === undefined) return
    state.cookieOptions = { ...state.cookieOptions, ...picked }
    state.changes.cookie = true
    changed(state)
  }

  /**
   * Atomic read-modify-write of one key, saved now: `fn` gets the latest stored value of `key`
   * (other requests' saves included) and returns the new one; on a conflict it runs again on the
   * newer value, so `fn` must be pure. Resolves with the value stored.
   */
  update<Key extends SessionKey> (key: Key, fn: (value: SessionValue<Key> | undefined) => SessionValue<Key>): Promise<SessionValue<Key>> {
    if (typeof key !== 'string' || (key as string) === '__proto__') throw new FST_QUART_SESSION_INVALID_KEY(String(key))
    if (typeof fn !== 'function') throw new FST_QUART_SESSION_INVALID_ARGUMENT('fn', 'must be a function (value) => newValue')
    const state = this[kState]
    const applied = new Promise<SessionValue<Key>>((resolve, reject) => {
      (state.changes.updates ??= []).push({ key, fn: fn as (value: unknown) => unknown, applied: resolve as (value: unknown) => void, failed: reject })
    })
    state.changes.version++
    const saved = this[kBackend].persist(state)
    const result = Promise.all([applied, saved]).then(([value]) => value)
    // Nobody may be awaiting it (update() without await): the failure then fails the request.
    result.catch((err: Error) => { state.failure ??= err })
    return result
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
    return settle(this[kState], 'regenerate', this[kBackend].regenerate(this[kState], keep), cb)
  }

  /** Remove the record now and empty the session; the cookie is expired at the end of the request. */
  destroy (): Promise<void>
  destroy (callback: Callback): void
  destroy (callback?: Callback): Promise<void> | undefined {
    return settle(this[kState], 'destroy', this[kBackend].destroy(this[kState]), callback)
  }

  /** Write the session now if it changed (the save hook would do it at the end of the request). */
  save (): Promise<void>
  save (callback: Callback): void
  save (callback?: Callback): Promise<void> | undefined {
    return settle(this[kState], 'save', this[kBackend].persist(this[kState]), callback)
  }

  /** Discard unsaved changes and read the session again from the backend. */
  reload (): Promise<void>
  reload (callback: Callback): void
  reload (callback?: Callback): Promise<void> | undefined {
    return settle(this[kState], 'reload', this[kBackend].reload(this[kState]), callback)
  }
}

/** `key` has this request's whole value (or none): a merge with a concurrent save keeps it as it is. */
function replaced (state: SessionState, key: string): void {
  (state.changes.replaced ??= new Set()).add(key)
  state.changes.version++
}

function changed (state: SessionState): void {
  state.changes.dirty = true
  state.changes.version++
}

/** Remember what an object was when it was first handed out, to compare at the end of the request. */
function expose (state: SessionState, key: string, value: unknown): void {
  const exposed = state.changes.exposed ??= new Map()
  if (!exposed.has(key)) exposed.set(key, snapshot(value))
}

/** Whether `value`, under `key` of the session's data, is still the parse cache's own object. */
function isShared (state: SessionState, key: string, value: unknown): boolean {
  const shared = state.shared
  return shared !== undefined && Object.hasOwn(shared, key) && shared[key] === value
}

/**
 * An object of the data, for a caller that may mutate it. One still shared with the parse cache
 * (a loaded session copies only what it hands out) is first replaced by a copy of its own, and
 * the cache's object is what the copy is compared against at the end of the request; any other
 * is copied to compare against, as it is now.
 */
function handOut (state: SessionState, key: string, value: object): unknown {
  if (isShared(state, key, value)) {
    // The cache keeps only data a copy can compare, so this copy never fails.
    const own = snapshot(value)
    if (own !== UNCOMPARABLE) {
      define(state.data, key, own)
      const exposed = state.changes.exposed ??= new Map()
      if (!exposed.has(key)) exposed.set(key, value)
      return own
    }
  }
  expose(state, key, value)
  return value
}

/**
 * Promise, or Node callback when one is given (errors then go to the callback, never thrown). A
 * failure nobody handles (an un-awaited verb, a callback that throws) never becomes an unhandled
 * rejection that ends the process: it is kept on the session and fails the request at its save.
 */
function settle (state: SessionState, verb: string, promise: Promise<void>, callback: Callback | undefined): Promise<void> | undefined {
  promise.catch((err: Error) => { state.failure ??= err })
  if (callback === NO_CALLBACK) return promise
  if (typeof callback !== 'function') throw new FST_QUART_SESSION_CALLBACK(verb)
  const call = (err: Error | null): void => {
    try {
      callback(err)
    } catch (thrown) {
      state.failure ??= thrown instanceof Error ? thrown : new Error(String(thrown))
    }
  }
  promise.then(() => { call(null) }, (err: Error) => { call(err) })
  return undefined
}

const disabledVerb = (session: Session, verb: string): Error => new FST_QUART_SESSION_DISABLED(verb, session[kState].disabled as string)
const rejectDisabled = (session: Session, verb: string, callback?: Callback | string[]): Promise<void> | undefined => {
  const cb = typeof callback === 'function' ? callback : undefined
  return settle(session[kState], verb, Promise.reject(disabledVerb(session, verb)), cb)
}

/**
 * What `request.session` is where a request has no session (static files, `config.session:
 * false`, a route outside the plugin's scope): one per request, reads find nothing, writes throw
 * an error that names the reason, so a missing opt-in is loud instead of silently lost.
 */
export class DisabledSession extends Session {
  constructor (backend: Backend, reason: string) {
    const state = new SessionState({ permanent: false, now: 0 })
    state.data = Object.freeze({}) as Data
    state.disabled = reason
    state.done = true
    super(backend, state)
  }

  override get id (): string { return '' }
  override get handle (): string { return '' }
  override get permanent (): boolean { return false }
  override set permanent (_value: boolean) { throw disabledVerb(this, 'permanent') }
  override set (): void { throw disabledVerb(this, 'set') }
  override delete (): void { throw disabledVerb(this, 'delete') }
  override clear (): void { throw disabledVerb(this, 'clear') }
  override touch (): void { throw disabledVerb(this, 'touch') }
  override options (): void { throw disabledVerb(this, 'options') }
  override isModified (): boolean { return false }
  override isSaved (): boolean { return false }
  override update (): any { return Promise.reject(disabledVerb(this, 'update')) }
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
    // The prototype is no data key and no member to hand out: session['__proto__'][k] = v would
    // change every session in the process.
    if (prop === '__proto__') return undefined
    if (typeof prop === 'symbol' || prop in target) {
      const value = (target as any)[prop]
      // Methods run on the session itself: their private state is then read without a trap each.
      return typeof value === 'function' && prop !== 'constructor' ? value.bind(target) : value
    }
    return target.get(prop as SessionKey)
  },
  set (target, prop, value) {
    if (prop === '__proto__') return false
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
    return Object.keys(target[kState].data)
  },
  getOwnPropertyDescriptor (target, prop) {
    if (typeof prop !== 'string' || !Object.hasOwn(target[kState].data, prop)) return undefined
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
