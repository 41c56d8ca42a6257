import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Backend } from './backend.js'
import type { SessionState } from './state.js'
import type { UserIndexOptions } from './options.js'
import type { IndexEntry, SessionIndex, UserEntries } from './session-index.js'
import type { SessionRecord } from './record.js'
import { handleOf, idHash } from './keys.js'
import { nowSeconds } from './lifetime.js'
import { publish } from './events.js'
import { FST_QUART_SESSION_INVALID_ARGUMENT, FST_QUART_SESSION_INVALID_USER_ID, FST_QUART_SESSION_TOO_MANY_SESSIONS, backendError } from './errors.js'

/** How often the expiry sweep looks at the slots that have passed (with SLOT_MS: an `expired` event within 10 s). */
const SWEEP_MS = 2000
/** At start, slots this far back are looked at too (sessions that ended while no process ran). */
const LOOKBACK_MS = 120_000
/** Users swept at once. */
const SWEEP_CONCURRENCY = 16
const USER_AGENT_MAX = 256

/** One session as a "your devices" page shows it. Times are epoch milliseconds. */
export interface ListedSession {
  /** Opaque: it can only revoke (sessionStore.revokeSession), never open or find the session. */
  handle: string
  created: number
  /** Last write or lifetime refresh of the session (a rolling session refreshes at most once per maxAge / 10). */
  lastSeen: number
  /** When it ends unless used again (rolling) or written. */
  expires: number
  /** The session of the request that asked (listSessions(user, { current: request.session.handle })). */
  current: boolean
  userAgent?: string
  address?: string
}

export interface ListOptions {
  /** The handle of the asking request's session, to mark it `current`. */
  current?: string
}

export interface RevokeOptions {
  /** A handle to keep (the asking request's own session: `request.session.handle`). */
  except?: string
}

interface Checked {
  dead: Map<string, IndexEntry>
  /** Live sessions: their end as the record says (epoch ms) and the record. */
  alive: Map<string, { end: number, record: SessionRecord }>
}

/**
 * A user's sessions: which are theirs (the index, lib/session-index.ts), the policy around it
 * (when the index changes, the limit per user, revocation, the expiry sweep) and its events. The
 * index is a hint that is always verified against the records: a session is listed, counted or
 * reported expired only after its own record was read.
 */
export class UserSessions {
  readonly index: SessionIndex
  readonly #backend: Backend
  readonly #options: UserIndexOptions
  readonly #log: FastifyBaseLogger
  readonly #devices = new WeakMap<SessionState, { userAgent?: string, address?: string }>()
  #timer: NodeJS.Timeout | undefined
  #cursor = 0
  #sweeping: Promise<void> | undefined

  constructor (index: SessionIndex, backend: Backend, options: UserIndexOptions, log: FastifyBaseLogger) {
    this.index = index
    this.#backend = backend
    this.#options = options
    this.#log = log
  }

  get wantsDevice (): boolean {
    return this.#options.userAgent || this.#options.address
  }

  /** The user a session's data names, checked; throws FST_QUART_SESSION_INVALID_USER_ID. */
  userOf (data: Record<string, unknown>): string | undefined {
    const value = this.#options.resolve(data)
    if (value === undefined || value === null) return undefined
    if (typeof value === 'string' && value.length > 0) return value
    if (typeof value === 'number' && Number.isFinite(value)) return String(value)
    throw new FST_QUART_SESSION_INVALID_USER_ID(typeof value === 'string' ? 'an empty string' : typeof value === 'object' ? 'an object' : `a ${typeof value}`)
  }

  /** For events: the user where one can be told, never an error. */
  userOrNone (data: Record<string, unknown>): string | undefined {
    try {
      return this.userOf(data)
    } catch {
      return undefined
    }
  }

