import type {
  FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions, onRequestAsyncHookHandler, onSendAsyncHookHandler
} from 'fastify'
import fp from 'fastify-plugin'
import { Signer } from '@fastify/cookie'
import type { SessionStore } from './store.js'
import { type QuartSessionOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { Backend } from './backend.js'
import { SessionCookie } from './cookie.js'
import { DirectStore } from './direct.js'
import { AddressPin } from './pin.js'
import { type Data, type SessionRecord, Session } from './session.js'
import { generateId, isValidId } from './id.js'
import { MemoryStore } from './stores/memory.js'
import { FST_QUART_SESSION_CONNECT, FST_QUART_SESSION_DISABLED, FST_QUART_SESSION_INVALID_OPTION } from './errors.js'
import { kClearCookie, kCookie, kDone, kId, kPermanent, kSession, kTouch } from './symbols.js'

declare module 'fastify' {
  interface FastifyRequest {
    [kSession]: Session | null
  }
}

async function quartSession (fastify: FastifyInstance, opts: QuartSessionOptions): Promise<void> {
  const options = resolveOptions(opts)

  const ownStore = options.store === undefined
  const store = options.store ?? await createStore(options)
  try {
    await store.ready?.()
  } catch (err) {
    const code = (err as { code?: unknown })?.code
    if (typeof code === 'string' && code.startsWith('FST_QUART_SESSION_')) throw err
    throw Object.assign(new FST_QUART_SESSION_CONNECT(options.type, (err as Error)?.message ?? String(err)), { cause: err })
  }
  // Close only what the plugin created; a user's store or client is theirs to close.
  if (ownStore && store.close !== undefined) {
    fastify.addHook('onClose', async function closeSessionStore () { await store.close?.() })
  }
  if (options.type === 'memory' && ownStore && process.env.NODE_ENV === 'production') {
    fastify.log.warn('fastify-quart-session: the memory store keeps sessions in this process only; they are lost on restart and not shared between processes. Use type "redis" or "memcached" in production.')
  }

  const backend = new Backend(store, options.serializer, options.keyPrefix, options.maxAge, options.permanent)
  const disabled = new DisabledSession(backend)

  fastify.decorate('sessionStore', new DirectStore(store, options.serializer))
  fastify.decorateRequest(kSession, null)
  fastify.decorateRequest('session', {
    getter (this: FastifyRequest): Session {
      return this[kSession] ?? disabled
    }
  })

  const loadSession = createLoadHook(options, backend)
  const saveSession = createSaveHook(options, backend)
  fastify.addHook('onRoute', function attachSessionHooks (route: RouteOptions) {
    if (!routeWantsSession(route, options.staticFiles)) return
    // Hooks go on the routes that use sessions only: the others pay nothing at all.
    route.onRequest = appendHook(route.onRequest, loadSession)
    route.onSend = appendHook(route.onSend, saveSession)
  })
}

function createLoadHook (options: ResolvedOptions, backend: Backend): onRequestAsyncHookHandler {
  const { cookieName } = options
  const signer = options.secrets === undefined ? undefined : new Signer(options.secrets, 'sha256')
  const pinner = options.protection ? new AddressPin(options.secrets as string[], options.reverseProxy) : undefined

  return async function loadSession (request) {
    let id: string | undefined
    let renew = false
    const raw = (request.cookies ?? request.server.parseCookie(request.headers.cookie ?? ''))[cookieName]
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
      // Never send the backend an id we could not have made.
      if (id !== undefined && !isValidId(id)) id = undefined
    }

    const address = pinner?.address(request)
    if (pinner !== undefined && address === undefined) {
      request.log.warn('fastify-quart-session: the client address is unknown; with protection on, this request gets a fresh session')
    }

    if (id !== undefined) {
      const text = await backend.read(id)
      let record: SessionRecord | undefined
      if (text !== undefined) {
        try {
          record = backend.decode(text)
        } catch (err) {
          request.log.warn({ err }, 'fastify-quart-session: the stored session could not be read; starting a fresh session')
        }
      }
      if (record !== undefined && text !== undefined) {
        let pin = record.pin
        if (pinner !== undefined) {
          if (pin === undefined || !pinner.matches(pin, address)) {
            if (pin !== undefined) {
              // Seed behaviour: reuse from another address deletes the old session.
              request.log.info('fastify-quart-session: session used from another client address; it was deleted and a fresh one started')
              await backend.remove(id)
              record = undefined
            }
          }
          // Sessions from before protection was on, or pinned with an older secret, are pinned on their next write.
          if (record !== undefined) pin = pinner.pin(address)
        }
        if (record !== undefined) {
          const session = new Session(backend, id, record.data, text, record.permanent !== false, pin)
          // Signed with an older secret: re-issue the cookie, and restart the TTL so both agree.
          if (renew) session[kTouch] = true
          request[kSession] = session
          return
        }
      }
    }
    request[kSession] = new Session(
      backend, generateId(), Object.create(null) as Data, undefined, backend.permanent, pinner?.pin(address)
    )
  }
}

