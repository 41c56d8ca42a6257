import type { SessionStore } from './store.js'
import type { RecordCodec } from './record.js'
import type { StoreKeys } from './keys.js'
import type { Lifetime } from './lifetime.js'
import { nowSeconds } from './lifetime.js'
import { idHash } from './keys.js'
import { messageOf } from './stores/shared.js'

// Versions before derived store keys kept a record under keyPrefix + the id itself. With
// `legacyKeys` (default true in 0.x, gone in 1.0) such a record is read once, on a miss of the
// derived key, and moved there; then the plain-id key is gone from the backend.

/** How long a request that lost the move to another one waits for the winner's write, at most twice. */
const WINNER_PAUSE_MS = 25

/**
 * The stored text under the session's derived key after moving its legacy record there, or
 * undefined when there is none (or it is not ours, or past its lifetime). The move is claimed by
 * deleting the legacy key with compare-and-set before writing the derived one: of requests racing
 * on one legacy record exactly one writes, and a session destroyed right after its move is never
 * written back by a slower request that read the legacy record before it was claimed.
 */
export async function moveLegacy (store: SessionStore, keys: StoreKeys, codec: RecordCodec, lifetime: Lifetime, id: string): Promise<string | undefined> {
  try {
    return await move(store, keys, codec, lifetime, id)
  } catch (err) {
    throw redacted(err, id)
  }
}

/**
 * The legacy key holds the raw id, and an adapter's error may quote its key (a file path, a
 * command): such an error reaches the log with the id replaced by its hash.
 */
function redacted (err: unknown, id: string): unknown {
  const cause = (err as { cause?: unknown })?.cause
  let message = messageOf(err)
  if (cause !== undefined) message += ` (${messageOf(cause)})`
  if (!message.includes(id)) return err
  const code = (err as { code?: unknown })?.code
  return Object.assign(new Error(message.replaceAll(id, `<id ${idHash(id)}>`)), code === undefined ? {} : { code })
}

async function move (store: SessionStore, keys: StoreKeys, codec: RecordCodec, lifetime: Lifetime, id: string): Promise<string | undefined> {
  const legacyKey = keys.legacyOf(id)
  if (legacyKey === undefined) return undefined
  const text = await store.get(legacyKey)
  if (text === undefined) return undefined
  const key = keys.of(id)
  let record
  try {
    // Plain serializer text: earlier versions never encrypted.
    record = codec.parse(text)
  } catch {
    // Not one of ours: left where it is, as another program's key would be.
    return undefined
  }
  const now = nowSeconds()
  const cas = store.compareAndSet?.bind(store)
  if (lifetime.expired(record, now)) {
    if (cas === undefined) await store.delete(legacyKey)
    else await cas(legacyKey, text, undefined, 0)
    return undefined
  }
  let encoded
  try {
    encoded = codec.encode(record, key)
  } catch {
    // Larger than maxRecordBytes once encrypted, or data the serializer refuses now: a fresh session.
    return undefined
  }
  const dated = { created: record.created ?? now, touched: record.touched ?? now, cookieOptions: record.cookie }
  const ttl = lifetime.ttl(dated, dated.touched, now)
  if (cas === undefined) {
    // Last write wins, as for every save on such a store.
    await store.set(key, encoded.stored, ttl)
    await store.delete(legacyKey)
    return encoded.stored
  }
  if (await cas(legacyKey, text, undefined, 0)) {
    if (await cas(key, undefined, encoded.stored, ttl)) return encoded.stored
    return await store.get(key)
  }
  // Another request claimed it: its write under the derived key follows its claim within a round trip.
  for (let attempt = 0; ; attempt++) {
    const moved = await store.get(key)
    if (moved !== undefined || attempt === 2) return moved
    await new Promise((resolve) => setTimeout(resolve, WINNER_PAUSE_MS))
  }
}
