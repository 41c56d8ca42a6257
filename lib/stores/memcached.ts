import { createRequire } from 'node:module'
import Memcached from 'memcached'
import type { SessionStore } from '../store.js'
import { sha256 } from '../digest.js'
import { isServers, type MemcachedServers } from './servers.js'
import { withoutPing, withTextValues } from './memcached-patch.js'
import { bounded, fromCallback, messageOf as messageOfError, seconds, withCause } from './shared.js'
import {
  FST_QUART_SESSION_BACKEND,
  FST_QUART_SESSION_CONNECT,
  FST_QUART_SESSION_INVALID_OPTION,
  FST_QUART_SESSION_VALUE_TOO_LARGE
} from '../errors.js'

type Callback<T> = (error: unknown, result?: T) => void

/** What the `memcached` package reports with its 'issue', 'failure' and 'reconnect' events. */
interface IssueDetails {
  server?: string
  messages?: unknown[]
}

/**
 * What the adapter needs from a memcached client: the few methods it calls. An instance of the
 * `memcached` package fits; so does any object with the same callback API.
 */
export interface MemcachedLike {
  get (key: string, callback: Callback<unknown>): void
  /** The value with its CAS token: `{ [key]: value, cas: token }`, or undefined for a miss. */
  gets (key: string, callback: Callback<unknown>): void
  set (key: string, value: string, lifetime: number, callback: Callback<unknown>): void
  /** Stores only when the key is free; NOT_STORED comes back as an error with `notStored: true`. */
  add (key: string, value: string, lifetime: number, callback: Callback<unknown>): void
  /** Stores only when the item's CAS token is still `cas`: true, or false (EXISTS, NOT_FOUND). */
  cas (key: string, value: string, cas: string, lifetime: number, callback: Callback<unknown>): void
  del (key: string, callback: Callback<unknown>): void
  /** One answer per server that replied; an error when any did not. */
  version (callback: Callback<unknown[] | undefined>): void
  on? (event: 'issue' | 'failure' | 'reconnect', listener: (details: IssueDetails) => void): unknown
  removeListener? (event: 'issue' | 'failure' | 'reconnect', listener: (details: IssueDetails) => void): unknown
  /** The package's server list, for error messages. */
  servers?: unknown
}

export type { MemcachedServers }

export interface MemcachedStoreOptions {
  /** `'host:port'`, an array of them, or `{ 'host:port': weight }`; default `127.0.0.1:11211`. */
  servers?: MemcachedServers
  /** A `memcached` instance built by the caller; never closed by the store. */
  client?: MemcachedLike
  /** Seconds one operation (and the boot check) may take before it fails. Default 2. */
  timeout?: number
  /**
   * Largest value stored, in bytes as sent (CR and LF count twice: the package escapes them).
   * Default 1 MiB − 512 B: memcached's default item limit (`-I 1m`) less the item header and a
   * 250-byte key. Raise it only together with the server's `-I`.
   */
  maxValueBytes?: number
  /**
   * Seconds between checks of a server that failed (clients the store creates). Meanwhile its
   * keys go to the next live server of the ring; when no server is left, operations fail at
   * once. Default 1.
   */
  retry?: number
}

export const DEFAULT_MEMCACHED_SERVERS = '127.0.0.1:11211'
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024 - 512
/** memcached reads an expiry above 30 days as a Unix time, not as seconds from now. */
export const MAX_RELATIVE_EXPIRY = 30 * 24 * 60 * 60

const MAX_KEY_BYTES = 250
// Printable ASCII without the space (memcached's rule) and without `$`: the package puts the key
// back into the command with String#replace, where `$&`, `$'` and the like are patterns.
const PLAIN_KEY = /^[\x21-\x23\x25-\x7e]+$/
// The package answers `gets` with `{ [key]: value, cas: token }`: under these two keys the value
// would be lost (overwritten by the token, or swallowed by the prototype setter).
const OBJECT_KEYS = new Set(['cas', '__proto__'])
/** What a hashed key starts with; a key given with it is hashed too, so no key maps onto another's name. */
const HASHED = 'sha256:'
/** An expiry in the past: a `cas` with it is a delete that only happens if the token matches. */
const EXPIRED = -1
/** CAS tokens of recent reads, so an uncontended compare-and-set is one round trip. */
const REMEMBERED_ENTRIES = 10_000
const REMEMBERED_CHARS = 16 * 1024 * 1024
/** Copies written away from one down server that the store deletes once it is back; beyond, deletes still reach them. */
const MAX_STRAYS = 100_000

