import type { SessionStore } from './store.js'
import type { ResolvedOptions } from './options.js'
import type { IoredisLike } from './stores/ioredis.js'
import { MemoryStore } from './stores/memory.js'
import { FST_QUART_SESSION_INVALID_OPTION, FST_QUART_SESSION_MISSING_PACKAGE } from './errors.js'

// Store construction from the plugin's options: the built-in adapters are loaded only when chosen,
// since redis, ioredis and memcached are optional peer dependencies.

/** The adapter the options name, its client package loaded on demand. */
export async function createStore (options: ResolvedOptions): Promise<SessionStore> {
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

