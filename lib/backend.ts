import type { SessionStore } from './store.js'
import type { Serializer } from './serializer.js'
import { type Data, type SessionRecord, type Session, isEmpty } from './session.js'
import { FST_QUART_SESSION_BACKEND, FST_QUART_SESSION_CORRUPT_RECORD, FST_QUART_SESSION_SERIALIZE } from './errors.js'
import {
  kClearCookie, kCookie, kData, kDirty, kExposed, kId, kPermanent, kPin, kText, kTouch
} from './symbols.js'

/**
 * Sits between sessions and the adapter: key names, the record format, error mapping and the
 * save decision live here once, so adapters only move strings.
 */
export class Backend {
  readonly store: SessionStore
  readonly serializer: Serializer
  readonly keyPrefix: string
  /** Seconds a session lives after its last write. */
  readonly maxAge: number
  /** Default of `session.permanent` for new sessions. */
  readonly permanent: boolean

  constructor (store: SessionStore, serializer: Serializer, keyPrefix: string, maxAge: number, permanent: boolean) {
    this.store = store
    this.serializer = serializer
    this.keyPrefix = keyPrefix
    this.maxAge = maxAge
    this.permanent = permanent
  }

  async read (id: string): Promise<string | undefined> {
    try {
      return await this.store.get(this.keyPrefix + id)
    } catch (err) {
      throw backendError('read', err)
    }
  }

  async remove (id: string): Promise<void> {
    try {
      await this.store.delete(this.keyPrefix + id)
    } catch (err) {
      throw backendError('delete', err)
    }
  }

  encode (session: Session): string {
    const record: SessionRecord = { data: session[kData] }
    if (!session[kPermanent]) record.permanent = false
    if (session[kPin] !== undefined) record.pin = session[kPin]
    try {
      return this.serializer.stringify(record)
    } catch (err) {
      throw Object.assign(new FST_QUART_SESSION_SERIALIZE((err as Error)?.message ?? String(err)), { cause: err })
    }
  }

  /** Parse a stored record; throws FST_QUART_SESSION_CORRUPT_RECORD when it is not one of ours. */
  decode (text: string): SessionRecord {
    let record: unknown
    try {
      record = this.serializer.parse(text)
    } catch (err) {
      throw Object.assign(new FST_QUART_SESSION_CORRUPT_RECORD((err as Error)?.message ?? String(err)), { cause: err })
    }
    if (!isRecord(record)) throw new FST_QUART_SESSION_CORRUPT_RECORD('not a session record ({ data: {...} })')
    return record
  }

  /**
   * Write the session if it changed, delete it if it was emptied, restart its TTL if touched.
   * Records on the session whether the cookie must be sent or expired.
   */
  async persist (session: Session): Promise<void> {
    const stored = session[kText]
    let text: string | undefined
    if (session[kDirty] || session[kExposed]) {
      text = this.encode(session)
      session[kDirty] = false
      session[kExposed] = false
      if (text === stored) text = undefined
    }
    const store = this.store
    try {
      if (text !== undefined) {
        if (isEmpty(session[kData])) {
          if (stored === undefined) return
          await store.delete(this.keyPrefix + session[kId])
          session[kText] = undefined
          session[kCookie] = false
          session[kClearCookie] = true
        } else {
          await store.set(this.keyPrefix + session.id, text, this.maxAge)
          session[kText] = text
          session[kCookie] = true
          session[kClearCookie] = false
        }
        session[kTouch] = false
      } else if (session[kTouch] && stored !== undefined) {
        const key = this.keyPrefix + session[kId]
        if (store.touch !== undefined) await store.touch(key, this.maxAge)
        else await store.set(key, stored, this.maxAge)
        session[kTouch] = false
        session[kCookie] = true
      }
    } catch (err) {
      throw backendError('save', err)
    }
  }
}

function isRecord (value: unknown): value is SessionRecord {
  if (typeof value !== 'object' || value === null) return false
  const { data, permanent, pin } = value as Record<string, unknown>
  return typeof data === 'object' && data !== null && !Array.isArray(data) &&
    (permanent === undefined || permanent === false) &&
    (pin === undefined || typeof pin === 'string')
}

/** Errors from an adapter keep their FST_QUART_SESSION_* code; anything else gets one. */
export function backendError (operation: string, err: unknown): Error {
  const code = (err as { code?: unknown })?.code
  if (typeof code === 'string' && code.startsWith('FST_QUART_SESSION_')) return err as Error
  return Object.assign(new FST_QUART_SESSION_BACKEND(operation, (err as Error)?.message ?? String(err)), { cause: err })
}

export type { Data }
