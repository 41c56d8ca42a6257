// What the two Redis adapters (node-redis in redis.ts, ioredis in ioredis.ts) share: the
// compare-and-set script and its arguments, how a wrong-type key and an unknown script are told
// apart from a failure, and the bounded command call. The clients differ only in how a command is
// spelled, so each adapter passes its own calls in.
import { createHash } from 'node:crypto'
import { FST_QUART_SESSION_CORRUPT_RECORD, FST_QUART_SESSION_TIMEOUT } from '../errors.js'
import { type Bound, type Recover, bounded, seconds, withCause } from './shared.js'

/**
 * Compare-and-set in one round trip. KEYS[1] the key; ARGV: has-expected ('1'/'0'), expected,
 * has-value ('1'/'0'), value, TTL in seconds ('0': no expiry). Flags rather than sentinel values,
 * so any string, the empty one included, can be expected or written. GET goes through pcall: a
 * key of another type is not ours to replace, so the answer is 0, never a WRONGTYPE error. A
 * missing key reads as false, which never equals a string. Returns 1 when written.
 */
export const COMPARE_AND_SET_SCRIPT = `local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' then return 0 end
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] == '0' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
end
return 1`

export const COMPARE_AND_SET_SHA = createHash('sha1').update(COMPARE_AND_SET_SCRIPT).digest('hex')

/** The script's ARGV for a compareAndSet call. */
export function compareAndSetArguments (expected: string | undefined, value: string | undefined, ttlSeconds: number): string[] {
  return [
    expected === undefined ? '0' : '1', expected ?? '',
    value === undefined ? '0' : '1', value ?? '',
    ttlSeconds > 0 ? String(ttlSeconds) : '0'
  ]
}

/** Seconds one operation may take, checked once: the `timeout` option of both adapters. */
export function redisTimeout (value: unknown): number {
  return seconds(value, 2, 'timeout')
}

// Any 'error' is also surfaced to the caller of the failing operation; this listener exists so an
// emitter without one does not crash the process (node-redis emits 'error' on every failed
// reconnect, ioredis' Cluster emits it unguarded).
export const ignoreError = (_error: Error): void => {}

/** A Redis error reply starting with `code` (`WRONGTYPE`, `NOSCRIPT`). */
function isReply (error: unknown, code: string): boolean {
  return error instanceof Error && error.message.startsWith(code)
}

/** A command's bound and the mapping of its failures. */
interface Known {
  bound: Bound
  classify: (error: unknown) => Error | undefined
}

/**
 * Runs Redis commands within the adapter's `timeout`, through `bounded()`. A failure is
 * FST_QUART_SESSION_BACKEND with the client's error as cause; `isClientTimeout` recognises the
 * client's own command timeout, which is reported as FST_QUART_SESSION_TIMEOUT like the store's; a
 * wrong-type record stays what `readString` made of it.
 */
export class RedisCommands {
  readonly timeout: number
  /** Milliseconds of `timeout`, also for the boot connection and close. */
  readonly ms: number
  readonly #isClientTimeout: (error: unknown) => boolean
  /** Each command's bound and error mapping, made once rather than on every call; reads apart (`absent`). */
  readonly #bounds = new Map<string, Known>()
  readonly #reads = new Map<string, Known>()

  constructor (timeout: number, isClientTimeout: (error: unknown) => boolean) {
    this.timeout = timeout
    this.ms = Math.ceil(timeout * 1000)
    this.#isClientTimeout = isClientTimeout
  }

  run<T> (command: string, send: () => Promise<T>, recover?: Recover<T>): Promise<T> {
    const known = this.#known(command, false)
    return bounded(known.bound, send, known.classify, recover)
  }

  /**
   * A read as `run` makes it, where a null reply (no key) settles as undefined: the adapter hands
   * the bounded call's own promise on, without an async step of its own to turn null into undefined.
   */
  read (command: string, send: () => Promise<string | null>, recover?: Recover<string | null>): Promise<string | undefined> {
    const known = this.#known(command, true)
    return bounded(known.bound, send, known.classify, recover) as Promise<string | undefined>
  }

  #known (command: string, absent: boolean): Known {
    const made = absent ? this.#reads : this.#bounds
    let known = made.get(command)
    if (known === undefined) {
      const operation = `Redis ${command}`
      known = {
        bound: { operation, seconds: this.timeout, ms: this.ms, absent },
        classify: (error) => {
          if (error instanceof FST_QUART_SESSION_CORRUPT_RECORD) return error
          if (this.#isClientTimeout(error)) return withCause(new FST_QUART_SESSION_TIMEOUT(operation, this.timeout), error)
          return undefined
        }
      }
      made.set(command, known)
    }
    return known
  }
}

/**
 * For a GET: a key of another type (a hash someone wrote under a session key) is told from a
 * failure. Retrying cannot help, so it is a corrupt record, which the core answers with a fresh
 * session instead of a 503 on every request carrying the cookie. Only on that path a TYPE follows,
 * to name what the key holds. `readString` when the GET is not a bounded call of its own.
 */
export function wrongType<T> (type: () => Promise<unknown>): Recover<T> {
  return (error) => isReply(error, 'WRONGTYPE') ? corrupt(type, error) : undefined
}

async function corrupt (type: () => Promise<unknown>, error: unknown): Promise<never> {
  const kind = await type().then(String, () => 'value of another type')
  throw withCause(new FST_QUART_SESSION_CORRUPT_RECORD(`the key holds a Redis ${kind}, not a string`), error)
}

/** A GET as `wrongType` tells its failures apart, for a GET sent with another command (PTTL). */
export async function readString (get: () => Promise<string | null>, type: () => Promise<unknown>): Promise<string | null> {
  try {
    return await get()
  } catch (error) {
    const recovered = wrongType<string | null>(type)(error)
    if (recovered === undefined) throw error
    return await recovered
  }
}

/**
 * For the compare-and-set script called by its SHA: a Redis that does not know it yet (first use,
 * restart, SCRIPT FLUSH, a promoted replica) answers NOSCRIPT once, and the script is sent whole,
 * which leaves it cached there. Both are one operation for the timeout. The script answers 1 when
 * it wrote.
 */
export function noScript (evalScript: () => Promise<unknown>): Recover<unknown> {
  return (error) => isReply(error, 'NOSCRIPT') ? evalScript() : undefined
}