/**
 * The memcached key for `key`: the key itself when memcached and the package take it as is
 * (1–250 bytes of printable ASCII other than `$`, neither `cas` nor `__proto__`, and not starting
 * with `sha256:`), otherwise `sha256:` and the hex SHA-256 of its UTF-8 bytes. One-to-one: a key
 * kept as is never starts with `sha256:`, so no key a caller gives (a direct-store key) can name
 * the item of another (a session's hashed key). Deterministic, so other programs can find a
 * record from its session key.
 */
export function memcachedKey (key: string): string {
  if (key.length <= MAX_KEY_BYTES && PLAIN_KEY.test(key) && !OBJECT_KEYS.has(key) && !key.startsWith(HASHED)) return key
  return HASHED + sha256(key, 'hex')
}

/** The expiry memcached should get for a TTL: seconds from now up to 30 days, a Unix time beyond. */
export function memcachedLifetime (ttlSeconds: number, now = Date.now()): number {
  return ttlSeconds > MAX_RELATIVE_EXPIRY ? Math.floor(now / 1000) + ttlSeconds : ttlSeconds
}

/** The consistent-hashing ring of the `memcached` package (its `hashring` dependency). */
interface HashRing {
  get (key: string): string | undefined
  /** Distinct servers met going round the ring from the key's point: its home first. */
  range (key: string, size: number, unique: boolean): string[]
  servers: Array<{ string: string }>
}
type HashRingClass = new (servers: MemcachedServers, algorithm: string, options: object) => HashRing

/** `hashring` as the `memcached` package resolves it, so both place every key on the same server. */
function loadHashRing (): HashRingClass {
  const require = createRequire(import.meta.url)
  return createRequire(require.resolve('memcached'))('hashring') as HashRingClass
}

function newServer (location: string, client: MemcachedLike): Server {
  return { location, client, down: false, check: undefined, strays: new Map(), copiesUntil: 0 }
}

/** One memcached server and the client that talks to it. */
interface Server {
  readonly location: string
  readonly client: MemcachedLike
  /** Skipped by routing until a check answers again (only for servers the store manages). */
  down: boolean
  check: NodeJS.Timeout | undefined
  /**
   * Keys of this server written to another one while it was down (the server that took each).
   * Once it answers again those copies are stale: they are deleted there, or a second failure of
   * this server would bring back sessions that read as gone in between.
   */
  strays: Map<string, Server>
  /** Until when (ms) a delete of one of its keys also goes to the other servers, which may hold a copy. */
  copiesUntil: number
}

/** Package options its type declarations lack. */
interface PoolSettings {
  failuresTimeout: number
  minTimeout: number
  maxTimeout: number
  factor: number
}

/** A value read with `gets`: its CAS token, and the server that gave it (tokens are per server). */
interface Read {
  value: string
  cas: string
  server: Server
}

/**
 * Sessions in memcached through the `memcached` package: `get` (as `gets`), `set` with the
 * expiry, `delete`, and `compareAndSet` with `add`/`cas`. Keys arrive already prefixed by the
 * core; see `memcachedKey` for the ones memcached cannot take as they are. Items are read as
 * their text whatever their flags (see `withTextValues`).
 *
 * With `servers`, the store keeps one client per server and places keys itself, on the same
 * consistent-hashing ring as the package: a server that fails is skipped (its keys go to the next
 * live server of the ring) and checked every `retry` seconds until it answers again. Then the
 * copies this store wrote elsewhere meanwhile are deleted, and for the longest TTL it has written
 * a delete of one of that server's keys goes to the other servers too.
 */
