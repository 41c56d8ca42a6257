import { join } from 'node:path'
import type { SessionStore } from '../store.js'
import type { ResolvedOptions } from '../options.js'
import type { SessionIndex } from '../session-index.js'
import { KeyedIndex } from './keyed.js'
import { MemoryStore } from '../stores/memory.js'
import { FilesystemStore } from '../stores/filesystem.js'
import { FST_QUART_SESSION_INDEX_UNSUPPORTED } from '../errors.js'

// Where a backend keeps its per-user index. Redis (node-redis or ioredis, single, Sentinel or
// Cluster) and stores given as `store` keep it beside the sessions, one key per item. Memory and
// the filesystem give it a store of its own, outside the session store's `maxEntries` bound: an
// index item evicted while its sessions live would leave them out of "sign out everywhere".
// Memcached evicts whatever it likes whenever memory runs short, and a pool hands keys to a
// stand-in server while one is away: an index there could silently forget a live session, so it
// is refused (the sessions themselves fail safe when evicted: they end).

/**
 * How long a user item outlives the last end it lists: one full lifetime (the longest a session can
 * be refreshed past that end without an index call) plus time for the expiry sweep to report it.
 */
function marginOf (options: ResolvedOptions): number {
  return Math.max(options.maxAge, options.absoluteMaxAge) + SWEEP_GRACE_S
}
const SWEEP_GRACE_S = 300

export function createIndex (options: ResolvedOptions, store: SessionStore): SessionIndex {
  const prefix = options.keyPrefix
  const margin = marginOf(options)
  if (options.store !== undefined) {
    if ((store as { constructor?: { name?: string } }).constructor?.name === 'MemcachedStore') throw memcachedRefused()
    return new KeyedIndex(store, prefix, margin)
  }
  switch (options.type) {
    case 'memcached':
      throw memcachedRefused()
    case 'filesystem':
      return new KeyedIndex(new FilesystemStore({
        directory: join(options.directory ?? 'sessions', 'users'), fileMode: options.fileMode, maxEntries: Number.MAX_SAFE_INTEGER
      }), prefix, margin, true)
    case 'memory':
      return new KeyedIndex(new MemoryStore({ maxEntries: Number.MAX_SAFE_INTEGER }), prefix, margin, true)
    default:
      return new KeyedIndex(store, prefix, margin)
  }
}

function memcachedRefused (): Error {
  return new FST_QUART_SESSION_INDEX_UNSUPPORTED('memcached',
    'memcached may evict an index item (or serve a stand-in server\'s copy while a pool server is away) while the sessions it lists live on, and "sign out everywhere" would then miss them. Keep sessions in memcached without userId, or use Redis or the filesystem for a per-user index')
}
