import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ResolvedOptions } from './options.js'
import type { Backend } from './backend.js'
import { SessionCookie } from './cookie.js'
import { AddressPin } from './pin.js'
import { type SessionRecord, Session } from './session.js'
import { isValidId } from './id.js'
import { CookieSigner, readCookie } from './signing.js'
import { kClearCookie, kCookie, kDirty, kDone, kExposed, kId, kPermanent, kSession, kSigned, kTouch } from './symbols.js'

declare module 'fastify' {
  interface FastifyRequest {
    [kSession]: Session | null
  }
}

type LoadHook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
type SaveHook = (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) => void

// Hooks are callback-style: a request without a session cookie, or whose session did not change,
// goes through without allocating a promise.

/** The `onRequest` hook that loads the session of a request. */
export function createLoadHook (options: ResolvedOptions, backend: Backend, signer: CookieSigner | undefined): LoadHook {
  const { cookieName } = options
  const needle = cookieName + '='
  const pinner = options.protection ? new AddressPin(options.secrets as string[], options.reverseProxy) : undefined

  function fresh (request: FastifyRequest, address: string | undefined): Session {
    return new Session(backend, '', {}, undefined, backend.permanent, pinner?.pin(address))
  }

  function addressOf (request: FastifyRequest): string | undefined {
    if (pinner === undefined) return undefined
    const address = pinner.address(request)
    if (address === undefined) {
      request.log.warn('fastify-quart-session: the client address is unknown; with protection on, this request gets a fresh session')
    }
    return address
  }

  async function open (request: FastifyRequest, id: string, signed: string | undefined): Promise<void> {
    const text = await backend.read(id)
    const address = addressOf(request)
    let record: SessionRecord | undefined
    if (text !== undefined) {
      try {
        record = backend.decode(text)
      } catch (err) {
        request.log.warn({ err }, 'fastify-quart-session: the stored session could not be read; starting a fresh session')
      }
    }
    if (record === undefined) {
      request[kSession] = fresh(request, address)
      return
    }
    let pin = record.pin
    if (pinner !== undefined) {
      if (pin !== undefined && !pinner.matches(pin, address)) {
        // Seed behaviour: reuse from another address deletes the old session.
        request.log.info('fastify-quart-session: session used from another client address; it was deleted and a fresh one started')
        await backend.remove(id)
        request[kSession] = fresh(request, address)
        return
      }
      // Sessions from before protection was on, or pinned with an older secret, are pinned on their next write.
      pin = pinner.pin(address)
    }
    const session = new Session(backend, id, record.data, text, record.permanent !== false, pin)
    if (signed === undefined) {
      // Signed with an older secret: re-issue the cookie, and restart the TTL so both agree.
      if (signer !== undefined) session[kTouch] = true
    } else {
      session[kSigned] = signed
    }
    request[kSession] = session
  }

  return function loadSession (request, reply, done) {
    const cookies = request.cookies
    const raw = cookies == null ? readCookie(request.headers.cookie, needle) : cookies[cookieName]
    let id: string | undefined
    // The signed value as the client holds it, to send back unchanged (no HMAC) while the id stays.
    let signed: string | undefined
    if (raw !== undefined) {
      if (signer === undefined) {
        id = raw
      } else {
        id = signer.verify(raw)
        if (!signer.renew) signed = raw
      }
    }
    // Never send the backend an id we could not have made.
    if (id === undefined || !isValidId(id)) {
      request[kSession] = fresh(request, addressOf(request))
      done()
      return
    }
    open(request, id, signed).then(done as () => void, done)
  }
}

/** The `onSend` hook that saves the session and sends or expires its cookie. */
export function createSaveHook (options: ResolvedOptions, backend: Backend, signer: CookieSigner | undefined): SaveHook {
  const cookie = new SessionCookie(options.cookieName, options.cookie, options.maxAge)

  // The cookie goes out only once the write succeeded: a redirect never points at nothing.
  function sendCookie (request: FastifyRequest, reply: FastifyReply, session: Session): void {
    if (session[kCookie]) {
      const id = session[kId]
      let value = id
      if (signer !== undefined) {
        const signed = session[kSigned]
        value = signed !== undefined && signed.startsWith(id) && signed.charCodeAt(id.length) === 46 ? signed : signer.sign(id)
      }
      cookie.set(request, reply, value, session[kPermanent])
      session[kCookie] = false
    } else if (session[kClearCookie]) {
      cookie.clear(request, reply)
      session[kClearCookie] = false
    }
  }

  return function saveSession (request, reply, payload, done) {
    const session = request[kSession]
    // No session (its load failed), or already saved (an error reply runs onSend again).
    if (session === null || session[kDone]) {
      done(null, payload)
      return
    }
    session[kDone] = true
    if (!session[kDirty] && !session[kExposed] && !session[kTouch]) {
      // Nothing to write: at most a cookie from an explicit save() earlier in the request.
      sendCookie(request, reply, session)
      done(null, payload)
      return
    }
    backend.persist(session).then(() => {
      sendCookie(request, reply, session)
      done(null, payload)
    }, done)
  }
}
