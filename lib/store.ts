/**
 * The adapter contract. An adapter stores strings under keys with a time to live; it knows
 * nothing about sessions, cookies or serialization: the core owns all of that.
 *
 * Every adapter runs the contract suite in `lib/contract.ts` (published as
 * `fastify-quart-session/contract`): the basic and TTL suites, and one suite for each optional
 * capability it has (`compareAndSet`, `getLocal`).
 *
 * There is no `touch`: the core restarts a record's lifetime by writing the record again (with its
 * new `touched` time, which the core checks on every read), so a TTL-only refresh would leave the
 * stored lifetime and the record's own out of step.
 */
export interface SessionStore {
  /**
   * The value stored under `key`, or `undefined` when there is none or it has expired.
   * "Not found" is never an error; a failing backend is (reject).
   */
  get (key: string): Promise<string | undefined>
  /**
   * Store `value` under `key`, replacing any previous value. `ttlSeconds` is a whole number of
   * seconds: `> 0` expires the entry that long after this call, `0` keeps it until deleted or
   * evicted. Value and TTL are written together (never a value without its expiry).
   */
  set (key: string, value: string, ttlSeconds: number): Promise<void>
  /** Remove `key`. Removing a missing key is not an error. */
  delete (key: string): Promise<void>
  /**
   * Optional, and what makes concurrent saves lossless (without it the last write wins): in one
   * atomic step, if the value stored under `key` is exactly `expected` (`undefined`: no live entry),
   * replace it with `value` (`undefined`: delete the entry) expiring after `ttlSeconds` (as in
   * `set`), and resolve `true`; otherwise change nothing and resolve `false`.
   *
   * The core reads a record, applies a request's changes and calls this with the text it read; on
   * `false` it reads again, merges and retries. A Redis script or `WATCH`, memcached `gets`/`cas`,
   * a lock or version check: how it is made atomic is the adapter's business.
   */
  compareAndSet? (key: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean>
  /**
   * Optional: answer a read from this process's memory, without I/O, when the adapter can (an
   * in-memory store, a client-side cache). Return the value, `null` when the key is known to be
   * absent, or `undefined` when only `get` can tell. Must agree with what `get` would resolve.
   */
  getLocal? (key: string): string | null | undefined
  /**
   * Optional: called once at registration, before `ready()` resolves, so an unreachable
   * backend fails the boot rather than the first request.
   */
  ready? (): Promise<void>
  /** Optional: release what the adapter opened. Called from `onClose`. */
  close? (): Promise<void>
}

/** Options every built-in adapter factory receives from the plugin. */
export interface StoreFactoryOptions {
  /** Seconds a single backend operation may take before it fails. */
  timeout: number
}
