/** What run.ts and server.ts agree on: variants, routes, the session payload and IPC messages. */

export const VARIANTS = [
  'bare', 'floor-redis', 'floor-redis-notimeout',
  'quart-memory', 'quart-memory-encrypted', 'quart-redis', 'quart-redis-users', 'quart-redis-csc', 'quart-memcached', 'quart-filesystem',
  'fastify-session'
] as const
export type VariantName = typeof VARIANTS[number]

export const ROUTES = ['/anon', '/read', '/write', '/new', '/static', '/race', '/hot', '/hot-update', '/read-mixed'] as const
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
  /**
   * Lost updates are counted after the cell (see run.ts countLost): `'slots'` sums the counters
   * of the connections (/race, /hot), `'hits'` reads the one shared counter (/hot-update).
   */
  counts?: 'slots' | 'hits'
  /**
   * Routes driven after this one's own warm-up and before it is measured, each for the warm-up
   * time, so the store has just served mixed traffic (/read-mixed).
   */
  mixedWarmup?: readonly RouteName[]
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
  '/race': { path: '/race', cookie: true, sessions: 2, sessioned: true, counts: 'slots' },
  // A hot session: every connection on ONE session, each incrementing a counter of its own, so
  // all saves of the session overlap and each must keep the others' increments.
  '/hot': { path: '/hot', cookie: true, sessions: 1, sessioned: true, counts: 'slots' },
  // The same session, one shared counter: this plugin through session.update(), the others by
  // read-modify-write (which loses increments). Lost = 2xx responses − the final value.
  '/hot-update': { path: '/hot-update', cookie: true, sessions: 1, sessioned: true, counts: 'hits' },
  // /read measured right after the store has served /new, /write and /hot (sessions created,
  // writes, a hot session): a store whose reads slow down after mixed traffic shows it here.
  '/read-mixed': { path: '/read', cookie: true, sessions: 1, sessioned: true, mixedWarmup: ['/new', '/write', '/hot'] }
}

export const RACE_SESSIONS = 2

/**
 * Backend commands per request this plugin should send (the targets), by variant and route.
 * A save is compare-and-set: Redis `GET` on load + one `EVALSHA` on write (a new session too:
 * "only if the key is free"), memcached `gets` + `cas` (`add` for a new session). With
 * client-side caching, an unchanged session read from the warm cache costs no command at all.
 */
export const EXPECTED_COMMANDS: Partial<Record<VariantName, Partial<Record<RouteName, number>>>> = {
  'quart-redis': { '/anon': 0, '/read': 1, '/write': 2, '/new': 1, '/static': 0, '/read-mixed': 1 },
  // A write that keeps the session's user costs no index call either.
  'quart-redis-users': { '/read': 1, '/write': 2 },
  'quart-redis-csc': { '/read': 0, '/write': 2, '/new': 1, '/read-mixed': 0 },
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
  'quart-redis-users': 'redis',
  'quart-redis': 'redis',
  'quart-redis-csc': 'redis',
  'quart-memcached': 'memcached',
  'quart-filesystem': 'filesystem',
  'fastify-session': 'redis'
}

/**
 * Routes a variant runs, where not all. The plugin's opted-out and static routes return before
 * any backend is touched, so /anon and /static run on quart-memory and quart-redis only (more
 * would repeat the same code path). The floors have no session to race on, but run /hot (and
 * floor-redis-notimeout /hot-update): the same one key, GET + SET, which loses updates. bare runs
 * /read-mixed as the reference of the read targets after mixed traffic.
 */
export const VARIANT_ROUTES: Partial<Record<VariantName, readonly RouteName[]>> = {
  bare: ['/anon', '/read', '/write', '/new', '/static', '/read-mixed'],
  'floor-redis': ['/anon', '/read', '/write', '/new', '/static', '/hot'],
  'floor-redis-notimeout': ['/read', '/write', '/new', '/hot', '/hot-update'],
  // encryptionKey's cost: against quart-memory, where nothing else differs (issue 21: within 5 µs on /read).
  'quart-memory-encrypted': ['/read', '/write', '/new'],
  // The per-user index (userId) on: a logged-in read must stay one GET (issue 20).
  'quart-redis-users': ['/read', '/write'],
  'quart-redis-csc': ['/read', '/write', '/new', '/race', '/hot', '/hot-update', '/read-mixed'],
  'quart-memcached': ['/read', '/write', '/new', '/race', '/hot', '/hot-update'],
  'quart-filesystem': ['/read', '/write', '/new', '/race', '/hot', '/hot-update'],
  'fastify-session': ['/anon', '/read', '/write', '/new', '/static', '/race', '/hot', '/hot-update']
}

// 40 characters: this plugin refuses secrets under 32, and both plugins get the same one.
export const SECRET = 'benchmark-secret-0123456789-abcdefghijkl'
export const SESSION_TTL_SECONDS = 3600
export const LOGIN_USER = 'bench-user'
export const NEW_USER = 'new-user'

/** What /dump answers after /race, /hot, /hot-update: what the session holds, and the server's 2xx responses. */
export interface RaceDump {
  /** Sum of the per-connection counters stored in the session of the request's cookie. */
  sum: number
  /** Counters (keys) in that session. */
  keys: number
  /** The shared counter of /hot-update (`hits`) in that session, 0 when absent. */
  hits: number
  /** 2xx responses the server sent on /race, /hot and /hot-update since the last /login (all sessions). */
  served: number
}

export type ParentMessage = { type: 'cpu', id: number } | { type: 'close' }
export type ChildMessage =
  | { type: 'ready', port: number }
  | { type: 'cpu', id: number, user: number, system: number }
