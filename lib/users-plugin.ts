import type { FastifyInstance } from 'fastify'
import type { ResolvedOptions } from './options.js'
import type { SessionStore } from './store.js'
import type { Backend } from './backend.js'
import { UserSessions } from './users.js'
import { createIndex } from './indexes/create.js'
import { FST_QUART_SESSION_CONNECT } from './errors.js'

/**
 * The per-user index at registration (the `userId` option): built for the backend, made ready
 * before `ready()` resolves, its expiry sweep started and stopped with the app.
 */
export async function startUserIndex (fastify: FastifyInstance, options: ResolvedOptions, store: SessionStore, backend: Backend): Promise<UserSessions | undefined> {
  if (options.users === undefined) return undefined
  const index = createIndex(options, store)
  try {
    await index.ready?.()
  } catch (err) {
    const code = (err as { code?: unknown })?.code
    if (typeof code === 'string' && code.startsWith('FST_QUART_SESSION_')) throw err
    throw Object.assign(new FST_QUART_SESSION_CONNECT('the session index', (err as Error)?.message ?? String(err)), { cause: err })
  }
  const users = new UserSessions(index, backend, options.users, fastify.log)
  backend.users = users
  users.start()
  fastify.addHook('onClose', async function closeUserIndex () { await users.close() })
  return users
}
