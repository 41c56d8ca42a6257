import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { Signer } from '@fastify/cookie'
import type { ResolvedOptions } from './options.js'
import type { Backend } from './backend.js'
import { SessionCookie } from './cookie.js'
import { AddressPin } from './pin.js'
import { type Data, type SessionRecord, Session } from './session.js'
import { isValidId } from './id.js'
import { kClearCookie, kCookie, kDirty, kDone, kExposed, kId, kPermanent, kSession, kTouch } from './symbols.js'

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
export function createLoadHook (options: ResolvedOptions, backend: Backend): LoadHook {
  const { cookieName } = options
  const signer = options.secrets === undefined ? undefined : new Signer(options.secrets, 'sha256')
  const pinner = options.protection ? new AddressPin(options.secrets as string[], options.reverseProxy) : undefined

  function fresh (request: FastifyRequest, address: string | undefined): Session {
    return new Session(backend, '', Object.create(null) as Data, undefined, backend.permanent, pinner?.pin(address))
  }

  function addressOf (request: FastifyRequest): string | undefined {
    if (pinner === undefined) return undefined
    const address = pinner.address(request)
    if (address === undefined) {
      request.log.warn('fastify-quart-session: the client address is unknown; with protection on, this request gets a fresh session')
    }
    return address
  }

  async function open (request: FastifyRequest, id: string, renew: boolean): Promise<void> {
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
    // Signed with an older secret: re-issue the cookie, and restart the TTL so both agree.
    if (renew) session[kTouch] = true
    request[kSession] = session
  }

  return function loadSession (request, reply, done) {
    const raw = (request.cookies ?? request.server.parseCookie(request.headers.cookie ?? ''))[cookieName]
    let id: string | undefined
    let renew = false
    if (raw !== undefined) {
      if (signer === undefined) {
        id = raw
      } else {
        const unsigned = signer.unsign(raw)
        if (unsigned.valid) {
          id = unsigned.value as string
          renew = unsigned.renew
        }
      }
    }
    // Never send the backend an id we could not have made.
    if (id === undefined || !isValidId(id)) {
      request[kSession] = fresh(request, addressOf(request))
      done()
      return
    }
    open(request, id, renew).then(done as () => void, done)
  }
}

/** The `onSend` hook that saves the session and sends or expires its cookie. */
export function createSaveHook (options: ResolvedOptions, backend: Backend): SaveHook {
  const cookie = new SessionCookie(options.cookieName, options.cookie, options.maxAge)
  const signer = options.secrets === undefined ? undefined : new Signer(options.secrets, 'sha256')

  // The cookie goes out only once the write succeeded: a redirect never points at nothing.
  function sendCookie (request: FastifyRequest, reply: FastifyReply, session: Session): void {
    if (session[kCookie]) {
      const id = session[kId]
      cookie.set(request, reply, signer === undefined ? id : signer.sign(id), session[kPermanent])
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
