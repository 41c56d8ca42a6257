import { createClient, TimeoutError } from 'redis'
import type { SessionStore } from '../store.js'
import {
  FST_QUART_SESSION_BACKEND,
  FST_QUART_SESSION_CONNECT,
  FST_QUART_SESSION_INVALID_OPTION,
  FST_QUART_SESSION_TIMEOUT
} from '../errors.js'

type ErrorListener = (error: Error) => void

/**
 * What the adapter needs from a Redis client: the few methods it calls. A node-redis v6 client
 * (`createClient`) and a node-redis cluster (`createCluster`) both fit.
 */
export interface RedisLike {
  readonly isOpen: boolean
  connect (): Promise<unknown>
  destroy (): unknown
  get (key: string): Promise<string | null>
  set (key: string, value: string, options?: { expiration: { type: 'EX', value: number } }): Promise<unknown>
  del (key: string): Promise<unknown>
  expire (key: string, seconds: number): Promise<unknown>
  persist (key: string): Promise<unknown>
  on (event: 'error', listener: ErrorListener): unknown
  off (event: 'error', listener: ErrorListener): unknown
}

/** A client the adapter created itself, which it also closes. */
interface OwnedClient extends RedisLike {
  readonly isReady: boolean
  close (): Promise<unknown>
}

export interface RedisStoreOptions {
  /** `redis[s]://[[username][:password]@][host][:port][/db-number]`; default `redis://127.0.0.1:6379`. */
  uri?: string
  /** A node-redis client or cluster built by the caller; never closed by the store. */
  client?: RedisLike
  /** Seconds one operation (and the boot connection) may take before it fails. Default 2. */
  timeout?: number
}

export const DEFAULT_REDIS_URI = 'redis://127.0.0.1:6379'

// A dropped connection is retried quickly and often: recovery should follow the backend's return
// within a second, and a refused connect on a live network costs next to nothing.
const reconnectDelay = (retries: number): number => Math.min(50 * 2 ** retries, 1000)

// Any 'error' is also surfaced to the caller of the failing operation; this listener exists so an
// emitter without one does not crash the process.
const ignoreError: ErrorListener = () => {}

/**
 * Sessions in Redis: one `SET key value EX ttl` per write, `GET` per read, `DEL`, `EXPIRE`.
 * Keys arrive already prefixed by the core.
 */
export class RedisStore implements SessionStore {
  readonly timeout: number
  readonly #client: RedisLike
  readonly #owned: OwnedClient | undefined
  /** Where errors say the backend is: the URI without its password, or a description. */
  readonly #where: string
  readonly #timeoutMs: number
  #listening = false

  constructor (options: RedisStoreOptions = {}) {
    const { uri, client } = options
    const timeout = options.timeout ?? 2
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
      throw new FST_QUART_SESSION_INVALID_OPTION('timeout', 'must be a positive number of seconds')
    }
    this.timeout = timeout
    this.#timeoutMs = Math.ceil(timeout * 1000)

    if (client !== undefined) {
      if (uri !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('client', 'give either "uri" or "client", not both')
      }
      if (!isRedisLike(client)) {
        throw new FST_QUART_SESSION_INVALID_OPTION('client', 'must be a node-redis client (createClient) or cluster (createCluster)')
      }
      this.#client = client
      this.#owned = undefined
      this.#where = 'the Redis client given as "client"'
      return
    }

    const url = uri ?? DEFAULT_REDIS_URI
    this.#where = redactUri(url)
    const owned: OwnedClient = createClient({
      url,
      // Offline, a command fails at once instead of waiting in a queue for a reconnect.
      disableOfflineQueue: true,
      // node-redis's own per-command timeout (5 s unless set) costs an AbortSignal per command,
      // about a third of a round trip's CPU on Node 20, and bounds only the wait to be written,
      // which disableOfflineQueue already ends: off. #run bounds the whole round trip instead.
      commandOptions: { timeout: 0 },
      socket: { connectTimeout: this.#timeoutMs, reconnectStrategy: reconnectDelay }
    })
    owned.on('error', ignoreError)
    this.#listening = true
    this.#client = owned
    this.#owned = owned
  }

