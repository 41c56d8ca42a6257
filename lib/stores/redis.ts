import { BasicClientSideCache, createClient, createSentinel, TimeoutError } from 'redis'
import type { SessionStore } from '../store.js'
import { messageOf, withCause } from './shared.js'
import {
  COMPARE_AND_SET_SCRIPT, COMPARE_AND_SET_SHA, compareAndSetArguments, ignoreError, noScript, readString, redisTimeout, RedisCommands, wrongType
} from './redis-common.js'
import { Recency } from '../recency.js'
import { FST_QUART_SESSION_CONNECT, FST_QUART_SESSION_INVALID_OPTION } from '../errors.js'

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
  type (key: string): Promise<unknown>
  /** Milliseconds the key has left (-1: no expiry, -2: no key); asked only with the store's own cache. */
  pTTL (key: string): Promise<number>
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
   * `maxEntries` (default 10 000) and `maxBytes` (default 64 MiB; not with `sentinel`) bound it, the
   * oldest stored going first; `ttl` in milliseconds (0 = none) caps an entry's life on top of
   * the key's own Redis TTL.
   */
  clientSideCache?: { maxEntries?: number, maxBytes?: number, ttl?: number }
  /** Seconds one operation (and the boot connection) may take before it fails. Default 2. */
  timeout?: number
}

export const DEFAULT_REDIS_URI = 'redis://127.0.0.1:6379'

const DEFAULT_CACHE_ENTRIES = 10_000
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
/** A record above this share of `maxBytes` is not cached: one session must not flush out all others. */
export const CACHE_ENTRY_SHARE = 16
/** What a cache entry costs beside its text: the map entry, the entry object, the key's slot. */
const ENTRY_OVERHEAD = 128

interface CacheConfig { maxEntries: number, maxBytes: number, ttl: number }

// A dropped connection is retried quickly and often: recovery should follow the backend's return
// within a second, and a refused connect on a live network costs next to nothing.
const reconnectDelay = (retries: number): number => Math.min(50 * 2 ** retries, 1000)

/**
 * The read cache of the store's own client with `clientSideCache`. node-redis's cache answers a
 * hit through its whole command path and a `structuredClone` of the reply, which costs more
 * server CPU than the round trip it saves; session records are immutable strings, so the store
 * keeps them itself, key by key. node-redis still turns tracking on and delivers Redis's
 * invalidation pushes here; its own copy of each reply is not kept.
 *
 * Redis sends the invalidation of an expired key only when its expiry reaches the key, which under
 * load can take minutes, so an entry also ends when the key's own Redis TTL (read with the record)
 * does. Bounded by entries and by bytes, counted as two per character: what V8 needs for text
 * outside Latin-1, so the bound holds for any text.
 */
class SessionReadCache extends BasicClientSideCache {
  // Oldest stored first out; a Recency rather than a Map (lib/recency.ts: a Map's delete and
  // set again of one key costs time in proportion to its size, and every miss does that).
  readonly #values = new Recency<{ value: string, expires: number, bytes: number }>()
  /** Reads in flight: an invalidation that arrives before the reply is used drops the reply. */
  readonly #pending = new Map<string, object>()
  /** What this client last wrote under each key, until another value is read there (see `wrote`). */
  readonly #written = new Recency<{ value: string, expires: number, bytes: number }>()
  /** Bytes of `#written`, counted as the cache counts its entries and bound by the same `maxBytes`. */
  #writtenBytes = 0
  readonly #max: number
  readonly #maxBytes: number
  readonly #maxEntryBytes: number
  readonly #ttl: number
  #bytes = 0

  constructor (config: CacheConfig) {
    super({ maxEntries: config.maxEntries, ttl: config.ttl, evictPolicy: 'LRU', recordStats: false })
    this.#max = config.maxEntries
    this.#maxBytes = config.maxBytes
    this.#maxEntryBytes = Math.floor(config.maxBytes / CACHE_ENTRY_SHARE)
    this.#ttl = config.ttl
  }

  /** Bytes the cached entries and the own writes held are counted as (for tests and diagnostics). */
  get bytes (): number {
    return this.#bytes + this.#writtenBytes
  }

