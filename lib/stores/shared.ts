// What the built-in adapters share: the Redis compare-and-set script (node-redis and ioredis send
// the same one) and the error plumbing.
import { createHash } from 'node:crypto'
import { FST_QUART_SESSION_BACKEND, FST_QUART_SESSION_INVALID_OPTION, FST_QUART_SESSION_TIMEOUT } from '../errors.js'

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

// The error constructors are typed by their message arguments only, so the cause is set after.
export function withCause<E extends Error> (error: E, cause: unknown): E {
  error.cause = cause
  return error
}

export function messageOf (error: unknown): string {
  if (error instanceof Error) {
    // Node reports a refused connection to several addresses as an AggregateError with no message.
    if (error.message !== '') return error.message
    if (error instanceof AggregateError && error.errors.length > 0) return messageOf(error.errors[0])
    return error.name
  }
  return String(error)
}

/**
 * A whole or fractional number of seconds above 0 for the option `name`, or `fallback` when it is
 * not given. The one duration check of every adapter's options.
 */
export function seconds (value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new FST_QUART_SESSION_INVALID_OPTION(name, 'must be a positive number of seconds')
  }
  return value
}

/** How a bounded call names its failures: the operation, and how long it may take. */
export interface Bound {
  /** Operation as the error message names it, e.g. `Redis GET`. */
  operation: string
  /** Seconds, for the message. */
  seconds: number
  /** Milliseconds the call may take. */
  ms: number
}

/**
 * The one timeout-and-wrap helper of the adapters: settles with `send`'s promise, or rejects with
 * FST_QUART_SESSION_TIMEOUT after `bound.ms`. A failure becomes FST_QUART_SESSION_BACKEND with the
 * client's error as its cause, unless `classify` maps it to something else first (a timeout the
 * client itself noticed, an error already ours). Clients that stop timing a command once it is
 * written (node-redis), or never time it (memcached), would otherwise hang a request.
 */
export function bounded<T> (bound: Bound, send: () => Promise<T>, classify?: (error: unknown) => Error | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new FST_QUART_SESSION_TIMEOUT(bound.operation, bound.seconds)) }, bound.ms)
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
      reject(classify?.(error) ?? withCause(new FST_QUART_SESSION_BACKEND(bound.operation), error))
    })
  })
}

/** A Node-style callback API as a promise, for `bounded`. */
export function fromCallback<T> (send: (done: (error: unknown, result?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    send((error, result) => {
      if (error === undefined || error === null) resolve(result as T)
      else reject(error)
    })
  })
}
