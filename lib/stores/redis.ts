import { BasicClientSideCache, createClient, createSentinel, TimeoutError } from 'redis'
import type { SessionStore } from '../store.js'
import { COMPARE_AND_SET_SCRIPT, COMPARE_AND_SET_SHA, compareAndSetArguments, messageOf, withCause } from './shared.js'
import {
  FST_QUART_SESSION_BACKEND,
  FST_QUART_SESSION_CONNECT,
  FST_QUART_SESSION_CORRUPT_RECORD,
  FST_QUART_SESSION_INVALID_OPTION,
  FST_QUART_SESSION_TIMEOUT
} from '../errors.js'

type ErrorListener = (error: Error) => void

/** Keys and arguments of a script call, as node-redis v6 takes them (`keys` route it on a cluster). */
interface ScriptCall {
  keys: string[]
  arguments: string[]
}

/**
 * What the adapter needs from a Redis client: the few methods it calls. A node-redis v6 client
 * (`createClient`), cluster (`createCluster`) and sentinel client (`createSentinel`) all fit.
 */
export interface RedisLike {
  readonly isOpen: boolean
  connect (): Promise<unknown>
  destroy (): unknown
  get (key: string): Promise<string | null>
  set (key: string, value: string, options?: { expiration?: { type: 'EX', value: number }, condition?: 'NX' }): Promise<unknown>
  del (key: string): Promise<unknown>
  expire (key: string, seconds: number): Promise<unknown>
  persist (key: string): Promise<unknown>
  type (key: string): Promise<unknown>
  evalSha (sha1: string, options: ScriptCall): Promise<unknown>
  eval (script: string, options: ScriptCall): Promise<unknown>
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
  /** A node-redis client, cluster or sentinel client built by the caller; never closed by the store. */
  client?: RedisLike
  /** Redis behind Sentinel: the master's name and the sentinels as `'host:port'`. */
  sentinel?: { name: string, nodes: string[] }
  /**
   * Serve unchanged reads from a RESP3 client-side cache that Redis invalidates (the store's own
   * client only: a supplied client is used with whatever caching it was built with).
   * `maxEntries` (default 10 000, least recently used evicted), `ttl` in milliseconds (0 = none).
   */
  clientSideCache?: { maxEntries?: number, ttl?: number }
  /** Seconds one operation (and the boot connection) may take before it fails. Default 2. */
  timeout?: number
}

export const DEFAULT_REDIS_URI = 'redis://127.0.0.1:6379'

const DEFAULT_CACHE_ENTRIES = 10_000


// A dropped connection is retried quickly and often: recovery should follow the backend's return
// within a second, and a refused connect on a live network costs next to nothing.
const reconnectDelay = (retries: number): number => Math.min(50 * 2 ** retries, 1000)

// Any 'error' is also surfaced to the caller of the failing operation; this listener exists so an
// emitter without one does not crash the process.
const ignoreError: ErrorListener = () => {}

/**
 * The read cache of the store's own client with `clientSideCache`. node-redis's cache answers a
 * hit through its whole command path and a `structuredClone` of the reply, which costs more
 * server CPU than the round trip it saves; session records are immutable strings, so the store
 * keeps them itself, key by key. node-redis still turns tracking on and delivers Redis's
 * invalidation pushes here; its own copy of each reply is not kept.
 */
class SessionReadCache extends BasicClientSideCache {
  readonly #values = new Map<string, { value: string, expires: number }>()
  /** Reads in flight: an invalidation that arrives before the reply is used drops the reply. */
  readonly #pending = new Map<string, object>()
  readonly #max: number
  readonly #ttl: number

  constructor (config: { maxEntries: number, ttl: number }) {
    super({ ...config, evictPolicy: 'LRU', recordStats: false })
    this.#max = config.maxEntries
    this.#ttl = config.ttl
  }

  lookup (key: string): string | undefined {
    const entry = this.#values.get(key)
    if (entry === undefined) return undefined
    if (entry.expires !== 0 && entry.expires <= Date.now()) {
      this.#values.delete(key)
      return undefined
    }
    return entry.value
  }

  /** Before a read is sent: a token that `remember` needs, so a reply overtaken by an invalidation is not kept. */
  reading (key: string): object {
    const token = {}
    this.#pending.set(key, token)
    return token
  }

