import type { SessionStore } from './store.js'
import { FST_QUART_SESSION_CONNECT, FST_QUART_SESSION_INVALID_ARGUMENT } from './errors.js'
import { bounded, messageOf, seconds, type Bound } from './stores/shared.js'

/** A Node callback as express-session stores call it: a falsy `err` is success. */
export type ConnectCallback<T = unknown> = (err?: unknown, value?: T) => void

/**
 * What `connectStore` needs from an express-session/connect store: the callback methods every
 * such store implements (connect-redis, connect-pg-simple, connect-mongo, connect-dynamodb,
 * express-session's MemoryStore…). Sessions go in as objects; the store serializes them itself.
 */
export interface ConnectStoreLike {
  get (sid: string, callback: (err: any, session?: any) => void): unknown
  set (sid: string, session: object, callback?: (err?: any) => void): unknown
  destroy (sid: string, callback?: (err?: any) => void): unknown
}

export interface ConnectStoreOptions {
  /** Seconds one store call may take before it fails with FST_QUART_SESSION_TIMEOUT. Default 2. */
  timeout?: number
}

/**
 * The object handed to the connect store: our record text under `v`, and the expiry where
 * express-session stores look for it. Stores compute their TTL from `cookie.expires` (connect-redis,
 * connect-pg-simple, connect-mongo) or `cookie.maxAge` (connect-memcached, connect-dynamodb…), so
 * both are given, as express-session's own Cookie gives them.
 */
export interface ConnectRecord {
  v: string
  cookie: ConnectCookie
}

export interface ConnectCookie {
  expires: Date
  /** Milliseconds, as express-session counts them. */
  maxAge: number
  originalMaxAge: number
}

/**
 * TTL 0 ("no expiry") becomes ten years: connect stores have no "forever", they all derive an
 * expiry from the cookie. Ten years in seconds still fits a signed 32-bit integer, which stores
 * that do `maxAge / 1000 | 0` need.
 */
export const CONNECT_NO_EXPIRY_SECONDS = 10 * 365 * 24 * 60 * 60

// Reading a key nothing writes checks that the store answers, without changing anything.
const PROBE_KEY = 'fastify-quart-session:ready-probe'

/**
 * Makes an express-session/connect store a `SessionStore`. The store keeps its own key prefix
 * (connect-redis adds `sess:` to our keys). It has no compare-and-set, so concurrent saves of one
 * session are last-write-wins. The store is the caller's: it is never closed.
 */
export function connectStore (store: ConnectStoreLike, options: ConnectStoreOptions = {}): SessionStore {
  checkStore(store)
  const timeout = seconds(options.timeout, 2, 'timeout')
  const bound = (method: string): Bound => ({ operation: `connect store ${method}`, seconds: timeout, ms: Math.ceil(timeout * 1000) })
  const get = bound('get')
  const set = bound('set')
  const destroy = bound('destroy')
  const read = async (key: string): Promise<string | undefined> =>
    valueOf(await bounded(get, async () => await missingIsNothing(callback((done) => store.get(key, done)))))

  return {
    get: read,
    async set (key, value, ttlSeconds) {
      await bounded(set, async () => { await callback((done) => store.set(key, record(value, ttlSeconds), done)) })
    },
    async delete (key) {
      await bounded(destroy, async () => { await missingIsNothing(callback((done) => store.destroy(key, done))) })
    },
    async ready () {
      try {
        await read(PROBE_KEY)
      } catch (error) {
        const reason = (error as { code?: unknown }).code === 'FST_QUART_SESSION_TIMEOUT'
          ? `no answer within ${timeout} s`
          : messageOf((error as { cause?: unknown }).cause ?? error)
        const failure = new FST_QUART_SESSION_CONNECT('the connect store', reason)
        failure.cause = error
        throw failure
      }
    }
  }
}

function checkStore (store: unknown): asserts store is ConnectStoreLike {
  if (typeof store !== 'object' || store === null) {
    throw new FST_QUART_SESSION_INVALID_ARGUMENT('store', 'must be an express-session store (an object with get, set and destroy)')
  }
  for (const method of ['get', 'set', 'destroy'] as const) {
    if (typeof (store as Record<string, unknown>)[method] !== 'function') {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('store', `must be an express-session store: ${method}() is missing`)
    }
  }
}

function record (value: string, ttlSeconds: number): ConnectRecord {
  return { v: value, cookie: cookieFor(ttlSeconds) }
}

function cookieFor (ttlSeconds: number): ConnectCookie {
  const ms = (ttlSeconds > 0 ? ttlSeconds : CONNECT_NO_EXPIRY_SECONDS) * 1000
  return { expires: new Date(Date.now() + ms), maxAge: ms, originalMaxAge: ms }
}

/**
 * Our text from what the store returned. Anything that is not one of our records (a session
 * express-session wrote under the same name) reads as absent rather than failing the request.
 */
function valueOf (session: unknown): string | undefined {
  if (typeof session !== 'object' || session === null) return undefined
  const value = (session as { v?: unknown }).v
  return typeof value === 'string' ? value : undefined
}

/**
 * session-file-store reports a session that has no file as an `ENOENT` error, and express-session
 * and @fastify/session take that code as "no session". Only that code, and only from `get` and
 * `destroy`: from `set` it means the store's directory is gone, a real failure.
 */
async function missingIsNothing<T> (pending: Promise<T>): Promise<T | undefined> {
  try {
    return await pending
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code === 'ENOENT') return undefined
    throw error
  }
}

type Invoke = (done: ConnectCallback<any>) => unknown

/**
 * One callback call as a promise. It settles once, on whichever comes first: the callback (a
 * falsy `err` is success, as in express-session), a synchronous throw, or the rejection of a
 * promise the method returns (connect-redis's methods are async). `bounded` adds the timeout.
 */
async function callback<T> (invoke: Invoke): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const returned = invoke((err, value) => {
      if (err) reject(err)
      else resolve(value as T)
    })
    if (isThenable(returned)) returned.then(undefined, reject)
  })
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
