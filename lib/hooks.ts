import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
// Types only: @fastify/cookie's `request.cookies`, which the load hook reads when its hook filled it.
import type {} from '@fastify/cookie'
import type { ResolvedOptions } from './options.js'
import type { Backend } from './backend.js'
import type { Decoded } from './record.js'
import type { Outcome } from './renewal.js'
import { nowSeconds } from './lifetime.js'
import { AddressPin } from './pin.js'
import { Session } from './session.js'
import { SessionState } from './state.js'
import { isValidId } from './id.js'
import { type CookieSigner, readCookie } from './signing.js'
import { FST_QUART_SESSION_INVALID_OPTION, backendError } from './errors.js'
import { kState, kStaticRoute, kSession } from './symbols.js'
import { keepCookieOutOfCaches, publicCacheWarning } from './cache-control.js'

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
export function disabledReason (request: FastifyRequest, staticFiles: boolean, cookiePath: string): string {
  if (!pathMatches(request.raw.url ?? '/', cookiePath)) {
    return `the request path is outside cookie.path "${cookiePath}", so the browser never sends this session's cookie here (as in @fastify/session)`
  }
  const { config, handler } = request.routeOptions
  const setting = (config as { session?: unknown }).session
  if (setting === false) return 'sessions are off for this route (config: { session: false }); remove that setting to use them'
  if (!staticFiles && setting !== true && isStaticFileRoute(config as object, handler)) {
    return 'this route serves static files, which never load or send a session; set config: { session: true } on it, or the plugin option staticFiles: true'
  }
  return 'this request did not pass through the plugin\'s onRequest hook: the route is outside the scope where fastify-quart-session was registered (register it at the root, or in a scope that contains this route), or an earlier onRequest hook replied'
}

/**
 * RFC 6265 path-match of a request URL against the cookie's path: a browser sends the cookie only
 * there, so a request elsewhere that carries it (a forged or stale cookie) gets no session.
 */
export function pathMatches (url: string, cookiePath: string): boolean {
  if (cookiePath === '/') return true
  const query = url.indexOf('?')
  const path = query === -1 ? url : url.slice(0, query)
  if (path === cookiePath) return true
  if (path.length <= cookiePath.length || !path.startsWith(cookiePath)) return false
  return cookiePath.endsWith('/') || path.charCodeAt(cookiePath.length) === 47
}

