import type { FastifyReply, FastifyRequest } from 'fastify'

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

const EXPIRED = '; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT'

/**
 * Writes the one cookie this plugin owns. Every attribute that does not change per request is
 * serialized once here, so a response pays for a string concatenation, and the clearing cookie
 * carries exactly the attributes the setting one did (browsers match on name, path and domain).
 */
export class SessionCookie {
  readonly name: string
  readonly maxAge: number
  readonly #attributes: string
  readonly #secure: boolean | 'auto'
  /** `; Max-Age=…; Expires=…` for the current second: HTTP dates have whole seconds anyway. */
  #lifetime = ''
  #second = -1

  constructor (name: string, options: Required<Pick<CookieOptions, 'path' | 'httpOnly' | 'secure' | 'sameSite'>> & CookieOptions, maxAge: number) {
    this.name = name
    this.maxAge = maxAge
    let attributes = `; Path=${options.path}`
    if (options.domain !== undefined) attributes += `; Domain=${options.domain}`
    if (options.httpOnly) attributes += '; HttpOnly'
    const sameSite = options.sameSite === true ? 'strict' : options.sameSite
    if (sameSite !== false) attributes += `; SameSite=${sameSite[0].toUpperCase()}${sameSite.slice(1)}`
    if (options.partitioned === true) attributes += '; Partitioned'
    if (options.priority !== undefined) attributes += `; Priority=${options.priority[0].toUpperCase()}${options.priority.slice(1)}`
    this.#attributes = attributes
    this.#secure = options.secure
  }

  /** Send `value` (the possibly signed id); `permanent` adds Max-Age and Expires. */
  set (request: FastifyRequest, reply: FastifyReply, value: string, permanent: boolean): void {
    let header = this.name + '=' + value
    if (permanent) {
      const second = Math.floor(Date.now() / 1000)
      if (second !== this.#second) {
        this.#second = second
        this.#lifetime = '; Max-Age=' + this.maxAge + '; Expires=' + new Date((second + this.maxAge) * 1000).toUTCString()
      }
      header += this.#lifetime
    }
    reply.header('set-cookie', header + this.#suffix(request))
  }

  /** Expire the cookie in the browser. */
  clear (request: FastifyRequest, reply: FastifyReply): void {
    reply.header('set-cookie', this.name + '=' + EXPIRED + this.#suffix(request))
  }

  #suffix (request: FastifyRequest): string {
    const secure = this.#secure === 'auto' ? request.protocol === 'https' : this.#secure
    return secure ? this.#attributes + '; Secure' : this.#attributes
  }
}
