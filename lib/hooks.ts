import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ResolvedOptions } from './options.js'
import { type Backend, backendError, nowSeconds } from './backend.js'
import { AddressPin } from './pin.js'
import { type SessionRecord, Session, mayHaveChanged } from './session.js'
import { isValidId } from './id.js'
import { type CookieSigner, readCookie } from './signing.js'
import { FST_QUART_SESSION_INVALID_OPTION } from './errors.js'
import {
  kClearCookie, kCookie, kCookieOptions, kDone, kStaticRoute, kHadCookie, kPermanent, kSession, kSigned, kText, kTouch, kTouched
} from './symbols.js'

declare module 'fastify' {
  interface FastifyRequest {
    [kSession]: Session | null
  }
}

type LoadHook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => Promise<void> | undefined
type SaveHook = (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void) => Promise<unknown> | undefined

/** How many re-issued cookies of an older secret are remembered, so each is re-issued once. */
const REISSUED_SIZE = 4096

// Hooks are app-level, so the session exists before any hook added after the plugin and in every
// layout (un-awaited register, routes declared first, 404 handler). They are callback-style on
// the common paths (no promise without a cookie or a change) and return a promise on the others,
// so that anything thrown after an await reaches Fastify's error handling instead of the process.

/**
 * Whether a route uses sessions: decided once per route from its config (the first request tells),
 * so routes that opted out or serve static files cost one map lookup.
 */
export function createRoutePolicy (staticFiles: boolean): (request: FastifyRequest) => boolean {
  const decided = new WeakMap<object, boolean>()
  let kContext: symbol | null | undefined
  return function routeUsesSession (request) {
    // Fastify keeps the route's context behind a symbol; `request.routeOptions` builds an object
    // per call. Found once by its description, with the public getter as the fallback.
    if (kContext === undefined) {
      kContext = Object.getOwnPropertySymbols(request).find((s) => s.description === 'fastify.context') ?? null
    }
    const context = kContext === null ? undefined : (request as unknown as Record<symbol, { config?: object, handler?: unknown } | undefined>)[kContext]
    const config = context?.config ?? request.routeOptions.config
    let uses = decided.get(config)
    if (uses === undefined) {
      uses = decide(config as { session?: unknown, url?: string }, context?.handler ?? request.routeOptions.handler, staticFiles)
      decided.set(config, uses)
    }
    return uses
  }
}

function decide (config: { session?: unknown, url?: string, file?: unknown, rootPath?: unknown, [kStaticRoute]?: boolean }, handler: unknown, staticFiles: boolean): boolean {
  const setting = config.session
  if (setting === true) return true
  if (setting === false) return false
  if (setting !== undefined) {
    throw new FST_QUART_SESSION_INVALID_OPTION(`config.session of route ${String(config.url)}`, 'must be true or false')
  }
  return staticFiles || !isStaticFileRoute(config, handler)
}

/**
 * Routes made by @fastify/static serve files through its internal `pumpSendToReply`; no option
 * marks them, so they are recognised by their config or handler, once per route.
 */
export function isStaticFileRoute (config: { file?: unknown, rootPath?: unknown, [kStaticRoute]?: boolean } | undefined, handler: unknown): boolean {
  if (config?.[kStaticRoute] === true) return true
  if (config?.file !== undefined && config.rootPath !== undefined) return true
  return typeof handler === 'function' && Function.prototype.toString.call(handler).includes('pumpSendToReply(')
}

/** Why a request has no session, for the error its writes throw. */
export function disabledReason (request: FastifyRequest, staticFiles: boolean): string {
  const { config, handler } = request.routeOptions
  const setting = (config as { session?: unknown }).session
  if (setting === false) return 'sessions are off for this route (config: { session: false }); remove that setting to use them'
  if (!staticFiles && setting !== true && isStaticFileRoute(config as object, handler)) {
    return 'this route serves static files, which never load or send a session; set config: { session: true } on it, or the plugin option staticFiles: true'
  }
  return 'this request did not pass through the plugin\'s onRequest hook: the route is outside the scope where fastify-quart-session was registered (register it at the root, or in a scope that contains this route), or an earlier onRequest hook replied'
}