/** The `onRequest` hook that loads the session of a request. */
export function createLoadHook (options: ResolvedOptions, backend: Backend, signer: CookieSigner | undefined): LoadHook {
  const { cookieName } = options
  const cookiePath = options.cookie.path
  const needle = cookieName + '='
  const pinner = options.protection ? new AddressPin(options.secrets as string[], options.reverseProxy) : undefined
  const routeUsesSession = createRoutePolicy(options.staticFiles)
  const reissued = new Set<string>()

  function fresh (address: string | undefined): Session {
    return new Session(backend, new SessionState({ permanent: backend.permanent, pin: pinner?.pin(address), now: nowSeconds() }))
  }

  function addressOf (request: FastifyRequest): string | undefined {
    if (pinner === undefined) return undefined
    const address = pinner.address(request)
    if (address === undefined) {
      request.log.warn('fastify-quart-session: the client address is unknown; with protection on, this request gets a fresh session')
    }
    return address
  }

  /**
   * A cookie of an older secret: send the current one, once per cookie value. It goes out through a
   * conditional refresh of the record, so a session destroyed meanwhile is never sent back.
   */
  function reissue (state: SessionState, raw: string): void {
    if (reissued.has(raw)) return
    if (reissued.size >= REISSUED_SIZE) reissued.delete(reissued.values().next().value as string)
    reissued.add(raw)
    state.changes.touch = true
  }

  async function open (request: FastifyRequest, id: string, raw: string, signed: string | undefined): Promise<void> {
    let text: string | undefined
    try {
      text = await backend.read(id)
      // Only on a miss, so a hit costs no extra promise hop.
      if (text === undefined && backend.legacyKeys) text = await backend.readLegacy(id)
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'FST_QUART_SESSION_CORRUPT_RECORD') throw backendError('read', err)
      request.log.warn({ err }, 'fastify-quart-session: the stored session is not a session record; starting a fresh session')
    }
    // Awaited only when there is something to wait for: an await of undefined still costs a microtask.
    const pending = settle(request, id, raw, signed, text)
    if (pending !== undefined) await pending
  }

  /**
   * The request's session from the record text read for its cookie. Synchronous unless the old
   * record must be deleted (past its lifetime, protection): then it returns that promise. A cookie
   * that names no live session is left alone: only destroy(), an emptied session and regenerate()
   * touch the cookie, so a slow request can never expire the cookie a login just set.
   */
  function settle (request: FastifyRequest, id: string, raw: string, signed: string | undefined, text: string | undefined): Promise<void> | undefined {
    const address = addressOf(request)
    let decoded: Decoded | undefined
    if (text !== undefined) {
      try {
        decoded = backend.open(id, text)
      } catch (err) {
        request.log.warn({ err }, 'fastify-quart-session: the stored session could not be read; starting a fresh session')
      }
    }
    if (decoded === undefined) {
      request[kSession] = fresh(address)
      return
    }
    const record = decoded.record
    const now = nowSeconds()
    const renewal = backend.renewal
    if (record.forward !== undefined) {
      // The id was renewed by another request: during renewGrace it reads and writes through the marker.
      if (renewal === undefined) {
        request[kSession] = fresh(address)
        return
      }
      return renewal.follow(record, now).then((outcome) => { renewed(request, id, raw, signed, outcome, address, now) }, readFailed)
    }
    if (backend.lifetime.expired(record, now)) {
      // Past its lifetime (idle or absolute), whatever the store or its cache still holds.
      return backend.remove(id, decoded.stored).then(() => { request[kSession] = fresh(address) })
    }
    if (pinner !== undefined && record.pin !== undefined && !pinner.matches(record.pin, address)) {
      // Seed behaviour: reuse from another address deletes the old session.
      request.log.info('fastify-quart-session: session used from another client address; it was deleted and a fresh one started')
      return backend.remove(id).then(() => { request[kSession] = fresh(address) })
    }
    if (renewal !== undefined && renewal.due(record, now)) {
      return renewal.renew(id, decoded, now).then((outcome) => { renewed(request, id, raw, signed, outcome, address, now) }, readFailed)
    }
    admit(request, id, raw, signed, decoded, address, now)
  }

  /** The request's session from a record that passed the checks (lifetime, address). */
  function admit (request: FastifyRequest, id: string, raw: string, signed: string | undefined, decoded: Decoded, address: string | undefined, now: number): SessionState {
    // Sessions from before protection was on, or pinned with an older secret, are pinned on their next write.
    const pin = pinner === undefined ? decoded.record.pin : pinner.pin(address)
    const state = new SessionState({ id, record: decoded.record, encoded: decoded, shared: decoded.shared, permanent: backend.permanent, pin, now })
    state.hadCookie = true
    if (backend.lifetime.refreshDue(state, now)) state.changes.touch = true
    if (signed === undefined) {
      if (signer !== undefined) reissue(state, raw)
    } else {
      state.signed = signed
    }
    request[kSession] = new Session(backend, state)
    return state
  }

  /** After a renewal (this request's, or another's met through its marker). */
  function renewed (request: FastifyRequest, id: string, raw: string, signed: string | undefined, outcome: Outcome, address: string | undefined, now: number): void {
    switch (outcome.kind) {
      case 'gone':
        request[kSession] = fresh(address)
        return
      case 'kept':
        admit(request, id, raw, signed, outcome.decoded, address, now)
        return
      case 'renewed': {
        // The new id goes out in this response's cookie, signed anew.
        const state = admit(request, outcome.id, raw, undefined, outcome.decoded, address, now)
        state.changes.touch = false
        state.sendCookie = true
        return
      }
      case 'forward': {
        const pin = outcome.decoded.record.pin
        if (pinner !== undefined && pin !== undefined && !pinner.matches(pin, address)) {
          request[kSession] = fresh(address)
          return
        }
        const state = admit(request, id, raw, signed, outcome.decoded, address, now)
        state.forward = outcome.key
      }
    }
  }

  function readFailed (err: unknown): never {
    throw backendError('read', err)
  }

  return function loadSession (request, reply, done) {
    if (!routeUsesSession(request) || (cookiePath !== '/' && !pathMatches(request.raw.url ?? '/', cookiePath))) {
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
    // Never send the backend an id we could not have made (the signer checked a signed one's shape).
    if (id === undefined || (signer === undefined && !isValidId(id))) {
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

/** The `onSend` hook that saves the session and sends or expires its cookie. */
export function createSaveHook (backend: Backend): SaveHook {
  const cookie = backend.cookie
  let hinted = false
  const warnPublicCache = publicCacheWarning()

  /** A Secure cookie on plain http never comes back; right behind a TLS proxy, a puzzle without one. */
  function hintSecure (request: FastifyRequest): void {
    hinted = true
    request.log.warn('fastify-quart-session: a Secure session cookie went out on a plain-http request; browsers send it back over https only. Behind a TLS-terminating proxy, set Fastify\'s trustProxy so request.protocol says https (this is logged once)')
  }

  // The cookie goes out only once the write succeeded: a redirect never points at nothing.
  function sendCookie (request: FastifyRequest, reply: FastifyReply, state: SessionState): void {
    if (state.sendCookie) {
      const lifetime = backend.persistent(state) ? backend.cookieLifetime(state, nowSeconds()) : undefined
      cookie.set(request, reply, backend.cookieValue(state), lifetime, state.cookieOptions)
      keepCookieOutOfCaches(request, reply, warnPublicCache)
      state.sendCookie = false
      if (!hinted && (state.cookieOptions?.secure ?? cookie.options.secure) === true && request.protocol !== 'https') hintSecure(request)
    } else if (state.clearCookie) {
      cookie.clear(request, reply, state.cookieOptions)
      keepCookieOutOfCaches(request, reply, warnPublicCache)
      state.clearCookie = false
    }
  }

  /**
   * Whether the request changed nothing, decided here rather than in the save: a request that
   * read an object (`get('user')`) then costs no promises. Anything that throws (a value only the
   * serializer can compare, and it fails) is left to the save, which reports it.
   */
  function unchanged (state: SessionState): boolean {
    try {
      return backend.unchanged(state)
    } catch {
      return false
    }
  }

  async function save (request: FastifyRequest, reply: FastifyReply, state: SessionState): Promise<void> {
    // deviceInfo: the save that lists a session in its user's index records the client it came from.
    if (backend.users?.wantsDevice === true) backend.users.note(state, request)
    try {
      await backend.persist(state)
    } catch (err) {
      throw backendError('save', err)
    }
    const failure = state.failure
    if (failure !== undefined) {
      // A verb the handler did not await (or whose callback threw) failed: the request fails with it.
      state.failure = undefined
      throw failure
    }
    sendCookie(request, reply, state)
  }

  return function saveSession (request, reply, payload, done) {
    const session = request[kSession]
    if (session === null) {
      done(null, payload)
      return
    }
    const state = session[kState]
    if (state.done) {
      // Already saved (an error reply runs onSend again): pass. Still saving: a duplicate send (an
      // async handler that called reply.redirect() without returning it, passport's
      // successRedirect) of a response about to go out with the cookie, dropped quietly as it would
      // be if the first had already been written, instead of both writing headers.
      if (!state.hookSaving) done(null, payload)
      return
    }
    state.done = true
    if (!state.changes.touch && state.saving === undefined && state.failure === undefined && unchanged(state)) {
      // Nothing to write: at most a cookie (explicit save(), expiry).
      sendCookie(request, reply, state)
      done(null, payload)
      return
    }
    // A flag, not a WeakSet of states: adding to and deleting from one cost more than the rest of this hook.
    state.hookSaving = true
    return save(request, reply, state).then(() => {
      state.hookSaving = false
      return payload
    }, (err: unknown) => {
      state.hookSaving = false
      throw err
    })
  }
}
