import { createHash } from 'node:crypto'

/**
 * The store key of a session, computed the way the README documents it for other programs:
 * keyPrefix + base64url(SHA-256(id)) without padding. Written here on its own, not imported from
 * lib/, so the tests check the documented format rather than the code against itself.
 */
export function sessionKey (id: string, keyPrefix = 'session:'): string {
  return keyPrefix + createHash('sha256').update(id, 'utf8').digest('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')
}
