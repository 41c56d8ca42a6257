import type { SessionStore } from '../store.js'
import { type Recover, messageOf, withCause } from './shared.js'
import {
  COMPARE_AND_SET_SCRIPT, COMPARE_AND_SET_SHA, compareAndSetArguments, ignoreError, noScript, redisTimeout, RedisCommands, wrongType
} from './redis-common.js'
import { FST_QUART_SESSION_BACKEND, FST_QUART_SESSION_CONNECT, FST_QUART_SESSION_INVALID_OPTION } from '../errors.js'

type ErrorListener = (error: Error) => void
type Listener = (...args: unknown[]) => void

/**
 * What the adapter needs from an ioredis client: the few methods it calls. An ioredis `Redis`
 * (standalone or Sentinel) and an ioredis `Cluster` both fit, whatever their options.
 */
export interface IoredisLike {
  /** `'wait'` (lazyConnect, never connected), `'connecting'`, `'ready'`, `'reconnecting'`, `'end'`… */
  readonly status: string
  /** Read for error messages only: where a standalone client connects (a cluster has no host). */
  readonly options?: object
  connect (): Promise<void>
  disconnect (): void
  get (key: string): Promise<string | null>
  set (key: string, value: string): Promise<unknown>
  set (key: string, value: string, secondsToken: 'EX', seconds: number): Promise<unknown>
  del (key: string): Promise<number>
  type (key: string): Promise<string>
  evalsha (sha: string, numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>
  eval (script: string, numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>
  on (event: 'error', listener: ErrorListener): unknown
  on (event: 'ready' | 'end', listener: Listener): unknown
  off (event: 'error', listener: ErrorListener): unknown
  off (event: 'ready' | 'end', listener: Listener): unknown
}

export interface IoredisStoreOptions {
  /** An ioredis `Redis` or `Cluster` built by the caller (e.g. `fastify.redis`); never closed by the store. */
  client: IoredisLike
  /** Seconds one operation (and the boot connection) may take before it fails. Default 2. */
  timeout?: number
}

/**
 * Sessions in Redis through an ioredis client the user built: `GET`, `SET key value EX ttl`, `DEL`,
 * and one `EVALSHA` per compare-and-set, new sessions included. Keys arrive already prefixed by
 * the core (an ioredis `keyPrefix` is added on top, by ioredis, to every command and script alike).
 */
export class IoredisStore implements SessionStore {
  readonly timeout: number
  readonly #client: IoredisLike
  readonly #commands: RedisCommands
  #listening = false

  constructor (options: IoredisStoreOptions) {
    const { client } = options ?? {}
    this.timeout = redisTimeout(options?.timeout)
    if (!isIoredisLike(client)) {
      throw new FST_QUART_SESSION_INVALID_OPTION('client', 'must be an ioredis client (new Redis()) or cluster (new Redis.Cluster())')
    }
    // ioredis' own commandTimeout, when the user set one shorter than the store's, counts as the store's.
    this.#commands = new RedisCommands(this.timeout, (error) => error instanceof Error && error.message === 'Command timed out')
    this.#client = client
  }

  /**
   * Makes sure the client is connected before the app starts, so an unreachable Redis fails the
   * boot. A `lazyConnect` client is connected here; if that fails it is disconnected again, so
   * nothing keeps retrying in the background of an app that did not start. A client that was
   * already connecting on its own is waited for, and left to its owner if it does not make it.
   */
  async ready (): Promise<void> {
    const client = this.#client
    if (!this.#listening) {
      client.on('error', ignoreError)
      this.#listening = true
    }
    if (client.status === 'ready') return
    if (client.status === 'end' || client.status === 'close') {
      throw new FST_QUART_SESSION_CONNECT(this.#where(), `the client is closed (status "${client.status}")`)
    }

    const connecting = client.status === 'wait'
    let timer: NodeJS.Timeout | undefined
    let onError: ErrorListener | undefined
    let onReady: Listener | undefined
    try {
      // ioredis retries a refused connection forever; the first error or the timeout ends the wait.
      await new Promise<void>((resolve, reject) => {
        onError = reject
        onReady = () => resolve()
        client.on('error', onError)
        client.on('ready', onReady)
        timer = setTimeout(() => reject(new Error(`no connection within ${this.timeout} s`)), this.#commands.ms)
        if (connecting) client.connect().then(() => resolve(), reject)
      })
    } catch (error) {
      if (connecting) await this.#disconnect()
      throw withCause(new FST_QUART_SESSION_CONNECT(this.#where(), messageOf(error)), error)
    } finally {
      clearTimeout(timer)
      if (onError !== undefined) client.off('error', onError)
      if (onReady !== undefined) client.off('ready', onReady)
    }
  }

  /** Stops a client ready() started, and waits (bounded) until it has stopped reconnecting too. */
  async #disconnect (): Promise<void> {
    const client = this.#client
    let timer: NodeJS.Timeout | undefined
    let onEnd: Listener | undefined
    await new Promise<void>((resolve) => {
      onEnd = () => resolve()
      client.on('end', onEnd)
      timer = setTimeout(resolve, this.#commands.ms)
      client.disconnect()
      if (client.status === 'end') resolve()
    })
    clearTimeout(timer)
    if (onEnd !== undefined) client.off('end', onEnd)
  }

  get (key: string): Promise<string | undefined> {
    const offline = this.#offline('GET')
    if (offline !== undefined) return offline
    const client = this.#client
    return this.#commands.read('GET', () => client.get(key), wrongType(() => client.type(key)))
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    await this.#run('SET', () => ttlSeconds > 0
      ? this.#client.set(key, value, 'EX', ttlSeconds)
      : this.#client.set(key, value))
  }

  async delete (key: string): Promise<void> {
    await this.#run('DEL', () => this.#client.del(key))
  }

  /** One `EVALSHA` (a key of another Redis type never matches: false). */
  async compareAndSet (key: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean> {
    const args = [key, ...compareAndSetArguments(expected, value, ttlSeconds)]
    const client = this.#client
    return await this.#run('EVALSHA', () => client.evalsha(COMPARE_AND_SET_SHA, 1, ...args),
      noScript(() => client.eval(COMPARE_AND_SET_SCRIPT, 1, ...args))) === 1
  }

  /** The client is the user's: it stays open. Only the store's 'error' listener goes. */
  async close (): Promise<void> {
    if (this.#listening) this.#client.off('error', ignoreError)
    this.#listening = false
  }

  /** Where errors say the backend is: host and port, never the client's password. */
  #where (): string {
    const { host, port } = (this.#client.options ?? {}) as { host?: unknown, port?: unknown }
    const at = typeof host === 'string' && typeof port === 'number' ? ` (${host}:${port})` : ''
    return `the ioredis client given as "client"${at}`
  }

  #run<T> (command: string, send: () => Promise<T>, recover?: Recover<T>): Promise<T> {
    return this.#offline(command) ?? this.#commands.run(command, send, recover)
  }

  /**
   * ioredis queues commands while it is disconnected (enableOfflineQueue, on by default) and
   * sends them after a reconnect: a request would wait out the timeout, and a stale write could
   * land long after its request failed. Offline, fail at once instead. 'wait' is a lazyConnect
   * client used before ready(): ioredis connects it on this first command.
   */
  #offline (command: string): Promise<never> | undefined {
    const status = this.#client.status
    if (status === 'ready' || status === 'wait') return undefined
    const error = new Error(`the ioredis client is not connected (status "${status}")`)
    return Promise.reject(withCause(new FST_QUART_SESSION_BACKEND(`Redis ${command}`), error))
  }
}

function isIoredisLike (value: unknown): value is IoredisLike {
  if (typeof value !== 'object' || value === null) return false
  const client = value as Record<string, unknown>
  return typeof client.status === 'string' &&
    ['connect', 'disconnect', 'get', 'set', 'del', 'type', 'evalsha', 'eval', 'on', 'off']
      .every((name) => typeof client[name] === 'function')
}
