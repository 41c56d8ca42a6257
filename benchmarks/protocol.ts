/** What run.ts and server.ts agree on: variants, routes, the session payload and IPC messages. */

export const VARIANTS = [
  'bare', 'floor-redis', 'floor-redis-notimeout',
  'quart-memory', 'quart-memory-encrypted', 'quart-redis', 'quart-redis-csc', 'quart-memcached', 'quart-filesystem',
  'fastify-session'
] as const
export type VariantName = typeof VARIANTS[number]

export const ROUTES = ['/anon', '/read', '/write', '/new', '/static', '/race'] as const
export type RouteName = typeof ROUTES[number]

export const STATIC_PREFIX = '/static/'

export interface RouteSpec {
  path: string
  /** Whether requests carry the session cookie obtained from /login. */
  cookie: boolean
  /**
   * Sessions the connections are spread over (one /login each). `'each'`: one per connection, so
   * no two requests on a session overlap (an uncontended write, as a browser tab makes them).
   */
  sessions: number | 'each'
  /** Whether the route uses the session (the CPU and floor targets apply to these). */
  sessioned: boolean
}

export const ROUTE_SPECS: Record<RouteName, RouteSpec> = {
  '/anon': { path: '/anon', cookie: true, sessions: 1, sessioned: false },
  '/read': { path: '/read', cookie: true, sessions: 1, sessioned: true },
  // Saves are compare-and-set: ten connections incrementing one counter of one session would be
  // a same-key race (retries, not the cost of a write); each connection gets its own session.
  '/write': { path: '/write', cookie: true, sessions: 'each', sessioned: true },
  '/new': { path: '/new', cookie: false, sessions: 1, sessioned: true },
  '/static': { path: `${STATIC_PREFIX}small.txt`, cookie: true, sessions: 1, sessioned: false },
  // Many writers on few sessions: every connection increments a counter of its own in one of
  // RACE_SESSIONS sessions, so every conflict is between distinct keys, which must all survive.
  '/race': { path: '/race', cookie: true, sessions: 2, sessioned: true }
}

export const RACE_SESSIONS = 2

/**
 * Backend commands per request this plugin should send (the targets), by variant and route.
 * A save is compare-and-set: Redis `GET` on load + one `EVALSHA` on write (a new session too:
 * "only if the key is free"), memcached `gets` + `cas` (`add` for a new session). With
 * client-side caching, an unchanged session read from the warm cache costs no command at all.
 */
export const EXPECTED_COMMANDS: Partial<Record<VariantName, Partial<Record<RouteName, number>>>> = {
  'quart-redis': { '/anon': 0, '/read': 1, '/write': 2, '/new': 1, '/static': 0 },
  'quart-redis-csc': { '/read': 0, '/write': 2, '/new': 1 },
  'quart-memcached': { '/read': 1, '/write': 2, '/new': 1 }
}

/** Backend each variant talks to, for the command counters. */
export type BackendName = 'redis' | 'memcached' | 'filesystem'
export const VARIANT_BACKEND: Record<VariantName, BackendName | undefined> = {
  bare: undefined,
  'floor-redis': 'redis',
  'floor-redis-notimeout': 'redis',
  'quart-memory': undefined,
  'quart-memory-encrypted': undefined,
  'quart-redis': 'redis',
  'quart-redis-csc': 'redis',
  'quart-memcached': 'memcached',
  'quart-filesystem': 'filesystem',
  'fastify-session': 'redis'
}

/**
 * Routes a variant runs, where not all. The plugin's opted-out and static routes return before
 * any backend is touched, so /anon and /static run on quart-memory and quart-redis only (more
 * would repeat the same code path); the floors have no session to race on.
 */
export const VARIANT_ROUTES: Partial<Record<VariantName, readonly RouteName[]>> = {
  bare: ['/anon', '/read', '/write', '/new', '/static'],
  'floor-redis': ['/anon', '/read', '/write', '/new', '/static'],
  'floor-redis-notimeout': ['/read', '/write', '/new'],
  // encryptionKey's cost: against quart-memory, where nothing else differs (issue 21: within 5 µs on /read).
  'quart-memory-encrypted': ['/read', '/write', '/new'],
  'quart-redis-csc': ['/read', '/write', '/new', '/race'],
  'quart-memcached': ['/read', '/write', '/new', '/race'],
  'quart-filesystem': ['/read', '/write', '/new', '/race']
}

// 40 characters: this plugin refuses secrets under 32, and both plugins get the same one.
export const SECRET = 'benchmark-secret-0123456789-abcdefghijkl'
export const SESSION_TTL_SECONDS = 3600
export const LOGIN_USER = 'bench-user'
export const NEW_USER = 'new-user'

/** What /dump answers on /race: the sum of the session's counters, and the server's 2xx /race responses. */
export interface RaceDump {
  /** Sum of the per-connection counters stored in the session of the request's cookie. */
  sum: number
  /** Counters (keys) in that session. */
  keys: number
  /** 2xx responses the server sent on /race since the last /login (all sessions). */
  served: number
}

export type ParentMessage = { type: 'cpu', id: number } | { type: 'close' }
export type ChildMessage =
  | { type: 'ready', port: number }
  | { type: 'cpu', id: number, user: number, system: number }
