// The `servers` option's shape, checked where neither the memcached package (an optional peer
// dependency) nor the plugin's options are imported: the store and the option check share it.

export type MemcachedServers = string | string[] | Record<string, number>

/** `'host:port'`, a non-empty array of them, or `{ 'host:port': weight }` with weights above 0. */
export function isServers (value: unknown): value is MemcachedServers {
  if (typeof value === 'string') return value.length > 0
  if (Array.isArray(value)) return value.length > 0 && value.every((s) => typeof s === 'string' && s.length > 0)
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
    return entries.length > 0 && entries.every(([, weight]) => typeof weight === 'number' && weight > 0)
  }
  return false
}