/** The `onRequest` hook that loads the session of a request. */
export function createLoadHook (options: ResolvedOptions, backend: Backend, signer: CookieSigner | undefined): LoadHook {
  const { cookieName } = options
  const needle = cookieName + '='
  const pinner = options.protection ? new AddressPin(options.secrets as string[], options.reverseProxy) : undefined
  const routeUsesSession = createRoutePolicy(options.staticFiles)
  const reissued = new Set<string>()

  function fresh (address: string | undefined): Session {
    const now = nowSeconds()
    return new Session(backend, '', {}, undefined, backend.permanent, pinner?.pin(address), now, now)
  }

  function addressOf (request: FastifyRequest): string | undefined {
    if (pinner === undefined) return undefined
    const address = pinner.address(request)
    if (address === undefined) {
      request.log.warn('fastify-quart-session: the client address is unknown; with protection on, this request gets a fresh session')
    }
    return address
  }

  /** A cookie of an older secret: send the current one, once per cookie value, not on every request. */
  function reissue (session: Session, raw: string): void {
    if (reissued.has(raw)) return
    if (reissued.size >= REISSUED_SIZE) reissued.delete(reissued.values().next().value as string)
    reissued.add(raw)
    session[kCookie] = true
  }

  async function open (request: FastifyRequest, id: string, raw: string, signed: string | undefined): Promise<void> {
    let text: string | undefined
    try {
      text = await backend.read(id)
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'FST_QUART_SESSION_CORRUPT_RECORD') throw logged(request, backendError('read', err))
      request.log.warn({ err }, 'fastify-quart-session: the stored session is not a session record; starting a fresh session')
    }
    await settle(request, id, raw, signed, text)
  }

  /**
   * The request's session from the record text read for its cookie. Synchronous unless the old
   * record must be deleted (absoluteMaxAge, protection): then it returns that promise.
   */
  function settle (request: FastifyRequest, id: string, raw: string, signed: string | undefined, text: string | undefined): Promise<void> | undefined {
    const address = addressOf(request)
    let record: SessionRecord | undefined
    if (text !== undefined) {
      try {
        record = backend.open(text)
      } catch (err) {
        request.log.warn({ err }, 'fastify-quart-session: the stored session could not be read; starting a fresh session')
      }
    }
    if (record === undefined) {
      // The cookie names a session that is gone (expired, destroyed, unreadable): expire it too,
      // unless this request stores a new session, whose cookie then replaces it.
      const session = fresh(address)
      session[kClearCookie] = true
      request[kSession] = session
      return
    }
    const now = nowSeconds()
    if (backend.expired(record, now)) {
      // Past its lifetime (idle or absolute), whatever the store or its cache still holds.
      return backend.remove(id).then(() => {
        const session = fresh(address)
        session[kClearCookie] = true
        session[kHadCookie] = true
        request[kSession] = session
      }, (err: unknown) => { throw logged(request, err) })
    }
    let pin = record.pin
    if (pinner !== undefined) {
      if (pin !== undefined && !pinner.matches(pin, address)) {
        // Seed behaviour: reuse from another address deletes the old session.
        request.log.info('fastify-quart-session: session used from another client address; it was deleted and a fresh one started')
        return backend.remove(id).then(() => { request[kSession] = fresh(address) }, (err: unknown) => { throw logged(request, err) })
      }
      // Sessions from before protection was on, or pinned with an older secret, are pinned on their next write.
      pin = pinner.pin(address)
    }
    const session = new Session(backend, id, record.data, text, record.permanent !== false, pin, record.created ?? now, record.touched ?? 0)
    session[kHadCookie] = true
    if (record.cookie !== undefined) session[kCookieOptions] = record.cookie
    if (backend.refreshDue(session, now)) session[kTouch] = true
    if (signed === undefined) {
      if (signer !== undefined) reissue(session, raw)
    } else {
      session[kSigned] = signed
    }
    request[kSession] = session
  }

  return function loadSession (request, reply, done) {
    if (!routeUsesSession(request)) {
      done()
      return
    }
    const cookies = request.cookies
    const raw = cookies == null ? readCookie(request.headers.cookie, needle) : (Object.hasOwn(cookies, cookieName) ? cookies[cookieName] : undefined)
    let id: string | undefined
    // The signed value as the client holds it, to send back unchanged (no HMAC) while the id stays.
    let signed: string | undefined
    if (typeof raw === 'string') {
      if (signer === undefined) {
        id = raw
      } else {
        id = signer.verify(raw)
        if (!signer.renew) signed = raw
      }
    }
    // Never send the backend an id we could not have made.
    if (id === undefined || !isValidId(id)) {
      request[kSession] = fresh(addressOf(request))
      done()
      return
    }
    // A store that holds the record in this process answers without I/O: the request then goes on
    // in the same tick, which costs far less than resuming it after a promise.
    const local = backend.readLocal(id)
    if (local !== undefined) {
      const pending = settle(request, id, raw as string, signed, local ?? undefined)
      if (pending === undefined) {
        done()
        return
      }
      return pending
    }
    return open(request, id, raw as string, signed)
  }
}