export class MemcachedStore implements SessionStore {
  readonly timeout: number
  readonly maxValueBytes: number
  readonly #servers: Map<string, Server>
  /** Undefined with one server (or a client of the user's, which places keys itself). */
  readonly #ring: HashRing | undefined
  /** Clients the store created: it ends them, and fails their servers over. */
  readonly #owned: boolean
  readonly #where: string
  readonly #timeoutMs: number
  readonly #retryMs: number
  #closed = false
  /** Longest TTL this store has written, in ms (Infinity for no expiry): how long a stray copy may live. */
  #longestTtlMs = 0
  readonly #remembered = new Map<string, Read>()
  #rememberedChars = 0
  /** The last problem a client reported per server, to say why a server is "not available". */
  readonly #issues = new Map<string, string>()
  readonly #onIssue = (details: IssueDetails): void => {
    const last = details?.messages?.at(-1)
    if (typeof details?.server === 'string' && last !== undefined) {
      this.#issues.set(details.server, messageOf(last).replace(/^Error: /, ''))
    }
  }

  readonly #onReconnect = (details: IssueDetails): void => {
    if (typeof details?.server === 'string') this.#issues.delete(details.server)
  }

  constructor (options: MemcachedStoreOptions = {}) {
    const { servers, client } = options
    this.timeout = seconds(options.timeout, 2, 'timeout')
    this.#timeoutMs = Math.ceil(this.timeout * 1000)
    this.#retryMs = Math.ceil(seconds(options.retry, 1, 'retry') * 1000)
    const maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
    if (!Number.isSafeInteger(maxValueBytes) || maxValueBytes < 1) {
      throw new FST_QUART_SESSION_INVALID_OPTION('maxValueBytes', 'must be a whole number of bytes above 0')
    }
    this.maxValueBytes = maxValueBytes

    if (client !== undefined) {
      if (servers !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('client', 'give either "servers" or "client", not both')
      }
      if (!isMemcachedLike(client)) {
        throw new FST_QUART_SESSION_INVALID_OPTION('client', `must be an instance of the memcached package (${CLIENT_METHODS.join(', ')})`)
      }
      this.#owned = false
      this.#where = Array.isArray(client.servers) && client.servers.length > 0
        ? client.servers.join(', ')
        : 'the memcached client given as "client"'
      this.#servers = new Map([[this.#where, newServer(this.#where, client)]])
      this.#ring = undefined
    } else {
      const location = servers ?? DEFAULT_MEMCACHED_SERVERS
      if (!isServers(location)) {
        throw new FST_QUART_SESSION_INVALID_OPTION('servers', "must be 'host:port', an array of them, or an object of { 'host:port': weight }")
      }
      // The package's own ring, built as the package builds it: keys land where they did before.
      const ring = new (loadHashRing())(location, 'md5', { compatibility: 'ketama', 'default port': 11211 })
      const settings = this.#clientSettings()
      this.#owned = true
      this.#servers = new Map(ring.servers.map(({ string }) => [string,
        newServer(string, new Memcached(string, settings) as unknown as MemcachedLike)]))
      this.#ring = this.#servers.size > 1 ? ring : undefined
      this.#where = [...this.#servers.keys()].join(', ')
    }
    for (const { client } of this.#servers.values()) {
      withoutPing(client, this.#timeoutMs)
      // A client of the user's keeps the package's decoding for the JSON it may store elsewhere.
      withTextValues(client, this.#owned)
      client.on?.('issue', this.#onIssue)
      client.on?.('failure', this.#onIssue)
      client.on?.('reconnect', this.#onReconnect)
    }
  }

  /** Settings of each one-server client the store creates. */
  #clientSettings (): Memcached.options & PoolSettings {
    return {
      // Connections are made on demand and closed after `idle`: a burst of requests on a cold
      // pool asks for more than `poolSize` at once, and the pool refuses the rest unless it may
      // try again a few milliseconds later. This also bounds how soon a refused connect is heard.
      retries: 2,
      minTimeout: 10,
      maxTimeout: 50,
      factor: 2,
      timeout: this.#timeoutMs,
      // The store decides when a server is skipped (and checks it every `retry`): the package
      // should not skip it on its own as well.
      retry: 0,
      // Never "dead": a dead server waits `reconnect` for the package's `ping` check (see
      // withoutPing), and `remove` would take it out of the ring for good.
      failures: Number.MAX_SAFE_INTEGER,
      // Its timer (default 5 minutes) would keep the process of a closed app alive.
      failuresTimeout: this.#retryMs,
      reconnect: this.#retryMs,
      remove: false,
      maxValue: this.maxValueBytes
    }
  }

  /**
   * Asks every server for its version; fails the boot when none answers. In a pool, servers that
   * do not answer start as failed (checked every `retry`), so no request waits for them.
   */
  async ready (): Promise<void> {
    const servers = [...this.#servers.values()]
    const answers = await Promise.allSettled(servers.map(async (server) => await this.#version(server)))
    const failure = answers.find((answer): answer is PromiseRejectedResult => answer.status === 'rejected')
    if (failure === undefined) return
    if (answers.some(({ status }) => status === 'fulfilled')) {
      answers.forEach(({ status }, i) => { if (status === 'rejected') this.#markDown(servers[i]) })
      return
    }
    const error: unknown = failure.reason
    const reason = (error as { code?: unknown }).code === 'FST_QUART_SESSION_TIMEOUT'
      ? `no answer within ${this.timeout} s`
      : messageOf((error as Error).cause ?? error)
    throw withCause(new FST_QUART_SESSION_CONNECT(this.#where, reason), error)
  }

  async get (key: string): Promise<string | undefined> {
    const mkey = memcachedKey(key)
    const read = await this.#onServer('get', mkey, async (server) => await this.#gets(server, mkey))
    return read?.value
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    const size = this.#checkSize(value)
    const mkey = memcachedKey(key)
    this.#forget(mkey)
    const stored = await this.#onServer('set', mkey, async (server) => await this.#call<unknown>('set', (done) =>
      server.client.set(mkey, value, memcachedLifetime(ttlSeconds), done)), ttlSeconds)
    if (stored !== true) {
      throw withCause(new FST_QUART_SESSION_BACKEND('memcached set'), new Error(`the server did not store the item of ${size} bytes; is its item size limit (memcached -I) below 1 MiB?`))
    }
  }

  /** `delete`; memcached's NOT_FOUND is not an error. */
  async delete (key: string): Promise<void> {
    const mkey = memcachedKey(key)
    this.#forget(mkey)
    const used = await this.#onServer('delete', mkey, async (server) => {
      await this.#call<unknown>('delete', (done) => server.client.del(mkey, done))
      return server
    })
    await this.#deleteCopies(mkey, used)
  }

  /**
   * `add` when `expected` is undefined; otherwise `cas` with the token of the read that returned
   * `expected` (remembered from `get`: one round trip), or of a fresh `gets` when that token is
   * unknown or outdated. A delete is a `cas` to an already expired item, so it is atomic too.
   */
  async compareAndSet (key: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean> {
    if (value !== undefined) this.#checkSize(value)
    const mkey = memcachedKey(key)
    let used: Server | undefined
    const written = await this.#onServer('compareAndSet', mkey, async (server) => {
      used = server
      return await this.#compareAndSetOn(server, mkey, expected, value, ttlSeconds)
    }, ttlSeconds)
    if (written && value === undefined && used !== undefined) await this.#deleteCopies(mkey, used)
    return written
  }

  /** Ends the clients the store created; a supplied client is left as it is, for its owner. */
  async close (): Promise<void> {
    this.#closed = true
    for (const server of this.#servers.values()) {
      clearTimeout(server.check)
      server.client.removeListener?.('issue', this.#onIssue)
      server.client.removeListener?.('failure', this.#onIssue)
      server.client.removeListener?.('reconnect', this.#onReconnect)
      if (this.#owned) (server.client as unknown as Memcached).end()
    }
    this.#remembered.clear()
    this.#rememberedChars = 0
  }

  async #compareAndSetOn (server: Server, mkey: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean> {
    if (expected === undefined) {
      if (value === undefined) return (await this.#gets(server, mkey)) === undefined
      return await this.#add(server, mkey, value, memcachedLifetime(ttlSeconds))
    }
    const write = value ?? ''
    const lifetime = value === undefined ? EXPIRED : memcachedLifetime(ttlSeconds)
    const remembered = this.#remembered.get(mkey)
    this.#forget(mkey)
    // A remembered token fails when the item changed since; it may still hold `expected` (another
    // writer stored the same text), so a refusal is checked against a fresh read.
    if (remembered?.server === server && remembered.value === expected &&
      await this.#cas(server, mkey, write, remembered.cas, lifetime)) return true
    const current = await this.#gets(server, mkey)
    this.#forget(mkey)
    if (current === undefined || current.value !== expected) return false
    return await this.#cas(server, mkey, write, current.cas, lifetime)
  }

  async #gets (server: Server, mkey: string): Promise<Read | undefined> {
    const reply = await this.#call<unknown>('get', (done) => server.client.gets(mkey, done))
    if (reply === undefined) return undefined
    const read = readOf(reply, server)
    if (read === undefined) {
      // A SERVER_ERROR reply comes back as `false`: not a miss.
      throw withCause(new FST_QUART_SESSION_BACKEND('memcached get'), new Error(`unexpected reply ${describe(reply)} instead of a string value`))
    }
    this.#remember(mkey, read)
    return read
  }

  async #add (server: Server, mkey: string, value: string, lifetime: number): Promise<boolean> {
    const stored = await this.#call<unknown>('add', (done) => server.client.add(mkey, value, lifetime, (error, result) => {
      // NOT_STORED: the key is taken, which is an answer, not a failure.
      if ((error as { notStored?: unknown } | undefined)?.notStored === true) done(undefined, false)
      else done(error, result)
    }))
    return stored === true
  }

  async #cas (server: Server, mkey: string, value: string, cas: string, lifetime: number): Promise<boolean> {
    // STORED is true; EXISTS (changed since the token) and NOT_FOUND (gone) are false.
    return (await this.#call<unknown>('cas', (done) => server.client.cas(mkey, value, cas, lifetime, done))) === true
  }

  async #version (server: Server): Promise<void> {
    await this.#call<unknown[] | undefined>('version', (done) => {
      // The package calls back with the last error when any server failed, and the answers of
      // the others: one answer is enough to run.
      server.client.version((error, answers) => {
        if (Array.isArray(answers) && answers.length > 0) done(undefined, answers)
        else done(error ?? new Error('no server answered'))
      })
    })
  }

  /**
   * Runs `attempt` on the server `mkey` lives on now. When that server turns out to be down (a
   * connection that fails, or no answer within `timeout`), the store skips it from then on and,
   * in a pool, runs `attempt` again on the next live server of the ring.
   */
  async #onServer<T> (command: string, mkey: string, attempt: (server: Server) => Promise<T>, writesTtl?: number): Promise<T> {
    let server = this.#route(mkey)
    if (server === undefined) throw this.#unavailable(command)
    const tried = new Set<Server>()
    for (;;) {
      try {
        if (writesTtl !== undefined) this.#wrote(mkey, server, writesTtl)
        return await attempt(server)
      } catch (error) {
        if (!this.#owned || !isOutage(error)) throw error
        tried.add(server)
        this.#markDown(server)
        server = this.#route(mkey)
        // A closed store marks nothing down: never try the same server twice in one operation.
        if (server === undefined || tried.has(server)) throw error
      }
    }
  }

  /**
   * Notes a write of `mkey` to `server` before it is sent (a write that times out may still land):
   * the longest TTL written, and a write away from the key's home as a copy to delete later.
   */
  #wrote (mkey: string, server: Server, ttlSeconds: number): void {
    const ttlMs = ttlSeconds > 0 ? ttlSeconds * 1000 : Infinity
    if (ttlMs > this.#longestTtlMs) this.#longestTtlMs = ttlMs
    const home = this.#home(mkey)
    if (home === server) return
    home.strays.delete(mkey)
    if (home.strays.size < MAX_STRAYS) home.strays.set(mkey, server)
  }

  /**
   * After a delete (or a conditional delete) on `used`: the same delete on the other live servers
   * while the key's home is down or may have copies elsewhere (one of its outages ended less than
   * the longest TTL this store writes ago). Best effort: a server that fails here is skipped.
   */
  async #deleteCopies (mkey: string, used: Server): Promise<void> {
    if (this.#ring === undefined) return
    const home = this.#home(mkey)
    if (!home.down && home.copiesUntil <= Date.now()) return
    const others = [...this.#servers.values()].filter((server) => server !== used && !server.down)
    await Promise.all(others.map(async (server) => {
      await this.#call<unknown>('delete', (done) => server.client.del(mkey, done)).catch(() => {})
    }))
  }

  /**
   * `home` answers again: deletes the copies of its keys this store wrote to other servers during
   * the outage, one at a time in the background; a key written away again meanwhile (a new outage)
   * is left alone.
   */
  async #removeStrays (home: Server): Promise<void> {
    const strays = home.strays
    home.strays = new Map()
    home.copiesUntil = Math.max(home.copiesUntil, Date.now() + this.#longestTtlMs)
    for (const [mkey, server] of strays) {
      if (this.#closed) return
      if (home.strays.has(mkey) || server.down) continue
      try {
        await this.#call<unknown>('delete', (done) => server.client.del(mkey, done))
      } catch (error) {
        // That server is failing now: its copies stay (deletes of those keys still reach it later).
        if (isOutage(error)) return
      }
    }
  }

  /** The key's home server on the ring (the only server without one). */
  #home (mkey: string): Server {
    if (this.#ring === undefined) return this.#servers.values().next().value as Server
    return this.#servers.get(this.#ring.get(mkey) as string) as Server
  }

  /** The server for `mkey`: its home on the ring, or the next live one; undefined when all are down. */
  #route (mkey: string): Server | undefined {
    if (this.#ring === undefined) {
      const only = this.#servers.values().next().value as Server
      return only.down ? undefined : only
    }
    const home = this.#home(mkey)
    if (!home.down) return home
    for (const location of this.#ring.range(mkey, this.#servers.size, true)) {
      const server = this.#servers.get(location) as Server
      if (!server.down) return server
    }
    return undefined
  }

  #markDown (server: Server): void {
    if (server.down || this.#closed) return
    server.down = true
    // Tokens are per server and start again after a restart: never reuse one across an outage.
    for (const [mkey, read] of this.#remembered) if (read.server === server) this.#forget(mkey)
    this.#scheduleCheck(server)
  }

  #scheduleCheck (server: Server): void {
    server.check = setTimeout(() => {
      server.check = undefined
      this.#version(server).then(() => {
        if (this.#closed) return
        server.down = false
        void this.#removeStrays(server)
      }, () => {
        if (!this.#closed) this.#scheduleCheck(server)
      })
    }, this.#retryMs)
    // A check must not keep the process of a closed or idle app alive.
    server.check.unref()
  }

  #unavailable (command: string): Error {
    const down = [...this.#servers.values()].map(({ location }) => {
      const issue = this.#issues.get(location)
      return issue === undefined ? location : `${location} (${issue})`
    })
    return withCause(new FST_QUART_SESSION_BACKEND(`memcached ${command}`),
      new Error(`no memcached server available: ${down.join(', ')} failed and ${down.length === 1 ? 'is' : 'are'} checked again every ${this.#retryMs / 1000} s`))
  }

  #checkSize (value: string): number {
    const size = sentBytes(value)
    // memcached answers an item over its limit with SERVER_ERROR, which the package reports as
    // success `false` and as a fault of the whole server: refuse it here.
    if (size > this.maxValueBytes) throw new FST_QUART_SESSION_VALUE_TOO_LARGE(size, this.maxValueBytes)
    return size
  }

  #remember (mkey: string, read: Read): void {
    this.#forget(mkey)
    this.#remembered.set(mkey, read)
    this.#rememberedChars += read.value.length
    // Oldest reads go first (a Map iterates in insertion order).
    for (const oldest of this.#remembered.keys()) {
      if (this.#remembered.size <= REMEMBERED_ENTRIES && this.#rememberedChars <= REMEMBERED_CHARS) break
      this.#forget(oldest)
    }
  }

  #forget (mkey: string): void {
    const read = this.#remembered.get(mkey)
    if (read === undefined) return
    this.#remembered.delete(mkey)
    this.#rememberedChars -= read.value.length
  }

  /**
   * One command, bounded: the package has no reply timeout, so a command written to a server that
   * stopped answering, or to a connection that broke under it, would never be called back.
   */
  #call<T> (command: string, send: (done: Callback<T>) => void): Promise<T> {
    const operation = `memcached ${command}`
    return bounded({ operation, seconds: this.timeout, ms: this.#timeoutMs }, async () => await fromCallback(send),
      (error) => withCause(new FST_QUART_SESSION_BACKEND(operation), withCause(new Error(this.#explain(error)), error)))
  }

  /** The client's message; for a server it skips after a failure, with that failure. */
  #explain (error: unknown): string {
    const message = messageOf(error)
    const skipped = /^Server at (.+) not available$/.exec(message)
    const issue = skipped === null ? undefined : this.#issues.get(skipped[1])
    return issue === undefined ? message : `${message} (last error: ${issue})`
  }
}

// What the package reports when a server cannot be reached, as opposed to an answer it did not
// like (CLIENT_ERROR, an unknown reply) or a pool that is briefly out of connections.
const CONNECTION_FAILURE = /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|Timed out while trying to establish connection|Unable to connect|readyState is set to/

/** A failure that means the server is down (or cut off), so its keys should go elsewhere. */
function isOutage (error: unknown): boolean {
  const code = (error as { code?: unknown }).code
  if (code === 'FST_QUART_SESSION_TIMEOUT') return true
  if (code !== 'FST_QUART_SESSION_BACKEND') return false
  const message = messageOf((error as Error).cause)
  const skipped = /^Server at .+ not available(?: \(last error: (.*)\))?$/.exec(message)
  // The package skipped the server after a failure it saw: down, unless that failure was not one.
  if (skipped !== null) return skipped[1] === undefined || CONNECTION_FAILURE.test(skipped[1])
  return CONNECTION_FAILURE.test(message)
}

/** `{ [key]: value, cas: token }` as the package answers `gets`; undefined for anything else. */
function readOf (reply: unknown, server: Server): Read | undefined {
  if (typeof reply !== 'object' || reply === null) return undefined
  const { cas, ...rest } = reply as Record<string, unknown>
  // The one other key is the item's (with the client's namespace in front, if it has one).
  const values = Object.values(rest)
  if (typeof cas !== 'string' || values.length !== 1) return undefined
  return { value: textOf(values[0]), cas, server }
}

/**
 * The item as text. Clients the store creates read every item as text; a client of the user's
 * still decodes flags 2 (JSON), 4 (binary) and 8 (number): an item of another program under a
 * session key, which the core must see as a string that is not a record (a fresh session), and
 * a compare-and-set as a value that differs from what it expects (never an error).
 */
function textOf (value: unknown): string {
  if (typeof value === 'string') return value
  if (Buffer.isBuffer(value)) return value.toString('latin1')
  if (typeof value === 'number') return String(value)
  return JSON.stringify(value) ?? String(value)
}

function describe (reply: unknown): string {
  if (typeof reply === 'boolean') return String(reply)
  if (typeof reply === 'object' && reply !== null) {
    const value = Object.entries(reply).find(([key]) => key !== 'cas')?.[1]
    if (value !== undefined) return typeof value
  }
  return typeof reply
}

/** Bytes the package sends for a string value: UTF-8, with a backslash added before each CR and LF. */
function sentBytes (value: string): number {
  let size = Buffer.byteLength(value)
  if (value.includes('\n') || value.includes('\r')) size += value.match(/[\r\n]/g)?.length ?? 0
  return size
}

const CLIENT_METHODS = ['get', 'gets', 'set', 'add', 'cas', 'del', 'version']

function isMemcachedLike (value: unknown): value is MemcachedLike {
  if (typeof value !== 'object' || value === null) return false
  const client = value as Record<string, unknown>
  return CLIENT_METHODS.every((name) => typeof client[name] === 'function')
}

/** The package hands over a list when a command met several errors: the first one says it. */
function messageOf (error: unknown): string {
  if (Array.isArray(error)) return error.length > 0 ? messageOfError(error[0]) : 'unknown error'
  return messageOfError(error)
}
