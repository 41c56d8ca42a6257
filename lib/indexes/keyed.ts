import { createHash } from 'node:crypto'
import { sha256 } from '../digest.js'
import type { SessionStore } from '../store.js'
import type { DueUsers, IndexEntry, SessionIndex, UserEntries } from '../session-index.js'
import { FST_QUART_SESSION_CONFLICT } from '../errors.js'

/** Width of one expiry slot: a session is swept at most this long (plus the sweep interval) after its end. */
export const SLOT_MS = 4000
/** Slot items per time slot, so that logins of many users do not all compare-and-set one key. */
const SHARDS = 8
/** A slot item outlives its slot by this long, for processes that were briefly away. */
const SLOT_KEEP_S = 600
/** Most slots one `due` call reads (a process that was away long catches up in steps). */
const MAX_SLOTS = 30
const RETRY_FOR_MS = 5000

const hash = (text: string): string => sha256(text, 'base64url')

interface Item { user: string, sessions: UserEntries }

/**
 * The per-user index kept in a SessionStore as two kinds of items beside the session records:
 * one per user (`<prefix>users:<hash of the user id>`: the user's sessions, changed by
 * compare-and-set) and expiry slots (`<prefix>due:<slot>:<shard>`: which users have a session
 * ending then). Every operation touches one key at a time, so it stays correct where the items
 * and the session records live on different nodes (Redis Cluster, memcached pools), and every
 * item expires: a user item `margin` seconds after the last end it lists (the longest a session
 * it lists can be refreshed past that end without the sweep noticing), a slot item shortly after
 * its slot. Nothing grows with sessions that ended.
 *
 * Stores without compareAndSet get last-write-wins: two logins of one user at the same moment may
 * leave one of them unlisted (documented for connectStore).
 */
export class KeyedIndex implements SessionIndex {
  readonly store: SessionStore
  readonly prefix: string
  /** Seconds a user item outlives the last end it lists (the longest session lifetime). */
  readonly margin: number
  readonly #owned: boolean

  constructor (store: SessionStore, prefix: string, margin: number, owned = false) {
    this.store = store
    this.prefix = prefix
    this.margin = margin
    this.#owned = owned
  }

  userKey (user: string): string {
    return this.prefix + 'users:' + hash(user)
  }

  slotKey (slot: number, shard: number): string {
    return `${this.prefix}due:${slot}:${shard}`
  }

  async ready (): Promise<void> {
    if (this.#owned) await this.store.ready?.()
  }

  async close (): Promise<void> {
    if (this.#owned) await this.store.close?.()
  }

  async read (user: string): Promise<UserEntries> {
    return parseItem(await this.store.get(this.userKey(user)), user).sessions
  }

  async change (user: string, change: (entries: UserEntries) => UserEntries | undefined): Promise<boolean> {
    const key = this.userKey(user)
    return await this.#cas(key, (text) => {
      const next = change(parseItem(text, user).sessions)
      if (next === undefined) return undefined
      let last = 0
      for (const handle in next) last = Math.max(last, next[handle].expires)
      if (last === 0) return { text: null, ttl: 0 }
      const item: Item = { user, sessions: next }
      return { text: JSON.stringify(item), ttl: Math.max(1, Math.ceil((last - Date.now()) / 1000)) + this.margin }
    })
  }

  async schedule (user: string, at: number): Promise<void> {
    const slot = Math.floor(at / SLOT_MS)
    const key = this.slotKey(slot, shardOf(user))
    await this.#cas(key, (text) => {
      const users = parseList(text)
      if (users.includes(user)) return undefined
      users.push(user)
      return { text: JSON.stringify(users), ttl: Math.max(1, Math.ceil(((slot + 1) * SLOT_MS - Date.now()) / 1000)) + SLOT_KEEP_S }
    })
  }

  async due (from: number, to: number): Promise<DueUsers> {
    const first = Math.floor(from / SLOT_MS)
    // Only slots wholly in the past: a session noted later always ends later than now.
    const end = Math.min(Math.floor(to / SLOT_MS), first + MAX_SLOTS)
    const keys: string[] = []
    for (let slot = first; slot < end; slot++) for (let shard = 0; shard < SHARDS; shard++) keys.push(this.slotKey(slot, shard))
    const texts = await Promise.all(keys.map(async (key) => await this.store.get(key)))
    const users = new Set<string>()
    for (const text of texts) for (const user of parseList(text)) users.add(user)
    return { users: [...users], next: Math.max(from, end * SLOT_MS) }
  }

  /**
   * Read-modify-write of one item: `build` gets the stored text and returns the new text (`null`:
   * delete) or `undefined` (nothing to change). Retries on a lost compare-and-set for a bounded time.
   */
  async #cas (key: string, build: (text: string | undefined) => { text: string | null, ttl: number } | undefined): Promise<boolean> {
    const store = this.store
    const deadline = Date.now() + RETRY_FOR_MS
    for (let attempt = 1; ; attempt++) {
      const text = await store.get(key)
      const next = build(text)
      if (next === undefined) return false
      if (store.compareAndSet === undefined) {
        if (next.text === null) await store.delete(key)
        else await store.set(key, next.text, next.ttl)
        return true
      }
      if (await store.compareAndSet(key, text, next.text ?? undefined, next.ttl)) return true
      if (Date.now() > deadline) throw new FST_QUART_SESSION_CONFLICT(attempt)
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(20, 2 ** attempt)))
    }
  }
}

function shardOf (user: string): number {
  return createHash('sha256').update(user).digest()[0] % SHARDS
}

/** A user item; anything unreadable (or another user's, which a hash collision cannot make) reads as empty. */
function parseItem (text: string | undefined, user: string): Item {
  if (text === undefined) return { user, sessions: {} }
  try {
    const item = JSON.parse(text) as Partial<Item>
    if (item !== null && typeof item === 'object' && item.user === user && typeof item.sessions === 'object' && item.sessions !== null) {
      const sessions: UserEntries = {}
      for (const [handle, entry] of Object.entries(item.sessions)) if (isEntry(entry)) sessions[handle] = entry
      return { user, sessions }
    }
  } catch {}
  return { user, sessions: {} }
}

function isEntry (value: unknown): value is IndexEntry {
  const e = value as IndexEntry
  return typeof e === 'object' && e !== null && typeof e.key === 'string' && typeof e.idHash === 'string' &&
    Number.isFinite(e.created) && Number.isFinite(e.expires)
}

function parseList (text: string | undefined): string[] {
  if (text === undefined) return []
  try {
    const list = JSON.parse(text) as unknown
    return Array.isArray(list) ? list.filter((u): u is string => typeof u === 'string') : []
  } catch {
    return []
  }
}