  /**
   * Connects the client before the app starts, so an unreachable Redis fails the boot. A supplied
   * client that is not open yet is connected here too; if that fails, it is destroyed again, so
   * nothing keeps retrying in the background of an app that did not start.
   */
  async ready (): Promise<void> {
    const client = this.#client
    if (!this.#listening) {
      client.on('error', ignoreError)
      this.#listening = true
    }
    if (client.isOpen) return

    let timer: NodeJS.Timeout | undefined
    let onError: ErrorListener | undefined
    try {
      // node-redis retries a refused connect forever; the first error or the timeout ends it.
      await new Promise<void>((resolve, reject) => {
        onError = reject
        client.on('error', onError)
        timer = setTimeout(() => reject(new Error(`no connection within ${this.timeout} s`)), this.#timeoutMs)
        client.connect().then(() => resolve(), reject)
      })
    } catch (error) {
      // The 'error' listener stays: a destroyed client can still report its socket's last error.
      client.destroy()
      throw withCause(new FST_QUART_SESSION_CONNECT(this.#where, messageOf(error)), error)
    } finally {
      clearTimeout(timer)
      if (onError !== undefined) client.off('error', onError)
    }
  }

  async get (key: string): Promise<string | undefined> {
    const value = await this.#run('GET', () => this.#client.get(key))
    return value ?? undefined
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    await this.#run('SET', () => ttlSeconds > 0
      ? this.#client.set(key, value, { expiration: { type: 'EX', value: ttlSeconds } })
      : this.#client.set(key, value))
  }

  async delete (key: string): Promise<void> {
    await this.#run('DEL', () => this.#client.del(key))
  }

  /** `EXPIRE`; TTL 0 means no expiry, as in `set`, which is `PERSIST` in Redis. */
  async touch (key: string, ttlSeconds: number): Promise<void> {
    await this.#run(ttlSeconds > 0 ? 'EXPIRE' : 'PERSIST', () => ttlSeconds > 0
      ? this.#client.expire(key, ttlSeconds)
      : this.#client.persist(key))
  }

  /** Closes the client the store created; a supplied client is left open for its owner. */
  async close (): Promise<void> {
    const owned = this.#owned
    if (owned === undefined) {
      if (this.#listening) this.#client.off('error', ignoreError)
      this.#listening = false
      return
    }
    if (!owned.isOpen) return
    // close() waits for replies still due; a Redis that stopped answering must not hold it up.
    let timer: NodeJS.Timeout | undefined
    const closed = await Promise.race([
      owned.close().then(() => true, () => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(resolve, this.#timeoutMs, false) })
    ])
    clearTimeout(timer)
    if (!closed) owned.destroy()
  }

  #run<T> (command: string, send: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // The reply wait is bounded here: node-redis stops timing a command once it is written, so a
      // Redis that accepts the connection but does not answer would otherwise hang the request.
      const timer = setTimeout(() => reject(new FST_QUART_SESSION_TIMEOUT(`Redis ${command}`, this.timeout)), this.#timeoutMs)
      let pending: Promise<T>
      try {
        pending = send()
      } catch (error) {
        pending = Promise.reject(error)
      }
      pending.then((value) => {
        clearTimeout(timer)
        resolve(value)
      }, (error: unknown) => {
        clearTimeout(timer)
        reject(isTimeout(error)
          ? withCause(new FST_QUART_SESSION_TIMEOUT(`Redis ${command}`, this.timeout), error)
          : withCause(new FST_QUART_SESSION_BACKEND(`Redis ${command}`), error))
      })
    })
  }
}

function isRedisLike (value: unknown): value is RedisLike {
  if (typeof value !== 'object' || value === null) return false
  const client = value as Record<string, unknown>
  return ['connect', 'destroy', 'get', 'set', 'del', 'expire', 'persist', 'on', 'off']
    .every((name) => typeof client[name] === 'function')
}

/** The URI as errors may show it: the password is dropped, the rest is kept for diagnosis. */
export function redactUri (uri: string): string {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    throw new FST_QUART_SESSION_INVALID_OPTION('uri', 'must be a URL like redis://[[username][:password]@][host][:port][/db-number]')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new FST_QUART_SESSION_INVALID_OPTION('uri', 'must start with redis:// or rediss://')
  }
  url.password = ''
  return url.href
}

// The error constructors are typed by their message arguments only, so the cause is set after.
function withCause<E extends Error> (error: E, cause: unknown): E {
  error.cause = cause
  return error
}

function isTimeout (error: unknown): boolean {
  return error instanceof TimeoutError
}

function messageOf (error: unknown): string {
  if (error instanceof Error) {
    // Node reports a refused connection to several addresses as an AggregateError with no message.
    if (error.message !== '') return error.message
    if (error instanceof AggregateError && error.errors.length > 0) return messageOf(error.errors[0])
    return error.name
  }
  return String(error)
}
