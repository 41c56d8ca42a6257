import type { FastifyReply, FastifyRequest } from 'fastify'

// A response that sets the session cookie must never be stored with it by a shared cache (a CDN,
// a corporate proxy): the next visitor would get this visitor's session. OWASP's advice is
// `Cache-Control: no-cache="Set-Cookie"`: the response may be cached, the cookie header never.

const DIRECTIVE = 'no-cache="Set-Cookie"'
/** Directives that already keep the cookie out of shared caches. */
const SAFE = /(?:^|,)\s*(?:no-store|private|no-cache)\b/i
/** Directives that invite shared caches in. */
const PUBLIC = /(?:^|,)\s*(?:public|s-maxage)\b/i

/**
 * Mark a response carrying the session's Set-Cookie: `no-cache="Set-Cookie"` when the app set no
 * Cache-Control, added to the app's own value unless that is already private, no-store or no-cache.
 * `warn` is called (once per app, by the caller) when the app made the response publicly cacheable.
 */
export function keepCookieOutOfCaches (request: FastifyRequest, reply: FastifyReply, warn: (request: FastifyRequest, value: string) => void): void {
  const current = reply.getHeader('cache-control')
  if (current === undefined) {
    reply.header('cache-control', DIRECTIVE)
    return
  }
  const value = Array.isArray(current) ? current.join(', ') : String(current)
  if (SAFE.test(value)) return
  if (PUBLIC.test(value)) warn(request, value)
  reply.header('cache-control', `${value}, ${DIRECTIVE}`)
}

/** The warning for a publicly cacheable response with a session cookie, logged once per app. */
export function publicCacheWarning (): (request: FastifyRequest, value: string) => void {
  let warned = false
  return function warnPublicCache (request, value) {
    if (warned) return
    warned = true
    request.log.warn(`fastify-quart-session: a response that sets the session cookie was made publicly cacheable (Cache-Control: ${value}); "${DIRECTIVE}" was added so shared caches drop the cookie, but check that this page should be cached at all (this is logged once)`)
  }
}
