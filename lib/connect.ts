import type { SessionStore } from './store.js'
import {
  FST_QUART_SESSION_BACKEND,
  FST_QUART_SESSION_CONNECT,
  FST_QUART_SESSION_INVALID_ARGUMENT,
  FST_QUART_SESSION_TIMEOUT
} from './errors.js'

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
  touch? (sid: string, session: object, callback?: (err?: any) => void): unknown
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
 * (connect-redis adds `sess:` to our `session:<id>` keys). It has no compare-and-set, so
 * concurrent saves of one session are last-write-wins. The store is the caller's: it is never closed.
 */
export function connectStore (store: ConnectStoreLike, options: ConnectStoreOptions = {}): SessionStore {
  checkStore(store)
  const timeout = options.timeout ?? 2
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
    throw new FST_QUART_SESSION_INVALID_ARGUMENT('timeout', 'must be a positive number of seconds')
  }
  const call = caller(timeout)

  const adapter: SessionStore = {
    async get (key) {
      const session = await call<unknown>('get', (done) => store.get(key, done))
      return valueOf(session)
    },
    async set (key, value, ttlSeconds) {
      await call('set', (done) => store.set(key, record(value, ttlSeconds), done))
    },
    async delete (key) {
      await call('destroy', (done) => store.destroy(key, done))
    },
    async ready () {
      try {
        await call('get', (done) => store.get(PROBE_KEY, done))
      } catch (error) {
        const reason = (error as { code?: unknown }).code === 'FST_QUART_SESSION_TIMEOUT'
          ? `no answer within ${timeout} s`
          : messageOf(error)
        const failure = new FST_QUART_SESSION_CONNECT('the connect store', reason)
        failure.cause = error
        throw failure
      }
    }
  }
  const touch = store.touch
  if (typeof touch === 'function') {
    // The store's touch restarts the expiry without rewriting the value; it only reads `cookie`.
    adapter.touch = async (key, ttlSeconds) => {
      await call('touch', (done) => touch.call(store, key, { cookie: cookieFor(ttlSeconds) }, done))
    }
  }
  return adapter
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

type Invoke = (done: ConnectCallback<any>) => unknown

/**
 * Turns one callback call into a promise that settles exactly once: on the callback, on a
 * synchronous throw, on a rejected promise the method returns (connect-redis's methods are async),
 * or on the timeout, so a store that never calls back cannot hang a request.
 */
function caller (timeout: number) {
  const timeoutMs = Math.ceil(timeout * 1000)
  return async function call<T> (method: string, invoke: Invoke): Promise<T> {
    const operation = `connect store ${method}`
    return await new Promise<T>((resolve, reject) => {
      let settled = false
      const fail = (error: unknown): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        reject(withCause(new FST_QUART_SESSION_BACKEND(operation), error))
      }
      const timer = setTimeout(() => {
        if (settled) return
        settled = true
        reject(new FST_QUART_SESSION_TIMEOUT(operation, timeout))
      }, timeoutMs)
      const done: ConnectCallback<T> = (err, value) => {
        if (err) return fail(err)
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(value as T)
      }
      try {
        const returned = invoke(done)
        if (isThenable(returned)) returned.then(undefined, fail)
      } catch (error) {
        fail(error)
      }
    })
  }
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

// The error constructors are typed by their message arguments only, so the cause is set after.
function withCause<E extends Error> (error: E, cause: unknown): E {
  error.cause = cause
  return error
}

function messageOf (error: unknown): string {
  const cause = (error as { cause?: unknown }).cause ?? error
  if (cause instanceof Error) {
    if (cause.message !== '') return cause.message
    if (cause instanceof AggregateError && cause.errors.length > 0) return messageOf(cause.errors[0])
    return cause.name
  }
  return String(cause)
}
