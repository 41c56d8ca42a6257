/**
 * The per-user session index: its own contract beside the store's (lib/store.ts), as Spring
 * Session keeps FindByIndexNameSessionRepository beside SessionRepository. The store keeps records;
 * the index keeps, per user, which sessions are theirs and when each ends at the earliest. It is
 * a hint the core verifies: a session is listed only after its own record was read and found alive.
 */

/** One session in its user's list. Times are epoch milliseconds. */
export interface IndexEntry {
  /** The record's store key (a hash of the id: it opens nothing as a cookie). */
  key: string
  /** The id's log hash (lib/keys.ts idHash), for lifecycle events. */
  idHash: string
  created: number
  /**
   * When the session ends at the earliest: its lifetime from its last write as the index last saw
   * it. A rolling refresh moves the record's end later without an index call; the sweep then reads
   * the record and moves this forward.
   */
  expires: number
  /** The client's User-Agent at login, with the `deviceInfo` option. */
  userAgent?: string
  /** The client's address at login, coarsened (IPv4 /24, IPv6 /48), with the `deviceInfo` option. */
  address?: string
}

/** A user's sessions by handle (lib/keys.ts handleOf). */
export type UserEntries = Record<string, IndexEntry>

/** Users whose sessions may have ended in a span of time, and where the next span starts. */
export interface DueUsers {
  users: string[]
  /** Epoch ms: pass as `from` next time. Everything before it has been handed out. */
  next: number
}

export interface SessionIndex {
  /** The user's entries as stored (ended sessions may still be among them: the caller verifies). */
  read (user: string): Promise<UserEntries>
  /**
   * Change a user's entries atomically: `change` gets the latest entries and returns the new ones,
   * or `undefined` to leave them. It may run more than once (a concurrent change won), so it must
   * be pure. Resolves `true` when this call's change was written: the caller that wrote the
   * removal of an entry is the one that reports it (one `expired` event across processes).
   */
  change (user: string, change: (entries: UserEntries) => UserEntries | undefined): Promise<boolean>
  /** Note that a session of `user` ends at `at` (epoch ms), for the expiry sweep. */
  schedule (user: string, at: number): Promise<void>
  /** Users with a session noted to end in [from, to), as far as whole time slots have passed. */
  due (from: number, to: number): Promise<DueUsers>
  ready? (): Promise<void>
  close? (): Promise<void>
}
