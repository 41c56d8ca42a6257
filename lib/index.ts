import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { SessionStore } from './store.js'
import { type QuartSessionOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { Backend } from './backend.js'
import { DirectStore } from './direct.js'
import { DisabledSession, type Session } from './session.js'
import { createLoadHook, createSaveHook } from './hooks.js'
import { CookieSigner } from './signing.js'
import { MemoryStore } from './stores/memory.js'
import { FST_QUART_SESSION_CONNECT, FST_QUART_SESSION_INVALID_OPTION } from './errors.js'
import { kSession } from './symbols.js'

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

  const signer = options.secrets === undefined ? undefined : new CookieSigner(options.secrets)
  const loadSession = createLoadHook(options, backend, signer)
  const saveSession = createSaveHook(options, backend, signer)
  fastify.addHook('onRoute', function attachSessionHooks (route: RouteOptions) {
    if (!routeWantsSession(route, options.staticFiles)) return
    // Hooks go on the routes that use sessions only: the others pay nothing at all.
    route.onRequest = appendHook(route.onRequest, loadSession)
    route.onSend = appendHook(route.onSend, saveSession)
  })
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