function createSaveHook (options: ResolvedOptions, backend: Backend): onSendAsyncHookHandler<unknown> {
  const cookie = new SessionCookie(options.cookieName, options.cookie, options.maxAge)
  const signer = options.secrets === undefined ? undefined : new Signer(options.secrets, 'sha256')

  return async function saveSession (request: FastifyRequest, reply: FastifyReply, payload: unknown) {
    const session = request[kSession]
    // No session (its load failed), or already saved (an error reply runs onSend again).
    if (session === null || session[kDone]) return payload
    session[kDone] = true
    await backend.persist(session)
    // The cookie goes out only once the write succeeded: a redirect never points at nothing.
    if (session[kCookie]) {
      const id = session[kId]
      cookie.set(request, reply, signer === undefined ? id : signer.sign(id), session[kPermanent])
      session[kCookie] = false
    } else if (session[kClearCookie]) {
      cookie.clear(request, reply)
      session[kClearCookie] = false
    }
    return payload
  }
}

function routeWantsSession (route: RouteOptions, staticFiles: boolean): boolean {
  const setting = (route.config as { session?: unknown } | undefined)?.session
  if (setting === true) return true
  if (setting === false) return false
  if (setting !== undefined) {
    throw new FST_QUART_SESSION_INVALID_OPTION(`config.session of route ${route.url}`, 'must be true or false')
  }
  return staticFiles || !isStaticFileRoute(route)
}

/**
 * Routes made by @fastify/static serve files through its internal `pumpSendToReply`; no option
 * marks them, so they are recognised by their handler, once, when the route is added.
 */
function isStaticFileRoute (route: RouteOptions): boolean {
  const config = route.config as { file?: unknown, rootPath?: unknown } | undefined
  if (config?.file !== undefined && config.rootPath !== undefined) return true
  return Function.prototype.toString.call(route.handler).includes('pumpSendToReply(')
}

function appendHook<T> (existing: T | T[] | undefined, hook: T): T[] {
  if (existing === undefined) return [hook]
  return Array.isArray(existing) ? [...existing, hook] : [existing, hook]
}

async function createStore (options: ResolvedOptions): Promise<SessionStore> {
  if (options.uri !== undefined && options.type !== 'redis') {
    throw new FST_QUART_SESSION_INVALID_OPTION('uri', `applies to type "redis" only (type is "${options.type}")`)
  }
  if (options.servers !== undefined && options.type !== 'memcached') {
    throw new FST_QUART_SESSION_INVALID_OPTION('servers', `applies to type "memcached" only (type is "${options.type}")`)
  }
  switch (options.type) {
    case 'redis': {
      // Loaded on demand: an app on memcached never loads the Redis client, and the other way round.
      const { RedisStore } = await import('./stores/redis.js')
      return new RedisStore({ uri: options.uri, client: options.client as never, timeout: options.timeout })
    }
    case 'memcached': {
      const { MemcachedStore } = await import('./stores/memcached.js')
      return new MemcachedStore({ servers: options.servers, client: options.client as never, timeout: options.timeout })
    }
    default:
      if (options.client !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('client', 'applies to types "redis" and "memcached" only')
      }
      return new MemoryStore({ maxEntries: options.maxEntries })
  }
}

/**
 * What `request.session` is on routes without sessions (static files, `config.session: false`):
 * reads find nothing, writes throw, so a missing opt-in is loud instead of silently lost.
 */
class DisabledSession extends Session {
  constructor (backend: Backend) {
    super(backend, '', Object.freeze(Object.create(null)) as Data, undefined, backend.permanent, undefined)
  }

  override get permanent (): boolean { return false }
  override set permanent (_value: boolean) { throw new FST_QUART_SESSION_DISABLED('permanent') }
  override set (): void { throw new FST_QUART_SESSION_DISABLED('set') }
  override delete (): void { throw new FST_QUART_SESSION_DISABLED('delete') }
  override clear (): void { throw new FST_QUART_SESSION_DISABLED('clear') }
  override touch (): void { throw new FST_QUART_SESSION_DISABLED('touch') }
  override async regenerate (): Promise<void> { throw new FST_QUART_SESSION_DISABLED('regenerate') }
  override async destroy (): Promise<void> { throw new FST_QUART_SESSION_DISABLED('destroy') }
  override async save (): Promise<void> { throw new FST_QUART_SESSION_DISABLED('save') }
  override async reload (): Promise<void> { throw new FST_QUART_SESSION_DISABLED('reload') }
}

const plugin: FastifyPluginAsync<QuartSessionOptions> = fp(quartSession, {
  fastify: '5.x',
  name: 'fastify-quart-session',
  dependencies: ['@fastify/cookie']
})

export default plugin
export { plugin as quartSession, plugin as fastifyQuartSession }
export { Session } from './session.js'
export type { SessionRecord } from './session.js'
export type { SessionStore, StoreFactoryOptions } from './store.js'
export type { QuartSessionOptions, SessionType } from './options.js'
export type { CookieOptions } from './cookie.js'
export type { Serializer } from './serializer.js'
export { devalueSerializer } from './serializer.js'
export { DirectStore } from './direct.js'
export { MemoryStore, type MemoryStoreOptions } from './stores/memory.js'
export * as errors from './errors.js'
export type { SessionData } from '../types/index.js'
