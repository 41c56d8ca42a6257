import type { Serializer } from './serializer.js'
import { type SessionCookieOptions, checkSessionCookieOptions } from './cookie.js'
import { UNCOMPARABLE, snapshot } from './snapshot.js'
import { FST_QUART_SESSION_CORRUPT_RECORD, FST_QUART_SESSION_SERIALIZE, FST_QUART_SESSION_VALUE_TOO_LARGE } from './errors.js'
import { Recency } from './recency.js'

/**
 * Session data as held in memory: a plain object, read only through own keys (`Object.hasOwn`), so
 * no key ever reaches Object.prototype. Plain rather than null-prototype: devalue writes and reads
 * it on its fast path, and the stored record stays plain JSON-like data for other programs.
 */
export type Data = Record<string, unknown>

/** What is stored in the backend under the session's store key (lib/keys.ts), through the serializer. */
export interface SessionRecord {
  data: Data
  /** Present (false) only for browser-session cookies. */
  permanent?: false
  /** Keyed hash of the client address, with `protection`. */
  pin?: string
  /** Seconds since the epoch: creation or last `regenerate()` (for `absoluteMaxAge`). */
  created?: number
  /** Seconds since the epoch: last write or refresh (the lifetime counts from here). */
  touched?: number
  /**
   * Seconds since the epoch: when the cookie last went out with its expiry, where that was before
   * `touched` (writes in between skip re-sending it; absent: at `touched`).
   */
  sent?: number
  /** Cookie settings given by `session.options()`; `maxAge` in seconds. */
  cookie?: SessionCookieOptions
  /** Seconds since the epoch: when this record's id was issued (creation, regenerate or renewal), for `renewAfter`. */
  born?: number
  /**
   * Only on a forward marker, the short-lived record left under a renewed id for `renewGrace`:
   * the store key (never the id) of the session's record under its new id. Its `data` is empty.
   */
  forward?: string
}

/**
 * A record as the codec hands it over: `stored` is the text the backend holds (what a
 * compare-and-set expects), `plain` the serializer's text of the record (what change detection
 * compares). They are the same string until a codec step (encryption with a random nonce) makes the
 * stored text differ on every write: comparing `plain` keeps an unchanged read from writing.
 */
export interface Encoded {
  stored: string
  plain: string
}

export interface Decoded extends Encoded {
  record: SessionRecord
  /**
   * From `share`: the parse cache's own data, whose object values `record.data` holds as they are
   * (a shallow copy). A session copies one of them when it hands it out (SessionState.shared).
   */
  shared?: Data
}

/** A step between the serializer's text and the store (encryption at rest); bound to the store key. */
export interface RecordCipher {
  seal (plain: string, key: string): string
  /** The plain text, or throws FST_QUART_SESSION_CORRUPT_RECORD when no key opens it. */
  open (stored: string, key: string): string
}

/**
 * A copy of `record` holding `data`, field by field in the order records are written
 * (SessionState.toRecord). Not `{ ...record, data }`: on Node 20 a spread of objects whose shapes
 * vary (records have optional fields) takes V8's slow path, over 300 ns against 20, and this runs
 * on every read served from the parse cache.
 */
export function withData (record: SessionRecord, data: Data): SessionRecord {
  const copy: SessionRecord = { data }
  if (record.permanent !== undefined) copy.permanent = record.permanent
  if (record.pin !== undefined) copy.pin = record.pin
  if (record.created !== undefined) copy.created = record.created
  if (record.touched !== undefined) copy.touched = record.touched
  if (record.sent !== undefined) copy.sent = record.sent
  if (record.cookie !== undefined) copy.cookie = record.cookie
  if (record.born !== undefined) copy.born = record.born
  if (record.forward !== undefined) copy.forward = record.forward
  return copy
}

export function isEmpty (data: Data): boolean {
  for (const _ in data) return false
  return true
}

// The parsed-record cache: records under at most this many keys, two texts each, of texts at most
// this long (about 8 MB).
const DECODED_MAX = 1024
const DECODED_TEXT_MAX = 4096

/**
 * A record as last parsed or written under a store key, and its plain text; `older`, the one
 * before it. Two, because reads of a hot session overlap its writes: a GET sent just before a
 * write lands returns the text before it, one sent after returns the new one, and with one text
 * kept each would push the other out and every read would parse.
 */
interface Known {
  plain: string
  record: SessionRecord
  older: { plain: string, record: SessionRecord } | undefined
}

/**
 * Turns records into stored text and back: the serializer, the size limit, the record shape check,
 * and a cache of recent parses (sessions are read far more often than written, so the same text
 * comes back again and again; a deep copy of plain data costs a fraction of parsing it).
 */
export class RecordCodec {
  readonly serializer: Serializer
  readonly maxRecordBytes: number
  readonly cipher: RecordCipher | undefined
  /**
   * By store key, the record last parsed or written there; never handed out, only copied. Keyed by
   * the key, checked by the text: a text read from the backend is a new string every time, and
   * hashing it for a Map costs about 2 ns a character (0.6 µs for a 300-character record), where
   * comparing it with the one text held costs a fraction, and the key's hash is already known.
   */
  readonly #decoded = new Recency<Known>()

  constructor (serializer: Serializer, maxRecordBytes: number, cipher?: RecordCipher) {
    this.serializer = serializer
    this.maxRecordBytes = maxRecordBytes
    this.cipher = cipher
  }

