// What the built-in adapters share: the error plumbing, the bounded call and the duration check.
// The two Redis adapters' own common parts are in redis-common.ts.
import { FST_QUART_SESSION_BACKEND, FST_QUART_SESSION_INVALID_OPTION, FST_QUART_SESSION_TIMEOUT } from '../errors.js'

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
  /** A reply of null means "no such key": the call settles with undefined instead. */
  absent?: boolean
}

/**
 * The one timeout-and-wrap helper of the adapters: settles with `send`'s promise, or rejects with
 * FST_QUART_SESSION_TIMEOUT after `bound.ms`. A failure becomes FST_QUART_SESSION_BACKEND with the
 * client's error as its cause, unless `classify` maps it to something else first (a timeout the
 * client itself noticed, an error already ours). Clients that stop timing a command once it is
 * written (node-redis), or never time it (memcached), would otherwise hang a request.
 */
export function bounded<T> (bound: Bound, send: () => Promise<T>, classify?: (error: unknown) => Error | undefined, recover?: Recover<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new FST_QUART_SESSION_TIMEOUT(bound.operation, bound.seconds)) }, bound.ms)
    let pending: Promise<T>
    try {
      pending = send()
    } catch (error) {
      pending = Promise.reject(error)
    }
    const succeed = (value: T): void => {
      clearTimeout(timer)
      resolve(value === null && bound.absent === true ? undefined as T : value)
    }
    pending.then(succeed, (error: unknown) => {
      const fail = (cause: unknown): void => {
        clearTimeout(timer)
        reject(classify?.(cause) ?? withCause(new FST_QUART_SESSION_BACKEND(bound.operation), cause))
      }
      const retry = recover?.(error)
      // Still within the same timer: the retry is part of the one operation.
      if (retry === undefined) fail(error)
      else retry.then(succeed, fail)
    })
  })
}

/**
 * What a bounded call does with a failure it can get past (a script Redis does not know yet: send
 * it whole): the promise of the way on, or undefined to fail. Part of the call, not a wrapper
 * around it, so the usual path costs no extra promise.
 */
export type Recover<T> = (error: unknown) => Promise<T> | undefined

/** A Node-style callback API as a promise, for `bounded`. */
export function fromCallback<T> (send: (done: (error: unknown, result?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    send((error, result) => {
      if (error === undefined || error === null) resolve(result as T)
      else reject(error)
    })
  })
}