  get entries (): number {
    return this.#values.size
  }

  lookup (key: string): string | undefined {
    const entry = this.#values.get(key)
    if (entry === undefined) return undefined
    if (entry.expires !== 0 && entry.expires <= Date.now()) {
      this.#drop(key)
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

  /**
   * Keeps a GET reply. `ttlMs` is the key's PTTL, asked with it and `sentAt` when both were sent:
   * the entry ends no later than Redis would end the key (-1, no expiry: only `ttl` applies).
   */
  remember (key: string, token: object, value: string | undefined, ttlMs: number, sentAt: number): void {
    if (this.#pending.get(key) !== token) return
    this.#pending.delete(key)
    if (value === undefined || ttlMs === -2 || ttlMs === 0) return
    const bytes = 2 * (key.length + value.length) + ENTRY_OVERHEAD
    if (bytes > this.#maxEntryBytes) return
    let expires = this.#ttl > 0 ? sentAt + this.#ttl : 0
    if (ttlMs > 0 && (expires === 0 || sentAt + ttlMs < expires)) expires = sentAt + ttlMs
    const previous = this.#values.get(key)
    if (previous !== undefined) this.#bytes -= previous.bytes
    this.#values.set(key, { value, expires, bytes })
    this.#bytes += bytes
    this.#trim()
  }

  /**
   * Within `maxEntries` each, and `maxBytes` for both together: own writes go first (each is only
   * kept until its next read, and losing one costs a PTTL), then the oldest cached records.
   */
  #trim (): void {
    while (this.#written.size > this.#max) this.#unwrite(this.#written.oldest() as string)
    while (this.#values.size > this.#max) this.#drop(this.#values.oldest() as string)
    while (this.#bytes + this.#writtenBytes > this.#maxBytes) {
      if (this.#written.size > 0) this.#unwrite(this.#written.oldest() as string)
      else this.#drop(this.#values.oldest() as string)
    }
  }

  #drop (key: string): void {
    const entry = this.#values.delete(key)
    if (entry !== undefined) this.#bytes -= entry.bytes
  }

  /**
   * This client wrote `value` under `key` (undefined: removed it), with `ttlSeconds` from
   * `sentAt`. Redis invalidates the key for its writer too, so the next read misses; when that read
   * gets back exactly this value, the key's expiry is the one just set, and no PTTL is needed. The
   * value is held until then, so it counts against `maxBytes` like a cached one; a value too large
   * to cache is not held (its reads ask PTTL as any other).
   */
  wrote (key: string, value: string | undefined, ttlSeconds: number, sentAt: number): void {
    this.#unwrite(key)
    if (value === undefined) return
    const bytes = 2 * (key.length + value.length) + ENTRY_OVERHEAD
    if (bytes > this.#maxEntryBytes) return
    this.#written.set(key, { value, expires: ttlSeconds > 0 ? sentAt + ttlSeconds * 1000 : 0, bytes })
    this.#writtenBytes += bytes
    this.#trim()
  }

  #unwrite (key: string): void {
    const entry = this.#written.delete(key)
    if (entry !== undefined) this.#writtenBytes -= entry.bytes
  }

  /** The PTTL a read that got back `value` at `sentAt` would have seen, when it is this client's own write; else undefined. */
  ownTtl (key: string, value: string | null, sentAt: number): number | undefined {
    // Kept while it matches: reads of a busy session that overlap all find it.
    const own = this.#written.get(key)
    if (own === undefined) return undefined
    if (own.value !== value) {
      this.#unwrite(key)
      return undefined
    }
    if (own.expires === 0) return -1
    // Already past: 0, which keeps it out of the cache.
    return Math.max(own.expires - sentAt, 0)
  }

  /** Whether a read of `key` may go without PTTL (this client wrote it last, as far as it knows). */
  wroteLast (key: string): boolean {
    return this.#written.get(key) !== undefined
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
    this.#drop(name)
    this.#pending.delete(name)
    super.invalidate(key as never)
  }

  override clear (resetStats?: boolean): void {
    this.#values.clear()
    this.#written.clear()
    this.#writtenBytes = 0
    this.#bytes = 0
    this.#pending.clear()
    super.clear(resetStats)
  }
}

/**
 * Sessions in Redis: `GET` per read, `SET key value NX EX ttl` for a new session, one `EVALSHA`
 * compare-and-set per change, `DEL`. Keys arrive already prefixed by the core.
 */
export class RedisStore implements SessionStore {
  readonly timeout: number
  readonly #client: RedisLike
  readonly #owned: OwnedClient | undefined
  /** Where errors say the backend is: the URI without its password, or a description. */
  readonly #where: string
  readonly #commands: RedisCommands
  /** The store's own read cache (clientSideCache on a client it created), or undefined. */
  readonly #cache: SessionReadCache | undefined
  #listening = false

  constructor (options: RedisStoreOptions = {}) {
    const { uri, client, sentinel } = options
    this.timeout = redisTimeout(options.timeout)
    // node-redis's own command timeout, when a supplied client has one, counts as the store's.
    this.#commands = new RedisCommands(this.timeout, (error) => error instanceof TimeoutError)
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
    // which disableOfflineQueue already ends: off. RedisCommands bounds the whole round trip instead.
    const socket = { connectTimeout: this.#commands.ms, reconnectStrategy: reconnectDelay }
    const commandOptions = { timeout: 0 }
    let owned: OwnedClient
    if (sentinel !== undefined) {
      if (uri !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('sentinel', 'give either "uri" or "sentinel", not both')
      }
      if (options.clientSideCache?.maxBytes !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache.maxBytes', 'applies to "uri" only: with "sentinel", node-redis keeps the cache, bounded by maxEntries')
      }
      const { name, nodes } = sentinelNodes(sentinel)
      this.#where = `Redis Sentinel master "${name}" via ${sentinel.nodes.join(', ')}`
      this.#cache = undefined
      // Client-side caching rides on RESP3 invalidation pushes; without it RESP2 stays, the default.
      owned = createSentinel({
        name,
        sentinelRootNodes: nodes,
        commandOptions,
        nodeClientOptions: { disableOfflineQueue: true, socket, ...(cache === undefined ? {} : { RESP: 3 as const }) },
        sentinelClientOptions: { socket },
        ...(cache === undefined ? {} : { RESP: 3 as const, clientSideCache: { maxEntries: cache.maxEntries, ttl: cache.ttl, evictPolicy: 'LRU' as const } })
      })
    } else {
      const url = uri ?? DEFAULT_REDIS_URI
      this.#where = redactUri(url)
      this.#cache = cache === undefined ? undefined : new SessionReadCache(cache)
      const resp = this.#cache === undefined ? {} : { RESP: 3 as const, clientSideCache: this.#cache }
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
        timer = setTimeout(() => reject(new Error(`no connection within ${this.timeout} s`)), this.#commands.ms)
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

  /** The store's read cache, for tests and diagnostics: entries held and the bytes they count as. */
  get cacheUsage (): { entries: number, bytes: number } | undefined {
    const cache = this.#cache
    return cache === undefined ? undefined : { entries: cache.entries, bytes: cache.bytes }
  }

  get (key: string): Promise<string | undefined> {
    const cache = this.#cache
    if (cache === undefined) {
      const client = this.#client
      return this.#commands.read('GET', () => client.get(key), wrongType(() => client.type(key)))
    }
    return this.#cachedGet(key, cache)
  }

  async #cachedGet (key: string, cache: SessionReadCache): Promise<string | undefined> {
    const cached = cache.lookup(key)
    if (cached !== undefined) return cached
    const token = cache.reading(key)
    const sentAt = Date.now()
    if (cache.wroteLast(key)) {
      // After this client's own write (the usual miss: a write invalidates its writer's entry too),
      // a GET alone: the value it wrote comes with the expiry it set. Anything else asks PTTL after.
      const value = await this.#commands.run('GET', () => this.#read(key))
      let ttlMs = cache.ownTtl(key, value, sentAt)
      if (value === null) return undefined
      if (ttlMs === undefined) {
        const askedAt = Date.now()
        ttlMs = await this.#commands.run('PTTL', () => this.#client.pTTL(key))
        cache.remember(key, token, value, ttlMs, askedAt)
      } else {
        cache.remember(key, token, value, ttlMs, sentAt)
      }
      return value
    }
    // PTTL goes out with the GET (one write, one round trip), so the entry ends with the key.
    const [value, ttlMs] = await this.#commands.run('GET', () => Promise.all([this.#read(key), this.#client.pTTL(key)]))
    cache.remember(key, token, value ?? undefined, ttlMs, sentAt)
    return value ?? undefined
  }

  #read (key: string): Promise<string | null> {
    return readString(() => this.#client.get(key), () => this.#client.type(key))
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    const sentAt = this.#sentAt()
    await this.#commands.run('SET', () => ttlSeconds > 0
      ? this.#client.set(key, value, { expiration: { type: 'EX', value: ttlSeconds } })
      : this.#client.set(key, value))
    this.#cache?.wrote(key, value, ttlSeconds, sentAt)
  }

  async delete (key: string): Promise<void> {
    this.#cache?.wrote(key, undefined, 0, 0)
    await this.#commands.run('DEL', () => this.#client.del(key))
  }

  /**
   * One `EVALSHA` of a script that compares and writes in Redis itself, on the one key (so a
   * cluster routes it like any other command); a new session is a plain `SET NX`.
   */
  async compareAndSet (key: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean> {
    if (expected === undefined && value !== undefined) {
      // A new session: SET NX does it natively (a key of any type counts as present).
      const options = ttlSeconds > 0 ? { condition: 'NX' as const, expiration: { type: 'EX' as const, value: ttlSeconds } } : { condition: 'NX' as const }
      const sentAt = this.#sentAt()
      const created = await this.#commands.run('SET', () => this.#client.set(key, value, options)) !== null
      if (created) this.#cache?.wrote(key, value, ttlSeconds, sentAt)
      return created
    }
    const call: ScriptCall = { keys: [key], arguments: compareAndSetArguments(expected, value, ttlSeconds) }
    const sentAt = this.#sentAt()
    const client = this.#client
    const written = await this.#commands.run('EVALSHA', () => client.evalSha(COMPARE_AND_SET_SHA, call),
      noScript(() => client.eval(COMPARE_AND_SET_SCRIPT, call))) === 1
    if (written) this.#cache?.wrote(key, value, ttlSeconds, sentAt)
    return written
  }

  /** When a write went out, for the read cache's expiry of it (0 without a cache: Date.now() is no free call). */
  #sentAt (): number {
    return this.#cache === undefined ? 0 : Date.now()
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
      new Promise<boolean>((resolve) => { timer = setTimeout(resolve, this.#commands.ms, false) })
    ])
    clearTimeout(timer)
    if (!closed) owned.destroy()
  }
}

function isRedisLike (value: unknown): value is RedisLike {
  if (typeof value !== 'object' || value === null) return false
  const client = value as Record<string, unknown>
  return ['connect', 'destroy', 'get', 'set', 'del', 'type', 'pTTL', 'evalSha', 'eval', 'on', 'off']
    .every((name) => typeof client[name] === 'function')
}

/** The cache's settings from the store's options, or undefined when caching is off. */
function cacheConfig (options: RedisStoreOptions['clientSideCache']): CacheConfig | undefined {
  if (options === undefined) return undefined
  if (typeof options !== 'object' || options === null) {
    throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache', 'must be { maxEntries?, maxBytes?, ttl? }')
  }
  const { maxEntries = DEFAULT_CACHE_ENTRIES, maxBytes = DEFAULT_CACHE_BYTES, ttl = 0 } = options
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache.maxEntries', 'must be a whole number above 0')
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache.maxBytes', 'must be a whole number of bytes above 0')
  }
  if (!Number.isSafeInteger(ttl) || ttl < 0) {
    throw new FST_QUART_SESSION_INVALID_OPTION('clientSideCache.ttl', 'must be whole milliseconds, 0 or more')
  }
  return { maxEntries, maxBytes, ttl }
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