  /** The record as text for the store under `key`; throws FST_QUART_SESSION_VALUE_TOO_LARGE past the limit. */
  encode (record: SessionRecord, key: string): Encoded {
    const plain = this.stringify(record)
    const stored = this.cipher === undefined ? plain : this.cipher.seal(plain, key)
    checkSize(stored, this.maxRecordBytes)
    return { stored, plain }
  }

  /** The serializer's text of a record (what change detection compares). */
  stringify (record: SessionRecord): string {
    try {
      return this.serializer.stringify(record)
    } catch (err) {
      throw Object.assign(new FST_QUART_SESSION_SERIALIZE((err as Error)?.message ?? String(err)), { cause: err })
    }
  }

  /**
   * A record for a session to own, from the text stored under `key`: parsed, or copied from the
   * record last parsed from (or written as) the same text there. Throws
   * FST_QUART_SESSION_CORRUPT_RECORD when it is not one of ours.
   */
  open (stored: string, key: string): Decoded {
    return this.#open(stored, key, false)
  }

  /**
   * Like `open`, for a session loaded by a request: from the parse cache, the record's data is a
   * shallow copy whose object values are the cache's own (`shared`), so that a read costs no deep
   * copy of the whole record; the session copies only the objects it hands out. Anything else
   * that takes such data must not mutate its objects.
   */
  share (stored: string, key: string): Decoded {
    return this.#open(stored, key, true)
  }

  #open (stored: string, key: string, share: boolean): Decoded {
    const plain = this.#plain(stored, key)
    const known = this.#decoded.get(key)
    if (known !== undefined) {
      // The latest text, or the one before it (this read was answered before a write landed): a copy of its record.
      const match = known.plain === plain ? known : known.older?.plain === plain ? known.older : undefined
      if (match !== undefined) {
        const cached = match.record.data
        if (share) return { record: withData(match.record, { ...cached }), stored, plain, shared: cached }
        return { record: withData(match.record, snapshot(cached) as Data), stored, plain }
      }
    }
    const record = this.parse(plain)
    this.#keep(key, plain, record, known)
    return { record, stored, plain }
  }

  /**
   * A record this process just wrote under `key` as `encoded`: the next reads of that text (a hot
   * session's other requests load it right after) copy it instead of parsing it again.
   */
  remember (key: string, encoded: Encoded, record: SessionRecord): void {
    const known = this.#decoded.get(key)
    if (known === undefined || known.plain !== encoded.plain) this.#keep(key, encoded.plain, record, known)
  }

  #keep (key: string, plain: string, record: SessionRecord, known: Known | undefined): void {
    const decoded = this.#decoded
    const copy = plain.length <= DECODED_TEXT_MAX ? snapshot(record.data) : UNCOMPARABLE
    if (copy === UNCOMPARABLE) {
      // Not kept; what was kept for the key is another text, of no more use.
      if (known !== undefined) decoded.delete(key)
      return
    }
    if (known === undefined && decoded.size >= DECODED_MAX) decoded.dropOldest()
    const older = known === undefined ? undefined : { plain: known.plain, record: known.record }
    decoded.set(key, { plain, record: withData(record, copy as Data), older })
  }

  /** Like `open`, without the cache: a record nobody else will see (a merge base). */
  decode (stored: string, key: string): Decoded {
    const plain = this.#plain(stored, key)
    return { record: this.parse(plain), stored, plain }
  }

  /** Parse the serializer's text of a record; throws FST_QUART_SESSION_CORRUPT_RECORD when it is not one. */
  parse (plain: string): SessionRecord {
    let record: unknown
    try {
      record = this.serializer.parse(plain)
    } catch (err) {
      // The parser's message may quote the text: it goes to the cause (the log), not the message.
      throw Object.assign(new FST_QUART_SESSION_CORRUPT_RECORD('the serializer could not parse it'), { cause: err })
    }
    if (!isRecord(record)) throw new FST_QUART_SESSION_CORRUPT_RECORD('not a session record ({ data: {...} })')
    return record
  }

  #plain (stored: string, key: string): string {
    const max = this.maxRecordBytes
    // Checked before parsing: a huge record costs nothing but this comparison.
    if (stored.length > max || (stored.length * 3 > max && Buffer.byteLength(stored) > max)) {
      throw new FST_QUART_SESSION_CORRUPT_RECORD(`the record is larger than maxRecordBytes (${max} bytes)`)
    }
    return this.cipher === undefined ? stored : this.cipher.open(stored, key)
  }
}

function checkSize (text: string, max: number): void {
  if (text.length * 3 > max) {
    const bytes = Buffer.byteLength(text)
    if (bytes > max) throw new FST_QUART_SESSION_VALUE_TOO_LARGE(bytes, max)
  }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function isTime (value: unknown): boolean {
  return value === undefined || (typeof value === 'number' && Number.isFinite(value))
}

function isRecord (value: unknown): value is SessionRecord {
  if (!isPlainObject(value)) return false
  const { data, permanent, pin, created, touched, sent, cookie, born, forward } = value
  if (!isPlainObject(data) || (permanent !== undefined && permanent !== false) ||
      (pin !== undefined && typeof pin !== 'string') || !isTime(created) || !isTime(touched) ||
      !isTime(born) || !isTime(sent) || (forward !== undefined && typeof forward !== 'string')) return false
  if (cookie === undefined) return true
  try {
    return isPlainObject(cookie) && checkSessionCookieOptions(cookie) !== undefined
  } catch {
    return false
  }
}