  remember (key: string, token: object, value: string | undefined): void {
    if (this.#pending.get(key) !== token) return
    this.#pending.delete(key)
    if (value === undefined) return
    const values = this.#values
    values.delete(key)
    values.set(key, { value, expires: this.#ttl > 0 ? Date.now() + this.#ttl : 0 })
    // Least recently stored first out: insertion order is Map iteration order.
    if (values.size > this.#max) values.delete(values.keys().next().value as string)
  }

  override async handleCache (_client: unknown, parser: { preserve?: unknown }, fn: () => Promise<unknown>, transformReply?: (reply: any, preserve?: any, typeMapping?: any) => unknown, typeMapping?: unknown): Promise<any> {
    const reply = await fn()
    return transformReply === undefined ? reply : transformReply(reply, parser.preserve, typeMapping)
  }

  override invalidate (key: unknown): void {
    if (key === null) {
      this.clear(false)
      return
    }
    const name = String(key)
    this.#values.delete(name)
    this.#pending.delete(name)
    super.invalidate(key as never)
  }

  override clear (resetStats?: boolean): void {
    this.#values.clear()
    this.#pending.clear()
    super.clear(resetStats)
  }
}

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
  /** The store's own read cache (clientSideCache on a client it created), or undefined. */
  readonly #cache: SessionReadCache | undefined
  #listening = false

  constructor (options: RedisStoreOptions = {}) {
    const { uri, client, sentinel } = options
    const timeout = options.timeout ?? 2
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
      throw new FST_QUART_SESSION_INVALID_OPTION('timeout', 'must be a positive number of seconds')
    }
    this.timeout = timeout
    this.#timeoutMs = Math.ceil(timeout * 1000)
    const cache = cacheConfig(options.clientSideCache)

    if (client !== undefined) {
      if (uri !== undefined || sentinel !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('client', `give either "client" or "${uri !== undefined ? 'uri' : 'sentinel'}", not both`)
      }
      if (!isRedisLike(client)) {
        throw new FST_QUART_SESSION_INVALID_OPTION('client', 'must be a node-redis client (createClient), cluster (createCluster) or sentinel client (createSentinel)')
      }
      if (cache !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache', 'applies to the client the plugin creates (uri or sentinel); build your own client with { RESP: 3, clientSideCache } instead')
      }
      this.#client = client
      this.#owned = undefined
      this.#cache = undefined
      this.#where = 'the Redis client given as "client"'
      return
    }

    // Offline, a command fails at once instead of waiting in a queue for a reconnect.
    // node-redis's own per-command timeout (5 s unless set) costs an AbortSignal per command,
    // about a third of a round trip's CPU on Node 20, and bounds only the wait to be written,
    // which disableOfflineQueue already ends: off. #run bounds the whole round trip instead.
    const socket = { connectTimeout: this.#timeoutMs, reconnectStrategy: reconnectDelay }
    const commandOptions = { timeout: 0 }
    // Client-side caching rides on RESP3 invalidation pushes; without it RESP2 stays, the default.
    let resp = cache === undefined ? {} : { RESP: 3 as const, clientSideCache: cache as object }
    let owned: OwnedClient
    this.#cache = undefined
    if (sentinel !== undefined) {
      if (uri !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('sentinel', 'give either "uri" or "sentinel", not both')
      }
      const { name, nodes } = sentinelNodes(sentinel)
      this.#where = `Redis Sentinel master "${name}" via ${sentinel.nodes.join(', ')}`
      owned = createSentinel({
        name,
        sentinelRootNodes: nodes,
        commandOptions,
        nodeClientOptions: { disableOfflineQueue: true, socket, ...(cache === undefined ? {} : { RESP: 3 as const }) },
        sentinelClientOptions: { socket },
        ...resp
      })
    } else {
      const url = uri ?? DEFAULT_REDIS_URI
      this.#where = redactUri(url)
      if (cache !== undefined) {
        this.#cache = new SessionReadCache(cache)
        resp = { RESP: 3 as const, clientSideCache: this.#cache }
      }
      owned = createClient({ url, disableOfflineQueue: true, commandOptions, socket, ...resp } as Parameters<typeof createClient>[0]) as unknown as OwnedClient
    }
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

  /** With clientSideCache: a record held in the cache, which Redis invalidates when it changes. */
  getLocal (key: string): string | undefined {
    return this.#cache?.lookup(key)
  }

  async get (key: string): Promise<string | undefined> {
    const cache = this.#cache
    let token: object | undefined
    if (cache !== undefined) {
      const cached = cache.lookup(key)
      if (cached !== undefined) return cached
      token = cache.reading(key)
    }
    let value: string | null
    try {
      value = await this.#run('GET', () => this.#client.get(key))
    } catch (error) {
      throw isWrongType(error) ? await this.#wrongType(key, error) : error
    }
    if (token !== undefined) (cache as SessionReadCache).remember(key, token, value ?? undefined)
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

  /**
   * One `EVALSHA` of a script that compares and writes in Redis itself, on the one key (so a
   * cluster routes it like any other command). A Redis that does not know the script yet answers
   * NOSCRIPT once; `EVAL` then runs it and leaves it cached there, all within one timeout.
   */
  async compareAndSet (key: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean> {
    if (expected === undefined && value !== undefined) {
      // A new session: SET NX does it natively (a key of any type counts as present).
      const options = ttlSeconds > 0 ? { condition: 'NX' as const, expiration: { type: 'EX' as const, value: ttlSeconds } } : { condition: 'NX' as const }
      return await this.#run('SET', () => this.#client.set(key, value, options)) !== null
    }
    const call: ScriptCall = {
      keys: [key],
      arguments: compareAndSetArguments(expected, value, ttlSeconds)
    }
    return await this.#run('EVALSHA', () => this.#compareAndSet(call)) === 1
  }

  async #compareAndSet (call: ScriptCall): Promise<unknown> {
    try {
      return await this.#client.evalSha(COMPARE_AND_SET_SHA, call)
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      return await this.#client.eval(COMPARE_AND_SET_SCRIPT, call)
    }
  }

  /**
   * A key of another type (a hash someone wrote under a session key) is not a backend failure:
   * retrying cannot help. It is reported as a corrupt record, which the core answers with a fresh
   * session, instead of a 503 on every request that carries the cookie.
   */
  async #wrongType (key: string, error: Error): Promise<Error> {
    const type = await this.#run('TYPE', () => this.#client.type(key)).then(String, () => 'value of another type')
    return withCause(new FST_QUART_SESSION_CORRUPT_RECORD(`the key holds a Redis ${type}, not a string`), error.cause)
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
  return ['connect', 'destroy', 'get', 'set', 'del', 'expire', 'persist', 'type', 'evalSha', 'eval', 'on', 'off']
    .every((name) => typeof client[name] === 'function')
}

/** node-redis's `clientSideCache` settings from the store's, or undefined when caching is off. */
function cacheConfig (options: RedisStoreOptions['clientSideCache']): { maxEntries: number, ttl: number, evictPolicy: 'LRU' } | undefined {
  if (options === undefined) return undefined
  if (typeof options !== 'object' || options === null) {
    throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache', 'must be { maxEntries?, ttl? }')
  }
  const { maxEntries = DEFAULT_CACHE_ENTRIES, ttl = 0 } = options
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache.maxEntries', 'must be a whole number above 0')
  }
  if (!Number.isSafeInteger(ttl) || ttl < 0) {
    throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache.ttl', 'must be whole milliseconds, 0 or more')
  }
  return { maxEntries, ttl, evictPolicy: 'LRU' }
}

/** `{ name, nodes: ['host:port'] }` as node-redis wants it: `sentinelRootNodes: [{ host, port }]`. */
function sentinelNodes (sentinel: { name: string, nodes: string[] }): { name: string, nodes: Array<{ host: string, port: number }> } {
  const usage = "must be { name: 'mymaster', nodes: ['host:port', ...] }"
  if (typeof sentinel !== 'object' || sentinel === null || typeof sentinel.name !== 'string' || sentinel.name === '' ||
      !Array.isArray(sentinel.nodes) || sentinel.nodes.length === 0) {
    throw new FST_QUART_SESSION_INVALID_OPTION('sentinel', usage)
  }
  const nodes = sentinel.nodes.map((node) => {
    const colon = typeof node === 'string' ? node.lastIndexOf(':') : -1
    const port = Number(colon === -1 ? Number.NaN : node.slice(colon + 1))
    if (colon < 1 || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new FST_QUART_SESSION_INVALID_OPTION('sentinel', `${usage}; got ${JSON.stringify(node)}`)
    }
    // '[::1]:26379' names an IPv6 host.
    return { host: node.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port }
  })
  return { name: sentinel.name, nodes }
}

/** A GET on a key of another type: the client's error reply is the cause of the store's error. */
function isWrongType (error: unknown): error is Error {
  const cause = (error as { cause?: unknown } | undefined)?.cause
  return cause instanceof Error && cause.message.startsWith('WRONGTYPE')
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

function isTimeout (error: unknown): boolean {
  return error instanceof TimeoutError
}

