import type { SessionStore } from '../store.js'
import { FST_QUART_SESSION_INVALID_OPTION } from '../errors.js'
import { Recency } from '../recency.js'

export interface MemoryStoreOptions {
  /** Most entries kept; the least recently used one is evicted beyond it. Default 10 000. */
  maxEntries?: number
}

interface Entry {
  value: string
  /** Milliseconds since the epoch; 0 = no expiry. */
  expires: number
}

/**
 * An in-process store: bounded (the least recently used entry evicted beyond the bound), expiring
 * entries lazily when they are read, with no timer to hold the process open. It keeps serialized
 * strings, so it behaves like a real backend (no shared object references between requests). Per
 * process and lost on restart: for development, tests and single-process apps. Every operation is
 * O(1) whatever the number of sessions (lib/recency.ts says why that takes more than a Map).
 */
export class MemoryStore implements SessionStore {
  readonly maxEntries: number
  readonly #entries = new Recency<Entry>()

  constructor (options: MemoryStoreOptions = {}) {
    const maxEntries = options.maxEntries ?? 10_000
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new FST_QUART_SESSION_INVALID_OPTION('maxEntries', 'must be a positive integer')
    }
    this.maxEntries = maxEntries
  }

  /** Live entries right now (expired ones still held are not counted). */
  get size (): number {
    let n = 0
    const now = Date.now()
    for (const entry of this.#entries.values()) if (entry.expires === 0 || entry.expires > now) n++
    return n
  }

  async get (key: string): Promise<string | undefined> {
    return this.getLocal(key) ?? undefined
  }

  /** Everything is local here: the value, or null. */
  getLocal (key: string): string | null {
    return this.#live(key, Date.now())?.value ?? null
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    this.#put(key, value, ttlSeconds)
  }

  #put (key: string, value: string, ttlSeconds: number): void {
    const entries = this.#entries
    entries.set(key, { value, expires: ttlSeconds > 0 ? Date.now() + ttlSeconds * 1000 : 0 })
    if (entries.size > this.maxEntries) entries.dropOldest()
  }

  async delete (key: string): Promise<void> {
    this.#entries.delete(key)
  }

  // One synchronous step: nothing else runs between the comparison and the write.
  async compareAndSet (key: string, expected: string | undefined, value: string | undefined, ttlSeconds: number): Promise<boolean> {
    // Found and made the newest in one lookup, then replaced in place: no second one to write.
    const now = Date.now()
    const entry = this.#live(key, now)
    if (entry?.value !== expected) return false
    if (value === undefined) {
      this.#entries.delete(key)
    } else if (entry !== undefined) {
      entry.value = value
      entry.expires = ttlSeconds > 0 ? now + ttlSeconds * 1000 : 0
    } else {
      this.#put(key, value, ttlSeconds)
    }
    return true
  }

  async close (): Promise<void> {
    this.#entries.clear()
  }

  /** The entry under `key`, made the most recently used in the same lookup, unless it expired (then dropped). */
  #live (key: string, now: number): Entry | undefined {
    const entry = this.#entries.use(key)
    if (entry === undefined) return undefined
    if (entry.expires !== 0 && entry.expires <= now) {
      this.#entries.delete(key)
      return undefined
    }
    return entry
  }
}