  /**
   * Before a save that changes the session: the user its stored record names (the index entry the
   * save may have to move). Checks the new user id first, so a bad one fails before any write.
   */
  before (state: SessionState): string | undefined {
    this.userOf(state.data)
    if (state.stored === undefined) return undefined
    try {
      return this.userOf(this.#backend.open(state.id, state.stored).record.data)
    } catch {
      return undefined
    }
  }

  /** The save hook hands over the request, for `deviceInfo`. */
  note (state: SessionState, request: FastifyRequest): void {
    if (this.#devices.has(state)) return
    const device: { userAgent?: string, address?: string } = {}
    const ua = request.headers['user-agent']
    if (this.#options.userAgent && typeof ua === 'string' && ua.length > 0) device.userAgent = ua.slice(0, USER_AGENT_MAX)
    if (this.#options.address) {
      const address = coarse(request.ip)
      if (address !== undefined) device.address = address
    }
    this.#devices.set(state, device)
  }

  /** After a save that changed the session: move its index entry if its user changed. */
  async saved (state: SessionState, before: string | undefined): Promise<void> {
    // Gone meanwhile (revoked, destroyed elsewhere): nothing was written, nothing to index.
    if (state.id === '') return
    const after = state.stored === undefined ? undefined : this.userOf(state.data)
    if (after === before) return
    const handle = handleOf(state.id)
    if (before !== undefined) await this.#forget(before, handle)
    if (after !== undefined) await this.#add(after, state, handle)
  }

  /** A session that ended here (destroy, regenerate): out of its user's list. */
  async ended (id: string, user: string | undefined): Promise<void> {
    if (user !== undefined) await this.#forget(user, handleOf(id))
  }

  async list (user: unknown, options?: ListOptions): Promise<ListedSession[]> {
    const name = checkUser(user)
    const current = options?.current
    const entries = await this.#call(async () => await this.index.read(name))
    const checked = await this.#check(entries, true)
    await this.#prune(name, checked)
    const listed: ListedSession[] = []
    for (const [handle, { end, record }] of checked.alive) {
      const entry = entries[handle]
      const session: ListedSession = {
        handle,
        created: (record.created ?? entry.created / 1000) * 1000,
        lastSeen: (record.touched ?? record.created ?? 0) * 1000,
        expires: end,
        current: handle === current
      }
      if (entry.userAgent !== undefined) session.userAgent = entry.userAgent
      if (entry.address !== undefined) session.address = entry.address
      listed.push(session)
    }
    return listed.sort((a, b) => b.lastSeen - a.lastSeen || b.created - a.created)
  }

  /** End one session of the user now; resolves whether it was theirs and alive. */
  async revoke (user: unknown, handle: unknown): Promise<boolean> {
    const name = checkUser(user)
    if (typeof handle !== 'string' || handle.length === 0) throw new FST_QUART_SESSION_INVALID_ARGUMENT('handle', 'must be a session handle (session.handle, or one from listSessions)')
    const entries = await this.#call(async () => await this.index.read(name))
    if (!Object.hasOwn(entries, handle)) return false
    return (await this.#revoke(name, { [handle]: entries[handle] }, 'revoked')) === 1
  }

  /** End all of the user's sessions but `except`; resolves with how many were ended. */
  async revokeAll (user: unknown, options?: RevokeOptions): Promise<number> {
    const name = checkUser(user)
    const except = options?.except
    if (except !== undefined && typeof except !== 'string') throw new FST_QUART_SESSION_INVALID_ARGUMENT('except', 'must be a session handle (request.session.handle)')
    const entries = await this.#call(async () => await this.index.read(name))
    const targets: UserEntries = {}
    for (const handle in entries) if (handle !== except) targets[handle] = entries[handle]
    return await this.#revoke(name, targets, 'revoked-all')
  }

  /**
   * Records first, then the index: a session must never outlive its entry (it would be out of
   * reach of the next "sign out everywhere"). Entries of sessions already over are reported expired.
   */
  async #revoke (user: string, targets: UserEntries, reason: string): Promise<number> {
    const checked = await this.#check(targets, true)
    await this.#call(async () => {
      await Promise.all([...checked.alive.keys()].map(async (handle) => { await this.#deleteRecord(targets[handle].key) }))
    })
    let revoked: [string, IndexEntry][] = []
    let expired: [string, IndexEntry][] = []
    const written = await this.#call(async () => await this.index.change(user, (latest) => {
      revoked = []
      expired = []
      const next = { ...latest }
      for (const handle in targets) {
        if (!Object.hasOwn(latest, handle)) continue
        if (checked.alive.has(handle)) revoked.push([handle, latest[handle]])
        else if (checked.dead.has(handle)) expired.push([handle, latest[handle]])
        else continue
        delete next[handle]
      }
      return revoked.length + expired.length === 0 ? undefined : next
    }))
    if (!written) return 0
    const at = Date.now()
    for (const [, entry] of revoked) publish('revoked', () => ({ user, idHash: entry.idHash, at, reason }))
    for (const [, entry] of expired) publish('expired', () => ({ user, idHash: entry.idHash, at }))
    return revoked.length
  }

  async #add (user: string, state: SessionState, handle: string): Promise<void> {
    const backend = this.#backend
    const id = state.id
    const now = nowSeconds()
    const entry: IndexEntry = {
      key: backend.keys.of(id),
      idHash: idHash(id),
      created: state.created * 1000,
      expires: (now + backend.lifetime.ttl(state, state.touched, now)) * 1000,
      ...this.#devices.get(state)
    }
    const { limit, policy } = this.#options
    const index = this.index
    const checked = await this.#check(await index.read(user), false)
    let expired: [string, IndexEntry][] = []
    let dropped: [string, IndexEntry][] = []
    const written = await index.change(user, (latest) => {
      expired = []
      dropped = []
      const next: UserEntries = {}
      for (const other in latest) {
        const old = latest[other]
        if (checked.dead.has(other)) expired.push([other, old])
        else next[other] = moved(other, old, checked)
      }
      delete next[handle]
      if (limit > 0) {
        const others = Object.entries(next)
        if (others.length >= limit) {
          if (policy === 'refuse') throw new FST_QUART_SESSION_TOO_MANY_SESSIONS(limit)
          others.sort((a, b) => a[1].created - b[1].created)
          for (const pair of others.slice(0, others.length - limit + 1)) {
            delete next[pair[0]]
            dropped.push(pair)
          }
        }
      }
      next[handle] = entry
      return next
    })
    if (!written) return
    const at = Date.now()
    for (const [, old] of expired) publish('expired', () => ({ user, idHash: old.idHash, at }))
    // Out of the list first, then ended: the drop is decided by the index write, which only one login wins.
    await Promise.all(dropped.map(async ([, old]) => { await this.#deleteRecord(old.key) }))
    for (const [, old] of dropped) publish('revoked', () => ({ user, idHash: old.idHash, at, reason: 'limit' }))
    await index.schedule(user, entry.expires)
  }

  async #forget (user: string, handle: string): Promise<void> {
    await this.index.change(user, (latest) => {
      if (!Object.hasOwn(latest, handle)) return undefined
      const next = { ...latest }
      delete next[handle]
      return next
    })
  }

  /**
   * Read the records of `entries` (all of them, or only those past the end the index noted) and
   * tell which sessions are over and when the others end now.
   */
  async #check (entries: UserEntries, all: boolean): Promise<Checked> {
    const backend = this.#backend
    const now = Date.now()
    const dead = new Map<string, IndexEntry>()
    const alive = new Map<string, { end: number, record: SessionRecord }>()
    await this.#call(async () => {
      await Promise.all(Object.entries(entries).map(async ([handle, entry]) => {
        if (!all && entry.expires > now) return
        const record = backend.keys.isSessionKey(entry.key) ? await this.#readRecord(entry.key) : undefined
        if (record === undefined) dead.set(handle, entry)
        else alive.set(handle, { end: this.#endOf(record), record })
      }))
    })
    return { dead, alive }
  }

  async #readRecord (key: string): Promise<SessionRecord | undefined> {
    const backend = this.#backend
    const text = await backend.store.get(key)
    if (text === undefined) return undefined
    try {
      const record = backend.codec.open(text, key).record
      return backend.lifetime.expired(record, nowSeconds()) ? undefined : record
    } catch {
      return undefined
    }
  }

