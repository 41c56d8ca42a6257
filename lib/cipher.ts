import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import type { RecordCipher } from './record.js'
import { FST_QUART_SESSION_CORRUPT_RECORD } from './errors.js'
import { Recency } from './recency.js'

// Encryption at rest: AES-256-GCM, one key per `encryptionKey` entry derived with HKDF-SHA256, the
// store key as additional authenticated data. Whoever reads the backend sees neither the data nor
// anything to replay: a record copied under another session's key fails authentication.
//
// Stored text: `qse1.` + key id (4 base64url characters) + `.` + base64url(nonce ‖ ciphertext ‖ tag).
// The key id is a second HKDF output of the same secret, so decryption picks its key without
// trying all of them, and reveals nothing about the secret.

const PREFIX = 'qse1.'
const KEY_ID_LENGTH = 4
const NONCE_BYTES = 12
const TAG_BYTES = 16
const SALT = Buffer.from('fastify-quart-session')

// Decryptions recently made, by stored text (an unchanged session comes back as the same text again
// and again, as the codec's parse cache knows): at most this many, of texts at most this long.
const OPENED_MAX = 1024
const OPENED_TEXT_MAX = 8192

interface DerivedKey {
  id: string
  key: Buffer
}

function derive (secret: string): DerivedKey {
  const ikm = Buffer.from(secret, 'utf8')
  const key = Buffer.from(hkdfSync('sha256', ikm, SALT, 'record encryption v1', 32))
  const id = Buffer.from(hkdfSync('sha256', ikm, SALT, 'record key id v1', 3)).toString('base64url')
  return { id, key }
}

function refuse (why: string): Error {
  return new FST_QUART_SESSION_CORRUPT_RECORD(why)
}

/**
 * The record cipher of `encryptionKey`: the first secret seals, every one of them opens. `domain`
 * separates what is bound to a key: session records and direct-store values never open as each other.
 */
export class AesGcmCipher implements RecordCipher {
  readonly #sealing: DerivedKey
  /** Key id → keys (two secrets whose ids collide, 1 in 16 million, are both tried). */
  readonly #opening = new Map<string, Buffer[]>()
  readonly #domain: string
  /** stored text → the key it was opened under and its plain text. */
  readonly #opened = new Recency<{ key: string, plain: string }>()

  constructor (secrets: readonly string[], domain = 'record') {
    const derived = secrets.map(derive)
    this.#sealing = derived[0]
    for (const { id, key } of derived) {
      const list = this.#opening.get(id)
      if (list === undefined) this.#opening.set(id, [key])
      else list.push(key)
    }
    this.#domain = domain
  }

  #aad (key: string): Buffer {
    return Buffer.from(this.#domain + '\0' + key, 'utf8')
  }

  seal (plain: string, key: string): string {
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.#sealing.key, nonce)
    cipher.setAAD(this.#aad(key))
    const body = Buffer.concat([nonce, cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()])
    const stored = PREFIX + this.#sealing.id + '.' + body.toString('base64url')
    this.#remember(stored, key, plain)
    return stored
  }

  open (stored: string, key: string): string {
    const known = this.#opened.get(stored)
    // Bound to the key it was opened under: the same text under another key is opened (and refused) anew.
    if (known !== undefined && known.key === key) return known.plain
    if (!stored.startsWith(PREFIX) || stored.charCodeAt(PREFIX.length + KEY_ID_LENGTH) !== 46) {
      throw refuse('it is not encrypted with encryptionKey (written before encryption was on, or by another program)')
    }
    const keys = this.#opening.get(stored.slice(PREFIX.length, PREFIX.length + KEY_ID_LENGTH))
    if (keys === undefined) throw refuse('it was encrypted with a key that is not in encryptionKey (removed from the rotation too early?)')
    const body = Buffer.from(stored.slice(PREFIX.length + KEY_ID_LENGTH + 1), 'base64url')
    if (body.length < NONCE_BYTES + TAG_BYTES) throw refuse('the encrypted text is truncated')
    const nonce = body.subarray(0, NONCE_BYTES)
    const tag = body.subarray(body.length - TAG_BYTES)
    const data = body.subarray(NONCE_BYTES, body.length - TAG_BYTES)
    const aad = this.#aad(key)
    for (const secret of keys) {
      let plain: string
      try {
        const decipher = createDecipheriv('aes-256-gcm', secret, nonce)
        decipher.setAAD(aad)
        decipher.setAuthTag(tag)
        plain = decipher.update(data, undefined, 'utf8') + decipher.final('utf8')
      } catch {
        continue
      }
      this.#remember(stored, key, plain)
      return plain
    }
    throw refuse('it does not authenticate under this key (altered, or copied from another session\'s key)')
  }

  #remember (stored: string, key: string, plain: string): void {
    if (stored.length > OPENED_TEXT_MAX) return
    const opened = this.#opened
    if (opened.size >= OPENED_MAX) opened.dropOldest()
    opened.set(stored, { key, plain })
  }
}

/** The ciphers of `encryptionKey`: one for session records, one for direct-store values; none when it is off. */
export function ciphersOf (keys: readonly string[] | undefined): { records: RecordCipher, direct: RecordCipher } | undefined {
  if (keys === undefined) return undefined
  return { records: new AesGcmCipher(keys, 'record'), direct: new AesGcmCipher(keys, 'direct') }
}
