import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { SessionStore } from './store.js'
import type { IoredisLike } from './stores/ioredis.js'
import { type QuartSessionOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { Backend } from './backend.js'
import { DirectStore } from './direct.js'
import { DisabledSession, type Session, exposeSession } from './session.js'
import { createLoadHook, createSaveHook, disabledReason, isStaticFileRoute } from './hooks.js'
import { SessionCookie } from './cookie.js'
import { CookieSigner } from './signing.js'
import { MemoryStore } from './stores/memory.js'
import { FST_QUART_SESSION_CONNECT, FST_QUART_SESSION_INVALID_OPTION, FST_QUART_SESSION_MISSING_PACKAGE } from './errors.js'
import { kSession, kStaticRoute } from './symbols.js'
import { checkRegistration } from './registration.js'

async function quartSession (fastify: FastifyInstance, opts: QuartSessionOptions): Promise<void> {
  checkRegistration(fastify)
  const options = resolveOptions(opts)
  for (const warning of options.warnings) fastify.log.warn(warning)

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
    fastify.log.warn('fastify-quart-session: the memory store keeps sessions in this process only; they are lost on restart and not shared between processes. Use type "redis", "memcached" or "filesystem" in production.')
  }

  const signer = options.secrets === undefined ? undefined : new CookieSigner(options.secrets)
  const cookie = new SessionCookie(options.cookieName, options.cookie, options.maxAge)
  const backend = new Backend(store, options, cookie, signer)

  fastify.decorate('sessionStore', new DirectStore(store, options.serializer, options.keyPrefix))
  fastify.decorateRequest(kSession, null)
  fastify.decorateRequest('session', {
    getter (this: FastifyRequest): Session {
      // One inert session per request where there is none, so nothing written on it is shared.
      const session = this[kSession] ??= new DisabledSession(backend, disabledReason(this, options.staticFiles))
      return exposeSession(session)
    }
  })

  // App-level hooks, in the scope the plugin is registered in (fastify-plugin): every route of
  // that scope and its children, whenever it was declared, and the 404 handler.
  fastify.addHook('onRequest', createLoadHook(options, backend, signer))
  fastify.addHook('onSend', createSaveHook(backend))
  fastify.addHook('onRoute', function inspectRoute (route: RouteOptions) {
    const setting = (route.config as { session?: unknown } | undefined)?.session
    // A wrong config.session fails the route's registration rather than its first request.
    if (setting !== undefined && typeof setting !== 'boolean') {
      throw new FST_QUART_SESSION_INVALID_OPTION(`config.session of route ${route.url}`, 'must be true or false')
    }
    // Fastify binds handlers, so a static file route is recognised here, where its own handler is seen.
    if (isStaticFileRoute(route.config as object | undefined, route.handler)) {
      route.config = { ...route.config, [kStaticRoute]: true } as typeof route.config
    }
  })
}

async function createStore (options: ResolvedOptions): Promise<SessionStore> {
  if (options.uri !== undefined && options.type !== 'redis') {
    throw new FST_QUART_SESSION_INVALID_OPTION('uri', `applies to type "redis" only (type is "${options.type}")`)
  }
  if (options.servers !== undefined && options.type !== 'memcached') {
    throw new FST_QUART_SESSION_INVALID_OPTION('servers', `applies to type "memcached" only (type is "${options.type}")`)
  }
  const { timeout, client } = options
  switch (options.type) {
    case 'redis': {
      // Loaded on demand: redis, ioredis and memcached are optional peer dependencies.
      if (client !== undefined && isIoredisClient(client)) {
        for (const name of ['uri', 'sentinel', 'clientSideCache'] as const) {
          if (options[name] !== undefined) {
            throw new FST_QUART_SESSION_INVALID_OPTION(name, 'does not go with an ioredis "client": configure that client itself')
          }
        }
        const { IoredisStore } = await loadAdapter('redis', 'ioredis', () => import('./stores/ioredis.js'))
        return new IoredisStore({ client: client as IoredisLike, timeout })
      }
      const { RedisStore } = await loadAdapter('redis', 'redis', () => import('./stores/redis.js'))
      return new RedisStore({
        uri: options.uri, client: client as never, sentinel: options.sentinel, clientSideCache: options.clientSideCache, timeout
      })
    }
    case 'memcached': {
      const { MemcachedStore } = await loadAdapter('memcached', 'memcached', () => import('./stores/memcached.js'))
      return new MemcachedStore({ servers: options.servers, client: client as never, timeout })
    }
    case 'filesystem': {
      if (client !== undefined) throw new FST_QUART_SESSION_INVALID_OPTION('client', 'applies to types "redis" and "memcached" only')
      const { FilesystemStore } = await import('./stores/filesystem.js')
      return new FilesystemStore({ directory: options.directory, fileMode: options.fileMode, maxEntries: options.maxEntries })
    }
    default:
      if (client !== undefined) {
        throw new FST_QUART_SESSION_INVALID_OPTION('client', 'applies to types "redis" and "memcached" only')
      }
      return new MemoryStore({ maxEntries: options.maxEntries })
  }
}

/** ioredis clients (and clusters) carry their settings in `options` and speak `status`, not `isOpen`. */
function isIoredisClient (client: object): boolean {
  const c = client as { status?: unknown, isOpen?: unknown, options?: unknown }
  return typeof c.status === 'string' && c.isOpen === undefined && typeof c.options === 'object'
}

/** Import an adapter whose client package is an optional peer dependency; name the install command when it is missing. */
async function loadAdapter<T> (type: string, pkg: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load()
  } catch (err) {
    const e = err as { code?: unknown, message?: unknown }
    if ((e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && typeof e.message === 'string' && e.message.includes(`'${pkg}'`)) {
      throw Object.assign(new FST_QUART_SESSION_MISSING_PACKAGE(type, pkg, `npm install ${pkg}`), { cause: err })
    }
    throw err
  }
}

const plugin: FastifyPluginAsync<QuartSessionOptions> = fp(quartSession, {
  fastify: '5.x',
  // No `dependencies: ['@fastify/cookie']`: checkRegistration makes that check with a message that says what to do.
  name: 'fastify-quart-session'
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
export { FilesystemStore, type FilesystemStoreOptions, type SweepResult } from './stores/filesystem.js'
export { connectStore, type ConnectStoreLike, type ConnectStoreOptions } from './connect.js'
export * as errors from './errors.js'
export type { SessionData, SessionKey, SessionValue, RequestSession } from '../types/index.js'
