import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import Memcached from 'memcached'
import type { SessionStore } from '../store.js'
import { isServers } from '../options.js'
import {
  FST_QUART_SESSION_BACKEND,
  FST_QUART_SESSION_CONNECT,
  FST_QUART_SESSION_INVALID_OPTION,
  FST_QUART_SESSION_TIMEOUT,
  FST_QUART_SESSION_VALUE_TOO_LARGE
} from '../errors.js'

type Callback<T> = (error: unknown, result?: T) => void

/** What the `memcached` package reports with its 'issue', 'failure' and 'reconnect' events. */
interface IssueDetails {
  server?: string
  messages?: string[]
}

/**
 * What the adapter needs from a memcached client: the few methods it calls. An instance of the
 * `memcached` package fits; so does any object with the same callback API.
 */
export interface MemcachedLike {
  get (key: string, callback: Callback<unknown>): void
  set (key: string, value: string, lifetime: number, callback: Callback<unknown>): void
  del (key: string, callback: Callback<unknown>): void
  touch (key: string, lifetime: number, callback: Callback<unknown>): void
  /** One answer per server that replied; an error when any did not. */
  version (callback: Callback<unknown[] | undefined>): void
  on? (event: 'issue' | 'failure' | 'reconnect', listener: (details: IssueDetails) => void): unknown
  removeListener? (event: 'issue' | 'failure' | 'reconnect', listener: (details: IssueDetails) => void): unknown
  /** The package's server list, for error messages. */
  servers?: unknown
}

export type MemcachedServers = string | string[] | Record<string, number>

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
   * Seconds a server that failed is skipped before the next operation tries it again (clients the
   * store creates). Default 1.
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

/**
 * The memcached key for `key`: the key itself when memcached and the package take it as is
 * (1–250 bytes of printable ASCII other than `$`), otherwise `sha256:` and the hex SHA-256 of
 * its UTF-8 bytes. Deterministic, so other programs can find a record from its session key.
 */
export function memcachedKey (key: string): string {
  if (key.length <= MAX_KEY_BYTES && PLAIN_KEY.test(key)) return key
  return `sha256:${createHash('sha256').update(key).digest('hex')}`
}

/** The expiry memcached should get for a TTL: seconds from now up to 30 days, a Unix time beyond. */
export function memcachedLifetime (ttlSeconds: number, now = Date.now()): number {
  return ttlSeconds > MAX_RELATIVE_EXPIRY ? Math.floor(now / 1000) + ttlSeconds : ttlSeconds
}

/**
 * Sessions in memcached through the `memcached` package: `get`, `set` with the expiry, `delete`,
 * `touch`, one command each. Keys arrive already prefixed by the core; see `memcachedKey` for the
 * ones memcached cannot take as they are.
 */