/** Backend details go to the request log; the reply carries only the error's code and short message. */
function logged (request: FastifyRequest, err: unknown): unknown {
  const cause = (err as { cause?: unknown }).cause
  if (cause !== undefined) request.log.error({ err: cause }, 'fastify-quart-session: the session backend failed')
  return err
}

/** The `onSend` hook that saves the session and sends or expires its cookie. */
export function createSaveHook (backend: Backend): SaveHook {
  const cookie = backend.cookie

  // The cookie goes out only once the write succeeded: a redirect never points at nothing.
  function sendCookie (request: FastifyRequest, reply: FastifyReply, session: Session): void {
    if (session[kCookie]) {
      let lifetime: number | undefined
      if (session[kPermanent]) {
        const now = nowSeconds()
        lifetime = backend.ttl(session, session[kText] === undefined ? now : session[kTouched], now)
      }
      cookie.set(request, reply, backend.cookieValue(session), lifetime, session[kCookieOptions])
      session[kCookie] = false
    } else if (session[kClearCookie]) {
      cookie.clear(request, reply, session[kCookieOptions])
      session[kClearCookie] = false
    }
  }

  async function save (request: FastifyRequest, reply: FastifyReply, session: Session): Promise<void> {
    try {
      await backend.persist(session)
    } catch (err) {
      throw logged(request, err)
    }
    sendCookie(request, reply, session)
  }

  // The save in flight per session: a second send while it runs (an async handler that called
  // reply.redirect() without returning it makes Fastify send again) waits for it, so the first
  // response, the one that goes out, carries the cookie.
  const pending = new WeakMap<Session, Promise<void>>()

  return function saveSession (request, reply, payload, done) {
    const session = request[kSession]
    if (session === null) {
      done(null, payload)
      return
    }
    if (session[kDone]) {
      // Already saved (an error reply runs onSend again), or being saved.
      const saving = pending.get(session)
      if (saving === undefined) {
        done(null, payload)
        return
      }
      return saving.then(() => payload, () => payload)
    }
    session[kDone] = true
    if (!mayHaveChanged(session) && !session[kTouch]) {
      // Nothing to write: at most a cookie (explicit save(), re-issue, expiry).
      sendCookie(request, reply, session)
      done(null, payload)
      return
    }
    const saving = save(request, reply, session)
    pending.set(session, saving)
    return saving.then(() => payload)
  }
}

