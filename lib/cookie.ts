import type { FastifyReply, FastifyRequest } from 'fastify'
import { FST_QUART_SESSION_INVALID_ARGUMENT } from './errors.js'

/** Browsers cap a cookie's lifetime at 400 days (RFC 6265bis); a longer one only breaks Expires. */
export const MAX_LIFETIME = 400 * 24 * 60 * 60

export interface CookieOptions {
  path?: string
  domain?: string
  httpOnly?: boolean
  /** `'auto'`: Secure when the request came over https (`request.protocol`). */
  secure?: boolean | 'auto'
  sameSite?: 'lax' | 'strict' | 'none' | boolean
  partitioned?: boolean
  priority?: 'low' | 'medium' | 'high'
}

export type ResolvedCookieOptions = Required<Pick<CookieOptions, 'path' | 'httpOnly' | 'secure' | 'sameSite'>> & CookieOptions

/** What `session.options()` may change for one session: the attributes, and `maxAge` in seconds. */
export interface SessionCookieOptions extends CookieOptions {
  maxAge?: number
}

const EXPIRED = '; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT'
// RFC 6265 cookie-av values: no controls, no ";".
const ATTRIBUTE_VALUE = /^[\x21-\x3A\x3C-\x7E]+$/

const capitalized = (word: string): string => word[0].toUpperCase() + word.slice(1)

/**
 * The attributes that do not change per request, serialized once. SameSite=None and Partitioned
 * need Secure, so with `secure: 'auto'` they go out on https only (`https`). On plain http (a
 * developer's machine) SameSite=None becomes an explicit SameSite=Lax rather than a refused
 * cookie: leaving the attribute out would mean Lax in Chrome but None in Firefox and Safari.
 */
function serializeAttributes (options: CookieOptions, https: boolean): string {
  let attributes = `; Path=${options.path ?? '/'}`
  if (options.domain !== undefined) attributes += `; Domain=${options.domain}`
  if (options.httpOnly !== false) attributes += '; HttpOnly'
  const secure = options.secure === 'auto' || options.secure === undefined ? https : options.secure
  const sameSite = options.sameSite === true ? 'strict' : options.sameSite ?? 'lax'
  if (sameSite !== false) attributes += `; SameSite=${sameSite === 'none' && !secure ? 'Lax' : capitalized(sameSite)}`
  if (options.partitioned === true && secure) attributes += '; Partitioned'
  if (options.priority !== undefined) attributes += `; Priority=${capitalized(options.priority)}`
  if (secure) attributes += '; Secure'
  return attributes
}

/**
 * Writes the one cookie this plugin owns. Every attribute that does not change per request is
 * serialized once here, so a response pays for a string concatenation, and the clearing cookie
 * carries exactly the attributes the setting one did (browsers match on name, path and domain).
 */
export class SessionCookie {
  readonly name: string
  readonly maxAge: number
  readonly options: ResolvedCookieOptions
  readonly #http: string
  readonly #https: string
  /** `; Max-Age=…; Expires=…` for the current second: HTTP dates have whole seconds anyway. */
  #lifetime = ''
  #second = -1

  constructor (name: string, options: ResolvedCookieOptions, maxAge: number) {
    this.name = name
    this.maxAge = maxAge
    this.options = options
    this.#http = serializeAttributes(options, false)
    this.#https = serializeAttributes(options, true)
  }

  /**
   * Send `value` (the possibly signed id). `lifetime`: seconds left (Max-Age and Expires), or
   * undefined for a browser-session cookie. `overrides`: this session's own settings.
   */
  set (request: FastifyRequest, reply: FastifyReply, value: string, lifetime: number | undefined, overrides: SessionCookieOptions | undefined): void {
    let header = this.name + '=' + value
    if (lifetime !== undefined) {
      const second = Math.floor(Date.now() / 1000)
      if (lifetime === this.maxAge) {
        if (second !== this.#second) {
          this.#second = second
          this.#lifetime = '; Max-Age=' + this.maxAge + '; Expires=' + new Date((second + this.maxAge) * 1000).toUTCString()
        }
        header += this.#lifetime
      } else {
        header += '; Max-Age=' + lifetime + '; Expires=' + new Date((second + lifetime) * 1000).toUTCString()
      }
    }
    reply.header('set-cookie', header + this.#suffix(request, overrides))
  }

  /** Expire the cookie in the browser. */
  clear (request: FastifyRequest, reply: FastifyReply, overrides: SessionCookieOptions | undefined): void {
    reply.header('set-cookie', this.name + '=' + EXPIRED + this.#suffix(request, overrides))
  }

  #suffix (request: FastifyRequest, overrides: SessionCookieOptions | undefined): string {
    const https = request.protocol === 'https'
    if (overrides === undefined) return https ? this.#https : this.#http
    return serializeAttributes({ ...this.options, ...overrides }, https)
  }
}

const SESSION_COOKIE_OPTIONS = ['maxAge', 'path', 'domain', 'httpOnly', 'secure', 'sameSite', 'partitioned', 'priority'] as const

/**
 * The cookie settings among `input`, checked; undefined when it holds none. `base`: the settings
 * they will be combined with, so a combination browsers refuse is refused here.
 */
export function checkSessionCookieOptions (input: unknown, base?: CookieOptions): SessionCookieOptions | undefined {
  if (typeof input !== 'object' || input === null) {
    throw new FST_QUART_SESSION_INVALID_ARGUMENT('cookieOptions', 'must be an object of cookie settings')
  }
  const source = input as Record<string, unknown>
  let picked: Record<string, unknown> | undefined
  for (const name of SESSION_COOKIE_OPTIONS) {
    const value = source[name]
    if (value === undefined) continue
    if (!isValidSetting(name, value)) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT(`cookieOptions.${name}`, describeSetting(name))
    }
    (picked ??= {})[name] = value
  }
  if (picked !== undefined) {
    const merged = { ...base, ...picked }
    if (merged.secure === false && (merged.sameSite === 'none' || merged.partitioned === true)) {
      throw new FST_QUART_SESSION_INVALID_ARGUMENT('cookieOptions.secure', "SameSite=None and Partitioned cookies need secure true or 'auto'")
    }
  }
  return picked as SessionCookieOptions | undefined
}

function isValidSetting (name: typeof SESSION_COOKIE_OPTIONS[number], value: unknown): boolean {
  switch (name) {
    case 'maxAge': return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && value <= MAX_LIFETIME
    case 'path': return typeof value === 'string' && value.startsWith('/') && ATTRIBUTE_VALUE.test(value)
    case 'domain': return typeof value === 'string' && ATTRIBUTE_VALUE.test(value)
    case 'httpOnly': case 'partitioned': return typeof value === 'boolean'
    case 'secure': return typeof value === 'boolean' || value === 'auto'
    case 'sameSite': return value === 'lax' || value === 'strict' || value === 'none' || typeof value === 'boolean'
    case 'priority': return value === 'low' || value === 'medium' || value === 'high'
  }
}

function describeSetting (name: typeof SESSION_COOKIE_OPTIONS[number]): string {
  switch (name) {
    case 'maxAge': return `must be a whole number of seconds from 1 to ${MAX_LIFETIME} (400 days)`
    case 'path': return 'must be a path starting with "/" without ";" or spaces'
    case 'domain': return 'must be a domain name without ";" or spaces'
    case 'httpOnly': case 'partitioned': return 'must be true or false'
    case 'secure': return "must be true, false or 'auto'"
    case 'sameSite': return "must be 'lax', 'strict', 'none', true or false"
    case 'priority': return "must be 'low', 'medium' or 'high'"
  }
}
