import type { SessionStore } from './store.js'
import type { Decoded, RecordCodec, SessionRecord } from './record.js'
import type { StoreKeys } from './keys.js'
import type { Lifetime } from './lifetime.js'
import { idHash } from './keys.js'
import { generateId } from './id.js'
import { publish } from './events.js'

// OWASP's renewal timeout: an id older than `renewAfter` is replaced on its next request, the data
// kept. The old id keeps answering for `renewGrace` seconds through a forward marker, a short-lived
// record under the old key naming the NEW STORE KEY (never the new id: whoever reads the backend
// must not learn a cookie), so the parallel requests of one page that still carry the old cookie
// go on working, without a cookie of their own.
//
// Under hashed keys the steps are: create the new record (only if its key is free), then replace
// the old record by the marker with compare-and-set. Of two requests renewing at once, one wins
// the compare-and-set; the other removes its own new record and follows the winner's marker, so
// one live session remains.

/** Attempts of a renewal that keeps losing to plain saves of the same session; then the request goes on with the old id. */
const ATTEMPTS = 3

/** What a request ends up with after looking at a record due for renewal, or at a marker. */
export type Outcome =
  | { kind: 'renewed', id: string, decoded: Decoded }
  /** Another request renewed it: read and write through `key`, send no cookie. */
  | { kind: 'forward', key: string, decoded: Decoded }
  /** Not renewed this time (kept losing to saves, or no compare-and-set): go on with it. */
  | { kind: 'kept', decoded: Decoded }
  /** Destroyed, expired or renewed past its grace: a fresh session. */
  | { kind: 'gone' }

export function isMarker (record: SessionRecord): boolean {
  return record.forward !== undefined
}

export class Renewal {
  readonly after: number
  readonly grace: number
  readonly #store: SessionStore
  readonly #codec: RecordCodec
  readonly #keys: StoreKeys
  readonly #lifetime: Lifetime

  constructor (store: SessionStore, codec: RecordCodec, keys: StoreKeys, lifetime: Lifetime, after: number, grace: number) {
    this.#store = store
    this.#codec = codec
    this.#keys = keys
    this.#lifetime = lifetime
    this.after = after
    this.grace = grace
  }

  /** Whether a loaded record's id is old enough to be replaced. */
  due (record: SessionRecord, now: number): boolean {
    const born = record.born ?? record.created
    return born !== undefined && now - born >= this.after
  }

  /** The record a marker names, while its grace lasts. */
  async follow (marker: SessionRecord, now: number): Promise<Outcome> {
    const target = marker.forward as string
    // The store's TTL ends it too; the core does not rely on that (a store without TTLs, a cache).
    if (marker.touched === undefined || marker.touched + this.grace <= now || !this.#keys.isDerivedKey(target)) return { kind: 'gone' }
    const text = await this.#store.get(target)
    if (text === undefined) return { kind: 'gone' }
    let decoded: Decoded
    try {
      decoded = this.#codec.open(text, target)
    } catch {
      return { kind: 'gone' }
    }
    // One hop only (renewGrace < renewAfter): a marker behind a marker is a session renewed long ago.
    if (isMarker(decoded.record) || this.#lifetime.expired(decoded.record, now)) return { kind: 'gone' }
    return { kind: 'forward', key: target, decoded }
  }

  /** Replace the id of the session loaded as `decoded` under `id`. */
  async renew (id: string, decoded: Decoded, now: number): Promise<Outcome> {
    const store = this.#store
    const cas = store.compareAndSet?.bind(store)
    const oldKey = this.#keys.of(id)
    let current = decoded
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const newId = generateId()
      const newKey = this.#keys.of(newId)
      // Its data may share objects with the parse cache (RecordCodec.share): `shared` goes along.
      const record: SessionRecord = { ...current.record, touched: now, born: now }
      const encoded = this.#codec.encode(record, newKey)
      const ttl = this.#lifetime.ttl({ created: record.created ?? now, touched: now, cookieOptions: record.cookie }, now, now)
      const marker = this.#codec.encode({ data: {}, created: record.created, touched: now, forward: newKey }, oldKey)
      if (cas === undefined) {
        // Last write wins, as every save on such a store: no guarantee under concurrent renewals.
        await store.set(newKey, encoded.stored, ttl)
        await store.set(oldKey, marker.stored, this.grace)
        this.#published(newId, id)
        return { kind: 'renewed', id: newId, decoded: { ...encoded, record, shared: current.shared } }
      }
      // A taken id (192 random bits: practically never): another one.
      if (!await cas(newKey, undefined, encoded.stored, ttl)) continue
      if (await cas(oldKey, current.stored, marker.stored, this.grace)) {
        this.#published(newId, id)
        return { kind: 'renewed', id: newId, decoded: { ...encoded, record, shared: current.shared } }
      }
      // Lost: our new record goes, and what is under the old key now decides.
      await cas(newKey, encoded.stored, undefined, 0)
      const text = await store.get(oldKey)
      if (text === undefined) return { kind: 'gone' }
      let latest: Decoded
      try {
        latest = this.#codec.open(text, oldKey)
      } catch {
        return { kind: 'gone' }
      }
      if (isMarker(latest.record)) return await this.follow(latest.record, now)
      if (this.#lifetime.expired(latest.record, now)) return { kind: 'gone' }
      current = latest
    }
    return { kind: 'kept', decoded: current }
  }

  /**
   * Remove a session for destroy() and regenerate(), with every id it answers to: the record under
   * `key`, and under `oldKey` (the key of the id the request came with) whatever is there, a marker
   * included, with the marker's target. Repeated while a renewal changes `oldKey` meanwhile, so a
   * destroyed session never lives on under a new id.
   */
  async remove (oldKey: string, key: string | undefined): Promise<void> {
    const store = this.#store
    if (key !== undefined && key !== oldKey) await store.delete(key)
    const cas = store.compareAndSet?.bind(store)
    for (let attempt = 1; ; attempt++) {
      const text = await store.get(oldKey)
      if (text === undefined) return
      let target: string | undefined
      try {
        target = this.#codec.decode(text, oldKey).record.forward
      } catch {}
      if (target !== undefined && this.#keys.isDerivedKey(target)) await store.delete(target)
      // Past a few rounds lost to writers of the old key: delete it outright.
      if (cas === undefined || attempt === ATTEMPTS * 3) {
        await store.delete(oldKey)
        return
      }
      if (await cas(oldKey, text, undefined, 0)) return
    }
  }

  #published (id: string, previous: string): void {
    publish('renewed', () => ({ idHash: idHash(id), previousIdHash: idHash(previous), at: Date.now() }))
  }
}
