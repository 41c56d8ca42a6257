import type { SessionCookieOptions } from './cookie.js'
import type { SessionRecord } from './record.js'

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

/** What the lifetime arithmetic needs to know of a session; all times in seconds since the epoch. */
export interface Dated {
  /** Creation or last regenerate. */
  created: number
  /** Last write or refresh of the record. */
  touched: number
  /** When the cookie last went out with its expiry (at or before `touched`); absent: at `touched`. */
  sent?: number
  /** The session's own cookie settings (`maxAge` in seconds), if any. */
  cookieOptions: SessionCookieOptions | undefined
}

/**
 * Expiry and refresh arithmetic, in whole seconds, in one place: a session lives `maxAge` (or its
 * own) after its last write or refresh, and never past `absoluteMaxAge` after its creation. The
 * backend TTL, the cookie's Max-Age and the core's own expiry check all come from here.
 */
export class Lifetime {
  readonly maxAge: number
  readonly rolling: boolean
  /** 0 = off. */
  readonly absoluteMaxAge: number

  constructor (maxAge: number, rolling: boolean, absoluteMaxAge: number) {
    this.maxAge = maxAge
    this.rolling = rolling
    this.absoluteMaxAge = absoluteMaxAge
  }

  /** Seconds a session lives after a use or write. */
  of (cookieOptions: SessionCookieOptions | undefined): number {
    return cookieOptions?.maxAge ?? this.maxAge
  }

  /**
   * Whether the record's lifetime and the cookie's expiry should be restarted now (rolling, at
   * most once per lifetime / 10), counted from the last time the cookie went out.
   */
  refreshDue (session: Dated, now: number): boolean {
    return this.rolling && this.cookieDue(session, now)
  }

  /**
   * Whether a write should re-send the cookie of a session the browser already holds: its expiry
   * is due a refresh (once per lifetime / 10). A write in between extends the record only: the
   * cookie still outlives the refresh interval by far, and a hot session's requests skip a
   * Set-Cookie each.
   */
  cookieDue (session: Dated, now: number): boolean {
    return now - (session.sent ?? session.touched) >= Math.max(1, Math.floor(this.of(session.cookieOptions) / 10))
  }

  /** Seconds left from `from`, the backend TTL and cookie Max-Age alike; absoluteMaxAge caps it. */
  ttl (session: Dated, from: number, now: number): number {
    let ttl = from + this.of(session.cookieOptions) - now
    if (this.absoluteMaxAge > 0) ttl = Math.min(ttl, session.created + this.absoluteMaxAge - now)
    return Math.max(1, ttl)
  }

  /**
   * Whether a record has outlived its lifetime: its lifetime after its last write or refresh, or
   * `absoluteMaxAge` after its creation. The core checks every record it reads, whatever the store
   * or a cache in front of it says: a store without TTLs, or a client-side cache whose invalidation
   * comes only when Redis's expiry cycle reaches the key, must never hand back a session that ended.
   */
  expired (record: SessionRecord, now: number): boolean {
    const touched = record.touched
    if (touched !== undefined && touched + this.of(record.cookie) <= now) return true
    return this.absoluteMaxAge > 0 && record.created !== undefined && record.created + this.absoluteMaxAge <= now
  }
}
