import { randomBytes } from 'node:crypto'

// 24 random bytes = 192 bits, 32 base64url characters: far past guessing, and URL/cookie safe.
const ID_BYTES = 24
const POOL_IDS = 256
const POOL_SIZE = ID_BYTES * POOL_IDS
// One randomBytes call per 256 ids keeps the syscall off most requests.
let pool = randomBytes(POOL_SIZE)
let offset = 0

export const ID_LENGTH = 32
const ID_PATTERN = /^[A-Za-z0-9_-]{32}$/

export function generateId (): string {
  if (offset === POOL_SIZE) {
    pool = randomBytes(POOL_SIZE)
    offset = 0
  }
  const id = pool.toString('base64url', offset, offset + ID_BYTES)
  offset += ID_BYTES
  return id
}

/** Only ids of our own shape reach the backend: anything else is refused before any call. */
export function isValidId (id: string): boolean {
  return id.length === ID_LENGTH && ID_PATTERN.test(id)
}