  #endOf (record: SessionRecord): number {
    const lifetime = this.#backend.lifetime
    let end = (record.touched ?? nowSeconds()) + lifetime.of(record.cookie)
    if (lifetime.absoluteMaxAge > 0 && record.created !== undefined) end = Math.min(end, record.created + lifetime.absoluteMaxAge)
    return end * 1000
  }

  async #deleteRecord (key: string): Promise<void> {
    // Only ever a session record's key: an index item cannot be made to delete anything else.
    if (this.#backend.keys.isSessionKey(key)) await this.#backend.store.delete(key)
  }

  /** Take over what `#check` found: ended sessions out (reported once, by whoever writes that), later ends noted. */
  async #prune (user: string, checked: Checked): Promise<void> {
    if (checked.dead.size === 0 && checked.alive.size === 0) return
    let expired: [string, IndexEntry][] = []
    let later: number[] = []
    const written = await this.#call(async () => await this.index.change(user, (latest) => {
      expired = []
      later = []
      const next: UserEntries = {}
      for (const handle in latest) {
        const entry = latest[handle]
        if (checked.dead.has(handle)) {
          expired.push([handle, entry])
          continue
        }
        const now = moved(handle, entry, checked)
        if (now !== entry) later.push(now.expires)
        next[handle] = now
      }
      return expired.length + later.length === 0 ? undefined : next
    }))
    if (!written) return
    const at = Date.now()
    for (const [, entry] of expired) publish('expired', () => ({ user, idHash: entry.idHash, at }))
    await this.#call(async () => { for (const end of new Set(later)) await this.index.schedule(user, end) })
  }

  /** Start the expiry sweep: a timer that never keeps the process alive. */
  start (): void {
    this.#cursor = Date.now() - LOOKBACK_MS
    this.#timer = setInterval(() => { void this.sweep() }, SWEEP_MS)
    this.#timer.unref()
  }

  async close (): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    await this.#sweeping
    await this.index.close?.()
  }

  /** One pass of the expiry sweep: users with a session noted to end in the slots that passed. */
  async sweep (): Promise<void> {
    if (this.#sweeping !== undefined) return await this.#sweeping
    this.#sweeping = this.#sweep().catch((err: unknown) => {
      this.#log.warn({ err }, 'fastify-quart-session: the session expiry sweep failed; it runs again shortly')
    }).finally(() => { this.#sweeping = undefined })
    await this.#sweeping
  }

  async #sweep (): Promise<void> {
    const { users, next } = await this.index.due(this.#cursor, Date.now())
    for (let i = 0; i < users.length; i += SWEEP_CONCURRENCY) {
      await Promise.all(users.slice(i, i + SWEEP_CONCURRENCY).map(async (user) => {
        const checked = await this.#check(await this.index.read(user), false)
        await this.#prune(user, checked)
      }))
    }
    this.#cursor = next
  }

  /** Backend failures as the plugin's own error (code, no internals); our own errors as they are. */
  async #call<T> (fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      const code = (err as { code?: unknown })?.code
      if (typeof code === 'string' && code.startsWith('FST_QUART_SESSION_') && code !== 'FST_QUART_SESSION_BACKEND') throw err
      throw backendError('session index', err)
    }
  }
}

/** An entry with its end moved to what its record says, when that is later. */
function moved (handle: string, entry: IndexEntry, checked: Checked): IndexEntry {
  const live = checked.alive.get(handle)
  return live !== undefined && live.end > entry.expires ? { ...entry, expires: live.end } : entry
}

function checkUser (user: unknown): string {
  if (typeof user === 'string' && user.length > 0) return user
  if (typeof user === 'number' && Number.isFinite(user)) return String(user)
  throw new FST_QUART_SESSION_INVALID_ARGUMENT('userId', 'must be the user id the "userId" option names (a non-empty string or a number)')
}

/** IPv4 to its /24, IPv6 to its /48: enough for "Berlin, home network", not a person's address. */
export function coarse (ip: string | undefined): string | undefined {
  if (typeof ip !== 'string' || ip.length === 0) return undefined
  const mapped = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.\d{1,3}$/.exec(mapped)
  if (v4 !== null) return `${v4[1]}.${v4[2]}.${v4[3]}.0/24`
  if (!mapped.includes(':')) return undefined
  const [head] = mapped.split('::')
  const groups = head.split(':').filter((g) => g.length > 0).slice(0, 3)
  while (groups.length < 3) groups.push('0')
  return `${groups.join(':')}::/48`
}