export class MemcachedStore implements SessionStore {
  readonly timeout: number
  readonly maxValueBytes: number
  readonly #client: MemcachedLike
  readonly #owned: Memcached | undefined
  readonly #where: string
  readonly #timeoutMs: number
  /** The last problem the client reported per server, to say why a server is "not available". */
  readonly #issues = new Map<string, string>()
  readonly #onIssue = (details: IssueDetails): void => {
    const message = details?.messages?.at(-1)?.replace(/^Error: /, '')
    if (typeof details?.server === 'string' && typeof message === 'string') this.#issues.set(details.server, message)
  }

  readonly #onReconnect = (details: IssueDetails): void => {
    if (typeof details?.server === 'string') this.#issues.delete(details.server)
  }

  constructor (options: MemcachedStoreOptions = {}) {
    const { servers, client } = options
    this.timeout = seconds(options.timeout, 2, 'timeout')
    this.#timeoutMs = Math.ceil(this.timeout * 1000)
    const retryMs = Math.ceil(seconds(options.retry, 1, 'retry') * 1000)
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
        throw new FST_QUART_SESSION_INVALID_OPTION('client', 'must be an instance of the memcached package (get, set, del, touch, version)')
      }
      this.#client = client
      this.#owned = undefined
      this.#where = Array.isArray(client.servers) && client.servers.length > 0
        ? client.servers.join(', ')
        : 'the memcached client given as "client"'
    } else {
      const location = servers ?? DEFAULT_MEMCACHED_SERVERS
      if (!isServers(location)) {
        throw new FST_QUART_SESSION_INVALID_OPTION('servers', "must be 'host:port', an array of them, or an object of { 'host:port': weight }")
      }
      // failuresTimeout is a package option its type declarations lack.
      const settings: Memcached.options & { failuresTimeout: number } = {
        // The pool's own retries back off 1 s, 3 s, 9 s… before a command hears of a refused connect.
        retries: 0,
        timeout: this.#timeoutMs,
        retry: retryMs,
        // Never "dead": a dead server waits `reconnect` for the package's `ping` check (see
        // withoutPing). Instead a failed server is skipped for `retry`, then the next command
        // is the check, for as long as the outage lasts.
        failures: Number.MAX_SAFE_INTEGER,
        // Its timer (default 5 minutes) would keep the process of a closed app alive.
        failuresTimeout: retryMs,
        reconnect: retryMs,
        // `remove` takes a dead server out of the hash ring for good: it would never come back.
        remove: false,
        maxValue: maxValueBytes
      }
      this.#owned = new Memcached(location, settings)
      this.#client = this.#owned
      this.#where = typeof location === 'string'
        ? location
        : (Array.isArray(location) ? location : Object.keys(location)).join(', ')
    }
    withoutPing(this.#client, this.#timeoutMs)
    this.#client.on?.('issue', this.#onIssue)
    this.#client.on?.('failure', this.#onIssue)
    this.#client.on?.('reconnect', this.#onReconnect)
  }

  /** Asks every server for its version; fails the boot when none answers. */
  async ready (): Promise<void> {
    try {
      await this.#call<unknown[] | undefined>('version', (done) => {
        // The package calls back with the last error when any server failed, and the answers of
        // the others: one answer is enough to run.
        this.#client.version((error, answers) => {
          if (Array.isArray(answers) && answers.length > 0) done(undefined, answers)
          else done(error ?? new Error('no server answered'))
        })
      })
    } catch (error) {
      const reason = (error as { code?: unknown }).code === 'FST_QUART_SESSION_TIMEOUT'
        ? `no answer within ${this.timeout} s`
        : messageOf((error as Error).cause ?? error)
      throw withCause(new FST_QUART_SESSION_CONNECT(this.#where, reason), error)
    }
  }

  async get (key: string): Promise<string | undefined> {
    const value = await this.#call<unknown>('get', (done) => this.#client.get(memcachedKey(key), done))
    if (value === undefined || typeof value === 'string') return value
    // A SERVER_ERROR reply comes back as `false`; an item another client stored with flags
    // (JSON, number, binary) as something else. Neither is a miss.
    throw withCause(new FST_QUART_SESSION_BACKEND('memcached get'), new Error(`unexpected reply ${typeof value === 'boolean' ? String(value) : typeof value} instead of a string value`))
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    const size = sentBytes(value)
    // memcached answers an item over its limit with SERVER_ERROR, which the package reports as
    // success `false` and as a fault of the whole server (skipped for `retry`): refuse it here.
    if (size > this.maxValueBytes) throw new FST_QUART_SESSION_VALUE_TOO_LARGE(size, this.maxValueBytes)
    const stored = await this.#call<unknown>('set', (done) =>
      this.#client.set(memcachedKey(key), value, memcachedLifetime(ttlSeconds), done))
    if (stored !== true) {
      throw withCause(new FST_QUART_SESSION_BACKEND('memcached set'), new Error(`the server did not store the item of ${size} bytes; is its item size limit (memcached -I) below 1 MiB?`))
    }
  }

  /** `delete`; memcached's NOT_FOUND is not an error. */
  async delete (key: string): Promise<void> {
    await this.#call<unknown>('delete', (done) => this.#client.del(memcachedKey(key), done))
  }

  /** memcached's `touch` command; NOT_FOUND (a missing key) is not an error. */
  async touch (key: string, ttlSeconds: number): Promise<void> {
    await this.#call<unknown>('touch', (done) =>
      this.#client.touch(memcachedKey(key), memcachedLifetime(ttlSeconds), done))
  }

  /** Ends the client the store created; a supplied client is left as it is, for its owner. */
  async close (): Promise<void> {
    this.#client.removeListener?.('issue', this.#onIssue)
    this.#client.removeListener?.('failure', this.#onIssue)
    this.#client.removeListener?.('reconnect', this.#onReconnect)
    this.#owned?.end()
  }

  #call<T> (command: string, send: (done: Callback<T>) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // The package has no reply timeout: a command written to a server that stopped answering,
      // or to a connection that broke under it, is never called back.
      const timer = setTimeout(() => reject(new FST_QUART_SESSION_TIMEOUT(`memcached ${command}`, this.timeout)), this.#timeoutMs)
      const done: Callback<T> = (error, result) => {
        clearTimeout(timer)
        if (error === undefined || error === null) resolve(result as T)
        else reject(withCause(new FST_QUART_SESSION_BACKEND(`memcached ${command}`), withCause(new Error(this.#explain(error)), error)))
      }
      try {
        send(done)
      } catch (error) {
        done(error ?? new Error('the client threw'))
      }
    })
  }

  /** The client's message; for a server it skips after a failure, with that failure. */
  #explain (error: unknown): string {
    const message = messageOf(error)
    const skipped = /^Server at (.+) not available$/.exec(message)
    const issue = skipped === null ? undefined : this.#issues.get(skipped[1])
    return issue === undefined ? message : `${message} (last error: ${issue})`
  }
}

interface IssueLog {
  tokens: string[]
  config: object
  messages: string[]
  failed: boolean
  isScheduledToReconnect: boolean
  reconnect: number
  totalReconnectsAttempted: number
  totalReconnectsSuccess: number
  details: unknown
  attemptReconnect: () => void
  emit (event: string, details: unknown): boolean
}

const guarded = new WeakSet<object>()

/**
 * The package checks a server it gave up on by spawning the system `ping` (lib/connection.js,
 * IssueLog#attemptReconnect) with no 'error' listener: where `ping` is not installed, that is an
 * uncaught exception that ends the process. Each issue log this client creates (it keeps them in
 * `client.issues`) gets a check that spawns nothing: a TCP connect to the memcached port, which
 * also says more than an ICMP echo. Clients the store creates never reach that path (see
 * `failures`); this covers clients the user passes in.
 */
function withoutPing (client: object, timeoutMs: number): void {
  const holder = client as { issues?: unknown }
  const issues = holder.issues
  if (typeof issues !== 'object' || issues === null || guarded.has(client)) return
  const attemptReconnect = reconnectByConnecting(timeoutMs)
  const patch = (log: unknown): void => {
    if (isIssueLog(log)) log.attemptReconnect = attemptReconnect
  }
  Object.values(issues).forEach(patch)
  holder.issues = new Proxy(issues, {
    // The log must be patched before its first use: `log()` binds attemptReconnect right away.
    set (target, key, value, receiver) {
      patch(value)
      return Reflect.set(target, key, value, receiver)
    }
  })
  guarded.add(client)
}

function isIssueLog (value: unknown): value is IssueLog {
  if (typeof value !== 'object' || value === null) return false
  const log = value as Partial<IssueLog>
  return typeof log.attemptReconnect === 'function' && Array.isArray(log.tokens) && Array.isArray(log.messages)
}

function reconnectByConnecting (timeoutMs: number): () => void {
  return function attemptReconnect (this: IssueLog): void {
    this.totalReconnectsAttempted++
    this.emit('reconnecting', this.details)
    // tokens: [port, host], or [socket path]
    const [port, host] = this.tokens
    const socket = host === undefined ? connect(port) : connect(Number(port), host)
    socket.setTimeout(timeoutMs)
    const finish = (error?: Error): void => {
      socket.removeAllListeners()
      socket.on('error', () => {})
      socket.destroy()
      if (error !== undefined) {
        this.messages.push(error.message)
        setTimeout(() => this.attemptReconnect(), this.reconnect)
        return
      }
      // What lib/connection.js does after a successful ping.
      this.emit('reconnected', this.details)
      this.totalReconnectsSuccess++
      this.messages.length = 0
      this.failed = false
      this.isScheduledToReconnect = false
      Object.assign(this, JSON.parse(JSON.stringify(this.config)))
    }
    socket.once('connect', () => finish())
    socket.once('error', finish)
    socket.once('timeout', () => finish(new Error(`no connection within ${timeoutMs} ms`)))
  }
}

function seconds (value: number | undefined, fallback: number, name: string): number {
  const result = value ?? fallback
  if (typeof result !== 'number' || !Number.isFinite(result) || result <= 0) {
    throw new FST_QUART_SESSION_INVALID_OPTION(name, 'must be a positive number of seconds')
  }
  return result
}

/** Bytes the package sends for a string value: UTF-8, with a backslash added before each CR and LF. */
function sentBytes (value: string): number {
  let size = Buffer.byteLength(value)
  if (value.includes('\n') || value.includes('\r')) size += value.match(/[\r\n]/g)?.length ?? 0
  return size
}

function isMemcachedLike (value: unknown): value is MemcachedLike {
  if (typeof value !== 'object' || value === null) return false
  const client = value as Record<string, unknown>
  return ['get', 'set', 'del', 'touch', 'version'].every((name) => typeof client[name] === 'function')
}

// The error constructors are typed by their message arguments only, so the cause is set after.
function withCause<E extends Error> (error: E, cause: unknown): E {
  error.cause = cause
  return error
}

function messageOf (error: unknown): string {
  // The package hands over a list when a command met several errors.
  if (Array.isArray(error)) return error.length > 0 ? messageOf(error[0]) : 'unknown error'
  if (error instanceof Error) {
    if (error.message !== '') return error.message
    if (error instanceof AggregateError && error.errors.length > 0) return messageOf(error.errors[0])
    return error.name
  }
  return String(error)
}
