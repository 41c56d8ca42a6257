import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { type QuartSessionOptions, resolveOptions } from './options.js'
import { Backend } from './backend.js'
import { DirectStore } from './direct.js'
import { DisabledSession, type Session, exposeSession } from './session.js'
import { createLoadHook, createSaveHook, disabledReason, isStaticFileRoute } from './hooks.js'
import { SessionCookie } from './cookie.js'
import { CookieSigner } from './signing.js'
import { isValidId } from './id.js'
import { createStore } from './store-factory.js'
import { FST_QUART_SESSION_CONNECT, FST_QUART_SESSION_INVALID_OPTION } from './errors.js'
import { kSession, kStaticRoute } from './symbols.js'
import { checkRegistration } from './registration.js'
import { startUserIndex } from './users-plugin.js'
import { RecordCodec } from './record.js'
import { ciphersOf } from './cipher.js'

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

  const signer = options.secrets === undefined ? undefined : new CookieSigner(options.secrets, isValidId)
  const cookie = new SessionCookie(options.cookieName, options.cookie, options.maxAge)
  const ciphers = ciphersOf(options.encryptionKeys)
  const backend = new Backend(store, options, cookie, signer, new RecordCodec(options.serializer, options.maxRecordBytes, ciphers?.records))

  const users = await startUserIndex(fastify, options, store, backend)
  const sessionStore = new DirectStore(store, options.serializer, backend.keys, ciphers?.direct, users)
  fastify.decorate('sessionStore', sessionStore)
  // @fastify/session has it on the request too: admin and "log out other devices" code uses it.
  fastify.decorateRequest('sessionStore', {
    getter (): DirectStore { return sessionStore }
  })
  fastify.decorateRequest(kSession, null)
  fastify.decorateRequest('session', {
    getter (this: FastifyRequest): Session {
      // One inert session per request where there is none, so nothing written on it is shared.
      const session = this[kSession] ??= new DisabledSession(backend, disabledReason(this, options.staticFiles, options.cookie.path))
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
export type { ListedSession, ListOptions, RevokeOptions } from './users.js'
export type { SessionIndex, IndexEntry, UserEntries } from './session-index.js'
export { MemoryStore, type MemoryStoreOptions } from './stores/memory.js'
export { FilesystemStore, type FilesystemStoreOptions, type SweepResult } from './stores/filesystem.js'
export { connectStore, type ConnectStoreLike, type ConnectStoreOptions } from './connect.js'
export * as errors from './errors.js'
export type { SessionData, SessionKey, SessionValue, RequestSession } from '../types/index.js'
