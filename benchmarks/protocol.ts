/** What run.ts and server.ts agree on: variants, routes, the session payload and IPC messages. */

export const VARIANTS = ['bare', 'floor-redis', 'floor-redis-notimeout', 'quart-memory', 'quart-redis', 'quart-memcached', 'fastify-session'] as const
export type VariantName = typeof VARIANTS[number]

export const ROUTES = ['/anon', '/read', '/write', '/new', '/static'] as const
export type RouteName = typeof ROUTES[number]

export const STATIC_PREFIX = '/static/'

export interface RouteSpec {
  path: string
  /** Whether requests carry the session cookie obtained from /login. */
  cookie: boolean
  /** Backend commands a session route needs at least (issue 6): the target for this plugin. */
  commands: number
  /** Whether the route uses the session (the CPU and floor targets apply to these). */
  sessioned: boolean
}

export const ROUTE_SPECS: Record<RouteName, RouteSpec> = {
  '/anon': { path: '/anon', cookie: true, commands: 0, sessioned: false },
  '/read': { path: '/read', cookie: true, commands: 1, sessioned: true },
  '/write': { path: '/write', cookie: true, commands: 2, sessioned: true },
  '/new': { path: '/new', cookie: false, commands: 1, sessioned: true },
  '/static': { path: `${STATIC_PREFIX}small.txt`, cookie: true, commands: 0, sessioned: false }
}

/** Backend each variant talks to, for the command counters. */
export const VARIANT_BACKEND: Record<VariantName, 'redis' | 'memcached' | undefined> = {
  bare: undefined,
  'floor-redis': 'redis',
  'floor-redis-notimeout': 'redis',
  'quart-memory': undefined,
  'quart-redis': 'redis',
  'quart-memcached': 'memcached',
  'fastify-session': 'redis'
}

/** Routes a variant runs, where not all: /anon and /static would only repeat floor-redis there. */
export const VARIANT_ROUTES: Partial<Record<VariantName, readonly RouteName[]>> = {
  'floor-redis-notimeout': ['/read', '/write', '/new']
}

// 40 characters: this plugin refuses secrets under 32, and both plugins get the same one.
export const SECRET = 'benchmark-secret-0123456789-abcdefghijkl'
export const SESSION_TTL_SECONDS = 3600
export const LOGIN_USER = 'bench-user'
export const NEW_USER = 'new-user'

export type ParentMessage = { type: 'cpu', id: number } | { type: 'close' }
export type ChildMessage =
  | { type: 'ready', port: number }
  | { type: 'cpu', id: number, user: number, system: number }
