import * as crypto from 'node:crypto'

type Encoding = 'base64url' | 'hex'

// crypto.hash (Node 20.12, 21.7) hashes a string in one call, about 4× faster than
// createHash().update().digest() (0.34 against 1.37 µs for an id): it builds no Hash object.
// Store keys, file names and index keys hash on every miss of their caches, every new session.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: Encoding) => string }).hash

/** SHA-256 of `text` (UTF-8), in `encoding`. */
export const sha256: (text: string, encoding: Encoding) => string = oneShot === undefined
  ? (text, encoding) => crypto.createHash('sha256').update(text, 'utf8').digest(encoding)
  : (text, encoding) => oneShot('sha256', text, encoding)
